//! Any `X-Forwarded-For` bytes from any peer: `PeerIp` returns a key, never
//! panics, and never takes a trusted proxy's word for an address left of an
//! untrusted one.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use seawall_ratelimit::http::PeerIp;
use seawall_ratelimit::tower::KeyExtractor;

static BEHIND_PROXIES: LazyLock<PeerIp> =
    LazyLock::new(|| PeerIp::behind_proxies(["10.0.0.0/8", "fd00::/8"]).expect("valid"));

fuzz_target!(|input: (bool, Vec<Vec<u8>>)| {
    let (peer_is_proxy, lines) = input;
    let peer: SocketAddr = if peer_is_proxy {
        ([10, 0, 0, 1], 443).into()
    } else {
        ([198, 51, 100, 7], 443).into()
    };
    let mut request = Request::new(());
    request.extensions_mut().insert(peer);
    for line in &lines {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            request.headers_mut().append("x-forwarded-for", value);
        }
    }
    let key = BEHIND_PROXIES.extract(&request).expect("a peer was recorded");
    if !peer_is_proxy {
        // An untrusted peer's header is never read.
        assert_eq!(key, IpAddr::from([198, 51, 100, 7]));
    }
    let _ = PeerIp::new().extract(&request);
});
