//! The readiness rule: a rate-limit service that is going to refuse is
//! ready at once, without polling its inner service, and refuses in `call`.
//! (A keyed limit cannot know that before the request, so it keeps the
//! inner service's backpressure.) Each inner service here is a `tower_test`
//! mock that is not ready.
#![cfg(feature = "tower")]

use std::time::Duration;

use seawall_core::{ManualClock, RefusalKind, Refused};
use seawall_ratelimit::tower::{KeyedRateLimitLayer, RateLimitLayer};
use seawall_ratelimit::{KeyedRateLimiter, Quota, RateLimiter};
use tower::Layer;
use tower_test::mock::{self, Spawn};

fn one_a_minute() -> Quota {
    Quota::per_minute(1).build().expect("a valid quota")
}

#[tokio::test]
async fn reject_mode_refuses_without_waiting_for_a_stuck_inner_service() {
    let limiter = RateLimiter::builder(one_a_minute())
        .clock(ManualClock::new())
        .build();
    let (inner, mut handle) = mock::pair::<&str, &str>();
    handle.allow(0);
    let layer = RateLimitLayer::new(limiter.clone());

    // Admitted: the permit is taken, then readiness is the inner service's.
    let mut first = Spawn::new(layer.layer(inner.clone()));
    assert!(first.poll_ready::<&str>().is_pending());
    assert!(limiter.tokens() < 1.0, "the permit is held while waiting");

    // Over the limit: ready at once, without the inner service, refused.
    let mut second = Spawn::new(layer.layer(inner));
    assert!(second.poll_ready::<&str>().is_ready());
    handle.allow(1);
    assert!(!second.is_woken(), "the inner service was polled");
    let err = second.call("refused").await.unwrap_err();
    let refused = Refused::find(&*err).unwrap();
    assert_eq!(refused.kind(), RefusalKind::RateLimited);
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(60)));

    // The first, now ready, forwards its request.
    assert!(first.is_woken());
    assert!(first.poll_ready::<&str>().is_ready());
    let call = first.call("admitted");
    let (request, respond) = handle.next_request().await.unwrap();
    assert_eq!(request, "admitted");
    respond.send_response("ok");
    assert_eq!(call.await.unwrap(), "ok");
}

/// A keyed limit learns the key only in `call`, so it cannot know in
/// `poll_ready` that it will refuse: it keeps the inner service's
/// backpressure, and refuses a key over its limit in `call` without passing
/// the request on.
#[tokio::test]
async fn a_keyed_limit_keeps_backpressure_and_refuses_in_call() {
    let limiter = KeyedRateLimiter::builder(one_a_minute())
        .clock(ManualClock::new())
        .build()
        .expect("a valid limiter");
    let (inner, mut handle) = mock::pair::<&'static str, &'static str>();
    handle.allow(0);
    let mut svc =
        Spawn::new(KeyedRateLimitLayer::new(limiter, |user: &&'static str| *user).layer(inner));
    assert!(
        svc.poll_ready::<&str>().is_pending(),
        "the inner service waits"
    );

    handle.allow(1);
    assert!(svc.is_woken());
    assert!(svc.poll_ready::<&str>().is_ready());
    let ada = svc.call("ada");
    let (request, respond) = handle.next_request().await.unwrap();
    assert_eq!(request, "ada");
    respond.send_response("hello, ada");
    assert_eq!(ada.await.unwrap(), "hello, ada");

    handle.allow(1);
    assert!(svc.poll_ready::<&str>().is_ready());
    let err = svc.call("ada").await.unwrap_err(); // over: refused
    assert_eq!(
        Refused::find(&*err).unwrap().kind(),
        RefusalKind::RateLimited
    );
    assert!(
        handle.poll_request().is_pending(),
        "the request was not passed on"
    );
}

/// When the inner service is ready, the keyed limit calls it directly.
#[tokio::test]
async fn a_keyed_limit_forwards_at_once_when_the_inner_service_is_ready() {
    let limiter = KeyedRateLimiter::new(one_a_minute());
    let (inner, mut handle) = mock::pair::<&'static str, &'static str>();
    let mut svc =
        Spawn::new(KeyedRateLimitLayer::new(limiter, |user: &&'static str| *user).layer(inner));
    assert!(svc.poll_ready::<&str>().is_ready());
    let call = svc.call("bob");
    let (request, respond) = handle.next_request().await.unwrap();
    assert_eq!(request, "bob");
    respond.send_response("hi");
    assert_eq!(call.await.unwrap(), "hi");
}

/// A refusal found by `poll_ready` is decided afresh at the next poll: once
/// the limiter has room again, the service takes the permit and asks its
/// inner service.
#[tokio::test]
async fn a_refusal_is_decided_afresh_at_every_poll() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(one_a_minute())
        .clock(clock.clone())
        .build();
    limiter.check().expect("the one request of this minute");
    let (inner, mut handle) = mock::pair::<&str, &str>();
    handle.allow(0);
    let mut svc = Spawn::new(RateLimitLayer::new(limiter.clone()).layer(inner));
    assert!(
        svc.poll_ready::<&str>().is_ready(),
        "only a refusal is ready here"
    );
    clock.advance(Duration::from_secs(60));
    assert!(
        svc.poll_ready::<&str>().is_pending(),
        "admitted: the inner service's"
    );
    assert!(limiter.tokens() < 1.0, "the permit is held");
}
