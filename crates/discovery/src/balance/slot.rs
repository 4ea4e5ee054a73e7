//! What a balancer knows of each instance, without its service: the
//! instance, whether its service is ready, its load; and the cheap random
//! numbers and stable hashes the pickers use.

use std::hash::Hasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use seawall_core::ConfigError;
use tokio::time::Instant;

use super::outlier::{Ejections, Record};
use crate::Instance;

/// One instance in a balancer's table.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) instance: Arc<Instance>,
    /// Its service answered ready and has not been called since.
    pub(crate) ready: bool,
    /// Ejected by outlier detection, as the balancer last saw it.
    pub(crate) out: bool,
    /// In the caller's zone.
    pub(crate) local: bool,
    /// One count per request in flight, plus the table's own; and the
    /// outcomes of its requests, when outliers are ejected.
    pub(crate) load: Arc<Load>,
}

impl Slot {
    /// A slot for `instance`, not ready yet, in (the caller's) `zone` or
    /// not, counting its requests in `load`.
    pub(crate) fn new(instance: Arc<Instance>, zone: Option<&str>, load: Arc<Load>) -> Self {
        Self {
            local: Self::in_zone(&instance, zone),
            instance,
            ready: false,
            out: false,
            load,
        }
    }

    /// Whether `instance` is in the caller's `zone`.
    pub(crate) fn in_zone(instance: &Instance, zone: Option<&str>) -> bool {
        zone.is_some() && instance.zone.as_deref() == zone
    }

    /// Requests in flight on this instance: every response future holds a
    /// clone of `load`.
    #[inline]
    pub(crate) fn pending(&self) -> usize {
        Arc::strong_count(&self.load) - 1
    }

    /// It leaves the balancer: see [`Record::leave`].
    pub(crate) fn leave(&self) {
        if let Some(record) = &self.load.record {
            record.leave();
        }
    }

    /// Whether a pick may choose it, given the zone rule in force.
    #[inline]
    pub(crate) fn usable(&self, local_only: bool) -> bool {
        self.ready && (self.local || !local_only)
    }
}

/// A request's hold on its instance's load count: the count is the number
/// of these alive, so taking and releasing one is a reference count. With
/// outlier detection, also where its outcome is counted.
#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) record: Option<Record>,
    /// Its response times, for the peak-EWMA balancer.
    pub(crate) rtt: Option<Rtt>,
}

impl Load {
    /// A new instance's load, with a record under `outliers` and response
    /// times under `rtt` when the balancer keeps them.
    pub(crate) fn new(outliers: Option<&Arc<Ejections>>, rtt: Option<&EwmaRules>) -> Arc<Self> {
        Arc::new(Self {
            record: outliers.map(|shared| Record::new(shared.clone())),
            rtt: rtt.map(Rtt::new),
        })
    }
}

/// The settings of a peak-EWMA balancer, shared by its slots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EwmaRules {
    /// Where every slot's times count from.
    pub(crate) origin: Instant,
    /// The estimate of an instance with no response yet, in nanoseconds.
    pub(crate) default_rtt: f64,
    /// The decay's time constant, in nanoseconds.
    pub(crate) decay: f64,
}

impl EwmaRules {
    /// Checks the settings: both more than 0, at most a day.
    pub(crate) fn new(default_rtt: Duration, decay: Duration) -> Result<Self, ConfigError> {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        for (field, value) in [("default_rtt", default_rtt), ("decay", decay)] {
            if value.is_zero() || value > DAY {
                return Err(ConfigError::new(
                    field,
                    "must be more than 0 and at most 24h",
                    seawall_core::duration::format(value),
                ));
            }
        }
        Ok(Self {
            origin: Instant::now(),
            default_rtt: default_rtt.as_secs_f64() * 1e9,
            decay: decay.as_secs_f64() * 1e9,
        })
    }

    /// Nanoseconds from the origin to `at`.
    #[inline]
    pub(crate) fn since_origin(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.origin).as_secs_f64() * 1e9
    }
}

/// Peak-EWMA of one instance's response times: a slower response raises
/// the estimate to it at once, faster ones pull it down gradually, and
/// with time and no response it decays toward zero, so an idle instance
/// is tried again.
#[derive(Debug)]
pub(crate) struct Rtt {
    rules: EwmaRules,
    /// The estimate, in nanoseconds, as `f64` bits.
    estimate: AtomicU64,
    /// When it was last updated, in nanoseconds from the origin, as `f64`
    /// bits.
    updated: AtomicU64,
}

impl Rtt {
    fn new(rules: &EwmaRules) -> Self {
        let now = rules.since_origin(Instant::now());
        Self {
            rules: *rules,
            estimate: AtomicU64::new(rules.default_rtt.to_bits()),
            updated: AtomicU64::new(now.to_bits()),
        }
    }

    /// The estimate at `now` (nanoseconds from the origin), decayed since
    /// its last update.
    #[inline]
    pub(crate) fn estimate(&self, now: f64) -> f64 {
        let estimate = f64::from_bits(self.estimate.load(Ordering::Relaxed));
        let updated = f64::from_bits(self.updated.load(Ordering::Relaxed));
        estimate * (-(now - updated).max(0.0) / self.rules.decay).exp()
    }

    /// Takes in a request that took from `started` to now (it answered,
    /// or was dropped): the estimate moves toward its time with weight
    /// `1 - e^(-t / decay)`, `t` being the time since the last update, and
    /// is raised to its time if that is more. Two requests that end
    /// together may each write over the other's update: the estimate is a
    /// guide, and either value is a fair one.
    pub(crate) fn observe(&self, started: Instant) {
        let ended = Instant::now();
        let rtt = ended.saturating_duration_since(started).as_secs_f64() * 1e9;
        let now = self.rules.since_origin(ended);
        let estimate = f64::from_bits(self.estimate.load(Ordering::Relaxed));
        let updated = f64::from_bits(self.updated.load(Ordering::Relaxed));
        let keep = (-(now - updated).max(0.0) / self.rules.decay).exp();
        let next = (estimate * keep + rtt * (1.0 - keep)).max(rtt);
        self.estimate.store(next.to_bits(), Ordering::Relaxed);
        self.updated.store(now.to_bits(), Ordering::Relaxed);
    }
}

/// xorshift64*: a few instructions per number, one per balancer, so picks
/// touch no shared counter. Not for anything that must resist prediction.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded differently in every process and every balancer (std's
    /// per-process random hasher keys, and the process-wide counter of
    /// `up_to`), so that a fleet restarted at once does not pick alike.
    pub(crate) fn new() -> Self {
        use std::hash::BuildHasher;
        let keyed = std::collections::hash_map::RandomState::new().hash_one(0x5EA_3A11_u64);
        Self(seawall_core::random::up_to(u64::MAX, keyed) | 1)
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
        // A 32-bit draw times `n`, shifted down 32 bits, is below `n`.
        let high = (u128::from(self.next() >> 32) * u128::from(n)) >> 32;
        usize::try_from(high).unwrap_or(0)
    }
}

/// A hash that is the same in every process and every build of this
/// version, so that processes of one fleet map a key to the same instance:
/// eight bytes at a time, each word folded in by a multiply and a rotation,
/// then the state's high half folded onto its low half and one multiply, so
/// that the top bits (a ring position) depend on every bit.
#[derive(Debug, Clone)]
pub(crate) struct StableHasher(u64);

const SEED: u64 = 0xCBF2_9CE4_8422_2325;
const MULTIPLY: u64 = 0x9E37_79B9_7F4A_7C15;

impl Default for StableHasher {
    fn default() -> Self {
        Self(SEED)
    }
}

impl StableHasher {
    #[inline]
    fn fold(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(MULTIPLY).rotate_left(29);
    }
}

impl Hasher for StableHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.fold(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        let mut word = [0; 8];
        word[..tail.len()].copy_from_slice(tail);
        // The length goes in with the tail, so "a" and "a\0" differ.
        self.fold(u64::from_le_bytes(word) ^ ((bytes.len() as u64) << 56));
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.fold(value);
    }

    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.fold(u64::from(value));
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.fold(value as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let z = self.0;
        (z ^ (z >> 32)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
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
        // Fixed here: a change would move every key of a fleet whose
        // processes run different builds.
        assert_eq!(h.finish(), 0x7111_75FF_51BE_2DC3, "{:#X}", h.finish());
    }
}
