//! seawall-recover beside its peers, in one run, each case doing the same
//! work on both sides:
//!
//! - `catch_panic`: one HTTP request through tower-http's and seawall's
//!   `CatchPanicLayer` (a panic would answer `500` in both), and bare;
//! - `retry`: one request that succeeds at once, through tower's `Retry`
//!   and seawall's `RetryLayer` (up to 3 attempts, no budget: neither reads
//!   a clock), and both with a budget (tower's `TpsBudget`, seawall's
//!   `RetryBudget`: both read a clock per request); backon's `retry` beside
//!   seawall's `Retry::run` for the plain API;
//! - `coalesce`: one request with a key no other request has, through
//!   tower-resilience's and seawall's `CoalesceLayer`, and through
//!   `async_singleflight`'s `Group::work` beside seawall's `Coalesce::run`;
//! - `hedge`: one request that answers at once (so no hedge is sent)
//!   through tower's `Hedge` and seawall's `HedgeLayer` with a percentile
//!   delay (both time the request), and seawall's with a fixed delay; on
//!   the service itself, not a clone, as tower's `Hedge` is not `Clone`.
//!
//! Every request is made and its future polled to completion with a no-op
//! waker: the inner services answer at once.
//!
//! `cargo bench -p seawall-benches --bench recover`; results in
//! docs/benchmarks.md.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use seawall::BoxError;
use seawall::recover::tower::{CatchPanicLayer, CoalesceLayer, HedgeLayer, RetryLayer};
use seawall::recover::{Coalesce, Hedge, HedgeDelay, Jitter, Retry, RetryBudget, RetryPolicy};
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service, service_fn};

/// Polls `future` once with a no-op waker; it must be ready.
fn poll_ready_now<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the bench's futures answer at once"),
    }
}

/// One request through a clone of `service`, as a server makes it.
#[inline]
fn one<S, Req>(service: &S, request: Req) -> S::Response
where
    S: Service<Req> + Clone,
    S::Error: std::fmt::Debug,
{
    in_place(&mut service.clone(), request)
}

/// One request through `service` itself (tower's `Hedge` is not `Clone`).
#[inline]
fn in_place<S, Req>(service: &mut S, request: Req) -> S::Response
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    poll_ready_now(service.call(request)).expect("a response")
}

type Body = Full<Bytes>;

fn handler(_: Request<Body>) -> Ready<Result<Response<Body>, Infallible>> {
    ready(Ok(Response::new(Full::new(Bytes::from_static(b"hello\n")))))
}

fn catch_panic(c: &mut Criterion) {
    let mut group = c.benchmark_group("catch_panic");
    let bare = service_fn(handler);
    let tower_http = tower_http::catch_panic::CatchPanicLayer::new().layer(service_fn(handler));
    let seawall = CatchPanicLayer::http().layer(service_fn(handler));
    let request = || Request::new(Full::new(Bytes::new()));
    {
        group.bench_function("bare", |b| b.iter(|| black_box(one(&bare, request()))));
        group.bench_function("tower_http", |b| {
            b.iter(|| black_box(one(&tower_http, request())));
        });
        group.bench_function("seawall", |b| {
            b.iter(|| black_box(one(&seawall, request())));
        });
    }
    group.finish();
}

/// An inner service that answers at once: the retry layers' success path.
fn echo(n: u64) -> Ready<Result<u64, BoxError>> {
    ready(Ok(n))
}

/// tower's retry policy matched to seawall's: up to 3 attempts, every
/// error retried, optionally under a budget (deposit per request, as
/// seawall's; a withdrawal per retry).
#[derive(Clone)]
struct TowerPolicy {
    attempts_left: usize,
    budget: Option<Arc<TpsBudget>>,
}

impl tower::retry::Policy<u64, u64, BoxError> for TowerPolicy {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, BoxError>) -> Option<Ready<()>> {
        if result.is_ok() || self.attempts_left == 0 {
            return None;
        }
        if let Some(budget) = &self.budget
            && !budget.withdraw()
        {
            return None;
        }
        self.attempts_left -= 1;
        Some(ready(()))
    }

    fn clone_request(&mut self, request: &u64) -> Option<u64> {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        Some(*request)
    }
}

fn seawall_policy(budget: bool) -> RetryPolicy {
    let builder = RetryPolicy::builder().max_attempts(3).backoff(
        Duration::from_millis(10),
        Duration::from_secs(1),
        Jitter::Full,
    );
    let builder = if budget {
        builder.budget(RetryBudget::new(0.2, 10, Duration::from_secs(10)).expect("valid"))
    } else {
        builder
    };
    builder.build().expect("valid")
}

fn retry(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry");
    let tower_budget = || Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2));
    let tower_retry = |budget| {
        tower::retry::RetryLayer::new(TowerPolicy {
            attempts_left: 2,
            budget,
        })
        .layer(service_fn(echo))
    };
    let tower_plain = tower_retry(None);
    let tower_budgeted = tower_retry(Some(tower_budget()));
    let seawall_plain =
        RetryLayer::new(Retry::new(seawall_policy(false)).leak()).layer(service_fn(echo));
    let seawall_counted =
        RetryLayer::new(Retry::new(seawall_policy(false))).layer(service_fn(echo));
    let seawall_budgeted =
        RetryLayer::new(Retry::new(seawall_policy(true)).leak()).layer(service_fn(echo));
    let seawall_run = Retry::new(seawall_policy(false));
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_secs(1))
        .with_max_times(2)
        .with_jitter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _guard = runtime.enter();
    let n = Cell::new(0_u64);
    let next = || {
        n.set(n.get() + 1);
        n.get()
    };
    {
        group.bench_function("layer/bare", |b| {
            b.iter(|| black_box(one(&service_fn(echo), next())));
        });
        group.bench_function("layer/tower", |b| {
            b.iter(|| black_box(one(&tower_plain, next())));
        });
        group.bench_function("layer/seawall", |b| {
            b.iter(|| black_box(one(&seawall_plain, next())));
        });
        group.bench_function("layer/seawall_counted", |b| {
            b.iter(|| black_box(one(&seawall_counted, next())));
        });
        group.bench_function("budget/tower", |b| {
            b.iter(|| black_box(one(&tower_budgeted, next())));
        });
        group.bench_function("budget/seawall", |b| {
            b.iter(|| black_box(one(&seawall_budgeted, next())));
        });
        group.bench_function("plain/backon", |b| {
            b.iter(|| {
                use backon::Retryable;
                let request = next();
                black_box(poll_ready_now((|| echo(request)).retry(backoff)))
            });
        });
        group.bench_function("plain/seawall", |b| {
            b.iter(|| {
                let request = next();
                black_box(poll_ready_now(seawall_run.run(|| echo(request))))
            });
        });
    }
    group.finish();
}

fn answer(n: u64) -> Ready<Result<u64, Infallible>> {
    ready(Ok(n))
}

fn coalesce(c: &mut Criterion) {
    let mut group = c.benchmark_group("coalesce");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _guard = runtime.enter();
    let tower_resilience =
        tower_resilience_coalesce::CoalesceLayer::new(|n: &u64| *n).layer(service_fn(answer));
    let seawall_layer = CoalesceLayer::new(|n: &u64| Some(*n)).layer(service_fn(answer));
    let singleflight: async_singleflight::Group<u64, u64, Infallible> =
        async_singleflight::Group::new();
    let seawall_group: Coalesce<u64, Result<u64, Infallible>> = Coalesce::new();
    let n = Cell::new(0_u64);
    let next = || {
        n.set(n.get() + 1);
        n.get()
    };
    {
        group.bench_function("layer/bare", |b| {
            b.iter(|| black_box(one(&service_fn(answer), next())));
        });
        group.bench_function("layer/tower_resilience", |b| {
            b.iter(|| black_box(one(&tower_resilience, next())));
        });
        group.bench_function("layer/seawall", |b| {
            b.iter(|| black_box(one(&seawall_layer, next())));
        });
        group.bench_function("plain/async_singleflight", |b| {
            b.iter(|| {
                let key = next();
                black_box(poll_ready_now(singleflight.work(&key, answer(key))))
            });
        });
        group.bench_function("plain/seawall", |b| {
            b.iter(|| {
                let key = next();
                black_box(poll_ready_now(seawall_group.run(key, || answer(key))))
            });
        });
    }
    group.finish();
}

/// tower's hedge policy: every request may be hedged.
#[derive(Clone)]
struct HedgeAll;

impl tower::hedge::Policy<u64> for HedgeAll {
    fn clone_request(&self, request: &u64) -> Option<u64> {
        Some(*request)
    }

    fn can_retry(&self, _: &u64) -> bool {
        true
    }
}

fn hedge(c: &mut Criterion) {
    let mut group = c.benchmark_group("hedge");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _guard = runtime.enter();
    let period = Duration::from_secs(10);
    let mut tower_hedge =
        tower::hedge::Hedge::new::<u64>(service_fn(echo), HedgeAll, 100, 0.95, period);
    let percentile = Hedge::builder()
        .delay(HedgeDelay::Percentile {
            percentile: 0.95,
            min_samples: 100,
            window: period,
        })
        .build()
        .expect("valid");
    let mut seawall_percentile = HedgeLayer::new(percentile).layer(service_fn(echo));
    let fixed = Hedge::builder()
        .delay(HedgeDelay::Fixed(Duration::from_millis(50)))
        .build()
        .expect("valid");
    let mut seawall_fixed = HedgeLayer::new(fixed).layer(service_fn(echo));
    let n = Cell::new(0_u64);
    let next = || {
        n.set(n.get() + 1);
        n.get()
    };
    {
        group.bench_function("tower_percentile", |b| {
            b.iter(|| black_box(in_place(&mut tower_hedge, next())));
        });
        group.bench_function("seawall_percentile", |b| {
            b.iter(|| black_box(in_place(&mut seawall_percentile, next())));
        });
        group.bench_function("seawall_fixed", |b| {
            b.iter(|| black_box(in_place(&mut seawall_fixed, next())));
        });
    }
    group.finish();
}

criterion_group!(benches, catch_panic, retry, coalesce, hedge);
criterion_main!(benches);
