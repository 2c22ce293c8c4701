//! stats-service binary: load settings, install telemetry, serve.

use common::config::{ServiceKind, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load(ServiceKind::Stats, None)?;
    common::telemetry::init(&settings.telemetry);
    let app = stats_service::Application::build(settings).await?;
    tracing::info!(port = app.port(), "stats-service listening");
    app.run_until_stopped().await
}
