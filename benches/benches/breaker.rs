//! seawall-breaker beside failsafe, in one run:
//!
//! - `closed`: the overhead of one call through a closed breaker (let
//!   through, then recorded a success), on 1 and 2 threads sharing it;
//! - `open`: the refusal of a call by an open breaker.
//!
//! `cargo bench -p seawall-benches --bench breaker`; results in
//! docs/benchmarks.md.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::on_threads;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use seawall::breaker::{BreakerConfig, CircuitBreaker};

const HOUR: Duration = Duration::from_secs(3_600);

fn closed(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker_closed");
    for threads in [1, 2] {
        let ours = CircuitBreaker::new(BreakerConfig::builder().build().expect("valid"));
        group.bench_function(BenchmarkId::new("seawall", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |_| {
                    black_box(ours.try_acquire().expect("closed")).success();
                })
            });
        });
        let theirs = failsafe::Config::new().build();
        group.bench_function(BenchmarkId::new("failsafe", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |_| {
                    black_box(theirs.call(|| Ok::<(), ()>(()))).expect("closed");
                })
            });
        });
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker_open");
    let config = BreakerConfig::builder()
        .count_window(1)
        .minimum_calls(1)
        .wait_in_open(HOUR)
        .build()
        .expect("valid");
    let ours = CircuitBreaker::new(config);
    ours.try_acquire().expect("closed").failure();
    group.bench_function("seawall", |b| {
        b.iter(|| black_box(ours.try_acquire()).expect_err("open"));
    });
    let theirs = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            1,
            failsafe::backoff::constant(HOUR),
        ))
        .build();
    let _ = theirs.call(|| Err::<(), ()>(()));
    group.bench_function("failsafe", |b| {
        b.iter(|| black_box(theirs.call(|| Ok::<(), ()>(()))).expect_err("open"));
    });
    group.finish();
}

criterion_group!(benches, closed, open);
criterion_main!(benches);
