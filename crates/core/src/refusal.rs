//! Refusals: what a seawall layer says when it does not pass a request on
//! (or gives up on one), and how a tower service answers it.
//!
//! Every refusal of every seawall crate has a [`RefusalKind`], which fixes
//! its meaning for clients (the HTTP status) and for other defences (a retry
//! policy, an outer breaker), and maybe a wait after which trying again
//! makes sense. A crate's own refusal types ([`RefusalReason`]s: a rate
//! limiter's `RateLimited`, a breaker's `BreakerError`) keep their details.
//!
//! A tower layer answers through a [`Refusal`]: [`RefuseWithError`] fails
//! the call with a [`Refused`] in a [`BoxError`]; with the `http` feature,
//! `http::RefuseWithResponse` answers with a response instead.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::Outcome;

/// The error type of seawall's tower services when they answer refusals
/// with errors: tower's convention, so layers stack and errors downcast.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// What kind of refusal a request met: this decides its HTTP status, and
/// whether an outer defence counts it against the dependency.
///
/// | Kind | HTTP status | Made by | An outer breaker counts it |
/// |---|---|---|---|
/// | [`RateLimited`](Self::RateLimited) | `429 Too Many Requests` | rate limiters | no (ignored) |
/// | [`Unavailable`](Self::Unavailable) | `503 Service Unavailable` | an open, forced-open or full half-open breaker | no (ignored) |
/// | [`Overloaded`](Self::Overloaded) | `503 Service Unavailable` | a full bulkhead | no (ignored) |
/// | [`TimedOut`](Self::TimedOut) | `504 Gateway Timeout` | timeouts, a breaker's call timeout | yes, a failure |
/// | [`Panicked`](Self::Panicked) | `500 Internal Server Error` | panic recovery | yes, a failure |
/// | [`Misconfigured`](Self::Misconfigured) | `500 Internal Server Error` | a limit that cannot tell clients apart (no peer address) | yes, a failure |
///
/// A timeout, a panic and a misconfiguration say something about the
/// service behind them; the other refusals say only that seawall did not
/// try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalKind {
    /// Over a rate limit.
    RateLimited,
    /// The dependency is known to be failing (a circuit breaker is open).
    Unavailable,
    /// No room now (a bulkhead or a queue is full).
    Overloaded,
    /// A deadline passed before the answer came.
    TimedOut,
    /// The handler panicked.
    Panicked,
    /// The service is set up so that a defence cannot work, and refuses
    /// rather than work wrongly: a per-client limit that finds no client
    /// address in the request.
    Misconfigured,
}

impl RefusalKind {
    /// The HTTP status code a refusal of this kind answers with.
    ///
    /// ```
    /// use seawall_core::RefusalKind;
    ///
    /// assert_eq!(RefusalKind::RateLimited.status(), 429);
    /// assert_eq!(RefusalKind::Unavailable.status(), 503);
    /// assert_eq!(RefusalKind::TimedOut.status(), 504);
    /// ```
    #[must_use]
    pub const fn status(self) -> u16 {
        match self {
            Self::RateLimited => 429,
            Self::Unavailable | Self::Overloaded => 503,
            Self::TimedOut => 504,
            Self::Panicked | Self::Misconfigured => 500,
        }
    }

    /// What an outer breaker, retry or outlier detector should make of a
    /// refusal of this kind: [`Outcome::Failure`] for a timeout, a panic or
    /// a misconfiguration, which are the service's doing, and
    /// [`Outcome::Ignored`] for the rest, which say only that seawall did
    /// not try.
    #[must_use]
    pub const fn outcome(self) -> Outcome {
        match self {
            Self::TimedOut | Self::Panicked | Self::Misconfigured => Outcome::Failure,
            Self::RateLimited | Self::Unavailable | Self::Overloaded => Outcome::Ignored,
        }
    }

    /// A short phrase for people: `"rate limited"`, `"service unavailable"`,
    /// `"overloaded"`, `"timed out"`, `"internal error"`.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::RateLimited => "rate limited",
            Self::Unavailable => "service unavailable",
            Self::Overloaded => "overloaded",
            Self::TimedOut => "timed out",
            Self::Panicked | Self::Misconfigured => "internal error",
        }
    }
}

impl fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A crate's own refusal type: an error that knows its [`RefusalKind`] and
/// how long until trying again makes sense.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::{RefusalKind, RefusalReason, Refused};
///
/// #[derive(Debug)]
/// struct QueueFull;
///
/// impl std::fmt::Display for QueueFull {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("queue full")
///     }
/// }
/// impl std::error::Error for QueueFull {}
///
/// impl RefusalReason for QueueFull {
///     fn kind(&self) -> RefusalKind { RefusalKind::Overloaded }
///     fn retry_after(&self) -> Option<Duration> { Some(Duration::from_millis(200)) }
/// }
///
/// let refused = Refused::new(QueueFull);
/// assert_eq!(refused.kind(), RefusalKind::Overloaded);
/// assert_eq!(refused.to_string(), "queue full");
/// assert!(refused.downcast_ref::<QueueFull>().is_some());
/// ```
pub trait RefusalReason: Error + Send + Sync + 'static {
    /// The kind of refusal.
    fn kind(&self) -> RefusalKind;

    /// How long until trying again makes sense, if that is known.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// The error of every seawall tower service that refuses with an error: the
/// kind, the wait, and the crate's own reason.
///
/// A refusal goes through any number of layers as a [`BoxError`].
/// [`Refused::find`] recognises it there (also inside other errors that
/// report it as their `source`), and
/// [`downcast_ref`](Self::downcast_ref) gets the crate's own type back:
///
/// ```
/// use std::time::Duration;
/// use seawall_core::{BoxError, RefusalKind, RefusalReason, Refused};
///
/// # #[derive(Debug)] struct Busy;
/// # impl std::fmt::Display for Busy {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("busy") }
/// # }
/// # impl std::error::Error for Busy {}
/// # impl RefusalReason for Busy {
/// #     fn kind(&self) -> RefusalKind { RefusalKind::RateLimited }
/// #     fn retry_after(&self) -> Option<Duration> { Some(Duration::from_secs(2)) }
/// # }
/// let err: BoxError = Box::new(Refused::new(Busy));
///
/// let refused = Refused::find(&*err).expect("a seawall refusal");
/// assert_eq!(refused.kind(), RefusalKind::RateLimited);
/// assert_eq!(refused.retry_after(), Some(Duration::from_secs(2)));
/// assert!(refused.downcast_ref::<Busy>().is_some());
///
/// let other: BoxError = "connection reset".into();
/// assert!(Refused::find(&*other).is_none());
/// ```
pub struct Refused {
    kind: RefusalKind,
    retry_after: Option<Duration>,
    reason: BoxError,
}

impl Refused {
    /// Wraps a crate's refusal.
    pub fn new<R: RefusalReason>(reason: R) -> Self {
        Self {
            kind: reason.kind(),
            retry_after: reason.retry_after(),
            reason: Box::new(reason),
        }
    }

    /// The kind of refusal.
    #[must_use]
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// How long until trying again makes sense, if that is known.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The crate's own refusal.
    #[must_use]
    pub fn reason(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.reason
    }

    /// The crate's own refusal as `T`, if it is one.
    #[must_use]
    pub fn downcast_ref<T: Error + 'static>(&self) -> Option<&T> {
        self.reason.downcast_ref()
    }

    /// Whether the crate's own refusal is a `T`.
    #[must_use]
    pub fn is<T: Error + 'static>(&self) -> bool {
        self.reason.is::<T>()
    }

    /// The seawall refusal in `error`: `error` itself, or the first error
    /// of its `source()` chain that is one (an error of a layer that wraps
    /// the errors of the layers inside it, such as tower's `Buffer`).
    #[must_use]
    pub fn find<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a Refused> {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(refused) = error.downcast_ref::<Refused>() {
                return Some(refused);
            }
            next = error.source();
        }
        None
    }
}

impl Refused {
    /// The seawall refusal in an error of any type: a [`Refused`] itself,
    /// or one that [`find`](Self::find) finds in a [`BoxError`]. `None` for
    /// errors of other types (a crate's typed error that wraps a refusal is
    /// not looked into: box it, or match it yourself).
    ///
    /// For code generic over the error type, such as a retry or fallback
    /// policy.
    ///
    /// ```
    /// use seawall_core::{BoxError, Refused};
    ///
    /// let other: BoxError = "connection reset".into();
    /// assert!(Refused::find_in(&other).is_none());
    /// assert!(Refused::find_in(&std::io::Error::other("reset")).is_none());
    /// ```
    #[must_use]
    pub fn find_in(error: &dyn Any) -> Option<&Refused> {
        match error.downcast_ref::<BoxError>() {
            Some(boxed) => Refused::find(&**boxed),
            None => error.downcast_ref::<Refused>(),
        }
    }
}

impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("kind", &self.kind)
            .field("retry_after", &self.retry_after)
            .field("reason", &self.reason)
            .finish()
    }
}

/// Shows the crate's own refusal (`rate limited, retry after 1.5s`); the
/// reason is not repeated as a `source`.
impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.reason, f)
    }
}

impl Error for Refused {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.reason.source()
    }
}

/// The outcome of an error that is a seawall refusal, seen through `Any`
/// (a [`BoxError`] or a [`Refused`]); `None` for any other error.
pub(crate) fn refusal_outcome(error: &dyn Any) -> Option<Outcome> {
    Some(Refused::find_in(error)?.kind().outcome())
}

/// How a refusal's answer is written, chosen from the request by
/// [`RefusalFormat`]: for HTTP, from its `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum ResponseFormat {
    /// Plain text: one line such as `rate limited: retry in 2 s`.
    #[default]
    Text,
    /// `application/problem+json` (RFC 9457).
    ProblemJson,
}

/// Decides what a layer's service returns for a request it refuses (a
/// breaker that is open, a bulkhead that is full, a deadline that passed),
/// and so what its error type is: the inner service's errors pass through
/// `Into` that type.
///
/// [`RefuseWithError`] (the default of every layer) fails the call with a
/// [`Refused`] in a [`BoxError`]. With the `http` feature,
/// `http::RefuseWithResponse` answers with the refusal's HTTP response
/// instead (429, 503, 504, ...) and keeps the inner service's error type, as
/// axum's routers require. A refusal also implements [`RefusalFormat`] for
/// the requests it answers.
pub trait Refusal<Response, InnerError>: Clone {
    /// The services' error type.
    type Error;

    /// The answer to a refused request, written in `format`.
    ///
    /// # Errors
    ///
    /// The error the service returns for the refusal, if it answers with
    /// one.
    fn refuse<R: RefusalReason>(
        &self,
        format: ResponseFormat,
        reason: R,
    ) -> Result<Response, Self::Error>;
}

/// Reads from a request how a [`Refusal`] should write its answer to it.
///
/// Services read it when they refuse, and, when they may refuse after the
/// request has moved on to the inner service (a timeout), when they call it.
pub trait RefusalFormat<Request> {
    /// The format for answers to `request`.
    fn format(&self, request: &Request) -> ResponseFormat;
}

/// Refuses with a [`Refused`] error in a [`BoxError`], and boxes the inner
/// service's errors as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefuseWithError;

impl<Response, InnerError> Refusal<Response, InnerError> for RefuseWithError
where
    InnerError: Into<BoxError>,
{
    type Error = BoxError;

    fn refuse<R: RefusalReason>(
        &self,
        _format: ResponseFormat,
        reason: R,
    ) -> Result<Response, BoxError> {
        Err(Box::new(Refused::new(reason)))
    }
}

/// Errors have no format; this reads nothing.
impl<Request> RefusalFormat<Request> for RefuseWithError {
    #[inline]
    fn format(&self, _request: &Request) -> ResponseFormat {
        ResponseFormat::Text
    }
}

/// A refusal of any kind and wait, for the crate's tests.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct TestRefusal(pub(crate) RefusalKind, pub(crate) Option<Duration>);

#[cfg(test)]
impl fmt::Display for TestRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
impl Error for TestRefusal {}

#[cfg(test)]
impl RefusalReason for TestRefusal {
    fn kind(&self) -> RefusalKind {
        self.0
    }

    fn retry_after(&self) -> Option<Duration> {
        self.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Full;

    impl fmt::Display for Full {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("full")
        }
    }

    impl Error for Full {}

    impl RefusalReason for Full {
        fn kind(&self) -> RefusalKind {
            RefusalKind::Overloaded
        }
    }

    /// A wrapper like tower's `buffer::error::ServiceError`: its own message,
    /// the wrapped error as its source.
    #[derive(Debug)]
    struct Wrapped(BoxError);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("buffered service failed")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    fn refuse(reason: Full) -> BoxError {
        Refusal::<(), std::io::Error>::refuse(&RefuseWithError, ResponseFormat::Text, reason)
            .unwrap_err()
    }

    #[test]
    fn refusals_are_found_and_keep_their_reason() {
        let err = refuse(Full);
        let refused = Refused::find(&*err).unwrap();
        assert_eq!(refused.kind(), RefusalKind::Overloaded);
        assert_eq!(refused.retry_after(), None);
        assert_eq!(refused.downcast_ref::<Full>(), Some(&Full));
        assert!(refused.is::<Full>());
        assert_eq!(err.to_string(), "full");
        assert!(err.source().is_none());
    }

    #[test]
    fn refusals_are_found_inside_wrapping_errors() {
        let err: BoxError = Box::new(Wrapped(refuse(Full)));
        assert_eq!(
            Refused::find(&*err).map(Refused::kind),
            Some(RefusalKind::Overloaded)
        );
        let plain: BoxError = Box::new(Wrapped("reset".into()));
        assert!(Refused::find(&*plain).is_none());
    }

    #[test]
    fn outcomes_of_refusals_seen_through_any() {
        let boxed = refuse(Full);
        assert_eq!(refusal_outcome(&boxed), Some(Outcome::Ignored));
        let refused = Refused::new(Full);
        assert_eq!(refusal_outcome(&refused), Some(Outcome::Ignored));
        let other: BoxError = "reset".into();
        assert_eq!(refusal_outcome(&other), None);
        assert_eq!(refusal_outcome(&"reset"), None);
    }

    #[test]
    fn kinds_map_to_statuses_and_outcomes() {
        let table = [
            (RefusalKind::RateLimited, 429, Outcome::Ignored),
            (RefusalKind::Unavailable, 503, Outcome::Ignored),
            (RefusalKind::Overloaded, 503, Outcome::Ignored),
            (RefusalKind::TimedOut, 504, Outcome::Failure),
            (RefusalKind::Panicked, 500, Outcome::Failure),
            (RefusalKind::Misconfigured, 500, Outcome::Failure),
        ];
        for (kind, status, outcome) in table {
            assert_eq!((kind.status(), kind.outcome()), (status, outcome), "{kind}");
        }
    }
}
