//! The pool: places from the gate, idle objects from the slots, and the
//! rules that decide when an object is checked, kept or retired.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use parking_lot::Mutex;
use seawall_core::{Clock, CoarseClock};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::config::{CheckoutTest, PoolConfig};
use crate::error::{CreateError, PoolError};
use crate::gate::{Denied, Gate};
use crate::manager::Manager;
use crate::object::{Object, OwnedObject};
use crate::observe::{Discard, Observer};
use crate::slots::{Lent, Slots};

/// An idle or checked-out object with what the pool knows of it; times are
/// the pool clock's nanoseconds.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    pub(crate) object: T,
    /// When it must be retired (`u64::MAX`: never).
    pub(crate) retire_at: u64,
    /// When it was last made, returned or checked: known to work.
    pub(crate) seen_at: u64,
    /// When it last became idle.
    pub(crate) idle_since: u64,
}

/// A pool of objects made by a [`Manager`]: a cheap handle (clones share
/// one pool).
///
/// See the [crate docs](crate) for an example and the rules it follows.
pub struct Pool<M: Manager, C: Clock = CoarseClock> {
    pub(crate) inner: Arc<Inner<M, C>>,
}

impl<M: Manager, C: Clock> fmt::Debug for Pool<M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl<M: Manager, C: Clock> Clone for Pool<M, C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// A snapshot of a pool's counts, each read at a slightly different moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The most objects it may hold now.
    pub max_size: u32,
    /// Objects that exist or are being made for a caller (not those the
    /// upkeep task is making).
    pub size: u32,
    /// Objects idle in the pool.
    pub idle: u32,
    /// Objects checked out (or being made or checked for a caller).
    pub in_use: u32,
    /// Callers waiting for a place in the pool (not those that have one
    /// and wait for an object being made or checked for them).
    pub waiters: usize,
}

pub(crate) struct Inner<M: Manager, C> {
    pub(crate) manager: M,
    pub(crate) config: PoolConfig,
    pub(crate) clock: C,
    pub(crate) gate: Gate,
    pub(crate) slots: Slots<Entry<M::Object>>,
    /// Objects that exist or are being made.
    pub(crate) live: AtomicU32,
    pub(crate) max_size: AtomicU32,
    pub(crate) closed: AtomicBool,
    pub(crate) observer: Observer,
    failing: Mutex<Failing<M::Error>>,
    /// While creating fails, one caller at a time tries again.
    probe: Semaphore,
    /// Wakes the upkeep task early: an object was discarded, the pool
    /// closed, or this was dropped. The task holds it, not the pool.
    pub(crate) upkeep: Arc<Notify>,
    /// Wakes `close` when the last object is gone.
    gone: Notify,
    /// Wakes the makers when the pool closes: they stop.
    closing: Notify,
    /// Callers waiting for an object being made for them, oldest first:
    /// an object that comes back meanwhile is offered to them, with the
    /// place it frees (see `pass_place`).
    offers: Mutex<VecDeque<tokio::sync::oneshot::Sender<()>>>,
    /// How many are in `offers`, read without the lock at every return.
    offered: AtomicUsize,
}

impl<M: Manager, C> Drop for Inner<M, C> {
    fn drop(&mut self) {
        // Both tasks see the pool gone and end.
        self.upkeep.notify_one();
        self.gate.timer().notify_one();
    }
}

struct Failing<E> {
    /// Failures in a row (0: creating works).
    count: u32,
    /// When the next try may start.
    retry_at: Instant,
    /// The last failure, and when it happened.
    last: Option<(Instant, Arc<CreateError<E>>)>,
}

/// The longest pause between failed creations.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// The pause after `failures` failed creations in a row: 10 ms doubling to
/// at most [`MAX_PAUSE`], less a random share of up to half.
fn backoff(failures: u32) -> Duration {
    let full = Duration::from_millis(10).saturating_mul(1 << (failures.clamp(1, 9) - 1));
    let full = full.min(MAX_PAUSE);
    let seed = u64::from(failures).wrapping_mul(0x9E37_79B9);
    full.saturating_sub(Duration::from_nanos(seawall_core::random::up_to(
        nanos(full) / 2,
        seed,
    )))
}

/// `wait` after `from`, or a far future when that does not fit (a wait of
/// `Duration::MAX` means for ever).
pub(crate) fn after(from: Instant, wait: Duration) -> Instant {
    from.checked_add(wait)
        .unwrap_or_else(|| from + Duration::from_secs(60 * 60 * 24 * 365 * 30))
}

pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl<M: Manager> Pool<M> {
    /// Starts a pool on the [`CoarseClock`] (objects' ages need no more
    /// than milliseconds).
    ///
    /// With `fail_fast` (the default) it makes one object first and fails
    /// if it cannot; the rest of `min_idle` is made in the background by
    /// the pool's upkeep task, which also retires idle and old objects and
    /// runs keepalive checks.
    ///
    /// # Errors
    /// [`PoolError::Create`] when `fail_fast` is set and the first object
    /// cannot be made.
    ///
    /// The pool's two tasks (upkeep, and the timer that ends waits at
    /// `acquire_timeout`) run on the tokio runtime it is started in: use
    /// the pool while that runtime runs.
    ///
    /// # Panics
    /// Outside a tokio runtime (the upkeep task needs one).
    pub async fn new(manager: M, config: PoolConfig) -> Result<Self, PoolError<M::Error>> {
        Self::with_clock(manager, config, CoarseClock::new()).await
    }
}

impl<M: Manager, C: Clock> Pool<M, C> {
    /// Starts a pool that reads `clock` for objects' ages (a
    /// `seawall_core::TokioClock` in tests with paused time).
    ///
    /// # Errors
    /// As [`Pool::new`].
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn with_clock(
        manager: M,
        config: PoolConfig,
        clock: C,
    ) -> Result<Self, PoolError<M::Error>> {
        let inner = Arc::new(Inner {
            gate: Gate::new(config.max_size),
            slots: Slots::new(config.max_size),
            live: AtomicU32::new(0),
            max_size: AtomicU32::new(config.max_size),
            closed: AtomicBool::new(false),
            observer: Observer::new(&config.name),
            failing: Mutex::new(Failing {
                count: 0,
                retry_at: Instant::now(),
                last: None,
            }),
            probe: Semaphore::new(1),
            upkeep: Arc::new(Notify::new()),
            gone: Notify::new(),
            closing: Notify::new(),
            offers: Mutex::new(VecDeque::new()),
            offered: AtomicUsize::new(0),
            manager,
            config,
            clock,
        });
        if inner.config.fail_fast {
            let first = inner.create_once().await;
            match first {
                Ok(entry) => {
                    inner.park_new(entry);
                }
                Err(error) => return Err(PoolError::Create(error)),
            }
        }
        tokio::spawn(crate::upkeep::run(
            Arc::downgrade(&inner),
            Arc::clone(&inner.upkeep),
        ));
        tokio::spawn(crate::upkeep::expire_waits(
            Arc::downgrade(&inner),
            inner.gate.timer(),
        ));
        Ok(Self { inner })
    }

    /// Checks out an object, waiting up to `acquire_timeout`: the last
    /// returned idle one (checked first if `test_on_checkout` says so), else
    /// a new one if the pool has room, else the next one returned, in the
    /// order callers came.
    ///
    /// # Errors
    /// [`PoolError::Timeout`] after `acquire_timeout` (with the last
    /// creation failure, if creating failed meanwhile), or
    /// [`PoolError::Closed`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a dropped `get` holds no place and leaves no object
    /// behind. An object it was checking when dropped is discarded (its
    /// state is unknown); an object being made for it is still made, and
    /// joins the pool, once an attempt has started.
    #[track_caller]
    pub fn get(
        &self,
    ) -> impl Future<Output = Result<Object<'_, M, C>, PoolError<M::Error>>> + Send {
        let caller = Location::caller();
        async move {
            let (slot, entry) = self.inner.checkout(caller).await?;
            Ok(Object::new(&self.inner, slot, entry))
        }
    }

    /// [`get`](Self::get) for an object that holds the pool itself, so it
    /// can move into a spawned task.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    ///
    /// # Cancel safety
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_owned(
        &self,
    ) -> impl Future<Output = Result<OwnedObject<M, C>, PoolError<M::Error>>> + Send + '_ {
        let caller = Location::caller();
        async move {
            let (slot, entry) = self.inner.checkout(caller).await?;
            Ok(OwnedObject::new(Arc::clone(&self.inner), slot, entry))
        }
    }

    /// The counts now.
    pub fn status(&self) -> Status {
        let size = self.inner.live.load(Ordering::Relaxed);
        let idle = u32::try_from(self.inner.slots.parked()).unwrap_or(u32::MAX);
        let (_, waiters) = self.inner.gate.counts();
        Status {
            max_size: self.inner.max_size.load(Ordering::Relaxed),
            size,
            idle,
            in_use: size.saturating_sub(idle),
            waiters,
        }
    }

    /// The pool's settings (`max_size` as it was built; see
    /// [`status`](Self::status) after a resize).
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.inner.manager
    }

    /// Changes the most objects the pool holds. Growing serves waiters
    /// first; shrinking retires idle objects now and checked-out ones as
    /// they come back, until the pool fits. `min_idle` stays as set, up to
    /// the new size (or follows it, if it was unset). Zero is taken as 1.
    pub fn resize(&self, max_size: u32) {
        let max_size = max_size.max(1);
        // SeqCst: paired with `park_new` (see there).
        let old = self.inner.max_size.swap(max_size, Ordering::SeqCst);
        self.inner.gate.resize(i64::from(max_size) - i64::from(old));
        while self.inner.live.load(Ordering::SeqCst) > max_size {
            let Some((slot, entry)) = self.inner.slots.unpark() else {
                break;
            };
            self.inner.discard(slot, entry, Discard::Shrunk);
        }
        self.inner.upkeep.notify_one();
    }

    /// Closes the pool: callers waiting and calling later get
    /// [`PoolError::Closed`], idle objects are dropped now, and checked-out
    /// ones when they come back. Waits up to `wait` for those; says whether
    /// every object was gone in time.
    pub async fn close(&self, wait: Duration) -> bool {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        inner.gate.close();
        inner.closing.notify_waiters();
        inner.drain();
        inner.upkeep.notify_one();
        let all_gone = async {
            loop {
                let gone = inner.gone.notified();
                if inner.live.load(Ordering::SeqCst) == 0 {
                    return;
                }
                gone.await;
            }
        };
        tokio::time::timeout(wait, all_gone).await.is_ok()
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Relaxed)
    }
}

/// A place taken from the gate, given back when dropped.
pub(crate) struct Place<'a, M: Manager, C: Clock> {
    pub(crate) inner: &'a Inner<M, C>,
}

impl<M: Manager, C: Clock> Place<'_, M, C> {
    /// The place stays taken: an object (or another guard) now holds it.
    pub(crate) fn keep(self) {
        std::mem::forget(self);
    }
}

/// What an idle object needs before it is handed out.
enum Vet {
    Ready,
    Check,
    Discard(Discard),
}

impl<M: Manager, C: Clock> Drop for Place<'_, M, C> {
    fn drop(&mut self) {
        self.inner.gate.give();
    }
}

/// An object being checked: discarded when dropped before it is handed
/// out.
struct Pending<'a, M: Manager, C: Clock> {
    inner: &'a Inner<M, C>,
    slot: u32,
    entry: Option<Entry<M::Object>>,
}

/// A caller's turn to be offered a place with an object that came back
/// while its own object is being made. Dropped with a place offered and
/// not taken, it passes the place on.
struct Offer<'a, M: Manager, C: Clock> {
    inner: &'a Inner<M, C>,
    handed: tokio::sync::oneshot::Receiver<()>,
    /// The offer was taken, or can no longer come: the receiver is done.
    done: bool,
}

impl<'a, M: Manager, C: Clock> Offer<'a, M, C> {
    fn new(inner: &'a Inner<M, C>) -> Self {
        let (offer, handed) = tokio::sync::oneshot::channel();
        let mut offers = inner.offers.lock();
        // The turns of callers gone (served by their maker, timed out,
        // cancelled) go here, if no return took them out before: the line
        // holds only callers still waiting, and each of them once.
        offers.retain(|offer| !offer.is_closed());
        offers.push_back(offer);
        inner.offered.store(offers.len(), Ordering::SeqCst);
        drop(offers);
        Self {
            inner,
            handed,
            done: false,
        }
    }

    /// Ready once a place is offered: the caller holds it from then on.
    fn poll_taken(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Pending;
        }
        match Pin::new(&mut self.handed).poll(cx) {
            Poll::Ready(taken) => {
                self.done = true;
                // A closed offer (never sent) leaves the caller waiting for
                // its maker.
                if taken.is_ok() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<M: Manager, C: Clock> Drop for Offer<'_, M, C> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Closed first: no place can be sent after this look.
        self.handed.close();
        if self.handed.try_recv().is_ok() {
            self.inner.pass_place();
        }
    }
}

/// The task that makes an object in a caller's place, and hands it over
/// while the caller waits. Dropped without delivering (the caller gone
/// with no object made, the pool closed, the manager panicked), it frees
/// the slot and gives the place back.
struct Making<M: Manager, C: Clock> {
    inner: Arc<Inner<M, C>>,
    slot: u32,
    made: Option<tokio::sync::oneshot::Sender<Delivery<M, C>>>,
}

/// A made object on its way to the caller. Dropped undelivered (the caller
/// went away after it was sent), the object joins the pool and its place
/// goes to the next caller.
struct Delivery<M: Manager, C: Clock> {
    inner: Arc<Inner<M, C>>,
    slot: u32,
    entry: Option<Entry<M::Object>>,
}

impl<M: Manager, C: Clock> Drop for Delivery<M, C> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.inner.give_back(self.slot, entry);
        }
    }
}

impl<M: Manager, C: Clock> Making<M, C> {
    /// [`make`](Self::make), stopped by a close whatever it is doing (a
    /// try, a pause, a wait for its turn): dropped, the maker gives its
    /// place back, and its caller hears that the pool closed.
    async fn run(mut self) {
        let inner = Arc::clone(&self.inner);
        inner.unless_closed(self.make()).await;
    }

    /// Tries, pausing between failures (and one caller at a time while
    /// they fail), each try with the whole `create_timeout`, for as long as
    /// the caller waits.
    async fn make(&mut self) {
        let inner = Arc::clone(&self.inner);
        loop {
            let Some(made) = self.made.as_mut().filter(|made| !made.is_closed()) else {
                return;
            };
            if inner.closed.load(Ordering::Relaxed) {
                return;
            }
            let failing = inner.failing.lock().count > 0;
            let probe = if failing {
                match inner.probe.acquire().await {
                    Ok(probe) => Some(probe),
                    Err(_) => return,
                }
            } else {
                None
            };
            let retry_at = {
                let failing = inner.failing.lock();
                (failing.count > 0).then_some(failing.retry_at)
            };
            if let Some(retry_at) = retry_at
                && tokio::time::timeout_at(retry_at, made.closed())
                    .await
                    .is_ok()
            {
                return; // the caller went away during the pause
            }
            let attempt = inner.create_once().await;
            drop(probe);
            if let Ok(entry) = attempt {
                let delivery = Delivery {
                    inner: Arc::clone(&inner),
                    slot: self.slot,
                    entry: Some(entry),
                };
                if let Some(made) = self.made.take() {
                    // Undelivered, `delivery` gives the object to the pool.
                    let _ = made.send(delivery);
                }
                return;
            }
        }
    }
}

impl<M: Manager, C: Clock> Drop for Making<M, C> {
    fn drop(&mut self) {
        if self.made.is_some() {
            self.inner.forget_slot(self.slot);
            self.inner.gate.give();
        }
    }
}

impl<M: Manager, C: Clock> Drop for Pending<'_, M, C> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.inner.discard(self.slot, entry, Discard::FailedCheck);
        }
    }
}

impl<M: Manager, C: Clock> Inner<M, C> {
    /// A place, then an object for it: see [`Pool::get`].
    async fn checkout(
        self: &Arc<Self>,
        caller: &'static Location<'static>,
    ) -> Result<(u32, Entry<M::Object>), PoolError<M::Error>> {
        #[cfg(feature = "metrics")]
        let asked_at = self.clock.now_nanos();
        let (slot, entry) = self.find().await?;
        #[cfg(feature = "metrics")]
        self.observer.waited(std::time::Duration::from_nanos(
            self.clock.now_nanos().saturating_sub(asked_at),
        ));
        self.lend(slot, caller);
        Ok((slot, entry))
    }

    /// Records the wait of a `PoolService` request that began at `since`
    /// and has its object now.
    #[cfg(feature = "tower")]
    #[cfg_attr(not(feature = "metrics"), allow(clippy::unused_self, unused_variables))]
    pub(crate) fn waited_since(&self, since: Instant) {
        #[cfg(feature = "metrics")]
        self.observer.waited(since.elapsed());
    }

    /// Leak detection: records who took the object in `slot`.
    pub(crate) fn lend(&self, slot: u32, caller: &'static Location<'static>) {
        if self.config.leak_detection_threshold.is_some() {
            let since = self.clock.now_nanos();
            let lent = Lent {
                since,
                at: caller,
                reported: false,
            };
            self.slots.lend(slot, lent);
        }
    }

    /// An idle object that passes, else a new one, in a place waited for.
    async fn find(self: &Arc<Self>) -> Result<(u32, Entry<M::Object>), PoolError<M::Error>> {
        let mut deadline = None;
        if !self.gate.try_take() {
            let started = Instant::now();
            let until = after(started, self.config.acquire_timeout);
            deadline = Some(until);
            match self.gate.take(until).await {
                Ok(()) => {}
                Err(Denied::Shut) => return Err(PoolError::Closed),
                Err(Denied::TimedOut) => return Err(self.timed_out(started)),
            }
        }
        self.fill_place(Place { inner: self }, deadline).await
    }

    /// With a place taken: the last returned idle object that passes, else
    /// a new one, before `deadline` (`acquire_timeout` from now if `None`).
    pub(crate) async fn fill_place(
        self: &Arc<Self>,
        mut place: Place<'_, M, C>,
        mut deadline: Option<Instant>,
    ) -> Result<(u32, Entry<M::Object>), PoolError<M::Error>> {
        let mut deadline =
            || *deadline.get_or_insert_with(|| after(Instant::now(), self.config.acquire_timeout));
        loop {
            while let Some((slot, mut entry)) = self.slots.unpark() {
                if self.closed.load(Ordering::Relaxed) {
                    self.discard(slot, entry, Discard::Shrunk);
                    return Err(PoolError::Closed);
                }
                match self.vet(&mut entry) {
                    Vet::Discard(why) => {
                        self.discard(slot, entry, why);
                        continue;
                    }
                    Vet::Ready => {
                        place.keep();
                        return Ok((slot, entry));
                    }
                    Vet::Check => {}
                }
                let mut pending = Pending {
                    inner: self,
                    slot,
                    entry: Some(entry),
                };
                let until = deadline();
                let Some(checking) = pending.entry.as_mut() else {
                    continue;
                };
                // Boxed (making one below runs in a task): the I/O dwarfs the
                // allocation, and the future of every `get` stays small. A
                // check gets `create_timeout` at most, as keepalive checks do:
                // one that hangs (a network black hole) fails, and the caller
                // goes on to another object.
                let check_until = until.min(after(Instant::now(), self.config.create_timeout));
                match Box::pin(self.check(&mut checking.object, check_until)).await {
                    // The pool closed during the check: the object goes, and
                    // the caller gets `Closed`, as one waiting for a maker does.
                    Some(true) if self.closed.load(Ordering::SeqCst) => {
                        if let Some(entry) = pending.entry.take() {
                            self.discard(slot, entry, Discard::Shrunk);
                        }
                        return Err(PoolError::Closed);
                    }
                    Some(true) => {
                        checking.seen_at = self.clock.now_nanos();
                        if let Some(entry) = pending.entry.take() {
                            place.keep();
                            return Ok((slot, entry));
                        }
                    }
                    // The object failed its check (or the check panicked, or
                    // hung past `create_timeout`): `pending` discards it.
                    Some(false) => {}
                    None if check_until < until => {}
                    None => return Err(self.timed_out_at(until)),
                }
            }
            // No idle object: one is made in this place, by a task of its own,
            // so that making it is not cut short by this caller's deadline or
            // cancellation (a connection handshake may need longer than a
            // queued caller has left). If the caller is gone when it is made,
            // it joins the pool and the place goes to the next caller.
            let until = deadline();
            let Some(slot) = self.slots.claim() else {
                return Err(self.timed_out_at(until));
            };
            self.live.fetch_add(1, Ordering::Relaxed);
            place.keep();
            let (made, mut wait) = tokio::sync::oneshot::channel();
            let maker = Making {
                inner: Arc::clone(self),
                slot,
                made: Some(made),
            };
            tokio::spawn(maker.run());
            // Meanwhile an object that comes back is offered here first, with
            // the place it frees.
            let mut offer = Offer::new(self);
            let waited = tokio::time::timeout_at(
                until,
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(made) = Pin::new(&mut wait).poll(cx) {
                        return Poll::Ready(Some(made));
                    }
                    offer.poll_taken(cx).map(|()| None)
                }),
            )
            .await;
            let delivered = match waited {
                Ok(Some(delivered)) => delivered,
                // Offered a place with an object back in the pool: this caller
                // takes it from there, and its maker, with the caller gone,
                // stops and gives its own place back (or, done already, gives
                // its object to the pool).
                Ok(None) => {
                    drop(wait);
                    place = Place { inner: self };
                    continue;
                }
                Err(_) => return Err(self.timed_out_at(until)),
            };
            return match delivered {
                Ok(mut delivery) => match delivery.entry.take() {
                    Some(entry) if self.closed.load(Ordering::Relaxed) => {
                        self.discard(slot, entry, Discard::Shrunk);
                        self.gate.give();
                        Err(PoolError::Closed)
                    }
                    Some(entry) => Ok((slot, entry)),
                    // A delivery always holds its object.
                    None => Err(self.timed_out_at(until)),
                },
                // The maker stopped without an object (the pool closed, or the
                // manager panicked); it gave the place back.
                Err(_) if self.closed.load(Ordering::Relaxed) => Err(PoolError::Closed),
                Err(_) => Err(self.timed_out_at(until)),
            };
        }
    }

    /// Frees the place of an object just put back in the pool: to the
    /// oldest caller waiting for an object being made, who takes this one
    /// instead, or else to the line at the gate.
    pub(crate) fn pass_place(&self) {
        // A hint read without the lock (the lock decides who gets the
        // place): a caller that joined the line before this object was
        // parked is seen. One whose last look at the idle objects came
        // before the park and whose turn in line after it misses this
        // object, and waits for its maker as it did before there were
        // offers.
        if self.offered.load(Ordering::SeqCst) > 0 {
            let mut offers = self.offers.lock();
            while let Some(offer) = offers.pop_front() {
                self.offered.store(offers.len(), Ordering::SeqCst);
                if offer.send(()).is_ok() {
                    return;
                }
            }
        }
        self.gate.give();
    }

    /// With a place taken: the last returned idle object if it can be
    /// handed out without a check (discarding any that are broken or too
    /// old on the way); `None` if a check or a creation is needed.
    #[cfg(feature = "tower")]
    pub(crate) fn try_idle(&self) -> Option<(u32, Entry<M::Object>)> {
        while let Some((slot, mut entry)) = self.slots.unpark() {
            match self.vet(&mut entry) {
                Vet::Discard(why) => self.discard(slot, entry, why),
                Vet::Ready => return Some((slot, entry)),
                Vet::Check => {
                    // Back on top, as it was, for a checkout that checks it.
                    self.repark(slot, entry);
                    return None;
                }
            }
        }
        None
    }

    /// What to do with an idle object about to be handed out.
    fn vet(&self, entry: &mut Entry<M::Object>) -> Vet {
        let now = self.clock.now_nanos();
        if now >= entry.retire_at {
            Vet::Discard(Discard::Expired)
        } else if self.is_broken(&mut entry.object) {
            Vet::Discard(Discard::Broken)
        } else if self.needs_check(entry, now) {
            Vet::Check
        } else {
            Vet::Ready
        }
    }

    /// `min_idle`, up to the current `max_size`: the idle objects the pool
    /// keeps ready.
    pub(crate) fn min_idle(&self) -> u32 {
        let max_size = self.max_size.load(Ordering::Relaxed);
        self.config
            .min_idle
            .map_or(max_size, |min| min.min(max_size))
    }

    /// Whether making an object may start now: not within a pause after a
    /// failure.
    pub(crate) fn may_create_now(&self) -> bool {
        let failing = self.failing.lock();
        failing.count == 0 || Instant::now() >= failing.retry_at
    }

    fn needs_check(&self, entry: &Entry<M::Object>, now: u64) -> bool {
        match self.config.test_on_checkout {
            CheckoutTest::Always => true,
            CheckoutTest::IdleLongerThan(idle) => now.saturating_sub(entry.seen_at) > nanos(idle),
            CheckoutTest::Never => false,
        }
    }

    pub(crate) fn timed_out(&self, started: Instant) -> PoolError<M::Error> {
        let waited = started.elapsed();
        self.observer.timed_out(waited);
        // A failure says why the wait timed out if creating was failing
        // during it: the failure came in the wait, or so shortly before
        // that the pause after it, or the next try (up to
        // `create_timeout`), spans the wait's start. An older one is not
        // the cause (the pool was simply full).
        let recent = self.config.create_timeout.saturating_add(MAX_PAUSE);
        let last_create_error = self
            .failing
            .lock()
            .last
            .as_ref()
            .filter(|(at, _)| at.checked_add(recent).is_none_or(|until| until >= started))
            .map(|(_, error)| Arc::clone(error));
        PoolError::Timeout {
            waited,
            last_create_error,
        }
    }

    fn timed_out_at(&self, deadline: Instant) -> PoolError<M::Error> {
        self.timed_out(
            deadline
                .checked_sub(self.config.acquire_timeout)
                .unwrap_or(deadline),
        )
    }

    /// One try at making an object within `create_timeout`; a failure is
    /// kept as the last one, and the next try waits a growing pause.
    pub(crate) async fn create_once(&self) -> Result<Entry<M::Object>, Arc<CreateError<M::Error>>> {
        let budget = self.config.create_timeout;
        let made = tokio::time::timeout(budget, unwound(async { self.manager.create().await }));
        let made = match made.await {
            Ok(Ok(made)) => made.map_err(CreateError::Failed),
            Ok(Err(message)) => Err(CreateError::Panicked(message)),
            Err(_) => Err(CreateError::TimedOut(budget)),
        };
        let mut failing = self.failing.lock();
        let error = match made {
            Ok(object) => {
                failing.count = 0;
                failing.last = None;
                drop(failing);
                self.observer.created();
                return Ok(self.entry(object));
            }
            Err(error) => Arc::new(error),
        };
        failing.count = failing.count.saturating_add(1);
        failing.retry_at = Instant::now() + backoff(failing.count);
        failing.last = Some((Instant::now(), Arc::clone(&error)));
        let failures = failing.count;
        drop(failing);
        self.observer.create_failed(&*error, failures);
        Err(error)
    }

    fn entry(&self, object: M::Object) -> Entry<M::Object> {
        let now = self.clock.now_nanos();
        let retire_at = match self.config.max_lifetime {
            Some(lifetime) => {
                let lifetime = nanos(lifetime);
                now.saturating_add(lifetime - seawall_core::random::up_to(lifetime / 40, now))
            }
            None => u64::MAX,
        };
        Entry {
            object,
            retire_at,
            seen_at: now,
            idle_since: now,
        }
    }

    /// Counts a new object made outside a checkout and parks it, unless
    /// the pool shrank below it while it was made; says whether it did.
    pub(crate) fn park_new(&self, entry: Entry<M::Object>) -> bool {
        match self.slots.claim() {
            Some(slot) => {
                // SeqCst, as `resize` is: either it sees this object counted
                // (and retires an idle one), or this sees the new size.
                let live = self.live.fetch_add(1, Ordering::SeqCst) + 1;
                if live > self.max_size.load(Ordering::SeqCst) {
                    self.discard(slot, entry, Discard::Shrunk);
                    return false;
                }
                // Just made: its times are already now.
                self.repark(slot, entry);
                true
            }
            None => {
                drop_object(entry);
                false
            }
        }
    }

    /// Puts an idle object back as it is. If the pool closed meanwhile,
    /// drops the idle objects: `close` drained them before this one came.
    pub(crate) fn repark(&self, slot: u32, entry: Entry<M::Object>) {
        self.slots.park(slot, entry);
        // SeqCst, as the push was, paired with `close` (a SeqCst store and
        // fence before it drains): either it sees this object on the
        // stack, or this sees `closed`.
        if self.closed.load(Ordering::SeqCst) {
            self.drain();
        }
    }

    /// Drops every idle object.
    pub(crate) fn drain(&self) {
        while let Some((slot, entry)) = self.slots.unpark() {
            self.discard(slot, entry, Discard::Shrunk);
        }
    }

    /// A checked-out object comes back: idle again, or discarded if it is
    /// broken, too old, in a pool that shrank or closed, or returned while
    /// its user panicked. Then its place goes to the next caller.
    pub(crate) fn give_back(&self, slot: u32, mut entry: Entry<M::Object>) {
        self.returned(slot);
        let now = self.clock.now_nanos();
        let discard = if std::thread::panicking() {
            Some(Discard::Panicked)
        } else if self.closed.load(Ordering::Relaxed)
            || self.live.load(Ordering::Relaxed) > self.max_size.load(Ordering::Relaxed)
        {
            Some(Discard::Shrunk)
        } else if now >= entry.retire_at {
            Some(Discard::Expired)
        } else if self.is_broken(&mut entry.object) || !self.recycled(&mut entry.object) {
            Some(Discard::Broken)
        } else {
            None
        };
        match discard {
            None => {
                self.observer.recycled();
                entry.idle_since = now;
                entry.seen_at = now;
                self.repark(slot, entry);
                self.pass_place();
            }
            Some(why) => {
                self.discard(slot, entry, why);
                self.gate.give();
            }
        }
    }

    /// [`Manager::is_broken`], a panic in it read as broken.
    fn is_broken(&self, object: &mut M::Object) -> bool {
        caught(|| self.manager.is_broken(object)).unwrap_or(true)
    }

    /// Whether [`Manager::recycle`] made the object fit for reuse: not if it
    /// failed or panicked.
    fn recycled(&self, object: &mut M::Object) -> bool {
        caught(|| self.manager.recycle(object).is_ok()).unwrap_or(false)
    }

    /// One [`Manager::check`] of `object` until `until`: whether it passed
    /// (a failed or panicking check did not); `None` if it had not answered
    /// by then.
    pub(crate) async fn check(&self, object: &mut M::Object, until: Instant) -> Option<bool> {
        let checked = unwound(async { self.manager.check(object).await });
        let checked = tokio::time::timeout_at(until, checked).await.ok()?;
        Some(matches!(checked, Ok(Ok(()))))
    }

    /// Runs `work` until it ends or the pool closes, whichever is first:
    /// `None` if the pool closed (and `work` was dropped).
    pub(crate) async fn unless_closed<F: Future>(&self, work: F) -> Option<F::Output> {
        let closed = async {
            loop {
                // Registered before the flag is read: a close in between
                // still wakes it.
                let closing = self.closing.notified();
                if self.closed.load(Ordering::SeqCst) {
                    return;
                }
                closing.await;
            }
        };
        let mut closed = std::pin::pin!(closed);
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(done) = work.as_mut().poll(cx) {
                Poll::Ready(Some(done))
            } else if closed.as_mut().poll(cx).is_ready() {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// A checked-out object leaves the pool for good.
    pub(crate) fn detach(&self, slot: u32) {
        self.returned(slot);
        self.forget_slot(slot);
        self.gate.give();
    }

    /// Leak detection: the second message, for an object reported as
    /// maybe leaked.
    fn returned(&self, slot: u32) {
        if self.config.leak_detection_threshold.is_none() {
            return;
        }
        if let Some(lent) = self.slots.unlend(slot).filter(|lent| lent.reported) {
            let held = self.clock.now_nanos().saturating_sub(lent.since);
            self.observer.came_back(Duration::from_nanos(held), lent.at);
        }
    }

    /// Drops an object and frees its slot.
    pub(crate) fn discard(&self, slot: u32, entry: Entry<M::Object>, why: Discard) {
        self.observer.discarded(why);
        self.forget_slot(slot);
        drop_object(entry);
    }

    fn forget_slot(&self, slot: u32) {
        self.slots.release(slot);
        let left = self.live.fetch_sub(1, Ordering::SeqCst) - 1;
        if left == 0 && self.closed.load(Ordering::SeqCst) {
            self.gone.notify_waiters();
        }
        self.upkeep.notify_one();
    }
}

/// Runs a manager's future, a panic in it (a bug in the manager) read as
/// `Err` with the panic's message, so that it costs the pool the object at
/// hand and nothing else: no place, no slot, no upkeep task.
pub(crate) async fn unwound<F: Future>(future: F) -> Result<F::Output, String> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(polled) => polled.map(Ok),
            Err(payload) => Poll::Ready(Err(message(payload))),
        },
    )
    .await
}

/// Drops an object; a panic in its `Drop` (user code) is caught, so that
/// the caller, who may hold a place to give back or be the upkeep task,
/// goes on. (Not when the thread is already unwinding, an object returned
/// by a user that panicked: a second panic then aborts, as anywhere.)
fn drop_object<T>(entry: Entry<T>) {
    if caught(|| drop(entry)).is_none() {
        #[cfg(feature = "tracing")]
        tracing::error!(target: "seawall::pool", "an object's Drop panicked");
    }
}

/// `call()`, or `None` if it panicked (a bug in the manager).
fn caught<T>(call: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(call)).map_err(forget).ok()
}

/// A panic's message, from a `&str` or `String` payload.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    seawall_core::panic::message(payload).map_or_else(
        |other| {
            forget(other);
            "a panic whose payload is not a string".to_owned()
        },
        std::borrow::Cow::into_owned,
    )
}

/// Forgets a panic's payload instead of dropping it: its `Drop` could panic
/// in turn.
fn forget(payload: Box<dyn std::any::Any + Send>) {
    std::mem::forget(payload);
}
