//! The pool's settings, with HikariCP's meanings and defaults.

use std::time::Duration;

use seawall_core::ConfigError;
use seawall_core::duration::format;

/// When an idle object is checked with [`Manager::check`](crate::Manager::check)
/// before it is handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckoutTest {
    /// At every checkout.
    Always,
    /// When it has been idle longer than this (HikariCP skips the check
    /// for a connection used in the last 500 ms, the default here).
    IdleLongerThan(Duration),
    /// Never: only [`Manager::is_broken`](crate::Manager::is_broken), which
    /// is asked at every checkout and return.
    Never,
}

/// A pool's settings: build with [`PoolConfig::builder`], then give to
/// [`Pool::new`](crate::Pool::new).
///
/// | Setting | Default | HikariCP |
/// |---|---|---|
/// | `name` | `default` | `poolName` |
/// | `max_size` | 10 | `maximumPoolSize` |
/// | `min_idle` | `max_size` (a fixed-size pool) | `minimumIdle` |
/// | `acquire_timeout` | 30 s | `connectionTimeout` |
/// | `create_timeout` | 10 s | (the driver's connect timeout; `validationTimeout` for checks) |
/// | `idle_timeout` | 10 min | `idleTimeout` |
/// | `max_lifetime` | 30 min | `maxLifetime` |
/// | `keepalive_interval` | none | `keepaliveTime` |
/// | `test_on_checkout` | idle longer than 500 ms | (always, skipped within 500 ms of use) |
/// | `leak_detection_threshold` | none | `leakDetectionThreshold` |
/// | `fail_fast` | true | `initializationFailTimeout` |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seawall_pool::PoolConfig;
///
/// let config = PoolConfig::builder()
///     .max_size(16)
///     .min_idle(4)
///     .acquire_timeout(Duration::from_secs(2))
///     .idle_timeout(None)
///     .build()?;
/// assert_eq!(config.max_size(), 16);
/// assert_eq!(config.idle_timeout(), None);
///
/// let err = PoolConfig::builder().max_size(4).min_idle(8).build().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "min_idle: must not exceed max_size (4): raise max_size or lower min_idle, got 8",
/// );
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub(crate) name: String,
    pub(crate) max_size: u32,
    pub(crate) min_idle: Option<u32>,
    pub(crate) acquire_timeout: Duration,
    pub(crate) create_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) test_on_checkout: CheckoutTest,
    pub(crate) leak_detection_threshold: Option<Duration>,
    pub(crate) fail_fast: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            max_size: 10,
            min_idle: None,
            acquire_timeout: Duration::from_secs(30),
            create_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1_800)),
            keepalive_interval: None,
            test_on_checkout: CheckoutTest::IdleLongerThan(Duration::from_millis(500)),
            leak_detection_threshold: None,
            fail_fast: true,
        }
    }
}

impl PoolConfig {
    /// A builder starting from the defaults in the table above.
    pub fn builder() -> PoolConfigBuilder {
        PoolConfigBuilder {
            config: Self::default(),
        }
    }

    /// The name that tracing events and metrics give the pool.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most objects the pool holds at once, idle and in use.
    pub fn max_size(&self) -> u32 {
        self.max_size
    }

    /// The idle objects the pool keeps ready (as HikariCP's
    /// `minimumIdle`): the upkeep task makes objects while fewer are idle
    /// and the pool is not full: at start, after a discard or a resize, and
    /// at each upkeep round (so not at once after checkouts, as bb8 does);
    /// `idle_timeout` never retires idle objects below it.
    pub fn min_idle(&self) -> u32 {
        self.min_idle.unwrap_or(self.max_size)
    }

    /// How long `get` waits for an object before it fails.
    pub fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    /// How long one [`Manager::create`](crate::Manager::create), or one
    /// [`Manager::check`](crate::Manager::check), may take.
    pub fn create_timeout(&self) -> Duration {
        self.create_timeout
    }

    /// How long an object may sit idle before it is retired (while more
    /// than `min_idle` are idle); `None` for never.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// How long an object lives at most, less a random share of up to 2.5%
    /// per object (so objects made together do not all retire together);
    /// `None` for no limit.
    pub fn max_lifetime(&self) -> Option<Duration> {
        self.max_lifetime
    }

    /// How often an idle object is checked, so that a peer or a firewall
    /// that drops quiet connections is found out before a caller is; `None`
    /// for never.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.keepalive_interval
    }

    /// When an idle object is checked before it is handed out.
    pub fn test_on_checkout(&self) -> CheckoutTest {
        self.test_on_checkout
    }

    /// How long an object may be held before a warning says where it was
    /// taken; `None` for no warnings.
    pub fn leak_detection_threshold(&self) -> Option<Duration> {
        self.leak_detection_threshold
    }

    /// Whether [`Pool::new`](crate::Pool::new) fails when its first object
    /// cannot be made.
    pub fn fail_fast(&self) -> bool {
        self.fail_fast
    }
}

/// Builds a [`PoolConfig`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone)]
#[must_use]
pub struct PoolConfigBuilder {
    config: PoolConfig,
}

impl PoolConfigBuilder {
    /// The name that tracing events and metrics (label `pool`) give the
    /// pool (`default` when unset).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// The most objects the pool holds at once (at least 1).
    pub fn max_size(mut self, max_size: u32) -> Self {
        self.config.max_size = max_size;
        self
    }

    /// The idle objects kept ready (at most `max_size`; `max_size` when
    /// unset).
    pub fn min_idle(mut self, min_idle: u32) -> Self {
        self.config.min_idle = Some(min_idle);
        self
    }

    /// How long `get` waits (longer than zero).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.config.acquire_timeout = timeout;
        self
    }

    /// How long one creation, or one check, may take (longer than zero).
    pub fn create_timeout(mut self, timeout: Duration) -> Self {
        self.config.create_timeout = timeout;
        self
    }

    /// How long an object may sit idle above `min_idle`; `None` for ever.
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.idle_timeout = timeout.into();
        self
    }

    /// How long an object lives at most; `None` for no limit.
    pub fn max_lifetime(mut self, lifetime: impl Into<Option<Duration>>) -> Self {
        self.config.max_lifetime = lifetime.into();
        self
    }

    /// How often idle objects are checked (shorter than `max_lifetime`);
    /// `None` for never.
    pub fn keepalive_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.config.keepalive_interval = interval.into();
        self
    }

    /// When idle objects are checked before they are handed out.
    pub fn test_on_checkout(mut self, test: CheckoutTest) -> Self {
        self.config.test_on_checkout = test;
        self
    }

    /// How long an object may be held before a warning; `None` for none.
    pub fn leak_detection_threshold(mut self, threshold: impl Into<Option<Duration>>) -> Self {
        self.config.leak_detection_threshold = threshold.into();
        self
    }

    /// Whether starting fails when the first object cannot be made.
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.config.fail_fast = fail_fast;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first setting that breaks its rule.
    pub fn build(self) -> Result<PoolConfig, ConfigError> {
        let config = self.config;
        if config.max_size == 0 {
            return Err(ConfigError::new("max_size", "must be at least 1", 0));
        }
        if let Some(min_idle) = config.min_idle.filter(|&min| min > config.max_size) {
            return Err(ConfigError::new(
                "min_idle",
                format!(
                    "must not exceed max_size ({}): raise max_size or lower min_idle",
                    config.max_size
                ),
                min_idle,
            ));
        }
        let positive = [
            ("acquire_timeout", Some(config.acquire_timeout)),
            ("create_timeout", Some(config.create_timeout)),
            ("idle_timeout", config.idle_timeout),
            ("max_lifetime", config.max_lifetime),
            ("keepalive_interval", config.keepalive_interval),
            ("leak_detection_threshold", config.leak_detection_threshold),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, d)| *d == Some(Duration::ZERO)) {
            return Err(ConfigError::new(*field, "must be longer than zero", "0s"));
        }
        if let CheckoutTest::IdleLongerThan(Duration::ZERO) = config.test_on_checkout {
            return Err(ConfigError::new(
                "test_on_checkout",
                "an idle time of zero is `always`: say always",
                "0s",
            ));
        }
        if let (Some(keepalive), Some(lifetime)) = (config.keepalive_interval, config.max_lifetime)
            && keepalive >= lifetime
        {
            return Err(ConfigError::new(
                "keepalive_interval",
                format!(
                    "must be shorter than max_lifetime ({}), or objects retire before they are checked",
                    format(lifetime)
                ),
                format(keepalive),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(builder: PoolConfigBuilder) -> String {
        builder.build().expect_err("invalid").to_string()
    }

    #[test]
    fn defaults_are_hikaricps() {
        let config = PoolConfig::builder().build().expect("valid");
        assert_eq!(config.max_size(), 10);
        assert_eq!(config.min_idle(), 10, "a fixed-size pool");
        assert_eq!(config.acquire_timeout(), Duration::from_secs(30));
        assert_eq!(config.idle_timeout(), Some(Duration::from_secs(600)));
        assert_eq!(config.max_lifetime(), Some(Duration::from_secs(1_800)));
        let config = PoolConfig::builder().max_size(3).build().expect("valid");
        assert_eq!(config.min_idle(), 3, "min_idle follows max_size");
    }

    #[test]
    fn each_rule_names_its_field() {
        let b = PoolConfig::builder;
        assert_eq!(
            error(b().max_size(0)),
            "max_size: must be at least 1, got 0"
        );
        assert_eq!(
            error(b().acquire_timeout(Duration::ZERO)),
            "acquire_timeout: must be longer than zero, got 0s"
        );
        assert_eq!(
            error(b().idle_timeout(Duration::ZERO)),
            "idle_timeout: must be longer than zero, got 0s"
        );
        assert_eq!(
            error(b().leak_detection_threshold(Duration::ZERO)),
            "leak_detection_threshold: must be longer than zero, got 0s"
        );
        assert_eq!(
            error(b().test_on_checkout(CheckoutTest::IdleLongerThan(Duration::ZERO))),
            "test_on_checkout: an idle time of zero is `always`: say always, got 0s"
        );
        assert_eq!(
            error(
                b().max_lifetime(Duration::from_secs(60))
                    .keepalive_interval(Duration::from_secs(60))
            ),
            "keepalive_interval: must be shorter than max_lifetime (1m), or objects retire \
             before they are checked, got 1m"
        );
        b().max_lifetime(None)
            .keepalive_interval(Duration::from_secs(3_600))
            .build()
            .expect("no lifetime: any interval");
    }
}
