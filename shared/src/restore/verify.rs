//! `verify`: the restore drill backup guides recommend doing by hand each month, as a job.
//! Restores a backup into a scratch database on the configured server, compares every table's
//! rows and content hash with what the manifest recorded at backup time (no source needed),
//! drops the scratch database whatever happened, and reports like every job (run record, SNS).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::run::{RestoreRequest, RestoreSource, restore_with};
use crate::App;
use crate::backup::Manifest;
use crate::catalog::{list_backups, read_manifest};
use crate::db::quote_ident;
use crate::error::{Error, Result};
use crate::keys;
use crate::run::{Job, JobReport, RunContext};

/// The verify job.
#[derive(Debug)]
pub struct Verify;

/// Which backup to verify, and where to restore it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyOptions {
    /// A manifest key or a backup's key; default: the newest backup.
    pub key: Option<String>,
    /// With no key: the newest backup of this database.
    pub database: Option<String>,
    /// Connections replaying data parts.
    pub jobs: Option<usize>,
    /// Keep the scratch database afterwards (to look at it).
    pub keep: bool,
}

/// One table compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub rows: u64,
    pub expected_rows: u64,
    pub matches: bool,
}

#[async_trait]
impl Job for Verify {
    const NAME: &'static str = "verify";
    type Options = VerifyOptions;

    fn is_dry_run(_: &VerifyOptions) -> bool {
        false
    }

    async fn run(app: &App, options: &VerifyOptions, ctx: &RunContext) -> JobReport {
        let (manifest_key, manifest) = match locate(app, options).await {
            Ok(k) => k,
            Err(e) => return JobReport::failed("no backup to verify", e),
        };
        let scratch = format!("backstop_verify_{}", ctx.run_id.to_lowercase().replace('-', "_"));
        let outcome = drill(app, options, &manifest_key, &manifest, &scratch).await;
        let dropped = if options.keep { Ok(()) } else { drop_scratch(app, &scratch).await };
        // The restore's or the comparison's verdict comes first; a scratch database that could not
        // be dropped is reported beside it (and is the error when everything else was fine).
        let drop_error = dropped.err();
        if let Some(e) = &drop_error {
            tracing::warn!(database = %scratch, error = %e.report(), "the scratch database could not be dropped");
        }
        let (checks, error) = match outcome {
            Ok(checks) => {
                let bad: Vec<&TableCheck> = checks.iter().filter(|c| !c.matches).collect();
                let differs = (!bad.is_empty()).then(|| Error::Restore {
                    dump: app.store.locate(&manifest_key),
                    line: 0,
                    reason: format!(
                        "the restored copy differs from the backup in {}",
                        bad.iter()
                            .map(|c| format!("{} ({} rows, {} expected)", c.table, c.rows, c.expected_rows))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
                (checks, differs)
            }
            Err(e) => (Vec::new(), Some(e)),
        };
        let scratch_left = drop_error.as_ref().map(|e| e.report());
        let error = error.or(drop_error);
        JobReport {
            outputs: serde_json::json!({
                "manifest_key": manifest_key, "scratch_database": scratch, "kept": options.keep, "tables": checks,
                "scratch_drop_error": scratch_left,
            }),
            what: keys::backup_name(&manifest_key).to_owned(),
            detail: error.is_none().then(|| format!("{} tables match", checks.len())),
            error,
        }
    }
}

/// The manifest to verify against, and its key (read once).
async fn locate(app: &App, options: &VerifyOptions) -> Result<(String, Manifest)> {
    if let Some(key) = &options.key {
        let key = keys::manifest_key(key);
        let manifest = read_manifest(app.store.as_ref(), &key).await?;
        return Ok((key, manifest));
    }
    let listing = list_backups(
        app.store.as_ref(),
        &app.config.prefix,
        options.database.as_deref(),
        Some(&app.config.env),
    )
    .await?;
    let why = listing.why_none(&format!(" under {}", app.store.locate(&app.config.prefix)));
    listing.latest_full().map(|b| (b.manifest_key, b.manifest)).ok_or(Error::Payload(why))
}

/// Restores into `scratch` and compares each table with the manifest.
async fn drill(
    app: &App,
    options: &VerifyOptions,
    manifest_key: &str,
    manifest: &Manifest,
    scratch: &str,
) -> Result<Vec<TableCheck>> {
    if manifest.tables.iter().all(|t| t.content_hash.is_none()) {
        return Err(Error::Payload(format!(
            "{manifest_key} records no content hashes (a pg_dump-engine backup): restore it to check it"
        )));
    }
    let creds = app.db.credentials(false).await?;
    let request = RestoreRequest {
        source: RestoreSource::Key(manifest_key.to_owned()),
        target_url: String::new(),
        database: Some(scratch.to_owned()),
        create: true,
        clean: false,
        force: false,
        dry_run: false,
        single_transaction: false,
        jobs: options.jobs.unwrap_or(2),
        tables: vec![],
        analyze: false,
    };
    restore_with(app, &request, creds.clone()).await?;
    let client = app.db.connect_to(&creds, Some(scratch), "backstop-verify").await?;
    client.batch_execute(crate::backup::native::SESSION).await.map_err(|source| Error::Database {
        target: creds.display_target(scratch),
        context: "set up the session".into(),
        source,
    })?;
    let mut checks = Vec::new();
    for t in &manifest.tables {
        let (Some(expected_rows), Some(expected_hash)) = (t.rows, &t.content_hash) else { continue };
        let (rows, hash) =
            crate::backup::native::table_content(&client, &t.schema, &t.name, t.filter.as_deref()).await?;
        checks.push(TableCheck {
            table: format!("{}.{}", t.schema, t.name),
            rows,
            expected_rows,
            matches: rows == expected_rows && hash == *expected_hash,
        });
    }
    Ok(checks)
}

async fn drop_scratch(app: &App, scratch: &str) -> Result<()> {
    let creds = app.db.credentials(false).await?;
    let admin = app.db.connect_to(&creds, Some("postgres"), "backstop-verify").await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(scratch)))
        .await
        .map_err(|source| Error::Database {
            target: creds.display_target(scratch),
            context: "drop the scratch database".into(),
            source,
        })
}
