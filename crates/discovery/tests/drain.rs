//! Graceful shutdown: deregister first, then drain.

use std::net::SocketAddr;
use std::time::Duration;

use seawall_discovery::{Change, Discovery, Drain, Instance, MemoryRegistry, Registry, shutdown};

fn api() -> Instance {
    Instance::new("api", "api-1", SocketAddr::from(([127, 0, 0, 1], 1)))
}

/// Clients stop seeing the instance before its last request ends, and
/// `shutdown` returns once it has.
#[tokio::test(start_paused = true)]
async fn shutdown_deregisters_then_waits_for_requests_in_flight() {
    let registry = MemoryRegistry::new();
    let registration = registry
        .register(api(), Duration::from_secs(10))
        .await
        .unwrap();
    let mut watch = registry.watch("api").await.unwrap();
    watch.next_changes().await.unwrap();
    let drain = Drain::new();
    let request = drain.guard();

    let stopping = tokio::spawn({
        let drain = drain.clone();
        async move {
            shutdown(
                registration,
                &drain,
                Duration::from_secs(2),
                Duration::from_secs(30),
            )
            .await
        }
    });
    let changes = watch.next_changes().await.unwrap();
    assert!(matches!(&changes[..], [Change::Removed(_)]), "{changes:?}");
    assert!(!stopping.is_finished(), "returned with a request in flight");

    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(request);
    let ended = tokio::time::Instant::now();
    let report = stopping.await.unwrap();
    assert_eq!(
        ended.elapsed(),
        Duration::ZERO,
        "woken when the last request ended"
    );
    assert!(report.deregistered.is_ok());
    assert_eq!(report.left_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_never_ends_is_left_after_the_timeout() {
    let registry = MemoryRegistry::new();
    let registration = registry
        .register(api(), Duration::from_secs(10))
        .await
        .unwrap();
    let drain = Drain::new();
    let _stuck = drain.guard();
    let start = tokio::time::Instant::now();
    let report = shutdown(
        registration,
        &drain,
        Duration::from_secs(1),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(report.left_in_flight, 1);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

/// With nothing in flight, `shutdown` still gives clients `grace` to see
/// the instance gone before the server stops.
#[tokio::test(start_paused = true)]
async fn shutdown_waits_the_grace_even_when_idle() {
    let registry = MemoryRegistry::new();
    let registration = registry
        .register(api(), Duration::from_secs(10))
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let report = shutdown(
        registration,
        &Drain::new(),
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(report.left_in_flight, 0);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[cfg(feature = "tower")]
#[tokio::test]
async fn as_a_layer_it_counts_calls_until_their_futures_end() {
    use tower::{Layer, Service, ServiceExt};

    let drain = Drain::new();
    let (inner, mut handle) = tower_test::mock::pair::<u32, u32>();
    let mut service = drain.layer(inner);
    let answered = service.ready().await.unwrap().call(1);
    let dropped = service.ready().await.unwrap().call(2);
    assert_eq!(drain.in_flight(), 2);
    drop(dropped);
    assert_eq!(drain.in_flight(), 1, "a dropped future no longer counts");
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(10);
    assert_eq!(answered.await.unwrap(), 10);
    assert_eq!(drain.in_flight(), 0);
    assert_eq!(drain.wait(Duration::ZERO).await, Ok(()));
}
