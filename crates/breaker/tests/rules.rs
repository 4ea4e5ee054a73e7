//! The breaker's rules, one behaviour per test.

use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use seawall_breaker::{
    BreakerConfig, BreakerConfigBuilder, BreakerError, BreakerRefusal, CircuitBreaker, State,
    TimedOut, TrialRule,
};
use seawall_core::{ManualClock, Outcome, TokioClock};

fn breaker(config: BreakerConfig) -> (CircuitBreaker<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    (CircuitBreaker::with_clock(config, clock.clone()), clock)
}

/// Rules under which the first failure opens the circuit: a window of one
/// call, judged from the first.
fn opens_at_first_failure() -> BreakerConfigBuilder {
    BreakerConfig::builder().count_window(1).minimum_calls(1)
}

fn fail<C: seawall_core::Clock>(b: &CircuitBreaker<C>) {
    b.try_acquire().expect("let through").failure();
}

fn succeed<C: seawall_core::Clock>(b: &CircuitBreaker<C>) {
    b.try_acquire().expect("let through").success();
}

/// A known surprise in a peer crate: a count window of 100 that ignores
/// `minimum_calls = 10` until the window is full. Here the rule applies at
/// the 10th call.
#[test]
fn the_rule_applies_at_minimum_calls_not_at_a_full_window() {
    let config = BreakerConfig::builder()
        .count_window(100)
        .minimum_calls(10)
        .failure_rate_threshold(50.0)
        .build()
        .unwrap();
    let (b, _) = breaker(config);
    for _ in 0..9 {
        fail(&b);
    }
    assert_eq!(b.state(), State::Closed, "9 calls: not judged yet");
    succeed(&b); // the 10th call, a success: 9 of 10 failed
    assert_eq!(b.state(), State::Open);
}

/// In a time window, old calls expiring can raise the failure rate: here
/// three early successes leave the window, and the success that follows two
/// failures finds two failures in three calls.
#[test]
fn expiring_successes_can_open_a_time_window() {
    let config = BreakerConfig::builder()
        .time_window(Duration::from_secs(2))
        .minimum_calls(2)
        .failure_rate_threshold(50.0)
        .build()
        .unwrap();
    let (b, clock) = breaker(config);
    for _ in 0..3 {
        succeed(&b);
    }
    clock.advance(Duration::from_millis(1_500));
    fail(&b);
    fail(&b);
    assert_eq!(b.state(), State::Closed, "2 failures in 5 calls");
    clock.advance(Duration::from_millis(500)); // second 0 leaves the window
    succeed(&b);
    assert_eq!(b.state(), State::Open, "2 failures in 3 calls");
}

/// An idle time window still moves on: what `window()` and `snapshot()`
/// report is the window ending now, not at the last call.
#[test]
fn an_idle_time_window_reports_only_what_is_still_in_it() {
    let config = BreakerConfig::builder()
        .time_window(Duration::from_secs(10))
        .minimum_calls(5)
        .build()
        .unwrap();
    let (b, clock) = breaker(config);
    for _ in 0..3 {
        fail(&b);
    }
    assert_eq!(b.window(), (3, 3, 0));
    clock.advance(Duration::from_secs(60));
    assert_eq!(b.window(), (0, 0, 0), "the failures left the window");
    let snapshot = b.snapshot();
    assert_eq!((snapshot.calls, snapshot.failures), (0, 0));
    assert_eq!(snapshot.failure_rate, 0.0);
}

#[test]
fn slow_calls_open_the_circuit() {
    let config = BreakerConfig::builder()
        .count_window(4)
        .minimum_calls(4)
        .slow_calls(Duration::from_millis(100), 50.0)
        .build()
        .unwrap();
    let (b, clock) = breaker(config);
    for millis in [10, 150, 10, 200] {
        let permit = b.try_acquire().unwrap();
        clock.advance(Duration::from_millis(millis));
        permit.success();
    }
    assert_eq!(b.state(), State::Open, "half the calls were slow");
}

#[test]
fn a_run_of_failures_opens_whatever_the_rate() {
    let config = BreakerConfig::builder()
        .count_window(100)
        .minimum_calls(100)
        .consecutive_failures(3)
        .build()
        .unwrap();
    let (b, _) = breaker(config);
    fail(&b);
    fail(&b);
    succeed(&b); // breaks the run
    fail(&b);
    fail(&b);
    assert_eq!(b.state(), State::Closed);
    fail(&b);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn ignored_outcomes_count_for_nothing() {
    let config = BreakerConfig::builder()
        .count_window(4)
        .minimum_calls(2)
        .build()
        .unwrap();
    let (b, _) = breaker(config);
    for _ in 0..10 {
        b.try_acquire().unwrap().ignore();
        drop(b.try_acquire().unwrap()); // dropped: ignored too
    }
    assert_eq!(b.window(), (0, 0, 0));
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn open_wait_grows_with_each_reopening_and_resets_on_close() {
    let config = opens_at_first_failure()
        .wait_in_open(Duration::from_secs(1))
        .wait_growth(2.0, Duration::from_secs(3))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let (b, clock) = breaker(config);
    fail(&b);
    let mut waits = Vec::new();
    for _ in 0..3 {
        let wait = b.retry_after().unwrap();
        waits.push(wait.as_secs());
        clock.advance(wait + Duration::from_nanos(1));
        fail(&b); // the trial fails: open again, longer
    }
    assert_eq!(waits, [1, 2, 3], "doubling, capped at 3 s");
    clock.advance(b.retry_after().unwrap() + Duration::from_nanos(1));
    succeed(&b);
    assert_eq!(b.state(), State::Closed);
    fail(&b);
    assert_eq!(
        b.retry_after(),
        Some(Duration::from_secs(1)),
        "back to the first wait"
    );
}

/// 1,000 callers race into half-open: exactly the permitted number get
/// through, the rest are refused at once (never queued).
#[test]
fn exactly_the_permitted_trials_get_through_a_race() {
    let config = opens_at_first_failure()
        .permitted_calls_in_half_open(5)
        .build()
        .unwrap();
    let (b, clock) = breaker(config);
    fail(&b);
    clock.advance(Duration::from_millis(5_001));
    let through = AtomicUsize::new(0);
    let full = AtomicUsize::new(0);
    let start = Barrier::new(1_000);
    std::thread::scope(|s| {
        for _ in 0..1_000 {
            s.spawn(|| {
                start.wait();
                match b.try_acquire() {
                    // Held, not recorded, until every caller has tried.
                    Ok(permit) => {
                        through.fetch_add(1, Ordering::Relaxed);
                        std::mem::forget(permit);
                    }
                    Err(BreakerRefusal::HalfOpenFull { .. }) => {
                        full.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(other) => panic!("{other:?}"),
                }
            });
        }
    });
    assert_eq!(through.load(Ordering::Relaxed), 5);
    assert_eq!(full.load(Ordering::Relaxed), 995);
    assert_eq!(b.state(), State::HalfOpen);
}

/// A trial dropped without a record (a cancelled call) frees its place, so
/// half-open cannot wedge.
#[test]
fn a_cancelled_trial_cannot_wedge_half_open() {
    let config = opens_at_first_failure()
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let (b, clock) = breaker(config);
    fail(&b);
    clock.advance(Duration::from_millis(5_001));
    let trial = b.try_acquire().unwrap();
    assert!(matches!(
        b.try_acquire(),
        Err(BreakerRefusal::HalfOpenFull { .. })
    ));
    drop(trial);
    succeed(&b);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn forced_open_and_disabled_are_set_by_hand() {
    let config = opens_at_first_failure().build().unwrap();
    let (b, _) = breaker(config);
    b.force_open();
    assert!(matches!(b.try_acquire(), Err(BreakerRefusal::ForcedOpen)));
    b.disable();
    for _ in 0..10 {
        fail(&b);
    }
    assert_eq!(b.state(), State::Disabled, "nothing is judged");
    b.reset();
    assert_eq!(b.state(), State::Closed);
    fail(&b);
    assert_eq!(b.state(), State::Open);
}

/// A call let through before a transition reports nothing after it.
#[test]
fn outcomes_from_before_a_transition_are_dropped() {
    let config = BreakerConfig::builder()
        .count_window(2)
        .minimum_calls(1)
        .build()
        .unwrap();
    let (b, _) = breaker(config);
    let slow_to_finish = b.try_acquire_owned().unwrap();
    fail(&b); // opens
    b.reset();
    slow_to_finish.failure(); // from the old closed period: dropped
    assert_eq!(b.window(), (0, 0, 0));
    assert_eq!(b.state(), State::Closed);
}

/// The open wait on paused tokio time: refused until it is over, to the
/// nanosecond, then a trial goes through.
#[tokio::test(start_paused = true)]
async fn open_wait_on_paused_time() {
    let config = opens_at_first_failure()
        .wait_in_open(Duration::from_secs(30))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let b = CircuitBreaker::with_clock(config, TokioClock::new());
    let err = b.call(|| async { Err::<(), _>("down") }).await.unwrap_err();
    assert_eq!(err, BreakerError::Inner("down"));
    let refused = b.call(|| async { Ok::<_, &str>(()) }).await.unwrap_err();
    assert_eq!(
        refused,
        BreakerError::Refused(BreakerRefusal::Open {
            retry_after: Duration::from_secs(30)
        })
    );
    // `advance`, not `sleep`: tokio's timers round to milliseconds. At
    // exactly the end of the wait it still refuses.
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(
        b.call(|| async { Ok::<_, &str>(()) })
            .await
            .unwrap_err()
            .is_refusal()
    );
    tokio::time::advance(Duration::from_nanos(1)).await;
    b.call(|| async { Ok::<_, &str>(()) }).await.unwrap();
    assert_eq!(b.state(), State::Closed);
}

/// With a timeout, a call that runs past it is dropped, answered
/// `TimedOut` and counted as a failure; a call within it is untouched.
#[tokio::test(start_paused = true)]
async fn calls_past_the_timeout_fail() {
    let config = BreakerConfig::builder()
        .count_window(2)
        .minimum_calls(2)
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let b = CircuitBreaker::with_clock(config, TokioClock::new());
    let sleepy = |millis| async move {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok::<_, &str>(millis)
    };
    assert_eq!(b.call(|| sleepy(99)).await, Ok(99));
    let started = tokio::time::Instant::now();
    let err = b.call(|| sleepy(10_000)).await.unwrap_err();
    assert_eq!(
        err,
        BreakerError::TimedOut(TimedOut::new(Duration::from_millis(100)))
    );
    assert!(!err.is_refusal(), "the call ran");
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    let snapshot = b.snapshot();
    assert_eq!((snapshot.calls, snapshot.failures), (2, 1));
    assert_eq!(b.state(), State::Open, "one failure in two calls is 50%");
}

/// A classifier decides: here a 4xx is the caller's fault, not the
/// dependency's.
#[tokio::test]
async fn the_classifier_decides_what_fails() {
    let config = BreakerConfig::builder()
        .count_window(2)
        .minimum_calls(1)
        .build()
        .unwrap();
    let (b, _) = breaker(config);
    let client_errors_ignored = |r: &Result<u16, ()>| match r {
        Ok(status) if *status >= 500 => Outcome::Failure,
        Ok(status) if *status >= 400 => Outcome::Ignored,
        Ok(_) => Outcome::Success,
        Err(()) => Outcome::Failure,
    };
    for _ in 0..5 {
        let status = b
            .call_with(&client_errors_ignored, || async { Ok::<u16, ()>(404) })
            .await;
        assert_eq!(status, Ok(404));
    }
    assert_eq!(b.state(), State::Closed);
    let _ = b
        .call_with(&client_errors_ignored, || async { Ok::<u16, ()>(503) })
        .await;
    assert_eq!(b.state(), State::Open);
}

/// Transitions reach the callback with the breaker's name; the snapshot
/// reads state, counts and rates together.
#[test]
fn transitions_reach_the_callback_and_the_snapshot_tells_all() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let config = BreakerConfig::builder()
        .count_window(4)
        .minimum_calls(2)
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder(config)
        .clock(clock.clone())
        .name("db")
        .on_transition({
            let seen = std::sync::Arc::clone(&seen);
            move |name, t| seen.lock().unwrap().push((name.to_owned(), t.from, t.to))
        })
        .build();
    succeed(&b);
    let snapshot = b.snapshot();
    assert_eq!((snapshot.calls, snapshot.failures), (1, 0));
    fail(&b);
    let snapshot = b.snapshot();
    assert_eq!(snapshot.state, State::Open);
    assert!(snapshot.retry_after.is_some());
    clock.advance(Duration::from_millis(5_001));
    for _ in 0..3 {
        succeed(&b);
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("db".to_owned(), State::Closed, State::Open),
            ("db".to_owned(), State::Open, State::HalfOpen),
            ("db".to_owned(), State::HalfOpen, State::Closed),
        ]
    );
}

/// `state()` tells the state a call would meet: past the open wait it is
/// half-open without waiting for a call.
#[test]
fn state_half_opens_once_the_wait_has_passed() {
    let (b, clock) = breaker(opens_at_first_failure().build().unwrap());
    fail(&b);
    clock.advance(Duration::from_secs(5));
    assert_eq!(b.state(), State::Open, "the wait's last instant");
    clock.advance(Duration::from_nanos(1));
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.snapshot().state, State::HalfOpen);
}

/// Resetting a closed breaker empties its window and reports nothing: it
/// did not change state.
#[test]
fn a_reset_while_closed_reports_no_transition() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    let b = CircuitBreaker::builder(BreakerConfig::builder().build().unwrap())
        .on_transition(move |_, t| log.lock().unwrap().push((t.from, t.to)))
        .build();
    succeed(&b);
    b.reset();
    assert_eq!(b.window(), (0, 0, 0));
    assert!(seen.lock().unwrap().is_empty());
    b.force_open();
    b.reset();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Closed)
        ]
    );
}

/// Transition callbacks run after the breaker's lock is released: one that
/// calls back into the breaker (here, resetting it as soon as it opens)
/// does not deadlock.
#[test]
fn callbacks_run_outside_the_transition_lock() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let handle = std::sync::Arc::new(std::sync::OnceLock::<CircuitBreaker>::new());
        let inner = std::sync::Arc::clone(&handle);
        let b = CircuitBreaker::builder(opens_at_first_failure().build().unwrap())
            .on_transition(move |_, t| {
                if t.to == State::Open {
                    inner.get().expect("set").reset();
                }
            })
            .build();
        handle.set(b.clone()).unwrap();
        fail(&b);
        done.send(b.state()).unwrap();
    });
    let state = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the callback deadlocked on the transition lock");
    assert_eq!(state, State::Closed);
}

/// gobreaker's and hystrix-go's half-open rule: the first failed trial
/// opens again at once, without waiting for the others; all permitted
/// trials succeeding close.
#[test]
fn the_first_failed_trial_reopens_under_first_failure() {
    let config = opens_at_first_failure()
        .permitted_calls_in_half_open(3)
        .trial_rule(TrialRule::FirstFailure)
        .build()
        .unwrap();
    let (b, clock) = breaker(config);
    fail(&b);
    clock.advance(Duration::from_millis(5_001));
    let pending = b.try_acquire().unwrap();
    succeed(&b);
    assert_eq!(b.state(), State::HalfOpen);
    fail(&b);
    assert_eq!(b.state(), State::Open, "one failure, one trial still out");
    pending.success(); // from the period that ended: changes nothing
    assert_eq!(b.state(), State::Open);
    clock.advance(b.retry_after().unwrap() + Duration::from_nanos(1));
    for _ in 0..3 {
        assert_eq!(b.state(), State::HalfOpen);
        succeed(&b);
    }
    assert_eq!(b.state(), State::Closed);

    // Under the default rule, the rates of all three decide: one failure
    // of three is under 50%.
    let config = opens_at_first_failure()
        .permitted_calls_in_half_open(3)
        .build()
        .unwrap();
    let (b, clock) = breaker(config);
    fail(&b);
    clock.advance(Duration::from_millis(5_001));
    fail(&b);
    assert_eq!(b.state(), State::HalfOpen);
    succeed(&b);
    succeed(&b);
    assert_eq!(b.state(), State::Closed);
}

/// Consecutive failures as the only rule: no window is kept and no rate
/// judged, so failures that alternate with successes never open it.
#[test]
fn consecutive_failures_only_judges_nothing_else() {
    let config = BreakerConfig::builder()
        .consecutive_failures_only(3)
        .build()
        .unwrap();
    assert!(!config.judges_rates());
    assert_eq!(config.trial_rule(), TrialRule::FirstFailure);
    let (b, clock) = breaker(config);
    for i in 0..999 {
        if i % 3 == 2 {
            succeed(&b);
        } else {
            fail(&b);
        }
    }
    assert_eq!(b.state(), State::Closed, "never three in a row");
    assert_eq!(b.window(), (0, 0, 0), "no window kept");
    for _ in 0..3 {
        fail(&b);
    }
    assert_eq!(b.state(), State::Open);
    clock.advance(Duration::from_millis(5_001));
    fail(&b);
    assert_eq!(b.state(), State::Open, "the first failed trial reopens");

    let err = BreakerConfig::builder()
        .consecutive_failures_only(3)
        .slow_calls(Duration::from_secs(1), 50.0)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "slow_calls: cannot be set together with consecutive_failures_only, which judges no rates"
    );
    let err = BreakerConfig::builder()
        .consecutive_failures_only(3)
        .trial_rule(TrialRule::Rates)
        .build()
        .unwrap_err();
    assert!(
        err.to_string().starts_with("trial_rule: rates needs"),
        "{err}"
    );
    let err = BreakerConfig::builder()
        .count_window(10)
        .consecutive_failures_only(3)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "count_window: cannot be set together with consecutive_failures_only, which keeps no window"
    );
}

/// gobreaker's `Interval`: the counts start from zero at each interval,
/// where a sliding window would still hold the last one's failures.
#[test]
fn a_tumbling_window_starts_each_interval_empty() {
    let rules = |b: BreakerConfigBuilder| {
        b.minimum_calls(4)
            .failure_rate_threshold(50.0)
            .build()
            .unwrap()
    };
    let tumbling = rules(BreakerConfig::builder().tumbling_window(Duration::from_secs(10)));
    assert_eq!(tumbling.time_window(), Some(Duration::from_secs(10)));
    assert_eq!(tumbling.bucket_width(), Duration::from_secs(10));
    let sliding = rules(BreakerConfig::builder().time_window(Duration::from_secs(20)));
    for (config, opens) in [(tumbling, false), (sliding, true)] {
        let (b, clock) = breaker(config);
        clock.advance(Duration::from_secs(7));
        for _ in 0..3 {
            fail(&b);
        }
        clock.advance(Duration::from_secs(5)); // the next interval
        fail(&b); // a fourth failure: four calls in a sliding window
        assert_eq!(b.state() == State::Open, opens);
    }
}

/// A listener that panics is the listener's bug: the transition stands,
/// and the call that made it returns normally, even when it is made by a
/// permit dropped while its thread unwinds from another panic (a half-open
/// trial dropped late counts as a failure and reopens the breaker; a
/// second panic there would abort the process).
#[test]
fn a_panicking_listener_breaks_nothing() {
    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .count_window(1)
        .minimum_calls(1)
        .wait_in_open(Duration::from_secs(5))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let b = CircuitBreaker::builder(config)
        .clock(clock.clone())
        .on_transition(|_, _| panic!("the listener fell over"))
        .build();
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), State::Open);
    clock.advance(Duration::from_secs(6));
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _trial = b.try_acquire().unwrap();
        clock.advance(Duration::from_secs(20)); // past dropped_trial_failure_after
        panic!("the trial fell over");
    }));
    assert!(unwound.is_err());
    assert_eq!(b.state(), State::Open, "the late trial failed");
}
