//! The count-based sliding window: the outcomes of the last `n` calls, on
//! atomics.
//!
//! A ring of `n` one-byte slots holds the outcomes; one `u64` holds the
//! totals of the ring (calls, failures, slow calls), 21 bits each, so a
//! single `fetch_add` updates all three together and every reader sees
//! totals that belong together. Recording a call swaps its slot and adds
//! the difference between the new outcome and the one it replaced.
//!
//! Each field carries a bias of 2^20. Two writers can land on one slot
//! only after the ring wraps around while the first is still between its
//! swap and its add; then the second's subtraction may come first, and the
//! field dips below its true value for a moment. The bias keeps such a dip
//! from borrowing into the next field; readers clamp. Windows are therefore
//! at most [`MAX_WINDOW`] calls.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// The largest count window.
pub(crate) const MAX_WINDOW: u32 = 1 << 19;

const FIELD_BITS: u32 = 21;
const BIAS: u64 = 1 << 20;
const BIASED_ZERO: u64 = BIAS | (BIAS << FIELD_BITS) | (BIAS << (2 * FIELD_BITS));

/// Slot codes: empty, or a call, with failure and slow flags.
const CALL: u8 = 1;
const FAILURE: u8 = 2;
const SLOW: u8 = 4;

/// The totals of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Totals {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    head: AtomicU64,
    totals: AtomicU64,
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        Self {
            slots: (0..size.clamp(1, MAX_WINDOW))
                .map(|_| AtomicU8::new(0))
                .collect(),
            head: AtomicU64::new(0),
            totals: AtomicU64::new(BIASED_ZERO),
        }
    }

    /// Records one call and returns the totals right after it.
    #[inline]
    pub(crate) fn record(&self, failure: bool, slow: bool) -> Totals {
        let code = CALL | if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
        // Relaxed throughout: the window publishes no other memory, and the
        // totals word is updated by one atomic add.
        let head = self.head.fetch_add(1, Ordering::Relaxed);
        let index = usize::try_from(head % self.slots.len() as u64).unwrap_or(0);
        let replaced = self.slots[index].swap(code, Ordering::Relaxed);
        let delta = weight(code).wrapping_sub(weight(replaced));
        unpack(
            self.totals
                .fetch_add(delta, Ordering::Relaxed)
                .wrapping_add(delta),
            self.size(),
        )
    }

    pub(crate) fn totals(&self) -> Totals {
        unpack(self.totals.load(Ordering::Relaxed), self.size())
    }

    /// Empties the window. Called on state changes, under the breaker's
    /// transition lock; a call recorded at the same instant may land in
    /// the emptied window.
    pub(crate) fn clear(&self) {
        for slot in &*self.slots {
            slot.store(0, Ordering::Relaxed);
        }
        self.totals.store(BIASED_ZERO, Ordering::Relaxed);
    }

    fn size(&self) -> u32 {
        u32::try_from(self.slots.len()).unwrap_or(MAX_WINDOW)
    }
}

/// A slot's contribution to the (unbiased) totals word.
fn weight(code: u8) -> u64 {
    if code == 0 {
        return 0;
    }
    1 | (u64::from(code & FAILURE != 0) << FIELD_BITS)
        | (u64::from(code & SLOW != 0) << (2 * FIELD_BITS))
}

fn unpack(word: u64, size: u32) -> Totals {
    let field = |shift: u32| {
        let biased = (word >> shift) & ((1 << FIELD_BITS) - 1);
        let value = biased.saturating_sub(BIAS);
        u32::try_from(value).unwrap_or(u32::MAX).min(size)
    };
    Totals {
        calls: field(0),
        failures: field(FIELD_BITS),
        slow: field(2 * FIELD_BITS),
    }
}

impl std::fmt::Debug for CountWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountWindow")
            .field("size", &self.slots.len())
            .field("totals", &self.totals())
            .finish()
    }
}

/// The time-based sliding window: the calls of the last `seconds` seconds,
/// in one bucket per second.
///
/// Each bucket and the window's totals are packed words as in
/// [`CountWindow`]. A call adds to its second's bucket and to the totals.
/// The first call to see a new second moves `current` on by
/// compare-and-swap and expires the buckets of the seconds that left the
/// window: their counts are swapped out and subtracted from the totals.
/// Judging therefore reads one word, however long the window. A call racing
/// that expiry at a second's boundary may be dropped, from its bucket and
/// the totals alike, so the two never disagree.
pub(crate) struct TimeWindow {
    buckets: Box<[AtomicU64]>,
    /// The latest second recorded (nanoseconds / 10^9 on the clock).
    current: AtomicU64,
    totals: AtomicU64,
    /// Bounds for clamping: the most calls a window could hold.
    cap: u32,
}

/// The longest time window, in seconds.
pub(crate) const MAX_SECONDS: u32 = 3_600;

impl TimeWindow {
    pub(crate) fn new(seconds: u32) -> Self {
        let seconds = seconds.clamp(1, MAX_SECONDS);
        Self {
            buckets: (0..seconds).map(|_| AtomicU64::new(BIASED_ZERO)).collect(),
            current: AtomicU64::new(0),
            totals: AtomicU64::new(BIASED_ZERO),
            cap: (1 << 20) - 1,
        }
    }

    /// Records one call at `now` (nanoseconds) and returns the totals of
    /// the window ending then.
    pub(crate) fn record(&self, now: u64, failure: bool, slow: bool) -> Totals {
        let second = now / 1_000_000_000;
        self.advance_to(second);
        let code = CALL | if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
        let delta = weight(code);
        let bucket = self.bucket(second.max(self.current.load(Ordering::Relaxed)));
        bucket.fetch_add(delta, Ordering::Relaxed);
        unpack(
            self.totals
                .fetch_add(delta, Ordering::Relaxed)
                .wrapping_add(delta),
            self.cap,
        )
    }

    /// Moves the window's end to `second`, expiring what falls out.
    fn advance_to(&self, second: u64) {
        let mut seen = self.current.load(Ordering::Relaxed);
        while second > seen {
            match self.current.compare_exchange_weak(
                seen,
                second,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // Seconds seen+1 ..= second enter the window; their
                    // buckets still hold seconds that just left it.
                    let len = self.buckets.len() as u64;
                    for s in (seen + 1).max(second.saturating_sub(len - 1))..=second {
                        let old = self.bucket(s).swap(BIASED_ZERO, Ordering::Relaxed);
                        let expired = old.wrapping_sub(BIASED_ZERO);
                        self.totals.fetch_sub(expired, Ordering::Relaxed);
                    }
                    return;
                }
                Err(now_seen) => seen = now_seen,
            }
        }
    }

    fn bucket(&self, second: u64) -> &AtomicU64 {
        let index = usize::try_from(second % self.buckets.len() as u64).unwrap_or(0);
        &self.buckets[index]
    }

    pub(crate) fn totals(&self) -> Totals {
        unpack(self.totals.load(Ordering::Relaxed), self.cap)
    }

    /// Empties the window, as [`CountWindow::clear`] does.
    pub(crate) fn clear(&self) {
        for bucket in &*self.buckets {
            bucket.store(BIASED_ZERO, Ordering::Relaxed);
        }
        self.totals.store(BIASED_ZERO, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for TimeWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeWindow")
            .field("seconds", &self.buckets.len())
            .field("totals", &self.totals())
            .finish()
    }
}

/// Either window.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    /// Records a call ending at `now()` (read only for a time window).
    #[inline]
    pub(crate) fn record(&self, now: impl FnOnce() -> u64, failure: bool, slow: bool) -> Totals {
        match self {
            Self::Count(w) => w.record(failure, slow),
            Self::Time(w) => w.record(now(), failure, slow),
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        match self {
            Self::Count(w) => w.totals(),
            Self::Time(w) => w.totals(),
        }
    }

    pub(crate) fn clear(&self) {
        match self {
            Self::Count(w) => w.clear(),
            Self::Time(w) => w.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_n_outcomes() {
        let w = CountWindow::new(3);
        assert_eq!(
            w.record(true, false),
            Totals {
                calls: 1,
                failures: 1,
                slow: 0
            }
        );
        w.record(false, true);
        w.record(false, false);
        assert_eq!(
            w.totals(),
            Totals {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        // The fourth call pushes out the first (a failure).
        assert_eq!(
            w.record(false, false),
            Totals {
                calls: 3,
                failures: 0,
                slow: 1
            }
        );
        w.clear();
        assert_eq!(w.totals(), Totals::default());
    }

    #[test]
    fn a_dip_below_zero_does_not_borrow_from_the_next_field() {
        let w = CountWindow::new(2);
        // Subtract a failure that was never added (what a delayed writer
        // makes visible for a moment): calls and failures dip to -1.
        let dip = weight(CALL | FAILURE).wrapping_neg();
        w.totals.fetch_add(dip, Ordering::Relaxed);
        assert_eq!(w.totals(), Totals::default(), "clamped, not wrapped");
        w.totals
            .fetch_add(weight(CALL | FAILURE), Ordering::Relaxed);
        assert_eq!(w.totals(), Totals::default());
    }

    #[test]
    fn time_window_keeps_the_last_seconds() {
        const S: u64 = 1_000_000_000;
        let w = TimeWindow::new(3);
        w.record(0, true, false);
        w.record(S / 2, false, false);
        w.record(S, true, true);
        assert_eq!(
            w.totals(),
            Totals {
                calls: 3,
                failures: 2,
                slow: 1
            }
        );
        // At 3 s the window is (0, 3]: second 0 has left it.
        assert_eq!(
            w.record(3 * S, false, false),
            Totals {
                calls: 2,
                failures: 1,
                slow: 1
            }
        );
        // A long silence empties it.
        assert_eq!(
            w.record(100 * S, false, false),
            Totals {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        w.clear();
        assert_eq!(w.totals(), Totals::default());
    }

    #[test]
    fn many_threads_keep_totals_exact() {
        let w = CountWindow::new(1_000);
        std::thread::scope(|s| {
            for t in 0..4 {
                let w = &w;
                s.spawn(move || {
                    for i in 0..10_000 {
                        w.record((i + t) % 4 == 0, false);
                    }
                });
            }
        });
        // Every slot is full; the totals match the slots exactly.
        let failures = w
            .slots
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) & FAILURE != 0)
            .count();
        let totals = w.totals();
        assert_eq!(totals.calls, 1_000);
        assert_eq!(totals.failures as usize, failures);
    }
}
