//! The smallest seawall server: a per-client rate limit in front of a
//! handler.
//!
//! ```text
//! cargo run --release --example hello
//! ```
//!
//! Each client IP may make 5 requests at once and 2 a second after that; the
//! sixth quick request gets `429 Too Many Requests` with `Retry-After`.
//! Every response carries the `RateLimit-Policy` and `RateLimit` headers.
//! Set `PORT` to listen elsewhere than 3000.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::routing::get;
use seawall::Clock;
use seawall::ratelimit::http::{PeerIp, TooManyRequests};
use seawall::ratelimit::tower::KeyedRateLimitLayer;
use seawall::ratelimit::{KeyedRateLimiter, Quota};

/// The per-client quota: bursts of 5, then 2 a second.
pub(crate) fn quota() -> Quota {
    Quota::per_second(2)
        .burst(5)
        .build()
        .expect("a valid quota")
}

/// The app: `GET /` behind a limit per client IP. Taking the limiter as an
/// argument lets the test drive it with a manual clock.
pub(crate) fn app<C: Clock>(limiter: KeyedRateLimiter<Option<IpAddr>, C>) -> Router {
    let refusal = TooManyRequests::with_headers("per-client").expect("a valid policy name");
    let limit = KeyedRateLimitLayer::new(limiter, PeerIp::new()).refusal(refusal);
    Router::new()
        .route("/", get(|| async { "hello from behind seawall\n" }))
        .layer(limit)
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
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("seawall hello: listening on http://{addr}");
    println!("each client: bursts of 5, then 2 requests a second. Try:");
    println!(
        "  for i in $(seq 7); do curl -s -o /dev/null -w '%{{http_code}}\\n' http://{addr}/; done"
    );
    println!("  curl -i http://{addr}/");
    let app = app(limiter).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
