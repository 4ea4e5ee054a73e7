//! Allocations, measured with a counting allocator: bytes per key of a
//! `KeyedRateLimiter` (docs/ratelimit.md quotes the figures printed), and
//! none at all on the check path. The tests take a lock, so nothing else
//! allocates while one measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use seawall_core::CoarseClock;
use seawall_ratelimit::{KeyedRateLimiter, Quota, RateLimiter};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    /// Allocations made by this thread (const-initialized: reading it never
    /// allocates, so the allocator may use it).
    static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
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
/// for twice as many (so the table is never full and every key stays).
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

/// The hot path allocates nothing: a single limiter's checks (admitted and
/// refused), and a keyed limiter's checks on known keys. Counted on this
/// thread only, so the test harness's own allocations do not count.
#[test]
fn checks_allocate_nothing() {
    let _alone = ONE_AT_A_TIME.lock().unwrap();
    let quota = Quota::per_second(1_000).build().expect("valid");
    let limiter = RateLimiter::new(quota);
    // The coarse clock is a clock like any other.
    let coarse = RateLimiter::builder(quota)
        .clock(CoarseClock::new())
        .build();
    let keyed = KeyedRateLimiter::<u64>::new(quota);
    for key in 0..100 {
        keyed.check(&key).expect("admitted");
    }
    let before = ALLOCATIONS.with(std::cell::Cell::get);
    let mut admitted = 0;
    for i in 0..10_000u64 {
        admitted += usize::from(limiter.check().is_ok());
        admitted += usize::from(coarse.check().is_ok());
        admitted += usize::from(keyed.check(&(i % 100)).is_ok());
        let _ = limiter.check_n(2);
    }
    assert_eq!(ALLOCATIONS.with(std::cell::Cell::get) - before, 0);
    assert!(admitted > 2_000, "every path ran: {admitted} admitted");
}

#[test]
fn bytes_per_key_stay_small() {
    let _alone = ONE_AT_A_TIME.lock().unwrap();
    // Distinct addresses in 10.0.0.0/8.
    let ip = |i: usize| IpAddr::from(Ipv4Addr::from(0x0a00_0000 | u32::try_from(i).unwrap()));
    let u64_keys = bytes_per_key(10_000, |i| u64::try_from(i).unwrap());
    let ip_keys = bytes_per_key(10_000, ip);
    let ip_keys_1m = bytes_per_key(1_000_000, ip);
    // At the bound under churn: a million distinct keys through room for
    // 10,000; drops leave the tables grown, so this is the worst case.
    let churned = {
        let quota = Quota::per_second(10).build().expect("valid");
        let before = LIVE.load(Ordering::Relaxed);
        let limiter = KeyedRateLimiter::<IpAddr>::builder(quota)
            .max_keys(10_000)
            .build()
            .expect("valid");
        for i in 0..1_000_000 {
            limiter.check(&ip(i)).expect("admitted");
        }
        (LIVE.load(Ordering::Relaxed) - before) / 10_000
    };
    println!(
        "bytes per key: u64 {u64_keys}, IpAddr {ip_keys} (10k), {ip_keys_1m} (1M), \
         {churned} per max_keys slot after 1M keys through 10k"
    );
    assert!(churned <= 200, "at the bound: {churned} bytes per slot");
    // An entry is the key plus 32 bytes of state; the table adds a control
    // byte per slot and up to half again in slack from power-of-two growth.
    assert!(u64_keys <= 80, "u64 keys: {u64_keys} bytes each");
    assert!(ip_keys <= 112, "IP keys: {ip_keys} bytes each");
    assert!(ip_keys_1m <= 112, "IP keys at 1M: {ip_keys_1m} bytes each");
}
