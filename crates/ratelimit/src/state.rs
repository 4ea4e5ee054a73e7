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
    /// Whole requests that could still pass now.
    pub remaining: u32,
    /// Time until the full burst is available again.
    pub reset: Duration,
}

impl LimitState {
    pub(crate) fn new(tat: u64, now: u64, interval: u64, tau: u64) -> Self {
        let debt = tat.saturating_sub(now);
        Self {
            quota: Quota::from_parts(interval, burst_of(interval, tau)),
            remaining: u32::try_from(tau.saturating_sub(debt) / interval).unwrap_or(u32::MAX),
            reset: Duration::from_nanos(debt),
        }
    }
}

/// The burst of a quota kept as (interval, tau).
pub(crate) fn burst_of(interval: u64, tau: u64) -> u32 {
    u32::try_from(tau / interval).unwrap_or(u32::MAX)
}
