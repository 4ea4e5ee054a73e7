//! [`BreakerRegistry`]: one breaker per key (endpoint, host), made on first
//! use from one config, bounded in number.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::RwLock;
use seawall_core::{Clock, ConfigError, MonotonicClock};

use crate::breaker::CircuitBreaker;
use crate::config::BreakerConfig;
use crate::state::State;

/// One [`CircuitBreaker`] per key, so one failing host or endpoint is cut
/// off without cutting off the rest.
///
/// Breakers are made on first use from one [`BreakerConfig`] and kept up to
/// `max_breakers`. At the bound, making a new one first drops a closed
/// breaker (the one whose window holds the fewest calls, so the least is
/// forgotten); only if every breaker is open or half-open does one of those
/// go. It is a handle: clones share the breakers.
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
    breakers: RwLock<HashMap<K, CircuitBreaker<C>>>,
}

impl<K: Hash + Eq + Clone> BreakerRegistry<K, MonotonicClock> {
    /// A registry making breakers from `config`, at most `max_breakers`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `max_breakers` is zero.
    pub fn new(config: BreakerConfig, max_breakers: usize) -> Result<Self, ConfigError> {
        Self::with_clock(config, max_breakers, MonotonicClock::new())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> BreakerRegistry<K, C> {
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
                breakers: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// The breaker for `key`, made now if it is new.
    pub fn get<Q>(&self, key: &Q) -> CircuitBreaker<C>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(breaker) = self.inner.breakers.read().get(key) {
            return breaker.clone();
        }
        let mut breakers = self.inner.breakers.write();
        if let Some(breaker) = breakers.get(key) {
            return breaker.clone(); // made by another thread meanwhile
        }
        if breakers.len() >= self.inner.max_breakers {
            let victim = breakers
                .iter()
                .min_by_key(|(_, b)| (b.state() != State::Closed, b.window().0))
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                breakers.remove::<K>(&victim);
            }
        }
        let breaker =
            CircuitBreaker::with_clock(self.inner.config.clone(), self.inner.clock.clone());
        breakers.insert(key.to_owned(), breaker.clone());
        breaker
    }

    /// How many breakers exist now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.breakers.read().len()
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
            .read()
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

impl<K, C: 'static> fmt::Debug for BreakerRegistry<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRegistry")
            .field("breakers", &self.inner.breakers.read().len())
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

    #[test]
    fn zero_breakers_is_an_error() {
        let config = BreakerConfig::builder().build().unwrap();
        let err = BreakerRegistry::<u32>::new(config, 0).unwrap_err();
        assert_eq!(err.to_string(), "max_breakers: must be at least 1, got 0");
    }
}
