//! RFC 9457 problem details: the one error body every service answers with.
//!
//! `type` is a relative URI (`/problems/<slug>`) naming the kind of problem; clients
//! switch on it, people read `title` and `detail`. Internal causes never reach the
//! body: they are logged where the problem is built.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// One invalid field, for problems that concern several.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The permission a 403 found missing (`links:write`), for clients to act on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<&'static str>,
    /// Seconds a client should wait (also sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

impl Problem {
    /// A problem of kind `slug` (e.g. `invalid-url`) with its status and title.
    pub fn new(status: StatusCode, slug: &str, title: &'static str) -> Problem {
        Problem {
            kind: format!("/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            permission: None,
            retry_after: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = Some(detail.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>, message: impl Into<String>) -> Problem {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Problem {
        self.retry_after = Some(u32::try_from(seconds).unwrap_or(u32::MAX));
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The caller's key lacks `permission`.
    pub fn forbidden(permission: &'static str) -> Problem {
        let mut problem = Problem::new(StatusCode::FORBIDDEN, "forbidden", "Permission missing")
            .detail(format!("this API key lacks the `{permission}` permission"));
        problem.permission = Some(permission);
        problem
    }

    pub fn not_found() -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found")
    }

    /// Over a rate limit: 429 with the whole seconds to wait, at least one.
    pub fn rate_limited(retry_after: std::time::Duration, detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        )
        .detail(detail)
        .retry_after(retry_after.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// A dependency is down: the request may succeed if retried later.
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service temporarily unavailable",
        )
        .detail(detail)
        .retry_after(1)
    }

    pub fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
    }

    pub fn to_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)));
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(self)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.detail {
            Some(detail) => write!(f, "{} ({}): {detail}", self.title, self.status),
            None => write!(f, "{} ({})", self.title, self.status),
        }
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        Problem::status_code(self)
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_rfc9457_members() {
        let p = Problem::new(StatusCode::CONFLICT, "alias-taken", "Alias already taken")
            .detail("`promo` belongs to another link");
        let v = serde_json::to_value(&p).expect("serialises");
        assert_eq!(v["type"], "/problems/alias-taken");
        assert_eq!(v["status"], 409);
        assert_eq!(v["title"], "Alias already taken");
        assert!(v.get("errors").is_none());
        let r = p.to_response();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(CONTENT_TYPE.as_bytes())
        );
    }
}
