//! The server `scripts/bench-http` loads with `wrk`: one handler, served
//! bare by hyper or behind a stack of middleware.
//!
//! ```text
//! cargo run --release --example bench_server -- <stack> [port]
//! ```
//!
//! - `bare`: the handler as a hyper service;
//! - `tower`: tower's own stack: tower-http's catch-panic, a concurrency
//!   limit and a timeout;
//! - `seawall`: seawall's full stack: seawall's catch-panic (a panic
//!   answers `500`), a per-client rate limit keyed by the
//!   connection's peer IP, a bulkhead, a circuit breaker and a timeout,
//!   answering refusals as HTTP.
//!   With `SEAWALL_CLOCK=coarse` the limiter and the breaker read the
//!   `CoarseClock`; with `SEAWALL_LEAK=1` the limiter, the bulkhead and the
//!   breaker are leaked at startup (their clones count no references).
//!
//! The limits are set so that nothing is refused: the bench measures what
//! the stack costs a request it lets through. `WORKERS` sets tokio's worker
//! threads (default 2). The server prints `listening on <addr>` once it
//! accepts connections, and runs until killed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use seawall::breaker::tower::{BulkheadLayer, CircuitBreakerLayer, TimeoutLayer};
use seawall::breaker::{BreakerConfig, Bulkhead, CircuitBreaker};
use seawall::ratelimit::tower::KeyedRateLimitLayer;
use seawall::ratelimit::{KeyedRateLimiter, Quota};
use seawall::recover::tower::CatchPanicLayer as SeawallCatchPanicLayer;
use seawall::{Clock, CoarseClock, MonotonicClock};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;

/// The handler every stack serves.
async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello\n"))))
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let stack = args.next().unwrap_or_default();
    let port: u16 = args.next().map_or(Ok(0), |p| p.parse())?;
    let workers: usize = std::env::var("WORKERS").map_or(Ok(2), |w| w.parse())?;
    let coarse = std::env::var("SEAWALL_CLOCK").is_ok_and(|c| c == "coarse");
    let leak = std::env::var("SEAWALL_LEAK").is_ok_and(|l| l == "1");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = TcpListener::bind(("127.0.0.1", port)).await?;
            println!("listening on {}", listener.local_addr()?);
            match (stack.as_str(), coarse) {
                ("bare", _) => serve_bare(listener).await,
                ("tower", _) => serve_tower(listener).await,
                ("seawall", false) => serve_seawall(listener, MonotonicClock::new(), leak).await,
                ("seawall", true) => serve_seawall(listener, CoarseClock::new(), leak).await,
                _ => Err(format!("unknown stack {stack:?}: bare, tower or seawall").into()),
            }
        })
}

/// Serves each connection with the service `connection` makes for it.
async fn serve<F, S, B>(listener: TcpListener, connection: F) -> Result<(), BoxError>
where
    F: Fn(SocketAddr) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    loop {
        let (stream, peer) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let service = connection(peer);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn serve_bare(listener: TcpListener) -> Result<(), BoxError> {
    serve(listener, |_| hyper::service::service_fn(hello)).await
}

async fn serve_tower(listener: TcpListener) -> Result<(), BoxError> {
    let stack = ServiceBuilder::new()
        .layer(CatchPanicLayer::new())
        .layer(tower::limit::ConcurrencyLimitLayer::new(10_000))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(5)))
        .service_fn(hello);
    serve(listener, move |_| {
        let stack = stack.clone();
        // hyper calls through `&self`: each request gets a clone, as with
        // hyper-util's `TowerToHyperService`.
        hyper::service::service_fn(move |request| stack.clone().oneshot(request))
    })
    .await
}

async fn serve_seawall<C: Clock + Clone>(
    listener: TcpListener,
    clock: C,
    leak: bool,
) -> Result<(), BoxError> {
    let unlimited = Quota::per_second(1_000_000_000).build()?;
    let mut limiter = KeyedRateLimiter::builder(unlimited)
        .clock(clock.clone())
        .build()?;
    let mut breaker = CircuitBreaker::builder(BreakerConfig::builder().build()?)
        .clock(clock)
        .build();
    let mut bulkhead = Bulkhead::builder().max_concurrent(10_000).build()?;
    if leak {
        // Built once, for the life of the server: clones count nothing.
        (limiter, breaker, bulkhead) = (limiter.leak(), breaker.leak(), bulkhead.leak());
    }
    let guard = ServiceBuilder::new()
        .layer(BulkheadLayer::http(bulkhead))
        .layer(CircuitBreakerLayer::http(breaker))
        .layer(TimeoutLayer::http(Duration::from_secs(5)))
        .service_fn(hello);
    serve(listener, move |peer: SocketAddr| {
        // The per-client limit keys on the connection's peer address, which
        // a hyper server knows once per connection. (An axum server puts it
        // in each request's extensions instead, and keys with `PeerIp`.)
        let ip = peer.ip();
        let stack = ServiceBuilder::new()
            .layer(SeawallCatchPanicLayer::http())
            .layer(KeyedRateLimitLayer::http(
                limiter.clone(),
                move |_: &Request<Incoming>| ip,
            ))
            .service(guard.clone());
        hyper::service::service_fn(move |request| stack.clone().oneshot(request))
    })
    .await
}
