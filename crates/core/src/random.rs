//! Cheap pseudo-random numbers for spreading waits, so that callers refused
//! together do not come back together. Not for anything that must resist
//! prediction.

use std::sync::atomic::{AtomicU64, Ordering};

/// A pseudo-random number in `0..=max`, mixed from `seed` (any value that
/// differs between callers, such as a clock reading) and a process-wide
/// counter.
///
/// ```
/// let wait = seawall_core::random::up_to(99, 7);
/// assert!(wait <= 99);
/// ```
#[must_use]
pub fn up_to(max: u64, seed: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    // Relaxed: any distinct value will do.
    let mut z = seed ^ COUNTER.fetch_add(GOLDEN, Ordering::Relaxed);
    // splitmix64's finalizer.
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    match max.checked_add(1) {
        Some(bound) => z % bound,
        None => z,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_in_range_and_spreads() {
        assert_eq!(up_to(0, 42), 0);
        let draws: Vec<u64> = (0..1_000).map(|_| up_to(99, 7)).collect();
        assert!(draws.iter().all(|&d| d <= 99));
        let distinct = draws.iter().collect::<std::collections::HashSet<_>>().len();
        assert!(distinct > 50, "only {distinct} distinct values of 100");
    }
}
