//! [`HystrixSettings`]: hystrix-go's five settings, mapped onto a breaker,
//! a bulkhead and a timeout.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use seawall_core::{ConfigError, MonotonicClock};

use crate::breaker::CircuitBreaker;
use crate::bulkhead::{Bulkhead, BulkheadFull};
use crate::config::BreakerConfig;
use crate::error::BreakerRefusal;
use crate::timeout::{TimedOut, Timeout, TimeoutError};

/// hystrix-go's command settings, with its defaults. [`build`](Self::build)
/// maps them onto seawall's parts:
///
/// | hystrix-go | default | seawall |
/// |---|---|---|
/// | `Timeout` | 1000 ms | [`Timeout::new`] |
/// | `MaxConcurrentRequests` | 10 | [`Bulkhead`] `max_concurrent`, refusing when full |
/// | `RequestVolumeThreshold` | 20 | `minimum_calls`, over a 10 s `time_window` (Hystrix's rolling window) |
/// | `SleepWindow` | 5000 ms | `wait_in_open`, then 1 trial call (as Hystrix) |
/// | `ErrorPercentThreshold` | 50 | `failure_rate_threshold` |
///
/// As in Hystrix, timeouts and bulkhead refusals count as failures.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seawall_core::ConfigError> {
/// use std::time::Duration;
/// use seawall_breaker::HystrixSettings;
///
/// let command = HystrixSettings {
///     timeout: Duration::from_millis(300),
///     max_concurrent_requests: 100,
///     ..HystrixSettings::default()
/// }
/// .build()?;
/// let answer = command.call(|| async { Ok::<_, std::io::Error>(42) }).await;
/// assert_eq!(answer.unwrap(), 42);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HystrixSettings {
    /// How long a call may take.
    pub timeout: Duration,
    /// How many calls may run at once.
    pub max_concurrent_requests: u32,
    /// How many calls the rolling window must hold before the error rate
    /// counts.
    pub request_volume_threshold: u32,
    /// How long the circuit stays open before a trial call.
    pub sleep_window: Duration,
    /// The error percentage that opens the circuit.
    pub error_percent_threshold: u32,
}

impl Default for HystrixSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(1_000),
            max_concurrent_requests: 10,
            request_volume_threshold: 20,
            sleep_window: Duration::from_millis(5_000),
            error_percent_threshold: 50,
        }
    }
}

impl HystrixSettings {
    /// Builds the breaker, bulkhead and timeout these settings describe.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting out of range, by its name here:
    /// `hystrix.error_percent_threshold: must be in (0, 100], got 0`.
    pub fn build(self) -> Result<Hystrix, ConfigError> {
        if self.timeout.is_zero() {
            return Err(
                ConfigError::new("timeout", "must be longer than zero", "0s").within("hystrix"),
            );
        }
        let breaker = BreakerConfig::builder()
            .time_window(Duration::from_secs(10))
            .minimum_calls(self.request_volume_threshold)
            .failure_rate_threshold(f64::from(self.error_percent_threshold))
            .wait_in_open(self.sleep_window)
            .permitted_calls_in_half_open(1)
            .build()
            .map_err(hystrix_names)?;
        let bulkhead = Bulkhead::builder()
            .max_concurrent(self.max_concurrent_requests)
            .build()
            .map_err(hystrix_names)?;
        Ok(Hystrix {
            breaker: CircuitBreaker::new(breaker),
            bulkhead,
            timeout: Timeout::new(self.timeout),
        })
    }
}

/// An error of the parts the settings map onto, under hystrix-go's name for
/// the setting.
fn hystrix_names(error: ConfigError) -> ConfigError {
    let theirs = match error.field() {
        "minimum_calls" => "request_volume_threshold",
        "failure_rate_threshold" => "error_percent_threshold",
        "wait_in_open" => "sleep_window",
        "max_concurrent" => "max_concurrent_requests",
        _ => return error.within("hystrix"),
    };
    error.renamed(theirs).within("hystrix")
}

/// A Hystrix-style command: circuit, then bulkhead, then timeout around
/// each call. Made by [`HystrixSettings::build`].
#[derive(Debug, Clone)]
pub struct Hystrix {
    breaker: CircuitBreaker<MonotonicClock>,
    bulkhead: Bulkhead,
    timeout: Timeout,
}

impl Hystrix {
    /// Runs `call` if the circuit and the bulkhead let it, for at most the
    /// timeout, and records the outcome (a timeout or a full bulkhead counts
    /// as a failure).
    ///
    /// # Errors
    ///
    /// The refusal, the timeout, or the call's own error; see
    /// [`HystrixError`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled.
    pub async fn call<T, E, F, Fut>(&self, call: F) -> Result<T, HystrixError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.breaker.try_acquire().map_err(HystrixError::Refused)?;
        let _place = match self.bulkhead.try_acquire() {
            Ok(place) => place,
            Err(full) => {
                permit.failure();
                return Err(HystrixError::Full(full));
            }
        };
        match self.timeout.call(call()).await {
            Ok(value) => {
                permit.success();
                Ok(value)
            }
            Err(TimeoutError::TimedOut(timed_out)) => {
                permit.failure();
                Err(HystrixError::Timeout(timed_out))
            }
            Err(TimeoutError::Inner(e)) => {
                permit.failure();
                Err(HystrixError::Inner(e))
            }
        }
    }

    /// The circuit breaker.
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker<MonotonicClock> {
        &self.breaker
    }

    /// The bulkhead.
    #[must_use]
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }

    /// The timeout.
    #[must_use]
    pub fn timeout(&self) -> Timeout {
        self.timeout
    }
}

/// Why a [`Hystrix`] call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HystrixError<E> {
    /// The circuit refused the call (open, forced open, trial in flight).
    Refused(BreakerRefusal),
    /// Every place in the bulkhead was taken.
    Full(BulkheadFull),
    /// The call took longer than the timeout.
    Timeout(TimedOut),
    /// The call failed with its own error.
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for HystrixError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(e) => e.fmt(f),
            Self::Full(e) => e.fmt(f),
            Self::Timeout(timed_out) => timed_out.fmt(f),
            Self::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for HystrixError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Inner(e) => e.source(),
            _ => None,
        }
    }
}
