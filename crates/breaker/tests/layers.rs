//! The tower layers: refusals answered in `call` as `Refused` errors that
//! carry their reason, and a breaker that counts the timeout layer's
//! deadlines as failures.
#![cfg(feature = "tower")]

use std::time::Duration;

use seawall_breaker::tower::{BulkheadLayer, CircuitBreakerLayer, TimeoutLayer};
use seawall_breaker::{
    BreakerConfig, BreakerRefusal, Bulkhead, BulkheadFull, CircuitBreaker, State, TimedOut,
};
use seawall_core::{BoxError, ManualClock, Outcome, RefusalKind, Refused};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// The reason of the seawall refusal in `err`, as a `T`.
fn reason<T: std::error::Error + 'static>(err: &BoxError) -> Option<&T> {
    Refused::find(&**err)?.downcast_ref()
}

fn breaker(window: u32) -> CircuitBreaker<ManualClock> {
    let config = BreakerConfig::builder()
        .count_window(window)
        .minimum_calls(window)
        .build()
        .expect("valid");
    CircuitBreaker::with_clock(config, ManualClock::new())
}

#[tokio::test]
async fn an_open_breaker_refuses_in_call_with_a_refused_error() {
    let breaker = breaker(2);
    let mut svc =
        CircuitBreakerLayer::new(breaker.clone()).layer(service_fn(|fail: bool| async move {
            if fail {
                Err(std::io::Error::other("down"))
            } else {
                Ok("up")
            }
        }));
    for _ in 0..2 {
        let err = svc.ready().await.unwrap().call(true).await.unwrap_err();
        assert!(
            err.downcast_ref::<std::io::Error>().is_some(),
            "the inner error passes through"
        );
    }
    assert_eq!(breaker.state(), State::Open);
    // poll_ready stays ready: the refusal comes from call.
    let refused = svc.ready().await.unwrap().call(false).await.unwrap_err();
    assert!(matches!(
        reason::<BreakerRefusal>(&refused),
        Some(BreakerRefusal::Open { .. })
    ));
    let found = Refused::find(&*refused).unwrap();
    assert_eq!(found.kind(), RefusalKind::Unavailable);
    assert!(found.retry_after().is_some());
}

#[tokio::test]
async fn a_classifier_decides_what_counts() {
    let breaker = breaker(1);
    // Responses are status codes; 4xx is the caller's fault.
    let classify = |r: &Result<u16, std::convert::Infallible>| match r {
        Ok(status) if *status >= 500 => Outcome::Failure,
        Ok(status) if *status >= 400 => Outcome::Ignored,
        _ => Outcome::Success,
    };
    let mut svc = CircuitBreakerLayer::new(breaker.clone())
        .classify(classify)
        .layer(service_fn(|status: u16| async move { Ok(status) }));
    assert_eq!(svc.ready().await.unwrap().call(404).await.unwrap(), 404);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(svc.ready().await.unwrap().call(503).await.unwrap(), 503);
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test]
async fn the_bulkhead_refuses_in_call_when_full() {
    let bulkhead = Bulkhead::builder().max_concurrent(1).build().unwrap();
    let (release, wait) = tokio::sync::oneshot::channel::<()>();
    let wait = std::sync::Arc::new(tokio::sync::Mutex::new(Some(wait)));
    let mut svc = BulkheadLayer::new(bulkhead.clone()).layer(service_fn(move |_: ()| {
        let wait = wait.clone();
        async move {
            if let Some(wait) = wait.lock().await.take() {
                let _ = wait.await;
            }
            Ok::<_, std::convert::Infallible>(())
        }
    }));
    let first = svc.ready().await.unwrap().call(());
    let first = tokio::spawn(first);
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.available(), 0);
    let refused = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(reason::<BulkheadFull>(&refused).is_some());
    assert_eq!(
        Refused::find(&*refused).map(Refused::kind),
        Some(RefusalKind::Overloaded)
    );
    release.send(()).unwrap();
    first.await.unwrap().unwrap();
    assert_eq!(
        bulkhead.available(),
        1,
        "the place freed when the call ended"
    );
}

/// With a `max_wait`, `poll_ready` waits in line for a place, and gives up
/// (ready, to refuse in `call`) after the wait.
#[tokio::test(start_paused = true)]
async fn the_bulkhead_layer_waits_in_line_when_told_to() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut svc =
        BulkheadLayer::new(bulkhead.clone()).layer(service_fn(|millis: u64| async move {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Ok::<_, std::convert::Infallible>(millis)
        }));

    // 80 ms of work; the next request waits for it and then runs.
    let first = tokio::spawn(svc.ready().await.unwrap().call(80));
    let mut next = svc.clone();
    let second = tokio::spawn(async move { next.ready().await.unwrap().call(500).await });
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.waiting(), 1);
    assert_eq!(first.await.unwrap().unwrap(), 80);

    // The second now holds the place for 500 ms: a third gives up at 100.
    let started = tokio::time::Instant::now();
    let refused = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(reason::<BulkheadFull>(&refused).is_some());
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(bulkhead.waiting(), 0);
    assert_eq!(second.await.unwrap().unwrap(), 500);
    assert_eq!(bulkhead.available(), 1);
}

/// Deadlines per request, and a breaker outside the timeout counting them
/// as failures.
#[tokio::test(start_paused = true)]
async fn timeouts_per_request_count_as_breaker_failures() {
    let breaker = breaker(2);
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(TimeoutLayer::per_request(|millis: &u64| {
            Duration::from_millis(*millis)
        }))
        .service_fn(|_: u64| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, std::convert::Infallible>("done")
        });
    assert_eq!(svc.ready().await.unwrap().call(500).await.unwrap(), "done");
    let err = svc.ready().await.unwrap().call(50).await.unwrap_err();
    assert_eq!(
        reason::<TimedOut>(&err).map(TimedOut::after),
        Some(Duration::from_millis(50)),
        "{err:?}"
    );
    // One success, one timeout: 50% of two calls, so it opens.
    assert_eq!(breaker.state(), State::Open);
}

/// The breaker's own timeout, in the layer: the request is dropped,
/// answered `TimedOut` and counted as a failure.
#[tokio::test(start_paused = true)]
async fn the_breakers_timeout_applies_in_the_layer() {
    let config = BreakerConfig::builder()
        .count_window(4)
        .minimum_calls(4)
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let breaker = CircuitBreaker::with_clock(config, ManualClock::new());
    let mut svc =
        CircuitBreakerLayer::new(breaker.clone()).layer(service_fn(|millis: u64| async move {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Ok::<_, std::convert::Infallible>(millis)
        }));
    assert_eq!(svc.ready().await.unwrap().call(50).await.unwrap(), 50);
    let err = svc.ready().await.unwrap().call(5_000).await.unwrap_err();
    assert_eq!(
        reason::<TimedOut>(&err),
        Some(&TimedOut::new(Duration::from_millis(100)))
    );
    let snapshot = breaker.snapshot();
    assert_eq!((snapshot.calls, snapshot.failures), (2, 1));
}

/// A request whose response future is dropped counts as ignored.
#[tokio::test]
async fn a_dropped_request_counts_for_nothing() {
    let breaker = breaker(1);
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(service_fn(|_: ()| {
        std::future::pending::<Result<(), std::convert::Infallible>>()
    }));
    let pending = svc.ready().await.unwrap().call(());
    drop(pending);
    assert_eq!(breaker.snapshot().calls, 0);
    assert_eq!(breaker.state(), State::Closed);
}

/// A call that panics is a failure, wherever it panics: in the service's
/// `call`, in its response future (caught around its poll, as an outer
/// catch-panic layer does, and the future dropped later), or in
/// `CircuitBreaker::call`. A call merely dropped by another's panic (a
/// sibling in a `join!`), or a permit dropped during one, is not.
#[tokio::test]
async fn a_call_that_panics_counts_as_a_failure() {
    use std::future::Future;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::task::{Context, Waker};

    // In the response future, its panic caught around the poll.
    let breaker = breaker(10);
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(service_fn(|_: ()| async {
        panic!("the call panicked");
        #[allow(unreachable_code)]
        Ok::<(), std::convert::Infallible>(())
    }));
    let mut future = Box::pin(svc.ready().await.unwrap().call(()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))).is_err());
    drop(future);
    assert_eq!(breaker.window(), (1, 1, 0), "the future's panic");

    // In the service's own `call`.
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(service_fn(|_: ()| {
        panic!("call panicked before making its future");
        #[allow(unreachable_code)]
        std::future::ready(Ok::<(), std::convert::Infallible>(()))
    }));
    let ready = svc.ready().await.unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| drop(ready.call(())))).is_err());
    assert_eq!(breaker.window(), (2, 2, 0), "call's panic");

    // `CircuitBreaker::call`, in a task.
    let inner = breaker.clone();
    let joined = tokio::spawn(async move {
        inner
            .call(|| async {
                panic!("inside CircuitBreaker::call");
                #[allow(unreachable_code)]
                Ok::<(), std::io::Error>(())
            })
            .await
    })
    .await;
    assert!(joined.expect_err("it panicked").is_panic());
    assert_eq!(breaker.window(), (3, 3, 0), "CircuitBreaker::call's panic");

    // A sibling's panic drops a call that has not answered: ignored.
    let inner = breaker.clone();
    let joined = tokio::spawn(async move {
        let waiting = inner.call(std::future::pending::<Result<(), std::io::Error>>);
        let panicking = async { panic!("a sibling panicked") };
        tokio::join!(waiting, panicking)
    })
    .await;
    assert!(joined.expect_err("it panicked").is_panic());
    assert_eq!(breaker.window(), (3, 3, 0), "the sibling's call is ignored");

    // A permit held across someone else's panic: ignored, as any permit
    // dropped unrecorded.
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let _permit = breaker.try_acquire().expect("closed");
        panic!("with a permit held");
    }));
    assert!(unwound.is_err());
    assert_eq!(breaker.window(), (3, 3, 0), "a dropped permit is ignored");
}

/// The timeout starts when the call first waits: a response ready at once
/// sets no timer, so it needs no runtime at all (a timer would panic here,
/// outside one).
#[test]
fn a_response_ready_at_once_sets_no_timer() {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    let mut svc =
        TimeoutLayer::new(Duration::from_secs(1)).layer(service_fn(|n: u32| async move {
            Ok::<_, std::convert::Infallible>(n)
        }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let response = pin!(svc.call(7)).poll(&mut cx);
    assert!(matches!(response, Poll::Ready(Ok(7))));
}
