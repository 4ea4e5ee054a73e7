//! [`HealthCheck`]: how to probe one instance, and how many probes in a
//! row turn it healthy or unhealthy.

use std::net::SocketAddr;
use std::time::Duration;

use seawall_core::ConfigError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An active health check: every `interval`, each instance is probed
/// (a TCP connection, or an HTTP `GET` that must answer `2xx`) within
/// `timeout`; `unhealthy_threshold` failures in a row take it out,
/// `healthy_threshold` passes in a row bring it back. A new instance is
/// probed at once: in if that probe passes, otherwise out until
/// `healthy_threshold` passes in a row.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seawall_discovery::HealthCheck;
///
/// let check = HealthCheck::http("/healthz")
///     .interval(Duration::from_secs(5))
///     .timeout(Duration::from_secs(1))
///     .thresholds(2, 3)
///     .build()?;
/// assert_eq!(check.get_interval(), Duration::from_secs(5));
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    probe: Probe,
    interval: Duration,
    timeout: Duration,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    Tcp,
    Http { path: String },
}

/// Builds a [`HealthCheck`].
#[derive(Debug, Clone)]
#[must_use]
pub struct HealthCheckBuilder(HealthCheck);

impl HealthCheck {
    /// Probes by opening a TCP connection to the instance's address.
    /// Every 10 s, within 2 s, 2 to come back, 3 to go out.
    pub fn tcp() -> HealthCheckBuilder {
        HealthCheckBuilder(Self {
            probe: Probe::Tcp,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        })
    }

    /// Probes with an HTTP/1.1 `GET path` to the instance's address, which
    /// must answer a `2xx` status. Defaults as [`tcp`](Self::tcp).
    pub fn http(path: impl Into<String>) -> HealthCheckBuilder {
        let mut builder = Self::tcp();
        builder.0.probe = Probe::Http { path: path.into() };
        builder
    }

    /// How often each instance is probed.
    #[must_use]
    pub fn get_interval(&self) -> Duration {
        self.interval
    }

    /// Probes `address` once: whether it passed.
    pub(crate) async fn probe(&self, address: SocketAddr) -> bool {
        let probe = async {
            let mut stream = TcpStream::connect(address).await?;
            match &self.probe {
                Probe::Tcp => Ok(true),
                Probe::Http { path } => http_ok(&mut stream, address, path).await,
            }
        };
        matches!(
            tokio::time::timeout(self.timeout, probe).await,
            Ok(Ok::<bool, std::io::Error>(true))
        )
    }

    pub(crate) fn thresholds(&self) -> (u32, u32) {
        (self.healthy_threshold, self.unhealthy_threshold)
    }
}

impl HealthCheckBuilder {
    /// How often each instance is probed (at least 10 ms).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.0.interval = interval;
        self
    }

    /// How long a probe may take (more than 0, at most the interval).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.0.timeout = timeout;
        self
    }

    /// Passes in a row that bring an instance back, and failures in a row
    /// that take it out (each at least 1).
    pub fn thresholds(mut self, healthy: u32, unhealthy: u32) -> Self {
        self.0.healthy_threshold = healthy;
        self.0.unhealthy_threshold = unhealthy;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `interval`, `timeout`,
    /// `healthy_threshold`, `unhealthy_threshold` or `path` (which must
    /// start with `/` and hold no whitespace or control characters).
    pub fn build(self) -> Result<HealthCheck, ConfigError> {
        let check = self.0;
        if check.interval < Duration::from_millis(10) {
            return Err(ConfigError::new(
                "interval",
                "must be at least 10ms",
                seawall_core::duration::format(check.interval),
            ));
        }
        if check.timeout.is_zero() || check.timeout > check.interval {
            return Err(ConfigError::new(
                "timeout",
                "must be more than 0 and at most the interval",
                seawall_core::duration::format(check.timeout),
            ));
        }
        if check.healthy_threshold == 0 {
            return Err(ConfigError::invalid(
                "healthy_threshold",
                "must be at least 1",
            ));
        }
        if check.unhealthy_threshold == 0 {
            return Err(ConfigError::invalid(
                "unhealthy_threshold",
                "must be at least 1",
            ));
        }
        if let Probe::Http { path } = &check.probe
            && (!path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(ConfigError::new(
                "path",
                "must start with `/` and hold no whitespace or control characters",
                path,
            ));
        }
        Ok(check)
    }
}

/// A [`HealthCheck`] as a document holds it.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    /// An HTTP path to `GET`; absent: a TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    interval: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    healthy_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unhealthy_threshold: Option<u32>,
}

/// Reads the builder's settings (feature `serde`); those left out keep
/// the defaults. Without `http`, the probe is a TCP connection:
///
/// ```toml
/// http = "/healthz"            # leave out for a TCP probe
/// interval = "5s"
/// timeout = "1s"
/// healthy_threshold = 2
/// unhealthy_threshold = 3
/// ```
///
/// Values the builder refuses fail with its error, under the document's
/// path when read with `seawall_core::config::deserialize`.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for HealthCheck {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <RawCheck as serde::Deserialize>::deserialize(deserializer)?;
        let mut builder = match raw.http {
            Some(path) => Self::http(path),
            None => Self::tcp(),
        };
        if let Some(interval) = raw.interval {
            builder = builder.interval(interval);
        }
        if let Some(timeout) = raw.timeout {
            builder = builder.timeout(timeout);
        }
        let (healthy, unhealthy) = builder.0.thresholds();
        builder = builder.thresholds(
            raw.healthy_threshold.unwrap_or(healthy),
            raw.unhealthy_threshold.unwrap_or(unhealthy),
        );
        builder
            .build()
            .map_err(|error| match error.field() {
                // The document names the path `http`.
                "path" => error.renamed("http"),
                _ => error,
            })
            .map_err(seawall_core::config::report)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for HealthCheck {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawCheck {
            http: match &self.probe {
                Probe::Tcp => None,
                Probe::Http { path } => Some(path.clone()),
            },
            interval: Some(self.interval),
            timeout: Some(self.timeout),
            healthy_threshold: Some(self.healthy_threshold),
            unhealthy_threshold: Some(self.unhealthy_threshold),
        };
        serde::Serialize::serialize(&raw, serializer)
    }
}

/// Sends `GET path` and reads the status line: whether it is `2xx`.
async fn http_ok(
    stream: &mut TcpStream,
    address: SocketAddr,
    path: &str,
) -> Result<bool, std::io::Error> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: seawall-health\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // "HTTP/1.1 200": the status is bytes 9 to 12 of the first line.
    let mut head = [0; 12];
    stream.read_exact(&mut head).await?;
    Ok(head.starts_with(b"HTTP/1.")
        && head[8] == b' '
        && head[9] == b'2'
        && head[10..].iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(HealthCheck::tcp().build().is_ok());
        let err = HealthCheck::tcp()
            .interval(Duration::from_millis(1))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "interval");
        let err = HealthCheck::tcp()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "timeout");
        let err = HealthCheck::tcp().thresholds(0, 1).build().unwrap_err();
        assert_eq!(err.field(), "healthy_threshold");
        let err = HealthCheck::http("healthz").build().unwrap_err();
        assert_eq!(err.field(), "path");
        let err = HealthCheck::http("/a b").build().unwrap_err();
        assert_eq!(err.field(), "path");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_document_goes_through_the_builder() {
        let read = |text: &str| {
            seawall_core::config::deserialize::<HealthCheck, _>(
                toml::Deserializer::parse(text).unwrap(),
            )
        };
        let check =
            read("http = \"/healthz\"\ninterval = \"5s\"\nunhealthy_threshold = 4").unwrap();
        let built = HealthCheck::http("/healthz")
            .interval(Duration::from_secs(5))
            .thresholds(2, 4)
            .build()
            .unwrap();
        assert_eq!(check, built);
        let again: HealthCheck = toml::from_str(&toml::to_string(&check).unwrap()).unwrap();
        assert_eq!(again, check);
        assert_eq!(read("").unwrap(), HealthCheck::tcp().build().unwrap());
        assert_eq!(read("timeout = \"1m\"").unwrap_err().field(), "timeout");
        assert_eq!(read("http = \"healthz\"").unwrap_err().field(), "http");
        assert!(read("probe = \"tcp\"").is_err());
    }
}
