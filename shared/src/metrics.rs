//! Metrics in CloudWatch Embedded Metric Format: one JSON line per run (and per database for
//! db-backup) on stdout, which CloudWatch Logs turns into metrics in namespace `Backstop` —
//! from Lambda and from the Fargate runner's `awslogs` driver alike, with no API call. The
//! Terraform module's alarms read them: errors, and freshness ("no successful backup of this
//! database in 25 hours", missing data breaching).
//!
//! Dimensions: `Job` and `Env` on every line; `Database` on db-backup's per-database lines.
//! Metrics: `Success` (1 or 0), `DurationMs`, and what the job moved: `Bytes`, `Objects`,
//! `Rows`. Dry runs emit nothing: a rehearsal is not a backup.

use serde_json::{Map, Value, json};

use crate::run::{RunRecord, Status};

/// The namespace every metric is in (the module's alarms use it).
pub const NAMESPACE: &str = "Backstop";

/// Whether this process runs where stdout is CloudWatch Logs (Lambda, ECS), or was asked to
/// emit anyway (`BACKSTOP_METRICS=emf`); `BACKSTOP_METRICS=off` silences it.
/// Read once per process: the environment does not change between invocations.
pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| match std::env::var("BACKSTOP_METRICS").as_deref() {
        Ok("emf") => true,
        Ok("off") => false,
        _ => {
            std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
                || std::env::var_os("ECS_CONTAINER_METADATA_URI_V4").is_some()
        }
    })
}

/// Prints the run's metric lines when [`enabled`].
pub fn emit(record: &RunRecord) {
    if enabled() {
        for line in lines(record) {
            println!("{line}");
        }
    }
}

/// The EMF lines for one run record (pure; tested).
pub fn lines(record: &RunRecord) -> Vec<Value> {
    if record.dry_run {
        return Vec::new();
    }
    let timestamp = record.finished.as_millisecond();
    let success = u64::from(record.status == Status::Succeeded);
    let outputs = &record.outputs;
    let u = |pointer: &str| outputs.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let mut values = vec![("Success", "Count", success), ("DurationMs", "Milliseconds", record.duration_ms)];
    let mut per_database = Vec::new();
    match record.job.as_str() {
        "db-backup" => {
            let databases = outputs["databases"].as_array().map(Vec::as_slice).unwrap_or_default();
            values.push(("Bytes", "Bytes", databases.iter().filter_map(|d| d["bytes"].as_u64()).sum()));
            for d in databases {
                let Some(name) = d["database"].as_str() else { continue };
                let ok = u64::from(d["status"] == "succeeded");
                let mut line = vec![("Success", "Count", ok)];
                line.push(("DurationMs", "Milliseconds", d["duration_ms"].as_u64().unwrap_or(0)));
                line.push(("Bytes", "Bytes", d["bytes"].as_u64().unwrap_or(0)));
                per_database.push(line_of(record, timestamp, Some(name), &line));
            }
        }
        "media-sync" => {
            values.push(("Objects", "Count", u("/copied")));
            values.push(("Bytes", "Bytes", u("/copied_bytes")));
        }
        "notification-cleanup" => {
            let rules = outputs["rules"].as_array().map(Vec::as_slice).unwrap_or_default();
            values.push(("Rows", "Count", rules.iter().filter_map(|r| r["deleted"].as_u64()).sum()));
        }
        "retention-prune" => values.push(("Bytes", "Bytes", u("/bytes_freed"))),
        _ => {}
    }
    let mut out = vec![line_of(record, timestamp, None, &values)];
    out.extend(per_database);
    out
}

fn line_of(
    record: &RunRecord,
    timestamp: i64,
    database: Option<&str>,
    values: &[(&str, &str, u64)],
) -> Value {
    let mut dimensions = vec!["Job", "Env"];
    if database.is_some() {
        dimensions.push("Database");
    }
    let metrics: Vec<Value> =
        values.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect();
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": metrics}],
        }),
    );
    line.insert("Job".into(), json!(record.job));
    line.insert("Env".into(), json!(record.env));
    if let Some(db) = database {
        line.insert("Database".into(), json!(db));
    }
    line.insert("RunId".into(), json!(record.run_id));
    for (name, _, value) in values {
        line.insert((*name).into(), json!(value));
    }
    Value::Object(line)
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;

    fn record(job: &str, status: Status, outputs: Value) -> RunRecord {
        RunRecord {
            job: job.into(),
            run_id: "r1".into(),
            status,
            env: "production".into(),
            trigger: json!({}),
            started: Timestamp::UNIX_EPOCH,
            finished: Timestamp::from_second(60).unwrap(),
            duration_ms: 60_000,
            dry_run: false,
            summary: String::new(),
            error: None,
            retryable: None,
            outputs,
            record_key: None,
            published: None,
        }
    }

    /// Every metric a line declares has a value, every dimension a string (EMF's own rules).
    fn assert_valid(line: &Value) {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(line["_aws"]["Timestamp"], 60_000);
        for d in directive["Dimensions"][0].as_array().unwrap() {
            assert!(line[d.as_str().unwrap()].is_string(), "dimension {d} in {line}");
        }
        for m in directive["Metrics"].as_array().unwrap() {
            assert!(line[m["Name"].as_str().unwrap()].is_u64(), "metric {m} in {line}");
        }
    }

    #[test]
    fn a_backup_gives_a_run_line_and_one_per_database() {
        let outputs = json!({"databases": [
            {"database": "shop", "status": "succeeded", "bytes": 100, "duration_ms": 5},
            {"database": "crm", "status": "failed", "duration_ms": 7},
        ]});
        let lines = lines(&record("db-backup", Status::Failed, outputs));
        assert_eq!(lines.len(), 3);
        lines.iter().for_each(assert_valid);
        assert_eq!((lines[0]["Success"].as_u64(), lines[0]["Bytes"].as_u64()), (Some(0), Some(100)));
        assert_eq!((lines[1]["Database"].as_str(), lines[1]["Success"].as_u64()), (Some("shop"), Some(1)));
        assert_eq!((lines[2]["Database"].as_str(), lines[2]["Success"].as_u64()), (Some("crm"), Some(0)));
    }

    #[test]
    fn other_jobs_say_what_they_moved_and_dry_runs_say_nothing() {
        let media = lines(&record("media-sync", Status::Succeeded, json!({"copied": 3, "copied_bytes": 30})));
        assert_eq!((media[0]["Objects"].as_u64(), media[0]["Bytes"].as_u64()), (Some(3), Some(30)));
        let rules = json!({"rules": [{"deleted": 4}, {"deleted": 6}]});
        let cleanup = lines(&record("notification-cleanup", Status::Succeeded, rules));
        assert_eq!(cleanup[0]["Rows"].as_u64(), Some(10));
        for line in media.iter().chain(&cleanup) {
            assert_valid(line);
        }
        let mut dry = record("retention-prune", Status::Succeeded, json!({}));
        dry.dry_run = true;
        assert!(lines(&dry).is_empty());
    }
}
