//! retention-prune: applies keep-rules to database backups, media snapshots and their trash,
//! and run records, with invariants that make "the rule went on deleting after backups stopped"
//! impossible:
//!
//! - backups are planned in groups of (environment, database, full or partial): staging never
//!   stands in for production, nor a schema-only dump for a full one;
//! - the newest backup of each group (and the newest media snapshot) is always kept;
//! - when the newest is older than `stale_after`, nothing of that database (or of the media) is
//!   deleted and the run fails saying so;
//! - only what a manifest (or snapshot summary) names is deleted, manifest first, then its
//!   parts, so an interrupted prune never leaves a manifest whose parts are gone; keys without a
//!   manifest and incomplete uploads are cleaned up only after a day (a backup may be running);
//! - a trash object goes only when no kept snapshot lists its version; a media snapshot that
//!   pairs with a kept database backup is kept with it;
//! - a manifest that cannot be read is reported and kept, with its parts; a media summary that
//!   cannot be read stops all trash deletion for the run (it may list any of it);
//! - what the store refuses to delete keeps what it names: a manifest or summary that survived
//!   keeps its parts, entries and trash.
//!
//! `plan` decides (pure); this module lists, guards and deletes.

mod plan;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

pub use plan::{Candidate, Decision, Keep, KeepRules, kept_per_reason, parse_within, plan};

use crate::App;
use crate::backup::Manifest;
use crate::catalog::read_manifest;
use crate::error::{Error, Result, StoreKind};
use crate::keys;
use crate::media::{SnapshotReader, Summary, list_all_summaries};
use crate::payload::parse_duration;
use crate::run::{self, Job, JobReport, RunContext, human_bytes};
use crate::store::{ObjectInfo, ObjectStore};

/// Leftovers younger than this may belong to a run still going.
const GRACE: SignedDuration = SignedDuration::from_hours(24);
/// Decisions listed per group in a run record (dry runs list them all up to this).
const LISTED: usize = 1000;

/// retention-prune's options; anything left out comes from `BACKSTOP_RETENTION`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionOptions {
    /// The rules for every database.
    pub policy: Option<KeepRules>,
    /// Rules for named databases, instead of `policy`.
    pub databases: BTreeMap<String, KeepRules>,
    /// Rules for media snapshots (default: `policy`).
    pub media: Option<KeepRules>,
    /// Run records older than this many days are deleted (default 90).
    pub history_days: Option<u32>,
    /// Where days, weeks and months begin (IANA name; default UTC).
    pub timezone: Option<String>,
    /// A database whose newest backup is older than this is not pruned (default `2d`).
    pub stale_after: Option<String>,
    pub dry_run: bool,
}

/// The options resolved and checked.
#[derive(Debug, Clone)]
struct Resolved {
    policy: KeepRules,
    overrides: BTreeMap<String, KeepRules>,
    media: KeepRules,
    history: SignedDuration,
    tz: TimeZone,
    stale_after: SignedDuration,
    dry_run: bool,
}

impl RetentionOptions {
    /// The payload over the defaults from the environment, checked before anything is read.
    fn resolve(&self, defaults: Option<&str>) -> Result<Resolved> {
        let base: RetentionOptions = match defaults {
            Some(json) => {
                let value: serde_json::Value = serde_json::from_str(json)
                    .map_err(|e| Error::config("BACKSTOP_RETENTION", format!("not JSON: {e}")))?;
                crate::payload::parse(&value)
                    .map_err(|e| Error::config("BACKSTOP_RETENTION", e.to_string()))?
                    .0
            }
            None => RetentionOptions::default(),
        };
        let policy = self.policy.clone().or(base.policy).ok_or_else(|| {
            Error::Payload("policy: no keep-rules (in the payload or BACKSTOP_RETENTION)".into())
        })?;
        let check = |name: String, rules: &KeepRules| {
            rules.validate().map_err(|e| Error::Payload(format!("{name}: {e}")))
        };
        check("policy".into(), &policy)?;
        let overrides = if self.databases.is_empty() { base.databases } else { self.databases.clone() };
        for (db, rules) in &overrides {
            check(format!("databases.{db}"), rules)?;
        }
        let media = self.media.clone().or(base.media).unwrap_or_else(|| policy.clone());
        check("media".into(), &media)?;
        let days = self.history_days.or(base.history_days).unwrap_or(90);
        if days == 0 {
            return Err(Error::Payload(
                "history_days: 0 would delete every run record; use 1 or more".into(),
            ));
        }
        let tz_name = self.timezone.clone().or(base.timezone).unwrap_or_else(|| "UTC".into());
        let tz = TimeZone::get(&tz_name)
            .map_err(|e| Error::Payload(format!("timezone: {tz_name:?} is not an IANA time zone: {e}")))?;
        let stale = self.stale_after.clone().or(base.stale_after).unwrap_or_else(|| "2d".into());
        let stale_after = parse_duration(&stale).map_err(|e| Error::Payload(format!("stale_after: {e}")))?;
        Ok(Resolved {
            policy,
            overrides,
            media,
            history: SignedDuration::from_hours(24 * i64::from(days)),
            tz,
            stale_after: SignedDuration::try_from(stale_after)
                .map_err(|_| Error::Payload(format!("stale_after: {stale:?} is too long")))?,
            dry_run: self.dry_run,
        })
    }
}

/// The retention-prune job.
#[derive(Debug)]
pub struct RetentionPrune;

/// What happened to one group (a database, or the media snapshots).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupReport {
    /// The database (or `media`).
    pub name: String,
    /// The environment its backups were made in (empty for media).
    pub env: String,
    /// Partial backups (schema only, some tables) are planned apart from full ones.
    pub partial: bool,
    pub kept: usize,
    pub deleted: usize,
    pub bytes_freed: u64,
    /// Why nothing was deleted, when a guard stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<String>,
    pub kept_per_reason: BTreeMap<String, usize>,
    /// Every backup with the rules that keep it or `delete` (first 1,000), newest first.
    pub decisions: Vec<Decision>,
}

/// What the whole run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub timezone: String,
    pub databases: Vec<GroupReport>,
    pub media: Option<GroupReport>,
    /// Media archives (`mode: "archive"`), per environment, by the media rules.
    pub archives: Vec<GroupReport>,
    pub trash_deleted: usize,
    pub trash_bytes_freed: u64,
    pub orphans_deleted: Vec<String>,
    pub uploads_aborted: Vec<String>,
    pub run_records_deleted: usize,
    /// Manifests and media summaries that could not be read: kept, with their parts (and no
    /// trash deleted while a summary is unreadable).
    pub unreadable: Vec<String>,
    /// Objects under Object Lock retention or legal hold: left as they are.
    pub skipped_locked: Vec<String>,
    pub bytes_freed: u64,
}

#[async_trait]
impl Job for RetentionPrune {
    const NAME: &'static str = "retention-prune";
    type Options = RetentionOptions;

    fn is_dry_run(options: &RetentionOptions) -> bool {
        options.dry_run
    }

    async fn run(app: &App, options: &RetentionOptions, ctx: &RunContext) -> JobReport {
        let resolved = match options.resolve(app.config.retention.as_deref()) {
            Ok(r) => r,
            Err(e) => return JobReport::failed("invalid payload", e),
        };
        let mut report = PruneReport {
            dry_run: resolved.dry_run,
            timezone: resolved.tz.iana_name().unwrap_or("UTC").into(),
            ..Default::default()
        };
        let mut errors = Vec::new();
        if let Err(e) = prune(app, &resolved, ctx, &mut report, &mut errors).await {
            errors.push(e);
        }
        let deleted: usize =
            report.databases.iter().chain(&report.archives).map(|g| g.deleted).sum::<usize>()
                + report.media.as_ref().map_or(0, |m| m.deleted);
        let detail = format!(
            "{} {deleted} backups/snapshots, {} freed",
            if resolved.dry_run { "would delete" } else { "deleted" },
            human_bytes(report.bytes_freed)
        );
        JobReport {
            outputs: serde_json::to_value(&report).expect("reports serialize"),
            what: format!("{} databases", report.databases.len()),
            detail: Some(detail),
            error: run::combine(errors.len().max(1), errors),
        }
    }
}

/// A database backup as retention sees it.
#[derive(Debug, Clone)]
struct Listed {
    manifest_key: String,
    manifest: Manifest,
}

impl Listed {
    fn time(&self) -> Timestamp {
        self.manifest.snapshot.unwrap_or(self.manifest.started)
    }
}

/// What a keep-policy compares within: backups of another environment, another database, or a
/// partial dump beside a full one never stand in for each other (restic groups by host and
/// paths for the same reason). Staging's fresh backups must not push production's out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    env: String,
    database: String,
    partial: bool,
}

impl GroupKey {
    fn of(m: &Manifest) -> Self {
        GroupKey { env: m.env.clone(), database: m.database.clone(), partial: m.is_partial() }
    }

    fn describe(&self) -> String {
        format!("{} of {}{}", self.database, self.env, if self.partial { " (partial backups)" } else { "" })
    }
}

/// Everything retention found under `db/`: backups grouped, and manifests it could not read
/// (first-class members: kept, with everything under their stem).
#[derive(Debug, Default)]
struct Inventory {
    groups: BTreeMap<GroupKey, Vec<Listed>>,
    unreadable_stems: Vec<String>,
}

impl Inventory {
    fn all(&self) -> impl Iterator<Item = &Listed> {
        self.groups.values().flatten()
    }

    /// Whether `key` belongs to a backup whose manifest could not be read.
    fn protected(&self, key: &str) -> bool {
        self.unreadable_stems.iter().any(|s| key.starts_with(s.as_str()))
    }
}

/// The parts that may be deleted once the markers' deletes are known: those of backups whose
/// manifest is gone, never of one the store refused to delete (it still lists as a backup, so
/// its parts must stay), and only keys that exist.
fn parts_of_deleted(
    planned: &[&Listed],
    refused: &BTreeSet<String>,
    existing: &BTreeMap<&str, u64>,
) -> Vec<String> {
    planned
        .iter()
        .filter(|b| !refused.contains(&b.manifest_key))
        .flat_map(|b| b.manifest.objects.iter().map(|o| o.key.clone()))
        .filter(|k| existing.contains_key(k.as_str()))
        .collect()
}

async fn prune(
    app: &App,
    r: &Resolved,
    ctx: &RunContext,
    report: &mut PruneReport,
    errors: &mut Vec<Error>,
) -> Result<()> {
    let store = app.store.as_ref();
    let prefix = &app.config.prefix;
    let now = ctx.started;

    // Database backups: every key under db/, the manifests read one by one.
    let all = store.list(&keys::db_scope(prefix, None)).await?;
    let mut inventory = Inventory::default();
    for obj in all.iter().filter(|o| keys::is_manifest(&o.key)) {
        match read_manifest(store, &obj.key).await {
            Ok(manifest) => inventory
                .groups
                .entry(GroupKey::of(&manifest))
                .or_default()
                .push(Listed { manifest_key: obj.key.clone(), manifest }),
            // Deleted meanwhile (another prune): nothing to do.
            Err(e) if e.store_kind() == Some(StoreKind::NotFound) => {}
            Err(e) => {
                tracing::warn!(key = %obj.key, error = %e.report(), "unreadable manifest: kept, with its parts");
                report.unreadable.push(format!("{}: {}", obj.key, e.report()));
                inventory.unreadable_stems.push(obj.key.trim_end_matches(keys::MANIFEST_SUFFIX).to_owned());
            }
        }
    }
    let sizes: BTreeMap<&str, u64> = all.iter().map(|o| (o.key.as_str(), o.size)).collect();

    let mut kept_times: Vec<Timestamp> = Vec::new();
    let mut to_delete: Vec<&Listed> = Vec::new();
    for (group_key, list) in &inventory.groups {
        let database = &group_key.database;
        let rules = r.overrides.get(database).unwrap_or(&r.policy);
        let candidates: Vec<Candidate> = list
            .iter()
            .map(|b| Candidate {
                id: b.manifest_key.clone(),
                time: b.time(),
                tags: b.manifest.tag.iter().cloned().collect(),
            })
            .collect();
        let decisions = plan(&candidates, rules, &r.tz);
        let mut group = GroupReport {
            name: database.clone(),
            env: group_key.env.clone(),
            partial: group_key.partial,
            kept_per_reason: kept_per_reason(&decisions),
            ..Default::default()
        };
        let newest = decisions.first().map(|d| d.time);
        let stale = newest.filter(|t| now.duration_since(*t) > r.stale_after);
        for d in &decisions {
            let b = list.iter().find(|b| b.manifest_key == d.id).expect("decided from the list");
            if d.keep() || stale.is_some() {
                group.kept += 1;
                if !group_key.partial {
                    kept_times.push(d.time);
                }
            } else {
                group.deleted += 1;
                group.bytes_freed += b.manifest.bytes;
                to_delete.push(b);
            }
        }
        if let Some(t) = stale {
            let what = group_key.describe();
            let reason = format!(
                "the newest backup is from {t}, older than stale_after ({}): backups have stopped, so nothing of {what} is deleted",
                humanize(r.stale_after)
            );
            // Partial backups are often made by hand, once: their age is no alarm, but they
            // are kept all the same.
            if !group_key.partial {
                errors.push(Error::Guard { what: format!("retention of {what}"), reason: reason.clone() });
            }
            group.stale = Some(reason);
        }
        group.decisions = decisions.into_iter().take(LISTED).collect();
        report.bytes_freed += group.bytes_freed;
        report.databases.push(group);
    }

    // Keys no manifest names (aborted runs' leftovers), after a day.
    let named: BTreeSet<&str> = inventory
        .all()
        .flat_map(|b| b.manifest.objects.iter().map(|o| o.key.as_str()).chain([b.manifest_key.as_str()]))
        .collect();
    let orphans: Vec<String> = all
        .iter()
        .filter(|o| !keys::is_manifest(&o.key) && !named.contains(o.key.as_str()))
        .filter(|o| !inventory.protected(&o.key))
        .filter(|o| older_than(o, now, GRACE))
        .map(|o| o.key.clone())
        .collect();

    // Media snapshots, paired with the kept database backups. A summary that cannot be read
    // may list trash: then no trash is deleted in this run at all.
    let summaries = list_all_summaries(store, prefix).await?;
    for (key, e) in &summaries.unreadable {
        tracing::warn!(key = %key, error = %e.report(), "unreadable media summary: kept, and no trash deleted");
        report.unreadable.push(format!("{key}: {}", e.report()));
    }
    let trash_allowed = summaries.unreadable.is_empty();
    let (media_delete, media_kept) = plan_media(&summaries.readable, r, &kept_times, now, report, errors);

    // Media archives: whole objects, by the media rules, per environment.
    let archives = plan_archives(store, prefix, r, now, report, errors).await?;

    // Run records past history_days.
    let records: Vec<String> = store
        .list(&keys::runs_scope(prefix, None))
        .await?
        .into_iter()
        .filter(|o| older_than(o, now, r.history))
        .map(|o| o.key)
        .collect();
    report.orphans_deleted = orphans.clone();
    report.run_records_deleted = records.len();

    // Incomplete uploads older than a day.
    let uploads: Vec<_> = store
        .list_multipart(prefix)
        .await?
        .into_iter()
        .filter(|u| u.initiated.is_some_and(|t| now.duration_since(t) > GRACE))
        .collect();
    report.uploads_aborted = uploads.iter().map(|u| u.key.clone()).collect();
    if r.dry_run {
        let trash =
            if trash_allowed { trash_to_delete(store, prefix, &media_kept, now).await? } else { vec![] };
        count_trash(report, &trash);
        return Ok(());
    }

    // Manifests (and summaries) first: an interruption leaves unnamed parts, never a backup
    // whose parts are gone. What the store refused to delete still lists, so what it names
    // stays.
    let mut markers: Vec<String> = to_delete.iter().map(|b| b.manifest_key.clone()).collect();
    markers.extend(media_delete.iter().map(|s| keys::media_summary(&s.snapshot_key)));
    let refused = delete(store, &markers, report, errors).await?;
    unclaim_refused(report, &to_delete, &media_delete, &refused);
    let mut parts = parts_of_deleted(&to_delete, &refused, &sizes);
    // A snapshot's entries go with its summary: nothing would find them once it is gone.
    let (media_gone, media_refused): (Vec<&Summary>, Vec<&Summary>) =
        media_delete.iter().partition(|s| !refused.contains(&keys::media_summary(&s.snapshot_key)));
    parts.extend(media_gone.iter().map(|s| s.snapshot_key.clone()));
    // Trash that no kept snapshot lists (a snapshot whose summary survived counts as kept).
    let still_listed: Vec<&Summary> = media_kept.iter().copied().chain(media_refused).collect();
    let trash =
        if trash_allowed { trash_to_delete(store, prefix, &still_listed, now).await? } else { vec![] };
    count_trash(report, &trash);
    parts.extend(trash.into_iter().map(|o| o.key));
    parts.extend(orphans);
    parts.extend(archives);
    parts.extend(records);
    // A batch at a time, watching the deadline: the run must still write its record. What is
    // left has no manifest or summary any more; the next run removes it as orphans.
    let past = || ctx.stop_by().is_some_and(|at| std::time::Instant::now() >= at);
    let left = delete_until(store, &parts, report, errors, past).await?;
    if left > 0 {
        return Err(Error::Deadline {
            during: format!("deleting backups ({left} objects left for the next run)"),
            margin_s: ctx.margin().as_secs(),
        });
    }
    for u in uploads {
        if let Err(e) = store.abort_multipart(&u.key, &u.upload_id).await {
            errors.push(e);
        }
    }
    Ok(())
}

/// Plans the media archives: the keep-rules of `media` per environment (the newest always
/// kept, nothing deleted once archives have stopped). Returns the keys to delete.
async fn plan_archives(
    store: &dyn ObjectStore,
    prefix: &str,
    r: &Resolved,
    now: Timestamp,
    report: &mut PruneReport,
    errors: &mut Vec<Error>,
) -> Result<Vec<String>> {
    let mut by_env: BTreeMap<String, Vec<ObjectInfo>> = BTreeMap::new();
    for o in store.list(&keys::media_archives_scope(prefix)).await? {
        if let (Some(env), Some(_)) = (keys::media_archive_env(&o.key), o.last_modified) {
            by_env.entry(env.to_owned()).or_default().push(o);
        }
    }
    let mut delete = Vec::new();
    for (env, list) in by_env {
        let candidates: Vec<Candidate> = list
            .iter()
            .map(|o| Candidate { id: o.key.clone(), time: o.last_modified.unwrap_or(now), tags: vec![] })
            .collect();
        let decisions = plan(&candidates, &r.media, &r.tz);
        let mut group = GroupReport {
            name: "media archives".into(),
            env: env.clone(),
            kept_per_reason: kept_per_reason(&decisions),
            ..Default::default()
        };
        let stale = decisions.first().map(|d| d.time).filter(|t| now.duration_since(*t) > r.stale_after);
        for d in &decisions {
            if d.keep() || stale.is_some() {
                group.kept += 1;
            } else {
                let size = list.iter().find(|o| o.key == d.id).map_or(0, |o| o.size);
                group.deleted += 1;
                group.bytes_freed += size;
                delete.push(d.id.clone());
            }
        }
        if let Some(t) = stale {
            let reason = format!(
                "the newest media archive of {env} is from {t}, older than stale_after: archives have stopped, so none is deleted"
            );
            errors.push(Error::Guard {
                what: format!("retention of media archives of {env}"),
                reason: reason.clone(),
            });
            group.stale = Some(reason);
        }
        group.decisions = decisions.into_iter().take(LISTED).collect();
        report.bytes_freed += group.bytes_freed;
        report.archives.push(group);
    }
    Ok(delete)
}

fn count_trash(report: &mut PruneReport, trash: &[ObjectInfo]) {
    report.trash_deleted = trash.len();
    report.trash_bytes_freed = trash.iter().map(|o| o.size).sum();
    report.bytes_freed += report.trash_bytes_freed;
}

/// Takes what the store refused to delete back out of the report's deleted counts.
fn unclaim_refused(
    report: &mut PruneReport,
    planned: &[&Listed],
    media: &[&Summary],
    refused: &BTreeSet<String>,
) {
    for b in planned.iter().filter(|b| refused.contains(&b.manifest_key)) {
        let key = GroupKey::of(&b.manifest);
        if let Some(g) = report
            .databases
            .iter_mut()
            .find(|g| g.name == key.database && g.env == key.env && g.partial == key.partial)
        {
            g.deleted -= 1;
            g.kept += 1;
            g.bytes_freed -= b.manifest.bytes;
            report.bytes_freed -= b.manifest.bytes;
        }
    }
    let media_refused =
        media.iter().filter(|s| refused.contains(&keys::media_summary(&s.snapshot_key))).count();
    if let Some(m) = report.media.as_mut() {
        m.deleted -= media_refused;
        m.kept += media_refused;
    }
}

fn older_than(o: &ObjectInfo, now: Timestamp, age: SignedDuration) -> bool {
    o.last_modified.is_some_and(|t| now.duration_since(t) > age)
}

fn humanize(d: SignedDuration) -> String {
    run::human_duration(d.unsigned_abs())
}

/// Plans the media snapshots: the keep-rules, plus the snapshot each kept database backup pairs
/// with (the newest taken at or before it). Returns (to delete, kept).
fn plan_media<'a>(
    summaries: &'a [Summary],
    r: &Resolved,
    kept_backups: &[Timestamp],
    now: Timestamp,
    report: &mut PruneReport,
    errors: &mut Vec<Error>,
) -> (Vec<&'a Summary>, Vec<&'a Summary>) {
    if summaries.is_empty() {
        return (vec![], vec![]);
    }
    let candidates: Vec<Candidate> = summaries
        .iter()
        .map(|s| Candidate { id: s.snapshot_key.clone(), time: s.taken, tags: vec![] })
        .collect();
    let mut decisions = plan(&candidates, &r.media, &r.tz);
    // summaries are oldest first; the pair of a backup is the last one taken at or before it.
    for t in kept_backups {
        if let Some(pair) = summaries.iter().rev().find(|s| s.taken <= *t)
            && let Some(d) = decisions.iter_mut().find(|d| d.id == pair.snapshot_key)
            && !d.reasons.iter().any(|x| x == "pairs with a kept backup")
        {
            d.reasons.push("pairs with a kept backup".into());
        }
    }
    let mut group = GroupReport {
        name: "media".into(),
        kept_per_reason: kept_per_reason(&decisions),
        ..Default::default()
    };
    let stale = decisions.first().map(|d| d.time).filter(|t| now.duration_since(*t) > r.stale_after);
    let (mut delete, mut keep) = (Vec::new(), Vec::new());
    for d in &decisions {
        let s = summaries.iter().find(|s| s.snapshot_key == d.id).expect("decided from the list");
        if d.keep() || stale.is_some() {
            group.kept += 1;
            keep.push(s);
        } else {
            group.deleted += 1;
            delete.push(s);
        }
    }
    if let Some(t) = stale {
        let reason = format!(
            "the newest media snapshot is from {t}, older than stale_after: media-sync has stopped, so no snapshot is deleted"
        );
        errors.push(Error::Guard { what: "retention of media".into(), reason: reason.clone() });
        group.stale = Some(reason);
    }
    group.decisions = decisions.into_iter().take(LISTED).collect();
    report.media = Some(group);
    (delete, keep)
}

/// Trash objects (older than a day) that no kept snapshot lists. Memory grows with the trash,
/// not with the set: the kept snapshots are streamed.
async fn trash_to_delete(
    store: &dyn ObjectStore,
    prefix: &str,
    kept: &[&Summary],
    now: Timestamp,
) -> Result<Vec<ObjectInfo>> {
    let mut trash: BTreeMap<String, ObjectInfo> = store
        .list(&keys::media_trash_scope(prefix))
        .await?
        .into_iter()
        .filter(|o| older_than(o, now, GRACE))
        .map(|o| (o.key.clone(), o))
        .collect();
    if trash.is_empty() {
        return Ok(vec![]);
    }
    for s in kept {
        let mut reader = SnapshotReader::open(store, &s.snapshot_key).await?;
        while let Some(e) = reader.next().await? {
            trash.remove(&keys::media_trash(prefix, &e.version, &e.key));
        }
    }
    Ok(trash.into_values().collect())
}

/// Keys per batch: what one DeleteObjects request takes.
const DELETE_BATCH: usize = 1000;

/// [`delete`]s `keys` a batch at a time, stopping before a batch once `stop()` says so.
/// Returns how many keys were left.
async fn delete_until(
    store: &dyn ObjectStore,
    keys: &[String],
    report: &mut PruneReport,
    errors: &mut Vec<Error>,
    stop: impl Fn() -> bool,
) -> Result<usize> {
    for (i, batch) in keys.chunks(DELETE_BATCH).enumerate() {
        if stop() {
            return Ok(keys.len() - i * DELETE_BATCH);
        }
        delete(store, batch, report, errors).await?;
    }
    Ok(0)
}

/// Deletes in batches and returns the keys that are still there. An Object Lock refusal is the
/// store doing its job: reported, not an error. Any other refusal (a role without
/// `s3:DeleteObject`, an internal error) is a failure of the run.
async fn delete(
    store: &dyn ObjectStore,
    keys: &[String],
    report: &mut PruneReport,
    errors: &mut Vec<Error>,
) -> Result<BTreeSet<String>> {
    let mut refused = BTreeSet::new();
    if keys.is_empty() {
        return Ok(refused);
    }
    for (key, e) in store.delete_many(keys).await? {
        if e.store_kind() == Some(StoreKind::Locked) {
            report.skipped_locked.push(format!("{key}: {}", e.report()));
        } else {
            errors.push(e);
        }
        refused.insert(key);
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_long_delete_stops_between_batches_when_told_and_says_what_is_left() {
        let dir = std::env::temp_dir().join(format!("backstop-delete-until-{}", std::process::id()));
        let store = crate::store::LocalStore::new(&dir);
        let keys: Vec<String> = (0..2500).map(|i| format!("backstop/db/x/part-{i:05}")).collect();
        for k in &keys {
            store.put(k, bytes::Bytes::from_static(b"x"), "application/octet-stream").await.unwrap();
        }
        let (mut report, mut errors) = (PruneReport::default(), Vec::new());
        let batches = std::sync::atomic::AtomicUsize::new(0);
        // told to stop after the first batch
        let stop = || batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1;
        let left = delete_until(&store, &keys, &mut report, &mut errors, stop).await.unwrap();
        assert_eq!(left, 1500);
        assert!(errors.is_empty());
        let remaining = store.list("backstop/db/x/").await.unwrap();
        assert_eq!(remaining.len(), 1500);
        assert_eq!(remaining.iter().map(|o| o.key.as_str()).min(), Some("backstop/db/x/part-01000"));
        // never told: everything goes
        let rest: Vec<String> = remaining.into_iter().map(|o| o.key).collect();
        assert_eq!(delete_until(&store, &rest, &mut report, &mut errors, || false).await.unwrap(), 0);
        assert!(store.list("backstop/db/x/").await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A manifest of `env`/`db` naming `parts`, partial or not.
    fn listed(key: &str, env: &str, db: &str, partial: bool, parts: &[&str]) -> Listed {
        let objects: Vec<serde_json::Value> = parts
            .iter()
            .map(|k| serde_json::json!({"key": k, "kind": "data", "bytes": 1, "uncompressed_bytes": 1, "sha256": "", "parts": 1}))
            .collect();
        let manifest = serde_json::json!({
            "format": 2, "database": db, "env": env, "run_id": "r", "tag": null,
            "engine": {"name": "native", "version": "0"}, "compression": {"algorithm": "zstd", "level": 3},
            "server_version": "15", "layout": "set", "objects": objects, "bytes": 1, "uncompressed_bytes": 1,
            "started": "2026-12-01T00:00:00Z", "finished": "2026-12-01T00:00:01Z", "duration_ms": 1,
            "schema_only": partial, "include_tables": [], "exclude_tables": [], "tables": []
        });
        Listed { manifest_key: key.into(), manifest: serde_json::from_value(manifest).unwrap() }
    }

    #[test]
    fn groups_part_environments_databases_and_partial_dumps() {
        let key = |env, db, partial| GroupKey::of(&listed("m", env, db, partial, &[]).manifest);
        assert_ne!(key("production", "shop", false), key("staging", "shop", false));
        assert_ne!(key("production", "shop", false), key("production", "shop", true));
        assert_ne!(key("production", "shop", false), key("production", "blog", false));
        assert_eq!(key("production", "shop", false), key("production", "shop", false));
    }

    #[test]
    fn parts_go_only_with_a_manifest_whose_delete_succeeded() {
        let a = listed("a.manifest.json", "p", "shop", false, &["a/1", "a/2"]);
        let b = listed("b.manifest.json", "p", "shop", false, &["b/1"]);
        let c = listed("c.manifest.json", "p", "shop", false, &["c/1", "c/gone"]);
        let existing: BTreeMap<&str, u64> =
            [("a/1", 1), ("a/2", 1), ("b/1", 1), ("c/1", 1)].into_iter().collect();
        let cases: [(&[&str], &[&str]); 4] = [
            (&[], &["a/1", "a/2", "b/1", "c/1"]),
            (&["b.manifest.json"], &["a/1", "a/2", "c/1"]),
            (&["a.manifest.json", "c.manifest.json"], &["b/1"]),
            (&["a.manifest.json", "b.manifest.json", "c.manifest.json"], &[]),
        ];
        for (refused, want) in cases {
            let refused: BTreeSet<String> = refused.iter().map(|k| k.to_string()).collect();
            assert_eq!(parts_of_deleted(&[&a, &b, &c], &refused, &existing), want, "refused {refused:?}");
        }
    }

    #[test]
    fn options_resolve_over_the_environment_and_refuse_what_cannot_work() {
        let env = r#"{"policy": {"keep_daily": 7}, "timezone": "Europe/Paris", "history_days": 30}"#;
        let r = RetentionOptions::default().resolve(Some(env)).unwrap();
        assert_eq!(r.policy.keep_daily, Some(Keep::Count(7)));
        assert_eq!(r.tz.iana_name(), Some("Europe/Paris"));
        assert_eq!(r.media, r.policy, "media defaults to the policy");
        let payload = RetentionOptions {
            policy: Some(KeepRules { keep_last: Some(Keep::Count(3)), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(payload.resolve(Some(env)).unwrap().policy.keep_last, Some(Keep::Count(3)));

        let err = |o: RetentionOptions| o.resolve(None).unwrap_err().to_string();
        assert!(err(RetentionOptions::default()).contains("policy"));
        let daily = || Some(KeepRules { keep_daily: Some(Keep::Count(1)), ..Default::default() });
        assert!(
            err(RetentionOptions {
                policy: daily(),
                timezone: Some("Mars/Olympus".into()),
                ..Default::default()
            })
            .contains("timezone")
        );
        assert!(
            err(RetentionOptions { policy: daily(), stale_after: Some("2x".into()), ..Default::default() })
                .contains("stale_after")
        );
        assert!(
            err(RetentionOptions { policy: daily(), history_days: Some(0), ..Default::default() })
                .contains("history_days")
        );
        let mut dbs = BTreeMap::new();
        dbs.insert("shop".to_owned(), KeepRules::default());
        assert!(
            err(RetentionOptions { policy: daily(), databases: dbs, ..Default::default() })
                .contains("databases.shop")
        );
        let bad_env = RetentionOptions::default().resolve(Some(r#"{"polic": {}}"#)).unwrap_err().to_string();
        assert!(bad_env.contains("BACKSTOP_RETENTION") && bad_env.contains("polic"), "{bad_env}");
    }
}
