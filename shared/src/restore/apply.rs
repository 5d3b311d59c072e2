//! Replays a plain SQL dump into a database over tokio-postgres, as `psql -v ON_ERROR_STOP=1`
//! would: statements through the simple query protocol, COPY data through `COPY FROM STDIN`,
//! streamed, stopping at the first error with its line.

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio_postgres::Client;

use super::script::{Item, ScriptReader};
use crate::error::{Error, Result};

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApplyStats {
    pub statements: u64,
    pub copies: u64,
    pub copy_bytes: u64,
    /// Rows loaded by COPY (as the server counted them).
    pub copy_rows: u64,
    pub lines: u64,
}

impl ApplyStats {
    /// Adds another replay's counts (parts of one restore).
    pub fn add(&mut self, other: &ApplyStats) {
        self.statements += other.statements;
        self.copies += other.copies;
        self.copy_bytes += other.copy_bytes;
        self.copy_rows += other.copy_rows;
        self.lines += other.lines;
    }
}

/// Replays `dump` (named `source` in errors) into `client`'s database. With
/// `single_transaction`, nothing is kept unless everything succeeds.
pub async fn apply_plain<R: AsyncBufRead + Unpin>(
    client: &Client,
    source: &str,
    mut dump: R,
    single_transaction: bool,
) -> Result<ApplyStats> {
    let fail = |line: usize, reason: String| Error::Restore { dump: source.to_owned(), line, reason };
    let sql_err = |line: usize, e: tokio_postgres::Error| {
        let reason = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => crate::error::report(&e),
        };
        fail(line, reason)
    };
    if single_transaction {
        client.batch_execute("BEGIN").await.map_err(|e| sql_err(0, e))?;
    }
    let replayed = replay(client, &mut dump, &fail, &sql_err).await;
    if single_transaction {
        // On failure the transaction is rolled back, leaving the target as it was.
        let end = if replayed.is_ok() { "COMMIT" } else { "ROLLBACK" };
        client.batch_execute(end).await.map_err(|e| sql_err(0, e))?;
    }
    replayed
}

async fn replay<R: AsyncBufRead + Unpin>(
    conn: &Client,
    dump: &mut R,
    fail: &impl Fn(usize, String) -> Error,
    sql_err: &impl Fn(usize, tokio_postgres::Error) -> Error,
) -> Result<ApplyStats> {
    let mut reader = ScriptReader::new();
    let mut stats = ApplyStats::default();
    let mut items = Vec::new();
    let mut line = Vec::with_capacity(8 * 1024);
    let mut sink: Option<(std::pin::Pin<Box<tokio_postgres::CopyInSink<Bytes>>>, usize)> = None;
    loop {
        line.clear();
        let n = dump
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| fail(stats.lines as usize, format!("reading: {e}")))?;
        if n == 0 {
            reader.finish(&mut items).map_err(|e| fail(e.line, e.reason))?;
            break;
        }
        stats.lines += 1;
        reader.push_line(&line, &mut items).map_err(|e| fail(e.line, e.reason))?;
        for item in items.drain(..) {
            match item {
                Item::Statement { sql, line } => {
                    conn.batch_execute(&sql).await.map_err(|e| sql_err(line, e))?;
                    stats.statements += 1;
                }
                Item::CopyStart { sql, line } => {
                    let s = conn.copy_in::<_, Bytes>(sql.as_str()).await.map_err(|e| sql_err(line, e))?;
                    sink = Some((Box::pin(s), line));
                    stats.copies += 1;
                }
                Item::CopyData(rows) => {
                    let (s, at) = sink.as_mut().expect("data follows a COPY start");
                    stats.copy_bytes += rows.len() as u64;
                    s.send(Bytes::from(rows)).await.map_err(|e| sql_err(*at, e))?;
                }
                Item::CopyEnd { .. } => {
                    let (mut s, at) = sink.take().expect("end follows a COPY start");
                    stats.copy_rows += s.as_mut().finish().await.map_err(|e| sql_err(at, e))?;
                }
                Item::Connect { database, line } => {
                    return Err(fail(
                        line,
                        format!(
                            "the dump switches to database {database:?} (\\connect); restore it into one target database without --create"
                        ),
                    ));
                }
            }
        }
    }
    Ok(stats)
}
