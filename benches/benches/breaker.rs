//! seawall-breaker beside failsafe, in one run:
//!
//! - `closed`: the overhead of one call through a closed breaker (let
//!   through, then recorded a success), on 1 and 2 threads sharing it;
//! - `open`: the refusal of a call by an open breaker;
//! - `layer`: one request through seawall's and tower-resilience's
//!   `CircuitBreakerLayer` over a bare `service_fn`, closed and open.
//!
//! `cargo bench -p seawall-benches --bench breaker`; results in
//! docs/benchmarks.md.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::on_threads;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use futures::FutureExt;
use seawall::breaker::{BreakerConfig, CircuitBreaker};
use tower::{Layer, Service, ServiceExt, service_fn};

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

/// A service that fails when asked, so the breakers can be opened.
async fn upstream(fail: bool) -> Result<u64, std::io::Error> {
    if fail {
        Err(std::io::Error::other("down"))
    } else {
        Ok(1)
    }
}

/// One request: ready, call, response, all polled once (nothing waits).
fn one_request<S: Service<bool>>(svc: &mut S, fail: bool) -> Result<S::Response, S::Error> {
    let Ok(ready) = svc.ready().now_or_never().expect("ready") else {
        unreachable!("the services here are always ready")
    };
    ready.call(fail).now_or_never().expect("done")
}

fn layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _in_runtime = runtime.enter();
    let mut group = c.benchmark_group("breaker_layer");

    let mut bare = service_fn(upstream);
    group.bench_function("closed/bare service_fn", |b| {
        b.iter(|| black_box(one_request(&mut bare, false)).expect("ok"));
    });

    let ours_config = || {
        BreakerConfig::builder()
            .count_window(1)
            .minimum_calls(1)
            .wait_in_open(HOUR)
            .build()
            .expect("valid")
    };
    let theirs_layer = || {
        tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
            .sliding_window_size(1)
            .minimum_number_of_calls(1)
            .wait_duration_in_open(HOUR)
            .build()
            .expect("valid")
    };

    let mut ours =
        seawall::breaker::tower::CircuitBreakerLayer::new(CircuitBreaker::new(ours_config()))
            .layer(service_fn(upstream));
    group.bench_function("closed/seawall", |b| {
        b.iter(|| black_box(one_request(&mut ours, false)).expect("ok"));
    });
    let mut theirs = theirs_layer().layer(service_fn(upstream));
    group.bench_function("closed/tower-resilience", |b| {
        b.iter(|| black_box(one_request(&mut theirs, false)).expect("ok"));
    });

    // Open both with one failure, then measure the refusal.
    let _ = one_request(&mut ours, true);
    group.bench_function("open/seawall", |b| {
        b.iter(|| black_box(one_request(&mut ours, false)).expect_err("open"));
    });
    // A fresh tower-resilience layer: its count window (0.14) is cumulative,
    // so after the closed bench's millions of successes one failure is far
    // below the threshold and would never open it.
    drop(theirs);
    let mut theirs = theirs_layer().layer(service_fn(upstream));
    let _ = one_request(&mut theirs, true);
    group.bench_function("open/tower-resilience", |b| {
        b.iter(|| black_box(one_request(&mut theirs, false)).expect_err("open"));
    });
    group.finish();
}

criterion_group!(benches, closed, open, layer);
criterion_main!(benches);
