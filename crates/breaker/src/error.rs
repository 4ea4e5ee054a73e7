//! [`BreakerError`]: a refused call, or the call's own error.

use std::fmt;
use std::time::Duration;

use seawall_core::{RefusalKind, RefusalReason};

/// Why a call through a [`CircuitBreaker`](crate::CircuitBreaker) failed:
/// refused by the breaker, or failed by itself (`Inner`, kept typed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerError<E = std::convert::Infallible> {
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
    /// The call ran past the breaker's [`timeout`](crate::BreakerConfigBuilder::timeout)
    /// and was dropped; it counted as a failure.
    TimedOut {
        /// The deadline that passed.
        after: Duration,
    },
    /// The call ran and failed with its own error.
    Inner(E),
}

impl<E> BreakerError<E> {
    /// Whether the breaker refused the call (it never ran).
    #[must_use]
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Open { .. } | Self::ForcedOpen | Self::HalfOpenFull { .. }
        )
    }

    /// The call's own error, if it ran and failed.
    #[must_use]
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn refusal(refusal: crate::state::Refusal) -> Self {
        match refusal {
            crate::state::Refusal::Open { retry_after } => Self::Open { retry_after },
            crate::state::Refusal::ForcedOpen => Self::ForcedOpen,
            crate::state::Refusal::HalfOpenFull { retry_after } => {
                Self::HalfOpenFull { retry_after }
            }
        }
    }
}

impl BreakerError {
    /// A refusal from [`try_acquire`](crate::CircuitBreaker::try_acquire)
    /// (which has no call error), or a timeout, as the error of calls that
    /// fail with `E`.
    #[must_use]
    pub fn widen<E>(self) -> BreakerError<E> {
        match self {
            Self::Open { retry_after } => BreakerError::Open { retry_after },
            Self::ForcedOpen => BreakerError::ForcedOpen,
            Self::HalfOpenFull { retry_after } => BreakerError::HalfOpenFull { retry_after },
            Self::TimedOut { after } => BreakerError::TimedOut { after },
            Self::Inner(never) => match never {},
        }
    }
}

impl<E: fmt::Display> fmt::Display for BreakerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { retry_after } => write!(f, "circuit open, retry after {retry_after:?}"),
            Self::ForcedOpen => f.write_str("circuit forced open"),
            Self::HalfOpenFull { retry_after } => write!(
                f,
                "circuit half-open, trial calls in flight, retry after {retry_after:?}"
            ),
            Self::TimedOut { after } => write!(f, "call timed out after {after:?}"),
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

/// A refusal (`Open`, `ForcedOpen`, `HalfOpenFull`: kind
/// [`RefusalKind::Unavailable`], HTTP `503`) or the breaker's own call
/// timeout (`TimedOut`: [`RefusalKind::TimedOut`], `504`). An open breaker
/// knows its wait, and a half-open one the most it may still last.
impl RefusalReason for BreakerError {
    fn kind(&self) -> RefusalKind {
        match self {
            Self::TimedOut { .. } => RefusalKind::TimedOut,
            Self::Open { .. } | Self::ForcedOpen | Self::HalfOpenFull { .. } => {
                RefusalKind::Unavailable
            }
            Self::Inner(never) => match *never {},
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Open { retry_after } | Self::HalfOpenFull { retry_after } => Some(*retry_after),
            Self::ForcedOpen | Self::TimedOut { .. } => None,
            Self::Inner(never) => match *never {},
        }
    }
}
