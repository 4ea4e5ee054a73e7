//! The `http` feature: refusals answered `429 Too Many Requests` through
//! core's `RefuseWithResponse`, with `Retry-After`, a readable body (or a
//! problem document), the refusal marker, and the `RateLimit` headers on
//! admitted and refused responses alike.
#![cfg(feature = "http")]

use std::convert::Infallible;
use std::time::Duration;

use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use seawall_core::http::{RefusalMarker, RefuseWithResponse};
use seawall_core::{ManualClock, RefusalKind};
use seawall_ratelimit::http::RateLimitHeaders;
use seawall_ratelimit::tower::RateLimitLayer;
use seawall_ratelimit::{Quota, RateLimiter};
use tower::{Layer, Service, ServiceExt, service_fn};

fn limiter(clock: &ManualClock) -> RateLimiter<ManualClock> {
    let quota = Quota::per_second(2)
        .burst(2)
        .build()
        .expect("a valid quota");
    RateLimiter::builder(quota).clock(clock.clone()).build()
}

async fn hello(_: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::from("hello")))
}

async fn send<S>(svc: &mut S, request: Request<String>) -> Response<String>
where
    S: Service<Request<String>, Response = Response<String>, Error = Infallible>,
{
    let Ok(response) = svc.ready().await.expect("ready").call(request).await;
    response
}

/// The issue's own line: a reject-mode layer told to refuse with a
/// response answers 429 with `Retry-After`, as the breaker answers 503.
#[tokio::test]
async fn refuse_with_response_answers_429_with_its_wait() {
    let clock = ManualClock::new();
    let mut svc = RateLimitLayer::new(limiter(&clock))
        .refusal(RefuseWithResponse)
        .layer(service_fn(hello));
    for _ in 0..2 {
        let admitted = send(&mut svc, Request::new(String::new())).await;
        assert_eq!(admitted.status(), StatusCode::OK);
        assert_eq!(admitted.body(), "hello");
    }
    let refused = send(&mut svc, Request::new(String::new())).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()[RETRY_AFTER], "1", "500 ms, rounded up");
    assert_eq!(refused.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(refused.body(), "rate limited: retry in 1 s\n");
    let marker = refused.extensions().get::<RefusalMarker>().expect("marked");
    assert_eq!(marker.kind(), RefusalKind::RateLimited);
    assert_eq!(marker.retry_after(), Some(Duration::from_millis(500)));

    clock.advance(Duration::from_millis(500));
    assert_eq!(
        send(&mut svc, Request::new(String::new())).await.status(),
        StatusCode::OK
    );
}

/// `http` is the same layer, and with `headers` every response carries the
/// `RateLimit` headers, the 429 included; a client asking for JSON gets a
/// problem document.
#[tokio::test]
async fn the_http_layer_adds_ratelimit_headers_to_429s_too() {
    let clock = ManualClock::new();
    let mut svc = RateLimitLayer::http(limiter(&clock))
        .headers(RateLimitHeaders::new("api").expect("a valid name"))
        .layer(service_fn(hello));
    let first = send(&mut svc, Request::new(String::new())).await;
    assert_eq!(first.headers()["ratelimit-policy"], r#""api";q=2;w=1"#);
    assert_eq!(first.headers()["ratelimit"], r#""api";r=1;t=1"#);
    send(&mut svc, Request::new(String::new())).await;

    let mut asking = Request::new(String::new());
    asking
        .headers_mut()
        .insert(ACCEPT, HeaderValue::from_static("application/json"));
    let refused = send(&mut svc, asking).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["ratelimit-policy"], r#""api";q=2;w=1"#);
    // Full again in 1 s: two tokens at two a second.
    assert_eq!(refused.headers()["ratelimit"], r#""api";r=0;t=1"#);
    assert_eq!(refused.headers()[CONTENT_TYPE], "application/problem+json");
    assert_eq!(
        refused.body(),
        r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"rate limited: retry in 1 s","retry_after":1}"#
    );
}
