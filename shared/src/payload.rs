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
