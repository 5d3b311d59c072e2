//! `backstop restore`: find the backup, verify every object against its manifest before the
//! target is touched, check the target (refuse a non-empty one unless told), then stream the
//! dump from the store through decompression into the database.

use std::path::PathBuf;
use std::time::Instant;

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use super::apply::{ApplyStats, apply_plain};
use crate::App;
use crate::catalog::{list_backups, read_manifest};
use crate::db::quote_ident;
use crate::error::{Error, Result};
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
}

/// A dump to replay: where it is, and what it should hash to.
#[derive(Debug, Clone)]
struct Planned {
    label: String,
    manifest_key: Option<String>,
    /// `(key, sha256)` in restore order; sha256 is `None` for dumps without a manifest.
    objects: Vec<(String, Option<String>)>,
    estimates: Vec<(String, Option<i64>)>,
    local: Option<PathBuf>,
}

async fn resolve(app: &App, source: &RestoreSource) -> Result<Planned> {
    let store = app.store.as_ref();
    let from_manifest = |manifest_key: String, m: crate::backup::Manifest| Planned {
        label: store.locate(&m.objects.first().map(|o| o.key.clone()).unwrap_or_default()),
        manifest_key: Some(manifest_key),
        objects: m.objects.iter().map(|o| (o.key.clone(), Some(o.sha256.clone()))).collect(),
        estimates: m.tables.iter().map(|t| (format!("{}.{}", t.schema, t.name), t.rows_estimate)).collect(),
        local: None,
    };
    match source {
        RestoreSource::Latest { database } => {
            let newest =
                list_backups(store, &app.config.prefix, database.as_deref()).await?.into_iter().next();
            let entry = newest.ok_or_else(|| {
                Error::Payload(format!(
                    "no backup{} under {} has a manifest",
                    database.as_deref().map(|d| format!(" of {d}")).unwrap_or_default(),
                    store.locate(&format!("{}db/", app.config.prefix))
                ))
            })?;
            Ok(from_manifest(entry.manifest_key, entry.manifest))
        }
        RestoreSource::Key(key) => {
            let manifest_key =
                if key.ends_with(".manifest.json") { key.clone() } else { format!("{key}.manifest.json") };
            if store.get(&manifest_key).await?.is_some() {
                let m = read_manifest(store, &manifest_key).await?;
                return Ok(from_manifest(manifest_key, m));
            }
            if key.ends_with(".manifest.json") {
                return Err(Error::Payload(format!("{} does not exist", store.locate(key))));
            }
            // A part of a backup set (`{stem}/pre-data.sql.zst`): the set is what restores.
            if let Some((stem, _)) = key.rsplit_once('/') {
                let set_manifest = format!("{stem}.manifest.json");
                if store.get(&set_manifest).await?.is_some() {
                    let m = read_manifest(store, &set_manifest).await?;
                    return Ok(from_manifest(set_manifest, m));
                }
            }
            // A dump without a manifest (another tool's): restorable, but nothing to verify.
            Ok(Planned {
                label: store.locate(key),
                manifest_key: None,
                objects: vec![(key.clone(), None)],
                estimates: vec![],
                local: None,
            })
        }
        RestoreSource::File(path) => Ok(Planned {
            label: path.display().to_string(),
            manifest_key: None,
            objects: vec![(path.display().to_string(), None)],
            estimates: vec![],
            local: Some(path.clone()),
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

/// Decompresses by the name's suffix.
fn decompress(key: &str, raw: Box<dyn AsyncRead + Unpin + Send>) -> Box<dyn AsyncRead + Unpin + Send> {
    let buffered = BufReader::with_capacity(256 * 1024, raw);
    if key.ends_with(".zst") {
        Box::new(ZstdDecoder::new(buffered))
    } else if key.ends_with(".gz") {
        Box::new(GzipDecoder::new(buffered))
    } else {
        Box::new(buffered)
    }
}

async fn verify(app: &App, planned: &Planned) -> Result<Vec<ObjectCheck>> {
    let mut checks = Vec::new();
    for (key, expected) in &planned.objects {
        let Some(expected) = expected else {
            checks.push(ObjectCheck { key: key.clone(), bytes: None, sha256: None, verified: false });
            continue;
        };
        let mut reader = open(app, planned, key).await?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = reader.read(&mut buf).await.map_err(|e| Error::io(format!("reading {key}"), e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
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
            });
        }
        checks.push(ObjectCheck {
            key: key.clone(),
            bytes: Some(bytes),
            sha256: Some(sha256),
            verified: true,
        });
    }
    Ok(checks)
}

/// Runs a restore as requested.
pub async fn restore(app: &App, req: &RestoreRequest) -> Result<RestoreReport> {
    let clock = Instant::now();
    let planned = resolve(app, &req.source).await?;
    // Every object is read and checked before the target is touched.
    let objects = verify(app, &planned).await?;

    let creds = DbCredentials::from_url(&req.target_url)?;
    let target = req
        .database
        .clone()
        .or(creds.dbname.clone())
        .ok_or_else(|| Error::Payload("the target URL names no database (or pass --database)".into()))?;
    let display = creds.display_target(&target);
    let db_err = |context: &str| {
        let (target, context) = (display.clone(), context.to_owned());
        move |source| Error::Database { target, context, source }
    };
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
    let client = app.db.connect_to(&creds, Some(&target), "backstop-restore").await?;
    let mut total = ApplyStats::default();
    for (key, _) in &planned.objects {
        tracing::info!(object = %key, target = %report.target, "replaying");
        let reader = BufReader::with_capacity(256 * 1024, decompress(key, open(app, &planned, key).await?));
        let stats = apply_plain(&client, key, reader, req.single_transaction).await?;
        total.statements += stats.statements;
        total.copies += stats.copies;
        total.copy_bytes += stats.copy_bytes;
        total.lines += stats.lines;
    }
    report.applied = Some(total);

    // The summary: restored row counts beside what the manifest estimated.
    let tables: Vec<(String, String)> = client
        .query(
            "select quote_ident(schemaname) || '.' || quote_ident(tablename), schemaname || '.' || tablename \
             from pg_tables where schemaname not in ('pg_catalog', 'information_schema') order by 2",
            &[],
        )
        .await
        .map_err(db_err("list restored tables"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (quoted, plain) in tables {
        let rows: i64 = client
            .query_one(&format!("select count(*) from {quoted}"), &[])
            .await
            .map_err(db_err("count rows"))?
            .get(0);
        let estimate = planned.estimates.iter().find(|(n, _)| *n == plain).and_then(|(_, e)| *e);
        report.tables.push(TableCount { table: plain, rows, estimate });
    }
    report.duration_ms = clock.elapsed().as_millis() as u64;
    Ok(report)
}
