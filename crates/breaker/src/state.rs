//! The state machine, on atomics: closed, open, half-open, forced open,
//! disabled.
//!
//! One word holds the phase (low 3 bits) and a generation (the rest). A
//! closed call loads it, runs, and records into the window: no lock and no
//! allocation. Every transition
//! bumps the generation under a mutex (transitions are rare), so a permit
//! issued before a transition records nothing after it.

use std::time::Duration;

use seawall_core::{Clock, Outcome};

use crate::config::{BreakerConfig, TrialRule};
use crate::error::BreakerRefusal as Refusal;
use crate::loom::{AtomicU32, AtomicU64, Mutex, Ordering};
use crate::observe::Observer;
use crate::time_window::TimeWindow;
use crate::window::{CountWindow, Window, Written};

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

/// The phase code of a closed breaker being reset: calls go through as when
/// closed, but their outcomes are not recorded (the window is being
/// emptied). Reported as closed.
const RESETTING: u64 = 5;

impl State {
    #[inline]
    fn code(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
            Self::ForcedOpen => 3,
            Self::Disabled => 4,
        }
    }

    #[inline]
    fn of(word: u64) -> Self {
        match word & 0b111 {
            1 => Self::Open,
            2 => Self::HalfOpen,
            3 => Self::ForcedOpen,
            4 => Self::Disabled,
            // 0, and RESETTING.
            _ => Self::Closed,
        }
    }
}

/// The state's name in kebab case: `closed`, `open`, `half-open`,
/// `forced-open`, `disabled`.
impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
            Self::ForcedOpen => "forced-open",
            Self::Disabled => "disabled",
        })
    }
}

/// The word after a transition to `state`.
fn next(word: u64, state: State) -> u64 {
    next_code(word, state.code())
}

/// The word after a transition to the phase `code`.
fn next_code(word: u64, code: u64) -> u64 {
    (((word >> 3).wrapping_add(1)) << 3) | code
}

/// What a let-through call must report back: the word it was let in under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    word: u64,
}

impl Ticket {
    /// Whether it was let in as a half-open trial.
    #[inline]
    pub(crate) fn is_trial(self) -> bool {
        self.word & 0b111 == State::HalfOpen.code()
    }
}

/// The generation's low bits, tagging the half-open counters with the
/// period they count: a ticket from another period can neither take, give
/// back nor record a trial in this one.
fn tag(word: u64) -> u64 {
    (word >> 3) & 0xFFFF_FFFF
}

/// The run of consecutive failures in its word (low half).
const RUN_MASK: u64 = 0xFFFF_FFFF;

/// Trial outcomes in half-open, packed so one update changes them
/// together: slow (bits 0..16), failures (16..32), done (32..48), and the
/// period's tag (48..64). Trials are at most `MAX_HALF_OPEN_CALLS`.
const TRIAL_BITS: u32 = 16;
const TRIAL_MASK: u64 = (1 << TRIAL_BITS) - 1;
const ISSUED_MASK: u64 = 0xFFFF_FFFF;

/// Aligned to its own cache lines, so the handle's reference count (cloned
/// with every service and permit) never shares a line with the state word
/// every call reads.
#[repr(align(128))]
pub(crate) struct Core<C> {
    word: AtomicU64,
    /// The last instant an open breaker refuses, on `clock` (trials may go
    /// through after it).
    open_until: AtomicU64,
    /// The last instant of the half-open period before it opens again.
    half_open_until: AtomicU64,
    /// Openings in a row from half-open, for the growing wait.
    reopenings: AtomicU32,
    window: Window,
    /// Failures in a row (low 32 bits), tagged with the closed period they
    /// count (the generation's low 32 bits, high half): a failure recorded
    /// late, from an earlier period, cannot add to this one's run.
    consecutive_failures: AtomicU64,
    /// The half-open period's tag (high 32 bits) and trials let through.
    trials_issued: AtomicU64,
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
            half_open_until: AtomicU64::new(0),
            reopenings: AtomicU32::new(0),
            window: match config.time_window {
                Some(buckets) => Window::Time(TimeWindow::new(
                    buckets,
                    u64::try_from(config.bucket_width.as_nanos()).unwrap_or(u64::MAX),
                    config.slow_call_duration.is_some(),
                )),
                None => Window::Count(CountWindow::new(config.window)),
            },
            consecutive_failures: AtomicU64::new(0),
            trials_issued: AtomicU64::new(0),
            trials: AtomicU64::new(0),
            config,
            clock,
            transition: Mutex::new(()),
            observer,
        }
    }

    /// The state now: an open breaker whose wait has passed half-opens,
    /// and a half-open one past its longest wait opens again (or half-opens
    /// afresh: see [`transition`](Self::transition)), here as at the next
    /// call.
    pub(crate) fn state(&self) -> State {
        let word = self.word.load(Ordering::Acquire);
        let until = match State::of(word) {
            State::Open => &self.open_until,
            State::HalfOpen => &self.half_open_until,
            state => return state,
        };
        if self.time_left(until).is_none() {
            self.transition(word, State::HalfOpen);
            return State::of(self.word.load(Ordering::Acquire));
        }
        State::of(word)
    }

    /// Lets a call through, or says why not.
    #[inline]
    pub(crate) fn acquire(&self) -> Result<Ticket, Refusal> {
        // Acquire: pairs with the transitions' Release.
        let word = self.word.load(Ordering::Acquire);
        if word & 0b111 == State::Closed.code() {
            return Ok(Ticket { word });
        }
        // Whether an open breaker's wait is over, inline too: while it is
        // open, every caller asks.
        if word & 0b111 == State::Open.code()
            && let Some(left) = self.time_left(&self.open_until)
        {
            return Err(self.open_refusal(left));
        }
        self.acquire_slow()
    }

    /// An open breaker's refusal, counted, with `left` of its wait: out of
    /// line (not cold: it is every call's answer while open), so that
    /// `acquire` stays small enough to inline into each caller.
    #[inline(never)]
    fn open_refusal(&self, left: Duration) -> Refusal {
        self.observer.refused(State::Open);
        Refusal::Open {
            retry_after: self.spread(left),
        }
    }

    /// [`acquire`](Self::acquire) in every state.
    #[cold]
    fn acquire_slow(&self) -> Result<Ticket, Refusal> {
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
                    if let Some(left) = self.time_left(&self.open_until) {
                        self.observer.refused(State::Open);
                        return Err(Refusal::Open {
                            retry_after: self.spread(left),
                        });
                    }
                    self.transition(word, State::HalfOpen);
                }
                State::HalfOpen => {
                    let Some(retry_after) = self.time_left(&self.half_open_until) else {
                        // The trials did not decide in time.
                        self.transition(word, State::HalfOpen);
                        continue;
                    };
                    let permitted = u64::from(self.config.half_open_calls);
                    let ours = tag(word) << 32;
                    let issued =
                        self.trials_issued
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                                (v & !ISSUED_MASK == ours && v & ISSUED_MASK < permitted)
                                    .then_some(v + 1)
                            });
                    match issued {
                        Ok(_) => return Ok(Ticket { word }),
                        // A newer period began since we read the state.
                        Err(v) if v & !ISSUED_MASK != ours => {}
                        Err(_) => {
                            self.observer.refused(State::HalfOpen);
                            return Err(Refusal::HalfOpenFull {
                                retry_after: self.spread(retry_after),
                            });
                        }
                    }
                }
            }
        }
    }

    /// The wait to tell a refused caller: `left`, spread up to
    /// `left × (1 + wait_jitter)` so that the callers one breaker refuses
    /// do not all come back at the same instant. Never less than `left`: a
    /// caller is not told to come back before it could be let in.
    #[inline]
    fn spread(&self, left: Duration) -> Duration {
        let factor = self.config.wait_jitter;
        if factor <= 0.0 {
            return left;
        }
        let nanos = u64::try_from(left.as_nanos()).unwrap_or(u64::MAX);
        let most = share(nanos, factor);
        left + Duration::from_nanos(seawall_core::random::up_to(most, nanos))
    }

    /// How long a state (open or half-open) that lasts `until` lasts from
    /// now; `None` once `until` has passed. The deadline itself still
    /// belongs to the state: an open breaker refuses at exactly
    /// `opened + wait`, as gobreaker, hystrix-go and resilience4j do.
    #[inline]
    fn time_left(&self, until: &AtomicU64) -> Option<Duration> {
        let now = self.clock.now_nanos();
        let until = until.load(Ordering::Relaxed);
        (now <= until).then(|| Duration::from_nanos(until - now))
    }

    /// Whether a call now would be refused, and why, without taking
    /// anything: no trial place, no transition, no count (a caller that
    /// answers the refusal counts it with [`refused`](Self::refused)).
    /// `None` does not promise a place: a half-open place may go to another
    /// caller before [`acquire`].
    ///
    /// [`acquire`]: Self::acquire
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        loop {
            if let Some(found) = self.refusal_once() {
                return found;
            }
        }
    }

    /// One look for [`refusal`](Self::refusal); `None` when a half-open
    /// breaker past its deadline was moved on, to look again.
    #[cfg(feature = "tower")]
    #[allow(clippy::option_option)] // "look again" beside "no refusal"
    fn refusal_once(&self) -> Option<Option<Refusal>> {
        let word = self.word.load(Ordering::Acquire);
        let refusal = match State::of(word) {
            State::Closed | State::Disabled => return Some(None),
            State::ForcedOpen => Refusal::ForcedOpen,
            State::Open => match self.time_left(&self.open_until) {
                Some(left) => Refusal::Open {
                    retry_after: self.spread(left),
                },
                // The next `acquire` half-opens.
                None => return Some(None),
            },
            State::HalfOpen => {
                let Some(retry_after) = self.time_left(&self.half_open_until) else {
                    // Past its longest wait: open again (or half-open
                    // afresh), and look again.
                    self.transition(word, State::HalfOpen);
                    return None;
                };
                let issued = self.trials_issued.load(Ordering::Acquire);
                let ours = tag(word) << 32;
                let full = issued & !ISSUED_MASK == ours
                    && issued & ISSUED_MASK >= u64::from(self.config.half_open_calls);
                if !full {
                    return Some(None);
                }
                Refusal::HalfOpenFull {
                    retry_after: self.spread(retry_after),
                }
            }
        };
        Some(Some(refusal))
    }

    /// Counts a refusal found by [`refusal`](Self::refusal) and answered.
    #[cfg(feature = "tower")]
    pub(crate) fn refused(&self, refusal: Refusal) {
        self.observer.refused(match refusal {
            Refusal::Open { .. } => State::Open,
            Refusal::ForcedOpen => State::ForcedOpen,
            Refusal::HalfOpenFull { .. } => State::HalfOpen,
        });
    }

    /// Records the outcome of a call let through under `ticket`, after
    /// `elapsed` (known with a slow-call rule, and for trials). A call
    /// `dropped` unfinished counts as ignored, except a trial that ran for
    /// [`dropped_trial_failure_after`] or longer: that counts as a failure,
    /// so a timeout outside the breaker cannot keep it half-open for good.
    ///
    /// [`dropped_trial_failure_after`]: BreakerConfig::dropped_trial_failure_after
    #[inline]
    pub(crate) fn record(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        elapsed: Option<Duration>,
        dropped: bool,
    ) {
        let word = self.word.load(Ordering::Acquire);
        if word != ticket.word || word & 0b111 == RESETTING {
            // The state moved on, or is being reset: this call says nothing
            // about the new one.
            return;
        }
        let slow = match (self.config.slow_call_duration, elapsed) {
            (Some(limit), Some(elapsed)) => elapsed >= limit,
            _ => false,
        };
        match State::of(word) {
            State::Closed => self.record_closed(word, outcome, slow),
            State::HalfOpen => {
                let outcome = match elapsed {
                    Some(ran) if dropped && ran >= self.config.dropped_trial_failure_after() => {
                        Outcome::Failure
                    }
                    _ => outcome,
                };
                self.record_trial(word, outcome, slow);
            }
            State::Open | State::ForcedOpen | State::Disabled => {}
        }
    }

    /// Records a closed call let in under `word`, which was current just
    /// before.
    #[inline]
    pub(crate) fn record_closed(&self, word: u64, outcome: Outcome, slow: bool) {
        let failure = match outcome {
            Outcome::Ignored => return,
            Outcome::Failure => true,
            Outcome::Success => false,
        };
        let mut trip = false;
        if let Some(limit) = self.config.consecutive_failures {
            // Relaxed: the count guards no other memory.
            let ours = tag(word) << 32;
            let run = &self.consecutive_failures;
            if failure {
                let added = run.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    (v & !RUN_MASK == ours).then(|| ours | ((v & RUN_MASK) + 1).min(RUN_MASK))
                });
                trip = added.is_ok_and(|before| (before & RUN_MASK) + 1 >= u64::from(limit));
            } else {
                // Retried if a failure lands meanwhile, so a success between
                // two failures always breaks the run; writes nothing when
                // the run is already zero.
                let _ = run.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    (v != ours && v & !RUN_MASK == ours).then_some(ours)
                });
            }
        }
        if !self.config.rates {
            // Consecutive failures only: no window to keep.
            self.observer.recorded(failure, slow);
            if trip {
                self.transition(word, State::Open);
            }
            return;
        }
        self.record_window(word, failure, slow, trip);
    }

    /// The rest of [`record_closed`](Self::record_closed) with a window:
    /// out of line, so a breaker of consecutive failures only records
    /// inline.
    #[inline(never)]
    fn record_window(&self, word: u64, failure: bool, slow: bool, mut trip: bool) {
        let (totals, written) = self.window.record(|| self.clock.now_nanos(), failure, slow);
        // The state may have moved on since it was checked, through to a
        // fresh closed period with a cleared window: then this outcome says
        // nothing about the new period, and is taken out again. Acquire,
        // with the window's own orderings, makes a write that landed after
        // the clear see the word that came with it (see `Window::clear`).
        if written != Written::Nothing && self.word.load(Ordering::Acquire) != word {
            self.window.undo(written);
            return;
        }
        self.observer.recorded(failure, slow);
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
                && totals.slow_of >= self.config.minimum_calls
                && u64::from(totals.slow) * 1_000_000
                    >= u64::from(self.config.slow_rate) * u64::from(totals.slow_of);
        }
        if trip {
            self.transition(word, State::Open);
        }
    }

    #[cold]
    fn record_trial(&self, word: u64, outcome: Outcome, slow: bool) {
        let ours = tag(word);
        let failure = match outcome {
            // A trial that says nothing frees its place for another (in its
            // own period only, and never below zero).
            Outcome::Ignored => {
                let _ = self
                    .trials_issued
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                        (v & !ISSUED_MASK == ours << 32 && v & ISSUED_MASK > 0).then(|| v - 1)
                    });
                return;
            }
            Outcome::Failure => 1,
            Outcome::Success => 0,
        };
        self.observer.recorded(failure == 1, slow);
        let ours16 = ours & TRIAL_MASK;
        let add = (1 << (2 * TRIAL_BITS)) | (failure << TRIAL_BITS) | u64::from(slow);
        let Ok(before) = self
            .trials
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (v >> (3 * TRIAL_BITS) == ours16).then(|| v + add)
            })
        else {
            return; // another period
        };
        let trials = before + add;
        let field = |shift: u32| (trials >> shift) & TRIAL_MASK;
        let (done, failures, slow_calls) = (field(2 * TRIAL_BITS), field(TRIAL_BITS), field(0));
        let slow_counts = self.config.slow_call_duration.is_some();
        if self.config.trial_rule == TrialRule::FirstFailure
            && (failure == 1 || slow && slow_counts)
        {
            self.transition(word, State::Open);
            return;
        }
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
    /// it first. Returns whether it did. From half-open to half-open is the
    /// end of the period's longest wait: afresh, or open again (below).
    /// The transition is reported after
    /// the lock is released, so a callback may read the breaker (and a slow
    /// one holds up no other transition).
    #[cold]
    pub(crate) fn transition(&self, observed: u64, to: State) -> bool {
        let serial = self.transition.lock();
        if self.word.load(Ordering::Acquire) != observed {
            return false;
        }
        // Half-open past its longest wait, asked to half-open again: afresh
        // only if the period let no trial through (none came, or those that
        // came were dropped early and freed their places), so that reading
        // the state of an idle breaker (a metrics export) does not reopen
        // it and grow its wait over and over. Otherwise a trial it let
        // through has not decided it: it opens again, a reopening. The trial
        // count moves to the next period in one step, so a trial let
        // through since the caller looked (or while this runs) makes it a
        // reopening too.
        let to = if to == State::HalfOpen && State::of(observed) == State::HalfOpen {
            let none = tag(observed) << 32;
            let next_period = tag(next(observed, State::HalfOpen)) << 32;
            match self.trials_issued.compare_exchange(
                none,
                next_period,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => State::HalfOpen,
                Err(_) => State::Open,
            }
        } else {
            to
        };
        self.enter(observed, to);
        drop(serial);
        // Half-open afresh is no change to report.
        if State::of(observed) != to {
            self.observer.transition(State::of(observed), to);
        }
        true
    }

    /// Sets the state by hand (forced open, disabled, or closed to reset),
    /// whatever it was. A reset of a closed breaker empties its window but
    /// reports no transition.
    pub(crate) fn force(&self, to: State) {
        let serial = self.transition.lock();
        let observed = self.word.load(Ordering::Acquire);
        self.enter(observed, to);
        drop(serial);
        let from = State::of(observed);
        if from != to {
            self.observer.transition(from, to);
        }
    }

    /// Enters `to`; the caller holds the transition lock.
    fn enter(&self, mut observed: u64, to: State) {
        let from = State::of(observed);
        match to {
            State::Open => {
                // Under the lock: a plain read and write, saturating.
                let reopenings = if from == State::HalfOpen {
                    let reopenings = self.reopenings.load(Ordering::Relaxed).saturating_add(1);
                    self.reopenings.store(reopenings, Ordering::Relaxed);
                    reopenings
                } else {
                    self.reopenings.store(0, Ordering::Relaxed);
                    0
                };
                let now = self.clock.now_nanos();
                let wait = self.config.wait_in_open_after(reopenings);
                let wait = jittered(
                    u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX),
                    self.config.wait_jitter,
                    now,
                );
                self.open_until
                    .store(now.saturating_add(wait), Ordering::Relaxed);
            }
            State::HalfOpen => {
                let wait = self.config.max_wait_in_half_open;
                let wait = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
                self.half_open_until.store(
                    self.clock.now_nanos().saturating_add(wait),
                    Ordering::Relaxed,
                );
                let new_tag = tag(next(observed, State::HalfOpen));
                self.trials_issued.store(new_tag << 32, Ordering::Relaxed);
                self.trials.store(
                    (new_tag & TRIAL_MASK) << (3 * TRIAL_BITS),
                    Ordering::Relaxed,
                );
            }
            State::Closed => {
                if from == State::Closed {
                    // A reset of a closed breaker: move its calls to a
                    // generation that records nothing before the window is
                    // emptied, so an outcome let in before the reset, whose
                    // write lands after the clear, finds the word moved on
                    // and takes it back (see `Window::clear`).
                    observed = next_code(observed, RESETTING);
                    self.word.store(observed, Ordering::Release);
                }
                self.window.clear();
                self.consecutive_failures
                    .store(tag(next(observed, to)) << 32, Ordering::Relaxed);
                self.reopenings.store(0, Ordering::Relaxed);
            }
            State::ForcedOpen | State::Disabled => {}
        }
        // Release: a call that sees the new word sees the fields set above.
        self.word.store(next(observed, to), Ordering::Release);
    }

    pub(crate) fn window_totals(&self) -> crate::window::Totals {
        self.window.totals_now(|| self.clock.now_nanos())
    }

    /// Time left in open, if open.
    pub(crate) fn open_remaining(&self) -> Option<Duration> {
        self.open_remaining_in(self.state())
    }

    /// Time left in open, if `state` (read just before) is open.
    pub(crate) fn open_remaining_in(&self, state: State) -> Option<Duration> {
        (state == State::Open).then(|| self.time_left(&self.open_until).unwrap_or_default())
    }
}

/// `factor` (in `[0, 1)`) of `nanos`, in f64: precision is lost only past
/// 2^53 ns.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn share(nanos: u64, factor: f64) -> u64 {
    (nanos as f64 * factor) as u64
}

/// `wait` nanoseconds drawn uniformly from `wait × (1 ± factor)`.
fn jittered(wait: u64, factor: f64, seed: u64) -> u64 {
    if factor <= 0.0 {
        return wait;
    }
    let spread = share(wait, factor);
    let low = wait - spread.min(wait);
    low.saturating_add(seawall_core::random::up_to(spread.saturating_mul(2), seed))
}

impl<C> std::fmt::Debug for Core<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("state", &State::of(self.word.load(Ordering::Relaxed)))
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seawall_core::ManualClock;

    /// Just past the default open wait of 5 s.
    const AFTER_WAIT: Duration = Duration::from_nanos(5_000_000_001);

    fn core() -> (Core<ManualClock>, ManualClock) {
        let config = BreakerConfig::builder()
            .count_window(1)
            .minimum_calls(1)
            .permitted_calls_in_half_open(1)
            .build()
            .unwrap();
        let clock = ManualClock::new();
        (
            Core::new(config, clock.clone(), Observer::new("test", None)),
            clock,
        )
    }

    /// The count of reopenings in a row saturates instead of overflowing.
    #[test]
    fn reopenings_saturate() {
        let (core, clock) = core();
        let opening = core.acquire().unwrap();
        core.record(opening, Outcome::Failure, None, false);
        core.reopenings.store(u32::MAX - 1, Ordering::Relaxed);
        for _ in 0..2 {
            clock.advance(AFTER_WAIT);
            let trial = core.acquire().unwrap();
            core.record(trial, Outcome::Failure, None, false);
        }
        assert_eq!(core.reopenings.load(Ordering::Relaxed), u32::MAX);
        assert_eq!(core.state(), State::Open);
    }

    /// An outcome that passed the state check just before the breaker
    /// moved on to a fresh closed period is taken back out of the cleared
    /// window (the loom model `a_stale_outcome_never_lands_in_a_fresh_window`
    /// runs the race itself).
    #[test]
    fn a_stale_closed_outcome_is_taken_back() {
        let config = BreakerConfig::builder()
            .count_window(4)
            .minimum_calls(4)
            .build()
            .unwrap();
        let core = Core::new(config, ManualClock::new(), Observer::new("test", None));
        let stale = core.acquire().unwrap();
        core.force(State::ForcedOpen);
        core.force(State::Closed);
        // What `record` does after its check passed.
        core.record_closed(stale.word, Outcome::Failure, false);
        assert_eq!(core.window_totals().calls, 0);
    }

    /// A failure from an earlier closed period, recorded late (past the
    /// state check), does not add to the new period's run of failures.
    #[test]
    fn a_stale_failure_does_not_add_to_a_new_run() {
        let config = BreakerConfig::builder()
            .consecutive_failures_only(2)
            .build()
            .unwrap();
        let core = Core::new(config, ManualClock::new(), Observer::new("test", None));
        let stale = core.acquire().unwrap();
        core.force(State::Closed); // a reset: a new closed period
        core.record_closed(stale.word, Outcome::Failure, false);
        let fresh = core.acquire().unwrap();
        core.record(fresh, Outcome::Failure, None, false);
        assert_eq!(core.state(), State::Closed, "one failure in this run");
        let fresh = core.acquire().unwrap();
        core.record(fresh, Outcome::Failure, None, false);
        assert_eq!(core.state(), State::Open);
    }

    /// A ticket from an earlier half-open period, recorded late (as a
    /// thread descheduled past the state check would), neither frees nor
    /// fills a place of the current period.
    #[test]
    fn stale_trials_touch_nothing_in_a_later_period() {
        let (core, clock) = core();
        let opening = core.acquire().unwrap();
        core.record(opening, Outcome::Failure, None, false); // open
        clock.advance(AFTER_WAIT);
        let stale = core.acquire().unwrap(); // half-open, period 1
        core.record_trial(stale.word, Outcome::Failure, false); // open again
        clock.advance(AFTER_WAIT);
        let current = core.acquire().unwrap(); // half-open, period 2
        assert_eq!(core.state(), State::HalfOpen);

        core.record_trial(stale.word, Outcome::Ignored, false);
        assert_eq!(
            core.acquire().unwrap_err(),
            Refusal::HalfOpenFull {
                retry_after: Duration::from_secs(30)
            },
            "place not freed"
        );
        core.record_trial(stale.word, Outcome::Success, false);
        assert_eq!(core.state(), State::HalfOpen, "stale success not counted");

        core.record(current, Outcome::Success, None, false);
        assert_eq!(core.state(), State::Closed);
    }
}
