//! The limiter's contract, for any sequence of (advance time, request n):
//!
//! - no over-admission: in every window `[s, t]`, the requests admitted are
//!   at most `burst + (t - s) / T` (`T` the emission interval);
//! - no under-admission: a request is refused only if admitting it would
//!   break that bound for some window ending now.
//!
//! With whole-nanosecond times and interval, GCRA is exact, so both hold
//! with no slack at all (the issue allows one emission interval).

use std::time::Duration;

use proptest::prelude::*;
use seawall_core::ManualClock;
use seawall_ratelimit::{Quota, RateLimitError, RateLimiter};

#[derive(Debug, Clone, Copy)]
struct Step {
    advance: u64,
    n: u32,
}

fn steps(interval: u64, burst: u32) -> impl Strategy<Value = Vec<Step>> {
    // Advances up to three intervals (often zero, so requests bunch up);
    // asks for up to the burst (more is `InsufficientCapacity`, tested
    // elsewhere).
    let advance = prop_oneof![Just(0u64), 0..=interval * 3];
    prop::collection::vec(
        (advance, 0..=burst).prop_map(|(advance, n)| Step { advance, n }),
        1..150,
    )
}

fn scenario() -> impl Strategy<Value = (u64, u32, Vec<Step>)> {
    (1u64..=1_000_000, 1u32..=12)
        .prop_flat_map(|(interval, burst)| (Just(interval), Just(burst), steps(interval, burst)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn admits_exactly_what_the_bound_allows((interval, burst, steps) in scenario()) {
        let quota = Quota::per(Duration::from_nanos(interval), 1).burst(burst).build().unwrap();
        prop_assert_eq!(quota.emission_interval(), Duration::from_nanos(interval));
        let clock = ManualClock::new();
        let limiter = RateLimiter::builder(quota).clock(clock.clone()).build();

        // (time, n) of every admitted request, in order.
        let mut admitted: Vec<(u64, u64)> = Vec::new();
        let mut now = 0u64;
        for step in steps {
            clock.advance(Duration::from_nanos(step.advance));
            now += step.advance;
            let n = u64::from(step.n);
            // Would admitting `n` now break the bound for a window starting
            // at some earlier admitted request? (Windows starting elsewhere
            // are looser.) In integers: A * T > B * T + (t - s).
            let would_break = (0..admitted.len()).any(|i| {
                let start = admitted[i].0;
                let in_window: u64 = admitted[i..].iter().map(|(_, k)| k).sum();
                (in_window + n) * interval > u64::from(burst) * interval + (now - start)
            });
            match limiter.check_n(step.n) {
                Ok(()) => {
                    prop_assert!(!would_break, "admitted {n} at {now} past the bound: {admitted:?}");
                    admitted.push((now, n));
                }
                Err(RateLimitError::RateLimited(refused)) => {
                    prop_assert!(would_break, "refused {n} at {now} within the bound: {admitted:?}");
                    // And it names the moment it would pass.
                    prop_assert!(refused.retry_after() > Duration::ZERO);
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }

    /// The refusal's `retry_after` is exact: a step before it still refuses,
    /// at it the same request passes.
    #[test]
    fn retry_after_is_exact((interval, burst, steps) in scenario()) {
        let quota = Quota::per(Duration::from_nanos(interval), 1).burst(burst).build().unwrap();
        let clock = ManualClock::new();
        let limiter = RateLimiter::builder(quota).clock(clock.clone()).build();
        for step in steps {
            clock.advance(Duration::from_nanos(step.advance));
            if let Err(RateLimitError::RateLimited(refused)) = limiter.check_n(step.n) {
                let wait = refused.retry_after();
                clock.advance(wait - Duration::from_nanos(1));
                prop_assert!(limiter.check_n(step.n).is_err());
                clock.advance(Duration::from_nanos(1));
                prop_assert!(limiter.check_n(step.n).is_ok());
            }
        }
    }
}
