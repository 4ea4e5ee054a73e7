//! [`KeyedRateLimiter`]: one GCRA state per key, in bounded memory.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashbrown::HashTable;
use parking_lot::RwLock;
use seawall_core::{Clock, ConfigError, MonotonicClock, Shared};

use crate::error::{InsufficientCapacity, RateLimitError, RateLimited};
use crate::gcra::{self, Decision, Reserved, Rule};
use crate::loom::{AtomicU64, Ordering};
use crate::observe::Observer;
use crate::quota::Quota;
use crate::state::LimitState;

/// Makes an owned key from the form it is looked up by, when a key is
/// first seen: a clone for the key type itself, and a copy for the common
/// borrowed forms (`&str` for `String`, `Arc<str>` and `Box<str>` keys,
/// `&[u8]` for byte strings), so lookups never allocate.
pub trait KeyFrom<Q: ?Sized> {
    /// The owned key for `borrowed`.
    fn key_from(borrowed: &Q) -> Self;
}

impl<K: Clone> KeyFrom<K> for K {
    fn key_from(borrowed: &K) -> K {
        borrowed.clone()
    }
}

macro_rules! key_from {
    ($($owned:ty => $borrowed:ty),* $(,)?) => {
        $(impl KeyFrom<$borrowed> for $owned {
            fn key_from(borrowed: &$borrowed) -> Self {
                borrowed.into()
            }
        })*
    };
}

key_from! {
    String => str,
    Arc<str> => str,
    Box<str> => str,
    Vec<u8> => [u8],
    Arc<[u8]> => [u8],
    Box<[u8]> => [u8],
    std::path::PathBuf => std::path::Path,
}

/// The default bound on tracked keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Shards at most; fewer when `max_keys` is small.
const MAX_SHARDS: usize = 64;
/// Keys a shard holds at least (unless `max_keys` itself is smaller).
const MIN_SHARD_KEYS: usize = 64;

/// A rate limiter with one state per key: per client IP, per API key, per
/// route.
///
/// Every key gets its own bucket under a default [`Quota`], or under a quota
/// chosen per key (a paid tier). It is a handle: clones share the states.
///
/// # Memory
///
/// Keys live in a sharded hash table bounded by
/// [`max_keys`](KeyedRateLimiterBuilder::max_keys). A key whose bucket has
/// refilled to full carries no information (a fresh key admits exactly the
/// same), so when a shard is at its bound, inserting a new key first drops
/// every full key in that shard. Only if none is full do keys go early: the
/// eighth of the shard nearest to full, counted by
/// [`KeyedStats::evicted_early`]. A client spraying random keys cannot grow
/// memory, and a steady non-zero count means `max_keys` is too small for
/// the traffic. No background task
/// is needed; [`sweep`](Self::sweep) drops full keys on demand for those who
/// want memory back between bursts. docs/ratelimit.md gives bytes per key.
///
/// # Concurrency
///
/// A check on a known key takes its shard's read lock (one atomic add when
/// uncontended), then a lock-free compare-and-swap on the key's state, and
/// allocates nothing. Only a new key takes the shard's write lock and
/// allocates.
///
/// # Examples
///
/// ```
/// use seawall_ratelimit::{KeyedRateLimiter, Quota};
///
/// let free = Quota::per_second(1).build()?;
/// let paid = Quota::per_second(100).build()?;
/// let limiter = KeyedRateLimiter::<String>::builder(free)
///     .quota_for(move |api_key: &String| api_key.starts_with("paid-").then_some(paid))
///     .max_keys(10_000)
///     .build()?;
///
/// // Keys are looked up borrowed (a `&str` for `String` keys); a new key
/// // is copied once, when it is first seen.
/// assert!(limiter.check("free-alice").is_ok());
/// assert!(limiter.check("free-alice").is_err());
/// assert!(limiter.check("free-bob").is_ok(), "keys are independent");
/// for _ in 0..100 {
///     assert!(limiter.check("paid-carol").is_ok());
/// }
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
pub struct KeyedRateLimiter<K: 'static, C: 'static = MonotonicClock> {
    inner: Shared<Inner<K, C>>,
}

type QuotaFn<K> = Arc<dyn Fn(&K) -> Option<Quota> + Send + Sync>;

/// Aligned to its own cache lines, so the handle's reference count (cloned
/// with every service) never shares a line with the fields every check
/// reads.
#[repr(align(128))]
struct Inner<K, C> {
    shards: Box<[Shard<K>]>,
    shard_mask: usize,
    per_shard_max: usize,
    hasher: foldhash::fast::RandomState,
    clock: C,
    /// Read when a key is inserted; replaced by `set_quota`.
    quotas: RwLock<Quotas<K>>,
    /// Serializes re-quoting, so two concurrent changes cannot leave some
    /// shards with one and the rest with the other.
    requota: parking_lot::Mutex<()>,
    /// Keys dropped before their bucket was full.
    evicted_early: AtomicU64,
    observer: Observer,
}

/// Padded to its own cache lines, so readers of one shard's lock do not
/// slow readers of the next.
#[repr(align(128))]
struct Shard<K> {
    table: RwLock<HashTable<Entry<K>>>,
}

struct Entry<K> {
    key: K,
    /// Theoretical arrival time, nanoseconds on the clock.
    tat: AtomicU64,
    /// This key's quota, as [`Rule::words`]. Changed only under the
    /// shard's write lock.
    rule: [u64; 2],
}

impl<K> Entry<K> {
    /// Takes `n` unconditionally, into debt if need be. The quota cannot
    /// change meanwhile: the caller holds the shard's read lock.
    fn reserve<C: Clock>(&self, clock: &C, n: u32) -> Result<Reserved, InsufficientCapacity> {
        let rule = self.rule();
        let cost = rule.cost(n)?;
        let (tat, now) = gcra::take(&self.tat, rule, || clock.now_nanos(), cost);
        Ok(Reserved {
            n,
            rule,
            act_at: rule.act_at(tat, now),
            now,
            tat,
        })
    }

    /// Gives back what `taken` took, less what was taken after it, if the
    /// key's quota is still the one it was taken under.
    fn give_back<C: Clock>(&self, clock: &C, taken: &Reserved, unused: bool) {
        let now = clock.now_nanos();
        let rule = self.rule();
        if rule != taken.rule || (taken.act_at < now && !unused) {
            return;
        }
        let taken_units = rule.cost(taken.n).unwrap_or(0);
        let built_on = self.tat.load(Ordering::Relaxed).saturating_sub(taken.tat);
        let restore = taken_units
            .saturating_sub(built_on)
            .min(taken.unrefilled(now));
        if restore > 0 {
            gcra::restore_state(&self.tat, rule, now, restore);
        }
    }

    /// The GCRA decision for `n` requests now. The entry's quota changes
    /// only under the shard's write lock, which excludes every check, so
    /// nothing freezes the state.
    #[inline]
    fn decide<C: Clock>(&self, clock: &C, n: u32) -> Decision {
        gcra::check(&self.tat, None, || clock.now_nanos(), || self.rule(), n)
    }

    #[inline]
    fn rule(&self) -> Rule {
        Rule::from_words(self.rule)
    }

    /// How far from full the key is at `now` (0 when full).
    fn debt(&self, now: u64) -> u64 {
        self.tat
            .load(Ordering::Relaxed)
            .saturating_sub(self.rule().at(now))
    }
}

struct Quotas<K> {
    default: Quota,
    per_key: Option<QuotaFn<K>>,
}

impl<K> Clone for Quotas<K> {
    fn clone(&self) -> Self {
        Self {
            default: self.default,
            per_key: self.per_key.clone(),
        }
    }
}

impl<K> Quotas<K> {
    fn quota_for(&self, key: &K) -> Quota {
        self.per_key
            .as_ref()
            .and_then(|f| f(key))
            .unwrap_or(self.default)
    }
}

impl<K> KeyedRateLimiter<K, MonotonicClock>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// A limiter giving every key `quota`, tracking at most
    /// [`DEFAULT_MAX_KEYS`] keys, on the production clock.
    #[must_use]
    pub fn new(quota: Quota) -> Self {
        Self::builder(quota).build_unchecked()
    }

    /// A builder, for per-key quotas, the key bound or the clock.
    pub fn builder(default: Quota) -> KeyedRateLimiterBuilder<K, MonotonicClock> {
        KeyedRateLimiterBuilder {
            quotas: Quotas {
                default,
                per_key: None,
            },
            max_keys: DEFAULT_MAX_KEYS,
            clock: MonotonicClock::new(),
            name: None,
        }
    }
}

impl<K, C> KeyedRateLimiter<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Admits one request for `key` now, or says how long until it would
    /// pass.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] when the key's burst is used up; the refusal takes
    /// nothing.
    #[inline]
    pub fn check<Q>(&self, key: &Q) -> Result<(), RateLimited>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        let observer = &self.inner.observer;
        self.with_entry(key, |entry, clock| match entry.decide(clock, 1) {
            Decision::Admitted { .. } => {
                observer.admitted();
                Ok(())
            }
            Decision::Refused { ready_at, now, .. } => Err(observer.refused(now, ready_at)),
            // A burst of zero.
            Decision::Invalid(_) => Err(observer.refused(0, gcra::NEVER)),
        })
    }

    /// Admits `n` requests for `key` at once, or none.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::RateLimited`] when not all `n` fit now, and
    /// [`RateLimitError::InsufficientCapacity`] when `n` is more than the
    /// key's burst.
    pub fn check_n<Q>(&self, key: &Q, n: u32) -> Result<(), RateLimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        let observer = &self.inner.observer;
        self.with_entry(key, |entry, clock| match entry.decide(clock, n) {
            Decision::Admitted { .. } => {
                observer.admitted();
                Ok(())
            }
            Decision::Refused { ready_at, now, .. } => Err(observer.refused(now, ready_at).into()),
            Decision::Invalid(e) => Err(e.into()),
        })
    }

    /// Like [`check`](Self::check), and on success also returns the key's
    /// state after it: what HTTP's `RateLimit` header reports.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub fn check_with_state<Q>(&self, key: &Q) -> Result<LimitState, RateLimited>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        match self.check_detailed(key, 1, true) {
            Ok(state) => Ok(state.unwrap_or_else(|| unreachable!("state was asked for"))),
            Err((refused, _)) => Err(refused),
        }
    }

    /// The services' check of `n` requests: the state only when asked for,
    /// and the key's quota with a refusal (final when `n` is over the
    /// burst).
    pub(crate) fn check_detailed<Q>(
        &self,
        key: &Q,
        n: u32,
        want_state: bool,
    ) -> Result<Option<LimitState>, (RateLimited, Quota)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        let observer = &self.inner.observer;
        self.with_entry(key, |entry, clock| match entry.decide(clock, n) {
            Decision::Admitted { tat, now, rule } => {
                observer.admitted();
                Ok(want_state.then(|| rule.state(tat, now)))
            }
            Decision::Refused {
                ready_at,
                now,
                rule,
            } => Err((observer.refused(now, ready_at), rule.quota())),
            // More than the burst (a burst of zero, for one).
            Decision::Invalid(_) => Err((observer.refused(0, gcra::NEVER), entry.rule().quota())),
        })
    }

    /// How many requests `key` could make now, without taking any (see
    /// [`RateLimiter::tokens`](crate::RateLimiter::tokens)). An unknown key
    /// has its full burst, and is not added.
    #[must_use]
    pub fn tokens<Q>(&self, key: &Q) -> f64
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        let hash = self.inner.hasher.hash_one(key);
        let table = self.inner.shard(hash).table.read();
        let now = self.inner.clock.now_nanos();
        match table.find(hash, |e| e.key.borrow() == key) {
            Some(e) => e.rule().tokens(e.tat.load(Ordering::Relaxed), now),
            None => {
                let quota = self.inner.quotas.read().quota_for(&K::key_from(key));
                Rule::of(quota).tokens(0, now)
            }
        }
    }

    /// Forgets `key`: its next request is judged as a new key's, with a
    /// full burst. Returns whether it was tracked.
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hasher.hash_one(key);
        let mut table = self.inner.shard(hash).table.write();
        match table.find_entry(hash, |e| e.key.borrow() == key) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// Gives `key` its full burst back, keeping it tracked. Returns whether
    /// it was tracked (a key that is not is full already).
    pub fn reset<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hasher.hash_one(key);
        let table = self.inner.shard(hash).table.read();
        match table.find(hash, |e| e.key.borrow() == key) {
            Some(entry) => {
                // Zero is full under every quota; a check racing this one
                // lands before or after it.
                entry.tat.store(0, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Reserves `n` requests for `key` for later, as
    /// [`RateLimiter::reserve_n`](crate::RateLimiter::reserve_n) does for one
    /// limiter: the capacity is taken now, into debt if need be, and the
    /// reservation says when to act.
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] when `n` is more than the key's burst.
    pub fn reserve_n<Q>(
        &self,
        key: &Q,
        n: u32,
    ) -> Result<KeyedReservation<K, C>, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        let taken = self.with_entry(key, |entry, clock| entry.reserve(clock, n))?;
        self.inner.observer.admitted();
        Ok(KeyedReservation {
            limiter: self.clone(),
            key: K::key_from(key),
            taken,
        })
    }

    /// Waits until `n` requests for `key` are admitted at once: reserves
    /// the place, then sleeps until it comes, as
    /// [`RateLimiter::acquire_n`](crate::RateLimiter::acquire_n) does.
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once when `n` is more than the key's
    /// burst.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped wait gives its place back.
    pub async fn acquire_n<Q>(&self, key: &Q, n: u32) -> Result<(), InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        match self.check_n(key, n) {
            Ok(()) => return Ok(()),
            Err(RateLimitError::InsufficientCapacity(e)) => return Err(e),
            Err(_) => {}
        }
        let place = self.reserve_n(key, n)?;
        let act_at = place.taken.act_at;
        let mut place = GiveBackOnDrop(Some(place));
        crate::limiter::sleep_until(&self.inner.clock, act_at, 0).await;
        // Its time came: the place is used, not given back.
        place.0 = None;
        Ok(())
    }

    /// Waits until one request for `key` is admitted; see
    /// [`acquire_n`](Self::acquire_n).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled.
    pub async fn acquire<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        if self.acquire_n(key, 1).await.is_err() {
            // A burst of zero: no wait would do, as for one limiter.
            std::future::pending::<()>().await;
        }
    }

    /// Keeps the limiter for the rest of the process, so that its clones
    /// (a tower service cloned per request) no longer count references:
    /// see [`Shared`](seawall_core::Shared). For limiters made once at
    /// startup; the memory is never given back.
    #[must_use]
    pub fn leak(self) -> Self {
        Self {
            inner: self.inner.leak(),
        }
    }

    /// The default quota: what a key without a quota of its own (from
    /// `quota_for`) gets.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.inner.quotas.read().default
    }

    /// Replaces the default quota for every key, keeping each key's tokens
    /// (capped at its new burst), as
    /// [`RateLimiter::set_quota`](crate::RateLimiter::set_quota) does for one.
    /// Keys with a quota of their own (from `quota_for`) keep it.
    pub fn set_quota(&self, default: Quota) {
        self.requota(|quotas| quotas.default = default);
        self.inner.observer.quota_changed(default);
    }

    /// Replaces the per-key quota function, re-quoting every key and keeping
    /// its tokens. `None` from `quota_for` means the default quota.
    pub fn set_quota_for<F>(&self, quota_for: F)
    where
        F: Fn(&K) -> Option<Quota> + Send + Sync + 'static,
    {
        let quota_for: QuotaFn<K> = Arc::new(quota_for);
        self.requota(move |quotas| quotas.per_key = Some(quota_for));
    }

    fn requota(&self, change: impl FnOnce(&mut Quotas<K>)) {
        // Swap first, then walk the shards. A key inserted meanwhile read
        // the old quotas under its shard's lock, and its shard is walked
        // after that lock is released, so no key keeps an old quota. Never
        // hold `quotas` while taking a shard lock: inserts take them the
        // other way round.
        let _serial = self.inner.requota.lock();
        let quotas = {
            let mut quotas = self.inner.quotas.write();
            change(&mut quotas);
            quotas.clone()
        };
        for shard in &self.inner.shards {
            let mut table = shard.table.write();
            let now = self.inner.clock.now_nanos();
            for entry in table.iter_mut() {
                let new = Rule::of(quotas.quota_for(&entry.key));
                let tat = entry.tat.load(Ordering::Relaxed);
                let converted = gcra::convert(tat, now, entry.rule(), new);
                entry.tat.store(converted, Ordering::Relaxed);
                entry.rule = new.words();
            }
        }
    }

    /// Drops every key whose bucket is full (it loses nothing: a fresh key
    /// admits the same) and returns the memory they held to the allocator,
    /// returning how many were dropped. Optional: a full shard drops full
    /// keys by itself when it needs room.
    pub fn sweep(&self) -> usize {
        let mut dropped = 0;
        for shard in &self.inner.shards {
            let mut table = shard.table.write();
            let before = table.len();
            let now = self.inner.clock.now_nanos();
            table.retain(|e| e.debt(now) > 0);
            dropped += before - table.len();
            let hasher = &self.inner.hasher;
            table.shrink_to_fit(|e| hasher.hash_one(&e.key));
        }
        dropped
    }

    /// How many keys are tracked now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.table.read().len()).sum()
    }

    /// Whether no key is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters for monitoring.
    #[must_use]
    pub fn stats(&self) -> KeyedStats {
        KeyedStats {
            keys: self.len(),
            max_keys: self.inner.per_shard_max * self.inner.shards.len(),
            evicted_early: self.inner.evicted_early.load(Ordering::Relaxed),
        }
    }

    /// The clock the limiter reads.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// Runs `f` on `key`'s entry, inserting the key first if it is new.
    #[inline]
    fn with_entry<Q, R>(&self, key: &Q, f: impl FnOnce(&Entry<K>, &C) -> R) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(key);
        let shard = inner.shard(hash);
        {
            let table = shard.table.read();
            if let Some(entry) = table.find(hash, |e| e.key.borrow() == key) {
                return f(entry, &inner.clock);
            }
        }
        self.insert_then(shard, hash, key, f)
    }

    #[cold]
    fn insert_then<Q, R>(
        &self,
        shard: &Shard<K>,
        hash: u64,
        key: &Q,
        f: impl FnOnce(&Entry<K>, &C) -> R,
    ) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        let inner = &*self.inner;
        let mut table = shard.table.write();
        let now = inner.clock.now_nanos();
        if let Some(entry) = table.find(hash, |e| e.key.borrow() == key) {
            return f(entry, &inner.clock); // another thread inserted it meanwhile
        }
        if table.len() >= inner.per_shard_max {
            inner.make_room(&mut table, now);
        }
        let key = K::key_from(key);
        let quota = inner.quotas.read().quota_for(&key);
        let entry = Entry {
            key,
            tat: AtomicU64::new(0),
            rule: Rule::of(quota).words(),
        };
        let hasher = &inner.hasher;
        let slot = table.insert_unique(hash, entry, |e| hasher.hash_one(&e.key));
        f(slot.get(), &inner.clock)
    }
}

impl<K: Hash + Eq, C> Inner<K, C> {
    fn shard(&self, hash: u64) -> &Shard<K> {
        // Bits 32 and up: hashbrown uses the low bits for the bucket and
        // the top 7 for its tags, so the shard choice stays independent.
        #[allow(clippy::cast_possible_truncation)] // masked to < 64
        &self.shards[(hash >> 32) as usize & self.shard_mask]
    }

    /// Frees room in a shard at its bound: every full key goes (losing
    /// nothing), or failing that the eighth of the shard nearest to full.
    /// Dropping a batch makes the scan rare under a flood of new keys: the
    /// early drops per new key are the same as one at a time, one scan
    /// serves an eighth of the shard's worth of inserts.
    fn make_room(&self, table: &mut HashTable<Entry<K>>, now: u64) {
        // The shard is write-locked: no state moves while we look. A key
        // on a budget is full only while unused: judged by its debt, not
        // its `tat`, so a budget is never handed back by an eviction that
        // took it for full.
        let mut debts: Vec<u64> = table.iter().map(|e| e.debt(now)).collect();
        if debts.contains(&0) {
            table.retain(|e| e.debt(now) > 0);
            return;
        }
        let batch = (debts.len() / 8).max(1);
        let (_, &mut threshold, _) = debts.select_nth_unstable(batch - 1);
        let mut left = batch;
        table.retain(|e| {
            let drop = left > 0 && e.debt(now) <= threshold;
            left -= usize::from(drop);
            !drop
        });
        // Relaxed: a statistic.
        self.evicted_early
            .fetch_add(batch as u64, Ordering::Relaxed);
        self.observer.evicted_early(batch);
    }
}

impl<K: 'static, C: 'static> Clone for KeyedRateLimiter<K, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, C> fmt::Debug for KeyedRateLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("default_quota", &self.inner.quotas.read().default)
            .field(
                "max_keys",
                &(self.inner.per_shard_max * self.inner.shards.len()),
            )
            .field(
                "keys",
                &self
                    .inner
                    .shards
                    .iter()
                    .map(|s| s.table.read().len())
                    .sum::<usize>(),
            )
            .finish_non_exhaustive()
    }
}

/// Capacity taken for one key now, to act on after
/// [`delay`](Self::delay); made by [`KeyedRateLimiter::reserve_n`].
///
/// Like [`Reservation`](crate::Reservation): dropping it keeps the capacity
/// taken, and [`cancel`](Self::cancel) gives it back, less what was taken
/// for the key after it, and nothing once its time has passed. Unlike a
/// plain limiter's, a key keeps no record of its latest event (it would
/// cost every key 8 bytes): what was taken after is read from the key's
/// state, so an admission made after this reservation also keeps its place;
/// and a cancellation after the key's quota changed gives back nothing.
#[must_use = "a dropped reservation keeps its capacity; act on it or cancel it"]
pub struct KeyedReservation<K: 'static, C: 'static = MonotonicClock> {
    limiter: KeyedRateLimiter<K, C>,
    key: K,
    taken: Reserved,
}

impl<K, C> KeyedReservation<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    /// How long to wait, from the moment of reserving, before acting;
    /// `Duration::MAX` if the time never comes.
    #[must_use]
    pub fn delay(&self) -> std::time::Duration {
        self.taken.delay()
    }

    /// When the reservation may be acted on, in nanoseconds on the
    /// limiter's clock; `u64::MAX` if never.
    #[must_use]
    pub fn ready_at_nanos(&self) -> u64 {
        self.taken.act_at
    }

    /// Gives the capacity back; see the type's docs.
    pub fn cancel(self) {
        self.give_back(false);
    }

    fn give_back(&self, unused: bool) {
        let inner = &*self.limiter.inner;
        let hash = inner.hasher.hash_one(&self.key);
        let table = inner.shard(hash).table.read();
        if let Some(entry) = table.find(hash, |e| e.key == self.key) {
            entry.give_back(&inner.clock, &self.taken, unused);
        }
    }
}

impl<K, C> fmt::Debug for KeyedReservation<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedReservation")
            .field("delay", &self.delay())
            .finish_non_exhaustive()
    }
}

/// The place a keyed `acquire` holds while it sleeps, given back if the
/// future is dropped first.
struct GiveBackOnDrop<K, C>(Option<KeyedReservation<K, C>>)
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock;

impl<K, C> Drop for GiveBackOnDrop<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    fn drop(&mut self) {
        if let Some(place) = self.0.take() {
            place.give_back(true);
        }
    }
}

/// A snapshot of a [`KeyedRateLimiter`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedStats {
    /// Keys tracked now.
    pub keys: usize,
    /// The most keys it will track (`max_keys`, rounded down to a multiple
    /// of the shard count).
    pub max_keys: usize,
    /// Keys dropped before their bucket was full, to make room: each one's
    /// next request was judged as a fresh key's. Non-zero under normal
    /// traffic means `max_keys` is too small.
    pub evicted_early: u64,
}

/// Builds a [`KeyedRateLimiter`].
#[must_use]
pub struct KeyedRateLimiterBuilder<K, C> {
    quotas: Quotas<K>,
    max_keys: usize,
    clock: C,
    name: Option<String>,
}

impl<K, C> KeyedRateLimiterBuilder<K, C> {
    /// The default quota, `max_keys` and name set so far.
    #[cfg(feature = "serde")]
    pub(crate) fn settings(&self) -> (Quota, usize, Option<&str>) {
        (self.quotas.default, self.max_keys, self.name.as_deref())
    }
}

impl<K, C> KeyedRateLimiterBuilder<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Chooses a quota per key; `None` means the default. Called when a key
    /// is first seen, by `tokens` for an unknown key, and for every key by
    /// `set_quota*`; never on the check of a known key. It runs under the
    /// limiter's internal locks, so it must not call back into the limiter.
    pub fn quota_for<F>(mut self, quota_for: F) -> Self
    where
        F: Fn(&K) -> Option<Quota> + Send + Sync + 'static,
    {
        self.quotas.per_key = Some(Arc::new(quota_for));
        self
    }

    /// The most keys tracked at once. Defaults to [`DEFAULT_MAX_KEYS`].
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// The clock to read: `ManualClock` or `TokioClock` in tests.
    pub fn clock<C2: Clock>(self, clock: C2) -> KeyedRateLimiterBuilder<K, C2> {
        KeyedRateLimiterBuilder {
            quotas: self.quotas,
            max_keys: self.max_keys,
            clock,
            name: self.name,
        }
    }

    /// Names the limiter in its `tracing` events and as the `limiter`
    /// label of its metrics (features `tracing` and `metrics`). Defaults to
    /// `"default"`. Metrics go to the recorder installed when the limiter
    /// is built: install yours first.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Builds the limiter.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `max_keys` is zero.
    pub fn build(self) -> Result<KeyedRateLimiter<K, C>, ConfigError> {
        self.check()?;
        Ok(self.build_unchecked())
    }

    /// What `build` checks.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1", 0));
        }
        Ok(())
    }

    fn build_unchecked(self) -> KeyedRateLimiter<K, C> {
        let max_keys = self.max_keys.max(1);
        // A power of two, at most MAX_SHARDS, with at least MIN_SHARD_KEYS
        // keys each: a shard of one or two slots would make colliding keys
        // evict each other and restart full.
        let shards = (max_keys / MIN_SHARD_KEYS)
            .checked_ilog2()
            .map_or(1, |bits| MAX_SHARDS.min(1 << bits));
        KeyedRateLimiter {
            inner: Shared::new(Inner {
                shards: (0..shards)
                    .map(|_| Shard {
                        table: RwLock::new(HashTable::new()),
                    })
                    .collect(),
                shard_mask: shards - 1,
                per_shard_max: max_keys / shards,
                hasher: foldhash::fast::RandomState::default(),
                clock: self.clock,
                quotas: RwLock::new(self.quotas),
                requota: parking_lot::Mutex::new(()),
                evicted_early: AtomicU64::new(0),
                observer: Observer::new(self.name.as_deref().unwrap_or("default")),
            }),
        }
    }
}

impl<K, C> fmt::Debug for KeyedRateLimiterBuilder<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiterBuilder")
            .field("default_quota", &self.quotas.default)
            .field("per_key_quotas", &self.quotas.per_key.is_some())
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use seawall_core::ManualClock;
    use std::time::Duration;

    fn limiter(max_keys: usize) -> (KeyedRateLimiter<u64, ManualClock>, ManualClock) {
        let clock = ManualClock::new();
        let quota = Quota::per_second(10).burst(2).build().expect("valid");
        let limiter = KeyedRateLimiter::builder(quota)
            .max_keys(max_keys)
            .clock(clock.clone())
            .build()
            .expect("valid");
        (limiter, clock)
    }

    #[test]
    fn shard_count_fits_max_keys() {
        for (max_keys, shards, cap) in [
            (1, 1, 1),
            (100, 1, 100),
            (128, 2, 64),
            (1_000, 8, 125),
            (10_000, 64, 156),
            (1_000_000, 64, 15_625),
        ] {
            let (l, _) = limiter(max_keys);
            assert_eq!(l.inner.shards.len(), shards, "max_keys {max_keys}");
            assert_eq!(l.inner.per_shard_max, cap, "max_keys {max_keys}");
        }
    }

    #[test]
    fn full_keys_make_room_without_counting_as_early() {
        let (l, clock) = limiter(1);
        l.check(&1).unwrap();
        clock.advance(Duration::from_millis(100)); // key 1 is full again
        l.check(&2).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l.stats().evicted_early, 0);
    }

    /// With no full key, the eighth of the shard nearest to full goes, and
    /// the key deepest in debt stays.
    #[test]
    fn without_full_keys_the_nearest_to_full_go_early() {
        let (l, clock) = limiter(16); // one shard of 16 (quota: 10/s, burst 2)
        l.check(&0).unwrap();
        l.check(&0).unwrap(); // key 0: empty, full again at 200 ms
        for k in 1..16 {
            clock.advance(Duration::from_millis(1));
            l.check(&k).unwrap(); // key k: full again at k + 100 ms
        }
        assert_eq!(l.len(), 16);
        l.check(&100).unwrap(); // no key is full: 16 / 8 = 2 go early
        assert_eq!(l.len(), 15);
        assert_eq!(l.stats().evicted_early, 2);
        // Keys 1 and 2 were nearest to full: they restart with a full burst.
        assert!((l.tokens(&1) - 2.0).abs() < 1e-9);
        assert!((l.tokens(&2) - 2.0).abs() < 1e-9);
        // Key 0 kept its debt; key 3 its state.
        assert!(l.tokens(&0) < 1.0);
        assert!(l.tokens(&3) < 2.0);
    }

    #[test]
    fn requota_converts_every_key() {
        let (l, _) = limiter(100);
        l.check(&7).unwrap();
        l.set_quota(Quota::per_second(10).burst(5).build().unwrap());
        assert!((l.tokens(&7) - 1.0).abs() < 1e-9, "kept its one token");
        assert!((l.tokens(&8) - 5.0).abs() < 1e-9, "unknown key: new burst");
        assert_eq!(l.len(), 1, "tokens() added nothing");
    }
}
