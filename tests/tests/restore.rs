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
    let stats = apply_plain(&client, "pagila.sql", &dump[..], false).await.unwrap();

    // THEN schema and contents are the same
    assert!(stats.statements > 100 && stats.copies > 10, "{stats:?}");
    assert_eq!(schema_of(&source.url).await.unwrap(), schema_of(&target.url).await.unwrap());
    let (a, b) =
        (fingerprint(&source.client().await.unwrap()).await.unwrap(), fingerprint(&client).await.unwrap());
    assert_eq!(a, b);
    assert!(a.iter().any(|(t, n, _)| t == "actor" && *n == 300));
}

#[tokio::test]
async fn an_sql_error_stops_the_replay_at_its_line_and_single_transaction_keeps_nothing() {
    let target = TestDb::create("restore_err").await.unwrap();
    let client = target.client().await.unwrap();
    let script = b"CREATE TABLE a (id int primary key);\nCOPY a (id) FROM stdin;\n1\n2\n\\.\n\nINSERT INTO missing VALUES (1);\nCREATE TABLE b (id int);\n";

    let err = apply_plain(&client, "broken.sql", &script[..], true).await.unwrap_err();

    match &err {
        Error::Restore { dump, line, reason } => {
            assert_eq!((dump.as_str(), *line), ("broken.sql", 7));
            assert!(reason.contains("\"missing\" does not exist"), "{reason}");
        }
        other => panic!("expected a restore error, got {other:?}"),
    }
    let tables: i64 = client
        .query_one("select count(*) from pg_tables where schemaname = 'public'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "the single transaction was rolled back");

    // Without it, what ran before the error stays (as with psql -v ON_ERROR_STOP=1).
    let err = apply_plain(&client, "broken.sql", &script[..], false).await.unwrap_err();
    assert!(matches!(err, Error::Restore { line: 7, .. }));
    let rows: i64 = client.query_one("select count(*) from a", &[]).await.unwrap().get(0);
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn statements_sent_in_batches_behave_as_one_by_one() {
    // GIVEN a dump whose statements the replay sends together: one that may not run in a
    // transaction block, an enum value used right after it is added, settings that change how
    // the text after them is read, and an error in the middle of a run of statements
    let target = TestDb::create("restore_batch").await.unwrap();
    let client = target.client().await.unwrap();
    let script = br"CREATE TABLE s (v text);
SET standard_conforming_strings = off;
SET escape_string_warning = off;
INSERT INTO s VALUES ('one\\backslash');
SET standard_conforming_strings = on;
INSERT INTO s VALUES ('two\\backslashes');
COPY s (v) FROM stdin;
copied
\.
CREATE TYPE mood AS ENUM ('sad');
ALTER TYPE mood ADD VALUE 'happy';
CREATE TABLE m (id int, x mood DEFAULT 'happy');
INSERT INTO m (id) VALUES (1);
CREATE INDEX CONCURRENTLY m_x ON m (x);
VACUUM m;
INSERT INTO missing VALUES (1);
CREATE TABLE after_error (id int);
";

    // WHEN it is replayed (not in one transaction: batches are on)
    let err = apply_plain(&client, "batch.sql", &script[..], false).await.unwrap_err();

    // THEN the error names its own line, everything before it is there, nothing after it
    assert!(matches!(err, Error::Restore { line: 16, .. }), "{err:?}");
    let mood: String = client.query_one("select x::text from m", &[]).await.unwrap().get(0);
    assert_eq!(mood, "happy");
    let valid: bool = client
        .query_one("select indisvalid from pg_index where indexrelid = 'm_x'::regclass", &[])
        .await
        .unwrap()
        .get(0);
    assert!(valid);
    let texts: Vec<String> = client
        .query("select v from s order by v desc", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(texts, vec![r"two\\backslashes", r"one\backslash", "copied"]);
    let after: i64 = client
        .query_one("select count(*) from pg_tables where tablename = 'after_error'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, 0);
}

mod from_backups {
    use backstop_core::backup::DbBackup;
    use backstop_core::catalog::{history, list_backups};
    use backstop_core::config::DbConfig;
    use backstop_core::restore::{RestoreRequest, RestoreSource, restore};
    use backstop_core::run::{self, Status};
    use backstop_tests::{Stack, TestDb, admin_url, fingerprint, pg_dump_plain};
    use serde_json::json;

    fn request(source: RestoreSource, target: &str) -> RestoreRequest {
        RestoreRequest { single_transaction: true, ..backstop_tests::restore_request(source, target) }
    }

    async fn exists(name: &str) -> bool {
        let admin = backstop_tests::connect(&admin_url()).await.unwrap();
        admin.query_opt("select 1 from pg_database where datname = $1", &[&name]).await.unwrap().is_some()
    }

    async fn backed_up(label: &str) -> (Stack, TestDb, backstop_core::App) {
        let stack = Stack::new(label).await.unwrap();
        let db = TestDb::create(label).await.unwrap();
        db.psql(b"create table t (id int primary key, v text); insert into t select g, repeat('x', g % 50) from generate_series(1, 5000) g;
                  create table u (id int primary key, t_id int references t); insert into u select g, g from generate_series(1, 100) g; analyze;")
            .await
            .unwrap();
        let app = stack.app(stack.config(DbConfig::Url(db.url.clone())));
        let record = run::execute::<DbBackup>(&app, &json!({"tag": "drill"}), None).await;
        assert_eq!(record.status, Status::Succeeded, "{:?}", record.error);
        (stack, db, app)
    }

    #[tokio::test]
    async fn list_history_and_restore_latest_into_a_new_database() {
        let (stack, db, app) = backed_up("rlatest").await;
        let failed = run::execute::<DbBackup>(&app, &json!({"databases": ["does_not_exist_db"]}), None).await;
        assert_eq!(failed.status, Status::Failed);

        let backups = list_backups(app.store.as_ref(), "backstop/", None, None).await.unwrap().backups;
        assert_eq!(backups.len(), 1, "the failed run left no backup");
        assert_eq!(backups[0].manifest.database, db.name);
        let runs = history(app.store.as_ref(), "backstop/", Some("db-backup"), None, false).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].run_id, failed.run_id, "newest first");
        let failures = history(app.store.as_ref(), "backstop/", None, None, true).await.unwrap();
        assert_eq!(failures.len(), 1);

        // Staging sharing the bucket sees none of this environment's backups.
        let mut staging = stack.config(DbConfig::Url(db.url.clone()));
        staging.env = "staging".into();
        let staging = stack.app(staging);
        let err = restore(
            &staging,
            &request(RestoreSource::Latest { database: Some(db.name.clone()) }, "unused_db"),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("no full backup") && err.to_string().contains("staging"), "{err}");

        let target = format!("{}_restored", db.name);
        let _cleanup = TestDb::adopt(&target);
        let report =
            restore(&app, &request(RestoreSource::Latest { database: Some(db.name.clone()) }, &target))
                .await
                .unwrap();
        assert!(report.objects.iter().all(|o| o.verified));
        assert_eq!(report.target_state, "absent");
        let t = report.tables.iter().find(|t| t.table == "public.t").unwrap();
        assert_eq!((t.rows, t.estimate), (5000, Some(5000)));
        let restored = backstop_tests::connect(&backstop_tests::database_url(&target)).await.unwrap();
        assert_eq!(
            fingerprint(&db.client().await.unwrap()).await.unwrap(),
            fingerprint(&restored).await.unwrap()
        );
    }

    #[tokio::test]
    async fn a_corrupt_object_stops_the_restore_before_the_target_is_touched() {
        let (stack, db, app) = backed_up("rcorrupt").await;
        let key = list_backups(app.store.as_ref(), "backstop/", None, None).await.unwrap().backups[0]
            .manifest
            .objects[0]
            .key
            .clone();
        let mut bytes = stack.get(&key).await.unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        stack.s3.put_object().bucket(&stack.bucket).key(&key).body(bytes.into()).send().await.unwrap();

        let target = format!("{}_restored", db.name);
        let _cleanup = TestDb::adopt(&target);
        let err = restore(&app, &request(RestoreSource::Key(key), &target)).await.unwrap_err().report();

        assert!(err.contains("corrupt"), "{err}");
        assert!(!exists(&target).await, "nothing was created");
    }

    #[tokio::test]
    async fn non_empty_targets_need_force_or_clean_and_dry_run_changes_nothing() {
        let (_stack, db, app) = backed_up("rtarget").await;
        let target = TestDb::create("rtarget_busy").await.unwrap();
        target.psql(b"create table keep_me (id int); insert into keep_me values (1);").await.unwrap();
        let mut req = request(RestoreSource::Latest { database: Some(db.name.clone()) }, &target.name);

        let err = restore(&app, &req).await.unwrap_err().report();
        assert!(err.contains("not empty") && err.contains("--clean"), "{err}");

        req.clean = true;
        req.dry_run = true;
        let plan = restore(&app, &req).await.unwrap();
        assert!(plan.actions[0].contains("drop it"), "{:?}", plan.actions);
        let c = target.client().await.unwrap();
        assert_eq!(c.query_one("select count(*) from keep_me", &[]).await.unwrap().get::<_, i64>(0), 1);

        // --clean with another session connected: it is terminated, the target replaced.
        req.dry_run = false;
        restore(&app, &req).await.unwrap();
        assert!(c.query_one("select 1", &[]).await.is_err(), "the open connection was terminated");
        let c = target.client().await.unwrap();
        assert!(c.query_one("select count(*) from keep_me", &[]).await.is_err());
        assert_eq!(fingerprint(&db.client().await.unwrap()).await.unwrap(), fingerprint(&c).await.unwrap());
    }

    #[tokio::test]
    async fn plain_pg_dump_files_restore_gzip_and_zstd() {
        let (_stack, db, app) = backed_up("rfile").await;
        let dump = pg_dump_plain(&db.url).await.unwrap();
        let dir = std::env::temp_dir().join(format!("backstop-{}", db.name));
        std::fs::create_dir_all(&dir).unwrap();
        for (ext, cmd) in [("sql", None), ("sql.gz", Some("gzip")), ("sql.zst", Some("zstd"))] {
            let path = dir.join(format!("cron.{ext}"));
            let bytes = match cmd {
                None => dump.clone(),
                Some(tool) => {
                    let mut child = std::process::Command::new(tool)
                        .arg("-c")
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .unwrap();
                    let mut stdin = child.stdin.take().unwrap();
                    let input = dump.clone();
                    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
                    let out = child.wait_with_output().unwrap();
                    writer.join().unwrap().unwrap();
                    out.stdout
                }
            };
            std::fs::write(&path, bytes).unwrap();
            let target = format!("{}_{}", db.name, ext.replace('.', "_"));
            let _cleanup = TestDb::adopt(&target);
            let report = restore(&app, &request(RestoreSource::File(path), &target)).await.unwrap();
            assert!(!report.objects[0].verified, "a file without a manifest cannot be verified");
            let restored = backstop_tests::connect(&backstop_tests::database_url(&target)).await.unwrap();
            assert_eq!(
                fingerprint(&db.client().await.unwrap()).await.unwrap(),
                fingerprint(&restored).await.unwrap(),
                "{ext}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Names of the foreign keys in `client`'s database.
    async fn foreign_keys(client: &tokio_postgres::Client) -> Vec<String> {
        let rows =
            client.query("select conname::text from pg_constraint where contype = 'f' order by 1", &[]);
        rows.await.unwrap().iter().map(|r| r.get(0)).collect()
    }

    #[tokio::test]
    async fn tables_restores_only_the_named_tables_rows_from_a_backup_set() {
        // GIVEN a native backup set of t (5000 rows) and u (100 rows, u.t_id references t)
        let (_stack, db, app) = backed_up("rtables").await;
        let manifest =
            &list_backups(app.store.as_ref(), "backstop/", None, None).await.unwrap().backups[0].manifest;
        let source = fingerprint(&db.client().await.unwrap()).await.unwrap();

        // WHEN only u's rows are restored
        let target = format!("{}_u", db.name);
        let _cleanup = TestDb::adopt(&target);
        let latest = RestoreSource::Latest { database: Some(db.name.clone()) };
        let mut req = RestoreRequest { tables: vec!["public.u".into()], ..request(latest.clone(), &target) };
        let report = restore(&app, &req).await.unwrap();

        // THEN u equals the source, t is there but empty, and the foreign key that would fail
        // without t's rows is left out and said
        let restored = backstop_tests::connect(&backstop_tests::database_url(&target)).await.unwrap();
        let got = fingerprint(&restored).await.unwrap();
        assert_eq!(got.iter().find(|f| f.0 == "u"), source.iter().find(|f| f.0 == "u"));
        assert_eq!(got.iter().find(|f| f.0 == "t").map(|f| f.1), Some(0));
        assert_eq!(foreign_keys(&restored).await, Vec::<String>::new());
        let applied = report.applied.as_ref().unwrap();
        assert!(applied.skipped_constraints[0].contains("u_t_id_fkey"), "{:?}", applied.skipped_constraints);
        assert_eq!(applied.copy_rows, 100);
        // only u's data part was read; the summary counts u against the manifest
        let t_part = manifest.objects.iter().find(|o| o.table.as_deref() == Some("public.t")).unwrap();
        assert!(report.objects.iter().all(|o| o.key != t_part.key && o.verified));
        assert_eq!(report.objects.len(), manifest.objects.len() - 1);
        assert_eq!(report.tables.len(), 1);
        assert_eq!((report.tables[0].rows, report.tables[0].expected), (100, Some(100)));

        // AND a pattern that matches nothing is named, with the tables there are, before any change
        let typo = format!("{}_typo", db.name);
        let _cleanup2 = TestDb::adopt(&typo);
        req = RestoreRequest { tables: vec!["public.uu".into()], ..request(latest, &typo) };
        let err = restore(&app, &req).await.unwrap_err().report();
        assert!(err.contains("public.uu") && err.contains("public.t, public.u"), "{err}");
        assert!(!exists(&typo).await, "nothing was created");
    }

    #[tokio::test]
    async fn tables_filters_a_plain_pg_dump_file_too() {
        // GIVEN a plain pg_dump file of t and u (u.t_id references t)
        let (_stack, db, app) = backed_up("rtabfile").await;
        let path = std::env::temp_dir().join(format!("backstop-{}.sql", db.name));
        std::fs::write(&path, pg_dump_plain(&db.url).await.unwrap()).unwrap();
        let source = fingerprint(&db.client().await.unwrap()).await.unwrap();

        // WHEN only t's rows are restored (t* matches t only)
        let target = format!("{}_t", db.name);
        let _cleanup = TestDb::adopt(&target);
        let req = RestoreRequest {
            tables: vec!["t*".into()],
            ..request(RestoreSource::File(path.clone()), &target)
        };
        let report = restore(&app, &req).await.unwrap();

        // THEN t equals the source, u is empty, and u's foreign key (which holds) is kept
        let restored = backstop_tests::connect(&backstop_tests::database_url(&target)).await.unwrap();
        let got = fingerprint(&restored).await.unwrap();
        assert_eq!(got.iter().find(|f| f.0 == "t"), source.iter().find(|f| f.0 == "t"));
        assert_eq!(got.iter().find(|f| f.0 == "u").map(|f| f.1), Some(0));
        assert_eq!(foreign_keys(&restored).await, vec!["u_t_id_fkey".to_string()]);
        let applied = report.applied.as_ref().unwrap();
        assert_eq!((applied.skipped_copies, applied.skipped_constraints.len()), (1, 0));

        // AND a pattern no table of the dump matches fails the restore, naming it
        let typo = format!("{}_typo", db.name);
        let _cleanup2 = TestDb::adopt(&typo);
        let req = RestoreRequest {
            tables: vec!["nope".into()],
            ..request(RestoreSource::File(path.clone()), &typo)
        };
        let err = restore(&app, &req).await.unwrap_err().report();
        assert!(err.contains("nope") && err.contains("matched no table"), "{err}");
        std::fs::remove_file(path).unwrap();
    }

    #[tokio::test]
    async fn single_transaction_spans_every_part_of_a_set() {
        // GIVEN a backup set, and a target whose index named u_pkey makes post-data fail
        let (_stack, db, app) = backed_up("rsingle").await;
        let target = TestDb::create("rsingle_busy").await.unwrap();
        target.psql(b"create table other (id int); create index u_pkey on other (id);").await.unwrap();
        let latest = RestoreSource::Latest { database: Some(db.name.clone()) };
        let req = RestoreRequest { force: true, ..request(latest, &target.name) };
        assert!(req.single_transaction);

        // WHEN the restore fails in its last part
        let err = restore(&app, &req).await.unwrap_err().report();

        // THEN the tables and rows of the earlier parts are gone with it
        assert!(err.contains("post-data") && err.contains("u_pkey"), "{err}");
        let c = target.client().await.unwrap();
        let tables: Vec<String> = c
            .query("select tablename::text from pg_tables where schemaname = 'public' order by 1", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(tables, vec!["other".to_string()]);
    }
}
