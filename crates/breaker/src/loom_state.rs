//! Loom models of the breaker's state word: every interleaving of outcomes
//! recorded at once, and of callers racing for half-open's places.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p seawall-breaker --lib --release loom`

use std::sync::Mutex as StdMutex;
use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use seawall_core::{ManualClock, Outcome};

use crate::config::BreakerConfig;
use crate::error::BreakerRefusal as Refusal;
use crate::observe::{Observer, Transition};
use crate::state::{Core, State};

/// A breaker on a manual clock, and the transitions it makes.
struct Model {
    core: Arc<Core<ManualClock>>,
    clock: ManualClock,
    transitions: std::sync::Arc<StdMutex<Vec<(State, State)>>>,
}

impl Model {
    fn new(window: u32, minimum_calls: u32, half_open_calls: u32) -> Self {
        let config = BreakerConfig::builder()
            .count_window(window)
            .minimum_calls(minimum_calls)
            .failure_rate_threshold(50.0)
            .wait_in_open(Duration::from_secs(1))
            .permitted_calls_in_half_open(half_open_calls)
            .build()
            .expect("a valid config");
        let clock = ManualClock::new();
        let transitions = std::sync::Arc::new(StdMutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&transitions);
        let listener = std::sync::Arc::new(move |_: &str, t: Transition| {
            seen.lock().expect("not poisoned").push((t.from, t.to));
        });
        let core = Core::new(config, clock.clone(), Observer::new("loom", Some(listener)));
        Self {
            core: Arc::new(core),
            clock,
            transitions,
        }
    }

    /// Opens the breaker with a failure, and waits the open wait out.
    fn open_and_wait(&self) {
        let ticket = self.core.acquire().expect("closed");
        self.core.record(ticket, Outcome::Failure, None, false);
        assert_eq!(self.core.state(), State::Open);
        self.clock.advance(Duration::from_millis(1_001));
        self.transitions.lock().expect("not poisoned").clear();
    }

    fn transitions(&self) -> Vec<(State, State)> {
        self.transitions.lock().expect("not poisoned").clone()
    }
}

/// Two trials recorded at once: the pair decides, once, whatever the
/// interleaving (both succeed: closed; one fails: 50%, open again).
#[test]
fn half_open_trials_recorded_together_decide_once() {
    for (other, ours, to) in [
        (Outcome::Success, Outcome::Success, State::Closed),
        (Outcome::Success, Outcome::Failure, State::Open),
    ] {
        loom::model(move || {
            let model = Model::new(1, 1, 2);
            model.open_and_wait();
            let first = model.core.acquire().expect("a trial place");
            let second = model.core.acquire().expect("a trial place");
            assert_eq!(model.core.state(), State::HalfOpen);
            let recorder = {
                let core = Arc::clone(&model.core);
                thread::spawn(move || core.record(first, other, None, false))
            };
            model.core.record(second, ours, None, false);
            recorder.join().expect("recorder");
            assert_eq!(model.core.state(), to);
            assert_eq!(
                model.transitions(),
                vec![(State::Open, State::HalfOpen), (State::HalfOpen, to)]
            );
        });
    }
}

/// Two failures recorded at once in a closed breaker that each would trip
/// alone (one call is enough to judge): it opens exactly once.
#[test]
fn failures_recorded_together_open_once() {
    loom::model(|| {
        let model = Model::new(2, 1, 1);
        let first = model.core.acquire().expect("closed");
        let second = model.core.acquire().expect("closed");
        let recorder = {
            let core = Arc::clone(&model.core);
            thread::spawn(move || core.record(first, Outcome::Failure, None, false))
        };
        model.core.record(second, Outcome::Failure, None, false);
        recorder.join().expect("recorder");
        assert_eq!(model.core.state(), State::Open);
        assert_eq!(model.transitions(), vec![(State::Closed, State::Open)]);
    });
}

/// Two callers race for half-open's one place: exactly one gets it, the
/// other is refused, and the winner's success closes the breaker.
#[test]
fn one_half_open_place_goes_to_one_caller() {
    loom::model(|| {
        let model = Model::new(1, 1, 1);
        model.open_and_wait();
        let racer = {
            let core = Arc::clone(&model.core);
            thread::spawn(move || core.acquire())
        };
        let ours = model.core.acquire();
        let theirs = racer.join().expect("racer");
        let (winner, refused) = match (ours, theirs) {
            (Ok(ticket), Err(refused)) | (Err(refused), Ok(ticket)) => (ticket, refused),
            other => panic!("exactly one place, got {other:?}"),
        };
        assert!(matches!(refused, Refusal::HalfOpenFull { .. }));
        model.core.record(winner, Outcome::Success, None, false);
        assert_eq!(model.core.state(), State::Closed);
    });
}

/// A closed call's outcome recorded while the breaker opens and is reset
/// (a fresh closed period, its window cleared): whatever the interleaving,
/// the outcome is not in the new period's window. It was recorded before
/// the clear, refused by the state check, or taken back after the write.
#[test]
fn a_stale_outcome_never_lands_in_a_fresh_window() {
    loom::model(|| {
        // Four calls before judging: one failure trips nothing.
        let model = Model::new(4, 4, 1);
        let ticket = model.core.acquire().expect("closed");
        let resetter = {
            let core = Arc::clone(&model.core);
            thread::spawn(move || {
                core.force(State::ForcedOpen);
                core.force(State::Closed);
            })
        };
        model.core.record(ticket, Outcome::Failure, None, false);
        resetter.join().expect("resetter");
        assert_eq!(model.core.state(), State::Closed);
        assert_eq!(model.core.window_totals().calls, 0);
    });
}

/// The same with a reset of a closed breaker alone (no state in between):
/// the reset moves calls to a generation that records nothing before it
/// empties the window, so the outcome is recorded before the clear,
/// refused, or taken back; the new window holds nothing. Without that
/// first step, a write landing between the clear and the new word stays.
#[test]
fn a_reset_while_closed_keeps_no_stale_outcome() {
    loom::model(|| {
        let model = Model::new(4, 4, 1);
        let ticket = model.core.acquire().expect("closed");
        let resetter = {
            let core = Arc::clone(&model.core);
            thread::spawn(move || core.force(State::Closed))
        };
        model.core.record(ticket, Outcome::Failure, None, false);
        resetter.join().expect("resetter");
        assert_eq!(model.core.state(), State::Closed);
        assert_eq!(model.core.window_totals().calls, 0);
        // The reset is no change of state: nothing reported.
        assert!(model.transitions().is_empty());
    });
}

/// A success recorded at the same time as a failure breaks the run of
/// failures in either order: with a run of one before them and one more
/// failure after, the run never reaches three. (A success that tried its
/// reset once and lost it to the failure let it reach three.)
#[test]
fn a_success_racing_a_failure_breaks_the_run() {
    loom::model(|| {
        let config = BreakerConfig::builder()
            .consecutive_failures_only(3)
            .build()
            .expect("valid");
        let core = Arc::new(Core::new(
            config,
            ManualClock::new(),
            Observer::new("loom", None),
        ));
        let first = core.acquire().expect("closed");
        core.record(first, Outcome::Failure, None, false); // a run of 1
        let success = core.acquire().expect("closed");
        let failure = core.acquire().expect("closed");
        let succeeding = {
            let core = Arc::clone(&core);
            thread::spawn(move || core.record(success, Outcome::Success, None, false))
        };
        core.record(failure, Outcome::Failure, None, false);
        succeeding.join().expect("joined");
        let last = core.acquire().expect("closed");
        core.record(last, Outcome::Failure, None, false);
        assert_eq!(core.state(), State::Closed, "a success came between");
    });
}
