//! Roles, scopes and key management over the API, on SQLite and on PostgreSQL: every
//! role and scope against every action the API has, keys made, listed, rotated and
//! revoked by keys, and no key handing out more than it has.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::auth::{Authenticator, KeySpec};
use common::ids::ManualClock;
use common::link::TenantId;

use common::domain::access::{Action, Grant, Role, Scope, permits};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Answer, Harness};

on_both_engines!(
    every_grant_against_every_action,
    members_keys_act_with_their_role,
    keys_are_made_listed_and_revoked_over_the_api,
    no_key_hands_out_more_than_it_has,
    a_rotated_key_works_through_its_grace_period,
    expiry_and_rotation_follow_the_clock,
    refused_keys_change_nothing
);

/// The grant's JSON as `POST /api/v1/keys` takes it.
fn fields(grant: &Grant) -> Value {
    match grant {
        Grant::Role(role) => json!({ "role": role.as_str() }),
        Grant::Scopes(scopes) => {
            json!({ "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>() })
        }
    }
}

/// Takes `action` once as `key` (each call on resources of its own, made by the
/// owner's key), and returns the answer with the status success would have.
async fn take(h: &Harness, key: &str, action: Action, n: usize) -> Option<(Answer, u16)> {
    let owned = |alias: String| json!({ "url": "https://example.com/", "alias": alias });
    let answer = match action {
        Action::ReadLinks => (h.get_as(key, "/api/v1/links").await, 200),
        Action::CreateLink => (
            h.post_as(key, "/api/v1/links", json!({"url": "https://example.com/"}))
                .await,
            201,
        ),
        Action::EditLink | Action::DeleteLink | Action::ReadStats => {
            let alias = format!("grant-{n}");
            h.post_as(&h.key, "/api/v1/links", owned(alias.clone()))
                .await;
            let path = format!("/api/v1/links/{alias}");
            match action {
                Action::EditLink => (
                    h.patch_as(key, &path, json!({"tags": ["edited"]})).await,
                    200,
                ),
                Action::DeleteLink => (h.delete_as(key, &path).await, 204),
                _ => {
                    let url = h.stats_url(&format!("{path}/stats"));
                    (h.send(h.http.get(url).bearer_auth(key)).await, 200)
                }
            }
        }
        Action::ReadDomains => (h.get_as(key, "/api/v1/domains").await, 200),
        Action::ManageDomains => (
            h.add_domain(key, json!({"name": format!("go{n}.acme.com")}))
                .await,
            201,
        ),
        Action::ManageKeys => (h.get_as(key, "/api/v1/keys").await, 200),
        Action::ReadAudit => (h.get_as(key, "/api/v1/audit").await, 200),
        Action::ManageWebhooks => (h.get_as(key, "/api/v1/webhooks").await, 200),
        Action::ReadMembers => (h.get_as(key, "/api/v1/members").await, 200),
        Action::ManageMembers => (
            h.post_as(
                key,
                "/api/v1/members",
                json!({"email": format!("m{n}@acme.com"), "role": "viewer"}),
            )
            .await,
            201,
        ),
    };
    Some(answer)
}

async fn every_grant_against_every_action(h: &Harness) {
    let mut grants: Vec<Grant> = Role::ALL.into_iter().map(Grant::Role).collect();
    grants.extend(Scope::ALL.into_iter().map(|s| Grant::scopes(vec![s])));
    let mut n = 0;
    let mut asked = 0;
    for grant in &grants {
        let (key, _) = h.make_key(&h.key, fields(grant)).await;
        for action in Action::ALL {
            n += 1;
            let Some((answer, success)) = take(h, &key, action, n).await else {
                continue;
            };
            asked += 1;
            if permits(grant, action) {
                assert_eq!(
                    answer.status.as_u16(),
                    success,
                    "{grant:?} {action:?}: {}",
                    answer.text
                );
            } else {
                answer.assert_problem(403, "forbidden");
                assert_eq!(
                    answer.body["permission"],
                    action.permission(),
                    "{grant:?} {action:?}"
                );
            }
        }
    }
    assert_eq!(
        asked,
        grants.len() * Action::ALL.len(),
        "every action is asked"
    );
}

/// A member's key acts with the member's role of the moment and goes with the member;
/// owners manage members, admins see them and make keys for them, a tenant keeps an
/// owner.
async fn members_keys_act_with_their_role(h: &Harness) {
    let added = h
        .post_as(
            &h.key,
            "/api/v1/members",
            json!({"email": " Ada@Acme.com ", "name": "Ada", "role": "editor"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.body["email"], "ada@acme.com");
    let ada = added.body["id"].as_str().unwrap().to_string();
    let (key, key_id) = h
        .make_key(&h.key, json!({"member": ada, "label": "laptop"}))
        .await;
    let made = h
        .post_as(
            &key,
            "/api/v1/links",
            json!({"url": "https://example.com/ada"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let listed = listed_key(h, &key_id).await;
    assert_eq!(listed["member"], ada.as_str());
    assert_eq!(listed["role"], "editor");

    // Demoted: the key follows at once on this instance, and on every other one
    // within the key cache's lifetime.
    let path = format!("/api/v1/members/{ada}");
    let demoted = h.patch_as(&h.key, &path, json!({"role": "viewer"})).await;
    assert_eq!(demoted.status, 200, "{}", demoted.text);
    let deadline = Instant::now() + common::auth::KEY_CACHE_TTL + Duration::from_secs(5);
    let refused = loop {
        let answer = h
            .post_as(
                &key,
                "/api/v1/links",
                json!({"url": "https://example.com/ada"}),
            )
            .await;
        if answer.status == 403 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    refused.assert_problem(403, "forbidden");
    assert_eq!(h.get_as(&key, "/api/v1/links").await.status, 200);

    // Admins see members and make keys for those they cover; owners alone manage them.
    let (admin, _) = h.make_key(&h.key, json!({"role": "admin"})).await;
    let list = h.get_as(&admin, "/api/v1/members").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"][0]["email"], "ada@acme.com");
    let forbidden = h
        .post_as(
            &admin,
            "/api/v1/members",
            json!({"email": "bob@acme.com", "role": "viewer"}),
        )
        .await;
    forbidden.assert_problem(403, "forbidden");
    assert_eq!(forbidden.body["permission"], "members:manage");
    // A member's key is theirs: made by them or by an owner, never by an admin.
    h.post_as(&admin, "/api/v1/keys", json!({"member": ada}))
        .await
        .assert_problem(403, "forbidden");
    h.make_key(&h.key, json!({"member": ada})).await;
    let owner = h
        .post_as(
            &h.key,
            "/api/v1/members",
            json!({"email": "olga@acme.com", "role": "owner"}),
        )
        .await;
    let olga = owner.body["id"].as_str().unwrap().to_string();
    h.post_as(&admin, "/api/v1/keys", json!({"member": olga}))
        .await
        .assert_problem(403, "forbidden");

    // The last owner stays one.
    let olga_path = format!("/api/v1/members/{olga}");
    h.patch_as(&h.key, &olga_path, json!({"role": "admin"}))
        .await
        .assert_problem(409, "last-owner");
    h.delete_as(&h.key, &olga_path)
        .await
        .assert_problem(409, "last-owner");

    // Bad input changes nothing.
    for (body, kind) in [
        (
            json!({"email": "not-an-address", "role": "viewer"}),
            "invalid-email",
        ),
        (
            json!({"email": "x@acme.com", "role": "root"}),
            "invalid-role",
        ),
        (json!({"role": "viewer"}), "invalid-email"),
    ] {
        h.post_as(&h.key, "/api/v1/members", body)
            .await
            .assert_problem(422, kind);
    }
    h.post_as(
        &h.key,
        "/api/v1/members",
        json!({"email": "ADA@acme.com", "role": "viewer"}),
    )
    .await
    .assert_problem(409, "member-exists");
    h.patch_as(&h.other_key, &path, json!({"role": "owner"}))
        .await
        .assert_problem(404, "not-found");
    h.post_as(&h.other_key, "/api/v1/keys", json!({"member": ada}))
        .await
        .assert_problem(422, "invalid-member");
    assert_eq!(
        h.get_as(&h.key, "/api/v1/members").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // What the member's keys did is theirs in the log.
    let log = h
        .get_as(&h.key, &format!("/api/v1/audit?actor=member:{ada}"))
        .await;
    let rows = log.body["items"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", log.text);
    assert_eq!(rows[0]["action"], "link.created");
    assert_eq!(rows[0]["member"], ada.as_str());

    // Removed: every key of theirs with them.
    assert_eq!(h.delete_as(&h.key, &path).await.status, 204);
    links_until(h, &key, 401)
        .await
        .assert_problem(401, "unauthorized");
    h.delete_as(&h.key, &path)
        .await
        .assert_problem(404, "not-found");
}

/// Key `id` as the owner's `GET /api/v1/keys` lists it.
async fn listed_key(h: &Harness, id: &str) -> Value {
    let list = h.get_as(&h.key, "/api/v1/keys").await;
    assert_eq!(list.status, 200, "{}", list.text);
    list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("key {id} not listed: {}", list.text))
}

/// `key`'s answers to `GET /api/v1/links` until one is `status` (a change reaches
/// every instance's key cache by announcement, or within its lifetime).
async fn links_until(h: &Harness, key: &str, status: u16) -> Answer {
    let deadline = Instant::now() + common::auth::KEY_CACHE_TTL + Duration::from_secs(5);
    loop {
        let answer = h.get_as(key, "/api/v1/links").await;
        if answer.status == status || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn keys_are_made_listed_and_revoked_over_the_api(h: &Harness) {
    let made = h
        .post_as(
            &h.key,
            "/api/v1/keys",
            json!({"role": "viewer", "label": "dashboards"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let secret = made.body["key"].as_str().unwrap().to_string();
    let id = made.body["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sk_"));
    assert_eq!(made.body["role"], "viewer");
    assert_eq!(made.body["state"], "active");
    assert!(made.body.get("scopes").is_none());

    // The viewer reads, and may not write: the 403 names the permission.
    assert_eq!(h.get_as(&secret, "/api/v1/links").await.status, 200);
    let write = h
        .post_as(
            &secret,
            "/api/v1/links",
            json!({"url": "https://example.com/"}),
        )
        .await;
    write.assert_problem(403, "forbidden");
    assert_eq!(write.body["permission"], "links:write");

    // The list shows the key, never the key itself; the other tenant does not see it.
    let list = h.get_as(&h.key, "/api/v1/keys").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let listed: Vec<&Value> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["id"] == id.as_str())
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["label"], "dashboards");
    assert!(listed[0].get("key").is_none());
    assert!(!list.text.contains(&secret));
    let theirs = h.get_as(&h.other_key, "/api/v1/keys").await;
    assert!(!theirs.text.contains(&id));

    // Another tenant's key is not found, and stays in use.
    let path = format!("/api/v1/keys/{id}");
    h.delete_as(&h.other_key, &path)
        .await
        .assert_problem(404, "not-found");
    h.delete_as(&h.key, "/api/v1/keys/not-a-key")
        .await
        .assert_problem(404, "not-found");
    assert_eq!(h.get_as(&secret, "/api/v1/links").await.status, 200);

    // Revoked: 401 from now on, and listed as revoked.
    assert_eq!(h.delete_as(&h.key, &path).await.status, 204);
    let refused = links_until(h, &secret, 401).await;
    refused.assert_problem(401, "unauthorized");
    assert!(refused.text.contains("revoked"), "{}", refused.text);
    assert_eq!(h.delete_as(&h.key, &path).await.status, 204);
    assert_eq!(listed_key(h, &id).await["state"], "revoked");

    // A service key with scopes.
    let (service, _) = h
        .make_key(&h.key, json!({"scopes": ["stats:read", "links:read"]}))
        .await;
    assert_eq!(h.get_as(&service, "/api/v1/links").await.status, 200);
    assert_eq!(h.get_as(&service, "/api/v1/domains").await.status, 200);
    let refused = h.get_as(&service, "/api/v1/keys").await;
    refused.assert_problem(403, "forbidden");
    assert_eq!(refused.body["permission"], "keys:manage");
}

async fn no_key_hands_out_more_than_it_has(h: &Harness) {
    let (admin, _) = h.make_key(&h.key, json!({"role": "admin"})).await;
    let (owner_key, owner_id) = h.make_key(&h.key, json!({"role": "owner"})).await;
    // An admin makes admins and less, never an owner (who manages members).
    h.make_key(&admin, json!({"role": "admin"})).await;
    h.make_key(&admin, json!({"scopes": ["keys:manage", "audit:read"]}))
        .await;
    let up = h
        .post_as(&admin, "/api/v1/keys", json!({"role": "owner"}))
        .await;
    up.assert_problem(403, "forbidden");
    assert_eq!(up.body["permission"], "members:manage");
    // Nor rotates or revokes one: rotation would hand it the owner's powers.
    let owner_path = format!("/api/v1/keys/{owner_id}");
    h.post_as(&admin, &format!("{owner_path}/rotate"), json!({}))
        .await
        .assert_problem(403, "forbidden");
    h.delete_as(&admin, &owner_path)
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(h.get_as(&owner_key, "/api/v1/links").await.status, 200);

    // A service key hands out subsets of its scopes, and no role.
    let (manager, _) = h
        .make_key(&h.key, json!({"scopes": ["keys:manage", "links:read"]}))
        .await;
    h.make_key(&manager, json!({"scopes": ["links:read"]}))
        .await;
    let wider = h
        .post_as(
            &manager,
            "/api/v1/keys",
            json!({"scopes": ["links:read", "links:write"]}),
        )
        .await;
    wider.assert_problem(403, "forbidden");
    assert_eq!(wider.body["permission"], "links:write");
    let role = h
        .post_as(&manager, "/api/v1/keys", json!({"role": "viewer"}))
        .await;
    role.assert_problem(403, "forbidden");
    assert_eq!(role.body["permission"], "stats:read");
}

async fn a_rotated_key_works_through_its_grace_period(h: &Harness) {
    let (old, old_id) = h
        .make_key(&h.key, json!({"role": "editor", "label": "ci"}))
        .await;
    let before = chrono::Utc::now();
    let rotated = h
        .post_as(&h.key, &format!("/api/v1/keys/{old_id}/rotate"), json!({}))
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let new = rotated.body["key"].as_str().unwrap().to_string();
    assert_eq!(rotated.body["rotated_from"], old_id.as_str());
    assert_eq!(rotated.body["role"], "editor");
    assert_eq!(rotated.body["label"], "ci");
    // Both work: the old one for a day, unless the rotation says otherwise.
    assert_eq!(h.get_as(&new, "/api/v1/links").await.status, 200);
    assert_eq!(h.get_as(&old, "/api/v1/links").await.status, 200);
    let old_view = listed_key(h, &old_id).await;
    let until: chrono::DateTime<chrono::Utc> =
        old_view["expires_at"].as_str().unwrap().parse().unwrap();
    let grace = until - before;
    assert!(
        // `before` is read a little before the service's clock, in finer units.
        grace <= chrono::Duration::hours(24) + chrono::Duration::seconds(1)
            && grace > chrono::Duration::hours(23),
        "{grace}"
    );

    // Rotated again with no grace, the first successor stops at once.
    let rotated = h
        .post_as(
            &h.key,
            &format!(
                "/api/v1/keys/{}/rotate?grace_seconds=0",
                rotated.body["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let newest = rotated.body["key"].as_str().unwrap().to_string();
    let refused = links_until(h, &new, 401).await;
    refused.assert_problem(401, "unauthorized");
    assert!(refused.text.contains("expired"), "{}", refused.text);
    assert_eq!(h.get_as(&newest, "/api/v1/links").await.status, 200);
    // A key is rotated once: a retry finds its successor there.
    let twice = h
        .post_as(&h.key, &format!("/api/v1/keys/{old_id}/rotate"), json!({}))
        .await;
    twice.assert_problem(409, "key-inactive");
    // No key makes one that outlives it.
    let soon = "2030-01-01T00:00:00Z";
    let (expiring, _) = h
        .make_key(&h.key, json!({"role": "admin", "expires_at": soon}))
        .await;
    let child = h
        .post_as(&expiring, "/api/v1/keys", json!({"role": "viewer"}))
        .await;
    assert_eq!(child.status, 201, "{}", child.text);
    assert_eq!(child.body["expires_at"], "2030-01-01T00:00:00Z");
    // An expired key cannot be rotated back to life.
    let again = h
        .post_as(
            &h.key,
            &format!(
                "/api/v1/keys/{}/rotate",
                rotated.body["rotated_from"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    again.assert_problem(409, "key-inactive");
}

async fn refused_keys_change_nothing(h: &Harness) {
    let count = |list: &Answer| list.body["items"].as_array().unwrap().len();
    let before = count(&h.get_as(&h.key, "/api/v1/keys").await);
    for (body, field) in [
        (json!({"role": "root"}), "role"),
        (json!({"scopes": ["links:*"]}), "scopes"),
        (json!({"scopes": []}), "scopes"),
        (
            json!({"role": "viewer", "scopes": ["links:read"]}),
            "scopes",
        ),
        (json!({}), "role"),
        (
            json!({"role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires-at",
        ),
        (json!({"role": "viewer", "label": "x".repeat(201)}), "label"),
    ] {
        let refused = h.post_as(&h.key, "/api/v1/keys", body.clone()).await;
        refused.assert_problem(422, &format!("invalid-{field}"));
        assert!(refused.body["errors"].is_array(), "{body}");
    }
    let unknown = h
        .post_as(
            &h.key,
            "/api/v1/keys",
            json!({"role": "viewer", "owner": true}),
        )
        .await;
    unknown.assert_problem(422, "invalid-body");
    let (_, id) = h.make_key(&h.key, json!({"role": "viewer"})).await;
    let long = h
        .post_as(
            &h.key,
            &format!("/api/v1/keys/{id}/rotate?grace_seconds=2592001"),
            json!({}),
        )
        .await;
    long.assert_problem(422, "invalid-grace-seconds");
    let anonymous = h.api(Method::GET, "/api/v1/keys", None, None).await;
    anonymous.assert_problem(401, "unauthorized");
    assert_eq!(
        count(&h.get_as(&h.key, "/api/v1/keys").await),
        before + 1,
        "only the one good key was made"
    );
}

/// Expiry and rotation by a clock the test moves: a key works up to the millisecond
/// before its expiry, a rotated key up to the end of its grace period (or its own
/// earlier expiry), its successor from the start.
async fn expiry_and_rotation_follow_the_clock(h: &Harness) {
    let start = 1_900_000_000_000_u64;
    let clock = ManualClock::new(start);
    let auth = Authenticator::with_clock(h.db.clone(), Arc::new(clock.clone()));
    let now = || i64::try_from(clock_now(&clock)).unwrap();
    let spec = |expires_at: Option<i64>| KeySpec {
        tenant_id: TenantId::named("acme").unwrap(),
        label: "clock".into(),
        grant: Grant::Role(Role::Editor),
        expires_at,
        member_id: None,
        created_by_member: None,
    };
    let expiring = common::auth::mint(spec(Some(now() + 60_000)), now());
    common::db::keys::insert(h.db.primary(), &expiring.record)
        .await
        .unwrap();
    assert!(auth.resolve(&expiring.secret).await.is_ok());
    clock.advance(59_999);
    assert!(auth.resolve(&expiring.secret).await.is_ok());
    clock.advance(1);
    let refused = auth.resolve(&expiring.secret).await.unwrap_err();
    assert_eq!(refused.status, 401);
    assert!(refused.detail.unwrap().contains("expired"));

    // Rotated with an hour's grace.
    let lasting = common::auth::mint(spec(None), now());
    common::db::keys::insert(h.db.primary(), &lasting.record)
        .await
        .unwrap();
    let successor = common::auth::rotate(
        &h.db,
        &lasting.record,
        Duration::from_secs(3600),
        now(),
        rotation_entry,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(successor.record.rotated_from, Some(lasting.record.id));
    assert_eq!(successor.record.grant, lasting.record.grant);
    // A fresh authenticator: the first one remembers the key as it was.
    let auth = Authenticator::with_clock(h.db.clone(), Arc::new(clock.clone()));
    clock.advance(3_599_999);
    assert!(auth.resolve(&lasting.secret).await.is_ok());
    clock.advance(1);
    assert_eq!(auth.resolve(&lasting.secret).await.unwrap_err().status, 401);
    let principal = auth.resolve(&successor.secret).await.unwrap();
    assert_eq!(principal.grant, Grant::Role(Role::Editor));
    // A key rotated after it expired stays expired, with no successor.
    assert!(
        common::auth::rotate(
            &h.db,
            &lasting.record,
            Duration::from_secs(3600),
            now(),
            rotation_entry
        )
        .await
        .unwrap()
        .is_none()
    );

    // A grace period longer than the key's own life does not lengthen it.
    let short = common::auth::mint(spec(Some(now() + 1_000)), now());
    common::db::keys::insert(h.db.primary(), &short.record)
        .await
        .unwrap();
    common::auth::rotate(
        &h.db,
        &short.record,
        Duration::from_secs(3600),
        now(),
        rotation_entry,
    )
    .await
    .unwrap()
    .unwrap();
    let auth = Authenticator::with_clock(h.db.clone(), Arc::new(clock.clone()));
    clock.advance(1_000);
    assert_eq!(auth.resolve(&short.secret).await.unwrap_err().status, 401);
}

fn clock_now(clock: &ManualClock) -> u64 {
    use common::ids::Clock;
    clock.now_ms()
}

/// The audit row of a rotation made outside a request.
fn rotation_entry(
    old: &common::db::keys::KeyRecord,
    _new: &common::db::keys::KeyRecord,
) -> common::domain::audit::Entry {
    common::audit::outside_request(
        &common::audit::operator(),
        old.tenant_id.as_str(),
        common::audit::AuditAction::KeyRotated,
        common::audit::target("key", old.id),
        serde_json::json!({}),
    )
}
