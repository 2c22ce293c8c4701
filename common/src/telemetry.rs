//! Tracing setup: human-readable logs on a laptop, one JSON object per line in
//! production (what log shippers expect). Request spans come from tracing-actix-web,
//! which adds a request id to every line logged while serving a request.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetrySettings};

/// Installs the global subscriber. Safe to call more than once (tests build several
/// applications in one process): later calls keep the first subscriber.
pub fn init(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    // An error only means a subscriber is already installed.
    drop(result);
}

/// Request spans for every service. A redirect (or a probe) is one path segment and
/// ~99% of all traffic: its span is at DEBUG, so at the default INFO filter it costs
/// nothing and redirects are counted by metrics instead; API calls get an INFO span.
/// The route is recorded when the request ends, after the router has matched it,
/// instead of matching the path once more up front.
pub struct RequestSpan;

/// The request-tracing middleware every service wraps its app in.
pub fn request_tracing() -> tracing_actix_web::TracingLogger<RequestSpan> {
    tracing_actix_web::TracingLogger::new()
}

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage;
        use tracing::field::Empty;
        // Field values are evaluated only when the span is enabled.
        let request_id = || {
            request
                .extensions()
                .get::<tracing_actix_web::RequestId>()
                .map(|id| id.to_string())
                .unwrap_or_default()
        };
        macro_rules! span {
            ($level:expr) => {
                tracing::span!(
                    $level,
                    "HTTP request",
                    http.method = %request.method(),
                    http.route = Empty,
                    http.target = %request.path(),
                    http.status_code = Empty,
                    otel.kind = "server",
                    otel.status_code = Empty,
                    request_id = %request_id(),
                    exception.message = Empty,
                    exception.details = Empty,
                )
            };
        }
        let path = request.path();
        if path.len() > 1 && !path[1..].contains('/') {
            span!(tracing::Level::DEBUG)
        } else {
            span!(tracing::Level::INFO)
        }
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        if span.is_disabled() {
            return;
        }
        if let Ok(response) = outcome {
            let route = response.request().match_pattern();
            span.record("http.route", route.as_deref().unwrap_or("unmatched"));
        }
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
