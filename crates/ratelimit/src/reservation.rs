//! [`Reservation`]: capacity taken now, to be used after a delay.

use std::fmt;
use std::time::Duration;

use seawall_core::Clock;

use crate::gcra::Reserved;
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
    taken: Reserved,
}

impl<C: Clock> Reservation<C> {
    pub(crate) fn new(limiter: RateLimiter<C>, taken: Reserved) -> Self {
        Self { limiter, taken }
    }

    /// How long to wait, from the moment of reserving, before acting;
    /// `Duration::MAX` if the time never comes (a budget used up, or a
    /// burst of zero: only a quota change would make room).
    #[must_use]
    pub fn delay(&self) -> Duration {
        self.taken.delay()
    }

    /// When the reservation may be acted on, in nanoseconds on the
    /// limiter's clock; `u64::MAX` if never.
    #[must_use]
    pub fn ready_at_nanos(&self) -> u64 {
        self.taken.act_at
    }

    /// Sleeps (with `tokio::time`) until the reservation may be acted on;
    /// forever if that time never comes.
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
        crate::limiter::sleep_until(self.limiter.clock(), self.taken.act_at, 0).await;
    }

    /// Gives the capacity back as Go's `Cancel` does: the tokens taken, less
    /// those that reservations made after this one rely on (the span from
    /// this one's act time to the latest one's), capped at the burst; and
    /// nothing once the act time has passed (the request is taken to have
    /// been made). Cancelling exactly at the act time still gives back.
    /// Correct across [`set_quota`](RateLimiter::set_quota): what was taken
    /// is counted in tokens of the quota it was taken under.
    pub fn cancel(self) {
        self.limiter.cancel(&self.taken);
    }
}

impl<C: Clock> fmt::Debug for Reservation<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("delay", &self.delay())
            .finish_non_exhaustive()
    }
}
