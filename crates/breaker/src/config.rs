//! [`BreakerConfig`]: when a circuit breaker opens, and how it recovers.

use std::time::Duration;

use seawall_core::ConfigError;

use crate::time_window::{MAX_BUCKETS, TimeWindow};
use crate::window::MAX_WINDOW;

/// The most trial calls in half-open.
pub(crate) const MAX_HALF_OPEN_CALLS: u32 = 10_000;

/// How half-open's trial calls decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "kebab-case")
)]
#[non_exhaustive]
pub enum TrialRule {
    /// Once every permitted trial has reported, their failure and slow-call
    /// rates decide against the thresholds (resilience4j's rule).
    #[default]
    Rates,
    /// The first failed trial (or slow one, with a slow-call rule) opens the
    /// breaker again at once; `permitted_calls_in_half_open` successes close
    /// it (gobreaker's and hystrix-go's rule).
    FirstFailure,
}

/// The rules of a [`CircuitBreaker`](crate::CircuitBreaker), built and
/// checked by [`BreakerConfig::builder`].
///
/// ```
/// use std::time::Duration;
/// use seawall_breaker::BreakerConfig;
///
/// let config = BreakerConfig::builder()
///     .count_window(50)
///     .minimum_calls(10)
///     .failure_rate_threshold(40.0)
///     .slow_calls(Duration::from_secs(2), 80.0)
///     .consecutive_failures(5)
///     .wait_in_open(Duration::from_secs(10))
///     .permitted_calls_in_half_open(2)
///     .build()?;
/// assert_eq!(config.minimum_calls(), 10);
///
/// let err = BreakerConfig::builder().minimum_calls(200).build().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "minimum_calls: must not exceed the window of 100 calls (set count_window to at least 200), got 200",
/// );
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub(crate) window: u32,
    /// A time window of this many buckets instead of the count window.
    pub(crate) time_window: Option<u32>,
    /// The time window's bucket width.
    pub(crate) bucket_width: Duration,
    pub(crate) minimum_calls: u32,
    /// Whether the window and its rates are judged at all (off with
    /// `consecutive_failures_only`).
    pub(crate) rates: bool,
    /// Parts per million.
    pub(crate) failure_rate: u32,
    pub(crate) slow_call_duration: Option<Duration>,
    /// Parts per million.
    pub(crate) slow_rate: u32,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) wait_in_open: Duration,
    pub(crate) wait_growth: Option<(f64, Duration)>,
    /// Each open wait is drawn from `wait × (1 ± jitter)`.
    pub(crate) wait_jitter: f64,
    pub(crate) half_open_calls: u32,
    pub(crate) trial_rule: TrialRule,
    pub(crate) max_wait_in_half_open: Duration,
    /// Set by hand, instead of derived.
    pub(crate) dropped_trial_failure_after: Option<Duration>,
    /// The deadline of each call made through the breaker, if any.
    pub(crate) timeout: Option<Duration>,
}

impl BreakerConfig {
    /// A builder with the defaults: a window of the last 100 calls, at least
    /// 10 calls before judging, open at a 50% failure rate, no slow-call or
    /// consecutive-failure rule, 5 s open, 3 trial calls in half-open for at
    /// most 30 s, no timeout.
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder {
            config: Self {
                window: 100,
                time_window: None,
                bucket_width: Duration::from_secs(1),
                minimum_calls: 10,
                rates: true,
                failure_rate: 500_000,
                slow_call_duration: None,
                slow_rate: 1_000_000,
                consecutive_failures: None,
                wait_in_open: Duration::from_secs(5),
                wait_growth: None,
                wait_jitter: 0.0,
                half_open_calls: 3,
                trial_rule: TrialRule::Rates,
                max_wait_in_half_open: Duration::from_secs(30),
                dropped_trial_failure_after: None,
                timeout: None,
            },
            time_window: None,
            bucket_width: None,
            trial_rule: None,
            windowed: None,
            failure_rate: 50.0,
            slow_rate: 100.0,
        }
    }

    /// Calls in the count window (when there is no time window).
    #[must_use]
    pub fn window(&self) -> u32 {
        self.window
    }

    /// The time window, if the breaker judges the last so many seconds
    /// instead of the last so many calls.
    #[must_use]
    pub fn time_window(&self) -> Option<Duration> {
        self.time_window.map(|buckets| self.bucket_width * buckets)
    }

    /// The time window's bucket width (1 s unless set).
    #[must_use]
    pub fn bucket_width(&self) -> Duration {
        self.bucket_width
    }

    /// Whether the failure-rate and slow-call rules apply (not with
    /// [`consecutive_failures_only`](BreakerConfigBuilder::consecutive_failures_only)).
    #[must_use]
    pub fn judges_rates(&self) -> bool {
        self.rates
    }

    /// How half-open's trials decide.
    #[must_use]
    pub fn trial_rule(&self) -> TrialRule {
        self.trial_rule
    }

    /// How long half-open may last before the breaker opens again.
    #[must_use]
    pub fn max_wait_in_half_open(&self) -> Duration {
        self.max_wait_in_half_open
    }

    /// How long a trial call dropped unfinished (by a timeout outside the
    /// breaker, or a caller that went away) must have run to count as a
    /// failure rather than as ignored: as set by
    /// [`BreakerConfigBuilder::dropped_trial_failure_after`], else the
    /// slow-call duration if there is a slow-call rule, otherwise half of
    /// [`max_wait_in_half_open`](Self::max_wait_in_half_open), but at least
    /// 1 ms (so a trial dropped as soon as it started is not a failure).
    #[must_use]
    pub fn dropped_trial_failure_after(&self) -> Duration {
        self.dropped_trial_failure_after.unwrap_or_else(|| {
            self.slow_call_duration
                .unwrap_or(self.max_wait_in_half_open / 2)
                .max(Duration::from_millis(1))
        })
    }

    /// The deadline of each call through the breaker, if it has one.
    #[must_use]
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Calls recorded before the rates are judged.
    #[must_use]
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }

    /// How long the breaker stays open after the `reopenings`-th opening in
    /// a row (0 for the first), growing as configured, before jitter.
    #[must_use]
    pub fn wait_in_open_after(&self, reopenings: u32) -> Duration {
        match self.wait_growth {
            None => self.wait_in_open,
            Some((multiplier, max)) => {
                let grown = self.wait_in_open.as_secs_f64()
                    * multiplier.powi(i32::try_from(reopenings).unwrap_or(i32::MAX));
                if grown.is_finite() && grown < max.as_secs_f64() {
                    Duration::from_secs_f64(grown)
                } else {
                    max
                }
            }
        }
    }
}

/// Builds a [`BreakerConfig`]; see there.
#[derive(Debug, Clone)]
#[must_use]
pub struct BreakerConfigBuilder {
    config: BreakerConfig,
    time_window: Option<Duration>,
    bucket_width: Option<Duration>,
    trial_rule: Option<TrialRule>,
    failure_rate: f64,
    slow_rate: f64,
    /// The first window or rate setter called, which
    /// `consecutive_failures_only` would make meaningless.
    windowed: Option<&'static str>,
}

impl BreakerConfigBuilder {
    /// Judge the last `calls` calls (default 100).
    pub fn count_window(mut self, calls: u32) -> Self {
        self.windowed.get_or_insert("count_window");
        self.config.window = calls;
        self.time_window = None;
        self
    }

    /// Judge the calls of the last `duration` instead, in buckets of
    /// [`bucket_width`](Self::bucket_width) (one second unless set): a whole
    /// number of buckets, at most 3,600 of them.
    pub fn time_window(mut self, duration: Duration) -> Self {
        self.windowed.get_or_insert("time_window");
        self.time_window = Some(duration);
        self
    }

    /// Judge the calls of the current `interval` only, counting from zero
    /// again when the next one starts (gobreaker's `Interval`): a time
    /// window of one bucket, `interval` wide. Intervals start at whole
    /// multiples of `interval` on the breaker's clock, not when it closed.
    pub fn tumbling_window(self, interval: Duration) -> Self {
        self.time_window(interval).bucket_width(interval)
    }

    /// The width of the time window's buckets (default 1 s, at least 1 ms):
    /// the window moves on a bucket at a time, so a call leaves it between
    /// `time_window - bucket_width` and `time_window` after it was
    /// recorded. Only with [`time_window`](Self::time_window).
    pub fn bucket_width(mut self, width: Duration) -> Self {
        self.bucket_width = Some(width);
        self
    }

    /// Judge nothing until `calls` calls are in the window (default 10).
    /// The rule applies as soon as that many are recorded, not only once
    /// the window is full.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.windowed.get_or_insert("minimum_calls");
        self.config.minimum_calls = calls;
        self
    }

    /// Open when this percentage of the calls in the window failed
    /// (default 50).
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.windowed.get_or_insert("failure_rate_threshold");
        self.failure_rate = percent;
        self
    }

    /// Count calls lasting `duration` or longer as slow, and open when
    /// `percent` of the calls in the window were slow. Off by default.
    pub fn slow_calls(mut self, duration: Duration, percent: f64) -> Self {
        self.config.slow_call_duration = Some(duration);
        self.slow_rate = percent;
        self
    }

    /// Also open after `failures` failures in a row, whatever the rate (as
    /// gobreaker and hystrix-go users expect). Off by default.
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.config.consecutive_failures = Some(failures);
        self
    }

    /// Open after `failures` failures in a row and on nothing else (the
    /// default rule of gobreaker): no window, no failure-rate or slow-call
    /// rule. Half-open then follows [`TrialRule::FirstFailure`]. `build`
    /// refuses it together with a window or rate setting.
    pub fn consecutive_failures_only(mut self, failures: u32) -> Self {
        self.config.consecutive_failures = Some(failures);
        self.config.rates = false;
        self
    }

    /// How half-open's trials decide (default [`TrialRule::Rates`]).
    pub fn trial_rule(mut self, rule: TrialRule) -> Self {
        self.trial_rule = Some(rule);
        self
    }

    /// Stay open this long before letting trial calls through (default 5 s).
    pub fn wait_in_open(mut self, wait: Duration) -> Self {
        self.config.wait_in_open = wait;
        self
    }

    /// Multiply the open wait by `multiplier` each time the breaker reopens
    /// from half-open, up to `max`. Off by default.
    pub fn wait_growth(mut self, multiplier: f64, max: Duration) -> Self {
        self.config.wait_growth = Some((multiplier, max));
        self
    }

    /// Spread the waits (default 0, none): each open wait is drawn
    /// uniformly from `wait × (1 ± factor)`, so breakers in many processes
    /// that opened together do not half-open together; and each refusal's
    /// `retry_after` is drawn from `left × [1, 1 + factor]`, so the callers
    /// one breaker refuses are not all told the same instant (never less
    /// than the time left). `factor` is in `[0, 1)`.
    pub fn wait_jitter(mut self, factor: f64) -> Self {
        self.config.wait_jitter = factor;
        self
    }

    /// Let exactly this many trial calls through in half-open (default 3);
    /// their outcomes decide closed or open again.
    pub fn permitted_calls_in_half_open(mut self, calls: u32) -> Self {
        self.config.half_open_calls = calls;
        self
    }

    /// Open again if half-open has lasted this long without its trials
    /// deciding (default 30 s; resilience4j's `maxWaitDurationInHalfOpenState`).
    /// Trials that hang would otherwise keep every other caller refused for
    /// as long as they hang. A half-open period that let no trial through
    /// (or whose trials were all dropped early) half-opens afresh instead. It also sets how long a dropped trial must have
    /// run to count as a failure: see
    /// [`BreakerConfig::dropped_trial_failure_after`].
    pub fn max_wait_in_half_open(mut self, wait: Duration) -> Self {
        self.config.max_wait_in_half_open = wait;
        self
    }

    /// A half-open trial dropped unfinished after running this long counts
    /// as a failure (shorter, as ignored). By default the slow-call
    /// duration, or half of `max_wait_in_half_open`: set it to just under a
    /// timeout placed outside the breaker, so the trials that timeout cuts
    /// off count against the dependency. At least 1 ms.
    pub fn dropped_trial_failure_after(mut self, ran: Duration) -> Self {
        self.config.dropped_trial_failure_after = Some(ran);
        self
    }

    /// Gives up on a call through the breaker after `after` (none by
    /// default): [`call`](crate::CircuitBreaker::call) and the tower layer
    /// drop it, count it as a failure and answer
    /// [`BreakerError::TimedOut`](crate::BreakerError::TimedOut). Permits
    /// from `try_acquire` carry no deadline; their user keeps time.
    ///
    /// The deadline is a tokio timer, so calls need a tokio runtime with
    /// time enabled. In the tower layer it starts when the inner future first
    /// returns pending: a call that answers at once never sets a timer.
    pub fn timeout(mut self, after: Duration) -> Self {
        self.config.timeout = Some(after);
        self
    }

    /// Checks the values and builds the config.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field out of range.
    pub fn build(self) -> Result<BreakerConfig, ConfigError> {
        let Self {
            mut config,
            time_window,
            bucket_width,
            trial_rule,
            failure_rate,
            slow_rate,
            windowed,
        } = self;
        if config.rates {
            config.trial_rule = trial_rule.unwrap_or_default();
        } else {
            if let Some(field) = windowed {
                return Err(ConfigError::invalid(
                    field,
                    "cannot be set together with consecutive_failures_only, which keeps no window",
                ));
            }
            if config.slow_call_duration.is_some() {
                return Err(ConfigError::invalid(
                    "slow_calls",
                    "cannot be set together with consecutive_failures_only, which judges no rates",
                ));
            }
            if trial_rule == Some(TrialRule::Rates) {
                return Err(ConfigError::invalid(
                    "trial_rule",
                    "rates needs the failure-rate rule, which consecutive_failures_only turns off",
                ));
            }
            config.trial_rule = TrialRule::FirstFailure;
        }
        if let Some(width) = bucket_width {
            if time_window.is_none() {
                return Err(ConfigError::new(
                    "bucket_width",
                    "needs a time_window",
                    format_args!("{width:?}"),
                ));
            }
            if width < Duration::from_millis(1) {
                return Err(ConfigError::new(
                    "bucket_width",
                    "must be at least 1ms",
                    format_args!("{width:?}"),
                ));
            }
            config.bucket_width = width;
        }
        if let Some(window) = time_window {
            let width = config.bucket_width;
            let buckets = window.as_nanos() / width.as_nanos();
            if window.as_nanos() % width.as_nanos() != 0
                || buckets == 0
                || buckets > u128::from(MAX_BUCKETS)
            {
                return Err(ConfigError::new(
                    "time_window",
                    format!(
                        "must be a whole number of buckets of {width:?} (bucket_width), \
                         from 1 to {MAX_BUCKETS} of them"
                    ),
                    format_args!("{window:?}"),
                ));
            }
            config.time_window = u32::try_from(buckets).ok();
        }
        if config.window == 0 || config.window > MAX_WINDOW {
            return Err(ConfigError::new(
                "count_window",
                format!("must be between 1 and {MAX_WINDOW} calls"),
                config.window,
            ));
        }
        if config.minimum_calls == 0 {
            return Err(ConfigError::new("minimum_calls", "must be at least 1", 0));
        }
        if config.time_window.is_none() && config.minimum_calls > config.window {
            return Err(ConfigError::new(
                "minimum_calls",
                format!(
                    "must not exceed the window of {} calls (set count_window to at least {})",
                    config.window, config.minimum_calls
                ),
                config.minimum_calls,
            ));
        }
        config.failure_rate = ppm("failure_rate_threshold", failure_rate)?;
        config.slow_rate = ppm("slow_calls.rate_threshold", slow_rate)?;
        if config.slow_call_duration.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "slow_calls.duration",
                "must be longer than zero",
                "0s",
            ));
        }
        if config.timeout.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "timeout",
                "must be longer than zero",
                "0s",
            ));
        }
        if config.consecutive_failures == Some(0) {
            return Err(ConfigError::new(
                "consecutive_failures",
                "must be at least 1",
                0,
            ));
        }
        if config.wait_in_open.is_zero() {
            return Err(ConfigError::new(
                "wait_in_open",
                "must be longer than zero",
                "0s",
            ));
        }
        if let Some((multiplier, max)) = config.wait_growth {
            if !(multiplier.is_finite() && multiplier >= 1.0) {
                return Err(ConfigError::new(
                    "wait_growth.multiplier",
                    "must be at least 1",
                    multiplier,
                ));
            }
            if max < config.wait_in_open {
                return Err(ConfigError::new(
                    "wait_growth.max",
                    "must be at least wait_in_open",
                    format_args!("{max:?}"),
                ));
            }
        }
        if !(config.wait_jitter >= 0.0 && config.wait_jitter < 1.0) {
            return Err(ConfigError::new(
                "wait_jitter",
                "must be in [0, 1)",
                config.wait_jitter,
            ));
        }
        if config
            .dropped_trial_failure_after
            .is_some_and(|d| d < Duration::from_millis(1))
        {
            return Err(ConfigError::new(
                "dropped_trial_failure_after",
                "must be at least 1ms",
                format_args!(
                    "{:?}",
                    config.dropped_trial_failure_after.unwrap_or_default()
                ),
            ));
        }
        if config.max_wait_in_half_open.is_zero() {
            return Err(ConfigError::new(
                "max_wait_in_half_open",
                "must be longer than zero",
                "0s",
            ));
        }
        if config.half_open_calls == 0 || config.half_open_calls > MAX_HALF_OPEN_CALLS {
            return Err(ConfigError::new(
                "permitted_calls_in_half_open",
                format!("must be between 1 and {MAX_HALF_OPEN_CALLS}"),
                config.half_open_calls,
            ));
        }
        if let Some(buckets) = config.time_window {
            let most = TimeWindow::cap(buckets) * u64::from(buckets);
            if u64::from(config.minimum_calls) > most {
                return Err(ConfigError::new(
                    "minimum_calls",
                    format!(
                        "must be at most {most}, what a time window of {buckets} buckets counts"
                    ),
                    config.minimum_calls,
                ));
            }
        }
        Ok(config)
    }
}

/// A percentage in (0, 100] as parts per million, at least one.
fn ppm(field: &'static str, percent: f64) -> Result<u32, ConfigError> {
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(ConfigError::new(field, "must be in (0, 100]", percent));
    }
    // Below half a part per million it would round to 0: every call would
    // cross it, even a success.
    if percent < 0.000_05 {
        return Err(ConfigError::new(
            field,
            "must be at least 0.00005 (half a part per million)",
            percent,
        ));
    }
    // In range by the check above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((percent * 10_000.0).round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(builder: BreakerConfigBuilder) -> String {
        builder.build().unwrap_err().to_string()
    }

    #[test]
    fn defaults_build() {
        let config = BreakerConfig::builder().build().unwrap();
        assert_eq!(
            (config.window, config.minimum_calls, config.failure_rate),
            (100, 10, 500_000)
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let b = BreakerConfig::builder;
        assert_eq!(
            err(b().count_window(0)),
            "count_window: must be between 1 and 524288 calls, got 0"
        );
        assert_eq!(
            err(b().time_window(Duration::from_millis(1500))),
            "time_window: must be a whole number of buckets of 1s (bucket_width), from 1 to 3600 of them, got 1.5s"
        );
        assert_eq!(
            err(b().time_window(Duration::ZERO)),
            "time_window: must be a whole number of buckets of 1s (bucket_width), from 1 to 3600 of them, got 0ns"
        );
        assert!(
            b().time_window(Duration::from_secs(60))
                .minimum_calls(500)
                .build()
                .is_ok()
        );
        assert_eq!(
            err(b().failure_rate_threshold(0.0)),
            "failure_rate_threshold: must be in (0, 100], got 0"
        );
        assert_eq!(
            err(b().failure_rate_threshold(0.00004)),
            "failure_rate_threshold: must be at least 0.00005 (half a part per million), got 0.00004"
        );
        assert_eq!(
            err(b().bucket_width(Duration::from_millis(100))),
            "bucket_width: needs a time_window, got 100ms"
        );
        assert_eq!(
            err(b()
                .time_window(Duration::from_secs(1))
                .bucket_width(Duration::from_micros(10))),
            "bucket_width: must be at least 1ms, got 10µs"
        );
        assert_eq!(
            err(b()
                .time_window(Duration::from_secs(10))
                .bucket_width(Duration::from_secs(3))),
            "time_window: must be a whole number of buckets of 3s (bucket_width), from 1 to 3600 of them, got 10s"
        );
        assert_eq!(
            err(b().time_window(Duration::from_secs(3601))),
            "time_window: must be a whole number of buckets of 1s (bucket_width), from 1 to 3600 of them, got 3601s"
        );
        assert_eq!(
            err(b().minimum_calls(200)),
            "minimum_calls: must not exceed the window of 100 calls (set count_window to at least 200), got 200"
        );
        assert_eq!(
            err(b().wait_jitter(1.0)),
            "wait_jitter: must be in [0, 1), got 1"
        );
        assert_eq!(
            err(b().dropped_trial_failure_after(Duration::from_micros(10))),
            "dropped_trial_failure_after: must be at least 1ms, got 10µs"
        );
        assert_eq!(
            b().dropped_trial_failure_after(Duration::from_millis(900))
                .build()
                .unwrap()
                .dropped_trial_failure_after(),
            Duration::from_millis(900)
        );
        assert_eq!(
            b().max_wait_in_half_open(Duration::from_nanos(1))
                .build()
                .unwrap()
                .dropped_trial_failure_after(),
            Duration::from_millis(1),
            "derived, and never under 1 ms either"
        );
        assert_eq!(
            err(b().max_wait_in_half_open(Duration::ZERO)),
            "max_wait_in_half_open: must be longer than zero, got 0s"
        );
        let ten_hours = b()
            .time_window(Duration::from_secs(36_000))
            .bucket_width(Duration::from_secs(10))
            .build()
            .unwrap();
        assert_eq!(ten_hours.time_window(), Some(Duration::from_secs(36_000)));
        assert_eq!(
            b().failure_rate_threshold(0.00005)
                .build()
                .unwrap()
                .failure_rate,
            1
        );
        assert_eq!(
            err(b().failure_rate_threshold(f64::NAN)),
            "failure_rate_threshold: must be in (0, 100], got NaN"
        );
        assert_eq!(
            err(b().slow_calls(Duration::ZERO, 50.0)),
            "slow_calls.duration: must be longer than zero, got 0s"
        );
        assert_eq!(
            err(b().slow_calls(Duration::from_secs(1), 101.0)),
            "slow_calls.rate_threshold: must be in (0, 100], got 101"
        );
        assert_eq!(
            err(b().consecutive_failures(0)),
            "consecutive_failures: must be at least 1, got 0"
        );
        assert_eq!(
            err(b().wait_in_open(Duration::ZERO)),
            "wait_in_open: must be longer than zero, got 0s"
        );
        assert_eq!(
            err(b().wait_growth(0.5, Duration::from_secs(60))),
            "wait_growth.multiplier: must be at least 1, got 0.5"
        );
        assert_eq!(
            err(b().wait_growth(2.0, Duration::from_secs(1))),
            "wait_growth.max: must be at least wait_in_open, got 1s"
        );
        assert_eq!(
            err(b().timeout(Duration::ZERO)),
            "timeout: must be longer than zero, got 0s"
        );
        assert_eq!(
            err(b().permitted_calls_in_half_open(0)),
            "permitted_calls_in_half_open: must be between 1 and 10000, got 0"
        );
    }

    #[test]
    fn half_open_trials_are_bounded() {
        assert_eq!(
            err(BreakerConfig::builder().permitted_calls_in_half_open(10_001)),
            "permitted_calls_in_half_open: must be between 1 and 10000, got 10001"
        );
    }

    #[test]
    fn open_wait_grows_and_caps() {
        let config = BreakerConfig::builder()
            .wait_in_open(Duration::from_secs(1))
            .wait_growth(2.0, Duration::from_secs(10))
            .build()
            .unwrap();
        let waits: Vec<u64> = (0..6)
            .map(|n| config.wait_in_open_after(n).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(config.wait_in_open_after(u32::MAX), Duration::from_secs(10));
    }
}
