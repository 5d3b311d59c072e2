//! Replaying plain dumps without psql, against a real PostgreSQL.

use backstop_core::Error;
use backstop_core::restore::apply_plain;
use backstop_tests::{TestDb, fingerprint, pg_dump_plain, schema_of, shared_data};

#[tokio::test]
async fn pagila_dump_replays_to_an_identical_database() {
    // GIVEN the Pagila schema (partitions, domains, triggers, views, …) with rows of our own
    let Some(schema) = shared_data("pagila-schema.sql") else {
        return;
    };
    let source = TestDb::create("pagila").await.unwrap();
    source.psql(&std::fs::read(schema).unwrap()).await.unwrap();
    source
        .psql(
            r#"insert into actor (first_name, last_name) select 'Actor' || g, E'O''Name\t' || g from generate_series(1, 300) g;
                insert into language (name) values ('English'), ('Français'), ('日本語');
                insert into category (name) select 'Cat ' || g from generate_series(1, 20) g;"#
                .as_bytes(),
        )
        .await
        .unwrap();
    let dump = pg_dump_plain(&source.url).await.unwrap();

    // WHEN the dump is replayed by Backstop (no psql) into a fresh database
    let target = TestDb::create("pagila_restored").await.unwrap();
    let client = target.client().await.unwrap();
    let stats = apply_plain(&client, "pagila.sql", &dump[..], false)
        .await
        .unwrap();

    // THEN schema and contents are the same
    assert!(stats.statements > 100 && stats.copies > 10, "{stats:?}");
    assert_eq!(
        schema_of(&source.url).await.unwrap(),
        schema_of(&target.url).await.unwrap()
    );
    let (a, b) = (
        fingerprint(&source.client().await.unwrap()).await.unwrap(),
        fingerprint(&client).await.unwrap(),
    );
    assert_eq!(a, b);
    assert!(a.iter().any(|(t, n, _)| t == "actor" && *n == 300));
}

#[tokio::test]
async fn an_sql_error_stops_the_replay_at_its_line_and_single_transaction_keeps_nothing() {
    let target = TestDb::create("restore_err").await.unwrap();
    let client = target.client().await.unwrap();
    let script = b"CREATE TABLE a (id int primary key);\nCOPY a (id) FROM stdin;\n1\n2\n\\.\n\nINSERT INTO missing VALUES (1);\nCREATE TABLE b (id int);\n";

    let err = apply_plain(&client, "broken.sql", &script[..], true)
        .await
        .unwrap_err();

    match &err {
        Error::Restore { dump, line, reason } => {
            assert_eq!((dump.as_str(), *line), ("broken.sql", 7));
            assert!(reason.contains("\"missing\" does not exist"), "{reason}");
        }
        other => panic!("expected a restore error, got {other:?}"),
    }
    let tables: i64 = client
        .query_one(
            "select count(*) from pg_tables where schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "the single transaction was rolled back");

    // Without it, what ran before the error stays (as with psql -v ON_ERROR_STOP=1).
    let err = apply_plain(&client, "broken.sql", &script[..], false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Restore { line: 7, .. }));
    let rows: i64 = client
        .query_one("select count(*) from a", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2);
}
