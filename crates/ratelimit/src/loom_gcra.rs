//! Loom models of the limiter's shipped state (`gcra::State`): checks,
//! reservations, cancellations and quota changes on two threads, every
//! interleaving checked exhaustively. The lock and the atomics are loom's
//! (see `src/loom.rs`); the code is the code that ships.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p seawall-ratelimit --lib --release loom`

use loom::sync::Arc;
use loom::thread;

use crate::gcra::{Decision, State};
use crate::quota::Quota;

const T: u64 = 10;
const NOW: u64 = 1_000;

fn state(interval: u64, burst: u32) -> Arc<State> {
    Arc::new(State::new(Quota::from_parts(interval, burst)))
}

fn admitted(decision: &Decision) -> bool {
    matches!(decision, Decision::Admitted { .. })
}

/// Tokens left at `NOW`.
fn tokens(state: &State) -> f64 {
    let (tat, rule) = state.snapshot();
    rule.tokens(tat, NOW)
}

/// Two threads each try to take two of a burst of three at the same
/// instant: together they get exactly three, whatever the interleaving.
#[test]
fn loom_two_threads_never_admit_more_than_the_burst() {
    loom::model(|| {
        let state = state(T, 3);
        let spawn = || {
            let state = Arc::clone(&state);
            thread::spawn(move || (0..2).filter(|_| admitted(&state.check(|| NOW, 1))).count())
        };
        let (a, b) = (spawn(), spawn());
        let admitted = a.join().unwrap() + b.join().unwrap();
        assert_eq!(admitted, 3);
        assert_eq!(tokens(&state), 0.0);
    });
}

/// A check and a reservation racing: the reservation always lands, the
/// check passes only if capacity is left, and no capacity is lost.
#[test]
fn loom_check_and_reserve_race_without_losing_capacity() {
    loom::model(|| {
        let state = state(T, 2);
        let reserver = {
            let state = Arc::clone(&state);
            thread::spawn(move || state.reserve(|| NOW, 2).unwrap())
        };
        let checked = admitted(&state.check(|| NOW, 1));
        let reserved = reserver.join().unwrap();
        let expected = if checked { -1.0 } else { 0.0 };
        assert_eq!(tokens(&state), expected);
        assert_eq!(reserved.act_at, if checked { NOW + T } else { NOW });
    });
}

/// A check racing a quota change: judged by the old quota on the old
/// state, or by the new quota on the converted one; never the new cost
/// against the unconverted state (which once left centuries of debt).
#[test]
fn loom_a_check_racing_a_quota_change_sees_one_quota() {
    loom::model(|| {
        // Old: interval 10, burst 4. New: interval 1_000, burst 1. Full.
        let state = state(T, 4);
        let changer = {
            let state = Arc::clone(&state);
            thread::spawn(move || state.set_quota(|| NOW, Quota::from_parts(1_000, 1)))
        };
        let decision = state.check(|| NOW, 1);
        changer.join().unwrap();
        let Decision::Admitted { rule, .. } = decision else {
            panic!("a full bucket admits: {decision:?}");
        };
        let old = crate::gcra::Rule::of(Quota::from_parts(T, 4));
        let new = crate::gcra::Rule::of(Quota::from_parts(1_000, 1));
        // Judged by the old quota, the check leaves three of four, which
        // the change caps at the new burst of one; judged by the new, it
        // takes the one. Never in debt.
        let left = tokens(&state);
        if rule.words() == old.words() {
            assert_eq!(left, 1.0);
        } else {
            assert_eq!(rule.words(), new.words(), "torn quota");
            assert_eq!(left, 0.0);
        }
    });
}

/// A check racing a quota flipped and flipped back (the interleaving that
/// once let a check load the state, sleep through both changes, find the
/// very word it loaded and commit a decision made under the other quota).
///
/// Bounded to three preemptions (the race needs two) to keep the run short.
#[test]
fn loom_a_check_sleeping_through_a_flip_and_back_commits_nothing_stale() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let fast = Quota::from_parts(T, 2);
        let slow = Quota::from_parts(100 * T, 1);
        let state = state(T, 2);
        // Empty under `fast`.
        assert!(admitted(&state.check(|| NOW, 2)));
        let changer = {
            let state = Arc::clone(&state);
            thread::spawn(move || {
                state.set_quota(|| NOW, slow);
                state.set_quota(|| NOW, fast);
            })
        };
        let decision = state.check(|| NOW, 1);
        changer.join().unwrap();
        assert!(!admitted(&decision), "admitted from an empty bucket");
        assert_eq!(tokens(&state), 0.0);
    });
}

/// A cancellation racing a check: the check sees the state before or after
/// the tokens come back, and none are lost or made up.
#[test]
fn loom_a_cancel_racing_a_check_loses_nothing() {
    loom::model(|| {
        let state = state(T, 2);
        assert!(admitted(&state.check(|| NOW, 2)));
        let waiting = state.reserve(|| NOW, 1).unwrap();
        let canceller = {
            let state = Arc::clone(&state);
            thread::spawn(move || state.cancel(|| NOW, &waiting, false))
        };
        let checked = admitted(&state.check(|| NOW, 1));
        canceller.join().unwrap();
        // Cancelled: back to empty; and the check took the token only if it
        // came after.
        let expected = if checked { -1.0 } else { 0.0 };
        assert_eq!(tokens(&state), expected);
    });
}

/// A check admitted while the latest event lies in its future (a
/// cancellation left room before a waiting reservation's time) races a new
/// reservation. Go records whichever came last as the latest event; the
/// check must not pull back the time a reservation made after it recorded
/// (which would let a later cancellation give back what that reservation
/// relies on).
#[test]
fn loom_an_admission_does_not_hide_a_later_reservation() {
    loom::model(|| {
        let state = state(T, 3);
        let first = state.reserve(|| NOW, 3).unwrap();
        let waiting = state.reserve(|| NOW, 1).unwrap();
        assert_eq!(waiting.act_at, NOW + T);
        // Cancelling the first gives back two of its three (one is the
        // waiting reservation's): a token is free now, while the latest
        // event is still the waiting reservation's, in the future.
        state.cancel(|| NOW, &first, false);
        assert_eq!(tokens(&state), 1.0);
        let reserver = {
            let state = Arc::clone(&state);
            thread::spawn(move || state.reserve(|| NOW, 1).unwrap())
        };
        let checked = admitted(&state.check(|| NOW, 1));
        let reserved = reserver.join().unwrap();
        if checked {
            // The check came first: the reservation waits, and is the
            // latest event.
            assert_eq!(reserved.act_at, NOW + T);
            assert_eq!(state.last_event(), NOW + T);
        } else {
            assert_eq!(reserved.act_at, NOW);
        }
    });
}

/// A refusal is never judged on a clock read before a state that moved
/// after the reading. The clock here sits behind a lock, so a reading
/// taken after another thread moved time on (in loom's execution order)
/// sees the new time, as a real clock sees time that has passed; an atomic
/// clock would not do, as loom may let a relaxed read lag behind a store
/// that the state's relaxed swap does not publish. Another thread moves
/// time on and takes one token of three while this one checks: however
/// they interleave, both are admitted. Keep an old reading for a refusal
/// after a failed swap, and this model fails. (Reading the clock before
/// the state in the first attempt did not fail it when tried: the unit
/// test `gcra::tests::a_refusal_is_judged_at_a_time_read_after_the_state`
/// is what catches that.)
#[test]
fn loom_a_refusal_is_never_judged_on_a_clock_older_than_the_state() {
    use crate::loom::Mutex;
    loom::model(|| {
        let state = state(T, 3);
        let clock = Arc::new(Mutex::new(NOW));
        let other = {
            let (state, clock) = (Arc::clone(&state), Arc::clone(&clock));
            thread::spawn(move || {
                *clock.lock() = NOW + 10 * T;
                admitted(&state.check(|| *clock.lock(), 1))
            })
        };
        let checked = admitted(&state.check(|| *clock.lock(), 1));
        assert!(other.join().unwrap());
        assert!(checked, "refused at a time older than the state");
    });
}
