//! The dependencies a service is built from: settings, database pools, Redis, the
//! event bus, the metrics registry, the host blocklist and the background tasks. Built once per process, so the all-in-one
//! binary hands the same pools (and one blocklist) to create, lookup and stats.

use std::sync::Arc;

use crate::background::Background;
use crate::config::{ServiceKind, Settings};
use crate::db::Database;
use crate::domains::Domains;
use crate::events::Bus;
use crate::links::Blocklist;
use crate::metrics::Metrics;
use crate::redis::RedisCluster;

#[derive(Clone)]
pub struct Deps {
    pub kind: ServiceKind,
    pub settings: Arc<Settings>,
    pub db: Database,
    pub redis: Option<RedisCluster>,
    pub metrics: Arc<Metrics>,
    /// `links.blocked_hosts` plus the runtime blocklist, once a service keeps it
    /// current ([`crate::blocklist::keep_current`]).
    pub blocklist: Blocklist,
    /// The branded domains, once a service keeps them current
    /// ([`crate::domains::keep_current`]).
    pub domains: Domains,
    /// Where link and blocklist changes are announced and heard: Redis when
    /// configured; the all-in-one replaces it with an in-process bus.
    pub bus: Bus,
    /// The tasks this process owns, stopped in order at shutdown.
    pub background: Background,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("kind", &self.kind)
            .field("db", &self.db)
            .field("redis", &self.redis.is_some())
            .finish()
    }
}

impl Deps {
    /// Connects the pools (lazily) and applies migrations when configured to.
    pub async fn connect(kind: ServiceKind, settings: Settings) -> anyhow::Result<Deps> {
        let db = Database::connect(&settings.database)?;
        if settings.database.migrate_on_start {
            db.migrate().await?;
        }
        let redis = RedisCluster::from_settings(&settings.redis)?;
        let metrics = Metrics::new(kind.name());
        let pools = db.clone();
        let gauges = metrics.db_pool_connections.clone();
        metrics.on_scrape(move || pools.report_pools(&gauges));
        Ok(Deps {
            kind,
            metrics,
            blocklist: Blocklist::new(&settings.links.blocked_hosts),
            domains: Domains::default(),
            settings: Arc::new(settings),
            db,
            bus: Bus::from_redis(redis.as_ref()),
            redis,
            background: Background::new(),
        })
    }

    /// The readiness checks every service shares: the primary must answer; Redis is
    /// reported but optional (every caller degrades without it).
    pub fn readiness(&self) -> crate::health::Readiness {
        let db = self.db.clone();
        let mut readiness = crate::health::Readiness::default().with(crate::health::Check::new(
            "database-primary",
            true,
            move || {
                let db = db.clone();
                async move { db.ping_primary().await.map_err(|e| e.to_string()) }
            },
        ));
        if let Some(redis) = self.redis.clone() {
            readiness = readiness.with(crate::health::Check::new("redis", false, move || {
                let redis = redis.clone();
                async move { redis.ping().await.map_err(|e| e.to_string()) }
            }));
        }
        readiness
    }
}
