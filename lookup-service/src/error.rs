//! Every answer to a follow other than a redirect, as one enum mapped to problem+json
//! in one place.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, CACHE_CONTROL, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use common::db::links::LinkState;
use common::problem::Problem;

/// Not cacheable: the next request must reach us (an unblock, an edit).
pub const NO_STORE: HeaderValue = HeaderValue::from_static("private, max-age=0");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// A path of more than one segment: no code at all.
    #[error("no such path")]
    NoSuchPath,
    /// The request's host is neither the shortener's own nor a domain a tenant holds.
    #[error("no links are served on this host")]
    UnknownHost,
    /// No link has this code (or the segment cannot be one).
    #[error("no link has this code")]
    UnknownCode,
    /// This address has asked for too many unknown codes (a scanner).
    #[error("too many unknown codes from this address")]
    Scanning { retry_after: Duration },
    #[error("short links answer GET and HEAD")]
    MethodNotAllowed,
    /// Expired, disabled or deleted.
    #[error("the link is {0:?}")]
    Gone(LinkState),
    #[error("the link has reached its visit limit")]
    VisitLimitReached,
    /// The target host is blocked (`links.blocked_hosts` or `shortener hosts block`).
    #[error("the link leads to a blocked host")]
    Blocked,
    /// Every tier failed.
    #[error("links cannot be looked up right now")]
    Unavailable,
}

impl FollowError {
    pub fn problem(&self) -> Problem {
        let gone = |why: &str| {
            Problem::new(StatusCode::GONE, "link-gone", "Link no longer available").detail(why)
        };
        match self {
            FollowError::NoSuchPath => Problem::not_found(),
            FollowError::UnknownHost => Problem::not_found().detail("no links are served on this host"),
            FollowError::UnknownCode => Problem::not_found().detail("no link has this code"),
            FollowError::Scanning { retry_after } => {
                Problem::rate_limited(*retry_after, "too many unknown codes from this address")
            }
            FollowError::MethodNotAllowed => Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            )
            .detail("short links answer GET and HEAD"),
            FollowError::Gone(LinkState::Expired) => gone("this link has expired"),
            FollowError::Gone(LinkState::Disabled) => gone("this link has been disabled"),
            FollowError::Gone(_) => gone("this link has been deleted"),
            FollowError::VisitLimitReached => gone("this link has reached its visit limit"),
            FollowError::Blocked => Problem::new(StatusCode::GONE, "link-blocked", "Link blocked")
                .detail(
                    "this link leads to a host that is blocked (for example for phishing or malware)",
                ),
            FollowError::Unavailable => Problem::unavailable("cannot look links up right now"),
        }
    }
}

impl ResponseError for FollowError {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.problem().to_response();
        let headers = response.headers_mut();
        match self {
            FollowError::MethodNotAllowed => {
                headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            // An unblock must bring the redirect back at once.
            FollowError::Blocked => {
                headers.insert(CACHE_CONTROL, NO_STORE);
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_has_its_status_and_type() {
        for (error, status, slug) in [
            (FollowError::NoSuchPath, 404, "not-found"),
            (FollowError::UnknownCode, 404, "not-found"),
            (FollowError::UnknownHost, 404, "not-found"),
            (
                FollowError::Scanning {
                    retry_after: Duration::from_millis(1500),
                },
                429,
                "rate-limited",
            ),
            (FollowError::MethodNotAllowed, 405, "method-not-allowed"),
            (FollowError::Gone(LinkState::Expired), 410, "link-gone"),
            (FollowError::VisitLimitReached, 410, "link-gone"),
            (FollowError::Blocked, 410, "link-blocked"),
            (FollowError::Unavailable, 503, "unavailable"),
        ] {
            let response = error.error_response();
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            let problem = error.problem();
            assert!(problem.kind.ends_with(slug), "{error:?}: {}", problem.kind);
        }
        let scanning = FollowError::Scanning {
            retry_after: Duration::from_millis(1500),
        }
        .error_response();
        assert_eq!(
            scanning.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
        let blocked = FollowError::Blocked.error_response();
        assert_eq!(blocked.headers().get(CACHE_CONTROL), Some(&NO_STORE));
        let method = FollowError::MethodNotAllowed.error_response();
        assert_eq!(
            method.headers().get(ALLOW).map(|v| v.as_bytes()),
            Some(&b"GET, HEAD"[..])
        );
    }
}
