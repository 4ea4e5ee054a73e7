//! [`BulkheadLayer`]: at most N requests in flight, the rest refused.

use std::task::{Context, Poll};

use seawall_core::{Refusal, RefuseWithError};
use tower::{Layer, Service};

use super::future::BulkheadFuture;
use crate::bulkhead::{Bulkhead, BulkheadFull};

/// Lets at most the bulkhead's `max_concurrent` requests into the service at
/// once. A request over that is refused in `call`, at once, or, when the
/// bulkhead has a [`max_wait`](crate::BulkheadBuilder::max_wait), waits in
/// its line first (the service then needs `Clone`: the readied service goes
/// into the waiting future and a clone stays behind, as tower's docs
/// advise). tower's `ConcurrencyLimit` can only hold `poll_ready`, which an
/// axum router never waits on. Every service the layer makes shares the one
/// bulkhead.
///
/// A refusal is answered by the [`Refusal`]: by default a [`BulkheadFull`]
/// in a [`BoxError`](super::BoxError); with `RefuseWithResponse` (feature
/// `http`), `503 Service Unavailable`.
#[derive(Debug, Clone)]
pub struct BulkheadLayer<R = RefuseWithError> {
    bulkhead: Bulkhead,
    refusal: R,
}

impl BulkheadLayer {
    /// Guards services with `bulkhead`.
    #[must_use]
    pub fn new(bulkhead: Bulkhead) -> Self {
        Self {
            bulkhead,
            refusal: RefuseWithError,
        }
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
        }
    }
}

/// The service [`BulkheadLayer`] makes.
#[derive(Debug, Clone)]
pub struct BulkheadService<S, R = RefuseWithError> {
    inner: S,
    bulkhead: Bulkhead,
    refusal: R,
}

impl<S, R, Req> Service<Req> for BulkheadService<S, R>
where
    S: Service<Req> + Clone,
    R: Refusal<BulkheadFull, S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = BulkheadFuture<S, Req, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(R::inner_error)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let refusal = self.refusal.clone();
        match self.bulkhead.try_acquire() {
            Ok(place) => BulkheadFuture::called(self.inner.call(request), place, refusal),
            Err(full) if !self.bulkhead.waits() => BulkheadFuture::refused(full, refusal),
            Err(_) => {
                // Take the readied service along; a clone serves the next
                // request.
                let fresh = self.inner.clone();
                let readied = std::mem::replace(&mut self.inner, fresh);
                let bulkhead = self.bulkhead.clone();
                let place = Box::pin(async move { bulkhead.acquire().await });
                BulkheadFuture::waiting(place, readied, request, refusal)
            }
        }
    }
}
