//! What moka itself costs per cached entry, apart from what lookup stores in it: one
//! million entries with an 11-byte `String` key (a code) and an `Arc<u64>` value,
//! in a `HashMap`, in moka's future cache as lookup configures it (weigher and
//! per-entry expiry), and in moka with `u64` keys. Reports resident bytes per entry.
//!
//!   cargo run --release -p common --example l1_floor

use std::sync::Arc;
use std::time::{Duration, Instant};

const N: u64 = 1_000_000;

/// Resident set size in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

struct Hour;

impl moka::Expiry<String, Arc<u64>> for Hour {
    fn expire_after_create(&self, _: &String, _: &Arc<u64>, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(3600))
    }
}

fn report(what: &str, before: u64) {
    println!("{what:<44} {:>4} B/entry", rss().saturating_sub(before) / N);
}

/// Each layout is measured in a fresh process: memory freed by one would be reused
/// by the next without showing in the resident size.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let code = |i: u64| format!("{i:011}");
    let before = rss();
    match std::env::args().nth(1).as_deref() {
        Some("hashmap") => {
            let map: std::collections::HashMap<String, Arc<u64>> =
                (0..N).map(|i| (code(i), Arc::new(i))).collect();
            report("HashMap<String, Arc<u64>>", before);
            drop(map);
        }
        Some("moka-string") => {
            let cache: moka::future::Cache<String, Arc<u64>> = moka::future::Cache::builder()
                .max_capacity(1 << 30)
                .weigher(|k: &String, _| u32::try_from(k.len() + 64).unwrap_or(u32::MAX))
                .expire_after(Hour)
                .build();
            for i in 0..N {
                cache.insert(code(i), Arc::new(i)).await;
            }
            cache.run_pending_tasks().await;
            report("moka future, String key, weigher + expiry", before);
        }
        Some("moka-u64") => {
            let cache: moka::future::Cache<u64, Arc<u64>> =
                moka::future::Cache::builder().max_capacity(2 * N).build();
            for i in 0..N {
                cache.insert(i, Arc::new(i)).await;
            }
            cache.run_pending_tasks().await;
            report("moka future, u64 key, count-bounded", before);
        }
        _ => {
            let Ok(me) = std::env::current_exe() else {
                return;
            };
            for layout in ["hashmap", "moka-string", "moka-u64"] {
                let _ = std::process::Command::new(&me).arg(layout).status();
            }
        }
    }
}
