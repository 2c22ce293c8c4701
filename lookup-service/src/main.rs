//! lookup-service binary: load settings, install telemetry, serve redirects.

use common::config::{ServiceKind, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load(ServiceKind::Lookup, None)?;
    common::telemetry::init(&settings.telemetry);
    let app = lookup_service::Application::build(settings).await?;
    tracing::info!(port = app.port(), "lookup-service listening");
    app.run_until_stopped().await
}
