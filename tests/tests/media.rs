//! media-sync end to end: a media bucket on the loopback S3 server (server-side copies), one on
//! a second S3 server (streamed copies with the source's own endpoint and credentials from a
//! secret), and a directory; then media-restore as of earlier snapshots, byte for byte.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use backstop_core::config::{DbConfig, MediaSource};
use backstop_core::media::{MediaRestoreRequest, MediaSync, MediaTarget, SnapshotChoice, media_restore};
use backstop_core::run::{self, RunRecord, Status};
use backstop_tests::{
    Stack, aws_endpoint2, bucket_contents, dir_contents, moto_log_len, moto_requests, s3_client, sdk,
};
use serde_json::{Value, json};

type Files = BTreeMap<String, Vec<u8>>;

/// A bucket of uploads on `s3`, with `files` under `uploads/`.
async fn media_bucket(s3: &aws_sdk_s3::Client, label: &str) -> String {
    let bucket = format!("bk-media-{label}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    bucket
}

/// Writes `key` exactly (no `uploads/` in front).
async fn put_key(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) {
    s3.put_object().bucket(bucket).key(key).body(body.to_vec().into()).send().await.unwrap();
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) {
    s3.put_object()
        .bucket(bucket)
        .key(format!("uploads/{key}"))
        .body(body.to_vec().into())
        .content_type("image/png")
        .metadata("owner", "alice")
        .send()
        .await
        .unwrap();
}

async fn delete(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    s3.delete_object().bucket(bucket).key(format!("uploads/{key}")).send().await.unwrap();
}

/// Bytes that differ per key and version and do not compress away.
fn content(key: &str, version: u32, len: usize) -> Vec<u8> {
    let seed = format!("{key}#{version}");
    let mut out = Vec::with_capacity(len);
    let mut x: u64 =
        seed.bytes().fold(1469598103934665603, |h, b| (h ^ b as u64).wrapping_mul(1099511628211));
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Keys an application really writes, and the ones that break naive tools.
const AWKWARD: [&str; 9] = [
    "avatars/alice.png",
    "avatars/bob smith.png",
    "docs/invoice #12?.pdf",
    "docs/a+b=c%20d.txt",
    "ünïcødé/ファイル.jpg",
    "/leading-slash.png",
    "..dots/..x/y..",
    "a-b",
    "a/b",
];

async fn sync(
    stack: &Stack,
    source: MediaSource,
    tweak: impl FnOnce(&mut backstop_core::Config),
    payload: Value,
) -> RunRecord {
    let mut config = stack.config(DbConfig::Unset);
    config.media.source = Some(source);
    config.media.s3.force_path_style = true;
    tweak(&mut config);
    run::execute::<MediaSync>(&stack.app(config), &payload, None).await
}

fn assert_ok(record: &RunRecord) {
    assert_eq!(record.status, Status::Succeeded, "{}", serde_json::to_string_pretty(record).unwrap());
}

async fn restore_to_dir(stack: &Stack, choice: SnapshotChoice) -> (Files, Value) {
    let dir = std::env::temp_dir().join(format!("bk-media-restore-{}", uuid::Uuid::new_v4()));
    let app = stack.app(stack.config(DbConfig::Unset));
    let request = MediaRestoreRequest {
        snapshot: choice,
        to: MediaTarget::Dir(dir.clone()),
        include: vec![],
        dry_run: false,
        force: false,
        concurrency: 4,
    };
    let report = media_restore(&app, &request).await.unwrap();
    let files = if dir.exists() { dir_contents(&dir).unwrap() } else { Files::new() };
    let _ = std::fs::remove_dir_all(&dir);
    (files, serde_json::to_value(report).unwrap())
}

/// A restore into a directory cannot hold keys a filesystem cannot (a leading `/`, `..`); those
/// are compared through an S3 target instead.
async fn restore_to_bucket(stack: &Stack, choice: SnapshotChoice) -> Files {
    let target = format!("bk-media-back-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    stack.s3.create_bucket().bucket(&target).send().await.unwrap();
    let app = stack.app(stack.config(DbConfig::Unset));
    let request = MediaRestoreRequest {
        snapshot: choice,
        to: MediaTarget::S3 { bucket: target.clone(), prefix: "restored/".into() },
        include: vec![],
        dry_run: false,
        force: false,
        concurrency: 4,
    };
    media_restore(&app, &request).await.unwrap();
    bucket_contents(&stack.s3, &target, "restored/").await.unwrap()
}

#[tokio::test]
async fn same_endpoint_sync_keeps_every_version_and_restores_any_snapshot_byte_for_byte() {
    // GIVEN uploads with awkward keys, a zero-byte object and one past the multipart size.
    let stack = Stack::new("media").await.unwrap();
    let src = media_bucket(&stack.s3, "same").await;
    let mut v1 = Files::new();
    for k in AWKWARD {
        v1.insert(k.to_owned(), content(k, 1, 3000));
    }
    v1.insert("empty.txt".into(), vec![]);
    v1.insert("big/video.mp4".into(), content("big", 1, 9 * 1024 * 1024));
    for (k, b) in &v1 {
        put(&stack.s3, &src, k, b).await;
    }
    let source = MediaSource::S3 { bucket: src.clone(), prefix: "uploads/".into() };

    // WHEN the first sync runs (same endpoint and credentials: server-side copies).
    let first = sync(&stack, source.clone(), |_| {}, json!({})).await;

    // THEN the mirror holds every object, with content type and metadata.
    assert_ok(&first);
    assert_eq!(first.outputs["server_side"], true);
    assert_eq!(first.outputs["copied"], v1.len() as u64);
    assert_eq!(first.outputs["verified_server_side"], v1.len() as u64);
    let mirror = bucket_contents(&stack.s3, &stack.bucket, "backstop/media/current/").await.unwrap();
    assert_eq!(mirror, v1);
    let head = stack
        .s3
        .head_object()
        .bucket(&stack.bucket)
        .key("backstop/media/current/avatars/alice.png")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("image/png"));
    assert_eq!(head.metadata().and_then(|m| m.get("owner")).map(String::as_str), Some("alice"));

    // WHEN the app overwrites one, deletes one, adds one, and deletes then re-creates another.
    let mut v2 = v1.clone();
    v2.insert("avatars/alice.png".into(), content("avatars/alice.png", 2, 4000));
    v2.remove("docs/invoice #12?.pdf");
    v2.insert("new/upload.jpg".into(), content("new", 2, 100));
    put(&stack.s3, &src, "avatars/alice.png", &v2["avatars/alice.png"]).await;
    delete(&stack.s3, &src, "docs/invoice #12?.pdf").await;
    put(&stack.s3, &src, "new/upload.jpg", &v2["new/upload.jpg"]).await;
    let second = sync(&stack, source.clone(), |_| {}, json!({})).await;

    // THEN only the changes were copied, and the replaced and deleted versions are in the trash.
    assert_ok(&second);
    let plan = &second.outputs["plan"];
    assert_eq!(
        (plan["new"].as_u64(), plan["modified"].as_u64(), plan["deleted"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(second.outputs["copied"], 2);
    assert_eq!(second.outputs["trashed"], 2);
    assert_eq!(bucket_contents(&stack.s3, &stack.bucket, "backstop/media/current/").await.unwrap(), v2);
    let first_run = first.run_id.as_str();
    let trash = bucket_contents(&stack.s3, &stack.bucket, &format!("backstop/media/trash/{first_run}/"))
        .await
        .unwrap();
    assert_eq!(trash.len(), 2);
    assert_eq!(trash["avatars/alice.png"], v1["avatars/alice.png"]);
    assert_eq!(trash["docs/invoice #12?.pdf"], v1["docs/invoice #12?.pdf"]);

    // The deleted key comes back with other bytes: a third version, the second kept in trash.
    v2.insert("docs/invoice #12?.pdf".into(), content("docs", 3, 10));
    put(&stack.s3, &src, "docs/invoice #12?.pdf", &v2["docs/invoice #12?.pdf"]).await;
    assert_ok(&sync(&stack, source.clone(), |_| {}, json!({})).await);

    // THEN media-restore as of the first snapshot gives the first state, byte for byte, and the
    // latest the current one; a filesystem-safe subset also restores into a directory.
    let first_snapshot = first.outputs["snapshot_key"].as_str().unwrap().to_owned();
    assert_eq!(restore_to_bucket(&stack, SnapshotChoice::Key(first_snapshot.clone())).await, v1);
    assert_eq!(restore_to_bucket(&stack, SnapshotChoice::Latest).await, v2);
    let second_taken: jiff::Timestamp = second.started;
    assert_eq!(
        restore_to_bucket(&stack, SnapshotChoice::AsOf(second_taken + jiff::SignedDuration::from_millis(1)))
            .await
            .len(),
        v1.len(),
        "as of just after the second run: the second state"
    );
}

#[tokio::test]
async fn a_run_with_no_changes_makes_no_request_per_object() {
    let stack = Stack::new("media-nochange").await.unwrap();
    let src = media_bucket(&stack.s3, "nochange").await;
    for i in 0..300 {
        put(&stack.s3, &src, &format!("f/{i:04}.png"), &content("f", i, 200)).await;
    }
    let source = MediaSource::S3 { bucket: src.clone(), prefix: "uploads/".into() };
    assert_ok(&sync(&stack, source.clone(), |_| {}, json!({})).await);

    let from = moto_log_len();
    let again = sync(&stack, source, |_| {}, json!({})).await;

    assert_ok(&again);
    assert_eq!(again.outputs["plan"]["unchanged"], 300);
    assert_eq!(again.outputs["copied"], 0);
    let (Some(source_requests), Some(mirror_requests)) =
        (moto_requests(&src, from), moto_requests(&stack.bucket, from))
    else {
        return;
    };
    // The source: its listing only (300 keys, one page).
    assert!(
        source_requests.iter().all(|r| r.starts_with("GET /") && r.contains("list-type=2")),
        "{source_requests:#?}"
    );
    assert_eq!(source_requests.len(), 1, "{source_requests:#?}");
    // The mirror: the snapshot listing and reads, the new snapshot and summary, the run record;
    // nothing under media/current/ or media/trash/.
    assert!(
        mirror_requests.iter().all(|r| !r.contains("/media/current/") && !r.contains("/media/trash/")),
        "{mirror_requests:#?}"
    );
    // One run at a time: the lease taken, read back, checked and given back.
    let (lease, others): (Vec<&String>, Vec<&String>) =
        mirror_requests.iter().partition(|r| r.contains("/media/lease.json"));
    assert_eq!(lease.len(), 4, "{lease:#?}");
    assert!(others.len() <= 8, "{others:#?}");
}

#[tokio::test]
async fn another_endpoint_is_copied_streamed_with_credentials_from_a_secret() {
    // GIVEN a media bucket on a second S3 server, reached with keys held in Secrets Manager.
    let stack = Stack::new("media-cross").await.unwrap();
    let other = s3_client(&aws_endpoint2()).await.unwrap();
    let src = media_bucket(&other, "cross").await;
    let mut files = Files::new();
    for k in AWKWARD {
        files.insert(k.to_owned(), content(k, 1, 5000));
    }
    files.insert("big.bin".into(), content("big", 1, 11 * 1024 * 1024));
    files.insert("zero".into(), vec![]);
    for (k, b) in &files {
        put(&other, &src, k, b).await;
    }
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk().await.unwrap());
    let secret_id = format!("bk-media-{}", uuid::Uuid::new_v4().simple());
    secrets
        .create_secret()
        .name(&secret_id)
        .secret_string(r#"{"access_key_id": "minio-user", "secret_access_key": "minio-secret-value"}"#)
        .send()
        .await
        .unwrap();
    let source = MediaSource::S3 { bucket: src.clone(), prefix: "uploads/".into() };
    let tweak = |c: &mut backstop_core::Config| {
        c.media.endpoint_url = Some(aws_endpoint2());
        c.media.secret_id = Some(secret_id.clone());
    };

    let record = sync(&stack, source.clone(), tweak, json!({"concurrency": 4})).await;

    assert_ok(&record);
    assert_eq!(record.outputs["server_side"], false);
    // Each was put in one request, so its ETag is its MD5: every copy was checked by it.
    assert_eq!(record.outputs["verified_md5"], files.len() as u64);
    assert_eq!(bucket_contents(&stack.s3, &stack.bucket, "backstop/media/current/").await.unwrap(), files);
    let text = serde_json::to_string(&record).unwrap();
    assert!(!text.contains("minio-secret-value"), "the secret's value is not in the record");

    // A bad secret fails the run, naming the secret and the field, never a value.
    secrets
        .put_secret_value()
        .secret_id(&secret_id)
        .secret_string(r#"{"access_key_id": "x"}"#)
        .send()
        .await
        .unwrap();
    let failed = sync(&stack, source, tweak, json!({})).await;
    assert_eq!(failed.status, Status::Failed);
    let error = failed.error.unwrap();
    assert!(error.contains(&secret_id) && error.contains("secret_access_key"), "{error}");
}

#[tokio::test]
async fn a_directory_source_syncs_by_size_and_mtime_and_restores() {
    let stack = Stack::new("media-dir").await.unwrap();
    let dir = std::env::temp_dir().join(format!("bk-media-src-{}", uuid::Uuid::new_v4()));
    let mut files = Files::new();
    for k in ["a.jpg", "sub dir/b #1.png", "sub dir/deeper/c.pdf", "z"] {
        files.insert(k.to_owned(), content(k, 1, 1500));
    }
    for (k, b) in &files {
        let p = dir.join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b).unwrap();
    }
    let source = MediaSource::Local { root: dir.clone() };

    let first = sync(&stack, source.clone(), |_| {}, json!({})).await;
    assert_ok(&first);
    assert_eq!(bucket_contents(&stack.s3, &stack.bucket, "backstop/media/current/").await.unwrap(), files);
    let head = stack
        .s3
        .head_object()
        .bucket(&stack.bucket)
        .key("backstop/media/current/a.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("image/jpeg"), "a content type from the extension");

    let again = sync(&stack, source.clone(), |_| {}, json!({})).await;
    assert_ok(&again);
    assert_eq!(again.outputs["copied"], 0, "unchanged size and mtime: nothing copied");

    std::fs::write(dir.join("a.jpg"), content("a.jpg", 2, 1600)).unwrap();
    std::fs::remove_file(dir.join("z")).unwrap();
    let third = sync(&stack, source, |_| {}, json!({})).await;
    assert_ok(&third);
    assert_eq!((third.outputs["copied"].as_u64(), third.outputs["trashed"].as_u64()), (Some(1), Some(2)));

    let (restored, report) =
        restore_to_dir(&stack, SnapshotChoice::Key(first.outputs["snapshot_key"].as_str().unwrap().into()))
            .await;
    assert_eq!(restored, files, "{report}");
    assert_eq!(report["from_trash"], 2);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn guards_stop_an_empty_source_and_a_mass_delete_before_anything_moves() {
    let stack = Stack::new("media-guard").await.unwrap();
    let src = media_bucket(&stack.s3, "guard").await;
    for i in 0..40 {
        put(&stack.s3, &src, &format!("{i:03}"), &content("g", i, 100)).await;
    }
    let source = MediaSource::S3 { bucket: src.clone(), prefix: "uploads/".into() };
    assert_ok(&sync(&stack, source.clone(), |_| {}, json!({})).await);
    let mirror_before = bucket_contents(&stack.s3, &stack.bucket, "backstop/media/current/").await.unwrap();

    // A prefix that lists nothing (a typo, a wrong bucket): failure, nothing moved.
    let wrong = MediaSource::S3 { bucket: src.clone(), prefix: "upload/".into() };
    let empty = sync(&stack, wrong, |_| {}, json!({})).await;
    assert_eq!(empty.status, Status::Failed);
    assert!(empty.error.as_deref().unwrap().contains("empty"), "{:?}", empty.error);

    // 15 of 40 deleted (37%): more than the default 20%.
    for i in 0..15 {
        delete(&stack.s3, &src, &format!("{i:03}")).await;
    }
    let mass = sync(&stack, source.clone(), |_| {}, json!({})).await;
    assert_eq!(mass.status, Status::Failed);
    assert!(mass.error.as_deref().unwrap().contains("max_delete_fraction"), "{:?}", mass.error);
    assert_eq!(
        bucket_contents(&stack.s3, &stack.bucket, "backstop/media/current/").await.unwrap(),
        mirror_before
    );
    let trash = bucket_contents(&stack.s3, &stack.bucket, "backstop/media/trash/").await.unwrap();
    assert!(trash.is_empty(), "nothing moved to the trash");

    // The dry run says what would go; force lets it through once.
    let dry = sync(&stack, source.clone(), |_| {}, json!({"dry_run": true, "force": true})).await;
    assert_ok(&dry);
    assert_eq!(dry.outputs["plan"]["deleted"], 15);
    assert_eq!(dry.outputs["plan"]["sample_deleted"].as_array().unwrap().len(), 10);
    let forced = sync(&stack, source, |_| {}, json!({"force": true})).await;
    assert_ok(&forced);
    assert_eq!(forced.outputs["trashed"], 15);
    assert_eq!(bucket_contents(&stack.s3, &stack.bucket, "backstop/media/current/").await.unwrap().len(), 25);
}

#[tokio::test]
async fn a_partial_failure_is_published_and_the_next_run_retries() {
    // GIVEN a backup directory (a filesystem) and a bucket holding both "photos" and
    // "photos/a.jpg", which no filesystem can hold at once.
    let stack = Stack::new("media-partial").await.unwrap();
    let src = media_bucket(&stack.s3, "partial").await;
    put(&stack.s3, &src, "photos", b"a file named like a folder").await;
    put(&stack.s3, &src, "photos/a.jpg", b"jpeg").await;
    put(&stack.s3, &src, "zzz.png", b"png").await;
    let backups = std::env::temp_dir().join(format!("bk-media-dest-{}", uuid::Uuid::new_v4()));
    let to_dir = |c: &mut backstop_core::Config| {
        c.destination = backstop_core::config::Destination::Local { root: backups.clone() };
    };
    let source = MediaSource::S3 { bucket: src.clone(), prefix: "uploads/".into() };

    let first = sync(&stack, source.clone(), to_dir, json!({"concurrency": 1})).await;

    // THEN the rest was copied, the failure is listed and published, and the run failed.
    assert_eq!(first.status, Status::Failed);
    assert_eq!(first.outputs["failed"], 1);
    assert_eq!(first.outputs["failed_keys"][0]["key"], "photos/a.jpg");
    assert_eq!(first.outputs["copied"], 2);
    let outcome = stack.outcomes(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(outcome[0].attributes["status"]["Value"], "failed");
    assert!(outcome[0].subject.contains("media-sync FAILED"), "{}", outcome[0].subject);

    // WHEN the app removes the clash, THEN the next run copies what failed.
    delete(&stack.s3, &src, "photos").await;
    let second = sync(&stack, source, to_dir, json!({"concurrency": 1})).await;
    assert_ok(&second);
    assert_eq!(second.outputs["plan"]["new"], 1);
    assert_eq!(std::fs::read(backups.join("backstop/media/current/photos/a.jpg")).unwrap(), b"jpeg");
    assert_eq!(
        std::fs::read(backups.join("backstop/media/trash").join(&first.run_id).join("photos")).unwrap(),
        b"a file named like a folder"
    );
    std::fs::remove_dir_all(backups).unwrap();
}

#[tokio::test]
async fn near_the_deadline_a_run_stops_records_what_it_did_and_the_next_goes_on() {
    let stack = Stack::new("media-deadline").await.unwrap();
    let src = media_bucket(&stack.s3, "deadline").await;
    let mut files = Files::new();
    for i in 0..600 {
        files.insert(format!("d/{i:04}"), content("d", i, 64));
    }
    for (k, b) in &files {
        put(&stack.s3, &src, k, b).await;
    }
    let mut config = stack.config(DbConfig::Unset);
    config.media.source = Some(MediaSource::S3 { bucket: src.clone(), prefix: "uploads/".into() });
    let app = stack.app(config);

    // A 1.2 s Lambda: the run stops starting copies 0.3 s before its end.
    let deadline = Instant::now() + Duration::from_millis(1200);
    let cut = run::execute::<MediaSync>(&app, &json!({"concurrency": 1}), Some(deadline)).await;

    assert_eq!(cut.status, Status::Failed, "{}", serde_json::to_string_pretty(&cut).unwrap());
    assert!(cut.record_key.is_some(), "the run record was written");
    let copied = cut.outputs["copied"].as_u64().unwrap();
    let remaining = cut.outputs["remaining"].as_u64().unwrap();
    // A copy still running at the hard stop is cancelled: a failed key, retried next run.
    let failed = cut.outputs["failed"].as_u64().unwrap();
    if copied > 0 {
        assert_eq!(copied + remaining + failed, 600, "{}", cut.outputs);
        assert!(cut.error.as_deref().unwrap().contains("left for the next run"), "{:?}", cut.error);
    }
    let finish = run::execute::<MediaSync>(&app, &json!({}), None).await;
    assert_ok(&finish);
    assert_eq!(finish.outputs["copied"].as_u64().unwrap(), 600 - copied, "the next run copies only the rest");
    assert_eq!(bucket_contents(&stack.s3, &stack.bucket, "backstop/media/current/").await.unwrap(), files);
}

#[tokio::test]
async fn archive_mode_writes_one_tarball_that_tar_extracts() {
    let stack = Stack::new("media-archive").await.unwrap();
    let src = media_bucket(&stack.s3, "archive").await;
    let mut files = Files::new();
    let long = format!("deep/{}/name-longer-than-a-ustar-header-holds.jpg", "segment".repeat(20));
    for k in ["avatars/alice.png", "docs/invoice #12?.pdf", "ünïcødé/ファイル.jpg", "empty", long.as_str()]
    {
        files.insert(k.to_owned(), content(k, 1, if k == "empty" { 0 } else { 7000 }));
    }
    files.insert("big.bin".into(), content("big", 1, 6 * 1024 * 1024 + 3));
    for (k, b) in &files {
        put(&stack.s3, &src, k, b).await;
    }
    let source = MediaSource::S3 { bucket: src.clone(), prefix: "uploads/".into() };

    let dry = sync(&stack, source.clone(), |_| {}, json!({"mode": "archive", "dry_run": true})).await;
    assert_ok(&dry);
    assert_eq!(dry.outputs["plan"]["new"], files.len() as u64);
    let record = sync(&stack, source, |_| {}, json!({"mode": "archive"})).await;

    assert_ok(&record);
    let archive = &record.outputs["archive"];
    assert_eq!(archive["objects"], files.len() as u64);
    let key = archive["key"].as_str().unwrap();
    assert!(key.starts_with("backstop/media/archives/") && key.ends_with(".tar.zst"), "{key}");
    let stored = stack.get(key).await.unwrap();
    assert_eq!(backstop_tests::sha256_hex(&stored), archive["sha256"].as_str().unwrap());
    let dir = std::env::temp_dir().join(format!("bk-media-untar-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("media.tar.zst"), &stored).unwrap();
    let out = std::process::Command::new("tar")
        .args(["--zstd", "-xf", "media.tar.zst", "--one-top-level=x"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dir_contents(&dir.join("x")).unwrap(), files, "tar --zstd -x gives the source back");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn without_a_readable_snapshot_the_mirror_is_listed_instead() {
    let stack = Stack::new("media-fallback").await.unwrap();
    let src = media_bucket(&stack.s3, "fallback").await;
    for i in 0..20 {
        put(&stack.s3, &src, &format!("f{i:02}"), &content("f", i, 300)).await;
    }
    let source = MediaSource::S3 { bucket: src.clone(), prefix: "uploads/".into() };
    let first = sync(&stack, source.clone(), |_| {}, json!({})).await;
    assert_ok(&first);
    // The snapshot is damaged (its summary says it exists).
    let snapshot = first.outputs["snapshot_key"].as_str().unwrap();
    stack
        .s3
        .put_object()
        .bucket(&stack.bucket)
        .key(snapshot)
        .body(b"not zstd".to_vec().into())
        .send()
        .await
        .unwrap();
    put(&stack.s3, &src, "f00", &content("f", 100, 300)).await;

    let second = sync(&stack, source, |_| {}, json!({})).await;

    assert_ok(&second);
    assert_eq!(second.outputs["plan"]["previous"], "mirror listing");
    assert_eq!(second.outputs["plan"]["unchanged"], 19, "server-side copies keep the source's ETag");
    assert_eq!(second.outputs["plan"]["modified"], 1);
    assert_eq!(second.outputs["copied"], 1);
}

#[tokio::test]
async fn an_object_replaced_between_listing_and_copy_is_a_failed_key_never_a_false_entry() {
    use backstop_core::StoreKind;
    use backstop_core::store::faulty::{Fault, FaultyStore, Op};
    // GIVEN a synced source, then an object replaced (same size, new bytes)
    let stack = Stack::new("media-race").await.unwrap();
    let src = media_bucket(&stack.s3, "race").await;
    put_key(&stack.s3, &src, "uploads/logo.png", b"version 1").await;
    let source = MediaSource::S3 { bucket: src.clone(), prefix: "uploads/".into() };
    let mut config = stack.config(DbConfig::Unset);
    config.media.source = Some(source);
    config.media.s3.force_path_style = true;
    let mut app = stack.app(config);
    assert_ok(&run::execute::<MediaSync>(&app, &json!({}), None).await);
    put_key(&stack.s3, &src, "uploads/logo.png", b"version 2").await;

    // WHEN the application writes it once more while the server-side copy is on its way
    let faulty = std::sync::Arc::new(FaultyStore::new(app.store.clone()));
    let (sdk, bucket) = (stack.sdk.clone(), src.clone());
    faulty.fail(Fault::new(Op::Copy, "uploads/logo.png", StoreKind::Other).times(0).before(move |_| {
        let (sdk, bucket) = (sdk.clone(), bucket.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let s3 = aws_sdk_s3::Client::from_conf(
                    aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build(),
                );
                put_key(&s3, &bucket, "uploads/logo.png", b"version 3").await;
            })
        })
        .join()
        .unwrap();
    }));
    app.store = faulty.clone();
    let raced = run::execute::<MediaSync>(&app, &json!({}), None).await;

    // THEN the key fails as changed during the run, and the snapshot still restores the
    // version it names (version 1), not the bytes now in `current`
    assert_eq!(raced.status, Status::Failed, "{}", serde_json::to_string_pretty(&raced).unwrap());
    assert!(raced.error.as_deref().unwrap().contains("changed during the run"), "{:?}", raced.error);
    let (files, _) = restore_to_dir(&stack, SnapshotChoice::Latest).await;
    assert_eq!(files.get("logo.png").map(Vec::as_slice), Some(&b"version 1"[..]));

    // AND the next run, with the source at rest, copies the newest version
    faulty.heal();
    assert_ok(&run::execute::<MediaSync>(&app, &json!({}), None).await);
    let (files, _) = restore_to_dir(&stack, SnapshotChoice::Latest).await;
    assert_eq!(files.get("logo.png").map(Vec::as_slice), Some(&b"version 3"[..]));
}

#[tokio::test]
async fn two_media_syncs_at_once_one_runs_and_every_snapshot_restores_what_it_names() {
    // GIVEN a directory source of 600 files, synced once, then every file rewritten
    let stack = Stack::new("media-twice").await.unwrap();
    let dir = std::env::temp_dir().join(format!("bk-media-twice-{}", uuid::Uuid::new_v4()));
    let write = |version: u32| {
        let mut files = Files::new();
        for i in 0..600 {
            let k = format!("up/{:02}/{i:04}.jpg", i % 20);
            let b = content(&k, version, 200 + i as usize);
            let p = dir.join(&k);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, &b).unwrap();
            files.insert(k, b);
        }
        files
    };
    let v1 = write(1);
    let source = MediaSource::Local { root: dir.clone() };
    assert_ok(&sync(&stack, source.clone(), |_| {}, json!({})).await);
    let v2 = write(2);

    // WHEN the schedule fires twice (EventBridge delivers at least once)
    let all_changed = json!({"max_delete_fraction": 1.0});
    let (a, b) = tokio::join!(
        sync(&stack, source.clone(), |_| {}, all_changed.clone()),
        sync(&stack, source.clone(), |_| {}, all_changed.clone())
    );

    // THEN at most one ran; the other did nothing and says why
    let succeeded = [&a, &b].iter().filter(|r| r.status == Status::Succeeded).count();
    assert!(succeeded >= 1, "{:?} {:?}", a.error, b.error);
    for r in [&a, &b].into_iter().filter(|r| r.status != Status::Succeeded) {
        let error = r.error.as_deref().unwrap();
        assert!(error.contains("another media-sync") && error.contains("lease"), "{error}");
        assert_eq!(r.retryable, Some(true));
    }
    // AND every snapshot restores exactly the files it names
    let summaries = backstop_core::media::list_summaries(
        stack.app(stack.config(DbConfig::Unset)).store.as_ref(),
        "backstop/",
    )
    .await
    .unwrap();
    assert_eq!(summaries.len(), 1 + succeeded);
    for (i, s) in summaries.iter().enumerate() {
        let (files, report) = restore_to_dir(&stack, SnapshotChoice::Key(s.snapshot_key.clone())).await;
        assert_eq!(files, if i == 0 { v1.clone() } else { v2.clone() }, "snapshot {i}: {report}");
    }
    // AND the lease is given back: the next run goes
    assert_ok(&sync(&stack, source, |_| {}, json!({})).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_source_that_empties_between_the_count_and_the_copy_does_not_empty_the_mirror() {
    use backstop_core::StoreKind;
    use backstop_core::app::StoreLayer;
    use backstop_core::store::faulty::{Fault, FaultyStore, Op};
    // GIVEN a directory source of 100 files, synced, then one file changed
    let stack = Stack::new("media-vanish").await.unwrap();
    let dir = std::env::temp_dir().join(format!("bk-media-vanish-{}", uuid::Uuid::new_v4()));
    let mut files = Files::new();
    for i in 0..100 {
        let k = format!("f/{i:03}.png");
        let b = content(&k, 1, 300);
        std::fs::create_dir_all(dir.join("f")).unwrap();
        std::fs::write(dir.join(&k), &b).unwrap();
        files.insert(k, b);
    }
    let source = MediaSource::Local { root: dir.clone() };
    let first = sync(&stack, source.clone(), |_| {}, json!({})).await;
    assert_ok(&first);
    std::fs::write(dir.join("f/000.png"), content("f/000.png", 2, 310)).unwrap();

    // WHEN the source's mount goes away after the run counted one change, before it copies
    let mut config = stack.config(DbConfig::Unset);
    config.media.source = Some(source);
    let mut app = stack.app(config);
    let listings = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gone = dir.clone();
    app.source_layer = Some(StoreLayer(std::sync::Arc::new(move |inner| {
        let faulty = FaultyStore::new(inner);
        let (listings, gone) = (listings.clone(), gone.clone());
        faulty.fail(Fault::new(Op::List, "", StoreKind::Other).times(0).before(move |_| {
            // The second listing is pass 2's.
            if listings.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                let _ = std::fs::remove_dir_all(gone.join("f"));
            }
        }));
        std::sync::Arc::new(faulty)
    })));
    let record = run::execute::<MediaSync>(&app, &json!({}), None).await;

    // THEN the run stops on the guard, and the last snapshot still restores every file
    assert_eq!(record.status, Status::Failed, "{}", serde_json::to_string_pretty(&record).unwrap());
    let error = record.error.as_deref().unwrap();
    assert!(error.contains("source changed while the run went on"), "{error}");
    let mirror = bucket_contents(&stack.s3, &stack.bucket, "backstop/media/current/").await.unwrap();
    assert!(mirror.len() >= 100 - 11, "the mirror kept {} of 100", mirror.len());
    let (restored, report) =
        restore_to_dir(&stack, SnapshotChoice::Key(first.outputs["snapshot_key"].as_str().unwrap().into()))
            .await;
    assert_eq!(restored, files, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_same_size_corruption_of_a_directory_sources_mirror_copy_fails_its_restore() {
    // GIVEN a directory source synced once (its snapshot records each file's MD5)
    let stack = Stack::new("media-md5").await.unwrap();
    let dir = std::env::temp_dir().join(format!("bk-media-md5-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.jpg"), content("a.jpg", 1, 2000)).unwrap();
    std::fs::write(dir.join("b.jpg"), content("b.jpg", 1, 2000)).unwrap();
    let first = sync(&stack, MediaSource::Local { root: dir.clone() }, |_| {}, json!({})).await;
    assert_ok(&first);
    // WHEN the mirror copy of a.jpg rots into other bytes of the same size
    put_key(&stack.s3, &stack.bucket, "backstop/media/current/a.jpg", &content("a.jpg", 9, 2000)).await;
    // THEN media-restore refuses it, naming the key and the MD5
    let app = stack.app(stack.config(DbConfig::Unset));
    let target = std::env::temp_dir().join(format!("bk-media-md5-back-{}", uuid::Uuid::new_v4()));
    let request = MediaRestoreRequest {
        snapshot: SnapshotChoice::Latest,
        to: MediaTarget::Dir(target.clone()),
        include: vec![],
        dry_run: false,
        force: false,
        concurrency: 2,
    };
    let err = media_restore(&app, &request).await.unwrap_err().to_string();
    assert!(err.contains("a.jpg") && err.contains("MD5"), "{err}");
    let _ = (std::fs::remove_dir_all(&dir), std::fs::remove_dir_all(&target));
}

#[tokio::test]
async fn a_check_finds_a_mirror_copy_lost_in_the_backup_store() {
    // GIVEN two synced runs (so one version lives in the trash)
    let stack = Stack::new("media-check").await.unwrap();
    let src = media_bucket(&stack.s3, "check").await;
    for (k, v) in [("a.png", 1), ("b.png", 1), ("c.png", 1)] {
        put_key(&stack.s3, &src, &format!("up/{k}"), &content(k, v, 500)).await;
    }
    let source = MediaSource::S3 { bucket: src.clone(), prefix: "up/".into() };
    assert_ok(&sync(&stack, source.clone(), |_| {}, json!({})).await);
    put_key(&stack.s3, &src, "up/a.png", &content("a.png", 2, 600)).await;
    assert_ok(&sync(&stack, source.clone(), |_| {}, json!({})).await);
    // WHEN nothing is lost, a check passes, hashing every object
    let check = sync(&stack, source.clone(), |_| {}, json!({"mode": "check", "rehash_every": 1})).await;
    assert_ok(&check);
    assert_eq!((check.outputs["checked"].as_u64(), check.outputs["rehashed"].as_u64()), (Some(3), Some(3)));
    // WHEN a lifecycle rule or an operator removes one mirror copy and another rots
    stack.s3.delete_object().bucket(&stack.bucket).key("backstop/media/current/b.png").send().await.unwrap();
    let rotted = content("c.png", 9, 500);
    stack
        .s3
        .put_object()
        .bucket(&stack.bucket)
        .key("backstop/media/current/c.png")
        .body(rotted.into())
        .send()
        .await
        .unwrap();
    // THEN the check fails, naming both, and it is published as any failure
    let check = sync(&stack, source, |_| {}, json!({"mode": "check", "rehash_every": 1})).await;
    assert_eq!(check.status, Status::Failed, "{}", serde_json::to_string_pretty(&check).unwrap());
    assert_eq!(check.outputs["missing"], json!(["b.png"]));
    assert_eq!(check.outputs["differing"], json!(["c.png"]));
    assert!(check.error.as_deref().unwrap().contains("missing from the mirror"));
    assert!(check.published.is_some());
}
