//! create-service binary: load settings, install telemetry, serve.
//!
//! `create-service migrate` applies the database migrations and exits (the Helm
//! chart's pre-install/pre-upgrade Job runs it).

use common::config::{ServiceKind, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load(ServiceKind::Create, None)?;
    common::telemetry::init(&settings.telemetry);
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        let db = common::db::Database::connect(&settings.database)?;
        db.migrate().await?;
        tracing::info!("migrations applied");
        return Ok(());
    }
    create_service::run(settings).await
}
