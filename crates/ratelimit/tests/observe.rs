//! The metrics a limiter reports, counted by a test recorder.
#![cfg(feature = "metrics")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use seawall_core::ManualClock;
use seawall_ratelimit::{KeyedRateLimiter, Quota, RateLimiter};

#[derive(Default)]
struct Count(AtomicU64);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// Counters by `name{label=value,...}`.
#[derive(Default)]
struct Counting(Mutex<HashMap<String, Arc<Count>>>);

impl Counting {
    fn get(&self, name: &str, limiter: &str) -> u64 {
        let key = format!("{name}{{limiter={limiter}}}");
        self.0
            .lock()
            .expect("no test panicked holding it")
            .get(&key)
            .map_or(0, |count| count.0.load(Ordering::Relaxed))
    }
}

impl Recorder for Counting {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let mut counts = self.0.lock().expect("no test panicked holding it");
        let count = Arc::clone(counts.entry(name).or_default());
        Counter::from_arc(count)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn admissions_refusals_and_early_drops_are_counted() {
    let recorder = Counting::default();
    let quota = Quota::per_second(1).burst(3).build().unwrap();
    let (limiter, keyed) = metrics::with_local_recorder(&recorder, || {
        let limiter = RateLimiter::builder(quota)
            .clock(ManualClock::new())
            .name("api")
            .build();
        let keyed = KeyedRateLimiter::<u32>::builder(quota)
            .max_keys(8)
            .clock(ManualClock::new())
            .name("clients")
            .build()
            .unwrap();
        (limiter, keyed)
    });

    for _ in 0..5 {
        let _ = limiter.check();
    }
    assert_eq!(recorder.get("seawall_ratelimit_admitted_total", "api"), 3);
    assert_eq!(recorder.get("seawall_ratelimit_refused_total", "api"), 2);

    // Eight keys fill the table; a ninth, with no key full, drops one
    // early.
    for key in 0..9 {
        keyed.check(&key).unwrap();
    }
    assert_eq!(
        recorder.get("seawall_ratelimit_admitted_total", "clients"),
        9
    );
    assert_eq!(
        recorder.get("seawall_ratelimit_keys_evicted_early_total", "clients"),
        1
    );
    assert_eq!(keyed.stats().evicted_early, 1);
}

/// A rate-limit service decides in `poll_ready`, maybe more than once, and
/// counts what it answers, in `call`: a refusal found and never answered
/// (the service dropped) counts nothing, nor does a permit given back.
#[cfg(feature = "tower")]
#[tokio::test]
async fn a_layer_counts_what_it_answers() {
    use std::task::{Context, Waker};

    use seawall_ratelimit::tower::RateLimitLayer;
    use tower::{Layer, Service, ServiceExt, service_fn};

    let recorder = Counting::default();
    let quota = Quota::per_minute(1).build().unwrap();
    let limiter = metrics::with_local_recorder(&recorder, || {
        RateLimiter::builder(quota)
            .clock(ManualClock::new())
            .name("layer")
            .build()
    });
    let layer = RateLimitLayer::new(limiter);
    let echo = || service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
    let mut cx = Context::from_waker(Waker::noop());

    // A permit taken and given back: nothing counted.
    let mut spare = layer.layer(echo());
    assert!(spare.poll_ready(&mut cx).is_ready());
    drop(spare);
    assert_eq!(recorder.get("seawall_ratelimit_admitted_total", "layer"), 0);

    let mut svc = layer.layer(echo());
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(recorder.get("seawall_ratelimit_admitted_total", "layer"), 1);

    // Refused at two polls, then dropped: no refusal answered, none counted.
    let mut polled = layer.layer(echo());
    assert!(polled.poll_ready(&mut cx).is_ready());
    assert!(polled.poll_ready(&mut cx).is_ready());
    drop(polled);
    assert_eq!(recorder.get("seawall_ratelimit_refused_total", "layer"), 0);

    assert!(svc.ready().await.unwrap().call(2).await.is_err());
    assert_eq!(recorder.get("seawall_ratelimit_refused_total", "layer"), 1);
}

/// A plain limiter named "plain" and a keyed one named "keyed", both on
/// `quota` and a clock from `clock`, reporting to `recorder`.
fn plain_and_keyed<C: seawall_core::Clock>(
    recorder: &Counting,
    quota: Quota,
    clock: impl Fn() -> C,
) -> (RateLimiter<C>, KeyedRateLimiter<u32, C>) {
    metrics::with_local_recorder(recorder, || {
        let limiter = RateLimiter::builder(quota)
            .clock(clock())
            .name("plain")
            .build();
        let keyed = KeyedRateLimiter::<u32>::builder(quota)
            .clock(clock())
            .name("keyed")
            .build()
            .expect("valid");
        (limiter, keyed)
    })
}

/// Both limiters of [`plain_and_keyed`] counted `admitted` and `refused`.
fn assert_both_counted(recorder: &Counting, admitted: u64, refused: u64) {
    for name in ["plain", "keyed"] {
        let counted = (
            recorder.get("seawall_ratelimit_admitted_total", name),
            recorder.get("seawall_ratelimit_refused_total", name),
        );
        assert_eq!(counted, (admitted, refused), "{name}: (admitted, refused)");
    }
}

/// A wait that ends admitted is one admission, on either limiter: not a
/// refusal first.
#[tokio::test(start_paused = true)]
async fn a_wait_counts_one_admission_and_no_refusal() {
    use seawall_core::TokioClock;

    let recorder = Counting::default();
    let quota = Quota::per_second(10).burst(1).build().unwrap();
    let (limiter, keyed) = plain_and_keyed(&recorder, quota, TokioClock::new);
    // Each waits for its second request (nothing else moves the time
    // meanwhile).
    limiter.check().unwrap();
    limiter.acquire().await.unwrap();
    keyed.check(&1).unwrap();
    keyed.acquire(&1).await.unwrap();
    assert_both_counted(&recorder, 2, 0);
}

/// A reservation that never comes (a budget used up) is a refusal.
#[test]
fn a_reservation_that_never_comes_counts_as_a_refusal() {
    let recorder = Counting::default();
    let budget = Quota::per_second(0).burst(1).build().unwrap();
    let (limiter, keyed) = plain_and_keyed(&recorder, budget, ManualClock::new);
    let _kept = (
        limiter.reserve_n(1).unwrap(),
        keyed.reserve_n(&1, 1).unwrap(),
    );
    let never = (
        limiter.reserve_n(1).unwrap(),
        keyed.reserve_n(&1, 1).unwrap(),
    );
    assert_eq!(never.0.ready_at_nanos(), u64::MAX, "never comes");
    assert_both_counted(&recorder, 1, 1);
}
