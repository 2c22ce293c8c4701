//! Webhook delivery: sends each queued message (`webhook_messages`) to its endpoint,
//! signed as Standard Webhooks define, at least once and in order per link, with
//! retries that back off for `webhooks.retry_for`, then a dead letter.
//!
//! Any number of processes may deliver side by side: a message is held by one
//! worker at a time (`locked_until`, a lease longer than any attempt), and only the
//! oldest message a link still owes an endpoint is ever taken, so a later one waits
//! for it. A worker that dies mid-delivery leaves its messages pending: another
//! takes them when the lease runs out. Each endpoint gets at most a few deliveries
//! in flight, so a slow endpoint cannot take every slot from the others.
//!
//! Every connection goes to an address that was checked: names are resolved by
//! [`CheckedResolver`] for each attempt (no pooled connections) and only public
//! addresses, or ones in `webhooks.allowed_networks`, are handed to the connector.
//! Redirects are not followed, and only the first bytes of an answer are read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::background::CancellationToken;
use common::config::WebhookSettings;
use common::db::webhooks::{self, Attempt, Delivery, Next};
use common::db::{Database, StoreError};
use common::domain::webhooks::{Network, may_reach, retry_delay, secret_key, sign};
use common::metrics::{Metrics, register};
use common::webhooks::EndpointPolicy;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};
use tokio::sync::Notify;

/// Unix ms; a test moves it to reach a retry budget without waiting a day.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(common::time::now_ms)
}

/// How often an idle worker looks for due messages.
const POLL: Duration = Duration::from_millis(200);
/// Bytes of an answer's body kept in the delivery log.
const RESPONSE_BYTES: usize = 1024;
/// How often finished messages past `webhooks.retention` are forgotten.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// At shutdown, how long deliveries under way may take to finish and be recorded.
const DRAIN: Duration = Duration::from_secs(8);

pub struct WebhookMetrics {
    attempts: IntCounterVec,
    latency: Histogram,
    pending: IntGauge,
    lag_ms: IntGauge,
}

impl WebhookMetrics {
    pub fn new(metrics: &Metrics) -> WebhookMetrics {
        let r = metrics.registry();
        WebhookMetrics {
            attempts: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "webhook_attempts_total",
                        "Webhook delivery attempts by outcome: delivered, failed (to be retried), dead (out of retries).",
                    ),
                    &["outcome"],
                ),
            ),
            latency: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "webhook_attempt_seconds",
                        "From sending a webhook to its endpoint's answer (or the failure).",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ]),
                ),
            ),
            pending: register(
                r,
                IntGauge::new(
                    "webhook_messages_pending",
                    "Webhook messages not yet delivered nor dead.",
                ),
            ),
            lag_ms: register(
                r,
                IntGauge::new(
                    "webhook_delivery_lag_milliseconds",
                    "How long the longest-due webhook message has been due (0 when none).",
                ),
            ),
        }
    }
}

/// Resolves an endpoint's name for one attempt and keeps only the addresses a
/// delivery may connect to: the connector never sees the others.
#[derive(Debug, Clone)]
struct CheckedResolver {
    allowed: Arc<Vec<Network>>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let checked: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| may_reach(a.ip(), &allowed))
                .collect();
            if checked.is_empty() {
                return Err(format!(
                    "`{host}` resolves only to addresses webhooks are not delivered to ({})",
                    found
                        .iter()
                        .map(|a| a.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
                .into());
            }
            Ok(Box::new(checked.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The webhook deliveries of one process.
pub struct Deliverer {
    db: Database,
    settings: WebhookSettings,
    policy: EndpointPolicy,
    client: reqwest::Client,
    clock: Clock,
    metrics: WebhookMetrics,
    /// Deliveries in flight per endpoint, and in all.
    in_flight: Mutex<HashMap<String, usize>>,
    finished: Notify,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer").finish_non_exhaustive()
    }
}

impl Deliverer {
    /// Builds the HTTP client (startup: an error stops the start).
    pub fn new(
        db: Database,
        settings: WebhookSettings,
        metrics: &Metrics,
        clock: Clock,
    ) -> anyhow::Result<Arc<Deliverer>> {
        common::tls::install();
        let policy = EndpointPolicy::from_settings(&settings);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(CheckedResolver {
                allowed: Arc::new(policy.allowed.clone()),
            }))
            .redirect(reqwest::redirect::Policy::none())
            // A fresh connection, so a fresh resolution, every attempt.
            .pool_max_idle_per_host(0)
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("shortener-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Arc::new(Deliverer {
            db,
            policy,
            client,
            clock,
            metrics: WebhookMetrics::new(metrics),
            in_flight: Mutex::new(HashMap::new()),
            finished: Notify::new(),
            settings,
        }))
    }

    /// Deliveries one endpoint may have in flight.
    fn per_endpoint(&self) -> usize {
        (self.settings.concurrency as usize / 4).max(1)
    }

    /// Delivers until `stop` fires, then lets the deliveries under way finish (up
    /// to [`DRAIN`]); what is left is taken by the next worker when its lease ends.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff =
            common::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut reported: Option<Instant> = None;
        let mut purged: Option<Instant> = None;
        while !stop.is_cancelled() {
            match self.clone().round().await {
                Ok(started) => {
                    backoff.reset();
                    if started == 0 {
                        tokio::select! {
                            _ = tokio::time::sleep(POLL) => {}
                            _ = self.finished.notified() => {}
                            _ = stop.cancelled() => {}
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "looking for webhook messages failed; retrying");
                    tokio::select! {
                        _ = backoff.wait() => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
            if purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                purged = Some(Instant::now());
                match self.purge().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(messages = n, "finished webhook messages purged"),
                    Err(e) => tracing::warn!(error = %e, "purging webhook messages failed"),
                }
            }
            if reported.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                reported = Some(Instant::now());
                if let Ok((pending, due_since)) =
                    webhooks::backlog(self.db.primary(), (self.clock)()).await
                {
                    self.metrics.pending.set(pending);
                    let lag = if due_since == 0 {
                        0
                    } else {
                        (self.clock)() - due_since
                    };
                    self.metrics.lag_ms.set(lag.max(0));
                }
            }
        }
        let until = Instant::now() + DRAIN;
        while self.busy() > 0 && Instant::now() < until {
            let _ =
                tokio::time::timeout(Duration::from_millis(100), self.finished.notified()).await;
        }
    }

    /// Forgets messages delivered or dead for longer than `webhooks.retention`, with
    /// their delivery log (several processes doing it at once is harmless).
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let retention = i64::try_from(self.settings.retention.as_millis()).unwrap_or(i64::MAX);
        webhooks::purge_finished(self.db.primary(), (self.clock)().saturating_sub(retention)).await
    }

    /// Waits until no delivery is in flight (at most the timeout and a margin): a
    /// test's way to see a round's outcome.
    pub async fn settle(&self) {
        let until = Instant::now() + self.settings.timeout + Duration::from_secs(5);
        while self.busy() > 0 && Instant::now() < until {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.finished.notified()).await;
        }
    }

    fn busy(&self) -> usize {
        self.in_flight
            .lock()
            .map(|m| m.values().sum())
            .unwrap_or_default()
    }

    /// Starts deliveries of the due messages there is room for; returns how many.
    pub async fn round(self: Arc<Self>) -> Result<usize, StoreError> {
        let room = (self.settings.concurrency as usize).saturating_sub(self.busy());
        if room == 0 {
            return Ok(0);
        }
        let now = (self.clock)();
        // More than there is room for: some belong to endpoints at their share in
        // flight here already.
        let due = webhooks::due(
            self.db.primary(),
            now,
            (room * 2) as i64,
            self.per_endpoint() as i64,
        )
        .await?;
        // A lease beyond any attempt (connecting and the answer each within the
        // timeout) and its recording.
        let until = now + 2 * self.settings.timeout.as_millis() as i64 + 5_000;
        let mut started = 0;
        for delivery in due {
            if started == room {
                break;
            }
            if !self.reserve(&delivery.endpoint_id) {
                continue;
            }
            if !webhooks::claim(self.db.primary(), delivery.seq, now, until).await? {
                self.release(&delivery.endpoint_id);
                continue;
            }
            started += 1;
            let me = self.clone();
            tokio::spawn(async move {
                let endpoint = delivery.endpoint_id.clone();
                me.deliver(delivery).await;
                me.release(&endpoint);
            });
        }
        Ok(started)
    }

    /// Counts a delivery for `endpoint` if it has room for one.
    fn reserve(&self, endpoint: &str) -> bool {
        let Ok(mut map) = self.in_flight.lock() else {
            return false;
        };
        let count = map.entry(endpoint.to_string()).or_default();
        if *count >= self.per_endpoint() {
            return false;
        }
        *count += 1;
        true
    }

    fn release(&self, endpoint: &str) {
        if let Ok(mut map) = self.in_flight.lock()
            && let Some(count) = map.get_mut(endpoint)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(endpoint);
            }
        }
        self.finished.notify_one();
    }

    /// One attempt at `delivery`, and its record.
    async fn deliver(&self, delivery: Delivery) {
        let at = (self.clock)();
        let started = Instant::now();
        let (status, error, response) = match self.send(&delivery).await {
            Ok((status, body)) => (Some(status), None, Some(body)),
            Err(why) => (None, Some(why), None),
        };
        let latency = started.elapsed();
        self.metrics.latency.observe(latency.as_secs_f64());
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        let next = if ok {
            Next::Delivered
        } else {
            let attempts = u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX);
            let wait = retry_delay(attempts, rand::random::<f64>());
            let next_at = at + wait.as_millis() as i64;
            let budget = self.settings.retry_for.as_millis() as i64;
            if next_at > delivery.retry_from + budget {
                Next::Dead
            } else {
                Next::RetryAt(next_at)
            }
        };
        let outcome = match next {
            Next::Delivered => "delivered",
            Next::RetryAt(_) => "failed",
            Next::Dead => "dead",
        };
        self.metrics.attempts.with_label_values(&[outcome]).inc();
        let attempt = Attempt {
            at,
            status,
            latency_ms: latency.as_millis() as i64,
            error,
            response,
        };
        if let Err(e) = self.record(&delivery, &attempt, next).await {
            // The lease runs out and the message is sent again: at least once.
            tracing::warn!(error = %e, message = %delivery.id, "recording a webhook attempt failed");
        }
        if next == Next::Dead {
            tracing::warn!(message = %delivery.id, endpoint = %delivery.endpoint_id, "webhook message dead-lettered");
        }
    }

    async fn record(
        &self,
        delivery: &Delivery,
        attempt: &Attempt,
        next: Next,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        webhooks::record(&mut tx, delivery, attempt, next).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Posts the message; the status and the first bytes of the body, or why no
    /// answer came.
    async fn send(&self, delivery: &Delivery) -> Result<(u16, String), String> {
        // Settings may have changed since the endpoint was registered.
        let url = self.policy.check_url(&delivery.url)?;
        let key = secret_key(&delivery.secret).ok_or("the endpoint's secret is unreadable")?;
        // Receivers check the timestamp against their own clock: the real one.
        let timestamp = common::time::now_ms() / 1000;
        let signature = sign(&key, &delivery.id, timestamp, delivery.payload.as_bytes());
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16();
        let mut response = response;
        let mut head = Vec::new();
        while head.len() < RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                // What came is enough for the log; the status is what counts.
                Ok(None) | Err(_) => break,
            }
        }
        head.truncate(RESPONSE_BYTES);
        Ok((status, String::from_utf8_lossy(&head).into_owned()))
    }
}

/// A failed request in a few words, with the cause that says most.
fn describe(error: reqwest::Error) -> String {
    use std::error::Error;
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause: &dyn Error = &error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    format!("{kind}: {cause}")
}
