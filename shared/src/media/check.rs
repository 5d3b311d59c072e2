//! `mode: "check"`: the mirror against the newest snapshot, so that a copy lost in the backup
//! store (a lifecycle rule, an operator, bit rot) shows up on a schedule rather than at restore.
//! Every entry's version must be found (in `current` with its size and mirror ETag, or in the
//! trash); a sample is read back and hashed against the source's MD5 where it has one.

use md5::{Digest, Md5};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::copy::locate_version;
use super::snapshot::{SnapshotReader, newest_summary};
use crate::App;
use crate::error::{Error, Result, StoreKind};
use crate::keys;
use crate::store::ObjectStore;

/// Keys listed per problem kind in the report.
const LISTED: usize = 100;

/// What a check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MirrorCheck {
    pub snapshot_key: String,
    pub checked: u64,
    pub bytes: u64,
    /// Entries whose version is nowhere in the mirror or the trash (first 100).
    pub missing: Vec<String>,
    pub missing_count: u64,
    /// Entries found with another size, or whose bytes did not hash to the recorded MD5.
    pub differing: Vec<String>,
    pub differing_count: u64,
    /// Objects read back and hashed.
    pub rehashed: u64,
}

/// Checks the newest snapshot's entries against the mirror; every `rehash_every`-th entry
/// (0: none) is read back and hashed.
pub async fn check_mirror(app: &App, rehash_every: u64) -> Result<MirrorCheck> {
    let store = app.store.as_ref();
    let prefix = &app.config.prefix;
    let Some(summary) = newest_summary(store, prefix).await? else {
        return Err(Error::Payload(format!(
            "no media snapshot under {} to check",
            store.locate(&keys::media_snapshots_scope(prefix))
        )));
    };
    let mut report = MirrorCheck { snapshot_key: summary.snapshot_key.clone(), ..Default::default() };
    let mut reader = SnapshotReader::open(store, &summary.snapshot_key).await?;
    while let Some(entry) = reader.next().await? {
        report.checked += 1;
        report.bytes += entry.size;
        let at = locate_version(store, prefix, &entry).await?;
        let found = store.head(&at).await?;
        let problem = match found {
            None => Some(false),
            Some(info) if info.size != entry.size => Some(true),
            // `current` holds another version and the trash does not have this one.
            Some(info)
                if entry.stored_etag.is_some() && info.etag.is_some() && info.etag != entry.stored_etag =>
            {
                Some(true)
            }
            Some(_) if rehash_every > 0 && report.checked.is_multiple_of(rehash_every) => {
                match entry.etag.as_deref().filter(|e| e.len() == 32) {
                    Some(want) => {
                        report.rehashed += 1;
                        (!rehash(store, &at).await?.eq_ignore_ascii_case(want)).then_some(true)
                    }
                    None => None,
                }
            }
            Some(_) => None,
        };
        match problem {
            Some(false) => {
                report.missing_count += 1;
                if report.missing.len() < LISTED {
                    report.missing.push(entry.key);
                }
            }
            Some(true) => {
                report.differing_count += 1;
                if report.differing.len() < LISTED {
                    report.differing.push(entry.key);
                }
            }
            None => {}
        }
    }
    Ok(report)
}

/// The MD5 (hex) of an object's bytes.
async fn rehash(store: &dyn ObjectStore, key: &str) -> Result<String> {
    let mut body = store.get_stream(key).await?;
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = body.read(&mut buf).await.map_err(|e| Error::Store {
            op: "read",
            location: store.locate(key),
            detail: e.to_string(),
            source: Some(Box::new(e)),
            retryable: true,
            kind: StoreKind::Other,
        })?;
        if n == 0 {
            return Ok(hex::encode(md5.finalize()));
        }
        md5.update(&buf[..n]);
    }
}

impl MirrorCheck {
    /// The check's verdict as an error, when anything is missing or differs.
    pub fn verdict(&self, location: &str) -> Option<Error> {
        if self.missing_count == 0 && self.differing_count == 0 {
            return None;
        }
        let first = self.missing.first().or(self.differing.first()).cloned().unwrap_or_default();
        Some(Error::Store {
            op: "media check",
            location: location.to_owned(),
            detail: format!(
                "{} of {} objects of {} are missing from the mirror and {} differ (first: {first}); \
                 media-restore of them would fail",
                self.missing_count, self.checked, self.snapshot_key, self.differing_count
            ),
            source: None,
            retryable: false,
            kind: StoreKind::NotFound,
        })
    }
}
