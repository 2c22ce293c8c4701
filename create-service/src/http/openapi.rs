//! `GET /api/v1/openapi.json`: the OpenAPI 3 document generated from the handlers'
//! annotations, so it cannot drift from the code.

use actix_web::HttpResponse;
use common::openapi::ApiKeyAuth;
use common::problem::Problem;
use utoipa::{IntoResponses, OpenApi};

/// Answers any endpoint may give before its own work: authentication and rate
/// limits (`CreateState::caller`) and an unreachable database.
#[derive(IntoResponses)]
pub enum CallerProblems {
    #[response(
        status = 401,
        description = "Missing, invalid, revoked or expired API key",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "The key lacks the permission the call needs; `permission` names it",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    #[response(
        status = 429,
        description = "Rate limited",
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait"))
    )]
    RateLimited(Problem),
    #[response(
        status = 503,
        description = "A dependency is unavailable; retry later",
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait"))
    )]
    Unavailable(Problem),
}

/// Answers to a JSON body that cannot be read at all (`common::http::json_config`);
/// a body that parses but breaks the schema or a rule is each endpoint's 422.
/// The answer to query parameters an endpoint does not take or cannot read.
#[derive(IntoResponses)]
pub enum QueryProblems {
    #[response(
        status = 400,
        description = "Unknown or unreadable query parameters",
        content_type = "application/problem+json"
    )]
    BadQuery(Problem),
}

#[derive(IntoResponses)]
pub enum BodyProblems {
    #[response(
        status = 400,
        description = "Malformed JSON",
        content_type = "application/problem+json"
    )]
    Malformed(Problem),
    #[response(
        status = 413,
        description = "Body too large",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    #[response(
        status = 415,
        description = "Not `Content-Type: application/json`",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Shortener link API", description = "Create and manage short links."),
    paths(
        super::create::create_link,
        super::bulk::create_bulk,
        super::get::get_link,
        super::update::update_link,
        super::delete::delete_link,
        super::list::list_links,
        super::qr::link_qr,
        super::domains::create_domain,
        super::domains::list_domains,
        super::domains::get_domain,
        super::domains::update_domain,
        super::domains::delete_domain,
        super::keys::create_key,
        super::keys::list_keys,
        super::keys::delete_key,
        super::keys::rotate_key,
        super::audit::read_audit,
        super::members::add_member,
        super::members::list_members,
        super::members::update_member,
        super::members::remove_member,
        super::webhooks::create_webhook,
        super::webhooks::list_webhooks,
        super::webhooks::get_webhook,
        super::webhooks::update_webhook,
        super::webhooks::delete_webhook,
        super::webhooks::test_webhook,
        super::webhooks::list_messages,
        super::webhooks::list_attempts,
        super::webhooks::replay_all,
        super::webhooks::replay_one,
    ),
    components(schemas(common::problem::FieldError)),
    modifiers(&ApiKeyAuth),
    tags(
        (name = "links", description = "Short links"),
        (name = "domains", description = "Branded domains links are served on"),
        (name = "keys", description = "API keys: roles, scopes, expiry, rotation"),
        (name = "audit", description = "Who changed what, and when"),
        (name = "members", description = "The people of a tenant and their roles"),
        (name = "webhooks", description = "Where a tenant's events are delivered, signed")
    )
)]
pub struct ApiDoc;

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_every_answer_the_handlers_give() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut operations = 0;
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let responses = op["responses"].as_object().unwrap();
                for status in ["401", "403", "429", "503"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
                if op.get("requestBody").is_some() {
                    for status in ["400", "413", "415", "422"] {
                        assert!(responses.contains_key(status), "{method} {path}: {status}");
                    }
                }
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert!(
                            response["content"]["application/problem+json"].is_object(),
                            "{method} {path}: {status} is not problem+json"
                        );
                    }
                }
            }
        }
        assert_eq!(operations, 31);
    }

    #[test]
    fn every_call_on_one_link_names_its_domain() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut calls = 0;
        for (path, item) in paths.iter().filter(|(p, _)| p.contains("{code}")) {
            for (method, op) in item.as_object().unwrap() {
                calls += 1;
                let in_query = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == "domain" && p["in"] == "query");
                assert!(in_query, "{method} {path} takes no `domain`");
            }
        }
        assert_eq!(calls, 4, "get, patch, delete and qr");
    }

    #[test]
    fn list_parameters_are_in_the_query() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let params = doc["paths"]["/api/v1/links"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let names: Vec<_> = params
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [("cursor", "query"), ("limit", "query"), ("domain", "query")]
        );
        assert_eq!(params[1]["schema"]["maximum"], 1000);
    }
}
