//! Queues click batches shaped like lookup-service's for `bench/clicks`.
//!
//!   batches --db URL --batches N [--clicks C] [--keys K] [--codes M]
//!
//! Each batch carries C clicks (default 10000: one second of a lookup instance at
//! 10k redirects/s) spread over K distinct (code, hour, referrer, user agent, country)
//! keys (default 2000), on M codes (default 10000, named `bench-<n>`), with one
//! visitor hash per two clicks. The batches are written with the outbox insert lookup
//! itself uses; stats-service should not be running yet. Prints the clicks queued.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use common::clicks::{ClickBatch, ClickCount, ClickKey, HOUR_MS, Visitors};
use common::config::DatabaseSettings;
use common::db::{Database, clicks};

const USAGE: &str = "usage: batches --db URL --batches N [--clicks C] [--keys K] [--codes M]";

const REFERRERS: [Option<&str>; 5] = [
    None,
    Some("news.example.com"),
    Some("t.co"),
    Some("www.google.com"),
    Some("mail.example.org"),
];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];
const COUNTRIES: [&str; 4] = ["DE", "US", "FR", "JP"];

/// xorshift64*: reproducible spread without a dependency.
struct Spread(u64);

impl Spread {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % below.max(1)
    }
}

fn batch(n: u64, clicks: u64, keys: u64, codes: u64, now: i64, spread: &mut Spread) -> ClickBatch {
    let hour = now - now.rem_euclid(HOUR_MS);
    let day = now - now.rem_euclid(common::clicks::DAY_MS);
    let mut counts = Vec::with_capacity(keys as usize);
    let mut visitors: std::collections::HashMap<String, Vec<i64>> = Default::default();
    for k in 0..keys {
        let code = format!("bench-{}", spread.next(codes));
        // Even shares, the remainder on the first keys: exactly `clicks` in all.
        let share = clicks / keys + u64::from(k < clicks % keys);
        let referrer = REFERRERS[spread.next(REFERRERS.len() as u64) as usize];
        counts.push(ClickCount {
            key: ClickKey {
                code: code.clone(),
                hour,
                referrer: referrer.map(str::to_string),
                user_agent: Some(AGENTS[spread.next(AGENTS.len() as u64) as usize].to_string()),
                country: Some(COUNTRIES[spread.next(COUNTRIES.len() as u64) as usize].to_string()),
                route: None,
            },
            clicks: share,
        });
        let hashes = visitors.entry(code).or_default();
        for _ in 0..share.div_ceil(2) {
            hashes.push(spread.next(1 << 40) as i64);
        }
    }
    ClickBatch {
        batch_id: format!("bench-batch-{n}"),
        created_at: now,
        counts,
        visitors: visitors
            .into_iter()
            .map(|(code, hashes)| Visitors { code, day, hashes })
            .collect(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut db = None;
    let (mut batches, mut clicks, mut keys, mut codes) = (None, 10_000u64, 2_000u64, 10_000u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--db" => db = Some(value()?),
            "--batches" => batches = Some(value()?.parse::<u64>()?),
            "--clicks" => clicks = value()?.parse()?,
            "--keys" => keys = value()?.parse()?,
            "--codes" => codes = value()?.parse()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let (Some(url), Some(batches)) = (db, batches) else {
        bail!("{USAGE}");
    };
    if keys == 0 || clicks < keys {
        bail!("--clicks must be at least --keys, and --keys at least 1");
    }
    let db = Database::connect(&DatabaseSettings::direct(&url, 4))?;
    let now = common::time::now_ms();
    let mut spread = Spread(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    let mut total = 0;
    for n in 0..batches {
        let batch = batch(n, clicks, keys, codes, now, &mut spread);
        total += batch.clicks();
        clicks::enqueue(db.primary(), &batch).await?;
    }
    eprintln!(
        "queued {batches} batches, {total} clicks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("{total}");
    Ok(())
}
