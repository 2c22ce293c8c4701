//! PostgreSQL 15: a primary and a streaming replica under one directory.
//!
//! Layout of the directory (owned by `postgres` when the tests run as root):
//! `primary/`, `replica/` (data dirs), `primary.log`, `replica.log`, and the unix
//! sockets of both servers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::process::Command;

use crate::reaper::Guard;
use crate::sys::{self, is_root, log_tail, run, wait_until};

/// Where Debian installs the server binaries (not on PATH).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The OS user that runs the servers when the tests run as root.
const OS_USER: &str = "postgres";

/// Settings appended to the primary's postgresql.conf (the replica inherits them).
/// fsync and full_page_writes off make initdb, CREATE DATABASE and every commit far
/// cheaper; a crash of the machine would lose the data, which tests never keep.
/// synchronous_commit stays on: turning it off delays what the replica sees (~200 ms
/// measured), which breaks read-after-write tests.
const TEST_SETTINGS: &str = "
# test bed settings
listen_addresses = '127.0.0.1'
max_connections = 300
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
# Lets a replica that was stopped or frozen for a while catch up from the primary.
wal_keep_size = '256MB'
hot_standby = on
# Long replica reads in tests must not be cancelled by vacuum on the primary.
hot_standby_feedback = on
log_min_messages = warning
log_line_prefix = '%m [%p] '
";

/// Client authentication: trust on loopback and the socket, replication included.
const HBA: &str = "local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
";

/// A running primary + streaming replica. Plain data apart from the optional guard:
/// clusters made by [`PgCluster::start`] stop when dropped; the one inside the shared
/// [`crate::Bed`] lives as long as the bed.
#[derive(Debug, Serialize, Deserialize)]
pub struct PgCluster {
    dir: PathBuf,
    primary_dir: PathBuf,
    replica_dir: PathBuf,
    primary_port: u16,
    replica_port: u16,
    superuser: String,
    #[serde(skip)]
    guard: Option<Guard>,
}

impl PgCluster {
    /// Starts a private primary + replica in a new temp dir, for tests that break
    /// things (kill, freeze, promote). Stopped and removed on drop, and by a watcher
    /// process if this process dies first.
    pub async fn start() -> Result<Self> {
        let root = sys::make_root("shortener-pg-")?;
        let guard = Guard::new(root.clone(), Some(std::process::id()))?;
        let mut pg = Self::start_in(root.join("pg")).await?;
        pg.guard = Some(guard);
        Ok(pg)
    }

    /// Starts both servers in `dir` (created; must not exist or be empty). Does not
    /// clean up: the caller's guard owns the directory tree.
    pub(crate) async fn start_in(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        if is_root() {
            let (uid, gid) = sys::user_ids(OS_USER)?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .with_context(|| format!("chown {OS_USER} {}", dir.display()))?;
        }
        let mut pg = Self {
            primary_dir: dir.join("primary"),
            replica_dir: dir.join("replica"),
            dir,
            primary_port: 0,
            replica_port: 0,
            superuser: OS_USER.to_string(),
            guard: None,
        };
        pg.init_primary().await?;
        pg.primary_port = pg
            .start_server(&pg.primary_dir, &pg.primary_log(), None)
            .await?;
        pg.make_replica().await?;
        pg.replica_port = pg
            .start_server(&pg.replica_dir, &pg.replica_log(), None)
            .await?;
        pg.wait_replica_streaming(Duration::from_secs(20)).await?;
        Ok(pg)
    }

    /// Superuser that every URL connects as (trust auth, no password).
    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    pub fn primary_port(&self) -> u16 {
        self.primary_port
    }

    pub fn replica_port(&self) -> u16 {
        self.replica_port
    }

    pub fn primary_dir(&self) -> &Path {
        &self.primary_dir
    }

    pub fn replica_dir(&self) -> &Path {
        &self.replica_dir
    }

    /// Directory of the unix sockets (also holds the logs).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    pub fn primary_log(&self) -> PathBuf {
        self.log_of(&self.primary_dir)
    }

    pub fn replica_log(&self) -> PathBuf {
        self.log_of(&self.replica_dir)
    }

    /// A server's log sits beside its data directory and keeps its name (`primary.log`,
    /// `replica.log`) when [`PgCluster::rebuild_after_failover`] swaps the roles.
    fn log_of(&self, data: &Path) -> PathBuf {
        let name = data
            .file_name()
            .map_or_else(|| "server".into(), |n| n.to_string_lossy().into_owned());
        self.dir.join(format!("{name}.log"))
    }

    /// `postgres://USER@127.0.0.1:PRIMARY_PORT/db`
    pub fn primary_url(&self, db: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{db}",
            self.superuser, self.primary_port
        )
    }

    /// `postgres://USER@127.0.0.1:REPLICA_PORT/db`
    pub fn replica_url(&self, db: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{db}",
            self.superuser, self.replica_port
        )
    }

    /// Pid of the primary's postmaster (from postmaster.pid).
    pub fn primary_pid(&self) -> Result<u32> {
        postmaster_pid(&self.primary_dir)
    }

    /// Pid of the replica's postmaster (from postmaster.pid).
    pub fn replica_pid(&self) -> Result<u32> {
        postmaster_pid(&self.replica_dir)
    }

    /// Clean stop of the replica (`pg_ctl stop -m fast`).
    pub async fn stop_replica(&self) -> Result<()> {
        self.pg_ctl_stop(&self.replica_dir, "fast").await
    }

    /// Starts the replica again on its port; waits until it accepts connections.
    pub async fn start_replica(&self) -> Result<()> {
        self.start_server(
            &self.replica_dir,
            &self.replica_log(),
            Some(self.replica_port),
        )
        .await
        .map(|_| ())
    }

    /// SIGSTOPs the replica's postmaster and all its processes: connections hang, as
    /// with a stuck host. Every postmaster child is its own process group leader, so
    /// the processes are stopped one by one, the parent first so it forks no more.
    pub fn freeze_replica(&self) -> Result<()> {
        let pid = self.replica_pid()?;
        sys::signal(&[pid], "STOP")?;
        sys::signal(&sys::children(pid), "STOP")
    }

    /// Undoes [`PgCluster::freeze_replica`].
    pub fn thaw_replica(&self) -> Result<()> {
        let pid = self.replica_pid()?;
        sys::signal(&sys::children(pid), "CONT")?;
        sys::signal(&[pid], "CONT")
    }

    /// Crash-like stop of the primary (`pg_ctl stop -m immediate`: no checkpoint,
    /// clients cut off at once).
    pub async fn kill_primary(&self) -> Result<()> {
        self.pg_ctl_stop(&self.primary_dir, "immediate").await
    }

    /// Starts the primary again on its port.
    pub async fn start_primary(&self) -> Result<()> {
        self.start_server(
            &self.primary_dir,
            &self.primary_log(),
            Some(self.primary_port),
        )
        .await
        .map(|_| ())
    }

    /// `pg_ctl promote` on the replica; returns once it accepts writes.
    pub async fn promote_replica(&self) -> Result<()> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.replica_dir)
            .args(["-w", "-t", "30", "promote"]);
        run(&mut cmd, "pg_ctl promote", Duration::from_secs(40))
            .await
            .map_err(|e| e.context(log_tail(&self.replica_log(), 20)))?;
        let url = self.replica_url("postgres");
        wait_until(
            "promoted replica to leave recovery",
            Duration::from_secs(20),
            Some(&self.replica_log()),
            || {
                let url = url.clone();
                async move { Ok(!query_bool(&url, "SELECT pg_is_in_recovery()").await?) }
            },
        )
        .await
    }

    /// After [`PgCluster::kill_primary`] and [`PgCluster::promote_replica`]: the
    /// promoted server becomes the primary, and the old primary's data directory is
    /// replaced by a fresh standby of it (`pg_basebackup -R`) on the old primary's
    /// port, so that failovers can be repeated. Returns once the new standby streams.
    pub async fn rebuild_after_failover(&mut self) -> Result<()> {
        std::mem::swap(&mut self.primary_dir, &mut self.replica_dir);
        std::mem::swap(&mut self.primary_port, &mut self.replica_port);
        std::fs::remove_dir_all(&self.replica_dir)
            .with_context(|| format!("removing {}", self.replica_dir.display()))?;
        self.make_replica().await?;
        self.start_server(
            &self.replica_dir,
            &self.replica_log(),
            Some(self.replica_port),
        )
        .await?;
        self.wait_replica_streaming(Duration::from_secs(30)).await
    }

    /// Waits until the replica is in recovery and its WAL receiver is streaming.
    pub async fn wait_replica_streaming(&self, timeout: Duration) -> Result<()> {
        let url = self.replica_url("postgres");
        wait_until(
            "the replica to stream from the primary",
            timeout,
            Some(&self.replica_log()),
            || {
                let url = url.clone();
                async move {
                    query_bool(
                        &url,
                        "SELECT pg_is_in_recovery() AND EXISTS \
                     (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')",
                    )
                    .await
                }
            },
        )
        .await
    }

    /// Stops both servers and removes the directory now (dropping does the same).
    pub fn shutdown(mut self) -> Result<()> {
        match self.guard.take() {
            Some(mut guard) => guard.teardown(),
            None => Ok(()),
        }
    }

    /// Runs one SQL text (may hold several statements) on the primary.
    pub(crate) async fn execute_on_primary(&self, db: &str, sql: &str) -> Result<()> {
        let mut conn = connect(&self.primary_url(db)).await?;
        let result = sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        result.with_context(|| format!("running {sql:?} on the primary"))?;
        Ok(())
    }

    /// A server binary, run as `postgres` when we are root, from a directory it may
    /// enter (initdb and pg_ctl fail when they cannot resolve their working directory).
    fn command(&self, program: &str) -> Command {
        let path = format!("{PG_BIN}/{program}");
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", OS_USER, "--", &path]);
            c
        } else {
            Command::new(path)
        };
        cmd.current_dir(&self.dir);
        for var in [
            "PGDATA",
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGOPTIONS",
            "PGPASSWORD",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    async fn init_primary(&self) -> Result<()> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&self.primary_dir)
            .args([
                "-U",
                &self.superuser,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .args(["--no-sync", "--no-instructions"]);
        run(&mut cmd, "initdb", Duration::from_secs(60)).await?;
        let socket_dir = self.dir.to_string_lossy().replace('\'', "''");
        let settings = format!("{TEST_SETTINGS}unix_socket_directories = '{socket_dir}'\n");
        append(&self.primary_dir.join("postgresql.conf"), &settings)?;
        std::fs::write(self.primary_dir.join("pg_hba.conf"), HBA).context("writing pg_hba.conf")?;
        Ok(())
    }

    async fn make_replica(&self) -> Result<()> {
        let mut cmd = self.command("pg_basebackup");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.primary_port.to_string(),
            "-U",
            &self.superuser,
        ])
        .arg("-D")
        .arg(&self.replica_dir)
        // -R: standby.signal + primary_conninfo; fast checkpoint, no fsync.
        .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]);
        run(&mut cmd, "pg_basebackup", Duration::from_secs(60))
            .await
            .map_err(|e| e.context(log_tail(&self.primary_log(), 20)))?;
        Ok(())
    }

    /// `pg_ctl start -w` on `port`, or on a fresh port (retried when another process
    /// took it between the probe and the bind). Returns the port.
    async fn start_server(&self, data: &Path, log: &Path, port: Option<u16>) -> Result<u16> {
        let mut last = None;
        for _ in 0..3 {
            let port = match port {
                Some(p) => p,
                None => sys::try_free_port()?,
            };
            let mut cmd = self.command("pg_ctl");
            cmd.arg("-D").arg(data).arg("-l").arg(log).args([
                "-w",
                "-t",
                "30",
                "-o",
                &format!("-p {port}"),
                "start",
            ]);
            match run(&mut cmd, "pg_ctl start", Duration::from_secs(40)).await {
                Ok(_) => return Ok(port),
                Err(e) => {
                    let tail = log_tail(log, 30);
                    let port_taken = tail.contains("Address already in use");
                    last = Some(e.context(tail));
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        match last {
            Some(e) => Err(e.context(format!("starting PostgreSQL in {}", data.display()))),
            None => bail!("starting PostgreSQL in {}", data.display()),
        }
    }

    async fn pg_ctl_stop(&self, data: &Path, mode: &str) -> Result<()> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(data)
            .args(["-m", mode, "-w", "-t", "30", "stop"]);
        run(&mut cmd, "pg_ctl stop", Duration::from_secs(40)).await?;
        Ok(())
    }
}

/// Opens one connection, bounded in time (a frozen server would hang it forever).
pub(crate) async fn connect(url: &str) -> Result<PgConnection> {
    tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(url))
        .await
        .with_context(|| format!("connecting to {url}: timed out"))?
        .with_context(|| format!("connecting to {url}"))
}

async fn query_bool(url: &str, sql: &'static str) -> Result<bool> {
    let mut conn = connect(url).await?;
    let value = sqlx::query_scalar::<_, bool>(sql)
        .fetch_one(&mut conn)
        .await;
    let _ = conn.close().await;
    Ok(value?)
}

fn postmaster_pid(data: &Path) -> Result<u32> {
    let file = data.join("postmaster.pid");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {} (server not running?)", file.display()))?;
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("no pid in {}", file.display()))
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
