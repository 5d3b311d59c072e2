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
            error_type: if record.retryable == Some(true) { "JobFailed" } else { "JobFailedPermanently" }
                .into(),
            error_message: run::failure_message(&record),
        }),
    }
}

/// Converts the context's deadline (ms since the epoch) to an `Instant`. Some emulators
/// (cargo lambda watch) send the timeout itself (e.g. 600000); a value that small cannot be a
/// time since the epoch, so it is taken as milliseconds from now.
fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    const EPOCH_MS_2001: u64 = 1_000_000_000_000;
    if deadline_ms == 0 {
        return None;
    }
    if deadline_ms < EPOCH_MS_2001 {
        return Some(Instant::now() + Duration::from_millis(deadline_ms));
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_from_the_epoch_and_relative_ones() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = deadline_instant(now_ms + 60_000).unwrap().saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(58) && left <= Duration::from_secs(60), "{left:?}");
        let left = deadline_instant(600_000).unwrap().saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(598), "{left:?}");
        assert!(deadline_instant(0).is_none());
    }
}
