//! [`TimeoutLayer`]: a deadline per request, fixed or computed from it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service};

use super::BoxError;
use super::future::GuardedFuture;
use crate::timeout::Elapsed;

type Deadline<Req> = Arc<dyn Fn(&Req) -> Duration + Send + Sync>;

/// Gives up on a request after a deadline, fixed ([`new`](Self::new)) or
/// computed from the request ([`per_request`](Self::per_request), say from
/// a deadline header), with an [`Elapsed`] error. Put it inside a
/// [`CircuitBreakerLayer`](super::CircuitBreakerLayer) and the breaker
/// counts timeouts as failures.
pub struct TimeoutLayer<Req> {
    deadline: Deadline<Req>,
}

impl<Req> TimeoutLayer<Req> {
    /// The same deadline for every request.
    #[must_use]
    pub fn new(after: Duration) -> Self {
        Self {
            deadline: Arc::new(move |_: &Req| after),
        }
    }

    /// A deadline chosen per request.
    pub fn per_request<F>(deadline: F) -> Self
    where
        F: Fn(&Req) -> Duration + Send + Sync + 'static,
    {
        Self {
            deadline: Arc::new(deadline),
        }
    }
}

impl<Req> Clone for TimeoutLayer<Req> {
    fn clone(&self) -> Self {
        Self {
            deadline: Arc::clone(&self.deadline),
        }
    }
}

impl<Req> std::fmt::Debug for TimeoutLayer<Req> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutLayer").finish_non_exhaustive()
    }
}

impl<S, Req> Layer<S> for TimeoutLayer<Req> {
    type Service = TimeoutService<S, Req>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            deadline: Arc::clone(&self.deadline),
        }
    }
}

/// The service [`TimeoutLayer`] makes.
pub struct TimeoutService<S, Req> {
    inner: S,
    deadline: Deadline<Req>,
}

impl<S: Clone, Req> Clone for TimeoutService<S, Req> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            deadline: Arc::clone(&self.deadline),
        }
    }
}

impl<S: std::fmt::Debug, Req> std::fmt::Debug for TimeoutService<S, Req> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for TimeoutService<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = GuardedFuture<WithDeadline<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let after = (self.deadline)(&request);
        let future = WithDeadline {
            inner: tokio::time::timeout(after, self.inner.call(request)),
            after,
        };
        GuardedFuture::called(future, None)
    }
}

pin_project_lite::pin_project! {
    /// The call under its deadline.
    pub struct WithDeadline<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        after: Duration,
    }
}

impl<F, T, E> std::future::Future for WithDeadline<F>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match std::task::ready!(this.inner.poll(cx)) {
            Ok(result) => Poll::Ready(result.map_err(Into::into)),
            Err(_) => Poll::Ready(Err(Box::new(Elapsed { after: *this.after }))),
        }
    }
}

impl<F> std::fmt::Debug for WithDeadline<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithDeadline")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}
