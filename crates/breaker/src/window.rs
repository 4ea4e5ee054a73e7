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

    /// Records one call and returns the totals right after it.
    #[inline]
    pub(crate) fn record(&self, failure: bool, slow: bool) -> Totals {
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
                return unpack(totals, self.size());
            }
        }
        let head = self.head.fetch_add(1, Ordering::Relaxed);
        let index = usize::try_from(head % self.slots.len() as u64).unwrap_or(0);
        let replaced = self.slots[index].swap(code, Ordering::Relaxed);
        if replaced == code {
            // The same outcome as the one it pushed out (the usual case of
            // a healthy dependency): the totals stay as they are, and the
            // shared word is read, not written.
            return self.totals();
        }
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

    /// Empties the window. Each slot is swapped out and exactly its weight
    /// subtracted, so a call recorded at the same instant is counted once
    /// or not at all, and the totals always match the slots.
    pub(crate) fn clear(&self) {
        for slot in &*self.slots {
            let old = slot.swap(0, Ordering::Relaxed);
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

/// The time-based sliding window: the calls of the last `seconds` seconds,
/// in one bucket per second.
///
/// A busy window holds many calls (a minute at 20,000 a second is over a
/// million), so its counts are wider than [`CountWindow`]'s: two words, one
/// of (calls, failures) and one of (calls, slow calls), 32 bits a field with
/// a bias of 2^31. Each rate is read from one word, so its two numbers
/// belong together, and a window holds up to 2^31 - 1 calls.
///
/// A call adds to its second's bucket and to the totals. The first call to
/// see a new second moves `current` on by compare-and-swap and expires the
/// buckets of the seconds that left the window: their counts are swapped
/// out and subtracted from the totals. Judging reads the totals however
/// long the window. A call racing that expiry at a second's boundary may be
/// dropped, from its bucket and the totals alike, so the two agree.
pub(crate) struct TimeWindow {
    buckets: Box<[Pair]>,
    /// The latest second recorded (nanoseconds / 10^9 on the clock).
    current: AtomicU64,
    totals: Pair,
}

/// A (calls, failures) word and a (calls, slow) word.
struct Pair {
    failures: AtomicU64,
    slow: AtomicU64,
}

const WIDE_BIAS: u64 = 1 << 31;
const WIDE_ZERO: u64 = WIDE_BIAS | (WIDE_BIAS << 32);
/// The most calls a time window counts.
pub(crate) const MAX_TIME_WINDOW_CALLS: u32 = (1 << 31) - 1;

impl Pair {
    fn zero() -> Self {
        Self {
            failures: AtomicU64::new(WIDE_ZERO),
            slow: AtomicU64::new(WIDE_ZERO),
        }
    }

    /// Adds (unbiased) `deltas`, returning the words after.
    fn add(&self, (failures, slow): (u64, u64)) -> (u64, u64) {
        (
            self.failures
                .fetch_add(failures, Ordering::Relaxed)
                .wrapping_add(failures),
            self.slow
                .fetch_add(slow, Ordering::Relaxed)
                .wrapping_add(slow),
        )
    }

    /// Empties it, returning what it held (unbiased).
    fn take(&self) -> (u64, u64) {
        (
            self.failures
                .swap(WIDE_ZERO, Ordering::Relaxed)
                .wrapping_sub(WIDE_ZERO),
            self.slow
                .swap(WIDE_ZERO, Ordering::Relaxed)
                .wrapping_sub(WIDE_ZERO),
        )
    }

    fn subtract(&self, (failures, slow): (u64, u64)) {
        self.failures.fetch_sub(failures, Ordering::Relaxed);
        self.slow.fetch_sub(slow, Ordering::Relaxed);
    }
}

fn wide_totals((failures, slow): (u64, u64)) -> Totals {
    let field = |word: u64, shift: u32| {
        let value = ((word >> shift) & 0xFFFF_FFFF).saturating_sub(WIDE_BIAS);
        u32::try_from(value)
            .unwrap_or(u32::MAX)
            .min(MAX_TIME_WINDOW_CALLS)
    };
    Totals {
        calls: field(failures, 0),
        failures: field(failures, 32),
        slow: field(slow, 32),
        slow_of: field(slow, 0),
    }
}

/// The longest time window, in seconds.
pub(crate) const MAX_SECONDS: u32 = 3_600;

impl TimeWindow {
    pub(crate) fn new(seconds: u32) -> Self {
        let seconds = seconds.clamp(1, MAX_SECONDS);
        Self {
            buckets: (0..seconds).map(|_| Pair::zero()).collect(),
            current: AtomicU64::new(0),
            totals: Pair::zero(),
        }
    }

    /// Records one call at `now` (nanoseconds) and returns the totals of
    /// the window ending then.
    pub(crate) fn record(&self, now: u64, failure: bool, slow: bool) -> Totals {
        let second = now / 1_000_000_000;
        self.advance_to(second);
        let deltas = (1 | (u64::from(failure) << 32), 1 | (u64::from(slow) << 32));
        let bucket = self.bucket(second.max(self.current.load(Ordering::Relaxed)));
        bucket.add(deltas);
        wide_totals(self.totals.add(deltas))
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
                        self.totals.subtract(self.bucket(s).take());
                    }
                    return;
                }
                Err(now_seen) => seen = now_seen,
            }
        }
    }

    fn bucket(&self, second: u64) -> &Pair {
        let index = usize::try_from(second % self.buckets.len() as u64).unwrap_or(0);
        &self.buckets[index]
    }

    pub(crate) fn totals(&self) -> Totals {
        wide_totals((
            self.totals.failures.load(Ordering::Relaxed),
            self.totals.slow.load(Ordering::Relaxed),
        ))
    }

    /// Empties the window, as [`CountWindow::clear`] does: each bucket is
    /// swapped out and exactly what it held subtracted.
    pub(crate) fn clear(&self) {
        for bucket in &*self.buckets {
            self.totals.subtract(bucket.take());
        }
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
            assert_eq!(window.record(false, false), totals(3, 0, 0));
        }
        assert_eq!(window.head.load(Ordering::Relaxed), head, "no write");
        assert_eq!(window.record(true, false), totals(3, 1, 0));
        assert_eq!(window.record(false, false), totals(3, 1, 0));
        assert_eq!(window.record(false, false), totals(3, 1, 0));
        assert_eq!(window.record(false, false), totals(3, 0, 0), "out after 3");
        // A slow success is recorded, like a failure.
        assert_eq!(window.record(false, true), totals(3, 0, 1));
    }

    fn totals(calls: u32, failures: u32, slow: u32) -> Totals {
        Totals {
            calls,
            failures,
            slow,
            slow_of: calls,
        }
    }

    /// A window holding millions of calls counts them all (21-bit fields
    /// would have carried into the next field at 2^20).
    #[test]
    fn a_busy_time_window_counts_millions() {
        let w = TimeWindow::new(60);
        for i in 0..3_000_000u64 {
            w.record(i * 10_000, i % 3 == 0, false); // 100,000 a second
        }
        assert_eq!(w.totals(), totals(3_000_000, 1_000_000, 0));
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
        assert_eq!(w.record(true, false), totals(1, 1, 0));
        w.record(false, true);
        w.record(false, false);
        assert_eq!(w.totals(), totals(3, 1, 1));
        // The fourth call pushes out the first (a failure).
        assert_eq!(w.record(false, false), totals(3, 0, 1));
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
        assert_eq!(w.totals(), totals(3, 2, 1));
        // At 3 s the window is (0, 3]: second 0 has left it.
        assert_eq!(w.record(3 * S, false, false), totals(2, 1, 1));
        // A long silence empties it.
        assert_eq!(w.record(100 * S, false, false), totals(1, 0, 0));
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
        let totals = w.totals();
        assert_eq!(totals.calls, 1_000);
        assert_eq!((totals.calls, totals.failures), w.slot_counts());
    }
}
