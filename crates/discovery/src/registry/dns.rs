//! [`DnsDiscovery`]: the instances of a service from DNS records, looked
//! up again when their time to live runs out.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{RData, RecordType};
use seawall_core::ConfigError;
use tokio::sync::watch;

use super::{Discovery, Fed, InstanceSet, Watch, publish};
use crate::{DiscoveryError, Instance};

/// Finds instances in DNS (read-only: nothing registers here).
///
/// The service name passed to [`watch`](Discovery::watch) or
/// [`instances`](Discovery::instances) says what to look up:
///
/// - `host:port` (`api.internal:8080`, `[fd00::1]:80`): the A and AAAA
///   records of `host` (asked for separately: if either lookup fails, the
///   whole lookup fails), one instance per address, all at `port`;
/// - a name whose first label starts with `_` (`_http._tcp.api.internal`):
///   its SRV records. Only the records of the lowest priority that resolve
///   to an address count (priorities below are fallbacks, as RFC 2782 has
///   it); each target's addresses come from the answer's additional
///   records, or from a lookup of the target. An instance's weight is its
///   record's weight (0 is taken as 1, since an instance of weight 0 gets
///   nothing from a weighing balancer), and its metadata holds the target
///   under `dns.target`.
///
/// Instances are named by their address (`10.0.0.7:8080`). A watch looks
/// up again when the shortest time to live among the answers runs out
/// (kept between a minimum and a maximum, 1 s and 5 min by default). A
/// name that does not exist, or has no such records, is an empty set. A
/// lookup that fails otherwise (the server does not answer, or answers
/// with an error) leaves watchers with the last set, and is tried again
/// after a wait that doubles from 1 s up to the maximum refresh. A watch
/// goes on after the `DnsDiscovery` it came from is dropped; the lookups
/// of a service stop when its last watch is dropped.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), seawall_discovery::DiscoveryError> {
/// use seawall_discovery::{Discovery, DnsDiscovery};
///
/// // The name servers of /etc/resolv.conf.
/// let dns = DnsDiscovery::system()?;
/// let mut api = dns.watch("api.internal:8080").await?;
/// let grpc = dns.instances("_grpc._tcp.backend.internal").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DnsDiscovery {
    inner: Arc<Inner>,
}

struct Inner {
    resolver: TokioResolver,
    refresh: (Duration, Duration),
    watched: Fed,
}

/// Builds a [`DnsDiscovery`].
#[derive(Debug, Clone)]
#[must_use]
pub struct DnsDiscoveryBuilder {
    name_servers: Vec<SocketAddr>,
    timeout: Duration,
    min_refresh: Duration,
    max_refresh: Duration,
}

impl DnsDiscovery {
    /// Starts a builder: the system's name servers, 2 s per query,
    /// refreshes from 1 s to 5 min.
    pub fn builder() -> DnsDiscoveryBuilder {
        DnsDiscoveryBuilder {
            name_servers: Vec::new(),
            timeout: Duration::from_secs(2),
            min_refresh: Duration::from_secs(1),
            max_refresh: Duration::from_secs(300),
        }
    }

    /// With the system's configuration (`/etc/resolv.conf`) and the
    /// builder's defaults.
    ///
    /// # Errors
    ///
    /// [`DiscoveryError::Backend`] if the system's configuration cannot be
    /// read.
    pub fn system() -> Result<Self, DiscoveryError> {
        Self::builder().build()
    }

    /// Looks `service` up once: the set, and how long it holds.
    async fn resolve(
        &self,
        service: &str,
        query: &Query,
    ) -> Result<(InstanceSet, Duration), DiscoveryError> {
        resolve(&self.inner.resolver, service, query, self.inner.refresh)
            .await
            .map_err(|e| DiscoveryError::backend("dns", e))
    }
}

impl DnsDiscoveryBuilder {
    /// Asks this name server (UDP, then TCP for long answers) instead of
    /// the system's; may be given more than once.
    pub fn name_server(mut self, address: SocketAddr) -> Self {
        self.name_servers.push(address);
        self
    }

    /// How long one query may take (more than 0; default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The shortest and the longest wait before a watch looks up again,
    /// whatever the records' time to live (at least 10 ms, the minimum at
    /// most the maximum).
    pub fn refresh(mut self, min: Duration, max: Duration) -> Self {
        self.min_refresh = min;
        self.max_refresh = max;
        self
    }

    /// The settings' rules, without making anything.
    fn check(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                "timeout",
                "must be longer than zero",
                "0s",
            ));
        }
        if self.min_refresh < Duration::from_millis(10) {
            return Err(ConfigError::new(
                "min_refresh",
                "must be at least 10ms",
                seawall_core::duration::format(self.min_refresh),
            ));
        }
        if self.max_refresh < self.min_refresh {
            return Err(ConfigError::new(
                "max_refresh",
                "must be at least min_refresh",
                seawall_core::duration::format(self.max_refresh),
            ));
        }
        Ok(())
    }

    /// Checks the settings and makes the resolver.
    ///
    /// # Errors
    ///
    /// [`DiscoveryError::Invalid`] naming `timeout`, `min_refresh` or
    /// `max_refresh`; [`DiscoveryError::Backend`] if no name server was
    /// given and the system's configuration cannot be read.
    pub fn build(self) -> Result<DnsDiscovery, DiscoveryError> {
        self.check()?;
        let mut builder = if self.name_servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| DiscoveryError::backend("dns", e))?
        } else {
            let servers = self
                .name_servers
                .iter()
                .map(|address| {
                    let mut server = NameServerConfig::udp_and_tcp(address.ip());
                    for connection in &mut server.connections {
                        connection.port = address.port();
                    }
                    server
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        builder.options_mut().timeout = self.timeout;
        let resolver = builder
            .build()
            .map_err(|e| DiscoveryError::backend("dns", e))?;
        Ok(DnsDiscovery {
            inner: Arc::new(Inner {
                resolver,
                refresh: (self.min_refresh, self.max_refresh),
                watched: Fed::default(),
            }),
        })
    }
}

/// A [`DnsDiscoveryBuilder`] as a document holds it (feature `serde`).
#[cfg(feature = "serde")]
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    name_servers: Vec<SocketAddr>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    timeout: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    min_refresh: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seawall_core::duration::serde::option"
    )]
    max_refresh: Option<Duration>,
}

/// Reads the builder's settings (feature `serde`), checked as
/// [`build`](DnsDiscoveryBuilder::build) checks them; those left out keep
/// the defaults, and no `name_servers` means the system's:
///
/// ```toml
/// name_servers = ["10.0.0.53:53"]
/// timeout = "2s"
/// min_refresh = "1s"
/// max_refresh = "5m"
/// ```
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for DnsDiscoveryBuilder {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <RawDns as serde::Deserialize>::deserialize(deserializer)?;
        let mut builder = DnsDiscovery::builder();
        builder.name_servers = raw.name_servers;
        builder.timeout = raw.timeout.unwrap_or(builder.timeout);
        builder.min_refresh = raw.min_refresh.unwrap_or(builder.min_refresh);
        builder.max_refresh = raw.max_refresh.unwrap_or(builder.max_refresh);
        builder.check().map_err(seawall_core::config::report)?;
        Ok(builder)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for DnsDiscoveryBuilder {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawDns {
            name_servers: self.name_servers.clone(),
            timeout: Some(self.timeout),
            min_refresh: Some(self.min_refresh),
            max_refresh: Some(self.max_refresh),
        };
        serde::Serialize::serialize(&raw, serializer)
    }
}

/// What a service name asks DNS for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Query {
    /// A and AAAA records of a host, at a port.
    Address { host: String, port: u16 },
    /// SRV records of a name.
    Srv(String),
}

impl Query {
    fn parse(service: &str) -> Result<Self, DiscoveryError> {
        let invalid = |rule| ConfigError::new("service", rule, service);
        if service.starts_with('_') {
            return Ok(Self::Srv(service.to_owned()));
        }
        let Some((host, port)) = service.rsplit_once(':') else {
            return Err(invalid("must be `host:port`, or an SRV name starting with `_`").into());
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = port
            .parse()
            .map_err(|_| invalid("must end in a port from 0 to 65535"))?;
        if host.is_empty() {
            return Err(invalid("must name a host before its port").into());
        }
        Ok(Self::Address {
            host: host.to_owned(),
            port,
        })
    }
}

/// Looks `query` up: the instances (of `service`), and when to look again
/// (when the first answer expires, within `refresh`).
async fn resolve(
    resolver: &TokioResolver,
    service: &str,
    query: &Query,
    refresh: (Duration, Duration),
) -> Result<(InstanceSet, Duration), NetError> {
    let asked = Instant::now();
    let mut found = Found::default();
    match query {
        Query::Address { host, port } => {
            for ip in addresses(resolver, host, asked, &mut found).await? {
                found.add(service, SocketAddr::new(ip, *port), 1, None);
            }
        }
        Query::Srv(name) => srv(resolver, service, name, asked, &mut found).await?,
    }
    let wait = found
        .expires
        .map_or(refresh.0, |at| at.saturating_duration_since(Instant::now()))
        .clamp(refresh.0, refresh.1);
    Ok((InstanceSet::new(found.instances.into_values()), wait))
}

/// The SRV records of `name`, their lowest priority that has addresses.
async fn srv(
    resolver: &TokioResolver,
    service: &str,
    name: &str,
    asked: Instant,
    found: &mut Found,
) -> Result<(), NetError> {
    let lookup = match resolver.srv_lookup(name).await {
        Ok(lookup) => lookup,
        Err(error) => return found.nothing(asked, &error),
    };
    found.expires(lookup.valid_until());
    // Addresses the answer carried along, by name.
    let mut glue: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for record in lookup.additionals() {
        if let Some(ip) = record.data.ip_addr() {
            glue.entry(record.name.to_ascii().to_lowercase())
                .or_default()
                .push(ip);
        }
    }
    let mut targets: Vec<_> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some(srv.clone()),
            _ => None,
        })
        .collect();
    targets.sort_by_key(|srv| srv.priority);
    let mut priority = None;
    for srv in targets {
        if priority.is_some_and(|taken| srv.priority > taken) {
            break;
        }
        // A target of "." says the service is not offered there.
        if srv.target.is_root() {
            continue;
        }
        let target = srv.target.to_ascii().to_lowercase();
        let ips = match glue.get(&target) {
            Some(ips) => ips.clone(),
            None => addresses(resolver, &target, asked, found).await?,
        };
        let weight = u32::from(srv.weight.max(1));
        for ip in ips {
            found.add(
                service,
                SocketAddr::new(ip, srv.port),
                weight,
                Some(&target),
            );
            priority = Some(srv.priority);
        }
    }
    Ok(())
}

/// The A and AAAA addresses of `host` (an address itself is its own). Each
/// family is asked on its own, so that one family's failure fails the
/// lookup instead of passing for "no such records".
async fn addresses(
    resolver: &TokioResolver,
    host: &str,
    asked: Instant,
    found: &mut Found,
) -> Result<Vec<IpAddr>, NetError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let (v4, v6) = tokio::join!(
        resolver.lookup(host, RecordType::A),
        resolver.lookup(host, RecordType::AAAA),
    );
    let mut ips = Vec::new();
    for lookup in [v4, v6] {
        match lookup {
            Ok(lookup) => {
                found.expires(lookup.valid_until());
                ips.extend(lookup.answers().iter().filter_map(|r| r.data.ip_addr()));
            }
            Err(error) => found.nothing(asked, &error)?,
        }
    }
    Ok(ips)
}

/// What a lookup found so far.
#[derive(Default)]
struct Found {
    instances: BTreeMap<SocketAddr, Arc<Instance>>,
    expires: Option<Instant>,
}

impl Found {
    fn add(&mut self, service: &str, address: SocketAddr, weight: u32, target: Option<&str>) {
        let mut instance = Instance::new(service, address.to_string(), address).weight(weight);
        if let Some(target) = target {
            instance
                .metadata
                .insert("dns.target".to_owned(), target.to_owned());
        }
        // One address named twice (by two SRV targets) is one instance.
        self.instances
            .entry(address)
            .or_insert_with(|| Arc::new(instance));
    }

    fn expires(&mut self, at: Instant) {
        self.expires = Some(self.expires.map_or(at, |before| before.min(at)));
    }

    /// A lookup failed: no records is an answer (the set is empty until
    /// the negative answer's time to live is over); anything else is the
    /// lookup's error.
    fn nothing(&mut self, asked: Instant, error: &NetError) -> Result<(), NetError> {
        match error {
            NetError::Dns(DnsError::NoRecordsFound(none)) => {
                if let Some(ttl) = none.negative_ttl {
                    self.expires(asked + Duration::from_secs(u64::from(ttl)));
                }
                Ok(())
            }
            _ => Err(error.clone()),
        }
    }
}

impl Discovery for DnsDiscovery {
    async fn watch(&self, service: &str) -> Result<Watch, DiscoveryError> {
        let query = Query::parse(service)?;
        if let Some(watch) = self.inner.watched.join(service) {
            return Ok(watch);
        }
        let (set, next) = self.resolve(service, &query).await?;
        let published = watch::Sender::new(set);
        let watch = match self.inner.watched.list(service, &published) {
            Ok(watch) => watch,
            Err(theirs) => return Ok(theirs),
        };
        let refresher = Refresher {
            discovery: self.inner.clone(),
            service: service.to_owned(),
            query,
            published,
        };
        tokio::spawn(refresher.run(next));
        Ok(watch)
    }

    async fn instances(&self, service: &str) -> Result<InstanceSet, DiscoveryError> {
        let query = Query::parse(service)?;
        let (set, _) = self.resolve(service, &query).await?;
        Ok(set)
    }
}

/// Looks a watched service up again as its records expire, until no
/// watcher is left.
struct Refresher {
    /// Held, so that watches go on after the `DnsDiscovery` is dropped.
    discovery: Arc<Inner>,
    service: String,
    query: Query,
    published: watch::Sender<InstanceSet>,
}

impl Refresher {
    async fn run(self, mut next: Duration) {
        let mut failures = 0;
        loop {
            tokio::select! {
                () = self.published.closed() => if self.unlisted() { return },
                () = tokio::time::sleep(next) => {}
            }
            let inner = &self.discovery;
            match resolve(&inner.resolver, &self.service, &self.query, inner.refresh).await {
                Ok((set, wait)) => {
                    failures = 0;
                    next = wait;
                    publish(&self.published, set);
                }
                Err(_error) => {
                    // Keep the last set; try again after a wait that grows.
                    #[cfg(feature = "tracing")]
                    tracing::warn!(
                        target: "seawall::discovery",
                        service = %self.service,
                        error = %_error,
                        "DNS lookup failed; watchers keep the last set",
                    );
                    failures += 1;
                    next = retry_wait(failures, inner.refresh);
                }
            }
        }
    }

    /// With no watcher left: unlists the refresher and says so; a watcher
    /// that joined meanwhile keeps it going.
    fn unlisted(&self) -> bool {
        self.discovery
            .watched
            .leave_if_unwatched(&self.service, &self.published)
    }
}

/// The wait after `failures` failed lookups in a row (from 1): 1 s,
/// doubled at each, within the refresh bounds.
fn retry_wait(failures: u32, refresh: (Duration, Duration)) -> Duration {
    seawall_core::duration::doubling(Duration::from_secs(1), failures, refresh.1).max(refresh.0)
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.discovery
            .watched
            .unlist(&self.service, &self.published);
    }
}

impl std::fmt::Debug for DnsDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsDiscovery")
            .field("refresh", &self.inner.refresh)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_say_what_to_look_up() {
        assert_eq!(
            Query::parse("api.internal:8080").unwrap(),
            Query::Address {
                host: "api.internal".into(),
                port: 8080
            }
        );
        assert_eq!(
            Query::parse("[fd00::1]:80").unwrap(),
            Query::Address {
                host: "fd00::1".into(),
                port: 80
            }
        );
        assert_eq!(
            Query::parse("_http._tcp.api.internal.").unwrap(),
            Query::Srv("_http._tcp.api.internal.".into())
        );
        for bad in ["api.internal", "api:http", ":80", "api:70000"] {
            let Err(DiscoveryError::Invalid(error)) = Query::parse(bad) else {
                panic!("{bad} was taken");
            };
            assert_eq!(error.field(), "service");
        }
    }

    #[test]
    fn failed_lookups_wait_longer_each_time() {
        let refresh = (Duration::from_millis(10), Duration::from_secs(5));
        let waits: Vec<_> = (1..=5).map(|n| retry_wait(n, refresh).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_document_is_checked_as_build_checks() {
        let read = |text: &str| {
            seawall_core::config::deserialize::<DnsDiscoveryBuilder, _>(
                toml::Deserializer::parse(text).unwrap(),
            )
        };
        let builder = read("name_servers = [\"127.0.0.1:5353\"]\ntimeout = \"500ms\"").unwrap();
        assert_eq!(
            builder.name_servers,
            [SocketAddr::from(([127, 0, 0, 1], 5353))]
        );
        assert_eq!(builder.timeout, Duration::from_millis(500));
        let again: DnsDiscoveryBuilder =
            toml::from_str(&toml::to_string(&builder).unwrap()).unwrap();
        assert_eq!(again.max_refresh, builder.max_refresh);
        assert_eq!(read("timeout = \"0s\"").unwrap_err().field(), "timeout");
        let err = read("min_refresh = \"2m\"\nmax_refresh = \"1m\"").unwrap_err();
        assert_eq!(err.field(), "max_refresh");
        assert!(read("servers = []").is_err());
    }

    #[test]
    fn settings_are_checked() {
        let field = |builder: DnsDiscoveryBuilder| match builder.build() {
            Err(DiscoveryError::Invalid(error)) => error.field().to_owned(),
            other => panic!("{other:?}"),
        };
        let server = SocketAddr::from(([127, 0, 0, 1], 53));
        let base = || DnsDiscovery::builder().name_server(server);
        assert_eq!(field(base().timeout(Duration::ZERO)), "timeout");
        assert_eq!(
            field(base().refresh(Duration::from_millis(1), Duration::from_secs(1))),
            "min_refresh"
        );
        assert_eq!(
            field(base().refresh(Duration::from_secs(2), Duration::from_secs(1))),
            "max_refresh"
        );
    }
}
