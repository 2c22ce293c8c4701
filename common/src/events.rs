//! Link-change events: how a create, edit or delete reaches every lookup instance.
//!
//! Publishing side ([`LinkEvents`]): create-service hands every changed link to a
//! background task that writes its new state through to Redis and then publishes its
//! code. Handlers never wait on Redis; a failed write is retried with backoff, in
//! order, so the last state written for a code is always its newest.
//!
//! Receiving side ([`subscribe`]): each lookup instance listens on the channel and
//! evicts codes from its local cache. When the subscription is lost (Redis node down,
//! connection dropped, no answer to a ping), the instance is told to reset — clear its
//! local cache and keep entries only briefly — and is told again once the subscription
//! is back, because events published meanwhile were missed.
//!
//! Blocklist changes ([`publish_blocklist_changed`], [`subscribe_blocklist`]) travel
//! the same ways on a channel of their own: `shortener hosts block|unblock` announces
//! one after writing the table, and every instance that holds the blocklist reloads
//! it. An announcement carries no data, so a lost one only delays a reload until the
//! instance's periodic one (see [`crate::blocklist`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::{broadcast, mpsc};

use crate::cache::{LinkEntry, blocklist_channel, encode, invalidation_channel, l2_key};
use crate::db::links::LinkRecord;
use crate::redis::{RedisCluster, redis};

/// Changes waiting to reach Redis; past this the oldest news is dropped and the local
/// caches' TTL bounds staleness instead.
const QUEUE: usize = 100_000;
/// Backoff between retries of a failed Redis write: doubles from the first to the
/// last, with jitter.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_LAST: Duration = Duration::from_secs(5);
/// A subscription that does not answer a ping within this is considered lost.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_DEADLINE: Duration = Duration::from_millis(500);

/// `base` ± 25%, so many instances retrying at once do not move in lockstep.
pub fn jittered(base: Duration) -> Duration {
    let factor = 0.75 + rand::random::<f64>() * 0.5;
    base.mul_f64(factor)
}

/// One change to propagate.
#[derive(Debug, Clone)]
pub struct Change {
    code: String,
    /// Encoded cache value to write through.
    value: String,
    /// The event telling lookup instances to evict the code (none for a brand-new
    /// generated code, which nobody can have cached).
    event: Option<String>,
}

/// Where create-service sends link changes.
#[derive(Clone, Debug)]
pub enum LinkEvents {
    /// No shared cache and no other instances: nothing to tell.
    Disabled,
    /// In-process: the all-in-one's lookup evicts directly.
    Local(broadcast::Sender<String>),
    /// Redis Cluster: write-through and pub/sub, from a background task.
    Redis(mpsc::Sender<Change>),
}

impl LinkEvents {
    /// Starts the background writer for `redis`; `l2_ttl` is the TTL of written keys.
    pub fn redis(redis: RedisCluster, l2_ttl: Duration) -> LinkEvents {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_changes(redis, rx, l2_ttl));
        LinkEvents::Redis(tx)
    }

    /// A link was created: warm the shared cache, and for an alias (which someone may
    /// have asked for before it existed) evict negative entries everywhere.
    pub fn created(&self, record: &LinkRecord, is_alias: bool) {
        self.send(record, is_alias);
    }

    /// A link was edited, disabled, re-enabled or deleted.
    pub fn changed(&self, record: &LinkRecord) {
        self.send(record, true);
    }

    fn send(&self, record: &LinkRecord, publish: bool) {
        match self {
            LinkEvents::Disabled => {}
            LinkEvents::Local(tx) => {
                if publish {
                    // No receiver just means no lookup is mounted in this process.
                    let _ = tx.send(encode_event(&record.code, record.updated_at));
                }
            }
            LinkEvents::Redis(tx) => {
                let change = Change {
                    code: record.code.clone(),
                    value: encode(Some(&LinkEntry::from_record(record))),
                    event: publish.then(|| encode_event(&record.code, record.updated_at)),
                };
                if tx.try_send(change).is_err() {
                    tracing::error!(code = %record.code, "link-change queue full; caches converge by TTL");
                }
            }
        }
    }
}

async fn write_changes(redis: RedisCluster, mut rx: mpsc::Receiver<Change>, l2_ttl: Duration) {
    let ttl = l2_ttl.as_secs().max(1);
    let channel = invalidation_channel(redis.prefix());
    while let Some(change) = rx.recv().await {
        let mut backoff = RETRY_FIRST;
        loop {
            match apply(&redis, &change, ttl, &channel).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, code = %change.code, "link change not yet in Redis; retrying");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(RETRY_LAST);
                }
            }
        }
    }
}

async fn apply(
    redis: &RedisCluster,
    change: &Change,
    ttl: u64,
    channel: &str,
) -> Result<(), crate::redis::RedisError> {
    let key = l2_key(redis.prefix(), &change.code);
    let value = change.value.clone();
    redis
        .call(|mut conn| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("EX")
                .arg(ttl)
                .query_async::<()>(&mut conn)
                .await
        })
        .await?;
    if let Some(event) = change.event.clone() {
        let channel = channel.to_string();
        redis
            .call(|mut conn| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(event)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await?;
    }
    Ok(())
}

/// What a lookup instance does with events.
pub trait InvalidationHandler: Send + Sync + 'static {
    /// Evict one code, changed at `updated_at` (Unix ms).
    fn invalidate(&self, code: String, updated_at: i64) -> BoxFuture<'static, ()>;
    /// Events may have been missed (subscription lost, or back after a loss): forget
    /// everything cached locally. `connected` tells which of the two.
    fn reset(&self, connected: bool);
}

/// What an instance holding the host blocklist does when it may have changed: an
/// announcement arrived, or a subscription is back after events may have been missed.
pub trait BlocklistHandler: Send + Sync + 'static {
    fn changed(&self);
}

/// The payload of a blocklist announcement. On the in-process bus it travels among
/// link events, which always contain a `|`.
pub const BLOCKLIST_CHANGED: &str = "blocklist-changed";

/// Publishing a blocklist announcement to Redis: attempts, each under the call
/// deadline, with a short pause between them.
const ANNOUNCE_ATTEMPTS: u32 = 3;
const ANNOUNCE_PAUSE: Duration = Duration::from_millis(100);

/// Tells every instance listening on `bus` that the blocklist changed. `Ok(false)`:
/// there is no bus, nobody can be told (instances see the change at their next
/// periodic reload).
pub async fn publish_blocklist_changed(
    bus: &InvalidationSource,
) -> Result<bool, crate::redis::RedisError> {
    match bus {
        InvalidationSource::None => Ok(false),
        InvalidationSource::Local(tx) => {
            // No receiver just means nothing in this process holds a blocklist.
            let _ = tx.send(BLOCKLIST_CHANGED.to_string());
            Ok(true)
        }
        InvalidationSource::Redis(redis) => {
            let channel = blocklist_channel(redis.prefix());
            let mut attempt = 1;
            loop {
                let channel = channel.clone();
                let published = redis
                    .call(|mut conn| async move {
                        redis::cmd("PUBLISH")
                            .arg(channel)
                            .arg(BLOCKLIST_CHANGED)
                            .query_async::<i64>(&mut conn)
                            .await
                    })
                    .await;
                match published {
                    Ok(_) => return Ok(true),
                    Err(e) if attempt >= ANNOUNCE_ATTEMPTS => return Err(e),
                    Err(e) => {
                        tracing::debug!(error = %e, attempt, "blocklist announcement failed; retrying");
                        attempt += 1;
                        tokio::time::sleep(ANNOUNCE_PAUSE).await;
                    }
                }
            }
        }
    }
}

/// An event on the wire: `<updated_at>|<code>` (codes never contain `|`).
pub fn encode_event(code: &str, updated_at: i64) -> String {
    format!("{updated_at}|{code}")
}

pub fn decode_event(payload: &str) -> Option<(String, i64)> {
    let (at, code) = payload.split_once('|')?;
    Some((code.to_string(), at.parse().ok()?))
}

/// Where a lookup instance hears about changes.
#[derive(Clone, Debug)]
pub enum InvalidationSource {
    /// Nothing publishes changes (a lone lookup without Redis): local entries only
    /// expire by TTL.
    None,
    Local(broadcast::Sender<String>),
    Redis(RedisCluster),
}

/// Starts listening; `healthy` is kept true while the subscription is healthy.
pub fn subscribe(
    source: InvalidationSource,
    handler: Arc<dyn InvalidationHandler>,
    healthy: Arc<AtomicBool>,
) {
    listen(source, Topic::Links(handler), healthy);
}

/// Starts listening for blocklist announcements, on a subscription of their own;
/// `healthy` is kept true while it is healthy.
pub fn subscribe_blocklist(
    source: InvalidationSource,
    handler: Arc<dyn BlocklistHandler>,
    healthy: Arc<AtomicBool>,
) {
    listen(source, Topic::Blocklist(handler), healthy);
}

/// What one subscription listens to, and who hears it.
#[derive(Clone)]
enum Topic {
    Links(Arc<dyn InvalidationHandler>),
    Blocklist(Arc<dyn BlocklistHandler>),
}

impl Topic {
    fn name(&self) -> &'static str {
        match self {
            Topic::Links(_) => "invalidation",
            Topic::Blocklist(_) => "blocklist",
        }
    }

    fn channel(&self, prefix: &str) -> String {
        match self {
            Topic::Links(_) => invalidation_channel(prefix),
            Topic::Blocklist(_) => blocklist_channel(prefix),
        }
    }

    /// Hands one payload over; false when it is not this topic's (the in-process bus
    /// carries both) or unreadable.
    async fn deliver(&self, payload: &str) -> bool {
        match self {
            Topic::Links(handler) => match decode_event(payload) {
                Some((code, at)) => {
                    handler.invalidate(code, at).await;
                    true
                }
                None => false,
            },
            Topic::Blocklist(handler) => {
                if payload == BLOCKLIST_CHANGED {
                    handler.changed();
                }
                payload == BLOCKLIST_CHANGED
            }
        }
    }

    /// Events may have been missed; `connected` tells whether the subscription is
    /// back (or lost).
    fn reset(&self, connected: bool) {
        match self {
            Topic::Links(handler) => handler.reset(connected),
            // Reload once the subscription is back; while it is lost, the periodic
            // reload is all there is, and a reload per reconnect attempt would only
            // load the database.
            Topic::Blocklist(handler) => {
                if connected {
                    handler.changed();
                }
            }
        }
    }

    fn lost_message(&self) -> &'static str {
        match self {
            Topic::Links(_) => "invalidation subscription lost; local cache cleared",
            Topic::Blocklist(_) => {
                "blocklist subscription lost; relying on the periodic blocklist reload"
            }
        }
    }
}

fn listen(source: InvalidationSource, topic: Topic, healthy: Arc<AtomicBool>) {
    match source {
        InvalidationSource::None => {}
        InvalidationSource::Local(tx) => {
            healthy.store(true, Ordering::Release);
            let mut rx = tx.subscribe();
            let flag = healthy.clone();
            tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(payload) => {
                            topic.deliver(&payload).await;
                        }
                        // Fell behind: some events were missed.
                        Err(broadcast::error::RecvError::Lagged(_)) => topic.reset(true),
                        Err(broadcast::error::RecvError::Closed) => {
                            flag.store(false, Ordering::Release);
                            return;
                        }
                    }
                }
            });
        }
        InvalidationSource::Redis(redis) => {
            tokio::spawn(listen_redis(redis, topic, healthy));
        }
    }
}

async fn listen_redis(redis: RedisCluster, topic: Topic, healthy: Arc<AtomicBool>) {
    let channel = topic.channel(redis.prefix());
    let nodes = redis.node_urls();
    let mut backoff = RETRY_FIRST;
    let mut attempt: usize = 0;
    loop {
        // PUBLISH in a cluster reaches subscribers on every node, so any node will do;
        // rotate through the seeds when one fails.
        let Some(url) = nodes.get(attempt % nodes.len().max(1)) else {
            return;
        };
        attempt = attempt.wrapping_add(1);
        match session(url, &channel, &topic, &healthy).await {
            Ok(()) => backoff = RETRY_FIRST,
            Err(e) => tracing::warn!(error = %e, topic = topic.name(), "subscription failed"),
        }
        if healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!("{}", topic.lost_message());
        }
        topic.reset(false);
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(RETRY_LAST);
    }
}

/// One subscription, until it breaks. Returns `Ok` when it ended without an error.
async fn session(
    url: &str,
    channel: &str,
    topic: &Topic,
    healthy: &AtomicBool,
) -> Result<(), redis::RedisError> {
    let client = redis::Client::open(url)?;
    let mut pubsub = tokio::time::timeout(PING_DEADLINE, client.get_async_pubsub())
        .await
        .map_err(|_| timeout_error("connect"))??;
    pubsub.subscribe(channel).await?;
    let (mut sink, mut stream) = pubsub.split();
    healthy.store(true, Ordering::Release);
    // Events published before this point were missed.
    topic.reset(true);
    tracing::info!(%url, topic = topic.name(), "subscription established");
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return Ok(()) };
                let delivered = match message.get_payload::<String>() {
                    Ok(payload) => topic.deliver(&payload).await,
                    Err(_) => false,
                };
                if !delivered {
                    tracing::warn!(topic = topic.name(), "unreadable event");
                }
            }
            _ = ping.tick() => {
                tokio::time::timeout(PING_DEADLINE, sink.ping::<redis::Value>())
                    .await
                    .map_err(|_| timeout_error("ping"))??;
            }
        }
    }
}

fn timeout_error(what: &'static str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("subscription {what} timed out"),
    ))
}
