//! stats-service binary: load settings, install telemetry, serve.

use common::config::{ServiceKind, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load(ServiceKind::Stats, None)?;
    common::telemetry::init(&settings.telemetry);
    stats_service::run(settings).await
}
