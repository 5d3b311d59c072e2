//! db-backup: dump each database, compress, stream into a multipart upload, check, then write
//! the manifest. Any doubt (pg_dump's exit status, a missing end marker, a size mismatch, the
//! deadline) aborts the upload and writes no manifest.

mod keys;
mod manifest;
mod options;
mod pg_dump;
mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

pub use keys::{dump_key, key_segment, manifest_key};
pub use manifest::{CompressionInfo, EngineInfo, FORMAT, Manifest, ObjectEntry};
pub use options::{BackupOptions, Compression, Engine, pattern_matches};
pub use pg_dump::{check_compatible, parse_major};

use crate::App;
use crate::db::{self, Preflight};
use crate::error::{Error, Result};
use crate::run::{self, Job, JobReport, RunContext, human_bytes};
use crate::secrets::DbCredentials;
use crate::store::{PartSizer, StreamUpload};

/// How often a long dump logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The db-backup job.
#[derive(Debug)]
pub struct DbBackup;

/// What happened to one database.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseOutcome {
    pub database: String,
    pub status: run::Status,
    pub key: Option<String>,
    pub manifest_key: Option<String>,
    pub bytes: Option<u64>,
    pub uncompressed_bytes: Option<u64>,
    pub sha256: Option<String>,
    pub duration_ms: u64,
    pub server_version: Option<String>,
    pub tables: Option<usize>,
    pub error: Option<String>,
}

impl DatabaseOutcome {
    fn done(database: &str, done: Done, duration_ms: u64) -> Self {
        let object = done.manifest.as_ref().map(|m| &m.objects[0]);
        DatabaseOutcome {
            database: database.to_owned(),
            status: run::Status::Succeeded,
            key: object.map(|o| o.key.clone()).or(done.planned_key),
            bytes: object.map(|o| o.bytes),
            uncompressed_bytes: object.map(|o| o.uncompressed_bytes),
            sha256: object.map(|o| o.sha256.clone()),
            manifest_key: done.manifest_key,
            duration_ms,
            server_version: Some(done.preflight.server_version),
            tables: Some(done.preflight.tables.len()),
            error: None,
        }
    }

    fn failed(database: &str, error: &Error, duration_ms: u64) -> Self {
        DatabaseOutcome {
            database: database.to_owned(),
            status: run::Status::Failed,
            key: None,
            manifest_key: None,
            bytes: None,
            uncompressed_bytes: None,
            sha256: None,
            duration_ms,
            server_version: None,
            tables: None,
            error: Some(error.report()),
        }
    }
}

#[async_trait]
impl Job for DbBackup {
    const NAME: &'static str = "db-backup";
    type Options = BackupOptions;

    fn is_dry_run(options: &BackupOptions) -> bool {
        options.dry_run
    }

    async fn run(app: &App, options: &BackupOptions, ctx: &RunContext) -> JobReport {
        if let Err(e) = options.validate() {
            return JobReport::failed("invalid payload", e);
        }
        let creds = match app.db.credentials(false).await {
            Ok(c) => c,
            Err(e) => return JobReport::failed("credentials", e),
        };
        let databases: Vec<String> = if options.databases.is_empty() {
            match db::database_name(&creds, None) {
                Ok(d) => vec![d.to_owned()],
                Err(e) => return JobReport::failed("no database", e),
            }
        } else {
            options.databases.clone()
        };

        // One look at the binary per run, not per database.
        let engine = match pg_dump::version(&app.config.pg_dump).await {
            Ok(v) => v,
            Err(e) => return JobReport::failed(databases.join(", "), e),
        };

        let mut outcomes = Vec::new();
        let mut errors = Vec::new();
        for database in &databases {
            let clock = Instant::now();
            let result = backup_database(app, database, options, &engine, ctx).await;
            let duration_ms = clock.elapsed().as_millis() as u64;
            outcomes.push(match result {
                Ok(done) => DatabaseOutcome::done(database, done, duration_ms),
                Err(e) => {
                    let outcome = DatabaseOutcome::failed(database, &e, duration_ms);
                    errors.push(e);
                    outcome
                }
            });
        }
        let stored: u64 = outcomes.iter().filter_map(|o| o.bytes).sum();
        JobReport {
            outputs: serde_json::json!({ "databases": outcomes, "dry_run": options.dry_run, "tag": options.tag }),
            what: databases.join(", "),
            detail: (!options.dry_run).then(|| human_bytes(stored)),
            error: run::combine(databases.len(), errors),
        }
    }
}

/// The result of one database's backup (or its plan, in a dry run).
#[derive(Debug)]
struct Done {
    preflight: Preflight,
    planned_key: Option<String>,
    manifest: Option<Manifest>,
    manifest_key: Option<String>,
}

async fn backup_database(
    app: &App,
    database: &str,
    options: &BackupOptions,
    (engine_version, pg_dump_major): &(String, i32),
    ctx: &RunContext,
) -> Result<Done> {
    let started = Timestamp::now();
    let clock = Instant::now();
    let (client, creds) = app.db.connect(Some(database), "backstop-preflight").await?;
    let mut preflight = Preflight::read(&client, &creds.display_target(database)).await?;
    drop(client);
    if !options.include_tables.is_empty() {
        preflight
            .tables
            .retain(|t| options.include_tables.iter().any(|p| pattern_matches(p, &t.schema, &t.name)));
    }
    preflight
        .tables
        .retain(|t| !options.exclude_tables.iter().any(|p| pattern_matches(p, &t.schema, &t.name)));

    check_compatible(database, *pg_dump_major, preflight.server_major())?;

    let key = dump_key(
        &app.config.prefix,
        database,
        &app.config.env,
        &ctx.started,
        options.compression.extension(),
    );
    tracing::info!(
        database, server = %preflight.server_version, size = %human_bytes(preflight.database_bytes.max(0) as u64),
        tables = preflight.tables.len(), engine = %engine_version, key = %app.store.locate(&key), "preflight done"
    );
    if options.dry_run {
        app.store.check().await?;
        return Ok(Done { preflight, planned_key: Some(key), manifest: None, manifest_key: None });
    }

    let object =
        dump_to_store(app, &creds, database, options, &key, preflight.database_bytes.max(0) as u64, ctx)
            .await?;

    let finished = Timestamp::now();
    let manifest = Manifest {
        format: FORMAT,
        database: database.to_owned(),
        env: app.config.env.clone(),
        run_id: ctx.run_id.clone(),
        tag: options.tag.clone(),
        engine: EngineInfo { name: "pg_dump".into(), version: engine_version.clone() },
        compression: CompressionInfo { algorithm: options.compression, level: options.level() },
        server_version: preflight.server_version.clone(),
        layout: "single".into(),
        bytes: object.bytes,
        uncompressed_bytes: object.uncompressed_bytes,
        objects: vec![object],
        started,
        finished,
        duration_ms: clock.elapsed().as_millis() as u64,
        schema_only: options.schema_only,
        include_tables: options.include_tables.clone(),
        exclude_tables: options.exclude_tables.clone(),
        tables: preflight.tables.clone(),
    };
    let manifest_key = manifest_key(&key);
    let body = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
    app.store.put(&manifest_key, body.into(), "application/json").await?;
    tracing::info!(database, key = %app.store.locate(&key), bytes = manifest.bytes, "backup stored");
    Ok(Done { preflight, planned_key: None, manifest: Some(manifest), manifest_key: Some(manifest_key) })
}

/// Runs pg_dump into the store. Returns the stored object only when everything checked out;
/// otherwise the upload is aborted and the error says why.
async fn dump_to_store(
    app: &App,
    creds: &DbCredentials,
    database: &str,
    options: &BackupOptions,
    key: &str,
    estimate: u64,
    ctx: &RunContext,
) -> Result<ObjectEntry> {
    let dump_err = |reason: String| Error::Dump { database: database.to_owned(), reason };
    let mut child = pg_dump::command(&app.config.pg_dump, creds, &app.config.db_tls, database, options)
        .spawn()
        .map_err(|e| dump_err(format!("cannot start {}: {e}", app.config.pg_dump.display())))?;
    let stderr = tokio::spawn(pg_dump::collect_stderr(child.stderr.take().expect("stderr is piped")));
    let tap = stream::Tap::new(child.stdout.take().expect("stdout is piped"));
    let (read, tail) = (tap.counter(), tap.tail());
    let compressed = stream::compress(tap, options.compression, options.level());

    let sizer = PartSizer::new(&app.config.s3, Some(estimate));
    let mut upload = StreamUpload::begin(
        app.store.clone(),
        key,
        options.compression.content_type(),
        sizer,
        app.config.s3.upload_concurrency,
    )
    .await?;
    let progress = tokio::spawn(report_progress(database.to_owned(), read.clone(), upload.written()));

    let work = async {
        upload.copy_from(compressed).await?;
        let status = child.wait().await.map_err(|e| dump_err(format!("waiting for pg_dump: {e}")))?;
        if !status.success() {
            let stderr = stderr.await.unwrap_or_default();
            return Err(dump_err(format!("pg_dump exited with {status}: {stderr}")));
        }
        let tail = tail.lock().expect("tail lock").clone();
        if !tail.windows(pg_dump::COMPLETE_MARKER.len()).any(|w| w == pg_dump::COMPLETE_MARKER) {
            return Err(dump_err(
                "pg_dump's output does not end with its completion line; the dump is truncated".into(),
            ));
        }
        Ok(())
    };
    let outcome = tokio::select! {
        r = work => r,
        () = ctx.stop_signal() => Err(Error::Deadline {
            during: format!("dumping {database}"),
            margin_s: ctx.margin().as_secs(),
        }),
    };
    progress.abort();
    if let Err(e) = outcome {
        let _ = child.start_kill();
        upload.abort().await;
        return Err(e);
    }
    let uncompressed_bytes = read.load(Ordering::Relaxed);
    let stats = upload.complete().await?;

    // Trust, then verify: the stored object must be exactly what was streamed.
    let listed = app.store.list(key).await?;
    match listed.iter().find(|o| o.key == key) {
        Some(o) if o.size == stats.bytes => {}
        found => {
            // A mismatch means the store holds something other than what we hashed: remove it.
            let _ = app.store.delete(key).await;
            return Err(Error::Store {
                op: "verify",
                location: app.store.locate(key),
                detail: format!(
                    "stored size {:?} differs from the {} bytes uploaded",
                    found.map(|o| o.size),
                    stats.bytes
                ),
                source: None,
                retryable: true,
            });
        }
    }
    Ok(ObjectEntry {
        key: stats.key,
        kind: "dump".into(),
        bytes: stats.bytes,
        uncompressed_bytes,
        sha256: stats.sha256,
        parts: stats.parts,
    })
}

/// Logs bytes read and stored, and the rate, at a steady interval until aborted.
async fn report_progress(database: String, read: Arc<AtomicU64>, written: Arc<AtomicU64>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (r, w) = (read.load(Ordering::Relaxed), written.load(Ordering::Relaxed));
        let rate = r as f64 / start.elapsed().as_secs_f64().max(0.001);
        tracing::info!(
            database = %database, dumped = %human_bytes(r), stored = %human_bytes(w),
            rate = %format!("{}/s", human_bytes(rate as u64)), "dump in progress"
        );
    }
}
