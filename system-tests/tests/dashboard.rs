//! The Grafana dashboard of the Helm chart against the running services: every series
//! a panel or a variable queries is exported by create-, lookup- or stats-service with
//! the labels and label values the query selects, the panels cover what on-call needs
//! and every metric an alert reads, and the JSON lays out as a Grafana dashboard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Harness;

const DASHBOARD: &str = include_str!("../../helm/shortener/dashboards/shortener.json");
const ALERTS: &str = include_str!("../../helm/shortener/templates/prometheusrule.yaml");

/// Labels Prometheus adds from the scrape target (the ServiceMonitor's pod, namespace,
/// job...): never in /metrics itself, so a query may select on them freely.
const TARGET_LABELS: &[&str] = &[
    "namespace",
    "job",
    "pod",
    "instance",
    "container",
    "endpoint",
];

/// What the board must show, as (theme, a metric one query reads, text that same
/// query contains): the list and the alerts of the scaling plan.
const THEMES: &[(&str, &str, &[&str])] = &[
    (
        "request rate per service",
        "shortener_http_request_duration_seconds_count",
        &["rate(", "by (service)"],
    ),
    (
        "latency per service",
        "shortener_http_request_duration_seconds_bucket",
        &["histogram_quantile(0.95", "by (service, le)"],
    ),
    (
        "5xx error rate",
        "shortener_http_request_duration_seconds_count",
        &["status=~\"5..\"", "/"],
    ),
    (
        "cache hit ratio per tier",
        "shortener_lookup_tier_total",
        &["result=\"hit\"", "by (tier)", "/"],
    ),
    (
        "Redis breaker state",
        "shortener_lookup_redis_breaker_state",
        &[],
    ),
    (
        "click queue lag",
        "shortener_stats_queue_lag_milliseconds",
        &[],
    ),
    ("click queue backlog", "shortener_stats_queue_batches", &[]),
    (
        "DB pool use",
        "shortener_db_pool_connections",
        &["state=\"in_use\"", "state=\"max\"", "/"],
    ),
    ("database errors", "shortener_db_errors_total", &["rate("]),
    ("Redis errors", "shortener_redis_errors_total", &["rate("]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_read_exported_series() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let queries = queries(&dashboard);
    // Redis Cluster, a primary and a streaming replica: every tier, the breaker and
    // both pool roles exist.
    let h = Harness::postgres(&[]).await;
    traffic(&h).await;
    let mut exported = Vec::new();
    for port in [h.create_port, h.lookup_port, h.stats_port] {
        exported.extend(exposition(&h.metrics_text(port).await));
    }
    h.stop().await;

    let mut problems = Vec::new();
    let mut metrics = BTreeSet::new();
    for query in &queries {
        let reads = promql::reads(&query.expr);
        metrics.extend(reads.selectors.iter().map(|s| s.metric.clone()));
        problems.extend(
            check(&reads, &exported)
                .into_iter()
                .map(|p| format!("{}: {p}\n    {}", query.place, query.expr)),
        );
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in the dashboard's queries against /metrics:\n{}",
        problems.len(),
        problems.join("\n")
    );
    println!(
        "{} queries over {} metrics, all exported: {}",
        queries.len(),
        metrics.len(),
        metrics.into_iter().collect::<Vec<_>>().join(", ")
    );
}

/// A little of everything: a create, a followed link (L1 miss, L2 hit, then L1
/// hits), an unknown code (down to the replica and the primary), a stats read once
/// the click batch is applied.
async fn traffic(h: &Harness) {
    let link = h
        .create_link(json!({"url": "https://example.com/dashboard"}))
        .await;
    let code = link["code"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(h.follow(code).await.status, StatusCode::FOUND);
    }
    assert_eq!(h.follow("no-such-link").await.status, StatusCode::NOT_FOUND);
    let path = format!("/api/v1/links/{code}/stats?granularity=hour");
    for _ in 0..150 {
        let stats = h
            .send(h.http.get(h.stats_url(&path)).bearer_auth(&h.key))
            .await;
        assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
        if stats.body["total"].as_i64() == Some(3) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the three clicks were never applied");
}

#[test]
fn panels_cover_the_themes_and_every_alert_metric() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let queries = queries(&dashboard);
    let panel_queries: Vec<&Query> = queries.iter().filter(|q| q.panel).collect();
    let missing: Vec<&str> = THEMES
        .iter()
        .filter(|(_, metric, fragments)| {
            !panel_queries.iter().any(|q| {
                promql::reads(&q.expr)
                    .selectors
                    .iter()
                    .any(|s| s.metric == *metric)
                    && fragments.iter().all(|f| q.expr.contains(f))
            })
        })
        .map(|(theme, _, _)| *theme)
        .collect();
    assert!(missing.is_empty(), "no panel shows: {missing:?}");

    let shown: BTreeSet<String> = panel_queries
        .iter()
        .flat_map(|q| promql::reads(&q.expr).selectors)
        .map(|s| s.metric)
        .collect();
    let alerted = metric_names(ALERTS);
    assert!(alerted.len() >= 5, "alerts read only {alerted:?}");
    let unshown: Vec<&String> = alerted.difference(&shown).collect();
    assert!(
        unshown.is_empty(),
        "alerts read metrics no panel shows: {unshown:?}"
    );
}

#[test]
fn dashboard_is_valid_grafana_json() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(dashboard["uid"], "shortener");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("no datasource variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let templated = json!({"type": "prometheus", "uid": "${datasource}"});
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(variable["datasource"], templated, "variable {variable}");
    }

    let panels = all_panels(&dashboard);
    assert!(panels.len() > 10);
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(&str, [u64; 4])> = Vec::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id reused"
        );
        let grid = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64().unwrap());
        assert!(w >= 1 && h >= 1 && x + w <= 24, "{title}: gridPos {grid}");
        for (other, [ox, oy, ow, oh]) in &boxes {
            let apart = x + w <= *ox || *ox + ow <= x || y + h <= *oy || *oy + oh <= y;
            assert!(apart, "{title} overlaps {other}");
        }
        boxes.push((title, [x, y, w, h]));
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"], templated, "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for target in targets {
            assert!(refs.insert(target["refId"].as_str().unwrap()), "{title}");
            assert_eq!(target["datasource"], templated, "{title}");
            assert!(target["expr"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
}

#[test]
fn promql_reads_only_metric_names() {
    let reads = promql::reads(
        "histogram_quantile(0.95, sum by (service, le) (rate(a_bucket{x=\"1\", \
         y=~\"b|c\", z!~\"$v\"}[$__rate_interval]))) / on (pod) group_left(role) \
         max without (tier) (b offset 5m) > bool 0.1 or vector(0) and ignoring(q) \
         sum(c{k=\"a,b}\\\"\"}) by (k) unless count(d) == 1e3",
    );
    let metrics: Vec<&str> = reads.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(metrics, ["a_bucket", "b", "c", "d"]);
    assert_eq!(
        reads.grouping,
        ["service", "le", "pod", "role", "tier", "q", "k"]
    );
    let a = &reads.selectors[0].matchers;
    assert_eq!(
        a.iter()
            .map(|m| (m.label.as_str(), m.op.as_str(), m.value.as_str()))
            .collect::<Vec<_>>(),
        [("x", "=", "1"), ("y", "=~", "b|c"), ("z", "!~", "$v")]
    );
    assert_eq!(reads.selectors[2].matchers[0].value, "a,b}\"");
}

/// One PromQL query of the dashboard and where it sits.
struct Query {
    place: String,
    expr: String,
    /// A panel's (not a variable's).
    panel: bool,
}

/// Panels, those inside collapsed rows included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut panels = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    panels
}

/// Every panel query and every query variable; `label_values(selector, label)` gives
/// its selector, and its label as a grouping (`by`) label.
fn queries(dashboard: &Value) -> Vec<Query> {
    let mut queries = Vec::new();
    for panel in all_panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push(Query {
                    place: format!("panel {:?} query {}", panel["title"], target["refId"]),
                    expr: expr.to_string(),
                    panel: true,
                });
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap();
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values: {query}", variable["name"]));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        queries.push(Query {
            place: format!("variable {}", variable["name"]),
            expr: format!("{selector} by ({label})"),
            panel: false,
        });
    }
    queries
}

/// The metric names in a Helm-templated rule file: `shortener_` then `[a-z0-9_]`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("shortener_") {
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// One sample line of the Prometheus text format.
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
}

/// The samples of a scrape (comments, `# HELP` and `# TYPE` lines left out).
fn exposition(text: &str) -> Vec<Series> {
    let mut series = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap();
        let name = line[..end].to_string();
        let mut labels = BTreeMap::new();
        if line[end..].starts_with('{') {
            let mut chars = line[end + 1..].chars().peekable();
            loop {
                let label: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert_eq!(chars.next(), Some('"'), "{line}");
                let mut value = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.push(match chars.next().unwrap() {
                            'n' => '\n',
                            other => other,
                        }),
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(label.trim().to_string(), value);
                match chars.next() {
                    Some(',') if chars.peek() == Some(&'}') => break,
                    Some(',') => {}
                    Some('}') => break,
                    other => panic!("{line}: {other:?} after a label"),
                }
            }
        }
        series.push(Series { name, labels });
    }
    series
}

/// What in `reads` the scrape does not back: a metric with no sample, a label no
/// sample of the metric has, a literal label value (`=`, or `=~` on plain
/// alternatives) no sample has together with the query's other literal values.
fn check(reads: &promql::Reads, exported: &[Series]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut labels_read: BTreeSet<&str> = TARGET_LABELS.iter().copied().collect();
    for selector in &reads.selectors {
        let samples: Vec<&Series> = exported
            .iter()
            .filter(|s| s.name == selector.metric)
            .collect();
        if samples.is_empty() {
            problems.push(format!("{} is not exported", selector.metric));
            continue;
        }
        let labels: BTreeSet<&str> = samples
            .iter()
            .flat_map(|s| s.labels.keys().map(String::as_str))
            .collect();
        labels_read.extend(&labels);
        let literal = |value: &str| !value.contains('$');
        let mut exact = Vec::new();
        let mut alternatives = Vec::new();
        for m in &selector.matchers {
            if TARGET_LABELS.contains(&m.label.as_str()) {
                continue;
            }
            if !labels.contains(m.label.as_str()) {
                problems.push(format!("{} has no label {}", selector.metric, m.label));
                continue;
            }
            let plain = m
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-/|".contains(c));
            match m.op.as_str() {
                "=" if literal(&m.value) => exact.push((m.label.as_str(), m.value.as_str())),
                "=~" if literal(&m.value) && plain => {
                    alternatives.push((m.label.as_str(), m.value.split('|').collect::<Vec<_>>()))
                }
                _ => {}
            }
        }
        let has = |wanted: &[(&str, &str)]| {
            samples.iter().any(|s| {
                wanted
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
        };
        if !has(&exact) {
            problems.push(format!("no series of {} with {exact:?}", selector.metric));
        }
        for (label, values) in alternatives {
            for value in values {
                let mut wanted = exact.clone();
                wanted.push((label, value));
                if !has(&wanted) {
                    problems.push(format!("no series of {} with {wanted:?}", selector.metric));
                }
            }
        }
    }
    for label in &reads.grouping {
        if !labels_read.contains(label.as_str()) {
            problems.push(format!("groups by {label}, a label none of its series has"));
        }
    }
    problems
}

/// Just enough of PromQL's lexical structure to tell the metric names of a query
/// from its functions, keywords, label names, label values and durations.
mod promql {
    pub struct Matcher {
        pub label: String,
        pub op: String,
        pub value: String,
    }

    pub struct Selector {
        pub metric: String,
        pub matchers: Vec<Matcher>,
    }

    #[derive(Default)]
    pub struct Reads {
        pub selectors: Vec<Selector>,
        /// Labels of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`.
        pub grouping: Vec<String>,
    }

    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    /// Aggregations may put their `by` clause before the parenthesis.
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const KEYWORDS: &[&str] = &[
        "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
    ];

    fn ident_start(c: char) -> bool {
        c.is_ascii_alphabetic() || c == '_' || c == ':'
    }

    fn ident(c: char) -> bool {
        ident_start(c) || c.is_ascii_digit()
    }

    fn skip_ws(s: &[char], mut i: usize) -> usize {
        while s.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        i
    }

    /// The string literal opening at `i`, unescaped, and the index past it.
    fn string(s: &[char], mut i: usize) -> (String, usize) {
        let quote = s[i];
        let mut value = String::new();
        i += 1;
        while i < s.len() {
            match s[i] {
                '\\' if quote != '`' => {
                    value.push(s[i + 1]);
                    i += 2;
                }
                c if c == quote => return (value, i + 1),
                c => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        panic!("unterminated string in {}", s.iter().collect::<String>());
    }

    /// The index past the first `close` after `i`, strings skipped.
    fn past(s: &[char], mut i: usize, close: char) -> usize {
        while i < s.len() {
            match s[i] {
                '"' | '\'' | '`' => i = string(s, i).1,
                c if c == close => return i + 1,
                _ => i += 1,
            }
        }
        panic!("no {close} in {}", s.iter().collect::<String>());
    }

    /// The matchers of the `{...}` opening at `i`, and the index past it.
    fn matchers(s: &[char], mut i: usize) -> (Vec<Matcher>, usize) {
        let mut matchers = Vec::new();
        i += 1;
        loop {
            i = skip_ws(s, i);
            if s[i] == '}' {
                return (matchers, i + 1);
            }
            let start = i;
            while ident(s[i]) {
                i += 1;
            }
            let label: String = s[start..i].iter().collect();
            i = skip_ws(s, i);
            let op = match (s[i], s[i + 1]) {
                ('=', '~') | ('!', '~') | ('!', '=') => 2,
                ('=', _) => 1,
                other => panic!("bad matcher {label}{other:?}"),
            };
            let op_text: String = s[i..i + op].iter().collect();
            i = skip_ws(s, i + op);
            let (value, end) = string(s, i);
            matchers.push(Matcher {
                label,
                op: op_text,
                value,
            });
            i = skip_ws(s, end);
            if s[i] == ',' {
                i += 1;
            }
        }
    }

    pub fn reads(expr: &str) -> Reads {
        let s: Vec<char> = expr.chars().collect();
        let mut reads = Reads::default();
        let mut i = 0;
        while i < s.len() {
            let c = s[i];
            if matches!(c, '"' | '\'' | '`') {
                i = string(&s, i).1;
            } else if c == '[' {
                // A range or subquery: durations and Grafana's $__rate_interval.
                i = past(&s, i, ']');
            } else if c == '{' {
                panic!("a selector without a metric name in {expr}");
            } else if c == '$' {
                i += 1;
                if s.get(i) == Some(&'{') {
                    i = past(&s, i, '}');
                } else {
                    while s.get(i).is_some_and(|c| ident(*c)) {
                        i += 1;
                    }
                }
            } else if c.is_ascii_digit()
                || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit))
            {
                // Numbers, and durations after `offset`.
                while s
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.')
                {
                    i += 1;
                }
            } else if ident_start(c) {
                let start = i;
                while s.get(i).is_some_and(|c| ident(*c)) {
                    i += 1;
                }
                let word: String = s[start..i].iter().collect();
                let next = skip_ws(&s, i);
                let follows = s.get(next).copied();
                if GROUPING.contains(&word.as_str()) {
                    if follows == Some('(') {
                        let end = past(&s, next, ')');
                        let list: String = s[next + 1..end - 1].iter().collect();
                        reads.grouping.extend(
                            list.split(',')
                                .map(str::trim)
                                .filter(|l| !l.is_empty())
                                .map(String::from),
                        );
                        i = end;
                    }
                } else if follows == Some('(')
                    || AGGREGATIONS.contains(&word.as_str())
                    || KEYWORDS.contains(&word.as_str())
                {
                    // A function or aggregation (its arguments are read next), or
                    // an operator.
                } else {
                    let mut found = Vec::new();
                    if follows == Some('{') {
                        (found, i) = matchers(&s, next);
                    }
                    reads.selectors.push(Selector {
                        metric: word,
                        matchers: found,
                    });
                }
            } else {
                i += 1;
            }
        }
        reads
    }
}
