//! The native engine, proven by round trip: back up, restore with `psql -v ON_ERROR_STOP=1` from
//! the concatenated parts, and compare schema (`pg_dump --schema-only`) and per-table content.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use backstop_core::backup::Manifest;
use backstop_core::config::DbConfig;
use backstop_core::restore::{RestoreRequest, RestoreSource, restore};
use backstop_core::run::{self, Status};
use backstop_tests::{
    FakePgDump, Stack, TestDb, admin_url, fingerprint_all, full_schema_of, repo_root, shared_data, stored_sql,
};
use serde_json::{Value, json};

/// A stack and a fresh source database loaded with `sql`.
async fn given(label: &str, sql: &[u8]) -> (Stack, TestDb) {
    let stack = Stack::new(label).await.unwrap();
    let source = TestDb::create(label).await.unwrap();
    source.psql(sql).await.unwrap();
    (stack, source)
}

/// The fixture exercising every schema feature and awkward value.
fn fidelity_sql() -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures/fidelity.sql")).unwrap()
}

/// Restores `manifest`'s parts with psql into a fresh database and asserts it equals `source`
/// in schema (owners and privileges included) and in every table's rows.
async fn assert_round_trip(stack: &Stack, source: &TestDb, manifest: &Manifest) -> TestDb {
    let sql = stored_sql(stack, manifest).await.unwrap();
    let target = TestDb::create("native_restored").await.unwrap();
    target.psql(&sql).await.expect("the parts restore with psql -v ON_ERROR_STOP=1");
    assert_eq!(
        full_schema_of(&source.url).await.unwrap(),
        full_schema_of(&target.url).await.unwrap(),
        "pg_dump --schema-only of source and restore"
    );
    let (a, b) = (
        fingerprint_all(&source.client().await.unwrap()).await.unwrap(),
        fingerprint_all(&target.client().await.unwrap()).await.unwrap(),
    );
    assert!(!a.is_empty());
    assert_eq!(a, b, "every table's rows");
    // The manifest's row counts are what was restored.
    // (An extension configuration table's count is of the rows its condition picks.)
    for t in manifest.tables.iter().filter(|t| t.rows.is_some() && t.filter.is_none()) {
        let name = format!("{}.{}", quote(&t.schema), quote(&t.name));
        let (_, rows, _) = b.iter().find(|(n, ..)| *n == name).unwrap_or_else(|| panic!("{name} restored"));
        assert_eq!(t.rows, Some(*rows as u64), "{name}");
    }
    target
}

/// `backstop restore --jobs {jobs}` of `source`'s newest backup into a new database: the report,
/// the target's URL, and the target (dropped with it).
async fn restore_into_new(
    stack: &Stack,
    source: &TestDb,
    jobs: usize,
) -> (backstop_core::restore::RestoreReport, String, TestDb) {
    let target = format!("{}_restored", source.name);
    let request = restore_request(&source.name, &target, jobs);
    let guard = TestDb::adopt(&target);
    let app = stack.app(stack.config(DbConfig::Url(source.url.clone())));
    let report = restore(&app, &request).await.unwrap();
    (report, request.target_url, guard)
}

/// A native backup set (`jobs` 2) of `source` that succeeded with the native engine itself (no
/// pg_dump standing in), holding exactly `counts` objects of these kinds; its manifest.
async fn native_backup(stack: &Stack, source: &TestDb, counts: &[(&str, usize)]) -> Manifest {
    let record = stack.backup(source, json!({ "jobs": 2 })).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    assert_eq!(record.outputs["databases"][0]["engine"], "native", "{}", record.outputs);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    for (kind, n) in counts {
        assert_eq!(manifest.counts.get(*kind), Some(n), "{kind}: {:?}", manifest.counts);
    }
    manifest
}

/// Asserts that `target_url`'s database equals `source` in schema (pg_dump --schema-only) and
/// in every table's rows; returns a connection to it.
async fn assert_same_schema_and_rows(source: &TestDb, target_url: &str) -> tokio_postgres::Client {
    assert_eq!(full_schema_of(&source.url).await.unwrap(), full_schema_of(target_url).await.unwrap());
    let restored = backstop_tests::connect(target_url).await.unwrap();
    assert_eq!(
        fingerprint_all(&source.client().await.unwrap()).await.unwrap(),
        fingerprint_all(&restored).await.unwrap()
    );
    restored
}

fn quote(ident: &str) -> String {
    if ident.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        ident.to_owned()
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

/// Rows and content hash of each table the manifest hashed, read from `url`'s copy.
async fn content_hashes(url: &str, manifest: &Manifest) -> Vec<(String, String)> {
    let client = backstop_tests::connect(url).await.unwrap();
    client.batch_execute(backstop_core::backup::native::SESSION).await.unwrap();
    let mut out = Vec::new();
    for t in manifest.tables.iter().filter(|t| t.content_hash.is_some()) {
        let (rows, hash) =
            backstop_core::backup::native::table_content(&client, &t.schema, &t.name, t.filter.as_deref())
                .await
                .unwrap();
        assert_eq!(Some(rows), t.rows);
        out.push((format!("{}.{}", quote(&t.schema), quote(&t.name)), hash));
    }
    out
}

#[tokio::test]
async fn every_schema_feature_and_awkward_value_round_trips() {
    // GIVEN a schema using every object kind the engine promises, with awkward names and values
    let (stack, source) = given("fidelity", &fidelity_sql()).await;

    // WHEN a native backup set is taken with two workers
    let record = stack.backup(&source, json!({ "jobs": 2 })).await;

    // THEN it restores with psql to the same schema and rows
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    assert_eq!((manifest.engine.name.as_str(), manifest.layout.as_str()), ("native", "set"));
    let kinds: Vec<&str> = manifest.objects.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"pre-data"));
    assert_eq!(kinds.last(), Some(&"post-data"));
    assert!(manifest.snapshot.is_some());
    for kind in ["table", "view", "materialized view", "index", "foreign key", "trigger", "policy", "domain"]
    {
        assert!(manifest.counts.get(kind).copied().unwrap_or(0) > 0, "{kind} counted: {:?}", manifest.counts);
    }
    let customers = manifest.tables.iter().find(|t| t.name == "customers").unwrap();
    assert_eq!(customers.rows, Some(4));
    let target = assert_round_trip(&stack, &source, &manifest).await;

    // AND the large objects came back byte for byte, with their owners, grants and comments
    let lo = "select string_agg(concat_ws(' ', oid, md5(lo_get(oid)), pg_get_userbyid(lomowner), lomacl,
                                          obj_description(oid, 'pg_largeobject')), ',' order by oid)
              from pg_largeobject_metadata";
    let (a, b): (Option<String>, Option<String>) = (
        source.client().await.unwrap().query_one(lo, &[]).await.unwrap().get(0),
        target.client().await.unwrap().query_one(lo, &[]).await.unwrap().get(0),
    );
    assert!(a.is_some());
    assert_eq!(a, b);

    // AND the manifest's content hashes are reproducible from the restored copy
    let recorded: Vec<(String, String)> = manifest
        .tables
        .iter()
        .filter_map(|t| Some((format!("{}.{}", quote(&t.schema), quote(&t.name)), t.content_hash.clone()?)))
        .collect();
    assert_eq!(content_hashes(&target.url, &manifest).await, recorded);
}

#[tokio::test]
async fn pagila_with_rows_round_trips() {
    // GIVEN the Pagila schema (partitions, domains, triggers, views, full-text, …) with rows
    let Some(schema) = shared_data("pagila-schema.sql") else {
        return;
    };
    let (stack, source) = given("npagila", &std::fs::read(schema).unwrap()).await;
    source
        .psql(
            r#"insert into actor (first_name, last_name) select 'Actor' || g, E'O''Name\t' || g from generate_series(1, 300) g;
                insert into language (name) values ('English'), ('Français'), ('日本語');
                insert into category (name) select 'Cat ' || g from generate_series(1, 20) g;
                insert into country (country) select 'Country ' || g from generate_series(1, 5) g;
                insert into city (city, country_id) select 'City ' || g, 1 + g % 5 from generate_series(1, 50) g;"#
                .as_bytes(),
        )
        .await
        .unwrap();

    // WHEN a native backup set is taken
    let record = stack.backup(&source, json!({ "jobs": 3 })).await;

    // THEN it restores with psql to the same schema and rows
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    assert_round_trip(&stack, &source, &manifest).await;

    // AND Backstop's own restore on four connections (index builds, keys and foreign keys of
    // different tables side by side) gives the same, and ANALYZE leaves statistics behind
    let target = format!("{}_par", source.name);
    let request = RestoreRequest { analyze: true, ..restore_request(&source.name, &target, 4) };
    let _cleanup = TestDb::adopt(&target);
    let app = stack.app(stack.config(DbConfig::Url(source.url.clone())));
    let report = restore(&app, &request).await.unwrap();
    let restored = assert_same_schema_and_rows(&source, &request.target_url).await;
    assert!(report.applied.unwrap().statements > 100);
    let analyzed: i64 = restored
        .query_one(
            "select count(*) from pg_stat_user_tables where relname = 'actor' and last_analyze is not null",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(analyzed, 1);
}

#[tokio::test]
async fn a_backup_under_concurrent_writes_is_one_point_in_time() {
    // GIVEN accounts whose balances always sum to 1,000,000, a ledger with one row per transfer
    // and a counter of transfers, all changed together in each transaction
    let (stack, source) = given(
        "concurrent",
        b"create table accounts (id int primary key, balance bigint not null);
              insert into accounts select g, 1000 from generate_series(1, 1000) g;
              create table ledger (id bigserial primary key, src int, dst int, amount int, note text);
              insert into ledger (src, dst, amount, note) select 0, 0, 0, repeat('seed', 20) from generate_series(1, 200000);
              create table counter (n bigint not null); insert into counter values (200000);",
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let transfers = Arc::new(AtomicU64::new(0));
    let writer = {
        let (url, stop, transfers) = (source.url.clone(), stop.clone(), transfers.clone());
        tokio::spawn(async move {
            let c = backstop_tests::connect(&url).await.unwrap();
            let mut i: i32 = 0;
            while !stop.load(Ordering::Relaxed) {
                i = i.wrapping_add(7919);
                let (a, b) = (1 + i.rem_euclid(1000), 1 + (i / 3).rem_euclid(1000));
                c.batch_execute(&format!(
                    "begin; update accounts set balance = balance - 5 where id = {a};
                     update accounts set balance = balance + 5 where id = {b};
                     insert into ledger (src, dst, amount) values ({a}, {b}, 5);
                     update counter set n = n + 1; commit;"
                ))
                .await
                .unwrap();
                transfers.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // WHEN a backup runs while transfers keep committing, the ledger read in parts by three workers
    let record = stack.backup(&source, json!({ "jobs": 3, "split_mb": 4 })).await;
    let during = transfers.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    // THEN the restored copy satisfies every invariant: it is the database at one instant
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    assert!(during > 10, "transfers ran during the backup ({during})");
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    let ledger_parts =
        manifest.objects.iter().filter(|o| o.table.as_deref() == Some("public.ledger")).count();
    assert!(ledger_parts >= 2, "the ledger was split ({ledger_parts} part)");
    let sql = stored_sql(&stack, &manifest).await.unwrap();
    let target = TestDb::create("concurrent_restored").await.unwrap();
    target.psql(&sql).await.unwrap();
    let row = target
        .client()
        .await
        .unwrap()
        .query_one(
            "select (select sum(balance) from accounts)::bigint, (select count(*) from ledger), (select n from counter)",
            &[],
        )
        .await
        .unwrap();
    let (sum, ledger, counter): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(sum, 1_000_000, "money is neither made nor lost");
    assert_eq!(ledger, counter, "ledger and counter are from the same instant");
    assert!(counter > 200_000, "the snapshot saw some transfers");
    // AND the parts' rows and hashes add up to the table's, as a restored copy reads it
    let info = manifest.tables.iter().find(|t| t.name == "ledger").unwrap();
    let part_rows: u64 = manifest
        .objects
        .iter()
        .filter(|o| o.table.as_deref() == Some("public.ledger"))
        .filter_map(|o| o.rows)
        .sum();
    assert_eq!(info.rows, Some(part_rows));
    assert_eq!(info.rows, Some(ledger as u64));
    let hashes = content_hashes(&target.url, &manifest).await;
    assert!(hashes.contains(&("public.ledger".to_owned(), info.content_hash.clone().unwrap())));
}

#[tokio::test]
async fn a_table_being_dropped_by_another_session_fails_the_backup_cleanly() {
    // GIVEN another session dropping a table in an open transaction (a migration in progress)
    let (stack, source) = given(
        "droptable",
        b"create table keep (id int); create table doomed (id int); insert into doomed values (1);",
    )
    .await;
    let migration = source.client().await.unwrap();
    migration.batch_execute("begin; drop table doomed;").await.unwrap();

    // WHEN a backup runs with a short lock timeout
    let record = stack.backup(&source, json!({ "lock_timeout_s": 1 })).await;
    migration.batch_execute("commit").await.unwrap();

    // THEN it failed naming the table, and left no manifest, no parts and no open upload
    assert_eq!(record.status, Status::Failed);
    let error = record.error.unwrap();
    assert!(
        error.contains("cannot lock table public.doomed") && error.contains("conflicting lock"),
        "{error}"
    );
    let keys = stack.keys().await.unwrap();
    assert!(keys.iter().all(|k| k.starts_with("backstop/runs/")), "{keys:?}");
    assert_eq!(stack.open_uploads().await.unwrap(), 0);
}

/// Polls `check` (a query returning one boolean) on `client` until it holds, for up to 60 s.
async fn wait_for(client: &tokio_postgres::Client, what: &str, check: &str) {
    for _ in 0..3000 {
        if client.query_one(check, &[]).await.unwrap().get::<_, bool>(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn a_table_rewritten_while_the_backup_waits_for_its_lock_fails_the_backup() {
    // GIVEN a migration rewriting a table (ALTER … TYPE) in an open transaction
    let (stack, source) = given(
        "rewrite",
        b"create table keep (id int); insert into keep values (1);
          create table orders (id int, total int); insert into orders select g, g from generate_series(1, 1000) g;",
    )
    .await;
    let migration = source.client().await.unwrap();
    migration.batch_execute("begin; alter table orders alter column total type bigint;").await.unwrap();
    let watcher = source.client().await.unwrap();

    // WHEN a backup exports its snapshot and waits for its lock, and the migration then commits
    let (record, ()) = tokio::join!(stack.backup(&source, json!({ "lock_timeout_s": 60 })), async {
        wait_for(
            &watcher,
            "the backup waits for its lock on orders",
            "select exists (select from pg_locks l join pg_stat_activity a using (pid)
              where not l.granted and l.relation = 'public.orders'::regclass and a.application_name like 'backstop-native%')",
        )
        .await;
        migration.batch_execute("commit").await.unwrap();
    });

    // THEN the backup failed naming the table (its rows would have read as empty), and stored
    // nothing but its run record
    assert_eq!(record.status, Status::Failed, "{:?}", record.outputs);
    let error = record.error.unwrap();
    assert!(error.contains("table public.orders was rewritten"), "{error}");
    let keys = stack.keys().await.unwrap();
    assert!(keys.iter().all(|k| k.starts_with("backstop/runs/")), "{keys:?}");
    assert_eq!(stack.open_uploads().await.unwrap(), 0);

    // AND the next backup, with nothing in its way, stores every row
    let record = stack.backup(&source, json!({})).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    assert_eq!(manifest.tables.iter().find(|t| t.name == "orders").unwrap().rows, Some(1000));
}

#[tokio::test]
async fn a_migration_queued_behind_the_backup_is_not_blocked_by_its_workers() {
    // GIVEN a large table the worker reads first and a small one read after it
    let (stack, source) = given(
        "giveway",
        b"create table big (id int, pad text); insert into big select g, md5(g::text) || md5((g * 7)::text) from generate_series(1, 1000000) g;
          create table small (id int); insert into small values (1);",
    )
    .await;
    let watcher = source.client().await.unwrap();
    let migration = source.client().await.unwrap();

    // WHEN, while the one worker copies `big`, a migration asks for an exclusive lock on `small`
    // (it queues behind the backup's coordinator)
    let backup = tokio::time::timeout(Duration::from_secs(120), stack.backup(&source, json!({ "jobs": 1 })));
    let (record, migrated) = tokio::join!(backup, async {
        wait_for(
            &watcher,
            "the worker copies big",
            "select exists (select from pg_stat_activity where application_name = 'backstop-native-0' and query like 'COPY%big%')",
        )
        .await;
        let alter = migration.batch_execute("alter table small add column note text");
        let queued = wait_for(
            &watcher,
            "the migration waits for its lock on small",
            "select exists (select from pg_locks where not granted and relation = 'public.small'::regclass)",
        );
        let (altered, ()) = tokio::join!(alter, queued);
        altered
    });

    // THEN the worker gave way instead of queueing behind the migration (which would block the
    // table for everyone until the deadline): the backup failed naming the table
    let record = record.expect("the backup ended instead of waiting behind the migration");
    assert_eq!(record.status, Status::Failed);
    let error = record.error.unwrap();
    assert!(error.contains("cannot lock table public.small for its COPY"), "{error}");
    assert_eq!(record.retryable, Some(true));
    // AND the migration went through once the backup let go
    migrated.expect("the migration ran");
    let keys = stack.keys().await.unwrap();
    assert!(keys.iter().all(|k| k.starts_with("backstop/runs/")), "{keys:?}");
    assert_eq!(stack.open_uploads().await.unwrap(), 0);
}

#[tokio::test]
async fn objects_whose_backups_did_not_restore_now_round_trip() {
    // GIVEN the objects whose native backups reported success and failed to restore (issue 15):
    // a zero-argument aggregate, generated columns of inheritance children, a NOT VALID check on
    // an inheritance parent, a materialized view over another, procedures with OUT arguments,
    // and comments and grants on them
    let (stack, source) = given(
        "fidelity15",
        br#"create function one_state(s bigint) returns bigint language sql immutable as 'select s + 1';
            create aggregate count_rows(*) (sfunc = one_state, stype = bigint, initcond = '0');
            comment on aggregate count_rows(*) is 'zero args';
            revoke execute on function count_rows() from public;
            create table parent (a int, b int generated always as (a * 2) stored);
            create table child (c text) inherits (parent);
            create table child2 (a int, b int generated always as (a * 2) stored, c text);
            alter table child2 inherit parent;
            insert into parent (a) values (1); insert into child (a, c) values (2, 'x'); insert into child2 (a, c) values (5, 'y');
            create table ip (x int);
            create table ic () inherits (ip);
            insert into ic values (-1);
            alter table ip add constraint x_pos check (x > 0) not valid;
            create table base (id int primary key, v int);
            insert into base values (1, 10), (2, 20);
            create materialized view a_mv_top as select 1 as one;
            create materialized view mv_b as select id, v from base;
            create view v_b as select id, v from mv_b;
            create materialized view mv_a as select id, v * 2 as w from v_b;
            create procedure p_in(x int) language sql as 'select 1';
            create procedure p_in(x text) language sql as 'select 1';
            create procedure p_out(x int, out y int) language plpgsql as 'begin y := x; end';
            comment on procedure p_out(int) is 'with an OUT argument';
            grant execute on procedure p_out(int) to public;"#,
    )
    .await;

    // WHEN a native backup set is taken
    let record = stack.backup(&source, json!({ "jobs": 2 })).await;

    // THEN it restores with psql (stopping at the first error) to the same schema and rows
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    let target = assert_round_trip(&stack, &source, &manifest).await;
    // AND the materialized view over another was refreshed after it
    let rows: i64 =
        target.client().await.unwrap().query_one("select count(*) from mv_a", &[]).await.unwrap().get(0);
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn text_search_publications_foreign_data_casts_and_event_triggers_round_trip() {
    // GIVEN what ordinary production databases hold and the engine used to refuse: a French
    // unaccented text search configuration, a custom dictionary, publications (all tables; a
    // table with a row filter and a column list; a schema), a foreign-data wrapper with a
    // server, user mapping and foreign tables (one a partition), a cast, a disabled event
    // trigger; with comments, owners and grants
    let (stack, source) = given(
        "kinds15",
        br#"create extension unaccent;
            create text search configuration french_unaccent (copy = french);
            alter text search configuration french_unaccent
              alter mapping for hword, hword_part, word with unaccent, french_stem;
            comment on text search configuration french_unaccent is 'search in French';
            create text search dictionary simple_fr (template = pg_catalog.simple, stopwords = french, accept = false);
            create schema feeds;
            create table feeds.items (id int primary key, body text);
            create table orders (id int primary key, status text, secret text);
            insert into orders values (1, 'paid', 's'), (2, 'open', 't');
            create publication everything for all tables with (publish = 'insert, update');
            create publication paid_orders for table orders (id, status) where (status = 'paid');
            create publication feed for tables in schema feeds with (publish_via_partition_root = true);
            create foreign data wrapper dummy_fdw options (debug 'true');
            create server archive foreign data wrapper dummy_fdw options (host 'archive.internal', port '5432');
            comment on server archive is 'cold rows';
            grant usage on foreign server archive to public;
            create user mapping for public server archive options (user 'reader');
            create foreign table old_orders (id int options (column_name 'order_id'), status text not null)
              server archive options (table_name 'orders_2019');
            create table events (at date not null, what text) partition by range (at);
            create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01');
            create foreign table events_2019 partition of events for values from ('2019-01-01') to ('2020-01-01')
              server archive;
            insert into events values ('2026-03-01', 'launch');
            create type mood as (level int);
            create function mood_of(int) returns mood language sql immutable as 'select row($1)::mood';
            create cast (int as mood) with function mood_of(int) as assignment;
            create function no_drops() returns event_trigger language plpgsql as 'begin raise exception ''no''; end';
            create event trigger guard on sql_drop when tag in ('DROP TABLE') execute function no_drops();
            alter event trigger guard disable;"#,
    )
    .await;

    // WHEN a native backup set is taken
    let record = stack.backup(&source, json!({ "jobs": 2 })).await;

    // THEN the native engine wrote it all (no stand-in), and it restores to the same schema
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let out = &record.outputs["databases"][0];
    assert_eq!((out["engine"].as_str(), out.get("warnings")), (Some("native"), None), "{out}");
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    for kind in
        ["text search configuration", "publication", "server", "foreign table", "cast", "event trigger"]
    {
        assert!(manifest.counts.get(kind).is_some_and(|n| *n > 0), "{kind}: {:?}", manifest.counts);
    }
    let target = assert_round_trip(&stack, &source, &manifest).await;
    // AND the configuration searches as before
    let found: bool = target
        .client()
        .await
        .unwrap()
        .query_one("select to_tsvector('public.french_unaccent', 'Élève') @@ to_tsquery('public.french_unaccent', 'eleve')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(found);
    // AND Backstop's own parallel restore (post-data scheduled on two connections) agrees
    let (_, restored, _cleanup) = restore_into_new(&stack, &source, 2).await;
    assert_same_schema_and_rows(&source, &restored).await;
}

#[tokio::test]
async fn operators_operator_classes_and_every_aggregate_kind_round_trip() {
    // GIVEN operators (a commutator pair, a negator), a btree operator class in its own family
    // used by an index, a loose family member, and ordered-set, hypothetical-set, moving and
    // sort-operator aggregates
    let (stack, source) = given(
        "operators15",
        br#"create schema ops;
            create function ops.near(int, int) returns bool language sql immutable as 'select abs($1 - $2) < 2';
            create function ops.far(int, int) returns bool language sql immutable as 'select abs($1 - $2) >= 2';
            create operator ops.~~~ (function = ops.near, leftarg = int, rightarg = int, commutator = operator(ops.~~~),
              negator = operator(ops.!~~), restrict = eqsel, join = eqjoinsel);
            create operator ops.!~~ (function = ops.far, leftarg = int, rightarg = int, commutator = operator(ops.!~~));
            comment on operator ops.~~~(int, int) is 'within one';
            create function ops.rev_cmp(int, int) returns int language sql immutable as 'select btint4cmp($2, $1)';
            create operator family ops.rev_fam using btree;
            create operator class ops.int_rev for type int using btree family ops.rev_fam as
              operator 1 > , operator 2 >= , operator 3 = , operator 4 <= , operator 5 < ,
              function 1 ops.rev_cmp(int, int);
            alter operator family ops.rev_fam using btree add function 4 (int, int) btequalimage(oid);
            create table scores (id int primary key, points int);
            create index scores_rev on scores (points ops.int_rev);
            insert into scores select g, g % 7 from generate_series(1, 20) g;
            create function ops.collect(state int[], x int) returns int[] language sql immutable as 'select state || x';
            create function ops.drop_first(state int[], x int) returns int[] language sql immutable as 'select state[2:]';
            create function ops.final_median(state int[], d int, x int) returns float8 language sql immutable
              as 'select percentile_cont(0.5) within group (order by v) from unnest(state) v';
            create aggregate ops.median(int order by int) (sfunc = ops.collect, stype = int[],
              finalfunc = ops.final_median, finalfunc_extra, initcond = '{}');
            create function ops.rank_final(state int[], d int, x int) returns bigint language sql immutable
              as 'select 1::bigint';
            create aggregate ops.my_rank(int order by int) (sfunc = ops.collect, stype = int[],
              finalfunc = ops.rank_final, finalfunc_extra, initcond = '{}', hypothetical);
            create aggregate ops.window_list(int) (sfunc = ops.collect, stype = int[], initcond = '{}',
              msfunc = ops.collect, minvfunc = ops.drop_first, mstype = int[], minitcond = '{}');
            create function ops.smaller(int, int) returns int language sql immutable strict as 'select least($1, $2)';
            create aggregate ops.smallest(int) (sfunc = ops.smaller, stype = int, sortop = <, parallel = safe);"#,
    )
    .await;

    // WHEN a native backup set is taken, THEN the native engine wrote it all, and it restores to the same schema and rows
    let manifest = native_backup(
        &stack,
        &source,
        &[("operator", 2), ("operator family", 1), ("operator class", 1), ("aggregate", 4)],
    )
    .await;
    let target = assert_round_trip(&stack, &source, &manifest).await;
    // AND the operators work there
    let row = target
        .client()
        .await
        .unwrap()
        .query_one(
            "select 3 operator(ops.~~~) 4, 3 operator(ops.!~~) 4, ops.smallest(points) from scores",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, bool>(0), row.get::<_, bool>(1), row.get::<_, i32>(2)), (true, false, 0));
}

#[tokio::test]
async fn languages_access_methods_conversions_transforms_and_typed_tables_round_trip() {
    // GIVEN the kinds extensions usually bring, made by hand: a procedural language (with a
    // grant), table and index access methods (a table using one), a conversion, a transform;
    // and a typed table with column options and a column's n_distinct
    let (stack, source) = given(
        "languages15",
        br#"create trusted language plsql2 handler plpgsql_call_handler inline plpgsql_inline_handler validator plpgsql_validator;
            revoke usage on language plsql2 from public;
            comment on language plsql2 is 'plpgsql again';
            create access method heap2 type table handler heap_tableam_handler;
            create access method btree2 type index handler bthandler;
            create table logs (id int, line text) using heap2;
            insert into logs values (1, 'a'), (2, 'b');
            create conversion public.my_latin1 for 'LATIN1' to 'UTF8' from iso8859_1_to_utf8;
            create function tf_from(internal) returns internal language internal immutable as 'gtsvector_compress';
            create function tf_to(internal) returns int language internal immutable as 'int4recv';
            create transform for int language plsql2 (from sql with function tf_from(internal), to sql with function tf_to(internal));
            create type person as (name text, age int);
            create table people of person (age with options not null default 0, primary key (name));
            alter table people alter column name set (n_distinct = 50);
            insert into people (name) values ('ada'), ('grace');"#,
    )
    .await;

    // WHEN a native backup set is taken, THEN the native engine wrote it all, and it restores to the same schema and rows
    let manifest = native_backup(
        &stack,
        &source,
        &[("language", 1), ("access method", 2), ("conversion", 1), ("transform", 1)],
    )
    .await;
    let target = assert_round_trip(&stack, &source, &manifest).await;
    let row = target
        .client()
        .await
        .unwrap()
        .query_one(
            "select (select amname::text from pg_am where oid = (select relam from pg_class where relname = 'logs')),
               (select reloftype::regtype::text from pg_class where relname = 'people'),
               (select sum(age)::int from people)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, i32>(2)),
        ("heap2".into(), "person".into(), 0)
    );
}

/// Installs the test extension with configuration tables (`tests/fixtures/extension`) into the
/// server's extension directory; `None`, said on stderr, where that directory is not writable.
async fn install_config_extension(client: &tokio_postgres::Client) -> Option<()> {
    let share: String =
        client.query_one("select setting from pg_config where name = 'SHAREDIR'", &[]).await.ok()?.get(0);
    let dir = std::path::Path::new(&share).join("extension");
    for file in ["backstop_config_test.control", "backstop_config_test--1.0.sql"] {
        let from = repo_root().join("tests/fixtures/extension").join(file);
        if let Err(e) = std::fs::copy(&from, dir.join(file)) {
            eprintln!("SKIPPED: cannot install the test extension into {} ({e})", dir.display());
            return None;
        }
    }
    Some(())
}

#[tokio::test]
async fn an_extensions_configuration_tables_keep_the_rows_users_added() {
    // GIVEN an extension with configuration tables (as PostGIS's spatial_ref_sys) holding its
    // own rows and rows a user added, and a configuration sequence that moved
    let stack = Stack::new("extconfig").await.unwrap();
    let source = TestDb::create("extconfig").await.unwrap();
    if install_config_extension(&source.client().await.unwrap()).await.is_none() {
        return;
    }
    source
        .psql(
            b"create extension backstop_config_test;
              insert into config_items values (100, 'mine'), (101, 'mine too');
              insert into config_notes values ('kept');
              select nextval('config_ids') from generate_series(1, 5);",
        )
        .await
        .unwrap();

    // WHEN a native backup is taken, THEN the native engine wrote it, with the user's rows only
    // (the extension makes its own)
    let manifest = native_backup(&stack, &source, &[]).await;
    let items = manifest.tables.iter().find(|t| t.name == "config_items").unwrap();
    assert_eq!((items.rows, items.filter.as_deref()), (Some(2), Some("WHERE id >= 100")));
    // AND psql and Backstop's restore bring back every row once, and the sequence's value
    assert_round_trip(&stack, &source, &manifest).await;
    let (report, restored, _cleanup) = restore_into_new(&stack, &source, 2).await;
    let counted = report.tables.iter().find(|t| t.table == "public.config_items").unwrap();
    assert_eq!((counted.rows, counted.expected), (2, Some(2)), "counted under the extension's condition");
    let c = assert_same_schema_and_rows(&source, &restored).await;
    let row = c
        .query_one("select (select count(*) from config_items), (select last_value from config_ids)", &[])
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (4, 5));
}

#[tokio::test]
async fn base_types_shells_and_canonical_ranges_round_trip() {
    // GIVEN a base type over internal functions (its input and output need the type, the type
    // needs them), a shell type, and a range with a canonical function, each used by a table
    let (stack, source) = given(
        "types15",
        br#"create type mytext;
            create function mytext_in(cstring) returns mytext language internal immutable strict as 'textin';
            create function mytext_out(mytext) returns cstring language internal immutable strict as 'textout';
            create type mytext (input = mytext_in, output = mytext_out, internallength = variable,
              category = 'S', collatable = true, storage = extended);
            comment on type mytext is 'text again';
            create table notes_b (id int, v mytext, vs mytext[]);
            insert into notes_b values (1, 'hello', '{a,b}');
            create type half_made;
            create type myrange;
            create function myrange_canon(myrange) returns myrange language internal immutable strict
              as 'int4range_canonical';
            create type myrange as range (subtype = int4, canonical = myrange_canon);
            create table slots (r myrange);
            insert into slots values ('[1,5]'), ('(2,8)');"#,
    )
    .await;

    // WHEN a native backup set is taken, THEN the native engine wrote it, and it restores to the
    // same schema and rows
    let manifest = native_backup(&stack, &source, &[("shell type", 3)]).await;
    let target = assert_round_trip(&stack, &source, &manifest).await;
    let row = target
        .client()
        .await
        .unwrap()
        .query_one(
            "select (select v::text from notes_b), (select string_agg(r::text, ' ' order by r) from slots)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), ("hello".into(), "[1,6) [3,8)".into()));
}

#[tokio::test]
async fn trigger_states_of_partitions_sequence_persistence_and_grants_on_built_in_objects_round_trip() {
    // GIVEN what the regression database showed the engine lost: a partition's own state of
    // its parent's trigger, an identity sequence unlogged under a logged table, and privileges
    // changed on an extension's function and on a catalog table
    let (stack, source) = given(
        "regression15",
        br#"create table tp (id int, at date) partition by range (at);
            create table tp1 partition of tp for values from ('2026-01-01') to ('2027-01-01');
            create table tp2 partition of tp for values from ('2027-01-01') to ('2028-01-01');
            create function noop() returns trigger language plpgsql as 'begin return new; end';
            create trigger audit after insert on tp for each row execute function noop();
            alter table tp1 disable trigger audit;
            alter table tp2 enable always trigger audit;
            create table idl (a int generated always as identity, b text);
            alter sequence idl_a_seq set unlogged;
            insert into idl (b) values ('x');
            create extension unaccent;
            revoke execute on function unaccent(text) from public;
            grant select on pg_catalog.pg_statistic to pg_monitor;"#,
    )
    .await;

    let record = stack.backup(&source, json!({ "jobs": 2 })).await;

    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    let target = assert_round_trip(&stack, &source, &manifest).await;
    let row = target
        .client()
        .await
        .unwrap()
        .query_one(
            "select (select string_agg(c.relname || ':' || t.tgenabled::text, ' ' order by c.relname) from pg_trigger t
                       join pg_class c on c.oid = t.tgrelid where t.tgname = 'audit'),
                    (select relpersistence::text from pg_class where relname = 'idl_a_seq'),
                    has_function_privilege('public', 'unaccent(text)', 'execute'),
                    has_table_privilege('pg_monitor', 'pg_catalog.pg_statistic', 'select')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, bool>(2), row.get::<_, bool>(3)),
        ("tp:O tp1:D tp2:A".into(), "u".into(), false, true)
    );
}

#[tokio::test]
async fn database_and_role_settings_follow_into_the_restored_database() {
    // GIVEN settings on the database and on a role in it (as `ALTER DATABASE … SET` leaves them)
    let (stack, source) = given("dbsettings", b"create table t (id int);").await;
    source
        .psql(
            format!(
                "alter database {db} set work_mem = '12MB';
                 alter database {db} set search_path = \"$user\", public, extensions;
                 alter role postgres in database {db} set statement_timeout = '5min';",
                db = source.name
            )
            .as_bytes(),
        )
        .await
        .unwrap();

    // WHEN it is backed up and restored with Backstop into a database of another name
    let record = stack.backup(&source, Value::Null).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let (_, _, target) = restore_into_new(&stack, &source, 2).await;
    let restored = target.name.clone();

    // THEN the restored database carries the same settings
    let admin = backstop_tests::connect(&admin_url()).await.unwrap();
    let settings = |db: String| {
        let admin = &admin;
        async move {
            admin
                .query(
                    "select coalesce(r.rolname, '-'), array_to_string(s.setconfig, ';') from pg_db_role_setting s
                     left join pg_roles r on r.oid = s.setrole join pg_database d on d.oid = s.setdatabase
                     where d.datname = $1 order by 1",
                    &[&db],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect::<Vec<_>>()
        }
    };
    let before = settings(source.name.clone()).await;
    assert_eq!(before.len(), 2, "{before:?}");
    assert_eq!(settings(restored.clone()).await, before);
}

#[tokio::test]
async fn partitions_triggers_and_column_settings_come_back_as_they_were() {
    // GIVEN what used to differ silently after a restore (issue 15): partitions with their own
    // defaults and their own column order, trigger states, a materialized view column's
    // compression, column privileges, and grants in an order that is not the grantees' names
    let (stack, source) = given(
        "silent15",
        br#"do $$ begin create role backstop_col; exception when duplicate_object or unique_violation then null; end $$;
            do $$ begin create role backstop_r1; exception when duplicate_object or unique_violation then null; end $$;
            do $$ begin create role backstop_r2; exception when duplicate_object or unique_violation then null; end $$;
            create table pt (id int not null, qty int default 2501, note text check (note <> '')) partition by range (id);
            create table pt1 partition of pt (qty default null) for values from (0) to (100);
            create table pt2 partition of pt for values from (100) to (200);
            alter table pt2 alter column qty set default 7;
            insert into pt values (1, 5, 'a'), (150, 6, 'b');
            create table odd (b int, a int);
            create table parts (a int, b int) partition by list (a);
            alter table parts attach partition odd for values in (1);
            insert into parts values (1, 2);
            create table trg (id int);
            create function trg_f() returns trigger language plpgsql as 'begin return new; end';
            create trigger t1 before insert on trg for each row execute function trg_f();
            create trigger t2 before insert on trg for each row execute function trg_f();
            create trigger t3 before insert on trg for each row execute function trg_f();
            alter table trg disable trigger t1;
            alter table trg enable always trigger t2;
            alter table trg enable replica trigger t3;
            create table big (id int, payload text);
            insert into big values (1, 'x');
            create materialized view mvc as select id, payload from big;
            alter materialized view mvc alter column payload set compression pglz;
            alter materialized view mvc alter column id set statistics 50;
            grant select (id) on big to backstop_col;
            grant update (payload) on big to backstop_col;
            grant select on big to backstop_r2;
            grant select on big to backstop_r1;"#,
    )
    .await;

    // WHEN a native backup set is taken, THEN it restores to the same schema, byte for byte in
    // pg_dump's eyes, and the same rows
    let record = stack.backup(&source, json!({ "jobs": 2 })).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    let target = assert_round_trip(&stack, &source, &manifest).await;
    let c = target.client().await.unwrap();
    let order: String = c
        .query_one("select string_agg(attname, ',' order by attnum) from pg_attribute where attrelid = 'odd'::regclass and attnum > 0", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(order, "b,a");
}

#[tokio::test]
async fn a_public_schema_dropped_and_created_again_round_trips() {
    // GIVEN a database whose `public` schema was reset (dropped and created again)
    let (stack, source) = given(
        "publicreset",
        b"drop schema public cascade; create schema public; comment on schema public is 'reset';
          create table public.t (id int primary key); insert into t values (1);",
    )
    .await;

    // WHEN it is backed up, THEN it restores (the target has its own `public`) to the same schema
    let record = stack.backup(&source, json!({})).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    assert_round_trip(&stack, &source, &manifest).await;
}

#[tokio::test]
async fn a_foreign_key_to_rows_left_out_is_written_not_valid_and_said() {
    // GIVEN audit rows referencing users, and a backup that leaves the users' rows out
    let (stack, source) = given(
        "fkexcluded",
        b"create table users (id int primary key);
          create table audit (id int primary key, user_id int constraint audit_user references users);
          insert into users values (1), (2); insert into audit values (1, 1), (2, 2);",
    )
    .await;
    let record = stack.backup(&source, json!({ "exclude_tables": ["users"] })).await;

    // THEN the backup says what it did to stay restorable
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let warnings = record.outputs["databases"][0]["warnings"].to_string();
    assert!(warnings.contains("audit_user") && warnings.contains("NOT VALID"), "{warnings}");
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    assert_eq!(manifest.warnings.len(), 1);
    // AND it restores, with the audit rows and the constraint (not validated)
    let sql = stored_sql(&stack, &manifest).await.unwrap();
    let target = TestDb::create("fkexcluded_restored").await.unwrap();
    target.psql(&sql).await.expect("the parts restore with psql -v ON_ERROR_STOP=1");
    let c = target.client().await.unwrap();
    let audit: i64 = c.query_one("select count(*) from audit", &[]).await.unwrap().get(0);
    let validated: bool = c
        .query_one("select convalidated from pg_constraint where conname = 'audit_user'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((audit, validated), (2, false));
}

/// A database with an object the native engine leaves to pg_dump (a subscription), and rows.
const UNWRITABLE: &[u8] =
    b"create table t (id int); create table audit (id int); insert into t values (1), (2);
    insert into audit values (7);
    create subscription half_made connection 'dbname=nowhere' publication p with (connect = false);";

#[tokio::test]
async fn pg_dump_stands_in_where_the_engine_cannot_write_an_object_and_says_so() {
    // GIVEN a database holding an operator, and a backup leaving audit's rows out
    let (stack, source) = given("fallback", UNWRITABLE).await;

    let record = stack.backup(&source, json!({ "exclude_tables": ["audit"] })).await;

    // THEN pg_dump dumped it, and the run record, the manifest and the subject say why
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let out = &record.outputs["databases"][0];
    assert_eq!(out["engine"], "pg_dump");
    let warnings = out["warnings"].to_string();
    assert!(warnings.contains("cannot dump subscription half_made"), "{warnings}");
    assert!(warnings.contains("dumped with pg_dump"), "{warnings}");
    assert!(record.summary.contains("1 warning"), "{}", record.summary);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    assert_eq!((manifest.engine.name.as_str(), manifest.warnings.len()), ("pg_dump", 1));
    // AND it restores: the subscription is there, t's rows are back, audit is there without
    // rows (the native meaning of exclude_tables, not pg_dump's -T)
    let sql = stored_sql(&stack, &manifest).await.unwrap();
    let target = TestDb::create("fallback_restored").await.unwrap();
    target.psql(&sql).await.expect("the dump restores with psql -v ON_ERROR_STOP=1");
    let c = target.client().await.unwrap();
    let row = c
        .query_one(
            "select (select count(*) from t), (select count(*) from audit),
               (select count(*) from pg_subscription where subname = 'half_made'
                  and subdbid = (select oid from pg_database where datname = current_database()))",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2)), (2, 0, 1));
}

#[tokio::test]
async fn an_object_the_engine_cannot_write_fails_the_backup_where_pg_dump_cannot_stand_in() {
    let (stack, source) = given("unsupported", UNWRITABLE).await;
    // A pg_dump older than any server this engine dumps, as in an outdated Lambda layer.
    let old = FakePgDump::new("unsupported", "pg_dump (PostgreSQL) 13.9").unwrap();
    let mut config = stack.config(DbConfig::Url(source.url.clone()));
    config.pg_dump = old.path.clone();
    let app = stack.app(config);

    for (payload, why) in [
        (json!({ "no_fallback": true }), "no_fallback is set"),
        (Value::Null, "pg_dump (PostgreSQL) 13.9 is older than the server"),
    ] {
        let record = run::execute::<backstop_core::backup::DbBackup>(&app, &payload, None).await;

        assert_eq!(record.status, Status::Failed);
        let error = record.error.unwrap();
        assert!(error.contains("cannot dump subscription half_made"), "{error}");
        assert!(error.contains(why), "{error}");
        assert_eq!(record.retryable, Some(false), "a kind the engine cannot write stays unwritable");
    }
    assert!(stack.keys().await.unwrap().iter().all(|k| k.starts_with("backstop/runs/")));
}

#[tokio::test]
async fn single_layout_gzip_restores_with_backstop_restore() {
    // GIVEN a native backup in one gzip object, without owners and privileges
    let (stack, source) = given("nsingle", &fidelity_sql()).await;
    let payload =
        json!({ "layout": "single", "compression": "gzip", "no_owner": true, "no_privileges": true });
    let record = stack.backup(&source, payload).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    assert_eq!(manifest.objects.len(), 1);
    assert!(manifest.objects[0].key.ends_with(".sql.gz"));
    let sql = String::from_utf8(stored_sql(&stack, &manifest).await.unwrap()).unwrap();
    assert!(!sql.contains("OWNER TO") && !sql.contains("GRANT "), "no owners, no privileges");

    // WHEN Backstop restores it (no psql) into a new database
    let target = format!("{}_restored", source.name);
    let request = restore_request(&source.name, &target, 1);
    let _cleanup = TestDb::adopt(&target);
    let app = stack.app(stack.config(DbConfig::Url(source.url.clone())));
    let report = restore(&app, &request).await.unwrap();

    // THEN every table has its rows and content
    assert!(report.objects.iter().all(|o| o.verified));
    let restored = backstop_tests::connect(&request.target_url).await.unwrap();
    assert_eq!(
        fingerprint_all(&source.client().await.unwrap()).await.unwrap(),
        fingerprint_all(&restored).await.unwrap()
    );
}

/// Every large object's oid, bytes, owner, grants and comment, as one string.
const LARGE_OBJECTS: &str =
    "select count(*)::text || ':' || coalesce(md5(string_agg(concat_ws(' ', oid, md5(lo_get(oid)),
      pg_get_userbyid(lomowner), lomacl, obj_description(oid, 'pg_largeobject')), ',' order by oid)), '')
    from pg_largeobject_metadata";

#[tokio::test]
async fn thirty_thousand_large_objects_stream_through_one_part_and_restore() {
    // GIVEN 30,000 large objects of 0 to 2,000 bytes, one of 40 kB (read in pieces), one
    // commented and granted, one owned by another role
    let (stack, source) = given(
        "nlobs",
        b"do $$ begin create role backstop_reader; exception when duplicate_object or unique_violation then null; end $$;
          select count(lo_from_bytea(0, decode(repeat(lpad(to_hex(g % 256), 2, '0'), g % 2001), 'hex')))
            from generate_series(1, 30000) g;
          do $$ declare o oid; begin
            o := lo_from_bytea(0, decode(repeat('0123456789abcdef', 5000), 'hex'));
            execute format('comment on large object %s is %L', o, 'forty kB');
            execute format('grant select, update on large object %s to backstop_reader', o);
            o := lo_create(0);
            execute format('alter large object %s owner to backstop_reader', o);
          end $$;",
    )
    .await;
    let expected: String = source.client().await.unwrap().query_one(LARGE_OBJECTS, &[]).await.unwrap().get(0);
    assert!(expected.starts_with("30002:"), "{expected}");

    // WHEN a native backup set is taken and restored by Backstop
    let manifest = native_backup(&stack, &source, &[("large object", 30002)]).await;
    let parts: Vec<&str> = manifest.objects.iter().map(|o| o.key.rsplit('/').next().unwrap()).collect();
    assert!(parts.contains(&"large-objects.sql.zst"), "{parts:?}");
    let (report, target_url, _target) = restore_into_new(&stack, &source, 2).await;

    // THEN every large object is back with its bytes, owner, grants and comment
    assert!(report.objects.iter().all(|o| o.verified));
    let restored = backstop_tests::connect(&target_url).await.unwrap();
    let got: String = restored.query_one(LARGE_OBJECTS, &[]).await.unwrap().get(0);
    assert_eq!(got, expected);

    // AND a schema-only backup leaves them out, with their comments and grants, and restores
    let record = stack.backup(&source, json!({ "schema_only": true, "layout": "single" })).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    let sql = String::from_utf8(stored_sql(&stack, &manifest).await.unwrap()).unwrap();
    assert!(!sql.contains("LARGE OBJECT") && !sql.contains("lo_create"), "no large objects");
    assert_eq!(manifest.counts.get("large object"), Some(&0));
}

/// A restore request for `target` (created) from the newest backup of `database`.
fn restore_request(database: &str, target: &str, jobs: usize) -> RestoreRequest {
    let source = RestoreSource::Latest { database: Some(database.to_owned()) };
    RestoreRequest { jobs, ..backstop_tests::restore_request(source, target) }
}

#[tokio::test]
async fn a_backup_set_restores_in_parallel_with_backstop_restore() {
    // GIVEN a native backup set of the fidelity schema
    let (stack, source) = given("npar", &fidelity_sql()).await;
    let record = stack.backup(&source, json!({ "jobs": 2 })).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);

    // WHEN Backstop restores it (no psql) with three connections replaying the data parts
    let target = format!("{}_restored", source.name);
    let request = restore_request(&source.name, &target, 3);
    let _cleanup = TestDb::adopt(&target);
    let app = stack.app(stack.config(DbConfig::Url(source.url.clone())));
    let report = restore(&app, &request).await.unwrap();

    // THEN schema and rows equal the source, and every table has the rows the manifest recorded
    assert!(report.objects.len() > 3 && report.objects.iter().all(|o| o.verified));
    assert_same_schema_and_rows(&source, &request.target_url).await;
    let customers = report.tables.iter().find(|t| t.table == "app.customers").unwrap();
    assert_eq!((customers.rows, customers.expected), (4, Some(4)));
}

#[tokio::test]
async fn a_missing_part_stops_the_restore_before_the_target_is_touched() {
    let (stack, source) =
        given("nmissing", b"create table a (id int); insert into a values (1); create table b (id int);")
            .await;
    let record = stack.backup(&source, Value::Null).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let manifest = stack.manifest_of(&record).await.unwrap().1;
    let part = manifest.objects.iter().find(|o| o.kind == "data").unwrap().key.clone();
    stack.s3.delete_object().bucket(&stack.bucket).key(&part).send().await.unwrap();

    let target = format!("{}_restored", source.name);
    let request = restore_request(&source.name, &target, 2);
    let _cleanup = TestDb::adopt(&target);
    let app = stack.app(stack.config(DbConfig::Url(source.url.clone())));
    let err = restore(&app, &request).await.unwrap_err().report();

    assert!(err.contains(&part), "the error names the missing part: {err}");
    let admin = backstop_tests::connect(&admin_url()).await.unwrap();
    let exists = admin.query_opt("select 1 from pg_database where datname = $1", &[&target]).await.unwrap();
    assert!(exists.is_none(), "nothing was created");
    // Nor with a number of connections out of bounds, which is named
    for jobs in [0, 33] {
        let err = restore(&app, &restore_request(&source.name, &target, jobs)).await.unwrap_err().report();
        assert!(err.contains(&format!("jobs: {jobs} is outside 1..=32")), "{err}");
    }
    assert!(
        admin.query_opt("select 1 from pg_database where datname = $1", &[&target]).await.unwrap().is_none()
    );
}

#[tokio::test]
async fn verify_restores_into_a_scratch_database_and_catches_a_copy_that_differs() {
    use backstop_core::restore::Verify;
    // GIVEN a native backup
    let (stack, source) = given("nverify", &fidelity_sql()).await;
    let record = stack.backup(&source, Value::Null).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let app = stack.app(stack.config(DbConfig::Url(source.url.clone())));
    let admin = backstop_tests::connect(&admin_url()).await.unwrap();
    let scratch_left = || async {
        admin
            .query_one("select count(*) from pg_database where datname like 'backstop_verify_%'", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let before = scratch_left().await;

    // WHEN verify runs on the newest backup
    let verified = run::execute::<Verify>(&app, &json!({ "database": source.name }), None).await;

    // THEN every table matched, the scratch database is gone, and the outcome was published
    assert_eq!(verified.status, Status::Succeeded, "{:?}", verified.error);
    let tables = verified.outputs["tables"].as_array().unwrap();
    assert!(tables.len() >= 10 && tables.iter().all(|t| t["matches"] == true), "{tables:?}");
    assert_eq!(scratch_left().await, before, "the scratch database was dropped");
    let outcomes = stack.outcomes(2, Duration::from_secs(10)).await.unwrap();
    assert!(
        outcomes
            .iter()
            .any(|o| o.attributes["job"]["Value"] == "verify"
                && o.attributes["status"]["Value"] == "succeeded")
    );

    // WHEN the manifest says a table held something else than what restores
    let manifest_key = record.outputs["databases"][0]["manifest_key"].as_str().unwrap().to_owned();
    let mut manifest = stack.manifest_of(&record).await.unwrap().1;
    let t = manifest.tables.iter_mut().find(|t| t.name == "orders").unwrap();
    t.content_hash = Some(format!("xxh3sum:{}", "0".repeat(32)));
    let body = serde_json::to_vec(&manifest).unwrap();
    stack.s3.put_object().bucket(&stack.bucket).key(&manifest_key).body(body.into()).send().await.unwrap();
    let failed = run::execute::<Verify>(&app, &json!({ "key": manifest_key }), None).await;

    // THEN verify fails naming the table, and still drops the scratch database
    assert_eq!(failed.status, Status::Failed);
    let error = failed.error.unwrap();
    assert!(error.contains("differs from the backup in app.orders"), "{error}");
    assert_eq!(scratch_left().await, before);
}

#[tokio::test]
async fn zstd_takes_a_cheaper_level_only_for_parts_it_compresses_better() {
    // GIVEN a shop's orders (references and notes are digests: random-looking hex) and a table
    // of English text (the server's own object descriptions)
    let (stack, source) = given(
        "nlevel",
        b"create table orders (id int primary key, status text, total numeric(12, 2), note text,
                                   payload jsonb, created timestamptz);
              insert into orders
                select g, (array['new', 'paid', 'shipped', 'refunded'])[1 + g % 4], (g % 100000) / 100.0,
                       case when g % 3 = 0 then 'note ' || md5(g::text) end,
                       jsonb_build_object('sku', 'SKU-' || (g % 5000), 'qty', 1 + g % 7, 'ref', md5((g * 31)::text)),
                       timestamptz '2026-01-01' - g * interval '1 second'
                from generate_series(1, 30000) g;
              create table notes as select objoid::int8 as id, description as body from pg_description;",
    )
    .await;

    // WHEN it is backed up with the default level (the backup restores exactly), then with level
    // 3 asked for
    let record = stack.backup(&source, json!({ "jobs": 2 })).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let (_, auto) = stack.manifest_of(&record).await.unwrap();
    assert_round_trip(&stack, &source, &auto).await;
    let record = stack.backup(&source, json!({ "jobs": 2, "compression_level": 3 })).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let (_, fixed) = stack.manifest_of(&record).await.unwrap();
    let record = stack.backup(&source, json!({ "layout": "single" })).await;
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let (_, single) = stack.manifest_of(&record).await.unwrap();

    // THEN the orders' part took a cheaper level and came out smaller than at level 3, the text
    // kept level 3, a single object (whose start says little about the rest) level 3, and the
    // manifests say so
    let part = |m: &Manifest, table: &str| {
        m.objects.iter().find(|o| o.table.as_deref() == Some(table)).cloned().unwrap()
    };
    assert!(auto.compression.adaptive && !fixed.compression.adaptive);
    let (orders, orders3) = (part(&auto, "public.orders"), part(&fixed, "public.orders"));
    assert!(orders.level < Some(3), "{orders:?}");
    assert!(
        orders.bytes < orders3.bytes,
        "{} at level {:?} vs {} at 3",
        orders.bytes,
        orders.level,
        orders3.bytes
    );
    assert_eq!(part(&auto, "public.notes").level, Some(3));
    assert!(fixed.objects.iter().all(|o| o.level == Some(3)));
    assert!(!single.compression.adaptive && single.objects[0].level == Some(3), "{:?}", single.objects);
}

#[tokio::test]
async fn two_runs_started_together_keep_two_whole_backups() {
    // GIVEN a database, and two backups of it started at once (a schedule that fires twice)
    let (stack, source) = given(
        "ntwice",
        b"create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 5000) g;",
    )
    .await;
    let (a, b) = tokio::join!(
        stack.backup(&source, json!({ "jobs": 2 })),
        stack.backup(&source, json!({ "jobs": 2 }))
    );

    // THEN both succeeded under keys of their own, and each one's objects are what its manifest says
    assert_eq!((a.status, b.status), (Status::Succeeded, Status::Succeeded), "{:?} {:?}", a.error, b.error);
    let ((ka, ma), (kb, mb)) = (stack.manifest_of(&a).await.unwrap(), stack.manifest_of(&b).await.unwrap());
    assert_ne!(ka, kb);
    for m in [&ma, &mb] {
        stored_sql(&stack, m).await.expect("every object matches its manifest");
    }
}

#[tokio::test]
async fn timeouts_set_on_the_database_do_not_cut_the_backup_or_its_restore_short() {
    // GIVEN a database whose settings would cut a long statement, an idle transaction (the
    // coordinator's, while the workers copy) and a lock wait short
    let (stack, source) = given(
        "timeouts",
        b"create table big (id int primary key, body text);
          insert into big select g, md5(g::text) from generate_series(1, 300000) g;
          create table other (id int); insert into other values (1);",
    )
    .await;
    source
        .psql(
            format!(
                "alter database {db} set statement_timeout = '20ms';
                 alter database {db} set idle_in_transaction_session_timeout = '50ms';
                 alter database {db} set lock_timeout = '1ms';",
                db = source.name
            )
            .as_bytes(),
        )
        .await
        .unwrap();

    // WHEN it is backed up with two workers and restored with Backstop (the restored database
    // gets the same settings, last)
    let record = stack.backup(&source, json!({ "jobs": 2, "split_mb": 1 })).await;

    // THEN both complete, with every row
    assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
    let (report, _, _cleanup) = restore_into_new(&stack, &source, 2).await;
    let big = report.tables.iter().find(|t| t.table == "public.big").unwrap();
    assert_eq!((big.rows, big.expected), (300_000, Some(300_000)));
}
