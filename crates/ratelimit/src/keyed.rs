//! [`KeyedRateLimiter`]: one GCRA state per key, in bounded memory.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::RwLock;
use seawall_core::{Clock, ConfigError, MonotonicClock, Shared};

use crate::error::{InsufficientCapacity, RateLimitError, RateLimited};
use crate::gcra::{self, CacheLine, Decision, FROZEN, OnFrozen, Reserved, Retired, Rule};
use crate::loom::{AtomicU64, Ordering};
use crate::observe::Observer;
use crate::quota::Quota;
use crate::state::LimitState;
use std::sync::atomic::AtomicUsize;

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
/// Lookups of a retired entry before waiting on the writer instead.
const SPINS: u32 = 64;

/// A rate limiter with one state per key: per client IP, per API key, per
/// route.
///
/// Every key gets its own bucket under a default [`Quota`], or under a quota
/// chosen per key (a paid tier). It is a handle: clones share the states.
///
/// # Memory
///
/// Keys live in a concurrent hash table holding at most
/// [`max_keys`](KeyedRateLimiterBuilder::max_keys), exactly. A key whose
/// bucket has refilled to full carries no information (a fresh key admits
/// exactly the same), so when the table is at its bound, inserting a new
/// key first drops every full key. Only if none is full do keys go early:
/// the eighth of the table nearest to full, counted by
/// [`KeyedStats::evicted_early`]. A client spraying random keys cannot grow
/// memory, and a steady non-zero count means `max_keys` is too small for
/// the traffic. No background task is needed; [`sweep`](Self::sweep) drops
/// full keys on demand for those who want memory back between bursts.
/// docs/ratelimit.md gives bytes per key.
///
/// # Concurrency
///
/// A check on a known key is a lock-free lookup in `papaya`'s table, then a
/// compare-and-swap on the key's state, and allocates nothing; while no
/// entry is being retired, the lookup writes nothing another thread reads.
/// A new key takes the quotas' read lock while it is inserted (and the
/// writer lock when the table is at its bound). Quota changes, removals
/// and evictions take the limiter's writer lock, and never change an entry
/// in place: they freeze it for good and put a new one in its place (or
/// none), so a check that raced them finds the entry frozen and looks the
/// key up again, waiting on the writer lock after a short spin.
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
    map: papaya::HashMap<K, Slot, foldhash::fast::RandomState>,
    clock: C,
    max_keys: usize,
    /// Keys in the table, plus inserts under way: never more than
    /// `max_keys`. On its own line: written by every insert, while the
    /// fields above are read by every check.
    len: CacheLine<AtomicUsize>,
    /// Read when a key is inserted; replaced by `set_quota`.
    quotas: RwLock<Quotas<K>>,
    /// Held by whoever retires entries (quota changes, removals,
    /// evictions), so one retirement runs at a time and a check that finds
    /// an entry retired can wait for its replacement.
    writer: parking_lot::Mutex<()>,
    /// Keys dropped before their bucket was full.
    evicted_early: AtomicU64,
    observer: Observer,
}

/// A key's state. Its quota never changes: a new quota retires the slot
/// (see [`Slot::retire`]) and puts a converted one in its place.
struct Slot {
    /// Theoretical arrival time, nanoseconds on the clock; frozen for
    /// good once the slot is retired.
    tat: AtomicU64,
    /// This key's quota, as [`Rule::words`].
    rule: [u64; 2],
    /// Which bucket this is, drawn when the slot is made (a reset makes a
    /// new slot), so a reservation gives back only to the bucket it was
    /// taken from.
    epoch: u64,
}

/// An epoch no slot was given before.
fn next_epoch() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Slot {
    fn new(rule: Rule, tat: u64) -> Self {
        Self {
            tat: AtomicU64::new(tat),
            rule: rule.words(),
            epoch: next_epoch(),
        }
    }

    /// The same bucket (quota, epoch) in a new slot, holding `tat`: for a
    /// slot retired and put back as it was.
    fn reinstated(&self, tat: u64) -> Self {
        Self {
            tat: AtomicU64::new(tat),
            rule: self.rule,
            epoch: self.epoch,
        }
    }

    /// Takes `n` unconditionally, into debt if need be; with `coming_only`,
    /// not a place that would never come (answered [`Reserved::never`]).
    fn reserve<C: Clock>(
        &self,
        clock: &C,
        n: u32,
        coming_only: bool,
    ) -> Result<Result<Reserved, InsufficientCapacity>, Retired> {
        let rule = self.rule();
        let cost = match rule.cost(n) {
            Ok(cost) => cost,
            Err(e) => return Ok(Err(e)),
        };
        let taken = gcra::take(
            &self.tat,
            Retired,
            rule,
            || clock.now_nanos(),
            cost,
            coming_only,
        )?;
        let Some((tat, now)) = taken else {
            return Ok(Ok(Reserved::never(clock.now_nanos())));
        };
        Ok(Ok(Reserved {
            n,
            rule,
            act_at: rule.act_at(tat, now),
            now,
            tat,
        }))
    }

    /// Gives back what `taken` took, less what was taken after it, if the
    /// key's quota is still the one it was taken under.
    fn give_back<C: Clock>(
        &self,
        clock: &C,
        taken: &Reserved,
        unused: bool,
    ) -> Result<(), Retired> {
        let now = clock.now_nanos();
        let rule = self.rule();
        if rule != taken.rule || (taken.act_at < now && !unused) {
            return Ok(());
        }
        let taken_units = rule.cost(taken.n).unwrap_or(0);
        let built_on = self.tat()?.saturating_sub(taken.tat);
        let restore = taken_units
            .saturating_sub(built_on)
            .min(taken.unrefilled(now));
        if restore > 0 {
            gcra::restore_state(&self.tat, Retired, rule, now, restore)?;
        }
        Ok(())
    }

    /// The GCRA decision for `n` requests now.
    #[inline]
    fn decide<C: Clock>(&self, clock: &C, n: u32) -> Result<Decision, Retired> {
        gcra::check(&self.tat, Retired, || clock.now_nanos(), || self.rule(), n)
    }

    #[inline]
    fn rule(&self) -> Rule {
        Rule::from_words(self.rule)
    }

    /// The state, unless the slot is retired.
    fn tat(&self) -> Result<u64, Retired> {
        Retired.unfrozen(&self.tat, self.tat.load(Ordering::Acquire))
    }

    /// How far from full the state `tat` is at `now` (0 when full).
    fn debt(&self, tat: u64, now: u64) -> u64 {
        tat.saturating_sub(self.rule().at(now))
    }

    /// Freezes the slot for good and returns its last state: every check,
    /// reservation or give-back that has not landed yet fails and looks the
    /// key up again. Only under the writer lock.
    fn retire(&self) -> u64 {
        self.tat.fetch_or(FROZEN, Ordering::Acquire)
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
        self.with_entry(key, |slot, clock| {
            Ok(match slot.decide(clock, 1)? {
                Decision::Admitted { .. } => {
                    observer.admitted();
                    Ok(())
                }
                Decision::Refused { ready_at, now, .. } => Err(observer.refused(now, ready_at)),
                // A burst of zero.
                Decision::Invalid(_) => Err(observer.refused(0, gcra::NEVER)),
            })
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
        match self.decide(key, n) {
            Decision::Admitted { .. } => {
                observer.admitted();
                Ok(())
            }
            Decision::Refused { ready_at, now, .. } => Err(observer.refused(now, ready_at).into()),
            Decision::Invalid(e) => Err(e.into()),
        }
    }

    /// [`check_n`](Self::check_n)'s decision, reported by the caller.
    fn decide<Q>(&self, key: &Q, n: u32) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        self.with_entry(key, |slot, clock| slot.decide(clock, n))
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
        self.with_entry(key, |slot, clock| {
            Ok(match slot.decide(clock, n)? {
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
                Decision::Invalid(_) => {
                    Err((observer.refused(0, gcra::NEVER), slot.rule().quota()))
                }
            })
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
        let clock = &self.inner.clock;
        self.with_existing(key, |slot| {
            let tat = slot.tat()?;
            Ok(slot.rule().tokens(tat, clock.now_nanos()))
        })
        .unwrap_or_else(|| {
            let quota = self.inner.quotas.read().quota_for(&K::key_from(key));
            Rule::of(quota).tokens(0, clock.now_nanos())
        })
    }

    /// Forgets `key`: its next request is judged as a new key's, with a
    /// full burst. Returns whether it was tracked.
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let _writer = inner.writer.lock();
        let guard = inner.map.guard();
        match inner.map.get(key, &guard) {
            Some(slot) => {
                slot.retire();
                inner.drop_retired(key, &guard);
                true
            }
            None => false,
        }
    }

    /// Gives `key` its full burst back, keeping it tracked. Returns whether
    /// it was tracked (a key that is not is full already). Reservations
    /// taken before give nothing back when cancelled, as after
    /// [`remove`](Self::remove).
    pub fn reset<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // A new slot, full (zero is full under every quota), with an
        // epoch of its own; the old one retired for good, as a quota change
        // does, under the writer lock. A reservation or a give-back that
        // meets the old slot retired looks the key up again and finds the
        // new epoch: what was taken from the old bucket never goes to the
        // new one.
        let inner = &*self.inner;
        let _writer = inner.writer.lock();
        let guard = inner.map.guard();
        let Some((stored, slot)) = inner.map.get_key_value(key, &guard) else {
            return false;
        };
        // Cloned first: once retired, the slot must be replaced, and a
        // clone is user code that may panic.
        let owned = stored.clone();
        if slot.retire() & FROZEN != 0 {
            // Retired already (a quota change that panicked): gone, full.
            inner.drop_retired(key, &guard);
            return true;
        }
        inner.map.insert(owned, Slot::new(slot.rule(), 0), &guard);
        true
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
        let place = self.reserve_place(key, n, false)?;
        self.inner.observer.reserved(&place.taken);
        Ok(place)
    }

    /// [`reserve_n`](Self::reserve_n), reporting nothing; with
    /// `coming_only`, as a waiter reserves (see `Slot::reserve`).
    fn reserve_place<Q>(
        &self,
        key: &Q,
        n: u32,
        coming_only: bool,
    ) -> Result<KeyedReservation<K, C>, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        // Taken from this slot, whose epoch never changes: a reset
        // replaces the slot.
        let (taken, epoch) = self.with_entry(key, |slot, clock| {
            Ok(slot
                .reserve(clock, n, coming_only)?
                .map(|taken| (taken, slot.epoch)))
        })?;
        Ok(KeyedReservation {
            limiter: self.clone(),
            key: K::key_from(key),
            taken,
            epoch,
        })
    }

    /// Waits until `n` requests for `key` are admitted at once: reserves
    /// the place, then sleeps until it comes, as
    /// [`RateLimiter::acquire_n`](crate::RateLimiter::acquire_n) does.
    ///
    /// # Errors
    ///
    /// At once, instead of waiting forever:
    /// [`RateLimitError::InsufficientCapacity`] when `n` is more than the
    /// key's burst, and a final [`RateLimitError::RateLimited`] when the
    /// key's budget quota does not have `n` left.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped wait gives its place back.
    pub async fn acquire_n<Q>(&self, key: &Q, n: u32) -> Result<(), RateLimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        // Decided without reporting a refusal: a wait that ends admitted is
        // one admission, not a refusal and then an admission.
        match self.decide(key, n) {
            Decision::Admitted { .. } => {
                self.inner.observer.admitted();
                return Ok(());
            }
            Decision::Refused { .. } => {}
            Decision::Invalid(e) => return Err(e.into()),
        }
        let place = self.reserve_place(key, n, true)?;
        let (act_at, now) = (place.taken.act_at, place.taken.now);
        if act_at == gcra::NEVER {
            // A budget without `n` left: nothing was taken, no wait would do.
            return Err(self.inner.observer.refused(now, act_at).into());
        }
        self.inner.observer.admitted();
        let mut place = GiveBackOnDrop(Some(place));
        crate::limiter::sleep_until(&self.inner.clock, act_at, 0).await;
        // Its time came: the place is used, not given back.
        place.0 = None;
        Ok(())
    }

    /// Waits until one request for `key` is admitted; see
    /// [`acquire_n`](Self::acquire_n).
    ///
    /// # Errors
    ///
    /// As [`acquire_n`](Self::acquire_n): a burst of zero, or a budget used
    /// up, at once.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled.
    pub async fn acquire<Q>(&self, key: &Q) -> Result<(), RateLimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        self.acquire_n(key, 1).await
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
        self.inner.observer.key_quotas_changed();
    }

    /// What reports on this limiter.
    #[cfg(feature = "tower")]
    pub(crate) fn observer(&self) -> &crate::observe::Observer {
        &self.inner.observer
    }

    fn requota(&self, change: impl FnOnce(&mut Quotas<K>)) {
        // Swap first, then walk the table. A key inserted meanwhile read
        // the quotas under their read lock, held until it is in the table:
        // either before the swap, and then the walk finds it, or after, and
        // it has the new quota already.
        let inner = &*self.inner;
        let _writer = inner.writer.lock();
        // The clock first: one that panics changes nothing.
        let now = inner.clock.now_nanos();
        let quotas = {
            let mut quotas = inner.quotas.write();
            change(&mut quotas);
            quotas.clone()
        };
        let guard = inner.map.guard();
        for (key, slot) in inner.map.iter(&guard) {
            let new = Rule::of(quotas.quota_for(key));
            let old = slot.rule();
            if new == old {
                continue;
            }
            // Cloned first: once retired, the slot must be replaced, and
            // a clone is user code that may panic.
            let owned = key.clone();
            let tat = gcra::convert(slot.retire() & !FROZEN, now, old, new);
            inner.map.insert(owned, Slot::new(new, tat), &guard);
        }
    }

    /// Drops every key whose bucket is full (it loses nothing: a fresh key
    /// admits the same), returning how many were dropped. Their entries are
    /// freed in batches once no check can still read them; the table itself
    /// does not shrink here (it may when it next resizes). Optional: a full
    /// table drops full keys by itself when it needs room.
    pub fn sweep(&self) -> usize {
        let inner = &*self.inner;
        let _writer = inner.writer.lock();
        let guard = inner.map.guard();
        inner.drop_full_keys(&guard, inner.clock.now_nanos(), None)
    }

    /// How many keys are tracked now (counting inserts under way).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Relaxed)
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
            max_keys: self.inner.max_keys,
            evicted_early: self.inner.evicted_early.load(Ordering::Relaxed),
        }
    }

    /// The clock the limiter reads.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// Runs `f` on `key`'s slot, inserting the key first if it is new, and
    /// again on the slot that replaced it if `f` finds it retired.
    #[inline]
    fn with_entry<Q, R>(&self, key: &Q, mut f: impl FnMut(&Slot, &C) -> Result<R, Retired>) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        let inner = &*self.inner;
        let guard = inner.map.guard();
        let mut tries = 0;
        loop {
            let slot = match inner.map.get(key, &guard) {
                Some(slot) => slot,
                None => inner.insert(key, &guard),
            };
            match f(slot, &inner.clock) {
                Ok(done) => return done,
                Err(Retired) => inner.wait_for_writer(key, &guard, &mut tries),
            }
        }
    }

    /// Runs `f` on `key`'s slot if the key is tracked, as
    /// [`with_entry`](Self::with_entry) does, without inserting it.
    fn with_existing<Q, R>(
        &self,
        key: &Q,
        mut f: impl FnMut(&Slot) -> Result<R, Retired>,
    ) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let guard = inner.map.guard();
        let mut tries = 0;
        loop {
            match f(inner.map.get(key, &guard)?) {
                Ok(done) => return Some(done),
                Err(Retired) => inner.wait_for_writer(key, &guard, &mut tries),
            }
        }
    }
}

impl<K, C> Inner<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Inserts `key` with a full bucket, once there is room, and returns
    /// its slot (another thread's, if it inserted the key meanwhile).
    #[cold]
    fn insert<'g, Q>(&'g self, key: &Q, guard: &'g impl papaya::Guard) -> &'g Slot
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: KeyFrom<Q>,
    {
        // Count the key before it is in, so the table never holds more
        // than `max_keys`.
        let len = &*self.len;
        let mut seen = len.load(Ordering::Relaxed);
        loop {
            if seen >= self.max_keys {
                self.make_room();
                seen = len.load(Ordering::Relaxed);
                continue;
            }
            match len.compare_exchange_weak(seen, seen + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        // Given back unless the key goes in, also if user code below (the
        // key's conversion, `quota_for`, its `Hash` or `Eq`) panics.
        let place = Place(len);
        let key = K::key_from(key);
        // Held until the key is in: see `requota`.
        let quotas = self.quotas.read();
        let slot = Slot::new(Rule::of(quotas.quota_for(&key)), 0);
        match self.map.try_insert(key, slot, guard) {
            Ok(slot) => {
                std::mem::forget(place);
                slot
            }
            Err(inserted) => inserted.current,
        }
    }

    /// Waits for a retired slot's replacement: a short spin (a replacement
    /// follows its retirement by a few stores), then on the writer lock,
    /// which the retiring thread holds throughout. A slot still retired
    /// once the lock is free was orphaned by a writer that panicked (in the
    /// key's `Clone`, `Hash` or `Eq`) before replacing it: it goes, and the
    /// key starts afresh.
    #[cold]
    fn wait_for_writer<Q>(&self, key: &Q, guard: &impl papaya::Guard, tries: &mut u32)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if *tries < SPINS {
            *tries += 1;
            std::hint::spin_loop();
            return;
        }
        let _writer = self.writer.lock();
        if self
            .map
            .get(key, guard)
            .is_some_and(|slot| slot.tat().is_err())
        {
            self.drop_retired(key, guard);
        }
    }

    /// Removes `key`, whose slot the caller retired, under the writer lock.
    fn drop_retired<Q>(&self, key: &Q, guard: &impl papaya::Guard) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let removed = self.map.remove(key, guard).is_some();
        if removed {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        usize::from(removed)
    }

    /// Frees room in a table at its bound: every full key goes (losing
    /// nothing), or failing that the eighth of the table nearest to full.
    /// Dropping a batch makes the walk rare under a flood of new keys: the
    /// early drops per new key are the same as one at a time, one walk
    /// serves an eighth of the table's worth of inserts.
    #[cold]
    fn make_room(&self) {
        let _writer = self.writer.lock();
        if self.len.load(Ordering::Relaxed) < self.max_keys {
            return; // another thread made room meanwhile
        }
        let guard = self.map.guard();
        let now = self.clock.now_nanos();
        let mut debts = Vec::new();
        if self.drop_full_keys(&guard, now, Some(&mut debts)) > 0 {
            return;
        }
        if debts.is_empty() {
            // Every place is held by an insert under way: it lands shortly.
            crate::loom::yield_now();
            return;
        }
        // A key on a budget is full only while unused: judged by its debt,
        // not its `tat`, so a budget is never handed back by an eviction
        // that took it for full.
        let batch = (debts.len() / 8).max(1);
        let (_, &mut threshold, _) = debts.select_nth_unstable(batch - 1);
        let mut dropped = 0;
        // Checks since the first walk only add debt, so every key may be
        // over the threshold by now: then any one goes, so that each call
        // makes room.
        for threshold in [threshold, u64::MAX] {
            for (key, slot) in self.map.iter(&guard) {
                if dropped == batch {
                    break;
                }
                if slot.tat().is_ok_and(|tat| slot.debt(tat, now) <= threshold) {
                    let owned = key.clone();
                    slot.retire();
                    dropped += self.drop_retired(&owned, &guard);
                }
            }
            if dropped > 0 {
                break;
            }
        }
        if dropped > 0 {
            // Relaxed: a statistic.
            self.evicted_early
                .fetch_add(dropped as u64, Ordering::Relaxed);
            self.observer.evicted_early(dropped);
        }
    }

    /// Drops every full key, under the writer lock, and collects the
    /// others' debts into `debts` when asked. A key taken from between the
    /// look and the freeze is put back as it was left.
    fn drop_full_keys(
        &self,
        guard: &impl papaya::Guard,
        now: u64,
        mut debts: Option<&mut Vec<u64>>,
    ) -> usize {
        let mut dropped = 0;
        for (key, slot) in self.map.iter(guard) {
            let Ok(tat) = slot.tat() else { continue };
            let debt = slot.debt(tat, now);
            if debt > 0 {
                if let Some(debts) = debts.as_mut() {
                    debts.push(debt);
                }
                continue;
            }
            let owned = key.clone();
            let tat = slot.retire();
            if slot.debt(tat, now) == 0 {
                dropped += self.drop_retired(&owned, guard);
            } else {
                self.map.insert(owned, slot.reinstated(tat), guard);
            }
        }
        dropped
    }
}

/// A place counted for a key not yet in the table, given back on drop.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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
            .field("max_keys", &self.inner.max_keys)
            .field("keys", &self.inner.len.load(Ordering::Relaxed))
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
    /// The epoch of the slot it was taken from.
    epoch: u64,
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
        let clock = &self.limiter.inner.clock;
        self.limiter.with_existing(&self.key, |slot| {
            if slot.epoch == self.epoch {
                slot.give_back(clock, &self.taken, unused)
            } else {
                Ok(()) // the key was reset or removed since
            }
        });
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
    /// The most keys it will track (`max_keys`).
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
        KeyedRateLimiter {
            inner: Shared::new(Inner {
                map: papaya::HashMap::builder()
                    .hasher(foldhash::fast::RandomState::default())
                    .build(),
                clock: self.clock,
                max_keys: self.max_keys.max(1),
                len: CacheLine(AtomicUsize::new(0)),
                quotas: RwLock::new(self.quotas),
                writer: parking_lot::Mutex::new(()),
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
    fn full_keys_make_room_without_counting_as_early() {
        let (l, clock) = limiter(1);
        l.check(&1).unwrap();
        clock.advance(Duration::from_millis(100)); // key 1 is full again
        l.check(&2).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l.stats().evicted_early, 0);
    }

    /// With no full key, the eighth of the table nearest to full goes, and
    /// the key deepest in debt stays.
    #[test]
    fn without_full_keys_the_nearest_to_full_go_early() {
        let (l, clock) = limiter(16); // room for 16 (quota: 10/s, burst 2)
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
