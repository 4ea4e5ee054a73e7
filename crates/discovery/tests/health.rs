//! Active health checks against real listeners on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use seawall_discovery::{
    Discovery, HealthCheck, HealthChecked, Instance, MemoryRegistry, Registry, StaticRegistry,
    Watch,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn fast(check: seawall_discovery::HealthCheckBuilder) -> HealthCheck {
    check
        .interval(Duration::from_millis(250))
        .timeout(Duration::from_millis(200))
        .thresholds(2, 2)
        .build()
        .expect("valid settings")
}

fn ids(watch: &Watch) -> Vec<String> {
    watch.current().iter().map(|i| i.id.clone()).collect()
}

/// Waits for the watch's changes (up to 10 s) until it holds exactly
/// `expected`.
async fn until(watch: &mut Watch, expected: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ids(watch) != expected {
        let changed = tokio::time::timeout_at(deadline, watch.changed()).await;
        assert!(
            matches!(changed, Ok(Ok(_))),
            "still {:?}, not {expected:?}",
            ids(watch)
        );
    }
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    listener.local_addr().expect("its address")
}

/// An HTTP server answering every request with the status in `status`.
async fn http_server(status: Arc<AtomicU16>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let status = status.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = [0; 1024];
                let _ = stream.read(&mut request).await;
                let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    address
}

#[tokio::test]
async fn tcp_checks_take_a_dead_instance_out_and_bring_it_back() {
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flaky_address = up.local_addr().unwrap();
    let registry = StaticRegistry::new([
        Instance::new("api", "flaky", flaky_address),
        Instance::new("api", "never", closed_port().await),
    ])
    .unwrap();
    let checked = HealthChecked::new(registry.clone(), fast(HealthCheck::tcp()));
    let mut watch = checked.watch("api").await.unwrap();
    assert_eq!(
        ids(&watch),
        ["flaky"],
        "the first answer holds those that passed"
    );

    drop(up);
    until(&mut watch, &[]).await;
    assert_eq!(
        registry.instances("api").await.unwrap().len(),
        2,
        "out of the watch, still registered"
    );

    let _back = TcpListener::bind(flaky_address).await.unwrap();
    until(&mut watch, &["flaky"]).await;
}

#[tokio::test]
async fn http_checks_want_a_2xx() {
    let status = Arc::new(AtomicU16::new(200));
    let address = http_server(status.clone()).await;
    let registry = StaticRegistry::new([Instance::new("api", "web", address)]).unwrap();
    let checked = HealthChecked::new(registry, fast(HealthCheck::http("/healthz")));
    let mut watch = checked.watch("api").await.unwrap();
    assert_eq!(ids(&watch), ["web"]);

    status.store(503, Ordering::SeqCst);
    until(&mut watch, &[]).await;
    status.store(204, Ordering::SeqCst);
    until(&mut watch, &["web"]).await;
}

/// One failed probe is not enough to go out, with a threshold of two:
/// the server fails exactly one request, and the instance stays in through
/// the rounds after it.
#[tokio::test]
async fn a_single_failure_below_the_threshold_changes_nothing() {
    let (served, mut probes) = tokio::sync::mpsc::unbounded_channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for n in 1.. {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            // The third probe (the second round after the first) fails.
            let status = if n == 3 { 500 } else { 200 };
            let mut request = [0; 1024];
            let _ = stream.read(&mut request).await;
            let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = served.send(n);
        }
    });
    let registry = StaticRegistry::new([Instance::new("api", "web", address)]).unwrap();
    let checked = HealthChecked::new(registry, fast(HealthCheck::http("/")));
    let mut watch = checked.watch("api").await.unwrap();
    watch.next_changes().await.unwrap();
    // Three rounds after the failure: enough to go out and come back.
    let sixth = async { while probes.recv().await.is_some_and(|n| n < 6) {} };
    tokio::time::timeout(Duration::from_secs(10), sixth)
        .await
        .expect("probes stopped");
    assert_eq!(ids(&watch), ["web"]);
    // Any publish at all (out, then back in) would show here.
    let changed = tokio::time::timeout(Duration::ZERO, watch.changed()).await;
    assert!(changed.is_err(), "the set was published again: {changed:?}");
}

#[tokio::test]
async fn a_manual_switch_takes_an_instance_out_whatever_its_health() {
    let registry = MemoryRegistry::new();
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let instance = Instance::new("api", "a", up.local_addr().unwrap());
    let _registration = registry
        .register(instance, Duration::from_secs(30))
        .await
        .unwrap();
    let checked = HealthChecked::new(registry, fast(HealthCheck::tcp()));
    let mut watch = checked.watch("api").await.unwrap();
    assert_eq!(ids(&watch), ["a"]);
    checked.disable("api", "a");
    until(&mut watch, &[]).await;
    assert!(checked.instances("api").await.unwrap().is_empty());
    checked.enable("api", "a");
    until(&mut watch, &["a"]).await;
    assert_eq!(checked.instances("api").await.unwrap().len(), 1);
}

/// Instances that join the source later are probed before they are taken
/// in.
#[tokio::test]
async fn new_instances_join_once_they_pass() {
    let registry = StaticRegistry::new([]).unwrap();
    let checked = HealthChecked::new(registry.clone(), fast(HealthCheck::tcp()));
    let mut watch = checked.watch("api").await.unwrap();
    assert!(ids(&watch).is_empty());
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    registry
        .replace([
            Instance::new("api", "up", up.local_addr().unwrap()),
            Instance::new("api", "down", closed_port().await),
        ])
        .unwrap();
    until(&mut watch, &["up"]).await;
}

/// A checker cancelled with its runtime leaves no trace: a watch made
/// later, on another runtime, gets a checker of its own that follows the
/// source.
#[test]
fn a_checker_cancelled_with_its_runtime_is_replaced() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    };
    let first = runtime();
    let up = first.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let up = up.into_std().unwrap();
    let address = up.local_addr().unwrap();
    let registry = StaticRegistry::new([]).unwrap();
    let checked = HealthChecked::new(registry.clone(), fast(HealthCheck::tcp()));
    let old = first.block_on(checked.watch("api")).unwrap();
    drop(first); // cancels the checker; `old` still holds its channel

    let second = runtime();
    second.block_on(async {
        let _up = TcpListener::from_std(up).unwrap();
        let mut watch = checked.watch("api").await.unwrap();
        registry
            .replace([Instance::new("api", "up", address)])
            .unwrap();
        until(&mut watch, &["up"]).await;
    });
    assert!(
        ids(&old).is_empty(),
        "the cancelled checker published nothing"
    );
}
