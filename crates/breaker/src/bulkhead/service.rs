//! [`BulkheadService`]: the service [`BulkheadLayer`](crate::tower::BulkheadLayer) makes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use seawall_core::{Refusal, RefusalFormat, RefuseWithError};
use tower::Service;

use super::future::BulkheadFuture;
use crate::bulkhead::{Bulkhead, BulkheadFull, BulkheadPermit};

/// The service [`BulkheadLayer`](crate::tower::BulkheadLayer) makes.
pub struct BulkheadService<S, R = RefuseWithError> {
    inner: S,
    bulkhead: Bulkhead,
    refusal: R,
    /// What `poll_ready` decided, for `call`.
    ready: Readiness,
}

/// A wait in the bulkhead's line for a place.
type LineWait = Pin<Box<dyn Future<Output = Result<BulkheadPermit, BulkheadFull>> + Send + Sync>>;

/// What `poll_ready` decided.
#[derive(Default)]
enum Readiness {
    /// Nothing yet.
    #[default]
    Unknown,
    /// Waiting in the bulkhead's line for a place.
    Waiting(LineWait),
    /// A place, held for the call.
    Place(BulkheadPermit),
    /// Full: the call is refused.
    Refused(BulkheadFull),
}

impl<S, R> BulkheadService<S, R> {
    pub(super) fn new(inner: S, bulkhead: Bulkhead, refusal: R) -> Self {
        Self {
            inner,
            bulkhead,
            refusal,
            ready: Readiness::Unknown,
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

    /// Consumes `self`, returning the inner service (a place it held is
    /// given back).
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Waits (when the bulkhead has a line) until there is a place or a
    /// refusal. After a refusal, a poll tries again for a free place, but
    /// does not wait in line a second time for the same request.
    fn poll_place(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.ready {
                Readiness::Place(_) => return Poll::Ready(()),
                Readiness::Refused(_) => {
                    if let Ok(place) = self.bulkhead.try_acquire() {
                        self.ready = Readiness::Place(place);
                    }
                    return Poll::Ready(());
                }
                Readiness::Unknown => match self.bulkhead.try_acquire() {
                    Ok(place) => self.ready = Readiness::Place(place),
                    Err(_) if self.bulkhead.has_room_in_line() => {
                        let bulkhead = self.bulkhead.clone();
                        self.ready =
                            Readiness::Waiting(Box::pin(async move { bulkhead.acquire().await }));
                    }
                    Err(full) => {
                        self.ready = Readiness::Refused(full);
                        return Poll::Ready(());
                    }
                },
                Readiness::Waiting(line) => match ready!(line.as_mut().poll(cx)) {
                    Ok(place) => self.ready = Readiness::Place(place),
                    Err(full) => {
                        self.ready = Readiness::Refused(full);
                        return Poll::Ready(());
                    }
                },
            }
        }
    }
}

impl<S: Clone, R: Clone> Clone for BulkheadService<S, R> {
    /// A clone shares the bulkhead; the place it holds is its own.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            bulkhead: self.bulkhead.clone(),
            refusal: self.refusal.clone(),
            ready: Readiness::Unknown,
        }
    }
}

impl<S: std::fmt::Debug, R> std::fmt::Debug for BulkheadService<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkheadService")
            .field("inner", &self.inner)
            .field("bulkhead", &self.bulkhead)
            .finish_non_exhaustive()
    }
}

impl<S, R, Req> Service<Req> for BulkheadService<S, R>
where
    S: Service<Req>,
    S::Error: Into<R::Error>,
    R: Refusal<S::Response, S::Error> + RefusalFormat<Req>,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = BulkheadFuture<S::Future, R>;

    /// Takes a place (waiting in line for it when the bulkhead has one),
    /// then asks the inner service; ready at once, without asking it, when
    /// the bulkhead refuses.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.poll_place(cx));
        if matches!(self.ready, Readiness::Refused(_)) {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let refusal = self.refusal.clone();
        let decided = match std::mem::take(&mut self.ready) {
            Readiness::Place(place) => Ok(place),
            Readiness::Refused(full) => Err(full),
            // A caller that did not wait for `poll_ready`: decided now, and
            // the request passed on as the caller sent it.
            Readiness::Unknown | Readiness::Waiting(_) => self.bulkhead.try_acquire(),
        };
        match decided {
            Ok(place) => BulkheadFuture::called(self.inner.call(request), place, refusal),
            Err(full) => {
                let format = refusal.format(&request);
                BulkheadFuture::refused(full, refusal, format)
            }
        }
    }
}
