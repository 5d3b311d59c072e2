//! `backstop media-restore`: rebuilds the media set exactly as a snapshot recorded it, from the
//! mirror and the trash, into a bucket prefix or a directory. It never deletes anything at the
//! target and refuses a non-empty one unless forced; every object is checked against the size
//! and MD5 the snapshot recorded.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use tokio::task::JoinSet;

use super::copy::{locate_version, stream_copy};
use super::plan::Filter;
use super::snapshot::{SnapshotReader, Summary, list_summaries};
use crate::App;
use crate::error::{Error, Result, StoreKind};
use crate::keys;
use crate::run::human_bytes;
use crate::store::{LocalStore, ObjectStore, S3Store};

/// Which snapshot to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotChoice {
    Latest,
    /// The newest snapshot taken at or before this time.
    AsOf(Timestamp),
    /// A snapshot's key (its entries or its summary).
    Key(String),
}

/// Where to put the media back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaTarget {
    /// A bucket and prefix on the backup bucket's endpoint and credentials.
    S3 {
        bucket: String,
        prefix: String,
    },
    Dir(PathBuf),
}

impl MediaTarget {
    /// `s3://bucket/prefix` or a directory path.
    pub fn parse(text: &str) -> Result<Self> {
        match crate::config::MediaSource::parse(text) {
            Ok(crate::config::MediaSource::S3 { bucket, prefix }) => Ok(MediaTarget::S3 { bucket, prefix }),
            Ok(crate::config::MediaSource::Local { root }) => Ok(MediaTarget::Dir(root)),
            Err(_) if !text.starts_with("s3://") => Ok(MediaTarget::Dir(PathBuf::from(text))),
            Err(e) => Err(Error::Payload(format!("--to: {}", e.report()))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MediaRestoreRequest {
    pub snapshot: SnapshotChoice,
    pub to: MediaTarget,
    pub include: Vec<String>,
    pub dry_run: bool,
    /// Write into a non-empty target (nothing there is ever deleted).
    pub force: bool,
    pub concurrency: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MediaRestoreReport {
    pub snapshot_key: String,
    pub taken: Timestamp,
    pub target: String,
    pub dry_run: bool,
    pub objects: u64,
    pub bytes: u64,
    pub from_trash: u64,
    pub failed: Vec<super::FailedKey>,
}

/// Picks the snapshot a choice names.
pub async fn choose(app: &App, choice: &SnapshotChoice) -> Result<Summary> {
    let summaries = list_summaries(app.store.as_ref(), &app.config.prefix).await?;
    let scope = app.store.locate(&keys::media_snapshots_scope(&app.config.prefix));
    let found = match choice {
        SnapshotChoice::Latest => summaries.into_iter().last(),
        SnapshotChoice::AsOf(t) => summaries.into_iter().rev().find(|s| s.taken <= *t),
        SnapshotChoice::Key(k) => {
            summaries.into_iter().find(|s| s.snapshot_key == *k || keys::media_summary(&s.snapshot_key) == *k)
        }
    };
    found.ok_or_else(|| {
        Error::Payload(match choice {
            SnapshotChoice::Latest => format!("no media snapshot under {scope}"),
            SnapshotChoice::AsOf(t) => format!("no media snapshot under {scope} was taken at or before {t}"),
            SnapshotChoice::Key(k) => format!("{k} is not a complete media snapshot under {scope}"),
        })
    })
}

/// Restores the chosen snapshot into the target.
pub async fn media_restore(app: &App, req: &MediaRestoreRequest) -> Result<MediaRestoreReport> {
    let summary = choose(app, &req.snapshot).await?;
    let (target, target_prefix): (Arc<dyn ObjectStore>, String) = match &req.to {
        MediaTarget::S3 { bucket, prefix } => {
            (Arc::new(S3Store::new(&app.sdk().await, bucket, &app.config.s3)), prefix.clone())
        }
        MediaTarget::Dir(dir) => (Arc::new(LocalStore::restore_target(dir)), String::new()),
    };
    let target_label = target.locate(&target_prefix);
    let occupied = match &req.to {
        // Any entry counts, a symbolic link or an empty directory included: a listing of files
        // would read a directory holding only a link as empty.
        MediaTarget::Dir(dir) => match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_some(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(format!("reading the target {}", dir.display()), e)),
        },
        MediaTarget::S3 { .. } => !target.list_page(&target_prefix, None).await?.objects.is_empty(),
    };
    if !req.force && occupied {
        return Err(Error::Payload(format!(
            "{target_label} is not empty; restore into an empty place, or pass --force (nothing there is deleted)"
        )));
    }
    let filter = Filter { include: req.include.clone(), exclude: vec![] };
    let mut reader = SnapshotReader::open(app.store.as_ref(), &summary.snapshot_key).await?;
    let mut report = MediaRestoreReport {
        snapshot_key: summary.snapshot_key.clone(),
        taken: summary.taken,
        target: target_label,
        dry_run: req.dry_run,
        objects: 0,
        bytes: 0,
        from_trash: 0,
        failed: vec![],
    };
    let mut tasks: JoinSet<KeyResult> = JoinSet::new();
    let mut done = 0u64;
    while let Some(entry) = reader.next().await? {
        if !filter.wants(&entry.key) {
            continue;
        }
        if req.dry_run {
            report.objects += 1;
            report.bytes += entry.size;
            continue;
        }
        while tasks.len() >= req.concurrency.max(1) {
            collect(tasks.join_next().await, &mut report);
        }
        let (mirror, prefix, target, s3) =
            (app.store.clone(), app.config.prefix.clone(), target.clone(), app.config.s3.clone());
        let to_key = format!("{target_prefix}{}", entry.key);
        tasks.spawn(async move {
            let result = async {
                let from = locate_version(mirror.as_ref(), &prefix, &entry).await?;
                let expect = Some((entry.size, entry.etag.as_deref()));
                stream_copy(mirror.as_ref(), &from, target, &to_key, &s3, expect).await?;
                Ok((entry.size, from.starts_with(&keys::media_trash_scope(&prefix))))
            }
            .await;
            (entry.key, result)
        });
        done += 1;
        if done.is_multiple_of(1000) {
            tracing::info!(restored = report.objects, bytes = %human_bytes(report.bytes), "media restore in progress");
        }
    }
    while let Some(joined) = tasks.join_next().await {
        collect(Some(joined), &mut report);
    }
    if !report.failed.is_empty() {
        return Err(Error::Store {
            op: "media restore",
            location: report.target.clone(),
            detail: format!(
                "{} objects could not be restored (first: {}: {}); {} were",
                report.failed.len(),
                report.failed[0].key,
                report.failed[0].error,
                report.objects
            ),
            source: None,
            retryable: true,
            kind: StoreKind::Other,
        });
    }
    Ok(report)
}

/// A restored key: its bytes and whether they came from the trash, or why not.
type KeyResult = (String, Result<(u64, bool)>);

fn collect(
    joined: Option<std::result::Result<KeyResult, tokio::task::JoinError>>,
    report: &mut MediaRestoreReport,
) {
    match joined {
        Some(Ok((_, Ok((bytes, from_trash))))) => {
            report.objects += 1;
            report.bytes += bytes;
            report.from_trash += u64::from(from_trash);
        }
        Some(Ok((key, Err(e)))) => report.failed.push(super::FailedKey { key, error: e.report() }),
        Some(Err(e)) => {
            report.failed.push(super::FailedKey { key: "?".into(), error: format!("task failed: {e}") })
        }
        None => {}
    }
}

/// The media that goes with a database backup: the newest snapshot taken at or before the
/// backup's snapshot time, restored into `to`. Returns the report and how many seconds older
/// the media snapshot is than the backup.
pub async fn restore_with_backup(
    app: &App,
    manifest_key: &str,
    mut request: MediaRestoreRequest,
) -> Result<(MediaRestoreReport, i64)> {
    let manifest = crate::catalog::read_manifest(app.store.as_ref(), manifest_key).await?;
    let at = manifest.snapshot.unwrap_or(manifest.started);
    request.snapshot = SnapshotChoice::AsOf(at);
    let report = media_restore(app, &request).await?;
    let gap = at.as_second() - report.taken.as_second();
    Ok((report, gap))
}
