//! What each feature puts in the umbrella is there (run with all features).
#![cfg(all(
    feature = "breaker",
    feature = "ratelimit",
    feature = "tokio",
    feature = "http"
))]

use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn features_bring_their_crates() {
    let quota = seawall::ratelimit::Quota::per_second(1).build().unwrap();
    let limiter = seawall::ratelimit::RateLimiter::builder(quota)
        .clock(seawall::TokioClock::new())
        .build();
    limiter.acquire().await.unwrap();
    let start = tokio::time::Instant::now();
    limiter.acquire().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(seawall::ratelimit::http::RateLimitHeaders::new("api").is_ok());
    let breaker = seawall::breaker::CircuitBreaker::new(
        seawall::breaker::BreakerConfig::builder().build().unwrap(),
    );
    assert_eq!(breaker.state(), seawall::breaker::State::Closed);
    let _ = seawall::breaker::http::RefuseWithResponse;
    let _ = seawall::http::RefuseWithResponse;
    assert_eq!(seawall::RefusalKind::RateLimited.status(), 429);
}
