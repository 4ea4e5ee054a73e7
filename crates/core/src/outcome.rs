//! What a finished call means for the defences that watch it: [`Outcome`]
//! and [`Classify`].

/// The verdict on one finished call.
///
/// The set is closed on purpose: every consumer handles all three, so this
/// enum is exhaustive and can be matched without a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The dependency did its job.
    Success,
    /// The dependency failed; this counts against it.
    Failure,
    /// The call says nothing about the dependency's health (a client error,
    /// a cancellation); it is left out of every rate.
    Ignored,
}

impl Outcome {
    /// Returns `true` for [`Outcome::Failure`].
    #[must_use]
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::Failure)
    }

    /// Returns `true` for [`Outcome::Success`].
    #[must_use]
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Success)
    }
}

/// Decides the [`Outcome`] of a call's result.
///
/// A circuit breaker, a retry policy and outlier detection all ask the same
/// question of a finished call: did the dependency fail? The answer is not
/// always "it returned `Err`". A `404` or a validation error is the caller's
/// mistake, not the dependency's, and a cancelled call says nothing at all.
/// So the user supplies the answer.
///
/// Implemented for [`DefaultClassifier`] (`Ok` is a success, `Err` a failure)
/// and for every closure `Fn(&Result<T, E>) -> Outcome`. seawall's builders
/// take a classifier through an `Fn(&Result<T, E>) -> Outcome` bound, so
/// a closure passed to them needs no type annotations; a classifier shared
/// between builders is a closure over an `Arc` of it.
///
/// # Examples
///
/// An HTTP client's result, where a 5xx or a transport error is the
/// dependency's failure, a 4xx is ignored and the rest succeeds:
///
/// ```
/// use seawall_core::{Classify, Outcome};
///
/// struct Response { status: u16 }
/// #[derive(Debug)]
/// struct TransportError;
///
/// let classify = |result: &Result<Response, TransportError>| match result {
///     Ok(resp) if resp.status >= 500 => Outcome::Failure,
///     Ok(resp) if resp.status >= 400 => Outcome::Ignored,
///     Ok(_) => Outcome::Success,
///     Err(_) => Outcome::Failure,
/// };
///
/// assert_eq!(classify.classify(&Ok(Response { status: 503 })), Outcome::Failure);
/// assert_eq!(classify.classify(&Ok(Response { status: 404 })), Outcome::Ignored);
/// assert_eq!(classify.classify(&Ok(Response { status: 200 })), Outcome::Success);
/// assert_eq!(classify.classify(&Err(TransportError)), Outcome::Failure);
/// ```
pub trait Classify<T, E> {
    /// Returns the outcome of `result`.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

/// The classifier used when none is given: `Ok` is a success, `Err` is a
/// failure, except a seawall refusal from a layer inside (a
/// [`Refused`](crate::Refused), alone or in a [`BoxError`](crate::BoxError)),
/// which counts as its [`RefusalKind::outcome`](crate::RefusalKind::outcome)
/// says: a timeout fails, a rate limit or an open breaker is ignored.
///
/// # Examples
///
/// ```
/// use seawall_core::{Classify, DefaultClassifier, Outcome};
///
/// let ok: Result<u8, &str> = Ok(1);
/// let err: Result<u8, &str> = Err("refused");
/// assert_eq!(DefaultClassifier.classify(&ok), Outcome::Success);
/// assert_eq!(DefaultClassifier.classify(&err), Outcome::Failure);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<T, E: 'static> Classify<T, E> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(error) => crate::refusal::refusal_outcome(error).unwrap_or(Outcome::Failure),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome_of<C: Classify<u32, String>>(c: &C, r: Result<u32, String>) -> Outcome {
        c.classify(&r)
    }

    #[test]
    fn default_counts_err_as_failure() {
        assert_eq!(outcome_of(&DefaultClassifier, Ok(7)), Outcome::Success);
        assert_eq!(
            outcome_of(&DefaultClassifier, Err("boom".into())),
            Outcome::Failure
        );
    }

    #[test]
    fn default_follows_the_kind_of_a_refusal_from_inside() {
        use crate::refusal::TestRefusal;
        use crate::{BoxError, RefusalKind, Refused};

        let boxed = |kind| Err::<(), BoxError>(Box::new(Refused::new(TestRefusal(kind, None))));
        assert_eq!(
            DefaultClassifier.classify(&boxed(RefusalKind::RateLimited)),
            Outcome::Ignored
        );
        assert_eq!(
            DefaultClassifier.classify(&boxed(RefusalKind::TimedOut)),
            Outcome::Failure
        );
        let bare = Err::<(), _>(Refused::new(TestRefusal(RefusalKind::Unavailable, None)));
        assert_eq!(DefaultClassifier.classify(&bare), Outcome::Ignored);
        let other = Err::<(), BoxError>("reset".into());
        assert_eq!(DefaultClassifier.classify(&other), Outcome::Failure);
    }

    #[test]
    fn closures_classify() {
        // Only errors that say "timeout" count; other errors are ignored.
        let only_timeouts = |r: &Result<u32, String>| match r {
            Ok(_) => Outcome::Success,
            Err(e) if e.contains("timeout") => Outcome::Failure,
            Err(_) => Outcome::Ignored,
        };
        assert_eq!(outcome_of(&only_timeouts, Ok(1)), Outcome::Success);
        assert_eq!(
            outcome_of(&only_timeouts, Err("read timeout".into())),
            Outcome::Failure
        );
        assert_eq!(
            outcome_of(&only_timeouts, Err("bad request".into())),
            Outcome::Ignored
        );
    }

    #[test]
    fn predicates() {
        assert!(Outcome::Failure.is_failure());
        assert!(!Outcome::Ignored.is_failure());
        assert!(Outcome::Success.is_success());
        assert!(!Outcome::Ignored.is_success());
    }
}
