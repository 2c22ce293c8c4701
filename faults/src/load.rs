//! Bounded load loops over loopback: redirects and creates, each answer classified as
//! acknowledged, wrong or failed, with the times of failures kept for windows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

/// A link the load follows: its code and the URL its redirect must point to.
#[derive(Debug, Clone)]
pub struct Link {
    pub code: String,
    pub url: String,
}

/// Limits every load loop obeys: a request count, a deadline and a per-request
/// timeout (a request slower than that counts as failed).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub concurrency: usize,
    pub max_requests: u64,
    pub max_time: Duration,
    pub request_timeout: Duration,
}

/// What a redirect load saw.
#[derive(Debug, Default, Clone)]
pub struct Redirects {
    /// 302 to the link's own URL.
    pub ok: u64,
    /// An answer that is wrong for an existing link: 404, 410, or another Location.
    pub wrong: u64,
    /// The part of `wrong` that was still a 302 (and so still a click).
    pub wrong_redirects: u64,
    /// No answer, a timeout, or a 5xx/429: the request did not succeed.
    pub failed: u64,
    pub failures_by_kind: BTreeMap<String, u64>,
    pub first_failure: Option<Instant>,
    pub last_failure: Option<Instant>,
    pub max_latency: Duration,
}

impl Redirects {
    pub fn total(&self) -> u64 {
        self.ok + self.wrong + self.failed
    }

    /// 302s answered, right or wrong: each must become exactly one counted click.
    pub fn redirected(&self) -> u64 {
        self.ok + self.wrong_redirects
    }

    pub fn merge(&mut self, other: &Redirects) {
        self.ok += other.ok;
        self.wrong += other.wrong;
        self.wrong_redirects += other.wrong_redirects;
        self.failed += other.failed;
        for (k, v) in &other.failures_by_kind {
            *self.failures_by_kind.entry(k.clone()).or_default() += v;
        }
        self.first_failure = earliest(self.first_failure, other.first_failure);
        self.last_failure = latest(self.last_failure, other.last_failure);
        self.max_latency = self.max_latency.max(other.max_latency);
    }

    fn fail(&mut self, kind: String, at: Instant) {
        self.failed += 1;
        *self.failures_by_kind.entry(kind).or_default() += 1;
        self.first_failure = earliest(self.first_failure, Some(at));
        self.last_failure = latest(self.last_failure, Some(at));
    }

    /// "kind ×n, ..." for the report.
    pub fn failure_kinds(&self) -> String {
        kinds(&self.failures_by_kind)
    }
}

fn kinds(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn latest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A running load; `finish` stops it and returns what it saw.
pub struct Running<T> {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<T>>,
}

impl<T: Default + Send + 'static> Running<T> {
    pub async fn finish(self, merge: impl Fn(&mut T, &T)) -> T {
        self.stop.store(true, Ordering::Relaxed);
        self.wait(merge).await
    }

    /// Waits for the load to reach its own bounds.
    pub async fn wait(self, merge: impl Fn(&mut T, &T)) -> T {
        let mut total = T::default();
        for task in self.tasks {
            if let Ok(part) = task.await {
                merge(&mut total, &part);
            }
        }
        total
    }
}

/// Follows `links` through the `bases` (lookup instances or nginx), round robin,
/// until stopped or a bound is reached.
pub fn redirects(
    http: &reqwest::Client,
    bases: Vec<String>,
    links: Arc<Vec<Link>>,
    bounds: Bounds,
) -> Running<Redirects> {
    let stop = Arc::new(AtomicBool::new(false));
    let per_task = bounds.max_requests.div_ceil(bounds.concurrency as u64);
    let deadline = Instant::now() + bounds.max_time;
    let bases = Arc::new(bases);
    let tasks = (0..bounds.concurrency)
        .map(|t| {
            let (http, bases, links, stop) =
                (http.clone(), bases.clone(), links.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Redirects::default();
                for i in (t * 7919..).take(per_task as usize) {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let link = &links[i % links.len()];
                    let base = &bases[i % bases.len()];
                    let started = Instant::now();
                    let answer = http
                        .get(format!("{base}/{}", link.code))
                        .timeout(bounds.request_timeout)
                        .send()
                        .await;
                    seen.max_latency = seen.max_latency.max(started.elapsed());
                    match answer {
                        Ok(r) if r.status() == 302 => {
                            let location = r
                                .headers()
                                .get("location")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default();
                            if location == link.url {
                                seen.ok += 1;
                            } else {
                                seen.wrong += 1;
                                seen.wrong_redirects += 1;
                            }
                        }
                        Ok(r) if r.status() == 404 || r.status() == 410 => seen.wrong += 1,
                        Ok(r) => seen.fail(r.status().as_u16().to_string(), Instant::now()),
                        Err(e) if e.is_timeout() => seen.fail("timeout".into(), Instant::now()),
                        Err(_) => seen.fail("connection".into(), Instant::now()),
                    }
                }
                seen
            })
        })
        .collect();
    Running { stop, tasks }
}

/// What a create load saw.
#[derive(Debug, Default, Clone)]
pub struct Creates {
    /// Every 201: the link the service promised to keep.
    pub acknowledged: Vec<Link>,
    /// When each 201 arrived (same order as `acknowledged`).
    pub acknowledged_at: Vec<Instant>,
    /// 503 with a `Retry-After`: an honest "not now".
    pub unavailable: u64,
    /// Anything else that was not a 201: other statuses, 503 without Retry-After,
    /// timeouts (a hang), connection errors.
    pub errors: BTreeMap<String, u64>,
    pub max_latency: Duration,
}

impl Creates {
    pub fn merge(&mut self, other: &Creates) {
        self.acknowledged.extend(other.acknowledged.iter().cloned());
        self.acknowledged_at.extend(other.acknowledged_at.iter());
        self.unavailable += other.unavailable;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.max_latency = self.max_latency.max(other.max_latency);
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn error_kinds(&self) -> String {
        kinds(&self.errors)
    }

    /// The first acknowledgement at or after `t`.
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        self.acknowledged_at
            .iter()
            .copied()
            .filter(|a| *a >= t)
            .min()
    }
}

/// Creates links with distinct URLs (`{url_prefix}/{task}/{n}`) through `base` until
/// stopped or a bound is reached. `pause` spaces a task's requests.
pub fn creates(
    http: &reqwest::Client,
    base: String,
    api_key: String,
    url_prefix: String,
    bounds: Bounds,
    pause: Duration,
) -> Running<Creates> {
    let stop = Arc::new(AtomicBool::new(false));
    let per_task = bounds.max_requests.div_ceil(bounds.concurrency as u64);
    let deadline = Instant::now() + bounds.max_time;
    let tasks = (0..bounds.concurrency)
        .map(|t| {
            let (http, base, key, prefix, stop) = (
                http.clone(),
                base.clone(),
                api_key.clone(),
                url_prefix.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut seen = Creates::default();
                for n in 0..per_task {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let url = format!("{prefix}/{t}/{n}");
                    let started = Instant::now();
                    let answer = http
                        .post(format!("{base}/api/v1/links"))
                        .bearer_auth(&key)
                        .json(&json!({ "url": url }))
                        .timeout(bounds.request_timeout)
                        .send()
                        .await;
                    seen.max_latency = seen.max_latency.max(started.elapsed());
                    match answer {
                        Ok(r) if r.status() == 201 => {
                            let body: serde_json::Value = r.json().await.unwrap_or_default();
                            match body["code"].as_str() {
                                Some(code) => {
                                    seen.acknowledged.push(Link {
                                        code: code.to_string(),
                                        url,
                                    });
                                    seen.acknowledged_at.push(Instant::now());
                                }
                                None => {
                                    *seen.errors.entry("201 without code".into()).or_default() += 1
                                }
                            }
                        }
                        Ok(r) if r.status() == 503 && r.headers().contains_key("retry-after") => {
                            seen.unavailable += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Ok(r) => {
                            *seen
                                .errors
                                .entry(r.status().as_u16().to_string())
                                .or_default() += 1
                        }
                        Err(e) if e.is_timeout() => {
                            *seen.errors.entry("timeout".into()).or_default() += 1
                        }
                        Err(_) => *seen.errors.entry("connection".into()).or_default() += 1,
                    }
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                seen
            })
        })
        .collect();
    Running { stop, tasks }
}
