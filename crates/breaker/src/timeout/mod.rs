//! [`Timeout`]: a deadline on a call, that a breaker counts as a failure.

use std::fmt;
use std::future::Future;
use std::time::Duration;

#[cfg(feature = "tower")]
pub(crate) mod future;
#[cfg(feature = "tower")]
pub(crate) mod layer;
#[cfg(feature = "tower")]
pub(crate) mod service;

use seawall_core::{RefusalKind, RefusalReason};

/// Gives up on a call that takes too long.
///
/// The elapsed call is an `Err`, so a [`CircuitBreaker`](crate::CircuitBreaker)
/// around it counts it as a failure with the default classifier:
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), seawall_core::ConfigError> {
/// use std::time::Duration;
/// use seawall_breaker::{BreakerConfig, BreakerError, CircuitBreaker, State, Timeout, TimeoutError};
///
/// let timeout = Timeout::new(Duration::from_millis(250));
/// let breaker = CircuitBreaker::new(
///     BreakerConfig::builder().count_window(1).minimum_calls(1).build()?,
/// );
/// let slow_dependency = || async {
///     tokio::time::sleep(Duration::from_secs(10)).await;
///     Ok::<_, std::io::Error>("late")
/// };
/// let result = breaker.call(|| timeout.call(slow_dependency())).await;
/// assert!(matches!(result, Err(BreakerError::Inner(TimeoutError::TimedOut(_)))));
/// assert_eq!(breaker.state(), State::Open);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    after: Duration,
}

impl Timeout {
    /// Gives up after `after`.
    #[must_use]
    pub fn new(after: Duration) -> Self {
        Self { after }
    }

    /// The deadline.
    #[must_use]
    pub fn after(&self) -> Duration {
        self.after
    }

    /// Runs `call` for at most the deadline.
    ///
    /// # Errors
    ///
    /// [`TimeoutError::TimedOut`] when the deadline passes first (the call
    /// is dropped, which cancels it), or the call's own error as
    /// [`TimeoutError::Inner`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled.
    pub async fn call<T, E, Fut>(&self, call: Fut) -> Result<T, TimeoutError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        Self::within(self.after, call).await
    }

    /// Runs `call` for at most `after`: a deadline chosen per call (from a
    /// request's deadline header, say).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled.
    pub async fn within<T, E, Fut>(after: Duration, call: Fut) -> Result<T, TimeoutError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        match tokio::time::timeout(after, call).await {
            Ok(result) => result.map_err(TimeoutError::Inner),
            Err(_) => Err(TimeoutError::TimedOut(TimedOut { after })),
        }
    }
}

/// A deadline passed: the one timeout error of this crate, from a
/// [`Timeout`] ([`TimeoutError::TimedOut`]), a breaker's own timeout
/// ([`BreakerError::TimedOut`](crate::BreakerError::TimedOut)), [`Hystrix`](crate::Hystrix)
/// and the tower `TimeoutLayer` (feature `tower`).
///
/// Not named `Elapsed`, as tower's own timeout error is: a `BoxError`
/// downcast to the wrong one of two same-named types fails without a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    pub(crate) after: Duration,
}

impl TimedOut {
    /// A deadline of `after` that passed.
    #[must_use]
    pub fn new(after: Duration) -> Self {
        Self { after }
    }

    /// The deadline that passed.
    #[must_use]
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.after)
    }
}

impl std::error::Error for TimedOut {}

/// Kind [`RefusalKind::TimedOut`] (HTTP `504`), which a breaker outside
/// counts as a failure.
impl RefusalReason for TimedOut {
    fn kind(&self) -> RefusalKind {
        RefusalKind::TimedOut
    }
}

/// Why a call under a [`Timeout`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutError<E> {
    /// The deadline passed first.
    TimedOut(TimedOut),
    /// The call finished in time, with its own error.
    Inner(E),
}

impl<E> TimeoutError<E> {
    /// Whether the deadline passed.
    #[must_use]
    pub fn is_timed_out(&self) -> bool {
        matches!(self, Self::TimedOut(_))
    }
}

impl<E: fmt::Display> fmt::Display for TimeoutError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut(timed_out) => timed_out.fmt(f),
            Self::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for TimeoutError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TimedOut(_) => None,
            Self::Inner(e) => e.source(),
        }
    }
}
