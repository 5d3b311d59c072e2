//! A PostgreSQL server of a test's own: `initdb` into a temporary directory, started on a free
//! loopback port with trust auth, stopped and removed when dropped. For faults the shared
//! server must not suffer while other tests use it (a restart in the middle of a dump).
//!
//! As root, the server's commands run as the `postgres` user (`initdb` refuses root).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

/// A running private server.
#[derive(Debug)]
pub struct PrivateServer {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

impl PrivateServer {
    /// Starts a new server, or says why it cannot (no `initdb` found, root without a
    /// `postgres` user) with `Ok(None)`; the caller skips with that message.
    pub async fn start(label: &str) -> Result<std::result::Result<Self, String>> {
        let Some(bin) = bin_dir() else {
            return Ok(Err("no PostgreSQL server binaries (initdb) under /usr/lib/postgresql".into()));
        };
        let root = is_root();
        if root
            && !std::process::Command::new("id").arg("postgres").output().is_ok_and(|o| o.status.success())
        {
            return Ok(Err("running as root and there is no postgres user to run initdb as".into()));
        }
        let dir = std::env::temp_dir().join(format!("backstop-pg-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let server = PrivateServer { dir, bin, port, as_postgres: root };
        if root {
            let status =
                std::process::Command::new("chown").arg("postgres:postgres").arg(&server.dir).status()?;
            anyhow::ensure!(status.success(), "chown {}", server.dir.display());
        }
        let data = server.dir.join("data");
        server
            .run(
                "initdb",
                &["-D", path(&data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
            )
            .await?;
        server.pg_ctl(&["start"]).await?;
        Ok(Ok(server))
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// `pg_ctl restart -m fast`: every connection is terminated, the server comes back.
    pub async fn restart(&self) -> Result<()> {
        self.pg_ctl(&["restart", "-m", "fast"]).await
    }

    async fn pg_ctl(&self, action: &[&str]) -> Result<()> {
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
            self.port,
            self.dir.display()
        );
        let mut args = vec!["-D", path(&data), "-l", path(&log), "-w", "-t", "60", "-o", options.as_str()];
        args.extend_from_slice(action);
        self.run("pg_ctl", &args).await
    }

    async fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        // The server's working directory must be one the postgres user may enter.
        let out = cmd.args(args).current_dir(&self.dir).output().await.with_context(|| program.to_owned())?;
        if !out.status.success() {
            bail!(
                "{program} {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let stop = [path(&data), "-m", "immediate", "-w"];
        let exe = self.bin.join("pg_ctl");
        let _ = if self.as_postgres {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(["stop", "-D"])
                .args(stop)
                .current_dir(&self.dir)
                .output()
        } else {
            std::process::Command::new(&exe).args(["stop", "-D"]).args(stop).output()
        };
        std::thread::sleep(Duration::from_millis(50));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// The newest server's binaries (Debian keeps them under /usr/lib/postgresql/N/bin).
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A loopback port nothing listens on now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
