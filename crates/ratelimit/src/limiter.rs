//! [`RateLimiter`]: one GCRA state for one resource.

use std::fmt;
use std::time::Duration;

use seawall_core::{Clock, MonotonicClock, Shared};

use crate::error::{InsufficientCapacity, RateLimitError, RateLimited};
use crate::gcra::{self, Decision, Reserved, State};
use crate::observe::Observer;
use crate::quota::Quota;
use crate::reservation::Reservation;
use crate::state::LimitState;

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
    state: State,
    clock: C,
    /// Upper bound of the random delay added to each wait, in nanoseconds.
    jitter: u64,
    observer: Observer,
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
    /// [`RateLimited`] with the wait, when the burst is used up (a
    /// [final](RateLimited::is_final) one when the burst is zero or a
    /// budget is spent). The refusal takes nothing from the limiter.
    #[inline(always)]
    pub fn check(&self) -> Result<(), RateLimited> {
        let inner = &*self.inner;
        match inner.state.check(|| inner.clock.now_nanos(), 1) {
            Decision::Admitted { .. } => {
                inner.observer.admitted();
                Ok(())
            }
            Decision::Refused { ready_at, now, .. } => Err(inner.observer.refused(now, ready_at)),
            Decision::Invalid(_) => Err(inner.observer.refused(0, gcra::NEVER)),
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

    /// What reports on this limiter.
    #[cfg(feature = "tower")]
    pub(crate) fn observer(&self) -> &crate::observe::Observer {
        &self.inner.observer
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
    #[inline(always)]
    pub(crate) fn check_detailed(&self) -> Result<Admission, (RateLimited, Quota)> {
        self.check_detailed_n(1)
    }

    /// [`check_detailed`](Self::check_detailed) for `n` requests; more than
    /// the burst is a final refusal.
    #[inline(always)]
    pub(crate) fn check_detailed_n(&self, n: u32) -> Result<Admission, (RateLimited, Quota)> {
        let inner = &*self.inner;
        match inner.state.check(|| inner.clock.now_nanos(), n) {
            Decision::Admitted { tat, now, rule } => Ok(Admission {
                taken: Reserved::admitted(n, rule, now, tat),
            }),
            Decision::Refused {
                ready_at,
                now,
                rule,
            } => Err((RateLimited::new(now, ready_at), rule.quota())),
            Decision::Invalid(_) => Err((RateLimited::new(0, gcra::NEVER), self.quota())),
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
        match inner.state.check(|| inner.clock.now_nanos(), n) {
            Decision::Admitted { .. } => {
                inner.observer.admitted();
                Ok(())
            }
            Decision::Refused { ready_at, now, .. } => {
                Err(inner.observer.refused(now, ready_at).into())
            }
            Decision::Invalid(e) => Err(e.into()),
        }
    }

    /// Waits until one request is admitted.
    ///
    /// Like Go's `Wait`: when the request cannot pass at once, it reserves
    /// its place (see [`reserve`](Self::reserve)) and sleeps with
    /// `tokio::time` until that place comes, plus the jitter if one is set.
    /// Waiters are therefore served in the order they arrived, and a sleep
    /// that the timer rounds up (tokio's is to the millisecond) delays that
    /// waiter only, not the ones behind it: over time they pass at the
    /// quota's rate, not below it.
    ///
    /// The clock must move with tokio's time: [`MonotonicClock`] does, and
    /// so does `TokioClock` on paused time. A `ManualClock` that nobody
    /// advances makes this wait forever.
    ///
    /// # Errors
    ///
    /// At once, as Go's `Wait` returns one, when no wait would do: a burst
    /// of zero ([`RateLimitError::InsufficientCapacity`]), or a budget quota
    /// that is used up ([`RateLimitError::RateLimited`], a
    /// [final](RateLimited::is_final) refusal). Neither takes anything.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled, as any
    /// `tokio::time::sleep` does.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped `acquire` cancels its reservation, giving
    /// back what those behind it do not rely on (as [`Reservation::cancel`]
    /// does, counting the request as not made even if its time had come).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use seawall_core::TokioClock;
    /// use seawall_ratelimit::{Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::builder(Quota::per_second(2).burst(1).build()?)
    ///     .clock(TokioClock::new())
    ///     .build();
    /// let start = tokio::time::Instant::now();
    /// for _ in 0..3 {
    ///     limiter.acquire().await?;
    /// }
    /// // The first passes at once, the next two half a second apart.
    /// assert_eq!(start.elapsed(), Duration::from_secs(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(&self) -> Result<(), RateLimitError> {
        self.acquire_n(1).await
    }

    /// Waits until `n` requests are admitted at once; see
    /// [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// At once, instead of waiting forever:
    /// [`RateLimitError::InsufficientCapacity`] when `n` is more than the
    /// burst, and a final [`RateLimitError::RateLimited`] when a budget
    /// quota does not have `n` left.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    pub async fn acquire_n(&self, n: u32) -> Result<(), RateLimitError> {
        let inner = &*self.inner;
        // Lock-free when it passes at once: the same outcome as reserving
        // with no delay.
        match inner.state.check(|| inner.clock.now_nanos(), n) {
            Decision::Admitted { .. } => {
                inner.observer.admitted();
                return Ok(());
            }
            Decision::Invalid(e) => return Err(e.into()),
            Decision::Refused { .. } => {}
        }
        let taken = inner.state.reserve_coming(|| inner.clock.now_nanos(), n)?;
        if taken.act_at == gcra::NEVER {
            // A budget without `n` left: nothing was taken, no wait would do.
            return Err(inner.observer.refused(taken.now, gcra::NEVER).into());
        }
        inner.observer.admitted();
        let mut place = CancelOnDrop {
            limiter: self,
            taken: Some(taken),
        };
        sleep_until(&inner.clock, taken.act_at, inner.jitter).await;
        place.taken = None;
        Ok(())
    }

    /// Reserves one request for later: the capacity is taken now, and the
    /// [`Reservation`] says how long to wait before acting on it.
    pub fn reserve(&self) -> Reservation<C> {
        match self.reserve_n(1) {
            Ok(reservation) => reservation,
            // Only a burst of zero refuses one. Go's `Reserve` answers with
            // a reservation that is not OK; this one never comes.
            Err(_) => Reservation::new(self.clone(), Reserved::never(self.inner.clock.now_nanos())),
        }
    }

    /// Reserves `n` requests at once; see [`reserve`](Self::reserve).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] when `n` is more than the burst.
    pub fn reserve_n(&self, n: u32) -> Result<Reservation<C>, InsufficientCapacity> {
        let inner = &*self.inner;
        let taken = inner.state.reserve(|| inner.clock.now_nanos(), n)?;
        inner.observer.reserved(&taken);
        Ok(Reservation::new(self.clone(), taken))
    }

    /// Replaces the quota, keeping the tokens available now (capped at the
    /// new burst), as Go's `SetLimit` and `SetBurst` do. The tokens are kept
    /// to a nanosecond of the new emission interval, rounded down.
    ///
    /// Checks running at the same moment wait the few nanoseconds the change
    /// takes, then are judged by the new quota; none sees half of each. The
    /// clock is read before anything changes, so a clock that panics leaves
    /// the limiter as it was.
    pub fn set_quota(&self, quota: Quota) {
        let inner = &*self.inner;
        inner.state.set_quota(|| inner.clock.now_nanos(), quota);
        inner.observer.quota_changed(quota);
    }

    /// The quota in force.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.inner.state.snapshot().1.quota()
    }

    /// How many requests would pass now, without taking any: the burst when
    /// idle, a fraction while refilling, negative while reservations are
    /// waiting, infinite when unlimited.
    #[must_use]
    pub fn tokens(&self) -> f64 {
        let (tat, rule) = self.inner.state.snapshot();
        rule.tokens(tat, self.inner.clock.now_nanos())
    }

    /// The clock the limiter reads.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// Gives back a permit a service took but never used.
    pub(crate) fn give_back(&self, taken: &Reserved) {
        let inner = &*self.inner;
        inner.state.cancel(|| inner.clock.now_nanos(), taken, true);
    }

    /// Gives back a reservation by Go's rules.
    pub(crate) fn cancel(&self, taken: &Reserved) {
        let inner = &*self.inner;
        inner.state.cancel(|| inner.clock.now_nanos(), taken, false);
    }

    /// Reserves `n` requests, for the wait-mode service; a place that would
    /// never come (a budget used up) is not taken.
    #[cfg(feature = "tower")]
    pub(crate) fn reserve_raw(&self, n: u32) -> Result<Reserved, InsufficientCapacity> {
        let inner = &*self.inner;
        inner.state.reserve_coming(|| inner.clock.now_nanos(), n)
    }

    /// How long a waiter sleeps for a place at `act_at`: until then, plus
    /// jitter; `None` for never.
    #[cfg(feature = "tower")]
    pub(crate) fn wait_time(&self, act_at: u64) -> Option<Duration> {
        wait_for(&self.inner.clock, act_at, self.inner.jitter)
    }
}

/// How long from now until `act_at` on `clock`, plus a random delay of up
/// to `jitter` nanoseconds; `None` for [`gcra::NEVER`].
fn wait_for<C: Clock>(clock: &C, act_at: u64, jitter: u64) -> Option<Duration> {
    (act_at != gcra::NEVER).then(|| {
        let wait = act_at.saturating_sub(clock.now_nanos());
        Duration::from_nanos(wait.saturating_add(seawall_core::random::up_to(jitter, act_at)))
    })
}

/// Sleeps (with `tokio::time`) until `act_at` on `clock`, plus a random
/// delay of up to `jitter` nanoseconds; forever for [`gcra::NEVER`].
pub(crate) async fn sleep_until<C: Clock>(clock: &C, act_at: u64, jitter: u64) {
    match wait_for(clock, act_at, jitter) {
        None => std::future::pending().await,
        Some(wait) if !wait.is_zero() => tokio::time::sleep(wait).await,
        Some(_) => {}
    }
}

/// A reservation an `acquire` holds while it sleeps, cancelled if the
/// future is dropped first.
struct CancelOnDrop<'a, C: Clock> {
    limiter: &'a RateLimiter<C>,
    taken: Option<Reserved>,
}

impl<C: Clock> Drop for CancelOnDrop<'_, C> {
    fn drop(&mut self) {
        if let Some(taken) = self.taken.take() {
            self.limiter.give_back(&taken);
        }
    }
}

/// One request admitted by [`RateLimiter::check_detailed`], or a
/// reservation whose time has come.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    pub(crate) taken: Reserved,
}

impl Admission {
    /// The limiter's state after this request, as headers report it.
    pub(crate) fn state(&self) -> LimitState {
        let Reserved {
            rule, tat, act_at, ..
        } = self.taken;
        rule.state(tat, act_at)
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
    /// [`acquire`](RateLimiter::acquire) and the wait-mode layer, after the
    /// waiter's reserved time, so waiters do not all act on what is behind
    /// the limiter in the same instant. Off by default.
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
                state: State::new(quota),
                clock,
                jitter: u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX),
                observer: Observer::new(name.as_deref().unwrap_or("default")),
            }),
        }
    }
}
