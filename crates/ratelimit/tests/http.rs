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

fn keyed(
    clock: &ManualClock,
    per_second: u32,
) -> seawall_ratelimit::KeyedRateLimiter<std::net::IpAddr, ManualClock> {
    let quota = Quota::per_second(per_second)
        .build()
        .expect("a valid quota");
    seawall_ratelimit::KeyedRateLimiter::builder(quota)
        .clock(clock.clone())
        .build()
        .expect("a valid limiter")
}

fn from(peer: [u8; 4]) -> Request<String> {
    let mut request = Request::new(String::new());
    request
        .extensions_mut()
        .insert(std::net::SocketAddr::from((peer, 4_000)));
    request
}

/// A server that records no peer address: every request is refused with
/// a 500 that says nothing to the client, instead of all clients sharing
/// one bucket.
#[tokio::test]
async fn a_peer_limit_without_peer_addresses_answers_500_not_one_bucket() {
    use seawall_ratelimit::http::PeerIp;
    use seawall_ratelimit::tower::KeyedRateLimitLayer;
    let clock = ManualClock::new();
    let limiter = keyed(&clock, 100);
    let mut svc =
        KeyedRateLimitLayer::http(limiter.clone(), PeerIp::new()).layer(service_fn(hello));
    let refused = send(&mut svc, Request::new(String::new())).await;
    assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(refused.body(), "internal error\n");
    assert!(refused.headers().get(RETRY_AFTER).is_none());
    assert!(limiter.is_empty(), "nothing was counted");
    let admitted = send(&mut svc, from([192, 0, 2, 1])).await;
    assert_eq!(admitted.status(), StatusCode::OK);
    // Trying the limit in a dry run never takes the site down.
    let mut dry = KeyedRateLimitLayer::http(limiter, PeerIp::new())
        .dry_run()
        .layer(service_fn(hello));
    let passed = send(&mut dry, Request::new(String::new())).await;
    assert_eq!(passed.status(), StatusCode::OK);
}

/// Exempt keys pass untracked; a dry run lets everything through but
/// still reports (headers) and counts; a cost takes that many tokens.
#[tokio::test]
async fn exempt_keys_dry_runs_and_costs() {
    use seawall_ratelimit::http::{PeerIp, RATELIMIT};
    use seawall_ratelimit::tower::KeyedRateLimitLayer;
    let clock = ManualClock::new();
    let health_checker = std::net::IpAddr::from([10, 0, 0, 9]);
    let limiter = keyed(&clock, 2);
    let mut exempt = KeyedRateLimitLayer::http(limiter.clone(), PeerIp::new())
        .exempt_keys([health_checker])
        .layer(service_fn(hello));
    for _ in 0..10 {
        let response = send(&mut exempt, from([10, 0, 0, 9])).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(limiter.is_empty(), "exempt keys are not tracked");

    let headers = RateLimitHeaders::new("trial").expect("valid");
    let mut dry = KeyedRateLimitLayer::http(limiter.clone(), PeerIp::new())
        .headers(headers)
        .dry_run()
        .layer(service_fn(hello));
    for i in 0..5 {
        let response = send(&mut dry, from([192, 0, 2, 2])).await;
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
        let left = if i < 2 { 1 - i } else { 0 };
        assert!(
            response.headers()[RATELIMIT]
                .to_str()
                .expect("ascii")
                .starts_with(&format!("\"trial\";r={left};")),
            "request {i}: {:?}",
            response.headers()[RATELIMIT]
        );
    }

    let mut costly = KeyedRateLimitLayer::http(limiter.clone(), PeerIp::new())
        .cost(|request: &Request<String>| {
            if request.uri().path() == "/batch" {
                2
            } else {
                1
            }
        })
        .layer(service_fn(hello));
    let mut batch = from([192, 0, 2, 3]);
    *batch.uri_mut() = "/batch".parse().expect("a path");
    assert_eq!(send(&mut costly, batch).await.status(), StatusCode::OK);
    let refused = send(&mut costly, from([192, 0, 2, 3])).await;
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "both tokens went"
    );
    // A cost over the burst is final: no Retry-After.
    let mut huge = KeyedRateLimitLayer::http(limiter, PeerIp::new())
        .cost(|_: &Request<String>| 3)
        .layer(service_fn(hello));
    let refused = send(&mut huge, from([192, 0, 2, 4])).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().get(RETRY_AFTER).is_none());
}

/// Requests of cost 6 (`/six`) and 4 (`/four`) under 1 a second, burst
/// 10. On both layers: `/six` passes (4 left); a second `/six` may pass in
/// 2 s, when 6 tokens are back, and the bucket is full in 6 s (`t`; it
/// once said 11, taking off one token's time, not the request's six).
/// Then `/four` passes (none left) and `/six` is refused with the bucket
/// full in 10 s: the plain layer refuses it in `poll_ready`, told the wait
/// for one token (1 s); the keyed layer for all six (6 s).
#[tokio::test]
async fn the_ratelimit_header_of_a_costly_refusal_counts_its_whole_cost() {
    use seawall_ratelimit::http::{PeerIp, RATELIMIT};
    use seawall_ratelimit::tower::KeyedRateLimitLayer;
    let clock = ManualClock::new();
    let quota = Quota::per_second(1)
        .burst(10)
        .build()
        .expect("a valid quota");
    let cost = |request: &Request<String>| {
        if request.uri().path() == "/four" {
            4
        } else {
            6
        }
    };
    let to = |path: &str| {
        let mut request = from([192, 0, 2, 1]);
        *request.uri_mut() = path.parse().expect("a path");
        request
    };
    let headers = RateLimitHeaders::new("api").expect("a valid name");
    let mut plain = RateLimitLayer::http(RateLimiter::builder(quota).clock(clock.clone()).build())
        .headers(headers.clone())
        .cost(cost)
        .layer(service_fn(hello));
    let keyed = seawall_ratelimit::KeyedRateLimiter::builder(quota)
        .clock(clock.clone())
        .build()
        .expect("a valid limiter");
    let mut keyed = KeyedRateLimitLayer::http(keyed, PeerIp::new())
        .headers(headers)
        .cost(cost)
        .layer(service_fn(hello));
    let mut plain_answers = Vec::new();
    let mut keyed_answers = Vec::new();
    for path in ["/six", "/six", "/four", "/six"] {
        plain_answers.push(send(&mut plain, to(path)).await);
        keyed_answers.push(send(&mut keyed, to(path)).await);
    }
    for (name, answers, last_wait) in [("plain", plain_answers, "1"), ("keyed", keyed_answers, "6")]
    {
        let [six, refused, four, empty] = <[_; 4]>::try_from(answers).expect("four answers");
        assert_eq!(six.headers()[RATELIMIT], r#""api";r=4;t=6"#, "{name}");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert_eq!(refused.headers()[RETRY_AFTER], "2", "{name}");
        assert_eq!(refused.headers()[RATELIMIT], r#""api";r=0;t=6"#, "{name}");
        assert_eq!(four.headers()[RATELIMIT], r#""api";r=0;t=10"#, "{name}");
        assert_eq!(empty.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert_eq!(empty.headers()[RETRY_AFTER], last_wait, "{name}");
        assert_eq!(empty.headers()[RATELIMIT], r#""api";r=0;t=10"#, "{name}");
    }
}
