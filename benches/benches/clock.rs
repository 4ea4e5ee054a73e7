//! What one clock read costs: the candidates for `MonotonicClock`.
//!
//! `cargo bench -p seawall-benches --bench clock`; results in
//! docs/benchmarks.md.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall::{Clock, CoarseClock, ManualClock, MonotonicClock};

fn clock_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock_read");

    let origin = Instant::now();
    group.bench_function("std::time::Instant::now", |b| b.iter(Instant::now));
    group.bench_function("Instant elapsed as u64 nanos", |b| {
        b.iter(|| u64::try_from(black_box(origin).elapsed().as_nanos()).unwrap_or(u64::MAX));
    });

    let quanta = quanta::Clock::new();
    group.bench_function("quanta::Clock::now", |b| b.iter(|| quanta.now()));
    group.bench_function("quanta::Clock::raw", |b| b.iter(|| quanta.raw()));

    let ours = MonotonicClock::new();
    group.bench_function("seawall MonotonicClock", |b| b.iter(|| ours.now_nanos()));

    let coarse = CoarseClock::new();
    group.bench_function("seawall CoarseClock", |b| b.iter(|| coarse.now_nanos()));

    let manual = ManualClock::new();
    group.bench_function("seawall ManualClock", |b| b.iter(|| manual.now_nanos()));

    group.finish();
}

criterion_group!(benches, clock_read);
criterion_main!(benches);
