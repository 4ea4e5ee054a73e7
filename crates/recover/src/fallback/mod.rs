//! Degradation: [`fallback`], [`Fallback`], and (feature `tower`)
//! [`FallbackLayer`](crate::tower::FallbackLayer).

#[cfg(feature = "tower")]
pub(crate) mod future;
#[cfg(feature = "tower")]
pub(crate) mod layer;
#[cfg(feature = "tower")]
pub(crate) mod service;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use seawall_core::{RefusalKind, Refused};
use tokio::time::Instant;

/// Runs `future`; if it fails, answers with `degrade(error)` instead:
/// Go's "call, and on error serve the fallback", as one function.
/// `degrade` may give the error back to decline. Each call of `degrade`
/// counts as a fallback in the metrics and events.
///
/// For a chosen set of errors, a fixed value, or the last good answer, use
/// a [`Fallback`] policy.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use seawall_recover::fallback;
///
/// async fn recommendations(user: u32) -> Result<Vec<String>, String> {
///     Err(format!("recommender down for user {user}"))
/// }
///
/// let shown = fallback(recommendations(7), |_error| Ok(vec!["bestsellers".to_owned()])).await;
/// assert_eq!(shown, Ok(vec!["bestsellers".to_owned()]));
/// # }
/// ```
///
/// # Errors
///
/// The error `degrade` returns.
pub async fn fallback<F, T, E, D>(future: F, degrade: D) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    D: FnOnce(E) -> Result<T, E>,
{
    future.await.or_else(|error| {
        crate::observe::fell_back();
        degrade(error)
    })
}

/// When a [`Fallback`] answers instead of the call: a test of the call's
/// result.
///
/// Implemented by [`OnError`], [`OnRefusal`], and every
/// `Fn(&Result<T, E>) -> bool` (which may look at answers too, such as a
/// `503` response).
pub trait FallbackOn<T, E> {
    /// Whether `result` is replaced by the degraded answer.
    fn applies(&self, result: &Result<T, E>) -> bool;
}

impl<T, E, F: Fn(&Result<T, E>) -> bool> FallbackOn<T, E> for F {
    #[inline]
    fn applies(&self, result: &Result<T, E>) -> bool {
        self(result)
    }
}

/// Every error.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnError;

impl<T, E> FallbackOn<T, E> for OnError {
    #[inline]
    fn applies(&self, result: &Result<T, E>) -> bool {
        result.is_err()
    }
}

/// Errors that are seawall refusals (a [`Refused`], alone or in a
/// [`BoxError`](seawall_core::BoxError), found by [`Refused::find_in`]): a
/// rate limit, an open breaker, a full bulkhead, a timeout, a caught panic;
/// optionally only some kinds. Other errors (the dependency's own answers)
/// pass through.
#[derive(Debug, Clone, Default)]
pub struct OnRefusal {
    /// `None`: every kind.
    kinds: Option<Vec<RefusalKind>>,
}

impl OnRefusal {
    /// Every kind of refusal.
    #[must_use]
    pub fn any() -> Self {
        Self { kinds: None }
    }

    /// Refusals of these kinds only, such as `[Unavailable, TimedOut]`: an
    /// open breaker and a deadline, not a client over its rate limit.
    #[must_use]
    pub fn kinds(kinds: impl IntoIterator<Item = RefusalKind>) -> Self {
        Self {
            kinds: Some(kinds.into_iter().collect()),
        }
    }
}

impl<T, E: Any> FallbackOn<T, E> for OnRefusal {
    fn applies(&self, result: &Result<T, E>) -> bool {
        let Err(error) = result else { return false };
        Refused::find_in(error).is_some_and(|refused| {
            self.kinds
                .as_ref()
                .is_none_or(|kinds| kinds.contains(&refused.kind()))
        })
    }
}

/// A degradation policy: which results are replaced ([`FallbackOn`]), and
/// by what: a fixed value, a function of the failed result, or the last
/// good answer while it is recent enough (serve stale on error).
///
/// Clones share the last good answer.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use seawall_recover::{Fallback, OnError};
///
/// // Serve the last good price for up to a minute while the feed fails.
/// let price: Fallback<u32, String> = Fallback::on(OnError).stale(Duration::from_secs(60));
/// assert_eq!(price.call(async { Ok(120) }).await, Ok(120));
/// assert_eq!(price.call(async { Err("feed down".to_owned()) }).await, Ok(120));
///
/// tokio::time::sleep(Duration::from_secs(61)).await;
/// let too_old = price.call(async { Err("feed down".to_owned()) }).await;
/// assert_eq!(too_old, Err("feed down".to_owned()));
/// # }
/// ```
pub struct Fallback<T, E> {
    shared: Arc<Policy<T, E>>,
}

struct Policy<T, E> {
    on: Box<dyn FallbackOn<T, E> + Send + Sync>,
    with: With<T, E>,
}

/// A function from the failed result to the answer.
type Degrade<T, E> = dyn Fn(Result<T, E>) -> Result<T, E> + Send + Sync;

/// The degraded answer.
enum With<T, E> {
    Value(Box<dyn Fn() -> T + Send + Sync>),
    Function(Box<Degrade<T, E>>),
    Stale {
        max_age: Duration,
        clone: fn(&T) -> T,
        last: Mutex<Option<(Instant, T)>>,
    },
}

/// The first half of a [`Fallback`]: when. Finish it with what:
/// [`value`](Self::value), [`with`](Self::with) or [`stale`](Self::stale).
#[must_use]
pub struct FallbackBuilder<T, E> {
    on: Box<dyn FallbackOn<T, E> + Send + Sync>,
}

impl<T, E> Fallback<T, E> {
    /// A policy that applies to the results `on` picks.
    pub fn on(on: impl FallbackOn<T, E> + Send + Sync + 'static) -> FallbackBuilder<T, E> {
        FallbackBuilder { on: Box::new(on) }
    }

    /// Runs `future`, and replaces its result if the policy applies to it.
    ///
    /// # Errors
    ///
    /// The future's error, when the policy does not apply to it or has
    /// nothing to answer with (no good answer recent enough).
    pub async fn call<F>(&self, future: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.apply(future.await)
    }

    /// Replaces `result` if the policy applies to it; keeps it as the last
    /// good answer otherwise (for [`stale`](FallbackBuilder::stale)).
    ///
    /// # Errors
    ///
    /// `result`'s error, when the policy does not apply to it or has
    /// nothing to answer with.
    pub fn apply(&self, result: Result<T, E>) -> Result<T, E> {
        let policy = &*self.shared;
        if !policy.on.applies(&result) {
            if let (With::Stale { clone, last, .. }, Ok(good)) = (&policy.with, &result) {
                *last.lock() = Some((Instant::now(), clone(good)));
            }
            return result;
        }
        let answer = match &policy.with {
            With::Value(value) => Ok(value()),
            // Counted as answered: what `degrade` makes of it is its own.
            With::Function(degrade) => {
                crate::observe::fell_back();
                return degrade(result);
            }
            With::Stale {
                max_age,
                clone,
                last,
            } => match &*last.lock() {
                Some((at, good)) if at.elapsed() <= *max_age => Ok(clone(good)),
                _ => return result,
            },
        };
        crate::observe::fell_back();
        answer
    }
}

impl<T, E> FallbackBuilder<T, E> {
    fn build(self, with: With<T, E>) -> Fallback<T, E> {
        Fallback {
            shared: Arc::new(Policy { on: self.on, with }),
        }
    }

    /// Answers with a clone of `value`.
    pub fn value(self, value: T) -> Fallback<T, E>
    where
        T: Clone + Send + Sync + 'static,
    {
        self.build(With::Value(Box::new(move || value.clone())))
    }

    /// Answers with `degrade(result)`, which may give the result back to
    /// decline. Each call of `degrade` counts as a fallback in the metrics
    /// and events.
    pub fn with(
        self,
        degrade: impl Fn(Result<T, E>) -> Result<T, E> + Send + Sync + 'static,
    ) -> Fallback<T, E> {
        self.build(With::Function(Box::new(degrade)))
    }

    /// Answers with the last good answer (the last `Ok` the policy did not
    /// apply to) if it is at most `max_age` old; otherwise the result
    /// stands. Every good answer is cloned and kept, under a lock.
    pub fn stale(self, max_age: Duration) -> Fallback<T, E>
    where
        T: Clone,
    {
        self.build(With::Stale {
            max_age,
            clone: T::clone,
            last: Mutex::new(None),
        })
    }
}

impl<T, E> Clone for Fallback<T, E> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T, E> fmt::Debug for Fallback<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with = match &self.shared.with {
            With::Value(_) => "value",
            With::Function(_) => "function",
            With::Stale { .. } => "stale",
        };
        f.debug_struct("Fallback")
            .field("with", &with)
            .finish_non_exhaustive()
    }
}

impl<T, E> fmt::Debug for FallbackBuilder<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackBuilder").finish_non_exhaustive()
    }
}
