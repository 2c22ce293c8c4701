//! HTTP plumbing every service shares: extractor error bodies, the client address and
//! the operational routes (the server itself is built in [`crate::server`]).

use std::net::IpAddr;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderName;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::problem::Problem;

/// The Content-Security-Policy of every HTML page the services answer (the web page,
/// a protected link's password form): no inline script or style, nothing from
/// another origin; `data:` images only for the QR code, which the web page fetches
/// with the API key and shows as a data URL; forms post to their own origin.
pub const PAGE_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// JSON bodies up to `limit` bytes; every way a body can be wrong becomes a problem.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| json_problem(&err).into())
}

fn json_problem(err: &JsonPayloadError) -> Problem {
    match err {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
        )
        .detail(format!("the body must not exceed {limit} bytes")),
        JsonPayloadError::ContentType => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        )
        .detail("send `Content-Type: application/json`"),
        JsonPayloadError::Deserialize(e) if e.is_data() => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
            "Request body does not match the schema",
        )
        .detail(e.to_string()),
        JsonPayloadError::Deserialize(e) => {
            Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON")
                .detail(e.to_string())
        }
        other => Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Unreadable request body",
        )
        .detail(other.to_string()),
    }
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query parameters",
        )
        .detail(err.to_string())
        .into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found")
            .detail(err.to_string())
            .into()
    })
}

/// Fallback for routes that do not exist.
pub async fn not_found() -> HttpResponse {
    Problem::not_found().to_response()
}

/// The client's address: the trusted proxy header when one is configured, else the
/// TCP peer. A malformed header falls back to the peer rather than to "no address".
pub fn client_ip(req: &HttpRequest, trusted_header: Option<&HeaderName>) -> Option<IpAddr> {
    if let Some(name) = trusted_header
        && let Some(value) = req.headers().get(name).and_then(|v| v.to_str().ok())
    {
        // X-Forwarded-For lists hops left to right; the proxy we trust appended the
        // address it saw last.
        if let Some(ip) = value
            .rsplit(',')
            .next()
            .and_then(|last| last.trim().parse().ok())
        {
            return Some(ip);
        }
    }
    req.peer_addr().map(|addr| addr.ip())
}

/// Registers `/healthz`, `/readyz` and `/metrics`; the caller provides
/// `web::Data<Readiness>` and `web::Data<Metrics>`.
pub fn ops_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(crate::health::healthz))
        .route("/readyz", web::get().to(crate::health::readyz))
        .route("/metrics", web::get().to(crate::metrics::metrics_handler));
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn client_ip_prefers_trusted_header() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().expect("addr"))
            .insert_header(("X-Forwarded-For", "198.51.100.1, 203.0.113.9"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, Some(&HeaderName::from_static("x-forwarded-for"))),
            Some("203.0.113.9".parse().expect("ip"))
        );
        assert_eq!(client_ip(&req, None), Some("10.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn unknown_fields_are_422_and_syntax_errors_400() {
        let data = serde_json::from_str::<serde_json::Value>("{").expect_err("syntax");
        assert_eq!(
            json_problem(&JsonPayloadError::Deserialize(data)).status,
            400
        );
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            a: u8,
        }
        let data = serde_json::from_str::<S>(r#"{"a":1,"b":2}"#).expect_err("unknown");
        assert_eq!(
            json_problem(&JsonPayloadError::Deserialize(data)).status,
            422
        );
    }
}
