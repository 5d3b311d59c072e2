//! The functions through the real Lambda runtime: `cargo lambda watch` (started by
//! `scripts/stack.sh up`) runs the db-backup binary with the environment Terraform would set,
//! and these tests call its Invoke API as `aws lambda invoke` does.

use std::time::Duration;

use backstop_tests::{TestDb, invoke, lambda_env, receive, sdk, subscribe_queue};
use serde_json::json;

/// A queue of this test's own on the functions' topic, to see their published outcomes.
async fn outcomes_queue(label: &str) -> (aws_sdk_sqs::Client, String) {
    let env = lambda_env().unwrap();
    let sdk = sdk().await.unwrap();
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("bk-lambda-{label}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let url = subscribe_queue(&sns, &sqs, &env["BACKSTOP_SNS_TOPIC_ARN"], &name).await.unwrap();
    (sqs, url)
}

async fn object_exists(key: &str) -> bool {
    let env = lambda_env().unwrap();
    let sdk = sdk().await.unwrap();
    let s3 =
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    s3.head_object().bucket(&env["BACKSTOP_BUCKET"]).key(key).send().await.is_ok()
}

#[tokio::test]
async fn scheduled_event_backs_up_the_secrets_database() {
    let (sqs, queue) = outcomes_queue("schedule").await;
    let event = json!({
        "version": "0", "id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-23T03:00:00Z",
        "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/backstop-nightly"],
        "detail": {}
    });

    let answer = invoke("db-backup", &event).await.unwrap();

    assert!(!answer.function_error, "{answer:?}");
    let record = &answer.body;
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["trigger"]["kind"], "schedule");
    assert_eq!(record["trigger"]["rule"], "arn:aws:events:us-east-1:123456789012:rule/backstop-nightly");
    let db = &record["outputs"]["databases"][0];
    assert_eq!(db["database"], "backstop_demo", "the secret's database");
    assert_eq!(db["engine"], "native");
    assert!(object_exists(&format!("{}/pre-data.sql.zst", db["key"].as_str().unwrap())).await);
    assert!(object_exists(db["manifest_key"].as_str().unwrap()).await);
    let run_id = record["run_id"].clone();
    let got =
        receive(&sqs, &queue, 1, Duration::from_secs(10), |o| o.record["run_id"] == run_id).await.unwrap();
    assert_eq!(got.len(), 1, "the outcome reached SQS through SNS");
    assert!(
        got[0].subject.starts_with("[Backstop] db-backup succeeded: backstop_demo (local), "),
        "{}",
        got[0].subject
    );
}

#[tokio::test]
async fn manual_payload_chooses_database_and_compression() {
    let db = TestDb::create("lambda").await.unwrap();
    db.psql(b"create table t (id int primary key, v text); insert into t select g, 'v' || g from generate_series(1, 1000) g;")
        .await
        .unwrap();

    let answer =
        invoke("db-backup", &json!({ "databases": [db.name], "compression": "gzip", "tag": "manual" }))
            .await
            .unwrap();

    assert!(!answer.function_error, "{answer:?}");
    let out = &answer.body["outputs"]["databases"][0];
    assert_eq!(out["database"], db.name.as_str());
    let key = out["key"].as_str().unwrap();
    assert!(object_exists(&format!("{key}/pre-data.sql.gz")).await, "{key}");
    assert!(object_exists(&format!("{key}/post-data.sql.gz")).await);
    assert!(object_exists(&format!("{key}.manifest.json")).await);
}

#[tokio::test]
async fn bad_payload_is_a_function_error_and_is_published() {
    let (sqs, queue) = outcomes_queue("bad").await;

    let answer = invoke("db-backup", &json!({ "databasez": ["x"] })).await.unwrap();

    // AWS: 200 with X-Amz-Function-Error; the emulator: 500 with the error body. Either is a failure.
    assert!(answer.function_error, "{answer:?}");
    let text = answer.body.to_string();
    assert!(text.contains("databasez"), "the error names the field: {text}");
    let got = receive(&sqs, &queue, 1, Duration::from_secs(10), |o| {
        o.record["error"].as_str().is_some_and(|e| e.contains("databasez"))
    })
    .await
    .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attributes["status"]["Value"], "failed");
}

#[tokio::test]
async fn media_sync_copies_the_media_bucket_and_publishes() {
    // The stack's media bucket (BACKSTOP_MEDIA_SOURCE) holds a few uploads under uploads/.
    let (sqs, queue) = outcomes_queue("media").await;

    let answer = invoke("media-sync", &json!({})).await.unwrap();

    assert!(!answer.function_error, "{answer:?}");
    let record = &answer.body;
    assert_eq!(record["job"], "media-sync");
    assert_eq!(record["outputs"]["server_side"], true, "same endpoint and credentials: server-side copies");
    assert!(record["outputs"]["objects"].as_u64().unwrap() >= 3, "{record}");
    assert!(object_exists("backstop/media/current/avatars/bob smith.png").await);
    assert!(object_exists(record["outputs"]["summary_key"].as_str().unwrap()).await);
    let run_id = record["run_id"].clone();
    let got =
        receive(&sqs, &queue, 1, Duration::from_secs(10), |o| o.record["run_id"] == run_id).await.unwrap();
    assert_eq!(got.len(), 1, "the outcome reached SQS through SNS");
    assert!(
        got[0].subject.starts_with("[Backstop] media-sync succeeded: s3://backstop-local-media/uploads/"),
        "{}",
        got[0].subject
    );
}

#[tokio::test]
async fn retention_prune_dry_run_plans_from_backstop_retention() {
    // BACKSTOP_RETENTION (set by the stack as Terraform would) supplies the policy.
    let answer = invoke("retention-prune", &json!({"dry_run": true})).await.unwrap();

    assert!(!answer.function_error, "{answer:?}");
    let record = &answer.body;
    assert_eq!(record["job"], "retention-prune");
    assert_eq!(record["dry_run"], true);
    assert_eq!(record["outputs"]["timezone"], "UTC");
    assert!(record["record_key"].is_null(), "a dry run writes nothing");
}
