//! What is in the destination: backups (those with a manifest, newest first) and run records.
//! Incomplete uploads have no manifest, so they are not backups and are not listed.

use jiff::Timestamp;

use crate::backup::{FORMAT, Manifest};
use crate::error::{Error, Result};
use crate::keys;
use crate::run::RunRecord;
use crate::store::ObjectStore;

/// A backup as listed: its manifest and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupEntry {
    pub manifest_key: String,
    pub manifest: Manifest,
}

fn malformed(store: &dyn ObjectStore, key: &str, reason: String) -> Error {
    Error::Store { op: "read", location: store.locate(key), detail: reason, source: None, retryable: false }
}

/// Reads one manifest, refusing formats newer than this build understands.
pub async fn read_manifest(store: &dyn ObjectStore, key: &str) -> Result<Manifest> {
    let bytes = store.get(key).await?.ok_or_else(|| malformed(store, key, "no such manifest".into()))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| malformed(store, key, format!("not a Backstop manifest: {e}")))?;
    if manifest.format > FORMAT {
        return Err(malformed(
            store,
            key,
            format!("manifest format {} is newer than this Backstop ({FORMAT})", manifest.format),
        ));
    }
    Ok(manifest)
}

/// Backups under `prefix`, for one database or all, of one environment (`BACKSTOP_ENV`) or
/// all, newest first. Staging and production may share a bucket: `--latest` must never pick
/// the other's backup.
pub async fn list_backups(
    store: &dyn ObjectStore,
    prefix: &str,
    database: Option<&str>,
    env: Option<&str>,
) -> Result<Vec<BackupEntry>> {
    let scope = keys::db_scope(prefix, database);
    let mut out = Vec::new();
    for obj in store.list(&scope).await? {
        if keys::is_manifest(&obj.key) {
            let manifest = read_manifest(store, &obj.key).await?;
            if env.is_none_or(|e| manifest.env == e) {
                out.push(BackupEntry { manifest_key: obj.key, manifest });
            }
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.manifest.finished));
    Ok(out)
}

/// Run records, newest first, filtered by job, start time and status.
pub async fn history(
    store: &dyn ObjectStore,
    prefix: &str,
    job: Option<&str>,
    since: Option<Timestamp>,
    failed_only: bool,
) -> Result<Vec<RunRecord>> {
    let scope = keys::runs_scope(prefix, job);
    let mut out = Vec::new();
    for obj in store.list(&scope).await? {
        if !obj.key.ends_with(".json") {
            continue;
        }
        let bytes = store.get(&obj.key).await?.unwrap_or_default();
        let record: RunRecord = serde_json::from_slice(&bytes)
            .map_err(|e| malformed(store, &obj.key, format!("not a run record: {e}")))?;
        if since.is_some_and(|s| record.started < s)
            || (failed_only && record.status != crate::run::Status::Failed)
        {
            continue;
        }
        out.push(record);
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.started));
    Ok(out)
}
