//! [`CircuitBreakerLayer`]: a shared [`CircuitBreaker`] in front of a service.

use std::task::{Context, Poll};

use seawall_core::{Clock, DefaultClassifier, MonotonicClock};
use tower::{Layer, Service};

use super::BoxError;
use super::future::BreakerFuture;
use crate::breaker::CircuitBreaker;

/// Puts a shared [`CircuitBreaker`] in front of a service: requests are
/// refused at once while it is open (a [`BreakerError`](crate::BreakerError)
/// in a [`BoxError`]), and each response's outcome is recorded, decided by
/// the classifier (by default `Err` is a failure).
///
/// Every service the layer makes shares the one breaker.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seawall_core::ConfigError> {
/// use seawall_breaker::tower::CircuitBreakerLayer;
/// use seawall_breaker::{BreakerConfig, BreakerError, CircuitBreaker};
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// let breaker = CircuitBreaker::new(BreakerConfig::builder().count_window(2).minimum_calls(2).build()?);
/// let mut svc = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker))
///     .service_fn(|_: ()| async { Err::<(), _>(std::io::Error::other("upstream down")) });
/// for _ in 0..2 {
///     assert!(svc.ready().await.unwrap().call(()).await.is_err());
/// }
/// let refused = svc.ready().await.unwrap().call(()).await.unwrap_err();
/// assert!(matches!(refused.downcast_ref::<BreakerError>(), Some(BreakerError::Open { .. })));
/// # Ok(())
/// # }
/// ```
pub struct CircuitBreakerLayer<C = MonotonicClock, K = DefaultClassifier> {
    breaker: CircuitBreaker<C>,
    classify: K,
}

impl<C: Clock> CircuitBreakerLayer<C> {
    /// Guards services with `breaker`; `Err` responses are failures.
    #[must_use]
    pub fn new(breaker: CircuitBreaker<C>) -> Self {
        Self {
            breaker,
            classify: DefaultClassifier,
        }
    }
}

impl<C: Clock, K> CircuitBreakerLayer<C, K> {
    /// Decides outcomes with `classify` (a 4xx might be ignored).
    #[must_use]
    pub fn classify<K2>(self, classify: K2) -> CircuitBreakerLayer<C, K2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }
}

impl<C, K: Clone> Clone for CircuitBreakerLayer<C, K> {
    fn clone(&self) -> Self {
        Self {
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<S, C, K: Clone> Layer<S> for CircuitBreakerLayer<C, K> {
    type Service = CircuitBreakerService<S, C, K>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// The service [`CircuitBreakerLayer`] makes.
pub struct CircuitBreakerService<S, C = MonotonicClock, K = DefaultClassifier> {
    inner: S,
    breaker: CircuitBreaker<C>,
    classify: K,
}

impl<S: Clone, C, K: Clone> Clone for CircuitBreakerService<S, C, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<S, C, K, Req> Service<Req> for CircuitBreakerService<S, C, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Clock,
    K: seawall_core::Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BreakerFuture<S::Future, C, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => {
                BreakerFuture::called(self.inner.call(request), permit, self.classify.clone())
            }
            Err(refused) => BreakerFuture::refused(Box::new(refused)),
        }
    }
}

impl<C: Clock, K> std::fmt::Debug for CircuitBreakerLayer<C, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S: std::fmt::Debug, C: Clock, K> std::fmt::Debug for CircuitBreakerService<S, C, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}
