//! Registries and discovery sources: where instances announce themselves
//! ([`Registry`]) and where clients find them ([`Discovery`]).

#[cfg(feature = "dns")]
mod dns;
#[cfg(feature = "etcd")]
mod etcd;
mod fixed;
mod lease;
mod memory;
mod set;
mod shared;
mod watch;

use std::future::Future;
use std::time::Duration;

#[cfg(feature = "dns")]
#[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
pub use dns::{DnsDiscovery, DnsDiscoveryBuilder};
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use etcd::{EtcdRegistry, EtcdRegistryBuilder};
pub use fixed::{StaticConfig, StaticRegistry};
pub use lease::Registration;
pub use memory::MemoryRegistry;
pub use set::{Change, InstanceSet};
pub(crate) use shared::{Fed, publish};
pub use watch::Watch;

use crate::{DiscoveryError, Instance};

/// Where clients find the instances of a service: a registry, a fixed
/// list, DNS.
pub trait Discovery: Send + Sync + 'static {
    /// Watches `service`: a [`Watch`] whose first answer is the whole
    /// current set (empty if the service has no instances yet), then the
    /// changes as they come.
    ///
    /// # Errors
    ///
    /// The backend's error if the first read fails.
    fn watch(&self, service: &str) -> impl Future<Output = Result<Watch, DiscoveryError>> + Send;

    /// The instances of `service` now.
    ///
    /// # Errors
    ///
    /// The backend's error if it cannot be read.
    fn instances(
        &self,
        service: &str,
    ) -> impl Future<Output = Result<InstanceSet, DiscoveryError>> + Send;
}

/// Where instances announce themselves, for a time to live that a
/// [`Registration`] keeps extending in the background.
pub trait Registry: Discovery {
    /// Registers `instance` (replacing one of the same service and id) for
    /// `ttl`, kept alive by the returned [`Registration`] until it is
    /// deregistered or dropped. A process that stops (and so stops
    /// refreshing) disappears from watchers once `ttl` runs out.
    ///
    /// # Errors
    ///
    /// [`DiscoveryError::Invalid`] for an instance that fails
    /// [`Instance::validate`] or a `ttl` outside 1 s to 24 h; the backend's
    /// error if it cannot be reached.
    fn register(
        &self,
        instance: Instance,
        ttl: Duration,
    ) -> impl Future<Output = Result<Registration, DiscoveryError>> + Send;
}
