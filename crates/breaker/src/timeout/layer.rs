//! [`TimeoutLayer`]: a deadline per request, fixed or computed from it.

use std::sync::Arc;
use std::time::Duration;

use seawall_core::RefuseWithError;
use tower::Layer;

use super::service::TimeoutService;

/// A deadline: the same for every request, or chosen per request.
pub(super) enum Deadline<Req> {
    Fixed(Duration),
    PerRequest(Arc<dyn Fn(&Req) -> Duration + Send + Sync>),
}

impl<Req> Deadline<Req> {
    #[inline]
    pub(super) fn of(&self, request: &Req) -> Duration {
        match self {
            Self::Fixed(after) => *after,
            Self::PerRequest(deadline) => deadline(request),
        }
    }
}

impl<Req> Clone for Deadline<Req> {
    fn clone(&self) -> Self {
        match self {
            Self::Fixed(after) => Self::Fixed(*after),
            Self::PerRequest(deadline) => Self::PerRequest(Arc::clone(deadline)),
        }
    }
}

/// Gives up on a request after a deadline, fixed ([`new`](Self::new)) or
/// computed from the request ([`per_request`](Self::per_request), say from
/// a deadline header). Put it inside a
/// [`CircuitBreakerLayer`](crate::tower::CircuitBreakerLayer) and the breaker
/// counts timeouts as failures.
///
/// A timed-out request is answered by the [`Refusal`](seawall_core::Refusal): by default a
/// [`Refused`](seawall_core::Refused) error (kind `TimedOut`, reason
/// [`TimedOut`](crate::TimedOut)) in a [`BoxError`](crate::tower::BoxError); with
/// [`http`](Self::http) (feature `http`), `504 Gateway Timeout`, which an
/// HTTP breaker outside counts as a failure. A timeout never refuses before
/// the call, so `poll_ready` is the inner service's.
///
/// The deadline starts when the call first waits (the first time its
/// future is not ready), not when `call` returns: a response that is ready
/// at once sets no timer and reads no clock, and the synchronous work of
/// the first poll is not counted (it could not be cut short anyway). It is
/// a tokio timer, so calls need a tokio runtime with time enabled.
pub struct TimeoutLayer<Req, R = RefuseWithError> {
    deadline: Deadline<Req>,
    refusal: R,
}

impl<Req> TimeoutLayer<Req> {
    /// The same deadline for every request; timeouts are errors.
    #[must_use]
    pub fn new(after: Duration) -> Self {
        Self {
            deadline: Deadline::Fixed(after),
            refusal: RefuseWithError,
        }
    }

    /// A deadline chosen per request; timeouts are errors.
    pub fn per_request<F>(deadline: F) -> Self
    where
        F: Fn(&Req) -> Duration + Send + Sync + 'static,
    {
        Self {
            deadline: Deadline::PerRequest(Arc::new(deadline)),
            refusal: RefuseWithError,
        }
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl<Req> TimeoutLayer<Req, seawall_core::http::RefuseWithResponse> {
    /// The same deadline for every HTTP request, answering timeouts with
    /// `504 Gateway Timeout`; the services keep the inner service's error
    /// type, so the layer drops into axum routers as it is.
    #[must_use]
    pub fn http(after: Duration) -> Self {
        TimeoutLayer::new(after).refusal(seawall_core::http::RefuseWithResponse)
    }
}

impl<Req, R> TimeoutLayer<Req, R> {
    /// Answers timeouts with `refusal` (such as `RefuseWithResponse`, feature
    /// `http`).
    #[must_use]
    pub fn refusal<R2>(self, refusal: R2) -> TimeoutLayer<Req, R2> {
        TimeoutLayer {
            deadline: self.deadline,
            refusal,
        }
    }
}

impl<Req, R: Clone> Clone for TimeoutLayer<Req, R> {
    fn clone(&self) -> Self {
        Self {
            deadline: self.deadline.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

impl<Req, R> std::fmt::Debug for TimeoutLayer<Req, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutLayer").finish_non_exhaustive()
    }
}

impl<S, Req, R: Clone> Layer<S> for TimeoutLayer<Req, R> {
    type Service = TimeoutService<S, Req, R>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService::new(inner, self.deadline.clone(), self.refusal.clone())
    }
}
