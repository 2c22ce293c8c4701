//! What create-service handlers share, and the checks every API request passes through
//! (authentication, rate limits, then the caller's permission for the action).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use actix_web::HttpRequest;
use common::auth::{Authenticator, Principal};
use common::config::Settings;
use common::db::domains::DomainRecord;
use common::deps::Deps;
use common::domain::access::{self, Action};
use common::domain::audit::{Actor, AuditAction, Entry};
use common::domains::DefaultDomain;
use common::ids::{CodeCodec, Generator, SnowflakeId, SystemClock};
use common::lease::WorkerLease;
use common::links::UrlPolicy;
use common::ratelimit::{Decision, Quota, RateLimiter};
use common::time::now_ms;
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::group_commit::GroupCommit;
use crate::metrics::{CreateMetrics, IdWait, Limit};
use crate::relay::Relay;

use common::link::TenantId;

/// The owner of links created without an API key.
static ANONYMOUS: LazyLock<TenantId> = LazyLock::new(TenantId::anonymous);

/// Who is making an API request, and how the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's principal; `None` for a caller without a key.
    pub principal: Option<Principal>,
    actor: Actor,
    request_id: String,
}

impl Caller {
    pub fn tenant_id(&self) -> &TenantId {
        match &self.principal {
            Some(p) => &p.tenant_id,
            None => &ANONYMOUS,
        }
    }

    /// The audit row of this caller taking `action` on `target`, changing `changes`
    /// (see [`common::domain::audit::diff`]).
    pub fn audit(&self, action: AuditAction, target: String, changes: Value) -> Entry {
        Entry {
            tenant_id: self.tenant_id().to_string(),
            actor: self.actor.clone(),
            action,
            target,
            changes,
            request_id: self.request_id.clone(),
            at: now_ms(),
        }
    }
}

/// The longest `X-Request-Id` kept as given; longer or unprintable ones are replaced
/// by the id the service gave the request.
const MAX_REQUEST_ID: usize = 128;

/// The request's id for the audit log: the client's or the edge's `X-Request-Id`
/// when it is a sane one, else the one the tracing middleware gave the request.
fn request_id(req: &HttpRequest) -> String {
    use actix_web::HttpMessage;
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_string)
        .or_else(|| {
            req.extensions()
                .get::<tracing_actix_web::RequestId>()
                .map(|id| id.to_string())
        })
        .unwrap_or_default()
}

pub struct CreateState {
    pub deps: Deps,
    pub settings: Arc<Settings>,
    pub generator: Generator,
    pub lease: WorkerLease,
    pub codec: Arc<CodeCodec>,
    pub auth: Authenticator,
    pub limiter: RateLimiter,
    /// Publishes the link changes this instance (or any other) commits.
    pub relay: Arc<Relay>,
    /// The configured URL rules plus the runtime host blocklist, which is kept
    /// current here (new links to a freshly blocked host are refused too).
    pub url_policy: UrlPolicy,
    /// Which webhook endpoint URLs are taken.
    pub webhook_policy: common::webhooks::EndpointPolicy,
    /// `public_base_url` without a trailing slash.
    pub base_url: String,
    pub default_domain: DefaultDomain,
    /// Where single creates without an idempotency key are written (none: each is
    /// its own INSERT).
    pub group_commit: Option<GroupCommit>,
    pub metrics: CreateMetrics,
}

impl std::fmt::Debug for CreateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateState")
            .field("worker", &self.lease.worker().get())
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// How long a create's `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Forgets idempotency records past their retention, hourly. Several instances doing
/// it at once is harmless: the delete is idempotent.
pub async fn purge_idempotency_records(db: common::db::Database) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        ticker.tick().await;
        let retention = i64::try_from(IDEMPOTENCY_RETENTION.as_millis()).unwrap_or(i64::MAX);
        let cutoff = common::time::now_ms().saturating_sub(retention);
        match common::db::idempotency::purge_older_than(db.primary(), cutoff).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "old idempotency records purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "idempotency purge failed"),
        }
    }
}

impl CreateState {
    /// Leases a worker id (refusing to start if it is taken), loads the blocklist and
    /// builds the state. Starts no work of its own: [`crate::app::CreateService`]
    /// does, for a server.
    pub async fn build(deps: &Deps) -> anyhow::Result<CreateState> {
        let settings = deps.settings.clone();
        let lease = WorkerLease::acquire(&deps.db, &settings.ids, &deps.background).await?;
        deps.metrics.worker_id.set(i64::from(lease.worker().get()));
        let generator = Generator::new(
            lease.worker(),
            Arc::new(SystemClock),
            settings.ids.max_clock_backwards,
        )
        .with_floor(lease.floor_ms());
        // Loaded before the first request (and before an import checks its rows).
        common::blocklist::keep_current(deps).await;
        let mut url_policy = settings.url_policy();
        url_policy.blocklist = deps.blocklist.clone();
        let group_commit = (settings.database.group_commit_writers > 0).then(|| {
            GroupCommit::new(
                settings.database.group_commit_max_rows,
                deps.metrics.registry(),
            )
        });
        Ok(CreateState {
            group_commit,
            metrics: CreateMetrics::new(&deps.metrics),
            codec: Arc::new(settings.code_codec()?),
            auth: Authenticator::new(deps.db.clone()),
            limiter: RateLimiter::new(deps.redis.clone()),
            relay: Relay::new(deps),
            url_policy,
            webhook_policy: common::webhooks::EndpointPolicy::from_settings(&settings.webhooks),
            base_url: settings.http.base_url().to_string(),
            default_domain: DefaultDomain::from_settings(&settings),
            generator,
            lease,
            settings,
            deps: deps.clone(),
        })
    }

    /// Authenticates the request, charges the rate limits (per API key for
    /// authenticated callers, per client address for anonymous ones and for failed
    /// authentication, so guessing keys is throttled too), then asks whether the
    /// caller may take `action`: a key without the permission is refused with a 403
    /// naming it. Without a key only creating a link can be allowed (the
    /// `links.anonymous_create` switch).
    pub async fn caller(&self, req: &HttpRequest, action: Action) -> Result<Caller, ApiError> {
        let anonymous = if action != Action::CreateLink {
            Err(unauthorized())
        } else if self.settings.links.anonymous_create {
            Ok(())
        } else {
            Err(ApiError::AnonymousDisabled)
        };
        permitted(self.identify(req, anonymous).await?, action)
    }

    /// Like [`CreateState::caller`] for reading one link (its QR code): without a
    /// key the reader is anonymous, and so sees anonymous links, only when
    /// `links.anonymous_stats` says anyone may.
    pub async fn reader(&self, req: &HttpRequest) -> Result<Caller, ApiError> {
        let anonymous = if self.settings.links.anonymous_stats {
            Ok(())
        } else {
            Err(unauthorized())
        };
        permitted(self.identify(req, anonymous).await?, Action::ReadLinks)
    }

    /// `anonymous` is the answer to a request without a key.
    async fn identify(
        &self,
        req: &HttpRequest,
        anonymous: Result<(), ApiError>,
    ) -> Result<Caller, ApiError> {
        let auth = self.auth.authenticate(req).await;
        let limits = &self.settings.rate_limit;
        match auth {
            Ok(Some(principal)) => {
                self.charge(
                    Limit::PerKey,
                    &format!("key:{}", principal.key_id),
                    Quota {
                        per_minute: limits.per_key_per_minute,
                        burst: limits.per_key_burst,
                    },
                )
                .await?;
                Ok(Caller {
                    actor: Actor::Key {
                        key: principal.key_id,
                        member: principal.member_id,
                    },
                    principal: Some(principal),
                    request_id: request_id(req),
                })
            }
            Ok(None) => {
                self.charge_ip(req).await?;
                anonymous.map(|()| Caller {
                    principal: None,
                    actor: Actor::Anonymous(self.address_hash(req)),
                    request_id: request_id(req),
                })
            }
            Err(problem) => {
                if problem.status == 401 {
                    self.charge_ip(req).await?;
                }
                Err(ApiError::Auth(problem))
            }
        }
    }

    /// A keyed hash of the client's address (16 hex digits): the audit log tells
    /// anonymous callers apart without keeping their addresses, and without the code
    /// key nobody can test guesses against it.
    fn address_hash(&self, req: &HttpRequest) -> String {
        let ip = common::http::client_ip(req, self.settings.http.client_ip_header.as_ref())
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let key = self
            .settings
            .ids
            .code_key
            .as_ref()
            .map_or("", |k| k.expose_secret());
        let digest = Sha256::new()
            .chain_update(key.len().to_le_bytes())
            .chain_update(key.as_bytes())
            .chain_update(ip.as_bytes())
            .finalize();
        hex::encode(&digest[..8])
    }

    async fn charge_ip(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let limits = &self.settings.rate_limit;
        let ip = common::http::client_ip(req, self.settings.http.client_ip_header.as_ref())
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".to_string());
        self.charge(
            Limit::PerAddress,
            &format!("ip:{ip}"),
            Quota {
                per_minute: limits.per_ip_per_minute,
                burst: limits.per_ip_burst,
            },
        )
        .await
    }

    async fn charge(&self, limit: Limit, key: &str, quota: Quota) -> Result<(), ApiError> {
        if !self.settings.rate_limit.enabled {
            return Ok(());
        }
        match self.limiter.check(key, quota).await {
            Decision::Allow => Ok(()),
            Decision::Deny(retry_after) => {
                self.metrics.rate_limited.get(limit).inc();
                Err(ApiError::RateLimited { limit, retry_after })
            }
        }
    }

    /// A fresh Snowflake id, unless this instance may not issue ids right now. Waits
    /// (for the next millisecond, or a clock that stepped back) on the timer, never
    /// holding the worker thread.
    pub async fn next_id(&self) -> Result<SnowflakeId, ApiError> {
        if !self.lease.is_valid() {
            return Err(ApiError::IdsPaused("worker-id lease not held".into()));
        }
        let before = self.generator.stats();
        // Refusals (clock stepped back past the bound, clock before the epoch) pause
        // creation on this instance; they are never the client's fault.
        let id = common::issuer::next_id(&self.generator)
            .await
            .map_err(|e| ApiError::IdsPaused(e.to_string()));
        let after = self.generator.stats();
        let waits = &self.metrics.id_waits;
        waits.get(IdWait::SequenceExhausted).inc_by(
            after
                .sequence_exhaustion_waits
                .saturating_sub(before.sequence_exhaustion_waits),
        );
        waits.get(IdWait::ClockBackwards).inc_by(
            after
                .clock_backwards_waits
                .saturating_sub(before.clock_backwards_waits),
        );
        id
    }

    /// Frees the worker-id lease, recording the newest id issued.
    pub async fn release_lease(&self) {
        self.lease.release(self.generator.last_issued_ms()).await;
    }

    /// The short URL of `code` on `site` (`None`: the default domain).
    pub fn short_url(&self, site: Option<&DomainRecord>, code: &str) -> String {
        crate::model::short_url(&self.base_url, site, code)
    }
}

/// `caller`, when it may take `action` (anonymous callers got this far only where
/// they may).
fn permitted(caller: Caller, action: Action) -> Result<Caller, ApiError> {
    match &caller.principal {
        Some(principal) if !access::permits(&principal.grant, action) => {
            Err(ApiError::Forbidden(action))
        }
        _ => Ok(caller),
    }
}

fn unauthorized() -> ApiError {
    ApiError::Auth(
        common::problem::Problem::new(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid API key",
        )
        .detail("send `Authorization: Bearer <key>`"),
    )
}

/// Adds the worker-id lease to `readiness`: an instance that may not issue ids must
/// not receive create traffic.
pub fn with_lease_check(
    readiness: common::health::Readiness,
    state: &actix_web::web::Data<CreateState>,
) -> common::health::Readiness {
    let state = state.clone();
    readiness.with(common::health::Check::new(
        "worker-id-lease",
        true,
        move || {
            let valid = state.lease.is_valid();
            async move {
                if valid {
                    Ok(())
                } else {
                    Err("worker-id lease not held; ids paused".to_string())
                }
            }
        },
    ))
}
