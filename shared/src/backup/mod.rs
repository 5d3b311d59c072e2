//! db-backup: dump each database, compress, stream into a multipart upload, check, then write
//! the manifest. Any doubt (pg_dump's exit status, a missing end marker, a size mismatch, the
//! deadline) aborts the upload and writes no manifest.

mod manifest;
pub mod native;
mod options;
mod pg_dump;
mod progress;
pub(crate) mod stream;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

pub use crate::keys::{backup_stem, dump_key, key_segment, manifest_key};
pub use manifest::{CompressionInfo, EngineInfo, FORMAT, Manifest, ObjectEntry};
pub(crate) use options::glob;
pub use options::{BackupOptions, Compression, Engine, Layout, Level, MAX_JOBS, pattern_matches};
pub use pg_dump::{check_compatible, parse_major};

use crate::App;
use crate::db::{self, Preflight, TableInfo};
use crate::error::{Error, Result, StoreKind};
use crate::run::{self, Job, JobReport, RunContext, human_bytes};
use crate::secrets::DbCredentials;

/// The db-backup job.
#[derive(Debug)]
pub struct DbBackup;

/// What happened to one database.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseOutcome {
    pub database: String,
    pub status: run::Status,
    /// The dump object, or the stem of a set's parts.
    pub key: Option<String>,
    pub engine: Option<String>,
    /// Objects stored (1 for a single dump).
    pub objects: Option<usize>,
    pub manifest_key: Option<String>,
    pub bytes: Option<u64>,
    pub uncompressed_bytes: Option<u64>,
    pub sha256: Option<String>,
    pub duration_ms: u64,
    pub server_version: Option<String>,
    pub tables: Option<usize>,
    /// What the backup changed to stay restorable, or could not keep (see the manifest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

impl DatabaseOutcome {
    fn done(database: &str, done: Done, duration_ms: u64) -> Self {
        let m = done.manifest.as_ref();
        let single = m.filter(|m| m.objects.len() == 1).map(|m| &m.objects[0]);
        DatabaseOutcome {
            database: database.to_owned(),
            status: run::Status::Succeeded,
            key: Some(done.key),
            engine: Some(done.engine),
            objects: m.map(|m| m.objects.len()),
            bytes: m.map(|m| m.bytes),
            uncompressed_bytes: m.map(|m| m.uncompressed_bytes),
            sha256: single.map(|o| o.sha256.clone()),
            manifest_key: done.manifest_key,
            duration_ms,
            server_version: Some(done.preflight.server_version),
            tables: Some(done.preflight.tables.len()),
            warnings: m.map(|m| m.warnings.clone()).unwrap_or(done.warnings),
            error: None,
        }
    }

    fn failed(database: &str, error: &Error, duration_ms: u64) -> Self {
        DatabaseOutcome {
            database: database.to_owned(),
            status: run::Status::Failed,
            key: None,
            engine: None,
            objects: None,
            manifest_key: None,
            bytes: None,
            uncompressed_bytes: None,
            sha256: None,
            duration_ms,
            server_version: None,
            tables: None,
            warnings: Vec::new(),
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
        let engine = match options.engine {
            Engine::PgDump => match pg_dump::version(&app.config.pg_dump).await {
                Ok(v) => Some(v),
                Err(e) => return JobReport::failed(databases.join(", "), e),
            },
            Engine::Native => None,
        };

        let mut outcomes = Vec::new();
        let mut errors = Vec::new();
        for database in &databases {
            let clock = Instant::now();
            let result = backup_database(app, database, options, engine.as_ref(), ctx).await;
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
            detail: detail(options.dry_run, stored, outcomes.iter().map(|o| o.warnings.len()).sum()),
            error: run::combine(databases.len(), errors),
        }
    }
}

/// The subject line's detail: the size stored, and warnings (each in the message's details).
fn detail(dry_run: bool, stored: u64, warnings: usize) -> Option<String> {
    let warned = match warnings {
        0 => None,
        1 => Some("1 warning".to_owned()),
        n => Some(format!("{n} warnings")),
    };
    let size = (!dry_run).then(|| human_bytes(stored));
    match (size, warned) {
        (Some(s), Some(w)) => Some(format!("{s}, {w}")),
        (s, w) => s.or(w),
    }
}

/// The result of one database's backup (or its plan, in a dry run).
#[derive(Debug)]
struct Done {
    preflight: Preflight,
    /// The dump object, or the stem of a set.
    key: String,
    engine: String,
    manifest: Option<Manifest>,
    manifest_key: Option<String>,
    /// A dry run's warnings (a backup's are in its manifest).
    warnings: Vec<String>,
}

/// pg_dump standing in for the native engine, for a database holding what the native engine
/// cannot write.
#[derive(Debug)]
struct Fallback {
    pg_dump: (String, i32),
    /// pg_dump patterns (exact names) of the tables whose rows are not wanted.
    rows_left_out: Vec<String>,
    /// Said in the manifest, the run record and the message.
    warning: String,
}

/// Where the native engine cannot write an object of `database`, pg_dump dumps it instead when
/// one no older than the server is installed (and `no_fallback` is not set); otherwise the
/// backup fails up front, naming the objects and why pg_dump could not stand in.
async fn fallback(
    app: &App,
    client: &tokio_postgres::Client,
    database: &str,
    options: &BackupOptions,
    preflight: &Preflight,
) -> Result<Option<Fallback>> {
    let cannot = native::unsupported(client, database).await?;
    if cannot.is_empty() {
        return Ok(None);
    }
    let refuse = |why: String| native::refusal(database, &cannot, &why);
    if options.no_fallback {
        return Err(refuse("no_fallback is set, so pg_dump does not stand in; use engine pg_dump".into()));
    }
    let server = preflight.server_major();
    let (line, major) = pg_dump::version(&app.config.pg_dump).await.map_err(|e| {
        refuse(format!("pg_dump could not stand in: {}; install pg_dump {server} or later", e.report()))
    })?;
    if major < server {
        return Err(refuse(format!(
            "pg_dump could not stand in: {line} is older than the server ({server}); install pg_dump {server} or later"
        )));
    }
    let rows_left_out = preflight
        .tables
        .iter()
        .filter(|t| !wanted(options, &t.schema, &t.name))
        .map(|t| format!("{}.{}", exact_pattern(&t.schema), exact_pattern(&t.name)))
        .collect();
    let shown = cannot.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    let more = if cannot.len() > 5 { format!(" and {} more", cannot.len() - 5) } else { String::new() };
    let warning = format!(
        "the native engine cannot dump {shown}{more}: dumped with {line} instead (one plain-format object)"
    );
    tracing::warn!(database, "{warning}");
    Ok(Some(Fallback { pg_dump: (line, major), rows_left_out, warning }))
}

/// A pg_dump pattern matching exactly `name` (double quotes make `*`, `?`, `.` and capitals
/// literal).
fn exact_pattern(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What an engine stored, for the manifest.
#[derive(Debug)]
struct Stored {
    engine: EngineInfo,
    layout: &'static str,
    objects: Vec<ObjectEntry>,
    tables: Vec<TableInfo>,
    snapshot: Option<Timestamp>,
    counts: std::collections::BTreeMap<String, usize>,
    warnings: Vec<String>,
}

async fn backup_database(
    app: &App,
    database: &str,
    options: &BackupOptions,
    pg_dump: Option<&(String, i32)>,
    ctx: &RunContext,
) -> Result<Done> {
    let started = Timestamp::now();
    let clock = Instant::now();
    let (client, creds) = app.db.connect(Some(database), "backstop-preflight").await?;
    let mut preflight = Preflight::read(&client, &creds.display_target(database)).await?;
    let fallback = match pg_dump {
        Some(_) => None,
        None => fallback(app, &client, database, options, &preflight).await?,
    };
    drop(client);
    let pg_dump = pg_dump.or(fallback.as_ref().map(|f| &f.pg_dump));
    if let Some((_, major)) = pg_dump {
        check_compatible(database, *major, preflight.server_major())?;
        preflight.tables.retain(|t| wanted(options, &t.schema, &t.name));
    }
    // pg_dump standing in for the native engine keeps the native meaning of the table
    // patterns: the whole schema, the rows of the wanted tables only.
    let rows_left_out: Option<&[String]> = fallback.as_ref().map(|f| f.rows_left_out.as_slice());
    let warnings: Vec<String> = fallback.iter().map(|f| f.warning.clone()).collect();

    let stem = backup_stem(&app.config.prefix, database, &app.config.env, &ctx.started, &ctx.run_id);
    let single = pg_dump.is_some() || options.layout == Layout::Single;
    let key = if single { dump_key(&stem, options.compression.extension()) } else { stem };
    let level = options.level(single);
    let engine_name = if pg_dump.is_some() { "pg_dump" } else { native::ENGINE };
    tracing::info!(
        database, server = %preflight.server_version, size = %human_bytes(preflight.database_bytes.max(0) as u64),
        tables = preflight.tables.len(), engine = engine_name, key = %app.store.locate(&key), "preflight done"
    );
    if options.dry_run {
        app.store.check().await?;
        return Ok(Done {
            preflight,
            key,
            engine: engine_name.into(),
            manifest: None,
            manifest_key: None,
            warnings,
        });
    }

    let work = async {
        match pg_dump {
            Some((version, _)) => {
                let estimate = preflight.database_bytes.max(0) as u64;
                let object =
                    dump_to_store(app, &creds, database, options, rows_left_out, &key, estimate).await?;
                verify_stored(app, &key, std::slice::from_ref(&object)).await?;
                Ok(Stored {
                    engine: EngineInfo { name: "pg_dump".into(), version: version.clone() },
                    layout: "single",
                    objects: vec![object],
                    tables: preflight.tables.clone(),
                    snapshot: None,
                    counts: Default::default(),
                    warnings: warnings.clone(),
                })
            }
            None => {
                let settings = native::Settings {
                    jobs: options.jobs(),
                    compression: options.compression,
                    level,
                    single,
                    schema_only: options.schema_only,
                    lock_timeout: options.lock_timeout(),
                    split_pages: (options.split_mb.unwrap_or(128) * 1024 * 1024 / 8192) as i64,
                    schema: native::SchemaOptions {
                        no_owner: options.no_owner,
                        no_privileges: options.no_privileges,
                        no_large_objects: options.schema_only,
                    },
                };
                let dumped = native::dump(app, &creds, database, &settings, &key, |t| {
                    wanted(options, &t.schema, &t.name)
                })
                .await?;
                verify_stored(app, &key, &dumped.objects).await?;
                Ok(Stored {
                    engine: EngineInfo {
                        name: native::ENGINE.into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                    },
                    layout: if single { "single" } else { "set" },
                    objects: dumped.objects,
                    tables: dumped.tables,
                    snapshot: Some(dumped.snapshot),
                    counts: dumped.counts,
                    warnings: dumped.warnings,
                })
            }
        }
    };
    let outcome = tokio::select! {
        r = work => r,
        () = ctx.stop_signal() => Err(Error::Deadline {
            during: format!("dumping {database}"),
            margin_s: ctx.margin().as_secs(),
        }),
    };
    let stored = match outcome {
        Ok(s) => s,
        Err(e) => {
            sweep(app, ctx, &key, single, None).await;
            return Err(e);
        }
    };

    let finished = Timestamp::now();
    let manifest = Manifest {
        format: FORMAT,
        database: database.to_owned(),
        env: app.config.env.clone(),
        run_id: ctx.run_id.clone(),
        tag: options.tag.clone(),
        engine: stored.engine,
        compression: CompressionInfo::new(options.compression, level),
        server_version: preflight.server_version.clone(),
        layout: stored.layout.into(),
        snapshot: stored.snapshot,
        counts: stored.counts,
        bytes: stored.objects.iter().map(|o| o.bytes).sum(),
        uncompressed_bytes: stored.objects.iter().map(|o| o.uncompressed_bytes).sum(),
        objects: stored.objects,
        started,
        finished,
        duration_ms: clock.elapsed().as_millis() as u64,
        schema_only: options.schema_only,
        include_tables: options.include_tables.clone(),
        exclude_tables: options.exclude_tables.clone(),
        tables: stored.tables,
        warnings: stored.warnings,
    };
    let manifest_key = manifest_key(&key);
    let body = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
    if let Err(e) = app.store.put(&manifest_key, body.into(), "application/json").await {
        // The PUT may have landed and only its answer been lost: the manifest goes first, or
        // a "newest backup" with no parts would be left for retention to protect.
        sweep(app, ctx, &key, single, Some(&manifest_key)).await;
        return Err(e);
    }
    tracing::info!(database, key = %app.store.locate(&key), bytes = manifest.bytes, objects = manifest.objects.len(), "backup stored");
    Ok(Done {
        preflight,
        key,
        engine: engine_name.into(),
        manifest: Some(manifest),
        manifest_key: Some(manifest_key),
        warnings: Vec::new(),
    })
}

/// Are `schema.name`'s rows wanted by the include/exclude patterns?
fn wanted(options: &BackupOptions, schema: &str, name: &str) -> bool {
    (options.include_tables.is_empty()
        || options.include_tables.iter().any(|p| pattern_matches(p, schema, name)))
        && !options.exclude_tables.iter().any(|p| pattern_matches(p, schema, name))
}

/// Trust, then verify: every stored object must have exactly the size that was streamed.
async fn verify_stored(app: &App, prefix: &str, objects: &[ObjectEntry]) -> Result<()> {
    let listed: std::collections::HashMap<String, u64> =
        app.store.list(prefix).await?.into_iter().map(|o| (o.key, o.size)).collect();
    for o in objects {
        let found = listed.get(&o.key).copied();
        if found != Some(o.bytes) {
            return Err(Error::Store {
                op: "verify",
                location: app.store.locate(&o.key),
                detail: format!("stored size {found:?} differs from the {} bytes uploaded", o.bytes),
                source: None,
                retryable: true,
                kind: StoreKind::Other,
            });
        }
    }
    Ok(())
}

/// Removes what a failed backup stored under `key`: aborts its open uploads and deletes its
/// objects in batches (DeleteObjects), within the time the run has before its deadline (the run
/// record and the outcome still have to be written). A request already on the wire when the run
/// failed can land after that, so where the budget allows the sweep looks again a moment later.
/// What is left then has no manifest, so it is no backup; retention-prune removes such objects
/// after a day.
async fn sweep(app: &App, ctx: &RunContext, key: &str, single: bool, manifest: Option<&str>) {
    const SETTLE: Duration = Duration::from_millis(250);
    let prefix = if single { key.to_owned() } else { format!("{key}/") };
    let budget = ctx.cleanup_budget();
    let until = budget.map(|b| tokio::time::Instant::now() + b);
    let work = async {
        sweep_pass(app, &prefix, key, single, manifest).await;
        if until.is_none_or(|u| u.saturating_duration_since(tokio::time::Instant::now()) > SETTLE * 3) {
            tokio::time::sleep(SETTLE).await;
            sweep_pass(app, &prefix, key, single, manifest).await;
        }
    };
    match budget {
        None => work.await,
        Some(budget) => {
            if tokio::time::timeout(budget, work).await.is_err() {
                tracing::warn!(
                    prefix,
                    "the deadline stopped the removal of the failed backup's parts; without a manifest they are no \
                     backup, and retention-prune removes them after a day"
                );
            }
        }
    }
}

/// One look at a failed backup's prefix: deletes its manifest if one may have landed (and
/// stops there when that fails: a manifest must never name deleted parts), aborts open
/// uploads, deletes objects.
async fn sweep_pass(app: &App, prefix: &str, key: &str, single: bool, manifest: Option<&str>) {
    if let Some(m) = manifest
        && let Err(e) = app.store.delete(m).await
    {
        tracing::warn!(key = m, error = %e.report(), "could not delete the failed run's manifest; its parts are kept with it");
        return;
    }
    if let Ok(pending) = app.store.list_multipart(prefix).await {
        for p in pending {
            let _ = app.store.abort_multipart(&p.key, &p.upload_id).await;
        }
    }
    match app.store.list(prefix).await {
        Ok(objects) => {
            let keys: Vec<String> = objects
                .into_iter()
                .map(|o| o.key)
                .filter(|k| if single { k == key } else { k.starts_with(prefix) })
                .collect();
            if keys.is_empty() {
                return;
            }
            match app.store.delete_many(&keys).await {
                Ok(failed) => {
                    for (k, e) in failed {
                        tracing::warn!(key = %k, error = %e.report(), "could not delete a part of the failed backup");
                    }
                }
                Err(e) => {
                    tracing::warn!(prefix, error = %e.report(), "could not delete the failed backup's parts")
                }
            }
        }
        Err(e) => tracing::warn!(prefix, error = %e.report(), "could not list the failed backup's parts"),
    }
}

/// Runs pg_dump into the store. Returns the stored object only when everything checked out:
/// pg_dump exited 0 and its output ends with its completion line; otherwise the upload is
/// aborted and the error says why.
async fn dump_to_store(
    app: &App,
    creds: &DbCredentials,
    database: &str,
    options: &BackupOptions,
    rows_left_out: Option<&[String]>,
    key: &str,
    estimate: u64,
) -> Result<ObjectEntry> {
    let dump_err = {
        let database = database.to_owned();
        move |reason: String| Error::Dump { database: database.clone(), reason }
    };
    // kill_on_drop: however this ends (an error, the deadline dropping the future), pg_dump
    // goes with the producer that owns it.
    let mut child =
        pg_dump::command(&app.config.pg_dump, creds, &app.config.db_tls, database, options, rows_left_out)
            .spawn()
            .map_err(|e| dump_err(format!("cannot start {}: {e}", app.config.pg_dump.display())))?;
    let stderr = tokio::spawn(pg_dump::collect_stderr(child.stderr.take().expect("stderr is piped")));
    let mut tap = stream::Tap::new(child.stdout.take().expect("stdout is piped"));
    let (read, tail) = (tap.counter(), tap.tail());
    let _ticker = progress::Progress::counting(database, 0, estimate, read).start();

    let target = stream::Target {
        key,
        kind: "dump",
        compression: options.compression,
        level: options.level(true),
        estimate,
        budget: stream::Budget::shared(&app.config.s3, 1),
    };
    let stored = stream::store_compressed(app, target, |mut sink| async move {
        tokio::io::copy(&mut tap, &mut sink)
            .await
            .map_err(|e| dump_err(format!("reading pg_dump's output failed: {e}")))?;
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
        Ok((sink, ()))
    })
    .await?;
    Ok(stored.0)
}
