//! `EtcdRegistry` against the real etcd that `scripts/test` starts
//! (`SEAWALL_TEST_ETCD_ENDPOINTS`), stopped and started mid-test with
//! `SEAWALL_TEST_ETCD_CTL`. Each test works under a prefix of its own.
#![cfg(feature = "etcd")]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use seawall_discovery::{
    Change, Discovery, EtcdRegistry, Instance, InstanceSet, Registration, Registry, Watch,
};

/// One test at a time: the restart test stops the server the others use.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn endpoints() -> String {
    std::env::var("SEAWALL_TEST_ETCD_ENDPOINTS").unwrap_or_else(|_| {
        panic!(
            "SEAWALL_TEST_ETCD_ENDPOINTS is not set: these tests need an etcd server \
             (scripts/test starts one and sets it, with SEAWALL_TEST_ETCD_CTL)"
        )
    })
}

/// etcd stopped by a test, started again when dropped, so that a failing
/// test does not leave it down for the next ones.
struct Stopped(bool);

impl Stopped {
    fn stop() -> Self {
        etcd("stop");
        Self(true)
    }

    fn start(mut self) {
        etcd("start");
        self.0 = false;
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if self.0 {
            etcd("start");
        }
    }
}

/// Stops or starts the test etcd.
fn etcd(action: &str) {
    let ctl = std::env::var("SEAWALL_TEST_ETCD_CTL").unwrap_or_else(|_| {
        panic!("SEAWALL_TEST_ETCD_CTL is not set: the restart test needs scripts/test's etcd-ctl")
    });
    let status = Command::new(&ctl)
        .arg(action)
        .status()
        .expect("etcd-ctl runs");
    assert!(status.success(), "etcd-ctl {action} failed");
}

/// A prefix no other test and no earlier run uses.
fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    format!("/seawall-test/{test}-{nanos}")
}

async fn registry(test: &str) -> EtcdRegistry {
    registry_at(&unique(test)).await
}

async fn registry_at(prefix: &str) -> EtcdRegistry {
    EtcdRegistry::builder([endpoints()])
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to etcd at {}: {e}", endpoints()))
}

fn api(id: &str, port: u16) -> Instance {
    Instance::new("api", id, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The watch's next changes, within `limit`.
async fn next(watch: &mut Watch, limit: Duration) -> Vec<Change> {
    tokio::time::timeout(limit, watch.next_changes())
        .await
        .unwrap_or_else(|_| panic!("no change within {limit:?}"))
        .expect("the watch ended")
}

fn ids(set: &InstanceSet) -> Vec<&str> {
    set.iter().map(|i| i.id.as_str()).collect()
}

#[tokio::test]
async fn registrations_and_watches() {
    let _serial = SERIAL.lock().await;
    let registry = registry("basic").await;
    let mut watch = registry.watch("api").await.unwrap();
    assert!(next(&mut watch, Duration::from_secs(1)).await.is_empty());

    let a = registry
        .register(
            api("a", 1).zone("z1").meta("k", "v"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let changes = next(&mut watch, Duration::from_secs(5)).await;
    let [Change::Added(seen)] = &changes[..] else {
        panic!("{changes:?}");
    };
    assert_eq!(
        **seen,
        *a.instance(),
        "the instance went through etcd intact"
    );

    let second = registry.watch("api").await.unwrap();
    assert_eq!(
        ids(&second.current()),
        ["a"],
        "a later watch starts with the set"
    );
    assert_eq!(ids(&registry.instances("api").await.unwrap()), ["a"]);

    a.deregister().await.unwrap();
    let changes = next(&mut watch, Duration::from_secs(5)).await;
    assert!(
        matches!(&changes[..], [Change::Removed(i)] if i.id == "a"),
        "{changes:?}"
    );
    assert!(registry.instances("api").await.unwrap().is_empty());
}

/// A process that stops keeping its lease alive disappears from watchers
/// within its time to live and a second.
#[tokio::test]
async fn an_abandoned_registration_expires_within_its_ttl() {
    let _serial = SERIAL.lock().await;
    let registry = registry("expiry").await;
    let mut watch = registry.watch("api").await.unwrap();
    next(&mut watch, Duration::from_secs(1)).await;
    let ttl = Duration::from_secs(2);
    let crashed = registry.register(api("crashed", 1), ttl).await.unwrap();
    next(&mut watch, Duration::from_secs(5)).await;
    let abandoned = Instant::now();
    crashed.abandon();
    let changes = next(&mut watch, ttl + Duration::from_secs(3)).await;
    assert!(
        matches!(&changes[..], [Change::Removed(i)] if i.id == "crashed"),
        "{changes:?}"
    );
    let took = abandoned.elapsed();
    assert!(
        took <= ttl + Duration::from_secs(1),
        "removed after {took:?}"
    );
}

/// A registry under a prefix of its own, its watch of "api", and the
/// instance "kept" registered (with `KEPT_TTL`) and seen by the watch.
async fn kept(test: &str) -> (String, EtcdRegistry, Watch, Registration) {
    let prefix = unique(test);
    let registry = registry_at(&prefix).await;
    let mut watch = registry.watch("api").await.expect("a watch");
    next(&mut watch, Duration::from_secs(1)).await;
    let kept = registry
        .register(api("kept", 1), KEPT_TTL)
        .await
        .expect("registered");
    next(&mut watch, Duration::from_secs(5)).await;
    (prefix, registry, watch, kept)
}

const KEPT_TTL: Duration = Duration::from_secs(3);

/// After "kept" was removed behind its registration's back: the watch sees
/// it go, then come back within a time to live (the registration noticed
/// at its next refresh).
async fn goes_and_comes_back(watch: &mut Watch) {
    let changes = next(watch, Duration::from_secs(5)).await;
    assert!(matches!(&changes[..], [Change::Removed(_)]), "{changes:?}");
    let changes = next(watch, KEPT_TTL).await;
    assert!(
        matches!(&changes[..], [Change::Added(i)] if i.id == "kept"),
        "{changes:?}"
    );
}

/// Something else removes the lease (an operator, an outage longer than
/// the lease): the registration notices at its next refresh and registers
/// again.
#[tokio::test]
async fn a_lost_lease_is_registered_again() {
    let _serial = SERIAL.lock().await;
    let (prefix, _registry, mut watch, _kept) = kept("lost").await;
    let mut other = etcd_client::Client::connect([endpoints()], None)
        .await
        .unwrap();
    let found = other.get(format!("{prefix}/api/kept"), None).await.unwrap();
    let lease = found.kvs().first().expect("the key").lease();
    other.lease_revoke(lease).await.unwrap();
    goes_and_comes_back(&mut watch).await;
}

/// The key deleted by hand while its lease lives: the registration writes
/// it again at its next refresh.
#[tokio::test]
async fn a_deleted_key_is_written_again() {
    let _serial = SERIAL.lock().await;
    let (prefix, _registry, mut watch, _kept) = kept("deleted").await;
    let mut other = etcd_client::Client::connect([endpoints()], None)
        .await
        .unwrap();
    let deleted = other
        .delete(format!("{prefix}/api/kept"), None)
        .await
        .unwrap();
    assert_eq!(deleted.deleted(), 1, "the key is {prefix}/api/kept");
    goes_and_comes_back(&mut watch).await;
}

/// etcd stops: watchers keep the last set (no flapping to empty) and
/// registrations keep trying. etcd starts again: watchers resume and see
/// what changes next, and the registrations are there.
#[tokio::test]
async fn an_etcd_restart_keeps_the_set_and_catches_up() {
    let _serial = SERIAL.lock().await;
    let registry = registry("restart").await;
    let ttl = Duration::from_secs(3);
    let _a = registry.register(api("a", 1), ttl).await.unwrap();
    let _b = registry.register(api("b", 2), ttl).await.unwrap();
    let mut watch = registry.watch("api").await.unwrap();
    assert_eq!(next(&mut watch, Duration::from_secs(1)).await.len(), 2);

    let stopped = Stopped::stop();
    // Longer than a refresh period: the registrations' refreshes fail.
    tokio::time::sleep(ttl).await;
    assert_eq!(ids(&watch.current()), ["a", "b"], "kept the last set");
    assert!(registry.instances("api").await.is_err(), "etcd is down");
    stopped.start();

    // The registrations are there again (their leases survived, or were
    // granted anew), and the watch follows what changes next.
    let c = registry.register(api("c", 3), ttl).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let current = watch.current();
        if ids(&current) == ["a", "b", "c"] {
            break;
        }
        assert!(Instant::now() < deadline, "still {:?}", ids(&current));
        let _ = tokio::time::timeout(Duration::from_millis(500), watch.changed()).await;
    }
    assert_eq!(
        ids(&registry.instances("api").await.unwrap()),
        ["a", "b", "c"]
    );
    // Past a whole lease time: the registrations are being kept alive.
    tokio::time::sleep(ttl + Duration::from_secs(1)).await;
    assert_eq!(
        ids(&registry.instances("api").await.unwrap()),
        ["a", "b", "c"]
    );
    c.deregister().await.unwrap();
    assert_eq!(ids(&registry.instances("api").await.unwrap()), ["a", "b"]);
}

#[tokio::test]
async fn bad_settings_are_refused_naming_the_field() {
    let _serial = SERIAL.lock().await;
    let err = EtcdRegistry::builder(Vec::<String>::new())
        .connect()
        .await
        .unwrap_err();
    let seawall_discovery::DiscoveryError::Invalid(invalid) = err else {
        panic!("{err}");
    };
    assert_eq!(invalid.field(), "endpoints");
    let registry = registry("invalid").await;
    let err = registry
        .register(api("a/b", 1), Duration::from_secs(5))
        .await
        .unwrap_err();
    let seawall_discovery::DiscoveryError::Invalid(invalid) = err else {
        panic!("{err}");
    };
    assert_eq!(invalid.field(), "id");
}

#[tokio::test]
async fn a_config_document_is_checked_then_connects() {
    let _serial = SERIAL.lock().await;
    let read = |text: &str| {
        seawall_core::config::deserialize::<seawall_discovery::EtcdRegistryBuilder, _>(
            toml::Deserializer::parse(text).expect("valid TOML"),
        )
    };
    assert_eq!(read("endpoints = []").unwrap_err().field(), "endpoints");
    assert_eq!(read("timeout = \"1s\"").unwrap_err().field(), "endpoints");
    let text = format!(
        "endpoints = [\"{}\"]\nprefix = \"{}\"\ntimeout = \"2s\"",
        endpoints(),
        unique("config")
    );
    let err = read(&format!("{text}\ntimeout2 = \"1s\"")).unwrap_err();
    assert!(err.to_string().contains("timeout2"), "{err}");
    let registry = read(&text).unwrap().connect().await.unwrap();
    let registration = registry
        .register(api("a", 1), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ids(&registry.instances("api").await.unwrap()), ["a"]);
    registration.deregister().await.unwrap();
}
