//! Weighted choice in constant time: Vose's alias method. Each pick draws
//! a column uniformly and then one of at most two instances in it, with
//! probabilities set up once per change of the instance set, so an
//! instance of weight 10 beside one of 90 gets 10% of picks whatever the
//! number of instances.

use super::slot::{Rng, Slot};

/// Tries at a weighted random pick before a linear weighted pick among
/// usable instances.
const TRIES: usize = 4;

/// One alias table, over the candidates of positive weight.
#[derive(Debug, Default)]
pub(crate) struct Alias {
    /// The slot each column stands for.
    slots: Vec<usize>,
    /// Out of 2^32: the chance that a column answers its own slot.
    threshold: Vec<u64>,
    /// The column answered otherwise.
    alias: Vec<usize>,
}

const WHOLE: u64 = 1 << 32;

impl Alias {
    /// The table for `candidates` (indices into `slots`), by weight; those
    /// of weight 0 are never picked.
    pub(crate) fn new(slots: &[Slot], candidates: impl Iterator<Item = usize>) -> Self {
        let chosen: Vec<usize> = candidates
            .filter(|&at| slots[at].instance.weight > 0)
            .collect();
        let n = chosen.len() as u64;
        let total: u64 = chosen
            .iter()
            .map(|&at| u64::from(slots[at].instance.weight))
            .sum();
        // Each column's share, scaled so that the mean is `total`.
        let mut scaled: Vec<u64> = chosen
            .iter()
            .map(|&at| u64::from(slots[at].instance.weight) * n)
            .collect();
        let mut threshold = vec![WHOLE; chosen.len()];
        let mut alias: Vec<usize> = (0..chosen.len()).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..chosen.len()).partition(|&column| scaled[column] < total);
        while let (Some(&less), Some(&more)) = (small.last(), large.last()) {
            small.pop();
            // `scaled[less] < total`: the fraction fits in 32 bits.
            let share = (u128::from(scaled[less]) << 32) / u128::from(total);
            threshold[less] = u64::try_from(share).unwrap_or(WHOLE);
            alias[less] = more;
            scaled[more] = scaled[more] + scaled[less] - total;
            if scaled[more] < total {
                large.pop();
                small.push(more);
            }
        }
        // What is left is full (up to rounding).
        Self {
            slots: chosen,
            threshold,
            alias,
        }
    }

    /// A usable slot, by weight; `None` if none is.
    #[inline]
    pub(crate) fn pick(&self, slots: &[Slot], local_only: bool, rng: &mut Rng) -> Option<usize> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        for _ in 0..TRIES {
            let draw = rng.next();
            let column = below(draw >> 32, n);
            let column = if (draw & (WHOLE - 1)) < self.threshold[column] {
                column
            } else {
                self.alias[column]
            };
            let at = self.slots[column];
            if slots[at].usable(local_only) {
                return Some(at);
            }
        }
        // Most are not ready: a weighted pick among those that are.
        let usable = || {
            self.slots
                .iter()
                .copied()
                .filter(|&at| slots[at].usable(local_only))
        };
        let total: u64 = usable()
            .map(|at| u64::from(slots[at].instance.weight))
            .sum();
        if total == 0 {
            return None;
        }
        let mut point = rng.next() % total;
        usable().find(|&at| {
            let weight = u64::from(slots[at].instance.weight);
            if point < weight {
                true
            } else {
                point -= weight;
                false
            }
        })
    }
}

/// `value` (below 2^32) mapped onto `0..n`.
#[inline]
fn below(value: u64, n: usize) -> usize {
    usize::try_from((value * n as u64) >> 32).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Instance;
    use crate::balance::slot::Load;

    fn slots(weights: &[u32]) -> Vec<Slot> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let port = u16::try_from(i).unwrap();
                let instance =
                    Instance::new("api", format!("i{i}"), ([127, 0, 0, 1], port).into()).weight(w);
                let mut slot = Slot::new(Arc::new(instance), None, Load::new(None, None));
                slot.ready = true;
                slot
            })
            .collect()
    }

    fn counts(slots: &[Slot], table: &Alias, picks: usize) -> Vec<usize> {
        let mut rng = Rng::seeded(17);
        let mut seen = vec![0; slots.len()];
        for _ in 0..picks {
            seen[table.pick(slots, false, &mut rng).unwrap()] += 1;
        }
        seen
    }

    #[test]
    fn a_canary_at_ten_beside_ninety_gets_a_tenth() {
        let slots = slots(&[90, 10]);
        let table = Alias::new(&slots, 0..2);
        let seen = counts(&slots, &table, 10_000);
        assert!((900..1100).contains(&seen[1]), "{seen:?}");
    }

    #[test]
    fn shares_follow_weights_and_zero_gets_nothing() {
        let weights = [1, 2, 3, 4, 0, 10];
        let slots = slots(&weights);
        let table = Alias::new(&slots, 0..weights.len());
        let seen = counts(&slots, &table, 200_000);
        assert_eq!(seen[4], 0);
        for (at, &w) in weights.iter().enumerate() {
            let expected = 200_000.0 * f64::from(w) / 20.0;
            let got = seen[at] as f64;
            assert!((got - expected).abs() <= expected * 0.05 + 1.0, "{seen:?}");
        }
    }

    #[test]
    fn unready_instances_are_skipped_by_weight() {
        let mut slots = slots(&[100, 1, 1]);
        slots[0].ready = false;
        let table = Alias::new(&slots, 0..3);
        let seen = counts(&slots, &table, 2_000);
        assert_eq!(seen[0], 0);
        assert!((800..1200).contains(&seen[1]), "{seen:?}");
        slots[1].ready = false;
        slots[2].ready = false;
        assert_eq!(table.pick(&slots, false, &mut Rng::seeded(1)), None);
    }
}
