//! The branded domains (and their settings) every lookup instance holds in memory, so that a request for a
//! host nobody holds is answered without touching storage. Kept current like the
//! blocklist (see [`crate::held`]): reloaded on every domains-changed announcement,
//! which the domains API makes, and at least every `links.blocklist_reload`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::db::domains;
use crate::deps::Deps;
use crate::events::Topic;
use crate::held::{self, KeeperNames};
use crate::site::SiteSettings;

type Sites = HashMap<Box<str>, Arc<SiteSettings>>;

/// The branded domains and their settings, shared by every service of a process.
#[derive(Clone, Debug, Default)]
pub struct Domains {
    sites: Arc<RwLock<Arc<Sites>>>,
    /// Whether a service of this process keeps the set current already.
    kept: Arc<AtomicBool>,
}

impl Domains {
    fn with<T>(&self, read: impl FnOnce(&Sites) -> T) -> T {
        match self.sites.read() {
            Ok(sites) => read(&sites),
            // A writer only swaps an `Arc`; the value behind a poisoned lock is whole.
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }

    /// Whether some tenant holds `name` (in the spelling domains are held in).
    pub fn contains(&self, name: &str) -> bool {
        self.with(|sites| sites.contains_key(name))
    }

    /// The settings of the domain `name`, if some tenant holds it.
    pub fn settings(&self, name: &str) -> Option<Arc<SiteSettings>> {
        self.with(|sites| sites.get(name).cloned())
    }

    /// Replaces the set; returns its size.
    pub fn replace<S: AsRef<str>>(
        &self,
        sites: impl IntoIterator<Item = (S, SiteSettings)>,
    ) -> usize {
        let sites: Sites = sites
            .into_iter()
            .map(|(name, settings)| (name.as_ref().into(), Arc::new(settings)))
            .collect();
        let len = sites.len();
        let sites = Arc::new(sites);
        match self.sites.write() {
            Ok(mut current) => *current = sites,
            Err(poisoned) => *poisoned.into_inner() = sites,
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
            let served = domains::served(db.primary()).await?;
            Ok(set.replace(served.into_iter().map(|d| (d.name, d.settings))))
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
        let root = SiteSettings {
            root_url: Some("https://acme.com/".into()),
            ..SiteSettings::default()
        };
        let sites = [
            ("go.acme.com", root.clone()),
            ("links.globex.example", SiteSettings::default()),
        ];
        assert_eq!(set.replace(sites), 2);
        assert!(reader.contains("go.acme.com"));
        assert_eq!(reader.settings("go.acme.com").as_deref(), Some(&root));
        assert!(!reader.contains("acme.com"), "no parent or child matches");
        assert_eq!(set.replace(Vec::<(String, SiteSettings)>::new()), 0);
        assert!(!reader.contains("go.acme.com"));
    }
}
