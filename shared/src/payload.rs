//! Invocation payloads: every function accepts an EventBridge scheduled event (run with the
//! defaults) or a JSON object of options. Unknown fields and wrong types are rejected before
//! any work, with the error naming the field.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// What started a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Trigger {
    /// An EventBridge schedule; `rule` is the rule's ARN.
    Schedule { rule: Option<String> },
    /// A payload of options (manual invoke, EventBridge target input, CLI).
    Manual,
}

/// Parses a payload into the job's options.
pub fn parse<O: DeserializeOwned + Default>(payload: &Value) -> Result<(O, Trigger)> {
    if payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let event: aws_lambda_events::eventbridge::EventBridgeEvent<Value> =
            serde_json::from_value(payload.clone())
                .map_err(|e| Error::Payload(format!("malformed EventBridge scheduled event: {e}")))?;
        return Ok((
            O::default(),
            Trigger::Schedule { rule: event.resources.and_then(|r| r.into_iter().next()) },
        ));
    }
    match payload {
        Value::Null => Ok((O::default(), Trigger::Manual)),
        Value::Object(_) => {
            let options = serde_path_to_error::deserialize(payload).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." {
                    Error::Payload(inner.to_string())
                } else {
                    Error::Payload(format!("{path}: {inner}"))
                }
            })?;
            Ok((options, Trigger::Manual))
        }
        other => Err(Error::Payload(format!(
            "expected a JSON object of options or a scheduled event, got {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                _ => "a boolean",
            }
        ))),
    }
}

/// Parses `90d`-style durations (`s`, `m` minutes, `h`, `d`, `w`) in options; zero is refused
/// (it would mean "everything").
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a duration like 90d, 12h or 6w"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{text:?}: the unit must be s, m, h, d or w")),
    };
    if n == 0 {
        return Err(format!("{text:?} would select every row; use a positive duration"));
    }
    Ok(Duration::from_secs(n.checked_mul(secs).ok_or_else(|| format!("{text:?} is too long"))?))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Opts {
        databases: Vec<String>,
        dry_run: bool,
    }

    #[test]
    fn scheduled_event_runs_with_defaults() {
        let event = json!({
            "version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-23T03:00:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:events:eu-west-1:123456789012:rule/nightly"], "detail": {}
        });
        let (opts, trigger) = parse::<Opts>(&event).unwrap();
        assert_eq!(opts, Opts::default());
        assert_eq!(
            trigger,
            Trigger::Schedule { rule: Some("arn:aws:events:eu-west-1:123456789012:rule/nightly".into()) }
        );
    }

    #[test]
    fn options_object_and_null_parse() {
        let (opts, _) = parse::<Opts>(&json!({"databases": ["a"], "dry_run": true})).unwrap();
        assert_eq!(opts, Opts { databases: vec!["a".into()], dry_run: true });
        assert_eq!(parse::<Opts>(&Value::Null).unwrap().0, Opts::default());
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse::<Opts>(&json!({"databse": ["a"]})).unwrap_err().to_string();
        assert!(err.contains("databse"), "{err}");
        let err = parse::<Opts>(&json!({"dry_run": "yes"})).unwrap_err().to_string();
        assert!(err.contains("dry_run"), "{err}");
        let err = parse::<Opts>(&json!({"databases": [1]})).unwrap_err().to_string();
        assert!(err.contains("databases[0]"), "{err}");
        assert!(parse::<Opts>(&json!([1])).is_err());
    }
}

/// Property tests: no payload, however hostile, panics a parser or a check; each is refused as a
/// payload error or accepted.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;
    use crate::backup::BackupOptions;
    use crate::cleanup::CleanupOptions;
    use crate::media::MediaSyncOptions;
    use crate::restore::VerifyOptions;
    use crate::retention::RetentionOptions;

    /// Field names the options have, and others.
    const KEYS: &[&str] = &[
        "databases",
        "compression",
        "compression_level",
        "engine",
        "no_fallback",
        "layout",
        "jobs",
        "no_owner",
        "split_mb",
        "lock_timeout_s",
        "include_tables",
        "exclude_tables",
        "schema_only",
        "dry_run",
        "tag",
        "rules",
        "table",
        "timestamp_column",
        "older_than",
        "filter",
        "column",
        "op",
        "value",
        "batch_size",
        "max_rows",
        "pause_ms",
        "lock_timeout_ms",
        "statement_timeout_ms",
        "database",
        "key",
        "keep",
        "latest",
        "keep_last",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "keep_within",
        "detail-type",
        "resources",
        "prefix",
        "mode",
        "unknown",
        "",
    ];

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
            prop::sample::select(vec![
                "90d",
                "0d",
                "18446744073709551615w",
                "zstd",
                "gzip",
                "pg_dump",
                "*",
                "public.t",
                "\"",
                "a\u{0}b",
                "-1",
                "Scheduled Event",
                "="
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(
                    |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())
                ),
            ]
        })
    }

    fn refused_as_payload<O: serde::de::DeserializeOwned + Default>(payload: &Value) -> Option<O> {
        match parse::<O>(payload) {
            Ok((options, _)) => Some(options),
            Err(Error::Payload(_)) => None,
            Err(e) => panic!("{payload} was refused as something else than a payload: {e}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn every_jobs_payload_parses_or_is_refused_without_panicking(payload in json()) {
            if let Some(o) = refused_as_payload::<BackupOptions>(&payload) {
                let _ = o.validate();
            }
            if let Some(o) = refused_as_payload::<CleanupOptions>(&payload) {
                for (i, rule) in o.rules.iter().flatten().enumerate() {
                    let _ = crate::cleanup::rules::validate(rule, &format!("rules[{i}]"));
                }
            }
            let _ = refused_as_payload::<MediaSyncOptions>(&payload);
            let _ = refused_as_payload::<RetentionOptions>(&payload);
            let _ = refused_as_payload::<VerifyOptions>(&payload);
        }

        #[test]
        fn durations_parse_exactly_or_are_refused(n in any::<u64>(), unit in "[smhdwy]?", pad in " {0,2}") {
            let text = format!("{pad}{n}{unit}{pad}");
            let secs = match unit.as_str() { "s" => Some(1u64), "m" => Some(60), "h" => Some(3600),
                "d" => Some(86_400), "w" => Some(604_800), _ => None };
            match (parse_duration(&text), secs.and_then(|s| n.checked_mul(s)).filter(|_| n > 0)) {
                (Ok(d), Some(expected)) => prop_assert_eq!(d.as_secs(), expected),
                (Err(_), None) => {}
                (got, expected) => prop_assert!(false, "{text:?}: {got:?}, expected {expected:?}"),
            }
        }

        #[test]
        fn any_text_as_a_duration_never_panics(text in "\\PC{0,24}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn quoted_identifiers_keep_every_character_and_close(name in "\\PC{0,40}") {
            let q = crate::db::quote_ident(&name);
            prop_assert!(q.starts_with('"') && q.ends_with('"') && q.len() >= 2);
            let inner = &q[1..q.len() - 1];
            // every quote inside is doubled, so the identifier cannot end early
            prop_assert!(inner.replace("\"\"", "").find('"').is_none());
            prop_assert_eq!(inner.replace("\"\"", "\""), name);
        }
    }
}
