//! `GET /api/v1/audit`: the tenant's audit log, newest first, filtered and paged,
//! as JSON or (with `Accept: text/csv`) as CSV.

use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use common::db::audit::{self, Filter, Stored};
use common::domain::access::Action;
use common::domain::audit::{Actor, AuditAction};
use common::problem::Problem;
use common::time::from_ms;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::list::{bad_query, page_bounds};
use crate::error::ApiError;
use crate::state::CreateState;

const DEFAULT_PAGE: u32 = 100;
/// The header a CSV answer carries the next page's cursor in.
pub const NEXT_CURSOR: &str = "x-next-cursor";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<u32>,
    /// Only changes to this target: `link:<code>` (`link:<domain>/<code>` on a
    /// branded domain), `domain:<name>`, `key:<id>`, `member:<id>`.
    #[param(example = "link:spring-sale")]
    pub target: Option<String>,
    /// Only changes by this actor: `key:<id>`, `anonymous:<hash>`, `operator:<name>`,
    /// or `member:<id>` for any key of a member.
    #[param(example = "key:6337641584147015712")]
    pub actor: Option<String>,
    /// Only this kind of change (`link.created`, `link.updated`, `key.rotated`, …).
    #[param(example = "link.updated")]
    pub action: Option<String>,
    /// Changes at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Changes before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// One change.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    /// The row's id, as a string; ids grow with time.
    pub id: String,
    pub at: DateTime<Utc>,
    /// Who: `key:<id>`, `anonymous:<hash of the address>` or `operator:<name>`.
    #[schema(example = "key:6337641584147015712")]
    pub actor: String,
    /// The member whose key it was, when it was a member's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[schema(example = "link.updated")]
    pub action: String,
    #[schema(example = "link:spring-sale")]
    pub target: String,
    /// The fields that changed: `{"field": {"from": before, "to": after}}`.
    #[schema(value_type = Object, example = json!({"url": {"from": "https://a.example/", "to": "https://b.example/"}}))]
    pub changes: Value,
    /// The request that made the change (`X-Request-Id`, or the service's own id);
    /// empty for changes made at the command line.
    pub request_id: String,
}

impl From<&Stored> for AuditView {
    fn from(row: &Stored) -> AuditView {
        let e = &row.entry;
        AuditView {
            id: row.id.to_string(),
            at: from_ms(e.at),
            actor: e.actor.to_string(),
            member: e.actor.member().map(|m| m.to_string()),
            action: e.action.to_string(),
            target: e.target.clone(),
            changes: e.changes.clone(),
            request_id: e.request_id.clone(),
        }
    }
}

/// One page of the log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn names(actions: &[AuditAction]) -> String {
    actions
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl AuditQuery {
    fn filter(&self, tenant_id: String) -> Result<(Filter, u32), ApiError> {
        let (limit, before_id) = page_bounds(self.limit, DEFAULT_PAGE, self.cursor.as_deref())?;
        let bad_actor = || {
            bad_query(&format!(
                "actor must be `kind:id`, the kind one of {}, member",
                Actor::KINDS.join(", ")
            ))
        };
        let (actor, member) = match self.actor.as_deref().map(|t| t.split_once(':')) {
            None => (None, None),
            // Any key of the member.
            Some(Some(("member", id))) => (None, Some(id.parse().map_err(|_| bad_actor())?)),
            Some(Some((kind, id))) => {
                let actor = Actor::from_stored(kind, id, None).ok_or_else(bad_actor)?;
                (Some((actor.kind().to_string(), actor.id())), None)
            }
            Some(None) => return Err(bad_actor()),
        };
        let action = match &self.action {
            Some(text) => Some(AuditAction::parse(text).ok_or_else(|| {
                bad_query(&format!(
                    "action must be one of {}",
                    names(AuditAction::ALL)
                ))
            })?),
            None => None,
        };
        let (from, to) = (
            self.from.map(|t| t.timestamp_millis()),
            self.to.map(|t| t.timestamp_millis()),
        );
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(bad_query("`from` must be before `to`"));
        }
        Ok((
            Filter {
                tenant_id,
                target: self.target.clone(),
                actor,
                member,
                action,
                from,
                to,
                before_id,
            },
            limit,
        ))
    }
}

/// Whether the client asked for CSV rather than JSON.
fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.split(',').any(|part| {
                part.split(';')
                    .next()
                    .is_some_and(|t| t.trim() == "text/csv")
            })
        })
}

/// One CSV field: quoted when it must be, and a leading `=`, `+`, `-`, `@` (or tab,
/// carriage return) defused with a `'`, so a spreadsheet opening the export never runs
/// what a caller wrote into a tag or a URL as a formula.
fn csv_field(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if defused.contains([',', '"', '\n', '\r']) || defused != text {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

fn csv(rows: &[Stored]) -> String {
    let mut out = String::from("id,at,actor,action,target,changes,request_id\r\n");
    for row in rows {
        let view = AuditView::from(row);
        let fields = [
            view.id,
            view.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            view.actor,
            view.action,
            view.target,
            view.changes.to_string(),
            view.request_id,
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of the log, newest first; as CSV with `Accept: text/csv` (the next page's cursor then in `X-Next-Cursor`)",
            content((AuditPage = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad cursor, limit, actor, action, `from` or `to`", body = Problem, content_type = "application/problem+json"),
        super::openapi::CallerProblems,
    ),
    security(("api_key" = []))
)]
pub async fn read_audit(
    req: HttpRequest,
    state: web::Data<CreateState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ReadAudit).await?;
    let (filter, limit) = query.filter(caller.tenant_id().to_string())?;
    let rows = audit::page(state.deps.db.primary(), &filter, i64::from(limit)).await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    if wants_csv(&req) {
        let mut response = HttpResponse::Ok();
        response.insert_header((CONTENT_TYPE, "text/csv; charset=utf-8"));
        if let Some(cursor) = &next_cursor {
            response.insert_header((NEXT_CURSOR, cursor.as_str()));
        }
        return Ok(response.body(csv(&rows)));
    }
    let items = rows.iter().map(AuditView::from).collect();
    Ok(HttpResponse::Ok().json(AuditPage { items, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("link.created"), "link.created");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "\"'-1\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }
}
