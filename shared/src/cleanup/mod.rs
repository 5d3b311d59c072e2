//! notification-cleanup: deletes old rows by rules, in small batches that each hold their
//! locks only briefly. Every rule is checked against the catalog before anything is deleted;
//! a rule that fails (e.g. rows a foreign key protects) is reported while the others go on.

pub(crate) mod rules;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, error::SqlState};

pub use rules::{Column, Op, Predicate, Rule, RuleSql, TableFacts, build_sql, parse_duration, quote_ident};

use crate::App;
use crate::error::{Error, Result};
use crate::run::{self, Job, JobReport, RunContext};

/// The notification-cleanup job.
#[derive(Debug)]
pub struct NotificationCleanup;

/// Options of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupOptions {
    /// The rules; default: `BACKSTOP_CLEANUP_RULES`.
    pub rules: Option<Vec<Rule>>,
    /// The database; default: the secret's or URL's.
    pub database: Option<String>,
    /// Rows per batch (default 5000, at most 50000).
    pub batch_size: Option<u32>,
    /// Rows per rule per run; the rest is left for the next run and reported as `remaining`.
    pub max_rows: Option<u64>,
    /// Pause between batches (default 50 ms), to leave room for the application.
    pub pause_ms: Option<u64>,
    /// `lock_timeout` per batch (default 1000 ms).
    pub lock_timeout_ms: Option<u64>,
    /// `statement_timeout` per batch (default 30000 ms).
    pub statement_timeout_ms: Option<u64>,
    /// Count what would go; delete nothing.
    pub dry_run: bool,
}

/// What happened to one rule.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleOutcome {
    pub rule: String,
    pub table: String,
    pub cutoff: String,
    /// Dry run: rows that would be deleted now.
    pub would_delete: Option<i64>,
    pub oldest: Option<String>,
    pub newest: Option<String>,
    pub deleted: u64,
    pub batches: u32,
    pub longest_batch_ms: u64,
    pub duration_ms: u64,
    /// Matching rows still there after the run (locked, protected, or beyond `max_rows`).
    pub remaining: Option<i64>,
    /// Rows a foreign key kept from being deleted.
    pub blocked: u64,
    /// Why the rule stopped before it ran out of rows, if it did.
    pub stopped: Option<String>,
    /// Dry run: rows of other tables that the deletions would remove (`ON DELETE CASCADE`) or
    /// change (`SET NULL`, `SET DEFAULT`), per foreign key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_cascade: Vec<Cascade>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

/// Rows a foreign key's `ON DELETE` action would reach.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cascade {
    /// The referencing table and its constraint.
    pub table: String,
    pub constraint: String,
    /// `delete`, `set null` or `set default`.
    pub action: String,
    pub rows: i64,
    /// The referencing table is itself referenced with `ON DELETE CASCADE`: its deletions
    /// would reach further tables, not counted here.
    pub cascades_further: bool,
}

/// A foreign key whose `ON DELETE` action reaches another table (its outcome, rows still 0),
/// with its count query.
#[derive(Debug, Clone)]
struct Referencing {
    cascade: Cascade,
    count: String,
}

#[async_trait]
impl Job for NotificationCleanup {
    const NAME: &'static str = "notification-cleanup";
    type Options = CleanupOptions;

    fn is_dry_run(options: &CleanupOptions) -> bool {
        options.dry_run
    }

    async fn run(app: &App, options: &CleanupOptions, ctx: &RunContext) -> JobReport {
        match plan(app, options).await {
            Err(e) => JobReport::failed("cleanup", e),
            Ok((mut client, database, plans)) => {
                let settings = Settings::from(options);
                let mut outcomes = Vec::new();
                let mut errors = Vec::new();
                for p in &plans {
                    let (outcome, error) = run_rule(&mut client, p, &settings, options.dry_run, ctx).await;
                    outcomes.push(outcome);
                    errors.extend(error);
                }
                let deleted: u64 = outcomes.iter().map(|o| o.deleted).sum();
                let would: i64 = outcomes.iter().filter_map(|o| o.would_delete).sum();
                let cascaded: i64 = outcomes
                    .iter()
                    .flat_map(|o| &o.would_cascade)
                    .filter(|c| c.action == "delete")
                    .map(|c| c.rows)
                    .sum();
                JobReport {
                    outputs: serde_json::json!({ "database": database, "dry_run": options.dry_run, "rules": outcomes }),
                    what: format!(
                        "{database}, {} rule{}",
                        plans.len(),
                        if plans.len() == 1 { "" } else { "s" }
                    ),
                    detail: Some(if options.dry_run {
                        if cascaded > 0 {
                            format!("{would} rows would go, and {cascaded} more by ON DELETE CASCADE")
                        } else {
                            format!("{would} rows would go")
                        }
                    } else {
                        format!("{deleted} rows deleted")
                    }),
                    error: run::combine(plans.len(), errors),
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Settings {
    batch_size: i64,
    max_rows: Option<u64>,
    pause: Duration,
    lock_timeout_ms: u64,
    statement_timeout_ms: u64,
}

impl From<&CleanupOptions> for Settings {
    fn from(o: &CleanupOptions) -> Self {
        Settings {
            batch_size: i64::from(o.batch_size.unwrap_or(5000)),
            max_rows: o.max_rows,
            pause: Duration::from_millis(o.pause_ms.unwrap_or(50)),
            lock_timeout_ms: o.lock_timeout_ms.unwrap_or(1000),
            statement_timeout_ms: o.statement_timeout_ms.unwrap_or(30_000),
        }
    }
}

/// A rule checked against the catalog, with its SQL and bound values.
#[derive(Debug)]
struct Plan {
    label: String,
    rule: Rule,
    cutoff: String,
    sql: RuleSql,
    /// Filter values in parameter order: one string, or a list for `in`.
    filter_values: Vec<FilterValue>,
    referencing: Vec<Referencing>,
    warnings: Vec<String>,
}

#[derive(Debug)]
enum FilterValue {
    One(String),
    Many(Vec<String>),
}

/// The numeric options, bounded: 0 means "no limit" to PostgreSQL for the timeouts, so a batch
/// could wait or run forever.
fn check_options(options: &CleanupOptions) -> Result<()> {
    for (field, value, range) in [
        ("batch_size", options.batch_size.map(u64::from), 1..=50_000),
        ("pause_ms", options.pause_ms, 0..=60_000),
        ("lock_timeout_ms", options.lock_timeout_ms, 1..=600_000),
        ("statement_timeout_ms", options.statement_timeout_ms, 1..=3_600_000),
    ] {
        if let Some(v) = value
            && !range.contains(&v)
        {
            return Err(Error::Payload(format!(
                "{field}: {v} is outside {}..={}",
                range.start(),
                range.end()
            )));
        }
    }
    Ok(())
}

/// Checks options and every rule (shape, then catalog) before anything is deleted.
async fn plan(app: &App, options: &CleanupOptions) -> Result<(Client, String, Vec<Plan>)> {
    check_options(options)?;
    let rules = match (&options.rules, &app.config.cleanup_rules) {
        (Some(r), _) => r.clone(),
        (None, Some(json)) => serde_json::from_str(json)
            .map_err(|e| Error::config("BACKSTOP_CLEANUP_RULES", format!("not a JSON list of rules: {e}")))?,
        (None, None) => {
            return Err(Error::Payload("rules: none given, and BACKSTOP_CLEANUP_RULES is not set".into()));
        }
    };
    if rules.is_empty() {
        return Err(Error::Payload("rules: the list is empty".into()));
    }
    let mut shaped = Vec::new();
    for (i, rule) in rules.into_iter().enumerate() {
        let label = rule.label(i);
        let older_than = rules::validate(&rule, &label)?;
        shaped.push((label, rule, older_than));
    }

    let (client, creds) = app.db.connect(options.database.as_deref(), "backstop-cleanup").await?;
    let database = crate::db::database_name(&creds, options.database.as_deref())?.to_owned();
    client.batch_execute("SET TIME ZONE 'UTC'").await.map_err(|source| Error::Database {
        target: database.clone(),
        context: "set time zone".into(),
        source,
    })?;
    // The clock is read once, so every rule of a run shares one cutoff instant.
    let now = jiff::Timestamp::now();
    let mut plans = Vec::new();
    for (label, rule, older_than) in shaped {
        let facts = table_facts(&client, &database, &rule, &label).await?;
        let cutoff = now
            .checked_sub(jiff::SignedDuration::try_from(older_than).expect("durations fit"))
            .map_err(|e| Error::Rule { rule: label.clone(), reason: format!("older_than: {e}") })?;
        let mut warnings = Vec::new();
        if !has_leading_index(&client, &database, &facts, &rule).await? {
            warnings.push(format!(
                "no index starts with {:?}: each batch scans the table; add one for large tables",
                rule.timestamp_column
            ));
        }
        let filter_values = rule
            .filter
            .iter()
            .filter_map(|p| match p.op {
                Op::IsNull | Op::IsNotNull => None,
                Op::In => Some(FilterValue::Many(
                    p.value.as_array().into_iter().flatten().filter_map(rules::value_text).collect(),
                )),
                _ => rules::value_text(&p.value).map(FilterValue::One),
            })
            .collect();
        let sql = build_sql(&rule, &facts);
        let referencing = referencing(&client, &database, &facts, &sql, &label).await?;
        plans.push(Plan {
            referencing,
            sql,
            label,
            rule,
            cutoff: cutoff.to_string(),
            filter_values,
            warnings,
        });
    }
    Ok((client, database, plans))
}

/// Looks the rule's table and columns up in the catalog; anything missing is an error naming it.
async fn table_facts(client: &Client, database: &str, rule: &Rule, label: &str) -> Result<TableFacts> {
    let db_err = |context: &str| {
        let context = format!("{label}: {context}");
        move |source| Error::Database { target: database.to_owned(), context, source }
    };
    let bad = |reason: String| Error::Rule { rule: label.to_owned(), reason };
    let (schema, table) = rule.table_parts();
    let row = client
        .query_opt(
            "SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = $2 \
               AND CASE WHEN $1::text IS NULL THEN pg_table_is_visible(c.oid) ELSE n.nspname = $1 END \
             ORDER BY c.relkind IN ('r', 'p') DESC LIMIT 1",
            &[&schema, &table],
        )
        .await
        .map_err(db_err("look up table"))?
        .ok_or_else(|| bad(format!("table {:?} does not exist in {database}", rule.table)))?;
    // A view, a materialized view, a foreign table or a sequence is no place to delete rows
    // from in batches: say what it is rather than that it does not exist.
    let relkind: String = row.get(2);
    let refused = match relkind.as_str() {
        "r" | "p" => None,
        "v" => Some("a view: its rows live in the tables it reads; write the rule for those tables"),
        "m" => Some("a materialized view: its rows come back on the next REFRESH; clean the tables it reads"),
        "f" => Some("a foreign table: rows are deleted on the server that holds them"),
        "S" => Some("a sequence"),
        "i" | "I" => Some("an index"),
        _ => Some("not a table"),
    };
    if let Some(why) = refused {
        return Err(bad(format!("{:?} in {database} is {why}", rule.table)));
    }
    let oid: u32 = row.get(0);
    let qualified: String = row.get(1);
    let columns: Vec<Column> = client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
            &[&oid],
        )
        .await
        .map_err(db_err("read columns"))?
        .iter()
        .map(|r| Column { name: r.get(0), sql_type: r.get(1) })
        .collect();
    let column = |name: &str| {
        columns
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| bad(format!("column {name:?} does not exist in {}", rule.table)))
    };
    let timestamp = column(&rule.timestamp_column)?;
    if !(timestamp.sql_type.starts_with("timestamp") || timestamp.sql_type == "date") {
        return Err(bad(format!(
            "timestamp_column {:?} is {}, not a timestamp or date",
            timestamp.name, timestamp.sql_type
        )));
    }
    let filter_columns = rule.filter.iter().map(|p| column(&p.column)).collect::<Result<Vec<_>>>()?;
    let primary_key: Vec<Column> = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
             FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
            &[&oid],
        )
        .await
        .map_err(db_err("read primary key"))?
        .iter()
        .map(|r| Column { name: r.get(0), sql_type: r.get(1) })
        .collect();
    if primary_key.is_empty() {
        return Err(bad(format!(
            "table {} has no primary key; batches are chosen by key, so it cannot be cleaned safely",
            rule.table
        )));
    }
    Ok(TableFacts { oid, qualified, timestamp, primary_key, filter_columns })
}

/// The foreign keys whose `ON DELETE` action (cascade, set null, set default) reaches other
/// rows when this rule's rows go.
async fn referencing(
    client: &Client,
    database: &str,
    facts: &TableFacts,
    sql: &RuleSql,
    label: &str,
) -> Result<Vec<Referencing>> {
    let rows = client
        .query(
            "SELECT con.conname::text, format('%I.%I', n.nspname, c.relname), c.relkind = 'r', con.confdeltype::text, \
               (SELECT array_agg(quote_ident(a.attname::text) ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord) \
                  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum), \
               (SELECT array_agg(quote_ident(a.attname::text) ORDER BY k.ord) FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord) \
                  JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum), \
               EXISTS (SELECT FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = con.conrelid AND f.confdeltype = 'c') \
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE con.contype = 'f' AND con.confrelid = $1 AND con.conparentid = 0 AND con.confdeltype IN ('c', 'n', 'd') \
             ORDER BY 2, 1",
            &[&facts.oid],
        )
        .await
        .map_err(|source| Error::Database {
            target: database.to_owned(),
            context: format!("{label}: read the foreign keys that reference the table"),
            source,
        })?;
    Ok(rows
        .iter()
        .map(|r| {
            let (table, plain): (String, bool) = (r.get(1), r.get(2));
            let child = if plain { format!("ONLY {table}") } else { table.clone() };
            let (child_cols, parent_cols): (Vec<String>, Vec<String>) = (r.get(4), r.get(5));
            let action = match r.get::<_, String>(3).as_str() {
                "c" => "delete",
                "n" => "set null",
                _ => "set default",
            };
            Referencing {
                count: rules::referencing_count(sql, &facts.qualified, &child, &child_cols, &parent_cols),
                cascade: Cascade {
                    table,
                    constraint: r.get(0),
                    action: action.into(),
                    rows: 0,
                    cascades_further: r.get(6),
                },
            }
        })
        .collect())
}

async fn has_leading_index(client: &Client, database: &str, facts: &TableFacts, rule: &Rule) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
               ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = $1 AND a.attname = $2)",
            &[&facts.oid, &rule.timestamp_column],
        )
        .await
        .map_err(|source| Error::Database {
            target: database.to_owned(),
            context: "read indexes".into(),
            source,
        })?;
    Ok(row.get(0))
}

impl Plan {
    /// Wraps a PostgreSQL error with this rule's name and what was being done.
    fn db_err<'a>(&'a self, context: &'a str) -> impl FnOnce(tokio_postgres::Error) -> Error + 'a {
        move |source| Error::Database { target: self.label.clone(), context: context.to_owned(), source }
    }

    /// Parameters: cutoff, limit, filter values, then the cursor if any.
    fn params<'a>(&'a self, limit: &'a i64, cursor: &'a [String]) -> Vec<&'a (dyn ToSql + Sync)> {
        let mut p: Vec<&(dyn ToSql + Sync)> = vec![&self.cutoff, limit];
        for v in &self.filter_values {
            match v {
                FilterValue::One(s) => p.push(s),
                FilterValue::Many(list) => p.push(list),
            }
        }
        p.extend(cursor.iter().map(|c| c as &(dyn ToSql + Sync)));
        p
    }
}

/// Runs (or, in a dry run, counts) one rule. Returns its outcome and its error, if any.
async fn run_rule(
    client: &mut Client,
    p: &Plan,
    s: &Settings,
    dry_run: bool,
    ctx: &RunContext,
) -> (RuleOutcome, Option<Error>) {
    let clock = Instant::now();
    let mut out = RuleOutcome {
        rule: p.label.clone(),
        table: p.rule.table.clone(),
        cutoff: p.cutoff.clone(),
        warnings: p.warnings.clone(),
        ..RuleOutcome::default()
    };
    let count = async |client: &Client| -> Result<(i64, Option<String>, Option<String>)> {
        let row =
            client.query_one(&p.sql.count, &p.params(&i64::MAX, &[])).await.map_err(p.db_err("count"))?;
        Ok((row.get(0), row.get(1), row.get(2)))
    };
    if dry_run {
        match count(client).await {
            Ok((n, oldest, newest)) => {
                (out.would_delete, out.oldest, out.newest) = (Some(n), oldest, newest);
                for r in &p.referencing {
                    match client.query_one(&r.count, &p.params(&i64::MAX, &[])).await {
                        Ok(row) => out.would_cascade.push(Cascade { rows: row.get(0), ..r.cascade.clone() }),
                        Err(e) => {
                            let e = p.db_err("count referencing rows")(e);
                            out.error = Some(e.report());
                            return (out, Some(e));
                        }
                    }
                }
                out.duration_ms = clock.elapsed().as_millis() as u64;
                return (out, None);
            }
            Err(e) => {
                out.error = Some(e.report());
                return (out, Some(e));
            }
        }
    }

    let mut error = None;
    let mut cursor: Vec<String> = Vec::new();
    loop {
        let limit = match s.max_rows {
            Some(max) if out.deleted >= max => {
                out.stopped = Some(format!("max_rows ({max}) reached"));
                break;
            }
            Some(max) => s.batch_size.min((max - out.deleted) as i64),
            None => s.batch_size,
        };
        if ctx.stop_by().is_some_and(|at| Instant::now() >= at) {
            out.stopped = Some("the Lambda deadline is near; the next run continues".into());
            break;
        }
        let started = Instant::now();
        let result = batch(client, p, s, limit, &cursor).await;
        let took = started.elapsed().as_millis() as u64;
        out.longest_batch_ms = out.longest_batch_ms.max(took);
        match result {
            Ok(Batch { visited, deleted, blocked, last }) => {
                out.batches += 1;
                out.deleted += deleted;
                if let Some((n, why)) = blocked {
                    out.blocked += n;
                    if error.is_none() {
                        error = Some(Error::Rule {
                            rule: p.label.clone(),
                            reason: format!("{n} row(s) could not be deleted: {why}"),
                        });
                    } else if let Some(Error::Rule { reason, .. }) = &mut error {
                        *reason = format!("{} row(s) could not be deleted: {why}", out.blocked);
                    }
                }
                // Fewer rows than asked for: none left that are not locked by someone else.
                match last {
                    Some(last) if (visited as i64) >= limit => cursor = last,
                    _ => break,
                }
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        tokio::time::sleep(s.pause).await;
    }
    match count(client).await {
        Ok((n, _, _)) => out.remaining = Some(n),
        // The deletions stand; the unknown remainder is said in the outcome, not only logged.
        Err(e) => {
            tracing::warn!(rule = %p.label, error = %e.report(), "could not count the remaining rows");
            out.warnings.push(format!("remaining rows unknown: {}", e.report()));
        }
    }
    out.duration_ms = clock.elapsed().as_millis() as u64;
    out.error = error.as_ref().map(Error::report);
    tracing::info!(rule = %p.label, deleted = out.deleted, batches = out.batches, remaining = ?out.remaining, "rule done");
    (out, error)
}

/// One batch's result: rows deleted, rows a foreign key protected (with why), and the last
/// key visited (`None` when the batch found nothing).
#[derive(Debug)]
struct Batch {
    /// Rows the batch selected (deleted or not).
    visited: u64,
    deleted: u64,
    blocked: Option<(u64, String)>,
    last: Option<Vec<String>>,
}

/// Opens a batch's transaction with its lock and statement timeouts.
async fn begin<'c>(
    client: &'c mut Client,
    s: &Settings,
    p: &Plan,
) -> Result<tokio_postgres::Transaction<'c>> {
    let tx = client.transaction().await.map_err(p.db_err("begin"))?;
    let timeouts = format!(
        "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}",
        s.lock_timeout_ms, s.statement_timeout_ms
    );
    tx.batch_execute(&timeouts).await.map_err(p.db_err("set timeouts"))?;
    Ok(tx)
}

/// Deletes one batch in its own short transaction. When a foreign key refuses the batch, it
/// is redone row by row (savepoints) so that every deletable row still goes.
async fn batch(client: &mut Client, p: &Plan, s: &Settings, limit: i64, cursor: &[String]) -> Result<Batch> {
    let sql = if cursor.is_empty() { &p.sql.first_batch } else { &p.sql.next_batch };
    let tx = begin(client, s, p).await?;
    match tx.query_opt(sql, &p.params(&limit, cursor)).await {
        Ok(None) => {
            tx.commit().await.map_err(p.db_err("commit"))?;
            Ok(Batch { visited: 0, deleted: 0, blocked: None, last: None })
        }
        Ok(Some(row)) => {
            let deleted: i64 = row.get(0);
            let last = (1..=p.sql.key_len).map(|i| row.get::<_, String>(i)).collect();
            tx.commit().await.map_err(p.db_err("commit"))?;
            Ok(Batch { visited: deleted as u64, deleted: deleted as u64, blocked: None, last: Some(last) })
        }
        Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            tx.rollback().await.map_err(p.db_err("rollback"))?;
            batch_row_by_row(client, p, s, limit, cursor).await
        }
        Err(e) => Err(p.db_err("delete batch")(e)),
    }
}

async fn batch_row_by_row(
    client: &mut Client,
    p: &Plan,
    s: &Settings,
    limit: i64,
    cursor: &[String],
) -> Result<Batch> {
    let sql = if cursor.is_empty() { &p.sql.select_first } else { &p.sql.select_next };
    let mut tx = begin(client, s, p).await?;
    let keys: Vec<Vec<String>> = tx
        .query(sql, &p.params(&limit, cursor))
        .await
        .map_err(p.db_err("select batch"))?
        .iter()
        .map(|r| (0..=p.sql.key_len).map(|i| r.get::<_, String>(i)).collect())
        .collect();
    let (mut deleted, mut blocked, mut why) = (0u64, 0u64, String::new());
    for key in &keys {
        // The row's table, then its primary key.
        let params: Vec<&(dyn ToSql + Sync)> = std::iter::once(&key[p.sql.key_len])
            .chain(p.sql.pk_positions.iter().map(|&i| &key[i]))
            .map(|v| v as &(dyn ToSql + Sync))
            .collect();
        let sp = tx.savepoint("row").await.map_err(p.db_err("savepoint"))?;
        match sp.execute(&p.sql.delete_one, &params).await {
            Ok(n) => {
                sp.commit().await.map_err(p.db_err("release savepoint"))?;
                deleted += n;
            }
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                if why.is_empty() {
                    why = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned());
                }
                sp.rollback().await.map_err(p.db_err("rollback to savepoint"))?;
                blocked += 1;
            }
            Err(e) => return Err(p.db_err("delete row")(e)),
        }
    }
    tx.commit().await.map_err(p.db_err("commit"))?;
    Ok(Batch {
        visited: keys.len() as u64,
        deleted,
        blocked: (blocked > 0).then_some((blocked, why)),
        last: keys.last().map(|k| k[..p.sql.key_len].to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_options_are_bounded_naming_the_field() {
        let ok = CleanupOptions { pause_ms: Some(0), lock_timeout_ms: Some(1), ..Default::default() };
        assert!(check_options(&ok).is_ok());
        for (o, field) in [
            (CleanupOptions { batch_size: Some(0), ..Default::default() }, "batch_size: 0"),
            (CleanupOptions { pause_ms: Some(3_600_000), ..Default::default() }, "pause_ms: 3600000"),
            (CleanupOptions { lock_timeout_ms: Some(0), ..Default::default() }, "lock_timeout_ms: 0"),
            (
                CleanupOptions { statement_timeout_ms: Some(0), ..Default::default() },
                "statement_timeout_ms: 0",
            ),
        ] {
            let e = check_options(&o).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}
