//! A throwaway PostgreSQL server for tests that check SQL Cohort writes for PostgreSQL
//! (`cohort compile --script`): a real server (Debian's `postgresql` package) in a temp dir,
//! on a free loopback port, trusted local auth, stopped when the handle drops.
//!
//! `initdb` refuses to run as root, so when the tests run as root (CI containers) the server
//! runs as the `postgres` user through `runuser`, with the data directory handed to it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A running server; stopped (immediate mode) and removed on drop.
pub struct PgServer {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `$PATH` first, then the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    if let Ok(o) = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        && o.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        let p = std::fs::canonicalize(&p).unwrap_or(p);
        if let Some(d) = p.parent() {
            return d.to_path_buf();
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .expect("no PostgreSQL server found: install Debian's `postgresql` package (.ci/run does)")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[allow(dead_code)]
impl PgServer {
    /// Initializes and starts a server; panics with the server's log if it does not come up.
    pub fn start() -> PgServer {
        let bin = bin_dir();
        let as_postgres = is_root();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let s = PgServer {
            dir,
            port,
            bin,
            as_postgres,
        };
        if as_postgres {
            // The postgres user must reach the data dir through the temp dir.
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(s.dir.path())
                .status()
                .unwrap();
            assert!(st.success(), "chown of the PostgreSQL dir failed");
        }
        let data = s.data_dir();
        let out = s.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            port,
            s.dir.path().display()
        );
        let log = s.dir.path().join("server.log");
        let out = s.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if !out.status.success() {
            panic!(
                "pg_ctl start failed: {}{}\nlog: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        s.wait_ready();
        s
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(self.dir.path());
        cmd.output()
            .unwrap_or_else(|e| panic!("{} did not run: {e}", exe.display()))
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "PostgreSQL did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq connection string for the `postgres` database as the `postgres` user.
    pub fn dsn(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// A libpq connection string for database `db` as the `postgres` user.
    pub fn dsn_for(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        )
    }

    /// Runs `sql` through psql (stop at the first error); returns its stdout, unaligned and
    /// tuples only (`|`-separated columns).
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.dsn(),
                "-c",
                sql,
            ])
            .output()
            .expect("psql did not run");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The temp dir the server lives in (its socket too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}

#[test]
fn a_server_starts_answers_and_stops() {
    let pg = PgServer::start();
    assert_eq!(pg.psql("SELECT 1 + 1").trim(), "2");
}
