//! [`InstanceSet`], the instances of a service at one moment, and the
//! [`Change`]s between two of them.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::Instance;

/// The instances of one service at one moment, sorted by id. Cheap to
/// clone (one reference count); it never changes once made.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct InstanceSet(Arc<[Arc<Instance>]>);

impl InstanceSet {
    /// A set of these instances; of two with one id, the last one stays.
    #[must_use]
    pub fn new(instances: impl IntoIterator<Item = Arc<Instance>>) -> Self {
        let mut all: Vec<Arc<Instance>> = instances.into_iter().collect();
        // Stable, so the last of equal ids is last; keep it.
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let mut kept: Vec<Arc<Instance>> = Vec::with_capacity(all.len());
        for instance in all {
            match kept.last_mut() {
                Some(last) if last.id == instance.id => *last = instance,
                _ => kept.push(instance),
            }
        }
        Self(kept.into())
    }

    /// The instance with this id.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Arc<Instance>> {
        self.0
            .binary_search_by(|instance| instance.id.as_str().cmp(id))
            .ok()
            .map(|at| &self.0[at])
    }

    /// What changed from `before` to `self`: removals, updates and
    /// additions, in id order.
    #[must_use]
    pub fn changes_since(&self, before: &InstanceSet) -> Vec<Change> {
        let (mut old, mut new) = (before.0.iter().peekable(), self.0.iter().peekable());
        let mut changes = Vec::new();
        loop {
            let order = match (old.peek(), new.peek()) {
                (None, None) => return changes,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                // One instance, unchanged: no need to read its id.
                (Some(a), Some(b)) if Arc::ptr_eq(a, b) => Ordering::Equal,
                (Some(a), Some(b)) => a.id.cmp(&b.id),
            };
            match order {
                Ordering::Less => changes.extend(old.next().cloned().map(Change::Removed)),
                Ordering::Greater => changes.extend(new.next().cloned().map(Change::Added)),
                Ordering::Equal => {
                    let (a, b) = (old.next(), new.next());
                    if let (Some(a), Some(b)) = (a, b)
                        && !Arc::ptr_eq(a, b)
                        && a != b
                    {
                        changes.push(Change::Updated(b.clone()));
                    }
                }
            }
        }
    }
}

impl InstanceSet {
    /// A set of instances already sorted by id, with no id twice (a
    /// registry's map, in order).
    pub(crate) fn from_sorted(instances: impl IntoIterator<Item = Arc<Instance>>) -> Self {
        let set = Self(instances.into_iter().collect());
        debug_assert!(set.0.windows(2).all(|pair| pair[0].id < pair[1].id));
        set
    }

    /// This set, holding `old`'s instance wherever the two have an equal
    /// one (so watchers compare pointers, not contents), and whether it
    /// differs from `old` at all.
    pub(crate) fn sharing(self, old: &InstanceSet) -> (InstanceSet, bool) {
        let mut changed = self.len() != old.len();
        let mut older = old.iter().peekable();
        let shared = self
            .iter()
            .map(|instance| {
                while older.next_if(|o| o.id < instance.id).is_some() {
                    changed = true;
                }
                match older.next_if(|o| o.id == instance.id) {
                    Some(o) if o == instance => o.clone(),
                    _ => {
                        changed = true;
                        instance.clone()
                    }
                }
            })
            .collect::<Vec<_>>();
        (Self(shared.into()), changed)
    }
}

impl Deref for InstanceSet {
    type Target = [Arc<Instance>];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl fmt::Debug for InstanceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// One difference between two [`InstanceSet`]s of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// An instance that was not there.
    Added(Arc<Instance>),
    /// An instance whose id was there, with something else changed (its
    /// address, weight, zone, version or metadata): the new one.
    Updated(Arc<Instance>),
    /// An instance that is gone: the last one seen.
    Removed(Arc<Instance>),
}

impl Change {
    /// The instance the change is about (for a removal, as last seen).
    #[must_use]
    pub fn instance(&self) -> &Arc<Instance> {
        match self {
            Self::Added(instance) | Self::Updated(instance) | Self::Removed(instance) => instance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(id: &str, port: u16) -> Arc<Instance> {
        Arc::new(Instance::new("api", id, ([127, 0, 0, 1], port).into()))
    }

    #[test]
    fn sorted_by_id_and_the_last_of_an_id_stays() {
        let set = InstanceSet::new([one("b", 1), one("a", 2), one("b", 3)]);
        let ids: Vec<_> = set
            .iter()
            .map(|i| (i.id.as_str(), i.address.port()))
            .collect();
        assert_eq!(ids, [("a", 2), ("b", 3)]);
        assert_eq!(set.get("b").unwrap().address.port(), 3);
        assert!(set.get("c").is_none());
    }

    #[test]
    fn changes_are_removals_updates_and_additions() {
        let before = InstanceSet::new([one("a", 1), one("b", 2), one("c", 3)]);
        let after = InstanceSet::new([one("b", 2), one("c", 30), one("d", 4)]);
        let changes = after.changes_since(&before);
        assert_eq!(
            changes,
            [
                Change::Removed(one("a", 1)),
                Change::Updated(one("c", 30)),
                Change::Added(one("d", 4)),
            ]
        );
        assert!(after.changes_since(&after).is_empty());

        let (shared, changed) = after.clone().sharing(&before);
        assert!(changed);
        assert!(Arc::ptr_eq(&shared[0], &before[1]), "b is equal: shared");
        assert!(!Arc::ptr_eq(&shared[1], &before[2]), "c changed");
        let again = InstanceSet::new([one("b", 2), one("c", 30), one("d", 4)]);
        let (_, changed) = again.sharing(&shared);
        assert!(!changed);
        let from_nothing = after.changes_since(&InstanceSet::default());
        assert!(from_nothing.iter().all(|c| matches!(c, Change::Added(_))));
        assert_eq!(from_nothing.len(), 3);
    }
}
