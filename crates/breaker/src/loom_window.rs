//! Loom models of the count window: every interleaving of concurrent
//! records and a clear.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p seawall-breaker --lib --release loom`

use loom::sync::Arc;
use loom::thread;

use crate::window::CountWindow;

/// Whatever the interleaving, the totals end equal to what the slots hold.
fn totals_match_slots(window: &CountWindow) {
    let (calls, failures) = window.slot_counts();
    let totals = window.totals();
    assert_eq!((totals.calls, totals.failures), (calls, failures));
}

/// Two threads recording into a window of two: both calls are counted,
/// once each.
#[test]
fn concurrent_records_are_each_counted_once() {
    loom::model(|| {
        let window = Arc::new(CountWindow::new(2));
        let other = {
            let window = Arc::clone(&window);
            thread::spawn(move || {
                window.record(true, false);
            })
        };
        window.record(false, false);
        other.join().unwrap();
        let totals = window.totals();
        assert_eq!((totals.calls, totals.failures), (2, 1));
        totals_match_slots(&window);
    });
}

/// A record racing a clear (a reset under traffic) is counted once or not
/// at all: the totals never disagree with the slots afterwards.
#[test]
fn a_record_racing_a_clear_leaves_totals_true() {
    loom::model(|| {
        let window = Arc::new(CountWindow::new(2));
        window.record(true, false);
        let recorder = {
            let window = Arc::clone(&window);
            thread::spawn(move || {
                window.record(true, false);
            })
        };
        window.clear();
        recorder.join().unwrap();
        totals_match_slots(&window);
    });
}

/// A fast success into a full window of fast successes writes nothing. Racing
/// a failure, it never loses the failure, the totals end equal to the
/// slots, and the failure leaves the window within its size of further
/// records. (The racing success may count as before the failure, skipped,
/// or after it; so after one more record the failure may be in or out.)
#[test]
fn a_skipped_success_racing_a_failure_keeps_the_failure() {
    loom::model(|| {
        let window = Arc::new(CountWindow::new(2));
        window.record(false, false);
        window.record(false, false);
        let failing = {
            let window = Arc::clone(&window);
            thread::spawn(move || {
                window.record(true, false);
            })
        };
        window.record(false, false);
        failing.join().unwrap();
        totals_match_slots(&window);
        assert_eq!(window.totals().failures, 1, "the failure is in the window");
        window.record(false, false);
        window.record(false, false);
        assert_eq!(window.totals().failures, 0, "two records later: out");
        totals_match_slots(&window);
    });
}

/// The time window, at a boundary: one thread moves the window on to
/// epoch 1 (and expires its bucket), while another records into epoch 1
/// too, or late, into epoch 0. Every call the window says it counted is in
/// its bucket, once, and the totals equal the buckets of the window.
#[test]
fn time_window_expiry_racing_records_loses_no_call() {
    use crate::time_window::{Counted, TimeWindow};
    for other_at in [1, 0] {
        loom::model(move || {
            // Two buckets of one nanosecond: the clock reading is the epoch.
            let window = Arc::new(TimeWindow::new(2, 1, false));
            window.count(0, true, false);
            let mover = {
                let window = Arc::clone(&window);
                thread::spawn(move || window.count(1, false, false))
            };
            let other = window.count(other_at, true, false);
            let counted = [mover.join().unwrap(), other];
            assert!(counted.iter().all(|c| *c != Counted::Dropped));
            let in_epoch = |e| counted.iter().filter(|c| **c == Counted::In(e)).count() as u64;
            let buckets = window.buckets();
            assert_eq!(window.end(), 1);
            // Bucket 1 holds epoch 1; bucket 0 epoch 0, with the first call
            // and the other call if it came before the window moved on.
            assert_eq!(buckets[1].1, in_epoch(1));
            assert_eq!(buckets[0].1, 1 + in_epoch(0));
            let totals = window.totals();
            assert_eq!(u64::from(totals.calls), buckets[0].1 + buckets[1].1);
            assert_eq!(u64::from(totals.failures), buckets[0].2 + buckets[1].2);
        });
    }
}

/// A call into a bucket whose period left the window replaces it; racing
/// the thread that moves the window on and expires the same bucket, the
/// stale counts are subtracted exactly once.
#[test]
fn time_window_stale_counts_leave_exactly_once() {
    use crate::time_window::TimeWindow;
    loom::model(|| {
        let window = Arc::new(TimeWindow::new(2, 1, false));
        window.count(0, true, false); // bucket 0: epoch 0
        window.count(1, false, false); // bucket 1: epoch 1
        let mover = {
            let window = Arc::clone(&window);
            thread::spawn(move || {
                window.count(2, false, false);
            })
        };
        window.count(2, true, false); // bucket 0 again: epoch 2
        mover.join().unwrap();
        // Epochs 1 and 2: epoch 0's failure is gone, once.
        let totals = window.totals();
        assert_eq!((totals.calls, totals.failures), (3, 1));
        let buckets = window.buckets();
        assert_eq!((buckets[0].1, buckets[0].2), (2, 1));
    });
}

/// Two calls come back at once after a silence of a whole ring: one
/// re-tags the ring while the other waits, so both calls are counted and
/// held, and the totals equal the buckets. (Re-tagging without claiming the
/// ring first could empty out a call the other thread had just counted.)
#[test]
fn two_calls_back_from_a_silence_both_count() {
    use crate::time_window::{Counted, TimeWindow};
    loom::model(|| {
        let window = Arc::new(TimeWindow::new(2, 1, false));
        window.count(0, true, false);
        window.count(1, true, false);
        let other = {
            let window = Arc::clone(&window);
            thread::spawn(move || window.count(10, false, false))
        };
        let ours = window.count(10, true, false);
        let theirs = other.join().unwrap();
        assert_eq!((ours, theirs), (Counted::In(10), Counted::In(10)));
        let buckets = window.buckets();
        assert_eq!(
            (buckets[0].1, buckets[0].2),
            (2, 1),
            "both held in epoch 10"
        );
        assert_eq!((buckets[1].1, buckets[1].2), (0, 0), "epoch 9: empty");
        let totals = window.totals();
        assert_eq!((totals.calls, totals.failures), (2, 1));
    });
}
