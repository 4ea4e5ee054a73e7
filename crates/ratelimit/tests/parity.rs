//! One test per row of the Go `x/time/rate` parity table in
//! docs/ratelimit.md: each Go method's meaning, through its seawall
//! counterpart.

use std::time::Duration;

use seawall_core::{Clock, ManualClock, TokioClock};
use seawall_ratelimit::{Quota, RateLimitError, RateLimiter};

fn quota(per_second: u32, burst: u32) -> Quota {
    Quota::per_second(per_second)
        .burst(burst)
        .build()
        .expect("a valid quota")
}

fn manual(q: Quota) -> (RateLimiter<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    (RateLimiter::builder(q).clock(clock.clone()).build(), clock)
}

const MS: Duration = Duration::from_millis(1);

/// `NewLimiter(r, b)`: a new limiter is full, so `b` pass at once.
#[test]
fn new_limiter_starts_full() {
    let (limiter, _) = manual(quota(10, 4));
    for _ in 0..4 {
        limiter.check().unwrap();
    }
    assert!(limiter.check().is_err());
}

/// `Every(interval)`: one event per interval.
#[test]
fn every_interval_is_a_quota_of_one_per_interval() {
    let every = Quota::per(250 * MS, 1).build().unwrap();
    assert_eq!(every.emission_interval(), 250 * MS);
    let (limiter, clock) = manual(every);
    limiter.check().unwrap();
    assert_eq!(limiter.check().unwrap_err().retry_after(), 250 * MS);
    clock.advance(250 * MS);
    limiter.check().unwrap();
}

/// `Allow()`: one event now or not, taking nothing when refused.
#[test]
fn allow_admits_at_the_rate() {
    let (limiter, clock) = manual(quota(10, 1));
    limiter.check().unwrap();
    let refused = limiter.check().unwrap_err();
    assert_eq!(refused.retry_after(), 100 * MS);
    assert_eq!(refused.ready_at_nanos(), 100_000_000);
    clock.advance(99 * MS);
    assert_eq!(limiter.check().unwrap_err().retry_after(), MS);
    clock.advance(MS);
    limiter.check().unwrap();
}

/// `AllowN(t, n)`: all `n` at once or none; `n` over the burst never passes
/// (Go's `AllowN` returns false; seawall says why).
#[test]
fn allow_n_is_all_or_nothing() {
    let (limiter, clock) = manual(quota(10, 5));
    limiter.check_n(3).unwrap();
    match limiter.check_n(3) {
        Err(RateLimitError::RateLimited(e)) => assert_eq!(e.retry_after(), 100 * MS),
        other => panic!("{other:?}"),
    }
    // The refusal took nothing: the two left still pass.
    limiter.check_n(2).unwrap();
    clock.advance(Duration::from_secs(10));
    match limiter.check_n(6) {
        Err(RateLimitError::InsufficientCapacity(e)) => {
            assert_eq!((e.requested(), e.burst()), (6, 5));
            assert_eq!(
                e.to_string(),
                "asked for 6 at once, more than the burst of 5"
            );
        }
        other => panic!("{other:?}"),
    }
    limiter.check_n(0).unwrap();
}

/// `Wait(ctx)`: blocks until the event may happen.
#[tokio::test(start_paused = true)]
async fn wait_sleeps_until_admitted() {
    let limiter = RateLimiter::builder(quota(4, 2))
        .clock(TokioClock::new())
        .build();
    let start = tokio::time::Instant::now();
    for _ in 0..6 {
        limiter.acquire().await.unwrap();
    }
    // Two from the burst, then one every 250 ms.
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

/// `WaitN(ctx, n)`: waits for all `n`; `n` over the burst is an error at
/// once, never an endless wait.
#[tokio::test(start_paused = true)]
async fn wait_n_waits_for_all_or_fails_at_once() {
    let limiter = RateLimiter::builder(quota(10, 5))
        .clock(TokioClock::new())
        .build();
    let start = tokio::time::Instant::now();
    limiter.acquire_n(5).await.unwrap();
    limiter.acquire_n(3).await.unwrap();
    assert_eq!(start.elapsed(), 300 * MS);
    let Err(RateLimitError::InsufficientCapacity(err)) = limiter.acquire_n(6).await else {
        panic!("more than the burst");
    };
    assert_eq!(err.burst(), 5);
    assert_eq!(start.elapsed(), 300 * MS, "failed without waiting");
}

/// Go's `Wait` honours a cancelled context; in Rust, dropping the future
/// cancels, and a dropped `acquire` has taken nothing.
#[tokio::test(start_paused = true)]
async fn dropped_wait_takes_nothing() {
    let limiter = RateLimiter::builder(quota(1, 1))
        .clock(TokioClock::new())
        .build();
    limiter.check().unwrap();
    let gave_up = tokio::time::timeout(500 * MS, limiter.acquire()).await;
    assert!(gave_up.is_err(), "the wait was cut short");
    // At one second, the token is there for the next caller: the dropped
    // wait did not hold it.
    tokio::time::advance(500 * MS).await;
    limiter.check().unwrap();
}

/// `Reserve()` / `ReserveN(t, n)`: capacity taken now, with the delay to
/// wait; `Reservation.OK()` is the `Result`.
#[test]
fn reserve_n_takes_now_and_says_how_long_to_wait() {
    let (limiter, _) = manual(quota(10, 3));
    let first = limiter.reserve_n(3).unwrap();
    let second = limiter.reserve_n(2).unwrap();
    let third = limiter.reserve();
    assert_eq!(first.delay(), Duration::ZERO);
    assert_eq!(second.delay(), 200 * MS);
    assert_eq!(third.delay(), 300 * MS);
    assert!(limiter.check().is_err(), "reservations went into debt");
    assert!(limiter.tokens() < 0.0);
    assert_eq!(limiter.reserve_n(4).unwrap_err().burst(), 3);
}

/// `Reservation.Delay()` and waiting on it.
#[tokio::test(start_paused = true)]
async fn reservation_wait_sleeps_its_delay() {
    let limiter = RateLimiter::builder(quota(5, 1))
        .clock(TokioClock::new())
        .build();
    let start = tokio::time::Instant::now();
    limiter.reserve().wait().await;
    limiter.reserve().wait().await;
    limiter.reserve().wait().await;
    assert_eq!(start.elapsed(), 400 * MS);
}

/// `Reservation.Cancel()`: gives back what was taken, less what later
/// reservations built on it, and nothing once its time has come.
#[test]
fn cancel_gives_back_as_far_as_later_reservations_allow() {
    let (limiter, clock) = manual(quota(10, 5));
    limiter.check_n(5).unwrap();
    let a = limiter.reserve_n(2).unwrap();
    let b = limiter.reserve_n(1).unwrap();
    assert_eq!(b.delay(), 300 * MS);
    // `b` is the newest: cancelling it gives back its one.
    b.cancel();
    assert!((limiter.tokens() + 2.0).abs() < 1e-9);
    let c = limiter.reserve_n(1).unwrap();
    // `a` now has `c` built on it: only one of its two comes back.
    a.cancel();
    assert!((limiter.tokens() + 2.0).abs() < 1e-9);
    // `c`'s time comes: cancelling then gives back nothing.
    clock.advance(Duration::from_secs(1));
    let before = limiter.tokens();
    c.cancel();
    assert!((limiter.tokens() - before).abs() < 1e-9);
}

/// `SetLimit` / `SetBurst`: the tokens available now carry over, capped at
/// the new burst.
#[test]
fn set_quota_keeps_the_tokens_available() {
    let (limiter, clock) = manual(quota(10, 10));
    limiter.check_n(6).unwrap();
    limiter.set_quota(quota(100, 20));
    assert!((limiter.tokens() - 4.0).abs() < 1e-9);
    limiter.check_n(4).unwrap();
    assert!(limiter.check().is_err());
    // The new rate refills: one every 10 ms.
    clock.advance(10 * MS);
    limiter.check().unwrap();
    // A smaller burst caps what is stored.
    clock.advance(Duration::from_secs(1));
    limiter.set_quota(quota(1, 2));
    assert!((limiter.tokens() - 2.0).abs() < 1e-9);
}

/// `Limit()` / `Burst()`.
#[test]
fn quota_reports_rate_and_burst() {
    let (limiter, _) = manual(quota(50, 7));
    assert_eq!(limiter.quota(), quota(50, 7));
    assert_eq!(limiter.quota().burst(), 7);
    assert_eq!(limiter.quota().emission_interval(), 20 * MS);
    limiter.set_quota(quota(5, 1));
    assert_eq!(limiter.quota(), quota(5, 1));
}

/// `Tokens()`: what could pass now, fractional while refilling, without
/// taking any.
#[test]
fn tokens_reports_without_taking() {
    let (limiter, clock) = manual(quota(10, 3));
    assert!((limiter.tokens() - 3.0).abs() < 1e-9);
    limiter.check_n(3).unwrap();
    clock.advance(150 * MS);
    assert!((limiter.tokens() - 1.5).abs() < 1e-9);
    assert!(
        (limiter.tokens() - 1.5).abs() < 1e-9,
        "reading took nothing"
    );
    clock.advance(Duration::from_secs(5));
    assert!((limiter.tokens() - 3.0).abs() < 1e-9, "capped at the burst");
}

/// Jitter: waiters refused together come back at spread-out times, each
/// after at least its wait.
#[tokio::test(start_paused = true)]
async fn jitter_spreads_waiters() {
    let limiter = RateLimiter::builder(quota(1, 1))
        .clock(TokioClock::new())
        .jitter(100 * MS)
        .build();
    limiter.check().unwrap();
    let start = tokio::time::Instant::now();
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire().await.unwrap();
                start.elapsed()
            })
        })
        .collect();
    let mut times = Vec::new();
    for waiter in waiters {
        times.push(waiter.await.unwrap());
    }
    times.sort();
    // One per second, as the quota says; the jitter only spreads them.
    assert!(times[0] >= Duration::from_secs(1), "{times:?}");
    assert!(times[19] >= Duration::from_secs(20), "{times:?}");
    // Without jitter all twenty would wake on whole seconds; with it they
    // spread over the 100 ms after each.
    let offsets = times
        .iter()
        .map(|t| t.as_nanos() % 1_000_000_000)
        .collect::<std::collections::HashSet<_>>();
    assert!(offsets.len() >= 10, "jitter spread too little: {times:?}");
}

/// The clock is the limiter's: refusals are stamped on it.
#[test]
fn refusal_times_are_on_the_limiters_clock() {
    let (limiter, clock) = manual(quota(1, 1));
    clock.advance(Duration::from_secs(7));
    limiter.check().unwrap();
    let refused = limiter.check().unwrap_err();
    assert_eq!(
        refused.ready_at_nanos(),
        limiter.clock().now_nanos() + 1_000_000_000
    );
}

/// `Inf`: everything passes, at any size, and a reservation never waits;
/// switching back to a limit starts with a full burst.
#[test]
fn an_unlimited_quota_admits_everything_and_can_be_switched_back() {
    let (limiter, _) = manual(quota(1, 1));
    limiter.check().unwrap();
    assert!(limiter.check().is_err());
    limiter.set_quota(Quota::unlimited());
    for _ in 0..1_000 {
        limiter.check().unwrap();
    }
    limiter.check_n(u32::MAX).unwrap();
    assert_eq!(
        limiter.reserve_n(1_000_000).unwrap().delay(),
        Duration::ZERO
    );
    assert_eq!(limiter.tokens(), f64::INFINITY);
    assert!(limiter.quota().is_unlimited());
    limiter.set_quota(quota(1, 3));
    limiter.check_n(3).unwrap();
    assert!(limiter.check().is_err());
}

/// `Limit(0)`: a budget of `burst` that never refills; a refusal says no
/// wait would do, and `Reserve` gives a time that never comes.
#[test]
fn a_rate_of_zero_is_a_budget_that_never_refills() {
    let budget = Quota::per_second(0).burst(3).build().unwrap();
    let (limiter, clock) = manual(budget);
    limiter.check_n(2).unwrap();
    limiter.check().unwrap();
    clock.advance(Duration::from_secs(3_600));
    let refused = limiter.check().unwrap_err();
    assert!(refused.is_final());
    assert_eq!(refused.retry_after(), Duration::MAX);
    assert_eq!(limiter.tokens(), 0.0);
    assert_eq!(limiter.reserve().delay(), Duration::MAX);
    // Go's TestSetAfterZeroLimit: a rate set afterwards refills from there.
    limiter.set_quota(quota(10, 1));
    assert!(
        (limiter.tokens() + 1.0).abs() < 1e-12,
        "the reservation's debt"
    );
    clock.advance(200 * MS);
    limiter.check().unwrap();
}

/// Burst 0: nothing passes (a request for zero does), unless unlimited.
#[test]
fn a_burst_of_zero_admits_nothing() {
    let (limiter, clock) = manual(quota(10, 0));
    let refused = limiter.check().unwrap_err();
    assert!(refused.is_final());
    assert!(matches!(
        limiter.check_n(1),
        Err(RateLimitError::InsufficientCapacity(_))
    ));
    limiter.check_n(0).unwrap();
    clock.advance(Duration::from_secs(10));
    assert!(limiter.check().is_err());
    assert_eq!(limiter.reserve().delay(), Duration::MAX);
    assert_eq!(limiter.tokens(), 0.0);
}

/// `CancelAt(t)` at exactly the act time still gives back (Go tests
/// `timeToAct.Before(t)`); a nanosecond later, nothing.
#[test]
fn cancelling_at_the_act_time_gives_back() {
    let (limiter, clock) = manual(quota(10, 1));
    let now = limiter.reserve();
    assert_eq!(now.delay(), Duration::ZERO);
    now.cancel();
    assert!((limiter.tokens() - 1.0).abs() < 1e-12, "given back at once");
    limiter.check().unwrap();
    let later = limiter.reserve();
    clock.advance(later.delay());
    later.cancel();
    assert!(
        (limiter.tokens() - 1.0).abs() < 1e-12,
        "given back at its time"
    );
    let late = limiter.reserve();
    clock.advance(late.delay() + Duration::from_nanos(1));
    late.cancel();
    assert!(limiter.tokens() < 1e-6, "acted on: nothing back");
}

/// `WaitN` reserves first: 1,000 waiters pass in the order they came, at
/// the full rate, though each tokio sleep is rounded up to the millisecond.
/// On a quota of one a millisecond the last passes at 999 ms; on one every
/// 1.5 ms, at 1,499 ms. (Checking again after each sleep, as `acquire` once
/// did, loses the rounding at every wake: one every 2 ms on the second.)
#[tokio::test(start_paused = true)]
async fn a_thousand_waiters_pass_in_order_at_the_full_rate() {
    for interval in [MS, 3 * MS / 2] {
        let limiter = RateLimiter::builder(Quota::per(interval, 1).build().unwrap())
            .clock(TokioClock::new())
            .build();
        let start = tokio::time::Instant::now();
        let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..1_000u32 {
            let (limiter, done) = (limiter.clone(), done.clone());
            tokio::spawn(async move {
                limiter.acquire().await.unwrap();
                done.send((i, start.elapsed())).unwrap();
            });
        }
        drop(done);
        let mut order = Vec::new();
        while let Some((i, at)) = finished.recv().await {
            order.push(i);
            // Its reserved time, rounded up to the timer's millisecond.
            assert!(at < interval * i + MS, "waiter {i} at {at:?}");
        }
        assert_eq!(order, (0..1_000).collect::<Vec<_>>());
        assert!(start.elapsed() <= interval * 1_000, "{:?}", start.elapsed());
    }
}

/// A dropped `acquire` cancels its reservation: the waiters behind it move
/// up.
#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_gives_its_place_back() {
    let limiter = RateLimiter::builder(quota(10, 1))
        .clock(TokioClock::new())
        .build();
    limiter.check().unwrap();
    let first = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire().await.unwrap() }
    });
    tokio::task::yield_now().await;
    // The waiter holds the place at 100 ms.
    assert!((limiter.tokens() + 1.0).abs() < 1e-9);
    first.abort();
    let _ = first.await;
    // Its place came back: the next waiter takes it.
    assert!(limiter.tokens().abs() < 1e-9);
    let start = tokio::time::Instant::now();
    limiter.acquire().await.unwrap();
    assert_eq!(start.elapsed(), 100 * MS);
}

/// Go's `Wait` returns an error at once when no wait would do: a burst of
/// zero, or a budget used up (its burst spent). So does `acquire`, for one
/// limiter and for a key, taking nothing.
#[tokio::test(start_paused = true)]
async fn a_wait_no_time_would_end_is_refused_at_once() {
    async fn at_once<T>(wait: impl Future<Output = T>) -> T {
        tokio::time::timeout(MS, wait)
            .await
            .expect("answered at once")
    }
    let closed = RateLimiter::builder(quota(100, 0))
        .clock(TokioClock::new())
        .build();
    let refused = at_once(closed.acquire()).await;
    assert!(matches!(
        refused,
        Err(RateLimitError::InsufficientCapacity(_))
    ));

    let budget = RateLimiter::builder(quota(0, 2))
        .clock(TokioClock::new())
        .build();
    budget.acquire().await.unwrap();
    let refused = at_once(budget.acquire_n(2)).await;
    match refused {
        Err(RateLimitError::RateLimited(refused)) => assert!(refused.is_final()),
        other => panic!("{other:?}"),
    }
    assert!((budget.tokens() - 1.0).abs() < 1e-9, "nothing taken");
    budget.acquire().await.unwrap();

    let keyed = seawall_ratelimit::KeyedRateLimiter::<&str, _>::builder(quota(0, 1))
        .clock(TokioClock::new())
        .build()
        .unwrap();
    keyed.acquire(&"a").await.unwrap();
    let refused = at_once(keyed.acquire(&"a")).await;
    assert!(matches!(refused, Err(RateLimitError::RateLimited(r)) if r.is_final()));
    keyed.acquire(&"b").await.expect("another key's budget");
    let closed = seawall_ratelimit::KeyedRateLimiter::<&str, _>::builder(quota(100, 0))
        .clock(TokioClock::new())
        .build()
        .unwrap();
    let refused = at_once(closed.acquire(&"a")).await;
    assert!(matches!(
        refused,
        Err(RateLimitError::InsufficientCapacity(_))
    ));
}

/// Not Go's (a `time.Time` does not end): a clock at the end of its range
/// (a test clock advanced by `Duration::MAX`) still limits: the burst
/// passes, then every request is refused, on both limiters.
#[test]
fn a_clock_at_its_end_still_limits() {
    let quota = Quota::per_second(1).burst(2).build().unwrap();
    for end in [1 << 62, 1 << 63, u64::MAX] {
        let (limiter, clock) = manual(quota);
        clock.set_nanos(end);
        assert!(limiter.check_n(2).is_ok(), "{end}: the burst");
        assert!(limiter.check().is_err(), "{end}: then nothing");
        clock.set_nanos(end.saturating_add(1));
        assert!(limiter.check().is_err(), "{end}: still nothing");

        let keyed = seawall_ratelimit::KeyedRateLimiter::<u8>::builder(quota)
            .clock(clock.clone())
            .build()
            .unwrap();
        assert!(keyed.check_n(&1, 2).is_ok(), "{end}: keyed burst");
        assert!(keyed.check(&1).is_err(), "{end}: keyed, then nothing");
    }
}
