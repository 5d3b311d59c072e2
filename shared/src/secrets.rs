//! Database credentials: the `SecretSource` port, its Secrets Manager adapter, and the RDS
//! secret format. Values never reach logs, errors or messages: `Debug` redacts the password and
//! errors name only the secret and the field.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, SdkError};
use serde::Deserialize;

use crate::config::SecretEndpoint;
use crate::error::{Error, Result};

/// Where to connect and as whom.
#[derive(Clone, PartialEq, Eq)]
pub struct DbCredentials {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    /// The default database, if the secret or URL names one.
    pub dbname: Option<String>,
}

impl std::fmt::Debug for DbCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCredentials")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .finish()
    }
}

impl DbCredentials {
    /// `user@host:port`, safe to print.
    pub fn display_target(&self, database: &str) -> String {
        format!("{}@{}:{}/{database}", self.user, self.host, self.port)
    }

    /// Parses a `postgres://` URL (or key=value string) as libpq would.
    pub fn from_url(url: &str) -> Result<Self> {
        let cfg: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
            // The URL may hold a password, so only the parser's complaint is shown.
            Error::config("DATABASE_URL", format!("not a valid PostgreSQL URL: {e}"))
        })?;
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        let user = cfg
            .get_user()
            .map(str::to_owned)
            .or_else(|| std::env::var("USER").ok())
            .ok_or_else(|| Error::config("DATABASE_URL", "names no user"))?;
        Ok(DbCredentials {
            host,
            port: cfg.get_ports().first().copied().unwrap_or(5432),
            user,
            password: cfg.get_password().map(|p| String::from_utf8_lossy(p).into_owned()),
            dbname: cfg.get_dbname().map(str::to_owned),
        })
    }

    /// Parses the RDS secret JSON (`engine`, `host`, `port`, `username`, `password`, `dbname`);
    /// what it lacks comes from `endpoint` (a secret RDS manages for the master user holds only
    /// `username` and `password`).
    pub fn from_rds_secret(secret_id: &str, json: &str, endpoint: &SecretEndpoint) -> Result<Self> {
        #[derive(Deserialize)]
        struct RdsSecret {
            engine: Option<String>,
            host: Option<String>,
            port: Option<serde_json::Value>,
            username: Option<String>,
            password: Option<String>,
            dbname: Option<String>,
        }
        let bad = |reason: String| Error::Secret {
            secret_id: secret_id.to_owned(),
            reason,
            source: None,
            retryable: false,
        };
        // serde's message could quote part of the value, so it is not passed on.
        let s: RdsSecret = serde_json::from_str(json).map_err(|_| {
            bad("is not a JSON object of the RDS secret form (host, port, username, password)".into())
        })?;
        if let Some(engine) =
            s.engine.as_deref().filter(|e| !e.starts_with("postgres") && !e.contains("aurora-postgresql"))
        {
            return Err(bad(format!("engine is {engine:?}, not postgres")));
        }
        let missing = |field: &str| bad(format!("field {field:?} is missing or empty"));
        let port = match s.port {
            None => endpoint.port.unwrap_or(5432),
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| bad("field \"port\" is not a port number".into()))?,
            Some(serde_json::Value::String(p)) => {
                p.parse().map_err(|_| bad("field \"port\" is not a port number".into()))?
            }
            Some(_) => return Err(bad("field \"port\" is not a port number".into())),
        };
        Ok(DbCredentials {
            host: s.host.filter(|h| !h.is_empty()).or_else(|| endpoint.host.clone()).ok_or_else(|| {
                bad("field \"host\" is missing or empty, and BACKSTOP_DB_HOST is not set (a secret RDS manages holds only username and password)".into())
            })?,
            port,
            user: s.username.filter(|u| !u.is_empty()).ok_or_else(|| missing("username"))?,
            password: Some(s.password.ok_or_else(|| missing("password"))?),
            dbname: s.dbname.filter(|d| !d.is_empty()).or_else(|| endpoint.dbname.clone()),
        })
    }
}

/// The port for reading a secret's string value.
#[async_trait]
pub trait SecretSource: Send + Sync + std::fmt::Debug {
    async fn secret_string(&self, secret_id: &str) -> Result<String>;
}

/// AWS Secrets Manager.
#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SecretsManager { client: aws_sdk_secretsmanager::Client::new(sdk) }
    }
}

#[async_trait]
impl SecretSource for SecretsManager {
    async fn secret_string(&self, secret_id: &str) -> Result<String> {
        let out = self.client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
            let (reason, retryable) = match &e {
                SdkError::ServiceError(se) if se.err().is_resource_not_found_exception() => {
                    ("does not exist (or this role may not read it)".to_owned(), false)
                }
                SdkError::ServiceError(_) => {
                    (format!("could not be read: {}", DisplayErrorContext(&e)), false)
                }
                _ => (format!("could not be read: {}", DisplayErrorContext(&e)), true),
            };
            Error::Secret { secret_id: secret_id.to_owned(), reason, source: Some(Box::new(e)), retryable }
        })?;
        out.secret_string.ok_or_else(|| Error::Secret {
            secret_id: secret_id.to_owned(),
            reason: "has no string value (binary secrets are not supported)".into(),
            source: None,
            retryable: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[test]
    fn rds_secret_parses_and_debug_hides_the_password() {
        let c = DbCredentials::from_rds_secret(
            "prod/db",
            r#"{"engine":"postgres","host":"db.x","port":5433,"username":"app","password":"hunter2","dbname":"shop"}"#,
            &SecretEndpoint { host: Some("other".into()), port: Some(1), dbname: Some("other".into()) },
        )
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str(), c.dbname.as_deref()),
            ("db.x", 5433, "app", Some("shop"))
        );
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn an_rds_managed_secret_takes_its_endpoint_from_the_variables() {
        // What RDS stores for manage_master_user_password: no host, port or dbname.
        let json = r#"{"username":"postgres","password":"hunter2"}"#;
        let endpoint = SecretEndpoint {
            host: Some("db.abc.eu-central-1.rds.amazonaws.com".into()),
            port: Some(5433),
            dbname: None,
        };
        let c = DbCredentials::from_rds_secret("rds!db-1", json, &endpoint).unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str()),
            ("db.abc.eu-central-1.rds.amazonaws.com", 5433, "postgres")
        );
        let err = DbCredentials::from_rds_secret("rds!db-1", json, &SecretEndpoint::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("BACKSTOP_DB_HOST") && !err.contains("hunter2"), "{err}");
    }

    #[rstest]
    #[case(r#"{"host":"h","password":"hunter2"}"#, "username")]
    #[case(r#"{"host":"h","username":"u"}"#, "password")]
    #[case(r#"{"username":"u","password":"hunter2"}"#, "host")]
    #[case(r#"{"engine":"mysql","host":"h","username":"u","password":"hunter2"}"#, "mysql")]
    #[case(r#"{"host":"h","username":"u","password":"hunter2","port":"x"}"#, "port")]
    #[case("hunter2", "JSON")]
    fn bad_secrets_name_the_secret_and_field_but_not_values(#[case] json: &str, #[case] expected: &str) {
        let err = DbCredentials::from_rds_secret("prod/db", json, &SecretEndpoint::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("prod/db") && err.contains(expected), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn url_errors_do_not_echo_the_url() {
        let err = DbCredentials::from_url("postgres://u:hunter2@h:notaport/db").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let c = DbCredentials::from_url("postgres://u:pw@h:5433/db").unwrap();
        assert_eq!((c.port, c.dbname.as_deref(), c.password.as_deref()), (5433, Some("db"), Some("pw")));
    }
}
