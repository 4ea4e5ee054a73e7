//! [`Watch`]: the instances of a service as they change.

use std::sync::Arc;

use tokio::sync::watch;

use super::set::{Change, InstanceSet};
use crate::DiscoveryError;

/// The instances of one service as they change, from
/// [`Discovery::watch`](super::Discovery::watch).
///
/// Every watcher of a service shares one set, so a watch costs a reference
/// count, however many instances there are. While a backend cannot be
/// reached, a watch keeps the last set it knew (it never empties because
/// the registry is down) and catches up when the backend is back.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seawall_discovery::DiscoveryError> {
/// use std::time::Duration;
/// use seawall_discovery::{Change, Discovery, Instance, MemoryRegistry, Registry};
///
/// let registry = MemoryRegistry::new();
/// let mut watch = registry.watch("api").await?;
/// assert!(watch.next_changes().await?.is_empty(), "nothing yet");
///
/// let one = Instance::new("api", "api-1", "10.0.0.1:80".parse().unwrap());
/// let registration = registry.register(one, Duration::from_secs(10)).await?;
/// let changes = watch.next_changes().await?;
/// assert!(matches!(&changes[..], [Change::Added(i)] if i.id == "api-1"));
///
/// registration.deregister().await?;
/// let changes = watch.next_changes().await?;
/// assert!(matches!(&changes[..], [Change::Removed(i)] if i.id == "api-1"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Watch {
    service: Arc<str>,
    rx: watch::Receiver<InstanceSet>,
    /// The set the last call returned; `None` before the first.
    delivered: Option<InstanceSet>,
    /// The source is gone and `take_changed` delivered (or is delivering)
    /// its last set: nothing changes any more.
    #[cfg(feature = "tower")]
    ended: bool,
}

impl Watch {
    pub(crate) fn new(service: &str, rx: watch::Receiver<InstanceSet>) -> Self {
        Self {
            service: Arc::from(service),
            rx,
            delivered: None,
            #[cfg(feature = "tower")]
            ended: false,
        }
    }

    /// The service it watches.
    #[must_use]
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The set now, without waiting.
    #[must_use]
    pub fn current(&self) -> InstanceSet {
        self.rx.borrow().clone()
    }

    /// The first call returns the current set at once; each later call
    /// waits until the set has changed since the one it returned last.
    ///
    /// # Errors
    ///
    /// [`DiscoveryError::Closed`] once the source is gone (a memory
    /// registry dropped with all its registrations, a static one dropped).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped call loses no change; the next one sees it.
    pub async fn changed(&mut self) -> Result<InstanceSet, DiscoveryError> {
        if self.delivered.is_some() {
            self.rx
                .changed()
                .await
                .map_err(|_| DiscoveryError::Closed)?;
        }
        let set = self.rx.borrow_and_update().clone();
        self.delivered = Some(set.clone());
        Ok(set)
    }

    /// The changes since the last call: at the first call every instance
    /// there is, as [`Change::Added`] (none, if the service has none);
    /// later calls wait until something changed.
    ///
    /// # Errors
    ///
    /// As [`changed`](Self::changed).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`changed`](Self::changed).
    pub async fn next_changes(&mut self) -> Result<Vec<Change>, DiscoveryError> {
        let first = self.delivered.is_none();
        loop {
            let before = self.delivered.clone().unwrap_or_default();
            let set = self.changed().await?;
            let changes = set.changes_since(&before);
            if first || !changes.is_empty() {
                return Ok(changes);
            }
        }
    }
}

/// What a balancer needs: to take changes without waiting, and a wake-up
/// when there is one.
#[cfg(feature = "tower")]
impl Watch {
    /// The service's name, shared.
    pub(crate) fn service_name(&self) -> Arc<str> {
        self.service.clone()
    }

    /// Makes the next [`take_changed`](Self::take_changed) deliver the set
    /// whether or not it changed.
    pub(crate) fn redeliver(&mut self) {
        self.delivered = None;
    }

    /// The set, if it changed since the last one delivered (or none was):
    /// for a balancer's `poll_ready`, which must not wait.
    #[inline]
    pub(crate) fn take_changed(&mut self) -> Option<InstanceSet> {
        if self.delivered.is_some() {
            if self.ended {
                return None;
            }
            // `Receiver::has_changed` reads a version, without the lock that
            // `borrow` takes; once the source is closed it reports an error,
            // and `Ref::has_changed` still sees a last set sent just before.
            let changed = match self.rx.has_changed() {
                Ok(changed) => changed,
                Err(_) => {
                    // This call delivers that last set, if there is one.
                    self.ended = true;
                    self.rx.borrow().has_changed()
                }
            };
            if !changed {
                return None;
            }
        }
        let set = self.rx.borrow_and_update().clone();
        self.delivered = Some(set.clone());
        Some(set)
    }

    /// A future that ends when the set changes after the last one
    /// delivered; `None` if the source is gone (no change will come).
    pub(crate) fn on_change(
        &self,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
        self.rx.has_changed().ok()?;
        let mut rx = self.rx.clone();
        Some(Box::pin(async move {
            // An end of the source ends the wait as a change would; the
            // next `on_change` then answers `None`.
            let _ = rx.changed().await;
        }))
    }
}
