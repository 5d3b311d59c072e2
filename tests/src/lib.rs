//! Support for Backstop's end-to-end tests: the real PostgreSQL, moto on loopback (S3, SNS,
//! SQS, Secrets Manager) and the Lambda emulator that `scripts/stack.sh up` starts.
//!
//! Each test makes its own database, bucket, topic and queue, so tests run in parallel on one
//! stack. Set `BACKSTOP_TEST_PG` (admin URL) or `BACKSTOP_TEST_AWS_ENDPOINT` to use others.

pub mod audit;
pub mod fault_proxy;
pub mod fault_suite;
pub mod private_pg;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use backstop_core::App;
use backstop_core::config::{Config, DbConfig, Destination};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::{Client, NoTls};

/// The repository root (where `.stack/` lives).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The admin connection URL for creating and dropping test databases.
pub fn admin_url() -> String {
    std::env::var("BACKSTOP_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of database `name` on the admin URL's server.
pub fn database_url(name: &str) -> String {
    let base = admin_url();
    format!("{}/{name}", &base[..base.rfind('/').expect("the admin URL names a database")])
}

/// A restore of `source` into `target` (created), one connection, no single transaction.
pub fn restore_request(
    source: backstop_core::restore::RestoreSource,
    target: &str,
) -> backstop_core::restore::RestoreRequest {
    backstop_core::restore::RestoreRequest {
        source,
        target_url: database_url(target),
        database: None,
        create: true,
        clean: false,
        force: false,
        dry_run: false,
        single_transaction: false,
        jobs: 1,
        tables: vec![],
        analyze: false,
    }
}

/// The moto endpoint.
pub fn aws_endpoint() -> String {
    std::env::var("BACKSTOP_TEST_AWS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
}

/// The Lambda emulator's endpoint.
pub fn lambda_endpoint() -> String {
    std::env::var("BACKSTOP_TEST_LAMBDA_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9100".into())
}

/// The environment `scripts/stack.sh` gave the functions.
pub fn lambda_env() -> Result<HashMap<String, String>> {
    let path = repo_root().join(".stack/lambda.env");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("{} missing: run scripts/stack.sh up (scripts/test.sh does)", path.display())
    })?;
    Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

/// Connects to a database by URL.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.with_context(|| {
        format!("cannot connect to PostgreSQL at {url}: is it running? (scripts/stack.sh up)")
    })?;
    tokio::spawn(conn);
    Ok(client)
}

/// A database made for one test and dropped when the test ends, even on panic.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create(label: &str) -> Result<Self> {
        let name = format!("bk_{label}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let admin = connect(&admin_url()).await?;
        admin.batch_execute(&format!("create database \"{name}\"")).await?;
        Ok(Self::adopt(&name))
    }

    /// A database something else creates (a restore target), dropped at the end like the others.
    pub fn adopt(name: &str) -> Self {
        TestDb { name: name.to_owned(), url: database_url(name) }
    }

    pub async fn client(&self) -> Result<Client> {
        connect(&self.url).await
    }

    /// Runs SQL through psql (as a user restoring would), failing on the first error.
    pub async fn psql(&self, sql: &[u8]) -> Result<String> {
        psql(&self.url, sql).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context; a short-lived runtime on its own thread does the work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                // A subscription keeps its database from being dropped: it goes first (without
                // its slot, which a subscription made with connect = false never had).
                if let Ok(db) = connect(&database_url(&name)).await {
                    let _ = db
                        .batch_execute(
                            "do $$ declare s text; begin
                               for s in select quote_ident(subname) from pg_subscription
                                 where subdbid = (select oid from pg_database where datname = current_database()) loop
                                 execute format('alter subscription %s disable', s);
                                 execute format('alter subscription %s set (slot_name = none)', s);
                                 execute format('drop subscription %s', s);
                               end loop; end $$",
                        )
                        .await;
                }
                if let Ok(admin) = connect(&admin_url()).await {
                    let _ = admin
                        .batch_execute(&format!("drop database if exists \"{name}\" with (force)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Pipes `sql` into `psql -v ON_ERROR_STOP=1`, returning stderr; an error if psql fails.
pub async fn psql(url: &str, sql: &[u8]) -> Result<String> {
    let mut child = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running psql")?;
    let mut stdin = child.stdin.take().expect("piped");
    let sql = sql.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&sql).await;
    });
    let mut stderr = String::new();
    child.stderr.take().expect("piped").read_to_string(&mut stderr).await?;
    let status = child.wait().await?;
    writer.await?;
    if !status.success() {
        bail!("psql failed ({status}): {stderr}");
    }
    Ok(stderr)
}

/// Row count and an order-independent content hash per table of the `public` schema.
pub async fn fingerprint(client: &Client) -> Result<Vec<(String, i64, String)>> {
    fingerprint_of(
        client,
        "select tablename, 'public.' || quote_ident(tablename) from pg_tables where schemaname = 'public' order by 1",
    )
    .await
}

/// Row count and an order-independent content hash of every table outside the system schemas
/// (`schema.table`, its own rows only), the way the native engine's proof compares a source and
/// its restore.
pub async fn fingerprint_all(client: &Client) -> Result<Vec<(String, i64, String)>> {
    fingerprint_of(
        client,
        "select format('%I.%I', schemaname, tablename), 'only ' || format('%I.%I', schemaname, tablename)
         from pg_tables where schemaname not in ('pg_catalog', 'information_schema') order by 1",
    )
    .await
}

/// `tables` lists `(name, FROM expression)`; each table's count and hash under its name.
async fn fingerprint_of(client: &Client, tables: &str) -> Result<Vec<(String, i64, String)>> {
    let tables: Vec<(String, String)> =
        client.query(tables, &[]).await?.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut out = Vec::new();
    for (name, from) in tables {
        let row = client
            .query_one(
                &format!("select count(*), coalesce(md5(string_agg(x::text, '|' order by x::text)), '') from {from} x"),
                &[],
            )
            .await?;
        out.push((name, row.get(0), row.get(1)));
    }
    Ok(out)
}

/// The SQL of a stored backup: every object in manifest order, each checked against the
/// manifest (stored size, SHA-256, uncompressed size), decompressed and concatenated.
pub async fn stored_sql(stack: &Stack, manifest: &backstop_core::backup::Manifest) -> Result<Vec<u8>> {
    let (mut sql, mut stored_total) = (Vec::new(), 0u64);
    for o in &manifest.objects {
        let stored = stack.get(&o.key).await?;
        if stored.len() as u64 != o.bytes || sha256_hex(&stored) != o.sha256 {
            bail!("{} does not match its manifest entry", o.key);
        }
        let plain = decompress(&o.key, &stored).await?;
        if plain.len() as u64 != o.uncompressed_bytes {
            bail!(
                "{}: {} bytes uncompressed, the manifest says {}",
                o.key,
                plain.len(),
                o.uncompressed_bytes
            );
        }
        stored_total += o.bytes;
        sql.extend(plain);
    }
    if stored_total != manifest.bytes {
        bail!("the objects hold {stored_total} bytes, the manifest says {}", manifest.bytes);
    }
    Ok(sql)
}

/// The SDK configuration for moto, with fixed test credentials.
pub async fn sdk() -> Result<SdkConfig> {
    let endpoint = aws_endpoint();
    let addr = endpoint.trim_start_matches("http://");
    tokio::net::TcpStream::connect(addr).await.with_context(|| {
        format!("moto is not answering at {endpoint}: run scripts/stack.sh up (scripts/test.sh does)")
    })?;
    Ok(aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await)
}

/// A bucket, a topic and an SQS queue subscribed to it, all new for one test.
#[derive(Debug, Clone)]
pub struct Stack {
    pub sdk: SdkConfig,
    pub bucket: String,
    pub topic_arn: String,
    pub queue_url: String,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Stack {
    pub async fn new(label: &str) -> Result<Self> {
        let sdk = sdk().await?;
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let bucket = format!("bk-{label}-{id}");
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build(),
        );
        s3.create_bucket().bucket(&bucket).send().await.context("create bucket")?;
        let sns = aws_sdk_sns::Client::new(&sdk);
        let topic_arn =
            sns.create_topic().name(format!("bk-{label}-{id}")).send().await?.topic_arn.expect("arn");
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = subscribe_queue(&sns, &sqs, &topic_arn, &format!("bk-{label}-{id}")).await?;
        Ok(Stack { sdk, bucket, topic_arn, queue_url, s3, sqs })
    }

    /// A config writing to this stack's bucket and topic, with the given database source.
    pub fn config(&self, db: DbConfig) -> Config {
        let mut c = Config::from_lookup(|_| None, Some(Destination::S3 { bucket: self.bucket.clone() }))
            .expect("defaults are valid");
        c.db = db;
        c.env = "test".into();
        c.sns_topic_arn = Some(self.topic_arn.clone());
        c.s3.force_path_style = true;
        c
    }

    pub fn app(&self, config: Config) -> App {
        App::new(&self.sdk, config).expect("app builds")
    }

    /// Every key in the bucket.
    pub async fn keys(&self) -> Result<Vec<String>> {
        let out = self.s3.list_objects_v2().bucket(&self.bucket).send().await?;
        Ok(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect())
    }

    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let out = self.s3.get_object().bucket(&self.bucket).key(key).send().await?;
        Ok(out.body.collect().await?.into_bytes().to_vec())
    }

    /// Runs db-backup of `db` into this stack with `payload`.
    pub async fn backup(&self, db: &TestDb, payload: serde_json::Value) -> backstop_core::run::RunRecord {
        let app = self.app(self.config(DbConfig::Url(db.url.clone())));
        backstop_core::run::execute::<backstop_core::backup::DbBackup>(&app, &payload, None).await
    }

    /// Writes a back-dated copy of a real backup's manifest (`template`) taken at `at`, with
    /// small parts of its own: a backup retention cannot tell from a real one. Its manifest key.
    pub async fn back_dated(
        &self,
        template: &serde_json::Value,
        at: jiff::Timestamp,
        tag: Option<&str>,
    ) -> String {
        let database = template["database"].as_str().expect("a manifest names its database");
        let run_id =
            format!("{}-{}", at.strftime("%Y%m%dT%H%M%SZ"), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let env = template["env"].as_str().unwrap_or("test");
        let stem = backstop_core::keys::backup_stem("backstop/", database, env, &at, &run_id);
        let mut m = template.clone();
        m["run_id"] = serde_json::json!(run_id);
        m["tag"] = serde_json::json!(tag);
        for field in ["started", "finished", "snapshot"] {
            m[field] = serde_json::json!(at.to_string());
        }
        let objects = m["objects"].as_array_mut().expect("a manifest lists objects");
        for (i, o) in objects.iter_mut().enumerate() {
            let key = format!("{stem}/part-{i}.sql.zst");
            let put = self.s3.put_object().bucket(&self.bucket).key(&key).body(b"part".to_vec().into());
            put.send().await.expect("put a part");
            o["key"] = serde_json::json!(key);
            o["bytes"] = serde_json::json!(4);
        }
        m["bytes"] = serde_json::json!(4 * objects.len() as u64);
        let manifest_key = backstop_core::keys::manifest_key(&stem);
        let body = serde_json::to_vec(&m).expect("json");
        let put = self.s3.put_object().bucket(&self.bucket).key(&manifest_key).body(body.into());
        put.send().await.expect("put the manifest");
        manifest_key
    }

    /// The first database's backup key and manifest of a db-backup run record.
    pub async fn manifest_of(
        &self,
        record: &backstop_core::run::RunRecord,
    ) -> Result<(String, backstop_core::backup::Manifest)> {
        let out = &record.outputs["databases"][0];
        let key = out["manifest_key"].as_str().context("the run record has no manifest key")?;
        let manifest = serde_json::from_slice(&self.get(key).await?)?;
        Ok((out["key"].as_str().context("the run record has no key")?.to_owned(), manifest))
    }

    /// Multipart uploads that were started and never completed or aborted.
    pub async fn open_uploads(&self) -> Result<usize> {
        let out = self.s3.list_multipart_uploads().bucket(&self.bucket).send().await?;
        Ok(out.uploads().len())
    }

    /// The run records (SNS `sqs` messages) that reached the queue, waiting up to `timeout`
    /// for at least `want`.
    pub async fn outcomes(&self, want: usize, timeout: Duration) -> Result<Vec<Outcome>> {
        receive(&self.sqs, &self.queue_url, want, timeout, |_| true).await
    }
}

/// One SNS message as an SQS subscriber sees it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub subject: String,
    pub record: serde_json::Value,
    pub attributes: serde_json::Value,
}

/// Creates a queue and subscribes it to the topic; returns the queue URL.
pub async fn subscribe_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    topic_arn: &str,
    name: &str,
) -> Result<String> {
    let queue_url = sqs.create_queue().queue_name(name).send().await?.queue_url.expect("url");
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await?;
    let queue_arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("arn");
    sns.subscribe().topic_arn(topic_arn).protocol("sqs").endpoint(queue_arn).send().await?;
    Ok(queue_url)
}

/// Reads SNS envelopes from a queue until `want` messages that `keep` accepts have arrived.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    want: usize,
    timeout: Duration,
    keep: impl Fn(&Outcome) -> bool,
) -> Result<Vec<Outcome>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want && tokio::time::Instant::now() < deadline {
        let resp = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        for m in resp.messages() {
            let envelope: serde_json::Value = serde_json::from_str(m.body().unwrap_or("{}"))?;
            let record = serde_json::from_str(envelope["Message"].as_str().unwrap_or("null"))?;
            let outcome = Outcome {
                subject: envelope["Subject"].as_str().unwrap_or_default().to_owned(),
                record,
                attributes: envelope["MessageAttributes"].clone(),
            };
            if keep(&outcome) {
                out.push(outcome);
            }
            if let Some(h) = m.receipt_handle() {
                sqs.delete_message().queue_url(queue_url).receipt_handle(h).send().await?;
            }
        }
    }
    Ok(out)
}

/// A Lambda invocation's answer: HTTP status, whether it is a function error, and the body.
#[derive(Debug)]
pub struct Invoked {
    pub status: u16,
    pub function_error: bool,
    pub body: serde_json::Value,
}

/// Calls the Invoke API of the Lambda emulator directly (the AWS CLI would retry a 500).
/// AWS answers a failed function with 200 and `X-Amz-Function-Error`; the emulator with 500:
/// both count as a function error here.
pub async fn invoke(function: &str, payload: &serde_json::Value) -> Result<Invoked> {
    let endpoint = lambda_endpoint();
    let addr = endpoint.trim_start_matches("http://").to_owned();
    let body = serde_json::to_vec(payload)?;
    let mut stream = tokio::net::TcpStream::connect(&addr).await.with_context(|| {
        format!("the Lambda emulator is not answering at {endpoint}: run scripts/stack.sh up")
    })?;
    let head = format!(
        "POST /2015-03-31/functions/{function}/invocations HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(600), stream.read_to_end(&mut raw))
        .await
        .context("invoke timed out")??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("malformed HTTP answer")?;
    let status: u16 = head.split_whitespace().nth(1).context("no status")?.parse()?;
    let function_error = status >= 500 || head.to_ascii_lowercase().contains("x-amz-function-error");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let body = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    Ok(Invoked { status, function_error, body })
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Decompresses a stored dump (zstd or gzip by key suffix).
pub async fn decompress(key: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
    let mut out = Vec::new();
    if key.ends_with(".zst") {
        ZstdDecoder::new(bytes).read_to_end(&mut out).await?;
    } else if key.ends_with(".gz") {
        GzipDecoder::new(bytes).read_to_end(&mut out).await?;
    } else {
        out = bytes.to_vec();
    }
    Ok(out)
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `../shared/data` beside the checkout, where CI keeps shared test data; `None` (after
/// saying so) when it is absent, e.g. in a user's fresh clone.
pub fn shared_data(file: &str) -> Option<PathBuf> {
    let path = repo_root().parent()?.join("shared/data").join(file);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("SKIPPED: {} is absent (it is beside the checkout in CI)", path.display());
        None
    }
}

/// `pg_dump --schema-only --no-owner` of a database, with comments, blank lines, `SET`s and
/// the `\restrict` guard lines removed, for comparing two databases' schemas.
pub async fn schema_of(url: &str) -> Result<String> {
    normalized_schema(url, &["--no-owner"]).await
}

/// Like [`schema_of`], with owners and privileges.
pub async fn full_schema_of(url: &str) -> Result<String> {
    normalized_schema(url, &[]).await
}

async fn normalized_schema(url: &str, extra: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new("pg_dump")
        .args(["--schema-only", "-d", url])
        .args(extra)
        .output()
        .await?;
    if !out.status.success() {
        bail!("pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("--")
                || l.starts_with("SET ")
                || l.starts_with("\\restrict")
                || l.starts_with("\\unrestrict"))
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Runs `pg_dump` (plain format) and returns its output.
pub async fn pg_dump_plain(url: &str) -> Result<Vec<u8>> {
    pg_dump_plain_with(url, &[]).await
}

/// [`pg_dump_plain`] with more options (`--inserts`, …).
pub async fn pg_dump_plain_with(url: &str, options: &[&str]) -> Result<Vec<u8>> {
    let out = tokio::process::Command::new("pg_dump")
        .args(["--format=plain", "-d", url])
        .args(options)
        .output()
        .await?;
    if !out.status.success() {
        bail!("pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// The second S3 server (another endpoint, as MinIO or another provider would be).
pub fn aws_endpoint2() -> String {
    std::env::var("BACKSTOP_TEST_AWS_ENDPOINT2").unwrap_or_else(|_| "http://127.0.0.1:5056".into())
}

/// An S3 client for `endpoint` with the fixed test credentials.
pub async fn s3_client(endpoint: &str) -> Result<aws_sdk_s3::Client> {
    let addr = endpoint.trim_start_matches("http://");
    tokio::net::TcpStream::connect(addr).await.with_context(|| {
        format!("no S3 server at {endpoint}: run scripts/stack.sh up (scripts/test.sh does)")
    })?;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await;
    Ok(aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build()))
}

/// Every object under `prefix` of `bucket`: key (without the prefix) → bytes.
pub async fn bucket_contents(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        for o in page?.contents() {
            let key = o.key().context("a listed key")?;
            let body =
                s3.get_object().bucket(bucket).key(key).send().await?.body.collect().await?.into_bytes();
            out.insert(key[prefix.len()..].to_owned(), body.to_vec());
        }
    }
    Ok(out)
}

/// Every file below `dir`: relative path → bytes.
pub fn dir_contents(dir: &Path) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir)?.to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path)?);
            }
        }
    }
    Ok(out)
}

/// The request lines (`GET /bucket/key?… HTTP/1.1`) moto's log holds for `bucket` after line
/// `from` (see [`moto_log_len`]); `None`, after saying so, when the log is not this stack's.
pub fn moto_requests(bucket: &str, from: usize) -> Option<Vec<String>> {
    let path = repo_root().join(".stack/moto.log");
    if std::env::var("BACKSTOP_TEST_AWS_ENDPOINT").is_ok_and(|e| !e.ends_with(":5055")) || !path.exists() {
        eprintln!("SKIPPED: request counting needs the moto log of scripts/stack.sh ({})", path.display());
        assert!(std::env::var("CI").is_err(), "under CI the request log must be there");
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let needle = format!(" /{bucket}");
    Some(
        text.lines()
            .skip(from)
            .filter(|l| l.contains(&needle))
            .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
            .collect(),
    )
}

/// Lines in moto's log so far.
pub fn moto_log_len() -> usize {
    std::fs::read_to_string(repo_root().join(".stack/moto.log")).map(|t| t.lines().count()).unwrap_or(0)
}

/// A stand-in `pg_dump` that only answers `--version` with `line`, as an outdated binary in a
/// Lambda layer would; its directory goes when this is dropped.
#[derive(Debug)]
pub struct FakePgDump {
    dir: PathBuf,
    pub path: PathBuf,
}

impl FakePgDump {
    pub fn new(label: &str, line: &str) -> Result<Self> {
        let dir = std::env::temp_dir()
            .join(format!("backstop-fake-pg_dump-{label}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("pg_dump");
        std::fs::write(&path, format!("#!/bin/sh\necho '{line}'\n"))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        Ok(FakePgDump { dir, path })
    }
}

impl Drop for FakePgDump {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
