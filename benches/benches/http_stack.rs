//! What a whole middleware stack costs one HTTP request, in process (no
//! sockets, no hyper): the request goes through a clone of the stack, as
//! hyper's `&self` services make per request, `ready`, `call`, and the
//! response future, on 1 thread and on 2 threads sharing the stack.
//!
//! - `bare`: the handler alone;
//! - `tower`: tower-http's catch-panic, tower's concurrency limit and
//!   timeout;
//! - `seawall`: seawall's catch-panic, a keyed limit by peer IP, bulkhead, breaker and
//!   timeout, answering refusals as HTTP (the stack of
//!   `scripts/bench-http`), on the default clock and on the coarse one, and
//!   on handles leaked at startup (`seawall_leaked*`);
//! - `seawall_*`: one seawall layer alone.
//!
//! `cargo bench -p seawall-benches --bench http_stack`; results in
//! docs/benchmarks.md.
//!
//! Wall time on a shared 2-core VM moves by a fifth between runs, so the
//! bench also counts instructions, which do not: run the bench binary as
//! `<binary> --count <stack> <requests>` under
//! `valgrind --tool=callgrind` and compare totals (see docs/benchmarks.md).

mod common;

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use common::on_threads;
use criterion::{BenchmarkId, Criterion, criterion_group};
use http::{Request, Response};
use http_body_util::Full;
use seawall::breaker::tower::{BulkheadLayer, CircuitBreakerLayer, TimeoutLayer};
use seawall::breaker::{BreakerConfig, Bulkhead, CircuitBreaker};
use seawall::ratelimit::http::PeerIp;
use seawall::ratelimit::tower::KeyedRateLimitLayer;
use seawall::ratelimit::{KeyedRateLimiter, Quota};
use seawall::recover::tower::CatchPanicLayer as SeawallCatchPanicLayer;
use seawall::{Clock, CoarseClock, MonotonicClock};
use tower::{Layer, Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;

type Body = Full<Bytes>;

fn handler(_: Request<Body>) -> Ready<Result<Response<Body>, Infallible>> {
    ready(Ok(Response::new(Full::new(Bytes::from_static(b"hello\n")))))
}

/// What a stack must be to be benched: an HTTP service that hyper (or
/// axum) clones per request. Each stack keeps its own type, so nothing is
/// boxed that a server would not box.
trait Stack: Service<Request<Body>, Future: Send> + Clone + Send + Sync + 'static {}

impl<S> Stack for S where S: Service<Request<Body>, Future: Send> + Clone + Send + Sync + 'static {}

/// Something done with each stack: benched, or counted.
trait Visit {
    fn visit<S: Stack>(&mut self, name: &'static str, stack: S);
}

/// seawall's full stack; with `leak`, on handles leaked at startup.
fn seawall<C: Clock + Clone>(clock: C, leak: bool) -> impl Stack {
    let unlimited = Quota::per_second(1_000_000_000).build().expect("valid");
    let mut limiter = KeyedRateLimiter::builder(unlimited)
        .clock(clock.clone())
        .build()
        .expect("valid");
    let mut breaker = CircuitBreaker::builder(BreakerConfig::builder().build().expect("valid"))
        .clock(clock)
        .build();
    let mut bulkhead = Bulkhead::builder()
        .max_concurrent(10_000)
        .build()
        .expect("valid");
    if leak {
        (limiter, breaker, bulkhead) = (limiter.leak(), breaker.leak(), bulkhead.leak());
    }
    ServiceBuilder::new()
        .layer(SeawallCatchPanicLayer::http())
        .layer(KeyedRateLimitLayer::http(limiter, PeerIp::new()))
        .layer(BulkheadLayer::http(bulkhead))
        .layer(CircuitBreakerLayer::http(breaker))
        .layer(TimeoutLayer::http(Duration::from_secs(5)))
        .service_fn(handler)
}

fn each_stack(visit: &mut impl Visit) {
    let unlimited = || Quota::per_second(1_000_000_000).build().expect("valid");
    visit.visit("bare", tower::service_fn(handler));
    visit.visit(
        "tower",
        ServiceBuilder::new()
            .layer(CatchPanicLayer::new())
            .layer(tower::limit::ConcurrencyLimitLayer::new(10_000))
            .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(5)))
            .service_fn(handler),
    );
    visit.visit("seawall", seawall(MonotonicClock::new(), false));
    visit.visit("seawall_coarse_clock", seawall(CoarseClock::new(), false));
    visit.visit("seawall_leaked", seawall(MonotonicClock::new(), true));
    visit.visit("seawall_leaked_coarse", seawall(CoarseClock::new(), true));
    visit.visit(
        "seawall_keyed_limit",
        KeyedRateLimitLayer::http(KeyedRateLimiter::new(unlimited()), PeerIp::new())
            .layer(tower::service_fn(handler)),
    );
    visit.visit(
        "seawall_bulkhead",
        BulkheadLayer::http(
            Bulkhead::builder()
                .max_concurrent(10_000)
                .build()
                .expect("valid"),
        )
        .layer(tower::service_fn(handler)),
    );
    visit.visit(
        "seawall_breaker",
        CircuitBreakerLayer::http(CircuitBreaker::new(
            BreakerConfig::builder().build().expect("valid"),
        ))
        .layer(tower::service_fn(handler)),
    );
    visit.visit(
        "seawall_timeout",
        TimeoutLayer::http(Duration::from_secs(5)).layer(tower::service_fn(handler)),
    );
    visit.visit(
        "seawall_catch_panic",
        SeawallCatchPanicLayer::http().layer(tower::service_fn(handler)),
    );
    visit.visit(
        "tower_http_catch_panic",
        ServiceBuilder::new()
            .layer(CatchPanicLayer::new())
            .service_fn(handler),
    );
}

/// One request, as a hyper server makes it: a clone of the stack, the
/// peer's address in the extensions, ready, call, the response. Never
/// inlined, so that callgrind can count what it runs alone.
#[inline(never)]
fn one<S: Stack>(stack: &S, peer: SocketAddr) {
    let mut request = Request::new(Full::new(Bytes::new()));
    request.extensions_mut().insert(peer);
    let mut cx = Context::from_waker(Waker::noop());
    let mut svc = stack.clone();
    let ready = svc.poll_ready(&mut cx);
    assert!(matches!(ready, Poll::Ready(Ok(()))));
    let response = pin!(svc.call(request)).poll(&mut cx);
    assert!(matches!(response, Poll::Ready(Ok(_))));
}

struct Bench<'a, 'c> {
    group: &'a mut criterion::BenchmarkGroup<'c, criterion::measurement::WallTime>,
    runtime: &'a tokio::runtime::Runtime,
    threads: u64,
}

impl Visit for Bench<'_, '_> {
    fn visit<S: Stack>(&mut self, name: &'static str, stack: S) {
        let (runtime, threads) = (self.runtime, self.threads);
        self.group
            .bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|iters| {
                    on_threads(threads, iters, |t| {
                        // Timers need the runtime's context.
                        let _context = runtime.enter();
                        let port = if t % 2 == 0 { 40_000 } else { 40_001 };
                        one(&stack, SocketAddr::from(([192, 0, 2, 1], port)));
                    })
                });
            });
    }
}

fn http_stack(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("http_stack");
    for threads in [1, 2] {
        each_stack(&mut Bench {
            group: &mut group,
            runtime: &runtime,
            threads,
        });
    }
    group.finish();
}

/// Sends `requests` requests through the stack named `name`, on this
/// thread.
struct Count {
    name: String,
    requests: u64,
}

impl Visit for Count {
    fn visit<S: Stack>(&mut self, name: &'static str, stack: S) {
        if name == self.name {
            let peer = SocketAddr::from(([192, 0, 2, 1], 40_000));
            for _ in 0..self.requests {
                one(&stack, peer);
            }
        }
    }
}

criterion_group!(benches, http_stack);

/// `--count <stack> <requests>`: sends that many requests through one stack
/// on this thread and exits, for an instruction count under callgrind;
/// anything else runs criterion.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--count") {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let _context = runtime.enter();
        each_stack(&mut Count {
            name: args.get(at + 1).cloned().unwrap_or_default(),
            requests: args
                .get(at + 2)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1_000),
        });
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
