//! Drives the `hello` example over real HTTP, on a manual clock so nothing
//! sleeps: within the quota 200, then 429 with `Retry-After`, then 200 again
//! once the wait has passed.

#[allow(dead_code)] // its `main` is the example's
#[path = "../hello.rs"]
mod hello;

use std::net::SocketAddr;
use std::time::Duration;

use seawall::ManualClock;
use seawall::ratelimit::KeyedRateLimiter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One `GET /` on a new connection: the status and the raw response,
/// lowercased.
async fn get(addr: SocketAddr) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("read");
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {reply:?}"));
    (status, reply.to_ascii_lowercase())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

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
        let (status, head) = get(addr).await;
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
    let (status, head) = get(addr).await;
    assert_eq!(status, 429, "{head}");
    assert_eq!(header(&head, "retry-after"), Some("1"));
    // Full again in 2.5 s (five tokens at 2 a second): `t` rounds up.
    assert_eq!(header(&head, "ratelimit"), Some(r#""per-client";r=0;t=3"#));
    assert!(head.ends_with("rate limited: retry in 1 s\n"), "{head}");

    // Half a second later (2 a second) one more passes, then the next waits.
    clock.advance(Duration::from_millis(500));
    assert_eq!(get(addr).await.0, 200);
    assert_eq!(get(addr).await.0, 429);

    server.abort();
}
