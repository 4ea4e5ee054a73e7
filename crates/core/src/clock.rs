//! Time sources for hot paths.
//!
//! A rate limiter or a breaker reads the time on every call, so the cost of
//! that read is part of the cost of every request. seawall's hot paths read a
//! [`Clock`]: a count of nanoseconds since an origin the clock picks itself,
//! as a plain `u64`. A `u64` of nanoseconds lasts 584 years from the origin,
//! fits one atomic, and subtracts without `Duration`'s checks.
//!
//! - [`MonotonicClock`] is the production clock. Where the CPU has an
//!   invariant time-stamp counter it reads that counter directly (through the
//!   [`quanta`] crate), which costs a few nanoseconds; elsewhere it falls back
//!   to the operating system's monotonic clock, as [`std::time::Instant`]
//!   does. `docs/benchmarks.md` has the figures that made this choice.
//! - [`ManualClock`] is for tests: time moves only when the test calls
//!   [`ManualClock::advance`], and every clone shares one time.
//!
//! Waiting is not done with a `Clock`: code that sleeps uses `tokio::time`,
//! so `tokio::time::pause` drives it in tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic source of time, in nanoseconds since the clock's own origin.
///
/// Two readings of one clock subtract to the nanoseconds between them. The
/// origin means nothing on its own, and readings of two different clocks
/// cannot be compared.
///
/// # Monotonicity
///
/// Readings on one thread never decrease. Across threads, a reading taken
/// after another reading was published (say through an atomic) may still be
/// smaller by the skew of the hardware counters between cores, a few
/// nanoseconds where the OS found the counters synchronized. Code that
/// compares readings from different threads therefore uses saturating
/// arithmetic, never `a - b` on the assumption that `a >= b`.
///
/// # Examples
///
/// ```
/// use seawall_core::{Clock, MonotonicClock};
///
/// let clock = MonotonicClock::new();
/// let start = clock.now_nanos();
/// let later = clock.now_nanos();
/// assert!(later >= start);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Returns the nanoseconds elapsed since this clock's origin.
    fn now_nanos(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn now_nanos(&self) -> u64 {
        (**self).now_nanos()
    }
}

/// The production clock: the CPU's invariant time-stamp counter when it has
/// one, the OS monotonic clock otherwise.
///
/// The origin is the moment the clock was created, so readings start near
/// zero. Cloning is cheap and keeps the origin: clones read the same time
/// line.
///
/// The choice between the counter and the OS clock is made once, by
/// [`quanta`], from the CPU's feature flags: the counter is used only when it
/// ticks at a constant rate through power-state changes. On such CPUs a
/// reading costs a few nanoseconds, about a third to a half of
/// [`std::time::Instant::now`] (see `docs/benchmarks.md`). The first clock
/// created in a process calibrates the counter against the OS clock, which
/// takes a few milliseconds once.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seawall_core::{Clock, MonotonicClock};
///
/// let clock = MonotonicClock::new();
/// let start = clock.now_nanos();
/// let work = std::time::Instant::now();
/// while work.elapsed() < Duration::from_millis(2) {}
/// let elapsed = clock.now_nanos() - start;
/// assert!(elapsed >= 1_900_000, "{elapsed} ns");
/// ```
#[derive(Debug, Clone)]
pub struct MonotonicClock {
    source: quanta::Clock,
    /// The raw counter value at creation.
    origin: u64,
}

impl MonotonicClock {
    /// Creates a clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        let source = quanta::Clock::new();
        let origin = source.raw();
        Self { source, origin }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        // `delta_as_nanos` returns 0, not a wrapped value, if a core's counter
        // reads behind the origin taken on another core.
        self.source.delta_as_nanos(self.origin, self.source.raw())
    }
}

/// A clock that moves only when told to, for tests.
///
/// It starts at zero. Clones share one time, so a test keeps a clone and
/// advances the clock that the code under test reads.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seawall_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let seen_by_limiter = clock.clone();
/// assert_eq!(seen_by_limiter.now_nanos(), 0);
///
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(seen_by_limiter.now_nanos(), 250_000_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// Creates a clock at time zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the time forward by `by`, for this clock and all its clones.
    ///
    /// The time saturates at `u64::MAX` nanoseconds (584 years) rather than
    /// wrapping.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: the time is a lone value and orders no other memory. A
        // test that hands work to another thread orders it by that hand-off.
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                Some(now.saturating_add(by))
            });
    }

    /// Sets the time to `nanos` since the origin.
    ///
    /// Meant for tests that replay recorded timestamps. Setting the time
    /// backwards breaks the [`Clock`] contract; code under test may then
    /// refuse or admit too much, and no seawall code panics on it.
    pub fn set_nanos(&self, nanos: u64) {
        self.nanos.store(nanos, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn manual_clock_is_shared_by_clones() {
        let clock = ManualClock::new();
        let other = clock.clone();
        clock.advance(Duration::from_nanos(5));
        other.advance(Duration::from_secs(1));
        assert_eq!(clock.now_nanos(), 1_000_000_005);
        assert_eq!(other.now_nanos(), 1_000_000_005);
    }

    #[test]
    fn manual_clock_saturates_instead_of_wrapping() {
        let clock = ManualClock::new();
        clock.set_nanos(u64::MAX - 10);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now_nanos(), u64::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now_nanos(), u64::MAX);
    }

    #[test]
    fn arc_of_clock_is_a_clock() {
        let clock = Arc::new(ManualClock::new());
        clock.advance(Duration::from_millis(1));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        assert_eq!(dyn_clock.now_nanos(), 1_000_000);
    }

    #[test]
    fn monotonic_clock_starts_near_zero_and_never_decreases() {
        let clock = MonotonicClock::new();
        let mut last = clock.now_nanos();
        assert!(last < 1_000_000_000, "origin is creation: {last} ns");
        for _ in 0..100_000 {
            let now = clock.now_nanos();
            assert!(now >= last, "went back from {last} to {now}");
            last = now;
        }
    }

    /// Busy-waits `d` of `Instant` time (tests of a real clock need real time
    /// to pass; spinning keeps the bounds below exact).
    fn spin_for(d: Duration) {
        let start = Instant::now();
        while start.elapsed() < d {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn monotonic_clock_agrees_with_instant() {
        let clock = MonotonicClock::new();
        let outer_start = Instant::now();
        let start = clock.now_nanos();
        let inner_start = Instant::now();
        spin_for(Duration::from_millis(20));
        let inner = inner_start.elapsed();
        let ours = Duration::from_nanos(clock.now_nanos() - start);
        let outer = outer_start.elapsed();
        // Our interval lies between the two `Instant` intervals around it, up
        // to the counter's calibration error (well under 1%).
        assert!(
            ours >= inner.mul_f64(0.99),
            "ours {ours:?}, at least {inner:?}"
        );
        assert!(
            ours <= outer.mul_f64(1.01),
            "ours {ours:?}, at most {outer:?}"
        );
    }

    #[test]
    fn clones_share_the_origin() {
        let clock = MonotonicClock::new();
        spin_for(Duration::from_millis(5));
        let clone = clock.clone();
        assert!(clone.now_nanos() >= 4_950_000);
    }

    /// Two threads take turns: each reads the clock and publishes the reading,
    /// and the other checks that its next reading is not behind the published
    /// one by more than cross-core skew. A counter that differs between cores
    /// (unsynchronized TSCs) fails this.
    #[test]
    fn readings_agree_across_threads() {
        const TURNS: u64 = 2_000;
        const MAX_SKEW_NANOS: u64 = 1_000;
        let clock = MonotonicClock::new();
        let turn = Arc::new(AtomicU64::new(0));
        let stamp = Arc::new(AtomicU64::new(0));
        let player = |me: u64| {
            let (clock, turn, stamp) = (clock.clone(), turn.clone(), stamp.clone());
            std::thread::spawn(move || {
                let mut worst_lag = 0;
                for _ in 0..TURNS {
                    while turn.load(Ordering::Acquire) % 2 != me {
                        std::thread::yield_now();
                    }
                    let published = stamp.load(Ordering::Relaxed);
                    let now = clock.now_nanos();
                    worst_lag = worst_lag.max(published.saturating_sub(now));
                    stamp.store(now, Ordering::Relaxed);
                    turn.fetch_add(1, Ordering::Release);
                }
                worst_lag
            })
        };
        let (a, b) = (player(0), player(1));
        let worst = a.join().unwrap().max(b.join().unwrap());
        assert!(
            worst <= MAX_SKEW_NANOS,
            "a reading was {worst} ns behind one published earlier by another thread"
        );
    }
}
