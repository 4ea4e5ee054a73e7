//! seawall-ratelimit beside governor and `tower::limit::RateLimit`, in one
//! run:
//!
//! - `direct`: one limiter, the admit path, on 1 and 2 threads;
//! - `deny`: one exhausted limiter, the refusal path;
//! - `fake_clock`: both again with a clock that is one atomic load for
//!   both crates, to compare the algorithms without the clock read;
//! - `keyed`: 10,000 keys cycled, on 1 and 2 threads (governor also on
//!   seawall's hasher);
//! - `layer`: a bare `service_fn`, and the same behind seawall's
//!   `RateLimitLayer` (on `MonotonicClock` and on `CoarseClock`) and tower's
//!   `RateLimitLayer`.
//!
//! `cargo bench -p seawall-benches --bench ratelimit`; results in
//! docs/benchmarks.md.

mod common;

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use common::on_threads;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use seawall::ratelimit::tower::RateLimitLayer;
use seawall::ratelimit::{KeyedRateLimiter, Quota, RateLimiter};
use seawall::{CoarseClock, ManualClock};
use tower::{Layer, Service, ServiceExt, service_fn};

/// One token per nanosecond with a burst of a second's worth: every check in
/// a tight loop is admitted, for both crates, even across a descheduling.
const ADMIT_RATE: u32 = 1_000_000_000;
const KEYS: u64 = 10_000;

fn seawall_admit_quota() -> Quota {
    Quota::per_second(ADMIT_RATE)
        .burst(ADMIT_RATE)
        .build()
        .expect("valid")
}

fn governor_admit_quota() -> governor::Quota {
    governor::Quota::per_second(NonZeroU32::new(ADMIT_RATE).expect("non-zero"))
        .allow_burst(NonZeroU32::new(ADMIT_RATE).expect("non-zero"))
}

fn direct(c: &mut Criterion) {
    let mut group = c.benchmark_group("direct");
    for threads in [1, 2] {
        let ours = RateLimiter::new(seawall_admit_quota());
        group.bench_function(BenchmarkId::new("seawall", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |_| {
                    black_box(ours.check()).expect("admitted");
                })
            });
        });
        let theirs = governor::RateLimiter::direct(governor_admit_quota());
        group.bench_function(BenchmarkId::new("governor", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |_| {
                    black_box(theirs.check()).expect("admitted");
                })
            });
        });
    }
    group.finish();
}

fn deny(c: &mut Criterion) {
    let mut group = c.benchmark_group("deny");
    let ours = RateLimiter::new(Quota::per_hour(1).build().expect("valid"));
    let _ = ours.check();
    group.bench_function("seawall", |b| {
        b.iter(|| black_box(ours.check()).expect_err("refused"));
    });
    let theirs = governor::RateLimiter::direct(governor::Quota::per_hour(
        NonZeroU32::new(1).expect("non-zero"),
    ));
    let _ = theirs.check();
    group.bench_function("governor", |b| {
        b.iter(|| black_box(theirs.check()).expect_err("refused"));
    });
    group.finish();
}

/// The admit and deny paths with a clock that is one atomic load for both
/// crates (seawall's `ManualClock`, governor's `FakeRelativeClock`): the
/// algorithms side by side, without the clock read that dominates the
/// cases above.
fn without_clock(c: &mut Criterion) {
    let mut group = c.benchmark_group("fake_clock");
    let ours = RateLimiter::builder(seawall_admit_quota())
        .clock(ManualClock::new())
        .build();
    group.bench_function("direct/seawall", |b| {
        b.iter(|| black_box(ours.check()).expect("admitted"));
    });
    let theirs = governor::RateLimiter::direct_with_clock(
        governor_admit_quota(),
        governor::clock::FakeRelativeClock::default(),
    );
    group.bench_function("direct/governor", |b| {
        b.iter(|| black_box(theirs.check()).expect("admitted"));
    });
    let ours = RateLimiter::builder(Quota::per_hour(1).build().expect("valid"))
        .clock(ManualClock::new())
        .build();
    let _ = ours.check();
    group.bench_function("deny/seawall", |b| {
        b.iter(|| black_box(ours.check()).expect_err("refused"));
    });
    let theirs = governor::RateLimiter::direct_with_clock(
        governor::Quota::per_hour(NonZeroU32::new(1).expect("non-zero")),
        governor::clock::FakeRelativeClock::default(),
    );
    let _ = theirs.check();
    group.bench_function("deny/governor", |b| {
        b.iter(|| black_box(theirs.check()).expect_err("refused"));
    });
    group.finish();
}

fn keyed(c: &mut Criterion) {
    let mut group = c.benchmark_group("keyed_10k");
    for threads in [1, 2] {
        let ours = KeyedRateLimiter::<u64>::builder(seawall_admit_quota())
            .max_keys(20_000)
            .build()
            .expect("valid");
        for key in 0..KEYS {
            ours.check(&key).expect("admitted");
        }
        group.bench_function(BenchmarkId::new("seawall", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |i| {
                    black_box(ours.check(&(i % KEYS))).expect("admitted");
                })
            });
        });
        let theirs = governor::RateLimiter::keyed(governor_admit_quota());
        for key in 0..KEYS {
            theirs.check_key(&key).expect("admitted");
        }
        group.bench_function(BenchmarkId::new("governor", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |i| {
                    black_box(theirs.check_key(&(i % KEYS))).expect("admitted");
                })
            });
        });
        // governor with seawall's hasher (foldhash), so the comparison is of
        // the tables and the algorithm, not of the hash function.
        let same_hasher = governor::RateLimiter::dashmap_with_hasher(
            governor_admit_quota(),
            foldhash::fast::RandomState::default(),
        );
        for key in 0..KEYS {
            same_hasher.check_key(&key).expect("admitted");
        }
        group.bench_function(BenchmarkId::new("governor foldhash", threads), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |i| {
                    black_box(same_hasher.check_key(&(i % KEYS))).expect("admitted");
                })
            });
        });
    }
    group.finish();
}

/// One request through a service: ready, call, and the response, all
/// polled once (nothing here ever waits).
fn one_request<S: Service<u64>>(svc: &mut S, n: u64) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    let ready = svc
        .ready()
        .now_or_never()
        .expect("ready")
        .expect("no error");
    ready
        .call(n)
        .now_or_never()
        .expect("done")
        .expect("admitted")
}

fn layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _in_runtime = runtime.enter(); // tower's RateLimit keeps a tokio timer
    let echo = || service_fn(|n: u64| async move { Ok::<_, std::convert::Infallible>(n) });
    let mut group = c.benchmark_group("layer");

    let mut bare = echo();
    group.bench_function("bare service_fn", |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            black_box(one_request(&mut bare, n))
        });
    });

    let mut ours = RateLimitLayer::new(RateLimiter::new(seawall_admit_quota())).layer(echo());
    group.bench_function("seawall RateLimitLayer", |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            black_box(one_request(&mut ours, n))
        });
    });

    // The same layer on a limiter that reads the coarse clock (one load
    // instead of the TSC), as an HTTP limit whose burst spans milliseconds
    // can.
    let coarse = RateLimiter::builder(seawall_admit_quota())
        .clock(CoarseClock::new())
        .build();
    let mut ours_coarse = RateLimitLayer::new(coarse).layer(echo());
    group.bench_function("seawall RateLimitLayer, CoarseClock", |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            black_box(one_request(&mut ours_coarse, n))
        });
    });

    let mut tower_limited =
        tower::limit::RateLimitLayer::new(u64::MAX, Duration::from_secs(1)).layer(echo());
    group.bench_function("tower RateLimitLayer", |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            black_box(one_request(&mut tower_limited, n))
        });
    });
    group.finish();
}

criterion_group!(benches, direct, deny, without_clock, keyed, layer);
criterion_main!(benches);
