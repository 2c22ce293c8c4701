//! From a path segment to a link.
//!
//! A segment is looked up only if it can exist: a canonical generated code (decoded
//! without storage, and not minted in the future) or a well-formed alias. Everything
//! else is "not found" at once, so scanners and typos cost no cache or database work.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderValue;
use common::deps::Deps;
use common::events::Subscription;
use common::ids::{CodeCodec, looks_like_generated_code};
use common::links::{Alias, Blocklist};
use common::ratelimit::RateLimiter;

use crate::clicks::ClickRecorder;
use crate::metrics::LookupMetrics;
use crate::tiers::{Age, Tiers};
use crate::visits::VisitLimiter;
use common::db::replicas::Replicas;

/// Codes minted by a clock at most this far ahead of ours are still plausible.
const CLOCK_SKEW_MS: i64 = 60_000;

/// What the lookup handlers share.
pub struct LookupState {
    pub deps: Deps,
    pub codec: Arc<CodeCodec>,
    pub tiers: Arc<Tiers>,
    pub replicas: Replicas,
    pub metrics: Arc<LookupMetrics>,
    /// Per-address budget of 404 answers (in process: a scanner hits one instance
    /// per connection, and Redis must not sit on the redirect path).
    pub not_found_limiter: RateLimiter,
    pub permanent_cache_control: HeaderValue,
    /// Click counting (absent when `stats.enabled` is off).
    pub clicks: Option<Arc<ClickRecorder>>,
    pub visit_limiter: VisitLimiter,
    /// Hosts no redirect may lead to, checked on every redirect whichever tier
    /// answered (links made before a host was blocked stay cached).
    pub blocklist: Blocklist,
}

impl std::fmt::Debug for LookupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupState")
            .field("tiers", &self.tiers)
            .finish()
    }
}

/// The shapes a path segment can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Generated(Age),
    Alias,
    /// Neither: cannot exist, answer 404 without any lookup.
    Impossible,
}

impl LookupState {
    /// Builds the tiers. Starts no work: [`crate::app::LookupService`] does.
    pub fn build(deps: &Deps, codec: Arc<CodeCodec>, subscription: &Subscription) -> LookupState {
        let settings = deps.settings.lookup.clone();
        let metrics = Arc::new(LookupMetrics::new(&deps.metrics));
        // The redirect is mounted as the default service (see `app::redirect_service`).
        deps.metrics.label_default_route(crate::app::REDIRECT_ROUTE);
        let replicas = Replicas::new(&deps.db);
        let tiers = Arc::new(Tiers::new(
            settings.clone(),
            deps.db.clone(),
            replicas.clone(),
            deps.redis.clone(),
            metrics.clone(),
            subscription,
        ));
        let permanent_cache_control = HeaderValue::from_str(&format!(
            "public, max-age={}",
            settings.permanent_max_age_secs
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=3600"));
        let clicks = deps.settings.stats.enabled.then(|| {
            let key = deps
                .settings
                .ids
                .code_key
                .as_ref()
                .map(|k| secrecy::ExposeSecret::expose_secret(k).as_bytes().to_vec())
                .unwrap_or_default();
            ClickRecorder::new(
                deps.db.clone(),
                deps.settings.stats.clone(),
                &key,
                &deps.metrics,
            )
        });
        LookupState {
            clicks,
            visit_limiter: VisitLimiter::new(
                deps.db.clone(),
                Duration::from_millis(settings.replica_timeout_ms),
            ),
            blocklist: deps.blocklist.clone(),
            deps: deps.clone(),
            codec,
            tiers,
            replicas,
            metrics,
            not_found_limiter: RateLimiter::new(None),
            permanent_cache_control,
        }
    }

    pub fn classify(&self, segment: &str) -> Segment {
        // The shape, not the length alone: `spring-sale` is as long as a code, and an
        // alias, since aliases may take that length with a `-` or `_` in it.
        if looks_like_generated_code(segment) {
            return match self.codec.decode(segment) {
                Some(id) => {
                    let minted = i64::try_from(id.timestamp_ms()).unwrap_or(i64::MAX);
                    if minted > common::time::now_ms().saturating_add(CLOCK_SKEW_MS) {
                        Segment::Impossible
                    } else {
                        Segment::Generated(Age::CreatedAt(minted))
                    }
                }
                // Eleven base62 characters are never an alias (that shape is reserved).
                None => Segment::Impossible,
            };
        }
        if Alias::parse(segment).is_ok() {
            Segment::Alias
        } else {
            Segment::Impossible
        }
    }
}
