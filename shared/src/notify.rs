//! The `Notifier` port and its SNS adapter. Every outcome is published with a subject a person
//! can scan, a readable body for e-mail, the run record as JSON for machine subscribers
//! (`MessageStructure=json`), and `job`/`status`/`env` attributes to filter subscriptions on.

use async_trait::async_trait;
use aws_sdk_sns::error::DisplayErrorContext;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::error::{Error, Result};

/// One outcome message, rendered for every kind of subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// ASCII, at most 100 characters (SNS's limits for e-mail subjects).
    pub subject: String,
    /// Plain text for e-mail and chat.
    pub body: String,
    /// The run record, for SQS/Lambda/HTTP subscribers.
    pub record_json: String,
    /// Filterable attributes (`job`, `status`, `env`).
    pub attributes: Vec<(String, String)>,
}

impl Notification {
    /// The `MessageStructure=json` message: text for people, JSON for machines.
    pub fn structured_message(&self) -> String {
        serde_json::json!({
            "default": self.body,
            "email": self.body,
            "sms": self.subject,
            "email-json": self.record_json,
            "sqs": self.record_json,
            "lambda": self.record_json,
            "http": self.record_json,
            "https": self.record_json,
            "firehose": self.record_json,
        })
        .to_string()
    }
}

/// Makes a string a valid SNS subject: printable ASCII, no line breaks, ≤ 100 characters.
pub fn sanitize_subject(subject: &str) -> String {
    let clean: String =
        subject.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    if clean.len() <= 100 { clean } else { format!("{}...", &clean[..97]) }
}

/// The port outcomes are published through.
#[async_trait]
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// Publishes; returns the message id where the backend gives one.
    async fn publish(&self, n: &Notification) -> Result<Option<String>>;
}

/// Publishes to an SNS topic.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(sdk: &aws_config::SdkConfig, topic_arn: &str) -> Self {
        SnsNotifier { client: aws_sdk_sns::Client::new(sdk), topic_arn: topic_arn.to_owned() }
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn publish(&self, n: &Notification) -> Result<Option<String>> {
        let mut req = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(sanitize_subject(&n.subject))
            .message_structure("json")
            .message(n.structured_message());
        for (name, value) in &n.attributes {
            let attr = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| Error::Notify { topic: self.topic_arn.clone(), detail: e.to_string() })?;
            req = req.message_attributes(name, attr);
        }
        let out = req.send().await.map_err(|e| Error::Notify {
            topic: self.topic_arn.clone(),
            detail: DisplayErrorContext(&e).to_string(),
        })?;
        Ok(out.message_id)
    }
}

/// Used when no topic is configured (local runs): the outcome goes to the log only.
#[derive(Debug, Clone, Default)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn publish(&self, n: &Notification) -> Result<Option<String>> {
        tracing::info!(subject = %n.subject, "no BACKSTOP_SNS_TOPIC_ARN set; outcome not published");
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_ascii_and_short() {
        assert_eq!(sanitize_subject("a\nb é"), "a?b ?");
        let long = sanitize_subject(&"x".repeat(150));
        assert_eq!(long.len(), 100);
        assert!(long.ends_with("..."));
    }

    #[test]
    fn structured_message_has_a_default_and_json_for_machines() {
        let n = Notification {
            subject: "s".into(),
            body: "text".into(),
            record_json: r#"{"status":"succeeded"}"#.into(),
            attributes: vec![],
        };
        let v: serde_json::Value = serde_json::from_str(&n.structured_message()).unwrap();
        assert_eq!(v["default"], "text");
        assert_eq!(v["sqs"], r#"{"status":"succeeded"}"#);
    }
}
