//! Seeds the `links` table for `bench/redirect`.
//!
//!   seed --db postgres://USER@127.0.0.1:PORT/DB --count N --codes FILE
//!        [--key KEY] [--hot H] [--ruled R] [--worker W]
//!
//! Writes N rows with `COPY ... FROM STDIN` (one transaction), then `ANALYZE`, and
//! the N codes to FILE, one a line, in insertion order. Ids come from the Snowflake
//! generator (worker W, default 1000) on a clock set one hour back, codes from the
//! keyed permutation (`CodeCodec`) under KEY (default `$SHORTENER__IDS__CODE_KEY`),
//! so the codes are exactly those lookup-service decodes with the same key.
//!
//! The first H rows (default 1000) point at `https://example.com/`, the Location the
//! reference servers answer with, so the hot-path comparison sends the same bytes;
//! the rest have an 80-character URL, closer to real links, for the memory figures.
//! The R rows after the first H (default 0) have redirect rules: five rules no
//! browser of the benchmark matches (so each is tried) and three variants of
//! `https://example.com/` plus one letter, for the cost of choosing a target.
//! Every row is an active 302 link of the anonymous tenant created an hour ago.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::ids::{CodeCodec, Generator, ManualClock, WorkerId};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

const USAGE: &str = "usage: seed --db URL --count N --codes FILE [--key KEY] [--hot H] \
     [--ruled R] [--worker W]";

/// The routing of the ruled rows, as the `routing` column stores it.
const RULED: &str = r#"{"rules":[{"when":{"device":["bot"]},"url":"https://example.com/bots"},{"when":{"os":["ios","android"]},"url":"https://example.com/app"},{"when":{"language":["de","fr","it"]},"url":"https://example.com/eu"},{"when":{"country":["JP","KR","TW"]},"url":"https://example.com/asia"},{"when":{"device":["tablet"],"os":["windows"]},"url":"https://example.com/surface"}],"variants":[{"url":"https://example.com/a","weight":50},{"url":"https://example.com/b","weight":30},{"url":"https://example.com/c","weight":20}]}"#;

/// Rows per COPY data message.
const CHUNK_ROWS: usize = 20_000;

/// One generator millisecond holds 4096 sequence numbers; the manual clock is moved
/// on before they run out, so the generator never waits.
const IDS_PER_MS: u64 = 4000;

const HOUR_MS: i64 = 3_600_000;

struct Args {
    db: String,
    key: String,
    count: u64,
    codes: PathBuf,
    hot: u64,
    ruled: u64,
    worker: u16,
}

fn parse() -> Result<Args> {
    let mut db = None;
    let mut key = std::env::var("SHORTENER__IDS__CODE_KEY").ok();
    let mut count = None;
    let mut codes = None;
    let mut hot = 1000;
    let mut ruled = 0;
    let mut worker = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--db" => db = Some(value()?),
            "--key" => key = Some(value()?),
            "--count" => count = Some(value()?.parse().context("--count")?),
            "--codes" => codes = Some(PathBuf::from(value()?)),
            "--hot" => hot = value()?.parse().context("--hot")?,
            "--ruled" => ruled = value()?.parse().context("--ruled")?,
            "--worker" => worker = value()?.parse().context("--worker")?,
            other => bail!("unknown argument {other:?}"),
        }
    }
    let key = key.context("--key KEY or $SHORTENER__IDS__CODE_KEY is required")?;
    if key.len() < 16 {
        bail!("the code key must have at least 16 bytes");
    }
    Ok(Args {
        db: db.context("--db URL is required")?,
        key,
        count: count.context("--count N is required")?,
        codes: codes.context("--codes FILE is required")?,
        hot,
        ruled,
        worker,
    })
}

fn now_ms() -> Result<i64> {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(i64::try_from(since.as_millis())?)
}

async fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let created_at = now_ms()? - HOUR_MS;
    let clock = ManualClock::new(u64::try_from(created_at)?);
    let worker = WorkerId::new(args.worker).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ids = Generator::new(worker, Arc::new(clock.clone()), Duration::from_millis(10));
    let codec = CodeCodec::new(args.key.as_bytes());

    let mut codes_out = std::io::BufWriter::new(
        std::fs::File::create(&args.codes)
            .with_context(|| format!("creating {}", args.codes.display()))?,
    );
    let mut conn = PgConnection::connect(&args.db)
        .await
        .context("connecting to PostgreSQL")?;
    let mut copy = conn
        .copy_in_raw(
            "COPY links (code, id, tenant_id, url, redirect_status, tags, max_visits, \
             expires_at, created_at, updated_at, routing) FROM STDIN",
        )
        .await
        .context("starting COPY")?;
    let mut chunk = String::with_capacity(CHUNK_ROWS * 160);
    for i in 0..args.count {
        if i > 0 && i % IDS_PER_MS == 0 {
            clock.advance(1);
        }
        let id = ids.next_id().map_err(|e| anyhow::anyhow!("{e}"))?;
        let code = codec.encode(id);
        writeln!(codes_out, "{code}")?;
        // Text COPY format: tab-separated, \N for NULL. Nothing here needs escaping.
        if i < args.hot {
            let _ = writeln!(
                chunk,
                "{code}\t{id}\t~anonymous\thttps://example.com/\t302\t[]\t\\N\t\\N\t{created_at}\t{created_at}\t\\N"
            );
        } else if i < args.hot + args.ruled {
            let _ = writeln!(
                chunk,
                "{code}\t{id}\t~anonymous\thttps://example.com/\t302\t[]\t\\N\t\\N\t{created_at}\t{created_at}\t{RULED}"
            );
        } else {
            let _ = writeln!(
                chunk,
                "{code}\t{id}\t~anonymous\thttps://www.example.com/articles/2026/{i:08}/a-fairly-typical-slug?ref=bench\t302\t[]\t\\N\t\\N\t{created_at}\t{created_at}\t\\N"
            );
        }
        if (i + 1) % CHUNK_ROWS as u64 == 0 {
            copy.send(chunk.as_bytes()).await.context("COPY data")?;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        copy.send(chunk.as_bytes()).await.context("COPY data")?;
    }
    let rows = copy.finish().await.context("finishing COPY")?;
    codes_out.flush()?;
    sqlx::query("ANALYZE links")
        .execute(&mut conn)
        .await
        .context("ANALYZE")?;
    let _ = conn.close().await;
    eprintln!(
        "seed: {rows} links in {:.1} s (first {} to https://example.com/, {} more with rules), codes in {}",
        started.elapsed().as_secs_f64(),
        args.hot.min(args.count),
        args.ruled.min(args.count.saturating_sub(args.hot)),
        args.codes.display()
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("seed: {e:#}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
