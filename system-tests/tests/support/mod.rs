//! Test harness: the real create-service and lookup-service, started through their
//! libraries on port 0, over embedded SQLite or the shared PostgreSQL bed (primary +
//! streaming replica, Redis Cluster).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use common::config::{ServiceKind, Settings};
use common::db::Database;
use common::deps::Deps;
use common::domain::access::{Grant, Role};
use common::events::Bus;
use common::server::Running;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const CODE_KEY: &str = "test-code-key-0123456789";
pub const PUBLIC_BASE: &str = "http://sho.rt";

pub enum Backing {
    Sqlite(tempfile::TempDir),
    Postgres(test_kit::TestDb),
    /// Servers owned by the test itself.
    Private,
}

pub struct Harness {
    pub engine: &'static str,
    create: Running,
    pub create_port: u16,
    lookup: Running,
    pub lookup_port: u16,
    stats: Running,
    pub stats_port: u16,
    /// stats-service's state and appliers (tests stop and restart the appliers).
    pub stats_service: stats_service::StatsService,
    /// Appliers a test started again after stopping the first ones.
    pub restarted_appliers: Option<common::background::Background>,
    pub db: Database,
    pub http: reqwest::Client,
    /// Keys of two tenants, `acme` and `globex`.
    pub key: String,
    pub other_key: String,
    pub env: Vec<(String, String)>,
    pub backing: Backing,
    /// The in-process event bus between create and lookup when there is no Redis.
    pub bus: Option<Bus>,
}

/// A JSON answer: status, headers, body (Null when empty or not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts one of the HTML pages the redirect may answer instead of a redirect:
    /// this status, HTML, never cached, under `policy`, no `Location`, no script.
    pub fn assert_page(&self, status: u16, policy: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("content-security-policy"), Some(policy));
        assert_eq!(self.header("location"), None);
        assert!(!self.text.contains("<script"), "no script needed");
    }

    /// Asserts an RFC 9457 problem with this status and type.
    pub fn assert_problem(&self, status: u16, kind: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.text
        );
        assert_eq!(
            self.body["type"],
            format!("/problems/{kind}"),
            "body: {}",
            self.text
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].as_str().is_some_and(|t| !t.is_empty()));
    }
}

fn env_pairs(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

impl Harness {
    pub async fn sqlite(overrides: &[(&str, &str)]) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/links.db?mode=rwc", dir.path().display());
        let env = env_pairs(&[("SHORTENER__DATABASE__URL", url)]);
        Self::start("sqlite", env, overrides, Backing::Sqlite(dir)).await
    }

    /// On private servers that a test may stop, freeze or kill (never the shared bed).
    pub async fn on_servers(
        pg: &test_kit::PgCluster,
        redis: Option<&test_kit::RedisCluster>,
        overrides: &[(&str, &str)],
    ) -> Harness {
        let mut env = env_pairs(&[
            ("SHORTENER__DATABASE__URL", pg.primary_url("postgres")),
            (
                "SHORTENER__DATABASE__REPLICA_URLS",
                pg.replica_url("postgres"),
            ),
            ("SHORTENER__DATABASE__ACQUIRE_TIMEOUT", "1000ms".into()),
        ]);
        if let Some(redis) = redis {
            env.extend(env_pairs(&[
                ("SHORTENER__REDIS__URLS", redis.urls().join(",")),
                ("SHORTENER__REDIS__KEY_PREFIX", "t:".into()),
            ]));
        }
        Self::start("postgres", env, overrides, Backing::Private).await
    }

    /// Another lookup instance on the same servers (same settings, own local cache).
    pub async fn add_lookup(&self) -> (u16, Running) {
        let settings = Settings::load_from(ServiceKind::Lookup, None, self.env.clone()).unwrap();
        let deps = Deps::connect(ServiceKind::Lookup, settings).await.unwrap();
        let lookup = lookup_service::start(deps).await.unwrap();
        (lookup.port(), lookup)
    }

    /// Sum of every series of metric `name` (exact name, any labels) on `port`.
    pub async fn metric(&self, port: u16, name: &str) -> f64 {
        self.metric_where(port, name, "").await
    }

    /// The Prometheus text a service on `port` exports.
    pub async fn metrics_text(&self, port: u16) -> String {
        self.http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Like [`Harness::metric`], over the series whose line contains `labels`.
    pub async fn metric_where(&self, port: u16, name: &str, labels: &str) -> f64 {
        test_kit::metric_sum(&self.metrics_text(port).await, name, labels)
    }

    pub async fn postgres(overrides: &[(&str, &str)]) -> Harness {
        let bed = test_kit::bed().await;
        let db = bed.fresh_database().await;
        let env = env_pairs(&[
            ("SHORTENER__DATABASE__URL", db.primary_url.clone()),
            ("SHORTENER__DATABASE__REPLICA_URLS", db.replica_url.clone()),
            ("SHORTENER__REDIS__URLS", bed.redis_urls().join(",")),
            ("SHORTENER__REDIS__KEY_PREFIX", bed.fresh_prefix()),
        ]);
        Self::start("postgres", env, overrides, Backing::Postgres(db)).await
    }

    async fn start(
        engine: &'static str,
        mut env: Vec<(String, String)>,
        overrides: &[(&str, &str)],
        backing: Backing,
    ) -> Harness {
        env.extend(env_pairs(&[
            ("SHORTENER__HTTP__BIND", "127.0.0.1".into()),
            ("SHORTENER__HTTP__PORT", "0".into()),
            ("SHORTENER__HTTP__WORKERS", "2".into()),
            ("SHORTENER__HTTP__PUBLIC_BASE_URL", PUBLIC_BASE.into()),
            ("SHORTENER__HTTP__SHUTDOWN_TIMEOUT", "1s".into()),
            ("SHORTENER__DATABASE__MIGRATE_ON_START", "true".into()),
            ("SHORTENER__IDS__CODE_KEY", CODE_KEY.into()),
            ("SHORTENER__TELEMETRY__FILTER", "error".into()),
            // Tests that create hundreds of links in a loop are not about limits;
            // the limit tests set their own.
            ("SHORTENER__RATE_LIMIT__PER_KEY_PER_MINUTE", "600000".into()),
            ("SHORTENER__RATE_LIMIT__PER_KEY_BURST", "10000".into()),
        ]));
        for (k, v) in overrides {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        let create_settings = Settings::load_from(ServiceKind::Create, None, env.clone()).unwrap();
        common::telemetry::init(&create_settings.telemetry);
        let mut deps = Deps::connect(ServiceKind::Create, create_settings.clone())
            .await
            .unwrap();
        let db = deps.db.clone();
        // Without Redis (SQLite), changes reach the lookup over an in-process bus, as
        // in the all-in-one; with Redis, through the cluster.
        let bus = deps.redis.is_none().then(Bus::local);
        if let Some(bus) = &bus {
            deps.bus = bus.clone();
        }
        let create = create_service::start(deps).await.unwrap();

        let lookup_settings = Settings::load_from(ServiceKind::Lookup, None, env.clone()).unwrap();
        let mut lookup_deps = Deps::connect(ServiceKind::Lookup, lookup_settings)
            .await
            .unwrap();
        if let Some(bus) = &bus {
            lookup_deps.bus = bus.clone();
        }
        let lookup = lookup_service::start(lookup_deps).await.unwrap();

        let stats_settings = Settings::load_from(ServiceKind::Stats, None, env.clone()).unwrap();
        let stats_deps = Deps::connect(ServiceKind::Stats, stats_settings)
            .await
            .unwrap();
        let stats_service = stats_service::StatsService::start(&stats_deps).unwrap();
        let stats = stats_service::app::serve(&stats_deps, &stats_service).unwrap();

        let key = common::auth::create_key(&db, "acme", "tests", Grant::Role(Role::Owner))
            .await
            .unwrap()
            .secret;
        let other_key = common::auth::create_key(&db, "globex", "tests", Grant::Role(Role::Owner))
            .await
            .unwrap()
            .secret;
        let http = test_kit::http_client().unwrap();
        Harness {
            engine,
            create_port: create.port(),
            create,
            lookup_port: lookup.port(),
            lookup,
            stats_port: stats.port(),
            stats,
            stats_service,
            restarted_appliers: None,
            db,
            http,
            key,
            other_key,
            env,
            backing,
            bus,
        }
    }

    pub async fn stop(self) {
        self.create.stop().await.unwrap();
        self.lookup.stop().await.unwrap();
        self.stats.stop().await.unwrap();
        if let Some(appliers) = self.restarted_appliers {
            appliers.shutdown(std::time::Duration::from_secs(10)).await;
        }
        self.db.close().await;
    }

    pub fn create_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.create_port)
    }

    pub fn stats_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.stats_port)
    }

    pub fn lookup_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.lookup_port)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// A call to create-service with `key` as bearer (None: anonymous).
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, self.create_url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// `GET path` on create-service as `key`.
    pub async fn get_as(&self, key: &str, path: &str) -> Answer {
        self.api(Method::GET, path, Some(key), None).await
    }

    /// `POST path` on create-service as `key`.
    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> Answer {
        self.api(Method::POST, path, Some(key), Some(body)).await
    }

    /// A new key made over the API by `key` with `fields` (`{"role": …}` or
    /// `{"scopes": […]}`): its secret and its id.
    pub async fn make_key(&self, key: &str, fields: Value) -> (String, String) {
        let made = self.post_as(key, "/api/v1/keys", fields.clone()).await;
        assert_eq!(made.status, 201, "{fields}: {}", made.text);
        (
            made.body["key"].as_str().unwrap().to_string(),
            made.body["id"].as_str().unwrap().to_string(),
        )
    }

    /// `PATCH path` on create-service as `key`.
    pub async fn patch_as(&self, key: &str, path: &str, body: Value) -> Answer {
        self.api(Method::PATCH, path, Some(key), Some(body)).await
    }

    /// `DELETE path` on create-service as `key`.
    pub async fn delete_as(&self, key: &str, path: &str) -> Answer {
        self.api(Method::DELETE, path, Some(key), None).await
    }

    /// `POST /api/v1/domains` as `key`.
    pub async fn add_domain(&self, key: &str, body: Value) -> Answer {
        self.api(Method::POST, "/api/v1/domains", Some(key), Some(body))
            .await
    }

    /// Follows `path` at the lookup instance on `port`, asking for `host`.
    pub async fn follow_host_at(&self, port: u16, host: &str, path: &str) -> Answer {
        let url = format!("http://127.0.0.1:{port}{path}");
        self.send(self.http.get(url).header("host", host)).await
    }

    /// Follows `path` on lookup-service, asking for `host`.
    pub async fn follow_host(&self, host: &str, path: &str) -> Answer {
        self.follow_host_at(self.lookup_port, host, path).await
    }

    /// Follows `path` on `host` until `done` holds for the answer (an announcement or
    /// an eviction takes a moment to arrive); panics with the last answer after five
    /// seconds.
    pub async fn follow_host_until(
        &self,
        host: &str,
        path: &str,
        done: impl Fn(&Answer) -> bool,
    ) -> Answer {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let answer = self.follow_host(host, path).await;
            if done(&answer) {
                return answer;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{host}{path}: {} {}",
                answer.status,
                answer.text
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Creates a link as `acme`; panics unless 201.
    pub async fn create_link(&self, body: Value) -> Value {
        let answer = self
            .api(Method::POST, "/api/v1/links", Some(&self.key), Some(body))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        answer.body
    }

    /// Follows `/{code}` on lookup-service (no redirect following).
    pub async fn follow(&self, code: &str) -> Answer {
        self.send(self.http.get(self.lookup_url(&format!("/{code}"))))
            .await
    }

    /// Follows `code` until it answers `status`, for checks after an edit: lookup reads
    /// a streaming replica, so an edit shows there after the replication lag (a few
    /// ms on loopback). Panics after two seconds.
    pub async fn follow_until(&self, code: &str, status: u16) -> Answer {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let answer = self.follow(code).await;
            if answer.status.as_u16() == status || std::time::Instant::now() > deadline {
                assert_eq!(answer.status.as_u16(), status, "{}", answer.text);
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Where admin commands announce changes for this harness's services: the
    /// in-process bus, else Redis when configured.
    pub fn admin_bus(&self) -> Bus {
        if let Some(bus) = &self.bus {
            return bus.clone();
        }
        let settings = Settings::load_from(ServiceKind::Create, None, self.env.clone()).unwrap();
        Bus::from_redis(
            common::redis::RedisCluster::from_settings(&settings.redis)
                .unwrap()
                .as_ref(),
        )
    }

    /// The stats of `code` (as `acme`) once `total` reaches `expected`, polling for up
    /// to `within`; panics on an overcount, or when the total never gets there.
    pub async fn stats_when(
        &self,
        code: &str,
        expected: i64,
        within: std::time::Duration,
    ) -> Value {
        let path = format!("/api/v1/links/{code}/stats?granularity=hour");
        let deadline = std::time::Instant::now() + within;
        loop {
            let answer = self
                .send(self.http.get(self.stats_url(&path)).bearer_auth(&self.key))
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
            let total = answer.body["total"].as_i64().unwrap();
            assert!(total <= expected, "overcounted: {}", answer.text);
            if total == expected {
                return answer.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "total never reached {expected}: {}",
                answer.text
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub async fn count_links(&self) -> i64 {
        common::db::links::count(self.db.primary()).await.unwrap()
    }
}

/// Runs a scenario `async fn NAME(h: &Harness)` once on SQLite and once on PostgreSQL;
/// `settings = OVERRIDES;` first starts both harnesses with those `(key, value)` pairs
/// (an expression read inside the scenario's module: `super::NAME` for a constant).
#[macro_export]
macro_rules! on_both_engines {
    (settings = $overrides:expr; $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let h = $crate::support::Harness::sqlite(&$overrides).await;
                    super::$name(&h).await;
                    h.stop().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let h = $crate::support::Harness::postgres(&$overrides).await;
                    super::$name(&h).await;
                    h.stop().await;
                }
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        $crate::on_both_engines!(settings = []; $($name),+);
    };
}
