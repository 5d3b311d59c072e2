//! The fault suite's scenarios: one run of a job under one kind of injected fault (through
//! [`FaultProxy`], in front of the loopback S3/SNS/Secrets Manager server), and what it left —
//! the invariants Backstop promises. `tests/tests/faults.rs` asserts them once per kind;
//! `tests/benches/faults.rs` repeats them and prints the README's table of figures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use backstop_core::App;
use backstop_core::backup::DbBackup;
use backstop_core::config::DbConfig;
use backstop_core::restore::Verify;
use backstop_core::run::{self, RunRecord, Status};
use serde_json::json;

use crate::fault_proxy::{Fault, FaultProxy, Request};
use crate::private_pg::PrivateServer;
use crate::{Stack, TestDb, aws_endpoint};

/// The password the secret scenarios store; it must appear nowhere.
pub const SECRET_PASSWORD: &str = "s3cr3t-never-shown";

/// What one scenario run did and left.
#[derive(Debug, Clone, Default)]
pub struct Trial {
    pub kind: &'static str,
    /// Faults the proxy injected.
    pub faults: usize,
    /// The faulted run's status.
    pub succeeded: bool,
    /// The run said success but its backup did not restore (or a cut download verified).
    pub good_but_unrestorable: bool,
    /// Multipart uploads left open in the bucket.
    pub open_uploads: usize,
    /// The run has no stored run record.
    pub unrecorded: bool,
    /// The outcome did not reach the topic.
    pub unpublished: bool,
    /// Places the secret's password was found (run record, error, subject, message).
    pub secret_leaks: usize,
    /// Backups (or rows) deleted that their rule keeps.
    pub deleted_outside_rule: usize,
    /// A clean run after the faulted one did not finish the work (converge).
    pub stuck: bool,
    /// The run's summary and error, for messages.
    pub summary: String,
}

/// ~20 MB of rows that compress to about half: a dump of several 5 MiB parts.
pub async fn seeded(label: &str) -> (Stack, TestDb) {
    let stack = Stack::new(label).await.expect("stack");
    let db = TestDb::create(label).await.expect("database");
    crate::psql(&db.url, seed_sql(200_000).as_bytes()).await.expect("seed");
    (stack, db)
}

/// `events` with `rows` rows of three md5 texts (compressing to about half) and `small` with 100.
fn seed_sql(rows: u32) -> String {
    format!(
        "create table events (id int primary key, a text, b text, c text);
         insert into events select g, md5(g::text), md5((g * 7)::text), md5((g * 13)::text)
           from generate_series(1, {rows}) g;
         create table small (id int primary key, v text);
         insert into small select g, 'v' || g from generate_series(1, 100) g;"
    )
}

/// An app on `db` (or `db_config`) whose every AWS request goes through `proxy`; 5 MiB parts.
fn through(stack: &Stack, db_config: DbConfig, proxy: &FaultProxy) -> App {
    through_with(stack, db_config, proxy, |_| {})
}

/// [`through`] with the configuration changed by `tweak` first.
fn through_with(
    stack: &Stack,
    db_config: DbConfig,
    proxy: &FaultProxy,
    tweak: impl FnOnce(&mut backstop_core::Config),
) -> App {
    let sdk = stack.sdk.to_builder().endpoint_url(&proxy.url).build();
    let mut config = stack.config(db_config);
    config.s3.part_size = 5 * 1024 * 1024;
    tweak(&mut config);
    App::new(&sdk, config).expect("app")
}

/// Restores `record`'s backup into a scratch database over a clean connection and compares it
/// with the manifest (the verify job).
pub async fn verify_clean(stack: &Stack, db_url: &str, record: &RunRecord) -> RunRecord {
    let key = record.outputs["databases"][0]["manifest_key"].as_str().unwrap_or_default().to_owned();
    let app = stack.app(stack.config(DbConfig::Url(db_url.to_owned())));
    run::execute::<Verify>(&app, &json!({ "key": key, "jobs": 2 }), None).await
}

async fn trial(kind: &'static str, stack: &Stack, proxy: &FaultProxy, record: &RunRecord) -> Trial {
    trial_of(kind, stack, proxy.injected().len(), record).await
}

/// What `record`'s run left, after `faults` injected faults.
async fn trial_of(kind: &'static str, stack: &Stack, faults: usize, record: &RunRecord) -> Trial {
    let text = serde_json::to_string(record).unwrap_or_default();
    Trial {
        kind,
        faults,
        succeeded: record.status == Status::Succeeded,
        good_but_unrestorable: false,
        open_uploads: stack.open_uploads().await.unwrap_or(usize::MAX),
        unrecorded: record.record_key.is_none(),
        unpublished: record
            .published
            .as_ref()
            .and_then(|p| p.get("message_id"))
            .is_none_or(|id| id.is_null()),
        secret_leaks: text.matches(SECRET_PASSWORD).count(),
        summary: format!("{} {}", record.summary, record.error.as_deref().unwrap_or("")),
        deleted_outside_rule: 0,
        stuck: false,
    }
}

/// db-backup while the first attempt of every second upload (part or object) gets 503
/// SlowDown and of every third is reset after 64 KiB: retries must absorb it.
pub async fn uploads_slowed_and_reset(label: &str) -> Trial {
    let (stack, db) = seeded(label).await;
    let plan = first_attempts(Request::is_upload, |i| match i {
        i if i % 2 == 0 => Fault::SlowDown,
        i if i % 3 == 0 => Fault::ResetAfter(64 * 1024),
        _ => Fault::Pass,
    });
    let proxy = FaultProxy::start(&aws_endpoint(), plan).await;
    let app = through(&stack, DbConfig::Url(db.url.clone()), &proxy);
    let record = run::execute::<DbBackup>(&app, &json!({ "split_mb": 8 }), None).await;
    let mut t = trial("S3: 503 SlowDown and resets mid-body on uploads", &stack, &proxy, &record).await;
    if t.succeeded {
        t.good_but_unrestorable = verify_clean(&stack, &db.url, &record).await.status != Status::Succeeded;
    }
    t
}

/// db-backup while the first upload request's target is answered 503 SlowDown three times in
/// a row: more than the SDK's default of three attempts, within Backstop's six.
pub async fn one_upload_slowed_three_times(label: &str) -> Trial {
    let (stack, db) = seeded(label).await;
    let first: Mutex<Option<(String, usize)>> = Mutex::new(None);
    let proxy = FaultProxy::start(&aws_endpoint(), move |r: &Request| {
        if !r.is_upload() {
            return Fault::Pass;
        }
        let mut first = first.lock().expect("lock");
        let (target, attempts) = first.get_or_insert_with(|| (r.target.clone(), 0));
        if *target == r.target && *attempts < 3 {
            *attempts += 1;
            Fault::SlowDown
        } else {
            Fault::Pass
        }
    })
    .await;
    let app = through(&stack, DbConfig::Url(db.url.clone()), &proxy);
    let record = run::execute::<DbBackup>(&app, &json!({}), None).await;
    let mut t = trial("S3: one upload answered SlowDown three times", &stack, &proxy, &record).await;
    if t.succeeded {
        t.good_but_unrestorable = verify_clean(&stack, &db.url, &record).await.status != Status::Succeeded;
    }
    t
}

/// db-backup whose first CompleteMultipartUpload is applied by the server and reported to the
/// client as a 500 (as a timeout after apply would look).
pub async fn completion_applied_then_failed(label: &str) -> Trial {
    let (stack, db) = seeded(label).await;
    let faulted = AtomicBool::new(false);
    let proxy = FaultProxy::start(&aws_endpoint(), move |r: &Request| {
        if r.is_complete() && !faulted.swap(true, Ordering::SeqCst) {
            Fault::ApplyThenFail
        } else {
            Fault::Pass
        }
    })
    .await;
    let app = through(&stack, DbConfig::Url(db.url.clone()), &proxy);
    let record = run::execute::<DbBackup>(&app, &json!({}), None).await;
    let mut t = trial("S3: CompleteMultipartUpload applied, then 500", &stack, &proxy, &record).await;
    if t.succeeded {
        t.good_but_unrestorable = verify_clean(&stack, &db.url, &record).await.status != Status::Succeeded;
    } else {
        // A failed backup must not leave a manifest naming it.
        let manifests =
            stack.keys().await.unwrap_or_default().iter().filter(|k| k.ends_with(".manifest.json")).count();
        t.good_but_unrestorable = manifests > 0;
    }
    t
}

/// The restore drill (verify) while every GET of a dump object is cut after 100 kB: it must
/// fail, never verify what it did not read.
pub async fn downloads_cut(label: &str) -> Trial {
    let (stack, db) = seeded(label).await;
    let backup = stack.backup(&db, json!({})).await;
    assert_eq!(backup.status, Status::Succeeded, "{:?}", backup.error);
    let key = backup.outputs["databases"][0]["manifest_key"].as_str().unwrap_or_default().to_owned();
    let proxy = FaultProxy::start(&aws_endpoint(), |r: &Request| {
        if r.is_get_object() && r.target.contains(".sql.") {
            Fault::TruncateBody(100_000)
        } else {
            Fault::Pass
        }
    })
    .await;
    let app = through(&stack, DbConfig::Url(db.url.clone()), &proxy);
    let record = run::execute::<Verify>(&app, &json!({ "key": key }), None).await;
    let mut t = trial("S3: GET bodies cut short (restore drill)", &stack, &proxy, &record).await;
    t.good_but_unrestorable = t.succeeded;
    t
}

/// db-backup with its credentials in Secrets Manager, which throttles the first `throttled`
/// GetSecretValue requests (`usize::MAX`: every one).
pub async fn secrets_throttled(label: &str, throttled: usize) -> Trial {
    let (stack, db) = seeded(label).await;
    let sm = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let secret_id = format!("backstop/test/{}", db.name);
    let secret = json!({"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": "postgres",
                        "password": SECRET_PASSWORD, "dbname": db.name});
    sm.create_secret().name(&secret_id).secret_string(secret.to_string()).send().await.expect("secret");
    let count = std::sync::atomic::AtomicUsize::new(0);
    let proxy = FaultProxy::start(&aws_endpoint(), move |r: &Request| {
        if r.is_get_secret() && count.fetch_add(1, Ordering::SeqCst) < throttled {
            Fault::Throttle
        } else {
            Fault::Pass
        }
    })
    .await;
    let app = through(&stack, DbConfig::Secret { secret_id, endpoint: Default::default() }, &proxy);
    let record = run::execute::<DbBackup>(&app, &json!({}), None).await;
    let kind = if throttled == usize::MAX {
        "Secrets Manager: every read throttled"
    } else {
        "Secrets Manager: first read throttled"
    };
    let mut t = trial(kind, &stack, &proxy, &record).await;
    if t.succeeded {
        t.good_but_unrestorable = verify_clean(&stack, &db.url, &record).await.status != Status::Succeeded;
    }
    // What subscribers received: subjects and messages.
    if let Ok(outcomes) = stack.outcomes(1, std::time::Duration::from_secs(10)).await {
        t.secret_leaks += outcomes.iter().filter(|o| format!("{o:?}").contains(SECRET_PASSWORD)).count();
    }
    t
}

/// db-backup (`engine`: `native` or `pg_dump`) of a database on a server of its own
/// ([`PrivateServer`]) that is restarted (`pg_ctl restart -m fast`) as soon as the dump's first
/// COPY runs: the run must fail, recorded and published, leaving no manifest and no open
/// upload; the next run, the server back, must succeed and restore. `Err`: why no server of
/// its own could be started here (the caller skips, saying so).
pub async fn pg_restarted_mid_dump(label: &str, engine: &'static str) -> Result<Trial, String> {
    let server = PrivateServer::start(label).await.expect("private server")?;
    let admin = crate::connect(&server.url("postgres")).await.expect("private server up");
    admin.batch_execute("create database shop").await.expect("database");
    let url = server.url("shop");
    crate::psql(&url, seed_sql(600_000).as_bytes()).await.expect("seed");
    let stack = Stack::new(label).await.expect("stack");
    let app = stack.app(stack.config(DbConfig::Url(url.clone())));
    let payload = if engine == "native" { json!({ "jobs": 2 }) } else { json!({ "engine": engine }) };
    let backup = run::execute::<DbBackup>(&app, &payload, None);
    tokio::pin!(backup);
    let copying = "select count(*) from pg_stat_activity where datname = 'shop' and state = 'active' and query ilike 'copy %'";
    let watch = async {
        for _ in 0..6000 {
            let n: i64 = admin.query_one(copying, &[]).await.expect("pg_stat_activity").get(0);
            if n > 0 {
                server.restart().await.expect("restart");
                return 1;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        0
    };
    // A run that ends before any COPY was seen has had no fault (and says so: 0 injected).
    let (record, faults) = tokio::select! {
        record = &mut backup => (record, 0),
        faults = watch => (backup.await, faults),
    };
    let kind = if engine == "pg_dump" {
        "PostgreSQL: server restarted mid-dump (pg_dump)"
    } else {
        "PostgreSQL: server restarted mid-dump (native)"
    };
    let mut t = trial_of(kind, &stack, faults, &record).await;
    let manifests =
        stack.keys().await.unwrap_or_default().iter().filter(|k| k.ends_with(".manifest.json")).count();
    t.good_but_unrestorable =
        if t.succeeded { !restores(&stack, &server, &record).await } else { manifests > 0 };
    // The next run, the server back, backs up and restores.
    let again = run::execute::<DbBackup>(&app, &payload, None).await;
    t.good_but_unrestorable |= again.status != Status::Succeeded || !restores(&stack, &server, &again).await;
    Ok(t)
}

/// A real backup of `db` and twelve back-dated copies of it, one a day before it.
struct History {
    real: RunRecord,
    template: serde_json::Value,
    now: jiff::Timestamp,
    /// (days back, manifest key)
    dated: Vec<(i64, String)>,
}

async fn history_of_backups(stack: &Stack, db: &TestDb) -> History {
    let real = stack.backup(db, json!({})).await;
    assert_eq!(real.status, Status::Succeeded, "{:?}", real.error);
    let (_, manifest) = stack.manifest_of(&real).await.expect("manifest");
    let template = serde_json::to_value(&manifest).expect("json");
    let now = jiff::Timestamp::now();
    let mut dated = Vec::new();
    for day in 1..=12i64 {
        let at = now - jiff::SignedDuration::from_hours(24 * day);
        dated.push((day, stack.back_dated(&template, at, None).await));
    }
    History { real, template, now, dated }
}

/// retention-prune (keep 5 dailies) over a real backup of today and 12 back-dated ones a day
/// apart while the first read of every third manifest is cut short and the first attempt of
/// each delete request (DeleteObject, DeleteObjects) is answered SlowDown or applied and then
/// answered 500, alternately.
/// Nothing the rule keeps may go (the newest must still restore); a backup goes whole or not
/// at all; a clean run after it deletes the rest.
pub async fn retention_deletes_slowed_and_reads_cut(label: &str) -> Trial {
    let (stack, db) = seeded(label).await;
    let History { real, template, now, dated } = history_of_backups(&stack, &db).await;
    let deletes = first_attempts(Request::is_delete, |i| {
        if i.is_multiple_of(2) { Fault::SlowDown } else { Fault::ApplyThenFail }
    });
    let reads = first_attempts(Request::is_manifest_read, every(3, Fault::TruncateBody(20)));
    let plan = move |r: &Request| match deletes(r) {
        Fault::Pass => reads(r),
        fault => fault,
    };
    let proxy = FaultProxy::start(&aws_endpoint(), plan).await;
    let policy = json!({ "policy": { "keep_daily": 5 } });
    let prune = |app: App| {
        let policy = policy.clone();
        async move { run::execute_at::<backstop_core::retention::RetentionPrune>(&app, &policy, None, now).await }
    };
    let no_media = |c: &mut backstop_core::Config| c.media.source = None;
    let record = prune(through_with(&stack, DbConfig::Unset, &proxy, no_media)).await;
    let mut t = trial(
        "S3: retention-prune's deletes slowed, failed after applying; manifest reads cut",
        &stack,
        &proxy,
        &record,
    )
    .await;
    // The rule keeps today's and the four days before it, every object of each.
    let kept_by_rule = |day: i64| day <= 4;
    let keys = stack.keys().await.unwrap_or_default();
    let whole = |manifest_key: &str| {
        let stem = manifest_key.trim_end_matches(backstop_core::keys::MANIFEST_SUFFIX);
        let left = keys.iter().filter(|k| k.starts_with(stem)).count();
        (left == 0, left == 1 + template["objects"].as_array().map_or(0, Vec::len))
    };
    for (day, key) in &dated {
        let (gone, all) = whole(key);
        if kept_by_rule(*day) && !all {
            t.deleted_outside_rule += 1;
        }
        // A half-deleted backup is one whose manifest still lists objects that are gone.
        if !gone && !all && keys.contains(key) {
            t.good_but_unrestorable = true;
        }
    }
    t.good_but_unrestorable |= verify_clean(&stack, &db.url, &real).await.status != Status::Succeeded;
    // The next run, without faults, deletes exactly the rest.
    let mut config = stack.config(DbConfig::Unset);
    no_media(&mut config);
    let again = prune(stack.app(config)).await;
    let keys = stack.keys().await.unwrap_or_default();
    let manifests_left: Vec<&(i64, String)> = dated.iter().filter(|(_, k)| keys.contains(k)).collect();
    t.stuck = again.status != Status::Succeeded
        || manifests_left.iter().any(|(day, _)| !kept_by_rule(*day))
        || keys.iter().any(|k| {
            k.contains("/part-")
                && !dated.iter().any(|(day, m)| {
                    kept_by_rule(*day)
                        && k.starts_with(m.trim_end_matches(backstop_core::keys::MANIFEST_SUFFIX))
                })
        });
    t
}

/// notification-cleanup deleting 30,000 old read notifications in batches of 500 while its
/// backend is terminated (`pg_terminate_backend`) once a few batches went, and SNS refuses the
/// first publish (SlowDown through the proxy). No row outside the rule may go; the run is
/// recorded and published whatever its end; a clean run after it deletes the rest.
pub async fn cleanup_backend_terminated(label: &str) -> Trial {
    let stack = Stack::new(label).await.expect("stack");
    let db = TestDb::create(label).await.expect("database");
    db.psql(
        b"create table notifications (id bigserial primary key, read bool not null, created_at timestamptz not null, body text);
          insert into notifications (read, created_at, body)
            select g % 4 <> 0, now() - (g % 400) * interval '1 day', md5(g::text) from generate_series(1, 60000) g;",
    )
    .await
    .expect("seed");
    let rule = "select * from notifications where not (read and created_at < now() - interval '90 days')";
    let content = |query: &'static str| {
        let url = db.url.clone();
        async move {
            let c = crate::connect(&url).await.expect("connect");
            let sql = format!(
                "select count(*), coalesce(md5(string_agg(x::text, '|' order by x::text)), '') from ({query}) x"
            );
            let row = c.query_one(&sql, &[]).await.expect("content");
            (row.get::<_, i64>(0), row.get::<_, String>(1))
        }
    };
    let kept = content(rule).await;
    let payload = json!({
        "rules": [{"table": "notifications", "older_than": "90d", "timestamp_column": "created_at",
                   "filter": [{"column": "read", "op": "=", "value": true}]}],
        "batch_size": 500, "pause_ms": 20
    });
    let publishes = std::sync::atomic::AtomicUsize::new(0);
    let proxy = FaultProxy::start(&aws_endpoint(), move |r: &Request| {
        if r.method == "POST"
            && r.target == "/"
            && r.amz_target.is_empty()
            && publishes.fetch_add(1, Ordering::SeqCst) == 0
        {
            Fault::SlowDown
        } else {
            Fault::Pass
        }
    })
    .await;
    let app = through(&stack, DbConfig::Url(db.url.clone()), &proxy);
    let cleanup = run::execute::<backstop_core::cleanup::NotificationCleanup>(&app, &payload, None);
    tokio::pin!(cleanup);
    let terminate = "select count(pg_terminate_backend(pid)) from pg_stat_activity
                     where application_name = 'backstop-cleanup' and datname = current_database()";
    let watch = async {
        let c = crate::connect(&db.url).await.expect("connect");
        for _ in 0..2000 {
            // A few batches in: the table has lost some rows.
            let n: i64 = c.query_one("select count(*) from notifications", &[]).await.expect("count").get(0);
            if n <= 60000 - 1500 {
                let killed: i64 = c.query_one(terminate, &[]).await.expect("terminate").get(0);
                return killed as usize;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        0
    };
    let (record, terminated) = tokio::select! {
        record = &mut cleanup => (record, 0),
        killed = watch => (cleanup.await, killed),
    };
    let mut t = trial_of(
        "PostgreSQL: notification-cleanup's backend terminated; SNS refuses once",
        &stack,
        terminated + proxy.injected().len(),
        &record,
    )
    .await;
    let after = content(rule).await;
    // Rows the rule keeps that went, or at least one if they changed otherwise.
    t.deleted_outside_rule = if after == kept { 0 } else { (kept.0 - after.0).max(1) as usize };
    // The next run, without faults, deletes the rest and nothing else.
    let clean = stack.app(stack.config(DbConfig::Url(db.url.clone())));
    let again = run::execute::<backstop_core::cleanup::NotificationCleanup>(&clean, &payload, None).await;
    let left: i64 =
        content("select * from notifications where read and created_at < now() - interval '90 days'").await.0;
    t.stuck = again.status != Status::Succeeded || left != 0 || content(rule).await != kept;
    t
}

/// Does `record`'s backup (of `shop` on `server`) restore, with every row? Restored by
/// Backstop into a new database there (a pg_dump-engine backup records no content hashes for
/// `verify` to compare, so the rows are counted).
async fn restores(stack: &Stack, server: &PrivateServer, record: &RunRecord) -> bool {
    let Some(key) = record.outputs["databases"][0]["manifest_key"].as_str() else { return false };
    let target = format!("shop_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let request = backstop_core::restore::RestoreRequest {
        target_url: server.url(&target),
        ..crate::restore_request(backstop_core::restore::RestoreSource::Key(key.to_owned()), &target)
    };
    let app = stack.app(stack.config(DbConfig::Url(server.url("shop"))));
    if let Err(e) = backstop_core::restore::restore(&app, &request).await {
        eprintln!("the backup did not restore: {}", e.report());
        return false;
    }
    let Ok(restored) = crate::connect(&server.url(&target)).await else { return false };
    let rows =
        restored.query_one("select (select count(*) from events) + (select count(*) from small)", &[]).await;
    rows.is_ok_and(|r| r.get::<_, i64>(0) == 600_100)
}

/// A plan: the first attempt of the `i`-th distinct request (by target) that `pick` selects
/// gets `fault(i)`; retries of it, and requests not picked, pass.
fn first_attempts(
    pick: impl Fn(&Request) -> bool + Send + Sync + 'static,
    fault: impl Fn(usize) -> Fault + Send + Sync + 'static,
) -> impl Fn(&Request) -> Fault + Send + Sync + 'static {
    let seen: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
    move |r: &Request| {
        if !pick(r) {
            return Fault::Pass;
        }
        let mut seen = seen.lock().expect("lock");
        let distinct = seen.len();
        if seen.insert(r.target.clone(), distinct).is_some() {
            return Fault::Pass;
        }
        fault(distinct)
    }
}

/// `fault` for every `nth` (0, nth, 2·nth, …), else nothing.
fn every(nth: usize, fault: Fault) -> impl Fn(usize) -> Fault + Send + Sync + 'static {
    move |i| if i.is_multiple_of(nth) { fault } else { Fault::Pass }
}

/// media-sync from a bucket on a second S3 server (copied streamed, GET then PUT) while the
/// first download of every third source object is cut short and the first upload of every
/// second copy is answered SlowDown. Nothing cut may land in the backup as if whole; a clean
/// run after it converges on the source, byte for byte.
pub async fn media_copies_cut_and_slowed(label: &str) -> Trial {
    let stack = Stack::new(label).await.expect("stack");
    let other = crate::s3_client(&crate::aws_endpoint2()).await.expect("second S3 server");
    let src = format!("bk-fault-media-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    other.create_bucket().bucket(&src).send().await.expect("bucket");
    let mut files = std::collections::BTreeMap::new();
    for i in 0..24u32 {
        let body: Vec<u8> = (0..300_000u32).map(|j| (j.wrapping_mul(2654435761) >> (i % 24)) as u8).collect();
        files.insert(format!("img/{i:02}.bin"), body);
    }
    for (k, b) in &files {
        let put = other.put_object().bucket(&src).key(format!("media/{k}")).body(b.clone().into());
        put.send().await.expect("put");
    }
    let cut = FaultProxy::start(
        &crate::aws_endpoint2(),
        first_attempts(
            |r| r.is_get_object() && r.target.contains("/media/"),
            every(3, Fault::TruncateBody(10_000)),
        ),
    )
    .await;
    let slowed =
        FaultProxy::start(&aws_endpoint(), first_attempts(Request::is_upload, every(2, Fault::SlowDown)))
            .await;
    // The source bucket, reached at `endpoint`.
    let media_from = |endpoint: String| {
        let source = backstop_core::config::MediaSource::S3 { bucket: src.clone(), prefix: "media/".into() };
        move |c: &mut backstop_core::Config| {
            c.media.source = Some(source);
            c.media.endpoint_url = Some(endpoint);
            c.media.s3.force_path_style = true;
        }
    };
    let app = through_with(&stack, DbConfig::Unset, &slowed, media_from(cut.url.clone()));
    let record =
        run::execute::<backstop_core::media::MediaSync>(&app, &json!({"concurrency": 4}), None).await;
    let mut t = trial("S3: media copies cut on download, SlowDown on upload", &stack, &slowed, &record).await;
    t.faults += cut.injected().len();
    let copied =
        crate::bucket_contents(&stack.s3, &stack.bucket, "backstop/media/current/").await.unwrap_or_default();
    // Whatever landed is whole; a run that says it succeeded copied everything.
    let wrong = copied.iter().any(|(k, b)| files.get(k) != Some(b));
    t.good_but_unrestorable = wrong || (t.succeeded && copied != files);
    if !t.succeeded {
        // The next run, without faults, converges.
        let mut config = stack.config(DbConfig::Unset);
        media_from(crate::aws_endpoint2())(&mut config);
        let clean = stack.app(config);
        let again = run::execute::<backstop_core::media::MediaSync>(&clean, &json!({}), None).await;
        let copied = crate::bucket_contents(&stack.s3, &stack.bucket, "backstop/media/current/")
            .await
            .unwrap_or_default();
        t.good_but_unrestorable |= again.status != Status::Succeeded || copied != files;
    }
    t
}

/// Three media-sync runs over one file overwritten twice, from a bucket of `stack`'s server;
/// returns the app (media configured) and the run records.
async fn media_history(stack: &Stack) -> (App, Vec<RunRecord>) {
    let src = format!("bk-fault-src-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    stack.s3.create_bucket().bucket(&src).send().await.expect("bucket");
    let mut config = stack.config(DbConfig::Unset);
    config.media.source =
        Some(backstop_core::config::MediaSource::S3 { bucket: src.clone(), prefix: String::new() });
    config.media.s3.force_path_style = true;
    let app = stack.app(config);
    let mut runs = Vec::new();
    for version in 1..=3 {
        let body = format!("version {version}").into_bytes();
        stack.s3.put_object().bucket(&src).key("logo.png").body(body.into()).send().await.expect("put");
        let r = run::execute::<backstop_core::media::MediaSync>(&app, &json!({}), None).await;
        assert_eq!(r.status, Status::Succeeded, "{:?}", r.error);
        runs.push(r);
    }
    (app, runs)
}

/// retention-prune (keep 5 dailies, media keep 1) over a real backup, 12 back-dated ones and a
/// three-run media history, through a store that refuses some deletes — AccessDenied on every
/// third backup the rule would delete, Object Lock on another — and cannot read the oldest media
/// summary. What the store refused must keep everything it names; no trash may go while a
/// summary is unreadable; the denied deletes fail the run; a clean run deletes the rest.
pub async fn retention_deletes_refused_and_summaries_unreadable(label: &str) -> Trial {
    use backstop_core::StoreKind;
    use backstop_core::store::faulty::{Fault as StoreFault, FaultyStore, Op};
    let stack = Stack::new(label).await.expect("stack");
    let db = TestDb::create(label).await.expect("database");
    crate::psql(&db.url, seed_sql(2_000).as_bytes()).await.expect("seed");
    let History { real, template, now, dated } = history_of_backups(&stack, &db).await;
    let (mut app, media) = media_history(&stack).await;
    app.config.media.source = None;
    let faulty = std::sync::Arc::new(FaultyStore::new(app.store.clone()));
    let kept_by_rule = |day: i64| day <= 4;
    let mut refused = Vec::new();
    for (i, (_, key)) in dated.iter().filter(|(day, _)| !kept_by_rule(*day)).enumerate() {
        let kind = match i % 3 {
            0 => StoreKind::Denied,
            1 if i == 1 => StoreKind::Locked,
            _ => continue,
        };
        faulty.fail(StoreFault::new(Op::Delete, key, kind));
        refused.push(key.clone());
    }
    let summary = |r: &RunRecord| r.outputs["summary_key"].as_str().unwrap_or_default().to_owned();
    let trash = |r: &RunRecord| format!("backstop/media/trash/{}/logo.png", r.run_id);
    faulty.fail(StoreFault::new(Op::Get, &summary(&media[0]), StoreKind::Denied));
    app.store = faulty.clone();
    // Three days on: the trash is past its day of grace.
    let later = now + jiff::SignedDuration::from_hours(72);
    let payload = json!({"policy": {"keep_daily": 5}, "media": {"keep_last": 1}, "stale_after": "30d"});
    let record =
        run::execute_at::<backstop_core::retention::RetentionPrune>(&app, &payload, None, later).await;
    let mut t = trial_of(
        "retention-prune: deletes refused (AccessDenied, Object Lock); a media summary unreadable",
        &stack,
        faulty.injected(),
        &record,
    )
    .await;
    let keys = stack.keys().await.unwrap_or_default();
    let objects = template["objects"].as_array().map_or(0, Vec::len);
    let left = |manifest_key: &str| {
        let stem = manifest_key.trim_end_matches(backstop_core::keys::MANIFEST_SUFFIX);
        keys.iter().filter(|k| k.starts_with(stem)).count()
    };
    for (day, key) in &dated {
        let n = left(key);
        let must_stay = kept_by_rule(*day) || refused.contains(key);
        if must_stay && n != 1 + objects {
            t.deleted_outside_rule += 1;
        }
        if n != 0 && n != 1 + objects {
            t.good_but_unrestorable = true;
        }
    }
    // The unreadable snapshot's own trash is kept: it may list it.
    if !keys.contains(&trash(&media[0])) || !keys.contains(&summary(&media[0])) {
        t.deleted_outside_rule += 1;
    }
    t.good_but_unrestorable |= verify_clean(&stack, &db.url, &real).await.status != Status::Succeeded;
    // The next run, with the store at peace, deletes exactly the rest.
    faulty.heal();
    let again =
        run::execute_at::<backstop_core::retention::RetentionPrune>(&app, &payload, None, later).await;
    let keys = stack.keys().await.unwrap_or_default();
    t.stuck = again.status != Status::Succeeded
        || dated.iter().any(|(day, k)| keys.contains(k) != kept_by_rule(*day))
        || keys.contains(&trash(&media[0]))
        || !keys.contains(&summary(&media[2]));
    t
}

/// media-sync (server-side copies) of 20 objects all overwritten since the last run, while the
/// application writes every fourth once more just as its copy starts. A raced object must be a
/// failed key (the last snapshot's version still restores), never an entry naming bytes the
/// mirror does not hold; the next run copies the newest.
pub async fn media_sources_changed_during_copy(label: &str) -> Trial {
    use backstop_core::StoreKind;
    use backstop_core::media::{MediaRestoreRequest, MediaTarget, SnapshotChoice, media_restore};
    use backstop_core::store::faulty::{Fault as StoreFault, FaultyStore, Op};
    let stack = Stack::new(label).await.expect("stack");
    let src = format!("bk-fault-race-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    stack.s3.create_bucket().bucket(&src).send().await.expect("bucket");
    fn body(i: u32, v: u32) -> Vec<u8> {
        format!("object {i} version {v} ").repeat(50 + i as usize).into_bytes()
    }
    async fn put(s3: aws_sdk_s3::Client, bucket: String, i: u32, v: u32) {
        let req = s3.put_object().bucket(bucket).key(format!("up/{i:02}.bin")).body(body(i, v).into());
        req.send().await.expect("put");
    }
    for i in 0..20 {
        put(stack.s3.clone(), src.clone(), i, 1).await;
    }
    let mut config = stack.config(DbConfig::Unset);
    config.media.source =
        Some(backstop_core::config::MediaSource::S3 { bucket: src.clone(), prefix: "up/".into() });
    config.media.s3.force_path_style = true;
    let mut app = stack.app(config);
    let first = run::execute::<backstop_core::media::MediaSync>(&app, &json!({}), None).await;
    assert_eq!(first.status, Status::Succeeded, "{:?}", first.error);
    for i in 0..20 {
        put(stack.s3.clone(), src.clone(), i, 2).await;
    }
    let faulty = std::sync::Arc::new(FaultyStore::new(app.store.clone()));
    let raced: Vec<u32> = (0..20).step_by(4).collect();
    for &i in &raced {
        let (sdk, bucket) = (stack.sdk.clone(), src.clone());
        let hook = move |_: &str| {
            let (sdk, bucket) = (sdk.clone(), bucket.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    let s3 = aws_sdk_s3::Client::from_conf(
                        aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build(),
                    );
                    put(s3, bucket, i, 3).await;
                })
            })
            .join()
            .expect("the writer");
        };
        faulty.fail(
            StoreFault::new(Op::Copy, &format!("up/{i:02}.bin"), StoreKind::Other).times(0).before(hook),
        );
    }
    app.store = faulty.clone();
    // Every object changed since the last run: let the trash guard through.
    let all_changed = json!({"max_delete_fraction": 1.0});
    let record = run::execute::<backstop_core::media::MediaSync>(&app, &all_changed, None).await;
    let mut t =
        trial_of("S3: media objects replaced during their server-side copy", &stack, raced.len(), &record)
            .await;
    // What the run's snapshot restores must be what it names: version 2, or version 1 where raced.
    let restore = |app: App| async move {
        let dir = std::env::temp_dir().join(format!("bk-race-{}", uuid::Uuid::new_v4()));
        let req = MediaRestoreRequest {
            snapshot: SnapshotChoice::Latest,
            to: MediaTarget::Dir(dir.clone()),
            include: vec![],
            dry_run: false,
            force: false,
            concurrency: 4,
        };
        let ok = media_restore(&app, &req).await.is_ok();
        let files = crate::dir_contents(&dir).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        (ok, files)
    };
    let plain = || stack.app(stack.config(DbConfig::Unset));
    let (ok, files) = restore(plain()).await;
    let want = |v_raced: u32, v_rest: u32| {
        (0..20u32)
            .map(|i| (format!("{i:02}.bin"), body(i, if raced.contains(&i) { v_raced } else { v_rest })))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    t.good_but_unrestorable = !ok || files != want(1, 2);
    faulty.heal();
    let again = run::execute::<backstop_core::media::MediaSync>(&app, &all_changed, None).await;
    let (ok, files) = restore(plain()).await;
    t.stuck = again.status != Status::Succeeded || !ok || files != want(3, 2);
    t
}
