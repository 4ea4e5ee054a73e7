//! How much a limiter admits: a rate and a burst.

use std::fmt;
use std::time::Duration;

use seawall_core::ConfigError;

/// A rate limit: `count` per `period`, with bursts of up to `burst`.
///
/// Build one with [`Quota::per_second`], [`Quota::per_minute`],
/// [`Quota::per_hour`] or [`Quota::per`], optionally set the burst (it
/// defaults to the count), then [`build`](QuotaBuilder::build):
///
/// ```
/// use std::time::Duration;
/// use seawall_ratelimit::Quota;
///
/// // 100 requests a second, at most 20 at once.
/// let quota = Quota::per_second(100).burst(20).build()?;
/// assert_eq!(quota.burst(), 20);
/// assert_eq!(quota.emission_interval(), Duration::from_millis(10));
///
/// // One request every 3 seconds.
/// let quota = Quota::per(Duration::from_secs(3), 1).build()?;
/// assert_eq!(quota.emission_interval(), Duration::from_secs(3));
///
/// // The three quotas Go's x/time/rate users switch between at run time:
/// let off = Quota::unlimited(); // everything passes (Go's `Inf`)
/// let budget = Quota::per_second(0).burst(1_000).build()?; // 1,000, never refilled
/// let closed = Quota::per_second(100).burst(0).build()?; // nothing passes
/// assert!(off.is_unlimited());
/// assert_eq!((budget.per_second_rate(), budget.burst()), (0.0, 1_000));
/// assert_eq!(closed.burst(), 0);
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
///
/// The limiter spaces requests one *emission interval* (`period / count`)
/// apart on average, and lets up to `burst` through at once after a quiet
/// spell. The interval is kept in whole nanoseconds, rounded down, so a rate
/// that does not divide a second evenly admits a hair more than asked: 3 a
/// second admits one extra request in about 330 million seconds.
///
/// As in Go's x/time/rate, a count of zero means no refill (the burst is a
/// fixed budget: it passes once, then nothing until the quota changes), a
/// burst of zero admits nothing (a request for zero always passes), and
/// [`Quota::unlimited`] admits everything whatever its size.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Nanoseconds between two requests at the sustained rate; at least 1,
    /// or [`UNLIMITED`] or [`NO_REFILL`].
    interval: u64,
    /// Requests admitted at once from full.
    burst: u32,
}

/// The `interval` of [`Quota::unlimited`].
const UNLIMITED: u64 = 0;
/// The `interval` of a quota that never refills.
const NO_REFILL: u64 = u64::MAX;

/// What a quota admits, as the limiters' state words need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Everything.
    Unlimited,
    /// `burst` in all, never refilled.
    Budget,
    /// One per this many nanoseconds, bursts of `burst`.
    Rate(u64),
}

impl Quota {
    /// `count` requests per second.
    pub fn per_second(count: u32) -> QuotaBuilder {
        Self::per(Duration::from_secs(1), count)
    }

    /// `count` requests per minute.
    pub fn per_minute(count: u32) -> QuotaBuilder {
        Self::per(Duration::from_secs(60), count)
    }

    /// `count` requests per hour.
    pub fn per_hour(count: u32) -> QuotaBuilder {
        Self::per(Duration::from_secs(3_600), count)
    }

    /// `count` requests per `period`.
    pub fn per(period: Duration, count: u32) -> QuotaBuilder {
        QuotaBuilder {
            period,
            count,
            burst: None,
        }
    }

    /// A quota that admits everything, at any size (Go's `rate.Inf`): a
    /// limit switched off with [`set_quota`](crate::RateLimiter::set_quota)
    /// without taking the limiter or its layer out. Switching back to a
    /// limit starts with a full burst.
    #[must_use]
    pub const fn unlimited() -> Self {
        Self {
            interval: UNLIMITED,
            burst: u32::MAX,
        }
    }

    /// Whether this is [`Quota::unlimited`].
    #[must_use]
    pub fn is_unlimited(&self) -> bool {
        self.interval == UNLIMITED
    }

    /// The most requests admitted at once; `u32::MAX` when unlimited.
    #[must_use]
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The time between two requests at the sustained rate: zero when
    /// unlimited, `Duration::MAX` when the quota never refills.
    #[must_use]
    pub fn emission_interval(&self) -> Duration {
        match self.kind() {
            Kind::Unlimited => Duration::ZERO,
            Kind::Budget => Duration::MAX,
            Kind::Rate(interval) => Duration::from_nanos(interval),
        }
    }

    /// The sustained rate, in requests per second: infinite when
    /// unlimited, zero when the quota never refills.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // a rate for display and headers
    pub fn per_second_rate(&self) -> f64 {
        match self.kind() {
            Kind::Unlimited => f64::INFINITY,
            Kind::Budget => 0.0,
            Kind::Rate(interval) => 1e9 / interval as f64,
        }
    }

    /// The time an empty limiter takes to refill to the full burst: zero
    /// when unlimited or the burst is zero, `Duration::MAX` when the quota
    /// never refills.
    #[must_use]
    pub fn replenish_all(&self) -> Duration {
        match self.kind() {
            Kind::Unlimited => Duration::ZERO,
            Kind::Budget if self.burst > 0 => Duration::MAX,
            Kind::Budget => Duration::ZERO,
            Kind::Rate(interval) => Duration::from_nanos(interval * u64::from(self.burst)),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self.interval {
            UNLIMITED => Kind::Unlimited,
            NO_REFILL => Kind::Budget,
            interval => Kind::Rate(interval),
        }
    }

    /// A quota of `burst` that never refills.
    pub(crate) const fn budget(burst: u32) -> Self {
        Self {
            interval: NO_REFILL,
            burst,
        }
    }

    /// A limited quota; `interval * burst` at most [`MAX_TAU`].
    pub(crate) const fn from_parts(interval: u64, burst: u32) -> Self {
        Self { interval, burst }
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            Kind::Unlimited => f.write_str("Quota::unlimited()"),
            Kind::Budget => f
                .debug_struct("Quota")
                .field("refill", &"never")
                .field("burst", &self.burst)
                .finish(),
            Kind::Rate(_) => f
                .debug_struct("Quota")
                .field("emission_interval", &self.emission_interval())
                .field("burst", &self.burst)
                .finish(),
        }
    }
}

/// The longest `burst × interval`: 2^62 ns, about 146 years.
pub(crate) const MAX_TAU: u64 = 1 << 62;

/// Builds a [`Quota`]; see there.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct QuotaBuilder {
    period: Duration,
    count: u32,
    burst: Option<u32>,
}

impl QuotaBuilder {
    /// The most requests admitted at once after a quiet spell. Defaults to
    /// the count per period. Zero admits nothing (Go's meaning).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Checks the values and builds the quota.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field when the period is zero (with a
    /// count above zero), the rate is over one per nanosecond, the interval
    /// is longer than 2^62 nanoseconds (146 years), or burst × interval is.
    pub fn build(self) -> Result<Quota, ConfigError> {
        let Self {
            period,
            count,
            burst,
        } = self;
        let shown = || format!("{count} per {period:?}");
        if count == 0 {
            return Ok(Quota::budget(burst.unwrap_or(0)));
        }
        if period.is_zero() {
            return Err(ConfigError::new("period", "must be longer than zero", "0s"));
        }
        let interval = u64::try_from(period.as_nanos() / u128::from(count)).map_err(|_| {
            ConfigError::new("period", "must be at most 584 years per request", shown())
        })?;
        if interval == 0 {
            return Err(ConfigError::new(
                "rate",
                "must be at most one per nanosecond",
                shown(),
            ));
        }
        let burst = burst.unwrap_or(count);
        // The limiter's state keeps its top bits free (see `gcra::FROZEN`).
        if interval > MAX_TAU {
            return Err(ConfigError::new(
                "period",
                "must be at most 146 years per request",
                shown(),
            ));
        }
        if interval
            .checked_mul(u64::from(burst))
            .is_none_or(|tau| tau > MAX_TAU)
        {
            return Err(ConfigError::new(
                "burst",
                "times the emission interval must be at most 146 years",
                burst,
            ));
        }
        Ok(Quota { interval, burst })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_defaults_to_the_count() {
        let quota = Quota::per_minute(30).build().unwrap();
        assert_eq!(quota.burst(), 30);
        assert_eq!(quota.emission_interval(), Duration::from_secs(2));
        assert_eq!(quota.replenish_all(), Duration::from_secs(60));
    }

    #[test]
    fn interval_rounds_down_to_whole_nanoseconds() {
        let quota = Quota::per_second(3).build().unwrap();
        assert_eq!(quota.kind(), Kind::Rate(333_333_333));
        assert!((quota.per_second_rate() - 3.0).abs() < 1e-8);
    }

    #[test]
    fn zero_count_is_a_budget_and_zero_burst_is_allowed() {
        let budget = Quota::per_second(0).burst(7).build().unwrap();
        assert_eq!((budget.kind(), budget.burst()), (Kind::Budget, 7));
        assert_eq!(budget.emission_interval(), Duration::MAX);
        // Go's NewLimiter(0, 0): a count of zero and no burst admits nothing.
        let none = Quota::per(Duration::ZERO, 0).build().unwrap();
        assert_eq!((none.kind(), none.burst()), (Kind::Budget, 0));
        let closed = Quota::per_second(5).burst(0).build().unwrap();
        assert_eq!(
            (closed.kind(), closed.burst()),
            (Kind::Rate(200_000_000), 0)
        );
        assert_eq!(closed.replenish_all(), Duration::ZERO);
        assert!(Quota::unlimited().is_unlimited());
        assert_eq!(Quota::unlimited().per_second_rate(), f64::INFINITY);
    }

    #[test]
    fn refuses_bad_values_with_the_field_named() {
        let msg = |b: QuotaBuilder| b.build().unwrap_err().to_string();
        assert_eq!(
            msg(Quota::per(Duration::ZERO, 5)),
            "period: must be longer than zero, got 0s"
        );
        assert_eq!(
            msg(Quota::per(Duration::from_secs(1), 2_000_000_000)),
            "rate: must be at most one per nanosecond, got 2000000000 per 1s"
        );
        assert_eq!(
            msg(Quota::per(Duration::MAX, 1)),
            "period: must be at most 584 years per request, got 1 per 18446744073709551615.999999999s"
        );
        assert_eq!(
            msg(Quota::per(Duration::from_nanos((1 << 62) + 1), 1).burst(0)),
            "period: must be at most 146 years per request, got 1 per 4611686018.427387905s"
        );
        assert_eq!(
            msg(Quota::per(Duration::from_secs(1 << 33), 2)),
            "burst: times the emission interval must be at most 146 years, got 2"
        );
        assert_eq!(
            msg(Quota::per(Duration::from_secs(1 << 32), 1).burst(u32::MAX)),
            "burst: times the emission interval must be at most 146 years, got 4294967295"
        );
    }
}
