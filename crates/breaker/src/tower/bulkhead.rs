//! [`BulkheadLayer`]: at most N requests in flight, the rest refused.

use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::BoxError;
use super::future::GuardedFuture;
use crate::bulkhead::Bulkhead;

/// Lets at most the bulkhead's `max_concurrent` requests into the service at
/// once; a request over that is refused in `call` with
/// [`BulkheadFull`](crate::BulkheadFull), at once. (tower's
/// `ConcurrencyLimit` can only hold `poll_ready`, which an axum router never
/// waits on.) Every service the layer makes shares the one bulkhead.
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// Guards services with `bulkhead`.
    #[must_use]
    pub fn new(bulkhead: Bulkhead) -> Self {
        Self { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            bulkhead: self.bulkhead.clone(),
        }
    }
}

/// The service [`BulkheadLayer`] makes.
#[derive(Debug, Clone)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = GuardedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.bulkhead.try_acquire() {
            Ok(place) => GuardedFuture::called(self.inner.call(request), Some(place)),
            Err(full) => GuardedFuture::refused(Box::new(full)),
        }
    }
}
