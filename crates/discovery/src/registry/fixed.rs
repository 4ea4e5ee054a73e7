//! [`StaticRegistry`]: a fixed list of instances, from code or config.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use seawall_core::ConfigError;
use tokio::sync::watch;

use super::{Discovery, InstanceSet, Watch, publish};
use crate::{DiscoveryError, Instance};

/// A fixed list of instances, for services whose addresses are known ahead
/// (from a config file, or from code). Nothing registers in it;
/// [`replace`](Self::replace) swaps the whole list (a reloaded config), and
/// watchers see the difference.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use seawall_discovery::{Discovery, Instance, StaticRegistry};
///
/// let registry = StaticRegistry::new([
///     Instance::new("db", "primary", "10.0.0.5:5432".parse()?),
///     Instance::new("db", "replica", "10.0.0.6:5432".parse()?).weight(2),
/// ])?;
/// assert_eq!(registry.instances("db").await?.len(), 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StaticRegistry {
    inner: Arc<Mutex<BTreeMap<String, watch::Sender<InstanceSet>>>>,
}

impl StaticRegistry {
    /// A registry of these instances.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `instances[i].service` or `instances[i].id`
    /// for an instance that fails [`Instance::validate`], or
    /// `instances[i].id` for an id its service already has.
    pub fn new(instances: impl IntoIterator<Item = Instance>) -> Result<Self, ConfigError> {
        let registry = Self {
            inner: Arc::default(),
        };
        registry.replace(instances)?;
        Ok(registry)
    }

    /// Replaces the whole list. Watchers of a service see what changed in
    /// it; a service no longer listed is seen to have no instances.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new); the list in force is then left as it was.
    pub fn replace(
        &self,
        instances: impl IntoIterator<Item = Instance>,
    ) -> Result<(), ConfigError> {
        let grouped = group(instances)?;
        let mut services = self.inner.lock();
        for (name, published) in services.iter() {
            if !grouped.contains_key(name) {
                publish(published, InstanceSet::default());
            }
        }
        for (name, set) in grouped {
            match services.get(&name) {
                Some(published) => publish(published, set),
                None => {
                    services.insert(name, watch::Sender::new(set));
                }
            }
        }
        Ok(())
    }
}

/// Checks and groups instances by service.
fn group(
    instances: impl IntoIterator<Item = Instance>,
) -> Result<BTreeMap<String, InstanceSet>, ConfigError> {
    let mut seen = HashSet::new();
    let mut grouped: BTreeMap<String, Vec<Arc<Instance>>> = BTreeMap::new();
    for (at, instance) in instances.into_iter().enumerate() {
        let within = || format!("instances[{at}]");
        instance.validate().map_err(|e| e.within(&within()))?;
        if !seen.insert((instance.service.clone(), instance.id.clone())) {
            return Err(
                ConfigError::new("id", "is listed twice for its service", &instance.id)
                    .within(&within()),
            );
        }
        grouped
            .entry(instance.service.clone())
            .or_default()
            .push(Arc::new(instance));
    }
    Ok(grouped
        .into_iter()
        .map(|(name, list)| (name, InstanceSet::new(list)))
        .collect())
}

impl Discovery for StaticRegistry {
    async fn watch(&self, service: &str) -> Result<Watch, DiscoveryError> {
        let mut services = self.inner.lock();
        let published = services
            .entry(service.to_owned())
            .or_insert_with(|| watch::Sender::new(InstanceSet::default()));
        Ok(Watch::new(service, published.subscribe()))
    }

    async fn instances(&self, service: &str) -> Result<InstanceSet, DiscoveryError> {
        Ok(self
            .inner
            .lock()
            .get(service)
            .map(|published| published.borrow().clone())
            .unwrap_or_default())
    }
}

impl fmt::Debug for StaticRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let services = self.inner.lock();
        f.debug_map()
            .entries(
                services
                    .iter()
                    .map(|(name, set)| (name, set.borrow().len())),
            )
            .finish()
    }
}

/// A [`StaticRegistry`]'s list as a config file holds it (feature `serde`).
///
/// ```toml
/// [[instances]]
/// service = "db"
/// id = "primary"
/// address = "10.0.0.5:5432"
///
/// [[instances]]
/// service = "db"
/// id = "replica"
/// address = "10.0.0.6:5432"
/// weight = 2
/// zone = "eu-west-1b"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct StaticConfig {
    /// The instances, of any services.
    pub instances: Vec<Instance>,
}

impl StaticConfig {
    /// A config listing these instances.
    #[must_use]
    pub fn new(instances: Vec<Instance>) -> Self {
        Self { instances }
    }

    /// The registry this config describes.
    ///
    /// # Errors
    ///
    /// As [`StaticRegistry::new`].
    pub fn build(self) -> Result<StaticRegistry, ConfigError> {
        StaticRegistry::new(self.instances)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for StaticConfig {
    /// Reads the list and checks it as [`StaticRegistry::new`] does.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default)]
            instances: Vec<Instance>,
        }
        let raw = Raw::deserialize(deserializer)?;
        group(raw.instances.iter().cloned()).map_err(seawall_core::config::report)?;
        Ok(Self {
            instances: raw.instances,
        })
    }
}
