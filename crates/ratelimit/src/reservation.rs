//! [`Reservation`]: capacity taken now, to be used after a delay.

use std::fmt;
use std::time::Duration;

use seawall_core::Clock;

use crate::limiter::RateLimiter;

/// Capacity taken from a [`RateLimiter`] now, to act on after
/// [`delay`](Self::delay).
///
/// Like Go's `rate.Reservation`: reserving always succeeds (for up to a
/// burst), putting the limiter into debt when needed, and dropping the
/// reservation keeps the capacity taken. [`cancel`](Self::cancel) gives it
/// back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seawall_core::ManualClock;
/// use seawall_ratelimit::{Quota, RateLimiter};
///
/// let clock = ManualClock::new();
/// let limiter = RateLimiter::builder(Quota::per_second(1).build()?)
///     .clock(clock.clone())
///     .build();
/// let now = limiter.reserve();
/// let later = limiter.reserve();
/// assert_eq!(now.delay(), Duration::ZERO);
/// assert_eq!(later.delay(), Duration::from_secs(1));
///
/// // Not needed after all: the next caller no longer waits for it.
/// later.cancel();
/// assert_eq!(limiter.reserve().delay(), Duration::from_secs(1));
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[must_use = "a dropped reservation keeps its capacity; act on it or cancel it"]
pub struct Reservation<C: Clock> {
    limiter: RateLimiter<C>,
    /// Nanoseconds of capacity taken.
    cost: u64,
    /// The state right after this reservation.
    end: u64,
    /// When the reservation may be acted on, on the limiter's clock.
    act_at: u64,
    delay: Duration,
}

impl<C: Clock> Reservation<C> {
    pub(crate) fn new(limiter: RateLimiter<C>, cost: u64, end: u64, act_at: u64, now: u64) -> Self {
        Self {
            limiter,
            cost,
            end,
            act_at,
            delay: Duration::from_nanos(act_at.saturating_sub(now)),
        }
    }

    /// How long to wait, from the moment of reserving, before acting.
    #[must_use]
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// When the reservation may be acted on, in nanoseconds on the
    /// limiter's clock.
    #[must_use]
    pub fn ready_at_nanos(&self) -> u64 {
        self.act_at
    }

    /// Sleeps (with `tokio::time`) until the reservation may be acted on.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with the time driver enabled.
    ///
    /// # Cancel safety
    ///
    /// Dropping the wait keeps the reservation's capacity taken, as dropping
    /// the reservation does; call [`cancel`](Self::cancel) to give it back.
    pub async fn wait(self) {
        let now = self.limiter.clock().now_nanos();
        tokio::time::sleep(Duration::from_nanos(self.act_at.saturating_sub(now))).await;
    }

    /// Gives the capacity back, as far as later reservations allow: what
    /// was reserved after this one keeps its place, and a reservation whose
    /// time has come gives back nothing (it is taken to have been used).
    pub fn cancel(self) {
        let now = self.limiter.clock().now_nanos();
        if now < self.act_at {
            self.limiter.give_back(self.cost, self.end);
        }
    }
}

impl<C: Clock> fmt::Debug for Reservation<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}
