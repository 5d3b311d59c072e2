//! What is in the destination: backups (those with a manifest, newest first) and run records.
//! Incomplete uploads have no manifest, so they are not backups and are not listed.

use jiff::Timestamp;

use crate::backup::{FORMAT, Manifest};
use crate::error::{Error, Result, StoreKind};
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
    Error::Store {
        op: "read",
        location: store.locate(key),
        detail: reason,
        source: None,
        retryable: false,
        kind: StoreKind::Other,
    }
}

/// Reads one manifest, refusing formats newer than this build understands.
pub async fn read_manifest(store: &dyn ObjectStore, key: &str) -> Result<Manifest> {
    let bytes = store.get(key).await?.ok_or_else(|| Error::Store {
        op: "read",
        location: store.locate(key),
        detail: "no such manifest".into(),
        source: None,
        retryable: false,
        kind: StoreKind::NotFound,
    })?;
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

/// What a listing of backups found: the backups, newest first, and the manifests that could
/// not be read (reported, never a reason to hide the others).
#[derive(Debug, Default)]
pub struct Listing {
    pub backups: Vec<BackupEntry>,
    pub unreadable: Vec<(String, Error)>,
}

impl Listing {
    /// The newest full backup: `--latest` never means a schema-only or some-tables dump, which
    /// would restore less than the database (name one by its key for that).
    pub fn latest_full(self) -> Option<BackupEntry> {
        self.backups.into_iter().find(|b| !b.manifest.is_partial())
    }

    /// Why there is no full backup to pick, for an error message.
    pub fn why_none(&self, what: &str) -> String {
        let partial = self.backups.iter().filter(|b| b.manifest.is_partial()).count();
        let mut out = format!("no full backup{what} has a manifest");
        if partial > 0 {
            out.push_str(&format!(
                " ({partial} partial backups do: name one by its key, `backstop list` shows them)"
            ));
        }
        if let Some((key, e)) = self.unreadable.first() {
            out.push_str(&format!(
                "; {} manifests could not be read (first: {key}: {})",
                self.unreadable.len(),
                e.report()
            ));
        }
        out
    }
}

/// Backups under `prefix`, for one database or all, of one environment (`BACKSTOP_ENV`) or
/// all, newest first. Staging and production may share a bucket: `--latest` must never pick
/// the other's backup. A manifest that cannot be read (truncated, a newer format) is reported
/// in the listing, and the others are still listed.
pub async fn list_backups(
    store: &dyn ObjectStore,
    prefix: &str,
    database: Option<&str>,
    env: Option<&str>,
) -> Result<Listing> {
    let scope = keys::db_scope(prefix, database);
    let mut out = Listing::default();
    for obj in store.list(&scope).await? {
        if keys::is_manifest(&obj.key) {
            match read_manifest(store, &obj.key).await {
                Ok(manifest) => {
                    if env.is_none_or(|e| manifest.env == e) {
                        out.backups.push(BackupEntry { manifest_key: obj.key, manifest });
                    }
                }
                // Deleted meanwhile (a prune): not a backup any more.
                Err(e) if e.store_kind() == Some(StoreKind::NotFound) => {}
                // A transient failure is the listing's failure: retrying helps.
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    tracing::warn!(key = %obj.key, error = %e.report(), "unreadable manifest: skipped");
                    out.unreadable.push((obj.key, e));
                }
            }
        }
    }
    out.backups.sort_by_key(|b| std::cmp::Reverse(b.manifest.finished));
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
