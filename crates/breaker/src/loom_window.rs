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
