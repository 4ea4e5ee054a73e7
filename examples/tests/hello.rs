//! Drives the `hello` example over real HTTP, on a manual clock so nothing
//! sleeps: within the quota 200, then 429 with `Retry-After`, then 200 again
//! once the wait has passed.

#[allow(dead_code)] // its `main` is the example's
#[path = "../hello.rs"]
mod hello;

mod common;

use common::{get, header};

use std::net::SocketAddr;
use std::time::Duration;

use seawall::ManualClock;
use seawall::ratelimit::KeyedRateLimiter;
use tokio::net::TcpListener;

/// Serves the example on a free port, its limiter on `clock`.
async fn serve(clock: &ManualClock) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let limiter = KeyedRateLimiter::builder(hello::quota())
        .clock(clock.clone())
        .build()
        .expect("a valid limiter");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let app = hello::app(limiter).into_make_service_with_connect_info::<SocketAddr>();
    (
        addr,
        tokio::spawn(async move { axum::serve(listener, app).await }),
    )
}

#[tokio::test]
async fn quota_then_429_then_200_after_the_wait() {
    let clock = ManualClock::new();
    let (addr, server) = serve(&clock).await;

    // The burst: five pass, each saying how many are left.
    for left in (0..5).rev() {
        let (status, head) = get(addr, "/").await;
        assert_eq!(status, 200, "{head}");
        assert!(head.ends_with("hello from behind seawall\n"), "{head}");
        assert_eq!(
            header(&head, "ratelimit-policy"),
            Some(r#""per-client";q=5;w=3"#)
        );
        let limit = header(&head, "ratelimit").unwrap();
        assert!(
            limit.starts_with(&format!(r#""per-client";r={left};"#)),
            "{limit}"
        );
    }

    // The sixth is refused, and told when to come back.
    let (status, head) = get(addr, "/").await;
    assert_eq!(status, 429, "{head}");
    assert_eq!(header(&head, "retry-after"), Some("1"));
    // Full again in 2.5 s (five tokens at 2 a second): `t` rounds up.
    assert_eq!(header(&head, "ratelimit"), Some(r#""per-client";r=0;t=3"#));
    assert!(head.ends_with("rate limited: retry in 1 s\n"), "{head}");

    // Half a second later (2 a second) one more passes, then the next waits.
    clock.advance(Duration::from_millis(500));
    assert_eq!(get(addr, "/").await.0, 200);
    assert_eq!(get(addr, "/").await.0, 429);

    server.abort();
}
