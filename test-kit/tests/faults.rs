//! The fault-injection helpers, on private servers (never the shared bed, which other
//! tests use at the same time).

use std::time::Duration;

use anyhow::{Result, ensure};
use sqlx::{Connection, PgConnection};
use test_kit::{PgCluster, RedisCluster};

async fn can_connect(url: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(700), PgConnection::connect(url)).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn pg_replica_freeze_stop_and_promotion() -> Result<()> {
    let pg = PgCluster::start().await?;
    let replica = pg.replica_url("postgres");
    let primary = pg.primary_url("postgres");
    ensure!(pg.primary_pid()? != pg.replica_pid()?);

    pg.freeze_replica()?;
    ensure!(!can_connect(&replica).await, "a frozen replica answered");
    pg.thaw_replica()?;
    ensure!(
        can_connect(&replica).await,
        "the thawed replica does not answer"
    );

    pg.stop_replica().await?;
    ensure!(!can_connect(&replica).await, "a stopped replica answered");
    pg.start_replica().await?;
    pg.wait_replica_streaming(Duration::from_secs(20)).await?;

    let mut conn = PgConnection::connect(&primary).await?;
    sqlx::query("CREATE TABLE before_failover (x int)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;

    pg.kill_primary().await?;
    ensure!(!can_connect(&primary).await, "the killed primary answered");
    pg.promote_replica().await?;
    let mut conn = PgConnection::connect(&replica).await?;
    sqlx::query("INSERT INTO before_failover VALUES (1)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;

    let dir = pg.primary_dir().to_path_buf();
    pg.shutdown()?;
    ensure!(!dir.exists(), "shutdown left the data directory");
    Ok(())
}

#[tokio::test]
async fn redis_master_failover_and_rejoin() -> Result<()> {
    let cluster = RedisCluster::start().await?;
    let masters = cluster.master_ports().await?;
    ensure!(masters.len() == 3, "masters: {masters:?}");

    let victim = masters[0];
    cluster.kill_node(victim).await?;
    cluster.wait_healthy(Duration::from_secs(20)).await?;
    let after = cluster.master_ports().await?;
    ensure!(
        after.len() == 3 && !after.contains(&victim),
        "masters after failover: {after:?}"
    );

    cluster.restart_node(victim).await?;
    cluster.wait_healthy(Duration::from_secs(20)).await?;
    ensure!(
        !cluster.master_ports().await?.contains(&victim),
        "the old master came back as a master"
    );
    cluster.shutdown()?;
    Ok(())
}
