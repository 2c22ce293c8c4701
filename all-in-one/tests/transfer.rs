//! `shortener links import|export` through the library and the binary, on embedded
//! SQLite and on the PostgreSQL test bed: round trips, bad rows by line, reruns that
//! add nothing, interrupted imports that keep whole batches, and imported links that
//! redirect.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::config::{DatabaseSettings, ServiceKind, Settings};
use common::db::{Database, Engine, links, transfer as ledger};
use serde_json::{Value, json};
use shortener::transfer::Format;
use shortener::transfer::export::{ExportOptions, export_links};
use shortener::transfer::import::{BadRow, ImportOptions, ImportSummary, import_links};

const CODE_KEY: &str = "test-code-key-0123456789";

/// One database to import into: its settings (as the binary would load them) and
/// what keeps it alive.
struct Target {
    env: Vec<(String, String)>,
    url: String,
    dir: tempfile::TempDir,
    _pg: Option<test_kit::TestDb>,
}

impl Target {
    async fn sqlite() -> Target {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/data/links.db?mode=rwc", dir.path().display());
        Target::with_url(url, dir, None)
    }

    async fn postgres() -> Target {
        let db = test_kit::bed().await.fresh_database().await;
        Target::with_url(
            db.primary_url.clone(),
            tempfile::tempdir().unwrap(),
            Some(db),
        )
    }

    async fn on(engine: Engine) -> Target {
        match engine {
            Engine::Sqlite => Target::sqlite().await,
            Engine::Postgres => Target::postgres().await,
        }
    }

    fn with_url(url: String, dir: tempfile::TempDir, pg: Option<test_kit::TestDb>) -> Target {
        let mut env = vec![
            ("SHORTENER__DATABASE__URL".to_string(), url.clone()),
            ("SHORTENER__HTTP__PORT".into(), "0".into()),
            ("SHORTENER__HTTP__WORKERS".into(), "1".into()),
            ("SHORTENER__HTTP__SHUTDOWN_TIMEOUT".into(), "1s".into()),
            ("SHORTENER__TELEMETRY__FILTER".into(), "error".into()),
        ];
        if pg.is_some() {
            env.push(("SHORTENER__IDS__CODE_KEY".into(), CODE_KEY.into()));
        }
        Target {
            env,
            url,
            dir,
            _pg: pg,
        }
    }

    fn settings(&self) -> Settings {
        Settings::load_from(ServiceKind::AllInOne, None, self.env.clone()).unwrap()
    }

    /// A direct pool, for checks and for the faults a test injects.
    async fn db(&self) -> Database {
        let db = Database::connect(&DatabaseSettings::direct(&self.url, 2)).unwrap();
        db.migrate().await.unwrap();
        db
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn import(&self, file: &Path, tenant: &str) -> (ImportSummary, Vec<BadRow>) {
        self.import_with(ImportOptions::new(file, tenant)).await
    }

    async fn import_with(&self, options: ImportOptions) -> (ImportSummary, Vec<BadRow>) {
        let mut bad = Vec::new();
        let summary = import_links(self.settings(), &options, |row| bad.push(row.clone()))
            .await
            .unwrap();
        (summary, bad)
    }

    async fn export(&self, tenant: &str, name: &str) -> String {
        let path = self.path(name);
        let options = ExportOptions {
            tenant: tenant.to_string(),
            format: None,
            output: Some(path.clone()),
            progress: false,
        };
        export_links(self.settings(), &options).await.unwrap();
        std::fs::read_to_string(path).unwrap()
    }
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// A file of varied links: aliases, generated codes, two identical rows, a past
/// expiry, tags, clicks, a Unicode host, rows without `created_at`, and a link with
/// rules, variants and its query kept, and a protected one.
fn varied_jsonl() -> String {
    let rows = [
        json!({"url": "https://example.com/one", "alias": "one-link", "created_at": "2021-03-04T05:06:07.089Z",
               "expires_at": "2031-01-01T00:00:00Z", "tags": ["news", "2021"], "clicks": 1234}),
        json!({"url": "https://example.com/gone", "alias": "old_promo", "created_at": "2019-01-01T00:00:00Z",
               "expires_at": "2020-01-01T00:00:00Z", "tags": [], "clicks": 7}),
        json!({"url": "https://example.com/generated", "created_at": "2022-02-02T02:02:02Z", "clicks": 5}),
        json!({"url": "https://example.com/twice", "created_at": "2022-02-02T02:02:02Z"}),
        json!({"url": "https://example.com/twice", "created_at": "2022-02-02T02:02:02Z"}),
        json!({"url": "https://bücher.example/straße?q=ä", "alias": "buecher", "tags": ["de"]}),
        json!({"url": "https://example.com/now"}),
        json!({"url": "https://example.com/routed", "alias": "routed", "forward_query": false,
               "rules": [{"when": {"os": ["ios"], "country": ["de", "AT"]}, "url": "https://apps.example/x"}],
               "variants": [{"url": "https://example.com/a", "weight": 60}, {"url": "https://example.com/b", "weight": 40}]}),
        json!({"url": "https://example.com/guarded", "alias": "guarded",
               "password_hash": common::passwords::hash("open sesame").unwrap()}),
    ];
    rows.iter().map(|r| format!("{r}\n")).collect()
}

fn parse_jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The round trip: import, export, import the export into another database as
/// another tenant, export again: the same file. Both exports, CSV and JSON Lines.
async fn round_trip(engine: Engine) {
    let first = Target::on(engine).await;
    let source = write(&first.path("source.jsonl"), &varied_jsonl());
    let (summary, bad) = first.import(&source, "acme").await;
    assert_eq!(bad, vec![]);
    assert_eq!((summary.imported, summary.already_imported), (9, 0));
    // Each imported link has its audit row, made by the operator.
    let db = first.db().await;
    let imported = common::db::audit::page(
        db.primary(),
        &common::db::audit::Filter {
            tenant_id: "acme".into(),
            action: Some(common::audit::AuditAction::LinkImported),
            ..Default::default()
        },
        100,
    )
    .await
    .unwrap();
    assert_eq!(imported.len(), 9);
    assert!(
        imported
            .iter()
            .all(|row| row.entry.target.starts_with("link:")
                && matches!(row.entry.actor, common::domain::audit::Actor::Operator(_)))
    );
    db.close().await;

    for name in ["out.jsonl", "out.csv"] {
        let second = Target::on(engine).await;
        let exported = first.export("acme", name).await;
        let copy = write(&second.path(name), &exported);
        let (summary, bad) = second.import(&copy, "globex").await;
        assert_eq!(bad, vec![], "{name}");
        assert_eq!(summary.imported, 9, "{name}");
        let again = second.export("globex", &format!("again-{name}")).await;
        assert_eq!(
            again, exported,
            "the round trip through {name} changes nothing"
        );

        // Another tenant of the same database: aliases are global, so the aliased
        // rows are taken and only the generated ones come in.
        let (summary, bad) = first.import(&copy, &format!("initech-{name}")).await;
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        let first_row = if name.ends_with(".csv") { 2 } else { 1 };
        assert_eq!(
            lines,
            [
                first_row,
                first_row + 1,
                first_row + 5,
                first_row + 7,
                first_row + 8
            ],
            "{bad:#?}"
        );
        assert!(bad[0].reason.contains("is already taken"), "{bad:#?}");
        assert_eq!(summary.imported, 4);
    }

    let rows = parse_jsonl(&first.export("acme", "check.jsonl").await);
    assert_eq!(rows.len(), 9);
    assert_eq!(
        rows[0],
        json!({"url": "https://example.com/one", "alias": "one-link", "created_at": "2021-03-04T05:06:07.089Z",
               "expires_at": "2031-01-01T00:00:00.000Z", "tags": ["news", "2021"], "clicks": 1234})
    );
    assert_eq!(rows[1]["expires_at"], "2020-01-01T00:00:00.000Z");
    assert_eq!(
        rows[2]["alias"],
        Value::Null,
        "a generated code is no alias"
    );
    assert_eq!(rows[2]["clicks"], 5);
    assert_eq!(rows[3], rows[4], "two identical rows are two links");
    assert_eq!(
        rows[5]["url"],
        "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%A4"
    );
    assert!(rows[6]["created_at"].as_str().unwrap().starts_with("20"));
    assert_eq!(rows[7]["forward_query"], false);
    assert_eq!(
        rows[7]["rules"],
        json!([{"when": {"os": ["ios"], "country": ["DE", "AT"]}, "url": "https://apps.example/x"}])
    );
    assert_eq!(
        rows[7]["variants"][1],
        json!({"url": "https://example.com/b", "weight": 40})
    );
    assert_eq!(
        rows[6].get("forward_query"),
        None,
        "forwarding is the default"
    );
    let hash = rows[8]["password_hash"].as_str().unwrap();
    assert!(
        common::passwords::verify("open sesame", hash),
        "the hash travels"
    );

    // A CSV export is the same data.
    let csv = first.export("acme", "check.csv").await;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "url,alias,created_at,expires_at,tags,clicks,domain,forward_query,rules,variants,password_hash"
        )
    );
    assert_eq!(
        lines.next(),
        Some(
            r#"https://example.com/one,one-link,2021-03-04T05:06:07.089Z,2031-01-01T00:00:00.000Z,"[""news"",""2021""]",1234,,true,,,"#
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_preserves_links_sqlite() {
    round_trip(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_preserves_links_postgres() {
    round_trip(Engine::Postgres).await;
}

/// Every kind of bad row, each reported with its line; the good rows are imported,
/// and a rerun imports nothing new and reports the same rows.
async fn bad_rows(engine: Engine) {
    let target = Target::on(engine).await;
    let taken = write(
        &target.path("taken.csv"),
        "url,alias\nhttps://example.com/first,taken-one\n",
    );
    let (summary, _) = target.import(&taken, "someone-else").await;
    assert_eq!(summary.imported, 1);

    let csv = "url,alias,created_at,expires_at,tags,clicks\n\
               https://example.com/ok-1,,,,,\n\
               not a url,,,,,\n\
               javascript:alert(1),,,,,\n\
               https://example.com/x,a b,,,,\n\
               https://example.com/ok-2,mine,,,,\n\
               https://example.com/y,mine,,,,\n\
               https://example.com/z,taken-one,,,,\n\
               https://example.com/w,,yesterday,,,\n\
               https://example.com/v,,,,\n\
               https://example.com/ok-3,,,,\"[\"\"a\"\"]\",3\n";
    let file = write(&target.path("bad.csv"), csv);
    let expected = [
        (3, "url: url is not valid"),
        (4, "url: url scheme \"javascript\" is not allowed"),
        (5, "alias: alias contains the character ' '"),
        (7, "alias \"mine\" already appears on line 6"),
        (8, "alias \"taken-one\" is already taken"),
        (9, "created_at: \"yesterday\" is not an RFC 3339 timestamp"),
        (10, "expected 6 fields, found 5"),
    ];
    let check = |bad: &[BadRow]| {
        assert_eq!(bad.len(), expected.len(), "{bad:#?}");
        for (row, (line, reason)) in bad.iter().zip(expected) {
            assert_eq!(row.line, line, "{row}");
            assert!(row.reason.starts_with(reason), "{row}");
        }
    };
    let (summary, bad) = target.import(&file, "acme").await;
    check(&bad);
    assert_eq!(
        (summary.imported, summary.already_imported, summary.bad),
        (3, 0, 7)
    );
    let (summary, bad) = target.import(&file, "acme").await;
    check(&bad);
    assert_eq!(
        (summary.imported, summary.already_imported, summary.bad),
        (0, 3, 7)
    );

    let jsonl = [
        r#"{"url": "https://example.com/j-ok"}"#,
        r#"{"url": "https://example.com/j-bad", "alias": "api"}"#,
        r#"{"url": "https://example.com/j-broken""#,
        "",
        r#"{"url": "data:text/html,hi"}"#,
        r#"{"url": "https://example.com/j-tags", "tags": "one"}"#,
        r#"{"url": "https://example.com/j-ok-2", "expires_at": "2020-01-01T00:00:00Z"}"#,
    ]
    .join("\n");
    let file = write(&target.path("bad.jsonl"), &jsonl);
    let (summary, bad) = target.import(&file, "acme").await;
    let got: Vec<(u64, &str)> = bad
        .iter()
        .map(|b| (b.line, b.reason.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "alias"),
            (3, "invalid JSON at column 38"),
            (5, "url"),
            (6, "tags")
        ],
        "{bad:#?}"
    );
    assert_eq!((summary.imported, summary.bad), (2, 4));

    let db = target.db().await;
    assert_eq!(links::count(db.primary()).await.unwrap(), 6);
    assert_eq!(ledger::ledger_count(db.primary(), "acme").await.unwrap(), 5);
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_reported_by_line_sqlite() {
    bad_rows(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_reported_by_line_postgres() {
    bad_rows(Engine::Postgres).await;
}

fn numbered_csv(rows: usize) -> String {
    let mut text = String::from("url,alias,created_at\n");
    for i in 0..rows {
        // Every third row has an alias; the rest get generated codes.
        let alias = if i % 3 == 0 {
            format!("row-{i}")
        } else {
            String::new()
        };
        text.push_str(&format!(
            "https://example.com/n/{i},{alias},2024-05-06T07:08:09Z\n"
        ));
    }
    text
}

/// Makes the links INSERT fail once `after` links exist: a batch that breaks in the
/// middle, after its ledger rows and part of its links were written.
async fn install_fault(db: &Database, after: i64) {
    let statements = match db.engine() {
        Engine::Sqlite => vec![format!(
            "CREATE TRIGGER forced_failure BEFORE INSERT ON links \
             WHEN (SELECT COUNT(*) FROM links) >= {after} \
             BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
        )],
        Engine::Postgres => vec![
            format!(
                "CREATE FUNCTION forced_failure() RETURNS trigger AS $$ BEGIN \
                 IF (SELECT COUNT(*) FROM links) >= {after} THEN \
                 RAISE EXCEPTION 'forced failure'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            ),
            "CREATE TRIGGER forced_failure BEFORE INSERT ON links \
             FOR EACH ROW EXECUTE FUNCTION forced_failure()"
                .to_string(),
        ],
    };
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(db.primary())
            .await
            .unwrap();
    }
}

async fn remove_fault(db: &Database) {
    let sql = match db.engine() {
        Engine::Sqlite => "DROP TRIGGER forced_failure",
        Engine::Postgres => "DROP TRIGGER forced_failure ON links",
    };
    sqlx::query(sql).execute(db.primary()).await.unwrap();
}

/// Distinct URLs among the links: equal to the link count means no duplicates.
async fn distinct_urls(db: &Database) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(DISTINCT url) FROM links")
        .fetch_one(db.primary())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// A batch fails halfway: the import stops, only the whole batches before it are
/// in (links and ledger alike), and a rerun completes the file without duplicates.
async fn interrupted(engine: Engine) {
    let target = Target::on(engine).await;
    let file = write(&target.path("links.csv"), &numbered_csv(1000));
    let db = target.db().await;
    install_fault(&db, 250).await;
    let options = ImportOptions {
        batch: 100,
        ..ImportOptions::new(&file, "acme")
    };
    let error = import_links(target.settings(), &options, |_| {})
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("was rolled back") && message.contains("forced failure"),
        "{message}"
    );
    // SQLite writes one batch at a time, so exactly the first two are in; PostgreSQL
    // writes two at once, and the one beside the failed batch may have committed.
    let kept = links::count(db.primary()).await.unwrap();
    if engine == Engine::Sqlite {
        assert!(message.contains("lines 202–301"), "{message}");
        assert_eq!(kept, 200);
    }
    assert!((200..1000).contains(&kept) && kept % 100 == 0, "{kept}");
    assert_eq!(
        ledger::ledger_count(db.primary(), "acme").await.unwrap(),
        kept
    );

    remove_fault(&db).await;
    let (summary, bad) = target.import_with(options.clone()).await;
    assert_eq!(bad, vec![]);
    assert_eq!(
        (summary.imported, summary.already_imported),
        (1000 - kept as u64, kept as u64)
    );
    assert_eq!(links::count(db.primary()).await.unwrap(), 1000);
    assert_eq!(distinct_urls(&db).await, 1000);
    assert_eq!(
        ledger::ledger_count(db.primary(), "acme").await.unwrap(),
        1000
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_import_keeps_whole_batches_sqlite() {
    interrupted(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_import_keeps_whole_batches_postgres() {
    interrupted(Engine::Postgres).await;
}

/// Imports next to a running all-in-one server (its create path holds a worker-id
/// lease of its own), then follows every imported link.
async fn imported_links_redirect(engine: Engine) {
    let target = Target::on(engine).await;
    let server = shortener::start(target.settings()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", server.port());
    let http = test_kit::http_client().unwrap();
    let created = test_kit::json_of(
        http.post(format!("{base}/api/v1/links"))
            .json(&json!({"url": "https://example.com/from-the-api"})),
    )
    .await;

    let file = write(&target.path("links.jsonl"), &varied_jsonl());
    let (summary, bad) = target.import(&file, "acme").await;
    assert_eq!((summary.imported, bad.len()), (9, 0));

    let db = target.db().await;
    let imported = links::list_for_tenant(
        db.primary(),
        &acme(),
        &links::DomainFilter::Every,
        None,
        100,
    )
    .await
    .unwrap();
    assert_eq!(imported.len(), 9);
    let api_id: i64 = created["id"].as_str().unwrap().parse().unwrap();
    let worker = |id: i64| (id >> 12) & 0x3ff;
    for link in &imported {
        assert_ne!(
            worker(link.id),
            worker(api_id),
            "the import leases a worker id of its own"
        );
        let answer = http
            .get(format!("{base}/{}", link.code))
            .send()
            .await
            .unwrap();
        let location = answer
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap());
        if link.code == "old_promo" {
            assert_eq!(answer.status(), 410, "imported expired");
        } else if link.code == "guarded" {
            assert_eq!(answer.status(), 200, "the password form");
        } else if link.code == "routed" {
            // A split link sends the visitor to one of its variants.
            assert!(
                matches!(
                    location,
                    Some("https://example.com/a" | "https://example.com/b")
                ),
                "{location:?}"
            );
        } else {
            assert_eq!(answer.status(), 302, "{}", link.code);
            assert_eq!(answer.headers()["location"].to_str().unwrap(), link.url);
        }
    }
    let one = http.get(format!("{base}/one-link")).send().await.unwrap();
    assert_eq!(one.headers()["location"], "https://example.com/one");
    db.close().await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_links_redirect_sqlite() {
    imported_links_redirect(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_links_redirect_postgres() {
    imported_links_redirect(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_checks_everything_and_writes_nothing() {
    let target = Target::sqlite().await;
    let taken = write(
        &target.path("taken.csv"),
        "url,alias\nhttps://a.example/,mine\n",
    );
    target.import(&taken, "acme").await;
    let file = write(
        &target.path("dry.csv"),
        "url,alias\nhttps://b.example/,mine\nhttps://c.example/,\nftp://d.example/,\n",
    );
    let options = ImportOptions {
        dry_run: true,
        format: Some(Format::Csv),
        ..ImportOptions::new(&file, "other")
    };
    let (summary, bad) = target.import_with(options).await;
    assert!(summary.dry_run && summary.to_string().starts_with("dry run"));
    assert_eq!((summary.imported, summary.bad), (1, 2));
    assert_eq!((bad[0].line, bad[1].line), (2, 4));
    let db = target.db().await;
    assert_eq!(links::count(db.primary()).await.unwrap(), 1);
    assert_eq!(
        ledger::ledger_count(db.primary(), "other").await.unwrap(),
        0
    );
    assert_eq!(
        common::db::audit::count(db.primary()).await.unwrap(),
        1,
        "the real import's row only"
    );
    db.close().await;
}

fn binary(target: &Target) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shortener"));
    command.envs(target.env.iter().cloned());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_bad_rows_on_stderr_and_exits_3() {
    let target = Target::sqlite().await;
    let file = write(
        &target.path("links.csv"),
        "url,alias\nhttps://a.example/,a-link\njavascript:x,\nhttps://b.example/,\n",
    );
    let output = binary(&target)
        .args(["links", "import"])
        .arg(&file)
        .args(["--tenant", "acme"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("line 3: url: url scheme \"javascript\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("imported 2, skipped as already imported 0, bad 1,"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());

    // The export goes to stdout; its summary to stderr.
    let output = binary(&target)
        .args(["links", "export", "--tenant", "acme", "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let rows = parse_jsonl(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["alias"], "a-link");

    // A misspelt column refuses the file before anything happens.
    let typo = write(
        &target.path("typo.csv"),
        "url,expire_at\nhttps://c.example/,\n",
    );
    let output = binary(&target)
        .args(["links", "import"])
        .arg(&typo)
        .args(["--tenant", "acme"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("\"expire_at\"")
    );
}

/// `kill -9` in the middle of an import: only whole batches are in, and running the
/// same command again completes the file with no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_import_resumes_without_duplicates() {
    let target = Target::sqlite().await;
    let rows = 60_000;
    let batch = 50;
    let file = write(&target.path("big.csv"), &numbered_csv(rows));
    let db = target.db().await;
    let run = || {
        let mut command = binary(&target);
        command.args(["links", "import"]).arg(&file).args([
            "--tenant",
            "acme",
            "--batch",
            &batch.to_string(),
        ]);
        command
    };
    let mut child = run().spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = ledger::ledger_count(db.primary(), "acme")
            .await
            .unwrap_or(0);
        if n > 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let links_in = links::count(db.primary()).await.unwrap();
    let ledger_in = ledger::ledger_count(db.primary(), "acme").await.unwrap();
    assert!(
        links_in > 0 && (links_in as usize) < rows,
        "killed mid-way: {links_in}"
    );
    assert_eq!(links_in % batch, 0, "whole batches only");
    assert_eq!(ledger_in, links_in);

    let output = run().output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "imported {}, skipped as already imported {links_in}, bad 0",
            rows as i64 - links_in
        )),
        "{stderr}"
    );
    assert_eq!(links::count(db.primary()).await.unwrap(), rows as i64);
    assert_eq!(distinct_urls(&db).await, rows as i64);
    let codes: BTreeSet<String> = links::list_for_tenant(
        db.primary(),
        &acme(),
        &links::DomainFilter::Every,
        None,
        1000,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|l| l.code.into_string())
    .collect();
    assert_eq!(codes.len(), 1000);
    db.close().await;
}

fn acme() -> common::link::TenantId {
    common::link::TenantId::named("acme").expect("a valid tenant name")
}

/// Rows name the tenant's own domains: links land on them under their aliases, a
/// domain the tenant does not hold is a bad row, a rerun finds every row again, and
/// an export writes each link's domain.
async fn links_on_domains(engine: Engine) {
    let target = Target::on(engine).await;
    let db = target.db().await;
    let now = common::time::now_ms();
    let held = common::db::domains::DomainRecord {
        name: common::links::DomainName::parse("go.acme.com").unwrap(),
        tenant_id: acme(),
        created_at: now,
        updated_at: now,
        settings: common::site::SiteSettings::default(),
        retired_at: None,
    };
    assert!(
        common::db::domains::insert(&mut db.primary().acquire().await.unwrap(), &held)
            .await
            .unwrap()
    );
    let file = write(
        &target.path("domains.jsonl"),
        concat!(
            r#"{"url": "https://acme.com/spring", "alias": "spring", "domain": "go.acme.com"}"#,
            "\n",
            r#"{"url": "https://example.com/spring", "alias": "spring"}"#,
            "\n",
            r#"{"url": "https://globex.example/x", "alias": "x-link", "domain": "links.globex.example"}"#,
            "\n",
            r#"{"url": "https://acme.com/generated", "domain": "GO.ACME.COM."}"#,
            "\n",
        ),
    );
    let (summary, bad) = target.import(&file, "acme").await;
    assert_eq!(summary.imported, 3, "{bad:#?}");
    assert_eq!(bad.len(), 1, "{bad:#?}");
    assert_eq!(bad[0].line, 3);
    assert!(
        bad[0].reason.contains("not one of this tenant's domains"),
        "{bad:#?}"
    );
    let branded = links::get(db.primary(), "go.acme.com/spring")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(branded.url, "https://acme.com/spring");
    assert_eq!(
        branded.domain.as_ref().map(|d| d.as_str()),
        Some("go.acme.com")
    );
    let default = links::get(db.primary(), "spring").await.unwrap().unwrap();
    assert_eq!(default.url, "https://example.com/spring");
    assert_eq!(default.domain, None);

    let (again, _) = target.import(&file, "acme").await;
    assert_eq!((again.imported, again.already_imported), (0, 3));

    let rows = parse_jsonl(&target.export("acme", "domains-out.jsonl").await);
    let mut domains: Vec<(Option<&str>, &str)> = rows
        .iter()
        .map(|r| (r["domain"].as_str(), r["url"].as_str().unwrap()))
        .collect();
    domains.sort();
    assert_eq!(
        domains,
        [
            (None, "https://example.com/spring"),
            (Some("go.acme.com"), "https://acme.com/generated"),
            (Some("go.acme.com"), "https://acme.com/spring"),
        ]
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_on_domains_sqlite() {
    links_on_domains(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_on_domains_postgres() {
    links_on_domains(Engine::Postgres).await;
}
