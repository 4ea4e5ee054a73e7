//! seawall-breaker beside failsafe and tower-resilience, in one run, each
//! pair configured alike:
//!
//! - `breaker_closed`: the overhead of one call through a closed breaker
//!   (let through, then recorded), on 1 and 2 threads sharing it, with
//!   every call a success or every tenth a failure (`mixed`), for three
//!   matched configurations:
//!   - `consecutive`: only a run of 5 failures opens it (failsafe's
//!     `consecutive_failures(5)`, seawall's `consecutive_failures_only(5)`);
//!   - `time window`: failsafe's default (a success rate of 80% over 30 s,
//!     from 5 calls, or 5 failures in a row) beside seawall's 30 s time
//!     window at a 20% failure rate from 5 calls, or 5 in a row; both read
//!     a clock at every call;
//!   - `count window`: seawall's default (the last 100 calls), which
//!     failsafe cannot express;
//! - `breaker_open`: the refusal of a call by an open breaker;
//! - `breaker_layer`: one request through seawall's and tower-resilience's
//!   `CircuitBreakerLayer` (both a count window of 100 calls) over a bare
//!   `service_fn`: closed, closed with every tenth a failure, and open.
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

/// Whether call `i` fails: never, or every tenth.
fn fails(mixed: bool, i: u64) -> bool {
    mixed && i % 10 == 9
}

fn seawall_configs() -> [(&'static str, BreakerConfig); 3] {
    [
        (
            "consecutive",
            BreakerConfig::builder()
                .consecutive_failures_only(5)
                .build()
                .expect("valid"),
        ),
        (
            "time window",
            BreakerConfig::builder()
                .time_window(Duration::from_secs(30))
                .minimum_calls(5)
                .failure_rate_threshold(20.0)
                .consecutive_failures(5)
                .build()
                .expect("valid"),
        ),
        (
            "count window",
            BreakerConfig::builder().build().expect("valid"),
        ),
    ]
}

fn closed(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker_closed");
    for mixed in [false, true] {
        let outcomes = if mixed { "mixed" } else { "successes" };
        for threads in [1, 2] {
            for (name, config) in seawall_configs() {
                let ours = CircuitBreaker::new(config);
                let id = format!("{name}, {outcomes}/seawall");
                group.bench_function(BenchmarkId::new(id, threads), |b| {
                    b.iter_custom(|iters| {
                        on_threads(threads, iters, |i| {
                            let permit = black_box(&ours).try_acquire().expect("closed");
                            if fails(mixed, i) {
                                permit.failure();
                            } else {
                                permit.success();
                            }
                        })
                    });
                });
                let theirs = match name {
                    "consecutive" => failsafe::Config::new()
                        .failure_policy(failsafe::failure_policy::consecutive_failures(
                            5,
                            failsafe::backoff::constant(HOUR),
                        ))
                        .build(),
                    "time window" => {
                        bench_failsafe(
                            &mut group,
                            failsafe::Config::new().build(),
                            name,
                            outcomes,
                            mixed,
                            threads,
                        );
                        continue;
                    }
                    _ => continue,
                };
                bench_failsafe(&mut group, theirs, name, outcomes, mixed, threads);
            }
        }
    }
    group.finish();
}

fn bench_failsafe(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    theirs: impl failsafe::CircuitBreaker + Sync,
    name: &str,
    outcomes: &str,
    mixed: bool,
    threads: u64,
) {
    let id = format!("{name}, {outcomes}/failsafe");
    group.bench_function(BenchmarkId::new(id, threads), |b| {
        b.iter_custom(|iters| {
            on_threads(threads, iters, |i| {
                let result =
                    black_box(&theirs).call(|| if fails(mixed, i) { Err(()) } else { Ok(()) });
                assert!(!matches!(result, Err(failsafe::Error::Rejected)), "closed");
                black_box(result).ok();
            })
        });
    });
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

    // The same rules for both: the last 100 calls, judged from the
    // first, open at 50% failures for an hour.
    let ours_config = || {
        BreakerConfig::builder()
            .count_window(100)
            .minimum_calls(1)
            .failure_rate_threshold(50.0)
            .wait_in_open(HOUR)
            .build()
            .expect("valid")
    };
    let theirs_layer = || {
        tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
            .sliding_window_size(100)
            .minimum_number_of_calls(1)
            .failure_rate_threshold(0.5)
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

    // Every tenth request fails: 10% stays far under 50%.
    let mut ours_mixed =
        seawall::breaker::tower::CircuitBreakerLayer::new(CircuitBreaker::new(ours_config()))
            .layer(service_fn(upstream));
    group.bench_function("closed, mixed/seawall", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let _ = black_box(one_request(&mut ours_mixed, fails(true, i)));
        });
    });
    let mut theirs_mixed = theirs_layer().layer(service_fn(upstream));
    group.bench_function("closed, mixed/tower-resilience", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let _ = black_box(one_request(&mut theirs_mixed, fails(true, i)));
        });
    });

    // Open both with one failure into a window of one call (tower-resilience
    // 0.14 does not open a window of 100 on one failure of one call), then
    // measure the refusal, which does not look at the window.
    let ours_open = BreakerConfig::builder()
        .count_window(1)
        .minimum_calls(1)
        .wait_in_open(HOUR)
        .build()
        .expect("valid");
    let mut ours =
        seawall::breaker::tower::CircuitBreakerLayer::new(CircuitBreaker::new(ours_open))
            .layer(service_fn(upstream));
    let _ = one_request(&mut ours, true);
    group.bench_function("open/seawall", |b| {
        b.iter(|| black_box(one_request(&mut ours, false)).expect_err("open"));
    });
    let mut theirs = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .sliding_window_size(1)
        .minimum_number_of_calls(1)
        .wait_duration_in_open(HOUR)
        .build()
        .expect("valid")
        .layer(service_fn(upstream));
    let _ = one_request(&mut theirs, true);
    group.bench_function("open/tower-resilience", |b| {
        b.iter(|| black_box(one_request(&mut theirs, false)).expect_err("open"));
    });
    group.finish();
}

criterion_group!(benches, closed, open, layer);
criterion_main!(benches);
