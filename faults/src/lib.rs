//! Fault and security scenarios against the real services on loopback.
//!
//! Each scenario starts its own servers ([`world::World`]: PostgreSQL primary +
//! streaming replica, optionally a 6-node Redis Cluster), runs the services as
//! child processes ([`procs`]), drives bounded load at them ([`load`]), breaks
//! something, and reports what was acknowledged, lost and wrong together with the
//! figures it is held to ([`report`]). `scripts/faults` builds the binaries and runs
//! this; `--quick` shortens every scenario so the whole set fits in `./scripts/test`.
//!
//! Every load loop is bounded in requests and time, and talks to 127.0.0.1 only.

pub mod load;
pub mod procs;
pub mod proxy;
pub mod report;
pub mod scenarios;
pub mod world;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use futures_util::future::BoxFuture;

use crate::report::Outcome;
use crate::world::Paths;

#[derive(Parser, Debug)]
#[command(
    name = "faults",
    about = "Fault and security scenarios against the real services"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Short runs of every scenario (the set `./scripts/test` runs).
    #[arg(long, global = true)]
    pub quick: bool,
    /// Only the mixed-load soak, for this long (e.g. `30m`, `90s`).
    #[arg(long, value_parser = parse_duration)]
    pub soak: Option<Duration>,
    /// Only these scenarios (names as printed by `--list`).
    #[arg(long = "only", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Print the scenario names and exit.
    #[arg(long)]
    pub list: bool,
    /// Directory of the service binaries (create-service, lookup-service,
    /// stats-service, shortener).
    #[arg(long, default_value = "target/debug")]
    pub bin_dir: PathBuf,
    /// Where logs and the JSON report go (default: a new temp directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// One process of the `ids` scenario: leases a worker id, writes ids to a file.
    #[command(hide = true)]
    IdsChild {
        #[arg(long)]
        db: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        threads: usize,
        #[arg(long)]
        out: PathBuf,
    },
}

/// What a scenario gets: where the binaries are, where logs go, and how long to run.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub paths: Paths,
    pub quick: bool,
    pub soak: Option<Duration>,
}

impl Ctx {
    /// `quick` in a quick run, else `full`.
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }
}

static SCENARIO_START: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

/// Prints a progress line with the time since the scenario started, so a slow step
/// shows where it is.
pub fn step(what: &str) {
    let since = SCENARIO_START
        .lock()
        .ok()
        .and_then(|s| *s)
        .map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!("   · {since:6.1} s  {what}");
}

type Scenario = fn(&Ctx) -> BoxFuture<'_, Result<Outcome>>;

/// Every scenario, in the order they run.
pub fn scenarios() -> Vec<(&'static str, Scenario)> {
    use scenarios::*;
    vec![
        ("redis-master-killed", |c| Box::pin(redis::master_killed(c))),
        ("redis-down", |c| Box::pin(redis::all_down(c))),
        ("redis-noeviction", |c| Box::pin(redis::noeviction(c))),
        ("change-create-killed", |c| {
            Box::pin(changes::create_killed_redis_paused(c))
        }),
        ("change-master-killed", |c| {
            Box::pin(changes::master_killed_after_write(c))
        }),
        ("change-edits-across-kill", |c| {
            Box::pin(changes::edits_across_kill(c))
        }),
        ("replica-frozen", |c| Box::pin(postgres::replica_frozen(c))),
        ("replica-delayed", |c| {
            Box::pin(postgres::replica_delayed(c))
        }),
        ("primary-failover", |c| {
            Box::pin(postgres::primary_failover(c))
        }),
        ("postgres-down", |c| Box::pin(postgres::all_down(c))),
        ("stats-killed", |c| Box::pin(processes::stats_killed(c))),
        ("lookup-killed", |c| Box::pin(processes::lookup_killed(c))),
        ("ids", |c| Box::pin(ids::across_processes(c))),
        ("clock-stepped-back", |c| {
            Box::pin(ids::clock_stepped_back(c))
        }),
        ("code-scan", |c| Box::pin(security::code_scan(c))),
        ("api-keys", |c| Box::pin(security::api_keys(c))),
        ("no-outbound", |c| Box::pin(security::no_outbound(c))),
        ("blocklist", |c| Box::pin(security::blocklist(c))),
        ("stored-urls", |c| Box::pin(security::stored_urls(c))),
    ]
}

pub async fn main(cli: Cli) -> Result<bool> {
    if let Some(Command::IdsChild {
        db,
        count,
        threads,
        out,
    }) = cli.command
    {
        scenarios::ids::child(&db, count, threads, &out).await?;
        return Ok(true);
    }
    if cli.list {
        for (name, _) in scenarios() {
            println!("{name}");
        }
        println!("soak");
        return Ok(true);
    }
    let out = match cli.out {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("shortener-faults-{}", chrono_stamp())),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("mkdir {}", out.display()))?;
    let bin_dir = std::fs::canonicalize(&cli.bin_dir)
        .with_context(|| format!("binaries directory {}", cli.bin_dir.display()))?;
    let ctx = Ctx {
        paths: Paths {
            bin_dir,
            log_dir: world::log_dir(&out)?,
        },
        quick: cli.quick,
        soak: cli.soak,
    };

    // Scenarios run on their own tasks, which need what they borrow for the whole
    // program; this process exists for one run.
    let ctx: &'static Ctx = Box::leak(Box::new(ctx));
    let mut chosen: Vec<(&'static str, Scenario)> = if cli.soak.is_some() {
        vec![("soak", |c| Box::pin(scenarios::soak::run(c)))]
    } else {
        scenarios()
    };
    if !cli.only.is_empty() {
        let known: Vec<&str> = chosen.iter().map(|(n, _)| *n).collect();
        for name in &cli.only {
            anyhow::ensure!(known.contains(&name.as_str()), "no scenario named {name}");
        }
        chosen.retain(|(n, _)| cli.only.iter().any(|o| o == n));
    }

    println!(
        "faults: {} scenario(s), {} run, logs in {}",
        chosen.len(),
        if ctx.quick { "quick" } else { "full" },
        ctx.paths.log_dir.display()
    );
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for (name, scenario) in chosen {
        println!("\n--> {name}");
        let t = Instant::now();
        if let Ok(mut s) = SCENARIO_START.lock() {
            *s = Some(t);
        }
        // Each scenario's logs in a directory of its own.
        let mut own = ctx.clone();
        own.paths.log_dir = ctx.paths.log_dir.join(name);
        std::fs::create_dir_all(&own.paths.log_dir)?;
        let own: &'static Ctx = Box::leak(Box::new(own));
        // On its own task, so that a panic in one scenario is reported as its failure
        // and the others still run.
        let mut outcome = match tokio::spawn(scenario(own)).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => Outcome::failed(name, &e),
            Err(e) => Outcome::failed(name, &anyhow::anyhow!("the scenario panicked: {e}")),
        };
        outcome.seconds = t.elapsed().as_secs_f64();
        print!("{}", outcome.render());
        outcomes.push(outcome);
    }

    let passed = outcomes.iter().filter(|o| o.passed()).count();
    println!(
        "\nfaults: {passed}/{} scenarios passed in {:.0} s",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    for o in outcomes.iter().filter(|o| !o.passed()) {
        println!("  FAILED: {}", o.name);
    }
    let report = out.join("faults.json");
    std::fs::write(&report, serde_json::to_string_pretty(&outcomes)?)?;
    std::fs::write(out.join("faults.md"), report::markdown(&outcomes))?;
    println!("report: {} (and faults.md)", report.display());
    Ok(passed == outcomes.len())
}

fn chrono_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{secs}-{}", std::process::id())
}

/// `30m`, `90s`, `1h`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().map_err(|_| format!("not a duration: {s}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("not a duration: {s} (use s, m or h)")),
    };
    if secs == 0 {
        return Err("the soak needs a positive duration".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn scenario_names_are_unique() {
        let mut names: Vec<_> = scenarios().into_iter().map(|(n, _)| n).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
