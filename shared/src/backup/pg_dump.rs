//! The `pg_dump` engine: the binary's version check (a pg_dump older than the server is the
//! most common failure of Lambda backup tools, so it is refused up front), and its command
//! line. Credentials go through the environment, never the command line (`ps` shows that).

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStderr, Command};

use super::options::BackupOptions;
use crate::config::DbTls;
use crate::error::{Error, Result};
use crate::secrets::DbCredentials;

/// The line plain-format pg_dump writes last; its absence means the dump was cut short.
pub const COMPLETE_MARKER: &[u8] = b"-- PostgreSQL database dump complete";

/// `pg_dump --version`: the full line and the major version.
pub async fn version(bin: &Path) -> Result<(String, i32)> {
    let bad = |reason: String| Error::Dump { database: "(every database)".into(), reason };
    let out = Command::new(bin).arg("--version").output().await.map_err(|e| {
        bad(format!(
            "cannot run {}: {e} (install PostgreSQL's client or set BACKSTOP_PG_DUMP)",
            bin.display()
        ))
    })?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major = parse_major(&line)
        .ok_or_else(|| bad(format!("cannot read the version of {}: {line:?}", bin.display())))?;
    Ok((line, major))
}

/// `pg_dump (PostgreSQL) 15.19 (Debian …)` → 15; `9.6.24` → 9.
pub fn parse_major(line: &str) -> Option<i32> {
    let version = line.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    version.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Refuses a pg_dump older than the server, with the fix in the message.
pub fn check_compatible(database: &str, pg_dump_major: i32, server_major: i32) -> Result<()> {
    if pg_dump_major < server_major {
        return Err(Error::Unsupported {
            database: database.to_owned(),
            reason: format!(
                "pg_dump {pg_dump_major} is older than the server ({server_major}); pg_dump cannot dump a newer \
                 server. Install pg_dump {server_major} or later, or use the native engine"
            ),
        });
    }
    Ok(())
}

/// The pg_dump invocation for one database, stdout piped. The table patterns of `options` are
/// pg_dump's `-t`/`-T` (which tables at all), unless pg_dump stands in for the native engine:
/// then `rows_left_out` names the tables whose rows are not dumped (the schema stays whole).
pub fn command(
    bin: &Path,
    creds: &DbCredentials,
    tls: &DbTls,
    database: &str,
    options: &BackupOptions,
    rows_left_out: Option<&[String]>,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--format=plain", "--no-password", "--lock-wait-timeout=60s", "--encoding=UTF8"]);
    if options.schema_only {
        cmd.arg("--schema-only");
    }
    if options.no_owner {
        cmd.arg("--no-owner");
    }
    if options.no_privileges {
        cmd.arg("--no-privileges");
    }
    match rows_left_out {
        Some(tables) => {
            for t in tables {
                cmd.arg(format!("--exclude-table-data={t}"));
            }
        }
        None => {
            for p in &options.include_tables {
                cmd.arg(format!("--table={p}"));
            }
            for p in &options.exclude_tables {
                cmd.arg(format!("--exclude-table={p}"));
            }
        }
    }
    cmd.env("PGHOST", &creds.host)
        .env("PGPORT", creds.port.to_string())
        .env("PGUSER", &creds.user)
        .env("PGDATABASE", database)
        .env("PGAPPNAME", "backstop-pg_dump")
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGSSLMODE", tls.mode.as_libpq(&creds.host))
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE");
    if let Some(pw) = &creds.password {
        cmd.env("PGPASSWORD", pw);
    }
    if let Some(root) = &tls.root_cert {
        cmd.env("PGSSLROOTCERT", root);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

/// Logs pg_dump's stderr as it comes and returns its last lines for the error message.
pub async fn collect_stderr(stderr: ChildStderr) -> String {
    let mut lines = BufReader::new(stderr).lines();
    let mut last: Vec<String> = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::warn!(target: "pg_dump", "{line}");
        last.push(line);
        if last.len() > 10 {
            last.remove(0);
        }
    }
    last.join(" | ")
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("pg_dump (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)", Some(15))]
    #[case("pg_dump (PostgreSQL) 17.2", Some(17))]
    #[case("pg_dump (PostgreSQL) 9.6.24", Some(9))]
    #[case("pg_dump (PostgreSQL) 18beta1", Some(18))]
    #[case("garbage", None)]
    fn versions(#[case] line: &str, #[case] expected: Option<i32>) {
        assert_eq!(parse_major(line), expected);
    }

    #[test]
    fn older_pg_dump_is_refused_with_the_fix() {
        let err = check_compatible("shop", 14, 16).unwrap_err().to_string();
        assert!(err.contains("pg_dump 14 is older than the server (16)"), "{err}");
        assert!(check_compatible("shop", 16, 16).is_ok());
        assert!(check_compatible("shop", 17, 16).is_ok());
    }
}
