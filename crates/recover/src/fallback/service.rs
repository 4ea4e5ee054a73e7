//! [`FallbackService`]: the service [`FallbackLayer`](crate::tower::FallbackLayer) makes.

use std::task::{Context, Poll};

use tower::Service;

use super::future::FallbackFuture;
use crate::Fallback;

/// The service [`FallbackLayer`](crate::tower::FallbackLayer) makes.
pub struct FallbackService<S, T, E> {
    inner: S,
    fallback: Fallback<T, E>,
}

impl<S, T, E> FallbackService<S, T, E> {
    pub(super) fn new(inner: S, fallback: Fallback<T, E>) -> Self {
        Self { inner, fallback }
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

impl<S: Clone, T, E> Clone for FallbackService<S, T, E> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.fallback.clone())
    }
}

impl<S: std::fmt::Debug, T, E> std::fmt::Debug for FallbackService<S, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackService")
            .field("inner", &self.inner)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl<S, Req> Service<Req> for FallbackService<S, S::Response, S::Error>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = FallbackFuture<S::Future, S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        FallbackFuture::new(self.inner.call(request), self.fallback.clone())
    }
}
