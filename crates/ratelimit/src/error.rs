//! Why a limiter did not admit a request.

use std::fmt;
use std::time::Duration;

use seawall_core::{RefusalKind, RefusalReason};

/// The limiter would admit the request later, not now.
///
/// `retry_after` is how long until it would pass, if nothing else takes the
/// capacity first; HTTP's `Retry-After` is this, rounded up to seconds. It
/// is `Duration::MAX` when no wait would do under the quota in force (a
/// budget used up, a burst of zero): see [`is_final`](Self::is_final).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// Nanoseconds to wait (the `Duration` is made when asked for: a
    /// refusal nobody reads the wait of costs no division).
    wait: u64,
    ready_at: u64,
}

impl RateLimited {
    #[inline]
    pub(crate) fn new(now: u64, ready_at: u64) -> Self {
        Self {
            wait: ready_at.saturating_sub(now),
            ready_at,
        }
    }

    /// Whether no wait would admit the request under the quota in force
    /// (only a quota change would).
    #[must_use]
    pub fn is_final(&self) -> bool {
        self.ready_at == crate::gcra::NEVER
    }

    /// How long until the request would pass.
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        if self.is_final() {
            Duration::MAX
        } else {
            Duration::from_nanos(self.wait)
        }
    }

    /// When the request would pass, in nanoseconds on the limiter's clock
    /// (compare with `limiter.clock().now_nanos()`); `u64::MAX` if never.
    #[must_use]
    pub fn ready_at_nanos(&self) -> u64 {
        self.ready_at
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_final() {
            f.write_str("rate limited, and no wait would do under this quota")
        } else {
            write!(f, "rate limited, retry after {:?}", self.retry_after())
        }
    }
}

impl std::error::Error for RateLimited {}

/// Kind [`RefusalKind::RateLimited`] (HTTP `429`), with its wait (none when
/// [final](RateLimited::is_final)).
impl RefusalReason for RateLimited {
    fn kind(&self) -> RefusalKind {
        RefusalKind::RateLimited
    }

    fn retry_after(&self) -> Option<Duration> {
        (!self.is_final()).then(|| self.retry_after())
    }
}

/// More was asked for at once than the burst: no wait would ever admit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsufficientCapacity {
    requested: u32,
    burst: u32,
}

impl InsufficientCapacity {
    pub(crate) fn new(requested: u32, burst: u32) -> Self {
        Self { requested, burst }
    }

    /// How many were asked for at once.
    #[must_use]
    pub fn requested(&self) -> u32 {
        self.requested
    }

    /// The most the quota admits at once.
    #[must_use]
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

impl fmt::Display for InsufficientCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "asked for {} at once, more than the burst of {}",
            self.requested, self.burst
        )
    }
}

impl std::error::Error for InsufficientCapacity {}

/// Why `check_n` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitError {
    /// Not now; it would pass after [`RateLimited::retry_after`].
    RateLimited(RateLimited),
    /// Never: more than the burst at once.
    InsufficientCapacity(InsufficientCapacity),
}

impl fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RateLimited(e) => e.fmt(f),
            Self::InsufficientCapacity(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RateLimitError {}

impl From<RateLimited> for RateLimitError {
    fn from(e: RateLimited) -> Self {
        Self::RateLimited(e)
    }
}

impl From<InsufficientCapacity> for RateLimitError {
    fn from(e: InsufficientCapacity) -> Self {
        Self::InsufficientCapacity(e)
    }
}
