//! [`Drain`] as a tower layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{Drain, DrainGuard};

impl<S> Layer<S> for Drain {
    type Service = Drained<S>;

    fn layer(&self, inner: S) -> Drained<S> {
        Drained {
            inner,
            drain: self.clone(),
        }
    }
}

/// A service whose requests a [`Drain`] counts from `call` until their
/// response future ends or is dropped; made by `Drain` as a layer.
#[derive(Debug, Clone)]
pub struct Drained<S> {
    inner: S,
    drain: Drain,
}

impl<S, Req> Service<Req> for Drained<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = DrainFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let guard = self.drain.guard();
        DrainFuture {
            future: self.inner.call(request),
            guard: Some(guard),
        }
    }
}

pin_project! {
    /// Response future of [`Drained`]: counted until it ends.
    #[derive(Debug)]
    pub struct DrainFuture<F> {
        #[pin]
        future: F,
        guard: Option<DrainGuard>,
    }
}

impl<F: Future> Future for DrainFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.future.poll(cx));
        this.guard.take();
        Poll::Ready(output)
    }
}
