//! The shared bed end to end: replication, per-test databases, the Redis Cluster and
//! nginx. Attaches to `$SHORTENER_TESTBED` when set, else starts a private bed.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sqlx::{Connection, PgConnection};
use test_kit::redis::redis_cli;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Polls `f` until it yields `Some`, for at most `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        let last = f().await;
        if let Ok(Some(v)) = last {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("{what}: not within {timeout:?} (last: {:?})", last.err());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn primary_writes_are_read_on_the_replica() -> Result<()> {
    let bed = test_kit::try_bed().await?;
    let db = bed.try_fresh_database().await?;

    let mut primary = PgConnection::connect(&db.primary_url).await?;
    sqlx::query("CREATE TABLE greeting (id int PRIMARY KEY, text text NOT NULL)")
        .execute(&mut primary)
        .await?;
    sqlx::query("INSERT INTO greeting VALUES (1, 'hello')")
        .execute(&mut primary)
        .await?;

    let mut replica = PgConnection::connect(&db.replica_url).await?;
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut replica)
        .await?;
    ensure!(
        in_recovery,
        "the replica URL points at a server that is not a replica"
    );

    let started = Instant::now();
    let mut text = None;
    while text.is_none() && started.elapsed() < Duration::from_secs(5) {
        text = sqlx::query_scalar::<_, String>("SELECT text FROM greeting WHERE id = 1")
            .fetch_optional(&mut replica)
            .await
            .ok()
            .flatten();
    }
    let text = text.context("the row never reached the replica")?;
    ensure!(text == "hello");
    eprintln!("replica saw the row after {:?}", started.elapsed());

    let err = sqlx::query("INSERT INTO greeting VALUES (2, 'no')")
        .execute(&mut replica)
        .await;
    ensure!(err.is_err(), "the replica accepted a write");
    Ok(())
}

#[tokio::test]
async fn test_databases_are_separate_and_dropped_afterwards() -> Result<()> {
    let bed = test_kit::try_bed().await?;
    let a = bed.try_fresh_database().await?;
    let b = bed.try_fresh_database().await?;
    ensure!(a.name != b.name);

    let mut conn_a = PgConnection::connect(&a.primary_url).await?;
    sqlx::query("CREATE TABLE only_in_a (x int)")
        .execute(&mut conn_a)
        .await?;
    conn_a.close().await?;
    let mut conn_b = PgConnection::connect(&b.primary_url).await?;
    let seen: Option<String> = sqlx::query_scalar("SELECT to_regclass('only_in_a')::text")
        .fetch_one(&mut conn_b)
        .await?;
    ensure!(
        seen.is_none(),
        "a table of one test database shows up in another"
    );
    conn_b.close().await?;

    // Migrations reached the copy: the template holds sqlx's bookkeeping table when
    // the workspace has migrations.
    if test_kit::bed::migrations_dir()
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        let mut conn = PgConnection::connect(&a.primary_url).await?;
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await?;
        ensure!(applied > 0, "no migrations in the test database");
    }

    let name = a.name.clone();
    drop(a);
    let mut admin = PgConnection::connect(&bed.pg().primary_url("postgres")).await?;
    let started = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
        if n == 0 {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "{name} was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn redis_cluster_stores_keys_across_nodes() -> Result<()> {
    let bed = test_kit::try_bed().await?;
    let ports = bed.redis().ports();
    ensure!(ports.len() == 6);
    ensure!(bed.redis_urls()[0] == format!("redis://127.0.0.1:{}", ports[0]));
    ensure!(bed.redis().master_ports().await?.len() == 3);

    let prefix = bed.fresh_prefix();
    ensure!(prefix != bed.fresh_prefix());
    // Different keys hash to different slots, so some SETs are redirected (-c).
    for i in 0..8 {
        let key = format!("{prefix}key{i}");
        let set = redis_cli(ports[0], &["-c", "SET", &key, &format!("value{i}")]).await?;
        ensure!(set == "OK", "SET {key}: {set}");
    }
    for i in 0..8 {
        let key = format!("{prefix}key{i}");
        let got = redis_cli(ports[5], &["-c", "GET", &key]).await?;
        ensure!(got == format!("value{i}"), "GET {key} gave {got:?}");
    }
    Ok(())
}

const REDIRECT_CONF: &str = "worker_processes 1;
events { worker_connections 64; }
http {
    server {
        listen 127.0.0.1:{{port}};
        location / { return 302 http://example.invalid/; }
    }
}
";

async fn http_get(port: u16, path: &str) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .context("no response within 5 s")??;
    Ok(response)
}

#[tokio::test]
async fn nginx_serves_the_given_config_and_stops_on_drop() -> Result<()> {
    let nginx = test_kit::Nginx::try_start(REDIRECT_CONF).await?;
    let response = http_get(nginx.port(), "/abc").await?;
    ensure!(
        response.starts_with("HTTP/1.1 302"),
        "unexpected response:\n{response}"
    );
    ensure!(
        response.contains("\r\nLocation: http://example.invalid/\r\n"),
        "no Location header:\n{response}"
    );

    let (port, prefix) = (nginx.port(), nginx.prefix().to_path_buf());
    drop(nginx);
    ensure!(!prefix.exists(), "the prefix outlived nginx");
    let refused = eventually("port closed", Duration::from_secs(5), || async {
        Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
            .then_some(()))
    })
    .await;
    ensure!(refused.is_ok(), "nginx still listens after drop");
    Ok(())
}

#[tokio::test]
async fn nginx_reports_a_broken_config() -> Result<()> {
    let err = match test_kit::Nginx::try_start("events {}\nhttp { nonsense_directive on; }").await {
        Ok(_) => bail!("nginx started with an invalid config"),
        Err(e) => format!("{e:#}"),
    };
    ensure!(
        err.contains("nonsense_directive"),
        "the error does not quote nginx's log: {err}"
    );
    Ok(())
}
