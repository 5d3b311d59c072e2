//! The media-sync Lambda function: copies what changed in the media bucket into the backup
//! bucket, keeping replaced and deleted objects, with a snapshot per run. Everything but wiring
//! lives in `backstop_core`.

use backstop_core::media::MediaSync;
use backstop_core::{App, lambda, telemetry};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    // Init phase: configuration and every client, once per execution environment.
    let app = App::from_env(None).await?;
    run(service_fn(|event| lambda::handle::<MediaSync>(&app, event))).await
}
