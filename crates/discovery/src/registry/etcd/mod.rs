//! [`EtcdRegistry`]: instances under a key prefix in etcd, each key held
//! by a lease that its registration keeps alive.

mod follow;
mod lease;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use tokio::sync::watch;

use super::lease::{Registration, check_ttl};
use super::{Discovery, Fed, InstanceSet, Registry, Watch};
use crate::{DiscoveryError, Instance};

/// A registry in etcd (feature `etcd`): each instance is a key
/// `{prefix}/{service}/{id}` holding the instance as JSON, attached to a
/// lease of the registration's time to live.
///
/// - A [`Registration`] keeps its lease alive; if etcd forgot the lease
///   (it expired while etcd or this process could not talk, or etcd was
///   restarted empty), it grants a new one and writes the key again as
///   soon as etcd answers.
/// - A [`Watch`] reads the whole prefix of its service once, then follows
///   etcd's watch from the revision it read. When the watch breaks (etcd
///   restarted, the network dropped), the watch keeps the last set it knew
///   and resumes from the last revision it saw once etcd answers; if etcd
///   compacted that revision away, it reads the whole prefix again. Every
///   watcher of a service in one registry shares one etcd watch.
/// - A key whose value is not an instance (written by something else
///   under the prefix) is skipped, with a warning under `tracing`.
///
/// Every call to etcd is bounded by the registry's timeout.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seawall_discovery::DiscoveryError> {
/// use std::time::Duration;
/// use seawall_discovery::{Discovery, EtcdRegistry, Instance, Registry};
///
/// let registry = EtcdRegistry::builder(["http://127.0.0.1:2379"])
///     .prefix("/services")
///     .connect()
///     .await?;
/// let me = Instance::new("api", "api-1", "10.0.0.1:8080".parse().unwrap());
/// let registration = registry.register(me, Duration::from_secs(10)).await?;
/// let mut watch = registry.watch("api").await?;
/// println!("{:?}", watch.next_changes().await?);
/// registration.deregister().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EtcdRegistry {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    client: Client,
    prefix: String,
    timeout: Duration,
    /// The shared watch of each watched service.
    pub(super) watched: Fed,
}

/// Builds an [`EtcdRegistry`]: [`EtcdRegistry::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct EtcdRegistryBuilder {
    endpoints: Vec<String>,
    prefix: String,
    timeout: Duration,
}

impl EtcdRegistry {
    /// A builder for a registry on the etcd cluster at `endpoints`
    /// (`"http://host:2379"`), under the prefix `/seawall/services`, with
    /// a 5 s timeout on every call.
    pub fn builder<E: Into<String>>(endpoints: impl IntoIterator<Item = E>) -> EtcdRegistryBuilder {
        EtcdRegistryBuilder {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: "/seawall/services".to_owned(),
            timeout: Duration::from_secs(5),
        }
    }

    /// The key prefix of a service's instances, with its trailing `/`.
    fn service_prefix(&self, service: &str) -> String {
        format!("{}/{service}/", self.inner.prefix)
    }
}

impl EtcdRegistryBuilder {
    /// The prefix under which instances are stored (default
    /// `/seawall/services`); a trailing `/` is dropped.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().trim_end_matches('/').to_owned();
        self
    }

    /// The longest any one call to etcd may take (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The settings' rules, without connecting.
    fn check(&self) -> Result<(), seawall_core::ConfigError> {
        if self.endpoints.is_empty() {
            return Err(seawall_core::ConfigError::invalid(
                "endpoints",
                "must list at least one",
            ));
        }
        if self.timeout.is_zero() {
            return Err(seawall_core::ConfigError::new(
                "timeout",
                "must be longer than zero",
                "0s",
            ));
        }
        Ok(())
    }

    /// Connects.
    ///
    /// # Errors
    ///
    /// [`DiscoveryError::Invalid`] for no endpoint or a zero timeout;
    /// [`DiscoveryError::Backend`] if etcd cannot be reached within the
    /// timeout.
    pub async fn connect(self) -> Result<EtcdRegistry, DiscoveryError> {
        self.check()?;
        // HTTP/2 pings find a connection that died without a word (a
        // watch would otherwise wait on it for ever), and requiring a
        // leader keeps a member cut off from its cluster from serving a
        // watch that never delivers.
        let options = ConnectOptions::new()
            .with_connect_timeout(self.timeout)
            .with_timeout(self.timeout)
            .with_keep_alive(self.timeout, self.timeout)
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        let client = bounded(
            self.timeout,
            Client::connect(&self.endpoints, Some(options)),
        )
        .await?;
        Ok(EtcdRegistry {
            inner: Arc::new(Inner {
                client,
                prefix: self.prefix,
                timeout: self.timeout,
                watched: Fed::default(),
            }),
        })
    }
}

/// An [`EtcdRegistryBuilder`] as a document holds it.
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawEtcd {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoints: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    timeout: Option<Duration>,
}

/// Reads the builder's settings, checked as
/// [`connect`](EtcdRegistryBuilder::connect) checks them before it
/// connects; `prefix` and `timeout` may be left out:
///
/// ```toml
/// endpoints = ["http://10.0.0.2:2379", "http://10.0.0.3:2379"]
/// prefix = "/services"
/// timeout = "2s"
/// ```
impl<'de> serde::Deserialize<'de> for EtcdRegistryBuilder {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <RawEtcd as serde::Deserialize>::deserialize(deserializer)?;
        let endpoints = raw.endpoints.ok_or_else(|| {
            seawall_core::config::report(seawall_core::ConfigError::missing("endpoints"))
        })?;
        let mut builder = EtcdRegistry::builder(endpoints);
        if let Some(prefix) = raw.prefix {
            builder = builder.prefix(prefix);
        }
        if let Some(timeout) = raw.timeout {
            builder = builder.timeout(timeout);
        }
        builder.check().map_err(seawall_core::config::report)?;
        Ok(builder)
    }
}

impl serde::Serialize for EtcdRegistryBuilder {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawEtcd {
            endpoints: Some(self.endpoints.clone()),
            prefix: Some(self.prefix.clone()),
            timeout: Some(self.timeout),
        };
        serde::Serialize::serialize(&raw, serializer)
    }
}

/// `call`, bounded by `timeout`, with etcd's errors as ours.
async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, DiscoveryError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(answer) => answer.map_err(|e| DiscoveryError::backend("etcd", e)),
        Err(_) => Err(DiscoveryError::backend(
            "etcd",
            format!("no answer within {timeout:?}"),
        )),
    }
}

/// Reads every instance under `prefix`, and the revision read at.
async fn read_all(
    client: &mut Client,
    prefix: &str,
    timeout: Duration,
) -> Result<(follow::Known, i64), DiscoveryError> {
    let options = GetOptions::new().with_prefix();
    let answer = bounded(timeout, client.get(prefix, Some(options))).await?;
    let revision = answer
        .header()
        .map_or(0, etcd_client::ResponseHeader::revision);
    let mut known = follow::Known::default();
    for kv in answer.kvs() {
        known.put(kv.key(), kv.value());
    }
    Ok((known, revision))
}

impl Discovery for EtcdRegistry {
    async fn watch(&self, service: &str) -> Result<Watch, DiscoveryError> {
        if let Some(watch) = self.inner.watched.join(service) {
            return Ok(watch);
        }
        let prefix = self.service_prefix(service);
        let mut client = self.inner.client.clone();
        let (known, revision) = read_all(&mut client, &prefix, self.inner.timeout).await?;
        let published = watch::Sender::new(known.set());
        // Another first watch may have got there meanwhile: share it.
        let watch = match self.inner.watched.list(service, &published) {
            Ok(watch) => watch,
            Err(theirs) => return Ok(theirs),
        };
        let follower = follow::Follower {
            client,
            prefix,
            timeout: self.inner.timeout,
            known,
            revision,
            published,
            registry: Arc::downgrade(&self.inner),
            service: service.to_owned(),
        };
        tokio::spawn(follower.run());
        Ok(watch)
    }

    async fn instances(&self, service: &str) -> Result<InstanceSet, DiscoveryError> {
        let mut client = self.inner.client.clone();
        let prefix = self.service_prefix(service);
        let (known, _) = read_all(&mut client, &prefix, self.inner.timeout).await?;
        Ok(known.set())
    }
}

impl Registry for EtcdRegistry {
    async fn register(
        &self,
        instance: Instance,
        ttl: Duration,
    ) -> Result<Registration, DiscoveryError> {
        instance.validate()?;
        check_ttl(ttl)?;
        let key = format!("{}{}", self.service_prefix(&instance.service), instance.id);
        let value =
            serde_json::to_vec(&instance).map_err(|e| DiscoveryError::backend("etcd", e))?;
        let mut lease = lease::EtcdLease::new(
            self.inner.client.clone(),
            key,
            value,
            ttl,
            self.inner.timeout,
        );
        lease.grant_and_put().await?;
        Ok(Registration::start(Arc::new(instance), ttl, lease))
    }
}

impl fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}
