//! Time sources for hot paths: the [`Clock`] trait and its clocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

/// A monotonic source of time, in nanoseconds since the clock's origin.
///
/// A rate limiter or a breaker reads the time on every call, so the cost of
/// that read is part of the cost of every request. seawall's hot paths read
/// a `Clock`: nanoseconds as a plain `u64`, which lasts 584 years from the
/// origin, fits one atomic, and subtracts without `Duration`'s checks.
///
/// - [`MonotonicClock`] is the production clock: the CPU's time-stamp
///   counter where that is safe, the OS clock elsewhere.
/// - [`ManualClock`] is for tests: time moves only when the test says.
/// - `TokioClock` (feature `tokio`) reads tokio's time, so paused-time tests
///   move it.
///
/// # One clock for deciding and waiting
///
/// Code that decides with a clock and then waits (a limiter's `acquire`, a
/// breaker's open period) computes the wait on that clock but sleeps with
/// `tokio::time`. The two must move together: `MonotonicClock` in
/// production, `TokioClock` on paused time. A `ManualClock` suits code that
/// only decides; a wait on it lasts until the test advances it.
///
/// # Monotonicity
///
/// Readings on one thread never decrease. Across threads, a reading taken
/// after another reading was published (say through an atomic) may still be
/// smaller by the skew between cores' counters, nanoseconds where the kernel
/// keeps them synchronized. Readings start near zero, and a test clock may
/// stand at `u64::MAX`. So code that compares readings uses saturating
/// arithmetic, never `a - b` on the assumption that `a >= b`, nor `a + b`
/// on the assumption that it fits.
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

/// The production clock: the CPU's time-stamp counter where that is safe,
/// the OS monotonic clock otherwise.
///
/// All `MonotonicClock`s in a process share one origin, the moment the
/// first was created, so readings from different clocks (a limiter's and a
/// breaker's) compare. Creating and cloning one is cheap after the first.
///
/// The counter is used when two checks agree. The CPU must report a counter
/// that ticks at a constant rate through power-state changes (checked by the
/// [`quanta`] crate, which also calibrates it against the OS clock, a few
/// milliseconds once per process). And on Linux, the kernel must itself use
/// the counter as its clocksource (`tsc`), which it does only after finding
/// the cores' counters synchronized. Otherwise the clock reads
/// [`std::time::Instant`]. On the counter a reading costs about a third of
/// `Instant::now()` (9.6 ns against 23.6 ns on the machine in
/// `docs/benchmarks.md`).
///
/// The counter is not slewed by NTP as the OS clock is, so over hours the
/// two may drift apart by the crystal's error (parts per million): nothing
/// that matters for rate windows or timeouts.
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
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    /// The time-stamp counter, read through quanta, with the raw reading at
    /// the process-wide origin.
    Counter { clock: quanta::Clock, origin: u64 },
    /// The OS monotonic clock.
    Os { origin: Instant },
}

impl MonotonicClock {
    /// Returns a clock on the process-wide origin.
    #[must_use]
    pub fn new() -> Self {
        static SOURCE: OnceLock<Source> = OnceLock::new();
        let source = SOURCE.get_or_init(|| {
            if kernel_distrusts_counter() {
                Source::Os {
                    origin: Instant::now(),
                }
            } else {
                let clock = quanta::Clock::new();
                let origin = clock.raw();
                Source::Counter { clock, origin }
            }
        });
        Self {
            source: source.clone(),
        }
    }
}

/// On Linux, `true` when the kernel's clocksource is known and is not the
/// time-stamp counter; elsewhere `false` (quanta's CPU check stands alone).
fn kernel_distrusts_counter() -> bool {
    const PATH: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
    cfg!(target_os = "linux") && distrusts(std::fs::read_to_string(PATH).ok().as_deref())
}

/// The decision behind [`kernel_distrusts_counter`], given the file's text.
fn distrusts(kernel_clocksource: Option<&str>) -> bool {
    kernel_clocksource.is_some_and(|source| source.trim() != "tsc")
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        match &self.source {
            // `delta_as_nanos` returns 0, not a wrapped value, if this core's
            // counter reads behind the origin taken on another core.
            Source::Counter { clock, origin } => clock.delta_as_nanos(*origin, clock.raw()),
            Source::Os { origin } => u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

/// A clock for hot paths that do not need nanoseconds: a read is one load
/// of a time that a background thread refreshes every millisecond.
///
/// Its readings are [`MonotonicClock`]'s (the same origin, so the two
/// compare), taken by the upkeep thread: a reading is behind the true time
/// by up to the resolution, one millisecond, plus however late the thread
/// is scheduled (a loaded machine may delay it more). Readings never
/// decrease. A read costs a fraction of a nanosecond where
/// `MonotonicClock` costs ten (see `docs/benchmarks.md`), which matters
/// when every request reads the clock: a rate limiter or a breaker's slow
/// calls can then judge at millisecond precision for nearly nothing. A rate
/// limiter on this clock may admit, over a span, the requests its rate
/// allows in as long as the clock lagged at the span's start: about a
/// millisecond's worth while the upkeep thread keeps time, more when it
/// runs late.
///
/// One upkeep thread serves every `CoarseClock` in the process; it sleeps a
/// millisecond between refreshes (as the OS rounds sleeps: on Linux about a
/// millisecond, on Windows up to about 16), waking while any clock exists,
/// and ends when the last one is dropped (a clock held by a leaked limiter
/// or breaker keeps it running for good). If the thread cannot be started,
/// the clock reads [`MonotonicClock`] instead. A child process made by
/// `fork` has no upkeep thread: its clocks stand still.
///
/// # Examples
///
/// ```
/// use seawall_core::{Clock, CoarseClock, MonotonicClock};
///
/// let clock = CoarseClock::new();
/// let first = clock.now_nanos();
/// assert!(clock.now_nanos() >= first, "never decreases");
/// // On the production clock's origin, and behind it (by up to about a
/// // millisecond, more when the upkeep thread runs late).
/// let exact = MonotonicClock::new().now_nanos();
/// assert!(first <= exact + 1_000);
/// ```
#[derive(Debug, Clone)]
pub struct CoarseClock {
    shared: Arc<Coarse>,
}

/// The time the upkeep thread keeps, on a cache line of its own: it is
/// written 1,000 times a second and read by every request.
#[derive(Debug)]
#[repr(align(128))]
struct Coarse {
    nanos: AtomicU64,
    /// `None` while the upkeep thread runs; the exact clock when it could
    /// not be started.
    exact: Option<MonotonicClock>,
}

impl CoarseClock {
    /// The time between two refreshes.
    pub const RESOLUTION: Duration = Duration::from_millis(1);

    /// A clock on the process's upkeep thread, starting the thread if no
    /// other `CoarseClock` is alive.
    #[must_use]
    pub fn new() -> Self {
        static CURRENT: Mutex<Weak<Coarse>> = Mutex::new(Weak::new());
        // A poisoned lock holds a valid `Weak`: carry on with it.
        let mut current = CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = current.upgrade() {
            return Self { shared };
        }
        let exact = MonotonicClock::new();
        let shared = Arc::new(Coarse {
            nanos: AtomicU64::new(exact.now_nanos()),
            exact: None,
        });
        let upkept = Arc::downgrade(&shared);
        let clock = exact.clone();
        let started = std::thread::Builder::new()
            .name("seawall-clock".into())
            .spawn(move || upkeep(&upkept, &clock));
        let shared = match started {
            Ok(_) => shared,
            Err(_) => Arc::new(Coarse {
                nanos: AtomicU64::new(0),
                exact: Some(exact),
            }),
        };
        *current = Arc::downgrade(&shared);
        Self { shared }
    }
}

/// The upkeep thread: refreshes the time every [`CoarseClock::RESOLUTION`]
/// while a clock is alive.
fn upkeep(shared: &Weak<Coarse>, clock: &MonotonicClock) {
    while let Some(shared) = shared.upgrade() {
        // Relaxed: the time is a lone value; `fetch_max` keeps it from going
        // back if this core's counter reads behind the last one.
        shared.nanos.fetch_max(clock.now_nanos(), Ordering::Relaxed);
        drop(shared);
        std::thread::sleep(CoarseClock::RESOLUTION);
    }
}

impl Default for CoarseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        match &self.shared.exact {
            None => self.shared.nanos.load(Ordering::Relaxed),
            Some(exact) => exact.now_nanos(),
        }
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

/// A clock that reads tokio's time, so `tokio::time::pause` and
/// `tokio::time::advance` move it.
///
/// Use it where code both reads a [`Clock`] and sleeps with `tokio::time`
/// (a rate limiter's `acquire`), and its tests run on paused time: the
/// sleeps then advance exactly the time the clock reads. In production it
/// costs what `Instant::now()` costs (see `docs/benchmarks.md`), so
/// [`MonotonicClock`] stays the default.
///
/// The origin is the moment the clock was created. Clones share it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seawall_core::{Clock, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let clock = TokioClock::new();
/// tokio::time::sleep(Duration::from_secs(3)).await; // instant: time is paused
/// assert_eq!(clock.now_nanos(), 3_000_000_000);
/// # }
/// ```
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

#[cfg(feature = "tokio")]
impl TokioClock {
    /// Creates a clock whose origin is tokio's now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

#[cfg(feature = "tokio")]
impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "tokio")]
impl Clock for TokioClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
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

    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = TokioClock::new();
        let copy = clock;
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now_nanos(), 1_500_000_000);
        assert_eq!(copy.now_nanos(), 1_500_000_000);
    }

    #[test]
    fn arc_of_clock_is_a_clock() {
        let clock = Arc::new(ManualClock::new());
        clock.advance(Duration::from_millis(1));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        assert_eq!(dyn_clock.now_nanos(), 1_000_000);
    }

    #[test]
    fn monotonic_clock_never_decreases() {
        let clock = MonotonicClock::new();
        let mut last = clock.now_nanos();
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
    fn clocks_share_the_process_origin() {
        let first = MonotonicClock::new();
        spin_for(Duration::from_millis(5));
        let (second, clone) = (MonotonicClock::new(), first.clone());
        let (a, b, c) = (first.now_nanos(), second.now_nanos(), clone.now_nanos());
        assert!(a >= 4_950_000, "{a}");
        // Read in order a, b, c: the later clocks are not behind the first.
        assert!(b >= a && c >= b, "{a} {b} {c}");
    }

    #[test]
    fn coarse_clock_follows_the_exact_clock_from_behind() {
        let coarse = CoarseClock::new();
        let exact = MonotonicClock::new();
        let mut last = coarse.now_nanos();
        let mut changes = 0;
        let spin = Instant::now();
        while changes < 5 && spin.elapsed() < Duration::from_secs(10) {
            let now = coarse.now_nanos();
            assert!(now >= last, "went back from {last} to {now}");
            // Up to cross-core skew (see `readings_agree_across_threads`).
            assert!(now <= exact.now_nanos() + 1_000, "ahead of the exact clock");
            changes += usize::from(now > last);
            last = now;
        }
        assert_eq!(changes, 5, "the upkeep thread did not move it");
    }

    #[test]
    fn coarse_clocks_share_one_time() {
        let (a, b) = (CoarseClock::new(), CoarseClock::new());
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        assert!(Arc::ptr_eq(&a.shared, &a.clone().shared));
    }

    /// Waits for every `CoarseClock` of this test binary to go: the other
    /// tests here hold theirs for milliseconds.
    #[test]
    fn the_upkeep_thread_ends_with_the_last_clock() {
        let clock = CoarseClock::new();
        let weak = Arc::downgrade(&clock.shared);
        drop(clock);
        // Other tests may hold clocks too; wait for all of them to go.
        let spin = Instant::now();
        while weak.strong_count() > 0 && spin.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(weak.strong_count(), 0, "the thread kept the time alive");
        // A new clock starts a new thread, and its time moves.
        let fresh = CoarseClock::new();
        let start = fresh.now_nanos();
        let spin = Instant::now();
        while fresh.now_nanos() == start && spin.elapsed() < Duration::from_secs(10) {}
        assert!(fresh.now_nanos() > start);
    }

    #[test]
    fn counter_is_trusted_only_where_the_kernel_uses_it() {
        assert!(!distrusts(Some("tsc\n")));
        assert!(distrusts(Some("hpet\n")));
        assert!(distrusts(Some("kvm-clock\n")));
        assert!(distrusts(Some("xen\n")));
        // Unknown (not Linux, or sysfs not mounted): quanta's CPU check decides.
        assert!(!distrusts(None));
    }

    /// Two threads take turns: each reads the clock and publishes the reading,
    /// and the other checks that its next reading is not behind the published
    /// one by more than cross-core skew. The threads are not pinned: this
    /// catches counters that disagree between the cores the scheduler picks
    /// (on a 2-core CI machine, usually both), not every pair of cores.
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
