//! `backstop`: the jobs the Lambda functions run, from a terminal, through the same core code.
//! It lives beside the functions (`functions/cli`) because it is one more front end on the core,
//! like each function; only its argument parsing is its own.

use std::path::PathBuf;
use std::process::ExitCode;

use backstop_core::backup::DbBackup;
use backstop_core::cleanup::NotificationCleanup;
use backstop_core::config::Destination;
use backstop_core::run::{self, Status};
use backstop_core::{App, Config, telemetry};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};

/// Backstop: PostgreSQL and media backups you can trust, as Lambda functions or from here.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Write to this local directory instead of BACKSTOP_BUCKET (the default when no bucket is
    /// set is ./backups).
    #[arg(long, global = true, value_name = "DIR")]
    to: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dump PostgreSQL databases, compressed, with a manifest.
    DbBackup(BackupArgs),
    /// Delete old rows by rules, in small batches (rules from --payload or BACKSTOP_CLEANUP_RULES).
    NotificationCleanup(CleanupArgs),
}

#[derive(Debug, Args)]
struct CleanupArgs {
    /// The options as the function's JSON payload (instead of the flags below).
    #[arg(long, conflicts_with_all = ["rules", "database", "batch_size", "max_rows", "pause_ms", "dry_run"])]
    payload: Option<String>,
    /// The rules as JSON (default: BACKSTOP_CLEANUP_RULES).
    #[arg(long)]
    rules: Option<String>,
    /// Database; default: the one in DATABASE_URL or the secret.
    #[arg(long)]
    database: Option<String>,
    /// Rows per batch (default 5000).
    #[arg(long)]
    batch_size: Option<u32>,
    /// Rows per rule in this run at most.
    #[arg(long)]
    max_rows: Option<u64>,
    /// Pause between batches in milliseconds (default 50).
    #[arg(long)]
    pause_ms: Option<u64>,
    /// Count what would be deleted, per rule; delete nothing.
    #[arg(long)]
    dry_run: bool,
}

impl CleanupArgs {
    /// The flags as the same payload a function would receive.
    fn payload(&self) -> anyhow::Result<Value> {
        if let Some(p) = &self.payload {
            return serde_json::from_str(p)
                .map_err(|e| anyhow::anyhow!("--payload is not JSON: {e}"));
        }
        let mut m = Map::new();
        if let Some(r) = &self.rules {
            let rules: Value =
                serde_json::from_str(r).map_err(|e| anyhow::anyhow!("--rules is not JSON: {e}"))?;
            m.insert("rules".into(), rules);
        }
        if let Some(d) = &self.database {
            m.insert("database".into(), json!(d));
        }
        if let Some(b) = self.batch_size {
            m.insert("batch_size".into(), json!(b));
        }
        if let Some(n) = self.max_rows {
            m.insert("max_rows".into(), json!(n));
        }
        if let Some(p) = self.pause_ms {
            m.insert("pause_ms".into(), json!(p));
        }
        if self.dry_run {
            m.insert("dry_run".into(), json!(true));
        }
        Ok(Value::Object(m))
    }
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// The options as the function's JSON payload (instead of the flags below).
    #[arg(long, conflicts_with_all = ["database", "compression", "level", "engine", "include_table", "exclude_table", "schema_only", "dry_run", "tag"])]
    payload: Option<String>,
    /// Database to back up (repeatable); default: the one in DATABASE_URL or the secret.
    #[arg(long)]
    database: Vec<String>,
    /// zstd (default) or gzip.
    #[arg(long)]
    compression: Option<String>,
    /// Compression level (zstd 1-19, gzip 1-9).
    #[arg(long)]
    level: Option<i32>,
    /// Dump engine: pg_dump.
    #[arg(long)]
    engine: Option<String>,
    /// Only tables matching this pg_dump pattern (repeatable).
    #[arg(long)]
    include_table: Vec<String>,
    /// Leave out tables matching this pg_dump pattern (repeatable).
    #[arg(long)]
    exclude_table: Vec<String>,
    #[arg(long)]
    schema_only: bool,
    /// Check connectivity and print the plan; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// A label recorded in the manifest.
    #[arg(long)]
    tag: Option<String>,
}

impl BackupArgs {
    /// The flags as the same payload a function would receive.
    fn payload(&self) -> anyhow::Result<Value> {
        if let Some(p) = &self.payload {
            return serde_json::from_str(p)
                .map_err(|e| anyhow::anyhow!("--payload is not JSON: {e}"));
        }
        let mut m = Map::new();
        let mut set = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        if !self.database.is_empty() {
            set("databases", json!(self.database));
        }
        if let Some(c) = &self.compression {
            set("compression", json!(c));
        }
        if let Some(l) = self.level {
            set("compression_level", json!(l));
        }
        if let Some(e) = &self.engine {
            set("engine", json!(e));
        }
        if !self.include_table.is_empty() {
            set("include_tables", json!(self.include_table));
        }
        if !self.exclude_table.is_empty() {
            set("exclude_tables", json!(self.exclude_table));
        }
        if self.schema_only {
            set("schema_only", json!(true));
        }
        if self.dry_run {
            set("dry_run", json!(true));
        }
        if let Some(t) = &self.tag {
            set("tag", json!(t));
        }
        Ok(Value::Object(m))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let cli = Cli::parse();
    match run_cli(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("backstop: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run_cli(cli: Cli) -> anyhow::Result<ExitCode> {
    let local = Destination::Local {
        root: cli.to.clone().unwrap_or_else(|| "backups".into()),
    };
    let mut config = Config::from_env(Some(local.clone()))?;
    if cli.to.is_some() {
        // --to is the more specific request, so it wins over BACKSTOP_BUCKET.
        config.destination = local;
    }
    let app = App::with_config(config).await?;
    match cli.command {
        Command::DbBackup(args) => Ok(finish(
            run::execute::<DbBackup>(&app, &args.payload()?, None).await,
        )),
        Command::NotificationCleanup(args) => Ok(finish(
            run::execute::<NotificationCleanup>(&app, &args.payload()?, None).await,
        )),
    }
}

/// Prints the run record and maps its status to the exit code.
fn finish(record: run::RunRecord) -> ExitCode {
    println!(
        "{}",
        serde_json::to_string_pretty(&record).expect("run records serialize")
    );
    match record.status {
        Status::Succeeded => ExitCode::SUCCESS,
        Status::Failed => {
            eprintln!("backstop: {}", run::failure_message(&record));
            ExitCode::FAILURE
        }
    }
}
