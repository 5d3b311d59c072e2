//! The native dump engine: no pg_dump binary, one consistent snapshot, parallel data.
//!
//! A coordinating connection opens a `REPEATABLE READ, READ ONLY` transaction, exports its
//! snapshot, takes `ACCESS SHARE` locks on every table (with a lock timeout, so a concurrent
//! `DROP` or `ALTER` fails the backup instead of corrupting it) and writes the schema from the
//! catalogs (`schema`). Worker connections import the snapshot and stream `COPY … TO STDOUT`
//! table by table, largest first, each through its own compressor into its own upload. The
//! coordinator's transaction stays open until the last worker is done, so every table is read
//! at the same point in time.
//!
//! Output, in restore order: `pre-data`, one `data` part per table (plus one for large
//! objects), `post-data`: each plain SQL that psql replays as it is. `layout: single` writes the
//! same SQL as one stream instead.

mod order;
mod schema;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use jiff::Timestamp;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio_postgres::Client;

pub use schema::{DataTable, Schema, SchemaOptions, refusal, unsupported};

use super::progress::Progress;
use super::stream::{self, Budget};
use super::{Compression, Level, ObjectEntry};
use crate::App;
use crate::db::TableInfo;
use crate::error::{Error, Result};
use crate::secrets::DbCredentials;

/// The engine's name in manifests.
pub const ENGINE: &str = "native";

/// Session settings of every dumping connection: the text COPY produces depends on them, so
/// they are fixed (and a content hash taken at backup time can be checked after a restore).
pub const SESSION: &str = "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
     SET DateStyle = ISO; SET IntervalStyle = postgres; SET TimeZone = 'UTC'; SET extra_float_digits = 3; \
     SET row_security = off; SET synchronize_seqscans = off; SELECT pg_catalog.set_config('search_path', '', false)";

/// The head of every part: what psql (or `backstop restore`) needs set before replaying it.
pub const PREAMBLE: &str = "-- Backstop native dump\n\
SET statement_timeout = 0;\n\
SET lock_timeout = 0;\n\
SET idle_in_transaction_session_timeout = 0;\n\
SET client_encoding = 'UTF8';\n\
SET standard_conforming_strings = on;\n\
SELECT pg_catalog.set_config('search_path', '', false);\n\
SET check_function_bodies = false;\n\
SET xmloption = content;\n\
SET client_min_messages = warning;\n\
SET row_security = off;\n\n";

/// Bytes of a large object read (and written back) per statement.
const LO_CHUNK: i32 = 512 * 1024;
/// Large objects fetched from the cursor at a time.
const LO_FETCH: usize = 1000;
/// Large objects whose first [`LO_HEAD`] bytes one query reads (a few MiB at most); the rest
/// of a bigger one is read [`LO_CHUNK`] at a time.
const LO_GROUP: usize = 250;
const LO_HEAD: i32 = 16 * 1024;
/// Tables locked per round trip (each `LOCK` is its own statement, pipelined).
const LOCK_BATCH: usize = 64;

/// How the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub jobs: usize,
    pub compression: Compression,
    pub level: Level,
    /// One object instead of a set.
    pub single: bool,
    pub schema_only: bool,
    pub lock_timeout: Duration,
    /// Tables with more pages than this are dumped in parts when `jobs` > 1.
    pub split_pages: i64,
    pub schema: SchemaOptions,
}

impl Settings {
    /// One object of this dump, compressed as the settings say.
    fn target<'a>(&self, key: &'a str, kind: &'a str, estimate: u64, budget: Budget) -> stream::Target<'a> {
        stream::Target { key, kind, compression: self.compression, level: self.level, estimate, budget }
    }
}

/// What a native dump stored.
#[derive(Debug, Clone)]
pub struct Dumped {
    /// In restore order.
    pub objects: Vec<ObjectEntry>,
    /// Every table with its row count and content hash (`None` where its data was left out).
    pub tables: Vec<TableInfo>,
    /// When the snapshot was taken.
    pub snapshot: Timestamp,
    pub counts: BTreeMap<String, usize>,
    /// What the schema was changed in to stay restorable.
    pub warnings: Vec<String>,
}

/// Rows and content hash of a table (or of a part of one; parts add up).
///
/// The hash is the wrapping sum of the XXH3-128 of every COPY line (each row's text under
/// [`SESSION`]): independent of row order, so a table dumped in parts, or restored by parallel
/// workers into a different physical order, hashes the same. It detects a copy that differs
/// from what was dumped; it is not a defence against a forger (the manifest's SHA-256s are).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowHasher {
    rows: u64,
    sum: u128,
    /// The start of a row cut at a chunk boundary.
    partial: Vec<u8>,
}

impl RowHasher {
    /// Feeds COPY text; rows may span calls.
    pub fn update(&mut self, mut data: &[u8]) {
        while let Some(end) = memchr::memchr(b'\n', data) {
            let line = &data[..=end];
            let hash = if self.partial.is_empty() {
                xxhash_rust::xxh3::xxh3_128(line)
            } else {
                self.partial.extend_from_slice(line);
                let h = xxhash_rust::xxh3::xxh3_128(&self.partial);
                self.partial.clear();
                h
            };
            self.sum = self.sum.wrapping_add(hash);
            self.rows += 1;
            data = &data[end + 1..];
        }
        self.partial.extend_from_slice(data);
    }

    /// Adds another part's rows.
    pub fn merge(&mut self, other: &RowHasher) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// `xxh3sum:` and the sum in hex.
    pub fn hash(&self) -> String {
        format!("xxh3sum:{:032x}", self.sum)
    }
}

type TableStats = RowHasher;

/// Dumps `database` into objects under `stem` (`{stem}/…` for a set, `{stem}.sql.zst` for a
/// single object). `wanted` says whose rows are dumped (the schema is always whole). On any
/// error the caller removes what was stored under the stem.
pub async fn dump(
    app: &App,
    creds: &DbCredentials,
    database: &str,
    settings: &Settings,
    stem: &str,
    wanted: impl Fn(&DataTable) -> bool + Sync,
) -> Result<Dumped> {
    let db_err = |context: &str| {
        let (target, context) = (creds.display_target(database), context.to_owned());
        move |source| Error::Database { target, context, source }
    };
    let coordinator = Arc::new(app.db.connect_to(creds, Some(database), "backstop-native").await?);
    coordinator
        .batch_execute(&format!("{SESSION}; SET lock_timeout = {}", settings.lock_timeout.as_millis()))
        .await
        .map_err(db_err("set up the session"))?;
    coordinator
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(db_err("start the snapshot"))?;
    let row = coordinator
        .query_one("select pg_export_snapshot(), statement_timestamp()", &[])
        .await
        .map_err(db_err("export the snapshot"))?;
    let (snapshot_id, snapshot): (String, Timestamp) = (row.get(0), row.get(1));
    lock_tables(&coordinator, database, settings.lock_timeout).await?;
    let has_data = |t: &DataTable| !settings.schema_only && wanted(t);
    let options = schema::SchemaOptions { no_large_objects: settings.schema_only, ..settings.schema };
    let schema = schema::read(&coordinator, database, options, &has_data).await?;
    tracing::info!(database, snapshot = %snapshot, tables = schema.tables.len(), objects = ?schema.counts, "schema read");

    let mut data: Vec<DataTable> = Vec::new();
    let mut skipped: Vec<DataTable> = Vec::new();
    for t in schema.tables.iter().cloned() {
        if has_data(&t) { data.push(t) } else { skipped.push(t) }
    }
    let large_objects = schema.large_objects > 0;
    let progress = Progress::new(database, data.len(), data.iter().map(|t| t.bytes.max(0) as u64).sum());
    // Aborted when dropped: also when the deadline drops this future (a warm Lambda would
    // otherwise go on logging the dump's progress into later invocations).
    let ticker = progress.start();

    // Large tables become several parts when several workers can read them at once.
    let mut parts: Vec<DataTable> = Vec::new();
    for t in &data {
        if !settings.single && settings.jobs > 1 && t.pages > settings.split_pages && t.filter.is_none() {
            let n = (t.pages / settings.split_pages.max(1) + 1).min(settings.jobs as i64 * 2);
            parts.extend(t.split(n));
        } else {
            parts.push(t.clone());
        }
    }
    let outcome = if settings.single {
        dump_single(app, &coordinator, settings, stem, &schema, &parts, large_objects, &progress).await
    } else {
        dump_set(
            app,
            creds,
            database,
            &snapshot_id,
            settings,
            stem,
            &schema,
            &parts,
            large_objects,
            &progress,
        )
        .await
    };
    drop(ticker);
    let (objects, stats) = outcome?;
    // The snapshot (and the locks) could go only now: every worker has finished reading.
    coordinator.batch_execute("COMMIT").await.map_err(db_err("end the snapshot"))?;

    let mut per_table: std::collections::HashMap<u32, RowHasher> = std::collections::HashMap::new();
    for (part, s) in parts.iter().zip(&stats) {
        per_table.entry(part.oid).or_default().merge(s);
    }
    let info = |t: &DataTable, s: Option<&TableStats>| TableInfo {
        schema: t.schema.clone(),
        name: t.name.clone(),
        rows_estimate: t.rows_estimate,
        bytes: t.bytes,
        rows: s.map(|s| s.rows()),
        content_hash: s.map(|s| s.hash()),
        filter: t.filter.clone().filter(|f| !f.trim().is_empty()),
    };
    let mut tables: Vec<TableInfo> = data.iter().map(|t| info(t, per_table.get(&t.oid))).collect();
    tables.extend(skipped.iter().map(|t| info(t, None)));
    tables.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    Ok(Dumped { objects, tables, snapshot, counts: schema.counts, warnings: schema.warnings })
}

/// `LOCK TABLE … IN ACCESS SHARE MODE` on every user table, as pg_dump does: from here on a
/// concurrent `DROP` or `ALTER` waits for the backup instead of changing what it reads.
async fn lock_tables(client: &Client, database: &str, timeout: Duration) -> Result<()> {
    let rows = client
        .query(
            "select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where c.relkind in ('r', 'p') and n.nspname !~ '^pg_' and n.nspname <> 'information_schema' order by 1",
            &[],
        )
        .await
        .map_err(|source| Error::Database { target: database.to_owned(), context: "list tables".into(), source })?;
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for batch in names.chunks(LOCK_BATCH) {
        let locks = batch.iter().map(|name| async move {
            client.batch_execute(&format!("LOCK TABLE {name} IN ACCESS SHARE MODE")).await.map_err(|e| {
                let conflict = format!(
                    "another session holds a conflicting lock (a migration, DROP or ALTER?) for more than {} s",
                    timeout.as_secs_f64()
                );
                lock_error(database, name, &conflict, &e)
            })
        });
        futures_util::future::try_join_all(locks).await?;
    }
    check_not_rewritten(client, database).await
}

/// Fails the backup when a table's storage changed between the snapshot and its lock.
///
/// The snapshot is exported before the locks are granted. A migration that rewrites a table
/// (`TRUNCATE` and reload, `ALTER … TYPE`, `CLUSTER`, `VACUUM FULL`) and commits while the
/// backup waits for its lock leaves new storage whose every row is newer than the snapshot:
/// COPY would read the table as empty, and the row counts would agree. `pg_class` read under
/// the snapshot still names the old file; `pg_relation_filenode` reads the catalog as it is
/// now (catalog lookups do not use the transaction's snapshot).
async fn check_not_rewritten(client: &Client, database: &str) -> Result<()> {
    let rows = client
        .query(
            "select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where c.relkind = 'r' and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
               and c.relfilenode <> 0 and c.relfilenode is distinct from pg_relation_filenode(c.oid)
             order by 1",
            &[],
        )
        .await
        .map_err(|source| Error::Database {
            target: database.to_owned(),
            context: "compare the tables' storage with the snapshot".into(),
            source,
        })?;
    let rewritten: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if rewritten.is_empty() {
        return Ok(());
    }
    Err(Error::Dump {
        database: database.to_owned(),
        reason: format!(
            "table {} was rewritten (TRUNCATE, ALTER … TYPE, CLUSTER or VACUUM FULL) by a transaction that committed \
             while the backup waited for its lock: under the backup's snapshot its rows would read as empty, so \
             nothing was stored; run the backup again",
            rewritten.join(", ")
        ),
    })
}

/// A worker's own `ACCESS SHARE` lock on `table` before its COPY, `NOWAIT`, as `pg_dump -j`
/// takes it. The coordinator holds the same lock, so it is normally granted at once; it is
/// refused when another session (a migration) queued a conflicting lock meanwhile. Waiting
/// would queue the COPY behind the migration and the migration behind the coordinator, and
/// the application's queries behind both, until the deadline: the backup gives way instead.
async fn lock_for_copy(client: &Client, database: &str, table: &DataTable) -> Result<()> {
    let sql = format!("LOCK TABLE {} IN ACCESS SHARE MODE NOWAIT", table.qualified);
    client.batch_execute(&sql).await.map_err(|e| {
        let conflict = "another session is waiting for a conflicting lock on it (a migration?); the backup \
                        gives way rather than block the table for the application";
        lock_error(database, &format!("{} for its COPY", table.qualified), conflict, &e)
    })
}

/// A `LOCK TABLE` that failed: `conflict` says why when the lock was not available.
fn lock_error(database: &str, what: &str, conflict: &str, e: &tokio_postgres::Error) -> Error {
    let why = match e.as_db_error() {
        Some(db) if db.code() == &tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE => conflict.to_owned(),
        Some(db) => db.message().to_owned(),
        None => crate::error::report(e),
    };
    Error::Dump { database: database.to_owned(), reason: format!("cannot lock table {what}: {why}") }
}

/// The whole dump as one stream on the coordinator's connection.
#[allow(clippy::too_many_arguments)]
async fn dump_single(
    app: &App,
    client: &Arc<Client>,
    settings: &Settings,
    key: &str,
    schema: &Schema,
    data: &[DataTable],
    large_objects: bool,
    progress: &Progress,
) -> Result<(Vec<ObjectEntry>, Vec<TableStats>)> {
    let (client, schema, data, progress) = (client.clone(), schema.clone(), data.to_vec(), progress.clone());
    let no_owner = settings.schema.no_owner;
    let estimate = data.iter().map(|t| t.bytes.max(0) as u64).sum::<u64>() + 1024 * 1024;
    let (entry, stats) = stream::store_compressed(
        app,
        settings.target(key, "dump", estimate, Budget::shared(&app.config.s3, 1)),
        |mut out| async move {
            out.write_all(PREAMBLE.as_bytes()).await.map_err(pipe_err)?;
            out.write_all(schema.pre_data.as_bytes()).await.map_err(pipe_err)?;
            let mut stats = Vec::with_capacity(data.len());
            for table in &data {
                stats.push(copy_table(&client, table, &mut out, &progress).await?);
            }
            if large_objects {
                write_large_objects(&client, no_owner, &mut out).await?;
            }
            out.write_all(schema.post_data.as_bytes()).await.map_err(pipe_err)?;
            Ok((out, stats))
        },
    )
    .await?;
    Ok((vec![entry], stats))
}

/// Pre-data, data parts from `jobs` workers in parallel, post-data: one object each.
#[allow(clippy::too_many_arguments)]
async fn dump_set(
    app: &App,
    creds: &DbCredentials,
    database: &str,
    snapshot_id: &str,
    settings: &Settings,
    stem: &str,
    schema: &Schema,
    data: &[DataTable],
    large_objects: bool,
    progress: &Progress,
) -> Result<(Vec<ObjectEntry>, Vec<TableStats>)> {
    let ext = settings.compression.extension();
    let mut objects = vec![
        upload_text(app, &format!("{stem}/pre-data.sql.{ext}"), settings, "pre-data", &schema.pre_data)
            .await?,
    ];

    // Work items: tables largest first (so the longest one does not start last), then the
    // large objects.
    let mut queue: VecDeque<Work> =
        data.iter().cloned().enumerate().map(|(i, t)| Work::Table(i, t)).collect();
    if large_objects {
        queue.push_back(Work::LargeObjects);
    }
    let jobs = settings.jobs.clamp(1, queue.len().max(1));
    let queue = Arc::new(Mutex::new(queue));
    // Each worker keeps a share of one stream's memory, so the total stays bounded.
    let budget = Budget::shared(&app.config.s3, jobs);
    let worker = |w: usize| {
        let (queue, progress) = (queue.clone(), progress.clone());
        async move {
            let client =
                Arc::new(app.db.connect_to(creds, Some(database), &format!("backstop-native-{w}")).await?);
            let import = format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot_id}'"
            );
            let session = client.batch_execute(SESSION).await;
            session.and(client.batch_execute(&import).await).map_err(|source| Error::Database {
                target: creds.display_target(database),
                context: "import the snapshot".into(),
                source,
            })?;
            let mut done = Vec::new();
            loop {
                let Some(work) = queue.lock().await.pop_front() else { break };
                let (c, p) = (client.clone(), progress.clone());
                let part = match work {
                    Work::Table(i, table) => {
                        lock_for_copy(&c, database, &table).await?;
                        let key = format!("{stem}/data-{i:05}.sql.{ext}");
                        let estimate = table.bytes.max(0) as u64;
                        let label = table.qualified.clone();
                        let (mut entry, stats) = stream::store_compressed(
                            app,
                            settings.target(&key, "data", estimate, budget),
                            |mut out| async move {
                                out.write_all(PREAMBLE.as_bytes()).await.map_err(pipe_err)?;
                                let stats = copy_table(&c, &table, &mut out, &p).await?;
                                Ok((out, stats))
                            },
                        )
                        .await?;
                        entry.table = Some(label);
                        entry.rows = Some(stats.rows());
                        (i, entry, Some(stats))
                    }
                    Work::LargeObjects => {
                        let no_owner = settings.schema.no_owner;
                        let key = format!("{stem}/large-objects.sql.{ext}");
                        let (entry, ()) = stream::store_compressed(
                            app,
                            settings.target(&key, "data", 0, budget),
                            |mut out| async move {
                                out.write_all(PREAMBLE.as_bytes()).await.map_err(pipe_err)?;
                                write_large_objects(&c, no_owner, &mut out).await?;
                                Ok((out, ()))
                            },
                        )
                        .await?;
                        (usize::MAX, entry, None)
                    }
                };
                done.push(part);
            }
            // A connection that breaks even here leaves doubt about what it sent: fail.
            client.batch_execute("COMMIT").await.map_err(|source| Error::Database {
                target: creds.display_target(database),
                context: "end a worker's snapshot".into(),
                source,
            })?;
            Ok::<_, Error>(done)
        }
    };
    // Workers run concurrently on this task; each part's reading, hashing and compression run
    // on a task of their own, so they use every core. The first error cancels the rest.
    let mut parts: Vec<_> =
        futures_util::future::try_join_all((0..jobs).map(worker)).await?.into_iter().flatten().collect();
    parts.sort_by_key(|(i, ..)| *i);
    let mut stats = Vec::with_capacity(data.len());
    for (_, entry, s) in parts {
        objects.push(entry);
        stats.extend(s);
    }
    objects.push(
        upload_text(app, &format!("{stem}/post-data.sql.{ext}"), settings, "post-data", &schema.post_data)
            .await?,
    );
    Ok((objects, stats))
}

/// What a worker takes from the queue.
#[derive(Debug)]
enum Work {
    Table(usize, DataTable),
    LargeObjects,
}

/// A schema section as one object.
async fn upload_text(
    app: &App,
    key: &str,
    settings: &Settings,
    kind: &str,
    sql: &str,
) -> Result<ObjectEntry> {
    let text = format!("{PREAMBLE}{sql}");
    let estimate = text.len() as u64;
    let budget = Budget { concurrency: 1, part_size: app.config.s3.part_size };
    let target = settings.target(key, kind, estimate, budget);
    let (entry, ()) = stream::store_compressed(app, target, |mut out| async move {
        out.write_all(text.as_bytes()).await.map_err(pipe_err)?;
        Ok((out, ()))
    })
    .await?;
    Ok(entry)
}

fn pipe_err(e: std::io::Error) -> Error {
    Error::io("writing the dump stream", e)
}

/// One table (or part of one) as a `COPY … FROM stdin;` block; counts and hashes its rows.
async fn copy_table(
    client: &Client,
    table: &DataTable,
    out: &mut (impl AsyncWrite + Unpin),
    progress: &Progress,
) -> Result<TableStats> {
    out.write_all(format!("{} FROM stdin;\n", table.copy_head()).as_bytes()).await.map_err(pipe_err)?;
    let copy_err = |source| Error::Database {
        target: table.qualified.clone(),
        context: "COPY TO STDOUT".into(),
        source,
    };
    let stream = client.copy_out(&table.copy_out()).await.map_err(copy_err)?;
    let mut stream = std::pin::pin!(stream);
    let mut hasher = RowHasher::default();
    // Counted here and handed to the shared counter now and then: an atomic add per row, on a
    // cache line every worker writes, costs more than the row's hash.
    let mut unreported = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(copy_err)?;
        hasher.update(&chunk);
        unreported += chunk.len();
        if unreported >= stream::CHUNK {
            progress.bytes.fetch_add(std::mem::take(&mut unreported) as u64, Ordering::Relaxed);
        }
        out.write_all(&chunk).await.map_err(pipe_err)?;
    }
    progress.bytes.fetch_add(unreported as u64, Ordering::Relaxed);
    out.write_all(b"\\.\n\n").await.map_err(pipe_err)?;
    progress.tables.fetch_add(1, Ordering::Relaxed);
    Ok(hasher)
}

/// Every large object of the snapshot (`client` is inside its transaction): per object its
/// `lo_create`, its bytes as `lo_put`s and (unless `no_owner`) its owner, after its bytes so
/// that a restoring role that is not the owner can still write them. Read through a cursor
/// [`LO_FETCH`] objects at a time with the first bytes of [`LO_GROUP`] objects per query, so
/// neither memory nor round trips grow with one per object (100k small ones: a few hundred
/// round trips).
async fn write_large_objects(
    client: &Client,
    no_owner: bool,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<()> {
    let err = |context: &'static str| {
        move |source| Error::Database { target: "large objects".into(), context: context.into(), source }
    };
    client
        .batch_execute(
            "DECLARE backstop_large_objects NO SCROLL CURSOR FOR
               select oid, quote_ident(pg_catalog.pg_get_userbyid(lomowner)) from pg_catalog.pg_largeobject_metadata order by oid",
        )
        .await
        .map_err(err("list"))?;
    let fetch = format!("FETCH {LO_FETCH} FROM backstop_large_objects");
    loop {
        let rows = client.query(fetch.as_str(), &[]).await.map_err(err("list"))?;
        if rows.is_empty() {
            break;
        }
        let objects: Vec<(u32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for group in objects.chunks(LO_GROUP) {
            let oids: Vec<u32> = group.iter().map(|(oid, _)| *oid).collect();
            let heads = client
                .query(
                    "select pg_catalog.lo_get(o, 0, $2) from unnest($1::pg_catalog.oid[]) with ordinality u(o, n) order by n",
                    &[&oids, &LO_HEAD],
                )
                .await
                .map_err(err("read"))?;
            // One row per object asked for: a short answer must fail, not drop objects.
            if heads.len() != group.len() {
                return Err(Error::Dump {
                    database: "large objects".into(),
                    reason: format!(
                        "asked for {} large objects, the server returned {}",
                        group.len(),
                        heads.len()
                    ),
                });
            }
            for ((oid, owner), head) in group.iter().zip(&heads) {
                let head: Vec<u8> = head.get(0);
                let mut text = format!("SELECT pg_catalog.lo_create('{oid}');\n");
                if !head.is_empty() {
                    text.push_str(&lo_put(*oid, 0, &head));
                }
                out.write_all(text.as_bytes()).await.map_err(pipe_err)?;
                if head.len() == LO_HEAD as usize {
                    write_large_object_rest(client, *oid, LO_HEAD as i64, out).await?;
                }
                if !no_owner {
                    let line = format!("ALTER LARGE OBJECT {oid} OWNER TO {owner};\n");
                    out.write_all(line.as_bytes()).await.map_err(pipe_err)?;
                }
            }
        }
    }
    client.batch_execute("CLOSE backstop_large_objects").await.map_err(err("list"))?;
    out.write_all(b"\n").await.map_err(pipe_err)
}

/// `lo_put` of `bytes` at `offset`.
fn lo_put(oid: u32, offset: i64, bytes: &[u8]) -> String {
    format!("SELECT pg_catalog.lo_put('{oid}', {offset}, '\\x{}');\n", hex::encode(bytes))
}

/// A large object's bytes from `offset` on, [`LO_CHUNK`] per statement.
async fn write_large_object_rest(
    client: &Client,
    oid: u32,
    mut offset: i64,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<()> {
    loop {
        let row = client
            .query_one("select pg_catalog.lo_get($1, $2, $3)", &[&oid, &offset, &LO_CHUNK])
            .await
            .map_err(|source| Error::Database {
                target: format!("large object {oid}"),
                context: "read".into(),
                source,
            })?;
        let bytes: Vec<u8> = row.get(0);
        if bytes.is_empty() {
            return Ok(());
        }
        out.write_all(lo_put(oid, offset, &bytes).as_bytes()).await.map_err(pipe_err)?;
        offset += bytes.len() as i64;
        if bytes.len() < LO_CHUNK as usize {
            return Ok(());
        }
    }
}

/// Rows and content hash ([`RowHasher`]) of one table as the engine records them, for
/// `verify` to compare a restored copy with.
/// `client` must have run [`SESSION`].
/// `filter`: an extension configuration table's condition (see [`DataTable::filter`]).
pub async fn table_content(
    client: &Client,
    schema: &str,
    name: &str,
    filter: Option<&str>,
) -> Result<(u64, String)> {
    let qualified = format!("{}.{}", crate::db::quote_ident(schema), crate::db::quote_ident(name));
    let cols: Vec<String> = client
        .query(
            "select quote_ident(a.attname) from pg_attribute a join pg_class c on c.oid = a.attrelid
             join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = $1 and c.relname = $2 and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
             order by a.attnum",
            &[&schema, &name],
        )
        .await
        .map_err(|source| Error::Database { target: qualified.clone(), context: "read columns".into(), source })?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let table = DataTable {
        oid: 0,
        schema: schema.to_owned(),
        name: name.to_owned(),
        qualified,
        columns: cols.join(", "),
        bytes: 0,
        rows_estimate: None,
        pages: 0,
        chunk: None,
        filter: filter.map(str::to_owned),
    };
    let stats = copy_table(client, &table, &mut tokio::io::sink(), &Progress::new("", 0, 0)).await?;
    Ok((stats.rows(), stats.hash()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_hashes_ignore_order_and_chunking_but_not_content() {
        let hash = |chunks: &[&[u8]]| {
            let mut h = RowHasher::default();
            for c in chunks {
                h.update(c);
            }
            h
        };
        let whole = hash(&[b"1\ta\n2\tb\n3\t\\N\n"]);
        assert_eq!(whole.rows(), 3);
        assert_eq!(hash(&[b"3\t\\N\n2\tb", b"\n1\ta\n"]), whole, "order and chunk boundaries do not matter");
        let mut parts = hash(&[b"2\tb\n"]);
        parts.merge(&hash(&[b"3\t\\N\n1\ta\n"]));
        assert_eq!(parts.hash(), whole.hash(), "parts add up");
        assert_ne!(hash(&[b"1\ta\n2\tc\n3\t\\N\n"]).hash(), whole.hash());
        assert_ne!(hash(&[b"1\ta\n2\tb\n"]).hash(), whole.hash());
    }
}
