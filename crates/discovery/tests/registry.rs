//! Registries: registration, keepalive, expiry, watches, static lists.

use std::net::SocketAddr;
use std::time::Duration;

use seawall_discovery::{
    Change, Discovery, DiscoveryError, Instance, MemoryRegistry, Registry, StaticRegistry,
};

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn api(id: &str, port: u16) -> Instance {
    Instance::new("api", id, at(port))
}

const TTL: Duration = Duration::from_secs(9);

/// Lets the registration tasks and the expiry task run.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// The watch's next changes, within a minute (of paused time: at once).
async fn next(watch: &mut seawall_discovery::Watch) -> Vec<Change> {
    tokio::time::timeout(Duration::from_secs(60), watch.next_changes())
        .await
        .expect("no change within a minute")
        .expect("the watch ended")
}

fn ids(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|change| match change {
            Change::Added(i) => format!("+{}", i.id),
            Change::Updated(i) => format!("~{}", i.id),
            Change::Removed(i) => format!("-{}", i.id),
            _ => unreachable!(),
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_watch_starts_with_the_current_set_then_follows_it() {
    let registry = MemoryRegistry::new();
    let _one = registry.register(api("a", 1), TTL).await.unwrap();
    let two = registry.register(api("b", 2), TTL).await.unwrap();
    let mut watch = registry.watch("api").await.unwrap();
    assert_eq!(ids(&next(&mut watch).await), ["+a", "+b"]);

    two.deregister().await.unwrap();
    assert_eq!(ids(&next(&mut watch).await), ["-b"]);

    let three = registry.register(api("c", 3), TTL).await.unwrap();
    assert_eq!(ids(&next(&mut watch).await), ["+c"]);
    drop(three); // deregisters in the background
    assert_eq!(ids(&next(&mut watch).await), ["-c"]);

    // Registering an id again replaces it: an update.
    let _moved = registry.register(api("a", 10), TTL).await.unwrap();
    let changes = next(&mut watch).await;
    assert_eq!(ids(&changes), ["~a"]);
    assert_eq!(changes[0].instance().address, at(10));
}

/// A process that stops refreshing (crashed, partitioned) disappears once
/// its time to live runs out, and not before; one that keeps refreshing
/// stays however long it lives.
#[tokio::test(start_paused = true)]
async fn an_abandoned_registration_expires_with_its_ttl() {
    let registry = MemoryRegistry::new();
    let kept = registry.register(api("kept", 1), TTL).await.unwrap();
    let crashed = registry.register(api("crashed", 2), TTL).await.unwrap();
    let mut watch = registry.watch("api").await.unwrap();
    watch.next_changes().await.unwrap();
    crashed.abandon();

    tokio::time::sleep(TTL - Duration::from_millis(10)).await;
    settle().await;
    assert_eq!(registry.instances("api").await.unwrap().len(), 2);

    let start = tokio::time::Instant::now();
    assert_eq!(ids(&next(&mut watch).await), ["-crashed"]);
    assert!(
        start.elapsed() <= Duration::from_millis(10),
        "{:?}",
        start.elapsed()
    );

    tokio::time::sleep(TTL * 10).await;
    let left = registry.instances("api").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, "kept");
    drop(kept);
}

/// A registration whose entry is gone (here: replaced by another
/// registration of the same id, which then deregistered) puts it back at
/// its next refresh.
#[tokio::test(start_paused = true)]
async fn a_lost_registration_registers_again() {
    let registry = MemoryRegistry::new();
    let _first = registry.register(api("a", 1), TTL).await.unwrap();
    let second = registry.register(api("a", 2), TTL).await.unwrap();
    let mut watch = registry.watch("api").await.unwrap();
    watch.next_changes().await.unwrap();
    second.deregister().await.unwrap();
    assert_eq!(ids(&next(&mut watch).await), ["-a"]);

    let start = tokio::time::Instant::now();
    let changes = next(&mut watch).await;
    assert_eq!(ids(&changes), ["+a"]);
    assert_eq!(changes[0].instance().address, at(1));
    assert!(start.elapsed() <= TTL / 3, "{:?}", start.elapsed());
}

#[tokio::test]
async fn bad_registrations_are_refused_naming_the_field() {
    let registry = MemoryRegistry::new();
    let Err(DiscoveryError::Invalid(err)) = registry.register(api("", 1), TTL).await else {
        panic!("an empty id was registered");
    };
    assert_eq!(err.field(), "id");
    let Err(DiscoveryError::Invalid(err)) = registry
        .register(api("a", 1), Duration::from_millis(10))
        .await
    else {
        panic!("a 10 ms ttl was registered");
    };
    assert_eq!(err.field(), "ttl");
    assert!(registry.instances("api").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_watch_ends_when_its_registry_is_gone() {
    let registry = MemoryRegistry::new();
    let mut watch = registry.watch("api").await.unwrap();
    watch.next_changes().await.unwrap();
    drop(registry);
    assert!(matches!(
        watch.next_changes().await,
        Err(DiscoveryError::Closed)
    ));
}

#[tokio::test]
async fn a_static_list_is_replaced_as_a_whole() {
    let registry = StaticRegistry::new([api("a", 1), api("b", 2)]).unwrap();
    let mut watch = registry.watch("api").await.unwrap();
    assert_eq!(ids(&next(&mut watch).await), ["+a", "+b"]);

    registry
        .replace([api("b", 2), api("c", 3).weight(5)])
        .unwrap();
    assert_eq!(ids(&next(&mut watch).await), ["-a", "+c"]);

    // A bad list leaves the one in force.
    let err = registry.replace([api("d", 4), api("d", 5)]).unwrap_err();
    assert_eq!(err.field(), "instances[1].id");
    assert_eq!(registry.instances("api").await.unwrap().len(), 2);

    // A service no longer listed has no instances.
    registry
        .replace([Instance::new("db", "primary", at(5432))])
        .unwrap();
    assert_eq!(ids(&next(&mut watch).await), ["-b", "-c"]);
}

#[cfg(feature = "serde")]
#[test]
fn a_static_config_reads_from_toml_and_names_bad_fields() {
    let text = r#"
        [[discovery.instances]]
        service = "db"
        id = "primary"
        address = "10.0.0.5:5432"

        [[discovery.instances]]
        service = "db"
        id = "replica"
        address = "10.0.0.6:5432"
        weight = 2
        zone = "b"
        metadata = { role = "replica" }
    "#;
    use seawall_discovery::StaticConfig;

    #[derive(serde::Deserialize)]
    struct Doc {
        discovery: StaticConfig,
    }
    let doc: Doc =
        seawall_core::config::deserialize(toml::Deserializer::parse(text).unwrap()).unwrap();
    let list = &doc.discovery.instances;
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].weight, 2);
    assert_eq!(list[1].metadata["role"], "replica");
    assert_eq!(list[0].weight, 1, "the default weight");
    doc.discovery.build().unwrap();

    let twice = text.replace("\"replica\"\naddress", "\"primary\"\naddress");
    let twice = twice.replace("id = \"replica\"", "id = \"primary\"");
    let err =
        seawall_core::config::deserialize::<Doc, _>(toml::Deserializer::parse(&twice).unwrap())
            .err()
            .expect("a duplicate id");
    assert_eq!(err.field(), "discovery.instances[1].id", "{err}");

    let slash = text.replace("id = \"replica\"", "id = \"re/plica\"");
    let err =
        seawall_core::config::deserialize::<Doc, _>(toml::Deserializer::parse(&slash).unwrap())
            .err()
            .expect("an id with a slash");
    assert_eq!(err.field(), "discovery.instances[1].id", "{err}");

    let bad = text.replace("10.0.0.6:5432", "10.0.0.6");
    let err = seawall_core::config::deserialize::<Doc, _>(toml::Deserializer::parse(&bad).unwrap())
        .err()
        .expect("an address without a port");
    assert!(err.field().starts_with("discovery.instances[1]"), "{err}");
}
