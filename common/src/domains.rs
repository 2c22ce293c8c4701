//! The branded domains every lookup instance holds in memory, so that a request for a
//! host nobody holds is answered without touching storage. Kept current like the
//! blocklist (see [`crate::held`]): reloaded on every domains-changed announcement,
//! which the domains API makes, and at least every `links.blocklist_reload`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::db::domains;
use crate::deps::Deps;
use crate::events::Topic;
use crate::held::{self, KeeperNames};

type Names = HashSet<Box<str>>;

/// The set of branded domain names, shared by every service of a process.
#[derive(Clone, Debug, Default)]
pub struct Domains {
    names: Arc<RwLock<Arc<Names>>>,
    /// Whether a service of this process keeps the set current already.
    kept: Arc<AtomicBool>,
}

impl Domains {
    /// Whether some tenant holds `name` (in the spelling domains are held in).
    pub fn contains(&self, name: &str) -> bool {
        match self.names.read() {
            Ok(names) => names.contains(name),
            // A writer only swaps an `Arc`; the value behind a poisoned lock is whole.
            Err(poisoned) => poisoned.into_inner().contains(name),
        }
    }

    /// Replaces the set; returns its size.
    pub fn replace<S: AsRef<str>>(&self, names: impl IntoIterator<Item = S>) -> usize {
        let names: Names = names.into_iter().map(|n| n.as_ref().into()).collect();
        let len = names.len();
        let names = Arc::new(names);
        match self.names.write() {
            Ok(mut current) => *current = names,
            Err(poisoned) => *poisoned.into_inner() = names,
        }
        len
    }

    fn claim_keeper(&self) -> bool {
        !self.kept.swap(true, Ordering::AcqRel)
    }
}

/// Keeps `deps.domains` equal to the table: loads it now, then on every announcement
/// and at least every `links.blocklist_reload`. A set already kept by another service
/// of this process is left to it.
pub async fn keep_current(deps: &Deps) {
    let set = deps.domains.clone();
    if !set.claim_keeper() {
        return;
    }
    let db = deps.db.clone();
    let names = KeeperNames {
        what: "domains",
        size: ("domains_held", "Branded domains this instance serves."),
        reloads: (
            "domains_reloads_total",
            "Reloads of the branded domains, by result (ok, error).",
        ),
        subscription_up: (
            "domains_subscription_up",
            "1 while domain announcements can reach this instance.",
        ),
    };
    held::keep_current(deps, Topic::Domains, names, move || {
        let (set, db) = (set.clone(), db.clone());
        async move {
            let names = domains::names(db.primary()).await?;
            Ok(set.replace(&names))
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_set_is_what_every_clone_sees() {
        let set = Domains::default();
        let reader = set.clone();
        assert!(!reader.contains("go.acme.com"));
        assert_eq!(set.replace(["go.acme.com", "links.globex.example"]), 2);
        assert!(reader.contains("go.acme.com"));
        assert!(!reader.contains("acme.com"), "no parent or child matches");
        assert_eq!(set.replace(Vec::<String>::new()), 0);
        assert!(!reader.contains("go.acme.com"));
    }
}
