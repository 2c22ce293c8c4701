//! `/api/v1/webhooks`: the endpoints a tenant's events are delivered to, their
//! secrets (shown once), a test event on request, the messages owed to each and its
//! delivery log, and the replay of dead letters. Delivery itself is
//! stats-service's (`stats_service::webhooks`).

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use common::audit::{self, AuditAction};
use common::db::StoreError;
use common::db::webhooks::{self, AttemptCursor, EndpointRecord};
use common::domain::access::Action;
use common::domain::webhooks::{ENDPOINT_PREFIX, EventType, MESSAGE_PREFIX, is_id};
use common::problem::Problem;
use common::time::{from_ms, now_ms};
use serde::de::MapAccess;
use serde::de::value::MapAccessDeserializer;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::list::{DEFAULT_PAGE, bad_query, page_bounds};
use crate::error::ApiError;
use crate::model::{FieldErrors, Fields, object_only};
use crate::state::{Caller, CreateState};

/// An endpoint's settings: in `POST` (`url` and `events` required) and `PATCH`
/// (absent fields stay) alike.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct WebhookFields {
    /// Where events are posted: `https` (plain `http` only where the deployment
    /// allows it), no user or password; an address on a private, loopback or
    /// link-local network is refused unless the deployment allows that network.
    #[serde(default)]
    #[schema(example = "https://hooks.acme.com/shortener", max_length = 2048)]
    pub url: Option<String>,
    /// The event types delivered: `link.created`, `link.updated`, `link.deleted`,
    /// `link.clicked` (one message per link per click flush, with its counts).
    #[serde(default)]
    #[schema(example = json!(["link.created", "link.clicked"]))]
    pub events: Option<Vec<String>>,
    /// A note of the owner's: what the endpoint is for.
    #[serde(default)]
    #[schema(max_length = 512)]
    pub description: Option<String>,
    /// Whether events are delivered (default `true`). Turning an endpoint back on
    /// clears the reason it was turned off.
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl<'de> Fields<'de> for WebhookFields {
    fn from_fields<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        WebhookFields::deserialize(MapAccessDeserializer::new(map))
    }
}

impl<'de> Deserialize<'de> for WebhookFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object_only(deserializer)
    }
}

/// Longest description taken.
const MAX_DESCRIPTION: usize = 512;

impl WebhookFields {
    /// `current` with these fields applied; every bad field is named.
    fn apply(
        &self,
        current: EndpointRecord,
        policy: &common::webhooks::EndpointPolicy,
    ) -> Result<EndpointRecord, Problem> {
        let mut errors = FieldErrors::default();
        let mut next = current;
        if let Some(url) = &self.url {
            match policy.check_url(url) {
                Ok(url) => next.url = url,
                Err(why) => errors.push("url", why),
            }
        }
        if let Some(events) = &self.events {
            match EventType::parse_subscription(events.iter().map(String::as_str)) {
                Ok(events) => next.events = events,
                Err(why) => errors.push("events", why),
            }
        }
        if let Some(description) = &self.description {
            if description.chars().count() > MAX_DESCRIPTION
                || description.chars().any(char::is_control)
            {
                errors.push(
                    "description",
                    format!("at most {MAX_DESCRIPTION} characters, no control characters"),
                );
            } else {
                next.description = description.clone();
            }
        }
        if let Some(enabled) = self.enabled {
            if enabled && !next.enabled {
                next.disabled_reason = None;
                next.failing_since = None;
            }
            next.enabled = enabled;
        }
        if errors.is_empty() {
            Ok(next)
        } else {
            Err(errors.into_problem_titled("Invalid webhook"))
        }
    }
}

/// An endpoint as its tenant sees it; `secret` only in the answer that made it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// `ep_` and 22 letters and digits.
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub enabled: bool,
    /// Why deliveries stopped, when the shortener turned the endpoint off after it
    /// failed for days.
    pub disabled_reason: Option<String>,
    /// The first failed attempt since the endpoint last answered with a 2xx.
    pub failing_since: Option<DateTime<Utc>>,
    /// The signing secret (`whsec_…`, as Standard Webhooks libraries take it): shown
    /// once, in the answer that made the endpoint, and never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookView {
    fn of(record: &EndpointRecord, secret: bool) -> WebhookView {
        WebhookView {
            id: record.id.clone(),
            url: record.url.clone(),
            events: record.events.iter().map(|e| e.to_string()).collect(),
            description: record.description.clone(),
            enabled: record.enabled,
            disabled_reason: record.disabled_reason.clone(),
            failing_since: record.failing_since.map(from_ms),
            secret: secret.then(|| record.secret.clone()),
            created_at: from_ms(record.created_at),
            updated_at: from_ms(record.updated_at),
        }
    }
}

/// `GET /api/v1/webhooks`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    /// The tenant's endpoints, oldest first.
    pub items: Vec<WebhookView>,
}

/// `POST /api/v1/webhooks/{id}/test`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TestSent {
    /// The message's id: its `webhook-id` header, and its entry in the delivery log.
    pub message_id: String,
}

/// The caller's endpoint `id`: text that is no endpoint id names none, and another
/// tenant's endpoint is "not found".
async fn owned(state: &CreateState, caller: &Caller, id: &str) -> Result<EndpointRecord, ApiError> {
    if !is_id(id, ENDPOINT_PREFIX) {
        return Err(ApiError::WebhookNotFound);
    }
    webhooks::get_endpoint(state.deps.db.primary(), caller.tenant_id(), id)
        .await?
        .ok_or(ApiError::WebhookNotFound)
}

#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    request_body = WebhookFields,
    responses(
        (status = 201, description = "Registered; the answer holds its secret, shown this once", body = WebhookView),
        super::openapi::CallerProblems,
        super::openapi::BodyProblems,
        (status = 409, description = "The tenant has as many endpoints as it may", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid settings", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_webhook(
    req: HttpRequest,
    state: web::Data<CreateState>,
    body: web::Json<WebhookFields>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageWebhooks).await?;
    let mut missing = FieldErrors::default();
    if body.url.is_none() {
        missing.push("url", "an endpoint needs a `url`");
    }
    if body.events.is_none() {
        missing.push("events", "name the event types to deliver");
    }
    if !missing.is_empty() {
        return Err(ApiError::Invalid(
            missing.into_problem_titled("Invalid webhook"),
        ));
    }
    let blank = common::webhooks::new_endpoint(caller.tenant_id().clone(), now_ms());
    let record = body
        .apply(blank, &state.webhook_policy)
        .map_err(ApiError::Invalid)?;
    let entry = caller.audit(
        AuditAction::WebhookAdded,
        audit::target("webhook", &record.id),
        audit::changes(None, Some(audit::webhook_state(&record))),
    );
    let mut tx = state.deps.db.begin_write().await?;
    let max = state.deps.settings.webhooks.max_endpoints;
    if webhooks::count_endpoints(&mut tx, caller.tenant_id()).await? >= i64::from(max) {
        return Err(ApiError::TooManyWebhooks(max));
    }
    webhooks::insert_endpoint(&mut tx, &record).await?;
    common::db::audit::insert(&mut *tx, &entry).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/v1/webhooks/{}", record.id)))
        .json(WebhookView::of(&record, true)))
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "The caller's endpoints, oldest first", body = WebhookList),
        super::openapi::CallerProblems,
    ),
    security(("api_key" = []))
)]
pub async fn list_webhooks(
    req: HttpRequest,
    state: web::Data<CreateState>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageWebhooks).await?;
    let records = webhooks::list_endpoints(state.deps.db.primary(), caller.tenant_id()).await?;
    Ok(HttpResponse::Ok().json(WebhookList {
        items: records.iter().map(|r| WebhookView::of(r, false)).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint (without its secret)", body = WebhookView),
        super::openapi::CallerProblems,
        (status = 404, description = "No such endpoint of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_webhook(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageWebhooks).await?;
    let record = owned(&state, &caller, &id).await?;
    Ok(HttpResponse::Ok().json(WebhookView::of(&record, false)))
}

/// Optimistic updates retried this many times before answering 409.
const ATTEMPTS: usize = 3;

#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = WebhookFields,
    responses(
        (status = 200, description = "The endpoint as it now is", body = WebhookView),
        super::openapi::CallerProblems,
        super::openapi::BodyProblems,
        (status = 404, description = "No such endpoint of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Edited concurrently", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid settings", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn update_webhook(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: web::Path<String>,
    body: web::Json<WebhookFields>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageWebhooks).await?;
    for _ in 0..ATTEMPTS {
        let current = owned(&state, &caller, &id).await?;
        let mut next = body
            .apply(current.clone(), &state.webhook_policy)
            .map_err(ApiError::Invalid)?;
        let (before, after) = (audit::webhook_state(&current), audit::webhook_state(&next));
        if before == after {
            return Ok(HttpResponse::Ok().json(WebhookView::of(&current, false)));
        }
        // Strictly later, even within one millisecond, so versions differ.
        next.updated_at = now_ms().max(current.updated_at + 1);
        let entry = caller.audit(
            AuditAction::WebhookUpdated,
            audit::target("webhook", &current.id),
            audit::changes(Some(before), Some(after)),
        );
        let mut tx = state.deps.db.begin_write().await?;
        if webhooks::update_endpoint(&mut tx, &next, current.updated_at).await? {
            common::db::audit::insert(&mut *tx, &entry).await?;
            tx.commit().await.map_err(StoreError::from)?;
            return Ok(HttpResponse::Ok().json(WebhookView::of(&next, false)));
        }
    }
    Err(ApiError::Conflict)
}

#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Removed, with the messages it was still owed and its delivery log"),
        super::openapi::CallerProblems,
        (status = 404, description = "No such endpoint of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn delete_webhook(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageWebhooks).await?;
    let current = owned(&state, &caller, &id).await?;
    let entry = caller.audit(
        AuditAction::WebhookRemoved,
        audit::target("webhook", &current.id),
        audit::changes(Some(audit::webhook_state(&current)), None),
    );
    let mut tx = state.deps.db.begin_write().await?;
    if !webhooks::delete_endpoint(&mut tx, caller.tenant_id(), &current.id).await? {
        return Err(ApiError::WebhookNotFound);
    }
    common::db::audit::insert(&mut *tx, &entry).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 202, description = "A `webhook.test` message is queued for the endpoint, whatever it subscribes to; its attempts show in the delivery log", body = TestSent),
        super::openapi::CallerProblems,
        (status = 404, description = "No such endpoint of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is turned off", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn test_webhook(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageWebhooks).await?;
    let endpoint = owned(&state, &caller, &id).await?;
    if !endpoint.enabled {
        return Err(ApiError::WebhookDisabled);
    }
    let now = now_ms();
    let message = common::webhooks::test_message(&endpoint, now);
    let mut tx = state.deps.db.begin_write().await?;
    webhooks::insert_messages(&mut tx, std::slice::from_ref(&message)).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(TestSent {
        message_id: message.id,
    }))
}

/// `GET /api/v1/webhooks/{id}/messages`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// `pending`, `delivered` or `dead` (the dead letters); absent: all.
    pub state: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 50).
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<u32>,
}

/// A message owed to, delivered to, or given up on for an endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    /// `msg_…`: its `webhook-id` header on every attempt.
    pub id: String,
    /// `link.created`, `link.updated`, `link.deleted`, `link.clicked`, `webhook.test`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The link it is about (`code`, or `domain/code`); absent for a test event.
    pub link: Option<String>,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    /// When it is tried next (pending messages only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was delivered or given up on.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One page of an endpoint's messages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    /// Newest first.
    pub items: Vec<MessageView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/webhooks/{id}/attempts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 50).
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<u32>,
}

/// One attempt at delivering a message: the delivery log's row.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub message_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// 1 for the first attempt at the message.
    pub attempt: i64,
    pub at: DateTime<Utc>,
    /// The endpoint's answer; absent when none came.
    pub status: Option<i64>,
    pub latency_ms: i64,
    /// Why no answer came (timed out, refused, an address not delivered to).
    pub error: Option<String>,
    /// The first kilobyte of the answer's body.
    pub response: Option<String>,
}

/// One page of an endpoint's delivery log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptPage {
    /// Newest first.
    pub items: Vec<AttemptView>,
    pub next_cursor: Option<String>,
}

/// `POST /api/v1/webhooks/{id}/replay` and `…/messages/{message_id}/replay`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    /// Dead letters put back in line, due at once with a fresh retry budget.
    pub replayed: u64,
}

const MESSAGE_STATES: [&str; 3] = ["pending", "delivered", "dead"];

/// Keeps the first `limit` of `rows` (read one beyond it), and says where the next
/// page starts when there is one: the last kept row's `cursor`.
fn cut_page<T>(rows: &mut Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Option<String> {
    if rows.len() <= limit as usize {
        return None;
    }
    rows.truncate(limit as usize);
    rows.last().map(cursor)
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/messages",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id"), MessageQuery),
    responses(
        (status = 200, description = "One page of the endpoint's messages, newest first", body = MessagePage),
        (status = 400, description = "Bad state, cursor or limit", body = Problem, content_type = "application/problem+json"),
        super::openapi::CallerProblems,
        (status = 404, description = "No such endpoint of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_messages(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: web::Path<String>,
    query: web::Query<MessageQuery>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageWebhooks).await?;
    let endpoint = owned(&state, &caller, &id).await?;
    let (limit, before) = page_bounds(query.limit, DEFAULT_PAGE, query.cursor.as_deref())?;
    if let Some(wanted) = query.state.as_deref()
        && !MESSAGE_STATES.contains(&wanted)
    {
        return Err(bad_query("state must be `pending`, `delivered` or `dead`"));
    }
    let mut rows = webhooks::messages(
        state.deps.db.primary(),
        &endpoint.id,
        query.state.as_deref(),
        before,
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = cut_page(&mut rows, limit, |m| m.seq.to_string());
    let items = rows
        .iter()
        .map(|m| MessageView {
            id: m.id.clone(),
            event_type: m.event_type.clone(),
            link: (!m.link_key.is_empty()).then(|| m.link_key.clone()),
            state: m.state.clone(),
            attempts: m.attempts,
            created_at: from_ms(m.created_at),
            next_attempt_at: (m.state == "pending").then(|| from_ms(m.next_attempt_at)),
            finished_at: m.finished_at.map(from_ms),
        })
        .collect();
    Ok(HttpResponse::Ok().json(MessagePage { items, next_cursor }))
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/attempts",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id"), AttemptQuery),
    responses(
        (status = 200, description = "One page of the endpoint's delivery log, newest first", body = AttemptPage),
        (status = 400, description = "Bad cursor or limit", body = Problem, content_type = "application/problem+json"),
        super::openapi::CallerProblems,
        (status = 404, description = "No such endpoint of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_attempts(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: web::Path<String>,
    query: web::Query<AttemptQuery>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageWebhooks).await?;
    let endpoint = owned(&state, &caller, &id).await?;
    let (limit, _) = page_bounds(query.limit, DEFAULT_PAGE, None)?;
    let after = match query.cursor.as_deref() {
        Some(text) => Some(
            AttemptCursor::parse(text)
                .ok_or_else(|| bad_query("cursor is not one this API handed out"))?,
        ),
        None => None,
    };
    let mut rows = webhooks::attempts(
        state.deps.db.primary(),
        &endpoint.id,
        after,
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = cut_page(&mut rows, limit, |a| a.cursor().to_string());
    let items = rows
        .into_iter()
        .map(|a| AttemptView {
            message_id: a.message_id,
            event_type: a.event_type,
            attempt: a.attempt,
            at: from_ms(a.at),
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error,
            response: a.response,
        })
        .collect();
    Ok(HttpResponse::Ok().json(AttemptPage { items, next_cursor }))
}

#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/replay",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 202, description = "Every dead letter of the endpoint is back in line", body = Replayed),
        super::openapi::CallerProblems,
        (status = 404, description = "No such endpoint of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn replay_all(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    replay(req, state, &id, None).await
}

#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/messages/{message_id}/replay",
    tag = "webhooks",
    params(
        ("id" = String, Path, description = "The endpoint's id"),
        ("message_id" = String, Path, description = "The dead letter's id (`msg_…`)"),
    ),
    responses(
        (status = 202, description = "The dead letter is back in line", body = Replayed),
        super::openapi::CallerProblems,
        (status = 404, description = "No such endpoint of yours, or no such dead letter of it", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn replay_one(
    req: HttpRequest,
    state: web::Data<CreateState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, message) = path.into_inner();
    if !is_id(&message, MESSAGE_PREFIX) {
        return Err(ApiError::DeadLetterNotFound);
    }
    replay(req, state, &id, Some(&message)).await
}

/// Puts the endpoint's dead letters (one, when `message` names it) back in line,
/// with the audit row that says who did.
async fn replay(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: &str,
    message: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageWebhooks).await?;
    let endpoint = owned(&state, &caller, id).await?;
    let mut tx = state.deps.db.begin_write().await?;
    let replayed = webhooks::replay(&mut tx, &endpoint.id, message, now_ms()).await?;
    if replayed == 0 && message.is_some() {
        return Err(ApiError::DeadLetterNotFound);
    }
    // Recorded even when nothing was dead: who asked is what the log tells.
    let entry = caller.audit(
        AuditAction::WebhookReplayed,
        audit::target("webhook", &endpoint.id),
        serde_json::json!({"replayed": {"from": null, "to": replayed}}),
    );
    common::db::audit::insert(&mut *tx, &entry).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(Replayed { replayed }))
}
