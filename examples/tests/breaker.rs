//! Drives the `breaker` example over real HTTP: the breaker (on a manual
//! clock, so nothing sleeps) opening with `503` and `Retry-After`,
//! half-opening and closing; and the bulkhead refusing the call past its
//! places.

#[allow(dead_code)] // its `main` is the example's
#[path = "../breaker.rs"]
mod breaker;

mod common;

use common::{get, header};

use std::net::SocketAddr;
use std::time::Duration;

use seawall::ManualClock;
use seawall::breaker::CircuitBreaker;
use tokio::net::TcpListener;

/// Serves the example on a free port.
async fn serve(
    breaker: CircuitBreaker<ManualClock>,
    deadline: Duration,
    max_concurrent: u32,
) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let app = breaker::app(breaker, deadline, max_concurrent);
    (
        addr,
        tokio::spawn(async move { axum::serve(listener, app).await }),
    )
}

#[tokio::test]
async fn the_flaky_route_opens_refuses_half_opens_and_closes() {
    let clock = ManualClock::new();
    let b = CircuitBreaker::with_clock(breaker::breaker_config(), clock.clone());
    let (addr, server) = serve(b, Duration::from_millis(50), breaker::MAX_CONCURRENT).await;
    let state = |addr| async move {
        let (status, reply) = get(addr, "/breaker").await;
        assert_eq!(status, 200, "{reply}");
        reply
            .lines()
            .find_map(|line| line.strip_prefix("state: "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no state in {reply:?}"))
    };

    // One success, two failures and a call past the deadline: 3 failures
    // in 4 calls, so the breaker opens.
    let (status, reply) = get(addr, "/flaky").await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.ends_with("upstream ok\n"), "{reply}");
    assert_eq!(get(addr, "/flaky?fail=1").await.0, 500);
    assert_eq!(get(addr, "/flaky?fail=1").await.0, 500);
    assert_eq!(get(addr, "/flaky?slow=60000").await.0, 504);

    // Open: refused at once, told to come back when the 10 s are over.
    let (status, reply) = get(addr, "/flaky").await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(header(&reply, "retry-after"), Some("10"));
    assert!(!reply.contains("upstream"), "the upstream was not called");
    assert!(
        reply.ends_with("service unavailable: retry in 10 s\n"),
        "{reply}"
    );
    clock.advance(Duration::from_secs(4));
    assert_eq!(state(addr).await, "open");
    let (status, reply) = get(addr, "/flaky").await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(header(&reply, "retry-after"), Some("6"));

    // After the wait two trial calls go through; both succeed, so it closes.
    clock.advance(Duration::from_millis(6_001));
    assert_eq!(state(addr).await, "half-open");
    assert_eq!(get(addr, "/flaky").await.0, 200);
    assert_eq!(state(addr).await, "half-open");
    assert_eq!(get(addr, "/flaky").await.0, 200);
    assert_eq!(state(addr).await, "closed");

    server.abort();
}

/// Two places: two slow calls hold them, and a third is refused at once
/// with `503`, which the breaker does not count.
#[tokio::test]
async fn the_bulkhead_refuses_the_call_past_its_places() {
    let b = CircuitBreaker::with_clock(breaker::breaker_config(), ManualClock::new());
    let (addr, server) = serve(b.clone(), Duration::from_secs(10), 2).await;
    let slow = [
        tokio::spawn(get(addr, "/flaky?slow=1000")),
        tokio::spawn(get(addr, "/flaky?slow=1000")),
    ];
    // Until both slow calls hold their places.
    let mut polls = 0;
    loop {
        let (status, reply) = get(addr, "/breaker").await;
        assert_eq!(status, 200, "{reply}");
        if reply.contains("in flight: 2\n") {
            break;
        }
        polls += 1;
        assert!(polls < 10_000, "the slow calls never got in: {reply}");
        tokio::task::yield_now().await;
    }
    let (status, reply) = get(addr, "/flaky").await;
    assert_eq!(status, 503, "{reply}");
    assert!(reply.contains("overloaded"), "{reply}");
    for call in slow {
        assert_eq!(call.await.expect("joined").0, 200);
    }
    assert_eq!(b.window(), (2, 0, 0), "the refusal was not counted");
    assert_eq!(get(addr, "/flaky").await.0, 200, "places free again");
    server.abort();
}
