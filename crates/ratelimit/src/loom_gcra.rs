//! Loom models of the GCRA compare-and-swap paths: every interleaving of
//! two threads, checked exhaustively.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p seawall-ratelimit --lib --release loom`

use loom::sync::Arc;
use loom::thread;

use crate::gcra;
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
                    .filter(|_| gcra::check(&tat, || now, T, tau).is_ok())
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
            thread::spawn(move || gcra::reserve(&tat, now, 2 * T))
        };
        let checked = gcra::check(&tat, || now, T, tau).is_ok();
        reserver.join().unwrap();
        let expected = now + 2 * T + if checked { T } else { 0 };
        assert_eq!(tat.load(Ordering::Relaxed), expected);
    });
}
