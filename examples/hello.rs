//! The smallest seawall server: one route, one rate limit per client.
//!
//! `cargo run --release --example hello`, then request `/` quickly: each
//! client IP gets bursts of 5, then 2 requests a second; the sixth quick
//! request gets `429 Too Many Requests` with `Retry-After`. Every answer
//! carries the `RateLimit` headers. `PORT` changes the port (3000).

use std::net::{IpAddr, SocketAddr};

use axum::{Router, routing::get};
use seawall::Clock;
use seawall::ratelimit::http::{PeerIp, RateLimitHeaders};
use seawall::ratelimit::tower::KeyedRateLimitLayer;
use seawall::ratelimit::{KeyedRateLimiter, Quota};

/// Bursts of 5, then 2 a second.
pub(crate) fn quota() -> Quota {
    Quota::per_second(2)
        .burst(5)
        .build()
        .expect("a valid quota")
}

/// `GET /`, limited per client IP (the test runs it on a manual clock).
pub(crate) fn app<C: Clock>(limiter: KeyedRateLimiter<IpAddr, C>) -> Router {
    let headers = RateLimitHeaders::new("per-client").expect("a valid policy name");
    let limit = KeyedRateLimitLayer::http(limiter, PeerIp::new()).headers(headers);
    Router::new()
        .route("/", get(|| async { "hello from behind seawall\n" }))
        .layer(limit)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |port| port.parse())?;
    let limiter = KeyedRateLimiter::builder(quota())
        .max_keys(100_000)
        .build()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("seawall hello on http://{addr}; try:");
    println!(
        "  for i in $(seq 7); do curl -s -o /dev/null -w '%{{http_code}}\\n' http://{addr}/; done"
    );
    let app = app(limiter).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
