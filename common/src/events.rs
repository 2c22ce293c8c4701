//! The event bus: how a link change or a blocklist change reaches every instance.
//!
//! The bus ([`Bus`]) carries typed [`Event`]s: over Redis pub/sub (one channel per
//! [`Topic`]) between processes, or over an in-process channel in the all-in-one. A
//! [`Subscription`] owns its health: when it is lost (Redis node down, connection
//! dropped, no answer to a ping) its listener is told that events may have been
//! missed, and told again once it is back, because events published meanwhile were
//! missed.
//!
//! Topics: access changes (a key made, revoked or rotated: every instance forgets the
//! keys it resolved, see [`crate::auth`]), link changes (each lookup instance evicts the code from its local cache),
//! domain changes (every lookup instance reloads the set of branded domains, see
//! [`crate::domains`]) and blocklist changes (`shortener hosts block|unblock` announces one after writing
//! the table; every instance holding the blocklist reloads it; an announcement carries
//! no data, so a lost one only delays a reload until the periodic one, see
//! [`crate::blocklist`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::broadcast;

use crate::background::Background;
use crate::backoff::Backoff;
use crate::cache::{access_channel, blocklist_channel, domains_channel, invalidation_channel};
use crate::redis::{RedisCluster, redis};

/// Backoff between attempts to (re)subscribe.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_LAST: Duration = Duration::from_secs(5);
/// A subscription that does not answer a ping within this is considered lost.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_DEADLINE: Duration = Duration::from_millis(500);
/// Events the in-process bus holds for a slow listener before it is told it missed
/// some.
const LOCAL_CAPACITY: usize = 4096;

/// A message on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The link under `key` (its code, or `domain/code` on a branded domain) changed
    /// at `updated_at` (Unix ms): evict it.
    LinkChanged { key: String, updated_at: i64 },
    /// The runtime blocklist changed: reload it.
    BlocklistChanged,
    /// A branded domain was added or given up: reload the set.
    DomainsChanged,
    /// A key was made, revoked or rotated: forget resolved keys.
    AccessChanged,
}

/// What a subscription listens to. Each topic is a channel of its own on Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Links,
    Blocklist,
    Domains,
    Access,
}

/// The payloads of the announcements on Redis.
const BLOCKLIST_CHANGED: &str = "blocklist-changed";
const DOMAINS_CHANGED: &str = "domains-changed";
const ACCESS_CHANGED: &str = "access-changed";

impl Event {
    pub fn topic(&self) -> Topic {
        match self {
            Event::LinkChanged { .. } => Topic::Links,
            Event::BlocklistChanged => Topic::Blocklist,
            Event::DomainsChanged => Topic::Domains,
            Event::AccessChanged => Topic::Access,
        }
    }

    /// The payload on the topic's Redis channel: `<updated_at>|<key>` for a link
    /// (keys never contain `|`).
    pub fn to_payload(&self) -> String {
        match self {
            Event::LinkChanged { key, updated_at } => format!("{updated_at}|{key}"),
            Event::BlocklistChanged => BLOCKLIST_CHANGED.to_string(),
            Event::DomainsChanged => DOMAINS_CHANGED.to_string(),
            Event::AccessChanged => ACCESS_CHANGED.to_string(),
        }
    }

    /// Reads a payload of `topic`'s channel back; `None` when it is not one.
    pub fn from_payload(topic: Topic, payload: &str) -> Option<Event> {
        match topic {
            Topic::Links => {
                let (at, key) = payload.split_once('|')?;
                Some(Event::LinkChanged {
                    key: key.to_string(),
                    updated_at: at.parse().ok()?,
                })
            }
            Topic::Blocklist => (payload == BLOCKLIST_CHANGED).then_some(Event::BlocklistChanged),
            Topic::Domains => (payload == DOMAINS_CHANGED).then_some(Event::DomainsChanged),
            Topic::Access => (payload == ACCESS_CHANGED).then_some(Event::AccessChanged),
        }
    }
}

impl Topic {
    fn name(self) -> &'static str {
        match self {
            Topic::Links => "invalidation",
            Topic::Blocklist => "blocklist",
            Topic::Domains => "domains",
            Topic::Access => "access",
        }
    }

    fn channel(self, prefix: &str) -> String {
        match self {
            Topic::Links => invalidation_channel(prefix),
            Topic::Blocklist => blocklist_channel(prefix),
            Topic::Domains => domains_channel(prefix),
            Topic::Access => access_channel(prefix),
        }
    }
}

/// What a subscriber does with what it hears.
pub trait Listener: Send + Sync + 'static {
    /// One event of the subscription's topic.
    fn event(&self, event: Event) -> BoxFuture<'static, ()>;
    /// Events may have been missed: `connected` tells whether the subscription is
    /// back (and events flow again) or was just lost.
    fn missed(&self, connected: bool);
}

/// Where events travel.
#[derive(Clone, Debug)]
pub enum Bus {
    /// Nothing to tell and nobody to hear it (a lone process without Redis): caches
    /// rely on their lifetimes alone.
    None,
    /// One process: the all-in-one's services, or tests on the embedded engine.
    Local(broadcast::Sender<Event>),
    /// Redis pub/sub, across every instance of the deployment.
    Redis(RedisCluster),
}

impl Bus {
    /// A fresh in-process bus.
    pub fn local() -> Bus {
        Bus::Local(broadcast::channel(LOCAL_CAPACITY).0)
    }

    /// Redis when there is one, else none.
    pub fn from_redis(redis: Option<&RedisCluster>) -> Bus {
        match redis {
            Some(redis) => Bus::Redis(redis.clone()),
            None => Bus::None,
        }
    }

    /// Sends `event` once. `Ok(false)`: there is no bus, nobody can be told.
    pub async fn publish(&self, event: &Event) -> Result<bool, crate::redis::RedisError> {
        match self {
            Bus::None => Ok(false),
            Bus::Local(tx) => {
                // No receiver just means nothing in this process listens to it.
                let _ = tx.send(event.clone());
                Ok(true)
            }
            Bus::Redis(redis) => {
                let channel = event.topic().channel(redis.prefix());
                let payload = event.to_payload();
                // Any node passes a message on to every subscriber of the cluster.
                let mut publish = redis::cmd("PUBLISH");
                publish.arg(channel).arg(payload);
                redis.call_on_a_master::<i64>(publish).await.map(|_| true)
            }
        }
    }

    /// A subscription to `topic`, not yet listening: its health can be handed to
    /// whoever needs it before [`Subscription::start`] begins delivering.
    pub fn subscription(&self, topic: Topic) -> Subscription {
        Subscription {
            bus: self.clone(),
            topic,
            // Nobody publishes on no bus, so nobody can miss anything there.
            up: Arc::new(AtomicBool::new(matches!(self, Bus::None))),
        }
    }
}

/// One topic's subscription and its health.
#[derive(Clone, Debug)]
pub struct Subscription {
    bus: Bus,
    topic: Topic,
    up: Arc<AtomicBool>,
}

impl Subscription {
    /// The health flag: true while no event can be missed (read on the hot path).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.up.clone()
    }

    /// Delivers events to `listener` from a task of `background`, reconnecting with
    /// backoff until the process stops.
    pub fn start(&self, listener: Arc<dyn Listener>, background: &Background) {
        match &self.bus {
            Bus::None => {}
            Bus::Local(tx) => {
                self.up.store(true, Ordering::Release);
                background.spawn(listen_local(
                    tx.subscribe(),
                    self.topic,
                    listener,
                    self.up.clone(),
                ));
            }
            Bus::Redis(redis) => {
                background.spawn(listen_redis(
                    redis.clone(),
                    self.topic,
                    listener,
                    self.up.clone(),
                ));
            }
        }
    }
}

async fn listen_local(
    mut rx: broadcast::Receiver<Event>,
    topic: Topic,
    listener: Arc<dyn Listener>,
    up: Arc<AtomicBool>,
) {
    loop {
        match rx.recv().await {
            Ok(event) if event.topic() == topic => listener.event(event).await,
            Ok(_) => {}
            // Fell behind: some events were missed.
            Err(broadcast::error::RecvError::Lagged(_)) => listener.missed(true),
            Err(broadcast::error::RecvError::Closed) => {
                up.store(false, Ordering::Release);
                return;
            }
        }
    }
}

async fn listen_redis(
    redis: RedisCluster,
    topic: Topic,
    listener: Arc<dyn Listener>,
    up: Arc<AtomicBool>,
) {
    let channel = topic.channel(redis.prefix());
    let nodes = redis.node_urls();
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_LAST);
    let mut attempt: usize = 0;
    loop {
        // PUBLISH in a cluster reaches subscribers on every node, so any node will do;
        // rotate through the seeds when one fails.
        let Some(url) = nodes.get(attempt % nodes.len().max(1)) else {
            return;
        };
        attempt = attempt.wrapping_add(1);
        match session(url, &channel, topic, listener.as_ref(), &up).await {
            Ok(()) => backoff.reset(),
            Err(e) => tracing::warn!(error = %e, topic = topic.name(), "subscription failed"),
        }
        if up.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                topic = topic.name(),
                "subscription lost; events may be missed until it is back"
            );
        }
        listener.missed(false);
        backoff.wait().await;
    }
}

/// One subscription, until it breaks. Returns `Ok` when it ended without an error.
async fn session(
    url: &str,
    channel: &str,
    topic: Topic,
    listener: &dyn Listener,
    up: &AtomicBool,
) -> Result<(), redis::RedisError> {
    let client = redis::Client::open(url)?;
    let mut pubsub = tokio::time::timeout(PING_DEADLINE, client.get_async_pubsub())
        .await
        .map_err(|_| timeout_error("connect"))??;
    pubsub.subscribe(channel).await?;
    let (mut sink, mut stream) = pubsub.split();
    up.store(true, Ordering::Release);
    // Events published before this point were missed.
    listener.missed(true);
    tracing::info!(%url, topic = topic.name(), "subscription established");
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return Ok(()) };
                let event = message
                    .get_payload::<String>()
                    .ok()
                    .and_then(|payload| Event::from_payload(topic, &payload));
                match event {
                    Some(event) => listener.event(event).await,
                    None => tracing::warn!(topic = topic.name(), "unreadable event"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_per_topic() {
        let link = Event::LinkChanged {
            key: "go.acme.com/spring-sale".into(),
            updated_at: 1_700_000_000_123,
        };
        assert_eq!(link.to_payload(), "1700000000123|go.acme.com/spring-sale");
        assert_eq!(
            Event::from_payload(Topic::Links, &link.to_payload()),
            Some(link)
        );
        assert_eq!(
            Event::from_payload(Topic::Blocklist, &Event::BlocklistChanged.to_payload()),
            Some(Event::BlocklistChanged)
        );
        assert_eq!(
            Event::from_payload(Topic::Domains, &Event::DomainsChanged.to_payload()),
            Some(Event::DomainsChanged)
        );
        // A payload of another topic's shape is not this topic's event.
        assert_eq!(Event::from_payload(Topic::Domains, BLOCKLIST_CHANGED), None);
        assert_eq!(Event::from_payload(Topic::Blocklist, DOMAINS_CHANGED), None);
        assert_eq!(
            Event::from_payload(Topic::Access, &Event::AccessChanged.to_payload()),
            Some(Event::AccessChanged)
        );
        assert_eq!(Event::from_payload(Topic::Access, DOMAINS_CHANGED), None);
        assert_eq!(Event::from_payload(Topic::Blocklist, "1|abc"), None);
        assert_eq!(Event::from_payload(Topic::Links, BLOCKLIST_CHANGED), None);
        assert_eq!(Event::from_payload(Topic::Links, "x|abc"), None);
    }
}
