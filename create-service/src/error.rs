//! The create-service error enum, mapped to problem+json in one place.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use common::db::StoreError;
use common::problem::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input that breaks a rule; the problem says which.
    #[error("{0}")]
    Invalid(Problem),
    #[error("authentication: {0}")]
    Auth(Problem),
    /// The caller's key lacks the permission the action needs.
    #[error("permission `{}` missing", .0.permission())]
    Forbidden(common::domain::access::Action),
    #[error("anonymous creation is disabled")]
    AnonymousDisabled,
    #[error("not found")]
    NotFound,
    #[error("alias `{0}` is taken")]
    AliasTaken(String),
    #[error("no such domain")]
    DomainNotFound,
    #[error("no such key")]
    KeyNotFound,
    #[error("no such member")]
    MemberNotFound,
    #[error("no such webhook endpoint")]
    WebhookNotFound,
    #[error("no such dead letter")]
    DeadLetterNotFound,
    #[error("webhook endpoint turned off")]
    WebhookDisabled,
    #[error("as many webhook endpoints as allowed ({0})")]
    TooManyWebhooks(u32),
    #[error("key revoked or expired")]
    KeyInactive,
    #[error("domain `{0}` still has links")]
    DomainHasLinks(String),
    #[error("domain `{name}` is held already")]
    DomainTaken { name: String, yours: bool },
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    #[error("rate limited ({limit})")]
    RateLimited {
        limit: crate::metrics::Limit,
        retry_after: Duration,
    },
    #[error("edited concurrently")]
    Conflict,
    /// The id generator may not issue ids right now (lease lost, clock stepped back).
    #[error("id generation paused: {0}")]
    IdsPaused(String),
    /// Work of ours failed (drawing a QR code, hashing a password); the cause is never
    /// the client's.
    #[error("internal failure: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn problem(&self) -> Problem {
        match self {
            ApiError::Invalid(p) | ApiError::Auth(p) => p.clone(),
            ApiError::AnonymousDisabled => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or invalid API key",
            )
            .detail("this server requires an API key to create links"),
            ApiError::Forbidden(action) => Problem::forbidden(action.permission()),
            ApiError::NotFound => Problem::not_found().detail("no such link"),
            ApiError::AliasTaken(alias) => {
                Problem::new(StatusCode::CONFLICT, "alias-taken", "Alias already taken")
                    .detail(format!("the alias `{alias}` is already in use"))
                    .field("alias", "already in use")
            }
            ApiError::DomainNotFound => Problem::not_found().detail("no such domain of yours"),
            ApiError::KeyNotFound => Problem::not_found().detail("no such key of yours"),
            ApiError::MemberNotFound => Problem::not_found().detail("no such member of yours"),
            ApiError::WebhookNotFound => {
                Problem::not_found().detail("no such webhook endpoint of yours")
            }
            ApiError::DeadLetterNotFound => {
                Problem::not_found().detail("no such dead letter of this endpoint")
            }
            ApiError::WebhookDisabled => Problem::new(
                StatusCode::CONFLICT,
                "webhook-disabled",
                "Webhook endpoint turned off",
            )
            .detail("turn the endpoint on (`PATCH` with `\"enabled\": true`) first"),
            ApiError::TooManyWebhooks(max) => Problem::new(
                StatusCode::CONFLICT,
                "too-many-webhooks",
                "Too many webhook endpoints",
            )
            .detail(format!(
                "a tenant has at most {max} endpoints: remove one, or subscribe one to more events"
            )),
            ApiError::KeyInactive => {
                Problem::new(StatusCode::CONFLICT, "key-inactive", "Key no longer in use")
                    .detail("the key is revoked or expired: make a new one instead")
            }
            ApiError::DomainHasLinks(name) => Problem::new(
                StatusCode::CONFLICT,
                "domain-has-links",
                "Domain still has links",
            )
            .detail(format!(
                "`{name}` still serves links: delete them first, or delete the domain \
                 with `?retire_links=true` to delete them with it (they answer 410)"
            )),
            ApiError::DomainTaken { name, yours } => {
                Problem::new(StatusCode::CONFLICT, "domain-taken", "Domain already held")
                    .detail(if *yours {
                        format!("you hold `{name}` already")
                    } else {
                        format!("`{name}` is held by another tenant")
                    })
                    .field("name", "already held")
            }
            ApiError::IdempotencyMismatch => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            )
            .detail("this Idempotency-Key was already used with a different request body"),
            ApiError::RateLimited { limit, retry_after } => {
                Problem::rate_limited(*retry_after, format!("the {limit} limit was reached"))
            }
            ApiError::Conflict => Problem::new(
                StatusCode::CONFLICT,
                "edit-conflict",
                "Link changed meanwhile",
            )
            .detail("the link was edited concurrently; fetch it and retry"),
            ApiError::IdsPaused(_) => {
                Problem::unavailable("link creation is paused on this instance; retry shortly")
            }
            ApiError::Store(StoreError::Unavailable(_)) => {
                Problem::unavailable("the database is unavailable; retry shortly")
            }
            ApiError::Store(_) | ApiError::Internal(_) => Problem::internal(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Store(e) => tracing::error!(error = ?e, "store call failed"),
            ApiError::IdsPaused(why) => tracing::error!(reason = %why, "id generation paused"),
            ApiError::Internal(why) => tracing::error!(reason = %why, "internal failure"),
            _ => {}
        }
        self.problem().to_response()
    }
}
