//! Half-open always ends: trials that hang, trials a timeout outside the
//! breaker drops, and the waits told to refused callers.

use std::future::pending;
use std::time::Duration;

use seawall_breaker::{
    BreakerConfig, BreakerConfigBuilder, BreakerError, BreakerRefusal, CircuitBreaker, State,
};
use seawall_core::{ManualClock, TokioClock};

/// The first failure opens for 5 s; one trial place.
fn one_trial() -> BreakerConfigBuilder {
    BreakerConfig::builder()
        .count_window(1)
        .minimum_calls(1)
        .wait_in_open(Duration::from_secs(5))
        .permitted_calls_in_half_open(1)
}

const PAST_THE_WAIT: Duration = Duration::from_millis(5_001);

/// A trial that never answers: every other caller is refused with the time
/// left in half-open, and once `max_wait_in_half_open` has passed the
/// breaker opens again (and says so when asked, before any call).
#[test]
fn hanging_trials_reopen_after_the_longest_wait() {
    let config = one_trial()
        .max_wait_in_half_open(Duration::from_secs(10))
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let b = CircuitBreaker::with_clock(config, clock.clone());
    b.try_acquire().unwrap().failure();
    clock.advance(PAST_THE_WAIT);
    let hung = b.try_acquire().unwrap(); // the trial, never recorded
    clock.advance(Duration::from_secs(4));
    assert_eq!(
        b.try_acquire().unwrap_err(),
        BreakerRefusal::HalfOpenFull {
            retry_after: Duration::from_secs(6)
        }
    );
    clock.advance(Duration::from_secs(6));
    assert!(
        matches!(b.try_acquire(), Err(BreakerRefusal::HalfOpenFull { .. })),
        "the deadline itself still belongs to half-open"
    );
    clock.advance(Duration::from_nanos(1));
    assert_eq!(
        b.try_acquire().unwrap_err(),
        BreakerRefusal::Open {
            retry_after: Duration::from_secs(5)
        }
    );
    assert_eq!(b.state(), State::Open);
    // The hung trial's late answer belongs to a period that is over.
    hung.success();
    assert_eq!(b.state(), State::Open);
    clock.advance(PAST_THE_WAIT);
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
}

/// With no one calling, half-open still ends at its deadline, and `state`
/// says so.
#[test]
fn an_idle_half_open_period_ends_too() {
    let config = one_trial().permitted_calls_in_half_open(3).build().unwrap();
    let clock = ManualClock::new();
    let b = CircuitBreaker::with_clock(config, clock.clone());
    b.try_acquire().unwrap().failure();
    clock.advance(PAST_THE_WAIT);
    assert_eq!(b.state(), State::HalfOpen);
    b.try_acquire().unwrap().success(); // one of three trials
    clock.advance(Duration::from_secs(30) + Duration::from_nanos(1));
    assert_eq!(b.state(), State::Open);
}

/// Nobody calls a half-open breaker, but something reads its state (a
/// metrics export): its longest wait passing with no trial let through is
/// no reopening. It stays half-open, the wait does not grow, and the first
/// call when traffic comes back is a trial.
#[test]
fn a_half_open_period_that_let_no_trial_through_does_not_reopen() {
    let config = one_trial()
        .max_wait_in_half_open(Duration::from_secs(10))
        .wait_growth(2.0, Duration::from_secs(600))
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let b = CircuitBreaker::with_clock(config, clock.clone());
    b.try_acquire().unwrap().failure();
    for _ in 0..5 {
        clock.advance(Duration::from_secs(11));
        assert_eq!(b.state(), State::HalfOpen, "looked at, never called");
    }
    b.try_acquire().expect("a trial").failure();
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        b.retry_after(),
        Some(Duration::from_secs(10)),
        "the first reopening: 5 s grown once"
    );
}

/// A breaker inside a timeout (`timeout(breaker.call(..))`): the timeout
/// drops the trial. Dropped before `dropped_trial_failure_after` (half the
/// longest half-open wait, without a slow-call rule) it frees its place;
/// dropped after it, it counts as a failure and the breaker opens again.
#[tokio::test(start_paused = true)]
async fn a_timeout_outside_drops_trials_that_fail_when_late() {
    let config = one_trial()
        .max_wait_in_half_open(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(config.dropped_trial_failure_after(), Duration::from_secs(5));
    let b = CircuitBreaker::with_clock(config, TokioClock::new());
    b.call(|| async { Err::<(), _>("down") }).await.unwrap_err();
    tokio::time::advance(PAST_THE_WAIT).await;

    // Cut off early (a client that went away): ignored, place freed.
    let early =
        tokio::time::timeout(Duration::from_secs(1), b.call(pending::<Result<(), &str>>)).await;
    assert!(early.is_err(), "the outer timeout fired");
    assert_eq!(b.state(), State::HalfOpen);

    // Cut off late: a failure, so it does not keep feeding a dead upstream.
    let late =
        tokio::time::timeout(Duration::from_secs(5), b.call(pending::<Result<(), &str>>)).await;
    assert!(late.is_err());
    assert_eq!(b.state(), State::Open);
}

/// The other order (`breaker.call(|| timeout(..))`): the timeout's error is
/// the call's error, a failure however early.
#[tokio::test(start_paused = true)]
async fn a_timeout_inside_fails_the_trial() {
    let b = CircuitBreaker::with_clock(one_trial().build().unwrap(), TokioClock::new());
    b.call(|| async { Err::<(), _>("down") }).await.unwrap_err();
    tokio::time::advance(PAST_THE_WAIT).await;
    let err = b
        .call(|| tokio::time::timeout(Duration::from_millis(10), pending::<()>()))
        .await
        .unwrap_err();
    assert!(matches!(err, BreakerError::Inner(_)));
    assert_eq!(b.state(), State::Open);
}

/// With a slow-call rule, that duration is the bar for a dropped trial.
#[tokio::test(start_paused = true)]
async fn the_slow_call_duration_sets_the_bar_for_dropped_trials() {
    let config = one_trial()
        .slow_calls(Duration::from_millis(300), 100.0)
        .build()
        .unwrap();
    assert_eq!(
        config.dropped_trial_failure_after(),
        Duration::from_millis(300)
    );
    let b = CircuitBreaker::with_clock(config, TokioClock::new());
    b.call(|| async { Err::<(), _>("down") }).await.unwrap_err();
    tokio::time::advance(PAST_THE_WAIT).await;
    let permit = b.try_acquire().unwrap();
    tokio::time::advance(Duration::from_millis(299)).await;
    drop(permit);
    assert_eq!(b.state(), State::HalfOpen, "dropped early: ignored");
    let permit = b.try_acquire_owned().unwrap();
    tokio::time::advance(Duration::from_millis(300)).await;
    drop(permit);
    assert_eq!(b.state(), State::Open, "dropped late: a failure");
}

/// Jitter spreads the open waits over `wait × (1 ± factor)`.
#[test]
fn jitter_spreads_the_open_waits() {
    let config = one_trial()
        .wait_in_open(Duration::from_secs(10))
        .wait_jitter(0.2)
        .build()
        .unwrap();
    let mut waits = Vec::new();
    for _ in 0..200 {
        let b = CircuitBreaker::with_clock(config.clone(), ManualClock::new());
        b.try_acquire().unwrap().failure();
        waits.push(b.retry_after().unwrap());
    }
    let (low, high) = (Duration::from_secs(8), Duration::from_secs(12));
    assert!(waits.iter().all(|w| (low..=high).contains(w)), "{waits:?}");
    let below = waits
        .iter()
        .filter(|w| **w < Duration::from_secs(10))
        .count();
    assert!((50..150).contains(&below), "{below} of 200 below the wait");
    let distinct = waits.iter().collect::<std::collections::HashSet<_>>().len();
    assert!(distinct > 150, "{distinct} distinct waits of 200");
}

/// Jitter spreads the waits one breaker tells its refused callers, never
/// below the time left.
#[test]
fn jitter_spreads_the_waits_told_to_callers() {
    let config = one_trial()
        .wait_in_open(Duration::from_secs(10))
        .wait_jitter(0.5)
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let b = CircuitBreaker::with_clock(config, clock.clone());
    b.try_acquire().unwrap().failure();
    let left = b.retry_after().unwrap();
    let told: Vec<Duration> = (0..200)
        .map(|_| b.try_acquire().unwrap_err().retry_after().unwrap())
        .collect();
    assert!(
        told.iter().all(|w| *w >= left && *w <= left.mul_f64(1.5)),
        "{told:?}"
    );
    let distinct = told.iter().collect::<std::collections::HashSet<_>>().len();
    assert!(distinct > 150, "{distinct} distinct waits of 200");
}
