//! [`LimitState`]: what a limiter reports after admitting a request.

use std::time::Duration;

use crate::error::InsufficientCapacity;
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

/// The cost of `n` requests in nanoseconds under `(interval, tau)`, and
/// `tau`; refuses `n` over the burst.
#[inline]
pub(crate) fn cost_of(n: u32, interval: u64, tau: u64) -> Result<(u64, u64), InsufficientCapacity> {
    match interval.checked_mul(u64::from(n)) {
        Some(cost) if cost <= tau => Ok((cost, tau)),
        _ => Err(InsufficientCapacity::new(n, burst_of(interval, tau))),
    }
}
