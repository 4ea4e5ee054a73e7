//! [`BreakerRefusal`], why a breaker did not let a call through, and
//! [`BreakerError`]: a refusal, the breaker's own deadline, or the call's
//! own error.

use std::fmt;
use std::time::Duration;

use seawall_core::{RefusalKind, RefusalReason};

use crate::timeout::TimedOut;

/// Why a [`CircuitBreaker`](crate::CircuitBreaker) did not let a call
/// through. The call never ran.
///
/// Named for what it is rather than `Refused`, which is core's error that
/// carries any layer's refusal (this one among them) through a `BoxError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerRefusal {
    /// The circuit is open; trial calls are let through after `retry_after`.
    Open {
        /// Time left in open.
        retry_after: Duration,
    },
    /// The circuit was forced open by hand.
    ForcedOpen,
    /// The circuit is half-open and its trial calls are all in flight; it
    /// decides within `retry_after` at the latest (the rest of
    /// [`max_wait_in_half_open`](crate::BreakerConfigBuilder::max_wait_in_half_open)).
    HalfOpenFull {
        /// Time left before half-open gives up and opens again.
        retry_after: Duration,
    },
}

impl BreakerRefusal {
    /// When to come back, if the breaker knows: the rest of the open wait,
    /// or the most half-open may still last. Not known when forced open.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Open { retry_after } | Self::HalfOpenFull { retry_after } => Some(*retry_after),
            Self::ForcedOpen => None,
        }
    }
}

impl fmt::Display for BreakerRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { retry_after } => write!(f, "circuit open, retry after {retry_after:?}"),
            Self::ForcedOpen => f.write_str("circuit forced open"),
            Self::HalfOpenFull { retry_after } => write!(
                f,
                "circuit half-open, trial calls in flight, retry after {retry_after:?}"
            ),
        }
    }
}

impl std::error::Error for BreakerRefusal {}

/// Kind [`RefusalKind::Unavailable`] (HTTP `503`), with the wait when the
/// breaker knows it.
impl RefusalReason for BreakerRefusal {
    fn kind(&self) -> RefusalKind {
        RefusalKind::Unavailable
    }

    fn retry_after(&self) -> Option<Duration> {
        BreakerRefusal::retry_after(self)
    }
}

/// Why a call through [`CircuitBreaker::call`](crate::CircuitBreaker::call)
/// failed: refused by the breaker, cut off by the breaker's own
/// [`timeout`](crate::BreakerConfigBuilder::timeout), or failed by itself
/// (`Inner`, kept typed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerError<E> {
    /// The breaker refused the call; it never ran.
    Refused(BreakerRefusal),
    /// The call ran past the breaker's timeout and was dropped; it counted
    /// as a failure.
    TimedOut(TimedOut),
    /// The call ran and failed with its own error.
    Inner(E),
}

impl<E> BreakerError<E> {
    /// Whether the breaker refused the call (it never ran).
    #[must_use]
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused(_))
    }

    /// The refusal, if the breaker refused the call.
    #[must_use]
    pub fn refusal(&self) -> Option<&BreakerRefusal> {
        match self {
            Self::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }

    /// The call's own error, if it ran and failed.
    #[must_use]
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(e) => Some(e),
            _ => None,
        }
    }
}

impl<E> From<BreakerRefusal> for BreakerError<E> {
    fn from(refusal: BreakerRefusal) -> Self {
        Self::Refused(refusal)
    }
}

impl<E: fmt::Display> fmt::Display for BreakerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(refusal) => refusal.fmt(f),
            Self::TimedOut(timed_out) => timed_out.fmt(f),
            Self::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for BreakerError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Inner(e) => e.source(),
            _ => None,
        }
    }
}
