//! [`RateLimiter`]: one GCRA state for one resource.

use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use seawall_core::{Clock, MonotonicClock, Shared};

use crate::error::{InsufficientCapacity, RateLimitError, RateLimited};
use crate::gcra::{self, Decision};
use crate::loom::{AtomicU64, Ordering, fence};
use crate::observe::Observer;
use crate::quota::Quota;
use crate::reservation::Reservation;
use crate::state::{LimitState, burst_of, cost_of};

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
pub struct RateLimiter<C: 'static = MonotonicClock> {
    inner: Shared<Inner<C>>,
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
    observer: Observer,
}

impl<C> Inner<C> {
    /// The quota as `(interval, tau)`. Only meaningful with `tat` seen
    /// unfrozen first; `gcra` sees to that.
    #[inline]
    fn load_quota(&self) -> (u64, u64) {
        (
            self.interval.load(Ordering::Relaxed),
            self.tau.load(Ordering::Relaxed),
        )
    }
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
            name: None,
        }
    }
}

impl<C: Clock> RateLimiter<C> {
    /// Keeps the limiter for the rest of the process, so that its clones
    /// (a tower service cloned per request) no longer count references:
    /// see [`Shared`](seawall_core::Shared). For limiters made once at
    /// startup; the memory is never given back.
    #[must_use]
    pub fn leak(self) -> Self {
        Self {
            inner: self.inner.leak(),
        }
    }

    /// Admits one request now, or says how long until it would pass.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] with the wait, when the burst is used up. The
    /// refusal takes nothing from the limiter.
    #[inline]
    pub fn check(&self) -> Result<(), RateLimited> {
        let inner = &*self.inner;
        // One request costs one interval, never more than a burst (at least
        // one): no capacity check needed.
        let decision = gcra::check(
            &inner.tat,
            || inner.clock.now_nanos(),
            || Ok::<_, InsufficientCapacity>(inner.load_quota()),
        );
        match decision {
            Decision::Admitted(..) | Decision::Invalid(_) => {
                inner.observer.admitted();
                Ok(())
            }
            Decision::Refused(ready_at, now) => Err(inner.observer.refused(now, ready_at)),
        }
    }

    /// Like [`check`](Self::check), and on success also returns the state
    /// after it: what HTTP's `RateLimit` header reports.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub fn check_with_state(&self) -> Result<LimitState, RateLimited> {
        match self.check_detailed() {
            Ok(admission) => {
                self.report_admitted();
                Ok(admission.state())
            }
            Err((refused, _)) => {
                self.report_refused(&refused);
                Err(refused)
            }
        }
    }

    /// Counts an admission decided by [`check_detailed`](Self::check_detailed).
    pub(crate) fn report_admitted(&self) {
        self.inner.observer.admitted();
    }

    /// Counts and traces a refusal decided by
    /// [`check_detailed`](Self::check_detailed), now that it is answered.
    pub(crate) fn report_refused(&self, refused: &RateLimited) {
        self.inner.observer.report_refused(refused);
    }

    /// The services' check: what was taken (to give it back if unused) and
    /// the state after it, or the refusal with the quota it was judged by.
    /// Reports nothing: a service decides in `poll_ready`, maybe more than
    /// once, and reports what it answers in `call`.
    pub(crate) fn check_detailed(&self) -> Result<Admission, (RateLimited, Quota)> {
        let inner = &*self.inner;
        // The quota the decision was made with.
        let mut judged = (1, 1);
        let decision = gcra::check(
            &inner.tat,
            || inner.clock.now_nanos(),
            || {
                judged = inner.load_quota();
                Ok::<_, InsufficientCapacity>(judged)
            },
        );
        let (interval, tau) = judged;
        match decision {
            Decision::Admitted(end, now) => Ok(Admission {
                end,
                now,
                interval,
                tau,
            }),
            Decision::Refused(ready_at, now) => Err((
                RateLimited::new(now, ready_at),
                Quota::from_parts(interval, burst_of(interval, tau)),
            )),
            // The closure above never refuses.
            Decision::Invalid(_) => Err((
                RateLimited::new(0, 0),
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
        match self.decide(n) {
            Decision::Admitted(..) => {
                self.inner.observer.admitted();
                Ok(())
            }
            Decision::Refused(ready_at, now) => {
                Err(self.inner.observer.refused(now, ready_at).into())
            }
            Decision::Invalid(e) => Err(e.into()),
        }
    }

    /// The GCRA decision for `n` requests now.
    #[inline]
    fn decide(&self, n: u32) -> Decision<InsufficientCapacity> {
        let inner = &*self.inner;
        gcra::check(
            &inner.tat,
            || inner.clock.now_nanos(),
            || {
                let (interval, tau) = inner.load_quota();
                cost_of(n, interval, tau)
            },
        )
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
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled, as any
    /// `tokio::time::sleep` does.
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
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled.
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
        match self.reserve_n(1) {
            Ok(reservation) => reservation,
            Err(_) => unreachable!("one never exceeds a burst"),
        }
    }

    /// Reserves `n` requests at once; see [`reserve`](Self::reserve).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] when `n` is more than the burst.
    pub fn reserve_n(&self, n: u32) -> Result<Reservation<C>, InsufficientCapacity> {
        let inner = &*self.inner;
        // What the reservation took, under the quota it was judged by.
        let mut taken = Ok((0, 0));
        let (end, tau, now) = gcra::reserve(
            &inner.tat,
            || inner.clock.now_nanos(),
            || {
                let (interval, tau) = inner.load_quota();
                taken = cost_of(n, interval, tau);
                // Over the burst: reserve nothing (the state is unchanged
                // in effect) and report the error below.
                (taken.map_or(0, |(cost, _)| cost), tau)
            },
        );
        let (cost, _) = taken?;
        inner.observer.admitted();
        Ok(Reservation::new(
            self.clone(),
            cost,
            end,
            end.saturating_sub(tau),
            now,
        ))
    }

    /// Replaces the quota, keeping the tokens available now (capped at the
    /// new burst), as Go's `SetLimit` and `SetBurst` do.
    ///
    /// Checks running at the same moment wait the few nanoseconds the change
    /// takes, then are judged by the new quota; none sees half of each.
    pub fn set_quota(&self, quota: Quota) {
        let inner = &*self.inner;
        let _serial = inner.set_quota.lock();
        // Freeze the state: checks wait until it is converted, so none
        // judges the old state by the new quota, or the reverse.
        let tat = inner.tat.fetch_or(gcra::FROZEN, Ordering::Acquire);
        // Release: a check that reads either new value below then sees the
        // freeze (its `Acquire` fence pairs with this one).
        fence(Ordering::Release);
        let old = inner.load_quota();
        let new = (quota.interval_nanos(), quota.tau());
        inner.interval.store(new.0, Ordering::Relaxed);
        inner.tau.store(new.1, Ordering::Relaxed);
        let now = inner.clock.now_nanos();
        // Release: a check that sees the converted state sees the quota.
        inner
            .tat
            .store(gcra::convert(tat, now, old, new), Ordering::Release);
        inner.observer.quota_changed(quota);
    }

    /// The quota in force.
    #[must_use]
    pub fn quota(&self) -> Quota {
        let (_, (interval, tau)) = self.snapshot();
        Quota::from_parts(interval, burst_of(interval, tau))
    }

    /// The state and the quota it belongs to, read consistently.
    fn snapshot(&self) -> (u64, (u64, u64)) {
        loop {
            let tat = gcra::load_unfrozen(&self.inner.tat);
            let quota = self.inner.load_quota();
            fence(Ordering::Acquire);
            if self.inner.tat.load(Ordering::Acquire) == tat {
                return (tat, quota);
            }
        }
    }

    /// How many requests would pass now, without taking any: the burst when
    /// idle, a fraction while refilling, negative while reservations are
    /// waiting.
    #[must_use]
    pub fn tokens(&self) -> f64 {
        let (tat, (interval, tau)) = self.snapshot();
        gcra::tokens(tat, self.inner.clock.now_nanos(), interval, tau)
    }

    /// The clock the limiter reads.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.inner.clock
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

impl<C> RateLimiter<C> {
    /// Gives back `cost` taken by a request that moved the state to `end`,
    /// as far as later requests allow (see `Reservation::cancel`).
    pub(crate) fn give_back(&self, cost: u64, end: u64) {
        gcra::give_back(&self.inner.tat, cost, end);
    }
}

/// One request admitted by [`RateLimiter::check_detailed`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    /// The state right after it.
    pub(crate) end: u64,
    /// When it was judged.
    now: u64,
    /// The quota it was judged by; `interval` is also what it took.
    pub(crate) interval: u64,
    tau: u64,
}

impl Admission {
    /// The limiter's state after this request, as headers report it.
    pub(crate) fn state(&self) -> LimitState {
        LimitState::new(self.end, self.now, self.interval, self.tau)
    }
}

impl<C: 'static> Clone for RateLimiter<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
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
    name: Option<String>,
}

impl<C> RateLimiterBuilder<C> {
    /// The quota, jitter and name set so far.
    #[cfg(feature = "serde")]
    pub(crate) fn settings(&self) -> (Quota, Duration, Option<&str>) {
        (self.quota, self.jitter, self.name.as_deref())
    }
}

impl<C: Clock> RateLimiterBuilder<C> {
    /// The clock to read: `ManualClock` or `TokioClock` in tests.
    pub fn clock<C2: Clock>(self, clock: C2) -> RateLimiterBuilder<C2> {
        RateLimiterBuilder {
            quota: self.quota,
            clock,
            jitter: self.jitter,
            name: self.name,
        }
    }

    /// Names the limiter in its `tracing` events and as the `limiter`
    /// label of its metrics (features `tracing` and `metrics`). Defaults to
    /// `"default"`. Metrics go to the recorder installed when the limiter
    /// is built: install yours first.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
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
            name,
        } = self;
        RateLimiter {
            inner: Shared::new(Inner {
                tat: CacheLine(AtomicU64::new(0)),
                interval: AtomicU64::new(quota.interval_nanos()),
                tau: AtomicU64::new(quota.tau()),
                clock,
                jitter: u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX),
                set_quota: Mutex::new(()),
                observer: Observer::new(name.as_deref().unwrap_or("default")),
            }),
        }
    }
}
