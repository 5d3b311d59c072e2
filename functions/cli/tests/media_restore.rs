//! `backstop media-restore` through the binary, as the README shows it: three media-sync runs
//! over a directory that changes between them, then every snapshot restored and compared byte
//! for byte with the directory as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_backstop");

fn backstop(store: &Path, source: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN)
        .arg("--to")
        .arg(store)
        .args(args)
        .env("BACKSTOP_MEDIA_SOURCE", format!("file://{}", source.display()))
        .env_remove("BACKSTOP_BUCKET")
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .env_remove("RUST_LOG")
        .output()
        .expect("the CLI runs");
    assert!(
        out.status.success(),
        "backstop {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file below `dir`, by path relative to it, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let key = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(key, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn every_snapshot_of_a_three_run_history_restores_byte_identical() {
    let base = std::env::temp_dir().join(format!("bk-cli-media-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (source, store) = (base.join("media"), base.join("backups"));
    std::fs::create_dir_all(source.join("avatars")).unwrap();
    let long_name = "n".repeat(250);

    // GIVEN three runs: files added, one overwritten, one deleted, a 250-byte name, a name
    // that starts with `~` and one with spaces
    let mut states = Vec::new();
    let steps: [&dyn Fn(&Path); 3] = [
        &|s: &Path| {
            std::fs::write(s.join("avatars/a.png"), b"first a").unwrap();
            std::fs::write(s.join("report 2026.pdf"), vec![7u8; 300_000]).unwrap();
            std::fs::write(s.join("~draft.txt"), b"tilde").unwrap();
        },
        &|s: &Path| {
            std::fs::write(s.join("avatars/a.png"), b"second a, longer").unwrap();
            std::fs::write(s.join(&long_name), b"long").unwrap();
        },
        &|s: &Path| {
            std::fs::remove_file(s.join("report 2026.pdf")).unwrap();
            std::fs::write(s.join("avatars/b.png"), b"b").unwrap();
        },
    ];
    for step in steps {
        step(&source);
        states.push(files(&source));
        backstop(&store, &source, &["media-sync"]);
        // Distinct modification times between runs.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // WHEN each snapshot is restored by its key (media-list shows them newest first)
    let listed = backstop(&store, &source, &["media-list", "--json"]);
    let snapshots: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(snapshots.len(), 3);
    let keys: Vec<String> =
        snapshots.iter().rev().map(|s| s["snapshot_key"].as_str().unwrap().to_owned()).collect();

    // THEN each restore holds exactly the files of its run, byte for byte
    for (i, key) in keys.iter().enumerate() {
        let target: PathBuf = base.join(format!("restored-{i}"));
        backstop(
            &store,
            &source,
            &["media-restore", "--snapshot", key, "--target", target.to_str().unwrap()],
        );
        assert_eq!(files(&target), states[i], "snapshot {i} ({key})");
    }
    // AND --latest, as the README writes it, is the last state
    let latest = base.join("latest");
    backstop(&store, &source, &["media-restore", "--latest", "--target", latest.to_str().unwrap()]);
    assert_eq!(files(&latest), states[2]);
    std::fs::remove_dir_all(&base).unwrap();
}
