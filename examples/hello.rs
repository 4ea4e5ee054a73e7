//! The smallest seawall server: a per-client rate limit in front of
//! everything, and a flaky upstream behind a circuit breaker, a timeout and
//! a bulkhead.
//!
//! ```text
//! cargo run --release --example hello
//! ```
//!
//! - `GET /`: each client IP may make 5 requests at once and 2 a second
//!   after that; the sixth quick request gets `429 Too Many Requests` with
//!   `Retry-After`. Every response carries the `RateLimit-Policy` and
//!   `RateLimit` headers.
//! - `GET /flaky`: calls an in-process upstream that fails when asked
//!   (`?fail=1`, a `500`) or is slow (`?slow=3000`, in milliseconds; the
//!   deadline is 1 s, so that is a `504`). Four calls with half of them
//!   failing open the breaker: calls are then answered `503` with
//!   `Retry-After` at once, without reaching the upstream. After 10 s, two
//!   trial calls go through (half-open); if they succeed it closes again.
//!   At most 32 calls run at once; the 33rd gets a `503` without waiting.
//! - `GET /breaker`: the breaker's state and counts.
//!
//! Set `PORT` to listen elsewhere than 3000.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::get;
use seawall::Clock;
use seawall::breaker::tower::{BulkheadLayer, CircuitBreakerLayer, TimeoutLayer};
use seawall::breaker::{BreakerConfig, Bulkhead, CircuitBreaker};
use seawall::ratelimit::http::{PeerIp, RateLimitHeaders};
use seawall::ratelimit::tower::KeyedRateLimitLayer;
use seawall::ratelimit::{KeyedRateLimiter, Quota};
use tower::ServiceBuilder;

/// The per-client quota: bursts of 5, then 2 a second.
pub(crate) fn quota() -> Quota {
    Quota::per_second(2)
        .burst(5)
        .build()
        .expect("a valid quota")
}

/// The upstream's breaker: judged over the last 10 calls once there are 4,
/// open at 50% failures (or 50% calls slower than 500 ms) for 10 s, then 2
/// trial calls.
pub(crate) fn breaker_config() -> BreakerConfig {
    BreakerConfig::builder()
        .count_window(10)
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .slow_calls(Duration::from_millis(500), 50.0)
        .wait_in_open(Duration::from_secs(10))
        .permitted_calls_in_half_open(2)
        .build()
        .expect("a valid breaker config")
}

/// The deadline of one call to the upstream.
pub(crate) const DEADLINE: Duration = Duration::from_secs(1);

/// The app. Taking the limiter and the breaker as arguments lets the test
/// drive them with a manual clock, and the deadline, keep its waits short.
pub(crate) fn app<C: Clock, B: Clock>(
    limiter: KeyedRateLimiter<IpAddr, C>,
    breaker: CircuitBreaker<B>,
    deadline: Duration,
) -> Router {
    let headers = RateLimitHeaders::new("per-client").expect("a valid policy name");
    let limit = KeyedRateLimitLayer::http(limiter, PeerIp::new()).headers(headers);
    let bulkhead = Bulkhead::builder()
        .max_concurrent(32)
        .build()
        .expect("a valid bulkhead");
    // Outermost first: a full bulkhead answers 503 without counting against
    // the upstream; the timeout's 504 counts, like the upstream's own 5xx.
    let guard = ServiceBuilder::new()
        .layer(BulkheadLayer::http(bulkhead))
        .layer(CircuitBreakerLayer::http(breaker.clone()))
        .layer(TimeoutLayer::http(deadline));
    Router::new()
        .route("/", get(|| async { "hello from behind seawall\n" }))
        .route("/flaky", get(flaky_upstream).layer(guard))
        .route("/breaker", get(move || async move { describe(&breaker) }))
        .layer(limit)
}

/// The flaky upstream: `?fail=1` fails, `?slow=<ms>` takes that long.
async fn flaky_upstream(request: Request) -> Result<(StatusCode, &'static str), Infallible> {
    let query = request.uri().query().unwrap_or_default();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    };
    if let Some(millis) = param("slow").and_then(|ms| ms.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }
    if param("fail") == Some("1") {
        return Ok((StatusCode::INTERNAL_SERVER_ERROR, "upstream failed\n"));
    }
    Ok((StatusCode::OK, "upstream ok\n"))
}

fn describe<C: Clock>(breaker: &CircuitBreaker<C>) -> String {
    let snapshot = breaker.snapshot();
    let mut text = format!(
        "state: {}\ncalls: {}\nfailures: {}\nslow calls: {}\n",
        snapshot.state, snapshot.calls, snapshot.failures, snapshot.slow_calls
    );
    if let Some(wait) = snapshot.retry_after {
        text.push_str(&format!("open for: {}ms\n", wait.as_millis()));
    }
    text
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse().map_err(|e| format!("PORT={port:?}: {e}"))?,
        Err(_) => 3000,
    };
    let limiter = KeyedRateLimiter::builder(quota())
        .max_keys(100_000)
        .build()?;
    let breaker = CircuitBreaker::builder(breaker_config())
        .name("flaky")
        .on_transition(|name, t| println!("breaker {name}: {} -> {}", t.from, t.to))
        .build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("seawall hello: listening on http://{addr}");
    println!("each client: bursts of 5, then 2 requests a second. Try:");
    println!(
        "  for i in $(seq 7); do curl -s -o /dev/null -w '%{{http_code}}\\n' http://{addr}/; done"
    );
    println!("  curl -i http://{addr}/");
    println!("open the breaker, then watch it refuse, half-open and close:");
    println!("  for i in 1 2 3 4; do curl -s 'http://{addr}/flaky?fail=1'; sleep 0.5; done");
    println!("  curl -i http://{addr}/flaky; curl -s http://{addr}/breaker");
    println!("  sleep 10; curl -s http://{addr}/flaky; curl -s http://{addr}/flaky");
    println!("  curl -s http://{addr}/breaker");
    let app = app(limiter, breaker, DEADLINE).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
