//! Replays a plain SQL dump into a database over tokio-postgres, as `psql -v ON_ERROR_STOP=1`
//! would: statements through the simple query protocol, COPY data through `COPY FROM STDIN`,
//! streamed, stopping at the first error with its line.

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio_postgres::Client;

use super::script::{Item, ScriptReader};
use super::select::{TableSelection, Verdict};
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
    /// `COPY` blocks left out by `--tables`.
    pub skipped_copies: u64,
    /// Foreign keys left out by `--tables`, each with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_constraints: Vec<String>,
}

impl ApplyStats {
    /// Adds another replay's counts (parts of one restore).
    pub fn add(&mut self, other: &ApplyStats) {
        self.statements += other.statements;
        self.copies += other.copies;
        self.copy_bytes += other.copy_bytes;
        self.copy_rows += other.copy_rows;
        self.lines += other.lines;
        self.skipped_copies += other.skipped_copies;
        self.skipped_constraints.extend(other.skipped_constraints.iter().cloned());
    }
}

/// Replays `dump` (named `source` in errors) into `client`'s database. With
/// `single_transaction`, nothing is kept unless everything succeeds.
pub async fn apply_plain<R: AsyncBufRead + Unpin>(
    client: &Client,
    source: &str,
    dump: R,
    single_transaction: bool,
) -> Result<ApplyStats> {
    let replayed = apply_selected(client, source, dump, None, !single_transaction);
    if single_transaction {
        in_transaction(client, |_, e| sql_error(source, 0, e), replayed).await
    } else {
        replayed.await
    }
}

/// [`apply_plain`] without a transaction of its own, bringing back only the rows of the tables
/// `selection` names (and leaving out the foreign keys that would fail without the others).
/// `batched`: statements go to the server in [`Batch`]es (never inside a transaction).
pub async fn apply_selected<R: AsyncBufRead + Unpin>(
    client: &Client,
    source: &str,
    mut dump: R,
    selection: Option<&TableSelection>,
    batched: bool,
) -> Result<ApplyStats> {
    let fail = |line: usize, reason: String| Error::Restore { dump: source.to_owned(), line, reason };
    let sql_err = |line: usize, e: tokio_postgres::Error| sql_error(source, line, e);
    replay(client, &mut dump, selection, batched, &fail, &sql_err).await
}

/// Statements sent to the server together: one round trip and one commit for many (a backup of
/// many small tables is thousands of short statements; each data part starts with ten `SET`s).
/// The server runs a batch as one implicit transaction, so a failed batch leaves nothing; its
/// statements then run again one by one, and the error names its own statement and line (one
/// that may not run in a transaction block, like `CREATE INDEX CONCURRENTLY`, simply runs alone
/// then). Transaction control is never batched, and inside a transaction nothing is: a failed
/// batch would abort it.
pub(crate) struct Batch {
    enabled: bool,
    sql: String,
    /// Each statement's line and place in `sql`.
    parts: Vec<(usize, std::ops::Range<usize>)>,
}

/// Statements or bytes that make a batch full.
const BATCH_STATEMENTS: usize = 200;
const BATCH_BYTES: usize = 1 << 20;

impl Batch {
    pub(crate) fn new(enabled: bool) -> Self {
        Batch { enabled, sql: String::new(), parts: Vec::new() }
    }

    /// Adds `sql` (from `line`); runs what is due. Returns the statements run.
    pub(crate) async fn push(
        &mut self,
        conn: &Client,
        sql: String,
        line: usize,
        sql_err: &impl Fn(usize, tokio_postgres::Error) -> Error,
    ) -> Result<u64> {
        if !self.enabled || !batchable(&sql) {
            let done = self.flush(conn, sql_err).await?;
            conn.batch_execute(&sql).await.map_err(|e| sql_err(line, e))?;
            return Ok(done + 1);
        }
        let start = self.sql.len();
        self.sql.push_str(&sql);
        self.parts.push((line, start..self.sql.len()));
        self.sql.push('\n');
        if self.parts.len() >= BATCH_STATEMENTS || self.sql.len() >= BATCH_BYTES || changes_lexing(&sql) {
            return self.flush(conn, sql_err).await;
        }
        Ok(0)
    }

    /// Runs the statements held. Returns how many.
    pub(crate) async fn flush(
        &mut self,
        conn: &Client,
        sql_err: &impl Fn(usize, tokio_postgres::Error) -> Error,
    ) -> Result<u64> {
        let (sql, parts) = (std::mem::take(&mut self.sql), std::mem::take(&mut self.parts));
        match parts.len() {
            0 => return Ok(0),
            1 => conn.batch_execute(&sql).await.map_err(|e| sql_err(parts[0].0, e))?,
            _ => {
                if let Err(e) = conn.batch_execute(&sql).await {
                    tracing::debug!(error = %crate::error::report(&e), "a batch failed; its statements run one by one");
                    for (line, range) in &parts {
                        conn.batch_execute(&sql[range.clone()]).await.map_err(|e| sql_err(*line, e))?;
                    }
                }
            }
        }
        Ok(parts.len() as u64)
    }
}

/// A statement that changes how the server reads the text after it: the server converts and
/// parses a whole batch before running its first statement, so the batch ends with it.
/// (`client_encoding` UTF8 is what the connection already has.)
fn changes_lexing(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    (lower.contains("client_encoding") && !lower.contains("'utf8'"))
        || lower.contains("standard_conforming_strings")
        || lower.contains("backslash_quote")
}

/// A statement that can share a batch: complete (ends with `;`), not transaction control.
fn batchable(sql: &str) -> bool {
    let start = sql.lines().map(str::trim_start).find(|l| !l.is_empty() && !l.starts_with("--"));
    let first =
        start.unwrap_or_default().split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or_default();
    let control = ["begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release", "prepare"];
    sql.trim_end().ends_with(';') && !control.iter().any(|w| first.eq_ignore_ascii_case(w))
}

/// Runs `work` in one transaction on `client`: COMMIT when it succeeds, ROLLBACK when it
/// fails, leaving the database as it was. The work's own error is the one returned: a ROLLBACK
/// that fails too (the connection broke) commits nothing either, so it is only logged. `err`
/// maps a failed `begin` or `commit`.
pub(crate) async fn in_transaction<T>(
    client: &Client,
    err: impl Fn(&str, tokio_postgres::Error) -> Error,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    client.batch_execute("BEGIN").await.map_err(|e| err("begin", e))?;
    let outcome = work.await;
    match &outcome {
        Ok(_) => client.batch_execute("COMMIT").await.map_err(|e| err("commit", e))?,
        Err(_) => {
            if let Err(e) = client.batch_execute("ROLLBACK").await {
                tracing::warn!(error = %crate::error::report(&e), "rollback after a failed restore");
            }
        }
    }
    outcome
}

/// Every statement of `dump`, with the number of lines read; `None` when it holds anything
/// but statements (COPY data, `\connect`).
pub(crate) async fn statements<R: AsyncBufRead + Unpin>(
    source: &str,
    mut dump: R,
) -> Result<Option<(Vec<(String, usize)>, u64)>> {
    let fail = |line: usize, reason: String| Error::Restore { dump: source.to_owned(), line, reason };
    let (mut reader, mut items, mut out) = (ScriptReader::new(), Vec::new(), Vec::new());
    let (mut line, mut lines) = (Vec::new(), 0u64);
    loop {
        line.clear();
        let n = dump
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| fail(lines as usize, format!("reading: {e}")))?;
        if n == 0 {
            reader.finish(&mut items).map_err(|e| fail(e.line, e.reason))?;
        } else {
            lines += 1;
            reader.push_line(&line, &mut items).map_err(|e| fail(e.line, e.reason))?;
        }
        for item in items.drain(..) {
            match item {
                Item::Statement { sql, line } => out.push((sql, line)),
                _ => return Ok(None),
            }
        }
        if n == 0 {
            return Ok(Some((out, lines)));
        }
    }
}

/// A statement of `source` that failed at `line`, with the server's message.
pub(crate) fn sql_error(source: &str, line: usize, e: tokio_postgres::Error) -> Error {
    let reason = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => crate::error::report(&e),
    };
    Error::Restore { dump: source.to_owned(), line, reason }
}

async fn replay<R: AsyncBufRead + Unpin>(
    conn: &Client,
    dump: &mut R,
    selection: Option<&TableSelection>,
    batched: bool,
    fail: &impl Fn(usize, String) -> Error,
    sql_err: &impl Fn(usize, tokio_postgres::Error) -> Error,
) -> Result<ApplyStats> {
    let mut reader = ScriptReader::new();
    let mut stats = ApplyStats::default();
    let mut batch = Batch::new(batched);
    let mut items = Vec::new();
    let mut line = Vec::with_capacity(8 * 1024);
    let mut sink: Option<(std::pin::Pin<Box<tokio_postgres::CopyInSink<Bytes>>>, usize)> = None;
    // Inside the data of a COPY left out.
    let mut skipping = false;
    let judge = |sql: &str| selection.map_or(Verdict::Keep, |s| s.judge(sql));
    loop {
        line.clear();
        let n = dump
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| fail(stats.lines as usize, format!("reading: {e}")))?;
        if n == 0 {
            reader.finish(&mut items).map_err(|e| fail(e.line, e.reason))?;
            stats.statements += batch.flush(conn, sql_err).await?;
            break;
        }
        stats.lines += 1;
        reader.push_line(&line, &mut items).map_err(|e| fail(e.line, e.reason))?;
        for item in items.drain(..) {
            match item {
                Item::Statement { sql, line } => {
                    if !super::select::keep(selection, &sql, &mut stats.skipped_constraints) {
                        continue;
                    }
                    stats.statements += batch.push(conn, sql, line, sql_err).await?;
                }
                Item::CopyStart { sql, line } => {
                    stats.statements += batch.flush(conn, sql_err).await?;
                    if let Verdict::SkipRows { .. } = judge(&sql) {
                        skipping = true;
                        stats.skipped_copies += 1;
                        continue;
                    }
                    let s = conn.copy_in::<_, Bytes>(sql.as_str()).await.map_err(|e| sql_err(line, e))?;
                    sink = Some((Box::pin(s), line));
                    stats.copies += 1;
                }
                Item::CopyData(_) if skipping => {}
                Item::CopyEnd { .. } if skipping => skipping = false,
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
                    batch.flush(conn, sql_err).await?;
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
