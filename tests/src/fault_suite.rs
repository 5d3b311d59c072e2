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
    /// The run's summary and error, for messages.
    pub summary: String,
}

/// ~20 MB of rows that compress to about half: a dump of several 5 MiB parts.
pub async fn seeded(label: &str) -> (Stack, TestDb) {
    let stack = Stack::new(label).await.expect("stack");
    let db = TestDb::create(label).await.expect("database");
    db.psql(
        b"create table events (id int primary key, a text, b text, c text);
          insert into events select g, md5(g::text), md5((g * 7)::text), md5((g * 13)::text)
            from generate_series(1, 200000) g;
          create table small (id int primary key, v text);
          insert into small select g, 'v' || g from generate_series(1, 100) g;",
    )
    .await
    .expect("seed");
    (stack, db)
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
pub async fn verify_clean(stack: &Stack, db: &TestDb, record: &RunRecord) -> RunRecord {
    let key = record.outputs["databases"][0]["manifest_key"].as_str().unwrap_or_default().to_owned();
    let app = stack.app(stack.config(DbConfig::Url(db.url.clone())));
    run::execute::<Verify>(&app, &json!({ "key": key, "jobs": 2 }), None).await
}

async fn trial(kind: &'static str, stack: &Stack, proxy: &FaultProxy, record: &RunRecord) -> Trial {
    let text = serde_json::to_string(record).unwrap_or_default();
    Trial {
        kind,
        faults: proxy.injected().len(),
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
        t.good_but_unrestorable = verify_clean(&stack, &db, &record).await.status != Status::Succeeded;
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
        t.good_but_unrestorable = verify_clean(&stack, &db, &record).await.status != Status::Succeeded;
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
        t.good_but_unrestorable = verify_clean(&stack, &db, &record).await.status != Status::Succeeded;
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
    let app = through(&stack, DbConfig::Secret { secret_id }, &proxy);
    let record = run::execute::<DbBackup>(&app, &json!({}), None).await;
    let kind = if throttled == usize::MAX {
        "Secrets Manager: every read throttled"
    } else {
        "Secrets Manager: first read throttled"
    };
    let mut t = trial(kind, &stack, &proxy, &record).await;
    if t.succeeded {
        t.good_but_unrestorable = verify_clean(&stack, &db, &record).await.status != Status::Succeeded;
    }
    // What subscribers received: subjects and messages.
    if let Ok(outcomes) = stack.outcomes(1, std::time::Duration::from_secs(10)).await {
        t.secret_leaks += outcomes.iter().filter(|o| format!("{o:?}").contains(SECRET_PASSWORD)).count();
    }
    t
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
