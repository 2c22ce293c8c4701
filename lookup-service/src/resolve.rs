//! From a request's host and path segment to a link.
//!
//! The host picks the domain: the default one, a branded domain a tenant holds, or
//! none (404). A segment is looked up only if it can exist: a canonical generated code
//! (decoded without storage, and not minted in the future) or a well-formed alias.
//! Everything else is "not found" at once, so scanners, typos and unknown hosts cost
//! no cache or database work.

use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::{HOST, HeaderName, HeaderValue};
use common::deps::Deps;
use common::domains::{DefaultDomain, Domains};
use common::events::Subscription;
use common::ids::{CodeCodec, looks_like_generated_code};
use common::links::domain_name::MAX_LEN;
use common::links::{Alias, Blocklist, RequestHost, request_host};
use common::ratelimit::{Quota, RateLimiter};
use common::site::SiteSettings;

use crate::clicks::ClickRecorder;
use crate::error::FollowError;
use crate::geo::Countries;
use crate::metrics::LookupMetrics;
use crate::password::Gate;
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
    /// The branded domains tenants hold, kept current by the service.
    pub domains: Domains,
    /// The default domain, which `localhost` names too.
    pub default_domain: DefaultDomain,
    /// Where the host a client asked for is read from (`Host` when unset).
    pub forwarded_host: Option<HeaderName>,
    /// Keys the daily visitor hash: unique visitors in stats, and which variant of
    /// a split test a visitor gets.
    pub visitor_key: [u8; 16],
    /// The visitor's country: the edge's header, else the GeoIP database.
    pub countries: Countries,
    /// Passwords of protected links, and the grants the right one earns.
    pub gate: Gate,
}

impl std::fmt::Debug for LookupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupState")
            .field("tiers", &self.tiers)
            .finish()
    }
}

/// A branded domain a request is for.
#[derive(Debug, Clone)]
pub struct Site<'a> {
    /// In the spelling domains are held in.
    pub name: &'a str,
    pub settings: Arc<SiteSettings>,
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
    pub fn build(
        deps: &Deps,
        codec: Arc<CodeCodec>,
        subscription: &Subscription,
    ) -> anyhow::Result<LookupState> {
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
            settings.permanent_max_age.as_secs()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=3600"));
        let code_key = deps
            .settings
            .ids
            .code_key
            .as_ref()
            .map(|k| secrecy::ExposeSecret::expose_secret(k).as_bytes().to_vec())
            .unwrap_or_default();
        let clicks = deps.settings.stats.enabled.then(|| {
            ClickRecorder::new(deps.db.clone(), deps.settings.stats.clone(), &deps.metrics)
        });
        let gate = Gate::new(
            &code_key,
            settings.password_grant_ttl,
            Quota {
                per_minute: settings.password_attempts_per_minute,
                burst: settings.password_attempts_burst,
            },
        );
        let countries = Countries::open(
            deps.settings.stats.country_header.clone(),
            deps.settings.geoip.database.as_deref(),
        )?;
        Ok(LookupState {
            gate,
            countries,
            visitor_key: crate::clicks::visitor_key(&code_key),
            clicks,
            visit_limiter: VisitLimiter::new(deps.db.clone(), settings.replica_timeout),
            blocklist: deps.blocklist.clone(),
            domains: deps.domains.clone(),
            default_domain: DefaultDomain::from_settings(&deps.settings).with_host("localhost"),
            forwarded_host: deps.settings.http.forwarded_host_header.clone(),
            deps: deps.clone(),
            codec,
            tiers,
            replicas,
            metrics,
            not_found_limiter: RateLimiter::new(None),
            permanent_cache_control,
        })
    }

    /// The domain a request is for: `None` for the default domain (its own hosts, and
    /// any IP address: a request to an address names no domain), a branded domain a
    /// tenant holds with its settings, or [`FollowError::UnknownHost`], decided
    /// without storage. The name is read into `buf` when it must be lowered, never
    /// into an allocation.
    pub fn site<'a>(
        &self,
        req: &'a HttpRequest,
        buf: &'a mut [u8; MAX_LEN],
    ) -> Result<Option<Site<'a>>, FollowError> {
        let header = self.forwarded_host.as_ref().unwrap_or(&HOST);
        let value = match req.headers().get(header) {
            Some(value) => value.to_str().map_err(|_| FollowError::UnknownHost)?,
            // HTTP/2 carries the host in the request target; HTTP/1.0 may send none.
            None => match req.uri().authority() {
                Some(authority) => authority.as_str(),
                None => return Ok(None),
            },
        };
        match request_host(value, buf) {
            RequestHost::Address => Ok(None),
            RequestHost::Name(name) if self.default_domain.is(name) => Ok(None),
            RequestHost::Name(name) => match self.domains.settings(name) {
                Some(settings) => Ok(Some(Site { name, settings })),
                None => Err(FollowError::UnknownHost),
            },
            RequestHost::Invalid => Err(FollowError::UnknownHost),
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
