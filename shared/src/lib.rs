//! # Backstop core
//!
//! Everything the Lambda functions and the `backstop` CLI share. Functions stay thin: they
//! build an [`App`] once and hand each invocation to [`lambda::handle`].
//!
//! # Layout
//!
//! - `access`    — what each function may do in AWS (IAM actions on named resources): the table
//!   the Terraform roles and the audited end-to-end tests are checked against.
//! - `config`    — [`Config`] from the environment (pure, tested); S3 compatibility settings.
//! - `app`       — [`App`]: the config plus one client per port, built once at init.
//! - `error`     — the [`Error`] enum: context, cause chain, and whether a retry can help; a
//!   store error's [`StoreKind`] (`NotFound`, `Denied`, `Locked`, …), which retention, catalog
//!   and media decide on, never the error's text.
//! - `keys`      — every key Backstop writes (`db/`, `runs/`, `media/…`, manifests), built and
//!   parsed in one place.
//! - `payload`   — invocation payloads: EventBridge scheduled events or option objects.
//! - `run`       — the [`run::Job`] trait and `execute`: run records, outcome messages.
//! - `lambda`    — the generic Lambda handler: run record out, or a function error.
//! - `telemetry` — tracing set-up (JSON in Lambda) and how often long work reports progress
//!   (the CLI draws bars from those events: `functions/cli/src/bars.rs`).
//! - `metrics`   — CloudWatch Embedded Metric Format lines per run (success, bytes, rows, …), which
//!   the module's error and freshness alarms read.
//! - `db`        — credentials cache, connections, preflight (version, size, tables).
//! - `iam_auth`  — RDS IAM database authentication: a SigV4 token per connection, TLS required.
//! - `tls`       — TLS for PostgreSQL with libpq's sslmode meanings (RDS needs it).
//! - `secrets`   — the `SecretSource` port, Secrets Manager adapter, RDS secret format.
//! - `store`     — the `ObjectStore` port (paged key-order listing, conditional server-side
//!   copy, batched deletes, metadata), S3 and local-directory adapters (escaped keys for the
//!   backup store; verbatim names for media sources and confined restore targets), streaming
//!   multipart, and `FaultyStore`, the test double that fails chosen keys with a chosen
//!   [`StoreKind`].
//! - `notify`    — the `Notifier` port, SNS adapter, message rendering.
//! - `backup`    — the db-backup job: options, naming, manifest, the compressor (on a thread of
//!   its own; zstd level per table with `Level::Auto`), upload checks, one progress ticker, and
//!   both engines: `backup::pg_dump` (the binary, and the stand-in where the native engine
//!   cannot write an object) and `backup::native` (snapshot, locks, schema from the catalogs —
//!   `schema`, one file per object family, ordered by `order` — parallel COPY workers, sets;
//!   large objects streamed through a cursor into a part of their own, not schema nodes).
//! - `catalog`   — listing backups (by manifest) and run records (history).
//! - `restore`   — `backstop restore` (verify, then replay a set or a plain dump in batches of
//!   statements (`apply`), data parts and post-data as one dependency graph on `--jobs`
//!   connections (`post`), `--tables` (`select`: which rows, which foreign keys stay)) and the
//!   `verify` job (restore into a scratch database, compare with the manifest).
//! - `retention` — the retention-prune job: keep-policy planner (`plan`: restic's rules, pure,
//!   time zone aware), the inventory grouped by (environment, database, full | partial) with
//!   unreadable markers as members, and the guarded executor (markers first, their parts only
//!   once their delete succeeded, staleness per group, trash by snapshot).
//! - `cleanup`   — the notification-cleanup job: rules, catalog checks, batched deletes.
//! - `media`     — the media-sync job (`options`; `source`: a bucket or a directory, refused
//!   when it holds its own backup; `sync`: the two passes, count then copy, and the commit;
//!   `plan`: the two key-ordered streams merged; `copy`: server-side or streamed and verified;
//!   `snapshot`: the per-run state, streamed; `lease`: one run at a time; `check`: the mirror
//!   against the newest snapshot), `archive`, and media-restore.

pub mod access;
pub mod app;
pub mod backup;
pub mod catalog;
pub mod cleanup;
pub mod config;
pub mod db;
pub mod error;
pub mod iam_auth;
pub mod keys;
pub mod lambda;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod payload;
pub mod restore;
pub mod retention;
pub mod run;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod tls;

pub use app::App;
pub use config::Config;
pub use error::{Error, Result, StoreKind};
