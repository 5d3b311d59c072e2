//! db-backup over the real components: PostgreSQL, moto's S3/SNS/SQS/Secrets Manager, pg_dump.

use std::time::Duration;

use backstop_core::backup::{DbBackup, Manifest};
use backstop_core::config::DbConfig;
use backstop_core::run::{self, RunRecord, Status};
use backstop_tests::{FakePgDump, Stack, TestDb, fingerprint, stored_sql};
use serde_json::{Value, json};

/// Values that break naive dump or restore code.
const TRICKY: &str = r#"
create table "Mixed Case" (id int primary key, "select" text, payload bytea, f float8, n numeric);
insert into "Mixed Case" values
  (1, E'tab\there', '\x00ff10', 'NaN', 'NaN'),
  (2, E'line1\nline2\n\\.\nafter', '\x', 'Infinity', '1e-20'),
  (3, E'back\\slash and "quotes" and ''single''', null, '-Infinity', null),
  (4, 'ünïcödé ✓ 日本', decode(repeat('ab', 5000), 'hex'), 0.1, 12345678901234567890.123);
create table orders (id bigserial primary key, customer text not null, total numeric(12,2), created timestamptz default now());
insert into orders (customer, total, created)
  select 'customer ' || g, g * 1.5, '2026-01-01'::timestamptz + g * interval '1 minute' from generate_series(1, 20000) g;
create view big_orders as select * from orders where total > 1000;
"#;

/// Restores the stored dump into a fresh database and compares table contents.
async fn assert_restores(stack: &Stack, source: &TestDb, manifest: &Manifest) {
    // Every object matches the manifest (size, SHA-256) and the parts concatenate to SQL.
    let sql = stored_sql(stack, manifest).await.unwrap();
    assert_eq!(sql.len() as u64, manifest.uncompressed_bytes);

    let target = TestDb::create("restored").await.unwrap();
    target.psql(&sql).await.expect("the dump restores with psql -v ON_ERROR_STOP=1");
    let (a, b) = (
        fingerprint(&source.client().await.unwrap()).await.unwrap(),
        fingerprint(&target.client().await.unwrap()).await.unwrap(),
    );
    assert!(!a.is_empty());
    assert_eq!(a, b, "restored tables equal the source, row for row");
}

#[tokio::test]
async fn zstd_backup_restores_with_equal_content_and_publishes_success() {
    // GIVEN a database with awkward identifiers and values, and a stack with a subscribed queue
    let stack = Stack::new("zstd").await.unwrap();
    let db = TestDb::create("zstd").await.unwrap();
    db.psql(TRICKY.as_bytes()).await.unwrap();

    // WHEN db-backup runs with a manual payload
    let record = stack.backup(&db, json!({ "tag": "manual", "engine": "pg_dump" })).await;

    // THEN it succeeded, wrote dump, manifest and run record, and the dump restores exactly
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let (key, manifest) = stack.manifest_of(&record).await.unwrap();
    assert!(key.starts_with(&format!("backstop/db/{}/", db.name)) && key.ends_with(".sql.zst"), "{key}");
    assert_eq!(manifest.tag.as_deref(), Some("manual"));
    assert_eq!(manifest.engine.name, "pg_dump");
    assert!(manifest.tables.iter().any(|t| t.name == "Mixed Case"));
    let keys = stack.keys().await.unwrap();
    assert!(keys.contains(&key) && keys.contains(&format!("{key}.manifest.json")));
    assert!(keys.contains(record.record_key.as_ref().unwrap()));
    let stored: RunRecord =
        serde_json::from_slice(&stack.get(record.record_key.as_ref().unwrap()).await.unwrap()).unwrap();
    assert_eq!(stored.run_id, record.run_id);
    assert_restores(&stack, &db, &manifest).await;
    // Every zstd frame carries its content checksum (Frame_Header_Descriptor bit 2).
    let stored = stack.get(&key).await.unwrap();
    assert_eq!(&stored[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    assert_ne!(stored[4] & 0b100, 0, "the frame has a content checksum");

    // AND the outcome reached the SQS queue subscribed to the topic, filterable by attributes
    let outcomes = stack.outcomes(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    let o = &outcomes[0];
    assert!(
        o.subject.starts_with(&format!("[Backstop] db-backup succeeded: {} (test), ", db.name)),
        "{}",
        o.subject
    );
    assert_eq!(o.record["run_id"], record.run_id);
    assert_eq!(o.attributes["status"]["Value"], "succeeded");
    assert_eq!(o.attributes["job"]["Value"], "db-backup");
    assert_eq!(o.attributes["env"]["Value"], "test");
}

#[tokio::test]
async fn gzip_backup_in_several_parts_restores() {
    // GIVEN ~25 MB of poorly compressible rows and 5 MiB parts, so the upload has several parts
    let stack = Stack::new("gzip").await.unwrap();
    let db = TestDb::create("gzip").await.unwrap();
    db.psql(
        b"create table blobs (id int primary key, body text);
              insert into blobs select g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text)
              from generate_series(1, 250000) g;",
    )
    .await
    .unwrap();
    let mut config = stack.config(DbConfig::Url(db.url.clone()));
    config.s3.part_size = 5 * 1024 * 1024;
    let app = stack.app(config);

    let payload = json!({ "compression": "gzip", "compression_level": 1, "layout": "single" });
    let record = run::execute::<DbBackup>(&app, &payload, None).await;

    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let (key, manifest) = stack.manifest_of(&record).await.unwrap();
    assert!(key.ends_with(".sql.gz"));
    assert!(
        manifest.objects[0].parts >= 2,
        "expected a multipart upload, got {} part(s)",
        manifest.objects[0].parts
    );
    assert_restores(&stack, &db, &manifest).await;
}

#[tokio::test]
async fn credentials_come_from_secrets_manager_and_bad_secrets_fail_clearly() {
    let stack = Stack::new("secret").await.unwrap();
    let db = TestDb::create("secret").await.unwrap();
    db.psql(b"create table t (id int primary key); insert into t values (1), (2);").await.unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let good = format!("backstop/test/{}", db.name);
    let secret = json!({"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": "postgres",
                        "password": "s3cr3t-never-shown", "dbname": db.name});
    sm.create_secret().name(&good).secret_string(secret.to_string()).send().await.unwrap();
    let broken = format!("backstop/test/{}-broken", db.name);
    sm.create_secret()
        .name(&broken)
        .secret_string(r#"{"username":"postgres","password":"s3cr3t-never-shown"}"#)
        .send()
        .await
        .unwrap();

    // A good secret: the backup of the secret's database succeeds.
    let app = stack.app(stack.config(DbConfig::Secret { secret_id: good, endpoint: Default::default() }));
    let record = run::execute::<DbBackup>(&app, &Value::Null, None).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    assert_eq!(record.outputs["databases"][0]["database"], db.name.as_str());

    // A missing secret and a malformed one: failures naming the secret (and the field).
    for (secret_id, expected) in [
        (format!("backstop/test/{}-missing", db.name), "does not exist".to_owned()),
        (broken.clone(), "\"host\"".to_owned()),
    ] {
        let app = stack.app(
            stack.config(DbConfig::Secret { secret_id: secret_id.clone(), endpoint: Default::default() }),
        );
        let record = run::execute::<DbBackup>(&app, &Value::Null, None).await;
        assert_eq!(record.status, Status::Failed);
        let error = record.error.clone().unwrap();
        assert!(error.contains(&secret_id) && error.contains(&expected), "{error}");
        assert!(!serde_json::to_string(&record).unwrap().contains("s3cr3t"), "secret values never appear");
    }

    // The shape RDS stores for manage_master_user_password (username and password only), with
    // the endpoint from BACKSTOP_DB_HOST/PORT/NAME as the module sets them: the backup runs.
    let endpoint = backstop_core::config::SecretEndpoint {
        host: Some("127.0.0.1".into()),
        port: Some(5432),
        dbname: Some(db.name.clone()),
    };
    let app = stack.app(stack.config(DbConfig::Secret { secret_id: broken.clone(), endpoint }));
    let record = run::execute::<DbBackup>(&app, &Value::Null, None).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    assert_eq!(record.outputs["databases"][0]["database"], db.name.as_str());
    let outcomes = stack.outcomes(3, Duration::from_secs(10)).await.unwrap();
    let failed: Vec<_> = outcomes.iter().filter(|o| o.attributes["status"]["Value"] == "failed").collect();
    assert_eq!(failed.len(), 2, "both failures were published");
    assert!(failed.iter().all(|o| o.subject.contains("db-backup FAILED") && !o.subject.contains("s3cr3t")));
}

#[tokio::test]
async fn bad_payloads_are_rejected_before_any_work() {
    let stack = Stack::new("payload").await.unwrap();
    let db = TestDb::create("payload").await.unwrap();
    let cases = [
        (json!({ "databse": ["x"] }), "databse"),
        (json!({ "schema_only": "yes" }), "schema_only"),
        (json!({ "compression": "lz4" }), "compression"),
        (json!({ "compression": "gzip", "compression_level": 12 }), "compression_level"),
        (json!({ "engine": "native-ish" }), "engine"),
        (json!(["not", "an", "object"]), "array"),
    ];
    for (payload, field) in &cases {
        let record = stack.backup(&db, payload.clone()).await;
        assert_eq!(record.status, Status::Failed, "{payload}");
        let error = record.error.unwrap();
        assert!(error.contains(field), "error for {payload} should name {field}: {error}");
        assert_eq!(record.retryable, Some(false));
    }
    // Nothing but run records was written.
    let keys = stack.keys().await.unwrap();
    assert_eq!(keys.len(), cases.len());
    assert!(keys.iter().all(|k| k.starts_with("backstop/runs/db-backup/")), "{keys:?}");
}

#[tokio::test]
async fn dry_run_checks_everything_and_writes_nothing() {
    let stack = Stack::new("dry").await.unwrap();
    let db = TestDb::create("dry").await.unwrap();
    db.psql(b"create table t (id int primary key);").await.unwrap();

    let record = stack.backup(&db, json!({ "dry_run": true })).await;

    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    assert!(record.dry_run && record.record_key.is_none());
    let planned = record.outputs["databases"][0]["key"].as_str().unwrap();
    assert!(planned.starts_with(&format!("backstop/db/{}/", db.name)), "{planned}");
    assert!(stack.keys().await.unwrap().is_empty(), "a dry run writes nothing");
    assert_eq!(stack.outcomes(1, Duration::from_secs(10)).await.unwrap().len(), 1, "but says what it found");
}

/// A database of ~300 MB of rows (a dump of a few seconds) and an app with 5 MiB parts.
async fn large_backup_setup(label: &str) -> (Stack, TestDb, backstop_core::App) {
    let stack = Stack::new(label).await.unwrap();
    let db = TestDb::create(label).await.unwrap();
    db.psql(
        b"create table big (id int primary key, body text);
              insert into big select g, repeat(md5(g::text), 8) from generate_series(1, 1500000) g;",
    )
    .await
    .unwrap();
    let mut config = stack.config(DbConfig::Url(db.url.clone()));
    config.s3.part_size = 5 * 1024 * 1024;
    let app = stack.app(config);
    (stack, db, app)
}

#[tokio::test]
async fn pg_dump_killed_mid_dump_fails_with_no_manifest_and_no_open_upload() {
    killed_mid_dump(
        "killpg",
        json!({ "compression_level": 1, "engine": "pg_dump" }),
        "backstop-pg_dump",
        "pg_dump",
    )
    .await;
}

#[tokio::test]
async fn native_worker_killed_mid_dump_fails_with_no_manifest_and_no_open_upload() {
    killed_mid_dump("killnat", json!({ "compression_level": 1, "jobs": 2 }), "backstop-native-%", "COPY")
        .await;
}

/// Terminates the dumping connection (`application_name like app_name`) while it streams COPY
/// data and checks that the run failed (its error mentioning `says`) and left nothing behind.
async fn killed_mid_dump(label: &str, payload: Value, app_name: &str, says: &str) {
    // GIVEN a database large enough that the dump takes a few seconds
    let (stack, db, app) = large_backup_setup(label).await;

    // WHEN another session terminates the dump's connection while it streams
    let killer_db = db.url.clone();
    let (name, app_name) = (db.name.clone(), app_name.to_owned());
    let killer = tokio::spawn(async move {
        let admin = backstop_tests::connect(&killer_db).await.unwrap();
        for _ in 0..1500 {
            let killed: i64 = admin
                .query_one(
                    "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
                     where application_name like $2 and datname = $1 and state = 'active'
                       and query like 'COPY%') k",
                    &[&name, &app_name],
                )
                .await
                .unwrap()
                .get(0);
            if killed > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    });
    let record = run::execute::<DbBackup>(&app, &payload, None).await;
    assert!(killer.await.unwrap(), "the killer found the dump's connection");

    // THEN the run failed, and nothing that looks like a backup remains
    assert_eq!(record.status, Status::Failed, "a cut dump must never be a success");
    let error = record.error.clone().unwrap();
    assert!(error.contains(says), "{error}");
    let keys = stack.keys().await.unwrap();
    assert!(keys.iter().all(|k| k.starts_with("backstop/runs/")), "only the run record remains: {keys:?}");
    assert_eq!(stack.open_uploads().await.unwrap(), 0, "the multipart upload was aborted");
    let outcomes = stack.outcomes(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(outcomes[0].attributes["status"]["Value"], "failed");
}

#[tokio::test]
async fn pg_dump_older_than_the_server_is_refused_up_front() {
    let stack = Stack::new("oldpg").await.unwrap();
    let db = TestDb::create("oldpg").await.unwrap();
    let fake = FakePgDump::new("oldpg", "pg_dump (PostgreSQL) 9.6.24").unwrap();
    let mut config = stack.config(DbConfig::Url(db.url.clone()));
    config.pg_dump = fake.path.clone();
    let record = run::execute::<DbBackup>(&stack.app(config), &json!({ "engine": "pg_dump" }), None).await;

    assert_eq!(record.status, Status::Failed);
    let error = record.error.unwrap();
    assert!(error.contains("pg_dump 9 is older than the server"), "{error}");
    assert_eq!(record.retryable, Some(false), "retrying cannot help until pg_dump is upgraded");
    assert!(stack.keys().await.unwrap().iter().all(|k| k.starts_with("backstop/runs/")));
}

#[tokio::test]
async fn tls_require_encrypts_the_connection_and_verify_full_checks_the_certificate() {
    use backstop_core::config::SslMode;
    let stack = Stack::new("tls").await.unwrap();
    let db = TestDb::create("tls").await.unwrap();
    let ssl: String = db.client().await.unwrap().query_one("show ssl", &[]).await.unwrap().get(0);
    if ssl != "on" {
        eprintln!("SKIPPED: this PostgreSQL has ssl = off, so TLS cannot be tested here");
        return;
    }
    db.psql(b"create table t (id int primary key); insert into t values (1);").await.unwrap();

    let mut config = stack.config(DbConfig::Url(db.url.clone()));
    config.db_tls.mode = SslMode::Require;
    let app = stack.app(config.clone());
    let (client, _) = app.db.connect(None, "tls-test").await.unwrap();
    let encrypted: bool = client
        .query_one("select ssl from pg_stat_ssl where pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "sslmode=require encrypts the connection");
    let record = run::execute::<DbBackup>(&app, &Value::Null, None).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);

    // The local server's self-signed certificate is not trusted: verify-full must refuse it.
    config.db_tls.mode = SslMode::VerifyFull;
    let app = stack.app(config);
    let err = app.db.connect(None, "tls-test").await.unwrap_err().report();
    assert!(err.contains("connect") && err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn the_lambda_deadline_aborts_the_upload_and_fails_the_run() {
    // GIVEN a dump that takes longer than the time left before the (simulated) Lambda deadline
    let (stack, _db, app) = large_backup_setup("deadline").await;

    let deadline = std::time::Instant::now() + Duration::from_millis(1200);
    let record = run::execute::<DbBackup>(&app, &json!({ "compression_level": 19 }), Some(deadline)).await;

    // THEN it stopped in time, as a failure, leaving no backup and no open upload
    assert_eq!(record.status, Status::Failed);
    let error = record.error.clone().unwrap();
    assert!(error.contains("before the Lambda deadline"), "{error}");
    assert!(std::time::Instant::now() < deadline + Duration::from_secs(5));
    // No manifest: no backup. (The sweep has what a 1.2 s run leaves before its record, ~0.15 s;
    // on a loaded machine a request already sent can land after it: such an object has no
    // manifest, and retention-prune removes it after a day.)
    let keys = stack.keys().await.unwrap();
    assert!(keys.iter().all(|k| !k.ends_with(".manifest.json")), "{keys:?}");
    assert_eq!(stack.open_uploads().await.unwrap(), 0);
}

#[tokio::test]
async fn a_set_of_many_parts_stopped_by_the_deadline_is_swept_and_recorded_in_time() {
    // GIVEN a large table still dumping (one worker) when the deadline comes, and 600 small
    // tables whose parts the other worker stores meanwhile
    let (stack, db, app) = large_backup_setup("deadlinemany").await;
    db.psql(b"do $$ begin for i in 1..600 loop execute format('create table small_%s (id int); insert into small_%s values (1)', i, i); end loop; end $$;")
        .await
        .unwrap();

    let from = backstop_tests::moto_log_len();
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    let record = run::execute::<DbBackup>(
        &app,
        &json!({ "compression_level": 19, "jobs": 2, "split_mb": 100000 }),
        Some(deadline),
    )
    .await;

    // THEN the parts were removed in batches and the run was recorded before the deadline
    assert!(std::time::Instant::now() < deadline, "recorded and published before the deadline");
    assert_eq!(record.status, Status::Failed);
    assert!(record.error.clone().unwrap().contains("before the Lambda deadline"), "{:?}", record.error);
    assert!(record.record_key.is_some(), "the run record was written");
    let keys = stack.keys().await.unwrap();
    assert!(keys.iter().all(|k| k.starts_with("backstop/runs/")), "{} objects left", keys.len());
    assert_eq!(stack.open_uploads().await.unwrap(), 0);
    // AND the small tables' parts had been stored, and went in DeleteObjects batches
    if let Some(requests) = backstop_tests::moto_requests(&stack.bucket, from) {
        let puts = requests.iter().filter(|r| r.starts_with("PUT ") && r.contains("/data-")).count();
        let batches = requests.iter().filter(|r| r.starts_with("POST ") && r.contains("?delete")).count();
        // How many depends on the machine's speed (19 in a loaded CI run, 100s on a quiet one);
        // enough that one request per object would show.
        assert!(puts >= 5, "{puts} parts stored before the deadline");
        assert!((1..=puts.div_ceil(1000) + 1).contains(&batches), "{batches} DeleteObjects for {puts} parts");
    }
}

#[tokio::test]
async fn an_outcome_sns_refuses_is_kept_in_the_run_record_and_the_status_stands() {
    // GIVEN a topic that does not exist (deleted, or a policy refusing the function)
    let stack = Stack::new("snsdown").await.unwrap();
    let db = TestDb::create("snsdown").await.unwrap();
    db.psql(b"create table t (id int); insert into t values (1);").await.unwrap();
    let mut config = stack.config(DbConfig::Url(db.url.clone()));
    config.sns_topic_arn = Some(format!("{}-gone", stack.topic_arn));

    let record = run::execute::<DbBackup>(&stack.app(config), &Value::Null, None).await;

    // THEN the backup still succeeded, and the stored run record says the outcome was not published
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let key = record.record_key.clone().expect("the run record was written");
    let stored: Value = serde_json::from_slice(&stack.get(&key).await.unwrap()).unwrap();
    assert_eq!(stored["status"], "succeeded");
    let error = stored["published"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("-gone"), "the stored record names the topic it could not publish to: {stored}");
    assert!(stack.manifest_of(&record).await.is_ok(), "the backup itself is whole");
}

#[tokio::test]
async fn a_manifest_put_that_landed_but_answered_an_error_leaves_no_backup_behind() {
    use backstop_core::StoreKind;
    use backstop_core::store::faulty::{Fault, FaultyStore, Op};
    // GIVEN a store whose manifest PUT lands and then answers an error (the response lost)
    let stack = Stack::new("manifest-lost").await.unwrap();
    let db = TestDb::create("manifest_lost").await.unwrap();
    db.psql(b"create table t (id int primary key); insert into t select generate_series(1, 100);")
        .await
        .unwrap();
    let mut app = stack.app(stack.config(DbConfig::Url(db.url.clone())));
    let faulty = std::sync::Arc::new(FaultyStore::new(app.store.clone()));
    faulty.fail(Fault::new(Op::Put, ".manifest.json", StoreKind::Other).after_write());
    app.store = faulty;

    // WHEN db-backup runs
    let record = run::execute::<DbBackup>(&app, &json!({}), None).await;

    // THEN the run failed, and neither the manifest nor any part is left: no "newest backup"
    // without parts for retention to protect
    assert_eq!(record.status, Status::Failed, "{}", serde_json::to_string_pretty(&record).unwrap());
    let left: Vec<String> = stack.keys().await.unwrap().into_iter().filter(|k| k.contains("/db/")).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(stack.open_uploads().await.unwrap(), 0);
}
