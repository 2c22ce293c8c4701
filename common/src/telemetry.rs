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
