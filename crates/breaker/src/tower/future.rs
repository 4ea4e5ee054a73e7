//! The response futures of the layers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::{Classify, Clock};

use super::BoxError;
use crate::breaker::OwnedPermit;
use crate::bulkhead::BulkheadPermit;

pin_project! {
    /// Response future of [`CircuitBreakerService`](super::CircuitBreakerService):
    /// records the outcome when the call ends (a dropped future counts as
    /// ignored).
    pub struct BreakerFuture<F, C: Clock, K> {
        #[pin]
        state: BreakerState<F, C, K>,
    }
}

pin_project! {
    #[project = BreakerProj]
    enum BreakerState<F, C: Clock, K> {
        Called { #[pin] future: F, permit: Option<OwnedPermit<C>>, classify: K },
        Refused { error: Option<BoxError> },
    }
}

impl<F, C: Clock, K> BreakerFuture<F, C, K> {
    pub(crate) fn called(future: F, permit: OwnedPermit<C>, classify: K) -> Self {
        Self {
            state: BreakerState::Called {
                future,
                permit: Some(permit),
                classify,
            },
        }
    }

    pub(crate) fn refused(error: BoxError) -> Self {
        Self {
            state: BreakerState::Refused { error: Some(error) },
        }
    }
}

impl<F, T, E, C, K> Future for BreakerFuture<F, C, K>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Clock,
    K: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            BreakerProj::Called {
                future,
                permit,
                classify,
            } => {
                let result = ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(classify.classify(&result));
                }
                Poll::Ready(result.map_err(Into::into))
            }
            BreakerProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .expect("BreakerFuture polled after completion"))),
        }
    }
}

pin_project! {
    /// Response future of [`BulkheadService`](super::BulkheadService) and
    /// [`TimeoutService`](super::TimeoutService): the call, holding what it
    /// needs until it ends, or a ready refusal.
    pub struct GuardedFuture<F> {
        #[pin]
        state: GuardedState<F>,
    }
}

pin_project! {
    #[project = GuardedProj]
    enum GuardedState<F> {
        Called { #[pin] future: F, place: Option<BulkheadPermit> },
        Refused { error: Option<BoxError> },
    }
}

impl<F> GuardedFuture<F> {
    pub(crate) fn called(future: F, place: Option<BulkheadPermit>) -> Self {
        Self {
            state: GuardedState::Called { future, place },
        }
    }

    pub(crate) fn refused(error: BoxError) -> Self {
        Self {
            state: GuardedState::Refused { error: Some(error) },
        }
    }
}

impl<F, T, E> Future for GuardedFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            GuardedProj::Called { future, place } => {
                let result = ready!(future.poll(cx));
                drop(place.take()); // the bulkhead place frees as the call ends
                Poll::Ready(result.map_err(Into::into))
            }
            GuardedProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .expect("GuardedFuture polled after completion"))),
        }
    }
}

impl<F, C: Clock, K> std::fmt::Debug for BreakerFuture<F, C, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerFuture").finish_non_exhaustive()
    }
}

impl<F> std::fmt::Debug for GuardedFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedFuture").finish_non_exhaustive()
    }
}
