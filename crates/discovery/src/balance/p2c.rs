//! Power of two choices: two instances at random, the less loaded one
//! wins (Mitzenmacher). Close to the least-loaded instance's latency, at
//! the cost of two random numbers, with none of the herding that always
//! picking the least loaded causes when loads are read late.

use super::slot::{Rng, Slot};

/// Tries at two random picks before scanning for any usable instance.
const TRIES: usize = 3;

/// Picks the less loaded of two random usable slots, load being requests
/// in flight; `candidates` lists the slots a pick may choose from (every
/// slot, or those in the zone).
#[inline]
pub(crate) fn pick(
    slots: &[Slot],
    candidates: Candidates<'_>,
    local_only: bool,
    rng: &mut Rng,
) -> Option<usize> {
    pick_by(slots, candidates, local_only, rng, Slot::pending)
}

/// Picks the one of two random usable slots that costs less by `cost`.
#[inline]
pub(crate) fn pick_by<K: PartialOrd>(
    slots: &[Slot],
    candidates: Candidates<'_>,
    local_only: bool,
    rng: &mut Rng,
    cost: impl Fn(&Slot) -> K,
) -> Option<usize> {
    let n = candidates.len();
    if n == 0 {
        return None;
    }
    if n == 1 {
        let only = candidates.get(0);
        return slots[only].usable(local_only).then_some(only);
    }
    for _ in 0..TRIES {
        let a = rng.below(n);
        // A second, different one: one of the other n - 1.
        let mut b = rng.below(n - 1);
        if b >= a {
            b += 1;
        }
        let (a, b) = (candidates.get(a), candidates.get(b));
        match (slots[a].usable(local_only), slots[b].usable(local_only)) {
            (true, true) => {
                return Some(if cost(&slots[b]) < cost(&slots[a]) {
                    b
                } else {
                    a
                });
            }
            (true, false) => return Some(a),
            (false, true) => return Some(b),
            (false, false) => {}
        }
    }
    // Most are not ready: the least loaded of those that are.
    (0..n)
        .map(|at| candidates.get(at))
        .filter(|&at| slots[at].usable(local_only))
        .map(|at| (at, cost(&slots[at])))
        .reduce(|least, next| if next.1 < least.1 { next } else { least })
        .map(|(at, _)| at)
}

/// The slots a pick may choose from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Candidates<'a> {
    /// Every slot, `0..n`.
    All(usize),
    /// These slots.
    Some(&'a [usize]),
}

impl Candidates<'_> {
    #[inline]
    fn len(self) -> usize {
        match self {
            Self::All(n) => n,
            Self::Some(list) => list.len(),
        }
    }

    #[inline]
    fn get(self, at: usize) -> usize {
        match self {
            Self::All(_) => at,
            Self::Some(list) => list[at],
        }
    }
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
                let instance = Instance::new("api", format!("i{i}"), ([127, 0, 0, 1], port).into());
                let mut slot = Slot::new(Arc::new(instance), None, Load::new(None, None));
                slot.ready = true;
                slot
            })
            .collect()
    }

    #[test]
    fn the_less_loaded_of_two_wins() {
        let slots = slots(2);
        let _held = (slots[0].load.clone(), slots[0].load.clone());
        let mut rng = Rng::seeded(3);
        for _ in 0..100 {
            assert_eq!(pick(&slots, Candidates::All(2), false, &mut rng), Some(1));
        }
    }

    #[test]
    fn unready_slots_are_skipped_and_none_is_none() {
        let mut slots = slots(50);
        for slot in &mut slots {
            slot.ready = false;
        }
        let mut rng = Rng::seeded(5);
        assert_eq!(pick(&slots, Candidates::All(50), false, &mut rng), None);
        slots[37].ready = true;
        for _ in 0..100 {
            assert_eq!(pick(&slots, Candidates::All(50), false, &mut rng), Some(37));
        }
        assert_eq!(
            pick(&slots, Candidates::Some(&[1, 2]), false, &mut rng),
            None
        );
    }

    #[test]
    fn load_spreads_evenly_over_equal_instances() {
        let slots = slots(10);
        let mut rng = Rng::seeded(11);
        let mut held = Vec::new();
        for _ in 0..1_000 {
            let at = pick(&slots, Candidates::All(10), false, &mut rng).unwrap();
            held.push(slots[at].load.clone());
        }
        let loads: Vec<usize> = slots.iter().map(Slot::pending).collect();
        // Two choices keep the spread within a few requests of even.
        assert!(loads.iter().all(|&l| (96..=104).contains(&l)), "{loads:?}");
    }
}
