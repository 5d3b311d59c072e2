//! Property test of the plain-SQL reader over a real PostgreSQL: tables with random hostile
//! identifiers (quotes, semicolons, backslashes, dollar signs, comment markers, non-ASCII) and
//! random values (the same, plus tabs, newlines, `\.` lines, NULLs, arrays, bytes), dumped by
//! pg_dump as COPY, INSERT or column INSERT statements, replayed by Backstop (no psql) into a
//! fresh database: schema, comments and every row must come back the same.

use backstop_core::restore::apply_plain;
use backstop_tests::{TestDb, fingerprint_all, pg_dump_plain_with, schema_of};
use proptest::prelude::*;

/// Characters that break naive splitters and quoting.
const HOSTILE: &str = "[a-zA-Z0-9_ \"';$\\\\.(),\\-*/éß日本😀]";

fn ident() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{HOSTILE}{{1,16}}")).expect("regex")
}

fn text() -> impl Strategy<Value = Option<String>> {
    let line = proptest::string::string_regex(&format!("({HOSTILE}|\t|\r|\n|\\\\\\.\n|\\$\\$|--){{0,24}}"))
        .expect("regex");
    proptest::option::weighted(0.85, line)
}

/// One row: a text, a text array and bytes, each possibly NULL (the array's elements too).
type Row = (Option<String>, Vec<Option<String>>, Option<Vec<u8>>);

#[derive(Debug, Clone)]
struct Case {
    schema: String,
    table: String,
    columns: [String; 3],
    rows: Vec<Row>,
    comment: String,
    dump: &'static str,
}

fn case() -> impl Strategy<Value = Case> {
    let row = (text(), proptest::collection::vec(text(), 0..4), proptest::option::of(any::<Vec<u8>>()));
    (
        ident(),
        ident(),
        [ident(), ident(), ident()],
        proptest::collection::vec(row, 0..12),
        text(),
        prop_oneof![Just("copy"), Just("--inserts"), Just("--column-inserts")],
    )
        .prop_map(|(schema, table, columns, rows, comment, dump)| Case {
            schema,
            table,
            // Distinct names however they were drawn.
            columns: [0, 1, 2].map(|i| format!("{}{i}", columns[i])),
            rows,
            comment: comment.unwrap_or_default(),
            dump,
        })
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

async fn round_trip(case: &Case) {
    let source = TestDb::create("sqlprop").await.unwrap();
    let client = source.client().await.unwrap();
    let (s, t) = (quote(&case.schema), quote(&case.table));
    let [a, b, c] = case.columns.each_ref().map(|c| quote(c));
    client
        .batch_execute(&format!(
            "create schema {s}; create table {s}.{t} (id serial primary key, {a} text, {b} text[], {c} bytea);"
        ))
        .await
        .unwrap();
    client.execute(&format!("comment on table {s}.{t} is {}", literal(&case.comment)), &[]).await.unwrap();
    let insert = format!("insert into {s}.{t} ({a}, {b}, {c}) values ($1, $2, $3)");
    for (x, y, z) in &case.rows {
        client.execute(&insert, &[x, y, z]).await.unwrap();
    }
    let options: &[&str] = if case.dump == "copy" { &[] } else { &[case.dump] };
    let dump = pg_dump_plain_with(&source.url, options).await.unwrap();

    let target = TestDb::create("sqlprop_r").await.unwrap();
    let restored = target.client().await.unwrap();
    apply_plain(&restored, "prop.sql", &dump[..], false).await.unwrap_or_else(|e| panic!("{}", e.report()));

    assert_eq!(schema_of(&source.url).await.unwrap(), schema_of(&target.url).await.unwrap());
    assert_eq!(fingerprint_all(&client).await.unwrap(), fingerprint_all(&restored).await.unwrap());
    let comment = "select obj_description(c.oid, 'pg_class') from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where n.nspname = $1 and c.relname = $2";
    let got: Option<String> = restored.query_one(comment, &[&case.schema, &case.table]).await.unwrap().get(0);
    assert_eq!(got.unwrap_or_default(), case.comment);
}

/// `text` as a standard SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

proptest! {
    // Each case creates two databases and runs pg_dump: a few dozen cover the shapes.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn pg_dump_output_of_hostile_names_and_values_replays_to_the_same_database(case in case()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(round_trip(&case));
    }
}
