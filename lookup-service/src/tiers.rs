//! The read tiers of a redirect: L1 (moka, in process) → L2 (Redis Cluster) → L3 (a
//! healthy read replica) → the primary.
//!
//! - L1 is bounded by bytes, entries live `l1_ttl` ± jitter (so a burst of loads
//!   does not expire in one burst), "no such code" entries only `l1_negative_ttl`,
//!   and every entry only `l1_degraded_ttl` while invalidation events may be
//!   missed. Concurrent misses for one code share one load.
//! - L2 sits behind a circuit breaker with a deadline on every call: Redis slow or down
//!   means "skip L2", never a failed or stalled redirect. Loads fill L2 with `SET NX`,
//!   so they never overwrite the newer value create-service writes through on an edit.
//! - L3 reads a healthy replica under a deadline. A replica that lacks the code is
//!   trusted only for links older than the replication-lag bound; younger links (and
//!   aliases, whose age the code does not tell) are read from the primary, so a link
//!   is followable the moment its create returned. A code invalidated recently is read
//!   from the primary too, since a lagging replica may still hold its old state.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderValue;
use common::breaker::{Breaker, BreakerState};
use common::cache::{LinkEntry, decode, encode, l2_key};
use common::config::LookupSettings;
use common::db::links;
use common::db::{Database, StoreError};
use common::domain::route::{Choice, Chooser, Routing};
use common::events::{Event, Subscription};
use common::links::LongUrl;
use common::redis::{RedisCluster, redis};
use futures_util::future::BoxFuture;
use moka::Expiry;

use crate::metrics::{LookupMetrics, Outcome, Tier};
use common::db::replicas::Replicas;

/// A link ready to answer with: the entry and its `Location`, built once per load
/// from the stored URL re-validated as http(s).
#[derive(Debug)]
pub struct Resolved {
    /// The link without its URLs (`url` and every rule's and variant's are empty):
    /// each URL is kept once, as a ready `Location`, since a million cached links
    /// would otherwise hold it twice.
    pub entry: LinkEntry,
    /// The link's own URL; `None` when the stored URL fails re-validation: never
    /// redirect to it.
    pub location: Option<HeaderValue>,
    /// Where the target host sits in `location`, for the blocklist check that every
    /// redirect makes (the blocklist changes while the entry is cached).
    host: Range<usize>,
    /// The link's rules and variants, compiled, with their targets; `None` for a
    /// link with neither (the entry then keeps none either).
    routes: Option<Box<Routes>>,
}

/// How a link with rules or variants picks its target.
#[derive(Debug)]
pub struct Routes {
    pub chooser: Chooser,
    /// The targets of the rules, then of the variants, in their order.
    targets: Box<[Target]>,
}

/// The host at `range` of `location`.
fn host_in<'a>(location: Option<&'a HeaderValue>, range: &Range<usize>) -> Option<&'a str> {
    let bytes = location?.as_bytes().get(range.clone())?;
    std::str::from_utf8(bytes).ok()
}

/// One URL a link may redirect to, ready to send.
#[derive(Debug)]
pub struct Target {
    pub location: Option<HeaderValue>,
    host: Range<usize>,
}

impl Target {
    fn new(url: &str, id: i64) -> Target {
        let (location, host) = match LongUrl::from_stored(url) {
            Ok(url) => (HeaderValue::from_str(url.as_str()).ok(), url.host_range()),
            Err(_) => (None, 0..0),
        };
        if location.is_none() {
            tracing::error!(id, "stored URL failed re-validation; not redirecting");
        }
        Target { location, host }
    }

    /// The target host (as [`LongUrl::host`] gives it), read from `location`.
    pub fn host(&self) -> Option<&str> {
        host_in(self.location.as_ref(), &self.host)
    }

    fn weight(&self) -> usize {
        std::mem::size_of::<Target>() + self.location.as_ref().map_or(0, HeaderValue::len)
    }
}

impl Resolved {
    fn new(mut entry: LinkEntry) -> Resolved {
        let url = std::mem::take(&mut entry.url);
        let id = entry.id;
        let Target { location, host } = Target::new(&url, id);
        // The rules and variants move out of the entry into their compiled form: the
        // entry keeps what else the routing says (forwarding, a password hash).
        let routes = entry
            .routing
            .as_deref_mut()
            .filter(|r| r.chooses())
            .map(|routing| {
                let chooser = routing.chooser();
                let rules = std::mem::take(&mut routing.rules);
                let variants = std::mem::take(&mut routing.variants);
                let targets = rules
                    .iter()
                    .map(|r| r.url.as_str())
                    .chain(variants.iter().map(|v| v.url.as_str()))
                    .map(|url| Target::new(url, id))
                    .collect();
                Box::new(Routes { chooser, targets })
            });
        // Left with nothing else to say, the routing goes too: one less place in
        // memory for a follow to read.
        if entry.routing.as_deref().is_some_and(Routing::is_plain) {
            entry.routing = None;
        }
        Resolved {
            entry,
            location,
            host,
            routes,
        }
    }

    /// The target host (as [`LongUrl::host`] gives it), read from `location`.
    pub fn host(&self) -> Option<&str> {
        host_in(self.location.as_ref(), &self.host)
    }

    /// The link's compiled rules and variants, if it has any.
    pub fn routes(&self) -> Option<&Routes> {
        self.routes.as_deref()
    }

    /// The location and host of `choice`: a rule's or a variant's target, or the
    /// link's own URL.
    pub fn target(&self, choice: Choice) -> (Option<&HeaderValue>, Option<&str>) {
        let routed = |i: usize| {
            let target = self.routes.as_deref()?.targets.get(i)?;
            Some((target.location.as_ref(), target.host()))
        };
        let rules = self.routes.as_deref().map_or(0, |r| r.chooser.rules());
        let chosen = match choice {
            Choice::Url => None,
            Choice::Rule(i) => routed(usize::from(i)),
            Choice::Variant(i) => routed(rules + usize::from(i)),
        };
        chosen.unwrap_or((self.location.as_ref(), self.host()))
    }

    /// Approximate heap footprint, for the byte-bounded local cache.
    fn weight(&self) -> usize {
        self.entry.weight()
            + self.location.as_ref().map_or(0, HeaderValue::len)
            + self.routes.as_deref().map_or(0, |r| {
                std::mem::size_of::<Routes>()
                    + r.chooser.weight()
                    + r.targets.iter().map(Target::weight).sum::<usize>()
            })
    }
}

/// A cached answer: a link, or the fact that no link has this code, stamped with the
/// invalidation epoch it was loaded in.
#[derive(Debug)]
pub struct CachedLink {
    epoch: u64,
    pub link: Option<Resolved>,
}

pub type Cached = Arc<CachedLink>;

/// How old a code is, when the code itself tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    CreatedAt(i64),
    Unknown,
}

/// Per-entry lifetimes (see the module doc).
struct Lifetimes {
    positive: Duration,
    jitter_percent: u64,
    negative: Duration,
    degraded: Duration,
    subscribed: Arc<AtomicBool>,
}

impl Expiry<String, Cached> for Lifetimes {
    fn expire_after_create(&self, _key: &String, value: &Cached, _at: Instant) -> Option<Duration> {
        let ttl = match value.link {
            None => self.negative,
            Some(_) => {
                let spread = self.positive.as_millis() as f64 * self.jitter_percent as f64 / 100.0;
                let offset = (rand::random::<f64>() * 2.0 - 1.0) * spread;
                Duration::from_millis((self.positive.as_millis() as f64 + offset).max(1.0) as u64)
            }
        };
        if self.subscribed.load(Ordering::Acquire) {
            Some(ttl)
        } else {
            Some(ttl.min(self.degraded))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no database could answer: {0}")]
    Database(#[from] StoreError),
}

pub struct Tiers {
    l1: moka::future::Cache<String, Cached>,
    redis: Option<RedisCluster>,
    breaker: Breaker,
    db: Database,
    replicas: Replicas,
    settings: LookupSettings,
    metrics: Arc<LookupMetrics>,
    /// Codes invalidated within the replication-lag bound, with their change time.
    recent: moka::sync::Cache<String, i64>,
    subscribed: Arc<AtomicBool>,
    /// Bumped whenever events may have been missed: entries of an older epoch are
    /// reloaded before use (and served only if no tier below can answer).
    epoch: AtomicU64,
}

impl std::fmt::Debug for Tiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiers")
            .field("l1_entries", &self.l1.entry_count())
            .field("redis", &self.redis.is_some())
            .field("breaker", &self.breaker.state())
            .finish()
    }
}

impl Tiers {
    pub fn new(
        settings: LookupSettings,
        db: Database,
        replicas: Replicas,
        redis: Option<RedisCluster>,
        metrics: Arc<LookupMetrics>,
        subscription: &Subscription,
    ) -> Tiers {
        let subscribed = subscription.flag();
        let l1 = moka::future::Cache::builder()
            .max_capacity(settings.l1_max_bytes)
            .weigher(|code: &String, value: &Cached| {
                let entry = value.link.as_ref().map_or(0, Resolved::weight);
                u32::try_from(code.len() + entry + 64).unwrap_or(u32::MAX)
            })
            .expire_after(Lifetimes {
                positive: settings.l1_ttl,
                jitter_percent: settings.l1_ttl_jitter_percent,
                negative: settings.l1_negative_ttl,
                degraded: settings.l1_degraded_ttl,
                subscribed: subscribed.clone(),
            })
            .build();
        let transitions = metrics.clone();
        let breaker = Breaker::new(
            settings.breaker_threshold,
            settings.breaker_cool_down,
            // A probe costs one lookup at most the Redis deadline; a short cap brings L2
            // back within seconds of Redis recovering (after a failover, ~3 s here).
            Duration::from_secs(5).max(settings.breaker_cool_down),
            move |state: BreakerState| {
                transitions.breaker_state.set(state.gauge());
                transitions
                    .breaker_transitions
                    .with_label_values(&[state.name()])
                    .inc();
                tracing::warn!(state = state.name(), "Redis circuit breaker");
            },
        );
        let recent = moka::sync::Cache::builder()
            .max_capacity(1_000_000)
            .time_to_live(settings.replica_lag_bound.max(Duration::from_millis(1)))
            .build();
        Tiers {
            l1,
            redis,
            breaker,
            db,
            replicas,
            settings,
            metrics,
            recent,
            subscribed,
            epoch: AtomicU64::new(0),
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// The link under `code` through every tier; concurrent callers for one code
    /// share one load.
    pub async fn get(&self, code: &str, age: Age) -> Result<Cached, Arc<LoadError>> {
        if !self.settings.l1_enabled {
            return self.load(code, age).await.map_err(Arc::new);
        }
        let stale = match self.l1.get(code).await {
            Some(hit) if hit.epoch == self.epoch.load(Ordering::Acquire) => {
                self.metrics.l1_hits.inc();
                return Ok(hit);
            }
            Some(old) => {
                // Loaded before events may have been missed: reload, but keep the old
                // answer for the case where no tier below can give a new one.
                self.metrics.count(Tier::L1, Outcome::Stale);
                self.l1.invalidate(code).await;
                Some(old)
            }
            None => {
                self.metrics.count(Tier::L1, Outcome::Miss);
                None
            }
        };
        let loaded = self
            .l1
            .try_get_with(code.to_string(), self.load(code, age))
            .await;
        match (loaded, stale) {
            (Err(e), Some(stale)) => {
                self.metrics.count(Tier::L1, Outcome::StaleServed);
                tracing::warn!(error = %e, "serving a local entry from before an invalidation gap");
                Ok(stale)
            }
            (result, _) => result,
        }
    }

    async fn load(&self, code: &str, age: Age) -> Result<Cached, LoadError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let link = match self.l2_get(code).await {
            Some(found) => found,
            None => {
                let entry = self.db_get(code, age).await?;
                self.l2_fill(code, entry.as_ref()).await;
                entry
            }
        };
        Ok(Arc::new(CachedLink {
            epoch,
            link: link.map(Resolved::new),
        }))
    }

    /// `Some(value)` on an L2 hit (a cached "no such code" included), `None` on a miss,
    /// an error or an open breaker.
    async fn l2_get(&self, code: &str) -> Option<Option<LinkEntry>> {
        let redis = self.redis.as_ref()?;
        if !self.breaker.allow() {
            self.metrics.count(Tier::L2, Outcome::Skipped);
            return None;
        }
        let key = l2_key(redis.prefix(), code);
        let started = Instant::now();
        let result = redis
            .call(|mut conn| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            })
            .await;
        self.metrics
            .loaded(Tier::L2, started.elapsed().as_secs_f64());
        match result {
            Ok(value) => {
                self.breaker.success();
                let decoded = value.as_deref().and_then(decode);
                self.metrics
                    .count(Tier::L2, Outcome::found(decoded.is_some()));
                // A value written before a recent edit may be stale: ignore it.
                match decoded {
                    Some(Some(entry)) if self.stale(code, Some(&entry)) => None,
                    Some(None) if self.recent.contains_key(code) => None,
                    other => other,
                }
            }
            Err(e) => {
                self.breaker.failure();
                self.metrics.count(Tier::L2, Outcome::Error);
                tracing::debug!(error = %e, "L2 read failed");
                None
            }
        }
    }

    /// Fills L2 after a database load, unless a newer value is already there.
    async fn l2_fill(&self, code: &str, entry: Option<&LinkEntry>) {
        let Some(redis) = &self.redis else { return };
        if !self.breaker.allow() {
            return;
        }
        let key = l2_key(redis.prefix(), code);
        let value = match encode(entry) {
            Ok(value) => value,
            Err(e) => {
                // Never fill what cannot be read back (written as "no such code" a
                // real link would answer 404): the next load reads the database again.
                tracing::error!(error = %e, "link entry does not encode; L2 not filled");
                return;
            }
        };
        let ttl = if entry.is_some() {
            self.settings.l2_ttl
        } else {
            self.settings.l2_negative_ttl
        };
        let result = redis
            .call(|mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl.as_secs().max(1))
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        match result {
            Ok(()) => self.breaker.success(),
            Err(e) => {
                self.breaker.failure();
                tracing::debug!(error = %e, "L2 fill failed");
            }
        }
    }

    /// True when `entry` predates an invalidation seen for `code`.
    fn stale(&self, code: &str, entry: Option<&LinkEntry>) -> bool {
        match (self.recent.get(code), entry) {
            (Some(changed_at), Some(entry)) => entry.updated_at < changed_at,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    async fn db_get(&self, code: &str, age: Age) -> Result<Option<LinkEntry>, LoadError> {
        let recently_changed = self.recent.contains_key(code);
        if !recently_changed && let Some(replica) = self.replicas.pick() {
            let started = Instant::now();
            self.metrics.queried(Tier::Replica);
            let deadline = self.settings.replica_timeout;
            let result = tokio::time::timeout(deadline, links::get(replica.pool(), code)).await;
            self.metrics
                .loaded(Tier::Replica, started.elapsed().as_secs_f64());
            match result {
                Ok(Ok(Some(record))) => {
                    self.metrics.count(Tier::Replica, Outcome::Hit);
                    return Ok(Some(LinkEntry::from_record(&record)));
                }
                Ok(Ok(None)) => {
                    self.metrics.count(Tier::Replica, Outcome::Miss);
                    if !self.may_be_lagging(age) {
                        return Ok(None);
                    }
                }
                Ok(Err(e)) => {
                    replica.failed();
                    self.metrics.count(Tier::Replica, Outcome::Error);
                    tracing::warn!(error = %e, "replica read failed; reading the primary");
                }
                Err(_) => {
                    replica.failed();
                    self.metrics.count(Tier::Replica, Outcome::Error);
                    tracing::warn!(?deadline, "replica read timed out; reading the primary");
                }
            }
        }
        let started = Instant::now();
        self.metrics.queried(Tier::Primary);
        let result = links::get(self.db.primary(), code).await;
        self.metrics
            .loaded(Tier::Primary, started.elapsed().as_secs_f64());
        match result {
            Ok(record) => {
                self.metrics
                    .count(Tier::Primary, Outcome::found(record.is_some()));
                Ok(record.as_ref().map(LinkEntry::from_record))
            }
            Err(e) => {
                self.metrics.count(Tier::Primary, Outcome::Error);
                Err(e.into())
            }
        }
    }

    /// Whether a replica's "no such code" may just be replication lag.
    fn may_be_lagging(&self, age: Age) -> bool {
        let bound = i64::try_from(self.settings.replica_lag_bound.as_millis())
            .unwrap_or(i64::MAX)
            .max(
                self.replicas
                    .max_lag_ms()
                    .saturating_mul(2)
                    .saturating_add(1000),
            );
        match age {
            Age::CreatedAt(at) => common::time::now_ms().saturating_sub(at) < bound,
            Age::Unknown => true,
        }
    }

    /// Evicts `code` after a change at `updated_at`, and remembers the change so loads
    /// in the next replication-lag bound do not bring an older state back.
    pub async fn invalidate(&self, code: &str, updated_at: i64) {
        self.metrics.invalidations.inc();
        self.recent.insert(code.to_string(), updated_at);
        self.l1.invalidate(code).await;
    }

    /// Events may have been missed: no local entry is trusted any more. Entries are
    /// reloaded on their next use rather than dropped, so that with every tier below
    /// down too (Redis and the database) they still answer ("stale if error").
    pub fn reset(&self) {
        self.metrics.l1_resets.inc();
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Refreshes the size gauges (called periodically).
    pub async fn report(&self) {
        self.l1.run_pending_tasks().await;
        self.metrics
            .l1_entries
            .set(i64::try_from(self.l1.entry_count()).unwrap_or(i64::MAX));
        self.metrics
            .l1_bytes
            .set(i64::try_from(self.l1.weighted_size()).unwrap_or(i64::MAX));
        self.metrics.replica_lag_ms.set(self.replicas.max_lag_ms());
        self.metrics
            .subscription_up
            .set(i64::from(self.subscribed()));
    }
}

/// Adapts [`Tiers`] to the link-change subscription.
pub struct Evictor(pub Arc<Tiers>);

impl common::events::Listener for Evictor {
    fn event(&self, event: Event) -> BoxFuture<'static, ()> {
        let tiers = self.0.clone();
        Box::pin(async move {
            if let Event::LinkChanged { key, updated_at } = event {
                tiers.invalidate(&key, updated_at).await;
            }
        })
    }

    fn missed(&self, _connected: bool) {
        self.0.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str) -> LinkEntry {
        LinkEntry {
            url: url.to_string(),
            redirect_status: common::link::RedirectStatus::Found,
            expires_at: None,
            max_visits: None,
            id: 1,
            updated_at: 0,
            created_at: None,
            gone: None,
            routing: None,
        }
    }

    #[test]
    fn the_target_host_is_kept_beside_the_location() {
        for (url, host) in [
            ("https://www.evil.example/login?x=1", "www.evil.example"),
            ("https://evil.example.:8443/", "evil.example"),
            ("http://[::1]:8080/", "[::1]"),
            ("https://bücher.example/", "xn--bcher-kva.example"),
        ] {
            let resolved = Resolved::new(entry(url));
            assert_eq!(resolved.host(), Some(host), "{url}");
            assert!(resolved.location.is_some());
        }
        let refused = Resolved::new(entry("javascript:alert(1)"));
        assert_eq!(refused.location, None);
        assert_eq!(refused.host(), None);
    }
}
