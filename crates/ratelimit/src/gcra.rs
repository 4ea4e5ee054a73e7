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

use crate::loom::{AtomicU64, Ordering};

/// The outcome of asking for `cost` nanoseconds of capacity at `now` when
/// the state is `tat`: the new `tat`, or the time it would be allowed.
#[inline]
pub(crate) fn admit(tat: u64, now: u64, cost: u64, tau: u64) -> Result<u64, u64> {
    let new_tat = tat.max(now).saturating_add(cost);
    let allow_at = new_tat.saturating_sub(tau);
    if now < allow_at {
        Err(allow_at)
    } else {
        Ok(new_tat)
    }
}

/// [`admit`] on an atomic `tat`, at the time `now()` reads: commits the new
/// state, or returns the time the request would be allowed, leaving the
/// state alone. Either way with the `now` it was judged at.
///
/// The clock is read after `tat` is loaded, and again on every retry. Read
/// once before the loop, a thread descheduled between the two would judge
/// a fresh state at a stale time and refuse what the bucket holds room for.
/// In this order a refusal is judged on a `tat` no newer than `now` (and
/// `tat` only grows, so a newer one would refuse too), and a successful
/// compare-and-swap proves that nobody moved `tat` in between.
#[inline]
pub(crate) fn check(
    tat: &AtomicU64,
    mut now: impl FnMut() -> u64,
    cost: u64,
    tau: u64,
) -> Result<(u64, u64), (u64, u64)> {
    // Relaxed: `tat` is the whole state. It publishes no other memory, and
    // the compare-and-swap alone makes concurrent checks linearizable.
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        let at = now();
        let next = admit(current, at, cost, tau).map_err(|ready_at| (ready_at, at))?;
        match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Ok((next, at)),
            Err(seen) => current = seen,
        }
    }
}

/// Takes `cost` unconditionally (a reservation), returning the new `tat`.
pub(crate) fn reserve(tat: &AtomicU64, now: u64, cost: u64) -> u64 {
    // Relaxed, as in `check`.
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        let next = current.max(now).saturating_add(cost);
        match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => current = seen,
        }
    }
}

/// Gives back up to `cost` of a reservation that moved `tat` to `end`, less
/// whatever later reservations have built on top of it.
pub(crate) fn give_back(tat: &AtomicU64, cost: u64, end: u64) {
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        // Capacity reserved after ours sits between `end` and `current`;
        // it keeps its place, so only the rest of ours comes back.
        let built_on = current.saturating_sub(end);
        let restore = cost.saturating_sub(built_on);
        if restore == 0 {
            return;
        }
        let next = current - restore.min(current);
        match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
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
    let new_debt =
        i128::from(new_tau) - available * i128::from(new_interval) / i128::from(old_interval);
    let new_debt = u64::try_from(new_debt.max(0)).unwrap_or(u64::MAX);
    now.saturating_add(new_debt)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const T: u64 = 100; // emission interval
    const TAU: u64 = 3 * T; // burst 3

    #[test]
    fn full_bucket_admits_the_burst_then_refuses() {
        let tat = AtomicU64::new(0);
        let now = 1_000;
        for _ in 0..3 {
            check(&tat, || now, T, TAU)
                .map(|(t, _)| t)
                .map_err(|(r, _)| r)
                .unwrap();
        }
        assert_eq!(
            check(&tat, || now, T, TAU)
                .map(|(t, _)| t)
                .map_err(|(r, _)| r),
            Err(now + T)
        );
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
        assert_eq!(check(&tat, now, T, TAU), Ok((1_000_000 + 2 * T, 1_000_000)));
        assert_eq!(reads, 2, "the clock was read again after the failed swap");
    }

    #[test]
    fn refills_one_token_per_interval() {
        let tat = AtomicU64::new(0);
        let now = 1_000;
        check(&tat, || now, 3 * T, TAU)
            .map(|(t, _)| t)
            .map_err(|(r, _)| r)
            .unwrap();
        assert!(
            check(&tat, || now + T - 1, T, TAU)
                .map(|(t, _)| t)
                .map_err(|(r, _)| r)
                .is_err()
        );
        check(&tat, || now + T, T, TAU)
            .map(|(t, _)| t)
            .map_err(|(r, _)| r)
            .unwrap();
        assert!(
            check(&tat, || now + T, T, TAU)
                .map(|(t, _)| t)
                .map_err(|(r, _)| r)
                .is_err()
        );
    }

    #[test]
    fn asks_larger_than_one_wait_for_all_their_tokens() {
        let tat = AtomicU64::new(0);
        let now = 1_000;
        check(&tat, || now, 2 * T, TAU)
            .map(|(t, _)| t)
            .map_err(|(r, _)| r)
            .unwrap();
        // One token left; two need one more interval.
        assert_eq!(
            check(&tat, || now, 2 * T, TAU)
                .map(|(t, _)| t)
                .map_err(|(r, _)| r),
            Err(now + T)
        );
        check(&tat, || now + T, 2 * T, TAU)
            .map(|(t, _)| t)
            .map_err(|(r, _)| r)
            .unwrap();
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
        let first = reserve(&tat, now, 3 * T);
        let second = reserve(&tat, now, 2 * T);
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
