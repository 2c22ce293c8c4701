//! Redis 7 Cluster: 6 nodes (3 masters + 3 replicas), one directory per node.
//!
//! Layout: `<dir>/<port>/` holds the node's `nodes.conf`, `redis.log` and `redis.pid`
//! (a shared directory would make the replicas overwrite each other's sync files).
//! There is no Redis client dependency: `redis-cli` does the talking.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::reaper::Guard;
use crate::sys::{self, run, wait_until};

const NODES: usize = 6;

/// `cluster-node-timeout` of every node: how long a master may be unreachable before
/// the cluster starts failing it over.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// One node's fixed addresses. The cluster bus port is chosen too (`cluster-port`)
/// rather than left at port + 10000, which may be taken or above 65535.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedisNode {
    pub port: u16,
    pub bus_port: u16,
    pub dir: PathBuf,
}

impl RedisNode {
    pub fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("redis.pid")
    }

    /// The node's command line. `cluster-replica-validity-factor 0` lets a replica take
    /// over however long it was cut off; `repl-diskless-sync-delay 0` makes the first
    /// sync immediate; nothing is persisted.
    fn server_command(&self) -> Command {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &self.bus_port.to_string(),
            ])
            .args([
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                &NODE_TIMEOUT_MS.to_string(),
            ])
            .args(["--cluster-replica-validity-factor", "0"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
            ])
            .args(["--daemonize", "yes", "--dir"])
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log())
            .arg("--pidfile")
            .arg(self.pid_file())
            .current_dir(&self.dir);
        cmd
    }
}

/// A running 6-node cluster. Clusters made by [`RedisCluster::start`] stop when
/// dropped; the one inside the shared [`crate::Bed`] lives as long as the bed.
#[derive(Debug, Serialize, Deserialize)]
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<RedisNode>,
    #[serde(skip)]
    guard: Option<Guard>,
}

impl RedisCluster {
    /// Starts a private cluster in a new temp dir, for tests that kill nodes. Stopped
    /// and removed on drop, and by a watcher process if this process dies first.
    pub async fn start() -> Result<Self> {
        let root = sys::make_root("shortener-redis-")?;
        let guard = Guard::new(root.clone(), Some(std::process::id()))?;
        let mut cluster = Self::start_in(root.join("redis")).await?;
        cluster.guard = Some(guard);
        Ok(cluster)
    }

    /// Starts the nodes in `dir` and forms the cluster. Does not clean up: the
    /// caller's guard owns the directory tree.
    pub(crate) async fn start_in(dir: PathBuf) -> Result<Self> {
        let mut nodes = Vec::with_capacity(NODES);
        for _ in 0..NODES {
            let port = sys::try_free_port()?;
            let bus_port = sys::try_free_port()?;
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir)
                .with_context(|| format!("mkdir {}", node_dir.display()))?;
            nodes.push(RedisNode {
                port,
                bus_port,
                dir: node_dir,
            });
        }
        let cluster = Self {
            dir,
            nodes,
            guard: None,
        };
        for node in &cluster.nodes {
            run(
                &mut node.server_command(),
                "redis-server",
                Duration::from_secs(10),
            )
            .await?;
        }
        for node in &cluster.nodes {
            cluster.wait_node_up(node).await?;
        }
        let mut create = Command::new("redis-cli");
        create
            .arg("--cluster")
            .arg("create")
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", "1", "--cluster-yes"]);
        run(
            &mut create,
            "redis-cli --cluster create",
            Duration::from_secs(60),
        )
        .await?;
        cluster.wait_healthy(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// Ports of all six nodes, masters and replicas, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `redis://127.0.0.1:PORT` for every node: seed nodes for a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    pub fn nodes(&self) -> &[RedisNode] {
        &self.nodes
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pid of the node on `port` (from its pid file).
    pub fn pid(&self, port: u16) -> Result<u32> {
        let node = self.node(port)?;
        let text = std::fs::read_to_string(node.pid_file())
            .with_context(|| format!("no pid file for redis node {port}"))?;
        text.trim()
            .parse()
            .with_context(|| format!("bad pid file for redis node {port}"))
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, ...) to every node at once: a frozen or
    /// crashed cluster as clients see it. Does not wait for the effect.
    pub fn signal_all(&self, signal: &str) -> Result<()> {
        let pids = self
            .ports()
            .into_iter()
            .map(|port| self.pid(port))
            .collect::<Result<Vec<_>>>()?;
        sys::signal(&pids, signal)
    }

    /// Ports of the nodes that are masters right now.
    pub async fn master_ports(&self) -> Result<Vec<u16>> {
        let mut masters = Vec::new();
        for node in &self.nodes {
            if self.node_alive(node) {
                let role = redis_cli(node.port, &["ROLE"]).await?;
                if role.lines().next() == Some("master") {
                    masters.push(node.port);
                }
            }
        }
        Ok(masters)
    }

    /// SIGKILLs the node on `port` (a crash: no goodbye to the cluster) and waits
    /// until the process is gone.
    pub async fn kill_node(&self, port: u16) -> Result<()> {
        let pid = self.pid(port)?;
        if sys::pid_alive(pid) {
            sys::signal(&[pid], "KILL")?;
        }
        sys::wait_pid_gone(pid, Duration::from_secs(10)).await
    }

    /// Starts the node on `port` again with its old identity (nodes.conf): it rejoins
    /// the cluster, as a replica if it was failed over. Waits until it answers PING;
    /// use [`RedisCluster::wait_healthy`] to wait for the cluster.
    pub async fn restart_node(&self, port: u16) -> Result<()> {
        let node = self.node(port)?;
        run(
            &mut node.server_command(),
            "redis-server",
            Duration::from_secs(10),
        )
        .await?;
        self.wait_node_up(node).await
    }

    /// Waits until every running node reports `cluster_state:ok` with all slots
    /// served and all nodes known, exactly three running nodes are masters, and every
    /// running replica's link to its master is up (a master killed before that is
    /// never replaced).
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        let last_log = self.nodes.last().map(RedisNode::log);
        let result = wait_until(
            "the Redis Cluster to be healthy",
            timeout,
            last_log.as_deref(),
            || async {
                let mut masters = 0;
                for node in self.nodes.iter().filter(|n| self.node_alive(n)) {
                    let info = redis_cli(node.port, &["CLUSTER", "INFO"]).await?;
                    let ok = field(&info, "cluster_state") == Some("ok")
                        && field(&info, "cluster_slots_ok") == Some("16384")
                        && field(&info, "cluster_known_nodes") == Some(&NODES.to_string());
                    if !ok {
                        return Ok(false);
                    }
                    let repl = redis_cli(node.port, &["INFO", "replication"]).await?;
                    match field(&repl, "role") {
                        Some("master") => masters += 1,
                        Some("slave") if field(&repl, "master_link_status") == Some("up") => {}
                        _ => return Ok(false),
                    }
                }
                // A restarted old master trusts its stale nodes.conf for a moment and
                // reports itself a master with cluster_state:ok; wait for its demotion.
                Ok(masters == NODES / 2)
            },
        )
        .await;
        result.map_err(|e| {
            let states: Vec<String> = self
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "{}: {}",
                        n.port,
                        if self.node_alive(n) {
                            "running"
                        } else {
                            "down"
                        }
                    )
                })
                .collect();
            e.context(format!("nodes: {}", states.join(", ")))
        })
    }

    /// Stops every node and removes the directory now (dropping does the same).
    pub fn shutdown(mut self) -> Result<()> {
        match self.guard.take() {
            Some(mut guard) => guard.teardown(),
            None => Ok(()),
        }
    }

    fn node(&self, port: u16) -> Result<&RedisNode> {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .ok_or_else(|| anyhow!("no redis node on port {port} in this cluster"))
    }

    fn node_alive(&self, node: &RedisNode) -> bool {
        self.pid(node.port).map(sys::pid_alive).unwrap_or(false)
    }

    async fn wait_node_up(&self, node: &RedisNode) -> Result<()> {
        let port = node.port;
        wait_until(
            &format!("redis node {port} to answer PING"),
            Duration::from_secs(10),
            Some(&node.log()),
            || async move {
                Ok(redis_cli(port, &["PING"])
                    .await
                    .map(|r| r == "PONG")
                    .unwrap_or(false))
            },
        )
        .await
    }
}

/// Runs `redis-cli -h 127.0.0.1 -p PORT ARGS...` and returns its trimmed output. Put
/// `-c` first in `args` to follow cluster redirects.
pub async fn redis_cli(port: u16, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    let out = run(
        &mut cmd,
        &format!("redis-cli -p {port} {}", args.join(" ")),
        Duration::from_secs(5),
    )
    .await?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // redis-cli exits 0 on server errors; report them as errors.
    if text.starts_with("ERR") || text.starts_with("(error)") {
        bail!("redis-cli -p {port} {}: {text}", args.join(" "));
    }
    Ok(text)
}

/// Value of `name:value` in INFO-style output.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn reads_info_fields() {
        let info = "# Cluster\r\ncluster_state:ok\r\ncluster_slots_ok:16384\r\n";
        assert_eq!(field(info, "cluster_state"), Some("ok"));
        assert_eq!(field(info, "cluster_slots_ok"), Some("16384"));
        assert_eq!(field(info, "cluster_slots"), None);
    }
}
