//! Serde for the limiters' settings (feature `serde`): each goes through
//! its builder, so a document can hold nothing the builder would refuse.

use std::time::Duration;

use seawall_core::config::report;
use seawall_core::{ConfigError, MonotonicClock};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::keyed::{KeyedRateLimiter, KeyedRateLimiterBuilder};
use crate::limiter::{RateLimiter, RateLimiterBuilder};
use crate::quota::{Kind, Quota};

/// A [`Quota`] as a document holds it: `rate` per `period` (default one
/// second), `burst` (default `rate`); `rate = 0` is a budget of `burst`
/// that never refills, and `rate = "unlimited"` admits everything.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    rate: Rate,
    #[serde(default = "one_second", with = "seawall_core::duration::serde")]
    period: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    burst: Option<u32>,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

/// A quota's `rate`: a count per period, or the word `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rate {
    Count(u32),
    Unlimited,
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Rate;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"a count per period (0 to 4294967295) or "unlimited""#)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Rate, E> {
                u32::try_from(v)
                    .map(Rate::Count)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Rate, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Rate, E> {
                if v == "unlimited" {
                    Ok(Rate::Unlimited)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Count(count) => serializer.serialize_u32(*count),
            Self::Unlimited => serializer.serialize_str("unlimited"),
        }
    }
}

impl RawQuota {
    fn build(&self) -> Result<Quota, ConfigError> {
        let count = match self.rate {
            Rate::Count(count) => count,
            Rate::Unlimited if self.burst.is_some() => {
                return Err(ConfigError::invalid(
                    "burst",
                    r#"must be left out when rate is "unlimited""#,
                ));
            }
            Rate::Unlimited => return Ok(Quota::unlimited()),
        };
        let builder = Quota::per(self.period, count);
        match self.burst {
            Some(burst) => builder.burst(burst).build(),
            None => builder.build(),
        }
    }

    /// The quota in the plainest words that read back to it: so many per
    /// second, minute or hour when that gives the same interval (which
    /// [`Quota::per`] rounds down to whole nanoseconds), else one per
    /// interval.
    fn of(quota: Quota) -> Self {
        let interval = match quota.kind() {
            Kind::Rate(interval) => interval,
            Kind::Unlimited => {
                return Self {
                    rate: Rate::Unlimited,
                    period: one_second(),
                    burst: None,
                };
            }
            Kind::Budget => {
                return Self {
                    rate: Rate::Count(0),
                    period: one_second(),
                    burst: Some(quota.burst()),
                };
            }
        };
        let (rate, period) = [1, 60, 3_600]
            .into_iter()
            .find_map(|seconds| {
                let nanos = seconds * 1_000_000_000;
                let rate = u32::try_from(nanos / interval).ok().filter(|&r| r > 0)?;
                (nanos / u64::from(rate) == interval)
                    .then_some((rate, Duration::from_secs(seconds)))
            })
            .unwrap_or((1, Duration::from_nanos(interval)));
        Self {
            rate: Rate::Count(rate),
            period,
            burst: Some(quota.burst()),
        }
    }
}

/// Reads `rate` (requests per `period`), `period` (a duration, one second
/// if left out) and `burst` (`rate` if left out), through
/// [`Quota::per`]'s checks:
///
/// ```toml
/// rate = 100
/// period = "1s"
/// burst = 20
/// ```
impl<'de> Deserialize<'de> for Quota {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawQuota::deserialize(deserializer)?.build().map_err(report)
    }
}

/// Writes the quota as `rate` per `period` with its `burst`, in the
/// plainest period that keeps it exact (`100` per `"1s"`, `30` per
/// `"1m"`).
impl Serialize for Quota {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawQuota::of(*self).serialize(serializer)
    }
}

/// A limiter's settings: its quota's keys, and the builders' own. The
/// quota's keys are written out rather than a flattened [`RawQuota`]: serde
/// cannot deny unknown fields through `flatten`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawLimiter {
    rate: Rate,
    #[serde(default = "one_second", with = "seawall_core::duration::serde")]
    period: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// Plain limiter only.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    jitter: Option<Duration>,
    /// Keyed limiter only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_keys: Option<usize>,
}

impl RawLimiter {
    fn new(quota: Quota) -> Self {
        let RawQuota {
            rate,
            period,
            burst,
        } = RawQuota::of(quota);
        Self {
            rate,
            period,
            burst,
            name: None,
            jitter: None,
            max_keys: None,
        }
    }

    fn quota(&self) -> Result<Quota, ConfigError> {
        RawQuota {
            rate: self.rate,
            period: self.period,
            burst: self.burst,
        }
        .build()
    }
}

/// Reads a limiter's settings: the quota's `rate`, `period` and `burst`,
/// then `name` and `jitter` (a duration). The clock is the production one;
/// set another on the builder before `build`.
///
/// ```toml
/// rate = 100
/// burst = 20
/// name = "api"
/// jitter = "5ms"
/// ```
impl<'de> Deserialize<'de> for RateLimiterBuilder<MonotonicClock> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawLimiter::deserialize(deserializer)?;
        if raw.max_keys.is_some() {
            return Err(report(ConfigError::invalid(
                "max_keys",
                "is for keyed limiters only",
            )));
        }
        let mut builder = RateLimiter::builder(raw.quota().map_err(report)?);
        if let Some(name) = &raw.name {
            builder = builder.name(name);
        }
        if let Some(jitter) = raw.jitter {
            builder = builder.jitter(jitter);
        }
        Ok(builder)
    }
}

/// Writes the settings [`Deserialize`] reads.
impl<C> Serialize for RateLimiterBuilder<C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (quota, jitter, name) = self.settings();
        RawLimiter {
            name: name.map(str::to_owned),
            jitter: (!jitter.is_zero()).then_some(jitter),
            ..RawLimiter::new(quota)
        }
        .serialize(serializer)
    }
}

/// Reads a keyed limiter's settings: the default quota's `rate`, `period`
/// and `burst`, then `max_keys` and `name`, with the checks of `build`.
/// The clock is the production one, and per-key quotas come from
/// [`quota_for`](KeyedRateLimiterBuilder::quota_for), which no document
/// holds.
///
/// ```toml
/// rate = 2
/// burst = 5
/// max_keys = 100000
/// name = "per-client"
/// ```
impl<'de, K> Deserialize<'de> for KeyedRateLimiterBuilder<K, MonotonicClock>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawLimiter::deserialize(deserializer)?;
        if raw.jitter.is_some() {
            return Err(report(ConfigError::invalid(
                "jitter",
                "is for plain limiters only",
            )));
        }
        let mut builder = KeyedRateLimiter::builder(raw.quota().map_err(report)?);
        if let Some(max_keys) = raw.max_keys {
            builder = builder.max_keys(max_keys);
        }
        if let Some(name) = &raw.name {
            builder = builder.name(name);
        }
        builder.check().map_err(report)?;
        Ok(builder)
    }
}

/// Writes the settings [`Deserialize`] reads (not a `quota_for` function).
impl<K, C> Serialize for KeyedRateLimiterBuilder<K, C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (quota, max_keys, name) = self.settings();
        RawLimiter {
            name: name.map(str::to_owned),
            max_keys: Some(max_keys),
            ..RawLimiter::new(quota)
        }
        .serialize(serializer)
    }
}
