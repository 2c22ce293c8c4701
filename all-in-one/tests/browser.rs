//! The web page in a real browser: headless Chromium against the all-in-one on
//! loopback. A person shortens a link, follows it and watches its count rise;
//! hostile URLs, aliases and codes stay inert text; and the README's screenshots are
//! taken the same way (`scripts/web-screenshots`).
//!
//! Chromium is Debian's `chromium`, which `scripts/test` installs; these tests fail,
//! never skip, without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cdp;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cdp::{Browser, js};
use common::config::{ServiceKind, Settings};
use serde_json::{Value, json};

/// A host name that the browser resolves to 127.0.0.1 and the shortener does not
/// take for itself, so a link may point there: where followed links land.
const LANDING_HOST: &str = "landing.test";

/// The all-in-one on a free loopback port, with short links built on that port.
struct Server {
    runtime: tokio::runtime::Runtime,
    port: u16,
    server: common::server::Running,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // Short links must carry the real port, so it is chosen before the server
        // binds it; another process may take it meanwhile, hence the retries.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let env = [
                (
                    "SHORTENER__DATABASE__URL",
                    format!("sqlite://{}/shortener.db?mode=rwc", dir.path().display()),
                ),
                ("SHORTENER__HTTP__PORT", port.to_string()),
                (
                    "SHORTENER__HTTP__PUBLIC_BASE_URL",
                    format!("http://127.0.0.1:{port}"),
                ),
                ("SHORTENER__HTTP__WORKERS", "2".into()),
                ("SHORTENER__HTTP__SHUTDOWN_TIMEOUT", "1s".into()),
                ("SHORTENER__STATS__FLUSH_INTERVAL", "200ms".into()),
                ("SHORTENER__TELEMETRY__FILTER", "error".into()),
            ]
            .map(|(k, v)| (k.to_string(), v));
            let settings = Settings::load_from(ServiceKind::AllInOne, None, env.clone()).unwrap();
            match runtime.block_on(shortener::start(settings)) {
                Ok(server) => {
                    return Server {
                        runtime,
                        port,
                        server,
                        env: env.to_vec(),
                        _dir: dir,
                    };
                }
                Err(e) if attempt < 5 => eprintln!("port {port}: {e}; trying another"),
                Err(e) => panic!("the all-in-one did not start: {e:#}"),
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A destination on this very server under a name the shortener does not own.
    fn landing(&self, path: &str) -> String {
        format!("http://{LANDING_HOST}:{}{path}", self.port)
    }

    /// `POST /api/v1/links` without a key: (status, body).
    fn create(&self, body: Value) -> (u16, Value) {
        let url = self.url("/api/v1/links");
        self.runtime.block_on(async move {
            let answer = test_kit::http_client()
                .unwrap()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.json().await.unwrap())
        })
    }

    /// A new API key of `tenant`, as `shortener keys create` mints it.
    fn key(&self, tenant: &str) -> String {
        let settings = Settings::load_from(ServiceKind::AllInOne, None, self.env.clone()).unwrap();
        self.runtime
            .block_on(shortener::create_key(
                settings,
                tenant,
                "browser test",
                common::domain::access::Grant::Role(common::domain::access::Role::Owner),
            ))
            .unwrap()
    }

    /// `POST path` with `key`: the answer's status.
    fn post_as(&self, key: &str, path: &str, body: Value) -> u16 {
        let url = self.url(path);
        self.runtime.block_on(async move {
            let answer = test_kit::http_client()
                .unwrap()
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            answer.status().as_u16()
        })
    }

    fn stop(self) {
        let Server {
            runtime, server, ..
        } = self;
        runtime.block_on(async move { server.stop().await.unwrap() });
    }
}

/// Nothing a script could have done: no dialog, no element a payload would have
/// made, no script error, no blocked inline code.
fn assert_inert(browser: &Browser) {
    assert_eq!(
        browser.events_named("Page.javascriptDialogOpening"),
        Vec::<Value>::new(),
        "a dialog opened"
    );
    assert_eq!(
        browser.eval(
            "document.querySelectorAll('img[src=\"x\"], script:not([src]), [onerror], [onload]').length"
        ),
        json!(0)
    );
    assert_eq!(browser.page_errors(), Vec::<String>::new());
}

fn is_shown(id: &str) -> String {
    format!("!document.getElementById({}).hidden", js(id))
}

/// Waits until the stats view shows link `code` with its numbers loaded.
fn wait_for_stats_of(browser: &Browser, code: &str) {
    browser.wait_for(
        &format!(
            "{} && document.getElementById('stats-code').textContent === {} \
             && /^[0-9]/.test(document.getElementById('stat-total').textContent)",
            is_shown("stats-view"),
            js(code)
        ),
        Duration::from_secs(10),
    );
}

fn clicks_shown(browser: &Browser) -> i64 {
    browser
        .text("#stat-total")
        .replace([',', '.', '\u{a0}', ' '], "")
        .parse()
        .unwrap_or(-1)
}

/// Refreshes the stats view until it shows at least `at_least` clicks.
fn wait_for_clicks(browser: &Browser, at_least: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = clicks_shown(browser);
        if shown >= at_least {
            return shown;
        }
        assert!(
            Instant::now() < deadline,
            "stats still show {shown} clicks; page errors: {:?}",
            browser.page_errors()
        );
        browser.click("#refresh");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A link made with a password in the form: the browser that follows it is asked
/// for it, a wrong one is refused on the page, the right one goes on to the target.
#[test]
fn a_protected_link_asks_for_its_password() {
    let server = Server::start();
    let browser = Browser::launch(&[LANDING_HOST]);
    browser.open_page(&server.url("/"));
    let target = server.landing("/healthz");
    browser.type_into("#url", &target);
    browser.click("#options summary");
    browser.type_into("#link-password", "open sesame");
    browser.click("#create-button");
    browser.wait_for(&is_shown("result"), Duration::from_secs(10));
    assert_eq!(browser.text("#result-password"), "asked before redirecting");
    assert_eq!(
        browser.eval("document.getElementById('link-password').value"),
        json!("")
    );
    let short = browser.text("#short-link");

    browser.navigate(&short);
    assert_eq!(
        browser.eval("document.title"),
        json!("This link is protected")
    );
    browser.type_into("#password", "not it at all");
    browser.click("form button");
    browser.wait_for(
        "document.readyState === 'complete' && document.body.innerText.includes('not right')",
        Duration::from_secs(10),
    );
    browser.type_into("#password", "open sesame");
    browser.click("form button");
    browser.wait_for(
        &format!(
            "location.href === {} && document.readyState === 'complete'",
            js(&target)
        ),
        Duration::from_secs(10),
    );
    // The grant opens it again at once.
    browser.navigate(&short);
    browser.wait_for(
        &format!("location.href === {}", js(&target)),
        Duration::from_secs(10),
    );
    assert_eq!(browser.page_errors(), Vec::<String>::new());
}

#[test]
fn shorten_follow_and_watch_the_count_rise() {
    let server = Server::start();
    let browser = Browser::launch(&[LANDING_HOST]);
    browser.open_page(&server.url("/"));
    assert_eq!(browser.eval("document.title"), json!("Shortener"));

    // Shorten: anonymous creation is on in the all-in-one, so no key is needed.
    let target = server.landing("/healthz");
    browser.type_into("#url", &target);
    browser.click("#create-button");
    browser.wait_for(&is_shown("result"), Duration::from_secs(10));
    let short = browser.text("#short-link");
    let code = short
        .strip_prefix(&server.url("/"))
        .unwrap_or_else(|| panic!("short link {short} is not on this server"))
        .to_string();
    assert_eq!(browser.text("#result-url"), target);
    assert_eq!(browser.text("#result-code"), code);
    assert_eq!(browser.text("#result-password"), "none");
    assert_eq!(
        browser.eval("document.getElementById('result-preview').href"),
        json!(format!("{short}+"))
    );
    assert_eq!(
        browser.eval("document.getElementById('short-link').href"),
        json!(short)
    );
    // Its QR code, fetched through the API and shown as a data: image.
    browser.wait_for(
        "(() => { const i = document.getElementById('qr-image'); \
         return !i.hidden && i.complete && i.naturalWidth > 0 && i.src.startsWith('data:image/png;'); })()",
        Duration::from_secs(10),
    );
    // Copy puts the short link on the clipboard.
    browser.call(
        "Browser.grantPermissions",
        json!({"origin": server.url(""), "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
    );
    browser.click("#copy");
    browser.wait_for(
        "document.getElementById('copy-status').textContent === 'Copied'",
        Duration::from_secs(5),
    );
    assert_eq!(browser.eval("navigator.clipboard.readText()"), json!(short));

    // Its stats before anyone followed it.
    browser.click("#result-stats");
    wait_for_stats_of(&browser, &code);
    assert_eq!(clicks_shown(&browser), 0);

    // Follow it: back on the form, a click on the short link goes through the
    // redirect to where it points.
    browser.eval("history.back()");
    browser.wait_for(&is_shown("create-view"), Duration::from_secs(5));
    browser.click("#short-link");
    browser.wait_for(
        &format!(
            "location.href === {} && document.readyState === 'complete'",
            js(&target)
        ),
        Duration::from_secs(10),
    );
    let redirected = browser
        .events_named("Network.requestWillBeSent")
        .into_iter()
        .any(|sent| {
            sent["request"]["url"] == json!(target)
                && sent["redirectResponse"]["url"] == json!(short)
                && sent["redirectResponse"]["status"] == json!(302)
        });
    assert!(redirected, "no 302 from {short} to {target}");

    // The count rises: the link is listed on the form, its stats show the click.
    browser.open_page(&server.url("/"));
    assert_eq!(browser.text("#recent-list .url"), target);
    browser.click("#recent-list a[href^='#/stats/']");
    wait_for_stats_of(&browser, &code);
    assert_eq!(wait_for_clicks(&browser, 1), 1);
    assert_eq!(
        browser.eval(
            "[...document.querySelectorAll('#chart rect.bar')].filter(r => Number(r.getAttribute('height')) > 0).length"
        ),
        json!(1),
        "one bar for the hour of the click"
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('#table-browsers td.count').length > 0"),
        json!(true)
    );
    // Other ranges ask again and still count it.
    browser.click("button[data-range='30d']");
    browser.wait_for(
        "document.querySelector('button[data-range=\"30d\"]').getAttribute('aria-pressed') === 'true'",
        Duration::from_secs(5),
    );
    assert_eq!(wait_for_clicks(&browser, 1), 1);
    assert_inert(&browser);
    drop(browser);
    server.stop();
}

/// With a key whose tenant holds a domain, the form offers it; a link made on it
/// shows its short URL there, and its QR code and stats are the domain's link's.
#[test]
fn a_link_is_made_on_a_domain_picked_from_the_list() {
    let server = Server::start();
    let key = server.key("acme");
    let added = server.post_as(
        &key,
        "/api/v1/domains",
        json!({"name": "go.acme.test", "scheme": "http"}),
    );
    assert_eq!(added, 201);
    let browser = Browser::launch(&[LANDING_HOST]);
    browser.open_page(&server.url("/"));
    // Without a key there is nothing to pick.
    assert_eq!(
        browser.eval("document.getElementById('domain-field').hidden"),
        json!(true)
    );
    browser.click("#key-box summary");
    browser.type_into("#api-key", &key);
    // Leaving the field is when the page asks for the key's domains.
    browser.click("#url");
    browser.wait_for(&is_shown("domain-field"), Duration::from_secs(10));
    assert_eq!(
        browser.eval("[...document.querySelectorAll('#domain option')].map(o => o.value)"),
        json!(["", "go.acme.test"])
    );

    let target = server.landing("/healthz");
    browser.type_into("#url", &target);
    browser.click("#options summary");
    browser.type_into("#alias", "spring");
    browser.eval("document.getElementById('domain').value = 'go.acme.test'");
    browser.click("#create-button");
    browser.wait_for(&is_shown("result"), Duration::from_secs(10));
    assert_eq!(browser.text("#short-link"), "http://go.acme.test/spring");
    assert_eq!(browser.text("#result-code"), "spring");
    browser.wait_for(
        "(() => { const i = document.getElementById('qr-image'); \
         return !i.hidden && i.complete && i.naturalWidth > 0; })()",
        Duration::from_secs(10),
    );
    browser.click("#result-stats");
    wait_for_stats_of(&browser, "go.acme.test/spring");
    assert_eq!(clicks_shown(&browser), 0);
    assert_eq!(
        browser.eval("location.hash"),
        json!("#/stats/go.acme.test/spring")
    );
    assert_inert(&browser);
    drop(browser);
    server.stop();
}

#[test]
fn hostile_urls_aliases_and_codes_render_as_text() {
    let server = Server::start();
    let browser = Browser::launch(&[]);
    browser.open_page(&server.url("/"));
    let url = r#"https://example.com/"><img src=x onerror=alert(1)>"#;
    let alias = "<script>alert(1)</script>";

    // The alias is refused, and the refusal is shown as the API words it.
    let (status, refusal) = server.create(json!({"url": url, "alias": alias}));
    assert_eq!(status, 422);
    browser.click("#options summary");
    browser.type_into("#url", url);
    browser.type_into("#alias", alias);
    browser.click("#create-button");
    browser.wait_for(&is_shown("create-error"), Duration::from_secs(10));
    assert_eq!(
        browser.text("#create-error .problem-title"),
        refusal["title"].as_str().unwrap()
    );
    let detail = browser.text("#create-error .problem-detail");
    assert_eq!(detail, refusal["detail"].as_str().unwrap());
    assert!(detail.contains("'<'"), "{detail}");
    assert_eq!(
        browser.eval("document.getElementById('alias').value"),
        json!(alias)
    );
    assert_inert(&browser);

    // Without the alias the URL is accepted: shown exactly as the API stored it.
    let (status, stored) = server.create(json!({ "url": url }));
    assert_eq!(status, 201);
    let stored_url = stored["url"].as_str().unwrap();
    assert!(stored_url.contains("onerror=alert(1)"), "{stored_url}");
    browser.eval("document.getElementById('alias').value = ''");
    browser.click("#create-button");
    browser.wait_for(&is_shown("result"), Duration::from_secs(10));
    assert!(
        browser.eval("document.getElementById('create-error').hidden") == json!(true),
        "the old error is gone"
    );
    assert_eq!(browser.text("#result-url"), stored_url);
    assert_eq!(browser.text("#recent-list .url"), stored_url);
    assert_inert(&browser);

    // Codes from the address bar, encoded or typed raw, are text on the stats view.
    let payloads = [
        alias.to_string(),
        r#""><img src=x onerror=alert(1)>"#.to_string(),
        "x' onmouseover='alert(1)".to_string(),
    ];
    for payload in &payloads {
        browser.eval(&format!(
            "location.hash = '#/stats/' + encodeURIComponent({})",
            js(payload)
        ));
        browser.wait_for(
            &format!(
                "document.getElementById('stats-code').textContent === {}",
                js(payload)
            ),
            Duration::from_secs(5),
        );
        browser.wait_for(&is_shown("stats-error"), Duration::from_secs(10));
        assert_eq!(browser.text("#stats-error .problem-title"), "Not found");
        assert_eq!(
            browser.eval("document.title"),
            json!(format!("Stats for {payload} · Shortener"))
        );
        browser.eval("location.hash = '#/'");
        browser.wait_for(&is_shown("create-view"), Duration::from_secs(5));
    }
    browser.navigate(&server.url("/#/stats/<img src=x onerror=alert(1)>"));
    browser.wait_for(
        "document.getElementById('stats-code').textContent === '<img src=x onerror=alert(1)>'",
        Duration::from_secs(10),
    );
    browser.wait_for(&is_shown("stats-error"), Duration::from_secs(10));
    assert_inert(&browser);
    drop(browser);
    server.stop();
}

/// The checks above would see a script's dialog: one opened here is recorded, and
/// dismissed so the page goes on.
#[test]
fn dialogs_are_recorded_and_dismissed() {
    let browser = Browser::launch(&[]);
    assert_eq!(browser.eval("alert('seen'); 1 + 1"), json!(2));
    let dialogs = browser.events_named("Page.javascriptDialogOpening");
    assert_eq!(dialogs.len(), 1);
    assert_eq!(dialogs[0]["message"], "seen");
}

/// Visitors of the screenshot's link: (user agent, referrer, country, clicks).
const VISITORS: &[(&str, &str, &str, usize)] = &[
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        "https://news.example.org/today",
        "US",
        14,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "https://mail.example.com/",
        "DE",
        9,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
        "https://forum.example.net/t/42",
        "FR",
        6,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "",
        "JP",
        5,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
        "https://news.example.org/today",
        "BR",
        4,
    ),
];

/// Writes docs/img/web-page.png and docs/img/web-stats.png (1000×700).
#[test]
#[ignore = "writes the README's screenshots: scripts/web-screenshots"]
fn readme_screenshots() {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/img");
    let server = Server::start();
    let browser = Browser::launch(&[]);
    browser.open_page(&server.url("/"));
    let shorten = |url: &str, alias: &str| {
        browser.type_into("#url", url);
        browser.type_into("#alias", alias);
        browser.click("#create-button");
        browser.wait_for(
            &format!(
                "document.getElementById('result-code').textContent === {}",
                js(alias)
            ),
            Duration::from_secs(10),
        );
    };
    browser.click("#options summary");
    shorten(
        "https://shop.example.com/collections/spring?utm_source=newsletter&utm_medium=email",
        "spring-sale",
    );

    let follow = server.url("/spring-sale");
    server.runtime.block_on(async {
        let http = test_kit::http_client().unwrap();
        for (agent, referrer, country, clicks) in VISITORS {
            for _ in 0..*clicks {
                let mut request = http
                    .get(&follow)
                    .header("user-agent", *agent)
                    .header("cf-ipcountry", *country);
                if !referrer.is_empty() {
                    request = request.header("referer", *referrer);
                }
                assert_eq!(request.send().await.unwrap().status(), 302);
            }
        }
    });
    let total: usize = VISITORS.iter().map(|v| v.3).sum();

    shorten(
        "https://docs.example.com/guides/getting-started/installation#linux",
        "install-guide",
    );
    browser.click("#options summary");
    browser.wait_for(
        "(() => { const i = document.getElementById('qr-image'); return !i.hidden && i.naturalWidth > 0; })()",
        Duration::from_secs(10),
    );
    browser.eval("window.scrollTo(0, 0)");
    browser.screenshot(&out.join("web-page.png"));

    browser.click("#recent-list li:nth-child(2) a[href^='#/stats/']");
    wait_for_stats_of(&browser, "spring-sale");
    wait_for_clicks(&browser, i64::try_from(total).unwrap());
    browser.click("button[data-range='7d']");
    browser.click("button[data-range='24h']");
    wait_for_clicks(&browser, i64::try_from(total).unwrap());
    // From the heading down: the numbers, the chart and the first breakdowns.
    browser.eval("document.getElementById('stats-heading').scrollIntoView()");
    browser.screenshot(&out.join("web-stats.png"));
    assert_inert(&browser);
    drop(browser);
    server.stop();
}
