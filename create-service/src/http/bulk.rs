//! `POST /api/v1/links/bulk`: up to 1000 links in one request, one result per item.
//!
//! Items are validated one by one; the valid ones are written in multi-row
//! statements inside one transaction. A bad item never sinks the others: it gets its
//! own problem in the result list, in input order.

use common::audit::{self, AuditAction};
use common::domain::access::Action;
use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use common::db::domains::DomainRecord;
use common::db::links;
use common::links::DomainName;
use common::problem::Problem;
use common::time::now_ms;
use serde::de::MapAccess;
use serde::de::value::MapAccessDeserializer;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::metrics::Created;
use crate::model::{CreateLinkRequest, Fields, LinkView, object_only};
use crate::state::CreateState;

pub const MAX_BULK_ITEMS: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct BulkRequest {
    pub items: Vec<CreateLinkRequest>,
}

// `BulkRequest::deserialize` here is the derive's inherent function (`remote = "Self"`).
impl<'de> Fields<'de> for BulkRequest {
    fn from_fields<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        BulkRequest::deserialize(MapAccessDeserializer::new(map))
    }
}

impl<'de> Deserialize<'de> for BulkRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object_only(deserializer)
    }
}

/// The outcome of one item: `status` is what a single create would have answered
/// (201 made, 200 an existing link for `reuse`, or a problem's).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkItemResult {
    pub index: usize,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkResponse {
    pub created: usize,
    pub failed: usize,
    pub results: Vec<BulkItemResult>,
}

fn failed(index: usize, problem: &Problem) -> BulkItemResult {
    BulkItemResult {
        index,
        status: problem.status,
        link: None,
        error: serde_json::to_value(problem).ok(),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/links/bulk",
    tag = "links",
    request_body = BulkRequest,
    responses(
        (status = 200, description = "One result per item, in input order", body = BulkResponse),
        super::openapi::CallerProblems,
        super::openapi::BodyProblems,
        (status = 422, description = "No items, more than 1000, or an invalid body", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("api_key" = []))
)]
pub async fn create_bulk(
    req: HttpRequest,
    state: web::Data<CreateState>,
    body: web::Json<BulkRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::CreateLink).await?;
    let items = body.into_inner().items;
    if items.is_empty() || items.len() > MAX_BULK_ITEMS {
        return Err(ApiError::Invalid(
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-bulk-size",
                "Invalid number of items",
            )
            .detail(format!(
                "a bulk request holds 1–{MAX_BULK_ITEMS} items, this one has {}",
                items.len()
            )),
        ));
    }

    let now = now_ms();
    let mut results: Vec<Option<BulkItemResult>> = Vec::with_capacity(items.len());
    let mut records = Vec::new();
    let mut positions = Vec::new();
    // Each named domain is looked up once per request; `Err`: not the caller's.
    let mut sites: HashMap<DomainName, Result<Option<DomainRecord>, ()>> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let valid = match item.validate(&state.url_policy, now) {
            Ok(valid) => valid,
            Err(errors) => {
                results.push(Some(failed(index, &errors.into_problem())));
                continue;
            }
        };
        let site = match &valid.domain {
            None => None,
            Some(name) => {
                if !sites.contains_key(name) {
                    let site =
                        match super::caller_domain(&state, caller.tenant_id(), Some(name)).await {
                            Err(ApiError::DomainNotFound) => Err(()),
                            other => Ok(other?),
                        };
                    sites.insert(name.clone(), site);
                }
                match sites.get(name) {
                    Some(Ok(site)) => site.clone(),
                    _ => {
                        results.push(Some(failed(index, &ApiError::DomainNotFound.problem())));
                        continue;
                    }
                }
            }
        };
        if item.reuse == Some(true)
            && let Some(existing) =
                super::create::reusable(&state, &caller, &valid, site.as_ref()).await?
        {
            state.metrics.reused.inc();
            results.push(Some(BulkItemResult {
                index,
                status: 200,
                link: Some(super::view(&state, &existing, site.as_ref())),
                error: None,
            }));
            continue;
        }
        let record = super::new_record(&state, &caller, valid, site.as_ref()).await?;
        // Two items of one request asking for the same alias on one domain: the first
        // wins.
        if records.iter().any(|(r, _): &(links::LinkRecord, _)| {
            r.domain == record.domain && r.code == record.code
        }) {
            let problem = ApiError::AliasTaken(record.code.into_string()).problem();
            results.push(Some(failed(index, &problem)));
            continue;
        }
        records.push((record, site));
        positions.push(index);
        results.push(None);
    }

    let rows: Vec<links::LinkRecord> = records.iter().map(|(r, _)| r.clone()).collect();
    // One audit row per link created, each under the request's id.
    let entries: Vec<_> = rows
        .iter()
        .map(|record| {
            caller.audit(
                AuditAction::LinkCreated,
                audit::link_target(record),
                audit::changes(None, Some(audit::link_state(record))),
            )
        })
        .collect();
    let inserted = audit::insert_links(&state.deps.db, &rows, &entries).await?;

    state.relay.wake();
    let mut created = 0;
    for (((record, site), index), ok) in records.iter().zip(positions).zip(inserted) {
        let result = if ok {
            created += 1;
            BulkItemResult {
                index,
                status: 201,
                link: Some(super::view(&state, record, site.as_ref())),
                error: None,
            }
        } else {
            failed(
                index,
                &ApiError::AliasTaken(record.code.to_string()).problem(),
            )
        };
        if let Some(slot) = results.get_mut(index) {
            *slot = Some(result);
        }
    }
    let results: Vec<BulkItemResult> = results.into_iter().flatten().collect();
    state
        .metrics
        .created
        .get(Created::Bulk)
        .inc_by(created as u64);
    Ok(HttpResponse::Ok().json(BulkResponse {
        created,
        failed: results.iter().filter(|r| r.status >= 400).count(),
        results,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_bodies_and_their_items_are_objects_only() {
        let ok: BulkRequest =
            serde_json::from_str(r#"{"items": [{"url": "https://example.com/"}]}"#)
                .expect("objects");
        assert_eq!(ok.items.len(), 1);
        for body in [
            r#"[[{"url": "https://example.com/"}]]"#,
            r#"{"items": [["https://example.com/"]]}"#,
            r#"{"items": [[]]}"#,
        ] {
            let err = serde_json::from_str::<BulkRequest>(body).expect_err(body);
            assert!(err.is_data(), "{body}: {err}");
        }
    }
}
