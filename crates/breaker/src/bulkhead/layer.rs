//! [`BulkheadLayer`]: at most N requests in flight, the rest refused.

use seawall_core::RefuseWithError;
use tower::Layer;

use super::service::BulkheadService;
use crate::bulkhead::Bulkhead;

/// Lets at most the bulkhead's `max_concurrent` requests into the service at
/// once. `poll_ready` takes a place first, then asks the inner service; the
/// place is held until the response is done, or given back if the service
/// is dropped before `call`.
///
/// When every place is taken, a bulkhead without a
/// [`max_wait`](crate::BulkheadBuilder::max_wait) refuses: `poll_ready` is
/// ready at once, without asking the inner service, and `call` refuses. A
/// bulkhead with a `max_wait` (and room in its line) waits in line in
/// `poll_ready`, first come first served, for at most that long: backpressure
/// with a deadline. If no place frees up in time it is ready, and `call`
/// refuses. Every service the layer makes shares the one bulkhead.
///
/// A refusal is answered by the [`Refusal`](seawall_core::Refusal): by default a
/// [`Refused`](seawall_core::Refused) error (kind `Overloaded`, reason
/// [`BulkheadFull`](crate::BulkheadFull)) in a [`BoxError`](crate::tower::BoxError); with
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
        BulkheadService::new(inner, self.bulkhead.clone(), self.refusal.clone())
    }
}
