//! The scenarios, one module per part that breaks, and what they share: the click
//! check that ends most of them.

pub mod changes;
pub mod ids;
pub mod postgres;
pub mod processes;
pub mod redis;
pub mod security;
pub mod soak;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::load::{Bounds, Link, Redirects};
use crate::report::{Outcome, percent};
use crate::world::World;

/// Redirect load for a scenario: 16 clients, bounded by `time`, 2 s per request.
pub fn redirect_bounds(time: Duration) -> Bounds {
    Bounds {
        concurrency: 16,
        max_requests: 50_000_000,
        max_time: time,
        request_timeout: Duration::from_secs(2),
    }
}

/// Records a redirect load's results: acknowledged = 302s to the right place,
/// wrong = 404/410/other Location, plus the success ratio against `goal` percent.
pub fn redirect_figures(outcome: &mut Outcome, seen: &Redirects, goal: f64) {
    outcome.acknowledged += seen.ok;
    outcome.wrong += seen.wrong;
    let ratio = if seen.total() == 0 {
        0.0
    } else {
        seen.ok as f64 * 100.0 / seen.total() as f64
    };
    outcome.figure(
        "redirects that succeeded",
        format!("{} of {}", percent(seen.ok, seen.total()), seen.total()),
        format!("≥ {goal}%"),
        seen.total() > 0 && ratio >= goal,
    );
    if seen.failed > 0 {
        outcome.note(format!("failed redirects: {}", seen.failure_kinds()));
    }
    outcome.measured("slowest redirect", crate::report::millis(seen.max_latency));
}

/// Every 302 must become exactly one counted click: waits for stats-service to apply
/// what is queued, then records lost (counted < answered) or wrong (counted more).
pub async fn click_figures(
    outcome: &mut Outcome,
    world: &World,
    links: &[Link],
    redirected: u64,
    allowed_loss: u64,
) -> Result<()> {
    let codes: Vec<String> = links.iter().map(|l| l.code.clone()).collect();
    let counted = world.settled_clicks(&codes, redirected as i64).await?;
    let lost = (redirected as i64 - counted).max(0) as u64;
    let extra = (counted - redirected as i64).max(0) as u64;
    outcome.lost += lost;
    outcome.lost_allowed += allowed_loss;
    outcome.wrong += extra;
    let goal = if allowed_loss == 0 {
        "= redirects".to_string()
    } else {
        format!("≥ redirects − {allowed_loss}")
    };
    outcome.figure(
        "clicks counted / redirects answered",
        format!("{counted} / {redirected}"),
        goal,
        lost <= allowed_loss && extra == 0,
    );
    Ok(())
}

/// The links shared by a load's tasks.
pub fn shared(links: &[Link]) -> Arc<Vec<Link>> {
    Arc::new(links.to_vec())
}
