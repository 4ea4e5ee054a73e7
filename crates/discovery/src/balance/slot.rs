//! What a balancer knows of each instance, without its service: the
//! instance, whether its service is ready, its load; and the cheap random
//! numbers and stable hashes the pickers use.

use std::hash::Hasher;
use std::sync::Arc;

use crate::Instance;

/// One instance in a balancer's table.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) instance: Arc<Instance>,
    /// Its service answered ready and has not been called since.
    pub(crate) ready: bool,
    /// In the caller's zone.
    pub(crate) local: bool,
    /// One count per request in flight, plus the table's own.
    pub(crate) load: Arc<Load>,
}

impl Slot {
    pub(crate) fn new(instance: Arc<Instance>, zone: Option<&str>) -> Self {
        let local = zone.is_some() && instance.zone.as_deref() == zone;
        Self {
            instance,
            ready: false,
            local,
            load: Arc::new(Load),
        }
    }

    /// Requests in flight on this instance: every response future holds a
    /// clone of `load`.
    #[inline]
    pub(crate) fn pending(&self) -> usize {
        Arc::strong_count(&self.load) - 1
    }

    /// Whether a pick may choose it, given the zone rule in force.
    #[inline]
    pub(crate) fn usable(&self, local_only: bool) -> bool {
        self.ready && (self.local || !local_only)
    }
}

/// A request's hold on its instance's load count: the count is the number
/// of these alive, so taking and releasing one is a reference count.
#[derive(Debug)]
pub(crate) struct Load;

/// xorshift64*: a few instructions per number, one per balancer, so picks
/// touch no shared counter. Not for anything that must resist prediction.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Self {
        let seed = seawall_core::random::up_to(u64::MAX, 0x5EA_3A11);
        Self(seed | 1)
    }

    #[cfg(test)]
    pub(crate) fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    #[inline]
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift (no division).
    #[inline]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        // The high half of a 64x64 product is below `n`.
        let high = (u128::from(self.next() >> 32) * u128::from(n)) >> 32;
        usize::try_from(high).unwrap_or(0)
    }
}

/// A hash that is the same in every process and every build of this
/// version (FNV-1a over the bytes, then a 64-bit finalizer), so that
/// processes of one fleet map a key to the same instance.
#[derive(Debug, Clone)]
pub(crate) struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        Self(0xCBF2_9CE4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    fn finish(&self) -> u64 {
        // splitmix64's finalizer: FNV alone mixes its last bytes poorly.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    #[test]
    fn below_stays_below_and_spreads() {
        let mut rng = Rng::seeded(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[rng.below(10)] += 1;
        }
        assert!(seen.iter().all(|&n| (850..1150).contains(&n)), "{seen:?}");
    }

    #[test]
    fn the_stable_hash_is_stable() {
        let mut h = StableHasher::default();
        "user-42".hash(&mut h);
        // Fixed here: a change would move every key of a fleet mid-upgrade.
        assert_eq!(h.finish(), 0x2C3C_472A_FF8A_FEA3, "{:#X}", h.finish());
    }
}
