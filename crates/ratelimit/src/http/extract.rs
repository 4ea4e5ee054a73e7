//! Rate-limit keys taken from HTTP requests.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::Request;
use http::header::{HeaderName, HeaderValue};
use seawall_core::ConfigError;

use crate::tower::KeyExtractor;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Keys requests by the client's IP address.
///
/// The address comes from the connection, which the server records in the
/// request's extensions: a `SocketAddr` or `IpAddr` extension, or (with the
/// `axum` feature) axum's `ConnectInfo<SocketAddr>`, which
/// `into_make_service_with_connect_info::<SocketAddr>()` provides. **A
/// request with none of these gets the key `None`, shared by every such
/// request**: a server that records no connection info puts all clients
/// in one bucket, so make sure yours does (`hello.rs` shows axum's way).
///
/// IPv6 clients are keyed by their /64 (see
/// [`ipv6_prefix`](Self::ipv6_prefix)), and IPv4-mapped IPv6 addresses as
/// the IPv4 address they carry.
///
/// # Behind proxies
///
/// Behind a load balancer, the connection's address is the balancer's, and
/// the client's is in `X-Forwarded-For`, which every proxy appends to. But
/// the client can send that header too, with any addresses it likes in it,
/// so by default `PeerIp` ignores it: trusting it would let every request
/// pick a fresh key and skip its limit.
///
/// [`behind_proxies`](Self::behind_proxies) names the proxies you run. When
/// the connection comes from one of them, `PeerIp` reads the header from
/// the right (the newest entry) and takes the first address that is not a
/// trusted proxy: the client as seen by your outermost proxy. Entries left
/// of it were written by the client or by proxies you do not control and
/// are never used. If every entry is trusted, the left-most one is the key;
/// if an entry does not parse, the key is the last trusted hop before it.
///
/// # Examples
///
/// ```
/// use std::net::{IpAddr, SocketAddr};
/// use http::Request;
/// use seawall_ratelimit::http::PeerIp;
/// use seawall_ratelimit::tower::KeyExtractor;
///
/// let peer = PeerIp::behind_proxies(["10.0.0.0/8"])?;
/// let mut req = Request::new(());
/// req.extensions_mut().insert(SocketAddr::from(([10, 0, 0, 5], 443)));
/// req.headers_mut().insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.2.3".parse()?);
/// // 10.1.2.3 is our proxy; 203.0.113.9 is who connected to it; 6.6.6.6 is
/// // whatever the client claimed.
/// assert_eq!(peer.extract(&req), Some("203.0.113.9".parse::<IpAddr>()?));
///
/// // Without trusted proxies the header is ignored.
/// assert_eq!(PeerIp::new().extract(&req), Some("10.0.0.5".parse::<IpAddr>()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PeerIp {
    /// `None` when no proxy is trusted: a clone (one per request in many
    /// servers) then touches no reference count.
    trusted: Option<Arc<[IpNet]>>,
    ipv6_prefix: u8,
}

impl Default for PeerIp {
    fn default() -> Self {
        Self {
            trusted: None,
            ipv6_prefix: 64,
        }
    }
}

impl PeerIp {
    /// Keys by the connection's address; `X-Forwarded-For` is ignored.
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
            trusted: (!trusted.is_empty()).then(|| trusted.into()),
            ..Self::default()
        })
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted
            .as_deref()
            .is_some_and(|trusted| trusted.iter().any(|net| net.contains(ip)))
    }

    fn client_behind(
        &self,
        peer: IpAddr,
        forwarded: http::header::GetAll<'_, HeaderValue>,
    ) -> IpAddr {
        let mut client = peer;
        // Later header lines were appended later: newest first. Entries are
        // split as bytes, so junk left of the entry we stop at (written by
        // the client) is never even decoded.
        for line in forwarded.iter().rev() {
            for entry in line.as_bytes().rsplit(|&b| b == b',') {
                let Some(ip) = std::str::from_utf8(entry)
                    .ok()
                    .and_then(|entry| parse_forwarded(entry.trim()))
                else {
                    return client;
                };
                let ip = ip.to_canonical();
                client = ip;
                if !self.is_trusted(ip) {
                    return ip;
                }
            }
        }
        client
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
    type Key = Option<IpAddr>;

    fn extract(&self, request: &Request<B>) -> Option<IpAddr> {
        let peer = connection_ip(request)?.to_canonical();
        let client = if !self.is_trusted(peer) {
            peer
        } else {
            self.client_behind(peer, request.headers().get_all(X_FORWARDED_FOR))
        };
        Some(self.key_of(client))
    }
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

/// An `X-Forwarded-For` entry: an address, possibly with a port
/// (`1.2.3.4:80`, `[::1]:80`) or in brackets.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse().ok()
        })
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

/// Keys requests by the value of one header, such as an API key. Requests
/// without it share the key `None`. The value is copied out of the request
/// and cut to [`MAX_KEY_BYTES`], so a key costs at most that much memory.
///
/// ```
/// use http::{HeaderValue, Request};
/// use seawall_ratelimit::http::HeaderKey;
/// use seawall_ratelimit::tower::KeyExtractor;
///
/// let by_api_key = HeaderKey::named("x-api-key")?;
/// let req = Request::builder().header("x-api-key", "k-123").body(())?;
/// assert_eq!(by_api_key.extract(&req), Some(HeaderValue::from_static("k-123")));
/// assert_eq!(by_api_key.extract(&Request::new(())), None);
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

/// The most bytes of a header value or path kept as a key. Longer values
/// share the bucket of their first `MAX_KEY_BYTES` bytes: truncating can
/// only merge buckets (stricter), never split one (laxer).
pub const MAX_KEY_BYTES: usize = 256;

impl<B> KeyExtractor<Request<B>> for HeaderKey {
    type Key = Option<HeaderValue>;

    fn extract(&self, request: &Request<B>) -> Option<HeaderValue> {
        // Copied, not cloned: a clone would share (and keep alive) the
        // server's whole read buffer for as long as the key is tracked.
        let value = request.headers().get(&self.name)?.as_bytes();
        HeaderValue::from_bytes(&value[..value.len().min(MAX_KEY_BYTES)]).ok()
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
/// assert_eq!(RouteKey.extract(&req), "/search");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteKey;

impl<B> KeyExtractor<Request<B>> for RouteKey {
    type Key = String;

    fn extract(&self, request: &Request<B>) -> String {
        #[cfg(feature = "axum")]
        if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
            return matched.as_str().to_owned();
        }
        let path = request.uri().path();
        // A URI path is ASCII, so any byte index is a char boundary.
        path.get(..path.len().min(MAX_KEY_BYTES))
            .unwrap_or("/")
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: &[&str]) -> Request<()> {
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(peer.parse::<SocketAddr>().unwrap());
        for line in forwarded {
            req.headers_mut()
                .append(X_FORWARDED_FOR, line.parse().unwrap());
        }
        req
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
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
        assert_eq!(parse_forwarded("1.2.3.4:8080"), ip("1.2.3.4"));
        assert_eq!(parse_forwarded("[2001:db8::1]:443"), ip("2001:db8::1"));
        assert_eq!(parse_forwarded("[2001:db8::1]"), ip("2001:db8::1"));
        assert_eq!(parse_forwarded("unknown"), None);
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
        let line = HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.5, 10.1.1.1").unwrap();
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

    #[test]
    fn header_and_route_keys_are_copied_and_capped() {
        let long = "k".repeat(1_000);
        let req = Request::builder()
            .header("x-api-key", &long)
            .body(())
            .unwrap();
        let key = HeaderKey::named("x-api-key")
            .unwrap()
            .extract(&req)
            .unwrap();
        assert_eq!(key.len(), MAX_KEY_BYTES);
        let req = Request::get(format!("/{long}")).body(()).unwrap();
        assert_eq!(RouteKey.extract(&req).len(), MAX_KEY_BYTES);
    }

    #[test]
    fn no_connection_info_shares_the_none_key() {
        assert_eq!(PeerIp::new().extract(&Request::new(())), None);
        let mut req = Request::new(());
        req.extensions_mut()
            .insert("192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(PeerIp::new().extract(&req), ip("192.0.2.1"));
    }
}
