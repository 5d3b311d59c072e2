//! The mirror's two passes: count (the guards judge this listing), then copy and trash a
//! bounded window of keys at a time, writing the new snapshot in key order, and commit it.

use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{FuturesOrdered, StreamExt};
use jiff::Timestamp;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::copy::{Copier, Verified};
use super::options::{MediaSyncOptions, filter};
use super::plan::{Item, Merge, Previous, SourceListing};
use super::snapshot::{self, Changes, Entry, SnapshotReader, SnapshotWriter, Summary, newest_summary};
use super::source::SourceHandle;
use super::{FAILED_KEPT, FailedKey, GUARD_FLOOR, Plan, SyncOutcome};
use crate::App;
use crate::error::{Error, Result, StoreKind};
use crate::keys;
use crate::run::{RunContext, human_bytes};
use crate::store::ObjectInfo;

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

pub(super) async fn sync(
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
pub(super) fn guard(plan: &Plan, options: &MediaSyncOptions) -> Result<()> {
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
