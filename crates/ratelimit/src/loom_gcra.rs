//! Loom models of the GCRA compare-and-swap paths: every interleaving of
//! two threads, checked exhaustively.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p seawall-ratelimit --lib --release loom`

use loom::sync::Arc;
use loom::thread;

use crate::gcra::{self, Decision};
use crate::loom::{AtomicU64, Ordering};

const T: u64 = 10;

/// Two threads each try to take two of a burst of three at the same
/// instant: together they get exactly three, whatever the interleaving.
#[test]
fn two_threads_never_admit_more_than_the_burst() {
    loom::model(|| {
        let tat = Arc::new(AtomicU64::new(0));
        let now = 1_000;
        let tau = 3 * T;
        let spawn = || {
            let tat = Arc::clone(&tat);
            thread::spawn(move || {
                (0..2)
                    .filter(|_| {
                        let decision = gcra::check(&tat, || now, || Ok::<_, ()>((T, tau)));
                        matches!(decision, Decision::Admitted(..))
                    })
                    .count()
            })
        };
        let (a, b) = (spawn(), spawn());
        let admitted = a.join().unwrap() + b.join().unwrap();
        assert_eq!(admitted, 3);
        assert_eq!(tat.load(Ordering::Relaxed), now + tau);
    });
}

/// A check and a reservation racing: the reservation always lands, the
/// check passes only if capacity is left, and no capacity is lost.
#[test]
fn check_and_reserve_race_without_losing_capacity() {
    loom::model(|| {
        let tat = Arc::new(AtomicU64::new(0));
        let now = 1_000;
        let tau = 2 * T;
        let reserver = {
            let tat = Arc::clone(&tat);
            thread::spawn(move || gcra::reserve(&tat, || now, || (2 * T, tau)))
        };
        let checked = matches!(
            gcra::check(&tat, || now, || Ok::<_, ()>((T, tau))),
            Decision::Admitted(..)
        );
        reserver.join().unwrap();
        let expected = now + 2 * T + if checked { T } else { 0 };
        assert_eq!(tat.load(Ordering::Relaxed), expected);
    });
}

/// `set_quota`'s protocol (freeze the state, store the quota, publish the
/// converted state) racing a check: the check is judged entirely by the
/// old quota on the old state, or by the new quota on the converted state;
/// never the new cost against the unconverted state (which once left
/// centuries of debt).
#[test]
fn a_check_racing_a_quota_change_sees_one_quota() {
    loom::model(|| {
        let now = 1_000;
        // Old quota: interval 10, burst 4 (tau 40). New: interval 1_000,
        // burst 1 (tau 1_000). The bucket starts full.
        let state = Arc::new((AtomicU64::new(0), AtomicU64::new(10), AtomicU64::new(40)));
        let changer = {
            let state = Arc::clone(&state);
            thread::spawn(move || {
                let (tat, interval, tau) = &*state;
                let frozen = tat.fetch_or(gcra::FROZEN, Ordering::Acquire);
                crate::loom::fence(Ordering::Release);
                let old = (
                    interval.load(Ordering::Relaxed),
                    tau.load(Ordering::Relaxed),
                );
                interval.store(1_000, Ordering::Relaxed);
                tau.store(1_000, Ordering::Relaxed);
                tat.store(
                    gcra::convert(frozen, now, old, (1_000, 1_000)),
                    Ordering::Release,
                );
            })
        };
        let (tat, interval, tau) = &*state;
        let mut judged = (0, 0);
        let decision = gcra::check(
            tat,
            || now,
            || {
                judged = (
                    interval.load(Ordering::Relaxed),
                    tau.load(Ordering::Relaxed),
                );
                Ok::<_, ()>(judged)
            },
        );
        changer.join().unwrap();
        assert!(
            matches!(decision, Decision::Admitted(..)),
            "a full bucket admits"
        );
        assert!(
            judged == (10, 40) || judged == (1_000, 1_000),
            "torn quota {judged:?}"
        );
        let end = tat.load(Ordering::Relaxed);
        // Either order leaves the one request's debt in the new quota's
        // terms: at most one new interval, never more.
        assert!(end <= now + 1_000, "debt of {} ns", end - now);
    });
}
