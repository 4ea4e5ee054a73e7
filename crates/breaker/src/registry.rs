//! [`BreakerRegistry`]: one breaker per key (endpoint, host), made on first
//! use from one config, bounded in number.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;
use seawall_core::{Clock, ConfigError, MonotonicClock};

use crate::breaker::CircuitBreaker;
use crate::config::BreakerConfig;
use crate::state::State;

/// How many breakers eviction looks at before it settles for the best of
/// them.
const EVICTION_SAMPLE: usize = 64;

/// One [`CircuitBreaker`] per key, so one failing host or endpoint is cut
/// off without cutting off the rest.
///
/// Breakers are made on first use from one [`BreakerConfig`], each named by
/// its key (its `Display`) in callbacks, `tracing` events and metrics, and
/// kept up to `max_breakers`. Looking a key up takes no lock: the table is
/// lock-free to read (`papaya`), and [`get`](Self::get) costs a hash, a
/// lookup and the handle's reference count.
///
/// At the bound, making a new breaker first drops one that holds the least:
/// among the first 64 breakers in the table's order (not the whole table;
/// further only if none of those may go), a closed breaker whose window
/// holds the fewest calls, else an open or half-open one. A breaker set by
/// hand is never dropped: if every breaker is set by hand, the table grows
/// past the bound rather than forget one. Set it through the registry
/// ([`force_open`](Self::force_open), [`disable`](Self::disable)), which is
/// serialized with eviction; set through a handle from [`get`](Self::get),
/// it may race an eviction already under way and be dropped.
/// It is a handle: clones share the breakers.
///
/// Each breaker's name, and so its metrics label, is its key: keys that
/// keep changing (a client's address) make a metrics label of unbounded
/// cardinality; key by something bounded (a host, an endpoint).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seawall_core::ConfigError> {
/// use seawall_breaker::{BreakerConfig, BreakerRegistry, State};
///
/// let config = BreakerConfig::builder().count_window(2).minimum_calls(2).build()?;
/// let hosts = BreakerRegistry::<String>::new(config, 1_000)?;
/// for _ in 0..2 {
///     let _ = hosts.get("db-1").call(|| async { Err::<(), _>("down") }).await;
/// }
/// assert_eq!(hosts.get("db-1").state(), State::Open);
/// assert_eq!(hosts.get("db-1").name(), "db-1");
/// assert_eq!(hosts.get("db-2").state(), State::Closed, "each host has its own");
/// # Ok(())
/// # }
/// ```
pub struct BreakerRegistry<K, C: 'static = MonotonicClock> {
    inner: Arc<Inner<K, C>>,
}

struct Inner<K, C: 'static> {
    config: BreakerConfig,
    clock: C,
    max_breakers: usize,
    breakers: papaya::HashMap<K, CircuitBreaker<C>, foldhash::fast::RandomState>,
    /// Held while a breaker is made (and another dropped to make room), so
    /// the bound holds exactly; lookups never take it.
    maker: Mutex<()>,
}

impl<K: Hash + Eq + Clone + fmt::Display> BreakerRegistry<K, MonotonicClock> {
    /// A registry making breakers from `config`, at most `max_breakers`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `max_breakers` is zero.
    pub fn new(config: BreakerConfig, max_breakers: usize) -> Result<Self, ConfigError> {
        Self::with_clock(config, max_breakers, MonotonicClock::new())
    }
}

impl<K: Hash + Eq + Clone + fmt::Display, C: Clock + Clone> BreakerRegistry<K, C> {
    /// Like [`new`](BreakerRegistry::new), with breakers reading `clock`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `max_breakers` is zero.
    pub fn with_clock(
        config: BreakerConfig,
        max_breakers: usize,
        clock: C,
    ) -> Result<Self, ConfigError> {
        if max_breakers == 0 {
            return Err(ConfigError::new("max_breakers", "must be at least 1", 0));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                clock,
                max_breakers,
                breakers: papaya::HashMap::builder()
                    .hasher(foldhash::fast::RandomState::default())
                    .build(),
                maker: Mutex::new(()),
            }),
        })
    }

    /// The breaker for `key`, made now if it is new.
    pub fn get<Q>(&self, key: &Q) -> CircuitBreaker<C>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let breakers = &self.inner.breakers;
        if let Some(breaker) = breakers.pin().get(key) {
            return breaker.clone();
        }
        self.make(key)
    }

    #[cold]
    fn make<Q>(&self, key: &Q) -> CircuitBreaker<C>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let _maker = self.inner.maker.lock();
        self.make_locked(key)
    }

    /// The breaker for `key`, made if it is new; the caller holds `maker`.
    fn make_locked<Q>(&self, key: &Q) -> CircuitBreaker<C>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let breakers = self.inner.breakers.pin();
        if let Some(breaker) = breakers.get(key) {
            return breaker.clone(); // made by another thread meanwhile
        }
        if breakers.len() >= self.inner.max_breakers
            && let Some(victim) = self.victim(&breakers)
        {
            // Checked again as it goes: a handle may have forced it since.
            let _ = breakers.remove_if(&victim, |_, breaker| {
                !matches!(breaker.state(), State::ForcedOpen | State::Disabled)
            });
        }
        let key = key.to_owned();
        let breaker = CircuitBreaker::builder(self.inner.config.clone())
            .clock(self.inner.clock.clone())
            .name(&key.to_string())
            .build();
        breakers.insert(key, breaker.clone());
        breaker
    }

    /// The breaker to drop to make room: the best of the first
    /// [`EVICTION_SAMPLE`] that may go (closed before open or half-open,
    /// then the fewest calls), looking further only if none of them may.
    fn victim<G: papaya::Guard>(
        &self,
        breakers: &papaya::HashMapRef<'_, K, CircuitBreaker<C>, foldhash::fast::RandomState, G>,
    ) -> Option<K> {
        let rank = |b: &CircuitBreaker<C>| match b.state() {
            State::ForcedOpen | State::Disabled => None,
            State::Closed => Some((0, b.window().0)),
            State::Open | State::HalfOpen => Some((1, b.window().0)),
        };
        let mut best: Option<((u8, u32), &K)> = None;
        for (seen, (key, breaker)) in breakers.iter().enumerate() {
            if seen >= EVICTION_SAMPLE && best.is_some() {
                break;
            }
            if let Some(rank) = rank(breaker)
                && best.is_none_or(|(held, _)| rank < held)
            {
                best = Some((rank, key));
            }
        }
        best.map(|(_, key)| key.clone())
    }

    /// Forces the breaker for `key` open (making it if need be): see
    /// [`CircuitBreaker::force_open`]. Done here rather than on a handle
    /// from [`get`](Self::get), it is serialized with eviction, so the
    /// breaker it forces is the one the registry keeps.
    pub fn force_open<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let _maker = self.inner.maker.lock();
        self.make_locked(key).force_open();
    }

    /// Disables the breaker for `key` (making it if need be), serialized
    /// with eviction as [`force_open`](Self::force_open) is.
    pub fn disable<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let _maker = self.inner.maker.lock();
        self.make_locked(key).disable();
    }

    /// How many breakers exist now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.breakers.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every key with its breaker's state.
    #[must_use]
    pub fn states(&self) -> Vec<(K, State)> {
        self.inner
            .breakers
            .pin()
            .iter()
            .map(|(k, b)| (k.clone(), b.state()))
            .collect()
    }
}

impl<K, C: 'static> Clone for BreakerRegistry<K, C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: Hash + Eq, C: 'static> fmt::Debug for BreakerRegistry<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRegistry")
            .field("breakers", &self.inner.breakers.len())
            .field("max_breakers", &self.inner.max_breakers)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seawall_core::ManualClock;

    fn registry(max: usize) -> BreakerRegistry<u32, ManualClock> {
        let config = BreakerConfig::builder()
            .count_window(2)
            .minimum_calls(1)
            .build()
            .unwrap();
        BreakerRegistry::with_clock(config, max, ManualClock::new()).unwrap()
    }

    #[test]
    fn one_breaker_per_key_shared_by_every_get() {
        let r = registry(10);
        r.get(&1).try_acquire().unwrap().failure();
        assert_eq!(r.get(&1).state(), State::Open);
        assert_eq!(r.get(&2).state(), State::Closed);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn at_the_bound_closed_breakers_go_before_open_ones() {
        let r = registry(2);
        r.get(&1).try_acquire().unwrap().failure(); // open
        r.get(&2).try_acquire().unwrap().success(); // closed, one call
        r.get(&3); // drops 2, the closed one
        let mut keys: Vec<u32> = r.states().into_iter().map(|(k, _)| k).collect();
        keys.sort_unstable();
        assert_eq!(keys, [1, 3]);
        assert_eq!(r.get(&1).state(), State::Open, "still protecting");
    }

    /// Breakers set by hand are never dropped, even when every other one
    /// holds more; if nothing else may go, the table grows past the bound.
    #[test]
    fn breakers_set_by_hand_are_never_dropped() {
        let r = registry(2);
        r.force_open(&1);
        r.disable(&2);
        r.get(&3);
        assert_eq!(r.len(), 3, "nothing could go");
        assert_eq!(r.get(&1).state(), State::ForcedOpen);
        assert_eq!(r.get(&2).state(), State::Disabled);
        r.get(&3).try_acquire().unwrap().success();
        r.get(&4); // drops 3, the only one not set by hand
        let mut keys: Vec<u32> = r.states().into_iter().map(|(k, _)| k).collect();
        keys.sort_unstable();
        assert_eq!(keys, [1, 2, 4]);
    }

    /// Each breaker is named by its key, in callbacks, tracing and metrics.
    #[test]
    fn breakers_are_named_by_their_keys() {
        let r = registry(10);
        assert_eq!(r.get(&7).name(), "7");
        assert_eq!(r.get(&42).name(), "42");
    }

    /// Many threads asking for keys at once, past the bound: every one gets
    /// a breaker, one per key, and the table never holds more than the
    /// bound.
    #[test]
    fn concurrent_gets_keep_the_bound() {
        let r = registry(16);
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let r = r.clone();
                s.spawn(move || {
                    for i in 0..2_000u32 {
                        let key = (i * 7 + t) % 64;
                        let b = r.get(&key);
                        assert_eq!(b.name(), key.to_string());
                        assert!(r.len() <= 16, "{} breakers", r.len());
                    }
                });
            }
        });
        assert_eq!(r.len(), 16);
    }

    #[test]
    fn zero_breakers_is_an_error() {
        let config = BreakerConfig::builder().build().unwrap();
        let err = BreakerRegistry::<u32>::new(config, 0).unwrap_err();
        assert_eq!(err.to_string(), "max_breakers: must be at least 1, got 0");
    }
}
