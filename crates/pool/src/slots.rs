//! Where idle objects wait: numbered slots, and two lock-free stacks of slot
//! numbers, one of idle objects (the last returned on top, so the warmest
//! is reused first) and one of empty slots.
//!
//! An object keeps its slot from creation to discard. A slot number is
//! owned by one party at a time: the stack it is on, or whoever popped it;
//! only its owner touches its entry, so the entry's lock is never contended.
//! The slots live in chunks of doubling size that are never moved or freed
//! while the pool lives, so a number stays valid for good and the stacks
//! can link through the slots.
//!
//! Each stack's head is one word: a 32-bit tag, bumped at every change, and
//! the top slot's number plus one (zero for empty). The tag makes a pop that
//! read a stale link fail its compare-and-swap (the ABA problem).

use std::panic::Location;
use std::sync::OnceLock;

use crate::loom::{AtomicU32, AtomicU64, Mutex, Ordering};

/// Chunk `k` holds `2^k` slots: 32 chunks number every `u32` but the last.
const CHUNKS: usize = 32;

#[derive(Debug)]
struct Slot<T> {
    /// The number plus one of the slot below this one on its stack.
    next: AtomicU32,
    entry: Mutex<Option<T>>,
    /// Who holds the object, for leak detection (only when it is on).
    lent: Mutex<Option<Lent>>,
}

/// A checkout, as leak detection sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lent {
    /// When, on the pool's clock.
    pub(crate) since: u64,
    /// Where `get` was called.
    pub(crate) at: &'static Location<'static>,
    /// Whether it was reported as maybe leaked.
    pub(crate) reported: bool,
}

#[derive(Debug)]
pub(crate) struct Slots<T> {
    chunks: [OnceLock<Box<[Slot<T>]>>; CHUNKS],
    /// Slot numbers below this have been handed out at least once.
    fresh: AtomicU32,
    idle: AtomicU64,
    empty: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
enum Stack {
    Idle,
    Empty,
}

/// Slots made when the pool is built, at most.
const MADE_AHEAD: u32 = 4_096;

impl<T> Slots<T> {
    /// Slots for `capacity` objects, the first [`MADE_AHEAD`] of them made
    /// now so that the pool's first objects take no allocation (the rest as
    /// the pool grows: a `max_size` of millions costs nothing until used).
    pub(crate) fn new(capacity: u32) -> Self {
        let slots = Self {
            chunks: std::array::from_fn(|_| OnceLock::new()),
            fresh: AtomicU32::new(0),
            idle: AtomicU64::new(0),
            empty: AtomicU64::new(0),
        };
        for number in 0..capacity.min(MADE_AHEAD) {
            slots.slot(number);
        }
        slots
    }

    /// The slot numbered `number`, making its chunk if needed.
    fn slot(&self, number: u32) -> &Slot<T> {
        let place = u64::from(number) + 1;
        let chunk = place.ilog2();
        let chunk_len = 1_usize << chunk;
        let slots = self.chunks[chunk as usize].get_or_init(|| {
            (0..chunk_len)
                .map(|_| Slot {
                    next: AtomicU32::new(0),
                    entry: Mutex::new(None),
                    lent: Mutex::new(None),
                })
                .collect()
        });
        // `place` is in `2^chunk..2^(chunk + 1)`, so the offset is below
        // `chunk_len`, which fits a usize.
        #[allow(clippy::cast_possible_truncation)]
        let offset = (place - (1 << chunk)) as usize;
        &slots[offset]
    }

    fn head(&self, stack: Stack) -> &AtomicU64 {
        match stack {
            Stack::Idle => &self.idle,
            Stack::Empty => &self.empty,
        }
    }

    fn push(&self, stack: Stack, number: u32) {
        let head = self.head(stack);
        let slot = self.slot(number);
        let mut seen = head.load(Ordering::Relaxed);
        loop {
            // The low half of the head is the top's number plus one.
            #[allow(clippy::cast_possible_truncation)]
            slot.next.store(seen as u32, Ordering::Relaxed);
            let next = (seen >> 32).wrapping_add(1) << 32 | (u64::from(number) + 1);
            // Release: a pop that sees this head sees the link above and
            // the entry put in the slot before the push. SeqCst: a parker
            // that then reads the pool open, and a `close` that then drains,
            // cannot both miss each other (on x86 the swap costs the same).
            match head.compare_exchange_weak(seen, next, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => seen = now,
            }
        }
    }

    fn pop(&self, stack: Stack) -> Option<u32> {
        let head = self.head(stack);
        // Acquire: pairs with the push that made this head.
        let mut seen = head.load(Ordering::Acquire);
        loop {
            #[allow(clippy::cast_possible_truncation)]
            let top = (seen as u32).checked_sub(1)?;
            // Maybe stale if `top` was popped meanwhile; then the tag has
            // moved on and the swap below fails.
            let below = self.slot(top).next.load(Ordering::Relaxed);
            let next = (seen >> 32).wrapping_add(1) << 32 | u64::from(below);
            match head.compare_exchange_weak(seen, next, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => return Some(top),
                Err(now) => seen = now,
            }
        }
    }

    /// A slot for a new object: an emptied one, else one never used.
    /// `None` once every `u32` but the last is in use.
    pub(crate) fn claim(&self) -> Option<u32> {
        if let Some(number) = self.pop(Stack::Empty) {
            return Some(number);
        }
        let number = self
            .fresh
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |fresh| {
                fresh.checked_add(1).filter(|&next| next < u32::MAX)
            })
            .ok()?;
        self.slot(number);
        Some(number)
    }

    /// Gives up a claimed slot whose object is gone.
    pub(crate) fn release(&self, number: u32) {
        self.push(Stack::Empty, number);
    }

    /// Stores an idle object in its claimed slot and puts it on top of the
    /// idle stack.
    pub(crate) fn park(&self, number: u32, entry: T) {
        *self.slot(number).entry.lock() = Some(entry);
        self.push(Stack::Idle, number);
    }

    /// Takes the last parked object, with its slot number.
    pub(crate) fn unpark(&self) -> Option<(u32, T)> {
        let number = self.pop(Stack::Idle)?;
        let entry = self.slot(number).entry.lock().take();
        // A slot on the idle stack always holds its object.
        entry.map(|entry| (number, entry))
    }

    /// Records who took the object in a slot.
    pub(crate) fn lend(&self, number: u32, lent: Lent) {
        *self.slot(number).lent.lock() = Some(lent);
    }

    /// Forgets who took the object in a slot; what was recorded.
    pub(crate) fn unlend(&self, number: u32) -> Option<Lent> {
        self.slot(number).lent.lock().take()
    }

    /// Lets `visit` look at (and mark) every recorded checkout.
    pub(crate) fn each_lent(&self, mut visit: impl FnMut(&mut Lent)) {
        let fresh = self.fresh.load(Ordering::Relaxed);
        for number in 0..fresh {
            if let Some(lent) = self.slot(number).lent.lock().as_mut() {
                visit(lent);
            }
        }
    }

    /// How many objects are parked (each slot looked at once, not at one
    /// instant).
    pub(crate) fn parked(&self) -> usize {
        let fresh = self.fresh.load(Ordering::Relaxed);
        (0..fresh)
            .filter(|&number| self.slot(number).entry.lock().is_some())
            .count()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_last_parked_comes_out_first() {
        let slots = Slots::new(2);
        let numbers: Vec<u32> = (0..5).map(|_| slots.claim().expect("slot")).collect();
        assert_eq!(
            numbers,
            [0, 1, 2, 3, 4],
            "fresh slots past the first chunks"
        );
        for &number in &numbers {
            slots.park(number, number * 10);
        }
        assert_eq!(slots.parked(), 5);
        let order: Vec<(u32, u32)> = std::iter::from_fn(|| slots.unpark()).collect();
        assert_eq!(order, [(4, 40), (3, 30), (2, 20), (1, 10), (0, 0)]);
        assert_eq!(slots.parked(), 0);
    }

    #[test]
    fn released_slots_are_claimed_again_before_fresh_ones() {
        let slots = Slots::<()>::new(4);
        let a = slots.claim().expect("slot");
        let b = slots.claim().expect("slot");
        slots.release(a);
        assert_eq!(slots.claim(), Some(a));
        slots.release(b);
        slots.release(a);
        assert_eq!(slots.claim(), Some(a));
        assert_eq!(slots.claim(), Some(b));
        assert_eq!(slots.claim(), Some(2));
    }

    #[test]
    fn threads_park_and_unpark_without_losing_an_object() {
        let slots = std::sync::Arc::new(Slots::new(8));
        for n in 0..8 {
            let number = slots.claim().expect("slot");
            slots.park(number, n);
        }
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let slots = std::sync::Arc::clone(&slots);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if let Some((number, entry)) = slots.unpark() {
                            slots.park(number, entry);
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("no panic");
        }
        let mut left: Vec<u32> = std::iter::from_fn(|| slots.unpark())
            .map(|(_, e)| e)
            .collect();
        left.sort_unstable();
        assert_eq!(left, (0..8).collect::<Vec<_>>());
    }
}
