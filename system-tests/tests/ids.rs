//! Worker ids and Snowflake ids across processes: a worker id is never shared by two
//! live processes, and ids from several processes never collide.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::config::{ServiceKind, Settings};
use common::deps::Deps;
use common::ids::{Generator, SnowflakeId, SystemClock};
use common::lease::WorkerLease;

const CHILD_ENV: &str = "SHORTENER_TEST_ID_CHILD";
const IDS_PER_PROCESS: usize = 250_000;
const PROCESSES: usize = 4;

fn settings(db_url: &str, worker: Option<u16>) -> Settings {
    let mut env = vec![
        ("SHORTENER__DATABASE__URL".to_string(), db_url.to_string()),
        (
            "SHORTENER__DATABASE__MIGRATE_ON_START".into(),
            "true".into(),
        ),
        ("SHORTENER__IDS__CODE_KEY".into(), support::CODE_KEY.into()),
        ("SHORTENER__HTTP__BIND".into(), "127.0.0.1".into()),
        ("SHORTENER__HTTP__PORT".into(), "0".into()),
        ("SHORTENER__TELEMETRY__FILTER".into(), "error".into()),
    ];
    if let Some(worker) = worker {
        env.push(("SHORTENER__IDS__WORKER_ID".into(), worker.to_string()));
    }
    Settings::load_from(ServiceKind::Create, None, env).unwrap()
}

/// create-service on its own dependencies, as its binary starts it.
async fn start(settings: Settings) -> anyhow::Result<common::server::Running> {
    let deps = common::deps::Deps::connect(ServiceKind::Create, settings).await?;
    create_service::start(deps).await
}

async fn lease_conflict_refuses_start(db_url: &str) {
    let first = start(settings(db_url, Some(5))).await.unwrap();
    let second = start(settings(db_url, Some(5))).await;
    let error = second.expect_err("a second process with worker id 5 must not start");
    let message = format!("{error:#}");
    assert!(
        message.contains("worker id 5 is held by another live process"),
        "{message}"
    );
    // Another id is fine meanwhile.
    let other = start(settings(db_url, Some(6))).await.unwrap();
    // Once the first stops (and releases its lease), the id is free again.
    first.stop().await.unwrap();
    let third = start(settings(db_url, Some(5))).await.unwrap();
    third.stop().await.unwrap();
    other.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_conflict_refuses_start_on_postgres() {
    let db = test_kit::bed().await.fresh_database().await;
    lease_conflict_refuses_start(&db.primary_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_conflict_refuses_start_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/l.db?mode=rwc", dir.path().display());
    lease_conflict_refuses_start(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_ordinal_becomes_the_worker_id() {
    let db = test_kit::bed().await.fresh_database().await;
    let mut s = settings(&db.primary_url, None);
    s.ids.pod_name = Some("shortener-create-7".into());
    let deps = Deps::connect(ServiceKind::Create, s).await.unwrap();
    let lease = WorkerLease::acquire(&deps.db, &deps.settings.ids, &deps.background)
        .await
        .unwrap();
    assert_eq!(lease.worker().get(), 7);
    lease.release(lease.floor_ms()).await;
}

/// Child mode of [`no_duplicate_ids_across_processes`]: lease a worker id from the
/// database, write 250k ids to a file, release. A no-op in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (db_url, out) = spec.split_once('|').unwrap();
    let deps = Deps::connect(ServiceKind::Create, settings(db_url, None))
        .await
        .unwrap();
    let lease = WorkerLease::acquire(&deps.db, &deps.settings.ids, &deps.background)
        .await
        .unwrap();
    let generator = Generator::new(
        lease.worker(),
        Arc::new(SystemClock),
        Duration::from_millis(10),
    );
    let mut bytes = Vec::with_capacity(IDS_PER_PROCESS * 8);
    for _ in 0..IDS_PER_PROCESS {
        bytes.extend_from_slice(&generator.next_id().unwrap().as_u64().to_le_bytes());
    }
    // Write then rename, so a sibling never counts a half-written file.
    let tmp = format!("{out}.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, out).unwrap();
    // Hold the lease until every sibling has finished: four processes alive at once
    // must hold four different worker ids.
    let dir = std::path::Path::new(out).parent().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
        })
        .count()
        < PROCESSES
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lease.release(generator.last_issued_ms()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_duplicate_ids_across_processes() {
    let db = test_kit::bed().await.fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|i| {
            let out = dir.path().join(format!("ids-{i}"));
            let child = std::process::Command::new(&exe)
                .args(["id_child", "--exact", "--nocapture"])
                .env(CHILD_ENV, format!("{}|{}", db.primary_url, out.display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let mut all = HashSet::with_capacity(PROCESSES * IDS_PER_PROCESS);
    let mut workers = HashSet::new();
    for (mut child, out) in children {
        assert!(child.wait().unwrap().success());
        let bytes = std::fs::read(out).unwrap();
        assert_eq!(bytes.len(), IDS_PER_PROCESS * 8);
        let ids: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids increase within a process"
        );
        let worker = SnowflakeId::from_u64(ids[0]).unwrap().worker().get();
        assert!(workers.insert(worker), "worker id {worker} leased twice");
        all.extend(ids);
    }
    assert_eq!(all.len(), PROCESSES * IDS_PER_PROCESS, "duplicate ids");
}

/// A successor of a worker id starts above every id its predecessor issued, even when
/// its own clock is behind the predecessor's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successor_starts_above_predecessor_ids() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/l.db?mode=rwc", dir.path().display());
    let deps = Deps::connect(ServiceKind::Create, settings(&url, Some(3)))
        .await
        .unwrap();
    let first = WorkerLease::acquire(&deps.db, &deps.settings.ids, &deps.background)
        .await
        .unwrap();
    assert_eq!(first.floor_ms(), 0, "a fresh worker id has no history");
    let generator = Generator::new(first.worker(), Arc::new(SystemClock), Duration::ZERO)
        .with_floor(first.floor_ms());
    let mut newest = 0;
    for _ in 0..1000 {
        newest = generator.next_id().unwrap().as_u64();
    }
    first.release(generator.last_issued_ms()).await;

    let second = WorkerLease::acquire(&deps.db, &deps.settings.ids, &deps.background)
        .await
        .unwrap();
    let newest_ms = SnowflakeId::from_u64(newest).unwrap().timestamp_ms();
    assert_eq!(second.floor_ms(), newest_ms);
    // A clock one second behind the predecessor's is refused, never reused.
    let behind = common::ids::ManualClock::new(newest_ms - 1000);
    let lagging = Generator::new(second.worker(), Arc::new(behind.clone()), Duration::ZERO)
        .with_floor(second.floor_ms());
    assert!(lagging.next_id().is_err());
    behind.set(newest_ms + 1);
    assert!(lagging.next_id().unwrap().as_u64() > newest);
    second.release(lagging.last_issued_ms()).await;
}
