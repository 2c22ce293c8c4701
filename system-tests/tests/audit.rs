//! The audit log, on SQLite and on PostgreSQL: every operation of the OpenAPI
//! document that changes something leaves exactly one audit row with the right diff
//! (an operation this file does not know fails the walk, so a new endpoint cannot
//! ship without its audit row), the log reads by filter and as CSV, the admin
//! commands are recorded too, and on PostgreSQL the services' role can add audit rows
//! but never change or delete them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use common::config::DatabaseSettings;
use common::db::Database;
use common::domain::audit::Actor;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Answer, Harness};

on_both_engines!(
    every_change_leaves_one_audit_row,
    the_log_reads_by_filter_and_as_csv,
    admin_commands_are_recorded
);

/// The operations the walk knows, as `METHOD path` of the OpenAPI document.
const MUTATIONS: [&str; 18] = [
    "POST /api/v1/links",
    "POST /api/v1/links/bulk",
    "PATCH /api/v1/links/{code}",
    "DELETE /api/v1/links/{code}",
    "POST /api/v1/domains",
    "PATCH /api/v1/domains/{name}",
    "DELETE /api/v1/domains/{name}",
    "POST /api/v1/keys",
    "DELETE /api/v1/keys/{id}",
    "POST /api/v1/keys/{id}/rotate",
    "POST /api/v1/members",
    "PATCH /api/v1/members/{id}",
    "DELETE /api/v1/members/{id}",
    "POST /api/v1/webhooks",
    "PATCH /api/v1/webhooks/{id}",
    "DELETE /api/v1/webhooks/{id}",
    "POST /api/v1/webhooks/{id}/replay",
    "POST /api/v1/webhooks/{id}/messages/{message_id}/replay",
];

/// Operations that change no setting of a tenant's, so leave no audit row: a test
/// event only queues a message to an endpoint, which its delivery log shows.
const NOT_AUDITED: [&str; 1] = ["POST /api/v1/webhooks/{id}/test"];

/// The operations of create-service's OpenAPI document that change something.
async fn mutations_in_the_document(h: &Harness) -> Vec<String> {
    let doc = h.get_as(&h.key, "/api/v1/openapi.json").await;
    assert_eq!(doc.status, 200);
    let mut found = Vec::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let op = format!("{} {path}", method.to_uppercase());
            if ["post", "put", "patch", "delete"].contains(&method.as_str())
                && !NOT_AUDITED.contains(&op.as_str())
            {
                found.push(op);
            }
        }
    }
    found.sort();
    found
}

/// `method path` on create-service as the owner's key, with a request id.
async fn call(h: &Harness, method: Method, path: &str, body: Option<Value>, id: &str) -> Answer {
    let mut request = h
        .http
        .request(method, h.create_url(path))
        .bearer_auth(&h.key)
        .header("x-request-id", id);
    if let Some(body) = body {
        request = request.json(&body);
    }
    h.send(request).await
}

/// The owner key's id: the one `tests` key its tenant has.
async fn owner_key_id(h: &Harness) -> String {
    let keys = h.get_as(&h.key, "/api/v1/keys").await;
    let ids: Vec<&str> = keys.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["label"] == "tests")
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{}", keys.text);
    ids[0].to_string()
}

/// What an operation should have recorded: its action, its target, and its changes
/// (`to` values of `null` here mean "any value", for what the test cannot know).
struct Expected {
    action: &'static str,
    target: String,
    changes: Value,
}

fn created_link(url: &str, tags: Value) -> Value {
    json!({
        "url": {"from": null, "to": url},
        "redirect_status": {"from": null, "to": 302},
        "tags": {"from": null, "to": tags},
        "disabled": {"from": null, "to": false},
        "deleted": {"from": null, "to": false},
        "forward_query": {"from": null, "to": true},
    })
}

/// Sets up what `op` needs (its own audit rows are not counted), then returns the
/// request that takes it and what it should record.
async fn prepare(h: &Harness, op: &str) -> (Method, String, Option<Value>, Expected) {
    let make_link = |alias: &'static str| async move {
        let made = h
            .post_as(
                &h.key,
                "/api/v1/links",
                json!({"url": "https://example.com/before", "alias": alias}),
            )
            .await;
        assert_eq!(made.status, 201, "{}", made.text);
    };
    let add_domain = |name: &'static str| async move {
        assert_eq!(
            h.add_domain(&h.key, json!({"name": name})).await.status,
            201
        );
    };
    let add_webhook = || async move {
        let made = h
            .post_as(
                &h.key,
                "/api/v1/webhooks",
                json!({"url": "https://hooks.example.com/walk", "events": ["link.created"]}),
            )
            .await;
        assert_eq!(made.status, 201, "{}", made.text);
        made.body["id"].as_str().unwrap().to_string()
    };
    let webhook_state = json!({
        "url": {"from": "https://hooks.example.com/walk", "to": null},
        "events": {"from": ["link.created"], "to": null},
        "description": {"from": "", "to": null},
        "enabled": {"from": true, "to": null},
    });
    match op {
        "POST /api/v1/webhooks" => (
            Method::POST,
            "/api/v1/webhooks".into(),
            Some(json!({"url": "https://hooks.example.com/walk", "events": ["link.created"]})),
            Expected {
                action: "webhook.added",
                target: "webhook:".into(),
                changes: json!({
                    "url": {"from": null, "to": "https://hooks.example.com/walk"},
                    "events": {"from": null, "to": ["link.created"]},
                    "description": {"from": null, "to": ""},
                    "enabled": {"from": null, "to": true},
                }),
            },
        ),
        "PATCH /api/v1/webhooks/{id}" => {
            let id = add_webhook().await;
            (
                Method::PATCH,
                format!("/api/v1/webhooks/{id}"),
                Some(json!({"enabled": false})),
                Expected {
                    action: "webhook.updated",
                    target: format!("webhook:{id}"),
                    changes: json!({"enabled": {"from": true, "to": false}}),
                },
            )
        }
        "POST /api/v1/webhooks/{id}/replay" => {
            let id = add_webhook().await;
            (
                Method::POST,
                format!("/api/v1/webhooks/{id}/replay"),
                None,
                Expected {
                    action: "webhook.replayed",
                    target: format!("webhook:{id}"),
                    changes: json!({"replayed": {"from": null, "to": 0}}),
                },
            )
        }
        "POST /api/v1/webhooks/{id}/messages/{message_id}/replay" => {
            let id = add_webhook().await;
            // A dead letter, as the worker leaves one.
            let endpoint = common::db::webhooks::get_endpoint(
                h.db.primary(),
                &common::link::TenantId::from_stored("acme".into()),
                &id,
            )
            .await
            .unwrap()
            .unwrap();
            let message = common::webhooks::test_message(&endpoint, common::time::now_ms());
            let mut tx = h.db.begin_write().await.unwrap();
            common::db::webhooks::insert_messages(&mut tx, std::slice::from_ref(&message))
                .await
                .unwrap();
            sqlx::query("UPDATE webhook_messages SET state = 'dead' WHERE id = $1")
                .bind(&message.id)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            (
                Method::POST,
                format!("/api/v1/webhooks/{id}/messages/{}/replay", message.id),
                None,
                Expected {
                    action: "webhook.replayed",
                    target: format!("webhook:{id}"),
                    changes: json!({"replayed": {"from": null, "to": 1}}),
                },
            )
        }
        "DELETE /api/v1/webhooks/{id}" => {
            let id = add_webhook().await;
            (
                Method::DELETE,
                format!("/api/v1/webhooks/{id}"),
                None,
                Expected {
                    action: "webhook.removed",
                    target: format!("webhook:{id}"),
                    changes: webhook_state,
                },
            )
        }
        "POST /api/v1/links" => (
            Method::POST,
            "/api/v1/links".into(),
            Some(
                json!({"url": "https://example.com/walk", "alias": "walk-created", "tags": ["a"]}),
            ),
            Expected {
                action: "link.created",
                target: "link:walk-created".into(),
                changes: created_link("https://example.com/walk", json!(["a"])),
            },
        ),
        "POST /api/v1/links/bulk" => (
            Method::POST,
            "/api/v1/links/bulk".into(),
            Some(json!({"items": [{"url": "https://example.com/bulk", "alias": "walk-bulk"}]})),
            Expected {
                action: "link.created",
                target: "link:walk-bulk".into(),
                changes: created_link("https://example.com/bulk", json!([])),
            },
        ),
        "PATCH /api/v1/links/{code}" => {
            make_link("walk-edited").await;
            (
                Method::PATCH,
                "/api/v1/links/walk-edited".into(),
                Some(json!({"url": "https://example.com/after", "max_visits": 5})),
                Expected {
                    action: "link.updated",
                    target: "link:walk-edited".into(),
                    changes: json!({
                        "url": {"from": "https://example.com/before", "to": "https://example.com/after"},
                        "max_visits": {"from": null, "to": 5},
                    }),
                },
            )
        }
        "DELETE /api/v1/links/{code}" => {
            make_link("walk-deleted").await;
            (
                Method::DELETE,
                "/api/v1/links/walk-deleted".into(),
                None,
                Expected {
                    action: "link.deleted",
                    target: "link:walk-deleted".into(),
                    changes: json!({"deleted": {"from": false, "to": true}}),
                },
            )
        }
        "POST /api/v1/domains" => (
            Method::POST,
            "/api/v1/domains".into(),
            Some(json!({"name": "walk.acme.com"})),
            Expected {
                action: "domain.added",
                target: "domain:walk.acme.com".into(),
                changes: json!({
                    "scheme": {"from": null, "to": "https"},
                    "https_only": {"from": null, "to": false},
                    "redirect_status": {"from": null, "to": 302},
                    "forward_query": {"from": null, "to": true},
                }),
            },
        ),
        "PATCH /api/v1/domains/{name}" => {
            add_domain("walk-edit.acme.com").await;
            (
                Method::PATCH,
                "/api/v1/domains/walk-edit.acme.com".into(),
                Some(json!({"root_url": "https://acme.com/"})),
                Expected {
                    action: "domain.updated",
                    target: "domain:walk-edit.acme.com".into(),
                    changes: json!({"root_url": {"from": null, "to": "https://acme.com/"}}),
                },
            )
        }
        "DELETE /api/v1/domains/{name}" => {
            add_domain("walk-gone.acme.com").await;
            (
                Method::DELETE,
                "/api/v1/domains/walk-gone.acme.com".into(),
                None,
                Expected {
                    action: "domain.removed",
                    target: "domain:walk-gone.acme.com".into(),
                    changes: json!({
                        "scheme": {"from": "https", "to": null},
                        "https_only": {"from": false, "to": null},
                        "redirect_status": {"from": 302, "to": null},
                        "forward_query": {"from": true, "to": null},
                    }),
                },
            )
        }
        "POST /api/v1/keys" => (
            Method::POST,
            "/api/v1/keys".into(),
            Some(json!({"role": "viewer", "label": "walk"})),
            Expected {
                action: "key.created",
                // The id comes with the answer.
                target: "key:".into(),
                changes: json!({
                    "label": {"from": null, "to": "walk"},
                    "role": {"from": null, "to": "viewer"},
                    "revoked": {"from": null, "to": false},
                }),
            },
        ),
        "DELETE /api/v1/keys/{id}" => {
            let (_, id) = h.make_key(&h.key, json!({"role": "viewer"})).await;
            (
                Method::DELETE,
                format!("/api/v1/keys/{id}"),
                None,
                Expected {
                    action: "key.revoked",
                    target: format!("key:{id}"),
                    changes: json!({"revoked": {"from": false, "to": true}}),
                },
            )
        }
        "POST /api/v1/keys/{id}/rotate" => {
            let (_, id) = h.make_key(&h.key, json!({"role": "editor"})).await;
            (
                Method::POST,
                format!("/api/v1/keys/{id}/rotate?grace_seconds=60"),
                None,
                Expected {
                    action: "key.rotated",
                    target: format!("key:{id}"),
                    // The new expiry and the successor's id come with the answer.
                    changes: json!({
                        "expires_at": {"from": null, "to": null},
                        "successor": {"from": null, "to": null},
                    }),
                },
            )
        }
        "POST /api/v1/members" => (
            Method::POST,
            "/api/v1/members".into(),
            Some(json!({"email": "ada@acme.com", "role": "editor"})),
            Expected {
                action: "member.added",
                // The id comes with the answer.
                target: "member:".into(),
                changes: json!({
                    "email": {"from": null, "to": "ada@acme.com"},
                    "name": {"from": null, "to": ""},
                    "role": {"from": null, "to": "editor"},
                }),
            },
        ),
        "PATCH /api/v1/members/{id}" | "DELETE /api/v1/members/{id}" => {
            let email = format!(
                "{}@acme.com",
                if op.starts_with("PATCH") { "bo" } else { "cy" }
            );
            let added = h
                .post_as(
                    &h.key,
                    "/api/v1/members",
                    json!({"email": email, "role": "viewer"}),
                )
                .await;
            let id = added.body["id"].as_str().unwrap().to_string();
            let target = format!("member:{id}");
            if op.starts_with("PATCH") {
                (
                    Method::PATCH,
                    format!("/api/v1/members/{id}"),
                    Some(json!({"role": "admin", "name": "Bo"})),
                    Expected {
                        action: "member.updated",
                        target,
                        changes: json!({
                            "name": {"from": "", "to": "Bo"},
                            "role": {"from": "viewer", "to": "admin"},
                        }),
                    },
                )
            } else {
                (
                    Method::DELETE,
                    format!("/api/v1/members/{id}"),
                    None,
                    Expected {
                        action: "member.removed",
                        target,
                        changes: json!({
                            "email": {"from": email, "to": null},
                            "name": {"from": "", "to": null},
                            "role": {"from": "viewer", "to": null},
                        }),
                    },
                )
            }
        }
        other => panic!(
            "`{other}` changes something and the audit walk does not know it: give it its \
             audit row, and a case here"
        ),
    }
}

async fn every_change_leaves_one_audit_row(h: &Harness) {
    let mut known: Vec<String> = MUTATIONS.iter().map(|m| m.to_string()).collect();
    known.sort();
    let found = mutations_in_the_document(h).await;
    for op in &found {
        // An unknown operation fails here, before anything else.
        if !known.contains(op) {
            prepare(h, op).await;
        }
    }
    assert_eq!(found, known, "the walk covers every mutating operation");

    let owner = format!("key:{}", owner_key_id(h).await);
    for (n, op) in MUTATIONS.iter().enumerate() {
        let (method, path, body, mut expected) = prepare(h, op).await;
        let before = common::db::audit::count(h.db.primary()).await.unwrap();
        let request_id = format!("walk-{n}");
        let answer = call(h, method, &path, body, &request_id).await;
        assert!(answer.status.is_success(), "{op}: {}", answer.text);
        let after = common::db::audit::count(h.db.primary()).await.unwrap();
        assert_eq!(after - before, 1, "{op} leaves exactly one audit row");

        let log = h.get_as(&h.key, "/api/v1/audit?limit=1").await;
        assert_eq!(log.status, 200, "{}", log.text);
        let row = &log.body["items"][0];
        match *op {
            "POST /api/v1/keys" | "POST /api/v1/members" | "POST /api/v1/webhooks" => {
                expected
                    .target
                    .push_str(answer.body["id"].as_str().unwrap());
            }
            "POST /api/v1/keys/{id}/rotate" => {
                let changes = &mut expected.changes;
                changes["expires_at"]["to"] = row["changes"]["expires_at"]["to"].clone();
                changes["successor"]["to"] = answer.body["id"].clone();
                assert!(row["changes"]["expires_at"]["to"].is_string(), "{row}");
            }
            _ => {}
        }
        assert_eq!(row["action"], expected.action, "{op}: {row}");
        assert_eq!(row["target"], expected.target.as_str(), "{op}: {row}");
        assert_eq!(row["changes"], expected.changes, "{op}: {row}");
        assert_eq!(row["actor"], owner.as_str(), "{op}");
        assert_eq!(row["request_id"], request_id.as_str(), "{op}");
    }

    // Refused and empty changes leave nothing.
    let before = common::db::audit::count(h.db.primary()).await.unwrap();
    let refused = h
        .post_as(
            &h.key,
            "/api/v1/links",
            json!({"url": "javascript:alert(1)"}),
        )
        .await;
    assert_eq!(refused.status, 422);
    let same = h
        .patch_as(
            &h.key,
            "/api/v1/links/walk-edited",
            json!({"url": "https://example.com/after"}),
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.text);
    let (viewer, _) = h.make_key(&h.key, json!({"role": "viewer"})).await;
    let forbidden = h
        .patch_as(&viewer, "/api/v1/links/walk-edited", json!({"tags": ["x"]}))
        .await;
    assert_eq!(forbidden.status, 403);
    let after = common::db::audit::count(h.db.primary()).await.unwrap();
    assert_eq!(
        after - before,
        1,
        "only the viewer key's creation was recorded"
    );
}

async fn the_log_reads_by_filter_and_as_csv(h: &Harness) {
    for n in 0..3 {
        let made = h
            .post_as(
                &h.key,
                "/api/v1/links",
                json!({"url": format!("https://example.com/{n}"), "alias": format!("log-{n}")}),
            )
            .await;
        assert_eq!(made.status, 201);
    }
    let edit = h
        .patch_as(
            &h.key,
            "/api/v1/links/log-1",
            json!({"url": "https://example.com/=cmd"}),
        )
        .await;
    assert_eq!(edit.status, 200);

    // Paged, newest first.
    let first = h.get_as(&h.key, "/api/v1/audit?limit=2").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let items = first.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["action"], "link.updated");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = h
        .get_as(&h.key, &format!("/api/v1/audit?limit=2&cursor={cursor}"))
        .await;
    let older = second.body["items"].as_array().unwrap();
    assert!(
        older[0]["id"].as_str().unwrap().parse::<i64>().unwrap()
            < items[1]["id"].as_str().unwrap().parse::<i64>().unwrap()
    );

    // By target, action, actor and time.
    let one = h.get_as(&h.key, "/api/v1/audit?target=link:log-1").await;
    let actions: Vec<&str> = one.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["link.updated", "link.created"]);
    let created = h.get_as(&h.key, "/api/v1/audit?action=link.created").await;
    assert_eq!(created.body["items"].as_array().unwrap().len(), 3);
    let actor = items[0]["actor"].as_str().unwrap();
    let by_actor = h
        .get_as(&h.key, &format!("/api/v1/audit?actor={actor}"))
        .await;
    assert_eq!(by_actor.body["items"].as_array().unwrap().len(), 4);
    let nobody = h.get_as(&h.key, "/api/v1/audit?actor=key:1").await;
    assert_eq!(nobody.body["items"].as_array().unwrap().len(), 0);
    let future = h
        .get_as(&h.key, "/api/v1/audit?from=2100-01-01T00:00:00Z")
        .await;
    assert_eq!(future.body["items"].as_array().unwrap().len(), 0);

    // Another tenant sees none of it.
    let theirs = h.get_as(&h.other_key, "/api/v1/audit").await;
    assert_eq!(theirs.status, 200);
    assert!(!theirs.text.contains("log-1"), "{}", theirs.text);

    // As CSV: a header, then one line per row.
    let csv = h
        .send(
            h.http
                .get(h.create_url("/api/v1/audit?target=link:log-1"))
                .bearer_auth(&h.key)
                .header("accept", "text/csv"),
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines[0], "id,at,actor,action,target,changes,request_id");
    assert_eq!(lines.len(), 3, "{}", csv.text);
    assert!(
        lines[1].contains(",link.updated,link:log-1,"),
        "{}",
        lines[1]
    );

    // Bad filters are 400s naming what is wrong; a key without `audit:read` is 403.
    for (query, says) in [
        ("action=link.create", "action must be one of"),
        ("actor=root", "actor must be"),
        ("limit=0", "limit"),
        ("cursor=x", "cursor"),
        (
            "from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
            "`from` must be before `to`",
        ),
    ] {
        let bad = h.get_as(&h.key, &format!("/api/v1/audit?{query}")).await;
        bad.assert_problem(400, "invalid-query");
        assert!(bad.text.contains(says), "{query}: {}", bad.text);
    }
    let (editor, _) = h.make_key(&h.key, json!({"role": "editor"})).await;
    let refused = h.get_as(&editor, "/api/v1/audit").await;
    refused.assert_problem(403, "forbidden");
    assert_eq!(refused.body["permission"], "audit:read");
}

async fn admin_commands_are_recorded(h: &Harness) {
    let pool = h.db.primary();
    let bus = h.admin_bus();
    common::blocklist::block(&h.db, &bus, "evil.example", "phishing")
        .await
        .unwrap();
    common::blocklist::unblock(&h.db, &bus, "evil.example")
        .await
        .unwrap();
    let rows = common::db::audit::of_target(pool, "", "host:evil.example")
        .await
        .unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, ["host.blocked", "host.unblocked"]);
    assert!(matches!(rows[0].entry.actor, Actor::Operator(_)));
    assert_eq!(
        rows[0].entry.changes,
        json!({
            "blocked": {"from": null, "to": true},
            "reason": {"from": null, "to": "phishing"},
        })
    );

    // The harness's keys were made at the command line.
    let owner = owner_key_id(h).await;
    let made = common::db::audit::of_target(pool, "acme", &format!("key:{owner}"))
        .await
        .unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].entry.action.as_str(), "key.created");
    assert!(matches!(made[0].entry.actor, Actor::Operator(_)));
    assert!(
        common::auth::revoke_by_operator(&h.db, owner.parse().unwrap())
            .await
            .unwrap()
    );
    let rows = common::db::audit::of_target(pool, "acme", &format!("key:{owner}"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].entry.action.as_str(), "key.revoked");
}

/// On PostgreSQL the services log in as a member of `shortener_app`: they work, and
/// write audit rows, but cannot change or delete one; retention can only go through
/// `audit_log_purge`, and never reaches the last day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_role_cannot_rewrite_the_audit_log() {
    let bed = test_kit::bed().await;
    let db = bed.empty_database().await;
    let owner = Database::connect(&DatabaseSettings::direct(&db.primary_url, 2)).unwrap();
    owner.migrate().await.unwrap();
    let role = format!("app_{}", std::process::id() ^ common::time::now_ms() as u32);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {role} LOGIN IN ROLE shortener_app"
    )))
    .execute(owner.primary())
    .await
    .unwrap();
    let as_app = |url: &str| {
        let (_, rest) = url.split_once('@').unwrap();
        format!("postgres://{role}@{rest}")
    };
    let h = Harness::postgres(&[
        ("SHORTENER__DATABASE__URL", &as_app(&db.primary_url)),
        (
            "SHORTENER__DATABASE__REPLICA_URLS",
            &as_app(&db.replica_url),
        ),
        ("SHORTENER__DATABASE__MIGRATE_ON_START", "false"),
    ])
    .await;
    let made = h
        .post_as(
            &h.key,
            "/api/v1/links",
            json!({"url": "https://example.com/", "alias": "granted"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let edited = h
        .patch_as(&h.key, "/api/v1/links/granted", json!({"tags": ["x"]}))
        .await;
    assert_eq!(edited.status, 200, "{}", edited.text);
    // The two changes, and the owner key's creation.
    let log = h.get_as(&h.key, "/api/v1/audit").await;
    assert_eq!(
        log.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        log.text
    );

    // `h.db` is the services' connection.
    for statement in [
        "UPDATE audit_log SET action = 'link.deleted'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let refused = sqlx::query(statement).execute(h.db.primary()).await;
        let error = refused.expect_err(statement).to_string();
        assert!(error.contains("permission denied"), "{statement}: {error}");
    }
    // An old row (written by the owner) goes by retention; the last day stays.
    let long_ago = common::time::now_ms() - 500 * 86_400_000;
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, at, actor_kind, actor, action, target, changes) \
         VALUES ('acme', $1, 'operator', 'x', 'link.created', 'link:old', '{}')",
    )
    .bind(long_ago)
    .execute(owner.primary())
    .await
    .unwrap();
    let purged = common::db::audit::purge_older_than(
        h.db.primary(),
        common::db::Engine::Postgres,
        common::time::now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(purged, 1, "only the old row goes");
    let log = h.get_as(&h.key, "/api/v1/audit").await;
    assert_eq!(log.body["items"].as_array().unwrap().len(), 3);
    owner.close().await;
    h.stop().await;
}
