//! The id generator: no duplicate among 10M ids from 4 processes × 4 threads holding
//! leased worker ids, and no smaller id when the clock is stepped back.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::config::{ServiceKind, Settings};
use common::deps::Deps;
use common::ids::{Clock, Generator, SnowflakeId, SystemClock, WorkerId};
use common::lease::WorkerLease;

use crate::Ctx;
use crate::report::{Outcome, seconds};
use crate::world::{Spec, World};

const PROCESSES: usize = 4;
const THREADS: usize = 4;

/// 10M ids from 4 processes of 4 threads each, every process with a worker id leased
/// from the database; all collected and checked for duplicates.
pub async fn across_processes(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("ids", "ids");
    let world = World::start(&ctx.paths, Spec::POSTGRES).await?;
    let total: usize = 10_000_000;
    let dir = ctx.paths.log_dir.join("ids");
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(&dir)? {
        std::fs::remove_file(entry?.path())?;
    }
    let me = std::env::current_exe()?;
    let started = Instant::now();
    let mut children = Vec::new();
    for p in 0..PROCESSES {
        let out = dir.join(format!("{p}.ids"));
        children.push(
            tokio::process::Command::new(&me)
                .args(["ids-child", "--db", &world.pg.primary_url(crate::world::DB)])
                .args(["--count", &(total / PROCESSES).to_string()])
                .args(["--threads", &THREADS.to_string()])
                .arg("--out")
                .arg(&out)
                .kill_on_drop(true)
                .spawn()?,
        );
    }
    for mut child in children {
        let status = tokio::time::timeout(Duration::from_secs(300), child.wait())
            .await
            .context("an id process did not finish within 300 s")??;
        if !status.success() {
            bail!("an id process failed: {status}");
        }
    }
    let elapsed = started.elapsed();

    let mut ids: Vec<u64> = Vec::with_capacity(total);
    let mut workers = std::collections::BTreeSet::new();
    for p in 0..PROCESSES {
        let bytes = std::fs::read(dir.join(format!("{p}.ids")))?;
        let before = ids.len();
        ids.extend(
            bytes
                .chunks_exact(8)
                .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes)),
        );
        if let Some(id) = ids.get(before).copied().and_then(SnowflakeId::from_u64) {
            workers.insert(id.worker().get());
        }
    }
    let issued = ids.len() as u64;
    ids.sort_unstable();
    ids.dedup();
    let duplicates = issued - ids.len() as u64;
    o.acknowledged = issued;
    o.wrong = duplicates;
    o.figure(
        "ids issued",
        issued.to_string(),
        "10000000",
        issued == total as u64,
    );
    o.figure("duplicates", duplicates.to_string(), "0", duplicates == 0);
    o.figure(
        "distinct worker ids among the processes",
        workers.len().to_string(),
        PROCESSES.to_string(),
        workers.len() == PROCESSES,
    );
    o.measured(
        "time for all processes (start, lease, issue, write)",
        seconds(elapsed),
    );
    for entry in std::fs::read_dir(&dir)? {
        std::fs::remove_file(entry?.path())?;
    }
    Ok(o)
}

/// Child process: lease a worker id, issue `count` ids from `threads` threads (each
/// thread checks its own ids only grow), write them to `out`, hold the lease until
/// the siblings are done too, release.
pub async fn child(db: &str, count: usize, threads: usize, out: &Path) -> Result<()> {
    let env = vec![
        ("SHORTENER__DATABASE__URL".to_string(), db.to_string()),
        (
            "SHORTENER__IDS__CODE_KEY".into(),
            "ids-child-code-key-0123".into(),
        ),
        ("SHORTENER__TELEMETRY__FILTER".into(), "error".into()),
    ];
    let settings = Settings::load_from(ServiceKind::Create, None, env)?;
    let deps = Deps::connect(ServiceKind::Create, settings).await?;
    let lease = WorkerLease::acquire(&deps.db, &deps.settings.ids, &deps.background).await?;
    let generator = Arc::new(
        Generator::new(
            lease.worker(),
            Arc::new(SystemClock),
            Duration::from_millis(10),
        )
        .with_floor(lease.floor_ms()),
    );
    let per_thread = count / threads;
    let parts: Vec<Result<Vec<u64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let generator = generator.clone();
                s.spawn(move || {
                    let mut ids = Vec::with_capacity(per_thread);
                    let mut last = 0u64;
                    for _ in 0..per_thread {
                        let id = generator.next_id()?.as_u64();
                        if id <= last {
                            bail!("id {id} after {last} in one thread");
                        }
                        last = id;
                        ids.push(id);
                    }
                    Ok(ids)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked")))
            })
            .collect()
    });
    let mut bytes = Vec::with_capacity(count * 8);
    for part in parts {
        for id in part? {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
    }
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, out)?;
    // Four live processes must hold four worker ids: keep the lease until every
    // sibling has written its file.
    let dir = out.parent().context("output has no directory")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let done = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "ids"))
            .count();
        if done >= PROCESSES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lease.release(generator.last_issued_ms()).await;
    Ok(())
}

/// Wall clock plus an offset that the scenario steps: the injectable clock.
struct SteppedClock {
    offset_ms: AtomicI64,
}

impl Clock for SteppedClock {
    fn now_ms(&self) -> u64 {
        let now = SystemClock.now_ms() as i64 + self.offset_ms.load(Ordering::Relaxed);
        now.max(0) as u64
    }
}

/// Four threads issue ids while the clock is stepped back by 3 ms, 8 ms (inside the
/// 10 ms the generator waits out), 50 ms and 2 s (beyond it: refused until the clock
/// has caught up). No thread may ever get an id at or below one it already had, and
/// no id may repeat.
pub async fn clock_stepped_back(_ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("clock-stepped-back", "ids");
    let clock = Arc::new(SteppedClock {
        offset_ms: AtomicI64::new(0),
    });
    let generator = Arc::new(Generator::new(
        WorkerId::new(1)?,
        clock.clone(),
        Duration::from_millis(10),
    ));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refusals = Arc::new(AtomicU64::new(0));
    let steps = [3i64, 8, 50, 2000];
    let started = Instant::now();
    let worker = {
        let (generator, stop, refusals) = (generator.clone(), stop.clone(), refusals.clone());
        tokio::task::spawn_blocking(move || {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        let (generator, stop, refusals) = (&generator, &stop, &refusals);
                        s.spawn(move || {
                            let mut ids = Vec::new();
                            let mut smaller = 0u64;
                            let mut last = 0u64;
                            while !stop.load(Ordering::Relaxed) {
                                match generator.next_id() {
                                    Ok(id) => {
                                        let id = id.as_u64();
                                        if id <= last {
                                            smaller += 1;
                                        }
                                        last = id;
                                        ids.push(id);
                                    }
                                    Err(_) => {
                                        refusals.fetch_add(1, Ordering::Relaxed);
                                        std::thread::sleep(Duration::from_millis(1));
                                    }
                                }
                                // Bounded: a thread issues at most 2M ids.
                                if ids.len() >= 2_000_000 {
                                    std::thread::sleep(Duration::from_millis(1));
                                }
                            }
                            (ids, smaller)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok())
                    .collect::<Vec<_>>()
            })
        })
    };
    for step in steps {
        tokio::time::sleep(Duration::from_millis(300)).await;
        clock.offset_ms.fetch_sub(step, Ordering::Relaxed);
    }
    // The last step (2 s) is only caught up by real time.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let parts = worker.await?;
    let mut all = Vec::new();
    let mut smaller = 0;
    for (ids, s) in parts {
        smaller += s;
        all.extend(ids);
    }
    let issued = all.len() as u64;
    all.sort_unstable();
    all.dedup();
    let duplicates = issued - all.len() as u64;
    let stats = generator.stats();
    o.acknowledged = issued;
    o.wrong = smaller + duplicates;
    o.measured(
        "clock steps back",
        format!(
            "{} ms over {}",
            steps.map(|s| s.to_string()).join(", "),
            seconds(started.elapsed())
        ),
    );
    o.figure(
        "ids at or below an earlier one (per thread)",
        smaller.to_string(),
        "0",
        smaller == 0,
    );
    o.figure("duplicates", duplicates.to_string(), "0", duplicates == 0);
    o.figure(
        "steps waited out / refused",
        format!(
            "{} / {}",
            stats.clock_backwards_waits, stats.clock_backwards_refusals
        ),
        "waits > 0 and refusals > 0 (both paths taken)",
        stats.clock_backwards_waits > 0 && stats.clock_backwards_refusals > 0,
    );
    o.measured(
        "refused calls",
        refusals.load(Ordering::Relaxed).to_string(),
    );
    Ok(o)
}
