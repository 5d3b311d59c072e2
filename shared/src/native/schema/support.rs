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
        let sql = format!(
            "select i.type || ' ' || i.identity from (
               select {PG_TYPE}::oid c, t.oid o from pg_type t where t.typtype in ('b', 'p')
                 and not exists (select 1 from pg_type a where a.typarray = t.oid)
               union all select {PG_TYPE}, r.rngtypid from pg_range r where r.rngcanonical <> 0
             ) x, lateral pg_identify_object(x.c, x.o, 0) i
             where x.o >= {FIRST_NORMAL_OID}
               and not exists (select 1 from pg_depend d where d.classid = x.c and d.objid = x.o and d.deptype in ('e', 'i'))
             order by 1"
        );
        Ok(self.query("unsupported objects", &sql).await?.iter().map(|r| r.get(0)).collect())
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
