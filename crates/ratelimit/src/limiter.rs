//! [`RateLimiter`]: one GCRA state for one resource.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use seawall_core::{Clock, MonotonicClock};

use crate::error::{InsufficientCapacity, RateLimitError, RateLimited};
use crate::gcra;
use crate::loom::{AtomicU64, Ordering};
use crate::quota::Quota;
use crate::reservation::Reservation;
use crate::state::{LimitState, burst_of};

/// A rate limiter for one resource: "at most R per second, bursts up to B".
///
/// It is a handle: clones share one state, so a clone can go to every task,
/// connection or tower layer that must count against the same quota. The
/// state is one atomic word (see the crate docs for the algorithm); a check
/// takes no lock and allocates nothing.
///
/// | Go `x/time/rate` | seawall |
/// |---|---|
/// | `Allow()` / `AllowN(now, n)` | [`check`](Self::check) / [`check_n`](Self::check_n) |
/// | `Wait(ctx)` / `WaitN(ctx, n)` | [`acquire`](Self::acquire) / [`acquire_n`](Self::acquire_n) |
/// | `Reserve()` / `ReserveN(now, n)` | [`reserve`](Self::reserve) / [`reserve_n`](Self::reserve_n) |
/// | `SetLimit` / `SetBurst` | [`set_quota`](Self::set_quota) |
/// | `Limit()` / `Burst()` | [`quota`](Self::quota) |
/// | `Tokens()` | [`tokens`](Self::tokens) |
///
/// # Examples
///
/// ```
/// use seawall_ratelimit::{Quota, RateLimiter};
///
/// let limiter = RateLimiter::new(Quota::per_second(10).burst(2).build()?);
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_ok());
/// let refused = limiter.check().unwrap_err();
/// assert!(refused.retry_after().as_millis() <= 100);
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
pub struct RateLimiter<C = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    /// Theoretical arrival time, nanoseconds on `clock`. On a cache line of
    /// its own: it is written by every check, and the fields below are only
    /// read, so sharing a line would make every write on one core evict
    /// them from the others.
    tat: CacheLine<AtomicU64>,
    /// Nanoseconds per token.
    interval: AtomicU64,
    /// `burst * interval`.
    tau: AtomicU64,
    clock: C,
    /// Upper bound of the random delay added to each wait, in nanoseconds.
    jitter: u64,
    /// Serializes `set_quota` calls (checks never take it).
    set_quota: Mutex<()>,
}

impl RateLimiter<MonotonicClock> {
    /// A limiter for `quota` on the production clock.
    #[must_use]
    pub fn new(quota: Quota) -> Self {
        Self::builder(quota).build()
    }

    /// A builder, to set the clock or the jitter.
    pub fn builder(quota: Quota) -> RateLimiterBuilder<MonotonicClock> {
        RateLimiterBuilder {
            quota,
            clock: MonotonicClock::new(),
            jitter: Duration::ZERO,
        }
    }
}

impl<C: Clock> RateLimiter<C> {
    /// Admits one request now, or says how long until it would pass.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] with the wait, when the burst is used up. The
    /// refusal takes nothing from the limiter.
    #[inline]
    pub fn check(&self) -> Result<(), RateLimited> {
        let inner = &*self.inner;
        let interval = inner.interval.load(Ordering::Relaxed);
        let tau = inner.tau.load(Ordering::Relaxed);
        match gcra::check(&inner.tat, || inner.clock.now_nanos(), interval, tau) {
            Ok(_) => Ok(()),
            Err((ready_at, now)) => Err(RateLimited::new(now, ready_at)),
        }
    }

    /// Like [`check`](Self::check), and on success also returns the state
    /// after it: what HTTP's `RateLimit` header reports.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub fn check_with_state(&self) -> Result<LimitState, RateLimited> {
        match self.check_detailed(true) {
            Ok(state) => Ok(state.unwrap_or_else(|| unreachable!("state was asked for"))),
            Err((refused, _)) => Err(refused),
        }
    }

    /// The services' check: the state only when asked for, and the quota
    /// with a refusal.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn check_detailed(
        &self,
        want_state: bool,
    ) -> Result<Option<LimitState>, (RateLimited, Quota)> {
        let inner = &*self.inner;
        let interval = inner.interval.load(Ordering::Relaxed);
        let tau = inner.tau.load(Ordering::Relaxed);
        match gcra::check(&inner.tat, || inner.clock.now_nanos(), interval, tau) {
            Ok((tat, now)) => Ok(want_state.then(|| LimitState::new(tat, now, interval, tau))),
            Err((ready_at, now)) => Err((
                RateLimited::new(now, ready_at),
                Quota::from_parts(interval, burst_of(interval, tau)),
            )),
        }
    }

    /// Admits `n` requests at once, or none.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::RateLimited`] when not all `n` fit now, and
    /// [`RateLimitError::InsufficientCapacity`] when `n` is more than the
    /// burst, which no wait would fix.
    pub fn check_n(&self, n: u32) -> Result<(), RateLimitError> {
        let inner = &*self.inner;
        let (cost, tau) = self.cost_of(n)?;
        match gcra::check(&inner.tat, || inner.clock.now_nanos(), cost, tau) {
            Ok(_) => Ok(()),
            Err((ready_at, now)) => Err(RateLimited::new(now, ready_at).into()),
        }
    }

    /// Waits until one request is admitted.
    ///
    /// Waiting sleeps with `tokio::time` for as long as the limiter says,
    /// plus the jitter if one is set, and checks again: nothing is held while
    /// it sleeps. Waiters are not served in order; under contention a new
    /// caller may pass before one that waited.
    ///
    /// The clock must move with tokio's time: [`MonotonicClock`] does, and
    /// so does `TokioClock` on paused time. A `ManualClock` that nobody
    /// advances makes this wait forever.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped `acquire` has taken nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), seawall_core::ConfigError> {
    /// use std::time::Duration;
    /// use seawall_core::TokioClock;
    /// use seawall_ratelimit::{Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::builder(Quota::per_second(2).burst(1).build()?)
    ///     .clock(TokioClock::new())
    ///     .build();
    /// let start = tokio::time::Instant::now();
    /// for _ in 0..3 {
    ///     limiter.acquire().await;
    /// }
    /// // The first passes at once, the next two half a second apart.
    /// assert_eq!(start.elapsed(), Duration::from_secs(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(&self) {
        loop {
            match self.check() {
                Ok(()) => return,
                Err(limited) => self.sleep(limited).await,
            }
        }
    }

    /// Waits until `n` requests are admitted at once.
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once when `n` is more than the burst,
    /// instead of waiting forever.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    pub async fn acquire_n(&self, n: u32) -> Result<(), InsufficientCapacity> {
        loop {
            match self.check_n(n) {
                Ok(()) => return Ok(()),
                Err(RateLimitError::RateLimited(limited)) => self.sleep(limited).await,
                Err(RateLimitError::InsufficientCapacity(e)) => return Err(e),
            }
        }
    }

    /// Reserves one request for later: the capacity is taken now, and the
    /// [`Reservation`] says how long to wait before acting on it.
    pub fn reserve(&self) -> Reservation<C> {
        let interval = self.inner.interval.load(Ordering::Relaxed);
        let tau = self.inner.tau.load(Ordering::Relaxed);
        self.reserve_cost(interval, tau)
    }

    /// Reserves `n` requests at once; see [`reserve`](Self::reserve).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] when `n` is more than the burst.
    pub fn reserve_n(&self, n: u32) -> Result<Reservation<C>, InsufficientCapacity> {
        let (cost, tau) = self.cost_of(n)?;
        Ok(self.reserve_cost(cost, tau))
    }

    fn reserve_cost(&self, cost: u64, tau: u64) -> Reservation<C> {
        let now = self.inner.clock.now_nanos();
        let end = gcra::reserve(&self.inner.tat, now, cost);
        Reservation::new(self.clone(), cost, end, end.saturating_sub(tau), now)
    }

    pub(crate) fn give_back(&self, cost: u64, end: u64) {
        gcra::give_back(&self.inner.tat, cost, end);
    }

    /// Replaces the quota, keeping the tokens available now (capped at the
    /// new burst), as Go's `SetLimit` and `SetBurst` do.
    ///
    /// A check that runs at the same moment may still be judged by the old
    /// quota: at most one request's worth of difference.
    pub fn set_quota(&self, quota: Quota) {
        let inner = &*self.inner;
        let _serial = inner.set_quota.lock();
        let old = (
            inner.interval.load(Ordering::Relaxed),
            inner.tau.load(Ordering::Relaxed),
        );
        let new = (quota.interval_nanos(), quota.tau());
        inner.interval.store(new.0, Ordering::Relaxed);
        inner.tau.store(new.1, Ordering::Relaxed);
        let now = inner.clock.now_nanos();
        let _ = inner
            .tat
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                Some(gcra::convert(tat, now, old, new))
            });
    }

    /// The quota in force.
    #[must_use]
    pub fn quota(&self) -> Quota {
        let interval = self.inner.interval.load(Ordering::Relaxed);
        let tau = self.inner.tau.load(Ordering::Relaxed);
        Quota::from_parts(interval, burst_of(interval, tau))
    }

    /// How many requests would pass now, without taking any: the burst when
    /// idle, a fraction while refilling, negative while reservations are
    /// waiting.
    #[must_use]
    pub fn tokens(&self) -> f64 {
        let inner = &*self.inner;
        let now = inner.clock.now_nanos();
        gcra::tokens(
            inner.tat.load(Ordering::Relaxed),
            now,
            inner.interval.load(Ordering::Relaxed),
            inner.tau.load(Ordering::Relaxed),
        )
    }

    /// The clock the limiter reads.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// The cost of `n` requests in nanoseconds, and `tau`; refuses `n` over
    /// the burst.
    fn cost_of(&self, n: u32) -> Result<(u64, u64), InsufficientCapacity> {
        let interval = self.inner.interval.load(Ordering::Relaxed);
        let tau = self.inner.tau.load(Ordering::Relaxed);
        match interval.checked_mul(u64::from(n)) {
            Some(cost) if cost <= tau => Ok((cost, tau)),
            _ => Err(InsufficientCapacity::new(n, burst_of(interval, tau))),
        }
    }

    async fn sleep(&self, limited: RateLimited) {
        tokio::time::sleep(self.wait_time(limited)).await;
    }

    /// How long a waiter sleeps after `limited`: the wait plus jitter.
    pub(crate) fn wait_time(&self, limited: RateLimited) -> Duration {
        let jitter = crate::jitter::up_to(self.inner.jitter, limited.ready_at_nanos());
        limited.retry_after() + Duration::from_nanos(jitter)
    }
}

/// Aligned (and so padded) to 128 bytes: two cache lines, since x86 cores
/// fetch lines in adjacent pairs.
#[repr(align(128))]
struct CacheLine<T>(T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<C> Clone for RateLimiter<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("quota", &self.quota())
            .field("tokens", &self.tokens())
            .finish_non_exhaustive()
    }
}

/// Builds a [`RateLimiter`] with a chosen clock or jitter.
#[derive(Debug)]
#[must_use]
pub struct RateLimiterBuilder<C> {
    quota: Quota,
    clock: C,
    jitter: Duration,
}

impl<C: Clock> RateLimiterBuilder<C> {
    /// The clock to read: `ManualClock` or `TokioClock` in tests.
    pub fn clock<C2: Clock>(self, clock: C2) -> RateLimiterBuilder<C2> {
        RateLimiterBuilder {
            quota: self.quota,
            clock,
            jitter: self.jitter,
        }
    }

    /// Adds a random delay of up to `max` to every wait in
    /// [`acquire`](RateLimiter::acquire), so waiters refused together do not
    /// all come back in the same instant. Off by default.
    pub fn jitter(mut self, max: Duration) -> Self {
        self.jitter = max;
        self
    }

    /// Builds the limiter, full: a whole burst may pass at once.
    pub fn build(self) -> RateLimiter<C> {
        let Self {
            quota,
            clock,
            jitter,
        } = self;
        RateLimiter {
            inner: Arc::new(Inner {
                tat: CacheLine(AtomicU64::new(0)),
                interval: AtomicU64::new(quota.interval_nanos()),
                tau: AtomicU64::new(quota.tau()),
                clock,
                jitter: u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX),
                set_quota: Mutex::new(()),
            }),
        }
    }
}
