//! [`TimeoutLayer`]: a deadline per request, fixed or computed from it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::{Refusal, RefuseWithError};
use tower::{Layer, Service};

use super::future::TimeoutFuture;
use crate::timeout::Elapsed;

type Deadline<Req> = Arc<dyn Fn(&Req) -> Duration + Send + Sync>;

/// Gives up on a request after a deadline, fixed ([`new`](Self::new)) or
/// computed from the request ([`per_request`](Self::per_request), say from
/// a deadline header). Put it inside a
/// [`CircuitBreakerLayer`](super::CircuitBreakerLayer) and the breaker
/// counts timeouts as failures.
///
/// A timed-out request is answered by the [`Refusal`]: by default an
/// [`Elapsed`] in a [`BoxError`](super::BoxError); with `RefuseWithResponse`
/// (feature `http`), `504 Gateway Timeout`, which an HTTP breaker counts as
/// a failure like any `5xx`.
pub struct TimeoutLayer<Req, R = RefuseWithError> {
    deadline: Deadline<Req>,
    refusal: R,
}

impl<Req> TimeoutLayer<Req> {
    /// The same deadline for every request.
    #[must_use]
    pub fn new(after: Duration) -> Self {
        Self {
            deadline: Arc::new(move |_: &Req| after),
            refusal: RefuseWithError,
        }
    }

    /// A deadline chosen per request.
    pub fn per_request<F>(deadline: F) -> Self
    where
        F: Fn(&Req) -> Duration + Send + Sync + 'static,
    {
        Self {
            deadline: Arc::new(deadline),
            refusal: RefuseWithError,
        }
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
            deadline: Arc::clone(&self.deadline),
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
        TimeoutService {
            inner,
            deadline: Arc::clone(&self.deadline),
            refusal: self.refusal.clone(),
        }
    }
}

/// The service [`TimeoutLayer`] makes.
pub struct TimeoutService<S, Req, R = RefuseWithError> {
    inner: S,
    deadline: Deadline<Req>,
    refusal: R,
}

impl<S: Clone, Req, R: Clone> Clone for TimeoutService<S, Req, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            deadline: Arc::clone(&self.deadline),
            refusal: self.refusal.clone(),
        }
    }
}

impl<S: std::fmt::Debug, Req, R> std::fmt::Debug for TimeoutService<S, Req, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, Req, R> Service<Req> for TimeoutService<S, Req, R>
where
    S: Service<Req>,
    R: Refusal<Elapsed, S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = TimeoutFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(R::inner_error)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let after = (self.deadline)(&request);
        let inner = tokio::time::timeout(after, self.inner.call(request));
        TimeoutFuture::new(inner, after, self.refusal.clone())
    }
}
