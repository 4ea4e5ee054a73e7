//! Serde for [`RestartPolicy`] and [`RetryPolicy`] (feature `serde`): each
//! goes through its builder, so a document can hold nothing the builder
//! would refuse, and its keys are the builders' names.

use std::time::Duration;

use seawall_core::ConfigError;
use seawall_core::config::report;
use seawall_core::duration::serde::OrOff;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Jitter, Restart, RestartPolicy, RetryBudget, RetryPolicy};

/// A [`RestartPolicy`] as a document holds it.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRestart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restart: Option<Restart>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    initial_backoff: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    max_backoff: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_restarts: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    within: Option<Duration>,
}

/// Reads a policy through [`RestartPolicy::builder`]; every key is
/// optional.
///
/// ```toml
/// restart = "on_failure"   # or "always", "never"
/// initial_backoff = "100ms"
/// max_backoff = "30s"
/// max_restarts = 5
/// within = "60s"
/// ```
impl<'de> Deserialize<'de> for RestartPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawRestart::deserialize(deserializer)?;
        let default = RestartPolicy::default();
        let mut builder = RestartPolicy::builder();
        if let Some(restart) = raw.restart {
            builder = builder.restart(restart);
        }
        builder = builder.backoff(
            raw.initial_backoff.unwrap_or(default.initial_backoff()),
            raw.max_backoff.unwrap_or(default.max_backoff()),
        );
        builder = builder.max_restarts(
            raw.max_restarts.unwrap_or(default.max_restarts()),
            raw.within.unwrap_or(default.within()),
        );
        builder.build().map_err(report)
    }
}

/// Writes every setting, so the document reads back to the same policy.
impl Serialize for RestartPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawRestart {
            restart: Some(self.restart()),
            initial_backoff: Some(self.initial_backoff()),
            max_backoff: Some(self.max_backoff()),
            max_restarts: Some(self.max_restarts()),
            within: Some(self.within()),
        }
        .serialize(serializer)
    }
}

/// A [`RetryPolicy`] as a document holds it.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_total_time: Option<OrOff>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    initial_backoff: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    max_backoff: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<Jitter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    budget: Option<RawBudget>,
}

/// A [`RetryBudget`] as a document holds it.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    ratio: f64,
    #[serde(default)]
    min_per_second: u32,
    #[serde(with = "seawall_core::duration::serde")]
    window: Duration,
}

/// Reads a policy through [`RetryPolicy::builder`]; every key is optional,
/// `max_total_time` takes a duration or `"off"`, and `budget` is a table
/// (`min_per_second` defaults to 0).
///
/// ```toml
/// max_attempts = 4
/// max_total_time = "2s"
/// initial_backoff = "20ms"
/// max_backoff = "1s"
/// jitter = "decorrelated"      # or "full", "none"
/// budget = { ratio = 0.2, min_per_second = 10, window = "10s" }
/// ```
impl<'de> Deserialize<'de> for RetryPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawRetry::deserialize(deserializer)?;
        build_retry(raw).map_err(report)
    }
}

fn build_retry(raw: RawRetry) -> Result<RetryPolicy, ConfigError> {
    let default = RetryPolicy::default();
    let mut builder = RetryPolicy::builder();
    if let Some(attempts) = raw.max_attempts {
        builder = builder.max_attempts(attempts);
    }
    if let Some(OrOff(Some(limit))) = raw.max_total_time {
        builder = builder.max_total_time(limit);
    }
    builder = builder.backoff(
        raw.initial_backoff.unwrap_or(default.initial_backoff()),
        raw.max_backoff.unwrap_or(default.max_backoff()),
        raw.jitter.unwrap_or(default.jitter()),
    );
    if let Some(budget) = raw.budget {
        let budget = RetryBudget::new(budget.ratio, budget.min_per_second, budget.window)
            .map_err(|error| error.within("budget"))?;
        builder = builder.budget(budget);
    }
    builder.build()
}

/// Writes every setting, so the document reads back to the same policy (a
/// budget is written as its settings: the one read back is a new budget).
impl Serialize for RetryPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawRetry {
            max_attempts: Some(self.max_attempts()),
            max_total_time: Some(OrOff(self.max_total_time())),
            initial_backoff: Some(self.initial_backoff()),
            max_backoff: Some(self.max_backoff()),
            jitter: Some(self.jitter()),
            budget: self.budget().map(|budget| RawBudget {
                ratio: budget.ratio(),
                min_per_second: budget.min_per_second(),
                window: budget.window(),
            }),
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
        seawall_core::config::deserialize(
            toml::Deserializer::parse(text).map_err(|e| e.to_string())?,
        )
        .map_err(|error| error.to_string())
    }

    #[test]
    fn restart_policies_read_through_the_builder_and_back() {
        let policy: RestartPolicy = read(
            "restart = \"always\"\nmax_backoff = \"2s\"\nmax_restarts = 3\nwithin = \"10s\"\n",
        )
        .unwrap();
        assert_eq!(policy.restart(), Restart::Always);
        assert_eq!(policy.max_backoff(), Duration::from_secs(2));
        assert_eq!(
            (policy.max_restarts(), policy.within()),
            (3, Duration::from_secs(10))
        );
        let written = toml::to_string(&policy).unwrap();
        assert_eq!(read::<RestartPolicy>(&written).unwrap(), policy);

        let error = read::<RestartPolicy>("initial_backoff = \"1m\"\n").unwrap_err();
        assert_eq!(
            error,
            "max_backoff: must be at least initial_backoff (1m), got 30s"
        );
        let error = read::<RestartPolicy>("restart = \"sometimes\"\n").unwrap_err();
        assert!(
            error.starts_with("restart:") && error.contains("expected one of `always`"),
            "{error}"
        );
        let error = read::<RestartPolicy>("retsart = \"always\"\n").unwrap_err();
        assert!(error.contains("retsart"), "{error}");
    }

    #[test]
    fn retry_policies_read_through_the_builder_and_back() {
        let policy: RetryPolicy = read(
            "max_attempts = 4\nmax_total_time = \"2s\"\njitter = \"decorrelated\"\n\
             budget = { ratio = 0.2, min_per_second = 10, window = \"10s\" }\n",
        )
        .unwrap();
        assert_eq!(policy.max_attempts(), 4);
        assert_eq!(policy.max_total_time(), Some(Duration::from_secs(2)));
        assert_eq!(policy.budget().map(RetryBudget::ratio), Some(0.2));
        let written = toml::to_string(&policy).unwrap();
        let again: RetryPolicy = read(&written).unwrap();
        assert_eq!(toml::to_string(&again).unwrap(), written);

        let off: RetryPolicy = read("max_total_time = \"off\"\n").unwrap();
        assert_eq!(off.max_total_time(), None);
        let error = read::<RetryPolicy>("max_attempts = 0\n").unwrap_err();
        assert_eq!(error, "max_attempts: must be at least 1, got 0");
        let error =
            read::<RetryPolicy>("budget = { ratio = -1.0, window = \"10s\" }\n").unwrap_err();
        assert_eq!(
            error,
            "budget.ratio: must be a number from 0 to 1000, got -1"
        );
    }
}
