//! The shared test bed (PostgreSQL primary + replica and a Redis Cluster for a whole
//! test run) and per-test isolation on top of it.
//!
//! Layout of a bed's root directory: `pg/` (see [`crate::pg`]) and `redis/` (see
//! [`crate::redis`]). The bed is serialisable: `testbed up` writes it to a JSON state
//! file and test processes load it back through `SHORTENER_TESTBED`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use tokio::sync::OnceCell;

use crate::pg::{self, PG_BIN, PgCluster};
use crate::reaper::{self, Guard};
use crate::redis::RedisCluster;
use crate::sys::{self, unique_token, wait_until};

/// Names the JSON state file of a running bed (written by `testbed up`).
pub const STATE_ENV: &str = "SHORTENER_TESTBED";

/// The migrated database that every test database is copied from.
pub const TEMPLATE_DB: &str = "tmpl";

/// Bumped when the state file's shape changes.
const STATE_VERSION: u32 = 1;

/// The migrations applied to the template: `<workspace>/migrations/postgres`.
pub fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres")
}

/// PostgreSQL primary + replica and a 6-node Redis Cluster, as plain data.
#[derive(Debug, Serialize, Deserialize)]
pub struct Bed {
    version: u32,
    root: PathBuf,
    pg: PgCluster,
    redis: RedisCluster,
    template_db: String,
    /// Server pids at start, for people reading the state file; teardown goes by the
    /// pid files, which stay right after restarts.
    pids: BTreeMap<String, u32>,
    /// The watcher that stops the bed when the watched process exits, if any.
    reaper_pid: Option<u32>,
    start_ms: u64,
}

static BED: OnceCell<std::result::Result<Bed, String>> = OnceCell::const_new();

/// The bed of this test run: the one named by `$SHORTENER_TESTBED`, or else a private
/// one started on first use and stopped when this process exits.
///
/// # Panics
/// When the bed cannot be started or reached; the message says why (server log tails
/// included). Every later call panics with the same message, without retrying.
pub async fn bed() -> &'static Bed {
    match try_bed().await {
        Ok(bed) => bed,
        Err(e) => panic!("{e:#}"),
    }
}

/// [`bed()`] that reports failure instead of panicking.
pub async fn try_bed() -> Result<&'static Bed> {
    BED.get_or_init(|| async { open().await.map_err(|e| format!("{e:#}")) })
        .await
        .as_ref()
        .map_err(|e| anyhow!("test bed unavailable: {e}"))
}

async fn open() -> Result<Bed> {
    match std::env::var_os(STATE_ENV) {
        Some(file) if !file.is_empty() => {
            let bed = Bed::load(Path::new(&file))?;
            bed.check_reachable().await?;
            Ok(bed)
        }
        // Watched by a detached process: a `static` is never dropped, and the test
        // process may also die by abort or signal.
        _ => Bed::start(Some(std::process::id())).await,
    }
}

impl Bed {
    /// Starts PostgreSQL (then the template database) and the Redis Cluster side by
    /// side. With `watch_pid`, a detached watcher stops everything once that process
    /// exits; without, only [`Bed::teardown`] does. A failed start cleans up after
    /// itself.
    pub async fn start(watch_pid: Option<u32>) -> Result<Bed> {
        let started = Instant::now();
        let root = sys::make_root("shortener-bed-")?;
        let guard = Guard::new(root.clone(), watch_pid)?;
        let pg = async {
            let pg = PgCluster::start_in(root.join("pg"))
                .await
                .context("starting PostgreSQL")?;
            prepare_template(&pg).await?;
            Ok::<_, anyhow::Error>(pg)
        };
        let redis = async {
            RedisCluster::start_in(root.join("redis"))
                .await
                .context("starting Redis Cluster")
        };
        let (pg, redis) = tokio::try_join!(pg, redis)?;

        let mut pids = BTreeMap::new();
        pids.insert("pg_primary".to_string(), pg.primary_pid()?);
        pids.insert("pg_replica".to_string(), pg.replica_pid()?);
        for port in redis.ports() {
            pids.insert(format!("redis_{port}"), redis.pid(port)?);
        }
        let reaper_pid = guard.disarm();
        Ok(Bed {
            version: STATE_VERSION,
            root,
            pg,
            redis,
            template_db: TEMPLATE_DB.to_string(),
            pids,
            reaper_pid,
            start_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Reads a state file written by [`Bed::save`].
    pub fn load(path: &Path) -> Result<Bed> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("reading test bed state {} (is the bed up?)", path.display())
        })?;
        let bed: Bed = serde_json::from_str(&text)
            .with_context(|| format!("parsing test bed state {}", path.display()))?;
        if bed.version != STATE_VERSION {
            bail!(
                "{} has state version {}, expected {STATE_VERSION}",
                path.display(),
                bed.version
            );
        }
        Ok(bed)
    }

    /// Writes the state file atomically (readers never see half a file).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    }

    /// Stops every server of the bed and removes its directory. Idempotent.
    pub fn teardown(&self) -> Result<()> {
        let result = reaper::teardown_root(&self.root);
        if let Some(pid) = self.reaper_pid {
            reaper::kill_reaper(pid);
        }
        result
    }

    /// Tears down the bed of a state file and removes the file. Returns false when
    /// there was no state file (nothing to do), so running it twice is fine.
    pub fn down(state: &Path) -> Result<bool> {
        if !state.exists() {
            return Ok(false);
        }
        Bed::load(state)?.teardown()?;
        std::fs::remove_file(state).with_context(|| format!("removing {}", state.display()))?;
        Ok(true)
    }

    pub fn pg(&self) -> &PgCluster {
        &self.pg
    }

    pub fn redis(&self) -> &RedisCluster {
        &self.redis
    }

    /// Seed URLs of every Redis node (`redis://127.0.0.1:PORT`).
    pub fn redis_urls(&self) -> Vec<String> {
        self.redis.urls()
    }

    pub fn template_db(&self) -> &str {
        &self.template_db
    }

    /// The bed's directory (servers' data and logs).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Server pids when the bed started.
    pub fn pids(&self) -> &BTreeMap<String, u32> {
        &self.pids
    }

    /// How long the bed took to start.
    pub fn start_time(&self) -> Duration {
        Duration::from_millis(self.start_ms)
    }

    /// A new database copied from the migrated template, already visible on the
    /// replica. It is dropped when the returned value is dropped.
    ///
    /// # Panics
    /// When the database cannot be created; see [`Bed::try_fresh_database`].
    pub async fn fresh_database(&self) -> TestDb {
        match self.try_fresh_database().await {
            Ok(db) => db,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// [`Bed::fresh_database`] that reports failure instead of panicking.
    pub async fn try_fresh_database(&self) -> Result<TestDb> {
        self.database_from(&self.template_db).await
    }

    /// A new database without any table, for tests of the migrations themselves;
    /// dropped like [`Bed::fresh_database`]'s.
    ///
    /// # Panics
    /// When the database cannot be created.
    pub async fn empty_database(&self) -> TestDb {
        match self.database_from("template0").await {
            Ok(db) => db,
            Err(e) => panic!("{e:#}"),
        }
    }

    async fn database_from(&self, template: &str) -> Result<TestDb> {
        let name = format!("t_{}", unique_token());
        self.pg
            .execute_on_primary(
                "postgres",
                &format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#),
            )
            .await?;
        let db = TestDb {
            primary_url: self.pg.primary_url(&name),
            replica_url: self.pg.replica_url(&name),
            primary_port: self.pg.primary_port(),
            superuser: self.pg.superuser().to_string(),
            name,
        };
        // CREATE DATABASE returns once committed on the primary; the replica replays
        // it a moment later. Tests may read from the replica right away.
        let url = db.replica_url.clone();
        wait_until(
            &format!("database {} on the replica", db.name),
            Duration::from_secs(15),
            Some(&self.pg.replica_log()),
            || {
                let url = url.clone();
                async move {
                    let conn = pg::connect(&url).await?;
                    let _ = conn.close().await;
                    Ok(true)
                }
            },
        )
        .await?;
        Ok(db)
    }

    /// A key prefix no other test uses, e.g. `t1234_7_9f3a2c:`.
    pub fn fresh_prefix(&self) -> String {
        format!("t{}:", unique_token())
    }

    /// Fails fast with a clear message when a loaded bed is not running.
    async fn check_reachable(&self) -> Result<()> {
        let mut ports = vec![self.pg.primary_port(), self.pg.replica_port()];
        ports.extend(self.redis.ports());
        for port in ports {
            let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
            match tokio::time::timeout(Duration::from_secs(2), connect).await {
                Ok(Ok(_)) => {}
                _ => bail!(
                    "the test bed in ${STATE_ENV} ({}) does not answer on port {port}; start one with `testbed up`",
                    self.root.display()
                ),
            }
        }
        Ok(())
    }
}

/// Creates the template database and applies the workspace's migrations to it. A
/// database being copied must have no other connections, so the migration connection
/// is closed and further connections are refused (`ALLOW_CONNECTIONS false`).
async fn prepare_template(pg: &PgCluster) -> Result<()> {
    pg.execute_on_primary("postgres", &format!(r#"CREATE DATABASE "{TEMPLATE_DB}""#))
        .await?;
    let dir = migrations_dir();
    // An empty folder is not kept by git: a missing one means no migrations yet.
    if dir.is_dir() {
        let migrator = sqlx::migrate::Migrator::new(dir.clone())
            .await
            .with_context(|| format!("reading migrations in {}", dir.display()))?;
        let mut conn = pg::connect(&pg.primary_url(TEMPLATE_DB)).await?;
        let result = migrator.run(&mut conn).await;
        let _ = conn.close().await;
        result.with_context(|| format!("applying migrations in {}", dir.display()))?;
    }
    pg.execute_on_primary(
        "postgres",
        &format!(r#"ALTER DATABASE "{TEMPLATE_DB}" WITH ALLOW_CONNECTIONS false"#),
    )
    .await
}

/// A database of one test. Dropping it drops the database (in the background, with
/// `WITH (FORCE)`, so pools still open do not block it).
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub primary_url: String,
    pub replica_url: String,
    primary_port: u16,
    superuser: String,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // psql rather than sqlx: drop cannot await, and the test's runtime may already
        // be shutting down. A thread reaps psql; if the process exits first, psql
        // finishes on its own.
        let sql = format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name);
        let mut cmd = Command::new("timeout");
        cmd.args([
            "20",
            &format!("{PG_BIN}/psql"),
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &self.primary_port.to_string(),
            "-U",
            &self.superuser,
            "-d",
            "postgres",
            "-c",
            &sql,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Ok(mut child) = cmd.spawn() {
            std::thread::spawn(move || child.wait());
        }
    }
}
