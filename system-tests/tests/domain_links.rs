//! Links on branded domains, on SQLite and on PostgreSQL: two tenants use the same
//! alias on their own domains and each follows to its own target and counts its own
//! clicks; the API reads, lists, edits and deletes a link on the domain it is on, and
//! a domain the caller does not hold is "not found"; a domain's settings decide its
//! root, unknown codes, dead links, scheme and default status; and a domain leaves
//! only without links, or with them when they are retired (they answer 410).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Answer, Harness};

on_both_engines!(
    the_same_alias_on_two_domains_is_two_links,
    a_domain_decides_its_dead_ends,
    a_domain_leaves_with_its_links_or_without_any
);

/// Adds a domain as `key`; panics unless 201.
async fn add_domain(h: &Harness, key: &str, body: Value) -> Answer {
    let answer = h.add_domain(key, body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    answer
}

async fn create_as(h: &Harness, key: &str, body: Value) -> Answer {
    h.api(Method::POST, "/api/v1/links", Some(key), Some(body))
        .await
}

/// Follows `path` on `host` until it answers `status`.
async fn follow_until(h: &Harness, host: &str, path: &str, status: u16) -> Answer {
    h.follow_host_until(host, path, |a| a.status.as_u16() == status)
        .await
}

/// The stats total of `code` on `domain` once it reaches `expected`.
async fn total_when(h: &Harness, key: &str, code: &str, domain: &str, expected: i64) {
    let path = format!("/api/v1/links/{code}/stats?domain={domain}");
    for _ in 0..150 {
        let answer = h
            .send(h.http.get(h.stats_url(&path)).bearer_auth(key))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.body["domain"], domain);
        let total = answer.body["total"].as_i64().unwrap();
        assert!(total <= expected, "overcounted {domain}/{code}: {total}");
        if total == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{domain}/{code} never reached {expected} clicks");
}

async fn the_same_alias_on_two_domains_is_two_links(h: &Harness) {
    add_domain(h, &h.key, json!({"name": "go.acme.com"})).await;
    add_domain(
        h,
        &h.other_key,
        json!({"name": "links.globex.example", "scheme": "http"}),
    )
    .await;

    let acme = create_as(
        h,
        &h.key,
        json!({"url": "https://acme.com/spring", "alias": "spring", "domain": "Go.Acme.com"}),
    )
    .await;
    assert_eq!(acme.status, StatusCode::CREATED, "{}", acme.text);
    assert_eq!(acme.body["domain"], "go.acme.com");
    assert_eq!(acme.body["code"], "spring");
    assert_eq!(acme.body["short_url"], "https://go.acme.com/spring");
    assert_eq!(
        acme.header("location"),
        Some("/api/v1/links/spring?domain=go.acme.com")
    );
    let globex = create_as(
        h,
        &h.other_key,
        json!({"url": "https://globex.example/spring", "alias": "spring",
               "domain": "links.globex.example"}),
    )
    .await;
    assert_eq!(globex.status, StatusCode::CREATED, "{}", globex.text);
    assert_eq!(
        globex.body["short_url"],
        "http://links.globex.example/spring"
    );
    // Generated codes live on a domain too, and stay unique across all of them.
    let generated = create_as(
        h,
        &h.key,
        json!({"url": "https://acme.com/gen", "domain": "go.acme.com"}),
    )
    .await;
    assert_eq!(generated.status, StatusCode::CREATED, "{}", generated.text);
    let generated_code = generated.body["code"].as_str().unwrap().to_string();
    // The default domain is everyone's: `spring` there is a third link.
    let plain = h
        .create_link(json!({"url": "https://example.com/spring", "alias": "spring"}))
        .await;
    assert_eq!(plain["domain"], "sho.rt");
    assert_eq!(plain["short_url"], "http://sho.rt/spring");

    // One alias per domain; a domain the caller does not hold does not exist.
    let again = create_as(
        h,
        &h.key,
        json!({"url": "https://acme.com/x", "alias": "spring", "domain": "go.acme.com"}),
    )
    .await;
    again.assert_problem(409, "alias-taken");
    let theirs = create_as(
        h,
        &h.key,
        json!({"url": "https://acme.com/x", "domain": "links.globex.example"}),
    )
    .await;
    theirs.assert_problem(404, "not-found");
    let bad = create_as(
        h,
        &h.key,
        json!({"url": "https://acme.com/x", "domain": "https://go.acme.com/"}),
    )
    .await;
    bad.assert_problem(422, "invalid-domain");
    assert_eq!(bad.body["errors"][0]["field"], "domain");

    // Each host follows to its own target.
    let on_acme = follow_until(h, "go.acme.com", "/spring", 302).await;
    assert_eq!(on_acme.header("location"), Some("https://acme.com/spring"));
    let on_globex = follow_until(h, "links.globex.example:80", "/spring", 302).await;
    assert_eq!(
        on_globex.header("location"),
        Some("https://globex.example/spring")
    );
    let on_default = h.follow("spring").await;
    assert_eq!(
        on_default.header("location"),
        Some("https://example.com/spring")
    );
    let on_acme = h
        .follow_host("go.acme.com", &format!("/{generated_code}"))
        .await;
    assert_eq!(on_acme.header("location"), Some("https://acme.com/gen"));
    // A code of one domain is no code of another.
    h.follow_host("links.globex.example", &format!("/{generated_code}"))
        .await
        .assert_problem(404, "not-found");
    h.follow_host("sho.rt", &format!("/{generated_code}"))
        .await
        .assert_problem(404, "not-found");

    // Clicks are the link's own.
    h.follow_host("go.acme.com", "/spring").await;
    total_when(h, &h.key, "spring", "go.acme.com", 2).await;
    total_when(h, &h.other_key, "spring", "links.globex.example", 1).await;
    total_when(h, &h.key, "spring", "sho.rt", 1).await;
    let elsewhere = h
        .send(
            h.http
                .get(h.stats_url("/api/v1/links/spring/stats?domain=links.globex.example"))
                .bearer_auth(&h.key),
        )
        .await;
    elsewhere.assert_problem(404, "not-found");

    // The API finds a link on the domain it is on.
    let read = h
        .get_as(&h.key, "/api/v1/links/spring?domain=go.acme.com")
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.body["url"], "https://acme.com/spring");
    let read = h.get_as(&h.key, "/api/v1/links/spring").await;
    assert_eq!(read.body["url"], "https://example.com/spring");
    h.get_as(&h.key, "/api/v1/links/spring?domain=links.globex.example")
        .await
        .assert_problem(404, "not-found");
    let listed = h.get_as(&h.key, "/api/v1/links?domain=go.acme.com").await;
    let urls: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, ["https://acme.com/gen", "https://acme.com/spring"]);
    let listed = h.get_as(&h.key, "/api/v1/links?domain=sho.rt").await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let everything = h.get_as(&h.key, "/api/v1/links").await;
    assert_eq!(everything.body["items"].as_array().unwrap().len(), 3);

    // An edit on one domain evicts that domain's entry alone, on every lookup
    // instance: with Redis a second instance hears the edit too; on SQLite one
    // process serves every request.
    let second = match h.bus {
        None => Some(h.add_lookup().await),
        Some(_) => None,
    };
    let mut ports = vec![h.lookup_port];
    ports.extend(second.as_ref().map(|(port, _)| *port));
    let targets = [
        ("go.acme.com", "https://acme.com/spring"),
        ("links.globex.example", "https://globex.example/spring"),
        ("sho.rt", "https://example.com/spring"),
    ];
    for &port in &ports {
        for (host, target) in targets {
            // Twice: the first may fill L1, the second is answered from it.
            for _ in 0..2 {
                let answer = h.follow_host_at(port, host, "/spring").await;
                assert_eq!(answer.header("location"), Some(target), "{port} {host}");
            }
        }
    }
    let edited = h
        .patch_as(
            &h.key,
            "/api/v1/links/spring?domain=go.acme.com",
            json!({"url": "https://acme.com/summer"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    assert_eq!(edited.body["short_url"], "https://go.acme.com/spring");
    for &port in &ports {
        let deadline = Instant::now() + Duration::from_secs(5);
        while h
            .follow_host_at(port, "go.acme.com", "/spring")
            .await
            .header("location")
            != Some("https://acme.com/summer")
        {
            assert!(Instant::now() < deadline, "the edit never reached {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The other domains' `spring` are still in L1: each follow is an L1 hit.
        let l1_hit = "result=\"hit\",tier=\"l1\"";
        let hits = h
            .metric_where(port, "shortener_lookup_tier_total", l1_hit)
            .await;
        for (host, target) in &targets[1..] {
            let answer = h.follow_host_at(port, host, "/spring").await;
            assert_eq!(answer.header("location"), Some(*target), "{port} {host}");
        }
        let after = h
            .metric_where(port, "shortener_lookup_tier_total", l1_hit)
            .await;
        assert_eq!(
            after - hits,
            2.0,
            "an edit on go.acme.com evicted others on {port}"
        );
    }
    drop(second);
    // So does a delete.
    let deleted = h
        .delete_as(
            &h.other_key,
            "/api/v1/links/spring?domain=links.globex.example",
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    follow_until(h, "links.globex.example", "/spring", 410).await;
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        assert_eq!(h.follow_host("go.acme.com", "/spring").await.status, 302);
        assert_eq!(h.follow("spring").await.status, 302);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_domain_decides_its_dead_ends(h: &Harness) {
    let added = add_domain(
        h,
        &h.key,
        json!({"name": "go.acme.com", "root_url": "https://acme.com/",
               "redirect_status": 301}),
    )
    .await;
    assert_eq!(added.body["root_url"], "https://acme.com/");
    assert_eq!(added.body["not_found_url"], Value::Null);
    assert_eq!(added.body["scheme"], "https");
    assert_eq!(added.body["https_only"], false);
    assert_eq!(added.body["redirect_status"], 301);

    // The root goes where the owner said; the default domain's root stays 404.
    let root = follow_until(h, "go.acme.com", "/", 302).await;
    assert_eq!(root.header("location"), Some("https://acme.com/"));
    assert_eq!(root.header("cache-control"), Some("private, max-age=0"));
    h.send(h.http.get(h.lookup_url("/")))
        .await
        .assert_problem(404, "not-found");
    // Unknown codes and dead links answer the problems until a fallback is set.
    h.follow_host("go.acme.com", "/nope-nope")
        .await
        .assert_problem(404, "not-found");
    // The domain's default status is what its new links take unless they say.
    let link = create_as(
        h,
        &h.key,
        json!({"url": "https://acme.com/old", "alias": "old", "domain": "go.acme.com"}),
    )
    .await;
    assert_eq!(link.body["redirect_status"], 301);
    let own = create_as(
        h,
        &h.key,
        json!({"url": "https://acme.com/t", "alias": "t-link", "domain": "go.acme.com",
               "redirect_status": 307}),
    )
    .await;
    assert_eq!(own.body["redirect_status"], 307);
    assert_eq!(h.follow_host("go.acme.com", "/old").await.status, 301);
    let disabled = h
        .patch_as(
            &h.key,
            "/api/v1/links/old?domain=go.acme.com",
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
    follow_until(h, "go.acme.com", "/old", 410).await;

    let patched = h
        .patch_as(
            &h.key,
            "/api/v1/domains/go.acme.com",
            json!({"not_found_url": "https://acme.com/404",
                        "gone_url": "https://acme.com/gone", "root_url": null}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["root_url"], Value::Null);
    let gone = follow_until(h, "go.acme.com", "/old", 302).await;
    assert_eq!(gone.header("location"), Some("https://acme.com/gone"));
    let unknown = follow_until(h, "go.acme.com", "/nope-nope", 302).await;
    assert_eq!(unknown.header("location"), Some("https://acme.com/404"));
    follow_until(h, "go.acme.com", "/", 404).await;
    // The fallbacks are for browsers following links, not for a form's post.
    for (path, status, kind) in [
        ("/nope-nope", 404, "not-found"),
        ("/old", 410, "link-gone"),
        ("/", 405, "method-not-allowed"),
    ] {
        let url = format!("http://127.0.0.1:{}{path}", h.lookup_port);
        h.send(
            h.http
                .post(url)
                .header("host", "go.acme.com")
                .body("password=x"),
        )
        .await
        .assert_problem(status, kind);
    }

    // HTTPS only: plain http goes to https, and answers carry HSTS.
    let patched = h
        .patch_as(
            &h.key,
            "/api/v1/domains/go.acme.com",
            json!({"https_only": true}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let upgraded = follow_until(h, "go.acme.com", "/t-link?x=1", 308).await;
    assert_eq!(
        upgraded.header("location"),
        Some("https://go.acme.com/t-link?x=1")
    );
    let secure = h
        .send(
            h.http
                .get(h.lookup_url("/t-link"))
                .header("host", "go.acme.com")
                .header("x-forwarded-proto", "https"),
        )
        .await;
    assert_eq!(
        secure.status,
        StatusCode::TEMPORARY_REDIRECT,
        "{}",
        secure.text
    );
    assert_eq!(
        secure.header("strict-transport-security"),
        Some("max-age=31536000")
    );

    // Bad settings change nothing, and name every bad field.
    let refused = h
        .patch_as(
            &h.key,
            "/api/v1/domains/go.acme.com",
            json!({"root_url": "javascript:alert(1)", "scheme": "http",
                        "redirect_status": 303}),
        )
        .await;
    refused.assert_problem(422, "invalid-root-url");
    let fields: Vec<&str> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["root_url", "https_only", "redirect_status"]);
    let renamed = h
        .patch_as(
            &h.key,
            "/api/v1/domains/go.acme.com",
            json!({"name": "go.other.com"}),
        )
        .await;
    renamed.assert_problem(422, "invalid-domain");
    let theirs = h
        .patch_as(
            &h.other_key,
            "/api/v1/domains/go.acme.com",
            json!({"root_url": "https://evil.example/"}),
        )
        .await;
    theirs.assert_problem(404, "not-found");
    let now = h.get_as(&h.key, "/api/v1/domains/go.acme.com").await;
    assert_eq!(now.body["root_url"], Value::Null);
    assert_eq!(now.body["scheme"], "https");
    assert_eq!(now.body["https_only"], true);
    assert_eq!(now.body["redirect_status"], 301);
    assert_eq!(now.body["gone_url"], "https://acme.com/gone");
}

async fn a_domain_leaves_with_its_links_or_without_any(h: &Harness) {
    add_domain(h, &h.key, json!({"name": "go.acme.com"})).await;
    let link = create_as(
        h,
        &h.key,
        json!({"url": "https://acme.com/a", "alias": "a-link", "domain": "go.acme.com"}),
    )
    .await;
    assert_eq!(link.status, StatusCode::CREATED, "{}", link.text);
    follow_until(h, "go.acme.com", "/a-link", 302).await;

    let refused = h.delete_as(&h.key, "/api/v1/domains/go.acme.com").await;
    refused.assert_problem(409, "domain-has-links");
    assert_eq!(h.follow_host("go.acme.com", "/a-link").await.status, 302);
    let bad_query = h
        .delete_as(&h.key, "/api/v1/domains/go.acme.com?retire=yes")
        .await;
    assert_eq!(
        bad_query.status,
        StatusCode::BAD_REQUEST,
        "{}",
        bad_query.text
    );

    let retired = h
        .delete_as(&h.key, "/api/v1/domains/go.acme.com?retire_links=true")
        .await;
    assert_eq!(retired.status, StatusCode::NO_CONTENT, "{}", retired.text);
    // Its links answer 410 on the host that still knows them; the domain is gone
    // from the API, and nobody else can take the name.
    follow_until(h, "go.acme.com", "/a-link", 410).await;
    h.get_as(&h.key, "/api/v1/domains/go.acme.com")
        .await
        .assert_problem(404, "not-found");
    let taken = h
        .api(
            Method::POST,
            "/api/v1/domains",
            Some(&h.other_key),
            Some(json!({"name": "go.acme.com"})),
        )
        .await;
    taken.assert_problem(409, "domain-taken");
    // Its tenant may take it up again; the retired links stay deleted.
    add_domain(h, &h.key, json!({"name": "go.acme.com"})).await;
    assert_eq!(h.follow_host("go.acme.com", "/a-link").await.status, 410);
    let reused = create_as(
        h,
        &h.key,
        json!({"url": "https://acme.com/b", "alias": "a-link", "domain": "go.acme.com"}),
    )
    .await;
    reused.assert_problem(409, "alias-taken");

    // A domain without links leaves at once, and its host answers for nobody.
    add_domain(h, &h.key, json!({"name": "empty.acme.com"})).await;
    let gone = h.delete_as(&h.key, "/api/v1/domains/empty.acme.com").await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = h.follow_host("empty.acme.com", "/a-link").await;
        answer.assert_problem(404, "not-found");
        if answer.body["detail"] == "no links are served on this host" {
            break;
        }
        assert!(Instant::now() < deadline, "{}", answer.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
