//! Find the live instances of a service: registries where instances
//! announce themselves ([`Registry`]: [`MemoryRegistry`], and with the
//! `etcd` feature `EtcdRegistry`), fixed lists ([`StaticRegistry`]), DNS
//! records (with the `dns` feature, `DnsDiscovery`),
//! watches that follow them ([`Watch`]), active health checks
//! ([`HealthChecked`]), balancers for tower (module `balance`), and a
//! shutdown that deregisters before it drains ([`shutdown`], [`Drain`]).
//! The guide is `docs/discovery.md` in the repository.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), seawall_discovery::DiscoveryError> {
//! use std::time::Duration;
//! use seawall_discovery::{Change, Discovery, Instance, MemoryRegistry, Registry};
//!
//! let registry = MemoryRegistry::new();
//! let mut watch = registry.watch("api").await?;
//! watch.next_changes().await?; // the current set: empty
//!
//! // A server announces itself, and keeps its registration alive in the
//! // background until it deregisters (or stops, and its ttl runs out).
//! let me = Instance::new("api", "api-1", "10.0.0.1:8080".parse().unwrap()).zone("a");
//! let registration = registry.register(me, Duration::from_secs(10)).await?;
//!
//! let changes = watch.next_changes().await?;
//! assert!(matches!(&changes[..], [Change::Added(i)] if i.zone.as_deref() == Some("a")));
//!
//! registration.deregister().await?; // before the server stops serving
//! assert!(registry.instances("api").await?.is_empty());
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `tower` | `Drain` as a layer (`Drained`); module `balance`: `Balance`, a tower service over a watched set of instances (power of two choices, weighted, consistent hash; zone preference; passive outlier ejection), refusing with `NoInstances` (`503`) when there is none | off |
//! | `dns` | `DnsDiscovery`: instances from A/AAAA or SRV records, looked up again as their time to live runs out (hickory-resolver) | off |
//! | `etcd` | `EtcdRegistry`: instances as keys under leases in etcd, kept alive, registered again after an outage, watched from the last revision (implies `serde`) | off |
//! | `serde` | `Instance`, `StaticConfig`, `HealthCheck`, (with `tower`) `OutlierDetection` and (with `dns`) `DnsDiscoveryBuilder` read and written with serde, checked as their constructors check; `EtcdRegistryBuilder` always is, with `etcd` | off |
//! | `tracing` | events under the target `seawall::discovery` | off |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod balance;
mod drain;
mod error;
mod health;
mod instance;
mod registry;

pub use drain::{Drain, DrainGuard, ShutdownReport, shutdown};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use drain::{DrainFuture, Drained};
pub use error::{BoxError, DiscoveryError};
pub use health::{HealthCheck, HealthCheckBuilder, HealthChecked};
pub use instance::Instance;
pub use registry::{
    Change, Discovery, InstanceSet, MemoryRegistry, Registration, Registry, StaticConfig,
    StaticRegistry, Watch,
};
#[cfg(feature = "dns")]
#[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
pub use registry::{DnsDiscovery, DnsDiscoveryBuilder};
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use registry::{EtcdRegistry, EtcdRegistryBuilder};
