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
/// let err = Quota::per_second(100).burst(0).build().unwrap_err();
/// assert_eq!(err.to_string(), "burst: must be at least 1, got 0");
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
///
/// The limiter spaces requests one *emission interval* (`period / count`)
/// apart on average, and lets up to `burst` through at once after a quiet
/// spell. The interval is kept in whole nanoseconds, rounded down, so a rate
/// that does not divide a second evenly admits a hair more than asked: 3 a
/// second admits one extra request in about 330 million seconds.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Nanoseconds between two requests at the sustained rate; at least 1.
    interval: u64,
    /// Requests admitted at once from full; at least 1.
    burst: u32,
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

    /// The most requests admitted at once.
    #[must_use]
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The time between two requests at the sustained rate.
    #[must_use]
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// The sustained rate, in requests per second.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // a rate for display and headers
    pub fn per_second_rate(&self) -> f64 {
        1e9 / self.interval as f64
    }

    /// The time an empty limiter takes to refill to the full burst.
    #[must_use]
    pub fn replenish_all(&self) -> Duration {
        Duration::from_nanos(self.tau())
    }

    pub(crate) fn interval_nanos(&self) -> u64 {
        self.interval
    }

    /// `burst * interval`; `build` checked it fits.
    pub(crate) fn tau(&self) -> u64 {
        self.interval.saturating_mul(u64::from(self.burst))
    }

    pub(crate) const fn from_parts(interval: u64, burst: u32) -> Self {
        Self { interval, burst }
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("emission_interval", &self.emission_interval())
            .field("burst", &self.burst)
            .finish()
    }
}

/// The longest `burst × interval`: 2^62 ns, about 146 years.
const MAX_TAU: u64 = 1 << 62;

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
    /// the count per period.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Checks the values and builds the quota.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field when the count or the burst is
    /// zero, the period is zero, the rate is over one per nanosecond, or
    /// burst × interval is longer than 2^62 nanoseconds (146 years).
    pub fn build(self) -> Result<Quota, ConfigError> {
        let Self {
            period,
            count,
            burst,
        } = self;
        let shown = || format!("{count} per {period:?}");
        if count == 0 {
            return Err(ConfigError::new(
                "rate",
                "must be at least 1 per period",
                shown(),
            ));
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
        if burst == 0 {
            return Err(ConfigError::new("burst", "must be at least 1", 0));
        }
        // The limiter's state keeps its top bits free (see `gcra::FROZEN`).
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
        assert_eq!(quota.interval_nanos(), 333_333_333);
        assert!((quota.per_second_rate() - 3.0).abs() < 1e-8);
    }

    #[test]
    fn refuses_bad_values_with_the_field_named() {
        let msg = |b: QuotaBuilder| b.build().unwrap_err().to_string();
        assert_eq!(
            msg(Quota::per_second(0)),
            "rate: must be at least 1 per period, got 0 per 1s"
        );
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
            msg(Quota::per_second(1).burst(0)),
            "burst: must be at least 1, got 0"
        );
        assert_eq!(
            msg(Quota::per(Duration::from_secs(1 << 33), 2)),
            "burst: times the emission interval must be at most 146 years, got 2"
        );
        assert_eq!(
            msg(Quota::per(Duration::from_secs(1 << 34), 1).burst(u32::MAX)),
            "burst: times the emission interval must be at most 146 years, got 4294967295"
        );
    }
}
