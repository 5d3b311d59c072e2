//! The retention-prune Lambda function: deletes old backups, media snapshots, trash and run
//! records by a keep-policy, never the newest and never after backups stopped. Everything but
//! wiring lives in `backstop_core`.

use backstop_core::retention::RetentionPrune;
use backstop_core::{App, lambda, telemetry};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    // Init phase: configuration and every client, once per execution environment.
    let app = App::from_env(None).await?;
    run(service_fn(|event| lambda::handle::<RetentionPrune>(&app, event))).await
}
