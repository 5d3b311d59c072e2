//! Every key Backstop writes, built and parsed here and nowhere else:
//!
//! ```text
//! {prefix}db/{database}/{YYYY}/{MM}/{DD}/{database}_{env}_{run_id}     a backup's stem
//!     ….sql.zst | …/pre-data.sql.zst …                                 its objects
//!     ….manifest.json                                                  its manifest (commit marker)
//! {prefix}runs/{job}/{YYYY}/{MM}/{DD}/{run_id}.json                    run records
//! {prefix}media/current/{key}                                          the media mirror
//! {prefix}media/trash/{run_id}/{key}                                   replaced or deleted media
//! {prefix}media/lease.json                                            the running media-sync's lease
//! {prefix}media/snapshots/{YYYY}/{MM}/{DD}/{run_id}.jsonl.zst          a media snapshot
//!     ….json                                                           its summary (commit marker)
//! ```
//!
//! Pure functions of their inputs, pinned by tests.

use jiff::Timestamp;

/// The suffix that marks a backup's manifest.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
const SNAPSHOT_SUFFIX: &str = ".jsonl.zst";
const SUMMARY_SUFFIX: &str = ".json";

/// A database name made safe for a key segment: characters outside `[A-Za-z0-9._-]` are
/// percent-encoded, so the mapping stays reversible and two names never collide.
pub fn key_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where every backup (of one database, or of all) lives: `{prefix}db/[{database}/]`.
pub fn db_scope(prefix: &str, database: Option<&str>) -> String {
    match database {
        Some(db) => format!("{prefix}db/{}/", key_segment(db)),
        None => format!("{prefix}db/"),
    }
}

/// The stem every key of one backup starts with: a set's parts are `{stem}/…`, its manifest
/// `{stem}.manifest.json`. `run_id` (the start time and a random suffix) makes it the run's
/// own: two runs started in the same second (EventBridge delivers an event at least once, so a
/// schedule can fire twice) never write over each other's objects.
pub fn backup_stem(prefix: &str, database: &str, env: &str, at: &Timestamp, run_id: &str) -> String {
    let db = key_segment(database);
    format!("{}{db}/{}/{db}_{env}_{}", db_scope(prefix, None), at.strftime("%Y/%m/%d"), key_segment(run_id))
}

/// The key of a single-object dump under `stem`.
pub fn dump_key(stem: &str, extension: &str) -> String {
    format!("{stem}.sql.{extension}")
}

/// The manifest's key (beside a single dump, or after a set's stem): written last, it is what
/// makes a backup exist. A key that already is a manifest's is returned as it is.
pub fn manifest_key(dump_key_or_stem: &str) -> String {
    if is_manifest(dump_key_or_stem) {
        dump_key_or_stem.to_owned()
    } else {
        format!("{dump_key_or_stem}{MANIFEST_SUFFIX}")
    }
}

/// Whether `key` is a backup's manifest.
pub fn is_manifest(key: &str) -> bool {
    key.ends_with(MANIFEST_SUFFIX)
}

/// A backup's own name, as people see it: the manifest's file name without its suffix.
pub fn backup_name(manifest_key: &str) -> &str {
    let file = manifest_key.rsplit('/').next().unwrap_or_default();
    file.strip_suffix(MANIFEST_SUFFIX).unwrap_or(file)
}

/// Where run records of one job (or all) live: `{prefix}runs/[{job}/]`.
pub fn runs_scope(prefix: &str, job: Option<&str>) -> String {
    match job {
        Some(j) => format!("{prefix}runs/{j}/"),
        None => format!("{prefix}runs/"),
    }
}

/// `{prefix}runs/{job}/{YYYY}/{MM}/{DD}/{run_id}.json`
pub fn record_key(prefix: &str, job: &str, started: &Timestamp, run_id: &str) -> String {
    format!("{}{}/{run_id}.json", runs_scope(prefix, Some(job)), started.strftime("%Y/%m/%d"))
}

/// Everything media-sync writes: `{prefix}media/`.
pub fn media_scope(prefix: &str) -> String {
    format!("{prefix}media/")
}

/// The mirror of the source: `{prefix}media/current/`.
pub fn media_current_scope(prefix: &str) -> String {
    format!("{prefix}media/current/")
}

/// Where the current copy of source key `key` is stored. Source keys are kept verbatim (spaces,
/// unicode, a leading `/`): the mirror must name what the application names.
pub fn media_current(prefix: &str, key: &str) -> String {
    format!("{}{key}", media_current_scope(prefix))
}

/// The source key a mirror key stands for (`None` outside the mirror).
pub fn media_source_key<'a>(prefix: &str, mirror_key: &'a str) -> Option<&'a str> {
    mirror_key.strip_prefix(&media_current_scope(prefix))
}

/// Trash: `{prefix}media/trash/`.
pub fn media_trash_scope(prefix: &str) -> String {
    format!("{prefix}media/trash/")
}

/// Where a replaced or deleted version of `key` is kept: under the run that *copied that
/// version in*, so every snapshot that lists the version can find it without being rewritten.
pub fn media_trash(prefix: &str, version_run_id: &str, key: &str) -> String {
    format!("{}{version_run_id}/{key}", media_trash_scope(prefix))
}

/// Media snapshots: `{prefix}media/snapshots/`.
pub fn media_snapshots_scope(prefix: &str) -> String {
    format!("{prefix}media/snapshots/")
}

/// A media snapshot's entries (JSON lines, zstd) for run `run_id` started `at`.
pub fn media_snapshot(prefix: &str, at: &Timestamp, run_id: &str) -> String {
    format!(
        "{}{}/{}{SNAPSHOT_SUFFIX}",
        media_snapshots_scope(prefix),
        at.strftime("%Y/%m/%d"),
        key_segment(run_id)
    )
}

/// The summary written after a snapshot's entries: what makes the snapshot exist.
pub fn media_summary(snapshot_key: &str) -> String {
    let stem = snapshot_key.strip_suffix(SNAPSHOT_SUFFIX).unwrap_or(snapshot_key);
    format!("{stem}{SUMMARY_SUFFIX}")
}

/// Whether `key` is a media snapshot's summary.
pub fn is_media_summary(key: &str) -> bool {
    key.ends_with(SUMMARY_SUFFIX) && !key.ends_with(SNAPSHOT_SUFFIX)
}

/// Where every media archive lives: `{prefix}media/archives/`.
pub fn media_archives_scope(prefix: &str) -> String {
    format!("{prefix}media/archives/")
}

/// The environment of a media archive's key (`…/media_{env}_{run_id}.tar.zst`).
pub fn media_archive_env(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    let stem = name.strip_prefix("media_")?.strip_suffix(".tar.zst")?;
    stem.rsplit_once('_').map(|(env, _)| env)
}

/// The lease one media-sync run at a time holds: `{prefix}media/lease.json`.
pub fn media_lease(prefix: &str) -> String {
    format!("{prefix}media/lease.json")
}

/// The nightly archive of `mode: "archive"`: `{prefix}media/archives/…/media_{env}_{run_id}.tar.zst`.
pub fn media_archive(prefix: &str, env: &str, at: &Timestamp, run_id: &str) -> String {
    format!("{prefix}media/archives/{}/media_{env}_{}.tar.zst", at.strftime("%Y/%m/%d"), key_segment(run_id))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[test]
    fn an_archives_key_names_its_environment() {
        let at: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        let key = media_archive("p/", "prod_eu", &at, "20261203T100000Z-abcd");
        assert!(key.starts_with(&media_archives_scope("p/")));
        assert_eq!(media_archive_env(&key), Some("prod_eu"));
        assert_eq!(media_archive_env("p/media/archives/x.tar"), None);
    }

    #[rstest]
    #[case("shop", "shop")]
    #[case("my db/x", "my%20db%2Fx")]
    #[case("..", "%2E.")]
    #[case("café", "caf%C3%A9")]
    fn segments(#[case] name: &str, #[case] expected: &str) {
        assert_eq!(key_segment(name), expected);
    }

    #[test]
    fn dump_and_manifest_keys() {
        let at: Timestamp = "2026-11-23T03:00:05Z".parse().unwrap();
        let run = "20261123T030005Z-3d552be2";
        let key = dump_key(&backup_stem("backstop/", "shop", "production", &at, run), "zst");
        assert_eq!(key, "backstop/db/shop/2026/11/23/shop_production_20261123T030005Z-3d552be2.sql.zst");
        assert_eq!(manifest_key(&key), format!("{key}.manifest.json"));
        assert_eq!(manifest_key(&manifest_key(&key)), manifest_key(&key));
        assert_eq!(backup_name(&manifest_key(&key)), "shop_production_20261123T030005Z-3d552be2.sql.zst");
        let stem = backup_stem("", "my db", "dev", &at, run);
        assert_eq!(stem, "db/my%20db/2026/11/23/my%20db_dev_20261123T030005Z-3d552be2");
        assert!(stem.starts_with(&db_scope("", Some("my db"))));
        // Two runs in the same second: two stems.
        assert_ne!(stem, backup_stem("", "my db", "dev", &at, "20261123T030005Z-0a1b2c3d"));
    }

    #[test]
    fn record_keys_are_dated_by_start() {
        let t: Timestamp = "2026-11-23T03:00:05Z".parse().unwrap();
        assert_eq!(
            record_key("backstop/", "db-backup", &t, "r1"),
            "backstop/runs/db-backup/2026/11/23/r1.json"
        );
        assert!(record_key("", "x", &t, "r").starts_with(&runs_scope("", Some("x"))));
    }

    #[rstest]
    #[case("a.jpg")]
    #[case("/leading slash.png")]
    #[case("../x/./y %2F+#?.txt")]
    #[case("ünïcødé/ファイル")]
    fn media_keys_round_trip(#[case] key: &str) {
        let mirror = media_current("p/", key);
        assert_eq!(media_source_key("p/", &mirror), Some(key));
        assert!(media_trash("p/", "r1", key).starts_with("p/media/trash/r1/"));
    }

    #[test]
    fn snapshot_and_summary_keys() {
        let t: Timestamp = "2026-11-23T03:00:05Z".parse().unwrap();
        let snap = media_snapshot("p/", &t, "20261123T030005Z-ab");
        assert_eq!(snap, "p/media/snapshots/2026/11/23/20261123T030005Z-ab.jsonl.zst");
        assert_eq!(media_summary(&snap), "p/media/snapshots/2026/11/23/20261123T030005Z-ab.json");
        assert!(is_media_summary(&media_summary(&snap)) && !is_media_summary(&snap));
        assert_eq!(media_archive("p/", "prod", &t, "r"), "p/media/archives/2026/11/23/media_prod_r.tar.zst");
    }
}
