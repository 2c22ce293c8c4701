//! The Redis Cluster client: one shared multiplexed cluster connection (made by a
//! deadpool pool, which bounds and times its creation) with a deadline on every call.
//! One multiplexed connection carries many concurrent requests.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::Runtime;
use deadpool_redis::cluster::{Config, Pool};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use secrecy::ExposeSecret;

use crate::config::RedisSettings;

pub use deadpool_redis::redis;

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis call timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis pool: {0}")]
    Pool(String),
    #[error("redis: {0}")]
    Command(#[from] redis::RedisError),
}

/// Redis Cluster access with a per-call deadline and a key prefix per deployment.
#[derive(Clone)]
pub struct RedisCluster {
    pool: Pool,
    /// The connection calls use, shared by every clone of this value. The pool checks
    /// each connection it hands out with a PING, a second round trip for every call
    /// (an L2 read took two); a multiplexed connection needs no checkout per call, so
    /// one is made and kept until it fails.
    shared: Arc<Mutex<Shared>>,
    /// Wakes the calls waiting for a connection attempt to finish.
    connected: Arc<tokio::sync::Notify>,
    prefix: String,
    timeout: Duration,
    /// Seed node URLs (secret: they may carry a password), for connections the pool
    /// cannot make, such as pub/sub subscriptions.
    urls: Vec<String>,
}

/// The shared connection and whether an attempt to make one is under way.
#[derive(Default)]
struct Shared {
    conn: Option<ClusterConnection>,
    connecting: bool,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisCluster {
    /// `None` when no Redis is configured. Connects lazily.
    pub fn from_settings(settings: &RedisSettings) -> anyhow::Result<Option<RedisCluster>> {
        if settings.urls.is_empty() {
            return Ok(None);
        }
        let urls: Vec<String> = settings
            .urls
            .iter()
            .map(|u| u.expose_secret().to_string())
            .collect();
        let mut config = Config::from_urls(urls.clone());
        config.pool = Some(deadpool_redis::PoolConfig {
            max_size: settings.pool_size,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(Duration::from_millis(settings.timeout_ms)),
                create: Some(Duration::from_millis(settings.timeout_ms.max(500))),
                recycle: Some(Duration::from_millis(settings.timeout_ms)),
            },
            ..Default::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| anyhow::anyhow!("configuration key `redis.urls`: {e}"))?;
        Ok(Some(RedisCluster {
            pool,
            shared: Arc::new(Mutex::new(Shared::default())),
            connected: Arc::new(tokio::sync::Notify::new()),
            prefix: settings.key_prefix.clone(),
            timeout: Duration::from_millis(settings.timeout_ms),
            urls,
        }))
    }

    /// `prefix + suffix`: every key this deployment writes.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn node_urls(&self) -> &[String] {
        &self.urls
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `f` on the shared connection under the call deadline.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ClusterConnection) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let work = async {
            let conn = self.connection().await?;
            f(conn).await.map_err(RedisError::from)
        };
        let result = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| RedisError::Timeout(self.timeout))
            .and_then(|r| r);
        if let Err(e) = &result {
            crate::metrics::count_redis_error(match e {
                RedisError::Timeout(_) => "timeout",
                RedisError::Pool(_) => "pool",
                RedisError::Command(_) => "command",
            });
            // A reply error (a script's, a wrong type) says nothing about the
            // connection; anything else may mean it is broken or stuck.
            let connection_fine = matches!(e, RedisError::Command(c) if c.kind() != redis::ErrorKind::Io
                    && !c.is_connection_dropped() && !c.is_unrecoverable_error());
            if !connection_fine {
                self.drop_shared();
            }
        }
        result
    }

    /// The shared connection; when there is none, one attempt to make it (at a time)
    /// and a wait for that attempt, bounded by the caller's deadline.
    ///
    /// The attempt runs on its own task, outside any call's deadline: connecting to
    /// six nodes and reading the slot map can take longer than one call may wait
    /// (50 ms by default), and an attempt cut short by every caller would never finish
    /// — after a master failover L2 then stayed unused, the breaker's probes timing out
    /// one connection attempt after another.
    async fn connection(&self) -> Result<ClusterConnection, RedisError> {
        let notified = self.connected.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut shared = self
                .shared
                .lock()
                .map_err(|_| RedisError::Pool("connection state poisoned".into()))?;
            if let Some(conn) = &shared.conn {
                return Ok(conn.clone());
            }
            if !shared.connecting {
                shared.connecting = true;
                let this = self.clone();
                tokio::spawn(async move { this.connect().await });
            }
        }
        notified.await;
        self.shared
            .lock()
            .ok()
            .and_then(|s| s.conn.clone())
            .ok_or_else(|| RedisError::Pool("no connection to the cluster".into()))
    }

    /// Makes the shared connection (bounded by the pool's create timeout).
    async fn connect(&self) {
        // Taken out of the pool for good: when it fails it is dropped, never handed
        // out again. Returned to the pool it would keep its slot map, and after a
        // failover the pool's PING (any node answers) would pass a stale one.
        let made = self
            .pool
            .get()
            .await
            .map(deadpool_redis::cluster::Connection::take);
        if let Ok(mut shared) = self.shared.lock() {
            shared.connecting = false;
            match made {
                Ok(conn) => shared.conn = Some(conn),
                Err(e) => tracing::warn!(error = %e, "cannot connect to the Redis Cluster"),
            }
        }
        self.connected.notify_waiters();
    }

    fn drop_shared(&self) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.conn = None;
        }
    }

    /// A round trip, for readiness.
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.call(
            |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
        )
        .await
        .map(drop)
    }
}
