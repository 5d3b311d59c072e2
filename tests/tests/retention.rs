//! retention-prune end to end on the loopback S3 server: real backups (both layouts) beside
//! back-dated ones, media snapshots and trash from real media-sync runs, run records; the clock
//! is injected (`run::execute_at`), never slept on.

use std::time::Duration;

use backstop_core::config::{DbConfig, MediaSource};
use backstop_core::keys;
use backstop_core::media::MediaSync;
use backstop_core::restore::{RestoreSource, restore};
use backstop_core::retention::RetentionPrune;
use backstop_core::run::{self, RunRecord, Status};
use backstop_tests::{Stack, TestDb, restore_request};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

async fn seeded_db() -> TestDb {
    let db = TestDb::create("prune").await.unwrap();
    db.psql(b"create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 500) g;")
        .await
        .unwrap();
    db
}

/// A real backup of `db`, its manifest as the template for back-dated ones.
async fn real_template(stack: &Stack, db: &TestDb) -> Value {
    let real = stack.backup(db, json!({})).await;
    let (_, manifest) = stack.manifest_of(&real).await.unwrap();
    serde_json::to_value(&manifest).unwrap()
}

async fn prune_at(stack: &Stack, payload: Value, now: Timestamp) -> RunRecord {
    let mut config = stack.config(DbConfig::Unset);
    config.media.source = None;
    run::execute_at::<RetentionPrune>(&stack.app(config), &payload, None, now).await
}

async fn exists(stack: &Stack, key: &str) -> bool {
    stack.s3.head_object().bucket(&stack.bucket).key(key).send().await.is_ok()
}

fn group<'a>(record: &'a RunRecord, name: &str) -> &'a Value {
    record.outputs["databases"].as_array().unwrap().iter().find(|g| g["name"] == name).unwrap()
}

#[tokio::test]
async fn keep_rules_delete_whole_backups_manifest_first_and_the_kept_still_restore() {
    // GIVEN two real backups of today (a set and a single object) and 30 days of back-dated
    // backups, two a day, one of them tagged pre-migration.
    let stack = Stack::new("prune").await.unwrap();
    let db = seeded_db().await;
    let set = stack.backup(&db, json!({})).await;
    let single = stack.backup(&db, json!({"layout": "single"})).await;
    let (_, manifest) = stack.manifest_of(&set).await.unwrap();
    let template = serde_json::to_value(&manifest).unwrap();
    let now = Timestamp::now();
    let mut synthetic_keys = Vec::new();
    for day in 1..=30 {
        for hour in [3, 15] {
            let at = now - SignedDuration::from_hours(24 * day + hour);
            let tag = (day == 20 && hour == 3).then_some("pre-migration");
            synthetic_keys.push((stack.back_dated(&template, at, tag).await, tag.is_some()));
        }
    }

    // WHEN the policy keeps 7 dailies and pre-migration backups.
    let policy = json!({"policy": {"keep_daily": 7, "keep_tags": ["pre-migration"]}});
    let dry = prune_at(&stack, json!({"policy": policy["policy"], "dry_run": true}), now).await;
    assert_eq!(dry.status, Status::Succeeded, "{}", serde_json::to_string_pretty(&dry).unwrap());
    let record = prune_at(&stack, policy, now).await;

    // THEN 7 days are kept (today's newest and the newest of six earlier days) plus the tagged
    // one; the other real backup, older the same day, goes.
    assert_eq!(record.status, Status::Succeeded, "{}", serde_json::to_string_pretty(&record).unwrap());
    let g = group(&record, &db.name);
    assert_eq!(g["kept"], 1 + 6 + 1, "{g}");
    assert_eq!(g["deleted"], 62 - 8, "{g}");
    assert_eq!(group(&dry, &db.name)["deleted"], g["deleted"], "the dry run planned the same");
    let newest = g["decisions"][0].clone();
    assert_eq!(newest["reasons"][0], "newest");
    // The deleted leave nothing behind; the kept keep every object.
    let keys_left = stack.keys().await.unwrap();
    let mut deleted = 0;
    for (key, tagged) in &synthetic_keys {
        let stem = key.trim_end_matches(keys::MANIFEST_SUFFIX);
        let left = keys_left.iter().filter(|k| k.starts_with(stem)).count();
        if left == 0 {
            deleted += 1;
            assert!(!tagged, "the tagged backup was kept");
        } else {
            assert_eq!(left, 1 + template["objects"].as_array().unwrap().len(), "{key}: all or nothing");
        }
    }
    assert_eq!(deleted, 53);
    let set_manifest = set.outputs["databases"][0]["manifest_key"].as_str().unwrap();
    assert!(!exists(&stack, set_manifest).await);
    assert!(!keys_left.iter().any(|k| k.starts_with(set.outputs["databases"][0]["key"].as_str().unwrap())));
    let single_manifest = single.outputs["databases"][0]["manifest_key"].as_str().unwrap();
    assert!(exists(&stack, single_manifest).await, "the newest is never deleted");
    // The newest still restores.
    let target = TestDb::adopt(&format!("{}_back", db.name));
    let app = stack.app(stack.config(DbConfig::Url(db.url.clone())));
    restore(&app, &restore_request(RestoreSource::Key(single_manifest.to_owned()), &target.name))
        .await
        .unwrap();
    let rows: i64 =
        target.client().await.unwrap().query_one("select count(*) from t", &[]).await.unwrap().get(0);
    assert_eq!(rows, 500);
}

#[tokio::test]
async fn when_backups_have_stopped_nothing_is_deleted_and_the_run_fails() {
    let stack = Stack::new("prune-stale").await.unwrap();
    let db = seeded_db().await;
    let template = real_template(&stack, &db).await;
    let now = Timestamp::now();
    for day in 1..=10 {
        stack.back_dated(&template, now - SignedDuration::from_hours(24 * day), None).await;
    }
    let backup_keys = || async {
        stack.keys().await.unwrap().into_iter().filter(|k| !k.contains("/runs/")).collect::<Vec<_>>()
    };
    let before = backup_keys().await;

    // Five days later, with no backup since: the newest is older than stale_after (2d).
    let later = now + SignedDuration::from_hours(24 * 5);
    let record = prune_at(&stack, json!({"policy": {"keep_last": 1}}), later).await;

    assert_eq!(record.status, Status::Failed);
    let error = record.error.clone().unwrap();
    assert!(error.contains("backups have stopped") && error.contains(&db.name), "{error}");
    assert_eq!(group(&record, &db.name)["deleted"], 0);
    assert_eq!(backup_keys().await, before, "nothing deleted");
    let outcome = stack.outcomes(1, Duration::from_secs(10)).await.unwrap();
    assert!(outcome.iter().any(|o| o.attributes["status"]["Value"] == "failed"));
}

#[tokio::test]
async fn unreadable_manifests_young_leftovers_and_concurrent_prunes_are_safe() {
    let stack = Stack::new("prune-odd").await.unwrap();
    let db = seeded_db().await;
    let template = real_template(&stack, &db).await;
    let now = Timestamp::now();
    for day in 1..=5 {
        stack.back_dated(&template, now - SignedDuration::from_hours(24 * day), None).await;
    }
    // A manifest of a newer format, and a part nobody names written just now.
    let odd = format!("backstop/db/{}/2026/01/01/odd", db.name);
    let newer = json!({"format": 99});
    stack
        .s3
        .put_object()
        .bucket(&stack.bucket)
        .key(format!("{odd}.manifest.json"))
        .body(newer.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
    stack
        .s3
        .put_object()
        .bucket(&stack.bucket)
        .key(format!("{odd}/pre-data.sql.zst"))
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let leftover = format!("backstop/db/{}/2026/01/02/aborted/data-00001.sql.zst", db.name);
    stack
        .s3
        .put_object()
        .bucket(&stack.bucket)
        .key(&leftover)
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();

    // Two prunes at once (EventBridge delivers at least once).
    let payload = json!({"policy": {"keep_last": 2}});
    let (a, b) = tokio::join!(prune_at(&stack, payload.clone(), now), prune_at(&stack, payload, now));

    for r in [&a, &b] {
        assert_eq!(r.status, Status::Succeeded, "{}", serde_json::to_string_pretty(r).unwrap());
        assert_eq!(
            r.outputs["unreadable"].as_array().unwrap().len(),
            1,
            "reported: {}",
            r.outputs["unreadable"]
        );
    }
    assert!(
        exists(&stack, &format!("{odd}.manifest.json")).await
            && exists(&stack, &format!("{odd}/pre-data.sql.zst")).await
    );
    assert!(exists(&stack, &leftover).await, "a leftover younger than a day may belong to a running backup");
    let manifests = stack.keys().await.unwrap().into_iter().filter(|k| keys::is_manifest(k)).count();
    assert_eq!(manifests, 2 + 1, "two kept and the unreadable one");

    // Two days on, the leftover is an orphan and goes; the unreadable backup's part stays.
    let later = now + SignedDuration::from_hours(48);
    let r = prune_at(&stack, json!({"policy": {"keep_last": 2}, "stale_after": "30d"}), later).await;
    assert_eq!(r.status, Status::Succeeded, "{}", serde_json::to_string_pretty(&r).unwrap());
    assert!(!exists(&stack, &leftover).await);
    assert!(exists(&stack, &format!("{odd}/pre-data.sql.zst")).await);
}

#[tokio::test]
async fn media_snapshots_trash_and_run_records_follow_the_policy() {
    // GIVEN three media-sync runs: a file overwritten twice, so two old versions are in trash.
    let stack = Stack::new("prune-media").await.unwrap();
    let src = format!("bk-prune-src-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    stack.s3.create_bucket().bucket(&src).send().await.unwrap();
    let mut config = stack.config(DbConfig::Unset);
    config.media.source = Some(MediaSource::S3 { bucket: src.clone(), prefix: String::new() });
    let app = stack.app(config);
    let mut runs = Vec::new();
    for version in 1..=3 {
        let body = format!("version {version}").into_bytes();
        stack.s3.put_object().bucket(&src).key("logo.png").body(body.into()).send().await.unwrap();
        let r = run::execute::<MediaSync>(&app, &json!({}), None).await;
        assert_eq!(r.status, Status::Succeeded, "{}", serde_json::to_string_pretty(&r).unwrap());
        runs.push(r);
    }
    let trash = |run: &RunRecord| format!("backstop/media/trash/{}/logo.png", run.run_id);
    assert!(exists(&stack, &trash(&runs[0])).await && exists(&stack, &trash(&runs[1])).await);

    // WHEN, three days on, the media keeps its last 2 snapshots and run records 1 day.
    let later = Timestamp::now() + SignedDuration::from_hours(72);
    let payload = json!({"policy": {"keep_last": 1}, "media": {"keep_last": 2}, "history_days": 1, "stale_after": "30d"});
    let record = prune_at(&stack, payload, later).await;

    // THEN the oldest snapshot goes with the version only it listed; the second's stays.
    assert_eq!(record.status, Status::Succeeded, "{}", serde_json::to_string_pretty(&record).unwrap());
    assert_eq!(record.outputs["media"]["deleted"], 1);
    assert_eq!(record.outputs["trash_deleted"], 1);
    let first_summary = runs[0].outputs["summary_key"].as_str().unwrap();
    assert!(
        !exists(&stack, first_summary).await
            && !exists(&stack, runs[0].outputs["snapshot_key"].as_str().unwrap()).await
    );
    assert!(!exists(&stack, &trash(&runs[0])).await);
    assert!(exists(&stack, &trash(&runs[1])).await, "the kept second snapshot still lists it");
    assert!(exists(&stack, "backstop/media/current/logo.png").await);
    // Run records older than a day: the three media-sync records.
    assert_eq!(record.outputs["run_records_deleted"], 3);
    for r in &runs {
        assert!(!exists(&stack, r.record_key.as_deref().unwrap()).await);
    }
}

/// retention-prune over `app` (its store possibly wrapped in faults) at `now`.
async fn prune_with(app: &backstop_core::App, payload: Value, now: Timestamp) -> RunRecord {
    run::execute_at::<RetentionPrune>(app, &payload, None, now).await
}

fn groups(record: &RunRecord) -> Vec<(String, String, bool, u64, u64)> {
    let mut out: Vec<_> = record.outputs["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["env"].as_str().unwrap().to_owned(),
                g["name"].as_str().unwrap().to_owned(),
                g["partial"].as_bool().unwrap(),
                g["kept"].as_u64().unwrap(),
                g["deleted"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn environments_and_partial_backups_are_planned_apart() {
    // GIVEN one bucket and prefix shared by production and staging: production's full backups
    // an hour and two hours old, staging's ten minutes old, and a production schema-only dump
    // five minutes old.
    let stack = Stack::new("prune-envs").await.unwrap();
    let db = seeded_db().await;
    let mut production = real_template(&stack, &db).await;
    production["env"] = json!("production");
    let mut staging = production.clone();
    staging["env"] = json!("staging");
    let mut schema_only = production.clone();
    schema_only["schema_only"] = json!(true);
    let now = Timestamp::now();
    let hours = |h: i64| now - SignedDuration::from_mins(60 * h);
    let prod_newest = stack.back_dated(&production, hours(1), None).await;
    let prod_older = stack.back_dated(&production, hours(2), None).await;
    let staging_newest = stack.back_dated(&staging, now - SignedDuration::from_mins(10), None).await;
    let partial = stack.back_dated(&schema_only, now - SignedDuration::from_mins(5), None).await;

    // WHEN the policy keeps the last backup
    let record = prune_at(&stack, json!({"policy": {"keep_last": 1}}), now).await;

    // THEN each environment keeps its own newest full backup, and the partial dump pushes no
    // full one out
    assert_eq!(record.status, Status::Succeeded, "{}", serde_json::to_string_pretty(&record).unwrap());
    let name = db.name.clone();
    assert_eq!(
        groups(&record),
        vec![
            ("production".into(), name.clone(), false, 1, 1),
            ("production".into(), name.clone(), true, 1, 0),
            ("staging".into(), name.clone(), false, 1, 0),
            ("test".into(), name.clone(), false, 1, 0),
        ]
    );
    for kept in [&prod_newest, &staging_newest, &partial] {
        assert!(exists(&stack, kept).await, "{kept} was kept");
    }
    assert!(!exists(&stack, &prod_older).await);

    // AND restore --latest in production takes production's newest full backup, not the
    // newer schema-only one nor staging's
    let mut config = stack.config(DbConfig::Unset);
    config.env = "production".into();
    let listing = backstop_core::catalog::list_backups(
        stack.app(config).store.as_ref(),
        "backstop/",
        Some(&db.name),
        Some("production"),
    )
    .await
    .unwrap();
    assert_eq!(listing.latest_full().unwrap().manifest_key, prod_newest);

    // AND when production's backups stop while staging's go on, nothing of production is
    // deleted: the guard is judged per environment
    let later = now + SignedDuration::from_hours(24 * 5);
    let fresh = stack.back_dated(&staging, later - SignedDuration::from_mins(1), None).await;
    let record = prune_at(&stack, json!({"policy": {"keep_last": 1}}), later).await;
    assert_eq!(record.status, Status::Failed);
    let error = record.error.clone().unwrap();
    assert!(error.contains("of production") && error.contains("stale_after"), "{error}");
    assert!(exists(&stack, &prod_newest).await && exists(&stack, &fresh).await);
    assert!(!exists(&stack, &staging_newest).await, "staging's own rule still applies");
    assert!(exists(&stack, &partial).await, "partial backups that stopped are kept, and no alarm");
}

#[tokio::test]
async fn a_manifest_the_store_refuses_to_delete_keeps_its_parts_and_a_denied_delete_fails_the_run() {
    use backstop_core::StoreKind;
    use backstop_core::store::faulty::{Fault, FaultyStore, Op};
    // GIVEN a real backup and three older ones; the store refuses to delete one manifest for
    // lack of permission and another under Object Lock
    let stack = Stack::new("prune-refused").await.unwrap();
    let db = seeded_db().await;
    let template = real_template(&stack, &db).await;
    let now = Timestamp::now();
    let mut old = Vec::new();
    for h in 1..=3 {
        old.push(stack.back_dated(&template, now - SignedDuration::from_mins(60 * h), None).await);
    }
    let mut config = stack.config(DbConfig::Unset);
    config.media.source = None;
    let mut app = stack.app(config);
    let faulty = std::sync::Arc::new(FaultyStore::new(app.store.clone()));
    faulty.fail(Fault::new(Op::Delete, &old[1], StoreKind::Denied));
    faulty.fail(Fault::new(Op::Delete, &old[2], StoreKind::Locked));
    app.store = faulty.clone();

    // WHEN only the newest is to be kept
    let record = prune_with(&app, json!({"policy": {"keep_last": 1}}), now).await;

    // THEN the backup deleted is gone whole; the two refused keep every part and still
    // restore-list; the denied delete fails the run, the locked one is a reported skip
    let stack_ref = &stack;
    let parts_of = |key: &str| {
        let stem = key.trim_end_matches(keys::MANIFEST_SUFFIX).to_owned();
        async move { stack_ref.keys().await.unwrap().into_iter().filter(|k| k.starts_with(&stem)).count() }
    };
    let objects = template["objects"].as_array().unwrap().len();
    assert_eq!(parts_of(&old[0]).await, 0);
    assert_eq!(parts_of(&old[1]).await, 1 + objects, "denied: manifest and parts stay");
    assert_eq!(parts_of(&old[2]).await, 1 + objects, "locked: manifest and parts stay");
    assert_eq!(record.status, Status::Failed, "{}", serde_json::to_string_pretty(&record).unwrap());
    let error = record.error.clone().unwrap();
    assert!(error.contains(&old[1]) && !error.contains(&old[2]), "{error}");
    let skipped = record.outputs["skipped_locked"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].as_str().unwrap().starts_with(&old[2]));
    assert_eq!(group(&record, &db.name)["deleted"], 1, "only what went is counted");
    let listing = backstop_core::catalog::list_backups(app.store.as_ref(), "backstop/", Some(&db.name), None)
        .await
        .unwrap();
    assert_eq!(listing.backups.len(), 3);
}

/// Three media-sync runs over one file overwritten twice; returns the app and the run records.
async fn media_history(stack: &Stack) -> (backstop_core::App, Vec<RunRecord>) {
    let src = format!("bk-prune-src-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    stack.s3.create_bucket().bucket(&src).send().await.unwrap();
    let mut config = stack.config(DbConfig::Unset);
    config.media.source = Some(MediaSource::S3 { bucket: src.clone(), prefix: String::new() });
    let app = stack.app(config);
    let mut runs = Vec::new();
    for version in 1..=3 {
        let body = format!("version {version}").into_bytes();
        stack.s3.put_object().bucket(&src).key("logo.png").body(body.into()).send().await.unwrap();
        let r = run::execute::<MediaSync>(&app, &json!({}), None).await;
        assert_eq!(r.status, Status::Succeeded, "{}", serde_json::to_string_pretty(&r).unwrap());
        runs.push(r);
    }
    (app, runs)
}

#[tokio::test]
async fn an_unreadable_or_undeletable_media_summary_keeps_its_snapshot_and_trash() {
    use backstop_core::StoreKind;
    use backstop_core::store::faulty::{Fault, FaultyStore, Op};
    let stack = Stack::new("prune-media-odd").await.unwrap();
    let (mut app, runs) = media_history(&stack).await;
    let trash = |run: &RunRecord| format!("backstop/media/trash/{}/logo.png", run.run_id);
    let summary = |i: usize| runs[i].outputs["summary_key"].as_str().unwrap().to_owned();
    let entries = |i: usize| runs[i].outputs["snapshot_key"].as_str().unwrap().to_owned();
    let faulty = std::sync::Arc::new(FaultyStore::new(app.store.clone()));
    app.store = faulty.clone();
    let later = Timestamp::now() + SignedDuration::from_hours(72);
    let payload = json!({"policy": {"keep_last": 1}, "media": {"keep_last": 1}, "stale_after": "30d"});

    // WHEN the oldest summary cannot be read (KMS denied, a newer format, a cut GET)
    faulty.fail(Fault::new(Op::Get, &summary(0), StoreKind::Denied));
    let record = prune_with(&app, payload.clone(), later).await;
    // THEN it is reported, its snapshot and its trash are kept, and no trash at all goes
    assert!(
        record.outputs["unreadable"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u.as_str().unwrap().contains(&summary(0))),
        "{}",
        record.outputs
    );
    assert_eq!(record.outputs["trash_deleted"], 0);
    assert!(exists(&stack, &summary(0)).await && exists(&stack, &entries(0)).await);
    assert!(exists(&stack, &trash(&runs[0])).await, "the unreadable snapshot may list it");
    // (the second snapshot, readable and not kept, is deleted; the version only it listed waits)
    assert!(!exists(&stack, &summary(1)).await && !exists(&stack, &entries(1)).await);
    assert!(exists(&stack, &trash(&runs[1])).await, "no trash goes while a summary is unreadable");

    // WHEN the summary reads again but its delete is refused
    faulty.heal();
    faulty.fail(Fault::new(Op::Delete, &summary(0), StoreKind::Denied));
    let record = prune_with(&app, payload.clone(), later).await;
    // THEN its entries and trash stay with it, and the run fails; the other trash goes
    assert_eq!(record.status, Status::Failed, "{}", serde_json::to_string_pretty(&record).unwrap());
    assert!(exists(&stack, &summary(0)).await && exists(&stack, &entries(0)).await);
    assert!(exists(&stack, &trash(&runs[0])).await, "the surviving snapshot lists it");
    assert!(!exists(&stack, &trash(&runs[1])).await, "listed by no snapshot that is left");
    assert_eq!(record.outputs["media"]["deleted"], 0);

    // AND once the store allows it, all of it goes
    faulty.heal();
    let record = prune_with(&app, payload, later).await;
    assert_eq!(record.status, Status::Succeeded, "{}", serde_json::to_string_pretty(&record).unwrap());
    assert!(!exists(&stack, &summary(0)).await && !exists(&stack, &trash(&runs[0])).await);
    assert!(exists(&stack, &summary(2)).await && exists(&stack, "backstop/media/current/logo.png").await);
}

#[tokio::test]
async fn media_archives_follow_the_media_rules_per_environment() {
    // GIVEN four archives of production written one after another and one of staging
    let stack = Stack::new("prune-archives").await.unwrap();
    let now = Timestamp::now();
    let mut production = Vec::new();
    for i in 0..4 {
        let key =
            keys::media_archive("backstop/", "production", &now, &format!("20261203T10000{i}Z-aaaa000{i}"));
        stack
            .s3
            .put_object()
            .bucket(&stack.bucket)
            .key(&key)
            .body(b"tar".to_vec().into())
            .send()
            .await
            .unwrap();
        production.push(key);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let staging = keys::media_archive("backstop/", "staging", &now, "20261203T100000Z-bbbb0000");
    stack
        .s3
        .put_object()
        .bucket(&stack.bucket)
        .key(&staging)
        .body(b"tar".to_vec().into())
        .send()
        .await
        .unwrap();
    let payload = json!({"policy": {"keep_last": 1}, "media": {"keep_last": 2}});

    // WHEN, archives still running, the media rules keep the last two; THEN the two oldest of
    // production go, staging's only one stays
    let record = prune_at(&stack, payload.clone(), Timestamp::now()).await;
    assert_eq!(record.status, Status::Succeeded, "{}", serde_json::to_string_pretty(&record).unwrap());
    let left: Vec<bool> = {
        let mut v = Vec::new();
        for k in &production {
            v.push(exists(&stack, k).await);
        }
        v
    };
    assert_eq!(left, [false, false, true, true]);
    assert!(exists(&stack, &staging).await);
    // AND once archives have stopped, nothing goes and the run says so
    let later = Timestamp::now() + SignedDuration::from_hours(24 * 5);
    let record =
        prune_at(&stack, json!({"policy": {"keep_last": 1}, "media": {"keep_last": 1}}), later).await;
    assert_eq!(record.status, Status::Failed);
    assert!(record.error.unwrap().contains("archives have stopped"));
    assert!(exists(&stack, &production[2]).await && exists(&stack, &production[3]).await);
}
