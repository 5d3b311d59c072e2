//! Runs a job the same way everywhere (Lambda, CLI, tests): parse the payload, do the work,
//! write the run record, publish the outcome. A failure is recorded and published like a
//! success, and reported as a failure to the caller — never the other way round.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::App;
use crate::error::Error;
use crate::notify::Notification;
use crate::payload::{self, Trigger};

/// A job's outcome status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    Failed,
}

/// What one run did: stored under `{prefix}runs/{job}/…`, published, and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub job: String,
    pub run_id: String,
    pub status: Status,
    pub env: String,
    pub trigger: Value,
    pub started: Timestamp,
    pub finished: Timestamp,
    pub duration_ms: u64,
    pub dry_run: bool,
    /// One line for people: what was done, or what failed.
    pub summary: String,
    pub error: Option<String>,
    pub retryable: Option<bool>,
    /// Job-specific results (databases backed up, rows deleted, …).
    pub outputs: Value,
    /// Where this record was stored (absent for dry runs, which write nothing).
    pub record_key: Option<String>,
    /// Whether the outcome reached the topic: a message id, or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Value>,
}

/// Facts about the invocation the job may use.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run_id: String,
    pub started: Timestamp,
    /// When the Lambda will be stopped; `None` for CLI runs.
    pub deadline: Option<Instant>,
    /// When the run started, on the monotonic clock.
    pub clock: Instant,
}

/// How long before the deadline a job gives up, cleaning up what it started (aborting an
/// upload, writing the record, publishing): 20 s, or a quarter of a short timeout.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(20);
/// What writing the run record and publishing the outcome are given, whatever ran before.
pub const RECORD_RESERVE: Duration = Duration::from_secs(5);

impl RunContext {
    /// The margin kept before this run's deadline.
    pub fn margin(&self) -> Duration {
        let total = self.deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(self.clock));
        DEADLINE_MARGIN.min(total / 4)
    }

    /// The instant by which work must have stopped, if there is one.
    pub fn stop_by(&self) -> Option<Instant> {
        self.deadline.map(|d| d.checked_sub(self.margin()).unwrap_or(d))
    }

    /// Time left for clean-up work after a job stopped: until the deadline, less what writing
    /// the run record and publishing the outcome need (`RECORD_RESERVE`, or half the margin
    /// of a short run); `None` without a deadline.
    pub fn cleanup_budget(&self) -> Option<Duration> {
        let reserve = RECORD_RESERVE.min(self.margin() / 2);
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()).saturating_sub(reserve))
    }

    /// Resolves when the job must stop; never, without a deadline.
    pub async fn stop_signal(&self) {
        match self.stop_by() {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    }
}

/// What a job hands back: results (even partial ones on failure) and the first error.
#[derive(Debug)]
pub struct JobReport {
    pub outputs: Value,
    /// What the job worked on, for the subject line (`shop`, `2 rules`).
    pub what: String,
    /// How much it did, when it succeeded (`218 MB`, `1,200 rows deleted`).
    pub detail: Option<String>,
    pub error: Option<Error>,
}

impl JobReport {
    /// A report of a job that failed before it produced anything.
    pub fn failed(what: impl Into<String>, error: Error) -> Self {
        JobReport { outputs: Value::Null, what: what.into(), detail: None, error: Some(error) }
    }
}

/// A Backstop job: typed options in, a report out.
#[async_trait]
pub trait Job: Send + Sync {
    /// The job's name, as in function names, run records and messages.
    const NAME: &'static str;
    type Options: DeserializeOwned + Default + Send + Sync;

    fn is_dry_run(options: &Self::Options) -> bool;

    async fn run(app: &App, options: &Self::Options, ctx: &RunContext) -> JobReport;
}

/// Runs job `J` on `payload`: the one code path behind every function and CLI command.
pub async fn execute<J: Job>(app: &App, payload: &Value, deadline: Option<Instant>) -> RunRecord {
    execute_at::<J>(app, payload, deadline, Timestamp::now()).await
}

/// [`execute`] with the clock injected: the run starts at `started` (its id, its record's
/// date, and what jobs take as "now"). Tests plan retention days ahead this way, never sleeping.
pub async fn execute_at<J: Job>(
    app: &App,
    payload: &Value,
    deadline: Option<Instant>,
    started: Timestamp,
) -> RunRecord {
    let clock = Instant::now();
    let ctx = RunContext {
        run_id: format!(
            "{}-{}",
            started.strftime("%Y%m%dT%H%M%SZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        started,
        deadline,
        clock,
    };
    let (report, trigger, dry_run) = match payload::parse::<J::Options>(payload) {
        Ok((options, trigger)) => {
            let dry_run = J::is_dry_run(&options);
            let time_left_s = deadline.map(|d| d.saturating_duration_since(clock).as_secs());
            tracing::info!(job = J::NAME, run_id = %ctx.run_id, ?trigger, dry_run, ?time_left_s, "run started");
            (J::run(app, &options, &ctx).await, trigger, dry_run)
        }
        Err(e) => (JobReport::failed("invalid payload", e), Trigger::Manual, false),
    };
    let duration = clock.elapsed();
    let finished = started + duration;
    let env = &app.config.env;
    let (status, summary) = match &report.error {
        None => {
            let detail = report.detail.as_deref().map(|d| format!(", {d}")).unwrap_or_default();
            let took = human_duration(duration);
            (Status::Succeeded, format!("{} ({env}){detail}{} in {took}", report.what, dry_run_note(dry_run)))
        }
        Some(e) => (
            Status::Failed,
            format!("{} ({env}) after {}: {}", report.what, human_duration(duration), e.report()),
        ),
    };
    let mut record = RunRecord {
        job: J::NAME.to_owned(),
        run_id: ctx.run_id.clone(),
        status,
        env: env.clone(),
        trigger: serde_json::to_value(&trigger).unwrap_or(Value::Null),
        started,
        finished,
        duration_ms: duration.as_millis() as u64,
        dry_run,
        summary,
        error: report.error.as_ref().map(Error::report),
        retryable: report.error.as_ref().map(Error::is_retryable),
        outputs: report.outputs,
        record_key: None,
        published: None,
    };
    match &report.error {
        None => {
            tracing::info!(job = J::NAME, run_id = %record.run_id, summary = %record.summary, "run succeeded")
        }
        Some(e) => {
            tracing::error!(job = J::NAME, run_id = %record.run_id, error = %e.report(), "run failed")
        }
    }

    // Metrics first: a line on stdout, cheap, and there even if the deadline cuts what follows.
    crate::metrics::emit(&record);
    // Dry runs write nothing to the destination.
    if !dry_run {
        let key = record_key(&app.config.prefix, J::NAME, &record.started, &record.run_id);
        let body = serde_json::to_vec_pretty(&record).expect("run records serialize");
        match app.store.put(&key, body.into(), "application/json").await {
            Ok(()) => record.record_key = Some(key),
            Err(e) => tracing::error!(error = %e.report(), "could not write the run record"),
        }
    }
    record.published = Some(match app.notifier.publish(&notification(&record)).await {
        Ok(id) => serde_json::json!({ "message_id": id }),
        Err(e) => {
            tracing::error!(error = %e.report(), "could not publish the outcome");
            serde_json::json!({ "error": e.report() })
        }
    });
    // An outcome nobody was told of is said where it is kept: the record, written again. The
    // run's status stays what the job made it.
    if let (Some(key), Some(published)) = (&record.record_key, &record.published)
        && published.get("error").is_some()
    {
        let body = serde_json::to_vec_pretty(&record).expect("run records serialize");
        if let Err(e) = app.store.put(key, body.into(), "application/json").await {
            tracing::error!(error = %e.report(), "could not add the publishing failure to the run record");
        }
    }
    record
}

fn dry_run_note(dry_run: bool) -> &'static str {
    if dry_run { ", dry run" } else { "" }
}

pub use crate::keys::record_key;

/// Renders the record for people and machines.
pub fn notification(record: &RunRecord) -> Notification {
    let status = match record.status {
        Status::Succeeded => "succeeded",
        Status::Failed => "FAILED",
    };
    let subject = format!("[Backstop] {} {status}: {}", record.job, record.summary);
    let mut body = format!(
        "{subject}\n\nJob:      {}\nStatus:   {status}\nEnv:      {}\nRun:      {}\nStarted:  {}\nDuration: {}\n",
        record.job,
        record.env,
        record.run_id,
        record.started,
        human_duration(Duration::from_millis(record.duration_ms)),
    );
    if let Some(e) = &record.error {
        body.push_str(&format!(
            "Error:    {e}\nRetry:    {}\n",
            if record.retryable == Some(true) {
                "may succeed"
            } else {
                "will not help until something changes"
            }
        ));
    }
    if let Some(key) = &record.record_key {
        body.push_str(&format!("Record:   {key}\n"));
    }
    let details = serde_json::to_string_pretty(&record.outputs).unwrap_or_default();
    if details.len() <= MESSAGE_DETAILS {
        body.push_str(&format!("\nDetails:\n{details}\n"));
    } else {
        let cut = details.floor_char_boundary(MESSAGE_DETAILS);
        body.push_str(&format!(
            "\nDetails (the first {cut} bytes; the run record has them all):\n{}\n…\n",
            &details[..cut]
        ));
    }
    Notification {
        subject,
        body,
        record_json: message_record(record),
        attributes: vec![
            ("job".into(), record.job.clone()),
            ("status".into(), if record.status == Status::Succeeded { "succeeded" } else { "failed" }.into()),
            ("env".into(), record.env.clone()),
        ],
    }
}

/// SNS refuses messages over 256 KiB, and the structured message holds the record once per
/// protocol (7 times) and the body twice: each is kept under these sizes, so that a run with a
/// thousand tables is still announced. What is left out is in the run record.
const MESSAGE_RECORD: usize = 24 * 1024;
const MESSAGE_DETAILS: usize = 16 * 1024;

/// The record as messages carry it: whole when small, else with `outputs` replaced by where to
/// find them.
fn message_record(record: &RunRecord) -> String {
    let full = serde_json::to_string(record).expect("run records serialize");
    if full.len() <= MESSAGE_RECORD {
        return full;
    }
    let mut small = record.clone();
    small.outputs = serde_json::json!({
        "omitted": format!("{} bytes of outputs: see the run record", full.len()),
        "record_key": record.record_key,
    });
    let mut text = serde_json::to_string(&small).expect("run records serialize");
    if text.len() > MESSAGE_RECORD {
        // An error text of its own past the limit: cut it too.
        small.error = small.error.map(|e| e[..e.floor_char_boundary(4096)].to_owned() + " …");
        small.summary = small.summary[..small.summary.floor_char_boundary(1024)].to_owned();
        text = serde_json::to_string(&small).expect("run records serialize");
    }
    text
}

/// `16 s`, `2 min 5 s`, `1 h 3 min`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{} ms", d.as_millis()),
        1..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// `218 MB`, `1.2 GB` (decimal units, as S3 consoles show them).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 || v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Turns a list of per-unit failures into one error (or none).
pub fn combine(total: usize, mut errors: Vec<Error>) -> Option<Error> {
    match errors.len() {
        0 => None,
        1 if total == 1 => errors.pop(),
        _ => Some(Error::Several { total, errors }),
    }
}

/// The error text for a failed Lambda invocation: what failed and where the record is.
pub fn failure_message(record: &RunRecord) -> String {
    let mut msg = format!(
        "{} failed (run {}): {}",
        record.job,
        record.run_id,
        record.error.as_deref().unwrap_or("unknown error")
    );
    if let Some(key) = &record.record_key {
        msg.push_str(&format!(" [record: {key}]"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(0, "0 B")]
    #[case(999, "999 B")]
    #[case(218_400_000, "218 MB")]
    #[case(1_234_000_000, "1.2 GB")]
    fn bytes(#[case] n: u64, #[case] expected: &str) {
        assert_eq!(human_bytes(n), expected);
    }

    #[test]
    fn a_thousand_tables_still_fit_in_one_sns_message() {
        let tables: Vec<serde_json::Value> = (0..1000)
            .map(|i| serde_json::json!({"table": format!("public.table_with_a_long_name_{i:04}"), "rows": i, "expected": i,
                "hash": "0123456789abcdef0123456789abcdef", "matches": i != 7}))
            .collect();
        let t: Timestamp = "2026-11-23T03:00:05Z".parse().unwrap();
        let record = RunRecord {
            job: "verify".into(),
            run_id: "r".into(),
            status: Status::Failed,
            env: "production".into(),
            trigger: Value::Null,
            started: t,
            finished: t,
            duration_ms: 1,
            dry_run: false,
            summary: "shop (production) after 5 min: 1 table differs".into(),
            error: Some("table public.table_with_a_long_name_0007 differs".into()),
            retryable: Some(false),
            outputs: serde_json::json!({ "tables": tables }),
            record_key: Some("backstop/runs/verify/2026/11/23/r.json".into()),
            published: None,
        };
        let n = notification(&record);
        let message = n.structured_message();
        assert!(message.len() < 256 * 1024, "{} bytes", message.len());
        let carried: RunRecord = serde_json::from_str(&n.record_json).unwrap();
        assert_eq!(carried.status, Status::Failed);
        assert_eq!(carried.error, record.error, "the error is whole");
        assert_eq!(carried.outputs["record_key"], "backstop/runs/verify/2026/11/23/r.json");
        assert!(
            n.body.contains("table_with_a_long_name_0000") && n.body.contains("the run record has them all")
        );
        // A small record travels whole.
        let small = RunRecord { outputs: serde_json::json!({"tables": 3}), ..record };
        assert_eq!(serde_json::from_str::<RunRecord>(&notification(&small).record_json).unwrap(), small);
    }

    #[rstest]
    #[case(16_400, "16 s")]
    #[case(125_000, "2 min 5 s")]
    #[case(3_780_000, "1 h 3 min")]
    #[case(250, "250 ms")]
    fn durations(#[case] ms: u64, #[case] expected: &str) {
        assert_eq!(human_duration(Duration::from_millis(ms)), expected);
    }
}
