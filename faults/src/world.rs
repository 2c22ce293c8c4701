//! The servers a scenario breaks: a private PostgreSQL primary + streaming replica and
//! (optionally) a 6-node Redis Cluster, a migrated database, an API key, and the
//! settings every service process is started with.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sqlx::postgres::{PgPool, PgPoolOptions};
use test_kit::{PgCluster, RedisCluster};

use crate::load::Link;
use crate::procs::{self, Kind, Service};
use crate::proxy::Proxy;

pub const DB: &str = "shortener";
pub const TENANT: &str = "faults";
/// The public base URL the services build short links with. Not a loopback
/// address, so that links to 127.0.0.1 (the outbound probe) are accepted.
pub const PUBLIC_BASE: &str = "http://sho.rt";

/// Where the services' binaries are and where logs go.
#[derive(Debug, Clone)]
pub struct Paths {
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Spec {
    pub redis: bool,
    /// The primary waits for the replica on every commit (what a failover without
    /// loss needs).
    pub synchronous_replica: bool,
    /// The services reach the primary through a switchable forwarder.
    pub proxy: bool,
}

impl Spec {
    /// A PostgreSQL primary and its replica, nothing else.
    pub const POSTGRES: Spec = Spec {
        redis: false,
        synchronous_replica: false,
        proxy: false,
    };
    /// The PostgreSQL pair and a Redis Cluster: the production layout.
    pub const WITH_REDIS: Spec = Spec {
        redis: true,
        ..Spec::POSTGRES
    };
}

/// Lookup settings that turn its local cache off, so every redirect asks Redis or
/// the database: what a scenario that breaks one of those needs to see.
pub const L1_OFF: &[(&str, &str)] = &[("SHORTENER__LOOKUP__L1_ENABLED", "false")];

/// What most scenarios run: one of each service, and links made through create.
pub struct Stack {
    pub create: Service,
    pub stats: Service,
    pub lookup: Service,
    pub links: Vec<Link>,
}

pub struct World {
    pub pg: PgCluster,
    pub redis: Option<RedisCluster>,
    pub proxy: Option<Proxy>,
    pub paths: Paths,
    pub code_key: String,
    pub api_key: String,
    pub http: reqwest::Client,
    next_name: u32,
}

impl World {
    pub async fn start(paths: &Paths, spec: Spec) -> Result<World> {
        let (pg, redis) = if spec.redis {
            let (pg, redis) = tokio::join!(PgCluster::start(), RedisCluster::start());
            (pg?, Some(redis?))
        } else {
            (PgCluster::start().await?, None)
        };
        crate::step("servers started");
        let proxy = if spec.proxy {
            Some(Proxy::start(pg.primary_port()).await?)
        } else {
            None
        };
        let code_key = format!("faults-{}", hex::encode(rand::random::<[u8; 16]>()));
        let mut world = World {
            pg,
            redis,
            proxy,
            paths: paths.clone(),
            code_key,
            api_key: String::new(),
            http: test_kit::http_client()?,
            next_name: 0,
        };
        world
            .sql_on("postgres", &format!("CREATE DATABASE {DB}"))
            .await?;
        let env = world.tool_env();
        procs::run_tool(&world.binary("create-service"), &["migrate"], &env).await?;
        if spec.synchronous_replica {
            world.make_replica_synchronous().await?;
        }
        let out = procs::run_tool(
            &world.binary("shortener"),
            &["keys", "create", "--tenant", TENANT],
            &env,
        )
        .await?;
        crate::step("database migrated, API key made");
        world.api_key = out
            .lines()
            .last()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .context("`shortener keys create` printed no key")?
            .to_string();
        Ok(world)
    }

    pub fn binary(&self, name: &str) -> PathBuf {
        self.paths.bin_dir.join(name)
    }

    /// The primary as the services see it (through the forwarder when there is one).
    pub fn primary_url(&self) -> String {
        match &self.proxy {
            Some(p) => format!(
                "postgres://{}@127.0.0.1:{}/{DB}",
                self.pg.superuser(),
                p.port
            ),
            None => self.pg.primary_url(DB),
        }
    }

    /// Settings for the admin CLI and migrations.
    pub fn tool_env(&self) -> Vec<(String, String)> {
        pairs(&[
            ("SHORTENER__DATABASE__URL", self.primary_url()),
            ("SHORTENER__IDS__CODE_KEY", self.code_key.clone()),
            ("SHORTENER__TELEMETRY__FILTER", "warn".into()),
        ])
    }

    /// What every service runs with: the shipped defaults plus the database (replica
    /// for the readers), Redis when the world has it, JSON logs at info, a 500 ms
    /// click flush, and no API rate limits (the load all comes from one address).
    pub fn service_env(&self, kind: Kind) -> Vec<(String, String)> {
        let mut env = pairs(&[
            ("SHORTENER__DATABASE__URL", self.primary_url()),
            ("SHORTENER__IDS__CODE_KEY", self.code_key.clone()),
            ("SHORTENER__HTTP__PUBLIC_BASE_URL", PUBLIC_BASE.into()),
            ("SHORTENER__HTTP__SHUTDOWN_TIMEOUT", "10s".into()),
            ("SHORTENER__RATE_LIMIT__ENABLED", "false".into()),
            ("SHORTENER__TELEMETRY__FORMAT", "json".into()),
            ("SHORTENER__TELEMETRY__FILTER", "info".into()),
            ("SHORTENER__STATS__FLUSH_INTERVAL", "500ms".into()),
        ]);
        if kind != Kind::Create {
            env.push((
                "SHORTENER__DATABASE__REPLICA_URLS".into(),
                self.pg.replica_url(DB),
            ));
        }
        if let Some(redis) = &self.redis {
            env.push(("SHORTENER__REDIS__URLS".into(), redis.urls().join(",")));
        }
        env
    }

    /// Starts a service with the world's settings plus `overrides` (which win).
    pub async fn service(&mut self, kind: Kind, overrides: &[(&str, &str)]) -> Result<Service> {
        let mut env = self.service_env(kind);
        for (k, v) in overrides {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        self.next_name += 1;
        let name = format!("{}-{}", kind.binary(), self.next_name);
        let service =
            Service::start(&self.paths.bin_dir, &self.paths.log_dir, kind, &name, env).await?;
        crate::step(&format!("{name} ready on port {}", service.port));
        Ok(service)
    }

    /// Starts create, stats and one lookup (with `lookup_overrides`), then creates `n`
    /// links with [`World::create_links`].
    pub async fn stack(
        &mut self,
        lookup_overrides: &[(&str, &str)],
        prefix: &str,
        n: usize,
    ) -> Result<Stack> {
        let create = self.service(Kind::Create, &[]).await?;
        let stats = self.service(Kind::Stats, &[]).await?;
        let lookup = self.service(Kind::Lookup, lookup_overrides).await?;
        let links = self.create_links(&create, prefix, n).await?;
        Ok(Stack {
            create,
            stats,
            lookup,
            links,
        })
    }

    /// Creates `n` links with URLs `{prefix}/{i}` through create-service's bulk API.
    pub async fn create_links(
        &self,
        create: &Service,
        prefix: &str,
        n: usize,
    ) -> Result<Vec<Link>> {
        let mut links = Vec::with_capacity(n);
        for start in (0..n).step_by(1000) {
            let items: Vec<Value> = (start..n.min(start + 1000))
                .map(|i| json!({ "url": format!("{prefix}/{i}") }))
                .collect();
            let body: Value = self
                .http
                .post(create.url("/api/v1/links/bulk"))
                .bearer_auth(&self.api_key)
                .json(&json!({ "items": items }))
                .timeout(Duration::from_secs(60))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            for result in body["results"]
                .as_array()
                .context("bulk answer has no results")?
            {
                let (Some(code), Some(url)) = (
                    result["link"]["code"].as_str(),
                    result["link"]["url"].as_str(),
                ) else {
                    bail!("a bulk item failed: {result}");
                };
                links.push(Link {
                    code: code.into(),
                    url: url.into(),
                });
            }
        }
        Ok(links)
    }

    /// A pool on the current primary (directly, not through the forwarder).
    pub async fn primary_pool(&self) -> Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&self.pg.primary_url(DB))
            .await?)
    }

    /// Clicks counted for `codes` so far.
    pub async fn clicks_counted(&self, codes: &[String]) -> Result<i64> {
        let pool = self.primary_pool().await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(clicks), 0) AS BIGINT) FROM click_totals WHERE code = ANY($1)",
        )
        .bind(codes)
        .fetch_one(&pool)
        .await?;
        pool.close().await;
        Ok(n)
    }

    /// Waits until every queued click batch is applied and the count for `codes`
    /// stops changing (or reaches `expected`); returns the count.
    pub async fn settled_clicks(&self, codes: &[String], expected: i64) -> Result<i64> {
        crate::step("waiting for every click to be applied");
        let pool = self.primary_pool().await?;
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut last = -1;
        let mut stable_since = Instant::now();
        loop {
            let pending: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM click_batches WHERE done_at IS NULL")
                    .fetch_one(&pool)
                    .await?;
            let counted: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(clicks), 0) AS BIGINT) FROM click_totals WHERE code = ANY($1)",
            )
            .bind(codes)
            .fetch_one(&pool)
            .await?;
            if counted != last {
                last = counted;
                stable_since = Instant::now();
                crate::step(&format!(
                    "{counted} of {expected} clicks counted, {pending} batches queued"
                ));
            }
            // Lookup retries a failed flush with backoff up to 10 s (plus jitter): only
            // a count unchanged for longer than that is final.
            let settled = pending == 0 && stable_since.elapsed() > Duration::from_secs(15);
            if (pending == 0 && counted == expected) || settled || Instant::now() > deadline {
                pool.close().await;
                return Ok(counted);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs SQL on the current primary, in database `db`.
    pub async fn sql_on(&self, db: &str, sql: &str) -> Result<()> {
        run_sql(&self.pg.primary_url(db), sql).await
    }

    /// `synchronous_standby_names = '*'` on the primary, then waits until the replica
    /// is reported synchronous.
    pub async fn make_replica_synchronous(&self) -> Result<()> {
        self.sql_on(
            "postgres",
            "ALTER SYSTEM SET synchronous_standby_names = '*'; SELECT pg_reload_conf()",
        )
        .await?;
        let url = self.pg.primary_url("postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let sync: Option<String> = async {
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&url)
                    .await?;
                let v: Option<String> = sqlx::query_scalar(
                    "SELECT sync_state FROM pg_stat_replication WHERE sync_state = 'sync' LIMIT 1",
                )
                .fetch_optional(&pool)
                .await?;
                pool.close().await;
                anyhow::Ok(v)
            }
            .await
            .unwrap_or(None);
            if sync.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the replica never became synchronous");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reads one counter or gauge from a service's `/metrics` (summed over labels
    /// matching `labels`, e.g. `target="replica"`).
    pub async fn metric(&self, service: &Service, name: &str, labels: &str) -> Result<f64> {
        let text = self
            .http
            .get(service.url("/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .text()
            .await?;
        Ok(sum_metric(&text, name, labels))
    }
}

pub async fn run_sql(url: &str, sql: &str) -> Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    // One statement at a time: several in one string would share an implicit
    // transaction, which ALTER SYSTEM refuses.
    let mut result = Ok(());
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        result = sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&pool)
            .await
            .map(|_| ())
            .with_context(|| format!("running {statement:?}"));
        if result.is_err() {
            break;
        }
    }
    pool.close().await;
    result
}

/// Sum of the samples of `name` whose label set contains every `k="v"` of `labels`.
pub fn sum_metric(text: &str, name: &str, labels: &str) -> f64 {
    let wanted: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let have: Vec<&str> = rest.split(',').collect();
            if !wanted.iter().all(|w| have.contains(w)) {
                return None;
            }
            value.parse::<f64>().ok()
        })
        .sum()
}

fn pairs(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The log directory of a run.
pub fn log_dir(root: &Path) -> Result<PathBuf> {
    let dir = root.join("logs");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::sum_metric;

    #[test]
    fn sums_matching_series_only() {
        let text = "# HELP x\nshortener_q_total{target=\"replica\",service=\"l\"} 3\n\
                    shortener_q_total{target=\"primary\",service=\"l\"} 4\nshortener_q 9\n";
        assert_eq!(sum_metric(text, "shortener_q_total", ""), 7.0);
        assert_eq!(
            sum_metric(text, "shortener_q_total", "target=\"replica\""),
            3.0
        );
        assert_eq!(sum_metric(text, "shortener_q", ""), 9.0);
    }
}
