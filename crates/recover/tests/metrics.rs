//! The `metrics` counters: each counts its event once, under a local
//! recorder.
#![cfg(all(feature = "metrics", feature = "tower"))]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use parking_lot::Mutex;
use seawall_recover::tower::{CatchPanicLayer, HedgeLayer};
use seawall_recover::{
    Coalesce, Fallback, Hedge, HedgeDelay, Jitter, OnError, Restart, RestartPolicy, Retry,
    RetryBudget, RetryPolicy, Supervisor,
};
use tower::{Layer, ServiceExt, service_fn};

/// Counter totals by `name{label=value,...}`.
#[derive(Default, Clone)]
struct Counts(Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>);

impl Counts {
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
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Counter::from_arc(Arc::clone(self.0.lock().entry(name).or_default()))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn every_part_counts_its_events() {
    let counts = Counts::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(&counts, || {
        runtime.block_on(async {
            // A panic in a service.
            let service = CatchPanicLayer::new().layer(service_fn(|_: ()| async {
                panic!("boom");
                #[allow(unreachable_code)]
                Ok::<(), seawall_core::BoxError>(())
            }));
            let _ = service.oneshot(()).await;

            // Two retries, then the budget says no to a third.
            let policy = RetryPolicy::builder()
                .max_attempts(10)
                .backoff(Duration::ZERO, Duration::ZERO, Jitter::None)
                .budget(RetryBudget::new(0.0, 1, Duration::from_secs(2)).unwrap())
                .build()
                .unwrap();
            let _ = Retry::new(policy)
                .run(|| async { Err::<(), _>("down") })
                .await;

            // A follower.
            let group: Coalesce<u8, u8> = Coalesce::new();
            let slow = || async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                1
            };
            let _ = tokio::join!(group.run(1, slow), group.run(1, slow));

            // Three fallbacks: a value, a function, the plain one; and a
            // result none applies to.
            let degrade: Fallback<u8, &str> = Fallback::on(OnError).value(0);
            let _ = degrade.apply(Err("down"));
            let _ = degrade.apply(Ok(1));
            let degrade: Fallback<u8, &str> = Fallback::on(OnError).with(|_| Ok(0));
            let _ = degrade.apply(Err("down"));
            let _ = seawall_recover::fallback(async { Err::<u8, _>("down") }, |_| Ok(0)).await;
            let _ = seawall_recover::fallback(async { Ok::<u8, &str>(1) }, |_| Ok(0)).await;

            // A hedge.
            let hedge = Hedge::builder()
                .delay(HedgeDelay::Fixed(Duration::from_millis(10)))
                .build()
                .unwrap();
            let slow_replica = service_fn(|_: ()| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<(), &str>(())
            });
            let _ = HedgeLayer::new(hedge).layer(slow_replica).oneshot(()).await;

            // A task that panics, restarts once, and gives up.
            let supervisor = Supervisor::new();
            let policy = RestartPolicy::builder()
                .restart(Restart::OnFailure)
                .max_restarts(1, Duration::from_secs(60))
                .build()
                .unwrap();
            supervisor
                .spawn("fragile", policy, |_| async {
                    panic!("task broke");
                    #[allow(unreachable_code)]
                    Ok::<(), String>(())
                })
                .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
    });
    assert_eq!(counts.get("seawall_recover_panics_total{part=service}"), 1);
    assert_eq!(counts.get("seawall_recover_panics_total{part=task}"), 2);
    assert_eq!(counts.get("seawall_recover_retries_total{}"), 2);
    assert_eq!(
        counts.get("seawall_recover_budget_exhausted_total{part=retry}"),
        1
    );
    assert_eq!(counts.get("seawall_recover_coalesced_total{}"), 1);
    assert_eq!(counts.get("seawall_recover_fallbacks_total{}"), 3);
    assert_eq!(counts.get("seawall_recover_hedges_total{}"), 1);
    assert_eq!(
        counts.get("seawall_recover_task_restarts_total{task=fragile}"),
        1
    );
    assert_eq!(
        counts.get("seawall_recover_tasks_given_up_total{task=fragile}"),
        1
    );
}
