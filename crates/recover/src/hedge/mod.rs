//! Hedged requests: [`Hedge`], and (feature `tower`)
//! [`HedgeLayer`](crate::tower::HedgeLayer).

pub(crate) mod future;
pub(crate) mod layer;
pub(crate) mod service;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use seawall_core::{ConfigError, duration};
use tokio::time::Instant;

use crate::RetryBudget;

/// When a hedge is sent: after a fixed delay, or once the first attempt is
/// slower than a percentile of recent first attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum HedgeDelay {
    /// A fixed delay.
    Fixed(Duration),
    /// The given percentile (0.95: slower than 95% of first attempts) of
    /// the first attempts' latencies over the last full `window`; no hedge
    /// is sent until a window has seen `min_samples` of them.
    Percentile {
        /// From 0 to 1, exclusive.
        percentile: f64,
        /// First attempts a window needs before its percentile is used.
        min_samples: u32,
        /// How long latencies are collected before they are used.
        window: Duration,
    },
}

/// Hedging settings: when to send a second attempt, and a budget that caps
/// how many are sent ("the tail at scale": a few extra requests cut the
/// slowest answers, as long as they stay few).
///
/// ```
/// use std::time::Duration;
/// use seawall_recover::{Hedge, HedgeDelay, RetryBudget};
///
/// let hedge = Hedge::builder()
///     .delay(HedgeDelay::Percentile {
///         percentile: 0.95,
///         min_samples: 100,
///         window: Duration::from_secs(10),
///     })
///     .budget(RetryBudget::new(0.05, 1, Duration::from_secs(10))?)
///     .build()?;
/// # let _ = hedge;
/// let error = Hedge::builder()
///     .delay(HedgeDelay::Percentile { percentile: 1.5, min_samples: 10, window: Duration::from_secs(1) })
///     .build()
///     .unwrap_err();
/// assert_eq!(error.field(), "percentile");
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Hedge {
    shared: Arc<Shared>,
}

struct Shared {
    delay: HedgeDelay,
    budget: RetryBudget,
    /// With [`HedgeDelay::Percentile`].
    latencies: Option<Latencies>,
}

impl Hedge {
    /// A builder: a fixed delay of 100 ms and a budget of 10% of requests
    /// plus 1 a second over 10 s, until set otherwise.
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder {
            delay: HedgeDelay::Fixed(Duration::from_millis(100)),
            budget: None,
        }
    }

    /// The delay after which a hedge is sent now, if one may be.
    pub(crate) fn delay(&self) -> Option<Duration> {
        match self.shared.delay {
            HedgeDelay::Fixed(delay) => Some(delay),
            HedgeDelay::Percentile { .. } => self.shared.latencies.as_ref()?.delay(),
        }
    }

    /// Whether first attempts are timed.
    pub(crate) fn times_attempts(&self) -> bool {
        self.shared.latencies.is_some()
    }

    /// Counts a first attempt's latency.
    pub(crate) fn record(&self, latency: Duration) {
        if let Some(latencies) = &self.shared.latencies {
            latencies.record(latency);
        }
    }

    pub(crate) fn budget(&self) -> &RetryBudget {
        &self.shared.budget
    }
}

/// Builds a [`Hedge`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone)]
#[must_use]
pub struct HedgeBuilder {
    delay: HedgeDelay,
    budget: Option<RetryBudget>,
}

impl HedgeBuilder {
    /// When the hedge is sent.
    pub fn delay(mut self, delay: HedgeDelay) -> Self {
        self.delay = delay;
        self
    }

    /// The budget hedges are taken from (clones share one).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: a percentile outside `(0, 1)`, or
    /// a window shorter than 10 ms.
    pub fn build(self) -> Result<Hedge, ConfigError> {
        let latencies = match self.delay {
            HedgeDelay::Fixed(_) => None,
            HedgeDelay::Percentile {
                percentile,
                min_samples,
                window,
            } => {
                if !(percentile > 0.0 && percentile < 1.0) {
                    return Err(ConfigError::new(
                        "percentile",
                        "must be between 0 and 1, exclusive",
                        percentile,
                    ));
                }
                if window < Duration::from_millis(10) {
                    return Err(ConfigError::new(
                        "window",
                        "must be at least 10ms",
                        duration::format(window),
                    ));
                }
                Some(Latencies::new(percentile, min_samples, window))
            }
        };
        let budget = match self.budget {
            Some(budget) => budget,
            None => RetryBudget::new(0.1, 1, Duration::from_secs(10))?,
        };
        Ok(Hedge {
            shared: Arc::new(Shared {
                delay: self.delay,
                budget,
                latencies,
            }),
        })
    }
}

impl fmt::Debug for Hedge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("delay", &self.shared.delay)
            .field("budget", &self.shared.budget)
            .finish_non_exhaustive()
    }
}

/// Buckets per doubling of latency: an answer is off by at most an eighth.
const SUB_BUCKETS: u32 = 8;
/// Latencies are counted in microseconds, up to 2^32 µs (71 minutes).
const BUCKETS: usize = 30 * SUB_BUCKETS as usize;
/// No delay known yet.
const NONE: u64 = u64::MAX;

/// Two latency histograms, one filling while the other (the last full
/// window) gives the percentile. Counting is one atomic add; the swap at
/// the end of a window is done by whichever call sees it first. Counts
/// made during a swap may land in the histogram being emptied: the
/// percentile is approximate, as the buckets are.
struct Latencies {
    histograms: [Box<[AtomicU32]>; 2],
    /// Which histogram is filling.
    filling: AtomicUsize,
    /// When the filling one started (tokio time, nanoseconds from
    /// `origin`).
    started: AtomicU64,
    origin: Instant,
    /// The delay from the last full window, in nanoseconds, or [`NONE`].
    delay: AtomicU64,
    percentile: f64,
    min_samples: u32,
    window: Duration,
}

impl Latencies {
    fn new(percentile: f64, min_samples: u32, window: Duration) -> Self {
        let histogram = || (0..BUCKETS).map(|_| AtomicU32::new(0)).collect();
        Self {
            histograms: [histogram(), histogram()],
            filling: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            origin: Instant::now(),
            delay: AtomicU64::new(NONE),
            percentile,
            min_samples,
            window,
        }
    }

    fn delay(&self) -> Option<Duration> {
        self.roll();
        // Relaxed: a delay one window old is as good.
        match self.delay.load(Ordering::Relaxed) {
            NONE => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    fn record(&self, latency: Duration) {
        self.roll();
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let histogram = &self.histograms[self.filling.load(Ordering::Relaxed) & 1];
        histogram[bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// Ends the window if it is over: the filling histogram's percentile
    /// becomes the delay, and the other one is emptied and starts filling.
    /// After a silence of two windows or more, what the filling histogram
    /// holds is that old too: both are emptied, and no delay is known until
    /// a window has enough samples again.
    fn roll(&self) {
        let now = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let started = self.started.load(Ordering::Relaxed);
        let window = u64::try_from(self.window.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(started) < window {
            return;
        }
        // One caller wins the swap.
        if self
            .started
            .compare_exchange(started, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let full = self.filling.load(Ordering::Relaxed) & 1;
        let next = full ^ 1;
        for count in &*self.histograms[next] {
            count.store(0, Ordering::Relaxed);
        }
        if now.saturating_sub(started) >= window.saturating_mul(2) {
            for count in &*self.histograms[full] {
                count.store(0, Ordering::Relaxed);
            }
        }
        self.filling.store(next, Ordering::Relaxed);
        let delay = percentile(&self.histograms[full], self.percentile, self.min_samples);
        self.delay.store(
            delay.map_or(NONE, |d| u64::try_from(d.as_nanos()).unwrap_or(NONE - 1)),
            Ordering::Relaxed,
        );
    }
}

/// The bucket of a latency in microseconds: exact below 8 µs, then eight
/// buckets per doubling.
fn bucket(micros: u64) -> usize {
    let micros = micros.min(u64::from(u32::MAX));
    if micros < u64::from(SUB_BUCKETS) {
        return usize::try_from(micros).unwrap_or_default();
    }
    let power = 63 - micros.leading_zeros(); // >= 3
    let sub = (micros >> (power - 3)) & u64::from(SUB_BUCKETS - 1);
    let index = u64::from(power - 2) * u64::from(SUB_BUCKETS) + sub;
    usize::try_from(index)
        .unwrap_or(BUCKETS - 1)
        .min(BUCKETS - 1)
}

/// The largest latency in `index`'s bucket, in microseconds.
fn bucket_top(index: usize) -> u64 {
    let index = u64::try_from(index).unwrap_or(u64::MAX);
    let sub_buckets = u64::from(SUB_BUCKETS);
    if index < sub_buckets {
        return index;
    }
    let power = index / sub_buckets + 2;
    let sub = index % sub_buckets;
    // The bucket holds [(8 + sub) << (power - 3), (9 + sub) << (power - 3)).
    ((sub_buckets + sub + 1) << (power - 3)) - 1
}

/// The `percentile` of a histogram, if it has `min_samples`.
fn percentile(histogram: &[AtomicU32], percentile: f64, min_samples: u32) -> Option<Duration> {
    let counts: Vec<u64> = histogram
        .iter()
        .map(|count| u64::from(count.load(Ordering::Relaxed)))
        .collect();
    let total: u64 = counts.iter().sum();
    if total == 0 || total < u64::from(min_samples) {
        return None;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((total as f64) * percentile).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (index, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(Duration::from_micros(bucket_top(index)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_tops_in_order() {
        let mut last = 0;
        for index in 0..BUCKETS {
            let top = bucket_top(index);
            assert_eq!(bucket(top), index, "top {top} of bucket {index}");
            if index > 0 {
                assert!(top > last);
                assert_eq!(
                    bucket(last + 1),
                    index,
                    "bucket {index} starts after {last}"
                );
            }
            last = top;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_read_within_an_eighth() {
        let histogram: Vec<AtomicU32> = (0..BUCKETS).map(|_| AtomicU32::new(0)).collect();
        for millis in 1..=100_u64 {
            histogram[bucket(millis * 1000)].fetch_add(1, Ordering::Relaxed);
        }
        let p95 = percentile(&histogram, 0.95, 10).unwrap();
        assert!(
            p95 >= Duration::from_millis(95) && p95 <= Duration::from_millis(95) * 9 / 8,
            "{p95:?}"
        );
        assert_eq!(percentile(&histogram, 0.95, 101), None);
    }
}
