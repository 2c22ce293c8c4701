//! Real servers for the workspace's tests: PostgreSQL 15 (primary + streaming replica),
//! a 6-node Redis Cluster and nginx, all from Debian's packages, on free loopback ports,
//! in temp dirs, torn down even when a test panics or the test process is killed.
//!
//! # Layout
//!
//! - [`sys`]: free ports, bounded waits, running commands, signals, log tails.
//! - [`reaper`]: the one cleanup script for a server tree, and the detached watcher
//!   process (`setsid sh -c 'while kill -0 PARENT ...'`) that runs it when the process
//!   that owns the servers is gone, however it died.
//! - [`pg`]: [`PgCluster`], a primary and a streaming replica (`pg_basebackup -R`).
//! - [`redis`]: [`RedisCluster`], 3 masters + 3 replicas made with `redis-cli --cluster create`.
//! - [`nginx`]: [`Nginx`], one foreground nginx per call, config text given by the caller.
//! - [`mod@bed`]: [`Bed`], the shared PostgreSQL + Redis pair that all tests of a run use,
//!   [`bed()`] to get it, and per-test isolation: [`Bed::fresh_database`] (a copy of the
//!   migrated template database) and [`Bed::fresh_prefix`] (a unique Redis key prefix).
//! - [`http_client`] (feature `http`): the client every test talks to the services with;
//!   [`service_binary`]: a service's binary, for tests that run it as a process.
//! - `src/bin/testbed.rs`: `testbed up --state FILE` / `testbed down --state FILE`, so
//!   that `scripts/test` starts one bed for every test process of a run.
//!
//! # One bed per run
//!
//! [`bed()`] attaches to the bed described by the JSON file named in `SHORTENER_TESTBED`
//! when that variable is set (what `scripts/test` does, so nextest's one-process-per-test
//! model costs one start for the whole run). Otherwise it starts a private bed once per
//! test process. Each test then asks for its own database and key prefix, so tests can
//! run in parallel against the same servers.
//!
//! The bed is plain data (ports, paths, names): no pools or connections, because every
//! `#[tokio::test]` has its own runtime and runtime-bound resources would die with the
//! first test. Tests open their own pools from the URLs.
//!
//! Fault tests (killing a primary, freezing a replica, killing a Redis master) must not
//! disturb the shared bed: they start their own [`PgCluster::start`] or
//! [`RedisCluster::start`], which stop when dropped.
//!
//! # Running as root
//!
//! `initdb` and `pg_ctl` refuse to run as root, so when the effective uid is 0 every
//! PostgreSQL command runs as the `postgres` user through `runuser`, in a directory
//! chowned to it. nginx is given `user root;` so its workers can use the temp prefix.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let bed = test_kit::bed().await;
//! let db = bed.fresh_database().await; // dropped (DROP DATABASE) at the end of the test
//! let prefix = bed.fresh_prefix();
//! println!("{} {} {:?} {prefix}", db.primary_url, db.replica_url, bed.redis_urls());
//! # Ok(())
//! # }
//! ```

pub mod bed;
pub mod nginx;
pub mod pg;
pub mod reaper;
pub mod redis;
pub mod sys;

pub use bed::{Bed, TestDb, bed, try_bed};
pub use nginx::Nginx;
pub use pg::PgCluster;
pub use redis::RedisCluster;
pub use sys::{free_port, try_free_port, wait_for_tcp};

/// The service binary `name` of this build (beside the directory of the running
/// test's executable), for tests that run a service as a process to signal or kill it.
/// `scripts/test` builds the binaries first; alone, `cargo build -p NAME` does.
pub fn service_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let binary = dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: build it first (`cargo build -p {name}`; scripts/test does)",
        binary.display()
    );
    binary
}

/// Sum of the samples of metric `name` (exactly that name, any labels) whose series
/// line contains `labels`, in Prometheus text.
pub fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && l.contains(labels)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The JSON body of the answer to `request` (`Null` when it is not JSON). Panics when
/// the request cannot be sent: for tests.
#[cfg(feature = "http")]
pub async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    match request.send().await {
        Ok(answer) => answer.json().await.unwrap_or(serde_json::Value::Null),
        Err(e) => panic!("request failed: {e}"),
    }
}

/// A client for talking to the services under test: redirects are answers to check,
/// not to follow, and a proxy in the environment must never see loopback traffic.
#[cfg(feature = "http")]
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    // The services turn rustls on for every reqwest client in the workspace, and a
    // client is only built with a provider installed (`common::tls`, which this
    // crate sits below).
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()?)
}
