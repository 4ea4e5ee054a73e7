//! [`RestartPolicy`]: when a supervised task is started again, and how soon.

use std::time::Duration;

use seawall_core::{ConfigError, duration};

/// Which ends of a supervised task start it again (Erlang's `permanent`,
/// `transient` and `temporary` children).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Restart {
    /// Every end: an error, a panic, and returning `Ok` too (a task that
    /// should run for as long as the process does).
    Always,
    /// An error or a panic; returning `Ok` finishes the task.
    #[default]
    OnFailure,
    /// None: the task runs once.
    Never,
}

/// When a supervised task is started again and how soon: which ends
/// restart it ([`Restart`]), an exponential backoff with jitter between
/// restarts, and an intensity limit (at most `max_restarts` restarts within
/// `within`; the one after that gives up and marks the task failed, as an
/// Erlang supervisor escalates).
///
/// The backoff before the n-th restart within the window is
/// `initial_backoff × 2^(n-1)`, at most `max_backoff`, of which a random
/// part of up to a half is taken off, so tasks that failed together do not
/// restart together. Restarts that have left the window count no longer,
/// so a task that has run well for `within` starts again from
/// `initial_backoff`.
///
/// ```
/// use std::time::Duration;
/// use seawall_recover::{Restart, RestartPolicy};
///
/// let policy = RestartPolicy::builder()
///     .restart(Restart::Always)
///     .backoff(Duration::from_millis(50), Duration::from_secs(10))
///     .max_restarts(10, Duration::from_secs(60))
///     .build()?;
/// assert_eq!(policy.max_restarts(), 10);
///
/// let error = RestartPolicy::builder()
///     .backoff(Duration::from_secs(5), Duration::from_secs(1))
///     .build()
///     .unwrap_err();
/// assert_eq!(error.field(), "max_backoff");
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    restart: Restart,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_restarts: u32,
    within: Duration,
}

impl Default for RestartPolicy {
    /// Restart on failure; backoff from 100 ms to 30 s; at most 5 restarts
    /// within 60 s.
    fn default() -> Self {
        Self {
            restart: Restart::OnFailure,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            max_restarts: 5,
            within: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    /// A builder starting from the [default](Self::default).
    pub fn builder() -> RestartPolicyBuilder {
        RestartPolicyBuilder {
            policy: Self::default(),
        }
    }

    /// Which ends restart the task.
    #[must_use]
    pub fn restart(&self) -> Restart {
        self.restart
    }

    /// The backoff before the first restart within the window.
    #[must_use]
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The longest backoff.
    #[must_use]
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// How many restarts the window holds before the task is given up.
    #[must_use]
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts
    }

    /// The window of the intensity limit.
    #[must_use]
    pub fn within(&self) -> Duration {
        self.within
    }

    /// The backoff before the `n`-th restart in the window (from 1), before
    /// jitter.
    pub(crate) fn backoff(&self, n: usize) -> Duration {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        crate::retry::doubling(self.initial_backoff, n, self.max_backoff)
    }

    /// `backoff(n)` less a random part of up to its half.
    pub(crate) fn jittered_backoff(&self, n: usize, seed: u64) -> Duration {
        let full = self.backoff(n);
        let half = u64::try_from(full.as_nanos() / 2).unwrap_or(u64::MAX);
        full.saturating_sub(Duration::from_nanos(seawall_core::random::up_to(
            half, seed,
        )))
    }
}

/// Builds a [`RestartPolicy`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone)]
#[must_use]
pub struct RestartPolicyBuilder {
    policy: RestartPolicy,
}

impl RestartPolicyBuilder {
    /// Which ends restart the task (default [`Restart::OnFailure`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.policy.restart = restart;
        self
    }

    /// The backoff before the first restart in the window, and the longest
    /// one (default 100 ms and 30 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.policy.initial_backoff = initial;
        self.policy.max_backoff = max;
        self
    }

    /// At most `restarts` restarts within `within` (default 5 within 60 s);
    /// zero gives the task up at its first end that would restart it.
    pub fn max_restarts(mut self, restarts: u32, within: Duration) -> Self {
        self.policy.max_restarts = restarts;
        self.policy.within = within;
        self
    }

    /// Checks the policy.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: `max_backoff` shorter than
    /// `initial_backoff`, or a zero `within`.
    pub fn build(self) -> Result<RestartPolicy, ConfigError> {
        let policy = self.policy;
        if policy.max_backoff < policy.initial_backoff {
            return Err(ConfigError::new(
                "max_backoff",
                format!(
                    "must be at least initial_backoff ({})",
                    duration::format(policy.initial_backoff)
                ),
                duration::format(policy.max_backoff),
            ));
        }
        if policy.within.is_zero() {
            return Err(ConfigError::new("within", "must be longer than zero", "0s"));
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_never_overflows() {
        let policy = RestartPolicy::builder()
            .backoff(Duration::from_millis(100), Duration::from_secs(1))
            .build()
            .unwrap();
        let steps: Vec<u128> = (1..=6).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(steps, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.backoff(usize::MAX), Duration::from_secs(1));
        for n in 1..=6 {
            let jittered = policy.jittered_backoff(n, n as u64);
            assert!(jittered <= policy.backoff(n) && jittered >= policy.backoff(n) / 2);
        }
    }

    #[test]
    fn checks_name_the_field() {
        let error = RestartPolicy::builder()
            .max_restarts(3, Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "within: must be longer than zero, got 0s"
        );
        let error = RestartPolicy::builder()
            .backoff(Duration::from_secs(2), Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "max_backoff: must be at least initial_backoff (2s), got 1s"
        );
    }
}
