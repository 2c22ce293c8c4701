//! The stats API's error enum, sorted by what the caller should do and mapped to
//! problem+json in one place.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use common::db::StoreError;
use common::domain::access::Action;
use common::problem::Problem;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The key was refused (or could not be checked); the problem says how.
    #[error("authentication: {0}")]
    Auth(Problem),
    /// The caller's key lacks `stats:read`.
    #[error("permission `stats:read` missing")]
    Forbidden,
    #[error("no API key, and anonymous stats are off")]
    Unauthorized,
    /// A bad `from`, `to` or `granularity`; the text says which.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// No link of the caller's under this code (another tenant's answers the same).
    #[error("no such link")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StatsError {
    pub fn problem(&self) -> Problem {
        match self {
            StatsError::Auth(p) => p.clone(),
            StatsError::Unauthorized => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or invalid API key",
            )
            .detail("send `Authorization: Bearer <key>`"),
            StatsError::Forbidden => Problem::forbidden(Action::ReadStats.permission()),
            StatsError::InvalidQuery(why) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "Invalid query parameters",
            )
            .detail(why.clone()),
            StatsError::NotFound => Problem::not_found().detail("no such link of yours"),
            StatsError::Store(e) if e.is_unavailable() => {
                Problem::unavailable("the database is unavailable; retry shortly")
            }
            StatsError::Store(_) => Problem::internal(),
        }
    }
}

impl From<Problem> for StatsError {
    fn from(problem: Problem) -> StatsError {
        StatsError::Auth(problem)
    }
}

impl ResponseError for StatsError {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        if let StatsError::Store(e) = self
            && !e.is_unavailable()
        {
            tracing::error!(error = ?e, "stats query failed");
        }
        self.problem().to_response()
    }
}
