//! seawall-discovery beside its peers, in one run:
//!
//! - `p2c`: one request (ready, call, response) through seawall's
//!   `Balance::p2c` and tower's `p2c::Balance` (with `PendingRequests`
//!   load: both compare requests in flight), over 10 and 1,000 instances
//!   whose services answer at once; seawall's with outlier detection on
//!   (each response classified and counted); and both with peak-EWMA load
//!   (`Balance::p2c_peak_ewma`, tower's `PeakEwmaDiscover`: each reads
//!   the clock at the call and at the response);
//! - `weighted`: the same through seawall's `Balance::weighted`, beside
//!   pingora-load-balancing's weighted round robin (`LoadBalancer<RoundRobin>`)
//!   in the least service that picks and calls, and its bare `select`;
//!   weights 1 to 10;
//! - `hash`: one request through seawall's `Balance::consistent_hash`,
//!   beside pingora-ketama's `Continuum` and pingora-load-balancing's
//!   `LoadBalancer<Consistent>`, each in the least service that picks and
//!   calls (no readiness tracking), and each's bare lookup (`node`,
//!   `select`), all keyed by the request's 8 bytes;
//! - `watch`: an instance joining and then leaving a 10,000-instance
//!   service in a `MemoryRegistry`, each change seen by 100 watchers (each
//!   computing its changes).
//!
//! `cargo bench -p seawall-benches --bench discovery`; results in
//! docs/benchmarks.md.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pingora_load_balancing::discovery::Static;
use pingora_load_balancing::selection::{BackendIter, BackendSelection, Consistent, RoundRobin};
use pingora_load_balancing::{Backend, Backends, LoadBalancer};
use seawall::discovery::balance::{Balance, OutlierDetection};
use seawall::discovery::{Discovery, Instance, MemoryRegistry, Registry, StaticRegistry};
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover, PendingRequestsDiscover};
use tower::{Service, service_fn};

/// Polls `future` once with a no-op waker; it must be ready.
fn now<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the bench's futures answer at once"),
    }
}

/// One request: ready, call, response.
#[inline]
fn one<S: Service<u64>>(service: &mut S, request: u64) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(ready) => ready.expect("ready"),
        Poll::Pending => panic!("the bench's services are ready at once"),
    }
    now(service.call(request)).expect("an answer")
}

type Echo = tower::util::ServiceFn<fn(u64) -> Ready<Result<u64, Infallible>>>;

fn echo() -> Echo {
    service_fn(|n| ready(Ok(n)))
}

fn address(i: usize) -> SocketAddr {
    let [_, a, b, c] = u32::try_from(i).expect("few instances").to_be_bytes();
    SocketAddr::from(([10, a, b, c], 8080))
}

/// The `i` of `address(i)`: which service a pingora node is.
fn index(address: SocketAddr) -> usize {
    match address {
        SocketAddr::V4(v4) => {
            let [_, a, b, c] = v4.ip().octets();
            usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c)
        }
        SocketAddr::V6(_) => unreachable!("the bench's addresses are IPv4"),
    }
}

/// `n` instances. Benches keep it while they run, so that they measure a
/// watch whose source is live, as in a service.
fn registry(n: usize) -> StaticRegistry {
    StaticRegistry::new((0..n).map(|i| Instance::new("api", format!("api-{i}"), address(i))))
        .expect("a valid list")
}

fn p2c(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("p2c");
    for n in [10, 1_000] {
        let source = registry(n);
        let watch = runtime.block_on(source.watch("api")).expect("watch");
        let mut ours = Balance::p2c(watch, |_: &Instance| echo());
        group.bench_function(BenchmarkId::new("seawall", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(one(&mut ours, i))
            });
        });
        let source = registry(n);
        let watch = runtime.block_on(source.watch("api")).expect("watch");
        let mut judged = Balance::p2c(watch, |_: &Instance| echo())
            .outlier_detection(OutlierDetection::default());
        group.bench_function(BenchmarkId::new("seawall outliers", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(one(&mut judged, i))
            });
        });
        let list = ServiceList::new::<u64>((0..n).map(|_| echo()).collect::<Vec<_>>());
        let discover = PendingRequestsDiscover::new(list, CompleteOnResponse::default());
        let mut tower_p2c = tower::balance::p2c::Balance::new(discover);
        group.bench_function(BenchmarkId::new("tower", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(one(&mut tower_p2c, i))
            });
        });
        let (rtt, decay) = (Duration::from_millis(10), Duration::from_secs(10));
        let source = registry(n);
        let watch = runtime.block_on(source.watch("api")).expect("watch");
        let mut ewma = Balance::p2c_peak_ewma(watch, rtt, decay, |_: &Instance| echo())
            .expect("valid settings");
        group.bench_function(BenchmarkId::new("seawall peak-ewma", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(one(&mut ewma, i))
            });
        });
        let list = ServiceList::new::<u64>((0..n).map(|_| echo()).collect::<Vec<_>>());
        let discover = PeakEwmaDiscover::new(list, rtt, decay, CompleteOnResponse::default());
        let mut tower_ewma = tower::balance::p2c::Balance::new(discover);
        group.bench_function(BenchmarkId::new("tower peak-ewma", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(one(&mut tower_ewma, i))
            });
        });
    }
    group.finish();
}

fn weighted(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("weighted");
    for n in [10, 1_000] {
        let weight = |i: usize| i % 10 + 1;
        let list = (0..n).map(|i| {
            let weight = u32::try_from(weight(i)).expect("small");
            Instance::new("api", format!("api-{i}"), address(i)).weight(weight)
        });
        let registry = StaticRegistry::new(list).expect("a valid list");
        let watch = runtime.block_on(registry.watch("api")).expect("watch");
        let mut ours = Balance::weighted(watch, |_: &Instance| echo());
        group.bench_function(BenchmarkId::new("seawall", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(one(&mut ours, i))
            });
        });
        let lb = pingora_lb::<RoundRobin>(n, weight);
        group.bench_function(BenchmarkId::new("pingora-lb select", n), |b| {
            b.iter(|| black_box(lb.select(b"", 256)));
        });
        let mut theirs = PickAndCall::new(n, select(lb));
        group.bench_function(BenchmarkId::new("pingora-lb service", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(one(&mut theirs, i))
            });
        });
    }
    group.finish();
}

/// A pingora-load-balancing balancer over `address(0..n)`, weighted by
/// `weight`.
fn pingora_lb<S>(n: usize, weight: impl Fn(usize) -> usize) -> LoadBalancer<S>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let backends: BTreeSet<Backend> = (0..n)
        .map(|i| Backend::new_with_weight(&address(i).to_string(), weight(i)).expect("an address"))
        .collect();
    let lb = LoadBalancer::from_backends(Backends::new(Static::new(backends)));
    now(lb.update()).expect("a static list");
    lb
}

fn hash(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("hash");
    for n in [10, 1_000] {
        let source = registry(n);
        let watch = runtime.block_on(source.watch("api")).expect("watch");
        let mut ours = Balance::consistent_hash(watch, |key: &u64| *key, |_: &Instance| echo());
        group.bench_function(BenchmarkId::new("seawall Balance", n), |b| {
            let mut i: u64 = 0;
            b.iter(|| {
                i = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
                black_box(one(&mut ours, i))
            });
        });
        let buckets: Vec<_> = (0..n)
            .map(|i| pingora_ketama::Bucket::new(address(i), 1))
            .collect();
        let ring = pingora_ketama::Continuum::new(&buckets);
        group.bench_function(BenchmarkId::new("pingora-ketama node", n), |b| {
            let mut i: u64 = 0;
            b.iter(|| {
                i = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
                black_box(ring.node(&i.to_le_bytes()))
            });
        });
        let mut theirs = PickAndCall::new(n, move |key: &[u8]| ring.node(key).expect("a node"));
        group.bench_function(BenchmarkId::new("pingora-ketama service", n), |b| {
            let mut i: u64 = 0;
            b.iter(|| {
                i = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
                black_box(one(&mut theirs, i))
            });
        });
        let lb = pingora_lb::<Consistent>(n, |_| 1);
        group.bench_function(BenchmarkId::new("pingora-lb select", n), |b| {
            let mut i: u64 = 0;
            b.iter(|| {
                i = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
                black_box(lb.select(&i.to_le_bytes(), 256))
            });
        });
        let mut theirs = PickAndCall::new(n, select(lb));
        group.bench_function(BenchmarkId::new("pingora-lb service", n), |b| {
            let mut i: u64 = 0;
            b.iter(|| {
                i = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
                black_box(one(&mut theirs, i))
            });
        });
    }
    group.finish();
}

/// A pingora balancer in the least a balancer needs: `pick` an instance
/// by the request's bytes, call its service (always ready).
struct PickAndCall<P> {
    pick: P,
    services: Vec<Echo>,
}

impl<P: FnMut(&[u8]) -> SocketAddr> PickAndCall<P> {
    fn new(n: usize, pick: P) -> Self {
        let services = (0..n).map(|_| echo()).collect();
        Self { pick, services }
    }
}

impl<P: FnMut(&[u8]) -> SocketAddr> Service<u64> for PickAndCall<P> {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u64) -> Self::Future {
        let address = (self.pick)(&request.to_le_bytes());
        self.services[index(address)].call(request)
    }
}

/// pingora-load-balancing's pick: `select` (at most 256 tries).
fn select<S>(lb: LoadBalancer<S>) -> impl FnMut(&[u8]) -> SocketAddr
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    move |key| {
        let backend = lb.select(key, 256).expect("a backend");
        *backend.addr.as_inet().expect("an IP address")
    }
}

fn watch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let registry = MemoryRegistry::new();
    let ttl = Duration::from_secs(60);
    let _kept: Vec<_> = (0..10_000)
        .map(|i| {
            let instance = Instance::new("api", format!("api-{i}"), address(i));
            runtime
                .block_on(registry.register(instance, ttl))
                .expect("registered")
        })
        .collect();
    let mut watchers: Vec<_> = (0..100)
        .map(|_| runtime.block_on(registry.watch("api")).expect("watch"))
        .collect();
    for watcher in &mut watchers {
        runtime
            .block_on(watcher.next_changes())
            .expect("the first set");
    }
    let mut group = c.benchmark_group("watch");
    group.sample_size(20);
    group.bench_function("10000 instances, 100 watchers, one joins and leaves", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let extra = Instance::new("api", "extra", address(10_000));
                let joined = registry.register(extra, ttl).await.expect("registered");
                for watcher in &mut watchers {
                    assert_eq!(watcher.next_changes().await.expect("a change").len(), 1);
                }
                joined.deregister().await.expect("deregistered");
                for watcher in &mut watchers {
                    assert_eq!(watcher.next_changes().await.expect("a change").len(), 1);
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, p2c, weighted, hash, watch);
criterion_main!(benches);
