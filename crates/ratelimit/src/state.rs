//! [`LimitState`]: what a limiter reports after admitting a request.

use std::time::Duration;

use crate::quota::Quota;

/// A limiter's (or a key's) state right after an admitted request: what
/// HTTP's `RateLimit` and `RateLimit-Policy` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitState {
    /// The quota in force.
    pub quota: Quota,
    /// Whole requests that could still pass now (`u32::MAX` when
    /// unlimited).
    pub remaining: u32,
    /// Time until the full burst is available again (`Duration::MAX` when
    /// the quota never refills and something was used).
    pub reset: Duration,
}

impl LimitState {
    pub(crate) fn new(quota: Quota, remaining: u32, reset: Duration) -> Self {
        Self {
            quota,
            remaining,
            reset,
        }
    }
}
