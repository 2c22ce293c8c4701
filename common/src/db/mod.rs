//! Database access: pools for the primary and the read replicas, migrations, and the
//! stores that hold every SQL statement of the product.
//!
//! One code path serves both engines through sqlx's `Any` driver: PostgreSQL in
//! production, an embedded SQLite file for the all-in-one. The schemas in
//! `migrations/postgres` and `migrations/sqlite` differ (partitioning, index types) but
//! expose the same columns with portable types: integers are BIGINT, instants are Unix
//! milliseconds, tag lists are JSON text. Statements use `$n` placeholders, which both
//! engines accept.

pub mod audit;
pub mod blocked_hosts;
pub mod changes;
pub mod clicks;
pub mod domains;
pub mod idempotency;
pub mod keys;
pub mod leases;
pub mod links;
pub mod members;
pub mod replicas;
pub mod transfer;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::config::DatabaseSettings;

/// A statement on the `Any` driver, as the multi-row writers build and bind them.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// `($1, $2, …), ($k, …)` for `rows` rows of `width` parameters: the `$n` spelling
/// both engines accept (sqlx's `QueryBuilder` writes `?` for the `Any` driver).
pub(crate) fn placeholders(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

impl Engine {
    pub fn from_url(url: &str) -> Option<Engine> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Engine::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Engine::Sqlite)
        } else {
            None
        }
    }
}

/// Why a store call failed, in the terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; carries the constraint's name when the
    /// engine reports one.
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    /// The database cannot be reached or is not accepting writes right now (pool
    /// timeout, connection lost, read-only after a failover): retry later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: a bug or a schema mismatch.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        let converted = StoreError::classify(error);
        match &converted {
            StoreError::Unavailable(_) => crate::metrics::count_db_error("unavailable"),
            StoreError::Other(_) => crate::metrics::count_db_error("other"),
            // A unique violation is an answer (an alias taken, a retry), not a failure.
            StoreError::Conflict(_) | StoreError::Corrupt(_) => {}
        }
        converted
    }
}

impl StoreError {
    fn classify(error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error),
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() {
                    let name = db.constraint().unwrap_or("unique").to_string();
                    return StoreError::Conflict(name);
                }
                // PostgreSQL classes 08 (connection), 57 (operator intervention, e.g. a
                // shutting-down server) and 25006 (read-only transaction: a demoted
                // primary) mean "try again elsewhere or later"; SQLITE_BUSY (5) and
                // SQLITE_LOCKED (6) mean the same for the embedded engine.
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                if code.starts_with("08")
                    || code.starts_with("57")
                    || code == "25006"
                    || code == "5"
                    || code == "6"
                {
                    StoreError::Unavailable(error)
                } else {
                    StoreError::Other(error)
                }
            }
            _ => StoreError::Other(error),
        }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// The primary (all writes) and the read replicas (rotated by lookup's `Replicas`).
#[derive(Clone)]
pub struct Database {
    engine: Engine,
    primary: AnyPool,
    replicas: Arc<Vec<AnyPool>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("engine", &self.engine)
            .field("replicas", &self.replicas.len())
            .finish()
    }
}

impl Database {
    /// Connects lazily: pools open connections on first use, so a service starts (and
    /// answers `/healthz`) while its database is still coming up.
    pub fn connect(settings: &DatabaseSettings) -> anyhow::Result<Database> {
        sqlx::any::install_default_drivers();
        let url = settings
            .url
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("configuration key `database.url` is required"))?
            .expose_secret()
            .to_string();
        let engine = Engine::from_url(&url).ok_or_else(|| {
            anyhow::anyhow!("configuration key `database.url`: unsupported scheme")
        })?;
        if engine == Engine::Sqlite {
            ensure_sqlite_dir(&url)?;
        }
        let primary = pool(engine, &url, settings, settings.max_connections)?;
        let mut replicas = Vec::new();
        for replica in &settings.replica_urls {
            let url = replica.expose_secret();
            if Engine::from_url(url) != Some(engine) {
                anyhow::bail!(
                    "configuration key `database.replica_urls`: replicas must use the primary's engine"
                );
            }
            replicas.push(pool(engine, url, settings, settings.max_connections)?);
        }
        Ok(Database {
            engine,
            primary,
            replicas: Arc::new(replicas),
        })
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The pool for writes and for reads that must see the latest commit.
    pub fn primary(&self) -> &AnyPool {
        &self.primary
    }

    /// Sets `gauges` (`role`, `state`) to the pools' connections now: in use, idle and
    /// the configured maximum; the replicas' pools summed.
    pub fn report_pools(&self, gauges: &prometheus::IntGaugeVec) {
        let report = |role: &str, pools: &[&AnyPool]| {
            let (mut open, mut idle, mut max) = (0i64, 0i64, 0i64);
            for pool in pools {
                open += i64::from(pool.size());
                idle += i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
                max += i64::from(pool.options().get_max_connections());
            }
            gauges
                .with_label_values(&[role, "in_use"])
                .set((open - idle).max(0));
            gauges.with_label_values(&[role, "idle"]).set(idle);
            gauges.with_label_values(&[role, "max"]).set(max);
        };
        report("primary", &[&self.primary]);
        if !self.replicas.is_empty() {
            report("replica", &self.replicas.iter().collect::<Vec<_>>());
        }
    }

    pub fn replicas(&self) -> &[AnyPool] {
        &self.replicas
    }

    /// Applies the migrations of this engine to the primary.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.migrator().run(&self.primary).await?;
        Ok(())
    }

    /// Applies the migrations up to and including `version` alone: how a test of a
    /// migration builds the schema it starts from.
    pub async fn migrate_to(&self, version: i64) -> anyhow::Result<()> {
        self.migrator().run_to(version, &self.primary).await?;
        Ok(())
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.engine {
            Engine::Postgres => &POSTGRES_MIGRATIONS,
            Engine::Sqlite => &SQLITE_MIGRATIONS,
        }
    }

    /// The one way a transaction that writes begins. On SQLite it takes the write
    /// lock at `BEGIN IMMEDIATE`, so it waits its turn under the busy timeout: a plain
    /// (deferred) transaction starts as a reader, and when it then writes after
    /// another connection committed, SQLite refuses it at once ("database is locked")
    /// instead of waiting. On PostgreSQL a plain `BEGIN`.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        let tx = match self.engine {
            Engine::Sqlite => self.primary.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => self.primary.begin().await?,
        };
        Ok(tx)
    }

    /// A trivial round trip to the primary, for readiness.
    pub async fn ping_primary(&self) -> Result<(), StoreError> {
        self.primary.execute("SELECT 1").await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.primary.close().await;
        for replica in self.replicas.iter() {
            replica.close().await;
        }
    }
}

fn pool(
    engine: Engine,
    url: &str,
    settings: &DatabaseSettings,
    max_connections: u32,
) -> anyhow::Result<AnyPool> {
    let options: AnyConnectOptions = url.parse()?;
    let statement_timeout = settings.statement_timeout.as_millis();
    Ok(AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // A connection that outlived a failover may point at a demoted server.
        .max_lifetime(Duration::from_secs(300))
        .idle_timeout(Duration::from_secs(60))
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                match engine {
                    Engine::Postgres => {
                        // An integer from typed configuration: safe to splice.
                        let sql = format!("SET statement_timeout = {statement_timeout}");
                        conn.execute(sqlx::AssertSqlSafe(sql)).await?;
                    }
                    Engine::Sqlite => {
                        // WAL lets readers run beside the single writer; the busy timeout
                        // turns writer contention into a short wait instead of an error.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                }
                Ok(())
            })
        })
        .connect_lazy_with(options))
}

/// The file path of a `sqlite:` URL (without its `?options`); empty for none.
pub fn sqlite_path(url: &str) -> &str {
    url.trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default()
}

/// SQLite creates the file (with `mode=rwc`) but not its directory.
fn ensure_sqlite_dir(url: &str) -> anyhow::Result<()> {
    let path = sqlite_path(url);
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    Ok(())
}
