//! `shortener webhooks dead-letters|replay` through the binary, on an embedded SQLite
//! file: an operator sees a tenant's dead letters and puts them back in line, and the
//! audit log says who did.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod command;

use command::{db_url, shortener, stderr, stdout};
use common::config::{ServiceKind, Settings};
use common::db::webhooks::{EndpointRecord, insert_endpoint, insert_messages};
use common::domain::webhooks::EventType;
use common::link::TenantId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![("SHORTENER__DATABASE__URL".to_string(), db_url(dir.path()))];
    let settings = Settings::load_from(ServiceKind::AllInOne, None, env).unwrap();
    let deps = common::deps::Deps::connect(ServiceKind::AllInOne, settings)
        .await
        .unwrap();
    let now = common::time::now_ms();
    let endpoint = EndpointRecord {
        url: "https://hooks.example.com/in".into(),
        events: vec![EventType::LinkCreated],
        ..common::webhooks::new_endpoint(TenantId::from_stored("acme".into()), now)
    };
    let message = common::webhooks::test_message(&endpoint, now);
    let mut tx = deps.db.begin_write().await.unwrap();
    insert_endpoint(&mut tx, &endpoint).await.unwrap();
    insert_messages(&mut tx, std::slice::from_ref(&message))
        .await
        .unwrap();
    sqlx::query("UPDATE webhook_messages SET state = 'dead', attempts = 31 WHERE id = $1")
        .bind(&message.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let listed = shortener(
        dir.path(),
        &["webhooks", "dead-letters", "--tenant", "acme"],
    );
    assert!(listed.status.success(), "{listed:?}");
    let line = stdout(&listed);
    let fields: Vec<&str> = line.trim_end().split('\t').collect();
    assert_eq!(fields[0], message.id);
    assert_eq!(fields[1], endpoint.id);
    assert_eq!(fields[2], "webhook.test");
    assert_eq!(fields[5], "31");
    // Another tenant has none.
    let theirs = shortener(
        dir.path(),
        &["webhooks", "dead-letters", "--tenant", "other"],
    );
    assert!(
        theirs.status.success() && stdout(&theirs).is_empty(),
        "{theirs:?}"
    );

    let replay = [
        "webhooks",
        "replay",
        "--tenant",
        "acme",
        "--endpoint",
        &endpoint.id,
        "--message",
        &message.id,
    ];
    let replayed = shortener(dir.path(), &replay);
    assert!(replayed.status.success(), "{replayed:?}");
    assert!(
        stdout(&replayed).starts_with("1 dead letter(s)"),
        "{replayed:?}"
    );
    // Not dead any more: a second replay of it is refused, and nothing is listed.
    let again = shortener(dir.path(), &replay);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("no dead letter"), "{again:?}");
    let listed = shortener(
        dir.path(),
        &["webhooks", "dead-letters", "--tenant", "acme"],
    );
    assert!(stdout(&listed).is_empty(), "{listed:?}");
    // Another tenant's endpoint is out of reach.
    let wrong = shortener(
        dir.path(),
        &[
            "webhooks",
            "replay",
            "--tenant",
            "other",
            "--endpoint",
            &endpoint.id,
        ],
    );
    assert!(!wrong.status.success());

    use sqlx::Row;
    let row = sqlx::query("SELECT state, attempts FROM webhook_messages WHERE id = $1")
        .bind(&message.id)
        .fetch_one(deps.db.primary())
        .await
        .unwrap();
    let state: (String, i64) = (row.try_get(0).unwrap(), row.try_get(1).unwrap());
    assert_eq!(state, ("pending".to_string(), 31));
    let log = common::db::audit::count(deps.db.primary()).await.unwrap();
    assert_eq!(log, 1, "one audit row: the replay, by the operator");
    deps.db.close().await;
}
