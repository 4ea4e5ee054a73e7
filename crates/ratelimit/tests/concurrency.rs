//! Quota changes racing checks on real threads (loom checks the same
//! protocol exhaustively on a small model, in `src/loom_gcra.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use seawall_core::ManualClock;
use seawall_ratelimit::{KeyedRateLimiter, Quota, RateLimiter};

fn fast() -> Quota {
    Quota::per_second(1_000).build().expect("valid")
}

fn slow() -> Quota {
    Quota::per_hour(1).build().expect("valid")
}

/// Checks never see the new quota against the unconverted state: with no
/// reservations, tokens never go below zero, however the quota flips. (A
/// check in the gap between storing a quota and converting the state once
/// left centuries of debt.)
#[test]
fn flipping_quotas_under_load_never_corrupt_the_state() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(fast()).clock(clock.clone()).build();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _ = limiter.check();
                    assert!(limiter.tokens() >= 0.0, "{}", limiter.tokens());
                    let quota = limiter.quota();
                    assert!(quota == fast() || quota == slow(), "torn: {quota:?}");
                }
            });
        }
        for i in 0..20_000 {
            limiter.set_quota(if i % 2 == 0 { slow() } else { fast() });
            if i % 1_000 == 0 {
                clock.advance(Duration::from_millis(1));
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    limiter.set_quota(fast());
    assert!(limiter.tokens() >= 0.0);
    // After refilling, the whole burst is back: nothing was lost for good.
    clock.advance(Duration::from_secs(1));
    assert!(
        (limiter.tokens() - 1_000.0).abs() < 1e-9,
        "{}",
        limiter.tokens()
    );
}

/// Threads re-quoting a keyed limiter at once: every key ends under
/// the quota that was set last (whichever thread that was), none under the
/// one that lost. The assert reads the state the race left, with nothing
/// set after it.
#[test]
fn concurrent_requotas_leave_one_quota_everywhere() {
    let clock = ManualClock::new();
    let limiter = KeyedRateLimiter::<u32>::builder(fast())
        .max_keys(10_000)
        .clock(clock.clone())
        .build()
        .unwrap();
    for key in 0..2_000 {
        limiter.check(&key).unwrap();
    }
    let gold = Quota::per_second(1_000).burst(5_000).build().unwrap();
    // Four threads on two cores: some are preempted in the middle of a
    // walk over the keys and overtaken, the interleaving that would mix
    // quotas if changes were not serialized.
    let start = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for quota in [slow(), gold, slow(), gold] {
            let (limiter, start) = (&limiter, &start);
            s.spawn(move || {
                start.wait();
                for _ in 0..200 {
                    limiter.set_quota(quota);
                }
            });
        }
    });
    // Under `gold` every key refills its 5,000 in 5 s; under the slow
    // quota (one an hour, burst 1) each holds its one. A key left under the
    // quota that lost shows the other figure.
    let last = limiter.quota();
    let expected = if last == gold { 5_000.0 } else { 1.0 };
    clock.advance(Duration::from_secs(5));
    for key in 0..2_000 {
        let tokens = limiter.tokens(&key);
        assert!(
            (tokens - expected).abs() < 1e-6,
            "key {key}: {tokens} under {last:?}"
        );
    }
}

/// Checks on a keyed limiter racing quota changes, which retire every
/// key's entry and put a converted one in its place: an admission either
/// lands on the old entry before it is frozen (and is carried over) or
/// finds it frozen and goes to the new one. Time stands still and both
/// quotas have the same burst, larger than the checks can use up, so what
/// each key admitted plus what it has left is exactly its burst, however
/// the quota flips: an admission lost with a replaced entry would show as
/// one token too many.
#[test]
fn keyed_checks_racing_requotas_lose_no_admission() {
    const KEYS: u32 = 8;
    const BURST: u32 = 1_000_000;
    let slow = Quota::per_minute(1).burst(BURST).build().unwrap();
    let fast = Quota::per_second(1_000).burst(BURST).build().unwrap();
    let clock = ManualClock::new();
    let limiter = KeyedRateLimiter::<u32>::builder(fast)
        .max_keys(100)
        .clock(clock)
        .build()
        .unwrap();
    let stop = AtomicBool::new(false);
    let rounds = std::sync::atomic::AtomicU64::new(0);
    let admitted: Vec<u32> = std::thread::scope(|s| {
        let checkers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut admitted = [0u32; KEYS as usize];
                    while !stop.load(Ordering::Relaxed) {
                        for key in 0..KEYS {
                            admitted[key as usize] += u32::from(limiter.check(&key).is_ok());
                        }
                        rounds.fetch_add(1, Ordering::Relaxed);
                    }
                    admitted
                })
            })
            .collect();
        // At least 4,000 changes, and until the checkers have been at it
        // for a while (a scheduler may start them late).
        let mut i = 0u32;
        while i < 4_000 || rounds.load(Ordering::Relaxed) < 20_000 {
            limiter.set_quota(if i.is_multiple_of(2) { slow } else { fast });
            i += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let per_thread: Vec<_> = checkers.into_iter().map(|h| h.join().unwrap()).collect();
        (0..KEYS as usize)
            .map(|key| per_thread.iter().map(|a| a[key]).sum())
            .collect()
    });
    for key in 0..KEYS {
        let taken = admitted[key as usize];
        let left = limiter.tokens(&key);
        assert!(taken > 0 && taken < BURST, "key {key}: {taken} admitted");
        assert!(
            (f64::from(taken) + left - f64::from(BURST)).abs() < 1e-6,
            "key {key}: {taken} admitted and {left} left of {BURST}"
        );
    }
}

/// A clock that panics while the quota changes leaves the limiter working:
/// the clock is read before the state is frozen.
#[test]
fn a_panicking_clock_does_not_freeze_the_limiter() {
    #[derive(Clone, Default)]
    struct Flaky(std::sync::Arc<AtomicBool>);
    impl seawall_core::Clock for Flaky {
        fn now_nanos(&self) -> u64 {
            assert!(!self.0.load(Ordering::Relaxed), "clock failure");
            0
        }
    }
    let clock = Flaky::default();
    let limiter = RateLimiter::builder(fast()).clock(clock.clone()).build();
    clock.0.store(true, Ordering::Relaxed);
    let changed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        limiter.set_quota(slow());
    }));
    assert!(changed.is_err(), "the clock panicked");
    clock.0.store(false, Ordering::Relaxed);
    // Neither frozen nor changed: the check returns, under the old quota.
    // On its own thread, so a hang fails the test (after a generous bound)
    // instead of hanging it.
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send((limiter.check_n(1_000), limiter.quota())));
    let (checked, quota) = result
        .recv_timeout(Duration::from_secs(30))
        .expect("the check hangs on a frozen state");
    assert!(checked.is_ok());
    assert_eq!(quota, fast());
}

/// The same for a keyed limiter: a clock that panics during `set_quota`
/// changes nothing, neither the quota new keys get nor the existing keys.
#[test]
fn a_panicking_clock_leaves_keyed_quotas_as_they_were() {
    #[derive(Clone, Default)]
    struct Flaky(std::sync::Arc<AtomicBool>);
    impl seawall_core::Clock for Flaky {
        fn now_nanos(&self) -> u64 {
            assert!(!self.0.load(Ordering::Relaxed), "clock failure");
            0
        }
    }
    let clock = Flaky::default();
    let limiter = KeyedRateLimiter::<u32>::builder(fast())
        .clock(clock.clone())
        .build()
        .expect("a valid limiter");
    limiter.check(&1).expect("a fresh key passes");
    clock.0.store(true, Ordering::Relaxed);
    let changed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        limiter.set_quota(slow());
    }));
    assert!(changed.is_err(), "the clock panicked");
    clock.0.store(false, Ordering::Relaxed);
    assert_eq!(limiter.quota(), fast(), "new keys keep the old quota");
    let state = limiter.check_with_state(&1).expect("the key passes");
    assert_eq!(state.quota, fast(), "and so does the key");
}
