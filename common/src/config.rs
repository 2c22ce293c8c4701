//! Typed configuration: built-in defaults → optional TOML file → `SHORTENER__SECTION__KEY`.
//!
//! Every struct denies unknown fields, so a typo in a file or an environment variable
//! fails at start instead of being silently ignored. Values that parse but make no
//! sense are caught by [`Settings::validate`], whose messages always name the key.
//! Secrets (database URLs, Redis URLs, the code key) are [`SecretString`]s: their
//! `Debug` prints `[REDACTED]`, so logging the settings never leaks them.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Which binary is loading settings; each has its own port and a few defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Create,
    Lookup,
    Stats,
    AllInOne,
}

impl ServiceKind {
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Create => "create-service",
            ServiceKind::Lookup => "lookup-service",
            ServiceKind::Stats => "stats-service",
            ServiceKind::AllInOne => "shortener",
        }
    }

    /// Defaults layered over [`BASE_DEFAULTS`] for this kind of process.
    fn defaults(self) -> &'static str {
        match self {
            ServiceKind::Create => "[http]\nport = 8081\n",
            ServiceKind::Lookup => "[http]\nport = 8082\n",
            ServiceKind::Stats => "[http]\nport = 8083\n",
            ServiceKind::AllInOne => ALL_IN_ONE_DEFAULTS,
        }
    }
}

/// Production-safe defaults shared by every service. Kept as TOML so the README's
/// configuration reference and this file say the same thing.
pub const BASE_DEFAULTS: &str = r#"
[http]
bind = "0.0.0.0"
port = 8080
public_base_url = "http://localhost:8080"
json_body_limit_bytes = 65536
bulk_body_limit_bytes = 4194304
shutdown_timeout_secs = 20
drain_delay_ms = 0

[database]
replica_urls = []
max_connections = 32
acquire_timeout_ms = 2000
statement_timeout_ms = 5000
migrate_on_start = false
group_commit_writers = 4
group_commit_max_rows = 64

[redis]
urls = []
key_prefix = "shortener:"
timeout_ms = 50
pool_size = 32
# Replicas that must hold a link change before the relay counts it published (Redis
# replicates asynchronously: a failover may drop a write only the master had), and
# how long one WAIT for them may take.
wait_replicas = 1
wait_timeout_ms = 200

[ids]
lease_ttl_secs = 30
max_clock_backwards_ms = 10

[links]
anonymous_create = false
anonymous_stats = false
own_hosts = []
blocked_hosts = []
max_url_bytes = 2048
# The runtime blocklist (`shortener hosts block|unblock`) is reloaded from the
# database on every blocklist-changed event and at least this often, so an instance
# that missed an event (Redis down, subscription lost) converges within this bound.
blocklist_reload_secs = 15

[lookup]
permanent_max_age_secs = 3600
l1_enabled = true
l1_max_bytes = 201326592
l1_ttl_secs = 300
l1_ttl_jitter_percent = 10
l1_negative_ttl_secs = 5
l1_degraded_ttl_secs = 5
l2_ttl_secs = 3600
l2_negative_ttl_secs = 30
breaker_threshold = 5
breaker_cool_down_ms = 500
replica_timeout_ms = 150
replica_lag_bound_ms = 5000
not_found_per_ip_per_minute = 120
not_found_burst = 60

[stats]
enabled = true
flush_interval_ms = 1000
max_buffered_keys = 500000
max_pending_batches = 600
dedupe_window_secs = 3600
country_header = "CF-IPCountry"
apply_batch = 32
consumers = 2
max_attempts = 5
poll_ms = 100

[rate_limit]
enabled = true
per_key_per_minute = 6000
per_key_burst = 200
per_ip_per_minute = 600
per_ip_burst = 60

[telemetry]
format = "json"
filter = "info"
"#;

/// The embedded default: everything on one laptop, nothing to install.
const ALL_IN_ONE_DEFAULTS: &str = r#"
[http]
bind = "127.0.0.1"
port = 8080
public_base_url = "http://127.0.0.1:8080"

[database]
url = "sqlite://data/shortener.db?mode=rwc"
max_connections = 8
group_commit_writers = 1
migrate_on_start = true

[links]
anonymous_create = true
anonymous_stats = true
# `shortener hosts block` runs in a process of its own, which cannot reach the
# server's in-process events: the server sees a change at its next reload.
blocklist_reload_secs = 5

[telemetry]
format = "pretty"
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub ids: IdSettings,
    pub links: LinkSettings,
    pub lookup: LookupSettings,
    pub stats: StatsSettings,
    pub rate_limit: RateLimitSettings,
    pub telemetry: TelemetrySettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsSettings {
    /// Count clicks in lookup (off only to measure what counting costs).
    pub enabled: bool,
    /// How often lookup flushes its aggregated clicks as one batch.
    pub flush_interval_ms: u64,
    /// Distinct (code, hour, dimensions) keys buffered per flush before new ones drop.
    pub max_buffered_keys: u64,
    /// Batches kept while the queue is unreachable before the oldest drop.
    pub max_pending_batches: usize,
    /// How long the queue remembers a batch after applying it, so that a second copy
    /// (a retry after a lost answer) is recognised and ignored. Lookup never re-sends
    /// a batch older than this: it drops it instead, counted as dropped.
    pub dedupe_window_secs: u64,
    /// Header carrying the client's country from a trusted edge (empty: none).
    pub country_header: String,
    /// Batches applied per transaction by stats-service, and consumer tasks.
    pub apply_batch: i64,
    pub consumers: usize,
    /// Failed applications before a batch goes to the dead letters.
    pub max_attempts: i64,
    /// Pause between polls of an empty queue.
    pub poll_ms: u64,
}

impl StatsSettings {
    /// `dedupe_window_secs` in milliseconds, the unit batch times are kept in.
    pub fn dedupe_window_ms(&self) -> i64 {
        i64::try_from(self.dedupe_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSettings {
    /// `Cache-Control: max-age` sent with 301/308 redirects, which browsers keep.
    pub permanent_max_age_secs: u64,
    /// The local (L1) cache; off only to measure the tiers below it.
    pub l1_enabled: bool,
    /// Upper bound of the local (L1) cache, in approximate bytes of entries.
    pub l1_max_bytes: u64,
    /// Lifetime of a local entry; each entry gets ± `l1_ttl_jitter_percent`.
    pub l1_ttl_secs: u64,
    pub l1_ttl_jitter_percent: u64,
    /// Lifetime of a local "no such code" entry.
    pub l1_negative_ttl_secs: u64,
    /// Lifetime of local entries while invalidation events may be missed.
    pub l1_degraded_ttl_secs: u64,
    /// Lifetime of shared (Redis) entries and of shared "no such code" entries.
    pub l2_ttl_secs: u64,
    pub l2_negative_ttl_secs: u64,
    /// Consecutive Redis failures that open the breaker, and its first cool-down.
    pub breaker_threshold: u32,
    pub breaker_cool_down_ms: u64,
    /// Deadline of one replica query; past it the primary answers.
    pub replica_timeout_ms: u64,
    /// Links younger than this are read from the primary when a replica lacks them.
    pub replica_lag_bound_ms: u64,
    /// Not-found answers per client address before 429 (scanners).
    pub not_found_per_ip_per_minute: u32,
    pub not_found_burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: String,
    pub port: u16,
    /// Scheme and authority that short links are built on, e.g. `https://sho.rt`.
    pub public_base_url: String,
    pub json_body_limit_bytes: usize,
    pub bulk_body_limit_bytes: usize,
    /// Header that carries the client address from a trusted proxy (e.g. `X-Real-IP`).
    /// Unset means the TCP peer address is the client: never trust a header that any
    /// client can forge unless a proxy in front overwrites it.
    #[serde(default)]
    pub client_ip_header: Option<String>,
    #[serde(default)]
    pub workers: Option<usize>,
    pub shutdown_timeout_secs: u64,
    /// After SIGTERM, how long readiness fails while new requests are still served,
    /// before the listener closes: for load balancers that learn of a stopping
    /// instance only from its readiness. Kubernetes removes the endpoint itself (the
    /// Helm chart's preStop pause covers its propagation), so the default is 0.
    pub drain_delay_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`. Secret: it may carry a password.
    #[serde(default)]
    pub url: Option<SecretString>,
    pub replica_urls: Vec<SecretString>,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    pub migrate_on_start: bool,
    /// Tasks that write concurrent single creates together, one multi-row INSERT and
    /// one commit per batch (0: every create is its own INSERT).
    pub group_commit_writers: usize,
    /// Most creates one such commit carries.
    pub group_commit_max_rows: usize,
}

impl DatabaseSettings {
    /// A small pool on `url` alone (no replicas, 5 s timeouts), for tools and tests
    /// that talk to one database directly.
    pub fn direct(url: &str, max_connections: u32) -> DatabaseSettings {
        DatabaseSettings {
            url: Some(url.to_string().into()),
            replica_urls: vec![],
            max_connections,
            acquire_timeout_ms: 5000,
            statement_timeout_ms: 5000,
            migrate_on_start: false,
            group_commit_writers: 0,
            group_commit_max_rows: 1,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Seed nodes of the Redis Cluster; empty means no Redis (in-process fallbacks).
    pub urls: Vec<SecretString>,
    pub key_prefix: String,
    pub timeout_ms: u64,
    pub pool_size: usize,
    /// Replicas that must acknowledge a link change's write-through (0: none).
    pub wait_replicas: u32,
    pub wait_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdSettings {
    /// Explicit Snowflake worker id (0–1023).
    #[serde(default)]
    pub worker_id: Option<u16>,
    /// A StatefulSet pod name such as `create-3`: its ordinal becomes the worker id.
    #[serde(default)]
    pub pod_name: Option<String>,
    /// Key of the code permutation. Changing it changes every generated code.
    #[serde(default)]
    pub code_key: Option<SecretString>,
    pub lease_ttl_secs: u64,
    pub max_clock_backwards_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSettings {
    pub anonymous_create: bool,
    /// Anyone may read the stats and the QR code of links created without an API
    /// key. Those links have no owner who could sign in, so this is the only way
    /// their stats can be seen; on for the all-in-one, where its one user is the
    /// person at the laptop, off for services that the public can reach.
    pub anonymous_stats: bool,
    /// Hosts that serve short links besides the one in `http.public_base_url`.
    pub own_hosts: Vec<String>,
    /// Hosts (and their subdomains) that links may not point at, fixed at start; the
    /// `blocked_hosts` table adds to them at run time.
    pub blocked_hosts: Vec<String>,
    pub max_url_bytes: usize,
    /// Longest time between two reloads of the runtime blocklist (1–3600 s); changes
    /// announced by an event apply sooner.
    pub blocklist_reload_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub per_key_per_minute: u32,
    pub per_key_burst: u32,
    pub per_ip_per_minute: u32,
    pub per_ip_burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub format: LogFormat,
    pub filter: String,
}

/// A configuration problem, always naming the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Keys whose environment values are comma-separated lists.
const LIST_KEYS: [&str; 4] = [
    "database.replica_urls",
    "redis.urls",
    "links.own_hosts",
    "links.blocked_hosts",
];

impl Settings {
    /// Loads settings for `kind` from the built-in defaults, the optional file
    /// (`--config`, else `SHORTENER_CONFIG`), then the process environment.
    pub fn load(kind: ServiceKind, file: Option<&Path>) -> Result<Settings, ConfigError> {
        let env_file = std::env::var_os("SHORTENER_CONFIG").map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(env_file);
        Self::load_from(kind, file.as_deref(), std::env::vars())
    }

    /// Like [`Settings::load`] with an explicit environment, so tests need not mutate
    /// the process environment.
    pub fn load_from(
        kind: ServiceKind,
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("SHORTENER__"))
            .collect();
        let mut environment = Environment::with_prefix("SHORTENER")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .source(Some(env));
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        let mut builder = Config::builder()
            .add_source(File::from_str(BASE_DEFAULTS, FileFormat::Toml))
            .add_source(File::from_str(kind.defaults(), FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        let settings: Settings = builder.add_source(environment).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: ranges, shapes and cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(id) = self.ids.worker_id
            && id >= 1024
        {
            return Err(invalid("ids.worker_id", format!("{id} is not below 1024")));
        }
        if let Some(name) = &self.ids.pod_name
            && crate::ids::WorkerId::from_pod_name(name).is_none()
        {
            return Err(invalid(
                "ids.pod_name",
                format!("`{name}` does not end in `-N` with N below 1024"),
            ));
        }
        if let Some(key) = &self.ids.code_key
            && key.expose_secret().len() < 16
        {
            return Err(invalid("ids.code_key", "must be at least 16 bytes long"));
        }
        if self.ids.lease_ttl_secs < 3 {
            return Err(invalid("ids.lease_ttl_secs", "must be at least 3"));
        }
        let base = url::Url::parse(&self.http.public_base_url)
            .map_err(|e| invalid("http.public_base_url", e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(invalid(
                "http.public_base_url",
                "must be an http(s) URL with a host",
            ));
        }
        if let Some(url) = &self.database.url {
            let url = url.expose_secret();
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                return Err(invalid(
                    "database.url",
                    "must start with postgres:// or sqlite:",
                ));
            }
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if !(1..=crate::db::links::INSERT_CHUNK).contains(&self.database.group_commit_max_rows) {
            return Err(invalid(
                "database.group_commit_max_rows",
                "must be within 1..=512",
            ));
        }
        if self.database.group_commit_writers > self.database.max_connections as usize {
            return Err(invalid(
                "database.group_commit_writers",
                "must be at most database.max_connections",
            ));
        }
        if !(64..=8192).contains(&self.links.max_url_bytes) {
            return Err(invalid("links.max_url_bytes", "must be within 64..=8192"));
        }
        if !(1..=3600).contains(&self.links.blocklist_reload_secs) {
            return Err(invalid(
                "links.blocklist_reload_secs",
                "must be within 1..=3600",
            ));
        }
        if self.http.json_body_limit_bytes < self.links.max_url_bytes {
            return Err(invalid(
                "http.json_body_limit_bytes",
                "must be at least links.max_url_bytes",
            ));
        }
        if self.lookup.l1_ttl_jitter_percent > 50 {
            return Err(invalid(
                "lookup.l1_ttl_jitter_percent",
                "must be at most 50",
            ));
        }
        for (key, value) in [
            ("lookup.l1_ttl_secs", self.lookup.l1_ttl_secs),
            ("lookup.l2_ttl_secs", self.lookup.l2_ttl_secs),
            (
                "lookup.not_found_per_ip_per_minute",
                u64::from(self.lookup.not_found_per_ip_per_minute),
            ),
            (
                "lookup.not_found_burst",
                u64::from(self.lookup.not_found_burst),
            ),
            ("redis.wait_timeout_ms", self.redis.wait_timeout_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.stats.flush_interval_ms < 10 {
            return Err(invalid("stats.flush_interval_ms", "must be at least 10"));
        }
        if self.stats.apply_batch < 1 {
            return Err(invalid("stats.apply_batch", "must be at least 1"));
        }
        if self.stats.max_attempts < 1 {
            return Err(invalid("stats.max_attempts", "must be at least 1"));
        }
        if self.redis.timeout_ms == 0 {
            return Err(invalid("redis.timeout_ms", "must be at least 1"));
        }
        for (key, value) in [
            (
                "rate_limit.per_key_per_minute",
                self.rate_limit.per_key_per_minute,
            ),
            ("rate_limit.per_key_burst", self.rate_limit.per_key_burst),
            (
                "rate_limit.per_ip_per_minute",
                self.rate_limit.per_ip_per_minute,
            ),
            ("rate_limit.per_ip_burst", self.rate_limit.per_ip_burst),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The database URL, or a start-up error naming the key.
    pub fn database_url(&self) -> Result<&str, ConfigError> {
        self.database
            .url
            .as_ref()
            .map(|u| u.expose_secret())
            .ok_or_else(|| invalid("database.url", "is required"))
    }

    /// The code codec keyed by `ids.code_key`, which every service needs (the
    /// all-in-one writes a key of its own when the setting is absent).
    pub fn code_codec(&self) -> Result<crate::ids::CodeCodec, ConfigError> {
        let key =
            self.ids.code_key.as_ref().ok_or_else(|| {
                invalid("ids.code_key", "is required (set SHORTENER__IDS__CODE_KEY)")
            })?;
        Ok(crate::ids::CodeCodec::new(key.expose_secret().as_bytes()))
    }

    /// Hosts that must never be the target of a short link (no redirect loops).
    pub fn own_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .links
            .own_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if let Ok(base) = url::Url::parse(&self.http.public_base_url)
            && let Some(host) = base.host_str()
        {
            hosts.push(host.to_ascii_lowercase());
        }
        hosts
    }

    /// The URL policy that every stored link must satisfy.
    pub fn url_policy(&self) -> crate::links::UrlPolicy {
        crate::links::UrlPolicy {
            own_hosts: self.own_hosts(),
            blocked_hosts: self
                .links
                .blocked_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            blocklist: crate::links::Blocklist::default(),
            max_len: self.links.max_url_bytes,
        }
    }

    /// The runtime blocklist's longest reload interval.
    pub fn blocklist_reload_period(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.links.blocklist_reload_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_for_every_kind() {
        for kind in [
            ServiceKind::Create,
            ServiceKind::Lookup,
            ServiceKind::Stats,
            ServiceKind::AllInOne,
        ] {
            let s = Settings::load_from(kind, None, env(&[])).expect("defaults are valid");
            assert_eq!(s.links.max_url_bytes, 2048);
        }
        let create = Settings::load_from(ServiceKind::Create, None, env(&[])).expect("valid");
        assert_eq!(create.http.port, 8081);
        assert!(!create.links.anonymous_create);
        assert!(!create.links.anonymous_stats);
        let aio = Settings::load_from(ServiceKind::AllInOne, None, env(&[])).expect("valid");
        assert_eq!(aio.http.port, 8080);
        assert!(aio.links.anonymous_create);
        assert!(aio.links.anonymous_stats);
    }

    #[test]
    fn environment_overrides_and_lists() {
        let s = Settings::load_from(
            ServiceKind::Lookup,
            None,
            env(&[
                ("SHORTENER__HTTP__PORT", "9000"),
                (
                    "SHORTENER__LINKS__BLOCKED_HOSTS",
                    "evil.example,bad.example",
                ),
                ("SHORTENER__IDS__WORKER_ID", "7"),
                ("SHORTENER__IDS__CODE_KEY", "0123456789abcdef0123"),
            ]),
        )
        .expect("valid");
        assert_eq!(s.http.port, 9000);
        assert_eq!(s.links.blocked_hosts, vec!["evil.example", "bad.example"]);
        assert_eq!(s.ids.worker_id, Some(7));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Settings::load_from(
            ServiceKind::Create,
            None,
            env(&[("SHORTENER__HTTP__PROT", "9000")]),
        )
        .expect_err("typo must fail");
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let err = Settings::load_from(
            ServiceKind::Create,
            None,
            env(&[("SHORTENER__HTTP__PORT", "not-a-port")]),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("http.port"), "{err}");

        let err = Settings::load_from(
            ServiceKind::Create,
            None,
            env(&[("SHORTENER__IDS__WORKER_ID", "1024")]),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("ids.worker_id"), "{err}");

        for bad in ["0", "3601"] {
            let err = Settings::load_from(
                ServiceKind::Lookup,
                None,
                env(&[("SHORTENER__LINKS__BLOCKLIST_RELOAD_SECS", bad)]),
            )
            .expect_err("must fail");
            assert!(
                err.to_string().contains("links.blocklist_reload_secs"),
                "{err}"
            );
        }
    }

    /// Each refused value names its own key, not a neighbour checked beside it.
    #[test]
    fn every_refused_value_names_its_own_key() {
        for key in [
            "lookup.l1_ttl_secs",
            "lookup.l2_ttl_secs",
            "lookup.not_found_per_ip_per_minute",
            "lookup.not_found_burst",
            "stats.apply_batch",
            "stats.max_attempts",
            "stats.flush_interval_ms",
            "redis.timeout_ms",
            "redis.wait_timeout_ms",
            "rate_limit.per_key_per_minute",
            "rate_limit.per_key_burst",
            "rate_limit.per_ip_per_minute",
            "rate_limit.per_ip_burst",
            "database.max_connections",
        ] {
            let var = format!(
                "SHORTENER__{}",
                key.to_ascii_uppercase().replacen('.', "__", 1)
            );
            let err =
                Settings::load_from(ServiceKind::Lookup, None, env(&[(&var, "0")])).expect_err(key);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("configuration key `{key}`:")),
                "{key}: {message}"
            );
        }
    }

    #[test]
    fn blocklist_reload_defaults() {
        let lookup = Settings::load_from(ServiceKind::Lookup, None, env(&[])).expect("valid");
        assert_eq!(lookup.links.blocklist_reload_secs, 15);
        let aio = Settings::load_from(ServiceKind::AllInOne, None, env(&[])).expect("valid");
        assert_eq!(aio.links.blocklist_reload_secs, 5);
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::load_from(
            ServiceKind::Create,
            None,
            env(&[
                ("SHORTENER__DATABASE__URL", "postgres://u:hunter2@db/x"),
                ("SHORTENER__IDS__CODE_KEY", "supersecretcodekey-123"),
            ]),
        )
        .expect("valid");
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains("supersecretcodekey"));
    }

    #[test]
    fn file_layer_sits_between_defaults_and_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "[http]\nport = 7000\nbind = \"127.0.0.1\"\n").expect("write");
        let s = Settings::load_from(
            ServiceKind::Create,
            Some(&path),
            env(&[("SHORTENER__HTTP__PORT", "7001")]),
        )
        .expect("valid");
        assert_eq!(s.http.port, 7001);
        assert_eq!(s.http.bind, "127.0.0.1");
    }
}
