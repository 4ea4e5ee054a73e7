//! [`BulkheadLayer`]: at most N requests in flight, the rest refused.

use std::task::{Context, Poll};

use seawall_core::{Refusal, RefusalFormat, RefuseWithError};
use tower::{Layer, Service};

use super::future::BulkheadFuture;
use crate::bulkhead::{Bulkhead, BulkheadFull, BulkheadPermit};

/// Lets at most the bulkhead's `max_concurrent` requests into the service at
/// once. `poll_ready` takes a place (as tower's `ConcurrencyLimit` does)
/// and then asks the inner service; the place is held until the response
/// is done, or given back if the service is dropped before `call`.
///
/// When every place is taken, a bulkhead without a
/// [`max_wait`](crate::BulkheadBuilder::max_wait) refuses: `poll_ready` is
/// ready at once, without asking the inner service, and `call` refuses. A
/// bulkhead with a `max_wait` (and room in its line) lets the request wait
/// in its line instead: `poll_ready` asks the inner service, and `call`
/// moves the readied service into the response future, which waits for a
/// place and then calls it (so the service must be `Clone`; a clone serves
/// the next request, as tower's docs advise). Every service the layer
/// makes shares the one bulkhead.
///
/// A refusal is answered by the [`Refusal`]: by default a
/// [`Refused`](seawall_core::Refused) error (kind `Overloaded`, reason
/// [`BulkheadFull`]) in a [`BoxError`](super::BoxError); with
/// [`http`](Self::http) (feature `http`), `503 Service Unavailable`.
#[derive(Debug, Clone)]
pub struct BulkheadLayer<R = RefuseWithError> {
    bulkhead: Bulkhead,
    refusal: R,
}

impl BulkheadLayer {
    /// Guards services with `bulkhead`; refusals are errors.
    #[must_use]
    pub fn new(bulkhead: Bulkhead) -> Self {
        Self {
            bulkhead,
            refusal: RefuseWithError,
        }
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl BulkheadLayer<seawall_core::http::RefuseWithResponse> {
    /// Guards HTTP services with `bulkhead`, answering refusals with `503
    /// Service Unavailable`; the services keep the inner service's error
    /// type, so the layer drops into axum routers as it is.
    #[must_use]
    pub fn http(bulkhead: Bulkhead) -> Self {
        BulkheadLayer::new(bulkhead).refusal(seawall_core::http::RefuseWithResponse)
    }
}

impl<R> BulkheadLayer<R> {
    /// Answers refusals with `refusal` (such as `RefuseWithResponse`, feature
    /// `http`).
    #[must_use]
    pub fn refusal<R2>(self, refusal: R2) -> BulkheadLayer<R2> {
        BulkheadLayer {
            bulkhead: self.bulkhead,
            refusal,
        }
    }
}

impl<S, R: Clone> Layer<S> for BulkheadLayer<R> {
    type Service = BulkheadService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            bulkhead: self.bulkhead.clone(),
            refusal: self.refusal.clone(),
            ready: Readiness::Unknown,
        }
    }
}

/// The service [`BulkheadLayer`] makes.
#[derive(Debug)]
pub struct BulkheadService<S, R = RefuseWithError> {
    inner: S,
    bulkhead: Bulkhead,
    refusal: R,
    /// What `poll_ready` decided, for `call`.
    ready: Readiness,
}

/// What `poll_ready` decided.
#[derive(Debug, Default)]
enum Readiness {
    /// Nothing yet.
    #[default]
    Unknown,
    /// A place, held for the call.
    Place(BulkheadPermit),
    /// Full, with room in the line: the call waits there.
    Wait,
    /// Full: the call is refused.
    Refused(BulkheadFull),
}

impl<S, R> BulkheadService<S, R> {
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

    /// A place now, or what to do without one.
    fn decide(&self) -> Readiness {
        match self.bulkhead.try_acquire() {
            Ok(place) => Readiness::Place(place),
            Err(_) if self.bulkhead.has_room_in_line() => Readiness::Wait,
            Err(full) => Readiness::Refused(full),
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

impl<S, R, Req> Service<Req> for BulkheadService<S, R>
where
    S: Service<Req> + Clone,
    S::Error: Into<R::Error>,
    R: Refusal<S::Response, S::Error> + RefusalFormat<Req>,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = BulkheadFuture<S, Req, R>;

    /// Takes a place, then asks the inner service; ready at once, without
    /// asking it, when the bulkhead will refuse.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if matches!(self.ready, Readiness::Unknown) {
            self.ready = self.decide();
        }
        if matches!(self.ready, Readiness::Refused(_)) {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let refusal = self.refusal.clone();
        let ready = match std::mem::take(&mut self.ready) {
            // A caller that skipped `poll_ready`.
            Readiness::Unknown => self.decide(),
            decided => decided,
        };
        match ready {
            Readiness::Place(place) => {
                BulkheadFuture::called(self.inner.call(request), place, refusal)
            }
            Readiness::Refused(full) => {
                let format = refusal.format(&request);
                BulkheadFuture::refused(full, refusal, format)
            }
            Readiness::Wait | Readiness::Unknown => {
                // Take the readied service along; a clone serves the next
                // request.
                let format = refusal.format(&request);
                let fresh = self.inner.clone();
                let readied = std::mem::replace(&mut self.inner, fresh);
                let bulkhead = self.bulkhead.clone();
                let place = Box::pin(async move { bulkhead.acquire().await });
                BulkheadFuture::waiting(place, readied, request, refusal, format)
            }
        }
    }
}
