//! Security properties measured on the running services: scanning codes is cheap for
//! us and throttled, API keys are strong and never written down in clear, and no
//! request is ever made to a link's target.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use common::ids::{ALPHABET, CODE_LEN, CodeCodec, SnowflakeId};
use futures_util::StreamExt;
use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::Ctx;
use crate::procs::{Kind, Service};
use crate::report::Outcome;
use crate::world::{Spec, Stack, World};

/// Unknown codes scanned, uncounted, before the measured scan opens the pools.
const WARM_UP: usize = 2_000;

/// 100k codes that do not exist (10k quick), each asked for once and then again
/// within the negative-cache lifetime, spread over many addresses; then one address
/// scanning alone until its 404 budget trips.
pub async fn code_scan(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("code-scan", "unknown codes");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let lookup = world
        .service(
            Kind::Lookup,
            &[("SHORTENER__HTTP__CLIENT_IP_HEADER", "X-Real-IP")],
        )
        .await?;
    let total: usize = ctx.pick(10_000, 100_000);
    let codec = CodeCodec::new(world.code_key.as_bytes());
    let now_ms = common::time::now_ms() as u64;
    let (random, plausible, aliases) = {
        let mut rng = rand::rng();
        // What an outsider can send: any 11 characters of the code alphabet.
        let random: Vec<String> = (0..total * 2 / 5)
            .map(|_| {
                (0..CODE_LEN)
                    .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                    .collect()
            })
            .collect();
        // The worst case no outsider can make without the code key: canonical codes of
        // ids minted in the past year, which pass every check before storage.
        let plausible: Vec<String> = (0..total * 2 / 5 + WARM_UP)
            .filter_map(|_| {
                // Any moment between the project's epoch and an hour ago (a younger
                // code is also checked on the primary when the replica lacks it).
                let since_epoch = now_ms.saturating_sub(common::ids::EPOCH_MS).max(7_200_000);
                let ms = now_ms.saturating_sub(rng.random_range(3_600_000..since_epoch));
                let raw = (ms.saturating_sub(common::ids::EPOCH_MS) << 22)
                    | rng.random_range(0..(1u64 << 22));
                SnowflakeId::from_u64(raw).map(|id| codec.encode(id).to_string())
            })
            .collect();
        // Alias-shaped words: an alias can be anything of its alphabet, so none can be
        // ruled out before storage.
        let aliases: Vec<String> = (0..total / 5)
            .map(|i| format!("scan-{i}-{}", rng.random_range(0..1_000_000u32)))
            .collect();
        (random, plausible, aliases)
    };

    // A serving instance has its pools open; a fresh one opens up to 32 connections
    // at once for the first burst, and a replica read that waits for one past its
    // deadline is asked of the primary too. The warm-up codes are not counted.
    let (warm_up, plausible) = plausible.split_at(WARM_UP.min(plausible.len()));
    let mut spread = 0u32;
    scan(&world, &lookup, warm_up, &mut spread).await?;
    o.measured(
        "warm-up before counting",
        format!("{} other canonical codes", warm_up.len()),
    );
    for (label, codes, goal) in [
        ("random 11-character codes", random.as_slice(), Some(1.0)),
        (
            "canonical codes of past ids (key holder only)",
            plausible,
            Some(1.0),
        ),
        // An alias carries no creation time, so a replica's "no such alias" may be lag
        // and the primary is asked too: two queries, once per negative-cache lifetime.
        ("alias-shaped words", aliases.as_slice(), None),
    ] {
        // In chunks of 2000, each asked for twice in a row: the repeat comes well
        // inside the negative-cache lifetime (30 s in Redis) however slow the machine.
        let (mut first_queries, mut all_queries) = (0.0, 0.0);
        let mut first = Scan::default();
        let mut again = Scan::default();
        for chunk in codes.chunks(2000) {
            let a = db_queries(&world, &lookup).await?;
            let f = scan(&world, &lookup, chunk, &mut spread).await?;
            let b = db_queries(&world, &lookup).await?;
            let r = scan(&world, &lookup, chunk, &mut spread).await?;
            let c = db_queries(&world, &lookup).await?;
            first_queries += b - a;
            all_queries += c - a;
            first.not_found += f.not_found;
            first.other += f.other;
            again.not_found += r.not_found;
            again.other += r.other;
        }
        let n = codes.len() as f64;
        let per_code = all_queries / n;
        o.acknowledged += first.not_found + again.not_found;
        o.wrong += first.other + again.other;
        let value = format!(
            "{per_code:.3} ({:.0} + {:.0} on the repeat, {} codes)",
            first_queries,
            all_queries - first_queries,
            codes.len()
        );
        let label = format!("{label}: DB queries per code");
        match goal {
            Some(goal) => o.figure(
                &label,
                value,
                format!("≤ {goal}"),
                // Counted in whole queries: a float ratio of 40000/40000 may not be ≤ 1.
                all_queries.round() <= (goal * n).round()
                    && first.not_found as usize == codes.len(),
            ),
            None => o.measured(&label, value),
        }
    }
    o.figure(
        "answers other than 404",
        o.wrong.to_string(),
        "0",
        o.wrong == 0,
    );

    // One address alone: its 404 budget (burst 60, then 120 a minute) runs out.
    let http = &world.http;
    let mut before_429 = 0;
    let mut retry_after = None;
    for code in random.iter().take(500) {
        let r = http
            .get(lookup.url(&format!("/{code}")))
            .header("X-Real-IP", "192.0.2.1")
            .send()
            .await?;
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            break;
        }
        before_429 += 1;
    }
    o.figure(
        "one address: 404s before 429",
        format!(
            "{before_429} (Retry-After: {})",
            retry_after.as_deref().unwrap_or("none")
        ),
        "≤ 70, with Retry-After",
        before_429 <= 70 && retry_after.is_some(),
    );

    // Neighbouring ids (one worker, one millisecond, sequence n and n+1) give codes
    // that share no more than chance: 11/62 ≈ 0.18 positions on average.
    let base = (now_ms.saturating_sub(common::ids::EPOCH_MS) << 22) | (3 << 12);
    let codes: Vec<String> = (0..4096u64)
        .filter_map(|s| SnowflakeId::from_u64(base | s).map(|id| codec.encode(id).to_string()))
        .collect();
    let same: usize = codes
        .windows(2)
        .map(|w| {
            w[0].bytes()
                .zip(w[1].bytes())
                .filter(|(a, b)| a == b)
                .count()
        })
        .sum();
    let mean = same as f64 / (codes.len() - 1) as f64;
    o.figure(
        "neighbouring ids: characters in the same place",
        format!("{mean:.3} of {CODE_LEN}"),
        "< 0.5 (chance: 0.18)",
        mean < 0.5,
    );
    drop(world);
    Ok(o)
}

#[derive(Debug, Default)]
struct Scan {
    not_found: u64,
    other: u64,
}

/// Asks for every code once, 32 at a time, each address used for 20 requests (well
/// inside the per-address 404 budget, so the limiter does not hide the cost).
async fn scan(world: &World, lookup: &Service, codes: &[String], spread: &mut u32) -> Result<Scan> {
    let not_found = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let start = *spread;
    *spread += codes.len() as u32;
    futures_util::stream::iter(codes.iter().enumerate())
        .for_each_concurrent(32, |(i, code)| {
            let (not_found, other) = (not_found.clone(), other.clone());
            let n = (start + i as u32) / 20;
            let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
            let request = world
                .http
                .get(lookup.url(&format!("/{code}")))
                .header("X-Real-IP", ip)
                .timeout(Duration::from_secs(5));
            async move {
                match request.send().await {
                    Ok(r) if r.status() == 404 => not_found.fetch_add(1, Ordering::Relaxed),
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
        .await;
    Ok(Scan {
        not_found: not_found.load(Ordering::Relaxed),
        other: other.load(Ordering::Relaxed),
    })
}

async fn db_queries(world: &World, lookup: &Service) -> Result<f64> {
    world
        .metric(lookup, "shortener_lookup_db_queries_total", "")
        .await
}

/// The key the CLI printed: its strength, its form at rest, and its absence from every
/// log line the services wrote while it (and wrong keys) were used, at debug level.
pub async fn api_keys(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("api-keys", "requests");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let debug = [("SHORTENER__TELEMETRY__FILTER", "debug")];
    let create = world.service(Kind::Create, &debug).await?;
    let stats = world.service(Kind::Stats, &debug).await?;
    let lookup = world.service(Kind::Lookup, &debug).await?;
    let key = world.api_key.clone();
    let secret = key
        .strip_prefix(common::auth::KEY_PREFIX)
        .context("the key lacks its prefix")?
        .to_string();
    let bits = secret.len() as f64 * 62f64.log2();
    let alphabet_ok = secret.bytes().all(|b| b.is_ascii_alphanumeric());
    o.figure(
        "key strength",
        format!("{bits:.0} bits ({} base62 characters)", secret.len()),
        "≥ 128 bits",
        bits >= 128.0 && alphabet_ok,
    );

    // At rest: the SHA-256 of the key, and nothing that contains the key.
    let pool = world.primary_pool().await?;
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT CAST(row_to_json(k) AS TEXT) FROM api_keys k")
            .fetch_all(&pool)
            .await?;
    pool.close().await;
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    let hashed = rows.iter().any(|r| r.contains(&digest));
    let in_clear = rows.iter().filter(|r| r.contains(&secret)).count();
    o.figure(
        "stored as SHA-256 of the key, never in clear",
        format!(
            "digest found: {}, rows with the key: {in_clear}",
            if hashed { "yes" } else { "no" }
        ),
        "yes, 0",
        hashed && in_clear == 0,
    );

    // Use it, and wrong keys of the same shape, on every service.
    let http = &world.http;
    let mut wrong_keys = Vec::new();
    for _ in 0..5 {
        let mut w: Vec<u8> = key.bytes().collect();
        let at = rand::rng().random_range(3..w.len());
        w[at] = if w[at] == b'a' { b'b' } else { b'a' };
        wrong_keys.push(String::from_utf8(w)?);
    }
    let mut requests = 0u64;
    let mut unexpected = Vec::new();
    let created: serde_json::Value = http
        .post(create.url("/api/v1/links"))
        .bearer_auth(&key)
        .json(&json!({ "url": "https://example.com/keys" }))
        .send()
        .await?
        .json()
        .await?;
    let code = created["code"].as_str().context("no code")?.to_string();
    requests += 1;
    let checks: Vec<(String, Option<&str>, u16)> = vec![
        (create.url("/api/v1/links"), Some(key.as_str()), 200),
        (
            create.url(&format!("/api/v1/links/{code}")),
            Some(key.as_str()),
            200,
        ),
        (
            stats.url(&format!("/api/v1/links/{code}/stats")),
            Some(key.as_str()),
            200,
        ),
        (lookup.url(&format!("/{code}")), Some(key.as_str()), 302),
    ];
    for (url, bearer, status) in &checks {
        let mut r = http.get(url);
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        let got = r.send().await?.status().as_u16();
        requests += 1;
        if got != *status {
            unexpected.push(format!("{url}: {got}"));
        }
    }
    for wrong in &wrong_keys {
        for url in [
            create.url("/api/v1/links"),
            stats.url(&format!("/api/v1/links/{code}/stats")),
        ] {
            let got = http.get(&url).bearer_auth(wrong).send().await?.status();
            requests += 1;
            if got != 401 {
                unexpected.push(format!("{url} with a wrong key: {got}"));
            }
        }
        // Malformed schemes are refused too, and must not be echoed to logs.
        let got = http
            .get(create.url("/api/v1/links"))
            .header("Authorization", format!("Token {wrong}"))
            .send()
            .await?
            .status();
        requests += 1;
        if got != 401 {
            unexpected.push(format!("Token scheme: {got}"));
        }
    }
    o.acknowledged = requests;
    o.wrong = unexpected.len() as u64;
    for u in &unexpected {
        o.note(format!("unexpected answer: {u}"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs: Vec<(String, String)> = [&create, &stats, &lookup]
        .iter()
        .map(|s| (s.name.clone(), s.log_text()))
        .collect();
    let lines: usize = logs.iter().map(|(_, t)| t.lines().count()).sum();
    let mut leaks = 0;
    for (name, text) in &logs {
        for needle in std::iter::once(&secret).chain(wrong_keys.iter()) {
            let needle = needle.trim_start_matches(common::auth::KEY_PREFIX);
            let found = text.matches(needle).count();
            if found > 0 {
                o.note(format!("{name} logged a key {found} time(s)"));
            }
            leaks += found;
        }
    }
    o.figure(
        "log lines with a key (right or wrong), at debug level",
        format!("{leaks} of {lines}"),
        "0",
        leaks == 0 && lines > 0,
    );
    o.note("keys are looked up by their SHA-256 and the stored digest is compared with subtle::ConstantTimeEq (common/src/auth.rs)");
    Ok(o)
}

/// Creates, follows, edits, draws and counts links whose targets are a listener on
/// loopback: the listener must see no connection at all.
pub async fn no_outbound(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("no-outbound", "requests");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let Stack {
        create,
        stats,
        lookup,
        ..
    } = world.stack(&[], "", 0).await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let connections = Arc::new(AtomicU64::new(0));
    let counter = connections.clone();
    let accept = tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });

    let http = &world.http;
    let key = world.api_key.clone();
    let target = |n: u32| format!("http://127.0.0.1:{port}/target/{n}");
    let mut requests = 0u64;
    let mut failed = Vec::new();
    let mut check = |what: &str, status: u16, want: u16| {
        requests += 1;
        if status != want {
            failed.push(format!("{what}: {status}"));
        }
    };
    let r = http
        .post(create.url("/api/v1/links"))
        .bearer_auth(&key)
        .json(&json!({ "url": target(1), "alias": "probe-one", "tags": ["x"] }))
        .send()
        .await?;
    check("create", r.status().as_u16(), 201);
    let r = http
        .post(create.url("/api/v1/links/bulk"))
        .bearer_auth(&key)
        .json(&json!({ "items": (2..12).map(|n| json!({ "url": target(n) })).collect::<Vec<_>>() }))
        .send()
        .await?;
    check("bulk", r.status().as_u16(), 200);
    let code = "probe-one";
    for _ in 0..3 {
        let r = http.get(lookup.url(&format!("/{code}"))).send().await?;
        check("follow", r.status().as_u16(), 302);
        let r = http.head(lookup.url(&format!("/{code}"))).send().await?;
        check("follow (HEAD)", r.status().as_u16(), 302);
    }
    for path in [
        format!("/api/v1/links/{code}"),
        format!("/api/v1/links/{code}/qr"),
        format!("/api/v1/links/{code}/qr?format=svg"),
        "/api/v1/links".to_string(),
        "/".to_string(),
    ] {
        let r = http.get(create.url(&path)).bearer_auth(&key).send().await?;
        check(&path, r.status().as_u16(), 200);
    }
    let r = http
        .patch(create.url(&format!("/api/v1/links/{code}")))
        .bearer_auth(&key)
        .json(&json!({ "url": target(99) }))
        .send()
        .await?;
    check("edit", r.status().as_u16(), 200);
    let r = http.get(lookup.url(&format!("/{code}"))).send().await?;
    check("follow after edit", r.status().as_u16(), 302);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = http
        .get(stats.url(&format!("/api/v1/links/{code}/stats")))
        .bearer_auth(&key)
        .send()
        .await?;
    check("stats", r.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    accept.abort();

    let seen = connections.load(Ordering::Relaxed);
    o.acknowledged = requests - failed.len() as u64;
    o.wrong = failed.len() as u64;
    for f in &failed {
        o.note(format!("unexpected answer: {f}"));
    }
    o.figure(
        "connections to the link targets",
        seen.to_string(),
        "0",
        seen == 0,
    );
    Ok(o)
}

/// A host blocked with the admin CLI while two lookup instances hold its links in
/// their local caches and in Redis: both refuse the redirect within a bound, and
/// serve it again once the host is unblocked.
pub async fn blocklist(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("blocklist", "redirects");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let create = world.service(Kind::Create, &[]).await?;
    let lookups = [
        world.service(Kind::Lookup, &[]).await?,
        world.service(Kind::Lookup, &[]).await?,
    ];
    let links = world
        .create_links(&create, "https://phish.blocked-by-faults.example/login", 20)
        .await?;
    let code = &links[0].code;
    for lookup in &lookups {
        let r = world
            .http
            .get(lookup.url(&format!("/{code}")))
            .send()
            .await?;
        anyhow::ensure!(
            r.status() == 302,
            "not redirecting before the block: {}",
            r.status()
        );
    }
    let mut env = world.tool_env();
    if let Some(redis) = &world.redis {
        env.push(("SHORTENER__REDIS__URLS".into(), redis.urls().join(",")));
    }
    let cli = world.binary("shortener");
    let host = "blocked-by-faults.example";

    let started = std::time::Instant::now();
    crate::procs::run_tool(
        &cli,
        &["hosts", "block", host, "--reason", "phishing"],
        &env,
    )
    .await?;
    let cli_took = started.elapsed();
    let blocked = until_all(&world, &lookups, code, 410).await;
    o.measured(
        "`shortener hosts block` took",
        crate::report::millis(cli_took),
    );
    o.figure(
        "every lookup instance refuses the link (410)",
        blocked.map_or_else(|| "never".into(), crate::report::millis),
        "≤ 2 s after the block",
        blocked.is_some_and(|t| t <= Duration::from_secs(2)),
    );
    crate::procs::run_tool(&cli, &["hosts", "unblock", host], &env).await?;
    let unblocked = until_all(&world, &lookups, code, 302).await;
    o.figure(
        "every lookup instance redirects again after unblock",
        unblocked.map_or_else(|| "never".into(), crate::report::millis),
        "≤ 2 s after the unblock",
        unblocked.is_some_and(|t| t <= Duration::from_secs(2)),
    );
    // Creating a new link to the host while it is blocked is refused too.
    crate::procs::run_tool(&cli, &["hosts", "block", host], &env).await?;
    // The create side hears of it the same way: poll until it refuses.
    let started = std::time::Instant::now();
    let mut refused_after = None;
    while started.elapsed() < Duration::from_secs(10) {
        let r = world
            .http
            .post(create.url("/api/v1/links"))
            .bearer_auth(&world.api_key)
            .json(&json!({ "url": format!("https://www.{host}/new") }))
            .send()
            .await?;
        if r.status().is_client_error() {
            refused_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    o.figure(
        "create refuses the host's subdomains after the block",
        refused_after.map_or_else(|| "never".into(), crate::report::millis),
        "≤ 2 s",
        refused_after.is_some_and(|t| t <= Duration::from_secs(2)),
    );
    o.acknowledged = 2 * lookups.len() as u64 + 1;
    Ok(o)
}

/// Time until every lookup answers `status` for `code` (polled every 10 ms, 10 s at most).
async fn until_all(
    world: &World,
    lookups: &[Service],
    code: &str,
    status: u16,
) -> Option<Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let mut all = true;
        for lookup in lookups {
            let r = world
                .http
                .get(lookup.url(&format!("/{code}")))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if !r.is_ok_and(|r| r.status() == status) {
                all = false;
                break;
            }
        }
        if all {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Rows written straight into the database, past every API check (a restored backup,
/// a bad migration, an operator's UPDATE): the redirect re-checks the stored URL and
/// never sends a non-http(s) target or a control character in `Location`.
pub async fn stored_urls(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("stored-urls", "redirects");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let lookup = world.service(Kind::Lookup, &[]).await?;
    let hostile = [
        "javascript:alert(document.domain)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:msgbox(1)",
        "https://example.com/\r\nSet-Cookie: stolen=1",
        "https://example.com/\nLocation: https://evil.example/",
        "https://example.com/\u{1}soh",
        "https://example.com/\u{7f}del",
        "https://example.com/tab\there",
        "//evil.example/protocol-relative",
        "https:evil.example",
        "ftp://example.com/file",
        " https://example.com/leading-space",
        "https://exa mple.com/",
    ];
    let pool = world.primary_pool().await?;
    let now = common::time::now_ms();
    for (i, url) in hostile.iter().enumerate() {
        sqlx::query(
            "INSERT INTO links (code, id, tenant_id, url, created_at, updated_at) \
             VALUES ($1, $2, 'faults', $3, $4, $4)",
        )
        .bind(format!("hostile-{i}"))
        .bind(i as i64 + 1)
        .bind(*url)
        .bind(now - 86_400_000)
        .execute(&pool)
        .await?;
    }
    // A clean row beside them, to show the same path does redirect.
    sqlx::query(
        "INSERT INTO links (code, id, tenant_id, url, created_at, updated_at) \
         VALUES ('clean-one', 1000, 'faults', 'https://example.com/clean', $1, $1)",
    )
    .bind(now - 86_400_000)
    .execute(&pool)
    .await?;
    pool.close().await;

    let mut refused = 0u64;
    let mut answers = std::collections::BTreeMap::<u16, u64>::new();
    for i in 0..hostile.len() {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let r = world
                .http
                .request(method, lookup.url(&format!("/hostile-{i}")))
                .send()
                .await?;
            *answers.entry(r.status().as_u16()).or_default() += 1;
            let location = r.headers().get("location");
            let unsafe_location = location.is_some_and(|l| {
                let l = l.as_bytes();
                !(l.starts_with(b"http://") || l.starts_with(b"https://"))
                    || l.iter().any(|b| b.is_ascii_control() || *b == b' ')
            });
            if unsafe_location || r.status().is_server_error() {
                o.wrong += 1;
                o.note(format!("hostile-{i}: {} {:?}", r.status(), location));
            } else {
                refused += 1;
            }
        }
    }
    let clean = world.http.get(lookup.url("/clean-one")).send().await?;
    o.acknowledged = refused;
    o.figure(
        "hostile stored URLs answered without an unsafe Location or a 5xx",
        format!("{refused} of {}", hostile.len() * 2),
        "all",
        refused == hostile.len() as u64 * 2,
    );
    o.measured(
        "their answers",
        answers
            .iter()
            .map(|(s, n)| format!("{s} ×{n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    o.figure(
        "a clean stored URL beside them",
        clean.status().as_u16().to_string(),
        "302",
        clean.status() == 302,
    );
    Ok(o)
}
