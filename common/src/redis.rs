//! The Redis Cluster client: one shared multiplexed cluster connection (made by a
//! deadpool pool, which bounds and times its creation) with a deadline on every call.
//! One multiplexed connection carries many concurrent requests.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::Runtime;
use deadpool_redis::cluster::{Config, Pool};
use deadpool_redis::redis::FromRedisValue;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
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
                wait: Some(settings.timeout),
                create: Some(settings.timeout.max(Duration::from_millis(500))),
                recycle: Some(settings.timeout),
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
            timeout: settings.timeout,
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
        self.call_within(self.timeout, f).await
    }

    /// Like [`RedisCluster::call`] under a deadline of the caller's (a command that
    /// blocks on purpose, such as `WAIT`, needs longer than a lookup may wait).
    pub async fn call_within<T, F, Fut>(&self, deadline: Duration, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ClusterConnection) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let work = async {
            let conn = self.connection().await?;
            f(conn).await.map_err(RedisError::from)
        };
        let result = tokio::time::timeout(deadline, work)
            .await
            .map_err(|_| RedisError::Timeout(deadline))
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

    /// Runs `cmd`, which has no key, on the master of a random slot. Left to the
    /// client, a keyless command goes to any node it knows, a failed master among them
    /// until the client forgets it: after a master failover the relay's `PUBLISH` kept
    /// timing out against the dead node for up to half a minute while every serving
    /// master would have answered.
    pub async fn call_on_a_master<T: FromRedisValue>(
        &self,
        cmd: redis::Cmd,
    ) -> Result<T, RedisError> {
        self.call_on_a_master_within(self.timeout, cmd).await
    }

    /// [`RedisCluster::call_on_a_master`] under a deadline of the caller's.
    pub async fn call_on_a_master_within<T: FromRedisValue>(
        &self,
        deadline: Duration,
        cmd: redis::Cmd,
    ) -> Result<T, RedisError> {
        self.call_within(deadline, |mut conn| async move {
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
            let value = conn.route_command(cmd, routing).await?;
            Ok(redis::from_redis_value(value)?)
        })
        .await
    }

    /// The fewest live replicas any master serving slots has, as the cluster sees it
    /// (`CLUSTER NODES` from a master): how many replicas a `WAIT` can hope for.
    pub async fn fewest_live_replicas(&self, deadline: Duration) -> Result<usize, RedisError> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("NODES");
        let nodes: String = self.call_on_a_master_within(deadline, cmd).await?;
        Ok(fewest_live_replicas(&nodes))
    }

    /// A round trip to a serving master, for readiness.
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.call_on_a_master::<String>(redis::cmd("PING"))
            .await
            .map(drop)
    }
}

/// Reads `CLUSTER NODES` text: per master that serves slots and is not failing, its
/// replicas that are connected and not failing; the fewest of those counts (0 when no
/// master is listed).
pub fn fewest_live_replicas(cluster_nodes: &str) -> usize {
    // <id> <addr> <flags> <master-id> <ping> <pong> <epoch> <link> [slots...]
    let nodes: Vec<Vec<&str>> = cluster_nodes
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 8)
        .collect();
    let failing = |flags: &str| flags.split(',').any(|f| f.starts_with("fail"));
    nodes
        .iter()
        .filter(|n| n[2].split(',').any(|f| f == "master") && !failing(n[2]) && n.len() > 8)
        .map(|master| {
            nodes
                .iter()
                .filter(|r| {
                    r[3] == master[0]
                        && r[2].split(',').any(|f| f == "slave" || f == "replica")
                        && !failing(r[2])
                        && r[7] == "connected"
                })
                .count()
        })
        .min()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::fewest_live_replicas;

    const HEALTHY: &str = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7002@17002 master - 0 1 2 connected 5461-10922
a3 127.0.0.1:7003@17003 master - 0 1 3 connected 10923-16383
b1 127.0.0.1:7004@17004 slave a1 0 1 1 connected
b2 127.0.0.1:7005@17005 slave a2 0 1 2 connected
b3 127.0.0.1:7006@17006 slave a3 0 1 3 connected
";

    #[test]
    fn counts_live_replicas_of_serving_masters() {
        assert_eq!(fewest_live_replicas(HEALTHY), 1);
        // A replica taken for failing, or disconnected, is no replica for WAIT.
        let failing = HEALTHY.replace("slave a2 0 1 2 connected", "slave,fail? a2 0 1 2 connected");
        assert_eq!(fewest_live_replicas(&failing), 0);
        let cut = HEALTHY.replace("slave a3 0 1 3 connected", "slave a3 0 1 3 disconnected");
        assert_eq!(fewest_live_replicas(&cut), 0);
        // After a failover: the old master failed (no slots), its replica promoted
        // and alone.
        let failed_over = "\
a1 127.0.0.1:7001@17001 master,fail - 0 0 1 disconnected
a2 127.0.0.1:7002@17002 master - 0 1 2 connected 5461-10922
a3 127.0.0.1:7003@17003 master - 0 1 3 connected 10923-16383
b1 127.0.0.1:7004@17004 myself,master - 0 1 4 connected 0-5460
b2 127.0.0.1:7005@17005 slave a2 0 1 2 connected
b3 127.0.0.1:7006@17006 slave a3 0 1 3 connected
";
        assert_eq!(fewest_live_replicas(failed_over), 0);
        assert_eq!(fewest_live_replicas(""), 0);
    }
}
