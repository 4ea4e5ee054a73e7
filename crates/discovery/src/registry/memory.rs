//! [`MemoryRegistry`]: a registry in this process's memory.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::lease::{Lease, Registration, check_ttl};
use super::{Discovery, InstanceSet, Registry, Watch};
use crate::{DiscoveryError, Instance};

/// A registry in this process's memory: the embedded default, for one
/// process (services that find each other in-process, tests) and as the
/// model the other backends follow.
///
/// Registrations expire when their time to live runs out unrefreshed (see
/// [`Registration::abandon`]); a background task removes them then. It
/// follows tokio's clock, so tests can pause time.
///
/// Clones share one registry.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seawall_discovery::DiscoveryError> {
/// use std::time::Duration;
/// use seawall_discovery::{Discovery, Instance, MemoryRegistry, Registry};
///
/// let registry = MemoryRegistry::new();
/// let api = Instance::new("api", "api-1", "10.0.0.1:80".parse().unwrap());
/// let _registration = registry.register(api, Duration::from_secs(10)).await?;
/// let found = registry.instances("api").await?;
/// assert_eq!(found[0].id, "api-1");
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MemoryRegistry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    services: Mutex<HashMap<String, Service>>,
    /// Wakes the expiry task: something registered (its expiry may be the
    /// earliest), or the registry is gone.
    reaper: Arc<Notify>,
    /// The expiry task, started by the first registration (again if the
    /// runtime it ran on has gone).
    reaper_task: Mutex<Option<JoinHandle<()>>>,
    next_lease: AtomicU64,
}

/// One service's registrations and its watchers' channel.
struct Service {
    entries: BTreeMap<String, Entry>,
    published: watch::Sender<InstanceSet>,
}

struct Entry {
    instance: Arc<Instance>,
    /// Which registration put it there.
    lease: u64,
    expires: Instant,
}

impl MemoryRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl Inner {
    /// Puts (or replaces) `instance`'s entry for `lease`.
    fn put(&self, instance: &Arc<Instance>, lease: u64, ttl: Duration) {
        let mut services = self.services.lock();
        let service = services
            .entry(instance.service.clone())
            .or_insert_with(Service::new);
        let entry = Entry {
            instance: instance.clone(),
            lease,
            expires: Instant::now() + ttl,
        };
        service.entries.insert(instance.id.clone(), entry);
        service.publish();
        drop(services);
        self.reaper.notify_one();
    }

    /// Extends `lease`'s entry, or puts it back if it is gone. An entry
    /// another registration of the same id put there is left to it.
    fn refresh(&self, instance: &Arc<Instance>, lease: u64, ttl: Duration) {
        let mut services = self.services.lock();
        let found = services
            .get_mut(&instance.service)
            .and_then(|service| service.entries.get_mut(&instance.id));
        match found {
            Some(entry) if entry.lease == lease => entry.expires = Instant::now() + ttl,
            Some(_) => {}
            None => {
                drop(services);
                self.put(instance, lease, ttl);
            }
        }
    }

    /// Removes `lease`'s entry, if it is still there.
    fn remove(&self, instance: &Instance, lease: u64) {
        let mut services = self.services.lock();
        if let Some(service) = services.get_mut(&instance.service)
            && service
                .entries
                .get(&instance.id)
                .is_some_and(|entry| entry.lease == lease)
        {
            service.entries.remove(&instance.id);
            service.publish();
            if service.is_unused() {
                services.remove(&instance.service);
            }
        }
    }

    /// Removes what expired by `now`; returns the next expiry.
    fn sweep(&self, now: Instant) -> Option<Instant> {
        let mut services = self.services.lock();
        let mut next: Option<Instant> = None;
        services.retain(|_, service| {
            let before = service.entries.len();
            service.entries.retain(|_, entry| entry.expires > now);
            if service.entries.len() != before {
                service.publish();
            }
            for entry in service.entries.values() {
                next = Some(next.map_or(entry.expires, |at| at.min(entry.expires)));
            }
            !service.is_unused()
        });
        next
    }

    /// Starts the expiry task unless it runs.
    fn start_reaper(self: &Arc<Self>) {
        let mut task = self.reaper_task.lock();
        if task.as_ref().is_none_or(JoinHandle::is_finished) {
            let registry = Arc::downgrade(self);
            *task = Some(tokio::spawn(reap(registry, self.reaper.clone())));
        }
    }
}

/// Removes expired registrations until the registry is gone.
async fn reap(registry: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(next) = registry.upgrade().map(|inner| inner.sweep(Instant::now())) else {
            return;
        };
        match next {
            Some(at) => tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = wake.notified() => {}
            },
            None => wake.notified().await,
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the expiry task see that the registry is gone.
        self.reaper.notify_one();
    }
}

impl Service {
    fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
            published: watch::Sender::new(InstanceSet::default()),
        }
    }

    fn publish(&self) {
        // A `BTreeMap` by id: already in order.
        let set =
            InstanceSet::from_sorted(self.entries.values().map(|entry| entry.instance.clone()));
        self.published.send_replace(set);
    }

    fn is_unused(&self) -> bool {
        self.entries.is_empty() && self.published.receiver_count() == 0
    }
}

impl Discovery for MemoryRegistry {
    async fn watch(&self, name: &str) -> Result<Watch, DiscoveryError> {
        let mut services = self.inner.services.lock();
        let service = services.entry(name.to_owned()).or_insert_with(Service::new);
        Ok(Watch::new(name, service.published.subscribe()))
    }

    async fn instances(&self, service: &str) -> Result<InstanceSet, DiscoveryError> {
        let services = self.inner.services.lock();
        Ok(services
            .get(service)
            .map(|service| service.published.borrow().clone())
            .unwrap_or_default())
    }
}

impl Registry for MemoryRegistry {
    async fn register(
        &self,
        instance: Instance,
        ttl: Duration,
    ) -> Result<Registration, DiscoveryError> {
        instance.validate()?;
        check_ttl(ttl)?;
        let instance = Arc::new(instance);
        let lease = self.inner.next_lease.fetch_add(1, Ordering::Relaxed);
        self.inner.start_reaper();
        self.inner.put(&instance, lease, ttl);
        let kept = MemoryLease {
            registry: self.inner.clone(),
            instance: instance.clone(),
            lease,
            ttl,
        };
        Ok(Registration::start(instance, ttl, kept))
    }
}

/// A registration in a [`MemoryRegistry`].
struct MemoryLease {
    registry: Arc<Inner>,
    instance: Arc<Instance>,
    lease: u64,
    ttl: Duration,
}

impl Lease for MemoryLease {
    async fn refresh(&mut self) -> Result<(), DiscoveryError> {
        self.registry.refresh(&self.instance, self.lease, self.ttl);
        Ok(())
    }

    async fn deregister(&mut self) -> Result<(), DiscoveryError> {
        self.registry.remove(&self.instance, self.lease);
        Ok(())
    }
}

impl fmt::Debug for MemoryRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let services = self.inner.services.lock();
        let mut out = f.debug_map();
        for (name, service) in services.iter() {
            out.entry(name, &service.entries.len());
        }
        out.finish()
    }
}
