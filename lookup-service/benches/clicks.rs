//! What counting costs a redirect: one click into the in-memory aggregate (the
//! common case: its key is already there) and the visitor hash.

use std::hint::black_box;

use common::clicks::{Click, DAY_MS, visitor_hash};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lookup_service::buffer::ClickBuffer;

const UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
                  (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

fn record(c: &mut Criterion) {
    let codes: Vec<String> = (0..1000).map(|i| format!("code{i:07}")).collect();
    let buffer = ClickBuffer::new(1_000_000);
    let mut group = c.benchmark_group("clicks");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("record_existing_key", |b| {
        b.iter(|| {
            i = (i + 1) % codes.len();
            black_box(buffer.record(&Click {
                code: &codes[i],
                at_ms: 1_767_225_600_000,
                referer: Some("https://news.example.com/article/1"),
                user_agent: Some(UA),
                country: Some("DE"),
                visitor: (i % 7) as i64,
                route: None,
            }))
        })
    });
    let key = [7u8; 16];
    let address = "203.0.113.9".parse().ok();
    group.bench_function("visitor_hash", |b| {
        b.iter(|| black_box(visitor_hash(&key, DAY_MS, address, UA)))
    });
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
