//! `DnsDiscovery` against a DNS server this test starts on a loopback
//! port: A/AAAA and SRV answers, refresh by time to live, and an outage.
#![cfg(feature = "dns")]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use seawall_discovery::{Discovery, DiscoveryError, DnsDiscovery, InstanceSet};
use tokio::net::UdpSocket;

/// What the test's server holds and how it behaves.
#[derive(Default)]
struct Zone {
    records: HashMap<(String, RecordType), Vec<Record>>,
    /// Addresses sent along with SRV answers, by target.
    glue: HashMap<String, Vec<Record>>,
    /// Out of service: `None` answers, `Some(code)` answers that error.
    down: Option<Option<ResponseCode>>,
    /// Queries of these types go unanswered.
    silent: Vec<RecordType>,
    /// Queries answered, by name.
    asked: HashMap<String, usize>,
}

#[derive(Clone)]
struct Server {
    address: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    /// The task that answers, while the server runs.
    running: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("a valid name")
}

fn a(host: &str, ip: [u8; 4], ttl: u32) -> Record {
    Record::from_rdata(name(host), ttl, RData::A(A(Ipv4Addr::from(ip))))
}

fn srv(name_: &str, priority: u16, weight: u16, port: u16, target: &str, ttl: u32) -> Record {
    Record::from_rdata(
        name(name_),
        ttl,
        RData::SRV(SRV::new(priority, weight, port, name(target))),
    )
}

impl Server {
    async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let server = Self {
            address: socket.local_addr().expect("its address"),
            zone: Arc::new(Mutex::new(Zone::default())),
            running: Arc::new(Mutex::new(None)),
        };
        server.serve(socket);
        server
    }

    fn serve(&self, socket: UdpSocket) {
        let zone = self.zone.clone();
        let task = tokio::spawn(async move {
            let mut buffer = vec![0; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buffer).await else {
                    return;
                };
                let Some(answer) = answer(&zone, &buffer[..n]) else {
                    continue;
                };
                let _ = socket.send_to(&answer, peer).await;
            }
        });
        *self.running.lock().expect("not poisoned") = Some(task);
    }

    /// Stops the server: its socket is closed, so queries are refused.
    async fn stop(&self) {
        let task = self.running.lock().expect("not poisoned").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Starts it again on the same port (waiting, up to 2 s, for a client
    /// socket that took the port meanwhile to let it go).
    async fn restart(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let socket = loop {
            match UdpSocket::bind(self.address).await {
                Ok(socket) => break socket,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("cannot bind {} again: {error}", self.address),
            }
        };
        self.serve(socket);
    }

    fn set(&self, key: (&str, RecordType), records: Vec<Record>) {
        let mut zone = self.zone.lock().expect("not poisoned");
        zone.records.insert((key.0.to_owned(), key.1), records);
    }

    fn glue(&self, target: &str, records: Vec<Record>) {
        let mut zone = self.zone.lock().expect("not poisoned");
        zone.glue.insert(target.to_owned(), records);
    }

    fn down(&self, down: Option<Option<ResponseCode>>) {
        self.zone.lock().expect("not poisoned").down = down;
    }

    fn silence(&self, types: &[RecordType]) {
        self.zone.lock().expect("not poisoned").silent = types.to_vec();
    }

    fn asked(&self, host: &str) -> usize {
        let zone = self.zone.lock().expect("not poisoned");
        zone.asked.get(host).copied().unwrap_or(0)
    }

    fn discovery(&self) -> DnsDiscovery {
        DnsDiscovery::builder()
            .name_server(self.address)
            .timeout(Duration::from_millis(200))
            .refresh(Duration::from_millis(100), Duration::from_secs(2))
            .build()
            .expect("valid settings")
    }
}

/// The server's answer to one query, if it answers.
fn answer(zone: &Mutex<Zone>, bytes: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(bytes).ok()?;
    let query = request.queries.first()?.clone();
    let mut zone = zone.lock().expect("not poisoned");
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_query(query.clone());
    let host = query.name().to_ascii().to_lowercase();
    if zone.silent.contains(&query.query_type()) {
        return None;
    }
    match zone.down {
        Some(None) => return None,
        Some(Some(code)) => {
            response.metadata.response_code = code;
            return response.to_vec().ok();
        }
        None => {}
    }
    *zone.asked.entry(host.clone()).or_default() += 1;
    response.metadata.authoritative = true;
    match zone.records.get(&(host.clone(), query.query_type())) {
        Some(records) => {
            for record in records {
                response.add_answer(record.clone());
                if let RData::SRV(srv) = &record.data {
                    let target = srv.target.to_ascii().to_lowercase();
                    for glue in zone.glue.get(&target).into_iter().flatten() {
                        response.add_additional(glue.clone());
                    }
                }
            }
        }
        // The name exists with other types: an empty answer.
        None if zone.records.keys().any(|(known, _)| *known == host) => {}
        None => response.metadata.response_code = ResponseCode::NXDomain,
    }
    response.to_vec().ok()
}

fn addresses(set: &InstanceSet) -> Vec<SocketAddr> {
    let mut all: Vec<_> = set.iter().map(|i| i.address).collect();
    all.sort();
    all
}

fn at(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

/// Waits (up to 5 s) until the watch's set is `want`.
async fn until_set(watch: &mut seawall_discovery::Watch, want: &[SocketAddr]) {
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        while addresses(&watch.current()) != want {
            watch.changed().await.expect("the watch goes on");
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the set stayed {:?}, want {want:?}",
        addresses(&watch.current())
    );
}

#[tokio::test]
async fn a_and_aaaa_records_are_instances_at_the_port() {
    let server = Server::start().await;
    server.set(
        ("api.test.", RecordType::A),
        vec![
            a("api.test.", [10, 0, 0, 1], 60),
            a("api.test.", [10, 0, 0, 2], 60),
        ],
    );
    let v6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    server.set(
        ("api.test.", RecordType::AAAA),
        vec![Record::from_rdata(
            name("api.test."),
            60,
            RData::AAAA(AAAA(v6)),
        )],
    );
    let dns = server.discovery();
    let set = dns.instances("api.test.:8080").await.unwrap();
    let mut found = addresses(&set);
    found.sort_by_key(|a| (a.is_ipv6(), *a));
    assert_eq!(
        found,
        [
            at([10, 0, 0, 1], 8080),
            at([10, 0, 0, 2], 8080),
            SocketAddr::new(IpAddr::V6(v6), 8080)
        ]
    );
    let one = set.get("10.0.0.1:8080").expect("named by its address");
    assert_eq!(one.service, "api.test.:8080");
    assert_eq!(one.weight, 1);
}

#[tokio::test]
async fn srv_records_give_ports_weights_and_the_lowest_priority() {
    let server = Server::start().await;
    let name_ = "_http._tcp.api.test.";
    server.set(
        (name_, RecordType::SRV),
        vec![
            srv(name_, 10, 60, 8001, "one.api.test.", 60),
            srv(name_, 10, 0, 8002, "two.api.test.", 60),
            // A fallback: used only if no target above resolves.
            srv(name_, 20, 10, 8003, "three.api.test.", 60),
        ],
    );
    // `one` comes with the answer; `two` takes a lookup of its own.
    server.glue("one.api.test.", vec![a("one.api.test.", [10, 0, 1, 1], 60)]);
    server.set(
        ("two.api.test.", RecordType::A),
        vec![a("two.api.test.", [10, 0, 1, 2], 60)],
    );
    server.set(
        ("three.api.test.", RecordType::A),
        vec![a("three.api.test.", [10, 0, 1, 3], 60)],
    );
    let dns = server.discovery();
    let set = dns.instances(name_).await.unwrap();
    assert_eq!(
        addresses(&set),
        [at([10, 0, 1, 1], 8001), at([10, 0, 1, 2], 8002)]
    );
    let one = set.get("10.0.1.1:8001").unwrap();
    assert_eq!(one.weight, 60);
    assert_eq!(one.metadata["dns.target"], "one.api.test.");
    // Weight 0 is the least a weighing balancer still sends to.
    assert_eq!(set.get("10.0.1.2:8002").unwrap().weight, 1);
    assert_eq!(server.asked("one.api.test."), 0, "glue saves a lookup");

    // With the first priority's targets gone, the fallback serves.
    server.set(("one.api.test.", RecordType::A), vec![]);
    server.glue("one.api.test.", vec![]);
    server.set(("two.api.test.", RecordType::A), vec![]);
    let dns = server.discovery();
    let set = dns.instances(name_).await.unwrap();
    assert_eq!(addresses(&set), [at([10, 0, 1, 3], 8003)]);
}

#[tokio::test]
async fn a_watch_follows_the_records_as_their_ttl_runs_out() {
    let server = Server::start().await;
    server.set(
        ("api.test.", RecordType::A),
        vec![a("api.test.", [10, 0, 0, 1], 1)],
    );
    let dns = server.discovery();
    let mut watch = dns.watch("api.test.:80").await.unwrap();
    assert_eq!(addresses(&watch.current()), [at([10, 0, 0, 1], 80)]);
    // The watch goes on without the `DnsDiscovery` it came from.
    drop(dns);
    server.set(
        ("api.test.", RecordType::A),
        vec![
            a("api.test.", [10, 0, 0, 1], 1),
            a("api.test.", [10, 0, 0, 2], 1),
        ],
    );
    until_set(&mut watch, &[at([10, 0, 0, 1], 80), at([10, 0, 0, 2], 80)]).await;
    server.set(("api.test.", RecordType::A), vec![]);
    until_set(&mut watch, &[]).await;
}

#[tokio::test]
async fn watches_of_one_service_share_one_refresher() {
    let server = Server::start().await;
    // A long time to live: no refresh comes between the two watches.
    server.set(
        ("api.test.", RecordType::A),
        vec![a("api.test.", [10, 0, 0, 1], 3_600)],
    );
    let dns = server.discovery();
    let first = dns.watch("api.test.:80").await.unwrap();
    let asked = server.asked("api.test.");
    let second = dns.watch("api.test.:80").await.unwrap();
    assert_eq!(server.asked("api.test."), asked, "the second watch joined");
    assert_eq!(addresses(&second.current()), addresses(&first.current()));
}

#[tokio::test]
async fn one_address_family_failing_keeps_the_last_set() {
    let server = Server::start().await;
    // IPv4 only: AAAA queries get an empty answer.
    server.set(
        ("api.test.", RecordType::A),
        vec![a("api.test.", [10, 0, 0, 1], 1)],
    );
    let dns = server.discovery();
    let watch = dns.watch("api.test.:80").await.unwrap();
    // A queries go unanswered while AAAA ones still say "none": that is
    // an outage, not an empty service.
    server.silence(&[RecordType::A]);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(addresses(&watch.current()), [at([10, 0, 0, 1], 80)]);
    server.silence(&[]);
}

#[tokio::test]
async fn an_outage_keeps_the_last_set_and_a_missing_name_is_empty() {
    let server = Server::start().await;
    server.set(
        ("api.test.", RecordType::A),
        vec![a("api.test.", [10, 0, 0, 1], 1)],
    );
    let dns = server.discovery();
    let mut watch = dns.watch("api.test.:80").await.unwrap();

    // The server stops answering, then answers with errors: the watch
    // keeps what it had.
    server.down(Some(None));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.down(Some(Some(ResponseCode::ServFail)));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(addresses(&watch.current()), [at([10, 0, 0, 1], 80)]);
    assert!(matches!(
        dns.instances("api.test.:80").await,
        Err(DiscoveryError::Backend { backend: "dns", .. })
    ));

    // Stopped outright (its port closed: to hickory's unconnected UDP
    // sockets that looks like silence, as no error comes back), for longer
    // than the longest retry wait (2 s), then started again with a change
    // made meanwhile: the watch keeps its set, then catches up.
    server.down(None);
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(addresses(&watch.current()), [at([10, 0, 0, 1], 80)]);
    server.set(
        ("api.test.", RecordType::A),
        vec![a("api.test.", [10, 0, 0, 9], 1)],
    );
    server.restart().await;
    until_set(&mut watch, &[at([10, 0, 0, 9], 80)]).await;

    // A name that does not exist is no instance, not an error.
    assert!(dns.instances("nothing.test.:80").await.unwrap().is_empty());
    let empty = dns.watch("nothing.test.:80").await.unwrap();
    assert!(empty.current().is_empty());
}
