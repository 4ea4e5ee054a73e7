//! Consistent hashing on a Ketama ring: each instance owns many points on
//! a ring of hash positions (more for a heavier one), and a key goes to the
//! owner of the first point at or after the key's position. With equal
//! weights, adding one instance to `n` moves about `1 / (n + 1)` of the
//! keys, all of them to the new instance, and removing one moves only its
//! own keys. Points are given relative to the mean weight, so with unequal
//! weights a change also moves some keys between the others.

use std::hash::{Hash, Hasher};

use super::slot::{Slot, StableHasher};

/// A ring over the slots of positive weight: each point one word, its
/// 32-bit position above the slot owning it, in one sorted array, with an
/// index by the positions' top bits, so a lookup reads one index entry and
/// a few neighbouring points instead of a binary search over every point.
#[derive(Debug)]
pub(crate) struct Ring {
    /// Points, sorted: position in the high half, owner in the low half;
    /// then [`SCAN`] padding points.
    points: Vec<u64>,
    /// `index[p]`: the first point whose position's top `bits` bits are
    /// `p` or more; one entry past the last prefix.
    index: Vec<u32>,
    bits: u32,
}

impl Default for Ring {
    fn default() -> Self {
        Self::new(&[], 1)
    }
}

impl Ring {
    /// The ring for `slots`, each given about `per_instance` points times
    /// its weight over the mean weight (at least one; none for weight 0).
    pub(crate) fn new(slots: &[Slot], per_instance: u32) -> Self {
        let weighted: Vec<(usize, u64)> = slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.instance.weight > 0)
            .map(|(at, slot)| (at, u64::from(slot.instance.weight)))
            .collect();
        let total: u64 = weighted.iter().map(|&(_, w)| w).sum();
        let n = weighted.len() as u64;
        let mut points: Vec<u64> = Vec::new();
        for (at, weight) in weighted {
            // per_instance * weight / mean, rounded, at least 1.
            let count = ((u64::from(per_instance) * weight * n + total / 2) / total).max(1);
            let id = slots[at].instance.id.as_bytes();
            let owner = u64::from(u32::try_from(at).unwrap_or(u32::MAX));
            for replica in 0..count {
                let mut hasher = StableHasher::default();
                hasher.write(id);
                hasher.write_u64(replica);
                points.push(u64::from(position(hasher.finish())) << 32 | owner);
            }
        }
        Self::from_points(points)
    }

    /// The ring of `points` (position in the high half, owner in the low).
    fn from_points(mut points: Vec<u64>) -> Self {
        points.sort_unstable();
        // One to two points per index entry: 1 to 24 bits.
        let bits = (points.len() / 2)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(1, 24);
        let mut index = Vec::with_capacity((1 << bits) + 1);
        let mut at = 0;
        for prefix in 0..=(1u32 << bits) {
            while at < points.len() && position(points[at]) >> (32 - bits) < prefix {
                at += 1;
            }
            index.push(u32::try_from(at).unwrap_or(u32::MAX));
        }
        // Padding for the lookup's window, above every bound.
        points.resize(points.len() + SCAN, u64::MAX);
        Self {
            points,
            index,
            bits,
        }
    }

    /// The hash a key is placed by.
    #[inline]
    pub(crate) fn hash<K: Hash + ?Sized>(key: &K) -> u64 {
        let mut hasher = StableHasher::default();
        key.hash(&mut hasher);
        hasher.finish()
    }

    /// The points on the ring, without the padding.
    #[inline]
    fn on_ring(&self) -> &[u64] {
        &self.points[..self.points.len() - SCAN]
    }

    /// The owner of the first usable point at or after `hash`'s position.
    #[inline]
    pub(crate) fn pick(&self, slots: &[Slot], hash: u64, local_only: bool) -> Option<usize> {
        let position = position(hash);
        let prefix = (position >> (32 - self.bits)) as usize;
        let (low, high) = (self.index[prefix] as usize, self.index[prefix + 1] as usize);
        // The points before `position` sort below this.
        let bound = u64::from(position) << 32;
        let start = match self.points[low..].first_chunk::<SCAN>() {
            // Points past the entry's sort above `bound`: count them too,
            // without a branch for each. (The padding makes the window.)
            Some(window) if high - low <= SCAN => {
                low + window.iter().filter(|&&point| point < bound).count()
            }
            // More points in one entry (rare): a binary search.
            _ => low + self.points[low..high].partition_point(|&point| point < bound),
        };
        let points = self.on_ring();
        // Past the last point: around to the first.
        let first = owner(*points.get(start).or(points.first())?);
        if slots[first].usable(local_only) {
            return Some(first);
        }
        points[start..]
            .iter()
            .chain(&points[..start])
            .skip(1)
            .map(|&point| owner(point))
            .find(|&at| slots[at].usable(local_only))
    }
}

/// Points a lookup compares at once.
const SCAN: usize = 4;

/// A place on the ring: a key's hash's top 32 bits, or a point's
/// position.
#[inline]
fn position(word: u64) -> u32 {
    (word >> 32) as u32
}

/// The slot owning a point.
#[inline]
#[allow(clippy::cast_possible_truncation)] // the low half, a `u32`
fn owner(point: u64) -> usize {
    point as u32 as usize
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Instance;
    use crate::balance::slot::Load;

    fn slots(n: usize) -> Vec<Slot> {
        (0..n)
            .map(|i| {
                let port = u16::try_from(i).unwrap();
                let instance =
                    Instance::new("api", format!("node-{i}"), ([10, 0, 0, 1], port).into());
                let mut slot = Slot::new(Arc::new(instance), None, Load::new(None, None));
                slot.ready = true;
                slot
            })
            .collect()
    }

    fn owners(slots: &[Slot], ring: &Ring, keys: usize) -> Vec<String> {
        (0..keys)
            .map(|key| {
                let at = ring
                    .pick(slots, Ring::hash(&format!("user-{key}")), false)
                    .unwrap();
                slots[at].instance.id.clone()
            })
            .collect()
    }

    /// The index finds what a plain search over every point finds.
    #[test]
    fn lookups_match_a_plain_search() {
        for n in [1, 3, 10, 100] {
            let slots = slots(n);
            let ring = Ring::new(&slots, 160);
            let mut rng = crate::balance::slot::Rng::seeded(n as u64);
            for _ in 0..2_000 {
                let hash = rng.next();
                assert_eq!(
                    ring.pick(&slots, hash, false),
                    Some(searched(&ring, hash)),
                    "n {n}"
                );
            }
            // Past the last point: the first one.
            let last = position(*ring.on_ring().last().unwrap());
            if let Some(past) = last.checked_add(1) {
                let hash = u64::from(past) << 32;
                assert_eq!(ring.pick(&slots, hash, false), Some(owner(ring.points[0])));
            }
        }
        assert_eq!(Ring::default().pick(&[], 7, false), None);
    }

    /// The first point at or after `hash`'s position, by a plain search.
    fn searched(ring: &Ring, hash: u64) -> usize {
        let points = ring.on_ring();
        let start = points.partition_point(|&p| position(p) < position(hash));
        owner(points[start % points.len()])
    }

    /// A key exactly at a point's position goes to that point (the first
    /// of the points there).
    #[test]
    fn a_key_at_a_point_goes_to_it() {
        let slots = slots(10);
        let ring = Ring::new(&slots, 160);
        for &point in ring.on_ring() {
            let hash = u64::from(position(point)) << 32;
            assert_eq!(ring.pick(&slots, hash, false), Some(searched(&ring, hash)));
        }
    }

    /// Index entries holding none, one, four (the window's size), five and
    /// nine points, and the last entry's keys past its points, going
    /// around: every key finds the first point at or after it.
    #[test]
    fn entries_of_every_size_find_the_first_point_at_or_after() {
        // 20 points: 16 entries of 2^28 positions each.
        let entry = |e: u32, offset: u32| (e << 28) + offset;
        let positions: Vec<u32> = [(1, 4), (2, 5), (3, 9), (15, 2)]
            .iter()
            .flat_map(|&(e, count)| (0..count).map(move |i| entry(e, 1000 + 1000 * i)))
            .collect();
        let points = (0u64..)
            .zip(&positions)
            .map(|(owner, &at)| u64::from(at) << 32 | owner)
            .collect();
        let ring = Ring::from_points(points);
        assert_eq!((ring.on_ring().len(), ring.bits), (20, 4));
        let slots = slots(20);
        let mut keys = vec![0, u32::MAX];
        for e in 0..16 {
            keys.extend([entry(e, 0), entry(e, 999), entry(e, (1 << 28) - 1)]);
        }
        for &at in &positions {
            keys.extend([at - 1, at, at + 1]);
        }
        for key in keys {
            let hash = u64::from(key) << 32 | 0xFFFF;
            assert_eq!(
                ring.pick(&slots, hash, false),
                Some(searched(&ring, hash)),
                "key at {key:#x}"
            );
        }
    }

    /// Keys of every shape (counting up, only high bits, strings) spread
    /// over instances as the ring's arcs do: the hash leaves no shape of key
    /// bunched on one part of the ring.
    #[test]
    fn keys_of_every_shape_spread_as_the_arcs_do() {
        let slots = slots(10);
        let ring = Ring::new(&slots, 160);
        let points = ring.on_ring();
        let mut arcs = [0f64; 10];
        for (at, &point) in points.iter().enumerate() {
            let before = if at == 0 {
                i64::from(position(points[points.len() - 1])) - (1 << 32)
            } else {
                i64::from(position(points[at - 1]))
            };
            let arc = i64::from(position(point)) - before;
            arcs[owner(point)] += arc as f64 / (1u64 << 32) as f64;
        }
        let shapes: [(&str, &dyn Fn(u64) -> u64); 3] = [
            ("counting", &|k| Ring::hash(&k)),
            ("high bits", &|k| Ring::hash(&(k << 40))),
            ("strings", &|k| Ring::hash(&format!("user-{k}"))),
        ];
        const KEYS: u64 = 200_000;
        for (shape, hash) in shapes {
            let mut counts = [0u32; 10];
            for k in 0..KEYS {
                counts[ring.pick(&slots, hash(k), false).unwrap()] += 1;
            }
            for (count, arc) in counts.iter().zip(arcs) {
                let share = f64::from(*count) / KEYS as f64;
                assert!(
                    (share - arc).abs() < 0.01,
                    "{shape}: {share} for an arc of {arc}"
                );
            }
        }
    }

    /// One instance added to ten: about 1/11 of the keys move, every one
    /// of them to the new instance, and no more than 1.5x that.
    #[test]
    fn adding_one_of_eleven_moves_about_an_eleventh() {
        let (ten, eleven) = (slots(10), slots(11));
        let before = owners(&ten, &Ring::new(&ten, 160), 100_000);
        let after = owners(&eleven, &Ring::new(&eleven, 160), 100_000);
        let moved: Vec<_> = before.iter().zip(&after).filter(|(b, a)| b != a).collect();
        assert!(
            moved.iter().all(|(_, a)| *a == "node-10"),
            "moved elsewhere"
        );
        let share = moved.len() as f64 / 100_000.0;
        let ideal = 1.0 / 11.0;
        assert!(share > ideal * 0.5 && share <= ideal * 1.5, "moved {share}");
    }

    #[test]
    fn keys_spread_over_instances_and_skip_unready_ones() {
        let mut slots = slots(5);
        let ring = Ring::new(&slots, 160);
        let before = owners(&slots, &ring, 10_000);
        for at in 0..5 {
            let owned = before
                .iter()
                .filter(|id| **id == format!("node-{at}"))
                .count();
            assert!((1_400..2_600).contains(&owned), "node-{at}: {owned}");
        }
        slots[2].ready = false;
        let after = owners(&slots, &ring, 10_000);
        for (b, a) in before.iter().zip(&after) {
            if b == "node-2" {
                assert_ne!(a, "node-2");
            } else {
                assert_eq!(a, b, "a key of a ready instance moved");
            }
        }
        for slot in &mut slots {
            slot.ready = false;
        }
        assert_eq!(ring.pick(&slots, 42, false), None);
    }
}
