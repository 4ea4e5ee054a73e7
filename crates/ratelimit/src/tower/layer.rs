//! [`RateLimitLayer`]: applies [`RateLimit`] over one shared limiter.

use seawall_core::{Clock, MonotonicClock};
use tower::Layer;

use super::refusal::RefuseWithError;
use super::service::RateLimit;
use crate::limiter::RateLimiter;

/// Applies a shared [`RateLimiter`] to a service, in one of two modes.
///
/// - **Reject** ([`new`](Self::new)): `poll_ready` is the inner service's,
///   and `call` refuses a request over the limit at once, by default with a
///   [`RateLimited`](crate::RateLimited) error whose `retry_after` says when
///   to come back (with the `http` feature, `http::TooManyRequests` answers
///   429 instead). This is what servers want: a client over its limit
///   should hear so, not queue.
/// - **Wait** ([`waiting`](Self::waiting)): `poll_ready` stays pending
///   until the limiter admits a request, sleeping on a timer (never a busy
///   loop), so callers that respect readiness are slowed to the rate.
///   This is backpressure for clients of a rate-limited API. The permit
///   `poll_ready` takes is given back if the service is dropped before
///   `call` spends it. Waiting needs a tokio runtime with the time driver.
///
/// Every service the layer makes shares the one limiter.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use seawall_ratelimit::tower::RateLimitLayer;
/// use seawall_ratelimit::{Quota, RateLimited, RateLimiter};
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// let limiter = RateLimiter::new(Quota::per_second(1).build()?);
/// let mut svc = ServiceBuilder::new()
///     .layer(RateLimitLayer::new(limiter))
///     .service_fn(|name: &'static str| async move {
///         Ok::<_, std::convert::Infallible>(format!("hello, {name}"))
///     });
///
/// assert_eq!(svc.ready().await?.call("ada").await?, "hello, ada");
/// let err = svc.ready().await?.call("bob").await.unwrap_err();
/// let refused = err.downcast_ref::<RateLimited>().expect("a rate-limit refusal");
/// assert!(refused.retry_after().as_millis() > 900);
/// # Ok(())
/// # }
/// ```
pub struct RateLimitLayer<C = MonotonicClock, R = RefuseWithError> {
    limiter: RateLimiter<C>,
    refusal: R,
    wait: bool,
}

impl<C: Clock> RateLimitLayer<C> {
    /// Rejects requests over the limit; see the type's docs.
    #[must_use]
    pub fn new(limiter: RateLimiter<C>) -> Self {
        Self {
            limiter,
            refusal: RefuseWithError,
            wait: false,
        }
    }
}

impl<C: Clock, R> RateLimitLayer<C, R> {
    /// Switches to wait mode: `poll_ready` waits until a request is
    /// admitted.
    #[must_use]
    pub fn waiting(mut self) -> Self {
        self.wait = true;
        self
    }

    /// Answers refusals with `refusal` instead of an error.
    #[must_use]
    pub fn refusal<R2>(self, refusal: R2) -> RateLimitLayer<C, R2> {
        RateLimitLayer {
            limiter: self.limiter,
            refusal,
            wait: self.wait,
        }
    }

    /// The shared limiter.
    #[must_use]
    pub fn limiter(&self) -> &RateLimiter<C> {
        &self.limiter
    }
}

impl<C, R: Clone> Clone for RateLimitLayer<C, R> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            refusal: self.refusal.clone(),
            wait: self.wait,
        }
    }
}

impl<S, C: Clock, R: Clone> Layer<S> for RateLimitLayer<C, R> {
    type Service = RateLimit<S, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.limiter.clone(), self.refusal.clone(), self.wait)
    }
}

impl<C: Clock, R> std::fmt::Debug for RateLimitLayer<C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}
