//! [`BulkheadFuture`]: a call through the bulkhead layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::{Refusal, ResponseFormat};

use crate::bulkhead::{BulkheadFull, BulkheadPermit};

pin_project! {
    /// Response future of [`BulkheadService`](crate::tower::BulkheadService):
    /// the call, holding its place in the bulkhead until it ends, or the
    /// answer to a refusal.
    pub struct BulkheadFuture<F, R> {
        #[pin]
        state: BulkheadState<F>,
        refusal: R,
        format: ResponseFormat,
    }
}

pin_project! {
    #[project = BulkheadProj]
    enum BulkheadState<F> {
        Called { #[pin] future: F, place: Option<BulkheadPermit> },
        Refused { refused: Option<BulkheadFull> },
    }
}

impl<F, R> BulkheadFuture<F, R> {
    pub(crate) fn called(future: F, place: BulkheadPermit, refusal: R) -> Self {
        Self {
            state: BulkheadState::Called {
                future,
                place: Some(place),
            },
            refusal,
            // A call holding its place is never refused.
            format: ResponseFormat::default(),
        }
    }

    pub(crate) fn refused(refused: BulkheadFull, refusal: R, format: ResponseFormat) -> Self {
        Self {
            state: BulkheadState::Refused {
                refused: Some(refused),
            },
            refusal,
            format,
        }
    }
}

impl<F, T, E, R> Future for BulkheadFuture<F, R>
where
    F: Future<Output = Result<T, E>>,
    E: Into<R::Error>,
    R: Refusal<T, E>,
{
    type Output = Result<T, R::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            BulkheadProj::Called { future, place } => {
                let result = ready!(future.poll(cx));
                drop(place.take()); // the place frees as the call ends
                Poll::Ready(result.map_err(Into::into))
            }
            BulkheadProj::Refused { refused } => Poll::Ready(
                this.refusal.refuse(
                    *this.format,
                    refused
                        .take()
                        .expect("BulkheadFuture polled after completion"),
                ),
            ),
        }
    }
}

impl<F, R> std::fmt::Debug for BulkheadFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkheadFuture").finish_non_exhaustive()
    }
}
