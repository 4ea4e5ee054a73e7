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
