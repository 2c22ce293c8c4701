//! Webhook delivery end to end, on SQLite and on PostgreSQL: link changes reach a
//! receiver on 127.0.0.1 signed as Standard Webhooks define (each checked with the
//! specification's own library, not this project's code), in order per link; a
//! failing endpoint is retried, then dead-lettered after the retry budget (on a clock
//! the test moves), its attempts are in the delivery log, and a dead letter replayed
//! over the API is delivered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Settings that let deliveries reach a receiver on this machine.
const LOCAL: [(&str, &str); 2] = [
    ("SHORTENER__WEBHOOKS__ALLOW_HTTP", "true"),
    ("SHORTENER__WEBHOOKS__ALLOWED_NETWORKS", "127.0.0.1/32"),
];

/// [`LOCAL`], with no delivering in the services: the test runs its own worker.
const LOCAL_UNDELIVERED: [(&str, &str); 3] = [
    LOCAL[0],
    LOCAL[1],
    ("SHORTENER__WEBHOOKS__DELIVER", "false"),
];

on_both_engines!(
    settings = super::LOCAL;
    link_changes_arrive_signed_and_in_order,
    a_slow_endpoint_does_not_delay_another_tenant
);
on_both_engines!(
    settings = super::LOCAL_UNDELIVERED;
    a_failing_endpoint_is_retried_then_dead_lettered
);

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap().to_str().unwrap()
    }
}

/// A webhook receiver on 127.0.0.1: records every request and answers `status`
/// after `delay`; it can go down (its port refuses connections) and come back.
#[derive(Clone)]
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
    delay: Arc<Mutex<Duration>>,
    serving: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            port: listener.local_addr().unwrap().port(),
            got: Arc::default(),
            status: Arc::new(Mutex::new(200)),
            delay: Arc::default(),
            serving: Arc::default(),
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: TcpListener) {
        let me = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let Some(received) = read_request(&mut socket).await else {
                        return;
                    };
                    let delay = *me.delay.lock().unwrap();
                    tokio::time::sleep(delay).await;
                    me.got.lock().unwrap().push(received);
                    let status = *me.status.lock().unwrap();
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 8\r\nconnection: close\r\n\r\nreceived"
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        *self.serving.lock().unwrap() = Some(task);
    }

    /// Stops listening: connections to the port are refused.
    fn down(&self) {
        if let Some(task) = self.serving.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    async fn up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    fn slow(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    fn answer(&self, status: u16) {
        *self.status.lock().unwrap() = status;
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests came (at most 20 s).
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        self.wait_within(n, Duration::from_secs(20)).await
    }

    async fn wait_within(&self, n: usize, within: Duration) -> Vec<Received> {
        let until = std::time::Instant::now() + within;
        while std::time::Instant::now() < until {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} of {n} webhook requests came", self.received().len());
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut headers = http::HeaderMap::new();
    for line in head.lines().skip(1).filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            http::HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        headers,
        body: buf[head_end..head_end + length].to_vec(),
    })
}

/// Checks `received` with the Standard Webhooks reference library and `secret`.
fn verify(secret: &str, received: &Received) {
    let webhook = standardwebhooks::Webhook::new(secret).unwrap();
    webhook
        .verify(&received.body, &received.headers)
        .unwrap_or_else(|e| panic!("signature refused ({e:?}): {received:?}"));
    // Any other secret is refused.
    let other = common::webhooks::new_secret();
    assert!(
        standardwebhooks::Webhook::new(&other)
            .unwrap()
            .verify(&received.body, &received.headers)
            .is_err()
    );
}

async fn register(h: &Harness, url: &str, events: &[&str]) -> (String, String) {
    let made = h
        .post_as(
            &h.key,
            "/api/v1/webhooks",
            json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    (
        made.body["id"].as_str().unwrap().to_string(),
        made.body["secret"].as_str().unwrap().to_string(),
    )
}

async fn link_changes_arrive_signed_and_in_order(h: &Harness) {
    let receiver = Receiver::start().await;
    let (id, secret) = register(
        h,
        &receiver.url(),
        &["link.created", "link.updated", "link.deleted"],
    )
    .await;
    // Another tenant's endpoint hears nothing of this tenant's links.
    let other = Receiver::start().await;
    let made = h
        .post_as(
            &h.other_key,
            "/api/v1/webhooks",
            json!({"url": other.url(), "events": ["link.created"]}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);

    let link = h
        .create_link(json!({"url": "https://example.com/one", "alias": "hooked"}))
        .await;
    assert_eq!(link["code"], "hooked");
    for n in 2..=3 {
        let changed = h
            .patch_as(
                &h.key,
                "/api/v1/links/hooked",
                json!({"url": format!("https://example.com/{n}")}),
            )
            .await;
        assert_eq!(changed.status, 200, "{}", changed.text);
    }
    let gone = h.delete_as(&h.key, "/api/v1/links/hooked").await;
    assert_eq!(gone.status, 204, "{}", gone.text);

    let got = receiver.wait_for(4).await;
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "link.created",
            "link.updated",
            "link.updated",
            "link.deleted"
        ]
    );
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    for received in &got {
        verify(&secret, received);
        let body = received.json();
        assert_eq!(body["data"]["code"], "hooked");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(
            received
                .header("content-type")
                .starts_with("application/json")
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 4, "each message has its own id");
    assert_eq!(got[3].json()["data"]["state"], "deleted");

    // A test event, whatever the endpoint subscribes to.
    let test = h
        .post_as(&h.key, &format!("/api/v1/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(test.status, 202, "{}", test.text);
    let got = receiver.wait_for(5).await;
    assert_eq!(got[4].json()["type"], "webhook.test");
    assert_eq!(got[4].header("webhook-id"), test.body["message_id"]);
    verify(&secret, &got[4]);
    assert!(
        other.received().is_empty(),
        "another tenant heard of the link"
    );
}

async fn a_failing_endpoint_is_retried_then_dead_lettered(h: &Harness) {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let (id, secret) = register(h, &receiver.url(), &["link.created"]).await;
    h.create_link(json!({"url": "https://example.com/x", "alias": "doomed"}))
        .await;
    // Queued by the relay; nothing delivers in the services (webhooks.deliver off):
    // this worker runs on a clock the test moves.
    let settings = common::config::Settings::load_from(
        common::config::ServiceKind::Stats,
        None,
        h.env.clone(),
    )
    .unwrap()
    .webhooks;
    let now = Arc::new(Mutex::new(common::time::now_ms()));
    let clock = {
        let now = now.clone();
        Arc::new(move || *now.lock().unwrap()) as stats_service::webhooks::Clock
    };
    let metrics = common::metrics::Metrics::new("stats-service");
    let worker =
        stats_service::webhooks::Deliverer::new(h.db.clone(), settings, &metrics, clock).unwrap();
    let state = |h: &Harness| {
        let db = h.db.clone();
        let id = id.clone();
        async move {
            let list = common::db::webhooks::messages(db.primary(), &id, None, None, 10)
                .await
                .unwrap();
            list.first()
                .map(|m| (m.state.clone(), m.attempts, m.next_attempt_at))
        }
    };
    // The relay queues it within a poll.
    for _ in 0..100 {
        if state(h).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut attempts = 0;
    let mut waits = Vec::new();
    loop {
        let (s, made, next_at) = state(h).await.expect("a message");
        if s == "dead" {
            break;
        }
        assert_eq!(s, "pending");
        assert_eq!(made, attempts);
        {
            let mut now = now.lock().unwrap();
            *now = next_at.max(*now);
        }
        let started = worker.clone().round().await.unwrap();
        assert_eq!(started, 1);
        worker.settle().await;
        attempts += 1;
        let (_, made, later) = state(h).await.unwrap();
        assert_eq!(made, attempts);
        waits.push(later - next_at);
        assert!(attempts < 60, "never dead-lettered");
    }
    // Backed off: 5 s (±20 %), doubling, to an hour at most; about a day in all.
    assert!((4_000..=6_000).contains(&waits[0]), "{waits:?}");
    assert!(waits[1] > waits[0] && waits.iter().all(|w| *w <= 3_600_000 * 12 / 10));
    assert_eq!(receiver.received().len(), attempts as usize);
    for received in receiver.received() {
        verify(&secret, &received);
    }
    // The dead letter and the delivery log, over the API.
    let dead = h
        .get_as(
            &h.key,
            &format!("/api/v1/webhooks/{id}/messages?state=dead"),
        )
        .await;
    assert_eq!(dead.status, 200, "{}", dead.text);
    let items = dead.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", dead.text);
    assert_eq!(items[0]["type"], "link.created");
    assert_eq!(items[0]["link"], "doomed");
    assert_eq!(items[0]["state"], "dead");
    assert_eq!(items[0]["attempts"], attempts);
    let message_id = items[0]["id"].as_str().unwrap().to_string();
    let mut logged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/webhooks/{id}/attempts?limit=7&cursor={c}"),
            None => format!("/api/v1/webhooks/{id}/attempts?limit=7"),
        };
        let page = h.get_as(&h.key, &path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        logged.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(logged.len(), attempts as usize);
    let numbers: Vec<i64> = logged
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=attempts).rev().collect::<Vec<_>>(),
        "newest first, each once"
    );
    assert!(
        logged
            .iter()
            .all(|a| a["status"] == 500 && a["message_id"] == message_id.as_str())
    );
    assert_eq!(logged[0]["response"], "received");

    // Replayed once the receiver is back: delivered, with the same id.
    h.post_as(
        &h.key,
        &format!("/api/v1/webhooks/{id}/messages/msg_0000000000000000000000/replay"),
        json!({}),
    )
    .await
    .assert_problem(404, "not-found");
    receiver.answer(204);
    let replayed = h
        .post_as(
            &h.key,
            &format!("/api/v1/webhooks/{id}/messages/{message_id}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(replayed.status, 202, "{}", replayed.text);
    assert_eq!(replayed.body["replayed"], 1);
    assert_eq!(worker.clone().round().await.unwrap(), 1);
    worker.settle().await;
    assert_eq!(state(h).await.unwrap().0, "delivered");
    let got = receiver.received();
    let last = got.last().unwrap();
    verify(&secret, last);
    assert_eq!(last.header("webhook-id"), got[0].header("webhook-id"));
    // Nothing is dead any more; replaying all of them puts none back.
    let again = h
        .post_as(&h.key, &format!("/api/v1/webhooks/{id}/replay"), json!({}))
        .await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.body["replayed"], 0);
    // Kept for `webhooks.retention` (30 d), then forgotten with the log.
    assert_eq!(worker.purge().await.unwrap(), 0);
    *now.lock().unwrap() += 31 * 86_400_000;
    assert_eq!(worker.purge().await.unwrap(), 1);
    assert!(state(h).await.is_none());
    let log = h
        .get_as(&h.key, &format!("/api/v1/webhooks/{id}/attempts"))
        .await;
    assert_eq!(log.body["items"], json!([]), "{}", log.text);
    for bad in ["state=lost", "cursor=x", "limit=0"] {
        h.get_as(&h.key, &format!("/api/v1/webhooks/{id}/messages?{bad}"))
            .await
            .assert_problem(400, "invalid-query");
    }
    h.get_as(
        &h.key,
        &format!("/api/v1/webhooks/{id}/attempts?cursor=1.2"),
    )
    .await
    .assert_problem(400, "invalid-query");
}

async fn a_slow_endpoint_does_not_delay_another_tenant(h: &Harness) {
    // One tenant's endpoint answers after 9 s (inside the 10 s timeout), and is owed
    // more messages than there are delivery slots in all (`webhooks.concurrency`,
    // 32): without a share per endpoint, they would take every slot.
    let slow = Receiver::start().await;
    slow.slow(Duration::from_secs(9));
    register(h, &slow.url(), &["link.created"]).await;
    for n in 0..40 {
        h.create_link(json!({"url": format!("https://example.com/slow/{n}")}))
            .await;
    }
    let fast = Receiver::start().await;
    let made = h
        .post_as(
            &h.other_key,
            "/api/v1/webhooks",
            json!({"url": fast.url(), "events": ["link.created"]}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    // Once the slow endpoint holds its share of the slots, the other tenant's link.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let link = h
        .api(
            reqwest::Method::POST,
            "/api/v1/links",
            Some(&h.other_key),
            Some(json!({"url": "https://example.com/fast"})),
        )
        .await;
    assert_eq!(link.status, 201, "{}", link.text);
    let got = fast.wait_within(1, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the other tenant waited {:?}",
        started.elapsed()
    );
    assert_eq!(got[0].json()["data"]["url"], "https://example.com/fast");
    assert!(
        slow.received().is_empty(),
        "nothing answered yet at the slow endpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_a_minute_loses_nothing_and_keeps_order() {
    let h = Harness::postgres(&LOCAL).await;
    let receiver = Receiver::start().await;
    let (_, secret) = register(&h, &receiver.url(), &["link.created", "link.updated"]).await;
    receiver.down();
    let down_at = std::time::Instant::now();
    // Events under load while it is down: 10 links, each made and changed 4 times.
    let links = 10;
    for n in 0..links {
        h.create_link(json!({"url": "https://example.com/v0", "alias": format!("down-{n}")}))
            .await;
    }
    for version in 1..=4 {
        for n in 0..links {
            let changed = h
                .patch_as(
                    &h.key,
                    &format!("/api/v1/links/down-{n}"),
                    json!({"url": format!("https://example.com/v{version}")}),
                )
                .await;
            assert_eq!(changed.status, 200, "{}", changed.text);
        }
    }
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(down_at.elapsed())).await;
    assert!(receiver.received().is_empty());
    receiver.up().await;
    // Retries back off 5, 10, 20, 40 s: the next comes within about 40 s of coming up.
    let got = receiver
        .wait_within(links * 5, Duration::from_secs(90))
        .await;
    let mut seen: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut ids = std::collections::HashSet::new();
    for received in &got {
        verify(&secret, received);
        // At least once: a repeat carries the id already seen, and is not counted.
        if !ids.insert(received.header("webhook-id").to_string()) {
            continue;
        }
        let body = received.json();
        seen.entry(body["data"]["code"].as_str().unwrap().to_string())
            .or_default()
            .push(format!(
                "{} {}",
                body["type"].as_str().unwrap(),
                body["data"]["url"]
            ));
    }
    assert_eq!(seen.len(), links);
    for (code, events) in &seen {
        assert_eq!(events.len(), 5, "{code}: {events:?}");
        assert!(events[0].starts_with("link.created"), "{code}: {events:?}");
        assert!(
            events[1..].iter().all(|e| e.starts_with("link.updated")),
            "{code}: {events:?}"
        );
    }
    h.stop().await;
}
