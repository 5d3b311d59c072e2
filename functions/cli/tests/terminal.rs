//! The CLI as a person meets it: on a terminal, long work draws a progress bar; piped (cron, CI),
//! it writes plain log lines.

use std::process::Command;

use backstop_tests::{TestDb, database_url};

const BIN: &str = env!("CARGO_BIN_EXE_backstop");

/// `backstop --to dir args…` with a clean environment of ours.
fn backstop(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--to").arg(dir).args(args).env_remove("RUST_LOG").env_remove("AWS_LAMBDA_FUNCTION_NAME");
    c
}

#[tokio::test]
async fn restore_draws_a_bar_on_a_terminal_and_logs_lines_when_piped() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no `script` (util-linux) to give the CLI a terminal");
        return;
    }
    // GIVEN a local backup of a database with a table of rows
    let source = TestDb::create("cli_bar").await.unwrap();
    source.psql(b"create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 20000) g;").await.unwrap();
    let dir = std::env::temp_dir().join(format!("backstop-cli-bar-{}", source.name));
    let out = backstop(&dir, &["db-backup"]).env("DATABASE_URL", &source.url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // WHEN it is restored on a terminal (util-linux `script` gives the CLI one)
    let (on_tty, piped) = (format!("{}_tty", source.name), format!("{}_piped", source.name));
    let _cleanup = (TestDb::adopt(&on_tty), TestDb::adopt(&piped));
    let restore = |target: &str| {
        let mut c = backstop(
            &dir,
            &[
                "restore",
                "--latest",
                "--database",
                &source.name,
                "--target-url",
                &database_url(target),
                "--create",
            ],
        );
        c.arg("--jobs").arg("2");
        c
    };
    let cmd = restore(&on_tty);
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let tty = Command::new("script")
        .args(["-qec", &format!("{line} >/dev/null"), "/dev/null"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let drawn = String::from_utf8_lossy(&tty.stdout);

    // THEN a bar is drawn, with bytes, and the progress is not logged line by line
    assert!(tty.status.success(), "{drawn}");
    assert!(
        drawn.contains("restore progress [") && (drawn.contains("MiB") || drawn.contains("KiB")),
        "{drawn}"
    );
    assert!(!drawn.contains("INFO backstop_core::restore::run: restore progress"), "{drawn}");

    // AND piped, the same restore writes log lines, and no bar
    let out = restore(&piped).output().unwrap();
    let logged = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logged}");
    assert!(logged.contains("restore progress") && !logged.contains("restore progress ["), "{logged}");
    std::fs::remove_dir_all(dir).unwrap();
}
