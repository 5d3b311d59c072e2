//! media-sync: copies what changed in the media source into `{prefix}media/current/`, keeps
//! what the application replaced or deleted in `{prefix}media/trash/`, and records every run's
//! state in a snapshot, so the media can be put back as it was at any kept moment.
//!
//! A run is two passes over the same two key-ordered streams (the source listing and the last
//! snapshot): the first only counts, so the guards (an empty source, too much to trash) stop a
//! misconfigured run before anything moves, and a run with no change ends there with one
//! listing and one snapshot read; the second copies, a bounded window of keys at a time, and
//! writes the new snapshot in key order as results come back.

mod archive;
mod check;
mod copy;
pub mod lease;
mod options;
mod plan;
mod restore;
mod snapshot;
mod source;
mod sync;

use async_trait::async_trait;
use serde::Serialize;

pub use archive::Archived;
pub use check::{MirrorCheck, check_mirror};
pub use copy::{Copier, Verified, guess_content_type, stream_copy};
use options::filter;
pub use options::{MediaSyncOptions, Mode};
pub use plan::{Filter, Item, Merge, Previous, SourceListing, Step, classify};
pub use restore::{
    MediaRestoreReport, MediaRestoreRequest, MediaTarget, SnapshotChoice, choose, media_restore,
    restore_with_backup,
};
pub use snapshot::{
    Changes, Entry, SnapshotReader, SnapshotWriter, Summaries, Summary, list_all_summaries, list_summaries,
    newest_summary,
};
use source::refuse_nested;
pub use source::{SourceHandle, connect_source};

use crate::App;
use crate::error::{Error, Result};
use crate::keys;
use crate::run::{Job, JobReport, RunContext, human_bytes};

/// How many keys of each kind a report lists.
const SAMPLE: usize = 10;
/// Failed keys kept in the run record (the count is always whole).
const FAILED_KEPT: usize = 100;
/// The max-delete guard needs at least this many objects to trash before it trips, so that a
/// small bucket can lose a file.
const GUARD_FLOOR: u64 = 10;

/// The media-sync job.
#[derive(Debug)]
pub struct MediaSync;

/// Counts of one pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub source_objects: u64,
    pub previous_objects: u64,
    /// Where the previous state came from: a snapshot key, `mirror listing`, or `none`.
    pub previous: String,
    pub new: u64,
    pub modified: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub excluded: u64,
    pub bytes_to_copy: u64,
    pub bytes_to_trash: u64,
    pub sample_new: Vec<String>,
    pub sample_modified: Vec<String>,
    pub sample_deleted: Vec<String>,
}

impl Plan {
    fn changes(&self) -> u64 {
        self.new + self.modified + self.deleted
    }

    fn count(&mut self, item: &Item, previous: bool) {
        let sample = |v: &mut Vec<String>, k: &str| {
            if v.len() < SAMPLE {
                v.push(k.to_owned());
            }
        };
        if previous {
            self.previous_objects += 1;
        }
        match item {
            Item::New(s) => {
                self.new += 1;
                self.bytes_to_copy += s.size;
                sample(&mut self.sample_new, &s.key);
            }
            Item::Modified(s, o) => {
                self.modified += 1;
                self.bytes_to_copy += s.size;
                self.bytes_to_trash += o.size;
                sample(&mut self.sample_modified, &s.key);
            }
            Item::Deleted(o) => {
                self.deleted += 1;
                self.bytes_to_trash += o.size;
                sample(&mut self.sample_deleted, &o.key);
            }
            Item::Unchanged(_) => self.unchanged += 1,
            Item::Excluded(_) => self.excluded += 1,
        }
    }
}

/// One key that could not be synced.
#[derive(Debug, Clone, Serialize)]
pub struct FailedKey {
    pub key: String,
    pub error: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncOutcome {
    pub source: String,
    pub server_side: bool,
    pub plan: Plan,
    pub copied: u64,
    pub copied_bytes: u64,
    pub trashed: u64,
    pub failed: u64,
    /// The first failed keys (up to 100) with their errors; the next run retries them.
    pub failed_keys: Vec<FailedKey>,
    /// Changes not attempted because the run stopped near the deadline.
    pub remaining: u64,
    pub verified_md5: u64,
    pub verified_size: u64,
    pub verified_server_side: u64,
    pub snapshot_key: Option<String>,
    pub summary_key: Option<String>,
    pub objects: u64,
    pub bytes: u64,
    /// `mode: "archive"`: the archive written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<Archived>,
}

#[async_trait]
impl Job for MediaSync {
    const NAME: &'static str = "media-sync";
    type Options = MediaSyncOptions;

    fn is_dry_run(options: &MediaSyncOptions) -> bool {
        options.dry_run
    }

    async fn run(app: &App, options: &MediaSyncOptions, ctx: &RunContext) -> JobReport {
        if let Err(e) = options.validate() {
            return JobReport::failed("invalid payload", e);
        }
        if options.mode == Mode::Check {
            return match check::check_mirror(app, options.rehash_every.unwrap_or(100)).await {
                Ok(c) => JobReport {
                    error: c.verdict(&app.store.locate(&keys::media_current_scope(&app.config.prefix))),
                    what: "media mirror".into(),
                    detail: Some(format!(
                        "{} objects ({}) checked against {}, {} re-hashed: {} missing, {} differing",
                        c.checked,
                        human_bytes(c.bytes),
                        c.snapshot_key,
                        c.rehashed,
                        c.missing_count,
                        c.differing_count
                    )),
                    outputs: serde_json::to_value(&c).expect("checks serialize"),
                },
                Err(e) => JobReport::failed("media mirror", e),
            };
        }
        if let Some(source) = &app.config.media.source
            && let Err(e) = refuse_nested(source, &app.config.destination, &app.config.prefix)
        {
            return JobReport::failed("media source", e);
        }
        let source = match connect_source(app).await {
            Ok(s) => s,
            Err(e) => return JobReport::failed("media source", e),
        };
        let mut outcome = SyncOutcome {
            source: source.describe.clone(),
            server_side: source.server_side,
            ..Default::default()
        };
        if options.mode == Mode::Archive {
            return archive_run(app, &source, options, ctx, outcome).await;
        }
        // One run at a time writes the mirror (dry runs write nothing and need no lease).
        let lease = if options.dry_run {
            None
        } else {
            let now = jiff::Timestamp::now();
            let expires = match ctx.deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    now + jiff::SignedDuration::try_from(left).unwrap_or(lease::WITHOUT_DEADLINE)
                        + jiff::SignedDuration::from_mins(1)
                }
                None => now + lease::WITHOUT_DEADLINE,
            };
            match lease::acquire(app.store.as_ref(), &app.config.prefix, &ctx.run_id, now, expires).await {
                Ok(held) => Some(held),
                Err(e) => return JobReport::failed("media lease", e),
            }
        };
        let error = sync::sync(app, &source, options, ctx, &mut outcome).await.err();
        if let Some(held) = lease {
            held.release(app.store.as_ref()).await;
        }
        let p = &outcome.plan;
        let detail = if options.dry_run {
            format!(
                "would copy {} ({}) and trash {} ({})",
                p.new + p.modified,
                human_bytes(p.bytes_to_copy),
                p.modified + p.deleted,
                human_bytes(p.bytes_to_trash)
            )
        } else {
            format!(
                "{} objects, {} copied ({}), {} trashed{}",
                outcome.objects,
                outcome.copied,
                human_bytes(outcome.copied_bytes),
                outcome.trashed,
                if outcome.remaining > 0 {
                    format!(", {} left for the next run", outcome.remaining)
                } else {
                    String::new()
                }
            )
        };
        JobReport {
            outputs: serde_json::to_value(&outcome).expect("outcomes serialize"),
            what: source.describe,
            detail: Some(detail),
            error,
        }
    }
}

/// `mode: "archive"`: the whole source into one tarball (a dry run counts what it would hold).
async fn archive_run(
    app: &App,
    source: &SourceHandle,
    options: &MediaSyncOptions,
    ctx: &RunContext,
    mut outcome: SyncOutcome,
) -> JobReport {
    let filter = filter(options);
    let result = if options.dry_run {
        async {
            let mut listing = SourceListing::new(source.store.clone(), &source.prefix);
            while let Some(o) = listing.next().await? {
                if filter.wants(&o.key) {
                    outcome.plan.new += 1;
                    outcome.plan.bytes_to_copy += o.size;
                }
            }
            outcome.plan.source_objects = listing.listed;
            Ok(format!(
                "would archive {} objects ({})",
                outcome.plan.new,
                human_bytes(outcome.plan.bytes_to_copy)
            ))
        }
        .await
    } else if !options.force
        && let Err(e) = archive_guard(source).await
    {
        Err(e)
    } else {
        let key = keys::media_archive(&app.config.prefix, &app.config.env, &ctx.started, &ctx.run_id);
        archive::archive(source, app.store.clone(), &key, &app.config.s3, &filter, ctx).await.map(|a| {
            let detail = format!(
                "{} objects ({}) archived in {}",
                a.objects,
                human_bytes(a.bytes),
                human_bytes(a.stored_bytes)
            );
            (outcome.objects, outcome.bytes) = (a.objects, a.bytes);
            outcome.archive = Some(a);
            detail
        })
    };
    let (detail, error) = match result {
        Ok(d) => (Some(d), None),
        Err(e) => (None, Some(e)),
    };
    JobReport {
        outputs: serde_json::to_value(&outcome).expect("outcomes serialize"),
        what: source.describe.clone(),
        detail,
        error,
    }
}

/// An archive of an empty source is a misconfigured source (a mount that is not there, a
/// wrong prefix), not a backup: refused unless forced, as mirror mode refuses emptying.
async fn archive_guard(source: &SourceHandle) -> Result<()> {
    let page = source.store.list_page(&source.prefix, None).await?;
    if page.objects.is_empty() {
        return Err(Error::Guard {
            what: "media-sync".into(),
            reason: format!(
                "{} lists nothing: no archive was written (a misconfigured source?). If this is intended, run once with \"force\": true",
                source.describe
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::source::refuse_nested;
    use super::sync::guard;
    use super::*;
    use crate::config::{Destination, MediaSource};

    fn plan(previous: u64, source: u64, modified: u64, deleted: u64) -> Plan {
        Plan { previous_objects: previous, source_objects: source, modified, deleted, ..Default::default() }
    }

    #[test]
    fn guards_stop_an_empty_source_and_a_mass_delete_unless_forced() {
        let opts = MediaSyncOptions::default();
        assert!(guard(&plan(0, 0, 0, 0), &opts).is_ok(), "a first run of an empty source is fine");
        let err = guard(&plan(100, 0, 0, 100), &opts).unwrap_err().to_string();
        assert!(err.contains("empty") && err.contains("force"), "{err}");
        assert!(guard(&plan(100, 79, 0, 21), &opts).is_err());
        assert!(guard(&plan(100, 80, 0, 20), &opts).is_ok());
        assert!(guard(&plan(20, 10, 0, 10), &opts).is_ok(), "at most 10 objects never trip it");
        assert!(guard(&plan(100, 50, 30, 0), &opts).is_err(), "overwrites trash too");
        let forced = MediaSyncOptions { force: true, ..Default::default() };
        assert!(guard(&plan(100, 0, 0, 100), &forced).is_ok());
        let loose = MediaSyncOptions { max_delete_fraction: Some(0.5), ..Default::default() };
        assert!(guard(&plan(100, 60, 0, 40), &loose).is_ok());
    }

    #[test]
    fn a_destination_inside_the_source_is_refused() {
        let s3 =
            |bucket: &str, prefix: &str| MediaSource::S3 { bucket: bucket.into(), prefix: prefix.into() };
        let dest = |bucket: &str| Destination::S3 { bucket: bucket.into() };
        assert!(refuse_nested(&s3("media", ""), &dest("media"), "backstop/").is_err());
        assert!(refuse_nested(&s3("media", "backstop/media/"), &dest("media"), "backstop/").is_err());
        assert!(refuse_nested(&s3("media", "uploads/"), &dest("media"), "backstop/").is_ok());
        assert!(refuse_nested(&s3("media", ""), &dest("backups"), "").is_ok());
        let dir = std::env::temp_dir().join(format!("bk-nested-{}", uuid::Uuid::new_v4()));
        let local = |p: std::path::PathBuf| MediaSource::Local { root: p };
        let to = |p: std::path::PathBuf| Destination::Local { root: p };
        assert!(refuse_nested(&local(dir.clone()), &to(dir.join("backups")), "").is_err());
        assert!(refuse_nested(&local(dir.join("media")), &to(dir.clone()), "").is_err());
        assert!(refuse_nested(&local(dir.join("media")), &to(dir.join("backups")), "").is_ok());
    }

    #[test]
    fn options_are_checked_naming_the_field() {
        let bad = |json: serde_json::Value| {
            crate::payload::parse::<MediaSyncOptions>(&json).and_then(|(o, _)| o.validate().map(|()| o))
        };
        assert!(bad(serde_json::json!({"concurency": 4})).unwrap_err().to_string().contains("concurency"));
        assert!(bad(serde_json::json!({"concurrency": 0})).unwrap_err().to_string().contains("concurrency"));
        assert!(
            bad(serde_json::json!({"max_delete_fraction": 2}))
                .unwrap_err()
                .to_string()
                .contains("max_delete_fraction")
        );
        assert!(bad(serde_json::json!({"include": [""]})).unwrap_err().to_string().contains("include"));
        assert!(bad(serde_json::json!({"include": ["*.jpg"], "dry_run": true})).is_ok());
    }
}
