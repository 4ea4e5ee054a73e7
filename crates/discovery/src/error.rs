//! [`DiscoveryError`]: why a registry could not do what was asked.

use std::error::Error;
use std::fmt;

use seawall_core::ConfigError;

/// A boxed error, as backends report their own.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Why a registry or a discovery source could not do what was asked.
#[derive(Debug)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// An instance, a time to live or a registry's setting is invalid (the
    /// [`ConfigError`] names the field and says why).
    Invalid(ConfigError),
    /// This source only reads (a static list, DNS): nothing registers in
    /// it.
    ReadOnly,
    /// The backend could not be reached, or answered with an error.
    Backend {
        /// Which backend (`"etcd"`, `"dns"`).
        backend: &'static str,
        /// What it said.
        source: BoxError,
    },
    /// The registry was closed, or its background task is gone.
    Closed,
}

impl DiscoveryError {
    /// A backend's error.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            source: source.into(),
        }
    }
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(_) => f.write_str("invalid instance or setting"),
            Self::ReadOnly => f.write_str("this discovery source is read-only"),
            Self::Backend { backend, .. } => write!(f, "{backend} registry failed"),
            Self::Closed => f.write_str("registry closed"),
        }
    }
}

impl Error for DiscoveryError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Invalid(invalid) => Some(invalid),
            Self::Backend { source, .. } => Some(&**source),
            Self::ReadOnly | Self::Closed => None,
        }
    }
}

impl From<ConfigError> for DiscoveryError {
    fn from(invalid: ConfigError) -> Self {
        Self::Invalid(invalid)
    }
}
