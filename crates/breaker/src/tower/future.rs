//! The response futures of the layers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::{Classify, Clock, Refusal, ResponseFormat};
use tower::Service;

use crate::breaker::OwnedPermit;
use crate::bulkhead::{BulkheadFull, BulkheadPermit};
use crate::error::BreakerError;
use crate::timeout::Elapsed;

pin_project! {
    /// Response future of [`CircuitBreakerService`](super::CircuitBreakerService):
    /// records the outcome when the call ends (a dropped future counts as
    /// ignored) or when the breaker's timeout passes (a failure), or answers
    /// the refusal.
    pub struct BreakerFuture<F, C: Clock, K, R> {
        #[pin]
        state: BreakerState<F, C, K>,
        refusal: R,
        format: ResponseFormat,
    }
}

pin_project! {
    #[project = BreakerProj]
    enum BreakerState<F, C: Clock, K> {
        Called {
            #[pin]
            future: F,
            // The breaker's timeout, if it has one, started when the call
            // first waits (calls that finish at once never read the clock).
            deadline: Option<Pin<Box<tokio::time::Sleep>>>,
            permit: Option<OwnedPermit<C>>,
            classify: K,
        },
        Refused { refused: Option<BreakerError> },
    }
}

impl<F, C: Clock, K, R> BreakerFuture<F, C, K, R> {
    pub(crate) fn called(
        future: F,
        permit: OwnedPermit<C>,
        classify: K,
        refusal: R,
        format: ResponseFormat,
    ) -> Self {
        Self {
            state: BreakerState::Called {
                future,
                deadline: None,
                permit: Some(permit),
                classify,
            },
            refusal,
            format,
        }
    }

    pub(crate) fn refused(refused: BreakerError, refusal: R, format: ResponseFormat) -> Self {
        Self {
            state: BreakerState::Refused {
                refused: Some(refused),
            },
            refusal,
            format,
        }
    }
}

impl<F, T, E, C, K, R> Future for BreakerFuture<F, C, K, R>
where
    F: Future<Output = Result<T, E>>,
    E: Into<R::Error>,
    C: Clock,
    K: Classify<T, E>,
    R: Refusal<T, E>,
{
    type Output = Result<T, R::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            BreakerProj::Called {
                future,
                deadline,
                permit,
                classify,
            } => {
                if let Poll::Ready(result) = future.poll(cx) {
                    if let Some(permit) = permit.take() {
                        permit.record(classify.classify(&result));
                    }
                    return Poll::Ready(result.map_err(Into::into));
                }
                if deadline.is_none() {
                    let after = permit.as_ref().and_then(OwnedPermit::timeout);
                    *deadline = after.map(|after| Box::pin(tokio::time::sleep(after)));
                }
                let Some(deadline) = deadline.as_mut() else {
                    return Poll::Pending;
                };
                ready!(deadline.as_mut().poll(cx));
                let permit = permit
                    .take()
                    .expect("BreakerFuture polled after completion");
                let after = permit.timeout().unwrap_or_default();
                permit.failure();
                Poll::Ready(
                    this.refusal
                        .refuse(*this.format, BreakerError::TimedOut { after }),
                )
            }
            BreakerProj::Refused { refused } => Poll::Ready(
                this.refusal.refuse(
                    *this.format,
                    refused
                        .take()
                        .expect("BreakerFuture polled after completion"),
                ),
            ),
        }
    }
}

/// A place in the line of a bulkhead.
type WaitForPlace = Pin<Box<dyn Future<Output = Result<BulkheadPermit, BulkheadFull>> + Send>>;

pin_project! {
    /// Response future of [`BulkheadService`](super::BulkheadService): the
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
        Waiting { place: WaitForPlace, service: Option<(S, Req)> },
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
                service: Some((service, request)),
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
                BulkheadProj::Waiting { place, service } => {
                    let place = match ready!(place.as_mut().poll(cx)) {
                        Ok(place) => place,
                        Err(full) => return Poll::Ready(this.refusal.refuse(*this.format, full)),
                    };
                    let (mut service, request) = service
                        .take()
                        .expect("BulkheadFuture polled after completion");
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

pin_project! {
    /// Response future of [`TimeoutService`](super::TimeoutService): the
    /// call under its deadline.
    pub struct TimeoutFuture<F, R> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        after: Duration,
        refusal: R,
        format: ResponseFormat,
    }
}

impl<F, R> TimeoutFuture<F, R> {
    pub(crate) fn new(
        inner: tokio::time::Timeout<F>,
        after: Duration,
        refusal: R,
        format: ResponseFormat,
    ) -> Self {
        Self {
            inner,
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
        match ready!(this.inner.poll(cx)) {
            Ok(result) => Poll::Ready(result.map_err(Into::into)),
            Err(_) => Poll::Ready(
                this.refusal
                    .refuse(*this.format, Elapsed { after: *this.after }),
            ),
        }
    }
}

impl<F, C: Clock, K, R> std::fmt::Debug for BreakerFuture<F, C, K, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerFuture").finish_non_exhaustive()
    }
}

impl<S: Service<Req>, Req, R> std::fmt::Debug for BulkheadFuture<S, Req, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkheadFuture").finish_non_exhaustive()
    }
}

impl<F, R> std::fmt::Debug for TimeoutFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutFuture")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}
