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
mod plan;
mod restore;
mod snapshot;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures_util::stream::{FuturesOrdered, StreamExt};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use archive::Archived;
pub use check::{MirrorCheck, check_mirror};
pub use copy::{Copier, Verified, guess_content_type, stream_copy};
pub use plan::{Filter, Item, Merge, Previous, SourceListing, Step, classify};
pub use restore::{
    MediaRestoreReport, MediaRestoreRequest, MediaTarget, SnapshotChoice, choose, media_restore,
    restore_with_backup,
};
pub use snapshot::{
    Changes, Entry, SnapshotReader, SnapshotWriter, Summaries, Summary, list_all_summaries, list_summaries,
    newest_summary,
};

use crate::App;
use crate::config::{Destination, MediaSource};
use crate::error::{Error, Result, StoreKind};
use crate::keys;
use crate::run::{Job, JobReport, RunContext, human_bytes};
use crate::store::{LocalStore, ObjectInfo, ObjectStore, S3Access, S3Store};

/// How many keys of each kind a report lists.
const SAMPLE: usize = 10;
/// Failed keys kept in the run record (the count is always whole).
const FAILED_KEPT: usize = 100;
/// The max-delete guard needs at least this many objects to trash before it trips, so that a
/// small bucket can lose a file.
const GUARD_FLOOR: u64 = 10;

/// media-sync's options (payload or CLI flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSyncOptions {
    /// Count and list what would be copied and trashed; change nothing.
    pub dry_run: bool,
    /// Glob patterns over source keys (`*` spans `/`): only these are synced.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Copies in flight (default 16).
    pub concurrency: Option<usize>,
    /// Let through, for this run, what a guard would stop (an empty source, a mass delete).
    pub force: bool,
    /// The share of the last snapshot's objects a run may trash (default 0.2).
    pub max_delete_fraction: Option<f64>,
    /// `mirror` (default): the incremental mirror with snapshots; `archive`: one
    /// `media_{env}_{run_id}.tar.zst` of the whole source, as the nightly tarball; `check`: the
    /// mirror against the newest snapshot.
    pub mode: Mode,
    /// With `mode: "check"`: read back and hash every N-th object (default 100; 1: all; 0: none).
    pub rehash_every: Option<u64>,
}

/// What a run makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Mirror,
    Archive,
    /// No copy: the mirror checked against the newest snapshot (every version present, sizes
    /// and ETags, a sample re-hashed), failing the run when anything is missing.
    Check,
}

impl MediaSyncOptions {
    fn validate(&self) -> Result<()> {
        if let Some(c) = self.concurrency
            && !(1..=64).contains(&c)
        {
            return Err(Error::Payload(format!("concurrency: {c} is not 1 to 64")));
        }
        if let Some(f) = self.max_delete_fraction
            && !(0.0..=1.0).contains(&f)
        {
            return Err(Error::Payload(format!("max_delete_fraction: {f} is not between 0 and 1")));
        }
        for (name, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
            if patterns.iter().any(|p| p.is_empty()) {
                return Err(Error::Payload(format!("{name}: an empty pattern matches nothing; remove it")));
            }
        }
        Ok(())
    }

    fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(16)
    }
}

/// The media source as this run reaches it.
#[derive(Debug, Clone)]
pub struct SourceHandle {
    pub store: Arc<dyn ObjectStore>,
    /// Source keys start with this; mirror keys are what follows it.
    pub prefix: String,
    pub server_side: bool,
    pub describe: String,
}

/// Builds the source store from the configuration: its own endpoint and credentials (from
/// `BACKSTOP_MEDIA_SECRET_ID`) where set, the function's otherwise.
pub async fn connect_source(app: &App) -> Result<SourceHandle> {
    let media = &app.config.media;
    let Some(source) = &media.source else {
        return Err(Error::config(
            "BACKSTOP_MEDIA_SOURCE",
            "is required (s3://bucket/prefix or file:///dir)",
        ));
    };
    let describe = source.describe();
    match source {
        MediaSource::Local { root } => {
            // A mistyped path must not read as an empty source.
            match tokio::fs::metadata(root).await {
                Ok(m) if m.is_dir() => {}
                _ => {
                    return Err(Error::config(
                        "BACKSTOP_MEDIA_SOURCE",
                        format!("{} is not a directory this process can read", root.display()),
                    ));
                }
            }
            Ok(SourceHandle {
                store: app.layered(Arc::new(LocalStore::verbatim(root))),
                prefix: String::new(),
                server_side: false,
                describe,
            })
        }
        MediaSource::S3 { bucket, prefix } => {
            let mut access = S3Access { endpoint_url: media.endpoint_url.clone(), credentials: None };
            if let Some(secret_id) = &media.secret_id {
                access.credentials = Some(source_credentials(app, secret_id).await?);
            }
            let server_side = media.shares_destination_account() && app.store.bucket().is_some();
            let store =
                app.layered(Arc::new(S3Store::reaching(&app.sdk().await, bucket, &media.s3, &access)));
            Ok(SourceHandle { store, prefix: prefix.clone(), server_side, describe })
        }
    }
}

async fn source_credentials(app: &App, secret_id: &str) -> Result<aws_sdk_s3::config::Credentials> {
    #[derive(Deserialize)]
    struct Keys {
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
    }
    let bad = |reason: &str| Error::Secret {
        secret_id: secret_id.to_owned(),
        reason: reason.to_owned(),
        source: None,
        retryable: false,
    };
    let text = app.secrets.secret_string(secret_id).await?;
    let keys: Keys = serde_json::from_str(&text)
        .map_err(|_| bad("is not a JSON object with access_key_id and secret_access_key"))?;
    let id = keys.access_key_id.filter(|k| !k.is_empty()).ok_or_else(|| bad("has no access_key_id"))?;
    let secret =
        keys.secret_access_key.filter(|k| !k.is_empty()).ok_or_else(|| bad("has no secret_access_key"))?;
    Ok(aws_sdk_s3::config::Credentials::new(id, secret, keys.session_token, None, "backstop-media-secret"))
}

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
        let error = sync(app, &source, options, ctx, &mut outcome).await.err();
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

/// Refuses a backup destination inside the media source (or the source inside what Backstop
/// writes): each run would back up its own mirror and grow without end.
fn refuse_nested(source: &MediaSource, destination: &Destination, prefix: &str) -> Result<()> {
    let nested = match (source, destination) {
        (MediaSource::Local { root: src }, Destination::Local { root: dst }) => {
            let absolute = |p: &std::path::Path| {
                std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_owned())
            };
            let (src, dst) = (absolute(src), absolute(&dst.join(prefix)));
            dst.starts_with(&src) || src.starts_with(&dst)
        }
        (MediaSource::S3 { bucket: b1, prefix: p1 }, Destination::S3 { bucket: b2 }) => {
            b1 == b2 && (prefix.starts_with(p1.as_str()) || p1.starts_with(prefix))
        }
        _ => false,
    };
    if nested {
        return Err(Error::config(
            "BACKSTOP_MEDIA_SOURCE",
            format!(
                "{} holds the backup destination ({prefix} in {}) or lies inside it: every run would back up its own copies; \
                 give the media and the backups places apart (another bucket, or prefixes neither of which starts the other)",
                source.describe(),
                match destination {
                    Destination::S3 { bucket } => format!("s3://{bucket}"),
                    Destination::Local { root } => root.display().to_string(),
                }
            ),
        ));
    }
    Ok(())
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

/// Opens the previous state: the newest complete snapshot, else (none, or unreadable) a
/// listing of the mirror.
async fn previous_state(app: &App, run_id: &str) -> Result<(Previous, String)> {
    let prefix = &app.config.prefix;
    if let Some(summary) = newest_summary(app.store.as_ref(), prefix).await? {
        match SnapshotReader::open(app.store.as_ref(), &summary.snapshot_key).await {
            Ok(r) => return Ok((Previous::Snapshot(Box::new(r)), summary.snapshot_key)),
            Err(e) => {
                tracing::warn!(error = %e.report(), "the newest media snapshot is unreadable; listing the mirror instead")
            }
        }
    }
    Ok((Previous::mirror(app.store.clone(), prefix, run_id), "mirror listing".into()))
}

fn filter(options: &MediaSyncOptions) -> Filter {
    Filter { include: options.include.clone(), exclude: options.exclude.clone() }
}

async fn sync(
    app: &App,
    source: &SourceHandle,
    options: &MediaSyncOptions,
    ctx: &RunContext,
    out: &mut SyncOutcome,
) -> Result<()> {
    let prefix = &app.config.prefix;
    let taken = Timestamp::now();
    let snapshot_key = keys::media_snapshot(prefix, &ctx.started, &ctx.run_id);
    let s3 = app.config.s3.clone();

    // Pass 1: count. Entries are written to a new snapshot on the chance nothing changed.
    let (previous, previous_label) = previous_state(app, &ctx.run_id).await?;
    out.plan.previous = previous_label;
    let mut merge =
        Merge::new(SourceListing::new(source.store.clone(), &source.prefix), previous, filter(options));
    let mut unchanged_writer = if options.dry_run {
        None
    } else {
        Some(
            SnapshotWriter::begin(
                app.store.clone(),
                &snapshot_key,
                &s3,
                &ctx.run_id,
                taken,
                &source.describe,
            )
            .await?,
        )
    };
    let counted: Result<()> = async {
        while let Some(item) = merge.next().await? {
            let had = !matches!(item, Item::New(_));
            out.plan.count(&item, had);
            match (&item, unchanged_writer.as_mut()) {
                (Item::Unchanged(e) | Item::Excluded(e), Some(w)) => w.push(e).await?,
                (_, Some(_)) => unchanged_writer.take().expect("checked").abort().await,
                (_, None) => {}
            }
            if ctx.stop_by().is_some_and(|at| Instant::now() >= at) {
                return Err(Error::Deadline {
                    during: "listing the media source".into(),
                    margin_s: ctx.margin().as_secs(),
                });
            }
        }
        Ok(())
    }
    .await;
    out.plan.source_objects = merge.source.listed;
    if let Err(e) = counted {
        if let Some(w) = unchanged_writer {
            w.abort().await;
        }
        return Err(e);
    }
    if let Err(e) = guard(&out.plan, options) {
        if let Some(w) = unchanged_writer {
            w.abort().await;
        }
        return Err(e);
    }
    tracing::info!(
        source = %source.describe, listed = out.plan.source_objects, new = out.plan.new, modified = out.plan.modified,
        deleted = out.plan.deleted, to_copy = %human_bytes(out.plan.bytes_to_copy), "media source compared"
    );
    if options.dry_run {
        return Ok(());
    }
    if let Some(w) = unchanged_writer {
        // Nothing changed: the snapshot is already written.
        let (_, totals) = w.finish().await?;
        return commit(app, source, ctx, taken, snapshot_key, totals, Changes::default(), 0, out).await;
    }

    // Pass 2: carry out the changes, writing the new snapshot in key order.
    let (previous, _) = previous_state(app, &ctx.run_id).await?;
    let mut merge =
        Merge::new(SourceListing::new(source.store.clone(), &source.prefix), previous, filter(options));
    let copier = Arc::new(Copier {
        source: source.store.clone(),
        source_prefix: source.prefix.clone(),
        mirror: app.store.clone(),
        prefix: prefix.clone(),
        server_side: source.server_side,
        s3: s3.clone(),
        run_id: ctx.run_id.clone(),
    });
    let mut writer =
        SnapshotWriter::begin(app.store.clone(), &snapshot_key, &s3, &ctx.run_id, taken, &source.describe)
            .await?;
    // The guards were judged on pass 1's listing; pass 2 lists again, so it may trash no more
    // than pass 1 planned (a source that emptied in between must not empty the mirror).
    let budget = (!options.force).then(|| out.plan.modified + out.plan.deleted + GUARD_FLOOR);
    let executed = execute(&mut merge, &copier, &mut writer, options.concurrency(), budget, ctx, out).await;
    let changes = Changes {
        new: out.plan.new,
        modified: out.plan.modified,
        deleted: out.plan.deleted,
        failed: out.failed,
    };
    match executed {
        Ok(()) => {
            let (_, totals) = writer.finish().await?;
            commit(app, source, ctx, taken, snapshot_key, totals, changes, out.remaining, out).await?;
            if out.failed > 0 {
                return Err(Error::Store {
                    op: "sync",
                    location: source.describe.clone(),
                    detail: format!(
                        "{} of {} changes failed (first: {}); the next run retries them",
                        out.failed,
                        out.plan.changes(),
                        out.failed_keys
                            .first()
                            .map(|f| format!("{}: {}", f.key, f.error))
                            .unwrap_or_default()
                    ),
                    source: None,
                    retryable: true,
                    kind: StoreKind::Other,
                });
            }
            if out.remaining > 0 {
                return Err(Error::Deadline {
                    during: format!("copying media ({} changes left for the next run)", out.remaining),
                    margin_s: ctx.margin().as_secs(),
                });
            }
            Ok(())
        }
        Err(e) => {
            // What was copied stays in the mirror; the next run compares against the last
            // snapshot again and finds it (copies are idempotent, trash is never overwritten).
            writer.abort().await;
            Err(e)
        }
    }
}

/// Refuses a run that would empty or mostly trash the mirror, unless forced.
fn guard(plan: &Plan, options: &MediaSyncOptions) -> Result<()> {
    if options.force || plan.previous_objects == 0 {
        return Ok(());
    }
    let refuse = |reason: String| {
        Err(Error::Guard {
            what: "media-sync".into(),
            reason: format!(
                "{reason}; nothing was moved. If this is intended, run once with \"force\": true"
            ),
        })
    };
    if plan.source_objects == 0 {
        return refuse(format!(
            "the source listing is empty while the last snapshot has {} objects (a misconfigured source?)",
            plan.previous_objects
        ));
    }
    let fraction = options.max_delete_fraction.unwrap_or(0.2);
    let trashed = plan.modified + plan.deleted;
    if trashed > GUARD_FLOOR && trashed as f64 > fraction * plan.previous_objects as f64 {
        return refuse(format!(
            "the run would trash {trashed} of {} objects, more than max_delete_fraction {fraction}",
            plan.previous_objects
        ));
    }
    Ok(())
}

/// What one key's work produced.
#[derive(Debug)]
struct Done {
    /// The entry for the new snapshot (`None`: the key is not in the mirror).
    entry: Option<Entry>,
    copied: Option<(u64, Verified)>,
    trashed: bool,
    failed: Option<FailedKey>,
}

/// Attempts at one object's copy within a run.
const COPY_ATTEMPTS: u64 = 3;

/// Copies `listed`, and again (reading the source afresh) after a failure that may pass: the
/// SDK retries a request until its body starts, not a download cut short mid-stream.
async fn copy_retrying(copier: &Copier, listed: &ObjectInfo) -> Result<(Entry, Verified)> {
    let mut attempt = 1;
    loop {
        match copier.copy_in(listed).await {
            Err(e) if e.is_retryable() && attempt < COPY_ATTEMPTS => {
                tracing::info!(key = %listed.key, attempt, error = %e.report(), "media copy failed; copying it again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                attempt += 1;
            }
            done => return done,
        }
    }
}

async fn work(copier: Arc<Copier>, item: Item, cancel: CancellationToken) -> Done {
    let (key, fallback) = match &item {
        Item::New(s) => (s.key.clone(), None),
        Item::Modified(_, o) | Item::Deleted(o) | Item::Unchanged(o) | Item::Excluded(o) => {
            (o.key.clone(), Some(o.clone()))
        }
    };
    let job = async {
        match item {
            Item::Unchanged(o) | Item::Excluded(o) => {
                Ok(Done { entry: Some(o), copied: None, trashed: false, failed: None })
            }
            Item::New(s) => {
                let (entry, v) = copy_retrying(&copier, &s).await?;
                Ok(Done { copied: Some((entry.size, v)), entry: Some(entry), trashed: false, failed: None })
            }
            Item::Modified(s, o) => {
                copier.trash(&o).await?;
                let (entry, v) = copy_retrying(&copier, &s).await?;
                Ok(Done { copied: Some((entry.size, v)), entry: Some(entry), trashed: true, failed: None })
            }
            Item::Deleted(o) => {
                copier.trash(&o).await?;
                copier.delete_current(&o.key).await?;
                Ok(Done { entry: None, copied: None, trashed: true, failed: None })
            }
        }
    };
    let result: Result<Done> = tokio::select! {
        r = job => r,
        () = cancel.cancelled() => Err(Error::Deadline { during: format!("copying {key}"), margin_s: 0 }),
    };
    result.unwrap_or_else(|e| {
        tracing::warn!(key = %key, error = %e.report(), "media object not synced");
        // The mirror still holds what the last snapshot says (trash before replace, and
        // `current` is replaced atomically), so the old entry stays true.
        Done {
            entry: fallback,
            copied: None,
            trashed: false,
            failed: Some(FailedKey { key, error: e.report() }),
        }
    })
}

/// Pass 2: keys in order, `concurrency` copies at a time, results written in order.
async fn execute(
    merge: &mut Merge,
    copier: &Arc<Copier>,
    writer: &mut SnapshotWriter,
    concurrency: usize,
    trash_budget: Option<u64>,
    ctx: &RunContext,
    out: &mut SyncOutcome,
) -> Result<()> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut trashes = 0u64;
    let cancel = CancellationToken::new();
    // Cancels copies still running close to the deadline, leaving time to write the
    // snapshot, the run record and the outcome.
    let hard_stop = ctx.deadline.map(|d| d.checked_sub(ctx.margin() / 2).unwrap_or(d));
    let _canceller = hard_stop.map(|at| {
        let cancel = cancel.clone();
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            cancel.cancel();
        }))
    });
    let window = concurrency * 32;
    let mut pending = FuturesOrdered::new();
    let mut listed_all = false;
    let mut stopped = false;
    let mut attempted = 0u64;
    let mut listing_error = None;
    let mut last_progress = Instant::now();
    loop {
        while !listed_all && !stopped && pending.len() < window {
            if ctx.stop_by().is_some_and(|at| Instant::now() >= at) {
                stopped = true;
                break;
            }
            match merge.next().await {
                Ok(Some(item)) => {
                    if matches!(item, Item::Modified(..) | Item::Deleted(_)) {
                        trashes += 1;
                        if let Some(budget) = trash_budget.filter(|b| trashes > *b) {
                            listing_error = Some(Error::Guard {
                                what: "media-sync".into(),
                                reason: format!(
                                    "the source changed while the run went on: it would now trash more than the {budget} \
                                     objects planned; stopped (the last snapshot still holds). If this is intended, run \
                                     once with \"force\": true"
                                ),
                            });
                            stopped = true;
                            break;
                        }
                    }
                    let needs_copy = matches!(item, Item::New(_) | Item::Modified(..) | Item::Deleted(_));
                    if needs_copy {
                        attempted += 1;
                        let permit =
                            permits.clone().acquire_owned().await.expect("the semaphore is never closed");
                        let (copier, cancel) = (copier.clone(), cancel.clone());
                        let task = tokio::spawn(async move {
                            let done = work(copier, item, cancel).await;
                            drop(permit);
                            done
                        });
                        pending.push_back(futures_util::future::Either::Left(async move {
                            task.await.expect("sync tasks do not panic")
                        }));
                    } else {
                        let cancel = cancel.clone();
                        let copier = copier.clone();
                        pending.push_back(futures_util::future::Either::Right(work(copier, item, cancel)));
                    }
                }
                Ok(None) => listed_all = true,
                Err(e) => {
                    listing_error = Some(e);
                    stopped = true;
                }
            }
        }
        let Some(done) = pending.next().await else { break };
        if let Some((bytes, v)) = done.copied {
            out.copied += 1;
            out.copied_bytes += bytes;
            match v {
                Verified::Md5 => out.verified_md5 += 1,
                Verified::Size => out.verified_size += 1,
                Verified::ServerSide => out.verified_server_side += 1,
            }
        }
        out.trashed += u64::from(done.trashed);
        if let Some(f) = done.failed {
            out.failed += 1;
            if out.failed_keys.len() < FAILED_KEPT {
                out.failed_keys.push(f);
            }
        }
        if let Some(entry) = &done.entry {
            writer.push(entry).await?;
        }
        if last_progress.elapsed() >= crate::telemetry::progress_every() {
            last_progress = Instant::now();
            tracing::info!(progress_done = attempted, progress_total = out.plan.changes(),
                progress_unit = "objects", copied = out.copied, bytes = %human_bytes(out.copied_bytes), trashed = out.trashed,
                failed = out.failed, left = out.plan.changes().saturating_sub(attempted), "media sync in progress");
        }
    }
    if stopped {
        // Keys not reached keep what the last snapshot says of them.
        while let Some(entry) = merge.next_previous().await? {
            writer.push(&entry).await?;
        }
        out.remaining = out.plan.changes().saturating_sub(attempted);
    }
    match listing_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Writes the summary (the snapshot's commit marker) and fills the outcome.
#[allow(clippy::too_many_arguments)]
async fn commit(
    app: &App,
    source: &SourceHandle,
    ctx: &RunContext,
    taken: Timestamp,
    snapshot_key: String,
    totals: snapshot::Totals,
    changes: Changes,
    remaining: u64,
    out: &mut SyncOutcome,
) -> Result<()> {
    let summary = Summary {
        format: snapshot::SNAPSHOT_FORMAT,
        run_id: ctx.run_id.clone(),
        env: app.config.env.clone(),
        source: source.describe.clone(),
        taken,
        finished: Timestamp::now(),
        snapshot_key: snapshot_key.clone(),
        objects: totals.objects,
        bytes: totals.bytes,
        changes,
        remaining,
    };
    out.summary_key = Some(snapshot::write_summary(app.store.as_ref(), &summary).await?);
    out.snapshot_key = Some(snapshot_key);
    out.objects = totals.objects;
    out.bytes = totals.bytes;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
