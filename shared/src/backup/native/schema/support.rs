//! What the engine cannot write yet: found before anything is dumped, named in the error (or,
//! by the db-backup job, handed to pg_dump instead).

use super::*;

/// What the native engine cannot write in `client`'s database, by name (see [`refusal`]);
/// empty when it can dump all of it.
pub async fn unsupported(client: &Client, database: &str) -> Result<Vec<String>> {
    Reader::new(client, database).unsupported().await
}

/// The error for a database holding what the engine cannot write (`cannot`, from
/// [`unsupported`]), with what to do about it.
pub fn refusal(database: &str, cannot: &[String], advice: &str) -> Error {
    let more = if cannot.len() > 10 { format!(" and {} more", cannot.len() - 10) } else { String::new() };
    Error::Unsupported {
        database: database.to_owned(),
        reason: format!(
            "the native engine cannot dump {}{more}; {advice}",
            cannot[..cannot.len().min(10)].join(", ")
        ),
    }
}

impl Reader<'_> {
    /// What the engine cannot write: the server itself (below 14), or every object of a kind
    /// it cannot write yet, each by its identity.
    async fn unsupported(&self) -> Result<Vec<String>> {
        let version = self.server_version().await?;
        if version < 140_000 {
            return Ok(vec![format!("PostgreSQL below 14 (server_version_num {version})")]);
        }
        // Subscriptions hold a connection string (a password, often) and start replicating
        // where restored: left to pg_dump, which writes them disabled. Security labels need
        // their provider's module, which nothing here can load or test: left to pg_dump too.
        let sql = "select 'subscription ' || quote_ident(s.subname) from pg_subscription s
                     where s.subdbid = (select oid from pg_database where datname = current_database())
                   union all
                   select 'security label of ' || i.type || ' ' || i.identity
                     from pg_seclabel l, lateral pg_identify_object(l.classoid, l.objoid, l.objsubid) i
                   order by 1";
        Ok(self.query("unsupported objects", sql).await?.iter().map(|r| r.get(0)).collect())
    }

    /// Fails naming what the engine cannot write (checked again inside the snapshot: the
    /// preflight's look came before it).
    pub(super) async fn check_supported(&self) -> Result<()> {
        let cannot = self.unsupported().await?;
        if cannot.is_empty() {
            return Ok(());
        }
        Err(refusal(self.database, &cannot, "use engine pg_dump for this database"))
    }
}
