//! [`TimeoutFuture`]: a call under the timeout layer's deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::{Refusal, ResponseFormat};
use tokio::time::Sleep;

use crate::timeout::TimedOut;

pin_project! {
    /// Response future of [`TimeoutService`](crate::tower::TimeoutService):
    /// the call under its deadline. The timer starts when the call first
    /// waits, so a call that answers at once never sets one.
    pub struct TimeoutFuture<F, R> {
        #[pin]
        inner: F,
        // Pinned in place: no allocation per call.
        #[pin]
        deadline: Option<Sleep>,
        after: Duration,
        refusal: R,
        format: ResponseFormat,
    }
}

impl<F, R> TimeoutFuture<F, R> {
    pub(crate) fn new(inner: F, after: Duration, refusal: R, format: ResponseFormat) -> Self {
        Self {
            inner,
            deadline: None,
            after,
            refusal,
            format,
        }
    }
}

impl<F, T, E, R> Future for TimeoutFuture<F, R>
where
    F: Future<Output = Result<T, E>>,
    E: Into<R::Error>,
    R: Refusal<T, E>,
{
    type Output = Result<T, R::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        let after = *this.after;
        let mut deadline = this.deadline;
        if deadline.is_none() {
            deadline.set(Some(tokio::time::sleep(after)));
        }
        if let Some(sleep) = deadline.as_pin_mut() {
            ready!(sleep.poll(cx));
        }
        Poll::Ready(this.refusal.refuse(*this.format, TimedOut { after }))
    }
}

impl<F, R> std::fmt::Debug for TimeoutFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutFuture")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}
