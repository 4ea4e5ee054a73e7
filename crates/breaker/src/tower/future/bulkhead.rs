//! [`BulkheadFuture`]: a call through the bulkhead layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::{Refusal, ResponseFormat};
use tower::Service;

use crate::bulkhead::{BulkheadFull, BulkheadPermit};

/// A place in the line of a bulkhead.
type WaitForPlace = Pin<Box<dyn Future<Output = Result<BulkheadPermit, BulkheadFull>> + Send>>;

pin_project! {
    /// Response future of [`BulkheadService`](crate::tower::BulkheadService): the
    /// call, holding its place in the bulkhead until it ends (after waiting
    /// in line for it, if the bulkhead has a `max_wait`), or the answer to a
    /// refusal.
    pub struct BulkheadFuture<S, Req, R>
    where
        S: Service<Req>,
    {
        #[pin]
        state: BulkheadState<S, Req>,
        refusal: R,
        format: ResponseFormat,
    }
}

pin_project! {
    #[project = BulkheadProj]
    enum BulkheadState<S, Req>
    where
        S: Service<Req>,
    {
        // Boxed: the service and the request are large, and only a call
        // that waits in line needs them.
        Waiting { place: WaitForPlace, call: Option<Box<(S, Req)>> },
        Called { #[pin] future: S::Future, place: Option<BulkheadPermit> },
        Refused { refused: Option<BulkheadFull> },
    }
}

impl<S: Service<Req>, Req, R> BulkheadFuture<S, Req, R> {
    pub(crate) fn called(future: S::Future, place: BulkheadPermit, refusal: R) -> Self {
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

    pub(crate) fn waiting(
        place: WaitForPlace,
        service: S,
        request: Req,
        refusal: R,
        format: ResponseFormat,
    ) -> Self {
        Self {
            state: BulkheadState::Waiting {
                place,
                call: Some(Box::new((service, request))),
            },
            refusal,
            format,
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

impl<S, Req, R> Future for BulkheadFuture<S, Req, R>
where
    S: Service<Req>,
    S::Error: Into<R::Error>,
    R: Refusal<S::Response, S::Error>,
{
    type Output = Result<S::Response, R::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                BulkheadProj::Waiting { place, call } => {
                    let place = match ready!(place.as_mut().poll(cx)) {
                        Ok(place) => place,
                        Err(full) => return Poll::Ready(this.refusal.refuse(*this.format, full)),
                    };
                    let (mut service, request) =
                        *call.take().expect("BulkheadFuture polled after completion");
                    // The service was readied before it was taken along.
                    let future = service.call(request);
                    this.state.set(BulkheadState::Called {
                        future,
                        place: Some(place),
                    });
                }
                BulkheadProj::Called { future, place } => {
                    let result = ready!(future.poll(cx));
                    drop(place.take()); // the place frees as the call ends
                    return Poll::Ready(result.map_err(Into::into));
                }
                BulkheadProj::Refused { refused } => {
                    return Poll::Ready(
                        this.refusal.refuse(
                            *this.format,
                            refused
                                .take()
                                .expect("BulkheadFuture polled after completion"),
                        ),
                    );
                }
            }
        }
    }
}

impl<S: Service<Req>, Req, R> std::fmt::Debug for BulkheadFuture<S, Req, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkheadFuture").finish_non_exhaustive()
    }
}
