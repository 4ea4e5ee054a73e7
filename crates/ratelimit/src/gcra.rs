//! The generic cell rate algorithm (GCRA) on one atomic word.
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
//! no lock, no allocation, no refill timer.

use crate::loom::{AtomicU64, Ordering, fence};

/// The top bit of `tat` marks a quota change in progress (`set_quota`):
/// checks wait for it to clear, then read the new quota. No real `tat`
/// reaches it: quotas keep `tau` under 2^62 ns, and `tat` saturates below.
pub(crate) const FROZEN: u64 = 1 << 63;
/// The largest `tat`: 292 years of clock time.
pub(crate) const MAX_TAT: u64 = FROZEN - 1;

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

/// What a check decided, each with the time it was judged at.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision<E> {
    /// Admitted: the new `tat`, and `now`.
    Admitted(u64, u64),
    /// Refused: when it would pass, and `now`.
    Refused(u64, u64),
    /// The quota itself refused (more than the burst).
    Invalid(E),
}

/// [`admit`] on an atomic `tat`, at the time `now()` reads, with the
/// `(cost, tau)` that `quota()` gives: commits the new state, or refuses
/// leaving the state alone.
///
/// The order of reads is what makes it exact:
/// - the quota is read after `tat` is seen unfrozen (with `Acquire`, pairing
///   with `set_quota`'s `Release`), so a `tat` converted to a new quota is
///   never judged by the old one;
/// - the clock is read after `tat`, and again on every retry. Read once
///   before the loop, a thread descheduled in between would judge a fresh
///   state at a stale time and refuse what the bucket holds room for;
/// - a refusal is returned only if `tat` is still the value it was judged
///   on. Otherwise a quota that changed meanwhile could be read half old,
///   half new. A compare-and-swap that succeeds proves the same for an
///   admission. Both rest on an `Acquire` fence after reading the quota,
///   pairing with `set_quota`'s `Release` between freezing `tat` and
///   storing the quota (the seqlock pattern): having read a new quota value,
///   we cannot then read `tat` from before the freeze.
#[inline]
pub(crate) fn check<E>(
    tat: &AtomicU64,
    mut now: impl FnMut() -> u64,
    mut quota: impl FnMut() -> Result<(u64, u64), E>,
) -> Decision<E> {
    let mut current = load_unfrozen(tat);
    loop {
        let judged = quota();
        fence(Ordering::Acquire);
        let (cost, tau) = match judged {
            Ok(quota) => quota,
            Err(e) => match revalidate(tat, current) {
                None => return Decision::Invalid(e),
                Some(seen) => {
                    current = seen;
                    continue;
                }
            },
        };
        let at = now();
        match admit(current, at, cost, tau) {
            // Relaxed on success: `tat` publishes no other memory; Acquire
            // on failure, to read the quota that goes with what we saw.
            Ok(next) => {
                match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Acquire)
                {
                    Ok(_) => return Decision::Admitted(next, at),
                    Err(seen) => current = unfrozen(tat, seen),
                }
            }
            Err(ready_at) => match revalidate(tat, current) {
                None => return Decision::Refused(ready_at, at),
                Some(seen) => current = seen,
            },
        }
    }
}

/// `None` if `tat` still holds `judged`; otherwise the (unfrozen) value it
/// holds now.
fn revalidate(tat: &AtomicU64, judged: u64) -> Option<u64> {
    let seen = tat.load(Ordering::Acquire);
    (seen != judged).then(|| unfrozen(tat, seen))
}

/// Loads `tat`, waiting out a quota change in progress.
pub(crate) fn load_unfrozen(tat: &AtomicU64) -> u64 {
    let seen = tat.load(Ordering::Acquire);
    unfrozen(tat, seen)
}

/// `seen` if it is not frozen; otherwise waits until `tat` is not.
#[inline]
fn unfrozen(tat: &AtomicU64, mut seen: u64) -> u64 {
    let mut spins = 0u32;
    while seen & FROZEN != 0 {
        // A change takes nanoseconds; yield in case its thread was
        // descheduled mid-change.
        if spins < 64 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            crate::loom::yield_now();
        }
        seen = tat.load(Ordering::Acquire);
    }
    seen
}

/// Takes `cost` unconditionally (a reservation) at the time `now()` reads,
/// returning the new `tat` and `tau`, both under the quota `quota()` gives
/// (read after `tat` is seen unfrozen, as in [`check`]).
pub(crate) fn reserve(
    tat: &AtomicU64,
    mut now: impl FnMut() -> u64,
    mut quota: impl FnMut() -> (u64, u64),
) -> (u64, u64, u64) {
    let mut current = load_unfrozen(tat);
    loop {
        let (cost, tau) = quota();
        fence(Ordering::Acquire);
        let at = now();
        let next = current.max(at).saturating_add(cost).min(MAX_TAT);
        match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Acquire) {
            Ok(_) => return (next, tau, at),
            Err(seen) => current = unfrozen(tat, seen),
        }
    }
}

/// Gives back up to `cost` of a reservation that moved `tat` to `end`, less
/// whatever later reservations have built on top of it.
pub(crate) fn give_back(tat: &AtomicU64, cost: u64, end: u64) {
    let mut current = load_unfrozen(tat);
    loop {
        // Capacity reserved after ours sits between `end` and `current`;
        // it keeps its place, so only the rest of ours comes back.
        let built_on = current.saturating_sub(end);
        let restore = cost.saturating_sub(built_on);
        if restore == 0 {
            return;
        }
        let next = current - restore.min(current);
        match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Acquire) {
            Ok(_) => return,
            Err(seen) => current = unfrozen(tat, seen),
        }
    }
}

/// Tokens available at `now`: `burst` when full, fractional while
/// refilling, negative while reservations are outstanding.
#[allow(clippy::cast_precision_loss)] // an estimate, by contract
pub(crate) fn tokens(tat: u64, now: u64, interval: u64, tau: u64) -> f64 {
    let debt = i128::from(tat) - i128::from(now);
    let available = i128::from(tau) - debt.max(0);
    available as f64 / interval as f64
}

/// Re-expresses `tat` under a new quota so the tokens available now stay
/// the same (capped at the new burst), as Go's `SetLimit` / `SetBurst` do.
pub(crate) fn convert(tat: u64, now: u64, old: (u64, u64), new: (u64, u64)) -> u64 {
    let ((old_interval, old_tau), (new_interval, new_tau)) = (old, new);
    let debt = i128::from(tat.saturating_sub(now));
    // Tokens available now, in old intervals (may be negative), then the
    // debt that leaves the same count in new intervals.
    let available = i128::from(old_tau) - debt;
    let scaled = available.saturating_mul(i128::from(new_interval)) / i128::from(old_interval);
    let new_debt = i128::from(new_tau).saturating_sub(scaled);
    let new_debt = u64::try_from(new_debt.max(0)).unwrap_or(u64::MAX);
    now.saturating_add(new_debt).min(MAX_TAT)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const T: u64 = 100; // emission interval
    const TAU: u64 = 3 * T; // burst 3

    /// `check` at a fixed time for `cost`: the new tat, or when it passes.
    fn at(tat: &AtomicU64, now: u64, cost: u64) -> Result<u64, u64> {
        match check(tat, || now, || Ok::<_, ()>((cost, TAU))) {
            Decision::Admitted(next, _) => Ok(next),
            Decision::Refused(ready_at, _) => Err(ready_at),
            Decision::Invalid(()) => unreachable!(),
        }
    }

    #[test]
    fn full_bucket_admits_the_burst_then_refuses() {
        let tat = AtomicU64::new(0);
        let now = 1_000;
        for _ in 0..3 {
            at(&tat, now, T).unwrap();
        }
        assert_eq!(at(&tat, now, T), Err(now + T));
        assert_eq!(
            tat.load(Ordering::Relaxed),
            now + TAU,
            "refusal changes nothing"
        );
    }

    /// Another thread admits a request at a much later time between our
    /// load of `tat` and our clock read: the compare-and-swap fails, and the
    /// retry is judged at a fresh time, so we are admitted, not refused on a
    /// stale clock (what reading the clock before the loop did).
    #[test]
    fn judges_at_a_time_read_after_the_state() {
        let tat = AtomicU64::new(0);
        let mut reads = 0;
        let now = || {
            reads += 1;
            if reads == 1 {
                // The other thread, a millisecond later, takes one token.
                tat.store(1_000_000 + T, Ordering::Relaxed);
            }
            1_000_000
        };
        let decision = check(&tat, now, || Ok::<_, ()>((T, TAU)));
        assert_eq!(decision, Decision::Admitted(1_000_000 + 2 * T, 1_000_000));
        assert_eq!(reads, 2, "the clock was read again after the failed swap");
    }

    /// A refusal judged on a `tat` that moved before it was returned is
    /// judged again: the quota read may not belong to the state seen.
    #[test]
    fn refusals_are_revalidated() {
        let tat = AtomicU64::new(1_000 + TAU); // empty at 1000
        let mut quota_reads = 0;
        let quota = || {
            quota_reads += 1;
            if quota_reads == 1 {
                // Meanwhile `set_quota` made the bucket full again.
                tat.store(0, Ordering::Release);
            }
            Ok::<_, ()>((T, TAU))
        };
        assert_eq!(
            check(&tat, || 1_000, quota),
            Decision::Admitted(1_000 + T, 1_000)
        );
    }

    #[test]
    fn frozen_state_is_waited_out() {
        let tat = std::sync::Arc::new(AtomicU64::new(FROZEN | 5));
        let thawer = {
            let tat = std::sync::Arc::clone(&tat);
            std::thread::spawn(move || tat.store(0, Ordering::Release))
        };
        // Admitted only against the thawed state, never the frozen one.
        assert_eq!(at(&tat, 1_000, T), Ok(1_000 + T));
        thawer.join().unwrap();
    }

    #[test]
    fn tat_saturates_below_the_frozen_bit() {
        assert_eq!(admit(MAX_TAT - 1, 0, u64::MAX, u64::MAX), Ok(MAX_TAT));
        assert!(convert(u64::MAX, 0, (1, 1), (1, 1 << 62)) <= MAX_TAT);
        // Extreme quotas saturate instead of overflowing.
        assert!(convert(0, 10, (1, 1 << 62), (1 << 62, 1 << 62)) <= MAX_TAT);
    }

    #[test]
    fn refills_one_token_per_interval() {
        let tat = AtomicU64::new(0);
        let now = 1_000;
        at(&tat, now, 3 * T).unwrap();
        assert!(at(&tat, now + T - 1, T).is_err());
        at(&tat, now + T, T).unwrap();
        assert!(at(&tat, now + T, T).is_err());
    }

    #[test]
    fn asks_larger_than_one_wait_for_all_their_tokens() {
        let tat = AtomicU64::new(0);
        let now = 1_000;
        at(&tat, now, 2 * T).unwrap();
        // One token left; two need one more interval.
        assert_eq!(at(&tat, now, 2 * T), Err(now + T));
        at(&tat, now + T, 2 * T).unwrap();
    }

    #[test]
    fn tokens_are_fractional_and_capped() {
        assert!((tokens(0, 1_000, T, TAU) - 3.0).abs() < 1e-9);
        assert!((tokens(1_250, 1_000, T, TAU) - 0.5).abs() < 1e-9);
        assert!((tokens(1_400, 1_000, T, TAU) + 1.0).abs() < 1e-9);
    }

    #[test]
    fn reservations_go_into_debt_and_give_back_what_is_not_built_on() {
        let tat = AtomicU64::new(0);
        let now = 1_000;
        let (first, _, _) = reserve(&tat, || now, || (3 * T, TAU));
        let (second, _, _) = reserve(&tat, || now, || (2 * T, TAU));
        assert_eq!(second, now + 5 * T);
        // Cancelling the first gives back its three less the two reserved
        // after it, which keep their place.
        give_back(&tat, 3 * T, first);
        assert_eq!(tat.load(Ordering::Relaxed), now + 4 * T);
        // Cancelling the second, now on top, gives back all of it.
        give_back(&tat, 2 * T, second);
        assert_eq!(tat.load(Ordering::Relaxed), now + 2 * T);
    }

    #[test]
    fn convert_keeps_the_tokens_available() {
        let now = 10_000;
        // Two of three tokens left under T = 100.
        let tat = now + T;
        // Twice the rate, burst 6: still two tokens, in intervals of 50.
        let converted = convert(tat, now, (T, TAU), (50, 300));
        assert!((tokens(converted, now, 50, 300) - 2.0).abs() < 1e-9);
        // A smaller burst caps the tokens: full at burst 1.
        let converted = convert(0, now, (T, TAU), (T, T));
        assert_eq!(converted, now);
        // Debt (negative tokens) carries over.
        let converted = convert(now + 5 * T, now, (T, TAU), (T, TAU));
        assert!((tokens(converted, now, T, TAU) + 2.0).abs() < 1e-9);
    }
}
