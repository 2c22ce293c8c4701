//! The link-change relay: publishes the transactional outbox (`link_changes`) to the
//! caches, at least once and in order per code.
//!
//! Every insert or update of a link writes a change row in its own transaction (by
//! trigger), so an acknowledged edit is never only in memory: if this process stops or
//! dies before publishing it, the next relay does. For each batch of pending changes,
//! oldest first, the relay
//! 1. writes each code's current state through to Redis (L2),
//! 2. publishes an invalidation event for each change lookups may have cached (every
//!    edit, disable and delete, and a new alias, which may sit in a negative cache),
//! 3. waits until `redis.wait_replicas` replicas hold the writes (`WAIT`, in one
//!    pipeline with each write, on its master): Redis
//!    replicates asynchronously, and a master that fails over before its replica got
//!    a write loses it. When no acknowledgement comes the writes are made again (a
//!    failover may have happened meanwhile) and waited for again, as long as every
//!    master has a replica the cluster counts as live. A master without one (right
//!    after a failover) can never give one: then the batch counts as published on
//!    the masters alone, and `link_changes_unreplicated_total` says so,
//! 4. marks the rows published.
//!
//! Before step 1, a change not yet dispatched has its webhook messages queued: for
//! every endpoint of the link's tenant subscribed to its kind, in one transaction
//! with marking it dispatched, so each change is told once, and webhooks do not
//! wait for Redis.
//!
//! A failure anywhere leaves the rows pending, and the whole batch is retried with
//! backoff: writes are idempotent, and events only make lookups reload.
//!
//! One relay at a time across a deployment: on PostgreSQL the relay holds a session
//! advisory lock on a connection of its own. A process that dies drops the connection,
//! and with it the lock, so another create-service instance (or the restarted one)
//! takes over within one poll. The embedded engine has one process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::background::CancellationToken;
use common::backoff::Backoff;
use common::cache::{LinkEntry, encode, l2_key};
use common::db::changes::{self, ChangeKind, PendingChange};
use common::db::domains::{self, DomainRecord};
use common::db::webhooks::{self, EndpointRecord};
use common::db::{Database, Engine, StoreError};
use common::deps::Deps;
use common::domain::webhooks::EventType;
use common::events::{Bus, Event};
use common::link::TenantId;
use common::links::DomainName;
use common::metrics::register;
use common::redis::{RedisCluster, RedisError, redis};
use prometheus::{IntCounter, IntGauge};
use sqlx::AnyConnection;
use sqlx::pool::PoolConnection;
use tokio::sync::Notify;

/// Changes published per round.
const BATCH: i64 = 256;
/// How often an idle relay looks for changes written by other instances (its own
/// wake it at once), and how often a standby instance tries to take the relay over.
const POLL: Duration = Duration::from_millis(100);
/// Longest a batch waits for replicas that the cluster still counts as live.
const WAIT_CAP: Duration = Duration::from_secs(30);
/// The least time one of the relay's Redis calls is given, beyond any `WAIT`. The
/// relay is background work: right after a failover a write may go through a slot
/// refresh and a reconnect before it lands, which the deadline of a lookup's call
/// (`redis.timeout`, 50 ms by default) does not cover. Cut short, the relay started
/// over and over with a fresh connection, and a change waited tens of seconds.
const CALL_FLOOR: Duration = Duration::from_secs(1);
/// At shutdown, how long the relay keeps publishing what is pending.
const DRAIN: Duration = Duration::from_secs(5);
/// Published changes are kept this long for other readers, then purged.
const RETENTION_MS: i64 = 24 * 3600 * 1000;
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// How often the holder reads the backlog for its gauges.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// The PostgreSQL advisory lock that makes one relay at a time ("shorten" + 1).
const LOCK_KEY: i64 = 0x7368_6f72_7465_6e01;

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Which step of publishing failed, so an operator can tell a write from an
    /// announcement.
    #[error("Redis ({step}): {source}")]
    Redis {
        step: &'static str,
        source: RedisError,
    },
}

/// Names the step a Redis error came from.
fn at(step: &'static str) -> impl FnOnce(RedisError) -> RelayError {
    move |source| RelayError::Redis { step, source }
}

struct RelayMetrics {
    published: IntCounter,
    unreplicated: IntCounter,
    errors: IntCounter,
    pending: IntGauge,
    lag_ms: IntGauge,
    holder: IntGauge,
}

impl RelayMetrics {
    fn new(metrics: &common::metrics::Metrics) -> RelayMetrics {
        let r = metrics.registry();
        let counter = |name: &str, help: &str| register(r, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| register(r, IntGauge::new(name, help));
        RelayMetrics {
            published: counter(
                "link_changes_published_total",
                "Link changes published to the caches by this instance's relay.",
            ),
            unreplicated: counter(
                "link_changes_unreplicated_total",
                "Link changes counted published although no Redis replica acknowledged them.",
            ),
            errors: counter(
                "link_change_relay_errors_total",
                "Relay rounds that failed and were retried.",
            ),
            pending: gauge(
                "link_changes_pending",
                "Link changes committed but not yet published (read by the relay holder).",
            ),
            lag_ms: gauge(
                "link_changes_lag_ms",
                "Age of the oldest unpublished link change, in ms (0 when none).",
            ),
            holder: gauge(
                "link_change_relay_holder",
                "1 while this instance is the one relaying link changes.",
            ),
        }
    }
}

/// The relay of one create-service (or all-in-one) process.
pub struct Relay {
    db: Database,
    /// The default domain's host and short-URL base, for the links webhooks show.
    default_domain: String,
    base_url: String,
    redis: Option<RedisCluster>,
    bus: Bus,
    l2_ttl_secs: u64,
    wait_replicas: u32,
    wait_timeout: Duration,
    wake: Notify,
    metrics: RelayMetrics,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("redis", &self.redis.is_some())
            .finish()
    }
}

/// Where a round's statements go: the locked connection, or (embedded engine) the
/// pool, which serialises writes to the file.
enum Held {
    Locked(AnyConnection),
    Pool,
}

impl Relay {
    pub fn new(deps: &Deps) -> Arc<Relay> {
        let redis = &deps.settings.redis;
        Arc::new(Relay {
            db: deps.db.clone(),
            default_domain: common::domains::DefaultDomain::from_settings(&deps.settings)
                .name()
                .to_string(),
            base_url: deps.settings.http.base_url().to_string(),
            redis: deps.redis.clone(),
            bus: deps.bus.clone(),
            l2_ttl_secs: deps.settings.lookup.l2_ttl.as_secs().max(1),
            wait_replicas: redis.wait_replicas,
            wait_timeout: redis.wait_timeout,
            wake: Notify::new(),
            metrics: RelayMetrics::new(&deps.metrics),
        })
    }

    /// A change was just committed here: publish without waiting for the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Relays until `stop` fires, then publishes what is pending (up to [`DRAIN`])
    /// and lets go of the relay.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut standby = None;
        while !stop.is_cancelled() {
            let held = match self.hold(&mut standby).await {
                Ok(Some(held)) => held,
                Ok(None) => {
                    // Another instance relays; look again later.
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.cancelled() => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the link-change relay; retrying");
                    tokio::select! {
                        _ = backoff.wait() => {}
                        _ = stop.cancelled() => {}
                    }
                    continue;
                }
            };
            self.metrics.holder.set(1);
            tracing::info!("relaying link changes");
            let outcome = self.relay_while_held(held, &stop, &mut backoff).await;
            self.metrics.holder.set(0);
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "link-change relay lost its connection; taking it again");
                tokio::select! {
                    _ = backoff.wait() => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
        if let Some(conn) = standby {
            let _ = sqlx::Connection::close(conn).await;
        }
    }

    /// Takes the relay: `None` when another instance holds it. A standby keeps its
    /// connection in `standby` and asks again on it, rather than opening a
    /// connection (a server process) every poll.
    async fn hold(&self, standby: &mut Option<AnyConnection>) -> Result<Option<Held>, StoreError> {
        if self.db.engine() != Engine::Postgres {
            return Ok(Some(Held::Pool));
        }
        // A connection of its own, outside the pool: the lock lives as long as this
        // session, and must never go back to the pool with it.
        let mut conn = match standby.take() {
            Some(conn) => conn,
            None => PoolConnection::detach(self.db.primary().acquire().await?),
        };
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if locked {
            Ok(Some(Held::Locked(conn)))
        } else {
            *standby = Some(conn);
            Ok(None)
        }
    }

    async fn relay_while_held(
        &self,
        mut held: Held,
        stop: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), StoreError> {
        let mut draining_since: Option<Instant> = None;
        let mut purged_at: Option<Instant> = None;
        let mut reported_at: Option<Instant> = None;
        let result = loop {
            if stop.is_cancelled() && draining_since.is_none() {
                draining_since = Some(Instant::now());
            }
            let round = match &mut held {
                Held::Locked(conn) => self.round(conn).await,
                Held::Pool => match self.db.primary().acquire().await {
                    Ok(mut conn) => self.round(&mut conn).await,
                    Err(e) => Err(RelayError::Store(e.into())),
                },
            };
            let published = match round {
                Ok(n) => {
                    backoff.reset();
                    n
                }
                // The locked session itself failed: the lock may be gone with it.
                Err(RelayError::Store(e))
                    if e.is_unavailable() && matches!(held, Held::Locked(_)) =>
                {
                    self.metrics.errors.inc();
                    break Err(e);
                }
                Err(e) => {
                    self.metrics.errors.inc();
                    tracing::warn!(error = %e, "link changes not published yet; retrying");
                    if draining_since.is_some_and(|at| at.elapsed() >= DRAIN) {
                        break Ok(());
                    }
                    tokio::select! {
                        _ = backoff.wait() => {}
                        _ = stop.cancelled(), if draining_since.is_none() => {}
                    }
                    continue;
                }
            };
            if let Some(since) = draining_since {
                if published == 0 {
                    break Ok(());
                }
                if since.elapsed() >= DRAIN {
                    tracing::error!(
                        "shutting down with link changes unpublished; the next relay publishes them"
                    );
                    break Ok(());
                }
                continue;
            }
            if published < BATCH as usize {
                if purged_at.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                    purged_at = Some(Instant::now());
                    self.purge().await;
                }
                if reported_at.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
                    reported_at = Some(Instant::now());
                    self.report().await;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.cancelled() => {}
                }
            }
        };
        if let Held::Locked(conn) = held {
            // Closing the session releases the lock at once.
            let _ = sqlx::Connection::close(conn).await;
        }
        result
    }

    /// Publishes the oldest pending batch; returns how many changes it held.
    async fn round(&self, conn: &mut AnyConnection) -> Result<usize, RelayError> {
        let pending = changes::pending(conn, BATCH).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        self.dispatch(conn, &pending).await?;
        self.publish(&pending).await?;
        let seqs: Vec<i64> = pending.iter().map(|c| c.seq).collect();
        changes::mark_published(conn, &seqs, common::time::now_ms()).await?;
        self.metrics.published.inc_by(pending.len() as u64);
        Ok(pending.len())
    }

    /// Queues the webhook messages of the changes in `pending` not dispatched yet,
    /// and marks them dispatched, in one transaction.
    async fn dispatch(
        &self,
        conn: &mut AnyConnection,
        pending: &[PendingChange],
    ) -> Result<(), RelayError> {
        let todo: Vec<&PendingChange> = pending.iter().filter(|c| !c.dispatched).collect();
        if todo.is_empty() {
            return Ok(());
        }
        let now = common::time::now_ms();
        match self.db.engine() {
            // On the relay's own session: its lock orders the fan-out too.
            Engine::Postgres => {
                let mut tx = sqlx::Connection::begin(conn)
                    .await
                    .map_err(StoreError::from)?;
                self.queue_messages(&mut tx, &todo, now).await?;
                tx.commit().await.map_err(StoreError::from)?;
            }
            Engine::Sqlite => {
                let mut tx = self.db.begin_write().await?;
                self.queue_messages(&mut tx, &todo, now).await?;
                tx.commit().await.map_err(StoreError::from)?;
            }
        }
        Ok(())
    }

    async fn queue_messages(
        &self,
        conn: &mut AnyConnection,
        todo: &[&PendingChange],
        now: i64,
    ) -> Result<(), StoreError> {
        // Each tenant's endpoints read once a round, whatever kinds of change it has.
        let mut tenants: HashMap<TenantId, Vec<EndpointRecord>> = HashMap::new();
        let mut sites: HashMap<DomainName, Option<DomainRecord>> = HashMap::new();
        let mut messages = Vec::new();
        for change in todo {
            let event = match change.kind {
                ChangeKind::Created => EventType::LinkCreated,
                ChangeKind::Updated => EventType::LinkUpdated,
                ChangeKind::Deleted => EventType::LinkDeleted,
            };
            let tenant = &change.link.tenant_id;
            if !tenants.contains_key(tenant) {
                let found = webhooks::enabled_endpoints(conn, tenant).await?;
                tenants.insert(tenant.clone(), found);
            }
            let endpoints: Vec<&EndpointRecord> = tenants
                .get(tenant)
                .into_iter()
                .flatten()
                .filter(|e| e.events.contains(&event))
                .collect();
            if endpoints.is_empty() {
                continue;
            }
            let link = &change.link;
            if let Some(name) = &link.domain
                && !sites.contains_key(name)
            {
                let site = domains::get(self.db.primary(), name).await?;
                sites.insert(name.clone(), site);
            }
            let site = link
                .domain
                .as_ref()
                .and_then(|name| sites.get(name))
                .and_then(Option::as_ref);
            let view =
                crate::model::LinkView::on(link, site, &self.default_domain, &self.base_url, now);
            let data = serde_json::to_value(&view)
                .map_err(|e| StoreError::Corrupt(format!("link view: {e}")))?;
            for endpoint in endpoints {
                messages.push(common::webhooks::message(
                    endpoint,
                    event,
                    &link.key(),
                    change.created_at,
                    data.clone(),
                ));
            }
        }
        webhooks::insert_messages(conn, &messages).await?;
        let seqs: Vec<i64> = todo.iter().map(|c| c.seq).collect();
        changes::mark_dispatched(conn, &seqs, now).await?;
        Ok(())
    }

    async fn publish(&self, pending: &[PendingChange]) -> Result<(), RelayError> {
        // The state to write per link key: its newest (later rows override earlier
        // ones).
        let mut latest: HashMap<String, &PendingChange> = HashMap::with_capacity(pending.len());
        for change in pending {
            latest.insert(change.link.key(), change);
        }
        let events: Vec<Event> = pending
            .iter()
            .filter(|c| needs_eviction(c))
            .map(|c| Event::LinkChanged {
                key: c.link.key(),
                updated_at: c.link.updated_at,
            })
            .collect();
        let Some(redis) = &self.redis else {
            return self.announce(&events).await;
        };
        let started = Instant::now();
        let mut round = 0u32;
        loop {
            round += 1;
            // Every round writes again: a failover since the last one may have lost
            // what the old master held.
            let acked = self
                .write_through(redis, &latest)
                .await
                .map_err(at("write-through"))?;
            if round == 1 {
                self.announce(&events).await?;
            }
            if acked >= i64::from(self.wait_replicas) {
                return Ok(());
            }
            // While every master has live replicas, one will acknowledge (or the
            // cluster will take it for failed): wait on. A master without one (just
            // after a failover) never can: its own acknowledgement is all there is.
            let live = redis
                .fewest_live_replicas(redis.timeout().max(CALL_FLOOR))
                .await
                .map_err(at("replica count"))?;
            if live < self.wait_replicas as usize || started.elapsed() >= WAIT_CAP {
                self.metrics.unreplicated.inc_by(pending.len() as u64);
                tracing::warn!(
                    changes = pending.len(),
                    live_replicas = live,
                    "link changes published on the masters alone: no replica acknowledged them"
                );
                return Ok(());
            }
            tracing::debug!(
                acked,
                round,
                "link changes not yet on a replica; writing again"
            );
        }
    }

    /// Writes each code's state to L2, all keys in flight together. When replicas are
    /// wanted, each write is followed by `WAIT` in one pipeline on its key's master
    /// (`WAIT` counts the writes of the connection it is sent on). Returns the fewest
    /// replicas any write reached.
    async fn write_through(
        &self,
        redis: &RedisCluster,
        latest: &HashMap<String, &PendingChange>,
    ) -> Result<i64, RedisError> {
        let wanted = self.wait_replicas;
        let wait_ms = u64::try_from(self.wait_timeout.as_millis()).unwrap_or(u64::MAX);
        let deadline = self.wait_timeout + redis.timeout().max(CALL_FLOOR);
        let writes = latest.iter().map(|(code, change)| {
            let key = l2_key(redis.prefix(), code);
            let mut pipe = redis::pipe();
            match encode(Some(&LinkEntry::from_record(&change.link))) {
                Ok(value) => {
                    pipe.cmd("SET")
                        .arg(&key)
                        .arg(value)
                        .arg("EX")
                        .arg(self.l2_ttl_secs)
                        .ignore();
                }
                Err(e) => {
                    // Never cache what cannot be read back: remove the key, so
                    // lookups load the link from the database.
                    tracing::error!(error = %e, code, "link entry does not encode; L2 entry removed");
                    pipe.cmd("DEL").arg(&key).ignore();
                }
            }
            if wanted > 0 {
                pipe.cmd("WAIT").arg(wanted).arg(wait_ms);
            }
            async move {
                if wanted == 0 {
                    redis
                        .call_within(deadline, |mut conn| async move {
                            pipe.query_async::<()>(&mut conn).await
                        })
                        .await?;
                    return Ok::<i64, RedisError>(i64::MAX);
                }
                let (acked,): (i64,) = redis
                    .call_within(deadline, |mut conn| async move {
                        pipe.query_async(&mut conn).await
                    })
                    .await?;
                Ok(acked)
            }
        });
        let mut fewest = i64::MAX;
        for result in futures_util::future::join_all(writes).await {
            fewest = fewest.min(result?);
        }
        Ok(fewest)
    }

    async fn announce(&self, events: &[Event]) -> Result<(), RelayError> {
        let sends = events.iter().map(|event| self.bus.publish(event));
        for result in futures_util::future::join_all(sends).await {
            result.map_err(at("announcement"))?;
        }
        Ok(())
    }

    async fn purge(&self) {
        let before = common::time::now_ms().saturating_sub(RETENTION_MS);
        match changes::purge_published(self.db.primary(), before).await {
            Ok(n) if n > 0 => tracing::debug!(purged = n, "published link changes purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging published link changes failed"),
        }
    }

    async fn report(&self) {
        if let Ok((count, oldest)) = changes::backlog(self.db.primary()).await {
            self.metrics.pending.set(count);
            let lag = if count > 0 {
                common::time::now_ms().saturating_sub(oldest).max(0)
            } else {
                0
            };
            self.metrics.lag_ms.set(lag);
        }
    }
}

/// Whether lookups may hold an entry this change makes wrong: any edit, disable or
/// delete, and a new alias (someone may have asked for it before it existed, leaving
/// a negative entry). A new generated code was never handed out before its create.
fn needs_eviction(change: &PendingChange) -> bool {
    match change.kind {
        ChangeKind::Updated | ChangeKind::Deleted => true,
        ChangeKind::Created => !change.link.code.is_generated(),
    }
}
