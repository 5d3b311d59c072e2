//! The Lambda edge: one generic handler that turns an invocation into a job run, and the run's
//! outcome into a response (success) or a function error (failure, after the record is
//! written and the outcome published), so that Lambda's retries and destinations work.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::App;
use crate::run::{self, Job, Status};

/// Handles one invocation of job `J`.
pub async fn handle<J: Job>(app: &App, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let deadline = deadline_instant(event.context.deadline);
    let record = run::execute::<J>(app, &event.payload, deadline).await;
    match record.status {
        Status::Succeeded => Ok(serde_json::to_value(&record).expect("run records serialize")),
        Status::Failed => Err(Diagnostic {
            error_type: if record.retryable == Some(true) { "JobFailed" } else { "JobFailedPermanently" }.into(),
            error_message: run::failure_message(&record),
        }),
    }
}

/// Converts the context's deadline (ms since the epoch) to an `Instant`.
fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}
