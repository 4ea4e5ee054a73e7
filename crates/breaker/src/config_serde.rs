//! Serde for the breaker's configs (feature `serde`): each goes through its
//! builder, so a document can hold nothing the builder would refuse, and its
//! keys are the builder's setter names.

use std::time::Duration;

use seawall_core::ConfigError;
use seawall_core::config::report;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bulkhead::Bulkhead;
use crate::config::{BreakerConfig, TrialRule};
use crate::timeout::Timeout;

/// A [`BreakerConfig`] as a document holds it.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count_window: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    time_window: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    bucket_width: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    tumbling_window: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    minimum_calls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_rate_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slow_calls: Option<RawSlowCalls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consecutive_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consecutive_failures_only: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    wait_in_open: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wait_growth: Option<RawWaitGrowth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wait_jitter: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    permitted_calls_in_half_open: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trial_rule: Option<TrialRule>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    max_wait_in_half_open: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    dropped_trial_failure_after: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    timeout: Option<Duration>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSlowCalls {
    #[serde(with = "seawall_core::duration::serde")]
    duration: Duration,
    rate_threshold: f64,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawWaitGrowth {
    multiplier: f64,
    #[serde(with = "seawall_core::duration::serde")]
    max: Duration,
}

/// Reads the keys of [`BreakerConfig::builder`]'s setters; those left out
/// keep the builder's defaults. `slow_calls` and `wait_growth` are tables
/// of their setters' arguments; `count_window`, `time_window` and
/// `tumbling_window` exclude each other, and `consecutive_failures_only`
/// excludes every window and rate key:
///
/// ```toml
/// count_window = 100            # or: time_window = "60s", bucket_width = "1s"
/// minimum_calls = 10
/// failure_rate_threshold = 50
/// slow_calls = { duration = "2s", rate_threshold = 80 }
/// consecutive_failures = 5
/// wait_in_open = "5s"
/// wait_growth = { multiplier = 2.0, max = "1m" }
/// wait_jitter = 0.2
/// permitted_calls_in_half_open = 3
/// trial_rule = "rates"             # or "first-failure"
/// max_wait_in_half_open = "30s"
/// timeout = "1s"
/// ```
///
/// Values the builder refuses fail with its error, under the document's
/// path when read with `seawall_core::config::deserialize`.
impl<'de> Deserialize<'de> for BreakerConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawBreaker::deserialize(deserializer)?;
        if raw.count_window.is_some() && raw.time_window.is_some() {
            return Err(report(ConfigError::invalid(
                "time_window",
                "cannot be set together with count_window",
            )));
        }
        if raw.tumbling_window.is_some()
            && (raw.count_window.is_some()
                || raw.time_window.is_some()
                || raw.bucket_width.is_some())
        {
            return Err(report(ConfigError::invalid(
                "tumbling_window",
                "cannot be set together with count_window, time_window or bucket_width",
            )));
        }
        if raw.consecutive_failures_only.is_some() {
            let windowed = [
                ("count_window", raw.count_window.is_some()),
                ("time_window", raw.time_window.is_some()),
                ("tumbling_window", raw.tumbling_window.is_some()),
                ("minimum_calls", raw.minimum_calls.is_some()),
                (
                    "failure_rate_threshold",
                    raw.failure_rate_threshold.is_some(),
                ),
                ("consecutive_failures", raw.consecutive_failures.is_some()),
            ];
            if let Some((field, _)) = windowed.into_iter().find(|(_, set)| *set) {
                return Err(report(ConfigError::invalid(
                    field,
                    "cannot be set together with consecutive_failures_only",
                )));
            }
        }
        let mut builder = BreakerConfig::builder();
        if let Some(calls) = raw.count_window {
            builder = builder.count_window(calls);
        }
        if let Some(window) = raw.time_window {
            builder = builder.time_window(window);
        }
        if let Some(width) = raw.bucket_width {
            builder = builder.bucket_width(width);
        }
        if let Some(interval) = raw.tumbling_window {
            builder = builder.tumbling_window(interval);
        }
        if let Some(calls) = raw.minimum_calls {
            builder = builder.minimum_calls(calls);
        }
        if let Some(percent) = raw.failure_rate_threshold {
            builder = builder.failure_rate_threshold(percent);
        }
        if let Some(slow) = raw.slow_calls {
            builder = builder.slow_calls(slow.duration, slow.rate_threshold);
        }
        if let Some(failures) = raw.consecutive_failures {
            builder = builder.consecutive_failures(failures);
        }
        if let Some(failures) = raw.consecutive_failures_only {
            builder = builder.consecutive_failures_only(failures);
        }
        if let Some(rule) = raw.trial_rule {
            builder = builder.trial_rule(rule);
        }
        if let Some(wait) = raw.wait_in_open {
            builder = builder.wait_in_open(wait);
        }
        if let Some(growth) = raw.wait_growth {
            builder = builder.wait_growth(growth.multiplier, growth.max);
        }
        if let Some(factor) = raw.wait_jitter {
            builder = builder.wait_jitter(factor);
        }
        if let Some(calls) = raw.permitted_calls_in_half_open {
            builder = builder.permitted_calls_in_half_open(calls);
        }
        if let Some(wait) = raw.max_wait_in_half_open {
            builder = builder.max_wait_in_half_open(wait);
        }
        if let Some(ran) = raw.dropped_trial_failure_after {
            builder = builder.dropped_trial_failure_after(ran);
        }
        if let Some(after) = raw.timeout {
            builder = builder.timeout(after);
        }
        builder.build().map_err(report)
    }
}

/// Writes every setting, in the form [`Deserialize`] reads.
impl Serialize for BreakerConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let percent = |ppm: u32| f64::from(ppm) / 10_000.0;
        let rates = self.rates.then_some(());
        RawBreaker {
            count_window: rates.and(self.time_window.is_none().then_some(self.window)),
            time_window: rates.and(self.time_window()),
            bucket_width: rates.and(self.time_window.map(|_| self.bucket_width)),
            tumbling_window: None,
            minimum_calls: rates.map(|()| self.minimum_calls),
            failure_rate_threshold: rates.map(|()| percent(self.failure_rate)),
            slow_calls: self.slow_call_duration.map(|duration| RawSlowCalls {
                duration,
                rate_threshold: percent(self.slow_rate),
            }),
            consecutive_failures: rates.and(self.consecutive_failures),
            consecutive_failures_only: if self.rates {
                None
            } else {
                self.consecutive_failures
            },
            wait_in_open: Some(self.wait_in_open),
            wait_growth: self
                .wait_growth
                .map(|(multiplier, max)| RawWaitGrowth { multiplier, max }),
            wait_jitter: (self.wait_jitter > 0.0).then_some(self.wait_jitter),
            permitted_calls_in_half_open: Some(self.half_open_calls),
            trial_rule: rates.map(|()| self.trial_rule),
            max_wait_in_half_open: Some(self.max_wait_in_half_open),
            dropped_trial_failure_after: self.dropped_trial_failure_after,
            timeout: self.timeout,
        }
        .serialize(serializer)
    }
}

/// A [`Bulkhead`]'s settings as a document holds them.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawBulkhead {
    max_concurrent: u32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    max_wait: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_queue: Option<u32>,
}

/// Reads a new bulkhead from its builder's settings: `max_concurrent`
/// (required), `max_wait` (a duration), `max_queue`.
///
/// ```toml
/// max_concurrent = 32
/// max_wait = "50ms"
/// max_queue = 100
/// ```
impl<'de> Deserialize<'de> for Bulkhead {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawBulkhead::deserialize(deserializer)?;
        let mut builder = Bulkhead::builder().max_concurrent(raw.max_concurrent);
        if let Some(wait) = raw.max_wait {
            builder = builder.max_wait(wait);
        }
        if let Some(callers) = raw.max_queue {
            builder = builder.max_queue(callers);
        }
        builder.build().map_err(report)
    }
}

/// Writes the bulkhead's settings (not how many places are taken).
impl Serialize for Bulkhead {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (max_wait, max_queue) = self.line();
        RawBulkhead {
            max_concurrent: self.max_concurrent(),
            max_wait: (!max_wait.is_zero()).then_some(max_wait),
            max_queue: (max_queue != u32::MAX).then_some(max_queue),
        }
        .serialize(serializer)
    }
}

/// A timeout is its deadline, as a duration: `timeout = "1s"`. A deadline
/// of zero, which would time out every call that waits, is refused.
impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let after = seawall_core::duration::serde::deserialize(deserializer)?;
        if after.is_zero() {
            return Err(report(ConfigError::new(
                "",
                "must be longer than zero",
                "0s",
            )));
        }
        Ok(Timeout::new(after))
    }
}

/// Writes the deadline as a duration (`"1s"`).
impl Serialize for Timeout {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        seawall_core::duration::serde::serialize(&self.after(), serializer)
    }
}
