//! [`CircuitBreakerLayer`]: a shared [`CircuitBreaker`] in front of a service.

use seawall_core::{Clock, DefaultClassifier, MonotonicClock, RefuseWithError};
use tower::Layer;

use super::service::CircuitBreakerService;
use crate::breaker::CircuitBreaker;

/// Puts a shared [`CircuitBreaker`] in front of a service: requests are
/// refused at once while it is open, and each response's outcome is
/// recorded, decided by the classifier (by default `Err` is a failure, but
/// a refusal from a seawall layer inside is not).
///
/// A refusal is answered by the [`Refusal`](seawall_core::Refusal): by default a
/// [`Refused`](seawall_core::Refused) error whose reason is a
/// [`BreakerRefusal`](crate::BreakerRefusal) (or, past the breaker's own
/// timeout, a [`TimedOut`](crate::TimedOut)), in a [`BoxError`](crate::tower::BoxError). With the `http`
/// feature, [`CircuitBreakerLayer::http`] classifies a `5xx` response as a
/// failure and answers refusals with `503 Service Unavailable` and
/// `Retry-After`.
///
/// While the breaker refuses, `poll_ready` is ready at once without asking
/// the inner service, and `call` refuses: a breaker in front of a stuck
/// inner service (a full `Buffer`, a pool, a tonic `Channel`) still
/// answers. Every service the layer makes shares the one breaker.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seawall_core::ConfigError> {
/// use seawall_breaker::tower::CircuitBreakerLayer;
/// use seawall_breaker::{BreakerConfig, BreakerRefusal, CircuitBreaker};
/// use seawall_core::{RefusalKind, Refused};
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// let breaker = CircuitBreaker::new(BreakerConfig::builder().count_window(2).minimum_calls(2).build()?);
/// let mut svc = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker))
///     .service_fn(|_: ()| async { Err::<(), _>(std::io::Error::other("upstream down")) });
/// for _ in 0..2 {
///     assert!(svc.ready().await.unwrap().call(()).await.is_err());
/// }
/// let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
/// let refused = Refused::find(&*err).expect("a seawall refusal");
/// assert_eq!(refused.kind(), RefusalKind::Unavailable);
/// assert!(matches!(refused.downcast_ref::<BreakerRefusal>(), Some(BreakerRefusal::Open { .. })));
/// # Ok(())
/// # }
/// ```
pub struct CircuitBreakerLayer<
    C: 'static = MonotonicClock,
    K = DefaultClassifier,
    R = RefuseWithError,
> {
    breaker: CircuitBreaker<C>,
    classify: K,
    refusal: R,
}

impl<C: Clock> CircuitBreakerLayer<C> {
    /// Guards services with `breaker`; `Err` responses are failures.
    #[must_use]
    pub fn new(breaker: CircuitBreaker<C>) -> Self {
        Self {
            breaker,
            classify: DefaultClassifier,
            refusal: RefuseWithError,
        }
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl<C: Clock>
    CircuitBreakerLayer<
        C,
        seawall_core::http::HttpClassifier,
        seawall_core::http::RefuseWithResponse,
    >
{
    /// Guards HTTP services with `breaker`: a `5xx`, `408` or `429`
    /// response (or an error) is a failure, a refusal from a seawall layer
    /// inside is not (see [`HttpClassifier`](seawall_core::http::HttpClassifier)
    /// for the switch that counts `408` and `429` as successes), and a
    /// refused request gets `503 Service Unavailable`, with `Retry-After`
    /// set to the refusal's wait (the time left in open, or the most a full
    /// half-open period may still last). The services keep the inner service's
    /// error type, so the layer drops into axum routers as it is.
    #[must_use]
    pub fn http(breaker: CircuitBreaker<C>) -> Self {
        Self {
            breaker,
            classify: seawall_core::http::HttpClassifier::new(),
            refusal: seawall_core::http::RefuseWithResponse,
        }
    }
}

impl<C: Clock, K, R> CircuitBreakerLayer<C, K, R> {
    /// Decides outcomes with `classify` (a 4xx might be ignored).
    #[must_use]
    pub fn classify<K2>(self, classify: K2) -> CircuitBreakerLayer<C, K2, R> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
            refusal: self.refusal,
        }
    }

    /// Answers refusals with `refusal` (such as `RefuseWithResponse`, feature
    /// `http`).
    #[must_use]
    pub fn refusal<R2>(self, refusal: R2) -> CircuitBreakerLayer<C, K, R2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify: self.classify,
            refusal,
        }
    }
}

impl<C: 'static, K: Clone, R: Clone> Clone for CircuitBreakerLayer<C, K, R> {
    fn clone(&self) -> Self {
        Self {
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

impl<S, C: 'static, K: Clone, R: Clone> Layer<S> for CircuitBreakerLayer<C, K, R> {
    type Service = CircuitBreakerService<S, C, K, R>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::new(
            inner,
            self.breaker.clone(),
            self.classify.clone(),
            self.refusal.clone(),
        )
    }
}

impl<C: Clock, K, R> std::fmt::Debug for CircuitBreakerLayer<C, K, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}
