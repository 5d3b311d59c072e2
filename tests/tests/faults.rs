//! The fault suite, S3 side: db-backup and verify through a proxy that injects 503 SlowDown,
//! connection resets mid-body, a CompleteMultipartUpload applied and then failed, and cut GET
//! bodies, in front of the real loopback S3 server. The invariants: transient faults are
//! absorbed (the backup succeeds and restores); no run reports success for a backup that does
//! not restore; no multipart upload is left open; a cut download is never taken as whole.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use backstop_core::App;
use backstop_core::backup::DbBackup;
use backstop_core::config::DbConfig;
use backstop_core::restore::Verify;
use backstop_core::run::{self, RunRecord, Status};
use backstop_tests::fault_proxy::{Fault, FaultProxy, Request};
use backstop_tests::{Stack, TestDb, aws_endpoint};
use serde_json::json;

/// ~20 MB of rows that compress to about half: the dump takes more than one 5 MiB part.
async fn seeded(label: &str) -> (Stack, TestDb) {
    let stack = Stack::new(label).await.unwrap();
    let db = TestDb::create(label).await.unwrap();
    db.psql(
        b"create table events (id int primary key, a text, b text, c text);
          insert into events select g, md5(g::text), md5((g * 7)::text), md5((g * 13)::text)
            from generate_series(1, 200000) g;
          create table small (id int primary key, v text);
          insert into small select g, 'v' || g from generate_series(1, 100) g;",
    )
    .await
    .unwrap();
    (stack, db)
}

/// An app for `db` whose every S3 request goes through `proxy`; 5 MiB parts.
fn through(stack: &Stack, db: &TestDb, proxy: &FaultProxy) -> App {
    let sdk = stack.sdk.to_builder().endpoint_url(&proxy.url).build();
    let mut config = stack.config(DbConfig::Url(db.url.clone()));
    config.s3.part_size = 5 * 1024 * 1024;
    App::new(&sdk, config).unwrap()
}

/// Verifies `record`'s backup with a clean connection: restored into a scratch database and
/// compared with the manifest (rows and content hashes).
async fn verify_clean(stack: &Stack, db: &TestDb, record: &RunRecord) -> RunRecord {
    let key = record.outputs["databases"][0]["manifest_key"].as_str().expect("a manifest key").to_owned();
    let app = stack.app(stack.config(DbConfig::Url(db.url.clone())));
    run::execute::<Verify>(&app, &json!({ "key": key, "jobs": 2 }), None).await
}

fn summary(record: &RunRecord) -> String {
    format!("{}: {}", record.summary, record.error.as_deref().unwrap_or(""))
}

#[tokio::test]
async fn slowdowns_and_resets_on_uploads_are_absorbed_and_the_backup_restores() {
    let (stack, db) = seeded("fault_up").await;
    // The first attempt of every second upload (part or object) is answered 503 SlowDown, of
    // every third reset after 64 KiB of its body; retries pass. The SDK's default of three
    // attempts must absorb it.
    let seen: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
    let proxy = FaultProxy::start(&aws_endpoint(), move |r: &Request| {
        if !r.is_upload() {
            return Fault::Pass;
        }
        let mut seen = seen.lock().unwrap();
        let distinct = seen.len();
        if seen.insert(r.target.clone(), distinct).is_some() {
            return Fault::Pass;
        }
        match distinct {
            i if i % 2 == 0 => Fault::SlowDown,
            i if i % 3 == 0 => Fault::ResetAfter(64 * 1024),
            _ => Fault::Pass,
        }
    })
    .await;
    let app = through(&stack, &db, &proxy);
    let record = run::execute::<DbBackup>(&app, &json!({ "split_mb": 8 }), None).await;
    let injected = proxy.injected();
    assert!(injected.contains(&Fault::SlowDown), "{injected:?}");
    assert!(injected.iter().any(|f| matches!(f, Fault::ResetAfter(_))), "{injected:?}");
    assert_eq!(record.status, Status::Succeeded, "{}", summary(&record));
    let verified = verify_clean(&stack, &db, &record).await;
    assert_eq!(verified.status, Status::Succeeded, "the backup restores: {}", summary(&verified));
    assert_eq!(stack.open_uploads().await.unwrap(), 0, "no multipart upload left open");
}

#[tokio::test]
async fn a_completion_applied_and_then_failed_never_reads_as_a_good_backup_that_is_not() {
    let (stack, db) = seeded("fault_complete").await;
    // The first CompleteMultipartUpload reaches the server, which makes the object; the client
    // is told it failed (a timeout after apply looks the same to it).
    let faulted = AtomicBool::new(false);
    let proxy = FaultProxy::start(&aws_endpoint(), move |r: &Request| {
        if r.is_complete() && !faulted.swap(true, Ordering::SeqCst) {
            Fault::ApplyThenFail
        } else {
            Fault::Pass
        }
    })
    .await;
    let app = through(&stack, &db, &proxy);
    let record = run::execute::<DbBackup>(&app, &json!({}), None).await;
    assert!(proxy.injected().contains(&Fault::ApplyThenFail), "a completion was faulted");
    eprintln!("after a completion applied and failed: {:?}, {}", record.status, summary(&record));
    match record.status {
        // Succeeded (the SDK's retry found the object made): it must restore.
        Status::Succeeded => {
            let verified = verify_clean(&stack, &db, &record).await;
            assert_eq!(verified.status, Status::Succeeded, "{}", summary(&verified));
        }
        // Failed: recorded, and no manifest names a backup with missing objects.
        Status::Failed => {
            assert!(record.record_key.is_some(), "the failure is recorded");
            let manifests: Vec<String> =
                stack.keys().await.unwrap().into_iter().filter(|k| k.ends_with(".manifest.json")).collect();
            assert!(manifests.is_empty(), "a failed backup left a manifest: {manifests:?}");
        }
    }
    assert_eq!(stack.open_uploads().await.unwrap(), 0, "no multipart upload left open");
}

#[tokio::test]
async fn a_cut_download_fails_the_restore_drill_loudly() {
    let (stack, db) = seeded("fault_get").await;
    let record = stack.backup(&db, json!({})).await;
    assert_eq!(record.status, Status::Succeeded, "{}", summary(&record));
    let key = record.outputs["databases"][0]["manifest_key"].as_str().unwrap().to_owned();

    // Every GET of a dump object is cut after 100 kB; listings and the manifest pass.
    let proxy = FaultProxy::start(&aws_endpoint(), |r: &Request| {
        if r.is_get_object() && r.target.contains(".sql.") {
            Fault::TruncateBody(100_000)
        } else {
            Fault::Pass
        }
    })
    .await;
    let app = through(&stack, &db, &proxy);
    let verified = run::execute::<Verify>(&app, &json!({ "key": key }), None).await;
    assert!(proxy.injected().iter().any(|f| matches!(f, Fault::TruncateBody(_))), "a download was cut");
    eprintln!("a cut download: {}", summary(&verified));
    assert_eq!(verified.status, Status::Failed, "a cut download must not verify: {}", summary(&verified));
    assert!(verified.record_key.is_some(), "the failed drill is recorded");
}
