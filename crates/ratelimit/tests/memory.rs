//! Bytes per key of a `KeyedRateLimiter`, measured with a counting
//! allocator (this test binary's only test, so nothing else allocates
//! meanwhile). docs/ratelimit.md quotes the figures it prints.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use seawall_ratelimit::{KeyedRateLimiter, Quota};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live bytes per key after inserting `keys` keys into a limiter with room
/// for twice as many (so no shard is full and every key stays).
fn bytes_per_key<K>(keys: usize, key: impl Fn(usize) -> K) -> usize
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    let quota = Quota::per_second(10).build().expect("valid");
    let before = LIVE.load(Ordering::Relaxed);
    let limiter = KeyedRateLimiter::<K>::builder(quota)
        .max_keys(keys * 2)
        .build()
        .expect("valid");
    for i in 0..keys {
        limiter.check(&key(i)).expect("admitted");
    }
    assert_eq!(limiter.len(), keys);
    let used = LIVE.load(Ordering::Relaxed) - before;
    drop(limiter);
    used / keys
}

#[test]
fn bytes_per_key_stay_small() {
    // Distinct addresses in 10.0.0.0/8.
    let ip = |i: usize| {
        Some(IpAddr::from(Ipv4Addr::from(
            0x0a00_0000 | u32::try_from(i).unwrap(),
        )))
    };
    let u64_keys = bytes_per_key(10_000, |i| u64::try_from(i).unwrap());
    let ip_keys = bytes_per_key(10_000, ip);
    let ip_keys_1m = bytes_per_key(1_000_000, ip);
    println!("bytes per key: u64 {u64_keys}, Option<IpAddr> {ip_keys} (10k), {ip_keys_1m} (1M)");
    // An entry is the key plus 24 bytes of state; the table adds a control
    // byte per slot and up to half again in slack from power-of-two growth.
    assert!(u64_keys <= 80, "u64 keys: {u64_keys} bytes each");
    assert!(ip_keys <= 112, "IP keys: {ip_keys} bytes each");
    assert!(ip_keys_1m <= 112, "IP keys at 1M: {ip_keys_1m} bytes each");
}
