//! The bulkhead's limit, its bounded first-come-first-served wait, and the
//! timeout.

use std::time::Duration;

use seawall_breaker::{Bulkhead, BulkheadError, TimedOut, Timeout, TimeoutError};
use tokio::time::Instant;

#[tokio::test]
async fn refuses_at_once_when_full() {
    let bulkhead = Bulkhead::builder().max_concurrent(2).build().unwrap();
    let (a, b) = (
        bulkhead.try_acquire().unwrap(),
        bulkhead.try_acquire().unwrap(),
    );
    let err = bulkhead.try_acquire().unwrap_err();
    assert_eq!(err.to_string(), "bulkhead full: 2 calls in flight");
    assert!(bulkhead.acquire().await.is_err(), "no wait configured");
    drop(a);
    assert_eq!(bulkhead.available(), 1);
    drop(b);
    assert!(bulkhead.call(|| async { Ok::<_, ()>(()) }).await.is_ok());
}

/// Waiters are served in arrival order, each within `max_wait`.
#[tokio::test(start_paused = true)]
async fn waiters_are_served_first_come_first_served() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(10))
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for id in 0..5 {
        let (bulkhead, order) = (bulkhead.clone(), order_tx.clone());
        waiters.push(tokio::spawn(async move {
            let _place = bulkhead.acquire().await.unwrap();
            order.send(id).unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }));
        tokio::task::yield_now().await; // let it join the line in order
    }
    assert_eq!(bulkhead.waiting(), 5);
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap();
    }
    let mut order = Vec::new();
    while let Ok(id) = order_rx.try_recv() {
        order.push(id);
    }
    assert_eq!(order, [0, 1, 2, 3, 4]);
    assert_eq!(bulkhead.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_wait_gives_up_after_max_wait() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_millis(50))
        .build()
        .unwrap();
    let _held = bulkhead.try_acquire().unwrap();
    let start = Instant::now();
    let refused = bulkhead.call(|| async { Ok::<_, ()>(()) }).await;
    assert!(matches!(refused, Err(BulkheadError::Full(_))));
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert_eq!(bulkhead.waiting(), 0, "the line was left");
}

#[tokio::test(start_paused = true)]
async fn a_full_line_refuses_at_once() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(1))
        .max_queue(1)
        .build()
        .unwrap();
    let _held = bulkhead.try_acquire().unwrap();
    let in_line = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.acquire().await.is_ok() }
    });
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.waiting(), 1);
    let start = Instant::now();
    assert!(bulkhead.acquire().await.is_err());
    assert_eq!(start.elapsed(), Duration::ZERO, "refused without waiting");
    assert!(!in_line.await.unwrap(), "the one in line timed out");
}

#[tokio::test]
async fn bad_configs_are_errors() {
    assert_eq!(
        Bulkhead::builder().build().unwrap_err().to_string(),
        "max_concurrent: is required"
    );
    assert!(Bulkhead::builder().max_concurrent(0).build().is_err());
}

#[tokio::test(start_paused = true)]
async fn timeout_gives_up_at_the_deadline() {
    let timeout = Timeout::new(Duration::from_millis(250));
    let start = Instant::now();
    let late = timeout
        .call(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, ()>(())
        })
        .await;
    assert_eq!(
        late,
        Err(TimeoutError::TimedOut(TimedOut::new(
            Duration::from_millis(250)
        )))
    );
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    let in_time = Timeout::within(Duration::from_secs(1), async { Err::<(), _>("refused") }).await;
    assert_eq!(in_time, Err(TimeoutError::Inner("refused")));
}

mod hystrix {
    use std::time::Duration;

    use seawall_breaker::{BreakerRefusal, HystrixError, HystrixSettings, State, TimedOut};

    /// Hystrix's order and accounting: timeouts count against the circuit,
    /// and once the volume and error threshold are reached it opens.
    #[tokio::test(start_paused = true)]
    async fn timeouts_open_the_circuit_as_in_hystrix() {
        let command = HystrixSettings {
            timeout: Duration::from_millis(100),
            request_volume_threshold: 3,
            error_percent_threshold: 50,
            ..HystrixSettings::default()
        }
        .build()
        .unwrap();
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, ()>(())
        };
        for _ in 0..3 {
            let result = command.call(slow).await;
            assert_eq!(
                result,
                Err(HystrixError::Timeout(TimedOut::new(Duration::from_millis(
                    100
                ))))
            );
        }
        assert_eq!(command.breaker().state(), State::Open);
        let refused = command.call(|| async { Ok::<_, ()>(()) }).await;
        assert!(matches!(
            refused,
            Err(HystrixError::Refused(BreakerRefusal::Open { .. }))
        ));
    }

    #[test]
    fn settings_are_checked_with_their_path() {
        let err = HystrixSettings {
            request_volume_threshold: 0,
            ..HystrixSettings::default()
        }
        .build()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hystrix.request_volume_threshold: must be at least 1, got 0"
        );
        let err = HystrixSettings {
            sleep_window: Duration::ZERO,
            ..HystrixSettings::default()
        }
        .build()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hystrix.sleep_window: must be longer than zero, got 0s"
        );
        let err = HystrixSettings {
            error_percent_threshold: 0,
            ..HystrixSettings::default()
        }
        .build()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hystrix.error_percent_threshold: must be in (0, 100], got 0"
        );
        let err = HystrixSettings {
            max_concurrent_requests: 0,
            ..HystrixSettings::default()
        }
        .build()
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("hystrix.max_concurrent_requests: must be at least 1")
        );
    }
}

/// A bulkhead that never waits counts its places in one atomic: threads
/// racing for them never hold more than `max_concurrent` at once, and every
/// place comes back.
#[test]
fn racing_threads_never_hold_more_places_than_the_limit() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    let bulkhead = Bulkhead::builder().max_concurrent(3).build().unwrap();
    let holding = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (bulkhead, holding, most) = (bulkhead.clone(), holding.clone(), most.clone());
            std::thread::spawn(move || {
                let mut taken = 0;
                for _ in 0..20_000 {
                    if let Ok(place) = bulkhead.try_acquire() {
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        holding.fetch_sub(1, Ordering::SeqCst);
                        drop(place);
                        taken += 1;
                    }
                }
                taken
            })
        })
        .collect();
    let taken: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(taken > 0);
    assert!(most.load(Ordering::SeqCst) <= 3, "{most:?} places at once");
    assert_eq!(bulkhead.available(), 3, "every place came back");
}
