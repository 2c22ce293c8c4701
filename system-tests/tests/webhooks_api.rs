//! Black-box tests of `/api/v1/webhooks` on SQLite and on PostgreSQL: endpoints
//! belong to one tenant, the secret is shown once, URLs that could reach the
//! deployment's own network are refused, and refused input changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Harness;

on_both_engines!(
    an_endpoint_is_made_read_changed_and_removed,
    refused_endpoints_change_nothing
);

async fn ids(h: &Harness, key: &str) -> Vec<String> {
    let list = h.get_as(key, "/api/v1/webhooks").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            assert!(
                w.get("secret").is_none(),
                "a listed endpoint shows no secret"
            );
            w["id"].as_str().unwrap().to_string()
        })
        .collect()
}

async fn an_endpoint_is_made_read_changed_and_removed(h: &Harness) {
    let made = h
        .post_as(
            &h.key,
            "/api/v1/webhooks",
            json!({
                "url": "https://hooks.example.com/in",
                "events": ["link.deleted", "link.created", "link.created"],
                "description": "CRM",
            }),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let id = made.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ep_") && id.len() == 25, "{id}");
    assert_eq!(
        made.header("location"),
        Some(format!("/api/v1/webhooks/{id}").as_str())
    );
    let secret = made.body["secret"].as_str().unwrap();
    assert!(
        common::domain::webhooks::secret_key(secret).is_some_and(|k| k.len() == 24),
        "{secret}"
    );
    assert_eq!(made.body["events"], json!(["link.created", "link.deleted"]));
    assert_eq!(made.body["enabled"], true);
    assert_eq!(made.body["description"], "CRM");

    // Shown once: never again, in the list or alone.
    let read = h.get_as(&h.key, &format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert!(read.body.get("secret").is_none());
    assert_eq!(read.body["url"], "https://hooks.example.com/in");
    assert_eq!(ids(h, &h.key).await, std::slice::from_ref(&id));

    // Another tenant neither sees it nor reaches it.
    assert!(ids(h, &h.other_key).await.is_empty());
    for answer in [
        h.get_as(&h.other_key, &format!("/api/v1/webhooks/{id}"))
            .await,
        h.patch_as(
            &h.other_key,
            &format!("/api/v1/webhooks/{id}"),
            json!({"enabled": false}),
        )
        .await,
        h.delete_as(&h.other_key, &format!("/api/v1/webhooks/{id}"))
            .await,
        h.post_as(
            &h.other_key,
            &format!("/api/v1/webhooks/{id}/test"),
            json!({}),
        )
        .await,
    ] {
        answer.assert_problem(404, "not-found");
    }

    let changed = h
        .patch_as(
            &h.key,
            &format!("/api/v1/webhooks/{id}"),
            json!({"events": ["link.clicked"], "enabled": false}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.body["events"], json!(["link.clicked"]));
    assert_eq!(changed.body["enabled"], false);
    assert_eq!(changed.body["url"], "https://hooks.example.com/in");
    assert!(changed.body["updated_at"].as_str() > read.body["updated_at"].as_str());
    // A turned-off endpoint is sent no test either.
    h.post_as(&h.key, &format!("/api/v1/webhooks/{id}/test"), json!({}))
        .await
        .assert_problem(409, "webhook-disabled");
    let on = h
        .patch_as(
            &h.key,
            &format!("/api/v1/webhooks/{id}"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    let test = h
        .post_as(&h.key, &format!("/api/v1/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(test.status, StatusCode::ACCEPTED, "{}", test.text);
    assert!(
        test.body["message_id"]
            .as_str()
            .unwrap()
            .starts_with("msg_")
    );

    // The audit log has each change, never the secret.
    let audit = h.get_as(&h.key, "/api/v1/audit").await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == format!("webhook:{id}"))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["webhook.updated", "webhook.updated", "webhook.added"]
    );
    assert!(!audit.text.contains(secret));

    let gone = h.delete_as(&h.key, &format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    h.get_as(&h.key, &format!("/api/v1/webhooks/{id}"))
        .await
        .assert_problem(404, "not-found");
    assert!(ids(h, &h.key).await.is_empty());
}

async fn refused_endpoints_change_nothing(h: &Harness) {
    let refused = |body: Value, field: &'static str| async move {
        let answer = h.post_as(&h.key, "/api/v1/webhooks", body.clone()).await;
        answer.assert_problem(422, &format!("invalid-{field}"));
        let fields: Vec<&str> = answer.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{body}: {}", answer.text);
    };
    refused(json!({"events": ["link.created"]}), "url").await;
    refused(json!({"url": "https://hooks.example.com/"}), "events").await;
    refused(
        json!({"url": "http://hooks.example.com/", "events": ["link.created"]}),
        "url",
    )
    .await;
    refused(
        json!({"url": "https://127.0.0.1/", "events": ["link.created"]}),
        "url",
    )
    .await;
    refused(
        json!({"url": "https://[::ffff:10.0.0.1]/", "events": ["link.created"]}),
        "url",
    )
    .await;
    refused(
        json!({"url": "https://169.254.169.254/", "events": ["link.created"]}),
        "url",
    )
    .await;
    refused(
        json!({"url": "https://localhost/", "events": ["link.created"]}),
        "url",
    )
    .await;
    refused(
        json!({"url": "https://a:b@hooks.example.com/", "events": ["link.created"]}),
        "url",
    )
    .await;
    refused(
        json!({"url": "https://hooks.example.com/", "events": ["link.made"]}),
        "events",
    )
    .await;
    refused(
        json!({"url": "https://hooks.example.com/", "events": []}),
        "events",
    )
    .await;
    refused(
        json!({"url": "https://hooks.example.com/", "events": ["webhook.test"]}),
        "events",
    )
    .await;
    refused(
        json!({"url": "https://hooks.example.com/", "events": ["link.created"], "description": "x".repeat(513)}),
        "description",
    )
    .await;
    for body in [
        json!({"url": "https://hooks.example.com/", "events": ["link.created"], "secret": "mine"}),
        json!(["https://hooks.example.com/"]),
        json!({"url": 7, "events": ["link.created"]}),
    ] {
        let answer = h.post_as(&h.key, "/api/v1/webhooks", body.clone()).await;
        assert!(answer.status.is_client_error(), "{body}: {}", answer.text);
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json")
        );
    }
    assert!(ids(h, &h.key).await.is_empty());

    // Ids that name nothing, and a key without the right.
    h.get_as(&h.key, "/api/v1/webhooks/ep_nothing")
        .await
        .assert_problem(404, "not-found");
    h.get_as(&h.key, "/api/v1/webhooks/..%2F..")
        .await
        .assert_problem(404, "not-found");
    let (viewer, _) = h.make_key(&h.key, json!({"role": "viewer"})).await;
    h.post_as(
        &viewer,
        "/api/v1/webhooks",
        json!({"url": "https://hooks.example.com/", "events": ["link.created"]}),
    )
    .await
    .assert_problem(403, "forbidden");
    let (scoped, _) = h
        .make_key(&h.key, json!({"scopes": ["webhooks:manage"]}))
        .await;
    let made = h
        .post_as(
            &scoped,
            "/api/v1/webhooks",
            json!({"url": "https://hooks.example.com/", "events": ["link.created"]}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);

    // At most `webhooks.max_endpoints` (20) per tenant.
    for _ in 1..20 {
        let more = h
            .post_as(
                &h.key,
                "/api/v1/webhooks",
                json!({"url": "https://hooks.example.com/", "events": ["link.created"]}),
            )
            .await;
        assert_eq!(more.status, StatusCode::CREATED, "{}", more.text);
    }
    h.post_as(
        &h.key,
        "/api/v1/webhooks",
        json!({"url": "https://hooks.example.com/", "events": ["link.created"]}),
    )
    .await
    .assert_problem(409, "too-many-webhooks");
    assert_eq!(ids(h, &h.key).await.len(), 20);
}
