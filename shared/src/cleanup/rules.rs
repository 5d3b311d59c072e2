//! Cleanup rules as users write them (payload or `BACKSTOP_CLEANUP_RULES`), and their pure
//! parts: durations, identifier quoting, and the SQL each rule runs, built from catalog facts.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// One rule: delete rows of `table` whose `timestamp_column` is older than `older_than` and
/// that match every `filter` predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `table` or `schema.table` (names as stored, not quoted).
    pub table: String,
    pub timestamp_column: String,
    /// `90d`, `12h`, `6w`, `30m`, `45s`.
    pub older_than: String,
    #[serde(default)]
    pub filter: Vec<Predicate>,
}

/// A simple predicate; values are always bound as parameters, never spliced into SQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    pub column: String,
    pub op: Op,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "is null")]
    IsNull,
    #[serde(rename = "is not null")]
    IsNotNull,
    #[serde(rename = "in")]
    In,
}

impl Rule {
    /// The rule's name in messages.
    pub fn label(&self, index: usize) -> String {
        format!("rules[{index}] ({})", self.table)
    }

    /// `(schema, table)`; `schema` is `None` when unqualified (resolved by search_path).
    pub fn table_parts(&self) -> (Option<&str>, &str) {
        match self.table.split_once('.') {
            Some((s, t)) => (Some(s), t),
            None => (None, &self.table),
        }
    }
}

pub use crate::payload::parse_duration;

pub use crate::db::quote_ident;

/// A scalar JSON value as the text PostgreSQL casts into the column's type.
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `format_type` output, used in casts (server-produced, so safe to splice).
    pub sql_type: String,
}

/// What the catalog says about a rule's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFacts {
    pub oid: u32,
    /// Schema-qualified, quoted name.
    pub qualified: String,
    pub timestamp: Column,
    pub primary_key: Vec<Column>,
    /// Filter columns, in the order of the rule's predicates.
    pub filter_columns: Vec<Column>,
}

/// The SQL of one rule, with `$1` = cutoff (RFC 3339 text), `$2` = limit, `$3..` = filter values, then the
/// keyset cursor (timestamp and primary key as text) for batches after the first.
///
/// Rows are named by the table they are stored in (`tableoid`) and their primary key: on an
/// inheritance parent a key is unique only within each table, so a child row with the same
/// key as a deleted row stays. The keyset is the timestamp and the key's other columns (a
/// partitioned table's key usually holds the timestamp already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSql {
    /// Counts matching rows (at most `$2`), oldest and newest timestamp (dry run, remaining).
    pub count: String,
    /// Deletes the first batch; returns the batch size and its last key.
    pub first_batch: String,
    /// Deletes the batch after the cursor.
    pub next_batch: String,
    /// Selects (without deleting) the keys of a batch, then the row's `tableoid`, for the
    /// row-by-row fallback.
    pub select_first: String,
    pub select_next: String,
    /// Deletes one row (`$1` = tableoid, `$2..` = primary key, as text).
    pub delete_one: String,
    /// Number of filter parameters.
    pub filter_params: usize,
    /// The rule's condition (unqualified columns of the table), for counts of referencing rows.
    pub condition: String,
    /// Columns in the keyset (the cursor's length).
    pub key_len: usize,
    /// Where each primary-key column sits in the keyset.
    pub pk_positions: Vec<usize>,
}

/// Builds a rule's SQL from catalog facts. Pure: pinned by tests.
pub fn build_sql(rule: &Rule, facts: &TableFacts) -> RuleSql {
    let col = |c: &Column| quote_ident(&c.name);
    let list = |cols: &[&Column], f: &dyn Fn(&Column) -> String| {
        cols.iter().map(|c| f(c)).collect::<Vec<_>>().join(", ")
    };
    let ts = col(&facts.timestamp);
    let mut conditions = vec![format!("{ts} < CAST($1::text AS {})", facts.timestamp.sql_type)];
    let mut param = 3;
    for (p, column) in rule.filter.iter().zip(&facts.filter_columns) {
        let c = col(column);
        let cast = |n: usize| format!("CAST(${n}::text AS {})", column.sql_type);
        let cond = match p.op {
            Op::IsNull => format!("{c} IS NULL"),
            Op::IsNotNull => format!("{c} IS NOT NULL"),
            Op::In => format!("{c} = ANY(CAST(${param}::text[] AS {}[]))", column.sql_type),
            Op::Eq => format!("{c} = {}", cast(param)),
            Op::Ne => format!("{c} <> {}", cast(param)),
            Op::Lt => format!("{c} < {}", cast(param)),
            Op::Gt => format!("{c} > {}", cast(param)),
        };
        if !matches!(p.op, Op::IsNull | Op::IsNotNull) {
            param += 1;
        }
        conditions.push(cond);
    }
    let filter_params = param - 3;
    let table = &facts.qualified;
    let pk: Vec<&Column> = facts.primary_key.iter().collect();
    let key_cols: Vec<&Column> = std::iter::once(&facts.timestamp)
        .chain(facts.primary_key.iter().filter(|c| c.name != facts.timestamp.name))
        .collect();
    let pk_positions =
        pk.iter().map(|c| key_cols.iter().position(|k| k.name == c.name).expect("in the keyset")).collect();
    let key_list = list(&key_cols, &col);
    let cursor = {
        let casts: Vec<String> = key_cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("CAST(${}::text AS {})", param + i, c.sql_type))
            .collect();
        // The plain `ts >= …` lets an index on the timestamp start the scan at the cursor; the
        // row comparison alone is not usable with a one-column index.
        format!("{ts} >= {} AND ({key_list}) > ({})", casts[0], casts.join(", "))
    };
    let where_first = conditions.join(" AND ");
    let where_next = format!("{where_first} AND {cursor}");
    let select = |cond: &str| {
        format!(
            "SELECT {}, tableoid::oid::text FROM {table} WHERE {cond} ORDER BY {key_list} LIMIT $2 FOR UPDATE SKIP LOCKED",
            list(&key_cols, &|c| format!("{}::text", col(c)))
        )
    };
    let delete = |cond: &str| {
        format!(
            "WITH batch AS (SELECT tableoid AS backstop_rel, {} FROM {table} WHERE {cond} ORDER BY {key_list} LIMIT $2 FOR UPDATE SKIP LOCKED), \
             gone AS (DELETE FROM {table} t USING batch b WHERE t.tableoid = b.backstop_rel AND ({}) = ({}) RETURNING {}) \
             SELECT (SELECT count(*) FROM gone), {} FROM gone g ORDER BY {} LIMIT 1",
            list(&pk, &col),
            list(&pk, &|c| format!("t.{}", col(c))),
            list(&pk, &|c| format!("b.{}", col(c))),
            list(&key_cols, &|c| format!("t.{}", col(c))),
            list(&key_cols, &|c| format!("g.{}::text", col(c))),
            list(&key_cols, &|c| format!("g.{} DESC", col(c))),
        )
    };
    let delete_one = format!(
        "DELETE FROM {table} WHERE tableoid = CAST($1::text AS oid) AND ({}) = ({})",
        list(&pk, &col),
        pk.iter()
            .enumerate()
            .map(|(i, c)| format!("CAST(${}::text AS {})", i + 2, c.sql_type))
            .collect::<Vec<_>>()
            .join(", ")
    );
    RuleSql {
        count: format!(
            "SELECT count(*), min(s.ts)::text, max(s.ts)::text FROM (SELECT {ts} AS ts FROM {table} WHERE {where_first} LIMIT $2) s"
        ),
        first_batch: delete(&where_first),
        next_batch: delete(&where_next),
        select_first: select(&where_first),
        select_next: select(&where_next),
        delete_one,
        filter_params,
        condition: where_first.clone(),
        key_len: key_cols.len(),
        pk_positions,
    }
}

/// Counts the rows of `child` (quoted, with `ONLY` for a plain table) whose `child_cols` point,
/// by a foreign key, at rows the rule matches (same parameters as [`RuleSql::count`]).
pub fn referencing_count(
    sql: &RuleSql,
    table: &str,
    child: &str,
    child_cols: &[String],
    parent_cols: &[String],
) -> String {
    let outer = child_cols.iter().map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT count(*) FROM {child} c WHERE ({outer}) IN (SELECT {} FROM {table} WHERE {} LIMIT $2)",
        parent_cols.join(", "),
        sql.condition
    )
}

/// Checks a rule's shape before touching the database.
pub fn validate(rule: &Rule, label: &str) -> Result<Duration> {
    let bad = |reason: String| Error::Rule { rule: label.to_owned(), reason };
    let older_than = parse_duration(&rule.older_than).map_err(|e| bad(format!("older_than: {e}")))?;
    for name in [rule.table.as_str(), rule.timestamp_column.as_str()]
        .into_iter()
        .chain(rule.filter.iter().map(|p| p.column.as_str()))
    {
        if name.is_empty() || name.len() > 127 || name.contains('\0') {
            return Err(bad(format!("{name:?} is not a valid identifier")));
        }
    }
    for (i, p) in rule.filter.iter().enumerate() {
        let ok = match p.op {
            Op::IsNull | Op::IsNotNull => p.value.is_null(),
            Op::In => {
                p.value.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(|v| value_text(v).is_some()))
            }
            _ => value_text(&p.value).is_some(),
        };
        if !ok {
            return Err(bad(format!(
                "filter[{i}] ({} {:?}): {}",
                p.column,
                p.op,
                match p.op {
                    Op::IsNull | Op::IsNotNull => "takes no value",
                    Op::In => "needs a non-empty list of strings, numbers or booleans",
                    _ => "needs one string, number or boolean (for null use \"is null\")",
                }
            )));
        }
    }
    Ok(older_than)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;

    #[rstest]
    #[case("90d", 90 * 86_400)]
    #[case("12h", 12 * 3600)]
    #[case("6w", 6 * 604_800)]
    #[case("30m", 1800)]
    #[case(" 45s ", 45)]
    fn durations(#[case] text: &str, #[case] secs: u64) {
        assert_eq!(parse_duration(text).unwrap(), Duration::from_secs(secs));
    }

    #[rstest]
    #[case("0d")]
    #[case("90")]
    #[case("d")]
    #[case("5y")]
    #[case("-1d")]
    fn bad_durations(#[case] text: &str) {
        assert!(parse_duration(text).is_err());
    }

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(quote_ident("x; DROP TABLE y"), r#""x; DROP TABLE y""#);
    }

    fn facts() -> TableFacts {
        TableFacts {
            oid: 1,
            qualified: r#""public"."notif""#.into(),
            timestamp: Column { name: "created_at".into(), sql_type: "timestamp with time zone".into() },
            primary_key: vec![Column { name: "id".into(), sql_type: "bigint".into() }],
            filter_columns: vec![
                Column { name: "read".into(), sql_type: "boolean".into() },
                Column { name: "kind".into(), sql_type: "text".into() },
                Column { name: "deleted_at".into(), sql_type: "timestamp with time zone".into() },
            ],
        }
    }

    #[test]
    fn sql_binds_every_value_and_quotes_every_name() {
        let rule: Rule = serde_json::from_value(json!({
            "table": "notif", "timestamp_column": "created_at", "older_than": "90d",
            "filter": [{"column": "read", "op": "=", "value": true},
                       {"column": "kind", "op": "in", "value": ["a", "b"]},
                       {"column": "deleted_at", "op": "is null"}]
        }))
        .unwrap();
        let sql = build_sql(&rule, &facts());
        assert_eq!(sql.filter_params, 2);
        assert_eq!(
            sql.count,
            r#"SELECT count(*), min(s.ts)::text, max(s.ts)::text FROM (SELECT "created_at" AS ts FROM "public"."notif" WHERE "created_at" < CAST($1::text AS timestamp with time zone) AND "read" = CAST($3::text AS boolean) AND "kind" = ANY(CAST($4::text[] AS text[])) AND "deleted_at" IS NULL LIMIT $2) s"#
        );
        assert!(sql.next_batch.contains(r#""created_at" >= CAST($5::text AS timestamp with time zone) AND ("created_at", "id") > (CAST($5::text AS timestamp with time zone), CAST($6::text AS bigint))"#), "{}", sql.next_batch);
        assert!(sql.first_batch.contains("FOR UPDATE SKIP LOCKED") && sql.first_batch.contains("LIMIT $2"));
        assert_eq!(
            sql.delete_one,
            r#"DELETE FROM "public"."notif" WHERE tableoid = CAST($1::text AS oid) AND ("id") = (CAST($2::text AS bigint))"#
        );
    }

    #[rstest]
    #[case(json!({"column": "read", "op": "=", "value": null}), "is null")]
    #[case(json!({"column": "read", "op": "in", "value": []}), "non-empty list")]
    #[case(json!({"column": "read", "op": "is null", "value": 1}), "takes no value")]
    #[case(json!({"column": "read", "op": "=", "value": {"a": 1}}), "one string")]
    fn bad_filters_are_refused(#[case] predicate: Value, #[case] expected: &str) {
        let rule: Rule = serde_json::from_value(json!({
            "table": "t", "timestamp_column": "c", "older_than": "1d", "filter": [predicate]
        }))
        .unwrap();
        let err = validate(&rule, "rules[0] (t)").unwrap_err().to_string();
        assert!(err.contains(expected) && err.contains("rules[0]"), "{err}");
    }

    #[test]
    fn unknown_operators_and_fields_are_rejected_by_serde() {
        assert!(
            serde_json::from_value::<Rule>(json!({"table": "t", "timestamp_column": "c", "older_than": "1d",
            "filter": [{"column": "x", "op": "like", "value": "%"}]}))
            .is_err()
        );
        assert!(
            serde_json::from_value::<Rule>(
                json!({"table": "t", "timestamp_column": "c", "older_than": "1d", "where": "1=1"})
            )
            .is_err()
        );
    }
}
