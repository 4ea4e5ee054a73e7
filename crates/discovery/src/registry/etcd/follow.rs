//! Following one service's prefix in etcd: its instances as etcd's watch
//! reports them, through outages and compactions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
use tokio::sync::watch;

use super::{bounded, read_all};
use crate::{Instance, InstanceSet};

/// The instances under a prefix, by key.
#[derive(Debug, Default)]
pub(crate) struct Known(BTreeMap<Vec<u8>, Arc<Instance>>);

impl Known {
    /// Takes in a key's value; one that is not an instance is skipped (and
    /// forgets what the key held before).
    pub(super) fn put(&mut self, key: &[u8], value: &[u8]) {
        match serde_json::from_slice::<Instance>(value) {
            Ok(instance) => {
                let unchanged = self.0.get(key).is_some_and(|known| **known == instance);
                if !unchanged {
                    self.0.insert(key.to_vec(), Arc::new(instance));
                }
            }
            Err(_error) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    target: "seawall::discovery",
                    key = %String::from_utf8_lossy(key),
                    error = %_error,
                    "skipped a value that is not an instance",
                );
                self.0.remove(key);
            }
        }
    }

    fn delete(&mut self, key: &[u8]) {
        self.0.remove(key);
    }

    /// The set, by instance id (of two keys with one id, the last).
    pub(super) fn set(&self) -> InstanceSet {
        InstanceSet::new(self.0.values().cloned())
    }
}

/// Follows a prefix and publishes its set until no watcher is left.
pub(super) struct Follower {
    pub(super) client: Client,
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    pub(super) known: Known,
    /// The revision `known` is current at.
    pub(super) revision: i64,
    pub(super) published: watch::Sender<InstanceSet>,
}

/// Waits between attempts to reach etcd again: from 100 ms, doubling, up
/// to 2 s.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

impl Follower {
    pub(super) async fn run(mut self) {
        let mut backoff = BACKOFF.0;
        loop {
            let published = self.published.clone();
            tokio::select! {
                () = published.closed() => return,
                followed = self.follow() => {
                    if followed {
                        backoff = BACKOFF.0;
                    }
                }
            }
            // The watch broke: keep the set, and try again.
            tokio::select! {
                () = published.closed() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    /// Watches from the revision after `revision` until the watch breaks;
    /// whether it got as far as a first answer.
    async fn follow(&mut self) -> bool {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(self.revision + 1)
            .with_progress_notify();
        let mut client = self.client.clone();
        let Ok(mut stream) = bounded(
            self.timeout,
            client.watch(self.prefix.clone(), Some(options)),
        )
        .await
        else {
            return false;
        };
        let mut answered = false;
        loop {
            let Ok(Some(answer)) = stream.message().await else {
                return answered;
            };
            answered = true;
            if answer.canceled() {
                if answer.compact_revision() > 0 {
                    // What we missed is gone from etcd's history: read it all.
                    if let Ok((known, revision)) =
                        read_all(&mut self.client, &self.prefix, self.timeout).await
                    {
                        self.known = known;
                        self.revision = revision;
                        self.publish();
                    }
                }
                return answered;
            }
            for event in answer.events() {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => self.known.put(kv.key(), kv.value()),
                    EventType::Delete => self.known.delete(kv.key()),
                }
                self.revision = self.revision.max(kv.mod_revision());
            }
            if let Some(header) = answer.header() {
                self.revision = self.revision.max(header.revision());
            }
            if !answer.events().is_empty() {
                self.publish();
            }
        }
    }

    fn publish(&self) {
        let set = self.known.set();
        self.published.send_if_modified(|old| {
            let (set, changed) = set.sharing(old);
            *old = set;
            changed
        });
    }
}
