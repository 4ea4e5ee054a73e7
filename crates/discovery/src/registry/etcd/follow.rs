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
        match parse(value) {
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

/// An instance as etcd holds it: read leniently (fields this version does
/// not know are ignored, so a newer writer's instances are still seen),
/// then checked as [`Instance::validate`] checks.
fn parse(value: &[u8]) -> Result<Instance, crate::BoxError> {
    #[derive(serde::Deserialize)]
    struct Wire {
        id: String,
        service: String,
        address: std::net::SocketAddr,
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
    let wire: Wire = serde_json::from_slice(value)?;
    let mut instance = Instance::new(wire.service, wire.id, wire.address).weight(wire.weight);
    instance.zone = wire.zone;
    instance.version = wire.version;
    instance.metadata = wire.metadata;
    instance.validate()?;
    Ok(instance)
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
    /// Where the follower is listed, to unlist itself when it stops.
    pub(super) registry: std::sync::Weak<super::Inner>,
    pub(super) service: String,
}

/// Waits between attempts to reach etcd again: from 100 ms, doubling, up
/// to 2 s.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

impl Follower {
    pub(super) async fn run(mut self) {
        let mut backoff = BACKOFF.0;
        let published = self.published.clone();
        loop {
            tokio::select! {
                () = published.closed() => if self.unlisted() { return },
                followed = self.follow() => {
                    if followed {
                        backoff = BACKOFF.0;
                    }
                    // The watch broke: keep the set, and try again.
                    tokio::select! {
                        () = published.closed() => if self.unlisted() { return },
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
    }

    /// With no watcher left: unlists the follower and says so; a watcher
    /// that joined meanwhile keeps it going.
    fn unlisted(&self) -> bool {
        self.registry.upgrade().is_none_or(|registry| {
            registry
                .watched
                .leave_if_unwatched(&self.service, &self.published)
        })
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
            if answer.canceled() {
                if answer.compact_revision() > 0 {
                    // What we missed is gone from etcd's history: read it all.
                    self.read_again().await;
                }
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "seawall::discovery", prefix = %self.prefix, reason = %answer.cancel_reason(), "etcd cancelled the watch");
                return answered;
            }
            let header = answer.header().map(etcd_client::ResponseHeader::revision);
            if answer.created() {
                // etcd's revision is behind ours: it lost its data (or is
                // another cluster). What it holds now is what counts.
                if header.is_some_and(|revision| revision < self.revision) {
                    self.read_again().await;
                    return answered;
                }
                continue;
            }
            answered = true;
            let events = answer.events();
            for event in events {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => self.known.put(kv.key(), kv.value()),
                    EventType::Delete => self.known.delete(kv.key()),
                }
                // Only an event says how far we got: a response's header
                // can be ahead of events still to come.
                self.revision = self.revision.max(kv.mod_revision());
            }
            if events.is_empty() {
                // A progress notice: everything up to its revision is here.
                if let Some(revision) = header {
                    self.revision = self.revision.max(revision);
                }
            } else {
                self.publish();
            }
        }
    }

    /// Reads the whole prefix again (after a compaction, or an etcd that
    /// lost its data); on failure the next attempt tries again.
    async fn read_again(&mut self) {
        if let Ok((known, revision)) = read_all(&mut self.client, &self.prefix, self.timeout).await
        {
            self.known = known;
            self.revision = revision;
            self.publish();
        }
    }

    fn publish(&self) {
        crate::registry::publish(&self.published, self.known.set());
    }
}

/// A follower that ends otherwise than by [`Follower::unlisted`] (its
/// runtime shutting down cancels it) unlists itself here, so a later watch
/// starts a new follower instead of joining a channel nobody publishes to.
impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.watched.unlist(&self.service, &self.published);
        }
    }
}

/// The follower's resumption, made deterministic by driving it directly
/// against the etcd that `scripts/test` starts: it starts from a revision
/// behind what etcd holds, as after an outage.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use etcd_client::{Client, ConnectOptions};
    use tokio::sync::watch;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    async fn client() -> Client {
        let endpoints = std::env::var("SEAWALL_TEST_ETCD_ENDPOINTS").unwrap_or_else(|_| {
            panic!(
                "SEAWALL_TEST_ETCD_ENDPOINTS is not set: this test needs an etcd server \
                 (scripts/test starts one and sets it)"
            )
        });
        let options = ConnectOptions::new().with_connect_timeout(TIMEOUT);
        Client::connect([endpoints.as_str()], Some(options))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to etcd at {endpoints}: {e}"))
    }

    /// A prefix no other test and no earlier run uses.
    fn unique(test: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos();
        format!("/seawall-unit/{test}-{nanos}/api/")
    }

    async fn put(client: &mut Client, prefix: &str, id: &str) -> i64 {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], 80));
        let value = serde_json::to_vec(&Instance::new("api", id, address)).expect("json");
        let answer = client
            .put(format!("{prefix}{id}"), value, None)
            .await
            .expect("put");
        answer.header().expect("a header").revision()
    }

    async fn delete(client: &mut Client, prefix: &str, id: &str) -> i64 {
        let answer = client
            .delete(format!("{prefix}{id}"), None)
            .await
            .expect("delete");
        answer.header().expect("a header").revision()
    }

    /// A follower that knows the prefix as it was at `revision`.
    fn follower(client: Client, prefix: &str, known: Known, revision: i64) -> Follower {
        Follower {
            client,
            prefix: prefix.to_owned(),
            timeout: TIMEOUT,
            known,
            revision,
            published: watch::Sender::new(InstanceSet::new([])),
            registry: std::sync::Weak::new(),
            service: "api".to_owned(),
        }
    }

    fn ids(set: &InstanceSet) -> Vec<String> {
        set.iter().map(|i| i.id.clone()).collect()
    }

    #[tokio::test]
    async fn changes_missed_during_an_outage_are_caught_up_from_the_next_revision() {
        let mut client = client().await;
        let prefix = unique("gap");
        put(&mut client, &prefix, "a").await;
        put(&mut client, &prefix, "b").await;
        let (known, revision) = read_all(&mut client, &prefix, TIMEOUT).await.unwrap();
        // What the follower misses while it cannot reach etcd.
        delete(&mut client, &prefix, "a").await;
        put(&mut client, &prefix, "c").await;
        let mut follower = follower(client, &prefix, known, revision);
        let mut published = follower.published.subscribe();
        let following = tokio::spawn(async move { follower.follow().await });
        let caught_up = tokio::time::timeout(Duration::from_secs(5), async {
            while ids(&published.borrow_and_update()) != ["b", "c"] {
                published.changed().await.expect("still following");
            }
        })
        .await;
        following.abort();
        assert!(caught_up.is_ok(), "{:?}", ids(&published.borrow()));
    }

    #[tokio::test]
    async fn a_revision_compacted_away_is_read_again_in_full() {
        let mut client = client().await;
        let prefix = unique("compacted");
        put(&mut client, &prefix, "a").await;
        put(&mut client, &prefix, "b").await;
        let (known, revision) = read_all(&mut client, &prefix, TIMEOUT).await.unwrap();
        delete(&mut client, &prefix, "a").await;
        let last = put(&mut client, &prefix, "c").await;
        // etcd forgets the history the follower would resume from.
        client.compact(last, None).await.expect("compact");
        let mut follower = follower(client, &prefix, known, revision);
        let published = follower.published.subscribe();
        // etcd cancels the resumed watch: the follower reads the prefix
        // again and returns, to open a new watch from there.
        tokio::time::timeout(Duration::from_secs(5), follower.follow())
            .await
            .expect("the cancelled watch returns");
        assert_eq!(ids(&published.borrow()), ["b", "c"]);
        assert!(
            follower.revision >= last,
            "read at {} < {last}",
            follower.revision
        );
    }
}
