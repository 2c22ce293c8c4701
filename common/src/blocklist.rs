//! The runtime host blocklist: the `blocked_hosts` table, held in memory by every
//! lookup and create instance, and the admin operations that change it.
//!
//! An instance loads the table when it starts, then reloads it whole on each
//! blocklist-changed announcement and at least every `links.blocklist_reload`
//! (a little sooner, so that instances started together spread their reloads). The
//! announcement makes a change apply within a round trip; the timer bounds how long
//! an instance that missed it (Redis down, subscription lost, or the all-in-one,
//! whose admin commands run in another process) keeps the old list: one period after
//! the change is committed. A failed reload keeps the list it has.
//!
//! Reloads read the primary: a replica may not yet have the change an announcement
//! is about.

use crate::audit::AuditAction;
use crate::db::audit;
use crate::db::blocked_hosts::{self, BlockedHostRecord};
use crate::db::{Database, StoreError};
use crate::deps::Deps;
use crate::events::{Bus, Event, Topic};
pub use crate::held::Announcement;
use crate::held::{self, KeeperNames};
use crate::links::{HostEntry, HostEntryError};

/// Longest reason kept with a block.
pub const MAX_REASON_CHARS: usize = 500;

/// Why an admin operation on the blocklist failed.
#[derive(Debug, thiserror::Error)]
pub enum BlocklistError {
    #[error(transparent)]
    Host(#[from] HostEntryError),
    #[error("the reason must be at most {MAX_REASON_CHARS} characters, without control characters")]
    Reason,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of a block or an unblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The normalised host the operation was about.
    pub host: String,
    /// False when the host was blocked already (block) or was not blocked (unblock).
    pub changed: bool,
    pub announced: Announcement,
}

/// Blocks `host` and its subdomains, then announces the change on `bus`.
pub async fn block(
    db: &Database,
    bus: &Bus,
    host: &str,
    reason: &str,
) -> Result<Outcome, BlocklistError> {
    let entry = HostEntry::parse(host)?;
    let reason = reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(BlocklistError::Reason);
    }
    let record = BlockedHostRecord {
        host: entry.into_string(),
        reason: reason.to_string(),
        created_at: crate::time::now_ms(),
    };
    let mut tx = db.begin_write().await?;
    let changed = blocked_hosts::insert(&mut *tx, &record).await?;
    if changed {
        let after = serde_json::json!({ "blocked": true, "reason": record.reason });
        audit::insert(
            &mut *tx,
            &operator_entry(AuditAction::HostBlocked, &record.host, None, Some(after)),
        )
        .await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Outcome {
        announced: held::announce(bus, Event::BlocklistChanged, changed).await,
        host: record.host,
        changed,
    })
}

/// Unblocks `host` (exactly as it was blocked: a subdomain of a blocked host cannot
/// be unblocked on its own), then announces the change on `bus`.
pub async fn unblock(db: &Database, bus: &Bus, host: &str) -> Result<Outcome, BlocklistError> {
    let entry = HostEntry::parse(host)?;
    let mut tx = db.begin_write().await?;
    let removed = blocked_hosts::delete(&mut *tx, entry.as_str()).await?;
    let changed = removed.is_some();
    if let Some(reason) = removed {
        let before = serde_json::json!({ "blocked": true, "reason": reason });
        audit::insert(
            &mut *tx,
            &operator_entry(
                AuditAction::HostUnblocked,
                entry.as_str(),
                Some(before),
                None,
            ),
        )
        .await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Outcome {
        announced: held::announce(bus, Event::BlocklistChanged, changed).await,
        host: entry.into_string(),
        changed,
    })
}

/// The audit row of a blocklist change made at the command line: deployment-wide, so
/// of no tenant.
fn operator_entry(
    action: AuditAction,
    host: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> crate::domain::audit::Entry {
    crate::audit::outside_request(
        &crate::audit::operator(),
        "",
        action,
        crate::audit::target("host", host),
        crate::audit::changes(before, after),
    )
}

/// Every runtime block, by host (the configured `links.blocked_hosts` are not in it).
pub async fn list(db: &Database) -> Result<Vec<BlockedHostRecord>, StoreError> {
    blocked_hosts::list(db.primary()).await
}

/// Keeps `deps.blocklist` equal to the table (see [`crate::held`]): loads it now
/// (returning once the first load is done or failed), then reloads on every
/// announcement on `deps.bus` and at least every `links.blocklist_reload`. A
/// blocklist already kept by another service of this process is left to it.
pub async fn keep_current(deps: &Deps) {
    let blocklist = deps.blocklist.clone();
    if !blocklist.claim_keeper() {
        return;
    }
    let db = deps.db.clone();
    let names = KeeperNames {
        what: "blocklist",
        size: (
            "blocklist_hosts",
            "Blocked host entries in effect (configured and runtime).",
        ),
        reloads: (
            "blocklist_reloads_total",
            "Reloads of the runtime host blocklist, by result (ok, error).",
        ),
        subscription_up: (
            "blocklist_subscription_up",
            "1 while blocklist announcements can reach this instance.",
        ),
    };
    held::keep_current(deps, Topic::Blocklist, names, move || {
        let (blocklist, db) = (blocklist.clone(), db.clone());
        async move {
            let hosts = blocked_hosts::hosts(db.primary()).await?;
            Ok(blocklist.replace_runtime(&hosts))
        }
    })
    .await;
}
