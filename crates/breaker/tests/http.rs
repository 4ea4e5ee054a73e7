//! The `http` feature: a `5xx` counts as a failure, an open breaker answers
//! `503` with `Retry-After` (the time left in open), a full bulkhead `503`,
//! a deadline `504`, and the services keep the inner error type.
#![cfg(feature = "http")]

use std::convert::Infallible;
use std::time::Duration;

use http::header::RETRY_AFTER;
use http::{Request, Response, StatusCode};
use seawall_breaker::http::{RefusalMarker, RefuseWithResponse};
use seawall_breaker::tower::{BulkheadLayer, CircuitBreakerLayer, TimeoutLayer};
use seawall_breaker::{BreakerConfig, Bulkhead, CircuitBreaker, State};
use seawall_core::ManualClock;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// A request naming the status the upstream answers, and how long it takes.
fn request(status: u16, millis: u64) -> Request<String> {
    Request::new(format!("{status} {millis}"))
}

async fn upstream(request: Request<String>) -> Result<Response<String>, Infallible> {
    let (status, millis) = request.body().split_once(' ').expect("status millis");
    tokio::time::sleep(Duration::from_millis(millis.parse().expect("millis"))).await;
    let mut response = Response::new(String::from("upstream"));
    *response.status_mut() = StatusCode::from_u16(status.parse().expect("status")).expect("code");
    Ok(response)
}

/// Sends one request through `svc` and returns its response.
async fn send<S>(svc: &mut S, status: u16, millis: u64) -> Response<String>
where
    S: Service<Request<String>, Response = Response<String>, Error = Infallible>,
{
    let Ok(response) = svc
        .ready()
        .await
        .expect("ready")
        .call(request(status, millis))
        .await;
    response
}

fn retry_after(response: &Response<String>) -> Option<&str> {
    response
        .headers()
        .get(RETRY_AFTER)
        .map(|value| value.to_str().expect("ascii"))
}

#[tokio::test]
async fn server_errors_open_the_breaker_and_it_answers_503_with_the_time_left() {
    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .count_window(4)
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(10))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let breaker = CircuitBreaker::with_clock(config, clock.clone());
    // The error type stays the inner one: `Infallible`, as axum wants.
    let mut svc: tower::util::BoxService<_, _, Infallible> = tower::util::BoxService::new(
        CircuitBreakerLayer::http(breaker.clone()).layer(service_fn(upstream)),
    );

    // 4xx is the client's mistake: it does not count against the upstream.
    for status in [404, 404, 200, 200] {
        let response = send(&mut svc, status, 0).await;
        assert_eq!(response.status().as_u16(), status);
    }
    assert_eq!(breaker.state(), State::Closed);
    for _ in 0..2 {
        let response = send(&mut svc, 502, 0).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    }
    assert_eq!(breaker.state(), State::Open, "{:?}", breaker.snapshot());

    let refused = send(&mut svc, 200, 0).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&refused), Some("10"));
    assert_eq!(
        refused.body(),
        "service unavailable: retry in 10 s\n",
        "seawall answered; the upstream was not called"
    );
    assert!(refused.extensions().get::<RefusalMarker>().is_some());

    clock.advance(Duration::from_millis(6_500));
    let refused = send(&mut svc, 200, 0).await;
    assert_eq!(retry_after(&refused), Some("4"), "3.5 s left, rounded up");

    // At exactly the end of the wait it still refuses, with nothing left
    // (which the header rounds up to a second).
    clock.advance(Duration::from_millis(3_500));
    let refused = send(&mut svc, 200, 0).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&refused), Some("1"));

    // Half-open: one trial; its 200 closes the circuit.
    clock.advance(Duration::from_nanos(1));
    let trial = send(&mut svc, 200, 0).await;
    assert_eq!(trial.status(), StatusCode::OK);
    assert_eq!(breaker.state(), State::Closed);
}

/// The breaker's own timeout answers 504, like the timeout layer's.
#[tokio::test(start_paused = true)]
async fn the_breakers_timeout_answers_504() {
    let config = BreakerConfig::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let breaker = CircuitBreaker::with_clock(config, ManualClock::new());
    let mut svc = CircuitBreakerLayer::http(breaker.clone()).layer(service_fn(upstream));
    let timed_out = send(&mut svc, 200, 1_000).await;
    assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(breaker.snapshot().failures, 1);
}

#[tokio::test]
async fn forced_open_answers_503_without_retry_after() {
    let breaker = CircuitBreaker::new(BreakerConfig::builder().build().unwrap());
    let mut svc = CircuitBreakerLayer::http(breaker.clone()).layer(service_fn(upstream));
    breaker.force_open();
    let refused = send(&mut svc, 200, 0).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&refused), None);
}

/// The timeout inside the breaker answers 504, which the breaker counts
/// as a failure like any 5xx; the bulkhead outside answers 503.
#[tokio::test(start_paused = true)]
async fn deadlines_answer_504_and_count_a_full_bulkhead_answers_503() {
    let config = BreakerConfig::builder()
        .count_window(2)
        .minimum_calls(2)
        .build()
        .unwrap();
    let breaker = CircuitBreaker::with_clock(config, ManualClock::new());
    let bulkhead = Bulkhead::builder().max_concurrent(1).build().unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(BulkheadLayer::new(bulkhead).refusal(RefuseWithResponse))
        .layer(CircuitBreakerLayer::http(breaker.clone()))
        .layer(TimeoutLayer::new(Duration::from_millis(100)).refusal(RefuseWithResponse))
        .service_fn(upstream);

    let slow = tokio::spawn(svc.ready().await.unwrap().call(request(200, 1_000)));
    tokio::task::yield_now().await;
    let full = send(&mut svc, 200, 0).await;
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&full), None);
    assert_eq!(
        breaker.snapshot().calls,
        0,
        "the bulkhead's refusal never reached the breaker"
    );

    let timed_out = slow.await.unwrap().unwrap();
    assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);
    let snapshot = breaker.snapshot();
    assert_eq!((snapshot.calls, snapshot.failures), (1, 1));
}

/// Two breakers stacked (say a per-route one outside a per-host one): the
/// inner one's `503`s are seawall's refusals, marked as such, so they do not
/// open the outer one; the upstream's own `503`s would.
#[tokio::test]
async fn an_inner_breakers_refusals_do_not_open_an_outer_one() {
    let config = || {
        BreakerConfig::builder()
            .count_window(4)
            .minimum_calls(4)
            .wait_in_open(Duration::from_secs(60))
            .build()
            .unwrap()
    };
    let outer = CircuitBreaker::with_clock(config(), ManualClock::new());
    let inner = CircuitBreaker::with_clock(config(), ManualClock::new());
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::http(outer.clone()))
        .layer(CircuitBreakerLayer::http(inner.clone()))
        .service_fn(upstream);

    // Four upstream failures: both breakers saw them, and both open...
    for _ in 0..4 {
        assert_eq!(
            send(&mut svc, 500, 0).await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!((outer.state(), inner.state()), (State::Open, State::Open));

    // ...so start again with the outer one healthy, the inner one open.
    outer.reset();
    for _ in 0..8 {
        let refused = send(&mut svc, 200, 0).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.extensions().get::<RefusalMarker>().is_some());
    }
    assert_eq!(outer.state(), State::Closed, "{:?}", outer.snapshot());
    assert_eq!(outer.snapshot().calls, 0, "the inner refusals were ignored");

    // The upstream's own 503s (no marker) count against it.
    inner.disable();
    for _ in 0..4 {
        assert_eq!(
            send(&mut svc, 503, 0).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(outer.state(), State::Open);
}

/// A client that accepts `application/problem+json` gets the refusal as a
/// problem document (RFC 9457); others get a line of text.
#[tokio::test]
async fn refusals_are_problem_json_when_the_client_accepts_it() {
    let breaker = CircuitBreaker::new(BreakerConfig::builder().build().unwrap());
    breaker.force_open();
    let mut svc = CircuitBreakerLayer::http(breaker).layer(service_fn(upstream));

    let mut asking = request(200, 0);
    asking.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/problem+json"),
    );
    let Ok(problem) = svc.ready().await.unwrap().call(asking).await;
    assert_eq!(problem.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        problem.headers()[http::header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(
        problem.body(),
        r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"service unavailable"}"#
    );

    let text = send(&mut svc, 200, 0).await;
    assert_eq!(
        text.headers()[http::header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert_eq!(text.body(), "service unavailable\n");
}
