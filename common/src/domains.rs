//! The branded domains (and their settings) every lookup instance holds in memory, so that a request for a
//! host nobody holds is answered without touching storage. Kept current like the
//! blocklist (see [`crate::held`]): reloaded on every domains-changed announcement,
//! which the domains API makes, and at least every `links.blocklist_reload`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::Settings;
use crate::db::domains;
use crate::deps::Deps;
use crate::events::Topic;
use crate::held::{self, KeeperNames};
use crate::links::{DomainName, HostEntry};
use crate::site::SiteSettings;

/// The default domain (`http.public_base_url`): its name as links and stats show it,
/// and every host that names it (`public_base_url`'s and `links.own_hosts`), in the
/// spelling request hosts and domain names are held in (a configured `WWW.Sho.RT.` is
/// `www.sho.rt`).
#[derive(Debug, Clone)]
pub struct DefaultDomain {
    name: String,
    hosts: Vec<String>,
}

impl DefaultDomain {
    pub fn from_settings(settings: &Settings) -> DefaultDomain {
        DefaultDomain {
            name: settings
                .http
                .public_base_url
                .host_str()
                .unwrap_or("localhost")
                .to_ascii_lowercase(),
            hosts: settings
                .own_hosts()
                .iter()
                .filter_map(|host| HostEntry::parse(host).ok().map(HostEntry::into_string))
                .collect(),
        }
    }

    /// With one more host that names it (lookup answers `localhost` as its own).
    pub fn with_host(mut self, host: &str) -> DefaultDomain {
        self.hosts.push(host.to_string());
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `host` (in the held spelling) names the default domain.
    pub fn is(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }

    /// The branded domain `name` stands for: `None` when it names the default one.
    pub fn branded(&self, name: DomainName) -> Option<DomainName> {
        (!self.is(name.as_str())).then_some(name)
    }
}

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
    fn the_default_domain_is_named_by_each_of_its_hosts_in_one_spelling() {
        let env = [
            ("SHORTENER__HTTP__PUBLIC_BASE_URL", "https://Sho.RT/"),
            ("SHORTENER__LINKS__OWN_HOSTS", "WWW.Sho.RT."),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
        let settings =
            Settings::load_from(crate::config::ServiceKind::Create, None, env).expect("settings");
        let default = DefaultDomain::from_settings(&settings);
        assert_eq!(default.name(), "sho.rt");
        assert!(default.is("sho.rt") && default.is("www.sho.rt"));
        assert!(!default.is("localhost") && !default.is("go.acme.com"));
        assert!(default.clone().with_host("localhost").is("localhost"));
        let own = DomainName::parse("WWW.sho.rt").expect("a domain");
        assert_eq!(default.branded(own), None);
        let branded = DomainName::parse("go.acme.com").expect("a domain");
        assert_eq!(default.branded(branded.clone()), Some(branded));
    }

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
