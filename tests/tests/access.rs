//! Every job, run over the real components through stores that check each call against the
//! function's grants (`backstop_core::access`, the table the Terraform roles are tested
//! against): success paths, failure sweeps, deletes. A call outside the grants would be an
//! AccessDenied in AWS with the module's roles.

use std::sync::Arc;

use backstop_core::access::Side;
use backstop_core::backup::DbBackup;
use backstop_core::cleanup::NotificationCleanup;
use backstop_core::config::{DbConfig, MediaSource};
use backstop_core::media::MediaSync;
use backstop_core::retention::RetentionPrune;
use backstop_core::run::{self, Job, RunRecord, Status};
use backstop_core::{App, Config};
use backstop_tests::audit::{Audit, AuditStore};
use backstop_tests::{Stack, TestDb};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// `config`'s app with both its stores audited as function `J`.
fn audited<J: Job>(stack: &Stack, config: Config, audit: &Arc<Audit>) -> App {
    let mut app = stack.app(config);
    let prefix = app.config.prefix.clone();
    app.store = AuditStore::wrap(app.store.clone(), J::NAME, Side::Backup, &prefix, audit.clone());
    app.source_layer = Some(AuditStore::source_layer(J::NAME, audit.clone()));
    app
}

async fn run_as<J: Job>(
    stack: &Stack,
    config: Config,
    payload: Value,
    at: Timestamp,
) -> (RunRecord, Arc<Audit>) {
    let audit = Arc::new(Audit::default());
    let record = run::execute_at::<J>(&audited::<J>(stack, config, &audit), &payload, None, at).await;
    (record, audit)
}

fn assert_granted(what: &str, audit: &Audit) {
    let denied = audit.denied();
    assert!(denied.is_empty(), "{what} made calls its role does not allow:\n{}", denied.join("\n"));
    eprintln!("{what} used: {:?}", audit.used());
}

#[tokio::test]
async fn every_job_stays_inside_its_grants() {
    let stack = Stack::new("access").await.unwrap();
    let db = TestDb::create("access").await.unwrap();
    db.psql(
        b"create table notifications (id bigserial primary key, created_at timestamptz not null, read bool not null);
          insert into notifications (created_at, read)
            select now() - make_interval(days => g % 200), g % 2 = 0 from generate_series(1, 2000) g;
          create table big (id int primary key, v text);
          insert into big select g, repeat(md5(g::text), 40) from generate_series(1, 20000) g;",
    )
    .await
    .unwrap();
    let db_config = || stack.config(DbConfig::Url(db.url.clone()));
    let now = Timestamp::now();

    // db-backup: native sets split into parts, on three days; then a failing one (a database
    // that does not exist) and its sweep.
    for days in [2, 1, 0] {
        let at = now - SignedDuration::from_hours(24 * days);
        let (record, audit) = run_as::<DbBackup>(&stack, db_config(), json!({"split_mb": 1}), at).await;
        assert_eq!(record.status, Status::Succeeded, "{}", record.summary);
        assert_granted("db-backup", &audit);
    }
    let mut missing = db_config();
    missing.db = DbConfig::Url(backstop_tests::database_url("access_no_such_database"));
    let (record, audit) = run_as::<DbBackup>(&stack, missing, json!({}), now).await;
    assert_eq!(record.status, Status::Failed);
    assert_granted("db-backup (failed)", &audit);

    // notification-cleanup: a dry run and a real one.
    let rules = json!([{"table": "notifications", "older_than": "90d", "timestamp_column": "created_at",
                        "filter": [{"column": "read", "op": "=", "value": true}]}]);
    for dry_run in [true, false] {
        let payload = json!({"rules": rules, "dry_run": dry_run, "pause_ms": 0});
        let (record, audit) = run_as::<NotificationCleanup>(&stack, db_config(), payload, now).await;
        assert_eq!(record.status, Status::Succeeded, "{}", record.summary);
        assert_granted("notification-cleanup", &audit);
    }
    let c = db.client().await.unwrap();
    let left: i64 = c
        .query_one(
            "select count(*) from notifications where read and created_at < now() - interval '90 days'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the real run deleted the rows its rule names");

    // media-sync from a bucket on the same endpoint (server-side copies), twice with a change
    // and a deletion in between (trash).
    let media = format!("{}-media", stack.bucket);
    stack.s3.create_bucket().bucket(&media).send().await.unwrap();
    let put = |key: &'static str, body: &'static [u8]| {
        stack.s3.put_object().bucket(&media).key(format!("uploads/{key}")).body(body.to_vec().into()).send()
    };
    put("a.png", b"a").await.unwrap();
    put("b.png", b"b").await.unwrap();
    let media_config = || {
        let mut c = stack.config(DbConfig::Unset);
        c.media.source = Some(MediaSource::S3 { bucket: media.clone(), prefix: "uploads/".into() });
        c.media.s3.force_path_style = true;
        c
    };
    let (record, audit) = run_as::<MediaSync>(&stack, media_config(), json!({}), now).await;
    assert_eq!(record.status, Status::Succeeded, "{}", record.summary);
    assert_granted("media-sync", &audit);
    put("a.png", b"a, changed").await.unwrap();
    stack.s3.delete_object().bucket(&media).key("uploads/b.png").send().await.unwrap();
    let (record, audit) =
        run_as::<MediaSync>(&stack, media_config(), json!({"max_delete_fraction": 1.0}), now).await;
    assert_eq!(record.status, Status::Succeeded, "{}", record.summary);
    assert_granted("media-sync (changes)", &audit);

    // retention-prune: keep one backup; the others, old run records and trash go.
    let mut prune_config = stack.config(DbConfig::Unset);
    prune_config.media.source = None;
    let payload = json!({"policy": {"keep_last": 1}, "media": {"keep_last": 1}, "history_days": 1});
    let later = now + SignedDuration::from_hours(12);
    let (record, audit) = run_as::<RetentionPrune>(&stack, prune_config, payload, later).await;
    assert_eq!(record.status, Status::Succeeded, "{}", record.summary);
    assert!(
        record.outputs["databases"][0]["deleted"].as_u64().unwrap_or(0) >= 2,
        "the prune deleted backups: {}",
        record.outputs
    );
    assert_granted("retention-prune", &audit);
}
