//! The tower layers: one shared state across every clone, reject and wait
//! modes, refusals found as `Refused` errors with their reason.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use seawall_core::{ManualClock, RefusalKind, Refused, TokioClock};
use seawall_ratelimit::tower::{KeyedRateLimitLayer, RateLimitLayer};
use seawall_ratelimit::{KeyedRateLimiter, Quota, RateLimited, RateLimiter};
use tower::{Layer, Service, ServiceExt, service_fn};

fn quota(count: u32, period: Duration) -> Quota {
    Quota::per(period, count).build().expect("a valid quota")
}

async fn echo(n: u32) -> Result<u32, Infallible> {
    Ok(n)
}

/// 40 "connections", each with its own service made by the one layer (as a
/// server makes one per connection), 5 requests each, with time standing
/// still: seawall admits the quota, 10, in total. tower's `RateLimit`,
/// whose state lives in each service, admits 10 per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_clone_shares_one_quota() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(quota(10, Duration::from_secs(60)))
        .clock(clock)
        .build();
    let layer = RateLimitLayer::new(limiter);
    let mut tasks = Vec::new();
    for conn in 0..40u32 {
        let mut svc = layer.layer(service_fn(echo));
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0;
            for i in 0..5 {
                if svc.ready().await.unwrap().call(conn * 5 + i).await.is_ok() {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 10);

    // tower's own limiter, same quota, same connections: far more get
    // through.
    let tower_layer = tower::limit::RateLimitLayer::new(10, Duration::from_secs(60));
    let mut tower_total = 0;
    for conn in 0..40u32 {
        let mut svc = tower_layer.layer(service_fn(echo));
        for i in 0..5 {
            // Each service has a fresh budget of 10, so none of these waits.
            let ready = tokio::time::timeout(Duration::from_millis(50), svc.ready()).await;
            if let Ok(Ok(svc)) = ready {
                svc.call(conn * 5 + i).await.unwrap();
                tower_total += 1;
            }
        }
    }
    assert_eq!(tower_total, 200, "tower's RateLimit admits per service");

    // And clones of one seawall service share it too.
    let limiter = RateLimiter::builder(quota(3, Duration::from_secs(60)))
        .clock(ManualClock::new())
        .build();
    let svc = RateLimitLayer::new(limiter).layer(service_fn(echo));
    let mut admitted = 0;
    for i in 0..10 {
        if svc.clone().ready().await.unwrap().call(i).await.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
}

#[tokio::test]
async fn reject_mode_refuses_with_a_refused_error() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(quota(2, Duration::from_secs(1)))
        .clock(clock.clone())
        .build();
    let mut svc = RateLimitLayer::new(limiter).layer(service_fn(echo));
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    let err = svc.ready().await.unwrap().call(3).await.unwrap_err();
    let found = Refused::find(&*err).expect("a seawall refusal");
    assert_eq!(found.kind(), RefusalKind::RateLimited);
    assert_eq!(found.retry_after(), Some(Duration::from_millis(500)));
    let refused = found.downcast_ref::<RateLimited>().expect("RateLimited");
    assert_eq!(refused.retry_after(), Duration::from_millis(500));
    assert_eq!(err.to_string(), "rate limited, retry after 500ms");
    clock.advance(Duration::from_millis(500));
    assert_eq!(svc.ready().await.unwrap().call(4).await.unwrap(), 4);
}

/// The inner service's own errors pass through, boxed.
#[tokio::test]
async fn inner_errors_pass_through() {
    let limiter = RateLimiter::new(quota(5, Duration::from_secs(1)));
    let mut svc = RateLimitLayer::new(limiter).layer(service_fn(|_: ()| async {
        Err::<(), _>(std::io::Error::other("upstream down"))
    }));
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(err.to_string(), "upstream down");
    assert!(err.downcast_ref::<std::io::Error>().is_some());
}

#[tokio::test(start_paused = true)]
async fn wait_mode_paces_callers_to_the_rate() {
    let limiter = RateLimiter::builder(quota(4, Duration::from_secs(1)))
        .clock(TokioClock::new())
        .build();
    let mut svc = RateLimitLayer::new(limiter)
        .waiting()
        .layer(service_fn(echo));
    let start = tokio::time::Instant::now();
    for i in 0..8 {
        svc.ready().await.unwrap().call(i).await.unwrap();
    }
    // Four from the burst, then one every 250 ms.
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

/// Wait mode reserves a place, as `acquire` does: 200 callers on clones of
/// one service pass in the order they came, at the full rate, though the
/// timer rounds each sleep up to the millisecond; a caller that gives up
/// while waiting gives its place back.
#[tokio::test(start_paused = true)]
async fn wait_mode_serves_callers_in_order_at_the_full_rate() {
    let interval = Duration::from_micros(1_500);
    let limiter = RateLimiter::builder(Quota::per(interval, 1).build().unwrap())
        .clock(TokioClock::new())
        .build();
    let svc = RateLimitLayer::new(limiter.clone())
        .waiting()
        .layer(service_fn(echo));
    let start = tokio::time::Instant::now();
    let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..200u32 {
        let (svc, done) = (svc.clone(), done.clone());
        tokio::spawn(async move {
            let answer = svc.oneshot(i).await.unwrap();
            done.send((answer, start.elapsed())).unwrap();
        });
    }
    drop(done);
    let mut order = Vec::new();
    while let Some((i, at)) = finished.recv().await {
        order.push(i);
        assert!(
            at < interval * i + Duration::from_millis(1),
            "{i} at {at:?}"
        );
    }
    assert_eq!(order, (0..200).collect::<Vec<_>>());

    // One more waits for its place, gives up, and gives it back.
    while limiter.check().is_ok() {}
    let _ahead = limiter.reserve(); // so the wait outlasts the timeout's tick
    let before = limiter.tokens();
    let waiting = tokio::time::timeout(Duration::from_micros(100), svc.clone().oneshot(0)).await;
    assert!(waiting.is_err());
    assert!(
        limiter.tokens() >= before,
        "{} < {before}",
        limiter.tokens()
    );
}

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waiting is a timer, not a busy loop: a pending `poll_ready` is woken
/// once, when the wait is over, and not before.
#[tokio::test(start_paused = true)]
async fn wait_mode_sleeps_instead_of_spinning() {
    let limiter = RateLimiter::builder(quota(1, Duration::from_secs(1)))
        .clock(TokioClock::new())
        .build();
    let mut svc = RateLimitLayer::new(limiter)
        .waiting()
        .layer(service_fn(echo));
    svc.ready().await.unwrap().call(0).await.unwrap();

    let wakes = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);
    assert!(svc.poll_ready(&mut cx).is_pending());
    tokio::time::advance(Duration::from_millis(999)).await;
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        0,
        "woken before the wait was over"
    );
    assert!(svc.poll_ready(&mut cx).is_pending());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    assert_eq!(svc.call(1).await.unwrap(), 1);
}

/// A permit taken by `poll_ready` and never spent goes back when the
/// service is dropped (a cancelled caller, a balancer's spare), in both
/// modes.
#[tokio::test]
async fn an_unspent_permit_goes_back() {
    for wait in [false, true] {
        let limiter = RateLimiter::builder(quota(1, Duration::from_secs(60)))
            .clock(ManualClock::new())
            .build();
        let layer = RateLimitLayer::new(limiter.clone());
        let layer = if wait { layer.waiting() } else { layer };
        let mut spare = layer.layer(service_fn(echo));
        spare.ready().await.unwrap(); // took the only token
        assert!(limiter.tokens() < 1.0);
        drop(spare);
        assert!(
            (limiter.tokens() - 1.0).abs() < 1e-9,
            "wait {wait}: {}",
            limiter.tokens()
        );
        let mut next = layer.layer(service_fn(echo));
        assert_eq!(next.ready().await.unwrap().call(7).await.unwrap(), 7);
    }
}

/// A cost that panics (user code) in `call` loses no token: the permit
/// `poll_ready` took stays with the service and goes back with it.
#[tokio::test]
async fn a_panicking_cost_loses_no_token() {
    for wait in [false, true] {
        let limiter = RateLimiter::builder(quota(1, Duration::from_secs(60)))
            .clock(ManualClock::new())
            .build();
        let layer = RateLimitLayer::new(limiter.clone()).cost(|_: &u32| -> u32 { panic!("a bug") });
        let layer = if wait { layer.waiting() } else { layer };
        let mut svc = layer.layer(service_fn(echo));
        svc.ready().await.expect("ready");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(svc.call(1))));
        assert!(panicked.is_err());
        drop(svc);
        assert!(
            (limiter.tokens() - 1.0).abs() < 1e-9,
            "wait {wait}: {}",
            limiter.tokens()
        );
    }
}

/// A caller that skips `poll_ready` in wait mode is checked in `call`
/// rather than let through or panicking.
#[tokio::test]
async fn wait_mode_call_without_ready_is_still_limited() {
    let limiter = RateLimiter::builder(quota(1, Duration::from_secs(60)))
        .clock(ManualClock::new())
        .build();
    let mut svc = RateLimitLayer::new(limiter)
        .waiting()
        .layer(service_fn(echo));
    assert!(svc.call(1).await.is_ok());
    assert!(svc.call(2).await.is_err());
}

#[tokio::test]
async fn keyed_layer_limits_each_key_and_shares_across_clones() {
    let limiter = KeyedRateLimiter::builder(quota(2, Duration::from_secs(60)))
        .clock(ManualClock::new())
        .build()
        .unwrap();
    let layer = KeyedRateLimitLayer::new(limiter.clone(), |n: &u32| n % 3);
    let (mut a, mut b) = (layer.layer(service_fn(echo)), layer.layer(service_fn(echo)));
    let mut admitted = [0; 3];
    for n in 0..30u32 {
        let svc = if n % 2 == 0 { &mut a } else { &mut b };
        if svc.ready().await.unwrap().call(n).await.is_ok() {
            admitted[(n % 3) as usize] += 1;
        }
    }
    assert_eq!(admitted, [2, 2, 2]);
    assert_eq!(limiter.len(), 3);
}

/// A dry run lets every request through but counts as usual; the inner
/// service is asked to be ready even for a would-be refusal.
#[tokio::test]
async fn dry_run_lets_everything_through() {
    let limiter = RateLimiter::builder(quota(2, Duration::from_secs(60)))
        .clock(ManualClock::new())
        .build();
    let (inner, mut handle) = tower_test::mock::pair::<u32, u32>();
    let mut svc =
        tower_test::mock::Spawn::new(RateLimitLayer::new(limiter.clone()).dry_run().layer(inner));
    handle.allow(0);
    for i in 0..2 {
        assert!(
            svc.poll_ready().is_pending(),
            "request {i}: the inner service's"
        );
        handle.allow(1);
        assert!(svc.poll_ready().is_ready());
        let call = svc.call(i);
        let (request, respond) = handle.next_request().await.unwrap();
        respond.send_response(request);
        assert_eq!(call.await.unwrap(), i);
    }
    // Over the limit: still the inner service's readiness, still through.
    assert!(svc.poll_ready().is_pending());
    handle.allow(1);
    assert!(svc.poll_ready().is_ready());
    let call = svc.call(2);
    let (request, respond) = handle.next_request().await.unwrap();
    respond.send_response(request);
    assert_eq!(call.await.unwrap(), 2);
    // The two admitted were counted: the limit is spent for a real check.
    assert!(limiter.check().is_err(), "counted as usual");
}

/// A cost takes that many tokens; over what is left it refuses the whole
/// request and gives the first token back; zero is free.
#[tokio::test]
async fn costs_take_their_tokens() {
    let limiter = RateLimiter::builder(quota(3, Duration::from_secs(60)))
        .clock(ManualClock::new())
        .build();
    let mut svc = RateLimitLayer::new(limiter.clone())
        .cost(|n: &u32| *n)
        .layer(service_fn(echo));
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    assert!((limiter.tokens() - 1.0).abs() < 1e-9);
    assert!(svc.ready().await.unwrap().call(2).await.is_err());
    assert!((limiter.tokens() - 1.0).abs() < 1e-9, "nothing kept");
    assert_eq!(svc.ready().await.unwrap().call(0).await.unwrap(), 0);
    assert!((limiter.tokens() - 1.0).abs() < 1e-9, "free");
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    // More than the burst, from a full bucket: refused for good, and the
    // token poll_ready took comes back.
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(quota(3, Duration::from_secs(60)))
        .clock(clock.clone())
        .build();
    for mode in ["reject", "wait"] {
        let layer = RateLimitLayer::new(limiter.clone()).cost(|n: &u32| *n);
        let layer = if mode == "wait" {
            layer.waiting()
        } else {
            layer
        };
        let mut svc = layer.layer(service_fn(echo));
        let err = svc.ready().await.unwrap().call(4).await.unwrap_err();
        let refused = Refused::find(&*err).unwrap();
        assert_eq!(refused.kind(), RefusalKind::RateLimited);
        assert_eq!(refused.retry_after(), None, "{mode}: final");
        assert!(
            (limiter.tokens() - 3.0).abs() < 1e-9,
            "{mode}: nothing kept"
        );
    }
}

#[tokio::test]
async fn a_costly_request_in_wait_mode_does_not_overspend_a_budget() {
    let budget = Quota::per_second(0).burst(10).build().unwrap();
    let limiter = RateLimiter::builder(budget)
        .clock(ManualClock::new())
        .build();
    for _ in 0..9 {
        limiter.check().unwrap();
    }
    let mut svc = RateLimitLayer::new(limiter.clone())
        .waiting()
        .cost(|n: &u32| *n)
        .layer(service_fn(echo));
    // One token left: `poll_ready` takes it, and the other four of the cost
    // can never come.
    let err = svc.ready().await.unwrap().call(5).await.unwrap_err();
    let refused = Refused::find(&*err).unwrap();
    assert_eq!(refused.retry_after(), None, "final");
    assert!(
        (limiter.tokens() - 1.0).abs() < 1e-9,
        "nothing kept: {}",
        limiter.tokens()
    );
}

/// The same permit taken on top of earlier use, and dropped before the
/// bucket has refilled past it: all of it comes back (the refill so far
/// went to the earlier use, not to it).
#[tokio::test]
async fn an_unused_permit_on_a_used_bucket_comes_back_whole() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(quota(3, Duration::from_secs(3)))
        .clock(clock.clone())
        .build();
    limiter.check().unwrap();
    limiter.check().unwrap();
    let (inner, mut handle) = tower_test::mock::pair::<u32, u32>();
    handle.allow(0);
    let mut held = tower_test::mock::Spawn::new(RateLimitLayer::new(limiter.clone()).layer(inner));
    assert!(held.poll_ready().is_pending(), "took the third token");
    clock.advance(Duration::from_millis(1_500));
    assert!(
        (limiter.tokens() - 1.5).abs() < 1e-9,
        "{}",
        limiter.tokens()
    );
    drop(held);
    assert!(
        (limiter.tokens() - 2.5).abs() < 1e-9,
        "the permit's token is back: {}",
        limiter.tokens()
    );
}

/// A permit taken by `poll_ready`, held while the inner service is not
/// ready, and dropped unspent long after: the bucket refilled meanwhile,
/// and what it could not hold is gone, so the give-back must not let a
/// second request through with a burst of one.
#[tokio::test]
async fn a_late_unused_permit_does_not_overfill_the_bucket() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(quota(1, Duration::from_secs(1)))
        .clock(clock.clone())
        .build();
    let (inner, mut handle) = tower_test::mock::pair::<u32, u32>();
    handle.allow(0);
    let mut held = tower_test::mock::Spawn::new(RateLimitLayer::new(limiter.clone()).layer(inner));
    assert!(
        held.poll_ready().is_pending(),
        "took the token, waits on the inner service"
    );
    clock.advance(Duration::from_secs(10));
    limiter.check().expect("the refilled token");
    drop(held);
    assert!(
        limiter.check().is_err(),
        "two admitted within a burst of one"
    );
}
