//! The readiness rule: a service that is going to refuse is ready at once,
//! without polling its inner service, and refuses in `call`; one that will
//! forward is exactly as ready as its inner service. Each inner service
//! here is a `tower_test` mock that is not ready.
#![cfg(feature = "tower")]

use std::task::Poll;
use std::time::Duration;

use seawall_breaker::tower::{BulkheadLayer, CircuitBreakerLayer, TimeoutLayer};
use seawall_breaker::{BreakerConfig, BreakerRefusal, Bulkhead, BulkheadFull, CircuitBreaker};
use seawall_core::{BoxError, ManualClock, Refused};
use tower::{Layer, Service, ServiceExt};
use tower_test::mock::{self, Spawn};

fn reason<T: std::error::Error + 'static>(err: &BoxError) -> Option<&T> {
    Refused::find(&**err)?.downcast_ref()
}

/// A breaker that opens after one failure and stays open for a minute.
fn breaker() -> CircuitBreaker<ManualClock> {
    let config = BreakerConfig::builder()
        .count_window(1)
        .minimum_calls(1)
        .wait_in_open(Duration::from_secs(60))
        .build()
        .expect("a valid config");
    CircuitBreaker::with_clock(config, ManualClock::new())
}

#[tokio::test]
async fn an_open_breaker_refuses_without_waiting_for_a_stuck_inner_service() {
    let breaker = breaker();
    let (inner, mut handle) = mock::pair::<&str, &str>();
    handle.allow(0); // the inner service is not ready, and will not be
    let mut svc = Spawn::new(CircuitBreakerLayer::new(breaker.clone()).layer(inner));

    // Closed: as ready as the inner service, which is not.
    assert!(svc.poll_ready::<&str>().is_pending());

    breaker.force_open();
    assert!(matches!(svc.poll_ready::<&str>(), Poll::Ready(Ok(()))));
    let err = svc.call("hello").await.unwrap_err();
    assert_eq!(
        reason::<BreakerRefusal>(&err),
        Some(&BreakerRefusal::ForcedOpen)
    );

    // And opened by failures, the same.
    breaker.reset();
    handle.allow(1);
    assert!(matches!(svc.poll_ready::<&str>(), Poll::Ready(Ok(()))));
    let call = svc.call("fails");
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_error(std::io::Error::other("down"));
    assert!(call.await.is_err());
    assert!(svc.poll_ready::<&str>().is_ready(), "open: ready at once");
    let err = svc.call("refused").await.unwrap_err();
    assert!(matches!(
        reason::<BreakerRefusal>(&err),
        Some(BreakerRefusal::Open { .. })
    ));
    // The inner service saw only the one request it was let through.
    assert!(handle.poll_request().is_pending());
}

/// Whether the inner service was polled shows in its waker: a mock polled
/// while not ready wakes the task when it is allowed again.
#[tokio::test]
async fn a_refusing_breaker_does_not_poll_the_inner_service() {
    let breaker = breaker();
    breaker.force_open();
    let (inner, mut handle) = mock::pair::<&str, &str>();
    handle.allow(0);
    let mut svc = Spawn::new(CircuitBreakerLayer::new(breaker).layer(inner));
    assert!(svc.poll_ready::<&str>().is_ready());
    handle.allow(1);
    assert!(!svc.is_woken(), "the inner service was polled");
}

#[tokio::test]
async fn a_full_half_open_breaker_refuses_without_waiting() {
    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .count_window(1)
        .minimum_calls(1)
        .wait_in_open(Duration::from_secs(1))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let breaker = CircuitBreaker::with_clock(config, clock.clone());
    breaker
        .call(|| async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    clock.advance(Duration::from_millis(1_001));
    let trial = breaker.try_acquire().unwrap(); // half-open, its one trial out

    let (inner, mut handle) = mock::pair::<&str, &str>();
    handle.allow(0);
    let mut svc = Spawn::new(CircuitBreakerLayer::new(breaker.clone()).layer(inner));
    assert!(svc.poll_ready::<&str>().is_ready());
    let err = svc.call("hello").await.unwrap_err();
    assert!(matches!(
        reason::<BreakerRefusal>(&err),
        Some(&BreakerRefusal::HalfOpenFull { .. })
    ));
    trial.success();
}

/// The case from the issue: a breaker in front of a `Buffer` whose worker's
/// service is stuck. Once the buffer is full, its `poll_ready` waits; an
/// open breaker in front of it still answers at once.
#[tokio::test]
async fn an_open_breaker_answers_in_front_of_a_full_buffer() {
    let breaker = breaker();
    let (inner, mut handle) = mock::pair::<&'static str, &'static str>();
    handle.allow(0);
    let buffer = tower::buffer::Buffer::new(inner, 1);
    let mut filler = buffer.clone();
    let _queued = filler.ready().await.unwrap().call("queued"); // fills the buffer
    let mut svc = Spawn::new(CircuitBreakerLayer::new(breaker.clone()).layer(buffer));
    assert!(
        svc.poll_ready::<&str>().is_pending(),
        "closed: waits on the buffer"
    );

    breaker.force_open();
    assert!(svc.poll_ready::<&str>().is_ready());
    let err = svc.call("refused").await.unwrap_err();
    assert_eq!(
        reason::<BreakerRefusal>(&err),
        Some(&BreakerRefusal::ForcedOpen)
    );
}

#[tokio::test]
async fn a_full_bulkhead_refuses_without_waiting_and_a_free_one_holds_its_place() {
    let bulkhead = Bulkhead::builder().max_concurrent(1).build().unwrap();
    let (inner, mut handle) = mock::pair::<&str, &str>();
    handle.allow(0);
    let layer = BulkheadLayer::new(bulkhead.clone());

    // A place is free: taken by poll_ready, which then waits on the inner.
    let mut first = Spawn::new(layer.layer(inner.clone()));
    assert!(first.poll_ready::<&str>().is_pending());
    assert_eq!(bulkhead.available(), 0, "the place is held while waiting");

    // Full: ready at once, without the inner service; refused in call.
    let mut second = Spawn::new(layer.layer(inner));
    assert!(second.poll_ready::<&str>().is_ready());
    handle.allow(1);
    assert!(!second.is_woken(), "the inner service was polled");
    let err = second.call("refused").await.unwrap_err();
    assert!(reason::<BulkheadFull>(&err).is_some());

    // Dropped before `call`, the first gives its place back.
    drop(first);
    assert_eq!(bulkhead.available(), 1);
}

/// A bulkhead with a line waits in line in `poll_ready` for a place, and
/// only then asks the inner service: a caller never holds the inner
/// service's readiness while it waits for a place.
#[tokio::test(start_paused = true)]
async fn a_bulkhead_with_a_line_takes_its_place_before_asking_the_inner_service() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(1))
        .build()
        .expect("a valid bulkhead");
    let (inner, mut handle) = mock::pair::<&str, &str>();
    handle.allow(0);
    let layer = BulkheadLayer::new(bulkhead.clone());
    let mut first = Spawn::new(layer.layer(inner.clone()));
    assert!(
        first.poll_ready::<&str>().is_pending(),
        "placed, waits on the inner"
    );
    assert_eq!(bulkhead.available(), 0);

    let mut second = Spawn::new(layer.layer(inner));
    assert!(second.poll_ready::<&str>().is_pending(), "waits in line");
    assert_eq!(bulkhead.waiting(), 1);
    handle.allow(1);
    assert!(
        !second.is_woken(),
        "the inner service was polled from the line"
    );

    drop(first); // its place goes to the second, which then asks the inner
    tokio::task::yield_now().await;
    assert!(second.is_woken());
    assert!(second.poll_ready::<&str>().is_ready());
    assert_eq!(bulkhead.waiting(), 0);

    // Past `max_wait` in line, it is ready, and refuses.
    let mut third = Spawn::new(layer.layer(mock::pair::<&str, &str>().0));
    assert!(third.poll_ready::<&str>().is_pending());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(third.poll_ready::<&str>().is_ready());
    let err = third.call("late").await.unwrap_err();
    assert!(reason::<BulkheadFull>(&err).is_some());
}

/// A timeout never refuses before the call, so it is as ready as its inner
/// service.
#[tokio::test]
async fn a_timeout_is_as_ready_as_its_inner_service() {
    let (inner, mut handle) = mock::pair::<&str, &str>();
    handle.allow(0);
    let mut svc = Spawn::new(TimeoutLayer::new(Duration::from_millis(1)).layer(inner));
    assert!(svc.poll_ready::<&str>().is_pending());
    handle.allow(1);
    assert!(svc.is_woken());
    assert!(svc.poll_ready::<&str>().is_ready());
}

/// A refusal found by `poll_ready` is decided afresh at the next poll: a
/// breaker that closed meanwhile asks its inner service again.
#[tokio::test]
async fn a_refusal_is_decided_afresh_at_every_poll() {
    let breaker = breaker();
    let (inner, mut handle) = mock::pair::<&str, &str>();
    handle.allow(0);
    let mut svc = Spawn::new(CircuitBreakerLayer::new(breaker.clone()).layer(inner));
    breaker.force_open();
    assert!(
        svc.poll_ready::<&str>().is_ready(),
        "only a refusal is ready here"
    );
    breaker.reset();
    assert!(
        svc.poll_ready::<&str>().is_pending(),
        "the inner service's again"
    );
    handle.allow(1);
    assert!(svc.is_woken());
    assert!(svc.poll_ready::<&str>().is_ready());
    let call = svc.call("hello");
    let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request());
    let (request, respond) = next.await.expect("forwarded").unwrap();
    assert_eq!(request, "hello");
    respond.send_response("hi");
    assert_eq!(call.await.unwrap(), "hi");
}

/// A full bulkhead's refusal is decided afresh too: once a place frees, the
/// next poll takes it and asks the inner service.
#[tokio::test]
async fn a_full_bulkhead_takes_a_place_freed_since_it_refused() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .build()
        .expect("a valid bulkhead");
    let held = bulkhead.try_acquire().expect("the one place");
    let (inner, mut handle) = mock::pair::<&str, &str>();
    handle.allow(0);
    let mut svc = Spawn::new(BulkheadLayer::new(bulkhead.clone()).layer(inner));
    assert!(svc.poll_ready::<&str>().is_ready(), "full: ready to refuse");
    drop(held);
    assert!(
        svc.poll_ready::<&str>().is_pending(),
        "placed, asks the inner"
    );
    assert_eq!(bulkhead.available(), 0);
}
