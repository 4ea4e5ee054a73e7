//! [`TimeoutService`]: the service [`TimeoutLayer`](crate::tower::TimeoutLayer) makes.

use std::task::{Context, Poll};

use seawall_core::{Refusal, RefusalFormat, RefuseWithError};
use tower::Service;

use super::future::TimeoutFuture;
use super::layer::Deadline;

/// The service [`TimeoutLayer`](crate::tower::TimeoutLayer) makes.
pub struct TimeoutService<S, Req, R = RefuseWithError> {
    inner: S,
    deadline: Deadline<Req>,
    refusal: R,
}

impl<S, Req, R> TimeoutService<S, Req, R> {
    pub(super) fn new(inner: S, deadline: Deadline<Req>, refusal: R) -> Self {
        Self {
            inner,
            deadline,
            refusal,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, Req, R: Clone> Clone for TimeoutService<S, Req, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            deadline: self.deadline.clone(),
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
    S::Error: Into<R::Error>,
    R: Refusal<S::Response, S::Error> + RefusalFormat<Req>,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = TimeoutFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let after = self.deadline.of(&request);
        let format = self.refusal.format(&request);
        TimeoutFuture::new(
            self.inner.call(request),
            after,
            self.refusal.clone(),
            format,
        )
    }
}
