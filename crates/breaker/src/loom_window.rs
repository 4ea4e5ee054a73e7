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
