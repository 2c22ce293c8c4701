//! Typed configuration: built-in defaults → optional TOML file → `SHORTENER__SECTION__KEY`.
//!
//! Durations are written with their unit (`"300ms"`, `"5m"`, see [`duration`]); keys
//! that used to carry the unit in their name (`l1_ttl_secs`) are refused with a
//! message that names the key to write instead.
//!
//! Every struct denies unknown fields, so a typo in a file or an environment variable
//! fails at start instead of being silently ignored. Values that parse but make no
//! sense are caught by [`Settings::validate`], whose messages always name the key.
//! Secrets (database URLs, Redis URLs, the code key) are [`SecretString`]s: their
//! `Debug` prints `[REDACTED]`, so logging the settings never leaks them.

pub mod duration;

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::http::header::HeaderName;
use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, de};

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
shutdown_timeout = "20s"
drain_delay = "0s"

[database]
replica_urls = []
max_connections = 32
acquire_timeout = "2s"
statement_timeout = "5s"
migrate_on_start = false
group_commit_writers = 4
group_commit_max_rows = 64

[redis]
urls = []
key_prefix = "shortener:"
timeout = "50ms"
pool_size = 32
# Replicas that must hold a link change before the relay counts it published (Redis
# replicates asynchronously: a failover may drop a write only the master had), and
# how long one WAIT for them may take.
wait_replicas = 1
wait_timeout = "200ms"

[ids]
lease_ttl = "30s"
max_clock_backwards = "10ms"

[links]
anonymous_create = false
anonymous_stats = false
own_hosts = []
blocked_hosts = []
max_url_bytes = 2048
# The runtime blocklist (`shortener hosts block|unblock`) is reloaded from the
# database on every blocklist-changed event and at least this often, so an instance
# that missed an event (Redis down, subscription lost) converges within this bound.
blocklist_reload = "15s"

[lookup]
permanent_max_age = "1h"
l1_enabled = true
l1_max_bytes = 201326592
l1_ttl = "5m"
l1_ttl_jitter_percent = 10
l1_negative_ttl = "5s"
l1_degraded_ttl = "5s"
l2_ttl = "1h"
l2_negative_ttl = "30s"
breaker_threshold = 5
breaker_cool_down = "500ms"
replica_timeout = "150ms"
replica_lag_bound = "5s"
not_found_per_ip_per_minute = 120
not_found_burst = 60
password_attempts_per_minute = 10
password_attempts_burst = 5
password_grant_ttl = "30m"

[stats]
enabled = true
flush_interval = "1s"
max_buffered_keys = 500000
max_pending_batches = 600
dedupe_window = "1h"
country_header = "CF-IPCountry"
apply_batch = 32
consumers = 2
max_attempts = 5
poll_interval = "100ms"

[audit]
# How long audit rows are kept; rows of the last day are never purged.
retention = "400d"

[geoip]
# A MaxMind-format database (GeoLite2 / GeoIP2 Country or City) giving the country of
# a client address when the edge sends no country header; empty: none.
database = ""

[webhooks]
# Deliver queued webhook messages from this process (stats-service and the
# all-in-one); off, they wait for a process that does.
deliver = true
# Plain-http endpoint URLs; off: https only.
allow_http = false
# Networks endpoints may be on besides the public internet (CIDR, e.g.
# "10.8.0.0/16"); loopback, private, link-local and reserved addresses are refused
# otherwise, at registration and again at every delivery.
allowed_networks = []
# Longest wait for an endpoint's answer.
timeout = "10s"
# How long a message is retried (waits from 5 s, doubling to an hour, with jitter)
# before it becomes a dead letter.
retry_for = "24h"
# An endpoint with no 2xx answer for this long is turned off.
disable_after = "5d"
# Endpoints per tenant.
max_endpoints = 20
# Deliveries in flight at once (one at a time per link and endpoint).
concurrency = 32
# How long delivered and dead messages, and the delivery log, are kept.
retention = "30d"

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
blocklist_reload = "5s"

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
    pub audit: AuditSettings,
    pub geoip: GeoipSettings,
    pub webhooks: WebhookSettings,
    pub telemetry: TelemetrySettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Whether this process delivers queued messages.
    pub deliver: bool,
    /// Plain-http endpoints are taken.
    pub allow_http: bool,
    /// Networks reachable besides the public internet.
    #[serde(deserialize_with = "networks")]
    pub allowed_networks: Vec<domain::webhooks::Network>,
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub retry_for: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub disable_after: Duration,
    pub max_endpoints: u32,
    pub concurrency: u32,
    #[serde(deserialize_with = "duration::deserialize")]
    pub retention: Duration,
}

/// Networks written `10.8.0.0/16` (or one address each).
fn networks<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<domain::webhooks::Network>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|text| {
            domain::webhooks::Network::parse(text.trim()).ok_or_else(|| {
                de::Error::custom(format!("`{text}` is not a network like `10.8.0.0/16`"))
            })
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipSettings {
    /// The database file read at start (empty: none); a file that cannot be read
    /// stops the start.
    #[serde(deserialize_with = "optional_path")]
    pub database: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// How long audit rows are kept (at least a day); older ones are purged hourly.
    #[serde(deserialize_with = "duration::deserialize")]
    pub retention: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsSettings {
    /// Count clicks in lookup (off only to measure what counting costs).
    pub enabled: bool,
    /// How often lookup flushes its aggregated clicks as one batch.
    #[serde(deserialize_with = "duration::deserialize")]
    pub flush_interval: Duration,
    /// Distinct (code, hour, dimensions) keys buffered per flush before new ones drop.
    pub max_buffered_keys: u64,
    /// Batches kept while the queue is unreachable before the oldest drop.
    pub max_pending_batches: usize,
    /// How long the queue remembers a batch after applying it, so that a second copy
    /// (a retry after a lost answer) is recognised and ignored. Lookup never re-sends
    /// a batch older than this: it drops it instead, counted as dropped.
    #[serde(deserialize_with = "duration::deserialize")]
    pub dedupe_window: Duration,
    /// Header carrying the client's country from a trusted edge (empty: none).
    #[serde(deserialize_with = "header_name")]
    pub country_header: Option<HeaderName>,
    /// Batches applied per transaction by stats-service, and consumer tasks.
    pub apply_batch: i64,
    pub consumers: usize,
    /// Failed applications before a batch goes to the dead letters.
    pub max_attempts: i64,
    /// Pause between polls of an empty queue.
    #[serde(deserialize_with = "duration::deserialize")]
    pub poll_interval: Duration,
}

impl StatsSettings {
    /// `dedupe_window` in milliseconds, the unit batch times are kept in.
    pub fn dedupe_window_ms(&self) -> i64 {
        i64::try_from(self.dedupe_window.as_millis()).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSettings {
    /// `Cache-Control: max-age` sent with 301/308 redirects, which browsers keep.
    #[serde(deserialize_with = "duration::deserialize")]
    pub permanent_max_age: Duration,
    /// The local (L1) cache; off only to measure the tiers below it.
    pub l1_enabled: bool,
    /// Upper bound of the local (L1) cache, in approximate bytes of entries.
    pub l1_max_bytes: u64,
    /// Lifetime of a local entry; each entry gets ± `l1_ttl_jitter_percent`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub l1_ttl: Duration,
    pub l1_ttl_jitter_percent: u64,
    /// Lifetime of a local "no such code" entry.
    #[serde(deserialize_with = "duration::deserialize")]
    pub l1_negative_ttl: Duration,
    /// Lifetime of local entries while invalidation events may be missed.
    #[serde(deserialize_with = "duration::deserialize")]
    pub l1_degraded_ttl: Duration,
    /// Lifetime of shared (Redis) entries and of shared "no such code" entries.
    #[serde(deserialize_with = "duration::deserialize")]
    pub l2_ttl: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub l2_negative_ttl: Duration,
    /// Consecutive Redis failures that open the breaker, and its first cool-down.
    pub breaker_threshold: u32,
    #[serde(deserialize_with = "duration::deserialize")]
    pub breaker_cool_down: Duration,
    /// Deadline of one replica query; past it the primary answers.
    #[serde(deserialize_with = "duration::deserialize")]
    pub replica_timeout: Duration,
    /// Links younger than this are read from the primary when a replica lacks them.
    #[serde(deserialize_with = "duration::deserialize")]
    pub replica_lag_bound: Duration,
    /// Not-found answers per client address before 429 (scanners).
    pub not_found_per_ip_per_minute: u32,
    pub not_found_burst: u32,
    /// Password attempts per protected link and client address before 429.
    pub password_attempts_per_minute: u32,
    pub password_attempts_burst: u32,
    /// How long the right password opens its link in that browser.
    #[serde(deserialize_with = "duration::deserialize")]
    pub password_grant_ttl: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: String,
    pub port: u16,
    /// Scheme and authority that short links are built on, e.g. `https://sho.rt`.
    #[serde(deserialize_with = "absolute_url")]
    pub public_base_url: url::Url,
    pub json_body_limit_bytes: usize,
    pub bulk_body_limit_bytes: usize,
    /// Header that carries the client address from a trusted proxy (e.g. `X-Real-IP`).
    /// Unset means the TCP peer address is the client: never trust a header that any
    /// client can forge unless a proxy in front overwrites it.
    #[serde(default, deserialize_with = "header_name")]
    pub client_ip_header: Option<HeaderName>,
    /// Header that carries the host a client asked for from a trusted proxy (e.g.
    /// `X-Forwarded-Host`), which picks the domain a link is looked up on. Unset means
    /// `Host` itself: nginx passes it through unchanged.
    #[serde(default, deserialize_with = "header_name")]
    pub forwarded_host_header: Option<HeaderName>,
    #[serde(default)]
    pub workers: Option<usize>,
    #[serde(deserialize_with = "duration::deserialize")]
    pub shutdown_timeout: Duration,
    /// After SIGTERM, how long readiness fails while new requests are still served,
    /// before the listener closes: for load balancers that learn of a stopping
    /// instance only from its readiness. Kubernetes removes the endpoint itself (the
    /// Helm chart's preStop pause covers its propagation), so the default is 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub drain_delay: Duration,
}

impl HttpSettings {
    /// `public_base_url` as short links begin, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.public_base_url.as_str().trim_end_matches('/')
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`. Secret: it may carry a password.
    #[serde(default)]
    pub url: Option<SecretString>,
    pub replica_urls: Vec<SecretString>,
    pub max_connections: u32,
    #[serde(deserialize_with = "duration::deserialize")]
    pub acquire_timeout: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub statement_timeout: Duration,
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
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
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
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    pub pool_size: usize,
    /// Replicas that must acknowledge a link change's write-through (0: none).
    pub wait_replicas: u32,
    #[serde(deserialize_with = "duration::deserialize")]
    pub wait_timeout: Duration,
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
    #[serde(deserialize_with = "duration::deserialize")]
    pub lease_ttl: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_clock_backwards: Duration,
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
    #[serde(deserialize_with = "duration::deserialize")]
    pub blocklist_reload: Duration,
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

/// A header name, parsed once at start; empty means none.
/// A path, or `None` for the empty string.
fn optional_path<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::path::PathBuf>, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok((!text.trim().is_empty()).then(|| std::path::PathBuf::from(text.trim())))
}

fn header_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<HeaderName>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    if text.is_empty() {
        return Ok(None);
    }
    HeaderName::try_from(text.as_str())
        .map(Some)
        .map_err(|_| de::Error::custom(format!("`{text}` is not an HTTP header name")))
}

/// An absolute URL, parsed once at start.
fn absolute_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<url::Url, D::Error> {
    let text = String::deserialize(deserializer)?;
    url::Url::parse(&text).map_err(|e| de::Error::custom(format!("`{text}` is not a URL: {e}")))
}

/// A configuration problem, always naming the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(config::ConfigError),
    /// A value of the wrong type or shape, as the file or environment gave it.
    #[error("configuration key `{key}`: {message}")]
    Value { key: String, message: String },
    /// A value that parses but is out of range or contradicts another.
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error(
        "configuration key `{old}` is now `{new}`, a duration with its unit: write \
         `{field} = \"{value}\"` in the file, or {env}={value} in the environment"
    )]
    Renamed {
        old: &'static str,
        new: &'static str,
        field: &'static str,
        env: String,
        value: String,
    },
}

/// Keys that carried their unit in the name, with what they are now and the unit's
/// length in milliseconds. A file or environment that still sets one is refused
/// with the new key and the same value written as a duration, rather than ignored.
const RENAMED: [(&str, &str, u64); 21] = [
    ("http.shutdown_timeout_secs", "http.shutdown_timeout", 1000),
    ("http.drain_delay_ms", "http.drain_delay", 1),
    ("database.acquire_timeout_ms", "database.acquire_timeout", 1),
    (
        "database.statement_timeout_ms",
        "database.statement_timeout",
        1,
    ),
    ("redis.timeout_ms", "redis.timeout", 1),
    ("redis.wait_timeout_ms", "redis.wait_timeout", 1),
    ("ids.lease_ttl_secs", "ids.lease_ttl", 1000),
    ("ids.max_clock_backwards_ms", "ids.max_clock_backwards", 1),
    (
        "links.blocklist_reload_secs",
        "links.blocklist_reload",
        1000,
    ),
    (
        "lookup.permanent_max_age_secs",
        "lookup.permanent_max_age",
        1000,
    ),
    ("lookup.l1_ttl_secs", "lookup.l1_ttl", 1000),
    (
        "lookup.l1_negative_ttl_secs",
        "lookup.l1_negative_ttl",
        1000,
    ),
    (
        "lookup.l1_degraded_ttl_secs",
        "lookup.l1_degraded_ttl",
        1000,
    ),
    ("lookup.l2_ttl_secs", "lookup.l2_ttl", 1000),
    (
        "lookup.l2_negative_ttl_secs",
        "lookup.l2_negative_ttl",
        1000,
    ),
    ("lookup.breaker_cool_down_ms", "lookup.breaker_cool_down", 1),
    ("lookup.replica_timeout_ms", "lookup.replica_timeout", 1),
    ("lookup.replica_lag_bound_ms", "lookup.replica_lag_bound", 1),
    ("stats.flush_interval_ms", "stats.flush_interval", 1),
    ("stats.dedupe_window_secs", "stats.dedupe_window", 1000),
    ("stats.poll_ms", "stats.poll_interval", 1),
];

/// The first renamed key that `config` still sets, as an error naming its successor.
fn renamed_key(config: &Config) -> Option<ConfigError> {
    RENAMED.iter().find_map(|&(old, new, unit_ms)| {
        let value = config.get::<config::Value>(old).ok()?;
        let value = match value.into_uint() {
            Ok(n) => duration::format(Duration::from_millis(n.saturating_mul(unit_ms))),
            Err(_) => "…".to_string(),
        };
        let (section, field) = new.split_once('.').unwrap_or(("", new));
        Some(ConfigError::Renamed {
            old,
            new,
            field,
            env: format!(
                "SHORTENER__{}__{}",
                section.to_ascii_uppercase(),
                field.to_ascii_uppercase()
            ),
            value,
        })
    })
}

impl From<config::ConfigError> for ConfigError {
    /// Puts the key first, the way every other configuration error reads.
    fn from(error: config::ConfigError) -> ConfigError {
        let within =
            |origin: Option<String>| origin.map(|o| format!(" (in {o})")).unwrap_or_default();
        match error {
            config::ConfigError::At {
                error,
                origin,
                key: Some(key),
            } => ConfigError::Value {
                key,
                message: format!("{error}{}", within(origin)),
            },
            config::ConfigError::Type {
                origin,
                unexpected,
                expected,
                key: Some(key),
            } => ConfigError::Value {
                key,
                message: format!("{unexpected} is not {expected}{}", within(origin)),
            },
            other => ConfigError::Load(other),
        }
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Keys whose environment values are comma-separated lists.
const LIST_KEYS: [&str; 5] = [
    "database.replica_urls",
    "redis.urls",
    "links.own_hosts",
    "links.blocked_hosts",
    "webhooks.allowed_networks",
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
        let config = builder.add_source(environment).build()?;
        if let Some(error) = renamed_key(&config) {
            return Err(error);
        }
        let settings: Settings = config.try_deserialize()?;
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
        if self.ids.lease_ttl < Duration::from_secs(3) {
            return Err(invalid("ids.lease_ttl", "must be at least 3s"));
        }
        let base = &self.http.public_base_url;
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
        if !(Duration::from_secs(1)..=Duration::from_secs(3600))
            .contains(&self.links.blocklist_reload)
        {
            return Err(invalid("links.blocklist_reload", "must be within 1s..=1h"));
        }
        if self.audit.retention < Duration::from_secs(24 * 3600) {
            return Err(invalid("audit.retention", "must be at least 1d"));
        }
        let hooks = &self.webhooks;
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&hooks.timeout) {
            return Err(invalid("webhooks.timeout", "must be within 1s..=60s"));
        }
        if hooks.retry_for < Duration::from_secs(1) {
            return Err(invalid("webhooks.retry_for", "must be at least 1s"));
        }
        if hooks.disable_after < hooks.retry_for {
            return Err(invalid(
                "webhooks.disable_after",
                "must be at least webhooks.retry_for",
            ));
        }
        if hooks.retention < hooks.retry_for {
            return Err(invalid(
                "webhooks.retention",
                "must be at least webhooks.retry_for",
            ));
        }
        if !(1..=1000).contains(&hooks.max_endpoints) {
            return Err(invalid("webhooks.max_endpoints", "must be within 1..=1000"));
        }
        if !(1..=1024).contains(&hooks.concurrency) {
            return Err(invalid("webhooks.concurrency", "must be within 1..=1024"));
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
        // Redis keeps whole seconds of the shared entries' lifetimes.
        for (key, value) in [
            ("lookup.l1_ttl", self.lookup.l1_ttl),
            ("lookup.l2_ttl", self.lookup.l2_ttl),
            ("lookup.l2_negative_ttl", self.lookup.l2_negative_ttl),
        ] {
            if value < Duration::from_secs(1) {
                return Err(invalid(key, "must be at least 1s"));
            }
        }
        for (key, value) in [
            ("redis.timeout", self.redis.timeout),
            ("redis.wait_timeout", self.redis.wait_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be at least 1ms"));
            }
        }
        for (key, value) in [
            (
                "lookup.not_found_per_ip_per_minute",
                u64::from(self.lookup.not_found_per_ip_per_minute),
            ),
            (
                "lookup.not_found_burst",
                u64::from(self.lookup.not_found_burst),
            ),
            (
                "lookup.password_attempts_per_minute",
                u64::from(self.lookup.password_attempts_per_minute),
            ),
            (
                "lookup.password_attempts_burst",
                u64::from(self.lookup.password_attempts_burst),
            ),
            (
                "lookup.password_grant_ttl",
                self.lookup.password_grant_ttl.as_secs(),
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.stats.flush_interval < Duration::from_millis(10) {
            return Err(invalid("stats.flush_interval", "must be at least 10ms"));
        }
        if self.stats.apply_batch < 1 {
            return Err(invalid("stats.apply_batch", "must be at least 1"));
        }
        if self.stats.max_attempts < 1 {
            return Err(invalid("stats.max_attempts", "must be at least 1"));
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
        if let Some(host) = self.http.public_base_url.host_str() {
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
    pub fn blocklist_reload_period(&self) -> Duration {
        self.links.blocklist_reload
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

        for bad in ["0s", "61m", "15", "fast"] {
            let err = Settings::load_from(
                ServiceKind::Lookup,
                None,
                env(&[("SHORTENER__LINKS__BLOCKLIST_RELOAD", bad)]),
            )
            .expect_err("must fail");
            assert!(err.to_string().contains("links.blocklist_reload"), "{err}");
        }
    }

    fn variable(key: &str) -> String {
        format!(
            "SHORTENER__{}",
            key.to_ascii_uppercase().replacen('.', "__", 1)
        )
    }

    /// Each refused value names its own key, not a neighbour checked beside it.
    #[test]
    fn every_refused_value_names_its_own_key() {
        for (key, bad) in [
            ("lookup.l1_ttl", "0s"),
            ("lookup.l2_ttl", "0s"),
            ("lookup.l2_negative_ttl", "500ms"),
            ("lookup.not_found_per_ip_per_minute", "0"),
            ("lookup.not_found_burst", "0"),
            ("lookup.password_attempts_burst", "0"),
            ("lookup.password_grant_ttl", "500ms"),
            ("stats.apply_batch", "0"),
            ("stats.max_attempts", "0"),
            ("stats.flush_interval", "9ms"),
            ("redis.timeout", "0ms"),
            ("redis.wait_timeout", "0ms"),
            ("ids.lease_ttl", "2s"),
            ("rate_limit.per_key_per_minute", "0"),
            ("rate_limit.per_key_burst", "0"),
            ("rate_limit.per_ip_per_minute", "0"),
            ("rate_limit.per_ip_burst", "0"),
            ("database.max_connections", "0"),
            ("http.client_ip_header", "X Real IP"),
            ("stats.country_header", "country:"),
            ("http.public_base_url", "sho.rt"),
            ("http.public_base_url", "ftp://sho.rt"),
            ("stats.flush_interval", "1 s"),
        ] {
            let err = Settings::load_from(ServiceKind::Lookup, None, env(&[(&variable(key), bad)]))
                .expect_err(key);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("configuration key `{key}`:")),
                "{key}: {message}"
            );
        }
    }

    /// A duration without its unit, or in no unit we know, is refused naming the key.
    #[test]
    fn durations_need_their_unit() {
        for (_, new, _) in RENAMED {
            for bad in ["300", "5 minutes", "-1s"] {
                let err =
                    Settings::load_from(ServiceKind::Lookup, None, env(&[(&variable(new), bad)]))
                        .expect_err(new);
                let message = err.to_string();
                assert!(message.contains(new), "{new}={bad}: {message}");
                assert!(message.contains("\"300ms\""), "{new}={bad}: {message}");
            }
        }
        let s = Settings::load_from(
            ServiceKind::Lookup,
            None,
            env(&[
                ("SHORTENER__LOOKUP__L1_TTL", "90s"),
                ("SHORTENER__STATS__FLUSH_INTERVAL", "250ms"),
                ("SHORTENER__LOOKUP__L2_TTL", "1h30m"),
            ]),
        )
        .expect("valid");
        assert_eq!(s.lookup.l1_ttl, Duration::from_secs(90));
        assert_eq!(s.stats.flush_interval, Duration::from_millis(250));
        assert_eq!(s.lookup.l2_ttl, Duration::from_secs(5400));
    }

    /// A config written for the keys that carried their unit is refused with the key
    /// to write instead and the same value as a duration, from a file or the
    /// environment.
    #[test]
    fn keys_that_carried_their_unit_name_their_successor() {
        for (old, new, unit_ms) in RENAMED {
            let err = Settings::load_from(ServiceKind::Lookup, None, env(&[(&variable(old), "7")]))
                .expect_err(old);
            let message = err.to_string();
            let value = duration::format(Duration::from_millis(7 * unit_ms));
            assert!(
                message.contains(&format!("`{old}` is now `{new}`")),
                "{message}"
            );
            assert!(
                message.contains(&format!("{}={value}", variable(new))),
                "{message}"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.toml");
        std::fs::write(&path, "[lookup]\nl1_ttl_secs = 300\n").expect("write");
        let err =
            Settings::load_from(ServiceKind::Lookup, Some(&path), env(&[])).expect_err("old key");
        assert!(
            err.to_string()
                .contains("write `l1_ttl = \"5m\"` in the file"),
            "{err}"
        );
    }

    #[test]
    fn blocklist_reload_defaults() {
        let lookup = Settings::load_from(ServiceKind::Lookup, None, env(&[])).expect("valid");
        assert_eq!(lookup.links.blocklist_reload, Duration::from_secs(15));
        let aio = Settings::load_from(ServiceKind::AllInOne, None, env(&[])).expect("valid");
        assert_eq!(aio.links.blocklist_reload, Duration::from_secs(5));
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
