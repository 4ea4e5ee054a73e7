//! Retries: [`Retry`], [`RetryPolicy`], [`RetryBudget`], and (feature
//! `tower`) [`RetryLayer`](crate::tower::RetryLayer).

#[cfg(feature = "http")]
pub(crate) mod body;
mod budget;
#[cfg(feature = "tower")]
pub(crate) mod future;
#[cfg(feature = "http")]
pub(crate) mod http;
#[cfg(feature = "tower")]
pub(crate) mod layer;
#[cfg(feature = "tower")]
pub(crate) mod service;

use std::any::Any;
use std::fmt;
use std::time::Duration;

use seawall_core::{
    Classify, ConfigError, DefaultClassifier, Outcome, RefusalKind, Refused, Shared, duration,
};
use tokio::time::Instant;

pub use budget::RetryBudget;

/// How the backoff between attempts is spread, so clients that failed
/// together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Jitter {
    /// None: exactly `initial × 2^(n-1)`, at most `max`.
    None,
    /// "Full jitter": a random wait from zero to the exponential one.
    #[default]
    Full,
    /// "Decorrelated jitter": a random wait from `initial` to three times
    /// the previous wait, at most `max`. Spreads best when many clients
    /// retry at once; the waits still grow, but not strictly. The previous
    /// wait is kept to 71 minutes, so no wait exceeds about 3.6 hours
    /// (or three times `initial`).
    Decorrelated,
}

/// When to retry: at most `max_attempts` attempts in all, within
/// `max_total_time` if set, with a backoff between them, under a
/// [`RetryBudget`] if set.
///
/// ```
/// use std::time::Duration;
/// use seawall_recover::{Jitter, RetryBudget, RetryPolicy};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(4)
///     .max_total_time(Duration::from_secs(2))
///     .backoff(Duration::from_millis(20), Duration::from_millis(500), Jitter::Decorrelated)
///     .budget(RetryBudget::new(0.2, 5, Duration::from_secs(10))?)
///     .build()?;
/// assert_eq!(policy.max_attempts(), 4);
///
/// let error = RetryPolicy::builder().max_attempts(0).build().unwrap_err();
/// assert_eq!(error.to_string(), "max_attempts: must be at least 1, got 0");
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    max_total_time: Option<Duration>,
    initial_backoff: Duration,
    max_backoff: Duration,
    jitter: Jitter,
    budget: Option<RetryBudget>,
}

impl Default for RetryPolicy {
    /// 3 attempts, no time limit, backoff from 50 ms to 5 s with full
    /// jitter, no budget.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_total_time: None,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            jitter: Jitter::Full,
            budget: None,
        }
    }
}

impl RetryPolicy {
    /// A builder starting from the [default](Self::default).
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            policy: Self::default(),
        }
    }

    /// Attempts in all, the first one included.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The time after the first attempt started beyond which no retry
    /// starts (a retry whose backoff would end past it is not made).
    #[must_use]
    pub fn max_total_time(&self) -> Option<Duration> {
        self.max_total_time
    }

    /// The backoff before the first retry.
    #[must_use]
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The longest backoff.
    #[must_use]
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// How backoffs are spread.
    #[must_use]
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The budget, if any.
    #[must_use]
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.budget.as_ref()
    }

    /// The wait before retry `n` (from 1), given the wait before the last.
    fn backoff(&self, n: u32, previous: Duration, seed: u64) -> Duration {
        let exponential = || doubling(self.initial_backoff, n, self.max_backoff);
        let random_up_to = |max: Duration| {
            let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(seawall_core::random::up_to(max, seed))
        };
        match self.jitter {
            Jitter::None => exponential(),
            Jitter::Full => random_up_to(exponential()),
            Jitter::Decorrelated => {
                let low = self.initial_backoff;
                let high = previous.max(low).saturating_mul(3).min(self.max_backoff);
                (low + random_up_to(high.saturating_sub(low))).min(self.max_backoff)
            }
        }
    }
}

pub(crate) use seawall_core::duration::doubling;

/// Builds a [`RetryPolicy`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone)]
#[must_use]
pub struct RetryPolicyBuilder {
    policy: RetryPolicy,
}

impl RetryPolicyBuilder {
    /// Attempts in all, the first included (default 3; 1 never retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.policy.max_attempts = attempts;
        self
    }

    /// No retry starts later than this after the first attempt started
    /// (default: no limit).
    pub fn max_total_time(mut self, limit: Duration) -> Self {
        self.policy.max_total_time = Some(limit);
        self
    }

    /// The backoff: `initial` before the first retry, doubling to `max`,
    /// spread by `jitter` (default 50 ms, 5 s, [`Jitter::Full`]).
    pub fn backoff(mut self, initial: Duration, max: Duration, jitter: Jitter) -> Self {
        self.policy.initial_backoff = initial;
        self.policy.max_backoff = max;
        self.policy.jitter = jitter;
        self
    }

    /// Retries only while `budget` has room (default: no budget).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.policy.budget = Some(budget);
        self
    }

    /// Checks the policy.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: `max_attempts` of zero, or
    /// `max_backoff` shorter than `initial_backoff`.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        let policy = self.policy;
        if policy.max_attempts == 0 {
            return Err(ConfigError::new("max_attempts", "must be at least 1", 0));
        }
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
        Ok(policy)
    }
}

/// Reads from a result how long the other side asked to wait before trying
/// again (an HTTP `Retry-After`). A seawall refusal's own wait is read
/// without it.
pub trait RetryAfter<T, E> {
    /// The wait `result` asks for, if any.
    fn retry_after(&self, result: &Result<T, E>) -> Option<Duration>;
}

/// Reads nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetryAfter;

impl<T, E> RetryAfter<T, E> for NoRetryAfter {
    #[inline]
    fn retry_after(&self, _: &Result<T, E>) -> Option<Duration> {
        None
    }
}

impl<T, E, F: Fn(&Result<T, E>) -> Option<Duration>> RetryAfter<T, E> for F {
    #[inline]
    fn retry_after(&self, result: &Result<T, E>) -> Option<Duration> {
        self(result)
    }
}

/// Calls a function again when its result says so: a [`RetryPolicy`], a
/// classifier deciding which results are worth another attempt, and
/// optionally a reader of the wait the other side asked for.
///
/// Which results are retried:
/// - a seawall refusal (found in the error by [`Refused::find_in`]) that
///   says how long to wait (a rate limit, an open breaker) is retried after
///   that wait at the earliest, never at once; one that does not say is
///   retried only if it is a timeout or a panic: an open breaker or a full
///   bulkhead without a wait is not retried, nor a misconfiguration (a
///   per-client limit that finds no client), which would answer the same;
/// - any other result is retried when the classifier calls it a
///   [`Outcome::Failure`] ([`DefaultClassifier`]: every error), after the
///   backoff, or after the wait [`RetryAfter`] reads from it if longer;
/// - a wait asked for (by a refusal or by [`RetryAfter`]) that is longer
///   than the policy's `max_backoff` is not waited: the result is returned
///   as it is, so a peer's `Retry-After: 86400` cannot hold a request.
///
/// No retry is made past `max_attempts`, past `max_total_time`, or when the
/// budget is spent; the last result is returned as it is.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use seawall_recover::{Retry, RetryPolicy};
///
/// let attempts = AtomicU32::new(0);
/// let retry = Retry::new(RetryPolicy::default());
/// let answer = retry
///     .run(|| async {
///         match attempts.fetch_add(1, Ordering::Relaxed) {
///             0 => Err("connection reset"),
///             n => Ok(n),
///         }
///     })
///     .await;
/// assert_eq!(answer, Ok(1));
/// # }
/// ```
pub struct Retry<K: 'static = DefaultClassifier, H: 'static = NoRetryAfter> {
    shared: Shared<Policy<K, H>>,
}

/// A retry's settings, shared by its clones and its futures.
pub(crate) struct Policy<K, H> {
    pub(crate) policy: RetryPolicy,
    pub(crate) classify: K,
    pub(crate) hint: H,
}

impl Retry {
    /// Retries under `policy`, every error counting as a failure (except
    /// the refusals that say otherwise).
    #[must_use]
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            shared: Shared::new(Policy {
                policy,
                classify: DefaultClassifier,
                hint: NoRetryAfter,
            }),
        }
    }
}

impl<K: 'static, H: 'static> Retry<K, H> {
    /// Retries the results `classify` calls failures: any
    /// `Fn(&Result<T, E>) -> Outcome`, such as one that retries a `503` but
    /// not a `400`.
    #[must_use]
    pub fn classify<K2>(self, classify: K2) -> Retry<K2, H>
    where
        H: Clone,
    {
        let policy = &*self.shared;
        Retry {
            shared: Shared::new(Policy {
                policy: policy.policy.clone(),
                classify,
                hint: policy.hint.clone(),
            }),
        }
    }

    /// Reads the wait the other side asks for from each result
    /// ([`RetryAfter`]), and waits at least that long before retrying.
    #[must_use]
    pub fn retry_after<H2>(self, hint: H2) -> Retry<K, H2>
    where
        K: Clone,
    {
        let policy = &*self.shared;
        Retry {
            shared: Shared::new(Policy {
                policy: policy.policy.clone(),
                classify: policy.classify.clone(),
                hint,
            }),
        }
    }

    /// Leaks the settings, so clones and calls count no reference (for a
    /// retry that lives as long as the process).
    #[must_use]
    pub fn leak(self) -> Self {
        Self {
            shared: self.shared.leak(),
        }
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
    }

    #[cfg(feature = "tower")]
    pub(crate) fn shared(&self) -> &Shared<Policy<K, H>> {
        &self.shared
    }

    /// Calls `make()` and awaits its future, again while the result is
    /// worth retrying and the policy allows.
    ///
    /// # Errors
    ///
    /// The last attempt's error, when no retry is left or it is not worth
    /// one.
    pub async fn run<F, Fut, T, E>(&self, mut make: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        K: Classify<T, E>,
        H: RetryAfter<T, E>,
        E: Any,
    {
        let policy = &*self.shared;
        let mut state = Attempts::start(&policy.policy);
        loop {
            let result = make().await;
            match policy.next(&result, &mut state) {
                // No wait: a retry spends the task's tokio budget, so a
                // run of instant failures yields now and then.
                Some(wait) if wait.is_zero() => tokio::task::coop::consume_budget().await,
                Some(wait) => {
                    // Dropped while it waits, the retry is not made: it goes
                    // back to the budget.
                    let unmade = GiveBackRetry(Some(policy));
                    tokio::time::sleep(wait).await;
                    unmade.made();
                }
                None => return result,
            }
        }
    }
}

/// A retry taken from the budget and not made yet: given back if dropped
/// before [`made`](Self::made).
struct GiveBackRetry<'a, K, H>(Option<&'a Policy<K, H>>);

impl<K, H> GiveBackRetry<'_, K, H> {
    fn made(mut self) {
        self.0 = None;
    }
}

impl<K, H> Drop for GiveBackRetry<'_, K, H> {
    fn drop(&mut self) {
        if let Some(policy) = self.0 {
            policy.give_back_retry();
        }
    }
}

/// [`Retry::run`] with the default policy: up to 3 attempts, 50 ms to 5 s
/// of jittered backoff, every error retried (except the refusals that say
/// otherwise).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut calls = 0;
/// let result: Result<(), &str> = seawall_recover::retry(|| {
///     calls += 1;
///     async { Err("down") }
/// })
/// .await;
/// assert_eq!((result, calls), (Err("down"), 3));
/// # }
/// ```
///
/// # Errors
///
/// The last attempt's error.
pub async fn retry<F, Fut, T, E>(make: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Any,
{
    Retry::new(RetryPolicy::default()).run(make).await
}

/// Where a call's attempts stand.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempts {
    /// Attempts made so far.
    made: u32,
    /// The last backoff, in whole microseconds (saturating): kept small, as
    /// it rides in every request's future.
    previous_micros: u32,
    /// When the first started, if a time limit needs it.
    started: Option<Instant>,
}

impl Attempts {
    /// Counts the request in the budget, and reads the clock if the policy
    /// has a time limit. Inlined: it builds part of every request's future.
    #[inline(always)]
    pub(crate) fn start(policy: &RetryPolicy) -> Self {
        if let Some(budget) = &policy.budget {
            budget.deposit();
        }
        Self {
            made: 0,
            // Zero: no backoff yet (the first is `initial_backoff`).
            previous_micros: 0,
            started: policy.max_total_time.map(|_| Instant::now()),
        }
    }
}

/// Whole microseconds, saturating at `u32::MAX` (71 minutes).
fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

impl<K, H> Policy<K, H> {
    /// The wait before the next attempt, or `None` to stop at `result`.
    /// Inlined: a success ends here, in the caller.
    #[inline]
    pub(crate) fn next<T, E: Any>(
        &self,
        result: &Result<T, E>,
        state: &mut Attempts,
    ) -> Option<Duration>
    where
        K: Classify<T, E>,
        H: RetryAfter<T, E>,
    {
        state.made = state.made.saturating_add(1);
        let refused = result
            .as_ref()
            .err()
            .and_then(|error| Refused::find_in(error));
        let asked = match refused {
            Some(refused) => match refused.retry_after() {
                Some(wait) => Some(wait),
                // A misconfiguration would answer the same again.
                None if refused.kind() == RefusalKind::Misconfigured => return None,
                None if refused.kind().outcome() == Outcome::Failure => None,
                None => return None,
            },
            None if self.classify.classify(result) == Outcome::Failure => {
                self.hint.retry_after(result)
            }
            None => return None,
        };
        self.wait(asked, state)
    }

    /// When `max_total_time` runs out for the attempts `state` counts.
    #[cfg(feature = "tower")]
    pub(crate) fn deadline(&self, state: &Attempts) -> Option<Instant> {
        state.started?.checked_add(self.policy.max_total_time?)
    }

    /// A retry [`next`](Self::next) scheduled is not made after all: it
    /// goes back to the budget.
    pub(crate) fn give_back_retry(&self) {
        if let Some(budget) = &self.policy.budget {
            budget.refund();
        }
    }

    /// The wait before the next attempt after a failure, `asked` being the
    /// wait the failure asked for; or `None` to stop.
    fn wait(&self, asked: Option<Duration>, state: &mut Attempts) -> Option<Duration> {
        let policy = &self.policy;
        if state.made >= policy.max_attempts {
            return None;
        }
        let address = u64::try_from(std::ptr::from_ref(state).addr()).unwrap_or(0);
        let seed = u64::from(state.made) ^ address;
        let previous = match state.previous_micros {
            0 => policy.initial_backoff,
            micros => Duration::from_micros(u64::from(micros)),
        };
        let backoff = policy.backoff(state.made, previous, seed);
        state.previous_micros = micros(backoff).max(1);
        // A wait longer than the longest backoff is not waited: the caller
        // gets the answer now (a breaker open for minutes, a `Retry-After`
        // of a day).
        if asked.is_some_and(|asked| asked > policy.max_backoff) {
            return None;
        }
        let wait = asked.map_or(backoff, |asked| asked.max(backoff));
        if let (Some(limit), Some(started)) = (policy.max_total_time, state.started)
            && started.elapsed().saturating_add(wait) > limit
        {
            return None;
        }
        if let Some(budget) = &policy.budget
            && !budget.try_withdraw()
        {
            crate::observe::budget_exhausted("retry");
            return None;
        }
        crate::observe::retrying(state.made, wait);
        Some(wait)
    }
}

impl<K: 'static, H: 'static> Clone for Retry<K, H> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<K: 'static, H: 'static> fmt::Debug for Retry<K, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: Jitter) -> RetryPolicy {
        RetryPolicy::builder()
            .max_attempts(10)
            .backoff(
                Duration::from_millis(10),
                Duration::from_millis(100),
                jitter,
            )
            .build()
            .unwrap()
    }

    #[test]
    fn backoffs_grow_to_their_cap_within_their_jitter() {
        let none = policy(Jitter::None);
        let waits: Vec<u128> = (1..=6)
            .map(|n| none.backoff(n, Duration::ZERO, 0).as_millis())
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 100, 100]);
        assert_eq!(
            none.backoff(u32::MAX, Duration::ZERO, 0),
            Duration::from_millis(100)
        );

        let full = policy(Jitter::Full);
        let decorrelated = policy(Jitter::Decorrelated);
        let mut previous = Duration::from_millis(10);
        for n in 1..=200 {
            assert!(
                full.backoff(n % 8, Duration::ZERO, u64::from(n))
                    <= none.backoff(n % 8, Duration::ZERO, 0)
            );
            let wait = decorrelated.backoff(n, previous, u64::from(n));
            assert!(wait >= Duration::from_millis(10) && wait <= Duration::from_millis(100));
            assert!(wait <= (previous * 3).max(Duration::from_millis(10)));
            previous = wait;
        }
    }
}
