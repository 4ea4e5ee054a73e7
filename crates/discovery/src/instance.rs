//! [`Instance`]: one running copy of a service, as registries store it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use seawall_core::ConfigError;

/// One running copy of a service: where it listens and what balancers need
/// to know about it.
///
/// Two instances of one service are the same instance when their `id`s are
/// equal; registering an `id` again replaces what was registered under it.
///
/// # Examples
///
/// ```
/// use seawall_discovery::Instance;
///
/// let canary = Instance::new("api", "api-7", "10.0.0.7:8080".parse()?)
///     .weight(10)
///     .zone("eu-west-1a")
///     .version("2.4.0-rc1")
///     .meta("build", "4411");
/// assert_eq!(canary.weight, 10);
/// assert_eq!(canary.metadata["build"], "4411");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Instance {
    /// The instance's name, unique within its service.
    pub id: String,
    /// The service it is a copy of.
    pub service: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// Its share of traffic relative to the other instances (default 1; 0
    /// takes no traffic from balancers that weigh).
    pub weight: u32,
    /// The zone (or rack, or data centre) it runs in, for zone-aware
    /// balancing.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub zone: Option<String>,
    /// Its version, for canaries and for routing by version.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub version: Option<String>,
    /// Anything else, as text.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "BTreeMap::is_empty"))]
    pub metadata: BTreeMap<String, String>,
}

impl Instance {
    /// An instance of `service` called `id`, at `address`, of weight 1,
    /// with no zone, version or metadata.
    #[must_use]
    pub fn new(service: impl Into<String>, id: impl Into<String>, address: SocketAddr) -> Self {
        Self {
            id: id.into(),
            service: service.into(),
            address,
            weight: 1,
            zone: None,
            version: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Sets the weight.
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the zone.
    #[must_use]
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Sets the version.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Adds one metadata entry (replacing one of the same key).
    #[must_use]
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Checks what every registry relies on: a service and an id that are
    /// not empty, and hold no `/` (registries that store instances under
    /// keys build the key from them) and no control characters.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `service` or `id`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        name("service", &self.service)?;
        name("id", &self.id)
    }
}

fn name(field: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::invalid(field, "must not be empty"));
    }
    if value.contains('/') || value.chars().any(char::is_control) {
        return Err(ConfigError::new(
            field,
            "must hold no `/` and no control characters",
            value,
        ));
    }
    Ok(())
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Instance");
        out.field("service", &self.service)
            .field("id", &self.id)
            .field("address", &self.address)
            .field("weight", &self.weight);
        if let Some(zone) = &self.zone {
            out.field("zone", zone);
        }
        if let Some(version) = &self.version {
            out.field("version", version);
        }
        if !self.metadata.is_empty() {
            out.field("metadata", &self.metadata);
        }
        out.finish()
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Instance {
    /// Reads an instance and checks it as [`validate`](Instance::validate)
    /// does; `weight` defaults to 1.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            id: String,
            service: String,
            address: SocketAddr,
            #[serde(default = "one")]
            weight: u32,
            #[serde(default)]
            zone: Option<String>,
            #[serde(default)]
            version: Option<String>,
            #[serde(default)]
            metadata: BTreeMap<String, String>,
        }
        fn one() -> u32 {
            1
        }
        let raw = Raw::deserialize(deserializer)?;
        let instance = Instance {
            id: raw.id,
            service: raw.service,
            address: raw.address,
            weight: raw.weight,
            zone: raw.zone,
            version: raw.version,
            metadata: raw.metadata,
        };
        instance.validate().map_err(seawall_core::config::report)?;
        Ok(instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn names_are_checked() {
        assert!(Instance::new("api", "a-1", at(1)).validate().is_ok());
        let err = Instance::new("", "a-1", at(1)).validate().unwrap_err();
        assert_eq!(err.field(), "service");
        let err = Instance::new("api", "a/1", at(1)).validate().unwrap_err();
        assert_eq!(err.field(), "id");
        assert!(err.to_string().contains("a/1"), "{err}");
        let err = Instance::new("api", "a\n1", at(1)).validate().unwrap_err();
        assert_eq!(err.field(), "id");
    }
}
