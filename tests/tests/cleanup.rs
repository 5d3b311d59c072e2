//! notification-cleanup over a real PostgreSQL with a Django-like schema.

use std::time::Duration;

use backstop_core::cleanup::NotificationCleanup;
use backstop_core::config::DbConfig;
use backstop_core::run::{self, RunRecord, Status};
use backstop_tests::{Stack, TestDb, invoke};
use serde_json::{Value, json};

const SCHEMA: &str = r#"
create table auth_user (id bigserial primary key, username text not null, date_joined timestamptz not null);
create table notifications_notification (
    id bigserial primary key,
    recipient_id bigint not null references auth_user (id),
    read boolean not null,
    verb text not null,
    created_at timestamptz not null
);
create index on notifications_notification (created_at);
create table django_session (session_key varchar(40) primary key, session_data text, expire_date timestamptz not null);
create index on django_session (expire_date);
insert into auth_user (username, date_joined) select 'user' || g, now() - g * interval '1 day' from generate_series(1, 200) g;
insert into notifications_notification (recipient_id, read, verb, created_at)
  select 1 + g % 50, g % 3 <> 0, 'verb ' || g || ' ünï ''q''', now() - (g % 200) * interval '1 day' - interval '1 hour'
  from generate_series(1, 6000) g;
insert into django_session select md5(g::text), 'data', now() - (g % 10) * interval '1 day' + interval '1 hour'
  from generate_series(1, 1000) g;
"#;

/// A fresh stack and a database with the Django-like schema and its rows.
async fn django_db(label: &str) -> (Stack, TestDb) {
    let stack = Stack::new(label).await.unwrap();
    let db = TestDb::create(label).await.unwrap();
    db.psql(SCHEMA.as_bytes()).await.unwrap();
    (stack, db)
}

fn rules() -> Value {
    json!([
        {"table": "notifications_notification", "older_than": "90d", "timestamp_column": "created_at",
         "filter": [{"column": "read", "op": "=", "value": true}]},
        {"table": "public.django_session", "older_than": "1d", "timestamp_column": "expire_date"}
    ])
}

async fn cleanup(stack: &Stack, db: &TestDb, payload: Value) -> RunRecord {
    let app = stack.app(stack.config(DbConfig::Url(db.url.clone())));
    run::execute::<NotificationCleanup>(&app, &payload, None).await
}

/// A content hash of the rows a query returns.
async fn content(db: &TestDb, query: &str) -> (i64, String) {
    let c = db.client().await.unwrap();
    let row = c
        .query_one(&format!("select count(*), coalesce(md5(string_agg(x::text, '|' order by x::text)), '') from ({query}) x"), &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn dry_run_counts_what_a_real_run_then_deletes_and_nothing_else_goes() {
    // GIVEN notifications (read and unread, new and old) and sessions
    let (stack, db) = django_db("cleanup").await;
    let keep_notifications = "select * from notifications_notification where not (created_at < now() - interval '90 days' and read)";
    let keep_sessions = "select * from django_session where expire_date >= now() - interval '1 day'";
    let (expected_n, expected_n_hash) = content(&db, keep_notifications).await;
    let (expected_s, expected_s_hash) = content(&db, keep_sessions).await;
    let (total_n, _) = content(&db, "select * from notifications_notification").await;
    let (total_s, _) = content(&db, "select * from django_session").await;

    // WHEN a dry run, then a real run in batches of 200
    let dry = cleanup(&stack, &db, json!({ "rules": rules(), "dry_run": true })).await;
    assert_eq!(dry.status, Status::Succeeded, "{:?}", dry.error);
    assert_eq!(
        content(&db, "select * from notifications_notification").await.0,
        total_n,
        "a dry run deletes nothing"
    );
    let real = cleanup(&stack, &db, json!({ "rules": rules(), "batch_size": 200, "pause_ms": 0 })).await;

    // THEN the dry run's counts are exactly what went, and every kept row is unchanged
    assert_eq!(real.status, Status::Succeeded, "{:?}", real.error);
    let (d, r) = (&dry.outputs["rules"], &real.outputs["rules"]);
    assert_eq!(d[0]["would_delete"].as_i64().unwrap(), total_n - expected_n);
    assert_eq!(d[1]["would_delete"].as_i64().unwrap(), total_s - expected_s);
    assert!(d[0]["oldest"].is_string() && d[0]["newest"].is_string());
    assert_eq!(r[0]["deleted"].as_i64().unwrap(), total_n - expected_n);
    assert_eq!(r[1]["deleted"].as_i64().unwrap(), total_s - expected_s);
    assert!(r[0]["batches"].as_u64().unwrap() >= 10, "{}", r[0]);
    assert_eq!(r[0]["remaining"], 0);
    assert_eq!(content(&db, "select * from notifications_notification").await, (expected_n, expected_n_hash));
    assert_eq!(content(&db, "select * from django_session").await, (expected_s, expected_s_hash));

    // AND both outcomes were published
    let outcomes = stack.outcomes(2, Duration::from_secs(10)).await.unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|o| o.attributes["job"]["Value"] == "notification-cleanup"));
    assert!(
        outcomes.iter().any(|o| o.subject.contains("rows deleted")),
        "{:?}",
        outcomes.iter().map(|o| &o.subject).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn max_rows_leaves_the_rest_for_the_next_run() {
    let (stack, db) = django_db("cleanmax").await;
    let (total_s, _) =
        content(&db, "select * from django_session where expire_date < now() - interval '1 day'").await;
    let rule = json!([{"table": "django_session", "older_than": "1d", "timestamp_column": "expire_date"}]);

    let first =
        cleanup(&stack, &db, json!({ "rules": rule, "max_rows": 150, "batch_size": 100, "pause_ms": 0 }))
            .await;

    assert_eq!(first.status, Status::Succeeded, "{:?}", first.error);
    let r = &first.outputs["rules"][0];
    assert_eq!(r["deleted"], 150);
    assert_eq!(r["remaining"].as_i64().unwrap(), total_s - 150);
    assert!(r["stopped"].as_str().unwrap().contains("max_rows"));
    let second = cleanup(&stack, &db, json!({ "rules": rule })).await;
    assert_eq!(second.outputs["rules"][0]["deleted"].as_i64().unwrap(), total_s - 150);
    assert_eq!(second.outputs["rules"][0]["remaining"], 0);
}

#[tokio::test]
async fn near_the_lambda_deadline_it_stops_between_batches_records_it_and_the_next_run_goes_on() {
    // GIVEN about 2,200 deletable notifications, deleted 100 a batch with 100 ms pauses (~2.5 s)
    let (stack, db) = django_db("cleandeadline").await;
    let kept = "select * from notifications_notification where not (created_at < now() - interval '90 days' and read)";
    let expected = content(&db, kept).await;
    let payload = json!({ "rules": [rules()[0].clone()], "batch_size": 100, "pause_ms": 100 });

    // WHEN the run's (simulated) Lambda deadline is 2 s away (it stops a quarter before)
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let app = stack.app(stack.config(DbConfig::Url(db.url.clone())));
    let first = run::execute::<NotificationCleanup>(&app, &payload, Some(deadline)).await;

    // THEN it stopped between batches before the deadline, said so in its record and its
    // outcome, deleted only what the rule names, and the next run deletes the rest
    assert!(std::time::Instant::now() < deadline, "ended after the deadline");
    let r = &first.outputs["rules"][0];
    assert!(r["stopped"].as_str().unwrap_or_default().contains("deadline"), "{r}");
    assert!(r["deleted"].as_i64().unwrap() > 0 && r["remaining"].as_i64().unwrap() > 0, "{r}");
    assert!(first.record_key.is_some());
    assert_eq!(content(&db, kept).await, expected);
    let outcomes = stack.outcomes(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(outcomes.len(), 1, "the stopped run's outcome was published");
    let second = cleanup(&stack, &db, payload).await;
    assert_eq!(second.status, Status::Succeeded, "{:?}", second.error);
    assert_eq!(second.outputs["rules"][0]["remaining"], 0);
    assert_eq!(content(&db, kept).await, expected);
}

#[tokio::test]
async fn rows_a_foreign_key_protects_are_reported_and_other_rules_go_on() {
    // GIVEN old users, some of whom still have notifications (no cascade)
    let (stack, db) = django_db("cleanfk").await;
    let (old_users, _) =
        content(&db, "select * from auth_user where date_joined < now() - interval '30 days'").await;
    let (referenced, _) = content(
        &db,
        "select * from auth_user u where date_joined < now() - interval '30 days'
         and exists (select 1 from notifications_notification n where n.recipient_id = u.id)",
    )
    .await;
    assert!(referenced > 0 && referenced < old_users);
    let payload = json!({ "batch_size": 50, "pause_ms": 0, "rules": [
        {"table": "auth_user", "older_than": "30d", "timestamp_column": "date_joined"},
        {"table": "django_session", "older_than": "1d", "timestamp_column": "expire_date"}
    ]});

    let record = cleanup(&stack, &db, payload).await;

    // THEN the run failed, naming the count and the constraint; deletable rows went anyway
    assert_eq!(record.status, Status::Failed);
    let users = &record.outputs["rules"][0];
    assert_eq!(users["blocked"].as_i64().unwrap(), referenced);
    assert_eq!(users["deleted"].as_i64().unwrap(), old_users - referenced);
    let error = users["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{referenced} row(s) could not be deleted")) && error.contains("foreign key"),
        "{error}"
    );
    assert!(record.outputs["rules"][1]["deleted"].as_i64().unwrap() > 0, "the other rule went on");
    assert!(record.outputs["rules"][1]["error"].is_null());
    assert_eq!(
        content(&db, "select * from auth_user where date_joined < now() - interval '30 days'").await.0,
        referenced
    );
}

#[tokio::test]
async fn hostile_identifiers_are_refused_and_hostile_values_bound_harmlessly() {
    let (stack, db) = django_db("cleanhostile").await;
    db.psql(
        b"create table no_pk (created_at timestamptz); create view recent_users as select * from auth_user;",
    )
    .await
    .unwrap();
    let before = content(&db, "select * from notifications_notification").await;

    let refused = [
        (
            json!({"table": "auth_user; DROP TABLE auth_user; --", "older_than": "1d", "timestamp_column": "date_joined"}),
            "does not exist",
        ),
        (
            json!({"table": "auth_user", "older_than": "1d", "timestamp_column": "date_joined\"; DROP TABLE auth_user; --"}),
            "does not exist",
        ),
        (
            json!({"table": "auth_user", "older_than": "1d", "timestamp_column": "username"}),
            "not a timestamp",
        ),
        (json!({"table": "no_pk", "older_than": "1d", "timestamp_column": "created_at"}), "no primary key"),
        (
            json!({"table": "recent_users", "older_than": "1d", "timestamp_column": "date_joined"}),
            "is a view: its rows live in the tables it reads",
        ),
        (json!({"table": "auth_user", "older_than": "0d", "timestamp_column": "date_joined"}), "older_than"),
    ];
    for (rule, expected) in refused {
        // A bad rule after a good one: nothing at all may be deleted.
        let payload = json!({ "rules": [
            {"table": "notifications_notification", "older_than": "1d", "timestamp_column": "created_at"}, rule
        ]});
        let record = cleanup(&stack, &db, payload.clone()).await;
        assert_eq!(record.status, Status::Failed);
        let error = record.error.unwrap();
        assert!(error.contains(expected) && error.contains("rules[1]"), "{payload}: {error}");
    }
    assert_eq!(
        content(&db, "select * from notifications_notification").await,
        before,
        "refused rules delete nothing"
    );
    let record = cleanup(
        &stack,
        &db,
        json!({"rules": [{"table": "auth_user", "older_than": "1d", "timestamp_column": "date_joined",
        "filter": [{"column": "username", "op": "like", "value": "%"}]}]}),
    )
    .await;
    assert!(record.error.unwrap().contains("op"), "unknown operators are rejected");

    // Hostile values are data: they match nothing, and the tables are intact.
    let record = cleanup(
        &stack,
        &db,
        json!({"rules": [{"table": "notifications_notification", "older_than": "1d",
        "timestamp_column": "created_at", "filter": [
            {"column": "verb", "op": "=", "value": "x'; DROP TABLE auth_user; --"},
            {"column": "verb", "op": "in", "value": ["\"); DELETE FROM auth_user; --", "ünï"]}]}]}),
    )
    .await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    assert_eq!(record.outputs["rules"][0]["deleted"], 0);
    assert_eq!(content(&db, "select * from auth_user").await.0, 200);

    // A real unicode value with quotes matches exactly its rows.
    let (n, _) =
        content(&db, "select * from notifications_notification where verb = 'verb 7 ünï ''q'''").await;
    assert_eq!(n, 1);
    let record = cleanup(&stack, &db, json!({"rules": [{"table": "notifications_notification", "older_than": "1d",
        "timestamp_column": "created_at", "filter": [{"column": "verb", "op": "=", "value": "verb 7 ünï 'q'"}]}]})).await;
    assert_eq!(record.outputs["rules"][0]["deleted"], 1);
}

#[tokio::test]
async fn concurrent_inserts_and_updates_succeed_during_cleanup() {
    let (stack, db) = django_db("cleanconc").await;
    db.psql(
        b"insert into notifications_notification (recipient_id, read, verb, created_at)
              select 1 + g % 50, true, 'bulk', now() - interval '100 days' - g * interval '1 second'
              from generate_series(1, 30000) g;",
    )
    .await
    .unwrap();
    let (old_read, _) = content(
        &db,
        "select * from notifications_notification where created_at < now() - interval '90 days' and read",
    )
    .await;

    // WHILE a writer inserts new rows and updates old unread ones
    let url = db.url.clone();
    let writer = tokio::spawn(async move {
        let c = backstop_tests::connect(&url).await.unwrap();
        let mut inserted = 0;
        for i in 0..300 {
            c.execute("insert into notifications_notification (recipient_id, read, verb, created_at) values (1, false, 'new', now())", &[])
                .await
                .expect("insert during cleanup");
            c.execute("update notifications_notification set verb = verb || '.' where id = (select id from notifications_notification where not read order by created_at limit 1 offset $1)", &[&(i as i64)])
                .await
                .expect("update during cleanup");
            inserted += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        inserted
    });
    let record = cleanup(&stack, &db, json!({ "rules": rules(), "batch_size": 500, "pause_ms": 5 })).await;
    let inserted = writer.await.unwrap();

    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    assert_eq!(inserted, 300);
    assert_eq!(content(&db, "select * from notifications_notification where verb = 'new'").await.0, 300);
    let r = &record.outputs["rules"][0];
    assert_eq!(r["deleted"].as_i64().unwrap() + r["remaining"].as_i64().unwrap(), old_read);
}

#[tokio::test]
async fn the_function_runs_through_the_lambda_runtime() {
    let db = TestDb::create("cleanlambda").await.unwrap();
    db.psql(SCHEMA.as_bytes()).await.unwrap();
    let (expected, _) =
        content(&db, "select * from django_session where expire_date < now() - interval '1 day'").await;
    let rule = json!([{"table": "django_session", "older_than": "1d", "timestamp_column": "expire_date"}]);

    let dry = invoke("notification-cleanup", &json!({ "database": db.name, "rules": rule, "dry_run": true }))
        .await
        .unwrap();
    assert!(!dry.function_error, "{dry:?}");
    assert_eq!(dry.body["outputs"]["rules"][0]["would_delete"].as_i64().unwrap(), expected);
    let real = invoke("notification-cleanup", &json!({ "database": db.name, "rules": rule })).await.unwrap();
    assert!(!real.function_error, "{real:?}");
    assert_eq!(real.body["outputs"]["rules"][0]["deleted"].as_i64().unwrap(), expected);
    assert_eq!(
        content(&db, "select * from django_session where expire_date < now() - interval '1 day'").await.0,
        0
    );

    let bad = invoke("notification-cleanup", &json!({ "database": db.name, "rules": [{"table": "nope", "older_than": "1d", "timestamp_column": "x"}] })).await.unwrap();
    assert!(bad.function_error, "{bad:?}");
    assert!(
        bad.body.to_string().contains("\\\"nope\\\" does not exist") || bad.body.to_string().contains("nope"),
        "{:?}",
        bad.body
    );
}

/// Runs `rules` on `db`'s fresh schema `sql`: a dry run, then a real run in batches of 7.
async fn dry_then_real(label: &str, sql: &str, rules: Value) -> (TestDb, RunRecord, RunRecord) {
    let stack = Stack::new(label).await.unwrap();
    let db = TestDb::create(label).await.unwrap();
    db.psql(sql.as_bytes()).await.unwrap();
    let dry = cleanup(&stack, &db, json!({ "rules": rules, "dry_run": true })).await;
    assert_eq!(dry.status, Status::Succeeded, "{:?}", dry.error);
    let real = cleanup(&stack, &db, json!({ "rules": rules, "batch_size": 7, "pause_ms": 0 })).await;
    assert_eq!(real.status, Status::Succeeded, "{:?}", real.error);
    (db, dry, real)
}

#[tokio::test]
async fn a_partitioned_table_whose_key_holds_the_timestamp_is_cleaned_by_its_rule() {
    // GIVEN notifications partitioned by month, keyed by (id, created_at), as Django apps with
    // partitioning write them
    let sql = "create table notif (id bigint generated always as identity, read boolean not null, created_at timestamptz not null,
                   primary key (id, created_at)) partition by range (created_at);
               create table notif_old partition of notif for values from (minvalue) to (now() - interval '30 days');
               create table notif_new partition of notif for values from (now() - interval '30 days') to (maxvalue);
               insert into notif (read, created_at) select g % 2 = 0, now() - g * interval '1 day' + interval '1 hour' from generate_series(1, 120) g;";
    let rules = json!([{"table": "notif", "timestamp_column": "created_at", "older_than": "60d",
                        "filter": [{"column": "read", "op": "=", "value": true}]}]);

    // WHEN it is cleaned
    let (db, dry, real) = dry_then_real("partitioned", sql, rules).await;

    // THEN exactly the read rows older than 60 days went, from every partition
    let expected = content(&db, "select * from generate_series(61, 120) g where g % 2 = 0").await.0;
    assert_eq!(dry.outputs["rules"][0]["would_delete"].as_i64(), Some(expected));
    assert_eq!(real.outputs["rules"][0]["deleted"].as_i64(), Some(expected));
    let (left, _) =
        content(&db, "select * from notif where read and created_at < now() - interval '60 days'").await;
    assert_eq!(left, 0);
    assert_eq!(content(&db, "select * from notif").await.0, 120 - expected);
}

#[tokio::test]
async fn a_rule_on_an_inheritance_parent_deletes_no_child_row_beyond_it() {
    // GIVEN an inheritance parent and a child whose ids repeat the parent's (keys are unique per
    // table only), old rows in the parent and new ones in the child
    let sql = "create table events (id bigint primary key, created_at timestamptz not null);
               create table events_archive (note text) inherits (events);
               alter table events_archive add primary key (id);
               insert into events select g, now() - interval '100 days' from generate_series(1, 30) g;
               insert into events_archive select g, now(), 'keep' from generate_series(1, 30) g;
               insert into events_archive select g, now() - interval '200 days', 'old' from generate_series(31, 40) g;";
    let rules = json!([{"table": "events", "timestamp_column": "created_at", "older_than": "90d"}]);

    // WHEN the parent's rule runs
    let (db, dry, real) = dry_then_real("inherit", sql, rules).await;

    // THEN the rows it matched went (the parent's 30 and the child's 10 old ones, as a SELECT
    // on the parent sees them) and no new child row with a repeated id went with them
    assert_eq!(dry.outputs["rules"][0]["would_delete"].as_i64(), Some(40));
    assert_eq!(real.outputs["rules"][0]["deleted"].as_i64(), Some(40));
    assert_eq!(content(&db, "select * from only events").await.0, 0);
    assert_eq!(
        content(&db, "select id from events_archive").await,
        content(&db, "select g::bigint from generate_series(1, 30) g").await,
        "the child keeps exactly its 30 new rows"
    );
}

#[tokio::test]
async fn a_dry_run_counts_the_rows_on_delete_cascade_would_take() {
    // GIVEN notifications with deliveries that cascade, and a log whose reference goes null
    let sql = "create table notif (id bigint primary key, created_at timestamptz not null);
               create table delivery (id bigint primary key, notif_id bigint references notif on delete cascade);
               create table receipt (id bigint primary key, delivery_id bigint references delivery on delete cascade);
               create table audit (id bigint primary key, notif_id bigint references notif on delete set null);
               insert into notif select g, now() - g * interval '1 day' from generate_series(1, 100) g;
               insert into delivery select g, 1 + g % 100 from generate_series(1, 300) g;
               insert into receipt select g, g from generate_series(1, 300) g;
               insert into audit select g, g from generate_series(1, 100) g;";
    let rules = json!([{"table": "notif", "timestamp_column": "created_at", "older_than": "1212h"}]);

    // WHEN a dry run, then a real run
    let (db, dry, real) = dry_then_real("cascade", sql, rules).await;

    // THEN the dry run said what the deletes took beyond the table, per foreign key
    let cascade = dry.outputs["rules"][0]["would_cascade"].as_array().unwrap().clone();
    let find = |t: &str| {
        cascade.iter().find(|c| c["table"] == t).unwrap_or_else(|| panic!("{t} in {cascade:?}")).clone()
    };
    assert_eq!(dry.outputs["rules"][0]["would_delete"].as_i64(), Some(50));
    assert_eq!(
        (find("public.delivery")["rows"].as_i64(), find("public.delivery")["action"].as_str()),
        (Some(150), Some("delete"))
    );
    assert_eq!(find("public.delivery")["cascades_further"], true);
    assert_eq!(
        (find("public.audit")["rows"].as_i64(), find("public.audit")["action"].as_str()),
        (Some(50), Some("set null"))
    );
    assert!(dry.summary.contains("150 more by ON DELETE CASCADE"), "{}", dry.summary);
    // AND that is what the real run did
    assert_eq!(real.outputs["rules"][0]["deleted"].as_i64(), Some(50));
    assert_eq!(content(&db, "select * from delivery").await.0, 150);
    assert_eq!(content(&db, "select * from audit where notif_id is null").await.0, 50);
}
