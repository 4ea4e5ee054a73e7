//! The state machine, on atomics: closed, open, half-open, forced open,
//! disabled.
//!
//! One word holds the phase (low 3 bits) and a generation (the rest). A
//! closed call loads it, runs, and records into the window: no lock, no
//! allocation, and for a success two atomic additions. Every transition
//! bumps the generation under a mutex (transitions are rare), so a permit
//! issued before a transition records nothing after it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use seawall_core::{Clock, Outcome};

use crate::config::BreakerConfig;
use crate::observe::Observer;
use crate::window::{CountWindow, TimeWindow, Window};

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls go through; outcomes are judged.
    Closed,
    /// Calls are refused until the open wait is over.
    Open,
    /// A few trial calls go through; their outcomes decide.
    HalfOpen,
    /// Set by hand: every call is refused until reset.
    ForcedOpen,
    /// Set by hand: every call goes through, nothing is judged.
    Disabled,
}

impl State {
    const ALL: [Self; 5] = [
        Self::Closed,
        Self::Open,
        Self::HalfOpen,
        Self::ForcedOpen,
        Self::Disabled,
    ];

    fn code(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
            Self::ForcedOpen => 3,
            Self::Disabled => 4,
        }
    }

    fn of(word: u64) -> Self {
        Self::ALL
            .into_iter()
            .find(|s| s.code() == word & 0b111)
            .unwrap_or(Self::Closed)
    }
}

/// The word after a transition to `state`.
fn next(word: u64, state: State) -> u64 {
    (((word >> 3).wrapping_add(1)) << 3) | state.code()
}

/// Why a call was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Open { retry_after: Duration },
    ForcedOpen,
    HalfOpenFull,
}

/// What a let-through call must report back: the word it was let in under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    word: u64,
}

/// Trial outcomes in half-open, packed so one add updates them together:
/// done (bits 0..21), failures (21..42), slow (42..63).
const TRIAL_BITS: u32 = 21;

pub(crate) struct Core<C> {
    word: AtomicU64,
    /// When an open breaker may let trials through, on `clock`.
    open_until: AtomicU64,
    /// Openings in a row from half-open, for the growing wait.
    reopenings: AtomicU32,
    window: Window,
    consecutive_failures: AtomicU32,
    trials_issued: AtomicU32,
    trials: AtomicU64,
    pub(crate) config: BreakerConfig,
    pub(crate) clock: C,
    transition: Mutex<()>,
    pub(crate) observer: Observer,
}

impl<C: Clock> Core<C> {
    pub(crate) fn new(config: BreakerConfig, clock: C, observer: Observer) -> Self {
        Self {
            word: AtomicU64::new(State::Closed.code()),
            open_until: AtomicU64::new(0),
            reopenings: AtomicU32::new(0),
            window: match config.time_window {
                Some(seconds) => Window::Time(TimeWindow::new(seconds)),
                None => Window::Count(CountWindow::new(config.window)),
            },
            consecutive_failures: AtomicU32::new(0),
            trials_issued: AtomicU32::new(0),
            trials: AtomicU64::new(0),
            config,
            clock,
            transition: Mutex::new(()),
            observer,
        }
    }

    pub(crate) fn state(&self) -> State {
        State::of(self.word.load(Ordering::Acquire))
    }

    /// Lets a call through, or says why not.
    #[inline]
    pub(crate) fn acquire(&self) -> Result<Ticket, Refusal> {
        loop {
            // Acquire: pairs with the transitions' Release, so the state's
            // other fields (open_until, reset counters) are seen with it.
            let word = self.word.load(Ordering::Acquire);
            match State::of(word) {
                State::Closed | State::Disabled => return Ok(Ticket { word }),
                State::ForcedOpen => {
                    self.observer.refused(State::ForcedOpen);
                    return Err(Refusal::ForcedOpen);
                }
                State::Open => {
                    let now = self.clock.now_nanos();
                    let until = self.open_until.load(Ordering::Relaxed);
                    if now < until {
                        self.observer.refused(State::Open);
                        return Err(Refusal::Open {
                            retry_after: Duration::from_nanos(until - now),
                        });
                    }
                    self.transition(word, State::HalfOpen);
                }
                State::HalfOpen => {
                    let permitted = self.config.half_open_calls;
                    let issued = self.trials_issued.fetch_update(
                        Ordering::AcqRel,
                        Ordering::Acquire,
                        |issued| (issued < permitted).then_some(issued + 1),
                    );
                    return match issued {
                        Ok(_) => Ok(Ticket { word }),
                        Err(_) => {
                            self.observer.refused(State::HalfOpen);
                            Err(Refusal::HalfOpenFull)
                        }
                    };
                }
            }
        }
    }

    /// Records the outcome of a call let through under `ticket`.
    pub(crate) fn record(&self, ticket: Ticket, outcome: Outcome, elapsed: Option<Duration>) {
        let word = self.word.load(Ordering::Acquire);
        if word != ticket.word {
            return; // the state moved on: this call says nothing about the new one
        }
        let slow = match (self.config.slow_call_duration, elapsed) {
            (Some(limit), Some(elapsed)) => elapsed >= limit,
            _ => false,
        };
        match State::of(word) {
            State::Closed => self.record_closed(word, outcome, slow),
            State::HalfOpen => self.record_trial(word, outcome, slow),
            State::Open | State::ForcedOpen | State::Disabled => {}
        }
    }

    fn record_closed(&self, word: u64, outcome: Outcome, slow: bool) {
        let failure = match outcome {
            Outcome::Ignored => return,
            Outcome::Failure => true,
            Outcome::Success => false,
        };
        self.observer.recorded(failure, slow);
        let mut trip = false;
        if failure {
            let in_a_row = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
            trip = self
                .config
                .consecutive_failures
                .is_some_and(|n| in_a_row >= n);
        } else if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        let totals = self.window.record(|| self.clock.now_nanos(), failure, slow);
        // In a count window a rate can only rise with a failure or a slow
        // call, or cross its threshold when the window first holds
        // `minimum_calls` (the rule applies from then on, not once the
        // window is full): a fast success past that point cannot trip
        // anything and is not judged. In a time window, calls expiring can
        // raise a rate at any record, so every record is judged.
        let judge = failure
            || slow
            || totals.calls == self.config.minimum_calls
            || matches!(self.window, Window::Time(_));
        if judge && totals.calls >= self.config.minimum_calls {
            let calls = u64::from(totals.calls);
            trip |= u64::from(totals.failures) * 1_000_000
                >= u64::from(self.config.failure_rate) * calls;
            trip |= self.config.slow_call_duration.is_some()
                && u64::from(totals.slow) * 1_000_000 >= u64::from(self.config.slow_rate) * calls;
        }
        if trip {
            self.transition(word, State::Open);
        }
    }

    fn record_trial(&self, word: u64, outcome: Outcome, slow: bool) {
        let failure = match outcome {
            // A trial that says nothing frees its place for another.
            Outcome::Ignored => {
                self.trials_issued.fetch_sub(1, Ordering::AcqRel);
                return;
            }
            Outcome::Failure => 1,
            Outcome::Success => 0,
        };
        self.observer.recorded(failure == 1, slow);
        let add = 1 | (failure << TRIAL_BITS) | (u64::from(slow) << (2 * TRIAL_BITS));
        let trials = self.trials.fetch_add(add, Ordering::AcqRel) + add;
        let field = |shift: u32| (trials >> shift) & ((1 << TRIAL_BITS) - 1);
        let (done, failures, slow_calls) = (field(0), field(TRIAL_BITS), field(2 * TRIAL_BITS));
        let permitted = u64::from(self.config.half_open_calls);
        if done < permitted {
            return;
        }
        let reopen = failures * 1_000_000 >= u64::from(self.config.failure_rate) * done
            || (self.config.slow_call_duration.is_some()
                && slow_calls * 1_000_000 >= u64::from(self.config.slow_rate) * done);
        self.transition(word, if reopen { State::Open } else { State::Closed });
    }

    /// Moves from the state `observed` to `to`, unless another thread moved
    /// it first. Returns whether it did.
    pub(crate) fn transition(&self, observed: u64, to: State) -> bool {
        let _serial = self.transition.lock();
        if self.word.load(Ordering::Acquire) != observed {
            return false;
        }
        self.enter(observed, to);
        true
    }

    /// Sets the state by hand (forced open, disabled, or closed to reset),
    /// whatever it was.
    pub(crate) fn force(&self, to: State) {
        let _serial = self.transition.lock();
        let observed = self.word.load(Ordering::Acquire);
        self.enter(observed, to);
    }

    /// Enters `to`; the caller holds the transition lock.
    fn enter(&self, observed: u64, to: State) {
        let from = State::of(observed);
        match to {
            State::Open => {
                let reopenings = if from == State::HalfOpen {
                    self.reopenings.fetch_add(1, Ordering::Relaxed) + 1
                } else {
                    self.reopenings.store(0, Ordering::Relaxed);
                    0
                };
                let wait = self.config.wait_in_open_after(reopenings);
                let wait = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
                let until = self.clock.now_nanos().saturating_add(wait);
                self.open_until.store(until, Ordering::Relaxed);
            }
            State::HalfOpen => {
                self.trials_issued.store(0, Ordering::Relaxed);
                self.trials.store(0, Ordering::Relaxed);
            }
            State::Closed => {
                self.window.clear();
                self.consecutive_failures.store(0, Ordering::Relaxed);
                self.reopenings.store(0, Ordering::Relaxed);
            }
            State::ForcedOpen | State::Disabled => {}
        }
        // Release: a call that sees the new word sees the fields set above.
        self.word.store(next(observed, to), Ordering::Release);
        self.observer.transition(from, to);
    }

    pub(crate) fn window_totals(&self) -> crate::window::Totals {
        self.window.totals()
    }

    /// Time left in open, if open.
    pub(crate) fn open_remaining(&self) -> Option<Duration> {
        (self.state() == State::Open).then(|| {
            let until = self.open_until.load(Ordering::Relaxed);
            Duration::from_nanos(until.saturating_sub(self.clock.now_nanos()))
        })
    }
}

impl<C> std::fmt::Debug for Core<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("state", &State::of(self.word.load(Ordering::Relaxed)))
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}
