//! [`CircuitBreaker`]: the plain async API over the state machine.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "tower")]
pub(crate) mod future;
#[cfg(feature = "tower")]
pub(crate) mod layer;
#[cfg(feature = "tower")]
pub(crate) mod service;

use seawall_core::{Classify, Clock, DefaultClassifier, MonotonicClock, Outcome, Shared};

use crate::config::BreakerConfig;
use crate::error::{BreakerError, BreakerRefusal};
use crate::observe::{Listener, Observer, Snapshot, Transition};
use crate::state::{Core, State, Ticket};
use crate::timeout::{Timeout, TimeoutError};

/// A circuit breaker: stops calling a dependency that keeps failing, and
/// gives it room to recover.
///
/// Closed, it lets calls through and judges their outcomes over a sliding
/// window; when the failure rate (or the slow-call rate, or a run of
/// failures) crosses its threshold, it opens and refuses calls for
/// `wait_in_open`. Then it lets a few trial calls through (half-open): if
/// they do well it closes, otherwise it opens again. See docs/breaker.md for
/// the exact rules.
///
/// It is a handle: clones share one state. A call through a closed breaker
/// takes no lock and allocates nothing.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seawall_core::ConfigError> {
/// use seawall_breaker::{BreakerConfig, BreakerError, BreakerRefusal, CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::new(
///     BreakerConfig::builder().count_window(4).minimum_calls(2).build()?,
/// );
/// for _ in 0..2 {
///     let result = breaker.call(|| async { Err::<(), _>("connection refused") }).await;
///     assert_eq!(result, Err(BreakerError::Inner("connection refused")));
/// }
/// assert_eq!(breaker.state(), State::Open);
/// let refused = breaker.call(|| async { Ok::<_, &str>(()) }).await.unwrap_err();
/// assert!(matches!(refused, BreakerError::Refused(BreakerRefusal::Open { .. })));
/// # Ok(())
/// # }
/// ```
pub struct CircuitBreaker<C: 'static = MonotonicClock> {
    core: Shared<Core<C>>,
}

impl CircuitBreaker<MonotonicClock> {
    /// A breaker following `config`, on the production clock.
    #[must_use]
    pub fn new(config: BreakerConfig) -> Self {
        Self::builder(config).build()
    }

    /// A builder, to name the breaker, watch its transitions or set its
    /// clock.
    pub fn builder(config: BreakerConfig) -> CircuitBreakerBuilder<MonotonicClock> {
        CircuitBreakerBuilder {
            config,
            clock: MonotonicClock::new(),
            name: None,
            listener: None,
        }
    }
}

impl<C: Clock> CircuitBreaker<C> {
    /// A breaker reading `clock` (a `ManualClock` or `TokioClock` in tests).
    #[must_use]
    pub fn with_clock(config: BreakerConfig, clock: C) -> Self {
        CircuitBreaker::builder(config).clock(clock).build()
    }

    /// State, window counts and rates, read at one moment.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let state = self.state();
        let totals = self.core.window_totals();
        let rate = |n: u32| {
            if totals.calls == 0 {
                0.0
            } else {
                f64::from(n) / f64::from(totals.calls)
            }
        };
        Snapshot {
            state,
            calls: totals.calls,
            failures: totals.failures,
            slow_calls: totals.slow,
            failure_rate: rate(totals.failures),
            slow_call_rate: rate(totals.slow),
            retry_after: self.core.open_remaining_in(state),
        }
    }

    /// The name given to the builder (`"default"` unless set).
    #[must_use]
    pub fn name(&self) -> &str {
        self.core.observer.name()
    }

    /// Runs `call` if the breaker lets it through, and records its outcome
    /// as [`DefaultClassifier`] judges it (`Err` counts as a failure, except
    /// a seawall refusal from a layer inside, such as a rate limit), and
    /// running past the config's
    /// [`timeout`](crate::BreakerConfigBuilder::timeout), if it has one,
    /// counts as a failure too.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Refused`] without running `call`,
    /// [`BreakerError::TimedOut`] when the timeout passed first, or the
    /// call's own error as [`BreakerError::Inner`].
    ///
    /// # Cancel safety
    ///
    /// A call dropped before it finishes counts as ignored: it neither
    /// helps nor hurts, and in half-open frees its trial place. Except a
    /// half-open trial dropped after running for
    /// [`dropped_trial_failure_after`](BreakerConfig::dropped_trial_failure_after)
    /// or longer (as a timeout outside the breaker drops it): that counts as
    /// a failure, so the breaker opens again instead of feeding trials to a
    /// dependency that never answers. A call that panics counts as a
    /// failure.
    pub async fn call<T, E: 'static, F, Fut>(&self, call: F) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_with(&DefaultClassifier, call).await
    }

    /// Like [`call`](Self::call), with `classify` deciding what counts as a
    /// failure (a 4xx might be ignored, a timeout a failure).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub async fn call_with<T, E, K, F, Fut>(
        &self,
        classify: &K,
        call: F,
    ) -> Result<T, BreakerError<E>>
    where
        K: Classify<T, E>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut permit = Some(self.try_acquire()?);
        // A panic in the call, making its future or polling it, is a
        // failure of the call.
        let armed = FailOnUnwind::arm(&mut permit);
        let made = call();
        let permit = armed.disarm();
        let mut made = std::pin::pin!(made);
        let guarded = std::future::poll_fn(|cx| {
            let armed = FailOnUnwind::arm(&mut *permit);
            let polled = made.as_mut().poll(cx);
            armed.disarm();
            polled
        });
        let result = match self.core.config.timeout {
            None => guarded.await,
            Some(after) => match Timeout::within(after, guarded).await {
                Ok(value) => Ok(value),
                Err(TimeoutError::Inner(e)) => Err(e),
                Err(TimeoutError::TimedOut(timed_out)) => {
                    if let Some(permit) = permit.take() {
                        permit.failure();
                    }
                    return Err(BreakerError::TimedOut(timed_out));
                }
            },
        };
        if let Some(permit) = permit.take() {
            permit.record(classify.classify(&result));
        }
        result.map_err(BreakerError::Inner)
    }

    /// Asks to make one call, for work whose outcome is known later (a
    /// streaming body): record it on the [`Permit`]. A permit dropped without
    /// a record counts as ignored (a trial permit dropped late, as a
    /// failure: see [`call`](Self::call)). In half-open a permit holds one of the
    /// few trial places until it is recorded or dropped, so do not keep one
    /// longer than the call.
    ///
    /// # Errors
    ///
    /// The refusal, when the breaker does not let the call through.
    #[inline(always)]
    pub fn try_acquire(&self) -> Result<Permit<'_, C>, BreakerRefusal> {
        let ticket = self.core.acquire()?;
        Ok(Permit {
            core: &self.core,
            ticket,
            start: self.start(ticket),
            done: false,
        })
    }

    /// Like [`try_acquire`](Self::try_acquire), with a permit that owns a
    /// handle to the breaker and so can move into a spawned task.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit<C>, BreakerRefusal> {
        let ticket = self.core.acquire()?;
        Ok(OwnedPermit {
            core: self.core.clone(),
            ticket,
            start: self.start(ticket),
            done: false,
        })
    }

    /// The refusal a call now would meet, taking and counting nothing (for
    /// a tower service's `poll_ready`).
    #[cfg(feature = "tower")]
    pub(crate) fn refusal(&self) -> Option<BreakerRefusal> {
        self.core.refusal()
    }

    /// Counts a refusal that [`refusal`](Self::refusal) found, now that it
    /// is answered.
    #[cfg(feature = "tower")]
    pub(crate) fn refused(&self, refusal: BreakerRefusal) -> BreakerRefusal {
        self.core.refused(refusal);
        refusal
    }

    /// The start time, read only when a slow-call rule needs it, or for a
    /// trial (a trial dropped after running long enough is a failure).
    #[inline]
    fn start(&self, ticket: Ticket) -> Option<u64> {
        (self.core.config.slow_call_duration.is_some() || ticket.is_trial())
            .then(|| self.core.clock.now_nanos())
    }

    /// Keeps the breaker for the rest of the process, so that its clones
    /// (a tower service cloned per request, a permit per call) no longer
    /// count references: see [`Shared`]. For breakers made once at
    /// startup; the memory is never given back.
    #[must_use]
    pub fn leak(self) -> Self {
        Self {
            core: self.core.leak(),
        }
    }

    /// The current state. An open breaker whose wait has passed moves to
    /// half-open here, and a half-open one past
    /// [`max_wait_in_half_open`](crate::BreakerConfigBuilder::max_wait_in_half_open)
    /// opens again, as the next call would: so reading the state (and
    /// [`snapshot`](Self::snapshot), [`retry_after`](Self::retry_after),
    /// `Debug`) may make that transition and report it.
    #[must_use]
    pub fn state(&self) -> State {
        self.core.state()
    }

    /// Time left in open, if the breaker is open.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.core.open_remaining()
    }

    /// Opens the circuit by hand until [`reset`](Self::reset): every call is
    /// refused.
    pub fn force_open(&self) {
        self.core.force(State::ForcedOpen);
    }

    /// Lets every call through and judges nothing until
    /// [`reset`](Self::reset).
    pub fn disable(&self) {
        self.core.force(State::Disabled);
    }

    /// Closes the circuit with an empty window.
    pub fn reset(&self) {
        self.core.force(State::Closed);
    }

    /// Calls, failures and slow calls in the window now.
    #[must_use]
    pub fn window(&self) -> (u32, u32, u32) {
        let totals = self.core.window_totals();
        (totals.calls, totals.failures, totals.slow)
    }

    /// The rules it follows.
    #[must_use]
    pub fn config(&self) -> &BreakerConfig {
        &self.core.config
    }
}

/// Builds a [`CircuitBreaker`].
#[must_use]
pub struct CircuitBreakerBuilder<C> {
    config: BreakerConfig,
    clock: C,
    name: Option<String>,
    listener: Option<Listener>,
}

impl<C: Clock> CircuitBreakerBuilder<C> {
    /// The clock to read: `ManualClock` or `TokioClock` in tests.
    pub fn clock<C2: Clock>(self, clock: C2) -> CircuitBreakerBuilder<C2> {
        CircuitBreakerBuilder {
            config: self.config,
            clock,
            name: self.name,
            listener: self.listener,
        }
    }

    /// Names the breaker in its callbacks, `tracing` events and as the
    /// `breaker` label of its metrics. Defaults to `"default"`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Calls `listener` with the breaker's name on every change of state,
    /// on the thread that made it, once the change is made and the
    /// breaker's lock released: it may read or change the breaker. Two
    /// changes made at once by two threads may reach it in either order.
    pub fn on_transition<F>(mut self, listener: F) -> Self
    where
        F: Fn(&str, Transition) + Send + Sync + 'static,
    {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Builds the breaker, closed.
    pub fn build(self) -> CircuitBreaker<C> {
        let observer = Observer::new(self.name.as_deref().unwrap_or("default"), self.listener);
        CircuitBreaker {
            core: Shared::new(Core::new(self.config, self.clock, observer)),
        }
    }
}

impl<C> std::fmt::Debug for CircuitBreakerBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("config", &self.config)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<C: 'static> Clone for CircuitBreaker<C> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
        }
    }
}

impl<C: Clock> std::fmt::Debug for CircuitBreaker<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("state", &self.state())
            .field("window", &self.window())
            .finish_non_exhaustive()
    }
}

macro_rules! permit_methods {
    () => {
        /// Records that the call succeeded.
        #[inline]
        pub fn success(self) {
            self.record(Outcome::Success);
        }

        /// Records that the call failed.
        #[inline]
        pub fn failure(self) {
            self.record(Outcome::Failure);
        }

        /// Records that the call says nothing about the dependency (as if
        /// it never happened); in half-open, frees its trial place.
        pub fn ignore(self) {
            self.record(Outcome::Ignored);
        }

        /// Records `outcome`.
        #[inline(always)]
        pub fn record(mut self, outcome: Outcome) {
            // Set first, so that the drop that follows (inlined) has
            // nothing left to do.
            self.done = true;
            self.report(outcome, false);
        }

        /// Records a permit dropped unrecorded: out of line, so the drop
        /// that follows `record` stays small enough to inline and vanish.
        #[cold]
        #[inline(never)]
        fn dropped(&self) {
            self.report(Outcome::Ignored, true);
        }

        #[inline(always)]
        fn report(&self, outcome: Outcome, dropped: bool) {
            let elapsed = self.start.map(|start| {
                Duration::from_nanos(self.core.clock.now_nanos().saturating_sub(start))
            });
            self.core.record(self.ticket, outcome, elapsed, dropped);
        }
    };
}

/// A permit whose call is running: recorded as a failure if dropped armed,
/// which happens only while a panic in that call unwinds, since `disarm`
/// follows the call otherwise. (A permit merely dropped during some other
/// panic, a sibling's in a `join!`, counts as ignored, as any dropped call.)
pub(crate) struct FailOnUnwind<'a, P: Fail>(Option<&'a mut Option<P>>);

impl<'a, P: Fail> FailOnUnwind<'a, P> {
    pub(crate) fn arm(permit: &'a mut Option<P>) -> Self {
        Self(Some(permit))
    }

    pub(crate) fn disarm(mut self) -> &'a mut Option<P> {
        self.0.take().expect("armed until disarmed, once")
    }
}

impl<P: Fail> Drop for FailOnUnwind<'_, P> {
    fn drop(&mut self) {
        if let Some(permit) = self.0.take().and_then(Option::take) {
            permit.fail();
        }
    }
}

/// A permit that can be recorded as failed.
pub(crate) trait Fail {
    fn fail(self);
}

impl<C: Clock> Fail for Permit<'_, C> {
    fn fail(self) {
        self.failure();
    }
}

impl<C: Clock> Fail for OwnedPermit<C> {
    fn fail(self) {
        self.failure();
    }
}

/// Leave to make one call; record its outcome, or drop it (ignored, or a
/// failure for a half-open trial dropped late: see
/// [`CircuitBreaker::call`]).
#[must_use = "a permit dropped unrecorded counts as ignored (a late trial: a failure)"]
pub struct Permit<'a, C: Clock = MonotonicClock> {
    core: &'a Core<C>,
    ticket: Ticket,
    start: Option<u64>,
    done: bool,
}

impl<C: Clock> Permit<'_, C> {
    permit_methods!();
}

impl<C: Clock> Drop for Permit<'_, C> {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.dropped();
        }
    }
}

impl<C: Clock> std::fmt::Debug for Permit<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

/// A [`Permit`] that owns a handle to its breaker.
#[must_use = "a permit dropped unrecorded counts as ignored (a late trial: a failure)"]
pub struct OwnedPermit<C: Clock = MonotonicClock> {
    core: Shared<Core<C>>,
    ticket: Ticket,
    start: Option<u64>,
    done: bool,
}

impl<C: Clock> OwnedPermit<C> {
    permit_methods!();

    /// The breaker's call timeout.
    #[cfg(feature = "tower")]
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.core.config.timeout
    }
}

impl<C: Clock> Drop for OwnedPermit<C> {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.dropped();
        }
    }
}

impl<C: Clock> std::fmt::Debug for OwnedPermit<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedPermit").finish_non_exhaustive()
    }
}
