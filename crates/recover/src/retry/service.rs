//! [`RetryService`]: the service [`RetryLayer`](crate::tower::RetryLayer) makes.

use std::any::Any;
use std::task::{Context, Poll};

use seawall_core::Classify;
use tower::Service;

use super::future::RetryFuture;
use super::{Attempts, Retry, RetryAfter};

/// Makes the copy of a request that a retry sends.
pub trait ReplayRequest<Req> {
    /// A copy of `request`, or `None` if it must not be sent twice (then it
    /// is sent once and never retried).
    fn replay(&self, request: &Req) -> Option<Req>;
}

/// Copies requests with `Clone`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneRequest;

impl<Req: Clone> ReplayRequest<Req> for CloneRequest {
    #[inline]
    fn replay(&self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

/// The service [`RetryLayer`](crate::tower::RetryLayer) makes.
pub struct RetryService<S, K: 'static, H: 'static, P> {
    inner: S,
    retry: Retry<K, H>,
    replay: P,
}

impl<S, K: 'static, H: 'static, P> RetryService<S, K, H, P> {
    pub(super) fn new(inner: S, retry: Retry<K, H>, replay: P) -> Self {
        Self {
            inner,
            retry,
            replay,
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

impl<S: std::fmt::Debug, K: 'static, H: 'static, P> std::fmt::Debug for RetryService<S, K, H, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryService")
            .field("inner", &self.inner)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, K: 'static, H: 'static, P: Clone> Clone for RetryService<S, K, H, P> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.retry.clone(), self.replay.clone())
    }
}

impl<S, K, H, P, Req> Service<Req> for RetryService<S, K, H, P>
where
    S: Service<Req> + Clone,
    S::Error: Any,
    K: Classify<S::Response, S::Error> + 'static,
    H: RetryAfter<S::Response, S::Error> + 'static,
    P: ReplayRequest<Req> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RetryFuture<S, Req, K, H, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let copy = self.replay.replay(&request);
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let attempts = Attempts::start(&self.retry.shared().policy);
        let future = ready.call(request);
        RetryFuture::new(
            future,
            ready,
            copy,
            self.retry.shared().clone(),
            self.replay.clone(),
            attempts,
        )
    }
}
