//! Configuration read from the environment in one place (what Terraform sets on each function),
//! split from construction: `Config::from_lookup` is pure and tested; `App::new` builds clients.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// An environment variable Backstop reads: which functions use it, and whether a deployment
/// must set it (the Terraform module does) or may (documented optional settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Variable {
    pub name: &'static str,
    /// The functions that read it; empty: all of them.
    pub functions: &'static [&'static str],
    /// The module sets it on those functions.
    pub set_by_module: bool,
    pub doc: &'static str,
}

const fn var(
    name: &'static str,
    functions: &'static [&'static str],
    set_by_module: bool,
    doc: &'static str,
) -> Variable {
    Variable { name, functions, set_by_module, doc }
}

const DB_JOBS: &[&str] = &["db-backup", "notification-cleanup"];

/// Every variable `Config::from_lookup`, `metrics` and `telemetry` read (a test keeps this
/// true), and what the Terraform module is tested against.
pub const VARIABLES: &[Variable] = &[
    var("BACKSTOP_BUCKET", &[], true, "The backup bucket (or file:///dir for the CLI)."),
    var("BACKSTOP_PREFIX", &[], true, "Key prefix of everything Backstop writes (default backstop/)."),
    var("BACKSTOP_ENV", &[], true, "Environment name in object names and messages (default production)."),
    var("BACKSTOP_SNS_TOPIC_ARN", &[], true, "Where outcomes are published."),
    var(
        "BACKSTOP_DB_SECRET_ID",
        DB_JOBS,
        false,
        "Secrets Manager secret with the database credentials (RDS format).",
    ),
    var(
        "BACKSTOP_DB_HOST",
        DB_JOBS,
        false,
        "The database host when the secret holds none (an RDS-managed master secret).",
    ),
    var("BACKSTOP_DB_PORT", DB_JOBS, false, "The port when the secret holds none (default 5432)."),
    var("BACKSTOP_DB_NAME", DB_JOBS, false, "The database when the secret names none."),
    var(
        "BACKSTOP_DB_IAM_URL",
        DB_JOBS,
        false,
        "postgres://user@host:port/db: RDS IAM authentication instead of a secret (the module's db_iam_auth).",
    ),
    var("DATABASE_URL", DB_JOBS, false, "A connection URL instead of a secret (the CLI; never in Lambda)."),
    var("BACKSTOP_DB_SSLMODE", DB_JOBS, true, "disable, prefer, require or verify-full."),
    var(
        "BACKSTOP_DB_SSLROOTCERT",
        DB_JOBS,
        false,
        "A PEM CA bundle for verify-full (e.g. the RDS global bundle).",
    ),
    var("BACKSTOP_PG_DUMP", &["db-backup"], false, "The pg_dump binary for the pg_dump engine and fallback."),
    var(
        "BACKSTOP_CLEANUP_RULES",
        &["notification-cleanup"],
        true,
        "The cleanup rules (JSON) when the payload has none.",
    ),
    var(
        "BACKSTOP_RETENTION",
        &["retention-prune"],
        true,
        "The keep-policy (JSON) when the payload has none.",
    ),
    var("BACKSTOP_MEDIA_SOURCE", &["media-sync"], true, "s3://bucket/prefix of the application's uploads."),
    var(
        "BACKSTOP_MEDIA_ENDPOINT_URL",
        &["media-sync"],
        false,
        "The media source's own S3 endpoint (MinIO, another provider).",
    ),
    var(
        "BACKSTOP_MEDIA_SECRET_ID",
        &["media-sync"],
        false,
        "A secret with access_key_id/secret_access_key for that endpoint.",
    ),
    var(
        "BACKSTOP_MEDIA_S3_FORCE_PATH_STYLE",
        &["media-sync"],
        false,
        "Path-style requests to the media source.",
    ),
    var(
        "BACKSTOP_MEDIA_S3_REQUEST_CHECKSUM",
        &["media-sync"],
        false,
        "when_supported or when_required, for the media source.",
    ),
    var("BACKSTOP_S3_FORCE_PATH_STYLE", &[], false, "Path-style requests (S3-compatible stores)."),
    var(
        "BACKSTOP_S3_REQUEST_CHECKSUM",
        &[],
        false,
        "when_required for stores that reject the SDK's default checksums.",
    ),
    var("BACKSTOP_S3_PART_CHECKSUM", &[], false, "Send each part's SHA-256 (default on)."),
    var("BACKSTOP_S3_PART_SIZE_MB", &[], false, "Multipart part size, 5 to 5120."),
    var("BACKSTOP_S3_EQUAL_PARTS", &[], false, "Every part the same size (R2)."),
    var("BACKSTOP_S3_UPLOAD_CONCURRENCY", &[], false, "Parts in flight per upload, 1 to 16."),
    var(
        "BACKSTOP_S3_MAX_ATTEMPTS",
        &[],
        false,
        "Attempts per S3 request, 1 to 20 (default 6), with backoff.",
    ),
    var("AWS_ENDPOINT_URL", &[], false, "An S3-compatible or local endpoint instead of AWS (tests, MinIO)."),
    var("AWS_ENDPOINT_URL_S3", &[], false, "The same for S3 only."),
    var("BACKSTOP_METRICS", &[], false, "emf or off; on by default in Lambda and ECS."),
    var("RUST_LOG", &[], true, "Log level (info)."),
];

/// Where backups, manifests and run records are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An S3 (or S3-compatible) bucket.
    S3 { bucket: String },
    /// A local directory (`file:///path`), the CLI's default.
    Local { root: PathBuf },
}

impl Destination {
    /// Parses `BACKSTOP_BUCKET`: `file:///abs/path`, `file://relative/path`, `s3://bucket` or a
    /// bare bucket name.
    pub fn parse(value: &str) -> Result<Self> {
        let value = value.trim();
        if let Some(path) = value.strip_prefix("file://") {
            if path.is_empty() {
                return Err(Error::config("BACKSTOP_BUCKET", "file:// needs a directory path"));
            }
            return Ok(Destination::Local { root: PathBuf::from(path) });
        }
        let bucket = value.strip_prefix("s3://").unwrap_or(value).trim_end_matches('/');
        validate_bucket(bucket)?;
        Ok(Destination::S3 { bucket: bucket.to_owned() })
    }

    /// How a key in this destination reads in messages (`s3://b/k`, `/path/k`).
    pub fn locate(&self, key: &str) -> String {
        match self {
            Destination::S3 { bucket } => format!("s3://{bucket}/{key}"),
            Destination::Local { root } => root.join(key).display().to_string(),
        }
    }
}

fn validate_bucket(bucket: &str) -> Result<()> {
    let ok_chars =
        bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if (3..=63).contains(&bucket.len()) && ok_chars {
        Ok(())
    } else {
        Err(Error::config(
            "BACKSTOP_BUCKET",
            format!(
                "{bucket:?} is not a bucket name (3-63 lowercase letters, digits, '-' or '.') nor a file:// path"
            ),
        ))
    }
}

/// Where media-sync reads the application's uploads from (`BACKSTOP_MEDIA_SOURCE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSource {
    /// `s3://bucket/prefix` on the default endpoint or `BACKSTOP_MEDIA_ENDPOINT_URL`.
    S3 { bucket: String, prefix: String },
    /// `file:///srv/media`: a directory on this machine (the CLI on a server).
    Local { root: PathBuf },
}

impl MediaSource {
    /// Parses `s3://bucket[/prefix]` or `file:///dir`.
    pub fn parse(value: &str) -> Result<Self> {
        const NAME: &str = "BACKSTOP_MEDIA_SOURCE";
        let value = value.trim();
        if let Some(path) = value.strip_prefix("file://") {
            if path.is_empty() {
                return Err(Error::config(NAME, "file:// needs a directory path"));
            }
            return Ok(MediaSource::Local { root: PathBuf::from(path) });
        }
        let Some(rest) = value.strip_prefix("s3://") else {
            return Err(Error::config(
                NAME,
                format!("{value:?} is neither s3://bucket/prefix nor file:///dir"),
            ));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        validate_bucket(bucket).map_err(|_| {
            Error::config(
                NAME,
                format!("{bucket:?} is not a bucket name (3-63 lowercase letters, digits, '-' or '.')"),
            )
        })?;
        Ok(MediaSource::S3 { bucket: bucket.to_owned(), prefix: normalize_prefix(prefix) })
    }

    /// How the source reads in messages.
    pub fn describe(&self) -> String {
        match self {
            MediaSource::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            MediaSource::Local { root } => format!("file://{}", root.display()),
        }
    }
}

/// media-sync's source and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaConfig {
    pub source: Option<MediaSource>,
    /// The source's own S3 endpoint (MinIO, another provider); the SDK's otherwise.
    pub endpoint_url: Option<String>,
    /// A Secrets Manager secret with `access_key_id` and `secret_access_key` for the source.
    pub secret_id: Option<String>,
    /// Path style and request checksums for the source, set apart from the backup bucket's.
    pub s3: S3Settings,
}

impl MediaConfig {
    /// Whether the source bucket is reached with the backup bucket's endpoint and credentials,
    /// so that objects can be copied server-side.
    pub fn shares_destination_account(&self) -> bool {
        matches!(self.source, Some(MediaSource::S3 { .. }))
            && self.endpoint_url.is_none()
            && self.secret_id.is_none()
    }
}

/// Where the database credentials come from. `Debug` hides a URL's password.
#[derive(Clone, PartialEq, Eq)]
pub enum DbConfig {
    /// A Secrets Manager secret holding the RDS secret JSON; `endpoint` fills in what the
    /// secret lacks (an RDS-managed master secret holds only `username` and `password`).
    Secret { secret_id: String, endpoint: SecretEndpoint },
    /// A `postgres://` URL (local runs). Kept whole; never logged.
    Url(String),
    /// `postgres://user@host:port/db` without a password: RDS IAM authentication, a token
    /// signed with the process's AWS credentials per connection (`iam_auth`).
    Iam(String),
    /// Neither was set: jobs that need a database fail with a message saying so.
    Unset,
}

/// Where the database is when its secret does not say (`BACKSTOP_DB_HOST`, `…_PORT`,
/// `…_NAME`; the Terraform module fills them in from the instance or cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretEndpoint {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbConfig::Secret { secret_id, endpoint } => {
                f.debug_struct("Secret").field("secret_id", secret_id).field("endpoint", endpoint).finish()
            }
            DbConfig::Url(url) => f.debug_tuple("Url").field(&redact_url(url)).finish(),
            DbConfig::Iam(url) => f.debug_tuple("Iam").field(&redact_url(url)).finish(),
            DbConfig::Unset => f.write_str("Unset"),
        }
    }
}

/// A connection string with its password replaced by `***` (URL and key=value forms), for
/// anything that prints it.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) =
            rest.split_once(['/', '?']).map_or((rest, ""), |(a, _)| (a, &rest[a.len()..]));
        let redacted = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => authority.to_owned(),
            },
            None => authority.to_owned(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let query: Vec<String> =
                    query
                        .split('&')
                        .map(|kv| {
                            if kv.starts_with("password=") {
                                "password=***".to_owned()
                            } else {
                                kv.to_owned()
                            }
                        })
                        .collect();
                format!("{path}?{}", query.join("&"))
            }
            None => tail.to_owned(),
        };
        return format!("{scheme}://{redacted}{tail}");
    }
    url.split_whitespace()
        .map(|kv| if kv.starts_with("password=") { "password=***".to_owned() } else { kv.to_owned() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// libpq's `sslmode` values Backstop supports, and the default when none is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
    /// Unset: `require` for a server over the network (an RDS endpoint: `prefer` would let an
    /// attacker on the path downgrade the connection to plain text), `prefer` on loopback or a
    /// Unix socket.
    Default,
}

impl SslMode {
    /// The mode for a connection to `host`: [`SslMode::Default`] resolved, the others as set.
    pub fn for_host(self, host: &str) -> SslMode {
        let local = host.starts_with('/')
            || host.eq_ignore_ascii_case("localhost")
            || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        match self {
            SslMode::Default if local => SslMode::Prefer,
            SslMode::Default => SslMode::Require,
            other => other,
        }
    }

    /// The value libpq (and so pg_dump) takes in `PGSSLMODE` for a connection to `host`.
    pub fn as_libpq(self, host: &str) -> &'static str {
        match self.for_host(host) {
            SslMode::Disable => "disable",
            SslMode::Prefer | SslMode::Default => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// TLS to PostgreSQL (`BACKSTOP_DB_SSLMODE`, `BACKSTOP_DB_SSLROOTCERT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbTls {
    pub mode: SslMode,
    /// PEM bundle of the CAs to trust with `verify-full`; the system roots when unset.
    pub root_cert: Option<PathBuf>,
}

/// The SDK's request checksum behaviour, for stores that reject the default checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestChecksum {
    WhenSupported,
    WhenRequired,
}

/// S3 tuning: what S3-compatible stores need differently from AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Path-style addressing (`endpoint/bucket/key`): MinIO and most local endpoints need it.
    pub force_path_style: bool,
    /// The SDK's request checksum mode (`BACKSTOP_S3_REQUEST_CHECKSUM`).
    pub request_checksum: RequestChecksum,
    /// Send a SHA-256 checksum with every part so the store verifies what it received.
    pub part_checksum: bool,
    /// First (and, with `equal_parts`, every) multipart part size in bytes.
    pub part_size: usize,
    /// Keep all parts the same size (Cloudflare R2 requires it); the size is then chosen up
    /// front from the database size so that the object fits in 10,000 parts.
    pub equal_parts: bool,
    /// Parts uploaded at once. Memory is about `(upload_concurrency + 1) × part_size`.
    pub upload_concurrency: usize,
    /// Attempts per request (the SDK's standard retries, with backoff): a backup is a batch job
    /// that had better wait out a SlowDown storm than fail, so more than the SDK's 3.
    pub max_attempts: u32,
}

/// S3's smallest allowed part (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            force_path_style: false,
            request_checksum: RequestChecksum::WhenSupported,
            part_checksum: true,
            part_size: 8 * 1024 * 1024,
            equal_parts: false,
            upload_concurrency: 2,
            max_attempts: 6,
        }
    }
}

/// Everything a Backstop function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub destination: Destination,
    /// Key prefix, empty or ending in `/`.
    pub prefix: String,
    /// Label used in object names and messages (`production`, `staging`).
    pub env: String,
    pub db: DbConfig,
    pub db_tls: DbTls,
    pub sns_topic_arn: Option<String>,
    pub s3: S3Settings,
    /// The `pg_dump` binary for the `pg_dump` engine.
    pub pg_dump: PathBuf,
    /// Default notification-cleanup rules (JSON), from `BACKSTOP_CLEANUP_RULES`.
    pub cleanup_rules: Option<String>,
    /// Default retention-prune options (JSON), from `BACKSTOP_RETENTION`.
    pub retention: Option<String>,
    pub media: MediaConfig,
}

impl Config {
    /// Reads the process environment. `default_destination` is used when `BACKSTOP_BUCKET` is
    /// unset (the CLI passes a local directory; the functions pass `None`, making it required).
    /// Whether any AWS service is configured: an S3 destination or media source, a topic, a
    /// secret.
    pub fn needs_aws(&self) -> bool {
        matches!(self.destination, Destination::S3 { .. })
            || self.sns_topic_arn.is_some()
            || matches!(self.db, DbConfig::Secret { .. } | DbConfig::Iam(_))
            || matches!(self.media.source, Some(MediaSource::S3 { .. }))
            || self.media.secret_id.is_some()
    }

    pub fn from_env(default_destination: Option<Destination>) -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok(), default_destination)
    }

    /// Reads configuration through `lookup`, so tests can pass fixed values.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        default_destination: Option<Destination>,
    ) -> Result<Self> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let destination = match (get("BACKSTOP_BUCKET"), default_destination) {
            (Some(v), _) => Destination::parse(&v)?,
            (None, Some(d)) => d,
            (None, None) => {
                return Err(Error::config("BACKSTOP_BUCKET", "is required (a bucket name)"));
            }
        };
        let prefix = normalize_prefix(&get("BACKSTOP_PREFIX").unwrap_or_else(|| "backstop/".into()));
        let env = get("BACKSTOP_ENV").unwrap_or_else(|| "production".into());
        if !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Error::config(
                "BACKSTOP_ENV",
                format!("{env:?} must be letters, digits, '-' or '_' (it is part of object names)"),
            ));
        }
        let db = match (get("BACKSTOP_DB_SECRET_ID"), get("BACKSTOP_DB_IAM_URL"), get("DATABASE_URL")) {
            (Some(_), Some(_), _) => {
                return Err(Error::config(
                    "BACKSTOP_DB_IAM_URL",
                    "is set beside BACKSTOP_DB_SECRET_ID: use a secret (password) or IAM authentication, not both",
                ));
            }
            (Some(secret_id), None, _) => {
                let port = match get("BACKSTOP_DB_PORT") {
                    None => None,
                    Some(p) => Some(p.trim().parse::<u16>().map_err(|_| {
                        Error::config("BACKSTOP_DB_PORT", format!("{p:?} is not a port number"))
                    })?),
                };
                let endpoint = SecretEndpoint {
                    host: get("BACKSTOP_DB_HOST").filter(|h| !h.is_empty()),
                    port,
                    dbname: get("BACKSTOP_DB_NAME").filter(|d| !d.is_empty()),
                };
                DbConfig::Secret { secret_id, endpoint }
            }
            (None, Some(url), _) => {
                let creds = crate::secrets::DbCredentials::from_url(&url).map_err(|_| {
                    Error::config("BACKSTOP_DB_IAM_URL", "is not a postgres://user@host:port/db URL")
                })?;
                if creds.password.is_some() {
                    return Err(Error::config(
                        "BACKSTOP_DB_IAM_URL",
                        "holds a password; IAM authentication signs a token instead",
                    ));
                }
                DbConfig::Iam(url)
            }
            (None, None, Some(url)) => DbConfig::Url(url),
            (None, None, None) => DbConfig::Unset,
        };

        // A custom endpoint (moto, MinIO, R2, …) almost always wants path style.
        let custom_endpoint = get("AWS_ENDPOINT_URL_S3").or_else(|| get("AWS_ENDPOINT_URL")).is_some();
        let defaults = S3Settings::default();
        let s3 = S3Settings {
            force_path_style: parse_bool(&get, "BACKSTOP_S3_FORCE_PATH_STYLE")?.unwrap_or(custom_endpoint),
            request_checksum: parse_checksum(&get, "BACKSTOP_S3_REQUEST_CHECKSUM")?,
            part_checksum: parse_bool(&get, "BACKSTOP_S3_PART_CHECKSUM")?.unwrap_or(defaults.part_checksum),
            part_size: match get("BACKSTOP_S3_PART_SIZE_MB") {
                None => defaults.part_size,
                Some(v) => {
                    let mb: usize = v.parse().map_err(|_| {
                        Error::config("BACKSTOP_S3_PART_SIZE_MB", format!("{v:?} is not a whole number"))
                    })?;
                    if !(5..=5120).contains(&mb) {
                        return Err(Error::config(
                            "BACKSTOP_S3_PART_SIZE_MB",
                            "must be 5 to 5120 (S3's limits)",
                        ));
                    }
                    mb * 1024 * 1024
                }
            },
            equal_parts: parse_bool(&get, "BACKSTOP_S3_EQUAL_PARTS")?.unwrap_or(defaults.equal_parts),
            upload_concurrency: match get("BACKSTOP_S3_UPLOAD_CONCURRENCY") {
                None => defaults.upload_concurrency,
                Some(v) => v.parse().ok().filter(|n| (1..=16).contains(n)).ok_or_else(|| {
                    Error::config("BACKSTOP_S3_UPLOAD_CONCURRENCY", format!("{v:?} is not 1 to 16"))
                })?,
            },
            max_attempts: match get("BACKSTOP_S3_MAX_ATTEMPTS") {
                None => defaults.max_attempts,
                Some(v) => v.parse().ok().filter(|n| (1..=20).contains(n)).ok_or_else(|| {
                    Error::config("BACKSTOP_S3_MAX_ATTEMPTS", format!("{v:?} is not 1 to 20"))
                })?,
            },
        };

        let db_tls = DbTls {
            mode: match get("BACKSTOP_DB_SSLMODE").as_deref() {
                None => SslMode::Default,
                Some("prefer") => SslMode::Prefer,
                Some("disable") => SslMode::Disable,
                Some("require") => SslMode::Require,
                Some("verify-full") => SslMode::VerifyFull,
                Some(other) => {
                    return Err(Error::config(
                        "BACKSTOP_DB_SSLMODE",
                        format!("{other:?} is not disable, prefer, require or verify-full"),
                    ));
                }
            },
            root_cert: get("BACKSTOP_DB_SSLROOTCERT").map(PathBuf::from),
        };

        let media_endpoint = get("BACKSTOP_MEDIA_ENDPOINT_URL");
        let media = MediaConfig {
            source: get("BACKSTOP_MEDIA_SOURCE").map(|v| MediaSource::parse(&v)).transpose()?,
            s3: S3Settings {
                force_path_style: parse_bool(&get, "BACKSTOP_MEDIA_S3_FORCE_PATH_STYLE")?
                    .unwrap_or(media_endpoint.is_some() || custom_endpoint),
                request_checksum: parse_checksum(&get, "BACKSTOP_MEDIA_S3_REQUEST_CHECKSUM")?,
                ..s3.clone()
            },
            endpoint_url: media_endpoint,
            secret_id: get("BACKSTOP_MEDIA_SECRET_ID"),
        };

        Ok(Config {
            media,
            destination,
            prefix,
            env,
            db,
            db_tls,
            sns_topic_arn: get("BACKSTOP_SNS_TOPIC_ARN"),
            s3,
            pg_dump: get("BACKSTOP_PG_DUMP").map(PathBuf::from).unwrap_or_else(|| "pg_dump".into()),
            cleanup_rules: get("BACKSTOP_CLEANUP_RULES"),
            retention: get("BACKSTOP_RETENTION"),
        })
    }
}

fn parse_bool(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<bool>> {
    match get(name).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
        Some("0" | "false" | "no" | "off") => Ok(Some(false)),
        Some(other) => Err(Error::config(name, format!("{other:?} is not true or false"))),
    }
}

fn parse_checksum(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<RequestChecksum> {
    match get(name).as_deref() {
        None | Some("when_supported") => Ok(RequestChecksum::WhenSupported),
        Some("when_required") => Ok(RequestChecksum::WhenRequired),
        Some(other) => Err(Error::config(name, format!("{other:?} is not when_supported or when_required"))),
    }
}

fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() { String::new() } else { format!("{trimmed}/") }
}

#[cfg(test)]
mod tls_default_tests {
    use super::SslMode;

    #[test]
    fn unset_sslmode_requires_tls_except_on_loopback() {
        for host in ["db.abc123.eu-west-1.rds.amazonaws.com", "10.0.3.7", "db.internal"] {
            assert_eq!(SslMode::Default.for_host(host), SslMode::Require, "{host}");
        }
        for host in ["127.0.0.1", "::1", "localhost", "/var/run/postgresql"] {
            assert_eq!(SslMode::Default.for_host(host), SslMode::Prefer, "{host}");
        }
        assert_eq!(SslMode::Prefer.for_host("db.internal"), SslMode::Prefer);
        assert_eq!(SslMode::Default.as_libpq("db.internal"), "require");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rstest::rstest;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned(), None)
    }

    #[test]
    fn defaults_apply_when_only_the_bucket_is_set() {
        let c = config(&[("BACKSTOP_BUCKET", "my-backups")]).unwrap();
        assert_eq!(c.destination, Destination::S3 { bucket: "my-backups".into() });
        assert_eq!(c.prefix, "backstop/");
        assert_eq!(c.env, "production");
        assert_eq!(c.db, DbConfig::Unset);
        assert!(!c.s3.force_path_style);
        assert_eq!(c.s3.part_size, 8 * 1024 * 1024);
    }

    #[test]
    fn bucket_is_required_without_a_default() {
        let err = config(&[]).unwrap_err();
        assert!(err.to_string().contains("BACKSTOP_BUCKET"), "{err}");
    }

    #[rstest]
    #[case("file:///var/backups", Destination::Local { root: "/var/backups".into() })]
    #[case("file://./backups", Destination::Local { root: "./backups".into() })]
    #[case("s3://b-1.x/", Destination::S3 { bucket: "b-1.x".into() })]
    fn destinations_parse(#[case] input: &str, #[case] expected: Destination) {
        assert_eq!(Destination::parse(input).unwrap(), expected);
    }

    #[rstest]
    #[case("Upper")]
    #[case("ab")]
    #[case("has space")]
    fn bad_bucket_names_are_named_in_the_error(#[case] input: &str) {
        let err = Destination::parse(input).unwrap_err().to_string();
        assert!(err.contains(input), "{err}");
    }

    #[rstest]
    #[case("", "")]
    #[case("/", "")]
    #[case("a", "a/")]
    #[case("/a/b/", "a/b/")]
    fn prefixes_normalize(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(normalize_prefix(input), expected);
    }

    #[test]
    fn secret_wins_over_url_and_endpoint_implies_path_style() {
        let c = config(&[
            ("BACKSTOP_BUCKET", "b-1"),
            ("BACKSTOP_DB_SECRET_ID", "prod/db"),
            ("DATABASE_URL", "postgres://x"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("BACKSTOP_S3_REQUEST_CHECKSUM", "when_required"),
            ("BACKSTOP_S3_PART_SIZE_MB", "16"),
        ])
        .unwrap();
        assert_eq!(c.db, DbConfig::Secret { secret_id: "prod/db".into(), endpoint: Default::default() });
        assert!(c.s3.force_path_style);
        assert_eq!(c.s3.request_checksum, RequestChecksum::WhenRequired);
        assert_eq!(c.s3.part_size, 16 * 1024 * 1024);
    }

    #[test]
    fn a_secrets_endpoint_comes_from_the_variables_and_a_bad_port_is_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let c = Config::from_lookup(
            env(&[
                ("BACKSTOP_BUCKET", "backups"),
                ("BACKSTOP_DB_SECRET_ID", "rds!db-1"),
                ("BACKSTOP_DB_HOST", "db.x"),
                ("BACKSTOP_DB_PORT", "5433"),
                ("BACKSTOP_DB_NAME", "shop"),
            ]),
            None,
        )
        .unwrap();
        let want =
            SecretEndpoint { host: Some("db.x".into()), port: Some(5433), dbname: Some("shop".into()) };
        assert_eq!(c.db, DbConfig::Secret { secret_id: "rds!db-1".into(), endpoint: want });
        let err = Config::from_lookup(
            env(&[("BACKSTOP_BUCKET", "backups"), ("BACKSTOP_DB_SECRET_ID", "s"), ("BACKSTOP_DB_PORT", "x")]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("BACKSTOP_DB_PORT"), "{err}");
    }

    #[rstest]
    #[case("BACKSTOP_S3_PART_SIZE_MB", "4")]
    #[case("BACKSTOP_S3_EQUAL_PARTS", "maybe")]
    #[case("BACKSTOP_S3_MAX_ATTEMPTS", "0")]
    #[case("BACKSTOP_S3_REQUEST_CHECKSUM", "never")]
    #[case("BACKSTOP_ENV", "prod env")]
    #[case("BACKSTOP_DB_SSLMODE", "verify-ca")]
    #[case("BACKSTOP_MEDIA_SOURCE", "/srv/media")]
    #[case("BACKSTOP_MEDIA_SOURCE", "s3://Bad_Bucket/x")]
    #[case("BACKSTOP_MEDIA_S3_REQUEST_CHECKSUM", "sometimes")]
    fn bad_values_name_the_variable(#[case] name: &str, #[case] value: &str) {
        let err = config(&[("BACKSTOP_BUCKET", "b-1"), (name, value)]).unwrap_err().to_string();
        assert!(err.contains(name), "{err}");
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_output_never_holds_the_password() {
        for url in [
            "postgres://app:s3cr3t-pw@db.internal:5432/shop",
            "postgres://app:s3cr3t-pw@db.internal/shop?sslmode=require",
            "postgres://app@db.internal/shop?password=s3cr3t-pw&sslmode=require",
            "host=db user=app password=s3cr3t-pw dbname=shop",
        ] {
            let c = Config {
                db: DbConfig::Url(url.into()),
                ..Config::from_lookup(|_| None, Some(Destination::Local { root: ".".into() })).unwrap()
            };
            let shown = format!("{c:?}");
            assert!(!shown.contains("s3cr3t-pw"), "{shown}");
            assert!(shown.contains("db"), "{shown}");
        }
        assert_eq!(redact_url("postgres://u:p@h:1/d"), "postgres://u:***@h:1/d");
    }
}

#[cfg(test)]
mod media_tests {
    use super::*;

    #[test]
    fn media_sources_parse_and_decide_server_side_copies() {
        assert_eq!(
            MediaSource::parse("s3://uploads/media").unwrap(),
            MediaSource::S3 { bucket: "uploads".into(), prefix: "media/".into() }
        );
        assert_eq!(
            MediaSource::parse("s3://uploads").unwrap(),
            MediaSource::S3 { bucket: "uploads".into(), prefix: "".into() }
        );
        assert_eq!(
            MediaSource::parse("file:///srv/media").unwrap(),
            MediaSource::Local { root: "/srv/media".into() }
        );
        let mut m =
            MediaConfig { source: Some(MediaSource::parse("s3://uploads").unwrap()), ..Default::default() };
        assert!(m.shares_destination_account());
        m.endpoint_url = Some("http://127.0.0.1:9000".into());
        assert!(!m.shares_destination_account());
        m = MediaConfig { source: Some(MediaSource::parse("file:///x").unwrap()), ..Default::default() };
        assert!(!m.shares_destination_account());
    }

    /// The names `from_lookup`, `metrics` and `telemetry` read, from their source text.
    fn names_read() -> std::collections::BTreeSet<String> {
        let sources = [include_str!("config.rs"), include_str!("metrics.rs"), include_str!("telemetry.rs")];
        let mut names = std::collections::BTreeSet::new();
        for text in sources {
            // Only the code: this module's tests name variables too.
            let code = text.split("#[cfg(test)]").next().unwrap_or(text);
            for opener in
                ["get(\"", "&get, \"", "env::var(\"", "env::var_os(\"", "EnvFilter::try_from_default_env("]
            {
                for (at, _) in code.match_indices(opener) {
                    let rest = &code[at + opener.len()..];
                    if opener.starts_with("EnvFilter") {
                        names.insert("RUST_LOG".to_owned());
                        continue;
                    }
                    let name: String = rest.chars().take_while(|c| *c != '"').collect();
                    if name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
                        names.insert(name);
                    }
                }
            }
        }
        // The platform's own, which say where the process runs; nobody sets them.
        names.remove("AWS_LAMBDA_FUNCTION_NAME");
        names.remove("ECS_CONTAINER_METADATA_URI_V4");
        names
    }

    #[test]
    fn the_variable_table_is_every_variable_the_code_reads() {
        let read = names_read();
        let table: std::collections::BTreeSet<String> = VARIABLES.iter().map(|v| v.name.to_owned()).collect();
        assert!(read.len() > 20, "the scan found the reads: {read:?}");
        assert_eq!(read, table, "VARIABLES and the code disagree");
    }
}
