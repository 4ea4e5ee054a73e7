//! The time-based sliding window: the calls of the last `n` buckets of a
//! fixed width (one second unless configured), on atomics.
//!
//! Each bucket is two words, (calls, failures) and (calls, slow calls),
//! each tagged with the number of the bucket period it counts (its
//! *epoch*: clock nanoseconds / width, low 16 bits). The window keeps
//! running totals in two more words, (calls, failures) and (calls, slow),
//! 32 bits a field, so judging reads two words however long the window;
//! each rate is read from one word, so its two numbers belong together.
//! The slow words are kept only when the breaker has a slow-call rule.
//!
//! A call adds to the totals first, then to its bucket with a
//! compare-and-swap that checks the tag:
//! - the bucket's own epoch: the call is added;
//! - an older epoch (the bucket still holds a period that has left the
//!   window): the swap replaces it with a bucket of this epoch holding just
//!   this call, and the old counts are subtracted from the totals;
//! - a newer epoch (this caller was descheduled while the window moved on a
//!   whole turn): the call is dropped, and so is its add to the totals.
//!
//! The first call to see a new epoch moves `end` on, and expires the
//! buckets of the periods that entered the window with the same swap (at
//! most one turn of the ring, however long the window was idle). Whoever
//! replaces a stale bucket, recorder or expirer, is the one whose swap
//! succeeded, so stale counts are subtracted exactly once, and a call
//! counted in a bucket is never emptied out with the period it replaced.
//! Since every count reaches the totals before its bucket and leaves its
//! bucket before the totals, the totals never dip below what the buckets
//! hold, and no field can borrow from the next.
//!
//! A bucket counts at most [`TimeWindow::cap`] calls, chosen so that the
//! whole window, two more buckets' worth (counts swapped out whose
//! subtraction is still on its way) and an add in flight per thread fit the
//! 32-bit totals; calls past it in one bucket pass uncounted (the rate is
//! judged on the first `cap` of each bucket).
//!
//! Tags repeat every 65,535 periods, so after a silence of a whole turn of
//! the ring or more the first call back re-tags every bucket before it
//! publishes the new end (see `restart`).

use crate::loom::{AtomicU64, Ordering, yield_now};
use crate::window::Totals;

/// The most buckets in a time window.
pub(crate) const MAX_BUCKETS: u32 = 3_600;

/// Bucket words: the second count in bits 0..24, calls in 24..48, the
/// epoch's tag in 48..64: `epoch % TAGS + 1`, with 0 for a bucket never
/// used (older than any epoch).
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const TAG_SHIFT: u32 = 2 * COUNT_BITS;
const TAGS: u64 = 0xFFFF;

/// Totals words: calls in bits 0..32, the second count in 32..64.
const TOTAL_SHIFT: u32 = 32;

/// Room left in the totals for adds that are on their way to a bucket (at
/// most one per thread between its two steps).
const IN_FLIGHT: u64 = 1 << 24;

/// Buckets' worth of room left in the totals for counts already swapped out
/// of a bucket but not yet subtracted (a thread preempted between its swap
/// and its subtraction, while the bucket fills again).
const PENDING_BUCKETS: u64 = 2;

/// Set in `end` while a call re-tags the whole ring after a long silence
/// (see `TimeWindow::restart`); epochs never reach it.
const RESTARTING: u64 = 1 << 63;

/// How far ahead of a recorder's epoch a bucket's tag may be and still
/// count as newer; anything else is older. The window spans at most
/// [`MAX_BUCKETS`] epochs, so a live tag is never further than that from
/// the window's end, and a recorder uses the end it read.
const AHEAD: u64 = 4_096;

/// A (calls, count) bucket word, or totals word.
struct Word(AtomicU64);

/// What a word holds, unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    calls: u64,
    other: u64,
}

fn tag(word: u64) -> u64 {
    word >> TAG_SHIFT
}

fn bucket_counts(word: u64) -> Counts {
    Counts {
        calls: (word >> COUNT_BITS) & COUNT_MASK,
        other: word & COUNT_MASK,
    }
}

fn tag_of(epoch: u64) -> u64 {
    epoch % TAGS + 1
}

fn bucket_word(epoch: u64, counts: Counts) -> u64 {
    (tag_of(epoch) << TAG_SHIFT) | (counts.calls << COUNT_BITS) | counts.other
}

fn total_delta(counts: Counts) -> u64 {
    counts.calls | (counts.other << TOTAL_SHIFT)
}

/// Where a bucket tagged `tag` stands against `epoch`.
fn compare(tag: u64, epoch: u64) -> std::cmp::Ordering {
    if tag == 0 {
        return std::cmp::Ordering::Less;
    }
    let behind = (tag_of(epoch) + TAGS - tag) % TAGS;
    if behind == 0 {
        std::cmp::Ordering::Equal
    } else if behind > TAGS - AHEAD {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Less
    }
}

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// Counted in the bucket of this epoch.
    In(u64),
    /// Not counted: its bucket was full, or the window had moved on.
    Dropped,
}

impl Word {
    fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Adds one call (and `other`) in `epoch`, replacing the bucket if it
    /// holds an older one; returns whether it counted, and the stale counts
    /// it replaced.
    fn add(&self, epoch: u64, other: bool, cap: u64) -> (bool, Counts) {
        let mut seen = self.0.load(Ordering::Relaxed);
        loop {
            let (next, stale) = match compare(tag(seen), epoch) {
                std::cmp::Ordering::Equal => {
                    let mut counts = bucket_counts(seen);
                    if counts.calls >= cap {
                        return (false, Counts::ZERO);
                    }
                    counts.calls += 1;
                    counts.other += u64::from(other);
                    (bucket_word(epoch, counts), Counts::ZERO)
                }
                std::cmp::Ordering::Less => {
                    let fresh = Counts {
                        calls: 1,
                        other: u64::from(other),
                    };
                    (bucket_word(epoch, fresh), bucket_counts(seen))
                }
                std::cmp::Ordering::Greater => return (false, Counts::ZERO),
            };
            // Acquire: pairs with `clear`'s Release (see `Window::clear`).
            // Release: whoever takes this count out of the bucket (expiry,
            // a reset, a clear) and then out of the totals sees the totals
            // already hold it, so they never dip below zero (on any CPU).
            match self
                .0
                .compare_exchange_weak(seen, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return (true, stale),
                Err(actual) => seen = actual,
            }
        }
    }

    /// Makes the bucket hold `epoch`, empty, if it holds an older one;
    /// returns the stale counts.
    fn expire(&self, epoch: u64) -> Counts {
        let mut seen = self.0.load(Ordering::Relaxed);
        while compare(tag(seen), epoch) == std::cmp::Ordering::Less {
            // Acquire: pairs with `add`'s Release; see there.
            match self.0.compare_exchange_weak(
                seen,
                bucket_word(epoch, Counts::ZERO),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return bucket_counts(seen),
                Err(actual) => seen = actual,
            }
        }
        Counts::ZERO
    }

    /// Makes the bucket hold `epoch`, empty, whatever it held; returns the
    /// counts it held.
    fn reset(&self, epoch: u64) -> Counts {
        bucket_counts(
            self.0
                .swap(bucket_word(epoch, Counts::ZERO), Ordering::AcqRel),
        )
    }

    /// Empties the bucket, keeping its epoch; returns what it held. It
    /// writes even an empty bucket, with `Release` (see `Window::clear`),
    /// and reads with `Acquire` (see `add`).
    fn clear(&self) -> Counts {
        bucket_counts(self.0.fetch_and(!((1 << TAG_SHIFT) - 1), Ordering::AcqRel))
    }

    /// Takes one call (and `other`) back out of `epoch`'s bucket, if the
    /// bucket still holds that epoch; returns whether it did.
    fn undo(&self, epoch: u64, other: bool) -> bool {
        let mut seen = self.0.load(Ordering::Relaxed);
        loop {
            let mut counts = bucket_counts(seen);
            // A success is taken back only from a bucket that holds one
            // (calls beyond the other count), a failure only from one that
            // holds a failure: never more failures than calls.
            let present = if other {
                counts.other > 0
            } else {
                counts.calls > counts.other
            };
            if compare(tag(seen), epoch) != std::cmp::Ordering::Equal || !present {
                return false;
            }
            counts.calls -= 1;
            counts.other -= u64::from(other);
            match self.0.compare_exchange_weak(
                seen,
                bucket_word(epoch, counts),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => seen = actual,
            }
        }
    }
}

impl Counts {
    const ZERO: Self = Self { calls: 0, other: 0 };
}

/// One bucket: (calls, failures) and (calls, slow calls).
struct Bucket {
    failures: Word,
    slow: Word,
}

/// See the module docs.
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    /// Nanoseconds per bucket.
    width: u64,
    /// The most calls one bucket counts.
    cap: u64,
    /// Whether slow calls are counted (the breaker has a slow-call rule).
    slow: bool,
    /// The latest epoch recorded: the window's end.
    end: AtomicU64,
    /// (calls, failures) of the window.
    failures: AtomicU64,
    /// (calls, slow) of the window.
    slow_totals: AtomicU64,
}

impl TimeWindow {
    /// A window of `buckets` buckets of `width` nanoseconds each, counting
    /// slow calls if `slow`.
    pub(crate) fn new(buckets: u32, width: u64, slow: bool) -> Self {
        let buckets = buckets.clamp(1, MAX_BUCKETS);
        Self {
            buckets: (0..buckets)
                .map(|_| Bucket {
                    failures: Word::new(),
                    slow: Word::new(),
                })
                .collect(),
            width: width.max(1),
            cap: Self::cap(buckets),
            slow,
            end: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            slow_totals: AtomicU64::new(0),
        }
    }

    /// The most calls one bucket of a window of `buckets` counts.
    pub(crate) fn cap(buckets: u32) -> u64 {
        let room =
            (u64::from(u32::MAX) - IN_FLIGHT) / (u64::from(buckets.max(1)) + PENDING_BUCKETS);
        room.min(COUNT_MASK)
    }

    /// Records one call ending at `now` (nanoseconds) and returns the
    /// totals of the window after it (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn record(&self, now: u64, failure: bool, slow: bool) -> Totals {
        self.count(now, failure, slow);
        self.totals()
    }

    /// Records one call ending at `now`; says where it was counted. A call
    /// ending before the window's end counts in the end's bucket.
    pub(crate) fn count(&self, now: u64, failure: bool, slow: bool) -> Counted {
        // Epochs stay below `RESTARTING`: a clock would need 292 years of
        // nanoseconds to reach it.
        let epoch = self.advance_to((now / self.width) & !RESTARTING);
        let bucket = self.bucket(epoch);
        let call = Counts {
            calls: 1,
            other: u64::from(failure),
        };
        // The totals first, so they never fall below what the buckets hold.
        self.failures
            .fetch_add(total_delta(call), Ordering::Relaxed);
        let (counted, stale) = bucket.failures.add(epoch, failure, self.cap);
        self.subtract(&self.failures, stale);
        if !counted {
            self.subtract(&self.failures, call);
            return Counted::Dropped;
        }
        if self.slow {
            let call = Counts {
                calls: 1,
                other: u64::from(slow),
            };
            self.slow_totals
                .fetch_add(total_delta(call), Ordering::Relaxed);
            let (counted, stale) = bucket.slow.add(epoch, slow, self.cap);
            self.subtract(&self.slow_totals, stale);
            if !counted {
                self.subtract(&self.slow_totals, call);
            }
        }
        Counted::In(epoch)
    }

    /// Takes back a call [`count`](Self::count) counted in `epoch`, if its
    /// bucket still holds that epoch (otherwise it has left the window, and
    /// the totals with it).
    pub(crate) fn undo(&self, epoch: u64, failure: bool, slow: bool) {
        let bucket = self.bucket(epoch);
        if bucket.failures.undo(epoch, failure) {
            self.subtract(
                &self.failures,
                Counts {
                    calls: 1,
                    other: u64::from(failure),
                },
            );
        }
        if self.slow && bucket.slow.undo(epoch, slow) {
            self.subtract(
                &self.slow_totals,
                Counts {
                    calls: 1,
                    other: u64::from(slow),
                },
            );
        }
    }

    fn subtract(&self, totals: &AtomicU64, counts: Counts) {
        if counts != Counts::ZERO {
            totals.fetch_sub(total_delta(counts), Ordering::Relaxed);
        }
    }

    /// Moves the window's end to `epoch` if that is later, expiring the
    /// buckets of the periods that enter the window; returns the end.
    fn advance_to(&self, epoch: u64) -> u64 {
        let turn = self.buckets.len() as u64;
        // Acquire: pairs with the Release that ends a restart, so a call
        // that sees the new end sees the buckets it re-tagged.
        let mut end = self.end.load(Ordering::Acquire);
        loop {
            if end & RESTARTING != 0 {
                // Another call is re-tagging the ring (microseconds).
                yield_now();
                end = self.end.load(Ordering::Acquire);
                continue;
            }
            if epoch <= end {
                return end;
            }
            if epoch - end >= turn {
                match self.end.compare_exchange_weak(
                    end,
                    epoch | RESTARTING,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.restart(epoch);
                        self.end.store(epoch, Ordering::Release);
                        return epoch;
                    }
                    Err(seen) => end = seen,
                }
                continue;
            }
            match self
                .end
                .compare_exchange_weak(end, epoch, Ordering::Relaxed, Ordering::Acquire)
            {
                Ok(_) => {
                    // At most one turn of the ring: older periods share
                    // these buckets.
                    for entering in (end + 1).max(epoch.saturating_sub(turn - 1))..=epoch {
                        let bucket = self.bucket(entering);
                        self.subtract(&self.failures, bucket.failures.expire(entering));
                        self.subtract(&self.slow_totals, bucket.slow.expire(entering));
                    }
                    return epoch;
                }
                Err(seen) => end = seen,
            }
        }
    }

    /// After a silence of a whole turn of the ring or more, every bucket
    /// holds a period that has left the window, but its 16-bit tag may read
    /// as current or as newer than the periods entering (tags repeat every
    /// 65,535 periods). So the call that moves the end on claims the ring
    /// (`end` flagged [`RESTARTING`]: other calls wait until it is done)
    /// and empties every bucket, tagged with the period it enters as,
    /// whatever its tag said. No call can count into the new periods
    /// meanwhile. (A call that read the end before the silence and writes
    /// only now, having slept through it, is dropped as late, or, past
    /// 4,096 periods of sleep, may leave its one call in a bucket until the
    /// bucket's next turn.)
    #[cold]
    fn restart(&self, epoch: u64) {
        let turn = self.buckets.len() as u64;
        for entering in (epoch + 1 - turn)..=epoch {
            let bucket = self.bucket(entering);
            self.subtract(&self.failures, bucket.failures.reset(entering));
            self.subtract(&self.slow_totals, bucket.slow.reset(entering));
        }
    }

    fn bucket(&self, epoch: u64) -> &Bucket {
        let index = usize::try_from(epoch % self.buckets.len() as u64).unwrap_or(0);
        &self.buckets[index]
    }

    /// The totals of the window ending at `now`: the periods that have
    /// left it since the last call are expired first.
    pub(crate) fn totals_at(&self, now: u64) -> Totals {
        self.advance_to((now / self.width) & !RESTARTING);
        self.totals()
    }

    pub(crate) fn totals(&self) -> Totals {
        let field =
            |word: u64, shift: u32| u32::try_from((word >> shift) & 0xFFFF_FFFF).unwrap_or(0);
        let failures = self.failures.load(Ordering::Relaxed);
        let slow = self.slow_totals.load(Ordering::Relaxed);
        Totals {
            calls: field(failures, 0),
            failures: field(failures, TOTAL_SHIFT),
            slow: field(slow, TOTAL_SHIFT),
            slow_of: field(slow, 0),
        }
    }

    /// Empties the window: each bucket is emptied by a swap and exactly
    /// what it held subtracted, so a call recorded at the same instant is
    /// counted once or not at all.
    pub(crate) fn clear(&self) {
        for bucket in &*self.buckets {
            self.subtract(&self.failures, bucket.failures.clear());
            self.subtract(&self.slow_totals, bucket.slow.clear());
        }
    }

    /// Each bucket's epoch tag and (calls, failures, slow) (tests: the
    /// totals must agree with them).
    #[cfg(test)]
    pub(crate) fn buckets(&self) -> Vec<(u64, u64, u64, u64)> {
        self.buckets
            .iter()
            .map(|b| {
                let f = b.failures.0.load(Ordering::Relaxed);
                let s = bucket_counts(b.slow.0.load(Ordering::Relaxed));
                let counts = bucket_counts(f);
                (tag(f), counts.calls, counts.other, s.other)
            })
            .collect()
    }

    /// The window's end (tests).
    #[cfg(test)]
    pub(crate) fn end(&self) -> u64 {
        self.end.load(Ordering::Relaxed) & !RESTARTING
    }

    /// Sets a bucket's words (tests: to start near the limits).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn fill(&self, epoch: u64, calls: u64, failures: u64) {
        let counts = Counts {
            calls,
            other: failures,
        };
        self.end.fetch_max(epoch, Ordering::Relaxed);
        let old = self
            .bucket(epoch)
            .failures
            .0
            .swap(bucket_word(epoch, counts), Ordering::Relaxed);
        self.subtract(&self.failures, bucket_counts(old));
        self.failures
            .fetch_add(total_delta(counts), Ordering::Relaxed);
    }
}

impl std::fmt::Debug for TimeWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeWindow")
            .field("buckets", &self.buckets.len())
            .field("width_ns", &self.width)
            .field("totals", &self.totals())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const S: u64 = 1_000_000_000;

    fn pair(t: Totals) -> (u32, u32) {
        (t.calls, t.failures)
    }

    fn totals(calls: u32, failures: u32, slow: u32) -> Totals {
        Totals {
            calls,
            failures,
            slow,
            slow_of: calls,
        }
    }

    /// The totals must equal the sum of the buckets that hold epochs of the
    /// window, and no bucket may hold counts for an epoch outside it.
    fn assert_consistent(w: &TimeWindow) {
        let end = w.end();
        let n = w.buckets.len() as u64;
        let (mut calls, mut failures) = (0, 0);
        for (index, (tag, c, f, _)) in w.buckets().into_iter().enumerate() {
            if c == 0 {
                continue;
            }
            // The epoch this bucket stands for in the window ending at `end`.
            let epoch = end - (end + n - index as u64) % n;
            assert_eq!(tag, tag_of(epoch), "bucket {index} holds a stale epoch");
            calls += c;
            failures += f;
        }
        let t = w.totals();
        assert_eq!(
            (u64::from(t.calls), u64::from(t.failures)),
            (calls, failures)
        );
    }

    #[test]
    fn keeps_the_last_buckets() {
        let w = TimeWindow::new(3, S, true);
        w.record(0, true, false);
        w.record(S / 2, false, false);
        w.record(S, true, true);
        assert_eq!(w.totals(), totals(3, 2, 1));
        // At 3 s the window is seconds 1, 2 and 3: second 0 has left it.
        assert_eq!(w.record(3 * S, false, false), totals(2, 1, 1));
        // A long silence empties it, and costs one turn of the ring.
        assert_eq!(w.record(100 * S, false, false), totals(1, 0, 0));
        assert_eq!(w.record(u64::MAX, true, false), totals(1, 1, 0));
        assert_consistent(&w);
        w.clear();
        assert_eq!(w.totals(), Totals::default());
    }

    /// Buckets narrower than a second: a call leaves the window when its
    /// bucket does.
    #[test]
    fn buckets_of_any_width() {
        let ms = 1_000_000;
        let w = TimeWindow::new(4, 250 * ms, false);
        w.record(0, true, false);
        w.record(600 * ms, false, false);
        assert_eq!(pair(w.record(999 * ms, false, false)), (3, 1));
        assert_eq!(w.record(1_000 * ms, false, false).calls, 3, "bucket 0 left");
        assert_eq!(w.totals().failures, 0);
        // Without a slow-call rule, slow calls are not counted.
        assert_eq!(w.record(1_100 * ms, false, true).slow, 0);
    }

    /// A late caller (its clock read before the window moved on) counts in
    /// the window's end; one whose bucket moved on a whole turn is dropped.
    #[test]
    fn late_calls_count_at_the_end() {
        let w = TimeWindow::new(2, S, false);
        w.record(5 * S, false, false);
        assert_eq!(w.count(4 * S, true, false), Counted::In(5));
        assert_eq!(pair(w.totals()), (2, 1));
        assert_consistent(&w);
        // A bucket tagged ahead of the caller's epoch: the call is dropped
        // and its add to the totals undone.
        let ahead = &w.bucket(5).failures;
        ahead
            .0
            .store(bucket_word(7, Counts::ZERO), Ordering::Relaxed);
        assert_eq!(ahead.add(5, true, w.cap), (false, Counts::ZERO));
    }

    /// A busy window counts past 2^31 calls without carrying into the
    /// failure count (the word the old window wrapped at), up to the limit
    /// its buckets allow, where further calls in a full bucket are dropped
    /// and nothing wraps.
    #[test]
    fn the_totals_reach_their_limit_without_wrapping() {
        let n = MAX_BUCKETS;
        let w = TimeWindow::new(n, S, false);
        let cap = TimeWindow::cap(n);
        for epoch in 0..u64::from(n) {
            w.fill(epoch, cap, cap / 4);
        }
        let most = cap * u64::from(n);
        assert!(most > 1 << 31, "past the old limit");
        assert!(
            most + PENDING_BUCKETS * cap + IN_FLIGHT <= u64::from(u32::MAX),
            "within the word"
        );
        let t = w.totals();
        assert_eq!(u64::from(t.calls), most);
        assert_eq!(u64::from(t.failures), cap / 4 * u64::from(n));
        // The last bucket is full: a call there is dropped, not wrapped.
        let end = u64::from(n) - 1;
        assert_eq!(w.count(end * S, true, false), Counted::Dropped);
        assert_eq!(w.totals(), t);
        assert_consistent(&w);
        // The next second expires the first bucket and counts again.
        assert_eq!(
            w.count(u64::from(n) * S, true, false),
            Counted::In(u64::from(n))
        );
        assert_eq!(u64::from(w.totals().calls), most - cap + 1);
        assert_consistent(&w);
    }

    /// After silences of any length, including ones that bring the tags
    /// round to where they were (65,535 periods) or just short of it (where
    /// the old tags read as newer), the window holds only what came after.
    #[test]
    fn long_silences_leave_nothing_behind() {
        for buckets in [1, 3, 60] {
            for gap in [
                65_535,
                65_535 - 100,
                65_535 * 7,
                65_534,
                65_536,
                4_096,
                1 << 33,
            ] {
                let w = TimeWindow::new(buckets, S, false);
                for second in 0..u64::from(buckets) {
                    w.record(second * S, true, false);
                }
                let last = u64::from(buckets) - 1;
                let back = (last + gap) * S;
                assert_eq!(
                    pair(w.record(back, false, false)),
                    (1, 0),
                    "{buckets} buckets, a gap of {gap}"
                );
                assert_eq!(w.count(back, true, false), Counted::In(last + gap));
                assert_eq!(pair(w.totals()), (2, 1));
                assert_consistent(&w);
            }
        }
    }

    /// Taking back a success never leaves more failures than calls: a
    /// bucket holding only a failure has no success to give back.
    #[test]
    fn an_undo_takes_back_only_its_own_kind() {
        let w = TimeWindow::new(2, S, false);
        let Counted::In(epoch) = w.count(0, true, false) else {
            panic!("dropped")
        };
        w.undo(epoch, false, false);
        assert_eq!(pair(w.totals()), (1, 1), "no success to take back");
        w.undo(epoch, true, false);
        assert_eq!(pair(w.totals()), (0, 0));
    }

    /// Threads recording while the clock moves on, against a count kept
    /// beside: every call the window says it counted is in its bucket, and
    /// the totals are exactly the calls of the epochs still in the window.
    #[test]
    fn threads_racing_expiry_match_a_reference_count() {
        let w = TimeWindow::new(3, 1_000, true);
        // Each thread moves the clock on now and then, so the run spans
        // many epochs however the threads are scheduled.
        let clock = AtomicU64::new(0);
        let tallies: Vec<HashMap<u64, (u64, u64)>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..3u64)
                .map(|t| {
                    let (w, clock) = (&w, &clock);
                    s.spawn(move || {
                        let mut tally = HashMap::new();
                        for i in 0..20_000u64 {
                            if (i + t) % 100 == 0 {
                                clock.fetch_add(37, Ordering::Relaxed);
                            }
                            let failure = (i + t) % 3 == 0;
                            let now = clock.load(Ordering::Relaxed);
                            if let Counted::In(epoch) = w.count(now, failure, i % 5 == 0) {
                                let entry: &mut (u64, u64) = tally.entry(epoch).or_default();
                                entry.0 += 1;
                                entry.1 += u64::from(failure);
                            }
                        }
                        tally
                    })
                })
                .collect();
            workers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let end = w.end();
        let (mut calls, mut failures) = (0, 0);
        let mut per_epoch: HashMap<u64, (u64, u64)> = HashMap::new();
        for tally in tallies {
            for (epoch, (c, f)) in tally {
                let entry = per_epoch.entry(epoch).or_default();
                entry.0 += c;
                entry.1 += f;
                if epoch + 3 > end {
                    calls += c;
                    failures += f;
                }
            }
        }
        assert!(
            per_epoch.len() > 10,
            "the clock moved on: {}",
            per_epoch.len()
        );
        let t = w.totals();
        assert_eq!(
            (u64::from(t.calls), u64::from(t.failures)),
            (calls, failures)
        );
        for (tag, c, f, _) in w.buckets() {
            let epoch = (end - 2..=end).find(|e| tag_of(*e) == tag);
            if let Some(epoch) = epoch {
                assert_eq!((c, f), per_epoch.get(&epoch).copied().unwrap_or_default());
            } else {
                assert_eq!((c, f), (0, 0));
            }
        }
        assert_consistent(&w);
    }

    #[test]
    fn an_undo_takes_back_only_what_is_still_there() {
        let w = TimeWindow::new(2, S, true);
        let Counted::In(epoch) = w.count(0, true, true) else {
            panic!("dropped")
        };
        w.undo(epoch, true, true);
        assert_eq!(w.totals(), Totals::default());
        // Once its bucket has moved on, there is nothing to take back.
        w.count(0, true, false);
        w.count(2 * S, false, false);
        w.undo(epoch, true, false);
        assert_eq!(w.totals(), totals(1, 0, 0));
        assert_consistent(&w);
    }
}
