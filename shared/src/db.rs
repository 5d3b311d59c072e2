//! PostgreSQL access shared by all jobs: credentials (cached across warm invocations and
//! refetched once when the server rejects them, so a rotated password works), connections, and
//! the preflight every job starts with.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{DbConfig, DbTls, SslMode};
use crate::error::{Error, Result};
use crate::iam_auth::IamAuth;
use crate::secrets::{DbCredentials, SecretSource};

/// How jobs get credentials and connections.
pub struct DbSource {
    origin: Origin,
    cache: Mutex<Option<DbCredentials>>,
    tls_mode: SslMode,
    connector: MakeRustlsConnect,
}

impl std::fmt::Debug for DbSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = match &self.origin {
            Origin::Url(url) => format!("Url({})", crate::config::redact_url(url)),
            Origin::Iam { base, .. } => format!("Iam({})", base.display_target("")),
            Origin::Secret { secret_id, .. } => format!("Secret({secret_id})"),
            Origin::Unset => "Unset".into(),
        };
        f.debug_struct("DbSource").field("origin", &origin).field("tls_mode", &self.tls_mode).finish()
    }
}

#[derive(Debug)]
enum Origin {
    /// Printed through [`crate::config::redact_url`] (see the `Debug` of `DbSource`).
    Url(String),
    Secret {
        secret_id: String,
        endpoint: crate::config::SecretEndpoint,
        source: Arc<dyn SecretSource>,
    },
    /// RDS IAM authentication: the URL's user and host, a fresh token per connection.
    Iam {
        /// Host, port, user and database, parsed once; the password is the token.
        base: DbCredentials,
        auth: IamAuth,
    },
    Unset,
}

impl DbSource {
    /// `secrets` is only used when the config names a secret, `iam` with IAM authentication.
    pub fn new(
        config: &DbConfig,
        tls: &DbTls,
        secrets: Option<Arc<dyn SecretSource>>,
        iam: Option<IamAuth>,
    ) -> Result<Self> {
        let mut tls_mode = tls.mode;
        let origin = match (config, secrets) {
            (DbConfig::Url(url), _) => Origin::Url(url.clone()),
            (DbConfig::Iam(url), _) => {
                let auth = iam.ok_or_else(|| {
                    Error::config(
                        "BACKSTOP_DB_IAM_URL",
                        "is set but no AWS settings were loaded to sign with",
                    )
                })?;
                // RDS takes IAM tokens over TLS only; a token sent in the clear could be replayed.
                tls_mode = match tls.mode {
                    SslMode::Default | SslMode::Require => SslMode::Require,
                    SslMode::VerifyFull => SslMode::VerifyFull,
                    SslMode::Disable | SslMode::Prefer => {
                        return Err(Error::config(
                            "BACKSTOP_DB_SSLMODE",
                            "RDS IAM authentication needs TLS: require or verify-full",
                        ));
                    }
                };
                Origin::Iam { base: DbCredentials::from_url(url)?, auth }
            }
            (DbConfig::Secret { secret_id, endpoint }, Some(source)) => {
                Origin::Secret { secret_id: secret_id.clone(), endpoint: endpoint.clone(), source }
            }
            (DbConfig::Secret { .. }, None) => {
                return Err(Error::config("BACKSTOP_DB_SECRET_ID", "is set but no secret source was built"));
            }
            (DbConfig::Unset, _) => Origin::Unset,
        };
        Ok(DbSource { origin, cache: Mutex::new(None), tls_mode, connector: crate::tls::connector(tls)? })
    }

    /// The credentials, from the cache unless `refresh`; with IAM authentication a token made
    /// now (valid 15 minutes for opening connections), never cached.
    pub async fn credentials(&self, refresh: bool) -> Result<DbCredentials> {
        let mut cache = self.cache.lock().await;
        if let (false, Some(c)) = (refresh, cache.as_ref()) {
            return Ok(c.clone());
        }
        let creds = match &self.origin {
            Origin::Url(url) => DbCredentials::from_url(url)?,
            Origin::Secret { secret_id, endpoint, source } => {
                DbCredentials::from_rds_secret(secret_id, &source.secret_string(secret_id).await?, endpoint)?
            }
            Origin::Iam { base, auth } => {
                let token = auth.token(&base.host, base.port, &base.user).await?;
                return Ok(DbCredentials { password: Some(token), ..base.clone() });
            }
            Origin::Unset => {
                return Err(Error::config(
                    "BACKSTOP_DB_SECRET_ID",
                    "no database configured: set BACKSTOP_DB_SECRET_ID (Secrets Manager) or DATABASE_URL",
                ));
            }
        };
        *cache = Some(creds.clone());
        Ok(creds)
    }

    /// The TLS mode connections use (pg_dump gets the same).
    pub fn tls_mode(&self) -> SslMode {
        self.tls_mode
    }

    /// Connects to `database` (the credentials' default when `None`). On an authentication
    /// failure the secret is read again once, for a password rotated since it was cached.
    pub async fn connect(&self, database: Option<&str>, app_name: &str) -> Result<(Client, DbCredentials)> {
        let creds = self.credentials(false).await?;
        match self.connect_to(&creds, database, app_name).await {
            Err(Error::Database { source, .. })
                if matches!(self.origin, Origin::Secret { .. }) && is_auth_failure(&source) =>
            {
                tracing::warn!("authentication failed with the cached secret; reading it again");
                let creds = self.credentials(true).await?;
                Ok((self.connect_to(&creds, database, app_name).await?, creds))
            }
            other => Ok((other?, creds)),
        }
    }
}

fn is_auth_failure(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
}

/// The database a job works on: the requested one, or the credentials' default.
pub fn database_name<'a>(creds: &'a DbCredentials, requested: Option<&'a str>) -> Result<&'a str> {
    requested.or(creds.dbname.as_deref()).ok_or_else(|| {
        Error::Payload(
            "no database named: pass `databases` or put `dbname` in the secret / DATABASE_URL".into(),
        )
    })
}

impl DbSource {
    /// Opens one connection with the configured TLS to any server (e.g. a restore target);
    /// its driver task runs until the client is dropped.
    pub async fn connect_to(
        &self,
        creds: &DbCredentials,
        database: Option<&str>,
        app_name: &str,
    ) -> Result<Client> {
        let dbname = database_name(creds, database)?;
        let mut cfg = tokio_postgres::Config::new();
        cfg.ssl_mode(match self.tls_mode.for_host(&creds.host) {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer | SslMode::Default => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        cfg.host(&creds.host)
            .port(creds.port)
            .user(&creds.user)
            .dbname(dbname)
            .application_name(app_name)
            .connect_timeout(Duration::from_secs(10))
            .keepalives_idle(Duration::from_secs(30));
        if let Some(pw) = &creds.password {
            cfg.password(pw);
        }
        let (client, connection) = cfg.connect(self.connector.clone()).await.map_err(|source| {
            Error::Database { target: creds.display_target(dbname), context: "connect".into(), source }
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection closed");
            }
        });
        Ok(client)
    }
}

/// What a job learns about a database before it starts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Preflight {
    pub server_version: String,
    pub server_version_num: i32,
    pub database_bytes: i64,
    pub tables: Vec<TableInfo>,
}

/// One table as the catalog estimates it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TableInfo {
    pub schema: String,
    pub name: String,
    /// `reltuples`; `None` where the table was never analyzed.
    pub rows_estimate: Option<i64>,
    pub bytes: i64,
    /// Rows dumped (native engine); `None` where the data was left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The table's content hash (native engine): see `native::RowHasher`. Independent of row
    /// order, so a restore in any order (parallel parts) compares equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// An extension configuration table's condition (`WHERE …`): `rows` and `content_hash`
    /// are of the rows it picks (the extension makes the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl Preflight {
    /// Reads version, size and the table list (ordinary and partitioned tables outside the
    /// system schemas). Table sizes come from the catalog (as of the last VACUUM/ANALYZE):
    /// the size functions would wait behind a migration's lock, before any lock timeout.
    pub async fn read(client: &Client, target: &str) -> Result<Self> {
        let db_err = |context: &str| {
            let context = context.to_owned();
            move |source| Error::Database { target: target.to_owned(), context, source }
        };
        let row = client
            .query_one(
                "select current_setting('server_version'), current_setting('server_version_num')::int, \
                 pg_database_size(current_database())",
                &[],
            )
            .await
            .map_err(db_err("preflight"))?;
        let tables = client
            .query(
                "select n.nspname, c.relname, \
                   case when c.reltuples < 0 then null else c.reltuples::bigint end, \
                   c.relpages::bigint * current_setting('block_size')::bigint \
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                 where c.relkind in ('r', 'p') and n.nspname <> 'information_schema' \
                   and n.nspname not like 'pg\\_%' \
                 order by 1, 2",
                &[],
            )
            .await
            .map_err(db_err("list tables"))?
            .into_iter()
            .map(|r| TableInfo {
                schema: r.get(0),
                name: r.get(1),
                rows_estimate: r.get(2),
                bytes: r.get(3),
                rows: None,
                content_hash: None,
                filter: None,
            })
            .collect();
        Ok(Preflight {
            server_version: row.get(0),
            server_version_num: row.get(1),
            database_bytes: row.get(2),
            tables,
        })
    }

    /// The server's major version (15 for 15.4).
    pub fn server_major(&self) -> i32 {
        self.server_version_num / 10_000
    }
}

/// Quotes an identifier the way PostgreSQL's `quote_ident` does (always, for simplicity).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
