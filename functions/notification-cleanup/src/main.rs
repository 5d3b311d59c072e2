//! The notification-cleanup Lambda function: deletes old rows by rules, in small batches.
//! Everything but wiring lives in `backstop_core`.

use backstop_core::cleanup::NotificationCleanup;
use backstop_core::{App, lambda, telemetry};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    // Init phase: configuration and every client, once per execution environment.
    let app = App::from_env(None).await?;
    run(service_fn(|event| lambda::handle::<NotificationCleanup>(&app, event))).await
}
