//! Any `X-Forwarded-For` or `Forwarded` bytes from any peer: `PeerIp`
//! returns a key and never panics; an untrusted peer's header is never
//! read; and behind trusted proxies the key is exactly what the rule says:
//! an address from the header (or the peer), every entry right of it is a
//! trusted proxy, and it is either untrusted or the end of the walk (the
//! left-most entry, or the last before one that does not parse).
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use http::{HeaderName, HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use seawall_ratelimit::http::{ClientHeader, PeerIp};
use seawall_ratelimit::tower::KeyExtractor;

const PEER_PROXY: [u8; 4] = [10, 0, 0, 1];
const PEER_CLIENT: [u8; 4] = [198, 51, 100, 7];

static XFF: LazyLock<PeerIp> = LazyLock::new(|| {
    PeerIp::behind_proxies(["10.0.0.0/8", "fd00::/8"])
        .expect("valid")
        .ipv6_prefix(128)
        .expect("valid")
});
static FORWARDED: LazyLock<PeerIp> = LazyLock::new(|| XFF.clone().header(ClientHeader::Forwarded));
/// Two hops trusted, whatever their addresses.
static HOPS: LazyLock<PeerIp> = LazyLock::new(|| {
    PeerIp::behind_hops(2)
        .expect("valid")
        .ipv6_prefix(128)
        .expect("valid")
});
static HOPS_FORWARDED: LazyLock<PeerIp> =
    LazyLock::new(|| HOPS.clone().header(ClientHeader::Forwarded));

/// Trusted by the proxies above.
fn trusted(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets()[0] == 10,
        IpAddr::V6(v6) => v6.octets()[0] == 0xfd,
    }
}

/// The oracle's own reading of one entry: an address, with a port or in
/// brackets; for `Forwarded`, the value of its `for=` parameter, quoted or
/// not. `None` if it does not parse.
fn parse_entry(entry: &[u8], forwarded: bool) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    let text = if forwarded {
        let value = text.split(';').find_map(|pair| {
            let (name, value) = pair.trim_matches([' ', '\t']).split_once('=')?;
            name.eq_ignore_ascii_case("for").then_some(value)
        })?;
        let value = value.trim_matches([' ', '\t']);
        value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
    } else {
        text
    };
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    // `[v6]` or `v4`, then maybe `:` and a port: digits, or `_` and an
    // obfuscated name (RFC 7239). A `%zone` inside the brackets is dropped.
    let (ip, rest) = if let Some(inner) = text.strip_prefix('[') {
        let close = inner.find(']')?;
        let address = inner[..close].split('%').next()?;
        (IpAddr::V6(address.parse().ok()?), &inner[close + 1..])
    } else {
        let colon = text.rfind(':')?;
        (IpAddr::V4(text[..colon].parse().ok()?), &text[colon..])
    };
    let port_ok = |port: &str| {
        let digits = !port.is_empty() && port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit());
        let hidden = port.len() > 1
            && port.starts_with('_')
            && port[1..].chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        digits || hidden
    };
    let fine = rest.is_empty() || rest.strip_prefix(':').is_some_and(port_ok);
    fine.then(|| ip.to_canonical())
}

/// One header entry the fuzzer describes: an IPv4 address (in the trusted
/// 10/8 for even `kind`s below 4), with a port, an IPv6 one (in the trusted
/// fd00::/8 or not), bracketed with a port, or raw bytes; written as
/// `X-Forwarded-For` or `Forwarded` writes it.
fn entry((kind, bytes, port): (u8, [u8; 4], u16), forwarded: bool) -> Vec<u8> {
    let [a, b, c, d] = bytes;
    let v6_head = if a % 2 == 0 { "fd00" } else { "2001:db8" };
    let text = match kind % 8 {
        0 => format!("10.{b}.{c}.{d}"),
        1 => format!("{a}.{b}.{c}.{d}"),
        2 => format!("{a}.{b}.{c}.{d}:{port}"),
        3 => format!("{v6_head}::{b:x}:{c:x}{d:02x}"),
        4 => format!("[{v6_head}::{b:x}:{c:x}{d:02x}]:{port}"),
        5 => "unknown".to_owned(),
        _ => return bytes.to_vec(),
    };
    if forwarded {
        let quoted = if text.contains(':') { format!("\"{text}\"") } else { text };
        format!("for={quoted};proto=https").into_bytes()
    } else {
        text.into_bytes()
    }
}

type Line = Vec<(u8, [u8; 4], u16)>;

fuzz_target!(|input: (bool, bool, Vec<Line>, Vec<Vec<u8>>)| {
    let (peer_is_proxy, forwarded, described, raw) = input;
    let lines = described
        .into_iter()
        .map(|line| {
            let entries: Vec<Vec<u8>> = line.into_iter().map(|e| entry(e, forwarded)).collect();
            entries.join(&b", "[..])
        })
        .chain(raw);
    let peer = IpAddr::from(if peer_is_proxy { PEER_PROXY } else { PEER_CLIENT });
    let name = if forwarded {
        http::header::FORWARDED
    } else {
        HeaderName::from_static("x-forwarded-for")
    };
    let mut request = Request::new(());
    request.extensions_mut().insert(SocketAddr::new(peer, 443));
    let mut sent = Vec::new();
    for line in lines {
        if let Ok(value) = HeaderValue::from_bytes(&line) {
            request.headers_mut().append(&name, value);
            sent.push(line);
        }
    }
    let extractor = if forwarded { &*FORWARDED } else { &*XFF };
    let key = extractor.extract(&request).expect("a peer was recorded");
    assert_eq!(PeerIp::new().extract(&request).expect("a peer"), peer);
    // The entries, newest first, as the oracle reads them.
    let entries: Vec<Option<IpAddr>> = sent
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(|&b| b == b','))
        .map(|entry| parse_entry(entry, forwarded))
        .collect();
    // Two hops: the second entry from the right (fewer: the left-most);
    // an entry that does not parse ends the walk at the one before.
    let hops = if forwarded { &*HOPS_FORWARDED } else { &*HOPS };
    let mut by_hops = peer;
    for entry in entries.iter().take(2) {
        match entry {
            None => break,
            Some(ip) => by_hops = *ip,
        }
    }
    assert_eq!(hops.extract(&request).expect("a peer"), by_hops, "hops, lines {sent:?}");
    if !peer_is_proxy {
        assert_eq!(key, peer, "an untrusted peer's header was read");
        return;
    }
    // The oracle: walk the entries newest first, by the rule.
    let mut expected = peer;
    for entry in entries {
        match entry {
            None => break,
            Some(ip) => {
                expected = ip;
                if !trusted(ip) {
                    break;
                }
            }
        }
    }
    assert_eq!(key, expected, "lines {sent:?}");
});
