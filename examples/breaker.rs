//! A flaky upstream behind a bulkhead, a circuit breaker and a timeout.
//!
//! ```text
//! cargo run --release --example breaker
//! ```
//!
//! - `GET /flaky` calls an in-process upstream that fails when asked
//!   (`?fail=1`, a `500`) or is slow (`?slow=3000`, in milliseconds; the
//!   deadline is 1 s, so that is a `504`). Four calls with half of them
//!   failing open the breaker: calls are then answered `503` with
//!   `Retry-After` at once, without reaching the upstream. After 10 s, two
//!   trial calls go through (half-open); if they succeed it closes again.
//!   At most 32 calls run at once; the 33rd gets a `503` without waiting.
//! - `GET /breaker`: the breaker's state and counts, and the calls in
//!   flight.
//!
//! It prints curl lines to try, in order. `PORT` changes the port (3000).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::get;
use seawall::Clock;
use seawall::breaker::tower::{BulkheadLayer, CircuitBreakerLayer, TimeoutLayer};
use seawall::breaker::{BreakerConfig, Bulkhead, CircuitBreaker};
use tower::ServiceBuilder;

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

/// Calls let in at once.
pub(crate) const MAX_CONCURRENT: u32 = 32;

/// The app. Taking the breaker, the deadline and the bulkhead's size as
/// arguments lets the test drive the breaker on a manual clock and keep its
/// waits short.
pub(crate) fn app<C: Clock>(
    breaker: CircuitBreaker<C>,
    deadline: Duration,
    max_concurrent: u32,
) -> Router {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(max_concurrent)
        .build()
        .expect("a valid bulkhead");
    // Outermost first: a full bulkhead answers 503 without counting against
    // the upstream; the timeout's 504 counts, like the upstream's own 5xx.
    let guard = ServiceBuilder::new()
        .layer(BulkheadLayer::http(bulkhead.clone()))
        .layer(CircuitBreakerLayer::http(breaker.clone()))
        .layer(TimeoutLayer::http(deadline));
    Router::new()
        .route("/flaky", get(flaky_upstream).layer(guard))
        .route(
            "/breaker",
            get(move || async move { describe(&breaker, &bulkhead) }),
        )
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

fn describe<C: Clock>(breaker: &CircuitBreaker<C>, bulkhead: &Bulkhead) -> String {
    let snapshot = breaker.snapshot();
    let mut text = format!(
        "state: {}\ncalls: {}\nfailures: {}\nslow calls: {}\nin flight: {}\n",
        snapshot.state,
        snapshot.calls,
        snapshot.failures,
        snapshot.slow_calls,
        bulkhead.max_concurrent() - bulkhead.available()
    );
    if let Some(wait) = snapshot.retry_after {
        text.push_str(&format!("open for: {}ms\n", wait.as_millis()));
    }
    text
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |port| port.parse())?;
    let breaker = CircuitBreaker::builder(breaker_config())
        .name("flaky")
        .on_transition(|name, t| println!("breaker {name}: {} -> {}", t.from, t.to))
        .build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("seawall breaker demo on http://{addr}; try, in order:");
    println!("  # four failures open the breaker; then it refuses with 503 at once");
    println!("  for i in 1 2 3 4; do curl -s 'http://{addr}/flaky?fail=1'; done");
    println!("  curl -si http://{addr}/flaky | head -4; curl -s http://{addr}/breaker");
    println!("  # after 10 s two trial calls go through and close it");
    println!("  sleep 11; curl -s http://{addr}/flaky; curl -s http://{addr}/flaky");
    println!("  curl -s http://{addr}/breaker");
    println!("  # 40 calls at once: 32 run, 8 get 503 from the bulkhead");
    println!(
        "  for i in $(seq 40); do curl -s -o /dev/null -w '%{{http_code}}\\n' 'http://{addr}/flaky?slow=300' & done | sort | uniq -c"
    );
    axum::serve(listener, app(breaker, DEADLINE, MAX_CONCURRENT)).await?;
    Ok(())
}
