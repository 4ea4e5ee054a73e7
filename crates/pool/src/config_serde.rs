//! Serde for [`PoolConfig`] (feature `serde`): it goes through the builder,
//! so a document can hold nothing the builder would refuse, and its keys are
//! the builder's setter names.

use std::time::Duration;

use seawall_core::ConfigError;
use seawall_core::config::report;
use seawall_core::duration::serde::OrOff;
use seawall_core::duration::{format, parse};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{CheckoutTest, PoolConfig};

/// A [`PoolConfig`] as a document holds it; optional durations take
/// `"off"` for none.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_idle: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    acquire_timeout: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    create_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idle_timeout: Option<OrOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_lifetime: Option<OrOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keepalive_interval: Option<OrOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    test_on_checkout: Option<CheckoutTest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    leak_detection_threshold: Option<OrOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fail_fast: Option<bool>,
}

/// `"always"`, `"never"`, or an idle time (`"500ms"`) past which the
/// object is checked.
impl<'de> Deserialize<'de> for CheckoutTest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            idle => parse(idle).map(Self::IdleLongerThan).map_err(|error| {
                serde::de::Error::custom(format_args!("{error}, or \"always\" or \"never\""))
            }),
        }
    }
}

/// As it is read: `"always"`, `"never"` or a duration.
impl Serialize for CheckoutTest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Always => serializer.serialize_str("always"),
            Self::Never => serializer.serialize_str("never"),
            Self::IdleLongerThan(idle) => serializer.serialize_str(&format(*idle)),
        }
    }
}

/// Reads a config through [`PoolConfig::builder`]: every key is optional
/// and named as the setter; `idle_timeout`, `max_lifetime`,
/// `keepalive_interval` and `leak_detection_threshold` take a duration or
/// `"off"`; `test_on_checkout` takes `"always"`, `"never"` or an idle time.
///
/// ```toml
/// name = "orders-db"
/// max_size = 16
/// min_idle = 4
/// acquire_timeout = "2s"
/// idle_timeout = "5m"
/// max_lifetime = "off"
/// test_on_checkout = "500ms"
/// ```
impl<'de> Deserialize<'de> for PoolConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawPool::deserialize(deserializer)?;
        build(raw).map_err(report)
    }
}

fn build(raw: RawPool) -> Result<PoolConfig, ConfigError> {
    let mut builder = PoolConfig::builder();
    if let Some(name) = raw.name {
        builder = builder.name(name);
    }
    if let Some(max_size) = raw.max_size {
        builder = builder.max_size(max_size);
    }
    if let Some(min_idle) = raw.min_idle {
        builder = builder.min_idle(min_idle);
    }
    if let Some(timeout) = raw.acquire_timeout {
        builder = builder.acquire_timeout(timeout);
    }
    if let Some(timeout) = raw.create_timeout {
        builder = builder.create_timeout(timeout);
    }
    if let Some(OrOff(timeout)) = raw.idle_timeout {
        builder = builder.idle_timeout(timeout);
    }
    if let Some(OrOff(lifetime)) = raw.max_lifetime {
        builder = builder.max_lifetime(lifetime);
    }
    if let Some(OrOff(interval)) = raw.keepalive_interval {
        builder = builder.keepalive_interval(interval);
    }
    if let Some(test) = raw.test_on_checkout {
        builder = builder.test_on_checkout(test);
    }
    if let Some(OrOff(threshold)) = raw.leak_detection_threshold {
        builder = builder.leak_detection_threshold(threshold);
    }
    if let Some(fail_fast) = raw.fail_fast {
        builder = builder.fail_fast(fail_fast);
    }
    builder.build()
}

/// Writes every setting, so the document reads back to the same config.
impl Serialize for PoolConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawPool {
            name: Some(self.name.clone()),
            max_size: Some(self.max_size),
            min_idle: self.min_idle,
            acquire_timeout: Some(self.acquire_timeout),
            create_timeout: Some(self.create_timeout),
            idle_timeout: Some(OrOff(self.idle_timeout)),
            max_lifetime: Some(OrOff(self.max_lifetime)),
            keepalive_interval: Some(OrOff(self.keepalive_interval)),
            test_on_checkout: Some(self.test_on_checkout),
            leak_detection_threshold: Some(OrOff(self.leak_detection_threshold)),
            fail_fast: Some(self.fail_fast),
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<PoolConfig, String> {
        seawall_core::config::deserialize(
            toml::Deserializer::parse(text).map_err(|e| e.to_string())?,
        )
        .map_err(|error| error.to_string())
    }

    #[test]
    fn a_document_reads_through_the_builder() {
        let config = read(
            "name = \"orders\"\nmax_size = 16\nmin_idle = 4\nacquire_timeout = \"2s\"\n\
             idle_timeout = \"off\"\ntest_on_checkout = \"always\"\nleak_detection_threshold = \"30s\"\n",
        )
        .unwrap();
        assert_eq!(config.name(), "orders");
        assert_eq!(config.max_size(), 16);
        assert_eq!(config.min_idle(), 4);
        assert_eq!(config.acquire_timeout(), Duration::from_secs(2));
        assert_eq!(config.idle_timeout(), None);
        assert_eq!(config.test_on_checkout(), CheckoutTest::Always);
        assert_eq!(
            config.leak_detection_threshold(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(read("").unwrap(), PoolConfig::builder().build().unwrap());
    }

    #[test]
    fn errors_name_the_key_as_written() {
        assert_eq!(
            read("max_size = 2\nmin_idle = 3\n").unwrap_err(),
            "min_idle: must not exceed max_size (2): raise max_size or lower min_idle, got 3"
        );
        let err = read("idle_timeout = \"soon\"\n").unwrap_err();
        assert!(err.starts_with("idle_timeout: "), "{err}");
        assert!(err.contains("or \"off\""), "{err}");
        let err = read("test_on_checkout = \"sometimes\"\n").unwrap_err();
        assert!(
            err.starts_with("test_on_checkout: ") && err.contains("\"always\""),
            "{err}"
        );
        let err = read("max_sise = 2\n").unwrap_err();
        assert!(err.contains("max_sise"), "{err}");
    }

    #[test]
    fn a_written_config_reads_back_the_same() {
        let config = PoolConfig::builder()
            .name("cache")
            .max_size(3)
            .max_lifetime(None)
            .test_on_checkout(CheckoutTest::IdleLongerThan(Duration::from_millis(250)))
            .build()
            .unwrap();
        let text = toml::to_string(&config).unwrap();
        assert_eq!(read(&text).unwrap(), config, "{text}");
        assert!(text.contains("max_lifetime = \"off\""), "{text}");
    }
}
