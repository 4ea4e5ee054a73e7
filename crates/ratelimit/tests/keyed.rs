//! Keyed limits: independent keys, per-key quotas, bounded memory, and state
//! kept across quota changes.

use std::time::Duration;

use seawall_core::ManualClock;
use seawall_ratelimit::{KeyedRateLimiter, Quota};

fn quota(per_second: u32, burst: u32) -> Quota {
    Quota::per_second(per_second)
        .burst(burst)
        .build()
        .expect("a valid quota")
}

fn keyed<K>(q: Quota, max_keys: usize) -> (KeyedRateLimiter<K, ManualClock>, ManualClock)
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    let clock = ManualClock::new();
    let limiter = KeyedRateLimiter::builder(q)
        .max_keys(max_keys)
        .clock(clock.clone())
        .build()
        .expect("a valid config");
    (limiter, clock)
}

#[test]
fn keys_have_independent_buckets() {
    let (limiter, clock) = keyed::<&str>(quota(1, 2), 100);
    limiter.check(&"alice").unwrap();
    limiter.check(&"alice").unwrap();
    assert_eq!(
        limiter.check(&"alice").unwrap_err().retry_after(),
        Duration::from_secs(1)
    );
    limiter.check(&"bob").unwrap();
    limiter.check(&"bob").unwrap();
    clock.advance(Duration::from_secs(1));
    limiter.check(&"alice").unwrap();
    assert!(limiter.check(&"alice").is_err());
}

/// The bound: a million distinct keys through `max_keys = 10_000`.
#[test]
fn a_million_distinct_keys_stay_within_max_keys() {
    let (limiter, clock) = keyed::<u64>(quota(10, 5), 10_000);
    let mut most = 0;
    for key in 0..1_000_000u64 {
        limiter.check(&key).unwrap();
        if key % 1_000 == 0 {
            most = most.max(limiter.len());
            clock.advance(Duration::from_micros(100));
        }
    }
    most = most.max(limiter.len());
    assert!(most <= 10_000, "tracked {most} keys");
    assert!(most >= 9_000, "the bound should be nearly used: {most}");
    // Time barely moved, so few buckets were full: most evictions were
    // early, and the stats say so.
    assert!(limiter.stats().evicted_early > 0);
}

/// A key dropped because its bucket was full loses nothing: afterwards it
/// admits exactly what a key that was never dropped admits.
#[test]
fn evicting_a_full_key_loses_nothing() {
    let (tight, tight_clock) = keyed::<u32>(quota(10, 3), 1);
    let (roomy, roomy_clock) = keyed::<u32>(quota(10, 3), 100);
    let run = |limiter: &KeyedRateLimiter<u32, ManualClock>, clock: &ManualClock| {
        let mut admitted = Vec::new();
        for round in 0..30u64 {
            // Key 1 takes its burst and one more (refused), then refills
            // fully; key 2 then pushes it out of the one-key limiter, and
            // refills before key 1 pushes it back out.
            for _ in 0..4 {
                admitted.push(limiter.check(&1).is_ok());
            }
            clock.advance(Duration::from_millis(300 + round % 3 * 50));
            admitted.push(limiter.check(&2).is_ok());
            clock.advance(Duration::from_millis(100));
        }
        admitted
    };
    let tight_admitted = run(&tight, &tight_clock);
    assert_eq!(tight_admitted, run(&roomy, &roomy_clock));
    assert_eq!(tight_admitted.iter().filter(|ok| !**ok).count(), 30);
    assert_eq!(tight.stats().evicted_early, 0);
    assert!(tight.len() <= 1);
}

/// A key dropped early (none was full) is judged as a fresh key: the
/// documented cost of the bound, visible in the stats.
#[test]
fn early_eviction_is_counted() {
    let (limiter, _) = keyed::<u32>(quota(10, 3), 1);
    limiter.check_n(&1, 3).unwrap();
    limiter.check(&2).unwrap();
    assert_eq!(limiter.stats().evicted_early, 1);
    limiter.check_n(&1, 3).unwrap(); // a fresh bucket again
}

#[test]
fn per_key_quotas_apply_from_the_first_request() {
    let paid = quota(100, 50);
    let clock = ManualClock::new();
    let limiter = KeyedRateLimiter::<String>::builder(quota(1, 1))
        .quota_for(move |key: &String| key.starts_with("paid:").then_some(paid))
        .clock(clock)
        .build()
        .unwrap();
    let paid_key = "paid:acme".to_owned();
    let free_key = "free:bob".to_owned();
    assert_eq!(
        (0..60).filter(|_| limiter.check(&paid_key).is_ok()).count(),
        50
    );
    assert_eq!(
        (0..60).filter(|_| limiter.check(&free_key).is_ok()).count(),
        1
    );
}

#[test]
fn set_quota_changes_every_key_without_resetting_it() {
    let (limiter, clock) = keyed::<u32>(quota(10, 4), 100);
    for key in 0..10 {
        limiter.check_n(&key, 3).unwrap();
    }
    // Raise the limit for everyone: each key keeps its one token and no
    // more, and refills at the new rate.
    limiter.set_quota(quota(100, 40));
    for key in 0..10 {
        assert!((limiter.tokens(&key) - 1.0).abs() < 1e-9, "key {key}");
        limiter.check(&key).unwrap();
        assert!(limiter.check(&key).is_err());
    }
    clock.advance(Duration::from_millis(10));
    limiter.check(&3).unwrap();
}

#[test]
fn set_quota_for_retiers_known_keys() {
    let (limiter, _) = keyed::<u32>(quota(10, 2), 100);
    limiter.check(&7).unwrap();
    let gold = quota(10, 20);
    limiter.set_quota_for(move |key| (*key == 7).then_some(gold));
    // Key 7 kept its one token and now has room for twenty.
    assert!((limiter.tokens(&7) - 1.0).abs() < 1e-9);
    assert!((limiter.tokens(&8) - 2.0).abs() < 1e-9);
}

#[test]
fn sweep_drops_only_full_keys() {
    let (limiter, clock) = keyed::<u32>(quota(10, 2), 100);
    limiter.check(&1).unwrap();
    limiter.check(&2).unwrap();
    clock.advance(Duration::from_millis(100)); // both full again
    limiter.check(&3).unwrap();
    assert_eq!(limiter.sweep(), 2);
    assert_eq!(limiter.len(), 1);
    assert!((limiter.tokens(&3) - 1.0).abs() < 1e-9);
}

#[test]
fn check_n_refuses_more_than_a_keys_burst() {
    let (limiter, _) = keyed::<u32>(quota(10, 2), 100);
    let err = limiter.check_n(&1, 3).unwrap_err();
    assert_eq!(
        err.to_string(),
        "asked for 3 at once, more than the burst of 2"
    );
}

#[test]
fn zero_max_keys_is_a_config_error() {
    let err = KeyedRateLimiter::<u32>::builder(quota(1, 1))
        .max_keys(0)
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "max_keys: must be at least 1, got 0");
}

/// Many threads on one key admit exactly the burst while time stands still.
#[test]
fn threads_on_one_key_admit_exactly_the_burst() {
    let (limiter, _) = keyed::<u32>(quota(1, 1_000), 100);
    let admitted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..1_000).filter(|_| limiter.check(&42).is_ok()).count()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(admitted, 1_000);
}

/// `remove` forgets a key (a full burst next time); `reset` refills it and
/// keeps it tracked.
#[test]
fn remove_and_reset_give_a_key_its_burst_back() {
    let (limiter, _) = keyed::<String>(quota(1, 2), 100);
    limiter.check_n("alice", 2).unwrap();
    limiter.check_n("bob", 2).unwrap();
    assert!(limiter.remove("alice"));
    assert!(!limiter.remove("alice"), "already gone");
    assert_eq!(limiter.len(), 1);
    limiter.check_n("alice", 2).unwrap();
    assert!(limiter.reset("bob"));
    assert_eq!(limiter.len(), 2, "still tracked");
    limiter.check_n("bob", 2).unwrap();
    assert!(!limiter.reset("carol"), "untracked keys are full already");
}

/// `Arc<str>` keys are looked up by `&str`, copied only when new.
#[test]
fn arc_str_keys_are_looked_up_by_str() {
    let (limiter, _) = keyed::<std::sync::Arc<str>>(quota(1, 1), 100);
    limiter.check("tenant-a").unwrap();
    assert!(limiter.check("tenant-a").is_err());
    assert!((limiter.tokens("tenant-a")).abs() < 1e-9);
    assert!(limiter.remove("tenant-a"));
}

/// Per-key reservations: taken now, into debt, given back on cancel; a key
/// on a budget is never dropped as if full.
#[test]
fn keys_reserve_and_cancel() {
    let (limiter, clock) = keyed::<u32>(quota(10, 1), 100);
    let now = limiter.reserve_n(&7, 1).unwrap();
    assert_eq!(now.delay(), Duration::ZERO);
    let later = limiter.reserve_n(&7, 1).unwrap();
    assert_eq!(later.delay(), Duration::from_millis(100));
    assert!((limiter.tokens(&7) + 1.0).abs() < 1e-9);
    later.cancel();
    assert!(limiter.tokens(&7).abs() < 1e-9, "given back");
    assert!(limiter.reserve_n(&7, 2).is_err(), "more than the burst");
    clock.advance(Duration::from_millis(100));
    let acted = limiter.reserve_n(&7, 1).unwrap();
    clock.advance(Duration::from_millis(1));
    acted.cancel();
    assert!(limiter.tokens(&7) < 0.1, "its time passed: kept");

    let budget = Quota::per_second(0).burst(1).build().unwrap();
    let (limiter, clock) = keyed::<u32>(budget, 64);
    limiter.check(&1).unwrap();
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(limiter.sweep(), 0, "a spent budget is not full");
    assert!(limiter.check(&1).unwrap_err().is_final());
}

/// A reservation made before a key was reset or removed gives nothing back
/// to the key's new bucket: it was never taken from it.
#[test]
fn a_reservation_from_before_a_reset_gives_nothing_to_the_new_bucket() {
    for removed in [false, true] {
        let (limiter, _clock) = keyed::<u32>(quota(1, 2), 100);
        limiter.check(&7).unwrap();
        limiter.check(&7).unwrap();
        let waiting = limiter.reserve_n(&7, 1).unwrap();
        if removed {
            assert!(limiter.remove(&7));
        } else {
            assert!(limiter.reset(&7));
        }
        limiter.check(&7).unwrap();
        limiter.check(&7).unwrap();
        waiting.cancel();
        assert!(
            limiter.check(&7).is_err(),
            "removed {removed}: three admitted within a burst of two"
        );
    }
}

/// Per-key `acquire` serves one key's waiters in order at its rate, and
/// leaves other keys alone.
#[tokio::test(start_paused = true)]
async fn keys_acquire_in_order() {
    let limiter = KeyedRateLimiter::<u32>::builder(quota(10, 1))
        .clock(seawall_core::TokioClock::new())
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..10u64 {
        let (limiter, done) = (limiter.clone(), done.clone());
        tokio::spawn(async move {
            limiter.acquire(&1).await.unwrap();
            done.send((i, start.elapsed())).unwrap();
        });
    }
    drop(done);
    limiter.check(&2).unwrap();
    let mut order = Vec::new();
    while let Some((i, at)) = finished.recv().await {
        order.push(i);
        assert_eq!(at, Duration::from_millis(100 * i));
    }
    assert_eq!(order, (0..10).collect::<Vec<_>>());
    // A dropped wait gives its place back.
    let gave_up = tokio::time::timeout(Duration::from_millis(10), limiter.acquire(&1)).await;
    assert!(gave_up.is_err());
    assert!(limiter.tokens(&1) > -0.5, "{}", limiter.tokens(&1));
}

/// A `quota_for` that panics on a new key gives the place it was counted
/// in back: the count stays right, and the table does not fill with places
/// no key holds (with `max_keys` such places, every new key would wait for
/// room forever).
#[test]
fn a_panicking_quota_for_leaks_no_place() {
    let limiter = KeyedRateLimiter::<String>::builder(quota(10, 1))
        .quota_for(|key: &String| {
            assert!(key != "bad", "no quota for {key}");
            None
        })
        .max_keys(2)
        .build()
        .unwrap();
    for _ in 0..2 {
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = limiter.check("bad");
        }));
        assert!(panicked.is_err());
    }
    assert_eq!(limiter.len(), 0);
    assert!(limiter.check("a").is_ok());
    assert!(limiter.check("b").is_ok());
    assert_eq!(limiter.len(), 2);
}

/// Threads inserting distinct keys into a small table at once: it never
/// holds more than `max_keys`, and every new key starts with its burst.
/// Removals racing checks on one key neither hang nor panic.
#[test]
fn concurrent_new_keys_and_removals_keep_the_bound() {
    let (limiter, _) = keyed::<u64>(quota(10, 1), 64);
    std::thread::scope(|s| {
        for thread in 0..3u64 {
            let limiter = &limiter;
            s.spawn(move || {
                for i in 0..20_000u64 {
                    let key = 1 + thread * 1_000_000 + i;
                    assert!(limiter.check(&key).is_ok(), "new key {key} refused");
                    assert!(limiter.len() <= 64, "{} keys", limiter.len());
                }
            });
        }
        s.spawn(|| {
            for _ in 0..20_000 {
                let _ = limiter.check(&0);
                limiter.remove(&0);
            }
        });
    });
    assert!(limiter.len() <= 64);
    assert_eq!(limiter.stats().max_keys, 64);
}

/// A key whose `Hash` panics while `PANIC_ON_HASH` is set.
#[derive(Clone, PartialEq, Eq)]
struct Touchy(u32);

static PANIC_ON_HASH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl std::hash::Hash for Touchy {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        assert!(
            !PANIC_ON_HASH.load(std::sync::atomic::Ordering::Relaxed),
            "hash of key {} refused",
            self.0
        );
        self.0.hash(state);
    }
}

/// A quota change that panics half-way (here in the key's `Hash`, after
/// the key's entry was retired and before its replacement went in)
/// leaves no key stuck: the next check finds the entry still retired once
/// the writer lock is free, drops it, and starts the key afresh.
#[test]
fn a_quota_change_that_panics_mid_way_leaves_no_key_stuck() {
    use std::sync::atomic::Ordering;
    let (limiter, _) = keyed::<Touchy>(quota(10, 3), 10);
    limiter.check(&Touchy(1)).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // The walk over the keys hashes nothing; the replacement's insert
        // does, after the entry is retired.
        PANIC_ON_HASH.store(true, Ordering::Relaxed);
        limiter.set_quota(quota(10, 5));
    }));
    PANIC_ON_HASH.store(false, Ordering::Relaxed);
    assert!(panicked.is_err(), "the replacement's insert hashed the key");
    // Not a hang (bounded here, so a regression fails rather than stalls
    // the suite), and the key starts afresh under the new quota.
    let (done, finished) = std::sync::mpsc::channel();
    let checker = limiter.clone();
    std::thread::spawn(move || done.send(checker.check(&Touchy(1)).is_ok()));
    let admitted = finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("a check on the key hung behind the retired entry");
    assert!(admitted);
    assert!((limiter.tokens(&Touchy(1)) - 4.0).abs() < 1e-9);
    assert_eq!(limiter.len(), 1);
}
