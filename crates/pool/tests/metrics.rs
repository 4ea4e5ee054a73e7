//! The `metrics` a pool reports: creations, failed creations, recycles,
//! discards by reason, timeouts, and one wait-time sample per checkout.
#![cfg(feature = "metrics")]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use parking_lot::Mutex;
use seawall_pool::{CheckoutTest, PoolConfig};

/// Counts every counter increment and histogram sample, by name and labels
/// (`name{label=value,...}`).
#[derive(Default, Clone)]
struct Counts(Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>);

struct Samples(Arc<AtomicU64>);

impl HistogramFn for Samples {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counts {
    fn handle(&self, key: &Key) -> Arc<AtomicU64> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.0.lock().entry(name).or_default())
    }

    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .get(name)
            .map_or(0, |n| n.load(Ordering::SeqCst))
    }
}

impl Recorder for Counts {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Samples(self.handle(key))))
    }
}

/// A pool named "orders" of `max_size` fakes on a paused runtime, its
/// metrics handles made under a counting recorder.
fn counted_pool(
    max_size: u32,
) -> (
    Counts,
    tokio::runtime::Runtime,
    seawall_pool::Pool<common::Fake, seawall_core::TokioClock>,
    Arc<common::Peer>,
) {
    let counts = Counts::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let config = PoolConfig::builder()
        .name("orders")
        .max_size(max_size)
        .min_idle(0)
        .acquire_timeout(Duration::from_secs(1))
        .test_on_checkout(CheckoutTest::Never)
        .build()
        .expect("valid");
    // The handles are made when the pool starts, under this recorder.
    let (pool, peer) =
        metrics::with_local_recorder(&counts, || runtime.block_on(common::pool(config)));
    (counts, runtime, pool, peer)
}

#[test]
fn each_event_is_counted_under_the_pools_name() {
    let (counts, runtime, pool, peer) = counted_pool(1);
    runtime.block_on(async {
        drop(pool.get().await.expect("object")); // recycled
        let mut conn = pool.get().await.expect("object");
        conn.broken = true;
        drop(conn); // discarded: broken
        peer.down.store(true, Ordering::SeqCst);
        let held = pool.get().await;
        assert!(held.expect_err("the peer is down").is_timeout());
    });
    let get = |name: &str| counts.get(name);
    assert_eq!(
        get("seawall_pool_creates_total{pool=orders}"),
        1,
        "at start only"
    );
    assert!(get("seawall_pool_create_errors_total{pool=orders}") >= 1);
    assert_eq!(get("seawall_pool_recycles_total{pool=orders}"), 1);
    assert_eq!(
        get("seawall_pool_discards_total{pool=orders,reason=broken}"),
        1
    );
    assert_eq!(get("seawall_pool_timeouts_total{pool=orders}"), 1);
    assert_eq!(
        get("seawall_pool_wait_seconds{pool=orders}"),
        2,
        "one sample per checkout"
    );
}

#[cfg(feature = "tower")]
#[test]
fn a_pool_service_samples_each_wait_too() {
    use seawall_core::TokioClock;
    use seawall_pool::OwnedObject;
    use seawall_pool::tower::PoolService;
    use tower::ServiceExt;

    let (counts, runtime, pool, _peer) = counted_pool(2);
    runtime.block_on(async {
        // Whatever is idle is held, so the first request makes its object
        // and the second finds it idle.
        let held = pool.get().await.expect("object");
        let service = PoolService::new(
            pool.clone(),
            |_: OwnedObject<common::Fake, TokioClock>, n: u32| async move {
                Ok::<_, std::convert::Infallible>(n)
            },
        );
        for n in 0..2 {
            let answer = service.clone().oneshot(n).await;
            assert_eq!(answer.expect("served"), n);
        }
        drop(held);
    });
    assert_eq!(
        counts.get("seawall_pool_creates_total{pool=orders}"),
        2,
        "one object made for the service"
    );
    assert_eq!(
        counts.get("seawall_pool_wait_seconds{pool=orders}"),
        3,
        "one sample per checkout and per request"
    );
}
