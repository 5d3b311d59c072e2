//! `backstop restore`: find the backup, verify every object against its manifest before the
//! target is touched, check the target (refuse a non-empty one unless told), then stream the
//! dump from the store through decompression into the database.

use std::path::PathBuf;
use std::time::Instant;

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use super::apply::{ApplyStats, apply_selected, in_transaction};
use super::select::TableSelection;
use crate::App;
use crate::catalog::{list_backups, read_manifest};
use crate::db::quote_ident;
use crate::error::{Error, Result, StoreKind};
use crate::keys;
use crate::secrets::DbCredentials;

/// Which backup to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreSource {
    /// A manifest key, or a dump object's key (its manifest is used when it has one).
    Key(String),
    /// The newest backup (of one database, or of any).
    Latest { database: Option<String> },
    /// A local plain dump (`.sql`, `.sql.gz`, `.sql.zst`), e.g. from an old cron job.
    File(PathBuf),
}

/// What to restore where, and how carefully.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub source: RestoreSource,
    /// `postgres://…` of the target; its database is the target unless `database` is given.
    pub target_url: String,
    pub database: Option<String>,
    /// Create the target database when it does not exist.
    pub create: bool,
    /// Drop and recreate the target (after terminating its other connections).
    pub clean: bool,
    /// Restore into a non-empty target anyway.
    pub force: bool,
    /// Verify and print the plan; change nothing.
    pub dry_run: bool,
    /// All or nothing: roll back everything at the first error.
    pub single_transaction: bool,
    /// Connections replaying a backup set's data parts in parallel (1: one after the other).
    pub jobs: usize,
    /// Only these tables' rows (pg_dump-style patterns); empty: all. The schema comes back whole.
    pub tables: Vec<String>,
    /// `ANALYZE` the restored database at the end, so that the planner has statistics at once.
    pub analyze: bool,
}

/// One stored object checked against the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectCheck {
    pub key: String,
    /// Bytes and digest as read, for objects with a manifest to check against; a dump without
    /// one is not read twice, only replayed.
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub verified: bool,
}

/// What a restore found and did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub source: String,
    pub manifest_key: Option<String>,
    pub objects: Vec<ObjectCheck>,
    pub target: String,
    /// `absent`, `empty`, or `N relations`.
    pub target_state: String,
    pub actions: Vec<String>,
    pub dry_run: bool,
    pub applied: Option<ApplyStats>,
    /// Restored tables with their row counts, and the manifest's estimate where it has one.
    pub tables: Vec<TableCount>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableCount {
    pub table: String,
    pub rows: i64,
    pub estimate: Option<i64>,
    /// The rows the backup dumped (native engine): the restore must have exactly these.
    pub expected: Option<u64>,
}

/// A dump to replay: where it is, and what it should hash to.
#[derive(Debug, Clone)]
struct Planned {
    label: String,
    manifest_key: Option<String>,
    /// In restore order.
    objects: Vec<PlannedObject>,
    /// The manifest's tables.
    tables: Vec<PlannedTable>,
    local: Option<PathBuf>,
    /// Small objects as the check before the restore read them: replayed from memory, not read
    /// from the store again (a backup of many small tables is as many small objects).
    held: std::collections::HashMap<String, bytes::Bytes>,
}

#[derive(Debug, Clone)]
struct PlannedTable {
    schema: String,
    name: String,
    estimate: Option<i64>,
    /// Rows dumped (native engine).
    rows: Option<u64>,
    /// An extension configuration table's condition: `rows` counts what it picks.
    filter: Option<String>,
}

#[derive(Debug, Clone)]
struct PlannedObject {
    key: String,
    /// `None` for dumps without a manifest.
    sha256: Option<String>,
    /// `data` parts of a set can be replayed in parallel.
    kind: String,
    /// The table a data part holds, as SQL names it.
    table: Option<String>,
    uncompressed_bytes: Option<u64>,
}

impl PlannedObject {
    fn unverified(key: String) -> Self {
        PlannedObject { key, sha256: None, kind: "dump".into(), table: None, uncompressed_bytes: None }
    }
}

async fn resolve(app: &App, source: &RestoreSource) -> Result<Planned> {
    let store = app.store.as_ref();
    let from_manifest = |manifest_key: String, m: crate::backup::Manifest| Planned {
        label: store.locate(&manifest_key),
        manifest_key: Some(manifest_key),
        objects: m
            .objects
            .iter()
            .map(|o| PlannedObject {
                key: o.key.clone(),
                sha256: Some(o.sha256.clone()),
                kind: o.kind.clone(),
                table: o.table.clone(),
                uncompressed_bytes: Some(o.uncompressed_bytes),
            })
            .collect(),
        tables: m
            .tables
            .iter()
            .map(|t| PlannedTable {
                schema: t.schema.clone(),
                name: t.name.clone(),
                estimate: t.rows_estimate,
                rows: t.rows,
                filter: t.filter.clone(),
            })
            .collect(),
        local: None,
        held: Default::default(),
    };
    match source {
        RestoreSource::Latest { database } => {
            let listing =
                list_backups(store, &app.config.prefix, database.as_deref(), Some(&app.config.env)).await?;
            let why = listing.why_none(&format!(
                "{} in environment {} under {}",
                database.as_deref().map(|d| format!(" of {d}")).unwrap_or_default(),
                app.config.env,
                store.locate(&keys::db_scope(&app.config.prefix, None))
            ));
            let entry = listing.latest_full().ok_or(Error::Payload(why))?;
            Ok(from_manifest(entry.manifest_key, entry.manifest))
        }
        RestoreSource::Key(key) => {
            let manifest_key = keys::manifest_key(key);
            if store.get(&manifest_key).await?.is_some() {
                let m = read_manifest(store, &manifest_key).await?;
                return Ok(from_manifest(manifest_key, m));
            }
            if keys::is_manifest(key) {
                return Err(Error::Payload(format!("{} does not exist", store.locate(key))));
            }
            // A part of a backup set (`{stem}/pre-data.sql.zst`): the set is what restores.
            if let Some((stem, _)) = key.rsplit_once('/') {
                let set_manifest = keys::manifest_key(stem);
                if store.get(&set_manifest).await?.is_some() {
                    let m = read_manifest(store, &set_manifest).await?;
                    return Ok(from_manifest(set_manifest, m));
                }
            }
            // A dump without a manifest (another tool's): restorable, but nothing to verify.
            Ok(Planned {
                label: store.locate(key),
                manifest_key: None,
                objects: vec![PlannedObject::unverified(key.clone())],
                tables: vec![],
                local: None,
                held: Default::default(),
            })
        }
        RestoreSource::File(path) => Ok(Planned {
            label: path.display().to_string(),
            manifest_key: None,
            objects: vec![PlannedObject::unverified(path.display().to_string())],
            tables: vec![],
            local: Some(path.clone()),
            held: Default::default(),
        }),
    }
}

async fn open(app: &App, planned: &Planned, key: &str) -> Result<Box<dyn AsyncRead + Unpin + Send>> {
    match &planned.local {
        Some(path) => Ok(Box::new(
            tokio::fs::File::open(path)
                .await
                .map_err(|e| Error::io(format!("opening {}", path.display()), e))?,
        )),
        None => app.store.get_stream(key).await,
    }
}

/// Opens `object` for its replay, checking its SHA-256 again as it streams: the check before
/// the restore read it once, and the store is read a second time here. A mismatch at the end is
/// an error, never a replay that silently differs.
async fn open_checked(
    app: &App,
    planned: &Planned,
    object: &PlannedObject,
) -> Result<Box<dyn AsyncRead + Unpin + Send>> {
    if let Some(bytes) = planned.held.get(&object.key) {
        // The very bytes whose SHA-256 was checked.
        return Ok(Box::new(std::io::Cursor::new(bytes.clone())));
    }
    let raw = open(app, planned, &object.key).await?;
    Ok(match &object.sha256 {
        Some(expected) => Box::new(Checked::new(raw, expected.clone(), object.key.clone())),
        None => raw,
    })
}

/// A reader that hashes what passes and fails at the end when the SHA-256 is not `expected`.
struct Checked<R> {
    inner: R,
    hasher: Sha256,
    expected: String,
    key: String,
    ended: bool,
}

impl<R> Checked<R> {
    fn new(inner: R, expected: String, key: String) -> Self {
        Checked { inner, hasher: Sha256::new(), expected, key, ended: false }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Checked<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        std::task::ready!(std::pin::Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            self.hasher.update(read);
        } else if !self.ended {
            self.ended = true;
            let got = hex::encode(std::mem::take(&mut self.hasher).finalize());
            if got != self.expected {
                return std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} read back with SHA-256 {got}, not the manifest's {} (it changed since it was checked)",
                        self.key, self.expected
                    ),
                )));
            }
        }
        std::task::Poll::Ready(Ok(()))
    }
}

/// Decompresses by the name's suffix.
fn decompress(key: &str, raw: Box<dyn AsyncRead + Unpin + Send>) -> Box<dyn AsyncRead + Unpin + Send> {
    let buffered = BufReader::with_capacity(256 * 1024, raw);
    // Every frame (or gzip member), to the stored object's end: a writer may have written
    // several, and the SHA-256 check of a replay runs when its end is read.
    if key.ends_with(".zst") {
        let mut d = ZstdDecoder::new(buffered);
        d.multiple_members(true);
        Box::new(d)
    } else if key.ends_with(".gz") {
        let mut d = GzipDecoder::new(buffered);
        d.multiple_members(true);
        Box::new(d)
    } else {
        Box::new(buffered)
    }
}

/// Objects read at once by the check before a restore.
const VERIFY_READS: usize = 8;
/// The largest object held in memory for its replay, and all of them together.
const HOLD_OBJECT: usize = 1 << 20;
const HOLD_TOTAL: usize = 32 << 20;

/// Reads every object with a digest (several at once) and checks it against the manifest;
/// the small ones are kept for their replay. The first mismatch fails it.
async fn verify(
    app: &App,
    planned: &Planned,
) -> Result<(Vec<ObjectCheck>, std::collections::HashMap<String, bytes::Bytes>)> {
    use futures_util::{StreamExt, TryStreamExt};
    // The reads as a list first: a stream mapping borrowed objects through a closure is not
    // `Send` for every lifetime, which the Lambda handler needs.
    let budget = std::sync::atomic::AtomicUsize::new(HOLD_TOTAL);
    let reads: Vec<_> = planned.objects.iter().map(|o| verify_one(app, planned, o, &budget)).collect();
    let checks: Vec<(ObjectCheck, Option<bytes::Bytes>)> =
        futures_util::stream::iter(reads).buffered(VERIFY_READS).try_collect().await?;
    let mut held = std::collections::HashMap::new();
    let checks = checks
        .into_iter()
        .map(|(check, bytes)| {
            if let Some(bytes) = bytes {
                held.insert(check.key.clone(), bytes);
            }
            check
        })
        .collect();
    Ok((checks, held))
}

async fn verify_one(
    app: &App,
    planned: &Planned,
    object: &PlannedObject,
    budget: &std::sync::atomic::AtomicUsize,
) -> Result<(ObjectCheck, Option<bytes::Bytes>)> {
    let PlannedObject { key, sha256: expected, .. } = object;
    let Some(expected) = expected else {
        return Ok((ObjectCheck { key: key.clone(), bytes: None, sha256: None, verified: false }, None));
    };
    let mut reader = open(app, planned, key).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut kept) = (0u64, Some(Vec::new()));
    loop {
        let n = reader.read(&mut buf).await.map_err(|e| Error::io(format!("reading {key}"), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
        kept = kept.filter(|k| k.len() + n <= HOLD_OBJECT).map(|mut k| {
            k.extend_from_slice(&buf[..n]);
            k
        });
    }
    let sha256 = hex::encode(hasher.finalize());
    if *expected != sha256 {
        return Err(Error::Store {
            op: "verify",
            location: app.store.locate(key),
            detail: format!(
                "SHA-256 {sha256} differs from the manifest's {expected}: the object is corrupt; nothing was restored"
            ),
            source: None,
            retryable: false,
            kind: StoreKind::Other,
        });
    }
    use std::sync::atomic::Ordering::Relaxed;
    let kept =
        kept.filter(|k| budget.fetch_update(Relaxed, Relaxed, |left| left.checked_sub(k.len())).is_ok());
    let check = ObjectCheck { key: key.clone(), bytes: Some(bytes), sha256: Some(sha256), verified: true };
    Ok((check, kept.map(bytes::Bytes::from)))
}

/// Runs a restore as requested.
pub async fn restore(app: &App, req: &RestoreRequest) -> Result<RestoreReport> {
    let creds = DbCredentials::from_url(&req.target_url)?;
    restore_with(app, req, creds).await
}

/// [`restore`] into the server `creds` reach (`req.target_url` is not read): `verify` restores
/// into a scratch database on the configured server, whose credentials may come from a secret.
pub async fn restore_with(app: &App, req: &RestoreRequest, creds: DbCredentials) -> Result<RestoreReport> {
    let clock = Instant::now();
    if !(1..=crate::backup::MAX_JOBS).contains(&req.jobs) {
        return Err(Error::Payload(format!("jobs: {} is outside 1..={}", req.jobs, crate::backup::MAX_JOBS)));
    }
    if req.jobs > 1 && req.single_transaction {
        return Err(Error::Payload(
            "--single-transaction needs one connection; leave out --jobs or pass --jobs 1".into(),
        ));
    }
    let selection = TableSelection::new(&req.tables)?;
    let mut planned = resolve(app, &req.source).await?;
    if let Some(selection) = &selection {
        narrow(&mut planned, selection)?;
    }
    // Every object to replay is read and checked before the target is touched.
    let (objects, held) = verify(app, &planned).await?;
    planned.held = held;

    let target = req
        .database
        .clone()
        .or(creds.dbname.clone())
        .ok_or_else(|| Error::Payload("the target URL names no database (or pass --database)".into()))?;
    let display = creds.display_target(&target);
    let db_err = |context: &str| db_error(&display, context);
    let admin = app.db.connect_to(&creds, Some("postgres"), "backstop-restore").await?;
    let exists = admin
        .query_opt("select 1 from pg_database where datname = $1", &[&target])
        .await
        .map_err(db_err("look up the target"))?
        .is_some();
    let relations: i64 = if exists {
        let c = app.db.connect_to(&creds, Some(&target), "backstop-restore").await?;
        c.query_one(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'",
            &[],
        )
        .await
        .map_err(db_err("inspect the target"))?
        .get(0)
    } else {
        0
    };
    let target_state = match (exists, relations) {
        (false, _) => "absent".to_owned(),
        (true, 0) => "empty".to_owned(),
        (true, n) => format!("{n} relations"),
    };
    let mut actions = Vec::new();
    match (exists, relations > 0) {
        (false, _) if !(req.create || req.clean) => {
            return Err(Error::Payload(format!(
                "target database {target} does not exist; pass --create to create it"
            )));
        }
        (false, _) => actions.push(format!("create database {target}")),
        (true, true) if req.clean => {
            actions.push(format!("terminate other connections to {target}, drop it and create it again"))
        }
        (true, true) if !req.force => {
            return Err(Error::Payload(format!(
                "target database {target} is not empty ({relations} relations); pass --clean to drop and recreate it, \
                 or --force to restore into it anyway"
            )));
        }
        _ => {}
    }
    actions.push(format!("replay {} object(s) from {}", objects.len(), planned.label));
    if selection.is_some() {
        actions.push(format!(
            "restore the whole schema, rows only of tables matching {} (foreign keys to tables left out are skipped)",
            req.tables.join(", ")
        ));
    }
    let mut report = RestoreReport {
        source: planned.label.clone(),
        manifest_key: planned.manifest_key.clone(),
        objects,
        target: display.clone(),
        target_state,
        actions,
        dry_run: req.dry_run,
        applied: None,
        tables: vec![],
        duration_ms: 0,
    };
    if req.dry_run {
        report.duration_ms = clock.elapsed().as_millis() as u64;
        return Ok(report);
    }

    let quoted = quote_ident(&target);
    if exists && relations > 0 && req.clean {
        admin
            .execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()", &[&target])
            .await
            .map_err(db_err("terminate connections"))?;
        admin.batch_execute(&format!("DROP DATABASE {quoted} WITH (FORCE)")).await.map_err(db_err("drop"))?;
    }
    if !exists || (relations > 0 && req.clean) {
        admin.batch_execute(&format!("CREATE DATABASE {quoted}")).await.map_err(db_err("create"))?;
    }
    let client = connect_restore(app, &creds, &target, req.jobs).await?;
    let work = async {
        let applied = replay_all(app, &planned, &creds, &target, &client, req, selection.as_ref()).await?;
        let tables = restored_counts(&client, &planned, selection.as_ref(), &display).await?;
        if req.analyze {
            client.batch_execute("ANALYZE").await.map_err(db_err("analyze"))?;
        }
        Ok::<_, Error>((applied, tables))
    };
    // --single-transaction spans every object and the row-count check: all or nothing.
    let outcome = if req.single_transaction {
        in_transaction(&client, |context, e| db_err(context)(e), work).await
    } else {
        work.await
    };
    let (applied, tables) = outcome?;
    report.applied = Some(applied);
    report.tables = tables;
    report.duration_ms = clock.elapsed().as_millis() as u64;
    Ok(report)
}

/// Pre-data, then the data parts, then the rest. With `jobs` > 1 the data parts load on `jobs`
/// connections, post-data's first index and key builds start among them as their tables'
/// rows are in, and the rest of post-data runs on the same connections ([`super::post`]).
async fn replay_all(
    app: &App,
    planned: &Planned,
    creds: &DbCredentials,
    target: &str,
    client: &tokio_postgres::Client,
    req: &RestoreRequest,
    selection: Option<&TableSelection>,
) -> Result<ApplyStats> {
    let (jobs, batched) = (req.jobs, !req.single_transaction);
    let progress = Progress::new(planned);
    let mut total = ApplyStats::default();
    let data: Vec<&PlannedObject> = planned.objects.iter().filter(|o| o.kind == "data").collect();
    let before = planned.objects.iter().take_while(|o| o.kind != "data");
    let after: Vec<&PlannedObject> =
        planned.objects.iter().skip_while(|o| o.kind != "data").filter(|o| o.kind != "data").collect();
    for o in before {
        total.add(&replay(app, planned, client, o, selection, batched, &progress).await?);
    }
    if jobs == 1 {
        for o in data.iter().chain(&after) {
            total.add(&replay(app, planned, client, o, selection, batched, &progress).await?);
        }
        return Ok(total);
    }
    // Post-data is DDL, small: read (and checked) now, so that its builds can start early. One
    // holding anything but statements is replayed as it is, after the data.
    let (mut steps, mut post, mut skipped) = (Vec::new(), None, Vec::new());
    if let Some(o) = after.iter().find(|o| o.kind == "post-data")
        && let Some((mut statements, lines)) = post_data_statements(app, planned, o).await?
    {
        statements.retain(|(sql, _)| super::select::keep(selection, sql, &mut skipped));
        steps = super::post::schedule(statements);
        post = Some((*o, lines));
    }
    let post_key = post.map_or("", |(o, _)| o.key.as_str());
    let sql_err = |line: usize, e: tokio_postgres::Error| super::apply::sql_error(post_key, line, e);
    let (sessions, early) = super::post::take_early(&mut steps);

    // The data phase's connections, each set up with post-data's leading settings: the first
    // builds run among the data parts.
    let more =
        futures_util::future::try_join_all((1..jobs).map(|_| connect_restore(app, creds, target, jobs)))
            .await?;
    let clients: Vec<&tokio_postgres::Client> = std::iter::once(client).chain(&more).collect();
    for c in &clients {
        for sql in &sessions {
            c.batch_execute(sql).await.map_err(|e| sql_err(0, e))?;
        }
    }
    let mut weight: std::collections::HashMap<super::post::TableName, u64> = Default::default();
    let parts: Vec<_> = data
        .iter()
        .map(|o| {
            let table = o.table.as_deref().and_then(super::select::parse_qualified);
            if let Some(t) = &table {
                *weight.entry(t.clone()).or_default() += o.uncompressed_bytes.unwrap_or(0);
            }
            (*o, table)
        })
        .collect();
    let phase = super::post::Phase::new(parts, early, &weight);
    let load = |c, o| replay(app, planned, c, o, selection, true, &progress);
    total.add(&super::post::drive(&clients, phase, load, &sql_err).await?);
    for o in after {
        match post {
            Some((p, lines)) if p.key == o.key => {
                let statements =
                    super::post::run(&clients, std::mem::take(&mut steps), &weight, &sql_err).await?;
                let skipped_constraints = std::mem::take(&mut skipped);
                let stats = ApplyStats { statements, lines, skipped_constraints, ..ApplyStats::default() };
                progress.done(o, &stats);
                total.add(&stats);
            }
            _ => total.add(&replay(app, planned, client, o, selection, batched, &progress).await?),
        }
    }
    Ok(total)
}

/// A restore session: `synchronous_commit` off (a restore that dies is redone from the start
/// anyway, so waiting for each commit's flush buys nothing), `maintenance_work_mem` raised for
/// index builds to a share of 512 MiB per connection, and `work_mem` to a share of 256 MiB
/// (a foreign key's check hashes the referenced keys; in 4 MB it spills to disk), neither
/// lowered below the server's.
async fn connect_restore(
    app: &App,
    creds: &DbCredentials,
    target: &str,
    jobs: usize,
) -> Result<tokio_postgres::Client> {
    let client = app.db.connect_to(creds, Some(target), "backstop-restore").await?;
    let share = |total_kb: i64, floor_kb: i64| (total_kb / jobs.max(1) as i64).max(floor_kb);
    let raise = |name: &str, kb: i64| {
        format!(
            "SELECT set_config('{name}', \
             greatest((select setting::bigint from pg_settings where name = '{name}'), {kb})::text, false);"
        )
    };
    client
        .batch_execute(&format!(
            "SET synchronous_commit = off; {} {}",
            raise("maintenance_work_mem", share(512 * 1024, 64 * 1024)),
            raise("work_mem", share(256 * 1024, 32 * 1024))
        ))
        .await
        .map_err(db_error(&creds.display_target(target), "set up the restore session"))?;
    Ok(client)
}

/// The statements of a post-data object (small: DDL only), or `None` when it holds anything
/// else (then it is replayed as it is).
async fn post_data_statements(
    app: &App,
    planned: &Planned,
    object: &PlannedObject,
) -> Result<Option<(Vec<super::post::Statement>, u64)>> {
    let key = &object.key;
    let reader =
        BufReader::with_capacity(256 * 1024, decompress(key, open_checked(app, planned, object).await?));
    super::apply::statements(key, reader).await
}

/// The restored tables' row counts beside the manifest's estimates; where the manifest recorded
/// the rows dumped, a different count is an error.
async fn restored_counts(
    client: &tokio_postgres::Client,
    planned: &Planned,
    selection: Option<&TableSelection>,
    display: &str,
) -> Result<Vec<TableCount>> {
    let db_err = |context: &str| db_error(display, context);
    // The summary: restored row counts beside what the manifest estimated.
    let tables: Vec<(String, String, String, String)> = client
        .query(
            "select quote_ident(schemaname) || '.' || quote_ident(tablename), schemaname || '.' || tablename, \
             schemaname::text, tablename::text \
             from pg_tables where schemaname not in ('pg_catalog', 'information_schema') order by 2",
            &[],
        )
        .await
        .map_err(db_err("list restored tables"))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    if let Some(selection) = selection
        && planned.manifest_key.is_none()
    {
        // A dump without a manifest is checked here, against the tables it created.
        let names: Vec<(String, String)> = tables.iter().map(|(.., s, t)| (s.clone(), t.clone())).collect();
        all_matched(selection, &names, &planned.label)?;
    }
    let wanted = |schema: &str, table: &str| selection.is_none_or(|s| s.wants(schema, table));
    let tables: Vec<_> = tables.into_iter().filter(|(_, _, schema, table)| wanted(schema, table)).collect();
    let mut counts = Vec::new();
    // A hundred tables a query: a database of many small tables is not a round trip per table.
    for chunk in tables.chunks(100) {
        let known: Vec<Option<&PlannedTable>> = chunk
            .iter()
            .map(|(_, _, schema, table)| {
                planned.tables.iter().find(|t| t.schema == *schema && t.name == *table)
            })
            .collect();
        let query = chunk
            .iter()
            .zip(&known)
            .enumerate()
            .map(|(i, ((quoted, ..), known))| {
                let filter = known.and_then(|t| t.filter.as_deref()).unwrap_or_default();
                format!("select {i}, count(*) from only {quoted} {filter}")
            })
            .collect::<Vec<_>>()
            .join(" union all ");
        let mut rows = vec![0i64; chunk.len()];
        for r in client.query(&query, &[]).await.map_err(db_err("count rows"))? {
            rows[r.get::<_, i32>(0) as usize] = r.get(1);
        }
        for (((_, plain, ..), known), rows) in chunk.iter().zip(known).zip(rows) {
            let (estimate, expected) = known.map_or((None, None), |t| (t.estimate, t.rows));
            counts.push(TableCount { table: plain.clone(), rows, estimate, expected });
        }
    }
    // A backup that recorded its row counts must come back with exactly those.
    let wrong: Vec<String> = counts
        .iter()
        .filter(|t| t.expected.is_some_and(|e| e != t.rows as u64))
        .map(|t| format!("{} has {} rows, the backup {}", t.table, t.rows, t.expected.unwrap_or_default()))
        .collect();
    if !wrong.is_empty() {
        return Err(Error::Restore {
            dump: planned.label.clone(),
            line: 0,
            reason: format!("restored row counts differ from the manifest: {}", wrong.join("; ")),
        });
    }
    Ok(counts)
}

/// Maps a database error on `target` doing `context`.
fn db_error(target: &str, context: &str) -> impl FnOnce(tokio_postgres::Error) -> Error + use<> {
    let (target, context) = (target.to_owned(), context.to_owned());
    move |source| Error::Database { target, context, source }
}

/// `--tables`: a manifest says which tables the backup has (a pattern matching none is a typo,
/// said before anything happens) and which data parts hold them (the others are not read).
fn narrow(planned: &mut Planned, selection: &TableSelection) -> Result<()> {
    if planned.manifest_key.is_none() {
        return Ok(());
    }
    let names: Vec<(String, String)> =
        planned.tables.iter().map(|t| (t.schema.clone(), t.name.clone())).collect();
    all_matched(selection, &names, &planned.label)?;
    planned
        .objects
        .retain(|o| o.kind != "data" || o.table.as_deref().is_none_or(|t| selection.wants_sql_name(t)));
    Ok(())
}

/// Fails naming the patterns that match none of `tables` (`(schema, name)` of `label`), with
/// the tables there are.
fn all_matched(selection: &TableSelection, tables: &[(String, String)], label: &str) -> Result<()> {
    let unmatched = selection.unmatched(tables);
    if unmatched.is_empty() {
        return Ok(());
    }
    let mut have: Vec<String> = tables.iter().map(|(s, t)| format!("{s}.{t}")).collect();
    let more = have.len().saturating_sub(20);
    have.truncate(20);
    Err(Error::Payload(format!(
        "--tables {} matched no table of {label} (it has {}{})",
        unmatched.join(", "),
        have.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() }
    )))
}

/// Streams one object from the store through decompression into `client`.
async fn replay(
    app: &App,
    planned: &Planned,
    client: &tokio_postgres::Client,
    object: &PlannedObject,
    selection: Option<&TableSelection>,
    batched: bool,
    progress: &Progress,
) -> Result<ApplyStats> {
    let key = &object.key;
    let reader =
        BufReader::with_capacity(256 * 1024, decompress(key, open_checked(app, planned, object).await?));
    let stats = apply_selected(client, key, reader, selection, batched).await?;
    progress.done(object, &stats);
    Ok(stats)
}

/// Parts, bytes and rows replayed, the rate and the time left, logged as each part ends.
#[derive(Debug)]
struct Progress {
    start: Instant,
    parts: usize,
    total_bytes: Option<u64>,
    done_parts: std::sync::atomic::AtomicUsize,
    done_bytes: std::sync::atomic::AtomicU64,
}

impl Progress {
    fn new(planned: &Planned) -> Self {
        Progress {
            start: Instant::now(),
            parts: planned.objects.len(),
            total_bytes: planned.objects.iter().map(|o| o.uncompressed_bytes).sum(),
            done_parts: Default::default(),
            done_bytes: Default::default(),
        }
    }

    fn done(&self, object: &PlannedObject, stats: &ApplyStats) {
        use std::sync::atomic::Ordering::Relaxed;
        let parts = self.done_parts.fetch_add(1, Relaxed) + 1;
        let bytes = self.done_bytes.fetch_add(object.uncompressed_bytes.unwrap_or(0), Relaxed)
            + object.uncompressed_bytes.unwrap_or(0);
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / secs;
        let eta = self.total_bytes.filter(|_| rate > 0.0).map(|t| (t.saturating_sub(bytes)) as f64 / rate);
        tracing::info!(
            progress_done = bytes,
            progress_total = self.total_bytes.unwrap_or(0),
            progress_unit = "bytes",
            part = %object.key,
            parts = %format!("{parts}/{}", self.parts),
            sql = %crate::run::human_bytes(bytes),
            rows = stats.copy_rows,
            rate = %format!("{}/s", crate::run::human_bytes(rate as u64)),
            eta_s = eta.map(|e| e.round() as u64),
            "restore progress"
        );
    }
}

#[cfg(test)]
mod checked_tests {
    use tokio::io::AsyncReadExt;

    use super::Checked;

    #[tokio::test]
    async fn a_replay_read_that_differs_from_the_manifest_fails_at_its_end() {
        let data = b"COPY t FROM stdin;\n1\n\\.\n".repeat(1000);
        let good = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
        let mut out = Vec::new();
        Checked::new(&data[..], good.clone(), "k".into()).read_to_end(&mut out).await.unwrap();
        assert_eq!(out, data);
        let mut tampered = data.clone();
        tampered[10] ^= 1;
        let err =
            Checked::new(&tampered[..], good, "k".into()).read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(err.to_string().contains("changed since it was checked"), "{err}");
    }

    #[tokio::test]
    async fn the_check_runs_through_decompression_to_the_stored_object_s_end() {
        let sql = b"SELECT 1;\n".repeat(10_000);
        let stored = zstd::encode_all(&sql[..], 3).unwrap();
        let wrong = "0".repeat(64);
        let raw: Box<dyn tokio::io::AsyncRead + Unpin + Send> =
            Box::new(Checked::new(std::io::Cursor::new(stored), wrong, "k.sql.zst".into()));
        // As a replay reads it: through a buffer, line by line, to the end.
        let mut reader = tokio::io::BufReader::new(super::decompress("k.sql.zst", raw));
        let mut line = Vec::new();
        let err = loop {
            line.clear();
            match tokio::io::AsyncBufReadExt::read_until(&mut reader, b'\n', &mut line).await {
                Ok(0) => panic!("the end was reached without the check"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("changed since it was checked"), "{err}");
    }
}
