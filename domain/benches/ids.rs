//! Throughput of id generation and of code encoding and decoding.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::ids::{CodeCodec, Generator, SnowflakeId, SystemClock, WorkerId};

fn snowflake(c: &mut Criterion) {
    let Ok(worker) = WorkerId::new(1) else {
        return;
    };
    let generator = Generator::new(worker, Arc::new(SystemClock), Duration::from_millis(10));
    let mut group = c.benchmark_group("snowflake");
    group.throughput(Throughput::Elements(1));
    // Sustained generation hits the 4096-per-ms cap, so this measures the
    // layout's ceiling plus how tightly exhaustion waits for the next ms.
    group.bench_function("next_id", |b| b.iter(|| black_box(generator.next_id())));
    group.finish();
}

fn codec(c: &mut Criterion) {
    let codec = CodeCodec::new(b"bench secret");
    let Some(id) = SnowflakeId::from_u64(0x0123_4567_89AB_CDEF) else {
        return;
    };
    let code = codec.encode(id);
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| b.iter(|| codec.encode(black_box(id))));
    group.bench_function("decode", |b| {
        b.iter(|| codec.decode(black_box(code.as_str())))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = snowflake, codec
}
criterion_main!(benches);
