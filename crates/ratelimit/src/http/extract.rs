//! Rate-limit keys taken from HTTP requests.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::Request;
use http::header::HeaderName;
use seawall_core::ConfigError;

use crate::tower::{KeyExtractor, NoKey};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// No peer address in the request: refused, never keyed as one shared
/// client.
const NO_PEER: NoKey = NoKey::new(
    "PeerIp found no peer address: serve with axum's \
     `into_make_service_with_connect_info::<SocketAddr>()` (and seawall's `axum` feature), \
     or insert the connection's `SocketAddr` into each request's extensions",
);

/// A request through trusted proxies that names no client, under
/// [`PeerIp::strict`].
const NO_CLIENT: NoKey = NoKey::new(
    "PeerIp (strict) found no client address behind the trusted proxies: \
     the request carried no forwarded address, or only trusted or unreadable ones",
);

/// Where trusted proxies write the client's address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`: each proxy appends the
    /// address it was connected from (nginx, `HAProxy`, AWS ALB, Google Cloud
    /// load balancers, Cloudflare, most others).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239): the same list in the
    /// standard header, with `for=` parameters, quoted IPv6 and ports
    /// (Envoy, some CDNs; nginx and others when configured to).
    Forwarded,
    /// `X-Real-IP: client`: one address, set (not appended) by the proxy
    /// (nginx's `real_ip` module). Only the last such header is read.
    XRealIp,
}

/// Whom `PeerIp` believes about the client's address.
#[derive(Debug, Clone)]
enum Trust {
    /// The connection's address is the client's.
    Nobody,
    /// Proxies in these networks; the walk stops at the first address that
    /// is not one of them.
    Networks(Arc<[IpNet]>),
    /// This many proxies in front, whatever their addresses.
    Hops(usize),
}

/// Keys requests by the client's IP address.
///
/// The address comes from the connection, which the server records in the
/// request's extensions: a `SocketAddr` or `IpAddr` extension, or (with the
/// `axum` feature) axum's `ConnectInfo<SocketAddr>`, which
/// `into_make_service_with_connect_info::<SocketAddr>()` provides. A request
/// with none of these is **refused** ([`NoKey`], `500`, with the reason
/// logged): keying them all alike would put every client in one bucket,
/// silently (`hello.rs` shows axum's way to record the address).
///
/// IPv6 clients are keyed by their /64 (see
/// [`ipv6_prefix`](Self::ipv6_prefix)), and IPv4-mapped IPv6 addresses as
/// the IPv4 address they carry.
///
/// # Behind proxies
///
/// Behind a load balancer, the connection's address is the balancer's, and
/// the client's is in a header the balancer writes. But the client can send
/// that header too, with any address it likes, so by default `PeerIp` reads
/// no header: trusting one would let every request pick a fresh key and
/// skip its limit. Say which proxies to believe, and which header they
/// write ([`header`](Self::header); `X-Forwarded-For` by default):
///
/// - [`behind_proxies`](Self::behind_proxies) names your proxies' networks.
///   When the connection comes from one of them, `PeerIp` reads the list
///   from the right (the newest entry) and takes the first address that is
///   not a trusted proxy: the client as your outermost proxy saw it.
///   Entries left of it were written by the client or by proxies you do not
///   control, and are never used. If every entry is trusted, the left-most
///   is the key; if an entry does not parse, the key is the last trusted
///   hop before it. The safe choice whenever you know the proxies'
///   addresses.
/// - [`behind_hops`](Self::behind_hops) trusts a fixed number of proxies
///   whatever their addresses (a cloud load balancer whose addresses
///   change): the client is the `n`th entry from the right. Safe only if
///   nothing but those proxies can reach the server; a client that connects
///   directly can name any address in the header.
///
/// | In front of the service | Use |
/// |---|---|
/// | nothing (clients connect directly) | `PeerIp::new()` |
/// | nginx / `HAProxy` / Envoy you run, on known addresses | `behind_proxies(["10.0.0.0/8"])`, with the header they write |
/// | nginx with `real_ip` | `behind_proxies([...])?.header(ClientHeader::XRealIp)` |
/// | one cloud load balancer (AWS ALB, GCP), private network | `behind_hops(1)` |
/// | a CDN, then your load balancer | `behind_hops(2)`, or the CDN's published ranges in `behind_proxies` |
///
/// # Examples
///
/// ```
/// use std::net::{IpAddr, SocketAddr};
/// use http::Request;
/// use seawall_ratelimit::http::{ClientHeader, PeerIp};
/// use seawall_ratelimit::tower::KeyExtractor;
///
/// let peer = PeerIp::behind_proxies(["10.0.0.0/8"])?;
/// let mut req = Request::new(());
/// req.extensions_mut().insert(SocketAddr::from(([10, 0, 0, 5], 443)));
/// req.headers_mut().insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.2.3".parse()?);
/// // 10.1.2.3 is our proxy; 203.0.113.9 is who connected to it; 6.6.6.6 is
/// // whatever the client claimed.
/// assert_eq!(peer.extract(&req)?, "203.0.113.9".parse::<IpAddr>()?);
///
/// // Without trusted proxies the header is ignored.
/// assert_eq!(PeerIp::new().extract(&req)?, "10.0.0.5".parse::<IpAddr>()?);
///
/// // RFC 7239's header, from one proxy in front whatever its address.
/// let hops = PeerIp::behind_hops(1)?.header(ClientHeader::Forwarded);
/// req.headers_mut().insert("forwarded", r#"for="[2001:db8::7]:4711";proto=https"#.parse()?);
/// assert_eq!(hops.extract(&req)?, "2001:db8::".parse::<IpAddr>()?);
///
/// // No address recorded: refused, not keyed.
/// assert!(PeerIp::new().extract(&Request::new(())).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PeerIp {
    trust: Trust,
    header: ClientHeader,
    ipv6_prefix: u8,
    strict: bool,
}

impl Default for PeerIp {
    fn default() -> Self {
        Self {
            trust: Trust::Nobody,
            header: ClientHeader::XForwardedFor,
            ipv6_prefix: 64,
            strict: false,
        }
    }
}

impl PeerIp {
    /// Keys by the connection's address; no header is read.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys IPv6 clients by their first `bits` bits (default 64). An ISP
    /// hands a customer a /64 or more, so per-address keys would let one
    /// client rotate through 2^64 keys and skip its limit; 128 keys every
    /// address on its own.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `bits` is over 128.
    pub fn ipv6_prefix(mut self, bits: u8) -> Result<Self, ConfigError> {
        if bits > 128 {
            return Err(ConfigError::new("ipv6_prefix", "must be at most 128", bits));
        }
        self.ipv6_prefix = bits;
        Ok(self)
    }

    /// Refuses ([`NoKey`]) a request that came through trusted proxies but
    /// names no client: no header, only trusted or unreadable entries, or
    /// fewer entries than the trusted hops. By default such a request is
    /// keyed by the last trusted hop it reached, so all of them share that
    /// proxy's bucket; strict keeps them apart by refusing them, which also
    /// refuses a load balancer's own health checks if they carry no header.
    #[must_use]
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// Reads the client's address from `header` (default
    /// `X-Forwarded-For`) when a proxy is trusted.
    #[must_use]
    pub fn header(mut self, header: ClientHeader) -> Self {
        self.header = header;
        self
    }

    /// Keys by the client address your proxies recorded; see the type's
    /// docs. Each proxy is an address (`"10.0.0.7"`, `"::1"`) or a network
    /// (`"10.0.0.0/8"`, `"fd00::/8"`).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first entry that is not an address or
    /// network.
    pub fn behind_proxies<I, S>(proxies: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let trusted = proxies
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                IpNet::parse(text.as_ref()).ok_or_else(|| {
                    ConfigError::new(
                        format!("trusted_proxies[{i}]"),
                        "must be an IP address or network such as 10.0.0.0/8",
                        format_args!("{:?}", text.as_ref()),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            trust: if trusted.is_empty() {
                Trust::Nobody
            } else {
                Trust::Networks(trusted.into())
            },
            ..Self::default()
        })
    }

    /// Trusts the `hops` proxies closest to the server, whatever their
    /// addresses: the client is the `hops`th address from the right of the
    /// header (the left-most if there are fewer); see the type's docs for
    /// when that is safe.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `hops` is zero (use [`PeerIp::new`]).
    pub fn behind_hops(hops: usize) -> Result<Self, ConfigError> {
        if hops == 0 {
            return Err(ConfigError::new(
                "trusted_hops",
                "must be at least 1 (with no proxy, use PeerIp::new())",
                hops,
            ));
        }
        Ok(Self {
            trust: Trust::Hops(hops),
            ..Self::default()
        })
    }

    fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
        trusted.iter().any(|net| net.contains(ip))
    }

    /// The client's address for a request whose connection came from
    /// `peer`, by the trust configured.
    ///
    /// The flag says whether the walk found the client as the rule defines
    /// it (an address that is not a trusted proxy; the `n`th entry for `n`
    /// hops), rather than stopping at a trusted hop for want of one.
    fn client<B>(&self, peer: IpAddr, request: &Request<B>) -> (IpAddr, bool) {
        let mut client = peer;
        match &self.trust {
            Trust::Nobody => (peer, true),
            Trust::Networks(trusted) => {
                if !Self::is_trusted(trusted, peer) {
                    return (peer, true);
                }
                for entry in self.entries(request) {
                    let Some(ip) = entry else { break };
                    client = ip;
                    if !Self::is_trusted(trusted, ip) {
                        return (ip, true);
                    }
                }
                (client, false)
            }
            Trust::Hops(hops) => {
                let mut found = 0;
                for entry in self.entries(request).take(*hops) {
                    let Some(ip) = entry else { break };
                    client = ip;
                    found += 1;
                }
                (client, found == *hops)
            }
        }
    }

    /// The addresses in the configured header, newest (right-most) first;
    /// `None` for an entry that does not parse. Entries are split as bytes,
    /// so junk left of where the walk stops (the client's) is never even
    /// decoded. One iterator type for every header (no allocation per
    /// request): `X-Real-IP` is its last line, whole.
    fn entries<'a, B>(&self, request: &'a Request<B>) -> impl Iterator<Item = Option<IpAddr>> + 'a {
        let (name, parse, list): (_, ParseEntry, _) = match self.header {
            ClientHeader::XForwardedFor => (X_FORWARDED_FOR, forwarded_entry, true),
            ClientHeader::Forwarded => (http::header::FORWARDED, forwarded_for, true),
            ClientHeader::XRealIp => (X_REAL_IP, forwarded_entry, false),
        };
        request
            .headers()
            .get_all(name)
            .into_iter()
            .rev()
            .take(if list { usize::MAX } else { 1 })
            .flat_map(move |line| line.as_bytes().rsplit(move |&b| list && b == b','))
            .map(parse)
    }

    /// The key for a client address: IPv4-mapped IPv6 as IPv4, other IPv6
    /// cut to the configured prefix.
    fn key_of(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u32::from(128 - self.ipv6_prefix);
                let mask = u128::MAX.checked_shl(bits).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
            v4 => v4,
        }
    }
}

impl<B> KeyExtractor<Request<B>> for PeerIp {
    type Key = IpAddr;

    fn extract(&self, request: &Request<B>) -> Result<IpAddr, NoKey> {
        let peer = connection_ip(request).ok_or(NO_PEER)?.to_canonical();
        let (client, found) = self.client(peer, request);
        if self.strict && !found {
            return Err(NO_CLIENT);
        }
        Ok(self.key_of(client.to_canonical()))
    }
}

/// Reads one entry of a client header.
type ParseEntry = fn(&[u8]) -> Option<IpAddr>;

/// An `X-Forwarded-For` entry or an `X-Real-IP` value.
fn forwarded_entry(entry: &[u8]) -> Option<IpAddr> {
    parse_forwarded(entry.trim_ascii())
}

/// The address in one RFC 7239 element's `for=` parameter
/// (`for=192.0.2.60;proto=http`, `for="[2001:db8::17]:4711"`); `None` for
/// an element without one, or with `unknown` or an obfuscated name.
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    // The first `for` parameter only: one that does not parse ends the
    // walk, whatever follows it.
    let value = element.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let (name, value) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
        name.eq_ignore_ascii_case(b"for")
            .then(|| value[1..].trim_ascii())
    })?;
    let value = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    parse_forwarded(value)
}

fn connection_ip<B>(request: &Request<B>) -> Option<IpAddr> {
    let extensions = request.extensions();
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(addr.ip());
    }
    extensions
        .get::<SocketAddr>()
        .map(SocketAddr::ip)
        .or_else(|| extensions.get::<IpAddr>().copied())
}

/// A forwarded address: an address, possibly with a port (`1.2.3.4:80`,
/// `[::1]:80`, or RFC 7239's obfuscated `_port`) or in brackets; a zone on
/// an IPv6 address (`[fe80::1%25eth0]`) is dropped.
fn parse_forwarded(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?;
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, port) = match entry.strip_prefix('[') {
        Some(bracketed) => {
            let (host, rest) = bracketed.split_once(']')?;
            let host = host
                .split_once('%')
                .map_or(host, |(address, _zone)| address);
            let port = match rest {
                "" => None,
                rest => Some(rest.strip_prefix(':')?),
            };
            (host.parse::<std::net::Ipv6Addr>().ok()?.into(), port)
        }
        None => {
            let (host, port) = entry.rsplit_once(':')?;
            (host.parse::<std::net::Ipv4Addr>().ok()?.into(), Some(port))
        }
    };
    port.is_none_or(|port| match port.strip_prefix('_') {
        Some(obfuscated) => {
            !obfuscated.is_empty()
                && obfuscated
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit()),
    })
    .then_some(host)
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr.parse::<IpAddr>().ok()?, prefix.parse::<u8>().ok()?),
            None => {
                let addr = text.parse::<IpAddr>().ok()?;
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        // An IPv4-mapped network (::ffff:10.0.0.0/104) is an IPv4 one.
        match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Some(Self {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                }),
                None => Some(Self { addr, prefix }),
            },
            _ => Some(Self { addr, prefix }),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        // Compare IPv4-mapped IPv6 addresses as IPv4.
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    let host_bits = u32::from(bits - prefix);
    // Shifting by 128 is out of range: a /0 matches everything.
    net.checked_shr(host_bits).unwrap_or(0) == ip.checked_shr(host_bits).unwrap_or(0)
}

/// Keys requests by the value of one header, such as an API key or a
/// bearer token.
///
/// The key is a 128-bit keyed hash ([`HeaderDigest`]) of the whole value,
/// so the limiter's table holds no token (a secret) and a key costs 16
/// bytes however long the value; two values share a bucket only if their
/// hashes collide, which the per-process random key (SipHash-1-3, twice)
/// makes as unlikely as guessing it. Requests without the header share
/// the key `None`: one bucket for anonymous callers, which is usually what
/// a per-API-key limit wants (put a stricter limit in front of them, or
/// refuse them, if not).
///
/// ```
/// use http::Request;
/// use seawall_ratelimit::http::HeaderKey;
/// use seawall_ratelimit::tower::KeyExtractor;
///
/// let by_api_key = HeaderKey::named("x-api-key")?;
/// let alice = Request::builder().header("x-api-key", "k-alice").body(())?;
/// let bob = Request::builder().header("x-api-key", "k-bob").body(())?;
/// assert_ne!(by_api_key.extract(&alice)?, by_api_key.extract(&bob)?);
/// assert_eq!(by_api_key.extract(&Request::new(()))?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
}

impl HeaderKey {
    /// Keys by the header `name`.
    #[must_use]
    pub fn new(name: HeaderName) -> Self {
        Self { name }
    }

    /// Keys by the header called `name`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `name` is not a valid header name.
    pub fn named(name: &str) -> Result<Self, ConfigError> {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ConfigError::new(
                "header",
                "must be a valid header name",
                format_args!("{name:?}"),
            )
        })?;
        Ok(Self { name })
    }
}

/// A header value's 128-bit keyed hash: what [`HeaderKey`] keys by. The
/// same value gives the same digest across every `HeaderKey` of a process,
/// and a different one in the next process.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderDigest(u128);

impl HeaderDigest {
    /// The digest of `value`.
    #[must_use]
    pub fn of(value: &[u8]) -> Self {
        use std::hash::BuildHasher;
        static KEYS: std::sync::OnceLock<[std::hash::RandomState; 2]> = std::sync::OnceLock::new();
        let [high, low] =
            KEYS.get_or_init(|| [std::hash::RandomState::new(), std::hash::RandomState::new()]);
        Self((u128::from(high.hash_one(value)) << 64) | u128::from(low.hash_one(value)))
    }
}

impl std::fmt::Debug for HeaderDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeaderDigest({:032x})", self.0)
    }
}

/// The most bytes of a path kept as a [`RouteKey`]. Longer paths share the
/// bucket of their first `MAX_KEY_BYTES` bytes: truncating can only merge
/// buckets (stricter), never split one (laxer).
pub const MAX_KEY_BYTES: usize = 256;

impl<B> KeyExtractor<Request<B>> for HeaderKey {
    type Key = Option<HeaderDigest>;

    fn extract(&self, request: &Request<B>) -> Result<Option<HeaderDigest>, NoKey> {
        Ok(request
            .headers()
            .get(&self.name)
            .map(|value| HeaderDigest::of(value.as_bytes())))
    }
}

/// Keys requests by route: axum's matched route pattern when there is one
/// (with the `axum` feature), so `/users/1` and `/users/2` share
/// `/users/{id}`; otherwise the request's path as sent, cut to
/// [`MAX_KEY_BYTES`]. A raw path is the client's to vary (`/search`,
/// `//search`, `/search/`), so it limits well-behaved clients only: prefer
/// the matched route.
///
/// ```
/// use http::Request;
/// use seawall_ratelimit::http::RouteKey;
/// use seawall_ratelimit::tower::KeyExtractor;
///
/// let req = Request::get("/search?q=rust").body(())?;
/// assert_eq!(RouteKey.extract(&req)?, "/search");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteKey;

impl<B> KeyExtractor<Request<B>> for RouteKey {
    type Key = String;

    fn extract(&self, request: &Request<B>) -> Result<String, NoKey> {
        #[cfg(feature = "axum")]
        if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
            return Ok(matched.as_str().to_owned());
        }
        let path = request.uri().path();
        // `http` takes UTF-8 paths: cut before a character the limit splits.
        let mut end = path.len().min(MAX_KEY_BYTES);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        Ok(path[..end].to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: &[&str]) -> Request<()> {
        with_header(peer, X_FORWARDED_FOR, forwarded)
    }

    fn with_header(peer: &str, name: HeaderName, lines: &[&str]) -> Request<()> {
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(peer.parse::<SocketAddr>().unwrap());
        for line in lines {
            req.headers_mut().append(&name, line.parse().unwrap());
        }
        req
    }

    fn ip(text: &str) -> Result<IpAddr, NoKey> {
        Ok(text.parse().unwrap())
    }

    #[test]
    fn forwarded_for_is_ignored_without_trusted_proxies() {
        let req = request("198.51.100.1:5000", &["1.1.1.1"]);
        assert_eq!(PeerIp::new().extract(&req), ip("198.51.100.1"));
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let peer = PeerIp::behind_proxies(["10.0.0.0/8"]).unwrap();
        let req = request("198.51.100.1:5000", &["1.1.1.1"]);
        assert_eq!(peer.extract(&req), ip("198.51.100.1"));
    }

    #[test]
    fn right_most_untrusted_entry_wins() {
        let peer = PeerIp::behind_proxies(["10.0.0.0/8", "192.168.1.1"]).unwrap();
        let req = request(
            "10.0.0.1:80",
            &["9.9.9.9, 8.8.8.8", "203.0.113.5, 192.168.1.1, 10.3.3.3"],
        );
        assert_eq!(peer.extract(&req), ip("203.0.113.5"));
    }

    #[test]
    fn all_trusted_takes_the_left_most_and_garbage_stops_the_walk() {
        let peer = PeerIp::behind_proxies(["10.0.0.0/8"]).unwrap();
        let all_trusted = request("10.0.0.1:80", &["10.9.9.9, 10.8.8.8"]);
        assert_eq!(peer.extract(&all_trusted), ip("10.9.9.9"));
        let garbage = request("10.0.0.1:80", &["1.2.3.4, not-an-ip, 10.8.8.8"]);
        assert_eq!(peer.extract(&garbage), ip("10.8.8.8"));
        let none = request("10.0.0.1:80", &[]);
        assert_eq!(peer.extract(&none), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_entries_may_carry_ports_and_brackets() {
        let parse = |text: &str| parse_forwarded(text.as_bytes());
        assert_eq!(parse("1.2.3.4:8080"), ip("1.2.3.4").ok());
        assert_eq!(parse("[2001:db8::1]:443"), ip("2001:db8::1").ok());
        assert_eq!(parse("[2001:db8::1]"), ip("2001:db8::1").ok());
        assert_eq!(parse("unknown"), None);
        // RFC 7239's obfuscated ports, and zones (dropped) on IPv6.
        assert_eq!(parse("192.0.2.43:_abc"), ip("192.0.2.43").ok());
        assert_eq!(parse("[2001:db8::1]:_x.y-z"), ip("2001:db8::1").ok());
        assert_eq!(parse("[fe80::1%25eth0]"), ip("fe80::1").ok());
        assert_eq!(parse("[fe80::1%eth0]:80"), ip("fe80::1").ok());
        for bad in [
            "1.2.3.4:",
            "1.2.3.4:+80",
            "1.2.3.4:_",
            "1.2.3.4:x1",
            "[::1]80",
            "[1.2.3.4]",
            "::1:_a",
            "1.2.3.4%1",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    /// RFC 7239's examples: quoted IPv6 with a port, several parameters,
    /// case-insensitive names, `unknown` and obfuscated names stopping the
    /// walk.
    #[test]
    fn the_forwarded_header_is_read_by_its_for_parameters() {
        let peer = PeerIp::behind_proxies(["10.0.0.0/8"])
            .unwrap()
            .header(ClientHeader::Forwarded);
        let forwarded = http::header::FORWARDED;
        let req = with_header(
            "10.0.0.1:80",
            forwarded.clone(),
            &[
                r#"for=192.0.2.43, For="[2001:db8:cafe::17]:4711";proto=https, for=10.1.1.1;by=10.0.0.1"#,
            ],
        );
        assert_eq!(peer.extract(&req), ip("2001:db8:cafe::"));
        let req = with_header(
            "10.0.0.1:80",
            forwarded.clone(),
            &["for=198.51.100.17;proto=http", "for=10.2.2.2"],
        );
        assert_eq!(peer.extract(&req), ip("198.51.100.17"));
        let hidden = with_header(
            "10.0.0.1:80",
            forwarded.clone(),
            &["for=203.0.113.1, for=_hidden, for=10.3.3.3"],
        );
        assert_eq!(peer.extract(&hidden), ip("10.3.3.3"));
        let no_for = with_header("10.0.0.1:80", forwarded.clone(), &["proto=https"]);
        assert_eq!(peer.extract(&no_for), ip("10.0.0.1"));
        // The first `for` decides: `unknown` is not skipped for a later one.
        let twice = with_header("10.0.0.1:80", forwarded, &["for=unknown;for=203.0.113.1"]);
        assert_eq!(peer.extract(&twice), ip("10.0.0.1"));
    }

    #[test]
    fn x_real_ip_is_one_address_from_a_trusted_proxy() {
        let peer = PeerIp::behind_proxies(["10.0.0.0/8"])
            .unwrap()
            .header(ClientHeader::XRealIp);
        let req = with_header("10.0.0.1:80", X_REAL_IP, &["203.0.113.8"]);
        assert_eq!(peer.extract(&req), ip("203.0.113.8"));
        let untrusted = with_header("198.51.100.1:80", X_REAL_IP, &["203.0.113.8"]);
        assert_eq!(peer.extract(&untrusted), ip("198.51.100.1"));
        // X-Forwarded-For is not read when X-Real-IP is the header.
        let other = request("10.0.0.1:80", &["203.0.113.8"]);
        assert_eq!(peer.extract(&other), ip("10.0.0.1"));
    }

    /// Trusting N hops takes the Nth entry from the right, whatever the
    /// addresses; fewer entries give the left-most, none the peer.
    #[test]
    fn trusting_hops_counts_from_the_right() {
        let one = PeerIp::behind_hops(1).unwrap();
        let two = PeerIp::behind_hops(2).unwrap();
        let req = request("198.51.100.1:80", &["6.6.6.6, 203.0.113.9", "172.16.0.4"]);
        assert_eq!(one.extract(&req), ip("172.16.0.4"));
        assert_eq!(two.extract(&req), ip("203.0.113.9"));
        assert_eq!(PeerIp::behind_hops(9).unwrap().extract(&req), ip("6.6.6.6"));
        let bare = request("198.51.100.1:80", &[]);
        assert_eq!(two.extract(&bare), ip("198.51.100.1"));
        assert_eq!(
            PeerIp::behind_hops(0).unwrap_err().to_string(),
            "trusted_hops: must be at least 1 (with no proxy, use PeerIp::new()), got 0"
        );
    }

    /// Strict: a request through trusted proxies that names no client is
    /// refused instead of keyed by the last trusted hop.
    #[test]
    fn strict_refuses_requests_that_name_no_client() {
        let strict = PeerIp::behind_proxies(["10.0.0.0/8"]).unwrap().strict();
        let lax = PeerIp::behind_proxies(["10.0.0.0/8"]).unwrap();
        for lines in [&[][..], &["10.9.9.9"], &["not-an-ip, 10.8.8.8"]] {
            let req = request("10.0.0.1:80", lines);
            assert!(strict.extract(&req).is_err(), "{lines:?}");
            assert!(lax.extract(&req).is_ok(), "{lines:?}");
        }
        let named = request("10.0.0.1:80", &["203.0.113.5, 10.8.8.8"]);
        assert_eq!(strict.extract(&named), ip("203.0.113.5"));
        let direct = request("198.51.100.1:80", &[]);
        assert_eq!(
            strict.extract(&direct),
            ip("198.51.100.1"),
            "untrusted peer"
        );
        let hops = PeerIp::behind_hops(2).unwrap().strict();
        assert!(
            hops.extract(&request("198.51.100.1:80", &["203.0.113.5"]))
                .is_err()
        );
        assert_eq!(
            hops.extract(&request("198.51.100.1:80", &["203.0.113.5, 172.16.0.4"])),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn networks_match_by_prefix() {
        let net = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.255.0.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.1.1".parse().unwrap()),
            "IPv4-mapped"
        );
        let v6 = IpNet::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(
            IpNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            IpNet::parse("::/0")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert_eq!(IpNet::parse("10.0.0.0/33"), None);
        assert_eq!(IpNet::parse("10.0.0"), None);
    }

    #[test]
    fn bad_proxy_entries_are_config_errors() {
        let err = PeerIp::behind_proxies(["10.0.0.0/8", "10.0.0.0/99"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"trusted_proxies[1]: must be an IP address or network such as 10.0.0.0/8, got "10.0.0.0/99""#
        );
    }

    #[test]
    fn junk_left_of_the_client_is_never_read() {
        let peer = PeerIp::behind_proxies(["10.0.0.0/8"]).unwrap();
        let mut req = Request::new(());
        req.extensions_mut()
            .insert("10.0.0.1:80".parse::<SocketAddr>().unwrap());
        let line = http::HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.5, 10.1.1.1").unwrap();
        req.headers_mut().insert(X_FORWARDED_FOR, line);
        assert_eq!(peer.extract(&req), ip("203.0.113.5"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_prefix_and_mapped_ones_as_ipv4() {
        let v6 = request("[2001:db8:1:2:aaaa::1]:443", &[]);
        assert_eq!(PeerIp::new().extract(&v6), ip("2001:db8:1:2::"));
        let per_address = PeerIp::new().ipv6_prefix(128).unwrap();
        assert_eq!(per_address.extract(&v6), ip("2001:db8:1:2:aaaa::1"));
        let mapped = request("[::ffff:192.0.2.9]:443", &[]);
        assert_eq!(PeerIp::new().extract(&mapped), ip("192.0.2.9"));
        assert!(PeerIp::new().ipv6_prefix(129).is_err());
        // A trusted proxy written as a mapped network matches its IPv4 peers.
        let peer = PeerIp::behind_proxies(["::ffff:10.0.0.0/104"]).unwrap();
        let via_proxy = request("10.0.0.1:80", &["198.51.100.4"]);
        assert_eq!(peer.extract(&via_proxy), ip("198.51.100.4"));
    }

    /// Two bearer tokens of one issuer share far more than 256 bytes; they
    /// are still two keys, and the key holds no part of the token.
    #[test]
    fn header_keys_hash_the_whole_value() {
        let prefix = "Bearer ".to_owned() + &"e".repeat(1_000);
        let key = |value: &str| {
            let req = Request::builder()
                .header("authorization", value)
                .body(())
                .unwrap();
            HeaderKey::new(http::header::AUTHORIZATION)
                .extract(&req)
                .unwrap()
        };
        let (a, b) = (key(&(prefix.clone() + "a")), key(&(prefix.clone() + "b")));
        assert_ne!(a, b);
        assert_eq!(a, key(&(prefix + "a")), "stable in a process");
        assert_eq!(std::mem::size_of::<HeaderDigest>(), 16);
    }

    #[test]
    fn route_keys_cut_long_paths_at_a_character() {
        let long = "k".repeat(1_000);
        let req = Request::get(format!("/{long}")).body(()).unwrap();
        assert_eq!(RouteKey.extract(&req).unwrap().len(), MAX_KEY_BYTES);
        // `http` takes UTF-8 paths: a character across the cut is left out
        // whole, and the path keeps its own bucket.
        let accented = format!("/{}é/more", "a".repeat(MAX_KEY_BYTES - 2));
        let req = Request::get(accented.as_str()).body(()).unwrap();
        assert_eq!(
            RouteKey.extract(&req).unwrap(),
            accented[..MAX_KEY_BYTES - 1]
        );
    }

    #[test]
    fn no_connection_info_is_refused_not_shared() {
        let err = PeerIp::new().extract(&Request::new(())).unwrap_err();
        assert!(
            err.reason().contains("into_make_service_with_connect_info"),
            "{err}"
        );
        let behind = PeerIp::behind_hops(1).unwrap();
        assert!(behind.extract(&Request::new(())).is_err());
        let mut req = Request::new(());
        req.extensions_mut()
            .insert("192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(PeerIp::new().extract(&req), ip("192.0.2.1"));
    }
}
