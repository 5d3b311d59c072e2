//! The db-backup Lambda function: dumps PostgreSQL, compressed, streamed into S3 with a
//! manifest. Everything but wiring lives in `backstop_core`.

use backstop_core::backup::DbBackup;
use backstop_core::{App, lambda, telemetry};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    // Init phase: configuration and every client, once per execution environment.
    let app = App::from_env(None).await?;
    run(service_fn(|event| lambda::handle::<DbBackup>(&app, event))).await
}
