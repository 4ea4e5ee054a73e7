//! [`Fed`]: the watches a source shares per service, each fed by one task
//! (an etcd follower, a health checker).

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::{InstanceSet, Watch};

/// Publishes `set` on `published` if it differs from the set there,
/// sharing the instances that did not change with it (so watchers compare
/// pointers).
pub(crate) fn publish(published: &watch::Sender<InstanceSet>, set: InstanceSet) {
    published.send_if_modified(|old| {
        let (set, changed) = set.sharing(old);
        *old = set;
        changed
    });
}

/// Per service, the channel its feeding task publishes on. A task lists
/// its channel when it starts and unlists it, under the same lock, before
/// it stops, so a listed channel always has a task behind it.
#[derive(Default)]
pub(crate) struct Fed(Mutex<HashMap<String, watch::Sender<InstanceSet>>>);

impl Fed {
    /// A watch of `service`, if a task feeds one.
    pub(crate) fn join(&self, service: &str) -> Option<Watch> {
        let fed = self.0.lock();
        fed.get(service)
            .map(|published| Watch::new(service, published.subscribe()))
    }

    /// Lists `published` for `service` and watches it; if another task
    /// listed one meanwhile, watches that one instead (`Err`), and the
    /// caller's task is not to start.
    pub(crate) fn list(
        &self,
        service: &str,
        published: &watch::Sender<InstanceSet>,
    ) -> Result<Watch, Watch> {
        let mut fed = self.0.lock();
        if let Some(other) = fed.get(service) {
            return Err(Watch::new(service, other.subscribe()));
        }
        fed.insert(service.to_owned(), published.clone());
        Ok(Watch::new(service, published.subscribe()))
    }

    /// With no watcher left on `published`, unlists it and says so; a
    /// watcher that joined meanwhile keeps the task going.
    pub(crate) fn leave_if_unwatched(
        &self,
        service: &str,
        published: &watch::Sender<InstanceSet>,
    ) -> bool {
        let mut fed = self.0.lock();
        if published.receiver_count() > 0 {
            return false;
        }
        Self::remove(&mut fed, service, published);
        true
    }

    /// Unlists `published` whatever its watchers (its task is ending
    /// otherwise: cancelled with its runtime).
    pub(crate) fn unlist(&self, service: &str, published: &watch::Sender<InstanceSet>) {
        Self::remove(&mut self.0.lock(), service, published);
    }

    fn remove(
        fed: &mut HashMap<String, watch::Sender<InstanceSet>>,
        service: &str,
        published: &watch::Sender<InstanceSet>,
    ) {
        if fed
            .get(service)
            .is_some_and(|listed| listed.same_channel(published))
        {
            fed.remove(service);
        }
    }
}
