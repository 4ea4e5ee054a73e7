//! The generic cell rate algorithm (GCRA) on one atomic word, and Go's
//! x/time/rate reservation rules on top of it.
//!
//! A token bucket of `burst` tokens refilled one token per emission interval
//! `T` can be kept as one number: the *theoretical arrival time* `tat`, the
//! moment the bucket will be full again. With `tau = burst × T` (the time an
//! empty bucket takes to fill):
//!
//! - the bucket holds `(tau - (tat - now)) / T` tokens now (all `burst` of
//!   them once `tat <= now`);
//! - taking `n` tokens moves `tat` to `max(tat, now) + n × T`;
//! - that is allowed when the new `tat` is at most `tau` ahead of `now`,
//!   i.e. from `allow_at = new_tat - tau` on.
//!
//! So a check is a load, a comparison and a compare-and-swap of one `u64`:
//! no lock, no allocation, no refill timer. Tokens are kept in nanoseconds
//! of the interval, so to `1/T` of a token.
//!
//! Two quotas bend the picture: an unlimited one admits without touching
//! the state, and one that never refills judges every request at time 0, so
//! `tat` counts what has been used ([`BUDGET_UNIT`] per token) and nothing
//! flows back.

use std::time::Duration;

use crate::error::InsufficientCapacity;
use crate::loom::{AtomicU64, Mutex, Ordering, fence};
use crate::quota::{Kind, MAX_TAU, Quota};
use crate::state::LimitState;

/// The top bit of `tat` marks a quota change in progress (`set_quota`):
/// checks wait for it to clear, then read the new quota. No real `tat`
/// reaches it: quotas keep `tau` under 2^62 ns, and `tat` saturates below.
pub(crate) const FROZEN: u64 = 1 << 63;
/// The largest `tat`: 292 years of clock time.
pub(crate) const MAX_TAT: u64 = FROZEN - 1;

/// The latest time a state is judged at: a burst after it still fits under
/// [`MAX_TAT`].
pub(crate) const LAST_NOW: u64 = MAX_TAT - MAX_TAU;
/// The act time of a reservation nothing will ever cover (a budget used up).
pub(crate) const NEVER: u64 = u64::MAX;
/// Set in a [`Rule`]'s `tau` word when the quota never refills.
const NO_REFILL: u64 = 1 << 63;
/// What one token stands for in the state of a quota that never refills:
/// `tat` then counts tokens used, to `1/2^30` of a token.
pub(crate) const BUDGET_UNIT: u64 = 1 << 30;
/// Spins on a frozen state before waiting on the quota lock instead.
#[cfg(not(all(test, loom)))]
const SPINS: u32 = 64;
#[cfg(all(test, loom))]
const SPINS: u32 = 0;

/// A quota as the state's words hold it: the interval, `tau` (with
/// [`NO_REFILL`] set when the quota never refills), and the mask the state
/// word is stored under while this quota is in force (see [`State`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    interval: u64,
    tau: u64,
    mask: u64,
}

impl Rule {
    pub(crate) fn of(quota: Quota) -> Self {
        let burst = u64::from(quota.burst());
        match quota.kind() {
            Kind::Unlimited => Self {
                interval: 0,
                tau: MAX_TAU,
                mask: 0,
            },
            Kind::Budget => Self {
                interval: BUDGET_UNIT,
                tau: (burst * BUDGET_UNIT) | NO_REFILL,
                mask: 0,
            },
            // `QuotaBuilder::build` checked that it fits under MAX_TAU.
            Kind::Rate(interval) => Self {
                interval,
                tau: interval.saturating_mul(burst),
                mask: 0,
            },
        }
    }

    /// The quota's two words, for keyed entries (which keep no mask).
    pub(crate) fn words(self) -> [u64; 2] {
        [self.interval, self.tau]
    }

    /// A rule from [`words`](Self::words).
    #[inline]
    pub(crate) fn from_words([interval, tau]: [u64; 2]) -> Self {
        Self {
            interval,
            tau,
            mask: 0,
        }
    }

    pub(crate) fn quota(self) -> Quota {
        if self.is_unlimited() {
            Quota::unlimited()
        } else if self.refills() {
            Quota::from_parts(self.interval, self.burst())
        } else {
            Quota::budget(self.burst())
        }
    }

    #[inline]
    pub(crate) fn is_unlimited(self) -> bool {
        self.interval == 0
    }

    #[inline]
    pub(crate) fn refills(self) -> bool {
        self.tau & NO_REFILL == 0
    }

    #[inline]
    pub(crate) fn tau(self) -> u64 {
        self.tau & !NO_REFILL
    }

    fn burst(self) -> u32 {
        match self.tau().checked_div(self.interval) {
            Some(burst) => u32::try_from(burst).unwrap_or(u32::MAX),
            None => u32::MAX,
        }
    }

    /// What `n` requests take, in state nanoseconds; nothing when
    /// unlimited; refused over the burst.
    #[inline]
    pub(crate) fn cost(self, n: u32) -> Result<u64, InsufficientCapacity> {
        match self.interval.checked_mul(u64::from(n)) {
            Some(cost) if cost <= self.tau() => Ok(cost),
            _ => Err(InsufficientCapacity::new(n, self.burst())),
        }
    }

    /// The time the state is judged at, for a clock reading `real`: no
    /// later than [`LAST_NOW`], where time stands still (a clock 146 years
    /// on, or a test clock at its end), so that the state, which saturates
    /// at [`MAX_TAT`], still moves past it: the bucket admits what it holds
    /// and then refuses, instead of admitting everything.
    #[inline]
    pub(crate) fn at(self, real: u64) -> u64 {
        if self.refills() {
            real.min(LAST_NOW)
        } else {
            0
        }
    }

    /// Tokens available at `real` for state `tat`: the burst when full,
    /// negative while reservations are outstanding, infinite when
    /// unlimited.
    #[allow(clippy::cast_precision_loss)] // an estimate, by contract
    pub(crate) fn tokens(self, tat: u64, real: u64) -> f64 {
        if self.is_unlimited() {
            return f64::INFINITY;
        }
        let units = i128::from(self.tau()) - (i128::from(tat) - i128::from(self.at(real))).max(0);
        units as f64 / self.interval as f64
    }

    /// The state after an admission, as headers report it.
    pub(crate) fn state(self, tat: u64, real: u64) -> LimitState {
        let quota = self.quota();
        if self.is_unlimited() {
            return LimitState::new(quota, u32::MAX, Duration::ZERO);
        }
        let debt = tat.saturating_sub(self.at(real));
        let remaining = u32::try_from(self.tau().saturating_sub(debt) / self.interval);
        let reset = if debt == 0 {
            Duration::ZERO
        } else if self.refills() {
            Duration::from_nanos(debt)
        } else {
            Duration::MAX
        };
        LimitState::new(quota, remaining.unwrap_or(u32::MAX), reset)
    }
}

/// The outcome of asking for `cost` nanoseconds of capacity at `now` when
/// the state is `tat`: the new `tat`, or the time it would be allowed.
#[inline]
pub(crate) fn admit(tat: u64, now: u64, cost: u64, tau: u64) -> Result<u64, u64> {
    let new_tat = tat.max(now).saturating_add(cost).min(MAX_TAT);
    let allow_at = new_tat.saturating_sub(tau);
    if now < allow_at {
        Err(allow_at)
    } else {
        Ok(new_tat)
    }
}

/// What a check decided, with the time it read and the quota it used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Admitted: the new `tat`.
    Admitted { tat: u64, now: u64, rule: Rule },
    /// Refused: when it would pass ([`NEVER`] if no wait would do).
    Refused { ready_at: u64, now: u64, rule: Rule },
    /// More than the burst: refused by the quota itself.
    Invalid(InsufficientCapacity),
}

/// What a reader of `tat` does on finding it frozen.
pub(crate) trait OnFrozen: Copy {
    /// What the reader gives up with, if it may give up.
    type GaveUp;

    /// `seen`, or the value `tat` holds once it is no longer frozen, or
    /// giving up.
    fn unfrozen(self, tat: &AtomicU64, seen: u64) -> Result<u64, Self::GaveUp>;
}

/// A limiter's state, frozen for the span of a quota change: wait it out
/// on the quota lock (`None` where nothing freezes the state).
impl OnFrozen for Option<&Mutex<()>> {
    type GaveUp = std::convert::Infallible;

    #[inline]
    fn unfrozen(self, tat: &AtomicU64, seen: u64) -> Result<u64, Self::GaveUp> {
        Ok(unfrozen(tat, seen, self))
    }
}

/// For states nothing freezes meanwhile (under the quota lock).
pub(crate) const UNLOCKED: Option<&Mutex<()>> = None;

/// A keyed entry's state, frozen for good when the entry was replaced
/// (under a new quota) or removed: the caller looks the key up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retired;

impl OnFrozen for Retired {
    type GaveUp = Self;

    #[inline]
    fn unfrozen(self, _: &AtomicU64, seen: u64) -> Result<u64, Self> {
        if seen & FROZEN == 0 {
            Ok(seen)
        } else {
            Err(Self)
        }
    }
}

/// [`admit`] for `n` requests on an atomic `tat`, at the time `now()`
/// reads, under the quota `rule()` gives: commits the new state, or refuses
/// leaving the state alone. `frozen` says what to do with a frozen state:
/// wait it out on the quota lock, or give up (a retired keyed entry).
///
/// The order of reads is what makes it exact:
/// - the quota is read after `tat` is seen unfrozen (with `Acquire`, pairing
///   with `set_quota`'s `Release`), so a `tat` converted to a new quota is
///   never judged by the old one;
/// - the clock is read after `tat`; an admission retry after a failed swap
///   reuses the reading, and a refusal on a state that moved since is
///   judged on a fresh one. Read before `tat`, a thread descheduled in
///   between would judge a fresh state at a stale time and refuse what the
///   bucket holds room for;
/// - a refusal is returned only if `tat` is still the value it was judged
///   on. Otherwise a quota that changed meanwhile could be read half old,
///   half new. A compare-and-swap that succeeds proves the same for an
///   admission. Both rest on an `Acquire` fence after reading the quota,
///   pairing with `set_quota`'s `Release` between freezing `tat` and
///   storing the quota (the seqlock pattern): having read a new quota value,
///   we cannot then read `tat` from before the freeze;
/// - the word holds `tat` XOR the quota's mask, and every quota change
///   draws a new mask, so a whole change (or several) completing between
///   our load and our compare-and-swap cannot leave the word as we loaded
///   it (the ABA problem) unless the new `tat` is exactly the old one XOR
///   both masks: one chance in about 2^62 (see [`State`]).
///
/// The first attempt is inline and straight: one load of `tat`, the quota,
/// the clock, and a compare-and-swap (or, for a refusal, a second load of
/// `tat`). Anything else (a frozen state, a failed swap, a moved state
/// under a refusal, taking nothing, more than the burst) goes on in
/// [`check_slow`], out of line, with the clock reading taken so far.
#[inline(always)]
pub(crate) fn check<F: OnFrozen>(
    tat: &AtomicU64,
    frozen: F,
    mut now: impl FnMut() -> u64,
    mut rule: impl FnMut() -> Rule,
    n: u32,
) -> Result<Decision, F::GaveUp> {
    let current = tat.load(Ordering::Acquire);
    if current & FROZEN == 0 {
        let judged = rule();
        fence(Ordering::Acquire);
        if judged.is_unlimited() {
            return Ok(Decision::Admitted {
                tat: 0,
                now: now(),
                rule: judged,
            });
        }
        if let Ok(cost) = judged.cost(n)
            && cost > 0
        {
            let real = now();
            match admit(current ^ judged.mask, judged.at(real), cost, judged.tau()) {
                Ok(next) => {
                    // Relaxed on success, as in `check_slow`; Relaxed on
                    // failure too: the value seen is dropped, and
                    // `check_slow` loads `tat` again (Acquire) before it
                    // reads the quota.
                    if tat
                        .compare_exchange_weak(
                            current,
                            next ^ judged.mask,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        return Ok(Decision::Admitted {
                            tat: next,
                            now: real,
                            rule: judged,
                        });
                    }
                }
                Err(ready_at) => {
                    if tat.load(Ordering::Acquire) == current {
                        return Ok(Decision::Refused {
                            ready_at: if judged.refills() { ready_at } else { NEVER },
                            now: real,
                            rule: judged,
                        });
                    }
                }
            }
            return check_slow(tat, frozen, now, rule, n, Some(real));
        }
    }
    check_slow(tat, frozen, now, rule, n, None)
}

/// [`check`] in full: every case, every retry.
#[cold]
#[inline(never)]
fn check_slow<F: OnFrozen>(
    tat: &AtomicU64,
    frozen: F,
    mut now: impl FnMut() -> u64,
    mut rule: impl FnMut() -> Rule,
    n: u32,
    clock: Option<u64>,
) -> Result<Decision, F::GaveUp> {
    let mut current = frozen.unfrozen(tat, tat.load(Ordering::Acquire))?;
    // The clock, read once after the state (or by the first attempt, in
    // `check`). A retry after a failed swap reuses it: admitting at a
    // slightly earlier time is admitting a request that arrived then, which
    // the bucket had room for. A refusal is never judged on a time older
    // than the state it refuses on: the clock is read again first.
    let mut clock = clock;
    let mut stale = clock.is_some();
    loop {
        let judged = rule();
        fence(Ordering::Acquire);
        if judged.is_unlimited() {
            // Admitted whatever the state, which it leaves alone; a torn
            // read cannot matter, as no part of the state is used.
            return Ok(Decision::Admitted {
                tat: 0,
                now: clock.unwrap_or_else(&mut now),
                rule: judged,
            });
        }
        let cost = match judged.cost(n) {
            Ok(cost) => cost,
            Err(e) => match revalidate(tat, current, frozen)? {
                None => return Ok(Decision::Invalid(e)),
                Some(seen) => {
                    current = seen;
                    stale = true;
                    continue;
                }
            },
        };
        let real = *clock.get_or_insert_with(&mut now);
        let value = current ^ judged.mask;
        match admit(value, judged.at(real), cost, judged.tau()) {
            // Taking nothing changes nothing: no write, but the state must
            // still be the one the quota belongs to.
            Ok(_) if cost == 0 => match revalidate(tat, current, frozen)? {
                None => {
                    return Ok(Decision::Admitted {
                        tat: value,
                        now: real,
                        rule: judged,
                    });
                }
                Some(seen) => {
                    current = seen;
                    stale = true;
                }
            },
            // Relaxed on success: `tat` publishes no other memory; Acquire
            // on failure, to read the quota that goes with what we saw.
            Ok(next) => {
                let stored = next ^ judged.mask;
                match tat.compare_exchange_weak(
                    current,
                    stored,
                    Ordering::Relaxed,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        return Ok(Decision::Admitted {
                            tat: next,
                            now: real,
                            rule: judged,
                        });
                    }
                    Err(seen) => {
                        current = frozen.unfrozen(tat, seen)?;
                        stale = true;
                    }
                }
            }
            Err(_) if stale => {
                clock = None;
                stale = false;
            }
            Err(ready_at) => match revalidate(tat, current, frozen)? {
                None => {
                    return Ok(Decision::Refused {
                        ready_at: if judged.refills() { ready_at } else { NEVER },
                        now: real,
                        rule: judged,
                    });
                }
                Some(seen) => {
                    current = seen;
                    stale = true;
                }
            },
        }
    }
}

/// `None` if `tat` still holds `judged`; otherwise the (unfrozen) value it
/// holds now, or giving up on a frozen one.
#[inline]
fn revalidate<F: OnFrozen>(
    tat: &AtomicU64,
    judged: u64,
    frozen: F,
) -> Result<Option<u64>, F::GaveUp> {
    let seen = tat.load(Ordering::Acquire);
    if seen == judged {
        Ok(None)
    } else {
        frozen.unfrozen(tat, seen).map(Some)
    }
}

/// `seen` if it is not frozen; otherwise waits until `tat` is not.
///
/// A change holds the state frozen for a few stores and some arithmetic
/// (no clock read, no user code), so a short spin almost always sees it
/// end. If it does not (the changing thread was descheduled mid-change),
/// the waiter blocks on the quota lock, which the change holds throughout,
/// instead of spinning: the worst case is the time the changing thread is
/// kept off its core, spent parked rather than burning a tokio worker.
#[inline]
fn unfrozen(tat: &AtomicU64, seen: u64, lock: Option<&Mutex<()>>) -> u64 {
    if seen & FROZEN == 0 {
        seen
    } else {
        wait_unfrozen(tat, seen, lock)
    }
}

/// The waiting half of [`unfrozen`], out of the checks' way.
#[cold]
#[inline(never)]
fn wait_unfrozen(tat: &AtomicU64, mut seen: u64, lock: Option<&Mutex<()>>) -> u64 {
    let mut spins = 0;
    while seen & FROZEN != 0 {
        #[cfg(all(test, not(loom)))]
        if lock.is_some() {
            tests::FROZEN_LOADS.fetch_add(1, Ordering::Relaxed);
        }
        if spins < SPINS {
            std::hint::spin_loop();
            spins += 1;
        } else if let Some(lock) = lock {
            drop(lock.lock());
        } else {
            crate::loom::yield_now();
        }
        seen = tat.load(Ordering::Acquire);
    }
    seen
}

/// Takes `cost` from the word `tat` (stored XOR `rule`'s mask), into debt
/// if need be, at the time `now()` reads (again on every retry): the new
/// state and that time. With `coming_only`, a place whose time would never
/// come (a budget without `cost` left) is not taken: `None`. For callers that know the
/// quota cannot change meanwhile: under the quota lock, or on a keyed
/// entry, whose quota never changes (a new quota retires the entry).
pub(crate) fn take<F: OnFrozen>(
    tat: &AtomicU64,
    frozen: F,
    rule: Rule,
    mut now: impl FnMut() -> u64,
    cost: u64,
    coming_only: bool,
) -> Result<Option<(u64, u64)>, F::GaveUp> {
    let mut current = frozen.unfrozen(tat, tat.load(Ordering::Acquire))?;
    loop {
        let real = now();
        let next = (current ^ rule.mask)
            .max(rule.at(real))
            .saturating_add(cost)
            .min(MAX_TAT);
        if coming_only && rule.act_at(next, real) == NEVER {
            return Ok(None);
        }
        match tat.compare_exchange_weak(
            current,
            next ^ rule.mask,
            Ordering::Relaxed,
            Ordering::Acquire,
        ) {
            Ok(_) => return Ok(Some((next, real))),
            Err(seen) => current = frozen.unfrozen(tat, seen)?,
        }
    }
}

/// Gives `restore` state nanoseconds back to the word `tat` at clock time
/// `real`, capped at a full bucket.
pub(crate) fn restore_state<F: OnFrozen>(
    tat: &AtomicU64,
    frozen: F,
    rule: Rule,
    real: u64,
    restore: u64,
) -> Result<(), F::GaveUp> {
    let at = rule.at(real);
    let mut current = frozen.unfrozen(tat, tat.load(Ordering::Acquire))?;
    loop {
        let next = (current ^ rule.mask).max(at).saturating_sub(restore);
        match tat.compare_exchange_weak(
            current,
            next ^ rule.mask,
            Ordering::Relaxed,
            Ordering::Acquire,
        ) {
            Ok(_) => return Ok(()),
            Err(seen) => current = frozen.unfrozen(tat, seen)?,
        }
    }
}

impl Rule {
    /// When a taking that left the state at `next` at clock time `real` may
    /// be acted on: now if it fit, [`NEVER`] if a budget cannot cover it.
    pub(crate) fn act_at(self, next: u64, real: u64) -> u64 {
        let ready = next.saturating_sub(self.tau());
        if ready <= self.at(real) {
            real
        } else if self.refills() {
            ready
        } else {
            NEVER
        }
    }
}

/// Re-expresses `tat` under a new quota at clock time `real`, so the tokens
/// available stay the same (capped at the new burst), as Go's `SetLimit` and
/// `SetBurst` do. The tokens are rounded down to `1/T` of the new quota.
/// A switch to or from unlimited leaves the bucket full.
pub(crate) fn convert(tat: u64, real: u64, old: Rule, new: Rule) -> u64 {
    if old.is_unlimited() || new.is_unlimited() {
        return 0;
    }
    let debt = i128::from(tat.saturating_sub(old.at(real)));
    // Tokens available now in old units (may be negative), then the same
    // count in new units, rounded down.
    let available = i128::from(old.tau()) - debt;
    let scaled = (available * i128::from(new.interval)).div_euclid(i128::from(old.interval));
    let new_debt = (i128::from(new.tau()) - scaled).max(0);
    let new_debt = u64::try_from(new_debt).unwrap_or(u64::MAX);
    new.at(real).saturating_add(new_debt).min(MAX_TAT)
}

/// A limiter's whole state: the GCRA word, the time of the latest event
/// (Go's `lastEvent`, which cancellations read), the quota, and the lock
/// that serializes quota changes, reservations and cancellations. Checks
/// never take the lock.
///
/// The GCRA word holds `tat` XOR a mask that every quota change draws
/// afresh (at random, bit 63 clear). A check loads the word, reads the
/// quota, and commits with a compare-and-swap on the word. Were the word
/// plain `tat`, a quota change completing in between (or two: a flip and
/// back) could leave the very value the check loaded, and the check would
/// commit a decision made under the old quota onto a state now read under
/// the new one. With masks, the word after a change equals the word before
/// only if the new `tat` is the old one XOR both masks, one specific value
/// in 2^62; a change every microsecond racing a check every time would
/// meet it once in about 10^5 years.
pub(crate) struct State {
    /// `tat` and `last_event`, on a line of their own: written by every
    /// check, while the quota words below are only read.
    hot: CacheLine<Hot>,
    interval: AtomicU64,
    tau: AtomicU64,
    mask: AtomicU64,
    lock: Mutex<()>,
}

struct Hot {
    /// `tat` XOR the quota's mask.
    tat: AtomicU64,
    /// The act time of the latest admission or reservation, as Go's
    /// `lastEvent`. Written under `lock`, except by a check that admits
    /// while it lies in the future (see [`State::check`]).
    last_event: AtomicU64,
}

/// What a reservation took: enough to give it back by Go's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reserved {
    /// Tokens taken.
    pub(crate) n: u32,
    /// The quota it was taken under.
    pub(crate) rule: Rule,
    /// When it may be acted on, on the clock ([`NEVER`] if never).
    pub(crate) act_at: u64,
    /// When it was taken, on the clock.
    pub(crate) now: u64,
    /// The state right after it.
    pub(crate) tat: u64,
}

impl Reserved {
    /// A reservation that took nothing and never comes (more than a burst
    /// of zero, or a waiter's place a budget cannot cover).
    pub(crate) fn never(now: u64) -> Self {
        Self {
            n: 0,
            rule: Rule::of(Quota::budget(0)),
            act_at: NEVER,
            now,
            tat: 0,
        }
    }

    /// The most of its cost (in its quota's units) that can come back when
    /// it is given back unused at `real`: all of it up to its act time;
    /// after that the bucket has refilled meanwhile, first what was used
    /// before this (the state up to `tat - cost`), then this, and what
    /// refilled past the cap is gone: so only the part of this still ahead
    /// of `real` (or the refund would let more than a burst through at
    /// once). Unbounded for a budget, which refills nothing.
    pub(crate) fn unrefilled(&self, real: u64) -> u64 {
        if self.act_at >= real || !self.rule.refills() {
            return u64::MAX;
        }
        self.tat.saturating_sub(real)
    }

    /// How long to wait, from the moment of reserving, before acting;
    /// `Duration::MAX` if the time never comes.
    pub(crate) fn delay(&self) -> Duration {
        match self.act_at {
            NEVER => Duration::MAX,
            act_at => Duration::from_nanos(act_at.saturating_sub(self.now)),
        }
    }

    /// A reservation admitted by a check at `now`, leaving the state `tat`.
    pub(crate) fn admitted(n: u32, rule: Rule, now: u64, tat: u64) -> Self {
        Self {
            n,
            rule,
            act_at: now,
            now,
            tat,
        }
    }
}

impl State {
    pub(crate) fn new(quota: Quota) -> Self {
        let rule = Rule::of(quota);
        Self {
            hot: CacheLine(Hot {
                tat: AtomicU64::new(0),
                last_event: AtomicU64::new(0),
            }),
            interval: AtomicU64::new(rule.interval),
            tau: AtomicU64::new(rule.tau),
            mask: AtomicU64::new(0),
            lock: Mutex::new(()),
        }
    }

    /// The quota words. Only meaningful with `tat` seen unfrozen first, or
    /// under the lock.
    #[inline]
    fn rule(&self) -> Rule {
        Rule {
            interval: self.interval.load(Ordering::Relaxed),
            tau: self.tau.load(Ordering::Relaxed),
            mask: self.mask.load(Ordering::Relaxed),
        }
    }

    /// Admits `n` now or refuses, without the lock.
    ///
    /// An admission is an event with act time `now`, which Go records as
    /// `lastEvent = now`. That matters to a later cancellation only when
    /// `lastEvent` lies in the future (a reservation's act time, after a
    /// quota change or a cancellation let this check through first): then
    /// it is pulled back to `now`. Otherwise `lastEvent` stays where it is,
    /// which no cancellation can tell apart, and the common path writes
    /// nothing more than `tat`.
    #[inline(always)]
    pub(crate) fn check(&self, now: impl FnMut() -> u64, n: u32) -> Decision {
        let hot = &*self.hot;
        let Ok(decision) = check(&hot.tat, Some(&self.lock), now, || self.rule(), n);
        if let Decision::Admitted { tat, now, rule } = decision
            && !rule.is_unlimited()
            && hot.last_event.load(Ordering::Relaxed) > now
        {
            self.admitted_before_last_event(tat ^ rule.mask, now);
        }
        decision
    }

    /// Records an admission at `now` as the latest event, Go's
    /// `lastEvent = now`, when the latest event lay in its future. Under the
    /// lock, so no reservation or cancellation runs meanwhile, and only if
    /// the state is still the `word` the admission left: then nothing came
    /// after it. Otherwise what came after recorded itself (a reservation),
    /// or will (a check), and the admission is not the latest event.
    #[cold]
    fn admitted_before_last_event(&self, word: u64, now: u64) {
        let _serial = self.lock.lock();
        if self.hot.tat.load(Ordering::Acquire) == word {
            self.hot.last_event.store(now, Ordering::Relaxed);
        }
    }

    /// Takes `n` unconditionally (Go's `ReserveN`), into debt if need be.
    pub(crate) fn reserve(
        &self,
        now: impl FnMut() -> u64,
        n: u32,
    ) -> Result<Reserved, InsufficientCapacity> {
        self.reserve_with(now, n, false)
    }

    /// [`reserve`](Self::reserve) for a waiter: a place that would never
    /// come (a budget without `n` left) is not taken, and the answer is
    /// [`Reserved::never`].
    pub(crate) fn reserve_coming(
        &self,
        now: impl FnMut() -> u64,
        n: u32,
    ) -> Result<Reserved, InsufficientCapacity> {
        self.reserve_with(now, n, true)
    }

    fn reserve_with(
        &self,
        mut now: impl FnMut() -> u64,
        n: u32,
        coming_only: bool,
    ) -> Result<Reserved, InsufficientCapacity> {
        let _serial = self.lock.lock();
        // Nothing freezes the state while we hold the lock.
        let rule = self.rule();
        if rule.is_unlimited() {
            // Takes nothing, and is not an event Go records.
            let real = now();
            return Ok(Reserved::admitted(n, rule, real, 0));
        }
        let cost = rule.cost(n)?;
        let hot = &*self.hot;
        let Ok(taken) = take(&hot.tat, UNLOCKED, rule, &mut now, cost, coming_only);
        let Some((next, real)) = taken else {
            return Ok(Reserved::never(now()));
        };
        let act_at = rule.act_at(next, real);
        hot.last_event.store(act_at, Ordering::Relaxed);
        Ok(Reserved {
            n,
            rule,
            act_at,
            now: real,
            tat: next,
        })
    }

    /// Gives back what `taken` took, as Go's `CancelAt` does at time
    /// `now()`: the tokens, less those reserved after it (the span from
    /// its act time to the latest event's, in its own quota's terms), and
    /// nothing once its act time has passed, unless `unused` says it never
    /// acted (a permit dropped unspent): then what has not refilled since.
    pub(crate) fn cancel(&self, now: impl FnOnce() -> u64, taken: &Reserved, unused: bool) {
        let Reserved {
            n,
            rule: was,
            act_at,
            ..
        } = *taken;
        if n == 0 || was.is_unlimited() {
            return;
        }
        let _serial = self.lock.lock();
        let real = now();
        let rule = self.rule();
        if rule.is_unlimited() || (act_at < real && !unused) {
            return;
        }
        let hot = &*self.hot;
        let last_event = hot.last_event.load(Ordering::Relaxed);
        // Both in the reservation's own nanoseconds. Go would give back more
        // than was taken when the latest event is earlier than this one's
        // (after a faster quota); capped at what was taken here.
        let taken_units = i128::from(n) * i128::from(was.interval);
        let built_on = if was.refills() {
            (i128::from(last_event) - i128::from(act_at)).max(0)
        } else {
            0
        };
        let restore = (taken_units - built_on).min(i128::from(taken.unrefilled(real)));
        if restore <= 0 {
            return;
        }
        // In the current quota's nanoseconds, rounded down.
        let restore = restore * i128::from(rule.interval) / i128::from(was.interval);
        let Ok(()) = restore_state(
            &hot.tat,
            UNLOCKED,
            rule,
            real,
            u64::try_from(restore).unwrap_or(u64::MAX),
        );
        // Go moves the latest event back to before this one when this one
        // was it, unless that is already past.
        if act_at == last_event && was.refills() {
            let previous = i128::from(act_at) - taken_units;
            if previous >= i128::from(real) {
                // Between `real` and `act_at`, so it fits.
                hot.last_event
                    .store(u64::try_from(previous).unwrap_or(act_at), Ordering::Relaxed);
            }
        }
    }

    /// Replaces the quota, keeping the tokens available (see [`convert`]).
    ///
    /// The clock is read before the state is frozen, so a clock that
    /// panics leaves nothing frozen; the freeze then covers only stores and
    /// arithmetic that cannot panic.
    pub(crate) fn set_quota(&self, now: impl FnOnce() -> u64, quota: Quota) {
        let _serial = self.lock.lock();
        let real = now();
        let old = self.rule();
        let new = Rule {
            mask: next_mask(old.mask),
            ..Rule::of(quota)
        };
        let hot = &*self.hot;
        // Freeze the state: checks wait until it is converted, so none
        // judges the old state by the new quota, or the reverse.
        let word = hot.tat.fetch_or(FROZEN, Ordering::Acquire);
        // Release: a check that reads any new quota word below then sees
        // the freeze (its `Acquire` fence pairs with this one).
        fence(Ordering::Release);
        self.interval.store(new.interval, Ordering::Relaxed);
        self.tau.store(new.tau, Ordering::Relaxed);
        self.mask.store(new.mask, Ordering::Relaxed);
        let tat = convert(word ^ old.mask, real, old, new);
        // Release: a check that sees the converted state sees the quota.
        hot.tat.store(tat ^ new.mask, Ordering::Release);
    }

    /// Go's `lastEvent`, for the loom models.
    #[cfg(all(test, loom))]
    pub(crate) fn last_event(&self) -> u64 {
        self.hot.last_event.load(Ordering::Relaxed)
    }

    /// The state and the quota it belongs to, read consistently.
    pub(crate) fn snapshot(&self) -> (u64, Rule) {
        let tat = &self.hot.tat;
        loop {
            let Ok(seen) = Some(&self.lock).unfrozen(tat, tat.load(Ordering::Acquire));
            let rule = self.rule();
            fence(Ordering::Acquire);
            if tat.load(Ordering::Acquire) == seen {
                return (seen ^ rule.mask, rule);
            }
        }
    }
}

/// The mask for the next quota: random (seeded once per process from the
/// OS), bit 63 clear so a frozen word stays visibly frozen, and never the
/// previous one. Under loom, a fixed sequence, as loom replays runs.
fn next_mask(previous: u64) -> u64 {
    #[cfg(not(all(test, loom)))]
    let mask = {
        use std::hash::BuildHasher;
        static SEED: std::sync::OnceLock<foldhash::fast::RandomState> = std::sync::OnceLock::new();
        SEED.get_or_init(foldhash::fast::RandomState::default)
            .hash_one(previous)
    };
    #[cfg(all(test, loom))]
    let mask = previous.wrapping_add(0x9E37_79B9_7F4A_7C15);
    match mask & !FROZEN {
        same if same == previous => same ^ 1,
        mask => mask,
    }
}

/// Aligned (and so padded) to 128 bytes: two cache lines, since x86 cores
/// fetch lines in adjacent pairs.
#[repr(align(128))]
pub(crate) struct CacheLine<T>(pub(crate) T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(all(test, not(loom)))]
pub(crate) mod tests {
    use super::*;

    /// Loads of a frozen state word by checks on a limiter's `State` (no
    /// other unit test freezes one under a concurrent check).
    pub(crate) static FROZEN_LOADS: std::sync::atomic::AtomicU64 =
        std::sync::atomic::AtomicU64::new(0);

    const T: u64 = 100; // emission interval
    const TAU: u64 = 3 * T; // burst 3
    const RULE: Rule = Rule {
        interval: T,
        tau: TAU,
        mask: 0,
    };

    /// `check` at a fixed time for `n`: the new tat, or when it passes.
    fn at(tat: &AtomicU64, now: u64, n: u32) -> Result<u64, u64> {
        let Ok(decision) = check(tat, UNLOCKED, || now, || RULE, n);
        match decision {
            Decision::Admitted { tat, .. } => Ok(tat),
            Decision::Refused { ready_at, .. } => Err(ready_at),
            Decision::Invalid(_) => unreachable!(),
        }
    }

    #[test]
    fn full_bucket_admits_the_burst_then_refuses() {
        let tat = AtomicU64::new(0);
        let now = 1_000;
        for _ in 0..3 {
            at(&tat, now, 1).unwrap();
        }
        assert_eq!(at(&tat, now, 1), Err(now + T));
        assert_eq!(
            tat.load(Ordering::Relaxed),
            now + TAU,
            "refusal changes nothing"
        );
    }

    /// Another thread admits a request between our load of `tat` and our
    /// compare-and-swap: the retry reuses our clock reading (admitting at
    /// that time is sound) and reads no clock.
    #[test]
    fn an_admission_retry_reuses_the_clock() {
        let tat = AtomicU64::new(0);
        let mut reads = 0;
        let now = || {
            reads += 1;
            // The other thread, at the same instant, takes one token.
            tat.store(1_000_000 + T, Ordering::Relaxed);
            1_000_000
        };
        let Ok(decision) = check(&tat, UNLOCKED, now, || RULE, 1);
        assert_eq!(
            decision,
            Decision::Admitted {
                tat: 1_000_000 + 2 * T,
                now: 1_000_000,
                rule: RULE
            }
        );
        assert_eq!(reads, 1);
    }

    /// Another thread takes the whole burst a second later, between our
    /// load of `tat` and our compare-and-swap: judged at our old reading,
    /// the new state would be refused, so the clock is read again first;
    /// at the fresh time it is admitted, not refused on a stale clock.
    #[test]
    fn a_refusal_is_judged_at_a_time_read_after_the_state() {
        let tat = AtomicU64::new(0);
        let mut reads = 0;
        let now = || {
            reads += 1;
            if reads == 1 {
                tat.store(2_000_000 + TAU, Ordering::Relaxed);
                1_000_000
            } else {
                2_000_000 + T
            }
        };
        let Ok(decision) = check(&tat, UNLOCKED, now, || RULE, 1);
        assert_eq!(
            decision,
            Decision::Admitted {
                tat: 2_000_000 + TAU + T,
                now: 2_000_000 + T,
                rule: RULE
            }
        );
        assert_eq!(reads, 2, "the clock was read again before refusing");
    }

    /// A refusal judged on a `tat` that moved before it was returned is
    /// judged again: the quota read may not belong to the state seen.
    #[test]
    fn refusals_are_revalidated() {
        let tat = AtomicU64::new(1_000 + TAU); // empty at 1000
        let mut quota_reads = 0;
        let rule = || {
            quota_reads += 1;
            if quota_reads == 1 {
                // Meanwhile `set_quota` made the bucket full again.
                tat.store(0, Ordering::Release);
            }
            RULE
        };
        assert!(matches!(
            check(&tat, UNLOCKED, || 1_000, rule, 1),
            Ok(Decision::Admitted { tat: 1_100, .. })
        ));
    }

    #[test]
    fn frozen_state_is_waited_out() {
        let tat = std::sync::Arc::new(AtomicU64::new(FROZEN | 5));
        let thawer = {
            let tat = std::sync::Arc::clone(&tat);
            std::thread::spawn(move || tat.store(0, Ordering::Release))
        };
        // Admitted only against the thawed state, never the frozen one.
        assert_eq!(at(&tat, 1_000, 1), Ok(1_000 + T));
        thawer.join().unwrap();
    }

    /// A quota change whose thread stalls mid-change (descheduled) makes
    /// checks wait on the quota lock after a short spin, not spin and yield
    /// for as long as it lasts.
    #[test]
    fn a_stalled_quota_change_is_waited_on_the_lock_not_spun() {
        let state = std::sync::Arc::new(State::new(Quota::from_parts(T, 3)));
        let stalled = state.lock.lock();
        state.hot.tat.fetch_or(FROZEN, Ordering::Acquire);
        let before = FROZEN_LOADS.load(Ordering::Relaxed);
        let checker = {
            let state = std::sync::Arc::clone(&state);
            std::thread::spawn(move || state.check(|| 1_000, 1))
        };
        // Until the checker has spun its spins and gone for the lock...
        let spun_out = before + u64::from(SPINS) + 1;
        while FROZEN_LOADS.load(Ordering::Relaxed) < spun_out && !checker.is_finished() {
            std::thread::yield_now();
        }
        // ...then every chance to load the frozen word again, which a
        // spinning (or yielding) checker would take.
        for _ in 0..10_000 {
            std::thread::yield_now();
        }
        assert!(!checker.is_finished(), "judged a frozen state");
        let loads = FROZEN_LOADS.load(Ordering::Relaxed) - before;
        assert!(
            loads <= u64::from(SPINS) + 1,
            "{loads} loads of a frozen state"
        );
        state.hot.tat.store(0, Ordering::Release);
        drop(stalled);
        assert!(matches!(checker.join().unwrap(), Decision::Admitted { .. }));
    }

    #[test]
    fn tat_saturates_below_the_frozen_bit() {
        assert_eq!(admit(MAX_TAT - 1, 0, u64::MAX, u64::MAX), Ok(MAX_TAT));
        let wide = Rule {
            interval: 1,
            tau: 1 << 62,
            mask: 0,
        };
        let one = Rule {
            interval: 1,
            tau: 1,
            mask: 0,
        };
        assert!(convert(u64::MAX, 0, one, wide) <= MAX_TAT);
        // Extreme quotas saturate instead of overflowing.
        let slow = Rule {
            interval: 1 << 62,
            tau: 1 << 62,
            mask: 0,
        };
        assert!(convert(0, 10, wide, slow) <= MAX_TAT);
    }

    #[test]
    fn refills_one_token_per_interval() {
        let tat = AtomicU64::new(0);
        let now = 1_000;
        at(&tat, now, 3).unwrap();
        assert!(at(&tat, now + T - 1, 1).is_err());
        at(&tat, now + T, 1).unwrap();
        assert!(at(&tat, now + T, 1).is_err());
    }

    #[test]
    fn asks_larger_than_one_wait_for_all_their_tokens() {
        let tat = AtomicU64::new(0);
        let now = 1_000;
        at(&tat, now, 2).unwrap();
        // One token left; two need one more interval.
        assert_eq!(at(&tat, now, 2), Err(now + T));
        at(&tat, now + T, 2).unwrap();
    }

    #[test]
    fn tokens_are_fractional_and_capped() {
        assert!((RULE.tokens(0, 1_000) - 3.0).abs() < 1e-9);
        assert!((RULE.tokens(1_250, 1_000) - 0.5).abs() < 1e-9);
        assert!((RULE.tokens(1_400, 1_000) + 1.0).abs() < 1e-9);
    }

    #[test]
    fn convert_keeps_the_tokens_available() {
        let now = 10_000;
        // Two of three tokens left under T = 100.
        let tat = now + T;
        // Twice the rate, burst 6: still two tokens, in intervals of 50.
        let fast = Rule::of(Quota::from_parts(50, 6));
        let converted = convert(tat, now, RULE, fast);
        assert!((fast.tokens(converted, now) - 2.0).abs() < 1e-9);
        // A smaller burst caps the tokens: full at burst 1.
        let one = Rule::of(Quota::from_parts(T, 1));
        assert_eq!(convert(0, now, RULE, one), now);
        // Debt (negative tokens) carries over.
        let converted = convert(now + 5 * T, now, RULE, RULE);
        assert!((RULE.tokens(converted, now) + 2.0).abs() < 1e-9);
        // Into a budget and back: the same two tokens.
        let budget = Rule::of(Quota::budget(3));
        let spent = convert(tat, now, RULE, budget);
        assert!((budget.tokens(spent, now + 1_000_000) - 2.0).abs() < 1e-9);
        let back = convert(spent, now + 500, budget, RULE);
        assert!((RULE.tokens(back, now + 500) - 2.0).abs() < 1e-9);
    }

    /// x/time/rate's `TestCancelMulti`: cancelling the latest reservation
    /// moves the latest event back, so cancelling an earlier one then gives
    /// back all but what the reservation between them holds.
    #[test]
    fn cancels_give_back_what_later_reservations_leave() {
        const D: u64 = 100_000_000; // 100 ms: 10 a second
        let state = State::new(Quota::from_parts(D, 4));
        let t0 = 1_000 * D;
        let reserve = |n| state.reserve(|| t0, n).unwrap();
        assert_eq!(reserve(4).act_at, t0);
        let a = reserve(3);
        assert_eq!(a.act_at, t0 + 3 * D);
        assert_eq!(reserve(1).act_at, t0 + 4 * D);
        let c = reserve(1);
        assert_eq!(c.act_at, t0 + 5 * D);
        state.cancel(|| t0 + D, &c, false);
        state.cancel(|| t0 + D, &a, false);
        assert_eq!(state.reserve(|| t0 + D, 3).unwrap().act_at, t0 + 5 * D);
    }
}
