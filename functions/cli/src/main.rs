//! `backstop`: the jobs the Lambda functions run, from a terminal, through the same core code.
//! It lives beside the functions (`functions/cli`) because it is one more front end on the core,
//! like each function; only its argument parsing is its own.

mod bars;

use std::path::PathBuf;
use std::process::ExitCode;

use backstop_core::access;
use backstop_core::backup::DbBackup;
use backstop_core::catalog;
use backstop_core::cleanup::NotificationCleanup;
use backstop_core::config::Destination;
use backstop_core::media::{self, MediaRestoreRequest, MediaSync, MediaTarget, SnapshotChoice};
use backstop_core::restore::{RestoreRequest, RestoreSource, Verify, restore};
use backstop_core::retention::RetentionPrune;
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
    /// Copy what changed in the media source (BACKSTOP_MEDIA_SOURCE) into the backup bucket,
    /// keeping replaced and deleted objects in the trash, with a snapshot of the run.
    MediaSync(MediaSyncArgs),
    /// Put the media back as a snapshot recorded it (never deleting anything at the target).
    MediaRestore(MediaRestoreArgs),
    /// Media snapshots, newest first: objects, bytes, changes.
    MediaList {
        #[arg(long)]
        json: bool,
    },
    /// Delete old backups, media snapshots, trash and run records by a keep-policy (from
    /// --payload or BACKSTOP_RETENTION); never the newest, never after backups stopped.
    RetentionPrune {
        /// The options as the function's JSON payload, e.g. '{"policy": {"keep_daily": 7}}'.
        #[arg(long)]
        payload: Option<String>,
        /// Print every backup with the rule that keeps it, or delete; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete old rows by rules, in small batches (rules from --payload or BACKSTOP_CLEANUP_RULES).
    NotificationCleanup(CleanupArgs),
    /// Backups that have a manifest, newest first.
    List {
        #[arg(long)]
        database: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run records (every job's successes and failures), newest first.
    History {
        #[arg(long)]
        job: Option<String>,
        /// Only runs started at or after this date (YYYY-MM-DD) or time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        failed: bool,
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup (verified against its manifest first) or a plain dump file.
    Restore(RestoreArgs),
    /// The restore drill: restore into a scratch database, compare rows and content hashes with
    /// the manifest, drop it; a run record and an SNS outcome like every job.
    Verify {
        /// A backup's key or manifest key (default: the newest backup).
        #[arg(conflicts_with = "latest")]
        key: Option<String>,
        /// The newest backup (the default without KEY; with --database, of that database).
        #[arg(long)]
        latest: bool,
        /// Without KEY: the newest backup of this database.
        #[arg(long)]
        database: Option<String>,
        /// Connections replaying data parts (default 2).
        #[arg(long)]
        jobs: Option<usize>,
        /// Keep the scratch database afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// What each function needs from a deployment, as JSON: the IAM actions its code calls on
    /// named resources, and the environment variables it reads (the Terraform module is
    /// tested against this).
    DeploySpec,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// A backup's key (dump or manifest) in the destination.
    #[arg(conflicts_with_all = ["latest", "file"], required_unless_present_any = ["latest", "file"])]
    key: Option<String>,
    /// The newest backup (of --database when given).
    #[arg(long)]
    latest: bool,
    /// A local plain dump (.sql, .sql.gz, .sql.zst), e.g. from an old cron job.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// postgres://… of the target server and database.
    #[arg(long)]
    target_url: String,
    /// With --latest: whose backup; otherwise the target database name (default: the URL's).
    #[arg(long)]
    database: Option<String>,
    /// Create the target database if it does not exist.
    #[arg(long)]
    create: bool,
    /// Terminate other connections to the target, drop it and create it again.
    #[arg(long)]
    clean: bool,
    /// Restore into a non-empty target anyway.
    #[arg(long)]
    force: bool,
    /// ANALYZE the restored database at the end, so that queries are planned well at once
    /// (pg_restore leaves it to you).
    #[arg(long)]
    analyze: bool,
    /// Verify the backup and print the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Roll back everything at the first error (the target stays as it was).
    #[arg(long)]
    single_transaction: bool,
    /// Connections replaying a backup set in parallel: its data parts, then its index builds and
    /// constraints on different tables.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Restore only these tables' rows (pg_dump pattern, repeatable or comma-separated); the
    /// schema comes back whole, foreign keys to tables left out are skipped.
    #[arg(long = "tables", value_name = "PATTERN", value_delimiter = ',')]
    tables: Vec<String>,
    /// Also restore the media snapshot taken closest to (not after) the backup, into --media-to.
    #[arg(long, requires = "media_to")]
    with_media: bool,
    /// Where the media goes: s3://bucket/prefix or a directory.
    #[arg(long, value_name = "TARGET")]
    media_to: Option<String>,
}

#[derive(Debug, Args)]
struct MediaSyncArgs {
    /// The options as the function's JSON payload (instead of the flags below).
    #[arg(long, conflicts_with_all = ["dry_run", "include", "exclude", "concurrency", "force", "max_delete_fraction", "archive", "check"])]
    payload: Option<String>,
    /// Count what would be copied and trashed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only keys matching this glob (repeatable; `*` spans `/`).
    #[arg(long)]
    include: Vec<String>,
    /// Leave out keys matching this glob (repeatable).
    #[arg(long)]
    exclude: Vec<String>,
    /// Copies in flight (default 16).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Let an empty source or a mass delete through, for this run.
    #[arg(long)]
    force: bool,
    /// Share of the objects a run may trash (default 0.2).
    #[arg(long)]
    max_delete_fraction: Option<f64>,
    /// Write one media_{env}_{run_id}.tar.zst of the whole source instead of the mirror.
    #[arg(long, conflicts_with = "check")]
    archive: bool,
    /// Copy nothing: check the mirror against the newest snapshot (every version present,
    /// sizes, ETags, every --rehash-every-th object read back and hashed).
    #[arg(long)]
    check: bool,
    /// With --check: hash every N-th object (default 100; 1: all).
    #[arg(long, requires = "check", value_name = "N")]
    rehash_every: Option<u64>,
}

impl MediaSyncArgs {
    fn payload(&self) -> anyhow::Result<Value> {
        if let Some(p) = &self.payload {
            return serde_json::from_str(p).map_err(|e| anyhow::anyhow!("--payload is not JSON: {e}"));
        }
        let mut m = Map::new();
        if self.dry_run {
            m.insert("dry_run".into(), json!(true));
        }
        if !self.include.is_empty() {
            m.insert("include".into(), json!(self.include));
        }
        if !self.exclude.is_empty() {
            m.insert("exclude".into(), json!(self.exclude));
        }
        if let Some(c) = self.concurrency {
            m.insert("concurrency".into(), json!(c));
        }
        if self.force {
            m.insert("force".into(), json!(true));
        }
        if let Some(f) = self.max_delete_fraction {
            m.insert("max_delete_fraction".into(), json!(f));
        }
        if self.archive {
            m.insert("mode".into(), json!("archive"));
        }
        if self.check {
            m.insert("mode".into(), json!("check"));
        }
        if let Some(n) = self.rehash_every {
            m.insert("rehash_every".into(), json!(n));
        }
        Ok(Value::Object(m))
    }
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["latest", "as_of", "snapshot"])))]
struct MediaRestoreArgs {
    /// The newest snapshot.
    #[arg(long)]
    latest: bool,
    /// The newest snapshot taken at or before this time (RFC 3339) or date (YYYY-MM-DD, midnight UTC).
    #[arg(long, value_name = "TIME")]
    as_of: Option<String>,
    /// A snapshot's key, as media-list shows it.
    #[arg(long, value_name = "KEY")]
    snapshot: Option<String>,
    /// Where the media goes: s3://bucket/prefix or a directory. (Not `--to`: that is the
    /// global option naming the local backup directory the media is read from.)
    #[arg(long, value_name = "TARGET")]
    target: String,
    /// Only keys matching this glob (repeatable).
    #[arg(long)]
    include: Vec<String>,
    /// Count what would be restored; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write into a non-empty target (nothing there is deleted).
    #[arg(long)]
    force: bool,
    /// Objects copied at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
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
            return serde_json::from_str(p).map_err(|e| anyhow::anyhow!("--payload is not JSON: {e}"));
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
    #[arg(long, conflicts_with_all = ["database", "compression", "level", "engine", "no_fallback", "layout", "jobs", "no_owner", "no_privileges", "include_table", "exclude_table", "schema_only", "dry_run", "tag"])]
    payload: Option<String>,
    /// Database to back up (repeatable); default: the one in DATABASE_URL or the secret.
    #[arg(long)]
    database: Vec<String>,
    /// zstd (default) or gzip.
    #[arg(long)]
    compression: Option<String>,
    /// Compression level (zstd 1-19, gzip 1-9); default: zstd 3 (in backup sets, per table, a
    /// cheaper level where it compresses better), gzip 6.
    #[arg(long)]
    level: Option<i32>,
    /// Dump engine: native (default) or pg_dump.
    #[arg(long)]
    engine: Option<String>,
    /// Fail where the native engine cannot write an object, instead of letting pg_dump stand in.
    #[arg(long)]
    no_fallback: bool,
    /// Native engine: set (default; parts per table, dumped in parallel) or single (one object).
    #[arg(long)]
    layout: Option<String>,
    /// Native engine: parallel connections (default: CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// Leave out ownership (for a server whose roles differ).
    #[arg(long)]
    no_owner: bool,
    /// Leave out GRANT/REVOKE.
    #[arg(long)]
    no_privileges: bool,
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
            return serde_json::from_str(p).map_err(|e| anyhow::anyhow!("--payload is not JSON: {e}"));
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
        if self.no_fallback {
            set("no_fallback", json!(true));
        }
        if let Some(l) = &self.layout {
            set("layout", json!(l));
        }
        if let Some(j) = self.jobs {
            set("jobs", json!(j));
        }
        if self.no_owner {
            set("no_owner", json!(true));
        }
        if self.no_privileges {
            set("no_privileges", json!(true));
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
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() && std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        bars::init();
    } else {
        telemetry::init();
    }
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
    let local = Destination::Local { root: cli.to.clone().unwrap_or_else(|| "backups".into()) };
    let mut config = Config::from_env(Some(local.clone()))?;
    if cli.to.is_some() {
        // --to is the more specific request, so it wins over BACKSTOP_BUCKET.
        config.destination = local;
    }
    let app = App::with_config(config).await?;
    match cli.command {
        Command::DbBackup(args) => Ok(finish(run::execute::<DbBackup>(&app, &args.payload()?, None).await)),
        Command::List { database, json } => list(&app, database.as_deref(), json).await,
        Command::History { job, since, failed, json } => {
            history(&app, job.as_deref(), since.as_deref(), failed, json).await
        }
        Command::Restore(args) => restore_command(&app, args).await,
        Command::DeploySpec => {
            let functions: Map<String, Value> =
                access::FUNCTIONS.iter().map(|(name, grants)| ((*name).to_owned(), json!(grants))).collect();
            let spec = json!({ "functions": functions, "variables": backstop_core::config::VARIABLES });
            println!("{}", serde_json::to_string_pretty(&spec)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { key, database, jobs, keep, latest: _ } => {
            let payload = json!({ "key": key, "database": database, "jobs": jobs, "keep": keep });
            Ok(finish(run::execute::<Verify>(&app, &payload, None).await))
        }
        Command::MediaSync(args) => Ok(finish(run::execute::<MediaSync>(&app, &args.payload()?, None).await)),
        Command::MediaRestore(args) => {
            let snapshot = match (args.latest, args.as_of, args.snapshot) {
                (_, Some(t), _) => SnapshotChoice::AsOf(parse_since(&t)?),
                (_, None, Some(k)) => SnapshotChoice::Key(k),
                _ => SnapshotChoice::Latest,
            };
            let request = MediaRestoreRequest {
                snapshot,
                to: MediaTarget::parse(&args.target)?,
                include: args.include,
                dry_run: args.dry_run,
                force: args.force,
                concurrency: args.concurrency.max(1),
            };
            let report = media::media_restore(&app, &request).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::MediaList { json } => media_list(&app, json).await,
        Command::RetentionPrune { payload, dry_run } => {
            let mut payload: Value = match payload {
                Some(p) => {
                    serde_json::from_str(&p).map_err(|e| anyhow::anyhow!("--payload is not JSON: {e}"))?
                }
                None => json!({}),
            };
            if dry_run {
                payload["dry_run"] = json!(true);
            }
            let record = run::execute::<RetentionPrune>(&app, &payload, None).await;
            if dry_run {
                print_prune_table(&record.outputs);
            }
            Ok(finish(record))
        }
        Command::NotificationCleanup(args) => {
            Ok(finish(run::execute::<NotificationCleanup>(&app, &args.payload()?, None).await))
        }
    }
}

async fn list(app: &App, database: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let listing =
        catalog::list_backups(app.store.as_ref(), &app.config.prefix, database, Some(&app.config.env))
            .await?;
    for (key, e) in &listing.unreadable {
        eprintln!("warning: {key}: unreadable manifest, not listed: {}", e.report());
    }
    let backups = listing.backups;
    if json {
        let list: Vec<_> =
            backups.iter().map(|b| json!({"manifest_key": b.manifest_key, "manifest": b.manifest})).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<19}  {:<20}  {:<8}  {:<7}  {:>8}  {:>5}  {:<12}  BACKUP (what restore and verify take)",
        "FINISHED", "DATABASE", "ENGINE", "KIND", "SIZE", "PARTS", "TAG"
    );
    for b in &backups {
        let m = &b.manifest;
        let kind = match (m.is_partial(), m.schema_only) {
            (false, _) => "full",
            (true, true) => "schema",
            (true, false) => "tables",
        };
        println!(
            "{:<19}  {:<20}  {:<8}  {:<7}  {:>8}  {:>5}  {:<12}  {}",
            m.finished.strftime("%Y-%m-%d %H:%M:%S"),
            m.database,
            m.engine.name,
            kind,
            run::human_bytes(m.bytes),
            m.objects.len(),
            m.tag.as_deref().unwrap_or("-"),
            b.manifest_key.strip_suffix(backstop_core::keys::MANIFEST_SUFFIX).unwrap_or(&b.manifest_key)
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn history(
    app: &App,
    job: Option<&str>,
    since: Option<&str>,
    failed: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let since = since.map(parse_since).transpose()?;
    let records = catalog::history(app.store.as_ref(), &app.config.prefix, job, since, failed).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<19}  {:<21}  {:<6}  {:>10}  SUMMARY", "STARTED", "JOB", "STATUS", "DURATION");
    for r in &records {
        println!(
            "{:<19}  {:<21}  {:<6}  {:>10}  {}",
            r.started.strftime("%Y-%m-%d %H:%M:%S"),
            r.job,
            if r.status == Status::Succeeded { "ok" } else { "FAILED" },
            run::human_duration(std::time::Duration::from_millis(r.duration_ms)),
            r.summary
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn restore_command(app: &App, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let source = match (args.key, args.latest, args.file) {
        // A local dump given where a key goes: take it, as the user meant.
        (Some(key), _, _) if std::path::Path::new(&key).is_file() => {
            eprintln!("backstop: {key} is a local file; restoring it as --file {key}");
            RestoreSource::File(key.into())
        }
        (Some(key), _, _) if key.starts_with('/') || key.starts_with("./") || key.starts_with("../") => {
            anyhow::bail!(
                "{key}: no such file here, and a backup's key never starts like a path (see `backstop list`); \
                 for a local dump use --file PATH"
            )
        }
        (Some(key), _, _) => RestoreSource::Key(key),
        (None, true, _) => RestoreSource::Latest { database: args.database.clone() },
        (None, false, Some(path)) => RestoreSource::File(path),
        (None, false, None) => anyhow::bail!("name a backup KEY, --latest or --file"),
    };
    let request = RestoreRequest {
        // With --latest, --database chose the backup; the target is the URL's database.
        database: if matches!(source, RestoreSource::Latest { .. }) { None } else { args.database },
        source,
        target_url: args.target_url,
        create: args.create,
        clean: args.clean,
        force: args.force,
        dry_run: args.dry_run,
        single_transaction: args.single_transaction,
        jobs: args.jobs,
        tables: args.tables,
        analyze: args.analyze,
    };
    let report = restore(app, &request).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let (true, Some(to)) = (args.with_media, args.media_to) {
        let Some(manifest_key) = report.manifest_key.as_deref() else {
            anyhow::bail!("--with-media needs a backup with a manifest (its time picks the media snapshot)");
        };
        let media_request = MediaRestoreRequest {
            snapshot: SnapshotChoice::Latest,
            to: MediaTarget::parse(&to)?,
            include: vec![],
            dry_run: args.dry_run,
            force: args.force,
            concurrency: 16,
        };
        let (media, gap_s) = media::restore_with_backup(app, manifest_key, media_request).await?;
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "media": media, "media_older_than_backup_s": gap_s }))?
        );
        eprintln!(
            "backstop: media snapshot {} was taken {} before the backup",
            media.snapshot_key,
            run::human_duration(std::time::Duration::from_secs(gap_s.max(0) as u64))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `restic forget`'s table: every backup with the rules that keep it, or `delete`.
fn print_prune_table(outputs: &Value) {
    let groups = outputs["databases"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(outputs["media"].as_object().map(|_| &outputs["media"]))
        .chain(outputs["archives"].as_array().into_iter().flatten());
    for g in groups {
        let env = g["env"].as_str().filter(|e| !e.is_empty());
        let partial = if g["partial"].as_bool() == Some(true) { ", partial backups" } else { "" };
        match env {
            Some(env) => println!("{} ({env}{partial}):", g["name"].as_str().unwrap_or("?")),
            None => println!("{}:", g["name"].as_str().unwrap_or("?")),
        }
        for d in g["decisions"].as_array().into_iter().flatten() {
            let reasons: Vec<&str> =
                d["reasons"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let verdict = if reasons.is_empty() { "delete".to_owned() } else { reasons.join(", ") };
            println!(
                "  {:<25}  {:<40}  {}",
                d["time"].as_str().unwrap_or(""),
                verdict,
                d["id"].as_str().unwrap_or("")
            );
        }
    }
    println!("bytes to free: {}", run::human_bytes(outputs["bytes_freed"].as_u64().unwrap_or(0)));
}

async fn media_list(app: &App, json: bool) -> anyhow::Result<ExitCode> {
    // Newest first, as `list` and `history`.
    let mut summaries = media::list_summaries(app.store.as_ref(), &app.config.prefix).await?;
    summaries.reverse();
    if json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<19}  {:>9}  {:>8}  {:>6}  {:>6}  {:>6}  {:>6}  KEY",
        "TAKEN", "OBJECTS", "SIZE", "NEW", "MOD", "DEL", "FAILED"
    );
    for s in &summaries {
        println!(
            "{:<19}  {:>9}  {:>8}  {:>6}  {:>6}  {:>6}  {:>6}  {}",
            s.taken.strftime("%Y-%m-%d %H:%M:%S"),
            s.objects,
            run::human_bytes(s.bytes),
            s.changes.new,
            s.changes.modified,
            s.changes.deleted,
            s.changes.failed,
            s.snapshot_key
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-11-01` (midnight UTC) or an RFC 3339 time.
fn parse_since(text: &str) -> anyhow::Result<jiff::Timestamp> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let date: jiff::civil::Date =
        text.parse().map_err(|_| anyhow::anyhow!("--since {text:?} is not a date (YYYY-MM-DD) or time"))?;
    Ok(date.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp())
}

/// Prints the run record and maps its status to the exit code.
fn finish(record: run::RunRecord) -> ExitCode {
    println!("{}", serde_json::to_string_pretty(&record).expect("run records serialize"));
    match record.status {
        Status::Succeeded => ExitCode::SUCCESS,
        Status::Failed => {
            eprintln!("backstop: {}", run::failure_message(&record));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn argument_ids_are_consistent() {
        Cli::command().debug_assert();
    }

    /// Shell words of one line: quotes removed, a `#` comment or an unquoted `|` pipe ends it.
    /// A synopsis (`[--latest | KEY] [--json]`) reads as its first alternatives.
    fn words(line: &str) -> Vec<String> {
        let (mut out, mut word, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
        let (mut bracket, mut skip_alt) = (0, false);
        let chars = line.chars();
        let push = |word: &mut String, in_word: &mut bool, skip: bool, out: &mut Vec<String>| {
            if *in_word && !skip {
                out.push(std::mem::take(word));
            }
            word.clear();
            *in_word = false;
        };
        for c in chars {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.push(c),
                (None, '\'' | '"') => {
                    quote = Some(c);
                    in_word = true;
                }
                (None, '[') if !in_word => bracket += 1,
                (None, ']') if bracket > 0 => {
                    push(&mut word, &mut in_word, skip_alt, &mut out);
                    bracket -= 1;
                    skip_alt = false;
                }
                (None, '|') if bracket > 0 => {
                    push(&mut word, &mut in_word, skip_alt, &mut out);
                    skip_alt = true;
                }
                (None, '|' | '#') if !in_word => break,
                (None, ' ' | '\t') => push(&mut word, &mut in_word, skip_alt, &mut out),
                (None, c) => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        push(&mut word, &mut in_word, skip_alt, &mut out);
        out
    }

    /// Every `backstop …` line of the README's shell blocks (continuations joined, leading
    /// `VAR=value` assignments dropped).
    pub(crate) fn readme_commands() -> Vec<Vec<String>> {
        let readme = include_str!("../../../README.md");
        let mut out = Vec::new();
        let mut in_sh = false;
        let mut pending = String::new();
        for line in readme.lines() {
            if line.trim_start().starts_with("```") {
                in_sh = line.trim_start() == "```sh";
                continue;
            }
            if !in_sh {
                continue;
            }
            pending.push_str(line.trim_end_matches('\\'));
            if line.ends_with('\\') {
                pending.push(' ');
                continue;
            }
            let mut w = words(&std::mem::take(&mut pending));
            while w.first().is_some_and(|w| w.contains('=') && !w.starts_with('-')) {
                w.remove(0);
            }
            if w.first().is_some_and(|w| w == "backstop") {
                out.push(w);
            }
        }
        out
    }

    #[test]
    fn words_read_quotes_comments_and_synopses() {
        assert_eq!(words("backstop a --p '{\"x\": 1}'  # note"), ["backstop", "a", "--p", "{\"x\": 1}"]);
        assert_eq!(
            words("backstop verify [--latest | KEY] [--jobs 2]"),
            ["backstop", "verify", "--latest", "--jobs", "2"]
        );
        assert_eq!(words("backstop list --json | jq ."), ["backstop", "list", "--json"]);
    }

    #[test]
    fn every_command_the_readme_shows_parses() {
        let commands = readme_commands();
        assert!(commands.len() >= 15, "the README's commands were not found: {commands:?}");
        for c in &commands {
            if let Err(e) = Cli::try_parse_from(c) {
                panic!("README: `{}` does not parse:\n{e}", c.join(" "));
            }
        }
        assert!(commands.iter().any(|c| c.get(1).is_some_and(|s| s == "media-restore")));
    }
}
