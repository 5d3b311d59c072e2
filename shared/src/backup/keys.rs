//! Object naming: `{prefix}db/{database}/{YYYY}/{MM}/{DD}/{database}_{env}_{run_id}.sql.zst`,
//! and `{key}.manifest.json` beside it. Pure functions of their inputs, pinned by tests.

use jiff::Timestamp;

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

/// The stem every key of one backup starts with: a set's parts are `{stem}/…`, its manifest
/// `{stem}.manifest.json`. `run_id` (the start time and a random suffix) makes it the run's
/// own: two runs started in the same second (EventBridge delivers an event at least once, so a
/// schedule can fire twice) never write over each other's objects.
pub fn backup_stem(prefix: &str, database: &str, env: &str, at: &Timestamp, run_id: &str) -> String {
    let db = key_segment(database);
    format!("{prefix}db/{db}/{}/{db}_{env}_{}", at.strftime("%Y/%m/%d"), key_segment(run_id))
}

/// The key of a single-object dump under `stem`.
pub fn dump_key(stem: &str, extension: &str) -> String {
    format!("{stem}.sql.{extension}")
}

/// The manifest's key (beside a single dump, or after a set's stem): written last, it is what
/// makes a backup exist.
pub fn manifest_key(dump_key_or_stem: &str) -> String {
    format!("{dump_key_or_stem}.manifest.json")
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

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
        let stem = backup_stem("", "my db", "dev", &at, run);
        assert_eq!(stem, "db/my%20db/2026/11/23/my%20db_dev_20261123T030005Z-3d552be2");
        // Two runs in the same second: two stems.
        assert_ne!(stem, backup_stem("", "my db", "dev", &at, "20261123T030005Z-0a1b2c3d"));
    }
}
