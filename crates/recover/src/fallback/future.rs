//! [`FallbackFuture`]: a call whose result the policy may replace.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use crate::Fallback;

pin_project! {
    /// Response future of [`FallbackService`](crate::tower::FallbackService).
    pub struct FallbackFuture<F, T, E> {
        #[pin]
        inner: F,
        fallback: Fallback<T, E>,
    }
}

impl<F, T, E> FallbackFuture<F, T, E> {
    pub(super) fn new(inner: F, fallback: Fallback<T, E>) -> Self {
        Self { inner, fallback }
    }
}

impl<F, T, E> Future for FallbackFuture<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        Poll::Ready(this.fallback.apply(result))
    }
}

impl<F, T, E> std::fmt::Debug for FallbackFuture<F, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackFuture")
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}
