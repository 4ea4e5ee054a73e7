//! The count-based sliding window: the outcomes of the last `n` calls, on
//! atomics.
//!
//! A ring of `n` one-byte slots holds the outcomes; one `u64` holds the
//! totals of the ring (calls, failures, slow calls), 21 bits each, so a
//! single `fetch_add` updates all three together and every reader sees
//! totals that belong together. Recording a call swaps its slot and adds
//! the difference between the new outcome and the one it replaced (nothing,
//! when they are the same: a full window of successes takes one more with
//! two writes, not three).
//!
//! Each field carries a bias of 2^20. Two writers can land on one slot
//! only after the ring wraps around while the first is still between its
//! swap and its add; then the second's subtraction may come first, and the
//! field dips below its true value for a moment. The bias keeps such a dip
//! from borrowing into the next field; readers clamp. Windows are therefore
//! at most [`MAX_WINDOW`] calls.

use crate::loom::{AtomicU8, AtomicU64, Ordering};
use crate::time_window::{Counted, TimeWindow};

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
    /// The calls the slow count belongs to: `calls`, except in a time
    /// window, whose slow count is kept in a word of its own.
    pub(crate) slow_of: u32,
}

/// On cache lines of its own: `head` is written by every call, and the
/// breaker's state word beside it is read by every call.
#[repr(align(128))]
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

    /// Records one call and returns the totals right after it, and what it
    /// wrote.
    #[inline]
    pub(crate) fn record(&self, failure: bool, slow: bool) -> (Totals, Written) {
        let code = CALL | if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
        // Relaxed throughout: the window publishes no other memory, and the
        // totals word is updated by one atomic add.
        if code == CALL {
            // A fast success into a full window of fast successes (a healthy
            // dependency) would push out a call just like it: nothing would
            // change but the head. So it writes nothing, and two threads
            // calling a healthy dependency share no written cache line here.
            // A failure recorded meanwhile is unaffected: every call it
            // could push out is a fast success either way.
            let totals = self.totals.load(Ordering::Relaxed);
            if totals == BIASED_ZERO + u64::from(self.size()) {
                return (unpack(totals, self.size()), Written::Nothing);
            }
        }
        let head = self.head.fetch_add(1, Ordering::Relaxed);
        let index = usize::try_from(head % self.slots.len() as u64).unwrap_or(0);
        // Acquire: pairs with `clear`'s Release (see `Window::clear`).
        let replaced = self.slots[index].swap(code, Ordering::Acquire);
        let written = Written::Slot {
            index,
            code,
            replaced,
        };
        if replaced == code {
            // The same outcome as the one it pushed out (the usual case of
            // a healthy dependency): the totals stay as they are, and the
            // shared word is read, not written.
            return (self.totals(), written);
        }
        let delta = weight(code).wrapping_sub(weight(replaced));
        let totals = self
            .totals
            .fetch_add(delta, Ordering::Relaxed)
            .wrapping_add(delta);
        (unpack(totals, self.size()), written)
    }

    /// Takes back a record: puts back what it replaced, if its slot still
    /// holds it (otherwise a later call pushed it out, and accounted for
    /// it).
    fn undo(&self, index: usize, code: u8, replaced: u8) {
        if self.slots[index]
            .compare_exchange(code, replaced, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let delta = weight(replaced).wrapping_sub(weight(code));
            self.totals.fetch_add(delta, Ordering::Relaxed);
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        unpack(self.totals.load(Ordering::Relaxed), self.size())
    }

    /// Empties the window. Each slot is swapped out and exactly its weight
    /// subtracted, so a call recorded at the same instant is counted once
    /// or not at all, and the totals always match the slots.
    pub(crate) fn clear(&self) {
        for slot in &*self.slots {
            let old = slot.swap(0, Ordering::Release);
            self.totals.fetch_sub(weight(old), Ordering::Relaxed);
        }
    }

    fn size(&self) -> u32 {
        u32::try_from(self.slots.len()).unwrap_or(MAX_WINDOW)
    }

    /// Calls and failures as the slots hold them (tests: the totals must
    /// agree).
    #[cfg(test)]
    pub(crate) fn slot_counts(&self) -> (u32, u32) {
        let codes = self.slots.iter().map(|s| s.load(Ordering::Relaxed));
        codes.fold((0, 0), |(calls, failures), code| {
            (
                calls + u32::from(code != 0),
                failures + u32::from(code & FAILURE != 0),
            )
        })
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
    let calls = field(0);
    Totals {
        calls,
        failures: field(FIELD_BITS),
        slow: field(2 * FIELD_BITS),
        slow_of: calls,
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

/// What recording a call wrote, so that it can be taken back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Nothing: a fast success into a full window of them.
    Nothing,
    /// A count window's slot, and what it held before.
    Slot {
        index: usize,
        code: u8,
        replaced: u8,
    },
    /// A time window's bucket, of the period `epoch`.
    Bucket {
        epoch: u64,
        failure: bool,
        slow: bool,
    },
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
    pub(crate) fn record(
        &self,
        now: impl FnOnce() -> u64,
        failure: bool,
        slow: bool,
    ) -> (Totals, Written) {
        match self {
            Self::Count(w) => w.record(failure, slow),
            Self::Time(w) => {
                let written = match w.count(now(), failure, slow) {
                    Counted::In(epoch) => Written::Bucket {
                        epoch,
                        failure,
                        slow,
                    },
                    Counted::Dropped => Written::Nothing,
                };
                (w.totals(), written)
            }
        }
    }

    /// Takes back what a [`record`](Self::record) wrote, as far as it is
    /// still in the window.
    pub(crate) fn undo(&self, written: Written) {
        match (self, written) {
            (
                Self::Count(w),
                Written::Slot {
                    index,
                    code,
                    replaced,
                },
            ) => w.undo(index, code, replaced),
            (
                Self::Time(w),
                Written::Bucket {
                    epoch,
                    failure,
                    slow,
                },
            ) => w.undo(epoch, failure, slow),
            _ => {}
        }
    }

    /// The totals as of `now()`: a time window first lets go of the
    /// periods that have left it since the last call (without a call, its
    /// totals would keep them).
    pub(crate) fn totals_now(&self, now: impl FnOnce() -> u64) -> Totals {
        match self {
            Self::Count(w) => w.totals(),
            Self::Time(w) => w.totals_at(now()),
        }
    }

    /// Empties the window. Every slot or bucket is written with `Release`,
    /// even an empty one, and recording writes with `Acquire`: so a call
    /// whose write lands after the clear sees, when it then reads the state
    /// word, at least the state that came before the clear (never the
    /// generation it was let in under), and takes its record back.
    pub(crate) fn clear(&self) {
        match self {
            Self::Count(w) => w.clear(),
            Self::Time(w) => w.clear(),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Fast successes into a full window of them write nothing; a failure
    /// after them still leaves the window after exactly `size` more calls.
    #[test]
    fn a_healthy_window_skips_writes_and_still_expires_in_order() {
        let window = CountWindow::new(3);
        for _ in 0..3 {
            window.record(false, false);
        }
        let head = window.head.load(Ordering::Relaxed);
        for _ in 0..10 {
            assert_eq!(window.record(false, false).0, totals(3, 0, 0));
        }
        assert_eq!(window.head.load(Ordering::Relaxed), head, "no write");
        assert_eq!(window.record(true, false).0, totals(3, 1, 0));
        assert_eq!(window.record(false, false).0, totals(3, 1, 0));
        assert_eq!(window.record(false, false).0, totals(3, 1, 0));
        assert_eq!(
            window.record(false, false).0,
            totals(3, 0, 0),
            "out after 3"
        );
        // A slow success is recorded, like a failure.
        assert_eq!(window.record(false, true).0, totals(3, 0, 1));
    }

    fn totals(calls: u32, failures: u32, slow: u32) -> Totals {
        Totals {
            calls,
            failures,
            slow,
            slow_of: calls,
        }
    }

    /// Clearing while another thread records leaves totals that match what
    /// the window holds.
    #[test]
    fn clear_racing_records_keeps_totals_true() {
        let w = CountWindow::new(64);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..100_000 {
                    w.record(i % 2 == 0, false);
                }
            });
            for _ in 0..1_000 {
                w.clear();
            }
        });
        let t = w.totals();
        assert_eq!((t.calls, t.failures), w.slot_counts());
    }

    #[test]
    fn keeps_the_last_n_outcomes() {
        let w = CountWindow::new(3);
        assert_eq!(w.record(true, false).0, totals(1, 1, 0));
        w.record(false, true);
        w.record(false, false);
        assert_eq!(w.totals(), totals(3, 1, 1));
        // The fourth call pushes out the first (a failure).
        assert_eq!(w.record(false, false).0, totals(3, 0, 1));
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
        let totals = w.totals();
        assert_eq!(totals.calls, 1_000);
        assert_eq!((totals.calls, totals.failures), w.slot_counts());
    }
}
