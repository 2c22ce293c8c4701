//! The cost of choosing a target: a link with five rules and three variants against
//! a visitor none of the rules matches (every rule tried, then the split), beside a
//! link without rules, which the redirect does not even ask.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::links::UrlPolicy;
use domain::route::{Routing, Visitor, parse_rules, parse_variants};
use serde_json::json;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

fn routing() -> Option<Routing> {
    let policy = UrlPolicy::default();
    let rules = json!([
        {"when": {"device": "bot"}, "url": "https://example.com/bots"},
        {"when": {"os": ["ios", "android"]}, "url": "https://example.com/app"},
        {"when": {"language": ["de", "fr", "it"]}, "url": "https://example.com/eu"},
        {"when": {"country": ["JP", "KR", "TW"]}, "url": "https://example.com/asia"},
        {"when": {"device": "tablet", "os": "windows"}, "url": "https://example.com/surface"},
    ]);
    let variants = json!([
        {"url": "https://example.com/a", "weight": 50},
        {"url": "https://example.com/b", "weight": 30},
        {"url": "https://example.com/c", "weight": 20},
    ]);
    Some(Routing {
        rules: parse_rules(rules.as_array()?, &policy).ok()?,
        variants: parse_variants(variants.as_array()?, &policy).ok()?,
        ..Routing::default()
    })
}

fn choose(c: &mut Criterion) {
    let Some(routing) = routing() else {
        return;
    };
    let plain = Routing::default();
    let visitor = Visitor {
        user_agent: CHROME,
        accept_language: "en-GB,en;q=0.9,de;q=0.5",
        country: Some("GB"),
        sticky: 0x9e37_79b9_7f4a_7c15,
    };
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(1));
    group.bench_function("plain", |b| {
        b.iter(|| {
            black_box(&plain)
                .chooses()
                .then(|| plain.choose(42, &visitor))
        })
    });
    group.bench_function("classify", |b| {
        b.iter(|| domain::agent::classify(black_box(CHROME)))
    });
    // What a follow pays for an agent this thread has seen before.
    group.bench_function("agent_remembered", |b| {
        b.iter(|| domain::agent::agent_of(black_box(CHROME)))
    });
    group.bench_function("preferred_language", |b| {
        b.iter(|| domain::route::preferred_language(black_box("en-GB,en;q=0.9,de;q=0.5")))
    });
    // Compiled once, as a cached link is: what every follow of it runs.
    let chooser = routing.chooser();
    group.bench_function("5_rules_3_variants", |b| {
        b.iter(|| black_box(&chooser).choose(black_box(42), black_box(&visitor)))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = choose
}
criterion_main!(benches);
