//! Hedged requests, on paused time.
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use seawall_recover::tower::HedgeLayer;
use seawall_recover::{Hedge, HedgeDelay, RetryBudget};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

/// A replica set: call `n` (from 0) takes `plan[n].0` and answers
/// `plan[n].1` (an error when `false`); counts calls and dropped calls.
#[derive(Clone, Default)]
struct Replicas {
    calls: Arc<AtomicU32>,
    dropped: Arc<AtomicU32>,
}

struct CountDrop(Arc<AtomicU32>, bool);

impl Drop for CountDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Replicas {
    fn service(
        &self,
        plan: &'static [(u64, bool)],
    ) -> impl tower::Service<
        u32,
        Response = u32,
        Error = &'static str,
        Future = impl Future<Output = Result<u32, &'static str>> + use<>,
    > + Clone
    + use<> {
        let (calls, dropped) = (Arc::clone(&self.calls), Arc::clone(&self.dropped));
        service_fn(move |_: u32| {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            let (millis, ok) = plan[(n as usize).min(plan.len() - 1)];
            let dropped = Arc::clone(&dropped);
            async move {
                let mut guard = CountDrop(dropped, false);
                tokio::time::sleep(Duration::from_millis(millis)).await;
                guard.1 = true;
                match (ok, n) {
                    (true, _) => Ok(n),
                    (false, 0) => Err("first failed"),
                    (false, _) => Err("hedge failed"),
                }
            }
        })
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }
}

fn fixed(millis: u64) -> Hedge {
    Hedge::builder()
        .delay(HedgeDelay::Fixed(Duration::from_millis(millis)))
        .build()
        .expect("valid settings")
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_attempt_is_hedged_and_the_loser_dropped() {
    let replicas = Replicas::default();
    let service = HedgeLayer::new(fixed(50)).layer(replicas.service(&[(1000, true), (10, true)]));
    let started = Instant::now();
    assert_eq!(service.oneshot(0).await, Ok(1), "the hedge answered");
    assert_eq!(started.elapsed(), Duration::from_millis(60));
    assert_eq!(replicas.calls(), 2);
    assert_eq!(
        replicas.dropped.load(Ordering::Relaxed),
        1,
        "the slow attempt was dropped"
    );
}

/// A delay of zero sends the hedge in the first poll, not at the next tick
/// of tokio's clock (real time here: a paused clock stands on a tick).
#[tokio::test]
async fn a_zero_delay_hedges_in_the_first_poll() {
    use futures::FutureExt;

    let replicas = Replicas::default();
    let service = HedgeLayer::new(fixed(0)).layer(replicas.service(&[(1000, true), (10, true)]));
    let mut answer = Box::pin(service.oneshot(0));
    assert!((&mut answer).now_or_never().is_none());
    assert_eq!(replicas.calls(), 2, "both sent in the first poll");
}

#[tokio::test(start_paused = true)]
async fn a_fast_answer_or_a_fast_failure_is_not_hedged() {
    let replicas = Replicas::default();
    let service = HedgeLayer::new(fixed(50)).layer(replicas.service(&[(10, true)]));
    assert_eq!(service.oneshot(0).await, Ok(0));
    assert_eq!(replicas.calls(), 1);
    let replicas = Replicas::default();
    let service = HedgeLayer::new(fixed(50)).layer(replicas.service(&[(10, false)]));
    assert_eq!(service.oneshot(0).await, Err("first failed"));
    assert_eq!(replicas.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failure_waits_for_the_other_attempt() {
    // The first fails after the hedge is out: the hedge's answer wins.
    let replicas = Replicas::default();
    let service = HedgeLayer::new(fixed(50)).layer(replicas.service(&[(80, false), (100, true)]));
    let started = Instant::now();
    assert_eq!(service.oneshot(0).await, Ok(1));
    assert_eq!(started.elapsed(), Duration::from_millis(150));

    // The hedge fails first: the first attempt's answer wins.
    let replicas = Replicas::default();
    let service = HedgeLayer::new(fixed(50)).layer(replicas.service(&[(200, true), (10, false)]));
    assert_eq!(service.oneshot(0).await, Ok(0));

    // Both fail: the last failure is the answer (the hedge fails at 60 ms,
    // the first attempt at 80 ms).
    let replicas = Replicas::default();
    let service = HedgeLayer::new(fixed(50)).layer(replicas.service(&[(80, false), (10, false)]));
    assert_eq!(service.oneshot(0).await, Err("first failed"));
    assert_eq!(replicas.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn no_hedge_beyond_the_budget() {
    let replicas = Replicas::default();
    let budget = RetryBudget::new(0.0, 0, Duration::from_secs(10)).unwrap();
    let hedge = Hedge::builder()
        .delay(HedgeDelay::Fixed(Duration::from_millis(50)))
        .budget(budget)
        .build()
        .unwrap();
    let service = HedgeLayer::new(hedge).layer(replicas.service(&[(1000, true), (10, true)]));
    assert_eq!(service.oneshot(0).await, Ok(0));
    assert_eq!(replicas.calls(), 1);
}

/// A hedge taken from the budget but never sent (the inner service was not
/// ready for it before the first attempt answered) goes back to the budget.
#[tokio::test(start_paused = true)]
async fn a_hedge_that_could_not_be_sent_gives_its_budget_back() {
    let budget = RetryBudget::new(0.0, 1, Duration::from_secs(1)).unwrap();
    let hedge = Hedge::builder()
        .delay(HedgeDelay::Fixed(Duration::from_millis(50)))
        .budget(budget)
        .build()
        .unwrap();
    // One call at a time: the hedge waits for the first attempt's place.
    let busy = Replicas::default();
    let limited = tower::limit::ConcurrencyLimit::new(busy.service(&[(100, true)]), 1);
    let service = HedgeLayer::new(hedge.clone()).layer(limited);
    assert_eq!(service.oneshot(0).await, Ok(0));
    assert_eq!(busy.calls(), 1, "no hedge was sent");
    // The budget's one hedge is still there for the next slow request.
    let replicas = Replicas::default();
    let service = HedgeLayer::new(hedge).layer(replicas.service(&[(1000, true), (10, true)]));
    assert_eq!(service.oneshot(0).await, Ok(1), "hedged");
}

#[tokio::test(start_paused = true)]
async fn the_percentile_delay_follows_recent_latencies() {
    let hedge = Hedge::builder()
        .delay(HedgeDelay::Percentile {
            percentile: 0.9,
            min_samples: 50,
            window: Duration::from_secs(5),
        })
        .budget(RetryBudget::new(1.0, 10, Duration::from_secs(10)).unwrap())
        .build()
        .unwrap();
    let latencies = Arc::new(Mutex::new(Duration::from_millis(20)));
    let calls = Arc::new(AtomicU32::new(0));
    let (took, counter) = (Arc::clone(&latencies), Arc::clone(&calls));
    let service = HedgeLayer::new(hedge).layer(service_fn(move |_: ()| {
        counter.fetch_add(1, Ordering::Relaxed);
        let latency = *took.lock();
        async move {
            tokio::time::sleep(latency).await;
            Ok::<_, &str>(latency)
        }
    }));
    // The first window: no delay known, nothing hedged.
    for _ in 0..60 {
        service.clone().oneshot(()).await.unwrap();
    }
    assert_eq!(calls.swap(0, Ordering::Relaxed), 60);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Now a 20 ms p90 is known: a 500 ms call is hedged at about 20 ms.
    *latencies.lock() = Duration::from_millis(500);
    let call = tokio::spawn(service.clone().oneshot(()));
    tokio::time::sleep(Duration::from_millis(19)).await;
    assert_eq!(calls.load(Ordering::Relaxed), 1, "not yet");
    tokio::time::sleep(Duration::from_millis(4)).await;
    assert_eq!(
        calls.load(Ordering::Relaxed),
        2,
        "hedged within an eighth of 20 ms"
    );
    call.await.unwrap().unwrap();
}

/// Latencies from before a long silence are not "the last window": after
/// two windows or more with no request, no delay is known until a window
/// fills again, and nothing is hedged meanwhile.
#[tokio::test(start_paused = true)]
async fn latencies_from_before_a_silence_are_forgotten() {
    let hedge = Hedge::builder()
        .delay(HedgeDelay::Percentile {
            percentile: 0.5,
            min_samples: 5,
            window: Duration::from_secs(1),
        })
        .budget(RetryBudget::new(1.0, 10, Duration::from_secs(10)).unwrap())
        .build()
        .unwrap();
    let replicas = Replicas::default();
    // Fourteen 200 ms calls, one after another: the window filling when
    // they end holds five samples, enough for a delay.
    let mut plan = vec![(200, true); 14];
    plan.push((5_000, true));
    let plan: &'static [(u64, bool)] = Box::leak(plan.into_boxed_slice());
    let service = HedgeLayer::new(hedge).layer(replicas.service(plan));
    for _ in 0..14 {
        service.clone().oneshot(0).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(100)).await;
    let call = tokio::spawn(service.clone().oneshot(0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(replicas.calls(), 15, "not hedged on old latencies");
    call.await.unwrap().unwrap();
}
