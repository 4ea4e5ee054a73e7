//! [`CircuitBreakerService`]: the service [`CircuitBreakerLayer`](crate::tower::CircuitBreakerLayer) makes.

use std::task::{Context, Poll};

use seawall_core::{
    Classify, Clock, DefaultClassifier, MonotonicClock, Refusal, RefusalFormat, RefuseWithError,
};
use tower::Service;

use super::future::BreakerFuture;
use crate::breaker::{CircuitBreaker, FailOnUnwind};

/// The service [`CircuitBreakerLayer`](crate::tower::CircuitBreakerLayer) makes.
pub struct CircuitBreakerService<
    S,
    C: 'static = MonotonicClock,
    K = DefaultClassifier,
    R = RefuseWithError,
> {
    inner: S,
    breaker: CircuitBreaker<C>,
    classify: K,
    refusal: R,
    /// The refusal `poll_ready` found, answered by `call`.
    refused: Option<crate::error::BreakerRefusal>,
}

impl<S, C: 'static, K, R> CircuitBreakerService<S, C, K, R> {
    pub(super) fn new(inner: S, breaker: CircuitBreaker<C>, classify: K, refusal: R) -> Self {
        Self {
            inner,
            breaker,
            classify,
            refusal,
            refused: None,
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

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C: 'static, K: Clone, R: Clone> Clone for CircuitBreakerService<S, C, K, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
            refusal: self.refusal.clone(),
            refused: None,
        }
    }
}

impl<S, C, K, R, Req> Service<Req> for CircuitBreakerService<S, C, K, R>
where
    S: Service<Req>,
    S::Error: Into<R::Error>,
    C: Clock,
    K: Classify<S::Response, S::Error> + Clone,
    R: Refusal<S::Response, S::Error> + RefusalFormat<Req>,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = BreakerFuture<S::Future, C, K, R>;

    /// Ready at once, without asking the inner service, when the breaker
    /// refuses now; otherwise as ready as the inner service. Decided afresh
    /// at every poll, so a breaker that closed meanwhile forwards again.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.refused = self.breaker.refusal();
        if self.refused.is_some() {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let refusal = self.refusal.clone();
        let decided = match self.refused.take() {
            // Refused in `poll_ready` (at its last poll), without readying
            // the inner service: refused now.
            Some(found) => Err(self.breaker.refused(found)),
            None => self.breaker.try_acquire_owned(),
        };
        match decided {
            Ok(permit) => {
                // Read only when the breaker's timeout may refuse later.
                let format = if permit.timeout().is_some() {
                    refusal.format(&request)
                } else {
                    seawall_core::ResponseFormat::default()
                };
                // A panic in the inner `call` is a failure of the call.
                let mut permit = Some(permit);
                let armed = FailOnUnwind::arm(&mut permit);
                let future = self.inner.call(request);
                let permit = armed.disarm().take();
                BreakerFuture::called(future, permit, self.classify.clone(), refusal, format)
            }
            Err(refused) => {
                let format = refusal.format(&request);
                BreakerFuture::refused(refused, refusal, format)
            }
        }
    }
}

impl<S: std::fmt::Debug, C: Clock, K, R> std::fmt::Debug for CircuitBreakerService<S, C, K, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}
