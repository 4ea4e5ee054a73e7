//! [`RetryBudget`]: retries may add only a share of the traffic.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use seawall_core::{Clock, ConfigError, MonotonicClock};

/// How many slots the window is cut into: it moves on by a tenth at a time.
const SLOT_COUNT: usize = 10;
/// [`SLOT_COUNT`] for time arithmetic.
const SLOTS: u64 = SLOT_COUNT as u64;

/// A cap on retries: within a sliding window, retries may add at most
/// `ratio` of the requests, plus a floor of `min_per_second` retries a
/// second (so a service with little traffic can still retry). During an
/// outage, when every request fails, a budget of 0.2 lets the traffic grow
/// by at most a fifth instead of multiplying by the attempt limit: retries
/// cannot turn a failing dependency into a dead one.
///
/// One budget shared by a `RetryLayer` and a `HedgeLayer` inside it counts
/// each retry as a request of the hedge layer too: give each layer its own
/// budget for exact shares.
///
/// Every request deposits (its first attempt); every retry withdraws, and
/// is refused once the window's retries reach
/// `ratio × requests + min_per_second × window`, rounded down. Clones share one budget,
/// so a budget given to several layers caps them together.
///
/// ```
/// use std::time::Duration;
/// use seawall_recover::RetryBudget;
///
/// let budget = RetryBudget::new(0.2, 0, Duration::from_secs(10))?;
/// for _ in 0..10 {
///     budget.deposit();
/// }
/// assert!(budget.try_withdraw());
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw(), "2 retries for 10 requests at 20%");
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    shared: Arc<Budget>,
}

struct Budget {
    slots: Mutex<[Slot; SLOT_COUNT]>,
    slot_nanos: u64,
    /// `ratio` in millionths.
    ratio_millionths: u64,
    /// Retries the window allows with no requests at all, in millionths.
    floor_millionths: u64,
    clock: Arc<dyn Clock>,
    ratio: f64,
    min_per_second: u32,
    window: Duration,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    /// Which slot of time this is (clock nanoseconds / slot width).
    epoch: u64,
    requests: u64,
    retries: u64,
}

impl RetryBudget {
    /// A budget of `ratio` retries per request (0.2: at most one retry for
    /// five requests) plus `min_per_second`, over a sliding `window`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: `ratio` not a number in
    /// `0.0..=1000.0`, or a `window` shorter than 10 ms.
    pub fn new(ratio: f64, min_per_second: u32, window: Duration) -> Result<Self, ConfigError> {
        Self::with_clock(ratio, min_per_second, window, MonotonicClock::new())
    }

    /// [`new`](Self::new), reading time from `clock` (a `ManualClock` in
    /// tests).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_clock(
        ratio: f64,
        min_per_second: u32,
        window: Duration,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        if !(0.0..=1000.0).contains(&ratio) {
            return Err(ConfigError::new(
                "ratio",
                "must be a number from 0 to 1000",
                ratio,
            ));
        }
        if window < Duration::from_millis(10) {
            return Err(ConfigError::new(
                "window",
                "must be at least 10ms",
                seawall_core::duration::format(window),
            ));
        }
        let window_nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        // Whole millionths: the cast keeps what a budget can mean.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ratio_millionths = (ratio * 1e6).round() as u64;
        // min_per_second × window, in millionths of a retry.
        let floor_millionths =
            u64::try_from(u128::from(min_per_second) * u128::from(window_nanos) / 1_000)
                .unwrap_or(u64::MAX);
        Ok(Self {
            shared: Arc::new(Budget {
                slots: Mutex::new([Slot::default(); SLOT_COUNT]),
                slot_nanos: window_nanos / SLOTS,
                ratio_millionths,
                floor_millionths,
                clock: Arc::new(clock),
                ratio,
                min_per_second,
                window,
            }),
        })
    }

    /// Counts a request (its first attempt).
    pub fn deposit(&self) {
        let budget = &*self.shared;
        let epoch = budget.epoch();
        let mut slots = budget.slots.lock();
        slot(&mut slots, epoch).requests += 1;
    }

    /// Takes a retry from the budget, if it has one left.
    #[must_use]
    pub fn try_withdraw(&self) -> bool {
        let budget = &*self.shared;
        let epoch = budget.epoch();
        let mut slots = budget.slots.lock();
        let (requests, retries) = slots
            .iter()
            .filter(|slot| slot.epoch.saturating_add(SLOTS) > epoch && slot.epoch <= epoch)
            .fold((0_u64, 0_u64), |(requests, retries), slot| {
                (requests + slot.requests, retries + slot.retries)
            });
        let allowed = u64::try_from(
            (u128::from(requests) * u128::from(budget.ratio_millionths)
                + u128::from(budget.floor_millionths))
                / 1_000_000,
        )
        .unwrap_or(u64::MAX);
        if retries >= allowed {
            return false;
        }
        slot(&mut slots, epoch).retries += 1;
        true
    }

    /// Gives back a retry taken by [`try_withdraw`](Self::try_withdraw)
    /// and never made (a hedge the service was not ready to send): one
    /// retry fewer counted in the current span, if it counts any.
    pub(crate) fn refund(&self) {
        let budget = &*self.shared;
        let epoch = budget.epoch();
        let mut slots = budget.slots.lock();
        let current = slot(&mut slots, epoch);
        current.retries = current.retries.saturating_sub(1);
    }

    /// The retries per request it allows.
    #[must_use]
    pub fn ratio(&self) -> f64 {
        self.shared.ratio
    }

    /// The retries a second it allows with no requests.
    #[must_use]
    pub fn min_per_second(&self) -> u32 {
        self.shared.min_per_second
    }

    /// The window.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.shared.window
    }
}

impl Budget {
    fn epoch(&self) -> u64 {
        self.clock.now_nanos() / self.slot_nanos.max(1)
    }
}

/// The slot for `epoch`, emptied first if it held an older one.
fn slot(slots: &mut [Slot; SLOT_COUNT], epoch: u64) -> &mut Slot {
    let index = usize::try_from(epoch % SLOTS).unwrap_or_default();
    let slot = &mut slots[index];
    if slot.epoch != epoch {
        *slot = Slot {
            epoch,
            requests: 0,
            retries: 0,
        };
    }
    slot
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ratio", &self.shared.ratio)
            .field("min_per_second", &self.shared.min_per_second)
            .field("window", &self.shared.window)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seawall_core::ManualClock;

    #[test]
    fn the_floor_allows_retries_without_requests_and_the_window_moves_on() {
        let clock = ManualClock::new();
        let budget =
            RetryBudget::with_clock(0.0, 1, Duration::from_secs(10), clock.clone()).unwrap();
        let granted = (0..20).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 10, "1 a second over 10 s");
        clock.advance(Duration::from_secs(5));
        assert!(!budget.try_withdraw(), "all ten are still in the window");
        clock.advance(Duration::from_secs(5));
        let granted = (0..20).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 10, "the first ten left the window");
    }

    #[test]
    fn deposits_leave_the_window_too() {
        let clock = ManualClock::new();
        let budget =
            RetryBudget::with_clock(0.5, 0, Duration::from_secs(1), clock.clone()).unwrap();
        for _ in 0..4 {
            budget.deposit();
        }
        assert!(budget.try_withdraw(), "four requests at a half allow two");
        clock.advance(Duration::from_secs(1));
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn a_short_window_keeps_the_floor_per_second() {
        // 10 a second over 100 ms: one retry, not ten.
        let budget =
            RetryBudget::with_clock(0.0, 10, Duration::from_millis(100), ManualClock::new())
                .unwrap();
        let granted = (0..20).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 1);
    }

    #[test]
    fn bad_settings_name_their_field() {
        let error = RetryBudget::new(-0.1, 0, Duration::from_secs(1)).unwrap_err();
        assert_eq!(error.field(), "ratio");
        let error = RetryBudget::new(f64::NAN, 0, Duration::from_secs(1)).unwrap_err();
        assert_eq!(error.field(), "ratio");
        let error = RetryBudget::new(0.2, 0, Duration::from_millis(1)).unwrap_err();
        assert_eq!(error.to_string(), "window: must be at least 10ms, got 1ms");
    }
}
