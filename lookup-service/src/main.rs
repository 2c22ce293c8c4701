//! lookup-service binary: load settings, install telemetry, serve redirects.

use common::config::{ServiceKind, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load(ServiceKind::Lookup, None)?;
    common::telemetry::init(&settings.telemetry);
    lookup_service::run(settings).await
}
