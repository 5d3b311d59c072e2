//! The core's error type: one enum, each variant carrying its context and its cause, and knowing
//! whether a retry could help (Lambda's retry policy and the CLI's exit code both read it).

use std::fmt::Write as _;

/// A boxed cause from an adapter (an SDK error, an I/O error) kept for its chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in a Backstop job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The invocation payload (or CLI flags) did not describe valid options.
    #[error("invalid payload: {0}")]
    Payload(String),

    /// An environment variable or setting is missing or malformed.
    #[error("configuration {name}: {reason}")]
    Config { name: String, reason: String },

    /// The database secret could not be read or does not hold what a secret must.
    /// The message names the secret and the field, never a value.
    #[error("secret {secret_id}: {reason}")]
    Secret {
        secret_id: String,
        reason: String,
        #[source]
        source: Option<BoxError>,
        retryable: bool,
    },

    /// A PostgreSQL operation failed.
    #[error("database {target}: {context}")]
    Database {
        target: String,
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },

    /// The dump engine failed (pg_dump missing, too old, exited non-zero, truncated output).
    #[error("dump of {database}: {reason}")]
    Dump { database: String, reason: String },

    /// The database cannot be dumped this way until something changes (a pg_dump older than
    /// the server, a server below 14 for the native engine, an object kind it cannot write, a
    /// dependency cycle): retrying will not help.
    #[error("dump of {database}: {reason}")]
    Unsupported { database: String, reason: String },

    /// An object store operation failed.
    #[error("{op} {location}: {detail}")]
    Store {
        op: &'static str,
        location: String,
        detail: String,
        #[source]
        source: Option<BoxError>,
        retryable: bool,
        /// What kind of refusal it was: callers that decide (retention, media) match on this,
        /// never on the text.
        kind: StoreKind,
    },

    /// Publishing an outcome failed.
    #[error("publish to {topic}: {detail}")]
    Notify { topic: String, detail: String },

    /// A local I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The run stopped because the Lambda deadline was near; nothing half-done was kept.
    #[error("stopped {margin_s} s before the Lambda deadline: {during}")]
    Deadline { during: String, margin_s: u64 },

    /// Replaying a dump failed at a line of it.
    #[error("restore of {dump} stopped at line {line}: {reason}")]
    Restore { dump: String, line: usize, reason: String },

    /// A cleanup rule is invalid or names something that does not exist.
    #[error("rule {rule}: {reason}")]
    Rule { rule: String, reason: String },

    /// A safety guard refused to act (backups have stopped; the source looks misconfigured).
    #[error("{what}: {reason}")]
    Guard { what: String, reason: String },

    /// Several independent units failed (e.g. two of three databases); each keeps its own error.
    #[error("{} of {total} failed: {}", .errors.len(), join_errors(.errors))]
    Several { total: usize, errors: Vec<Error> },
}

/// The kinds of store failure that callers decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The object (or bucket) does not exist.
    NotFound,
    /// Credentials or policy refuse the operation (AccessDenied, an expired token).
    Denied,
    /// Object Lock (retention or legal hold) protects the object: the store is doing its job.
    Locked,
    /// The store asked to slow down (SlowDown, 503, 429).
    Throttled,
    /// A conditional request's precondition did not hold: the object changed meanwhile.
    PreconditionFailed,
    /// Anything else.
    Other,
}

impl StoreKind {
    /// Classifies an S3 error code (and message, where Object Lock hides behind AccessDenied)
    /// and HTTP status.
    pub fn classify(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> StoreKind {
        let locked = |t: &str| {
            let t = t.to_ascii_lowercase();
            t.contains("object lock")
                || t.contains("objectlock")
                || t.contains("legal hold")
                || t.contains("retention")
        };
        if code.is_some_and(locked) || message.is_some_and(locked) {
            return StoreKind::Locked;
        }
        match (code, status) {
            (Some("NoSuchKey" | "NoSuchBucket" | "NotFound" | "NoSuchUpload"), _) | (None, Some(404)) => {
                StoreKind::NotFound
            }
            (
                Some(
                    "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "InvalidToken"
                    | "AllAccessDisabled"
                    | "AccountProblem",
                ),
                _,
            )
            | (None, Some(401 | 403)) => StoreKind::Denied,
            (Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded"), _)
            | (_, Some(429 | 503)) => StoreKind::Throttled,
            (Some("PreconditionFailed"), _) | (_, Some(412)) => StoreKind::PreconditionFailed,
            _ => StoreKind::Other,
        }
    }
}

/// Result alias used throughout the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether running the same job again, unchanged, could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Payload(_)
            | Error::Config { .. }
            | Error::Rule { .. }
            | Error::Restore { .. }
            | Error::Guard { .. }
            | Error::Unsupported { .. } => false,
            Error::Secret { retryable, .. } | Error::Store { retryable, .. } => *retryable,
            Error::Database { source, .. } => source.as_db_error().is_none_or(|db| {
                // Connection-level failures and serialization/lock conflicts can pass; a
                // permission or syntax error will not.
                let class = &db.code().code()[..2];
                matches!(class, "08" | "40" | "53" | "55" | "57" | "58")
            }),
            Error::Dump { .. } | Error::Notify { .. } | Error::Io { .. } | Error::Deadline { .. } => true,
            Error::Several { errors, .. } => errors.iter().any(Error::is_retryable),
        }
    }

    /// Shorthand for a configuration error.
    pub fn config(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config { name: name.into(), reason: reason.into() }
    }

    /// Shorthand for a local I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// The kind of a store error (`None` for any other error).
    pub fn store_kind(&self) -> Option<StoreKind> {
        match self {
            Error::Store { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The error and its whole cause chain on one line, each cause said once.
    pub fn report(&self) -> String {
        report(self)
    }
}

/// Renders an error with its cause chain, skipping causes whose text the parent already holds
/// (tokio-postgres and the SDK often repeat themselves).
pub fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        cause = c.source();
    }
    out
}

fn join_errors(errors: &[Error]) -> String {
    errors.iter().map(Error::report).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_keeps_the_cause_chain_once() {
        let io = std::io::Error::other("disk full");
        let err = Error::io("writing part 3", io);
        assert_eq!(err.report(), "writing part 3: disk full");
    }

    #[test]
    fn payload_errors_are_not_retryable_but_dump_errors_are() {
        assert!(!Error::Payload("x".into()).is_retryable());
        assert!(Error::Dump { database: "d".into(), reason: "r".into() }.is_retryable());
        assert!(!Error::Unsupported { database: "d".into(), reason: "r".into() }.is_retryable());
    }
}
