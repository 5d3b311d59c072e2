//! db-backup's options, as a payload or CLI flags give them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Compression of the stored dump.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Zstd,
    Gzip,
}

impl Compression {
    /// The file extension after `.sql`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "zst",
            Compression::Gzip => "gz",
        }
    }

    pub fn default_level(self) -> i32 {
        match self {
            Compression::Zstd => 3,
            Compression::Gzip => 6,
        }
    }

    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Compression::Zstd => 1..=19,
            Compression::Gzip => 1..=9,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Compression::Zstd => "application/zstd",
            Compression::Gzip => "application/gzip",
        }
    }
}

/// How the dump is produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Engine {
    /// Over tokio-postgres: one snapshot, parallel COPY, schema from the catalogs; no binary.
    #[default]
    #[serde(rename = "native")]
    Native,
    /// The `pg_dump` binary, plain format.
    #[serde(rename = "pg_dump")]
    PgDump,
}

/// What a backup is stored as (native engine; pg_dump always writes one object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `pre-data`, one part per table (written in parallel), `post-data`.
    #[default]
    Set,
    /// One `.sql.zst`/`.sql.gz` object.
    Single,
}

/// How hard each stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// This level throughout (`compression_level`, or gzip's default).
    Fixed(i32),
    /// zstd without a `compression_level`, for streams of one table each (the native engine's
    /// backup sets): per stream, the cheapest level that is clearly smaller than the default
    /// level on the stream's first MiB ([`crate::backup::stream::auto_level`]).
    /// Never worse than the default by that sample; on random-looking data (hashes, tokens,
    /// UUIDs), where zstd's faster levels compress better, smaller and much cheaper.
    Auto,
}

/// Most parallel workers a payload may ask for.
pub const MAX_JOBS: usize = 32;
/// `split_mb` at most 1 TiB.
pub const MAX_SPLIT_MB: u64 = 1024 * 1024;
/// `lock_timeout_s` at most a day.
pub const MAX_LOCK_TIMEOUT_S: u64 = 86_400;

/// The options of one db-backup run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupOptions {
    /// Databases to back up; default: the secret's or URL's database.
    pub databases: Vec<String>,
    pub compression: Compression,
    /// zstd 1–19 (default: 3; in backup sets per table, 3 or a cheaper level that compresses
    /// the table's first MiB better, see [`Level::Auto`]), gzip 1–9 (default 6).
    pub compression_level: Option<i32>,
    pub engine: Engine,
    /// Fail where the native engine cannot write an object, instead of letting pg_dump (no
    /// older than the server, if installed) dump the database.
    pub no_fallback: bool,
    pub layout: Layout,
    /// Parallel connections dumping data (native engine); default: the machine's CPUs.
    pub jobs: Option<usize>,
    /// Leave out `ALTER … OWNER TO` (for a restore into a server whose roles differ).
    pub no_owner: bool,
    /// Leave out GRANT and REVOKE.
    pub no_privileges: bool,
    /// How long to wait for each table's lock before failing (native engine), seconds.
    pub lock_timeout_s: Option<u64>,
    /// Tables larger than this (MiB, main fork) are dumped in parts by several workers
    /// (native engine, `set` layout, `jobs` > 1); default 128.
    pub split_mb: Option<u64>,
    /// Patterns (`*`, `?`; `schema.table` or `table`): only matching tables. pg_dump: only
    /// these tables at all (`-t`); native: the whole schema, only these tables' rows.
    pub include_tables: Vec<String>,
    /// Patterns of tables left out: pg_dump `-T`; native: their rows (the schema stays whole,
    /// so the restore is consistent).
    pub exclude_tables: Vec<String>,
    pub schema_only: bool,
    /// Plan and check connectivity; write nothing.
    pub dry_run: bool,
    /// A free label recorded in the manifest (e.g. `manual`, `pre-migration`).
    pub tag: Option<String>,
}

impl BackupOptions {
    /// Checks what serde cannot: value ranges and patterns.
    pub fn validate(&self) -> Result<()> {
        if let Some(level) = self.compression_level
            && !self.compression.levels().contains(&level)
        {
            let r = self.compression.levels();
            return Err(Error::Payload(format!(
                "compression_level: {level} is outside {}..={} for {:?}",
                r.start(),
                r.end(),
                self.compression
            )));
        }
        for (field, list) in [
            ("databases", &self.databases),
            ("include_tables", &self.include_tables),
            ("exclude_tables", &self.exclude_tables),
        ] {
            for (i, v) in list.iter().enumerate() {
                if v.is_empty() || v.len() > 255 || v.chars().any(|c| c.is_control()) {
                    return Err(Error::Payload(format!(
                        "{field}[{i}]: {v:?} must be 1-255 characters without control characters"
                    )));
                }
            }
        }
        // Two dumps of one database in one run would share a stem: the second's failure would
        // sweep the first's parts under its manifest.
        for (i, db) in self.databases.iter().enumerate() {
            if self.databases[..i].contains(db) {
                return Err(Error::Payload(format!("databases[{i}]: {db:?} is listed twice")));
            }
        }
        if let Some(jobs) = self.jobs
            && !(1..=MAX_JOBS).contains(&jobs)
        {
            return Err(Error::Payload(format!("jobs: {jobs} is outside 1..={MAX_JOBS}")));
        }
        // Bounded so that sizes and milliseconds derived from them cannot overflow.
        if let Some(mb) = self.split_mb
            && !(1..=MAX_SPLIT_MB).contains(&mb)
        {
            return Err(Error::Payload(format!("split_mb: {mb} is outside 1..={MAX_SPLIT_MB}")));
        }
        if let Some(s) = self.lock_timeout_s
            && !(1..=MAX_LOCK_TIMEOUT_S).contains(&s)
        {
            return Err(Error::Payload(format!("lock_timeout_s: {s} is outside 1..={MAX_LOCK_TIMEOUT_S}")));
        }
        if self.engine == Engine::PgDump && self.jobs.is_some() {
            return Err(Error::Payload("jobs: only the native engine dumps in parallel".into()));
        }
        if let Some(tag) = &self.tag
            && (tag.is_empty() || tag.len() > 64 || tag.chars().any(|c| c.is_control()))
        {
            return Err(Error::Payload(format!(
                "tag: {tag:?} must be 1-64 characters without control characters"
            )));
        }
        Ok(())
    }

    /// The level of every stream of the backup. `whole_database`: one stream holds the whole
    /// database (pg_dump's output, the `single` layout); its first MiB (the schema, the first
    /// table) says little about the rest, so zstd keeps its default level there.
    pub fn level(&self, whole_database: bool) -> Level {
        match (self.compression_level, self.compression) {
            (Some(level), _) => Level::Fixed(level),
            (None, Compression::Zstd) if !whole_database => Level::Auto,
            (None, _) => Level::Fixed(self.compression.default_level()),
        }
    }

    /// Parallel workers: as asked, or one per CPU (a Lambda's vCPUs follow its memory size).
    pub fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()).min(8))
    }

    /// The lock wait before a backup gives up on a table.
    pub fn lock_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lock_timeout_s.unwrap_or(30))
    }
}

/// Does `table` (schema, name) match a pg_dump-style pattern (`*`, `?`; `schema.table` or
/// `table`)? Used to filter the manifest's table list the way pg_dump filters the dump.
pub fn pattern_matches(pattern: &str, schema: &str, table: &str) -> bool {
    match pattern.split_once('.') {
        Some((sp, tp)) => glob(sp, schema) && glob(tp, table),
        None => glob(pattern, table),
    }
}

/// `*` (any run of characters, `/` included) and `?` (one character); everything else literal.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("orders", "public", "orders", true)]
    #[case("order*", "public", "orders_2024", true)]
    #[case("public.o?ders", "public", "orders", true)]
    #[case("audit.*", "public", "orders", false)]
    #[case("*", "x", "y", true)]
    #[case("a*b", "s", "acb_", false)]
    fn patterns(#[case] pattern: &str, #[case] schema: &str, #[case] table: &str, #[case] expected: bool) {
        assert_eq!(pattern_matches(pattern, schema, table), expected);
    }

    #[rstest]
    #[case::zstd_sets_adapt(Compression::Zstd, None, false, Level::Auto)]
    #[case::zstd_whole_database_keeps_3(Compression::Zstd, None, true, Level::Fixed(3))]
    #[case::asked_for_is_kept(Compression::Zstd, Some(5), false, Level::Fixed(5))]
    #[case::asked_for_whole_database(Compression::Zstd, Some(5), true, Level::Fixed(5))]
    #[case::gzip_default(Compression::Gzip, None, false, Level::Fixed(6))]
    #[case::gzip_asked_for(Compression::Gzip, Some(2), true, Level::Fixed(2))]
    fn levels(
        #[case] compression: Compression,
        #[case] compression_level: Option<i32>,
        #[case] whole_database: bool,
        #[case] expected: Level,
    ) {
        let options = BackupOptions { compression, compression_level, ..Default::default() };
        assert_eq!(options.level(whole_database), expected);
    }

    #[test]
    fn validation_names_the_field() {
        let o = BackupOptions {
            compression: Compression::Gzip,
            compression_level: Some(12),
            ..Default::default()
        };
        assert!(o.validate().unwrap_err().to_string().contains("compression_level"));
        let o = BackupOptions { exclude_tables: vec!["a\nb".into()], ..Default::default() };
        assert!(o.validate().unwrap_err().to_string().contains("exclude_tables[0]"));
        let o = BackupOptions {
            databases: vec!["shop".into(), "blog".into(), "shop".into()],
            ..Default::default()
        };
        let err = o.validate().unwrap_err().to_string();
        assert!(err.contains("databases[2]") && err.contains("twice"), "{err}");
    }

    #[test]
    fn sizes_and_timeouts_are_bounded_so_nothing_derived_overflows() {
        for (o, field) in [
            (BackupOptions { split_mb: Some(0), ..Default::default() }, "split_mb: 0"),
            (
                BackupOptions { split_mb: Some(u64::MAX), ..Default::default() },
                "split_mb: 18446744073709551615",
            ),
            (BackupOptions { lock_timeout_s: Some(0), ..Default::default() }, "lock_timeout_s: 0"),
            (
                BackupOptions { lock_timeout_s: Some(10_000_000_000), ..Default::default() },
                "lock_timeout_s: 10000000000",
            ),
        ] {
            let e = o.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        assert!(
            BackupOptions { split_mb: Some(MAX_SPLIT_MB), lock_timeout_s: Some(900), ..Default::default() }
                .validate()
                .is_ok()
        );
    }
}
