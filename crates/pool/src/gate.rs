//! The pool's places: a counting semaphore whose fast paths (take a place
//! when one is free and nobody waits; give one back when nobody waits) are
//! one compare-and-swap each, and whose waiters are served strictly in the
//! order they came.
//!
//! One word holds the count of free places and two flags. `QUEUED` is set
//! while callers wait: then no caller takes a place on the fast path (so none
//! overtakes a waiter), and a place given back goes under the lock straight
//! to the oldest waiter. The count may go below zero when the pool shrinks:
//! places given back then pay that debt before anyone is served.
//!
//! A waiter is an `Arc` in a queue. Its state changes only under the queue's
//! lock; a waiter that gives up is marked and left for the next pass to skip
//! (the queue is compacted when such marks outnumber the live waiters).
//!
//! Every waiter carries its deadline. The pool gives all its waiters the
//! same wait, so deadlines fall in queue order: one timer, sleeping until
//! the oldest waiter's deadline ([`Gate::expire`]), serves them all, and a
//! wait registers no timer of its own.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::loom::{Arc, AtomicU8, AtomicU64, Mutex, Ordering};

const QUEUED: u64 = 1;
const CLOSED: u64 = 2;
/// One place, in the word's units.
const ONE: u64 = 4;
/// Zero free places, in the word's count: the count may go this far below
/// zero when the pool shrinks.
const BIAS: u64 = 1 << 40;

const WAITING: u8 = 0;
const GRANTED: u8 = 1;
const GAVE_UP: u8 = 2;
const SHUT: u8 = 3;
const TIMED_OUT: u8 = 4;

/// Why a wait for a place ended without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// The gate was closed: no more places are handed out.
    Shut,
    /// The deadline passed first.
    TimedOut,
}

#[derive(Debug)]
pub(crate) struct Gate {
    state: AtomicU64,
    queue: Mutex<Queue>,
    /// Wakes the timer task when a first waiter queues.
    timer: std::sync::Arc<Notify>,
}

#[derive(Debug, Default)]
struct Queue {
    waiters: VecDeque<Arc<Waiter>>,
    /// Waiters in `waiters` still waiting; the others gave up (a waiter
    /// ends otherwise only once out of the queue).
    live: usize,
    /// Whether the timer task sleeps until a deadline (the oldest waiter's
    /// when it last looked, no later than any waiter's since): a new
    /// waiter, whose deadline is later, need not wake it.
    timer_armed: bool,
}

#[derive(Debug)]
pub(crate) struct Waiter {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
    deadline: Instant,
}

impl Waiter {
    /// Under the queue's lock: sets the final state and takes the task's
    /// waker into `wakes`, to be woken once the lock is released.
    fn finish(&self, state: u8, wakes: &mut Wakes) {
        // Release: the task that sees the state sees the place with it.
        self.state.store(state, Ordering::Release);
        if let Some(waker) = self.waker.lock().take() {
            wakes.add(waker);
        }
    }
}

/// Wakers taken under the queue's lock, woken after it is released: a wake
/// can unpark a runtime's worker thread (a system call), and every caller
/// that gives or takes a place would wait for it on the lock.
#[derive(Default)]
struct Wakes {
    /// The one waker of a place given back: no allocation.
    first: Option<Waker>,
    /// Any more (a close, a resize, expiry), in order.
    rest: Vec<Waker>,
}

impl Wakes {
    fn add(&mut self, waker: Waker) {
        if self.first.is_none() {
            self.first = Some(waker);
        } else {
            self.rest.push(waker);
        }
    }

    /// Wakes them all: call with the queue's lock released.
    fn wake(self) {
        self.first
            .into_iter()
            .chain(self.rest)
            .for_each(Waker::wake);
    }
}

impl Queue {
    /// The oldest waiter still waiting, out of the queue.
    fn pop_live(&mut self) -> Option<Arc<Waiter>> {
        while let Some(waiter) = self.waiters.pop_front() {
            if waiter.state.load(Ordering::Relaxed) == WAITING {
                self.live -= 1;
                return Some(waiter);
            }
        }
        None
    }

    /// Waiters in `waiters` that gave up.
    fn gave_up(&self) -> usize {
        self.waiters.len() - self.live
    }
}

impl Gate {
    pub(crate) fn new(places: u32) -> Self {
        Self {
            state: AtomicU64::new((BIAS + u64::from(places)) * ONE),
            queue: Mutex::new(Queue::default()),
            timer: std::sync::Arc::new(Notify::new()),
        }
    }

    /// What wakes the task that runs [`expire`](Self::expire).
    pub(crate) fn timer(&self) -> std::sync::Arc<Notify> {
        std::sync::Arc::clone(&self.timer)
    }

    /// Ends the waits whose deadline is `now` or before; the deadline of
    /// the oldest wait left, if any.
    pub(crate) fn expire(&self, now: Instant) -> Option<Instant> {
        let mut wakes = Wakes::default();
        let mut queue = self.queue.lock();
        let mut next = None;
        while let Some(front) = queue.waiters.front() {
            if front.state.load(Ordering::Relaxed) != WAITING {
                queue.waiters.pop_front();
            } else if front.deadline <= now {
                if let Some(waiter) = queue.pop_live() {
                    waiter.finish(TIMED_OUT, &mut wakes);
                }
            } else {
                next = Some(front.deadline);
                break;
            }
        }
        self.settle(&mut queue);
        queue.timer_armed = next.is_some();
        drop(queue);
        wakes.wake();
        next
    }

    /// Takes a free place if one is free and nobody waits.
    #[inline]
    pub(crate) fn try_take(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & (QUEUED | CLOSED) != 0 || state / ONE <= BIAS {
                return false;
            }
            // Acquire: pairs with the release that gave the place back, so
            // what its giver wrote (an idle object) is seen.
            match self.state.compare_exchange_weak(
                state,
                state - ONE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => state = seen,
            }
        }
    }

    /// Waits for a place, in turn, until `deadline` (as the timer task
    /// enforces it).
    ///
    /// # Cancel safety
    /// A dropped `Take` holds no place: one handed to it meanwhile goes on
    /// to the next waiter.
    pub(crate) fn take(&self, deadline: Instant) -> Take<'_> {
        Take {
            gate: self,
            waiter: None,
            deadline,
        }
    }

    /// Gives a place back: to the oldest waiter if any, else to the count.
    #[inline]
    pub(crate) fn give(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & QUEUED == 0 {
            // Release: whoever takes this place sees what was written
            // before it was given back.
            match self.state.compare_exchange_weak(
                state,
                state + ONE,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => state = seen,
            }
        }
        let mut wakes = Wakes::default();
        self.give_locked(&mut self.queue.lock(), 1, &mut wakes);
        wakes.wake();
    }

    fn give_locked(&self, queue: &mut Queue, places: u64, wakes: &mut Wakes) {
        // A shrink's debt first, then the oldest waiters, then the count:
        // in bulk, so growing by millions costs no more than by one.
        let count = self.state.load(Ordering::Relaxed) / ONE;
        let mut left = places;
        let debt = BIAS.saturating_sub(count).min(left);
        left -= debt;
        while left > 0 {
            let Some(waiter) = queue.pop_live() else {
                break;
            };
            waiter.finish(GRANTED, wakes);
            left -= 1;
        }
        if debt + left > 0 {
            self.state.fetch_add((debt + left) * ONE, Ordering::Release);
        }
        self.settle(queue);
    }

    /// Clears `QUEUED` (and the queue) once nobody waits.
    fn settle(&self, queue: &mut Queue) {
        if queue.live == 0 {
            queue.waiters.clear();
            self.state.fetch_and(!QUEUED, Ordering::Relaxed);
        } else if queue.gave_up() > queue.live + 16 {
            queue
                .waiters
                .retain(|waiter| waiter.state.load(Ordering::Relaxed) == WAITING);
        }
    }

    /// Under the lock: takes a place if one is free and nobody waits, else
    /// queues a waiter.
    fn enqueue(&self, waker: &Waker, deadline: Instant) -> Result<Option<Arc<Waiter>>, Denied> {
        let mut queue = self.queue.lock();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & CLOSED != 0 {
                return Err(Denied::Shut);
            }
            let (next, took) = if state & QUEUED == 0 && state / ONE > BIAS {
                (state - ONE, true)
            } else {
                (state | QUEUED, false)
            };
            match self
                .state
                .compare_exchange(state, next, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) if took => return Ok(None),
                Ok(_) => break,
                Err(seen) => state = seen,
            }
        }
        let waiter = Arc::new(Waiter {
            state: AtomicU8::new(WAITING),
            waker: Mutex::new(Some(waker.clone())),
            deadline,
        });
        if !queue.timer_armed {
            // The timer waits for a first waiter: this one.
            queue.timer_armed = true;
            self.timer.notify_one();
        }
        queue.waiters.push_back(Arc::clone(&waiter));
        queue.live += 1;
        Ok(Some(waiter))
    }

    /// A queued waiter stops waiting: its place, if one was handed to it,
    /// goes on.
    pub(crate) fn abandon(&self, waiter: &Waiter) {
        let mut wakes = Wakes::default();
        let mut queue = self.queue.lock();
        match waiter.state.load(Ordering::Relaxed) {
            WAITING => {
                waiter.state.store(GAVE_UP, Ordering::Relaxed);
                queue.live -= 1;
                self.settle(&mut queue);
            }
            GRANTED => self.give_locked(&mut queue, 1, &mut wakes),
            _ => {}
        }
        drop(queue);
        wakes.wake();
    }

    /// Refuses every waiter and every later take. Places given back after
    /// this still count.
    pub(crate) fn close(&self) {
        let mut wakes = Wakes::default();
        let mut queue = self.queue.lock();
        self.state.fetch_or(CLOSED, Ordering::Relaxed);
        while let Some(waiter) = queue.pop_live() {
            waiter.finish(SHUT, &mut wakes);
        }
        self.settle(&mut queue);
        drop(queue);
        wakes.wake();
    }

    /// Adds places (to the oldest waiters first) or removes them (the count
    /// may go below zero; places given back pay for it).
    pub(crate) fn resize(&self, by: i64) {
        let mut wakes = Wakes::default();
        let mut queue = self.queue.lock();
        if by >= 0 {
            self.give_locked(&mut queue, by.unsigned_abs(), &mut wakes);
        } else {
            self.state
                .fetch_sub(by.unsigned_abs() * ONE, Ordering::Relaxed);
        }
        drop(queue);
        wakes.wake();
    }

    /// Free places (below zero while a shrink is being paid for) and the
    /// number of waiters.
    pub(crate) fn counts(&self) -> (i64, usize) {
        let waiters = self.queue.lock().live;
        let count = self.state.load(Ordering::Relaxed) / ONE;
        let free = i64::try_from(count).unwrap_or(i64::MAX) - (1 << 40);
        (free, waiters)
    }
}

/// A wait for a place, from [`Gate::take`].
#[derive(Debug)]
pub(crate) struct Take<'a> {
    gate: &'a Gate,
    waiter: Option<Arc<Waiter>>,
    deadline: Instant,
}

impl Future for Take<'_> {
    type Output = Result<(), Denied>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.gate.poll_take(&mut this.waiter, this.deadline, cx)
    }
}

impl Gate {
    /// [`Take`]'s poll, for owners that keep the waiter themselves: takes a
    /// place or queues `waiter`; ready once the place is theirs (and
    /// `waiter` is `None` again). An owner that stops polling while
    /// `waiter` is `Some` must pass it to [`abandon`](Self::abandon).
    pub(crate) fn poll_take(
        &self,
        waiter: &mut Option<Arc<Waiter>>,
        deadline: Instant,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Denied>> {
        let Some(queued) = waiter else {
            if self.try_take() {
                return Poll::Ready(Ok(()));
            }
            return match self.enqueue(cx.waker(), deadline) {
                Err(denied) => Poll::Ready(Err(denied)),
                Ok(None) => Poll::Ready(Ok(())),
                Ok(Some(queued)) => {
                    *waiter = Some(queued);
                    Poll::Pending
                }
            };
        };
        let mut state = queued.state.load(Ordering::Acquire);
        if state == WAITING {
            {
                let mut waker = queued.waker.lock();
                match &mut *waker {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
            }
            // Again after the waker is stored: a grant made before it was
            // stored is seen here, one made after it wakes the new waker.
            state = queued.state.load(Ordering::Acquire);
        }
        match state {
            WAITING => Poll::Pending,
            GRANTED => {
                *waiter = None;
                Poll::Ready(Ok(()))
            }
            TIMED_OUT => {
                *waiter = None;
                Poll::Ready(Err(Denied::TimedOut))
            }
            _ => {
                *waiter = None;
                Poll::Ready(Err(Denied::Shut))
            }
        }
    }
}

impl Drop for Take<'_> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.gate.abandon(&waiter);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::task::Waker;

    fn later() -> Instant {
        Instant::now() + std::time::Duration::from_secs(3_600)
    }

    fn poll(take: &mut Take<'_>) -> Poll<Result<(), Denied>> {
        Pin::new(take).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn waiters_are_served_in_order_and_newcomers_do_not_overtake() {
        let gate = Gate::new(1);
        assert!(gate.try_take());
        let mut first = gate.take(later());
        let mut second = gate.take(later());
        assert!(poll(&mut first).is_pending());
        assert!(poll(&mut second).is_pending());
        gate.give();
        // A newcomer finds the place already handed to the first waiter.
        assert!(!gate.try_take());
        assert!(poll(&mut second).is_pending());
        assert_eq!(poll(&mut first), Poll::Ready(Ok(())));
        gate.give();
        assert_eq!(poll(&mut second), Poll::Ready(Ok(())));
        gate.give();
        assert!(gate.try_take(), "nobody waits: the fast path again");
    }

    #[test]
    fn a_waiter_that_gives_up_after_its_grant_passes_the_place_on() {
        let gate = Gate::new(1);
        assert!(gate.try_take());
        let mut first = gate.take(later());
        let mut second = gate.take(later());
        assert!(poll(&mut first).is_pending());
        assert!(poll(&mut second).is_pending());
        gate.give();
        drop(first);
        assert_eq!(poll(&mut second), Poll::Ready(Ok(())));
        assert_eq!(gate.counts(), (0, 0));
    }

    #[test]
    fn a_waiter_that_gives_up_before_its_grant_is_skipped() {
        let gate = Gate::new(1);
        assert!(gate.try_take());
        let mut first = gate.take(later());
        assert!(poll(&mut first).is_pending());
        drop(first);
        assert_eq!(gate.counts(), (0, 0));
        gate.give();
        assert!(
            gate.try_take(),
            "the place was not handed to the gone waiter"
        );
    }

    /// A waker that notes, at each wake, whether the gate's queue lock was
    /// free.
    struct LooksAtTheGate {
        gate: std::sync::Arc<Gate>,
        lock_was_free: std::sync::Mutex<Vec<bool>>,
    }

    impl std::task::Wake for LooksAtTheGate {
        fn wake(self: std::sync::Arc<Self>) {
            let free = self.gate.queue.try_lock().is_some();
            self.lock_was_free.lock().expect("not poisoned").push(free);
        }
    }

    #[test]
    fn waiters_are_woken_after_the_queue_lock_is_released() {
        let gate = std::sync::Arc::new(Gate::new(1));
        let looks = std::sync::Arc::new(LooksAtTheGate {
            gate: std::sync::Arc::clone(&gate),
            lock_was_free: std::sync::Mutex::default(),
        });
        let waker = Waker::from(std::sync::Arc::clone(&looks));
        let wait = |deadline| {
            let mut take = gate.take(deadline);
            let polled = Pin::new(&mut take).poll(&mut Context::from_waker(&waker));
            assert!(polled.is_pending(), "queued");
            take
        };
        assert!(gate.try_take());
        // Granted by a give, by a waiter that leaves with its grant, and by
        // a resize; timed out; shut.
        let first = wait(later());
        gate.give();
        let second = wait(later());
        drop(first);
        let third = wait(later());
        gate.resize(1);
        let fourth = wait(Instant::now());
        assert_eq!(gate.expire(Instant::now()), None);
        let fifth = wait(later());
        gate.close();
        drop((second, third, fourth, fifth));
        let seen = looks.lock_was_free.lock().expect("not poisoned").clone();
        assert_eq!(seen, [true; 5]);
    }

    #[test]
    fn closing_refuses_waiters_and_later_takes() {
        let gate = Gate::new(1);
        assert!(gate.try_take());
        let mut waiting = gate.take(later());
        assert!(poll(&mut waiting).is_pending());
        gate.close();
        assert_eq!(poll(&mut waiting), Poll::Ready(Err(Denied::Shut)));
        gate.give();
        assert!(!gate.try_take());
        assert_eq!(
            poll(&mut gate.take(later())),
            Poll::Ready(Err(Denied::Shut))
        );
    }

    #[test]
    fn a_shrink_is_paid_by_places_given_back_before_anyone_is_served() {
        let gate = Gate::new(2);
        assert!(gate.try_take());
        assert!(gate.try_take());
        gate.resize(-1);
        let mut waiting = gate.take(later());
        assert!(poll(&mut waiting).is_pending());
        gate.give(); // pays the debt
        assert!(poll(&mut waiting).is_pending());
        gate.give();
        assert_eq!(poll(&mut waiting), Poll::Ready(Ok(())));
        gate.resize(2);
        assert_eq!(gate.counts(), (2, 0));
    }

    #[test]
    fn growing_by_a_great_many_places_takes_one_step() {
        let gate = Gate::new(1);
        gate.resize(-2); // in debt by one
        gate.resize(1 << 32);
        assert_eq!(gate.counts(), ((1 << 32) - 1, 0));
    }

    #[test]
    fn growing_serves_waiters_first() {
        let gate = Gate::new(0);
        let mut waiting = gate.take(later());
        assert!(poll(&mut waiting).is_pending());
        gate.resize(1);
        assert!(!gate.try_take());
        assert_eq!(poll(&mut waiting), Poll::Ready(Ok(())));
    }

    #[test]
    fn waits_end_at_their_deadline_oldest_first() {
        let gate = Gate::new(0);
        let now = Instant::now();
        let second = std::time::Duration::from_secs(1);
        let mut first = gate.take(now + second);
        let mut next = gate.take(now + 2 * second);
        assert!(poll(&mut first).is_pending());
        assert!(poll(&mut next).is_pending());
        assert_eq!(gate.expire(now), Some(now + second));
        assert_eq!(gate.expire(now + second), Some(now + 2 * second));
        assert_eq!(poll(&mut first), Poll::Ready(Err(Denied::TimedOut)));
        assert!(poll(&mut next).is_pending());
        assert_eq!(gate.expire(now + 2 * second), None);
        assert_eq!(poll(&mut next), Poll::Ready(Err(Denied::TimedOut)));
        assert_eq!(gate.counts(), (0, 0));
        gate.resize(1);
        assert!(gate.try_take(), "no place went to a waiter that timed out");
    }

    #[test]
    fn many_gone_waiters_are_compacted_away() {
        let gate = Gate::new(0);
        let mut stays = gate.take(later());
        assert!(poll(&mut stays).is_pending());
        for _ in 0..1_000 {
            let mut gone = gate.take(later());
            assert!(poll(&mut gone).is_pending());
        }
        assert!(gate.queue.lock().waiters.len() < 40);
        gate.resize(1);
        assert_eq!(poll(&mut stays), Poll::Ready(Ok(())));
    }
}
