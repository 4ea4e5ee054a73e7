//! [`RateLimitLayer`]: applies [`RateLimit`] over one shared limiter.

use seawall_core::{Clock, MonotonicClock, RefuseWithError};
use tower::Layer;

use super::cost::One;
use super::service::{Mode, RateLimit};
use crate::limiter::RateLimiter;

/// Applies a shared [`RateLimiter`] to a service, in one of two modes.
///
/// - **Reject** ([`new`](Self::new)): a request over the limit is refused
///   at once, by default with a [`Refused`](seawall_core::Refused) error
///   (kind `RateLimited`) whose `retry_after` says when to come back, or
///   with a `429 Too Many Requests` ([`http`](Self::http), feature `http`).
///   This is what servers want: a client over its limit should hear so,
///   not queue. `poll_ready` takes the permit; when there is none it is
///   ready at once, without asking the inner service, and `call` refuses:
///   an inner service that is not ready (a full `Buffer`, a pool) never
///   delays a refusal. A permit taken and never spent (the service dropped
///   before `call`) goes back to the limiter.
/// - **Wait** ([`waiting`](Self::waiting)): `poll_ready` stays pending
///   until the limiter admits a request, sleeping on a timer (never a busy
///   loop), so callers that respect readiness are slowed to the rate.
///   This is backpressure for clients of a rate-limited API. The permit is
///   given back likewise. Waiting needs a tokio runtime with the time
///   driver.
///
/// Every service the layer makes shares the one limiter.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use seawall_core::{RefusalKind, Refused};
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
/// let refused = Refused::find(&*err).expect("a seawall refusal");
/// assert_eq!(refused.kind(), RefusalKind::RateLimited);
/// assert!(refused.retry_after().unwrap().as_millis() > 900);
/// assert!(refused.downcast_ref::<RateLimited>().is_some());
/// # Ok(())
/// # }
/// ```
pub struct RateLimitLayer<C: 'static = MonotonicClock, R = RefuseWithError, H = (), W = One> {
    limiter: RateLimiter<C>,
    refusal: R,
    report: H,
    mode: Mode,
    cost: W,
}

impl<C: Clock> RateLimitLayer<C> {
    /// Rejects requests over the limit with an error; see the type's docs.
    #[must_use]
    pub fn new(limiter: RateLimiter<C>) -> Self {
        Self {
            limiter,
            refusal: RefuseWithError,
            report: (),
            mode: Mode::Reject,
            cost: One,
        }
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl<C: Clock> RateLimitLayer<C, seawall_core::http::RefuseWithResponse> {
    /// Rejects HTTP requests over the limit with `429 Too Many Requests`
    /// and `Retry-After`; the services keep the inner service's error type,
    /// so the layer drops into an axum router as it is. Add the `RateLimit`
    /// headers with [`headers`](Self::headers).
    #[must_use]
    pub fn http(limiter: RateLimiter<C>) -> Self {
        RateLimitLayer::new(limiter).refusal(seawall_core::http::RefuseWithResponse)
    }
}

impl<C: Clock, R, H, W> RateLimitLayer<C, R, H, W> {
    /// Switches to wait mode: `poll_ready` waits until a request is
    /// admitted.
    #[must_use]
    pub fn waiting(mut self) -> Self {
        self.mode = Mode::Wait;
        self
    }

    /// Switches to a dry run: requests over the limit are counted and
    /// reported (the refused counter, the `RateLimit` headers, a `tracing`
    /// event at `info` with `dry_run = true`) but let through, never
    /// refused nor made to wait: how a new limit is tried on live traffic
    /// before it is enforced.
    #[must_use]
    pub fn dry_run(mut self) -> Self {
        self.mode = Mode::DryRun;
        self
    }

    /// Charges each request what `cost` says instead of one token (see
    /// [`Cost`](super::Cost)). `poll_ready` still takes one token (or waits for one);
    /// `call` takes the rest at once, refusing the whole request when it
    /// does not fit. In wait mode the rest is taken as debt that the callers
    /// behind wait for, so the rate holds over time though a costly request
    /// passes after waiting for its first token only. A cost over the burst
    /// is a final refusal. `poll_ready` decides before the request is seen,
    /// so in reject mode a request that costs nothing is still refused when
    /// the limiter has no token left.
    #[must_use]
    pub fn cost<W2>(self, cost: W2) -> RateLimitLayer<C, R, H, W2> {
        RateLimitLayer {
            limiter: self.limiter,
            refusal: self.refusal,
            report: self.report,
            mode: self.mode,
            cost,
        }
    }

    /// Answers refusals with `refusal` (such as `RefuseWithResponse`,
    /// feature `http`).
    #[must_use]
    pub fn refusal<R2>(self, refusal: R2) -> RateLimitLayer<C, R2, H, W> {
        RateLimitLayer {
            limiter: self.limiter,
            refusal,
            report: self.report,
            mode: self.mode,
            cost: self.cost,
        }
    }

    /// Tells every response about the limit with `report` (such as
    /// `http::RateLimitHeaders`).
    #[must_use]
    pub fn headers<H2>(self, report: H2) -> RateLimitLayer<C, R, H2, W> {
        RateLimitLayer {
            limiter: self.limiter,
            refusal: self.refusal,
            report,
            mode: self.mode,
            cost: self.cost,
        }
    }

    /// The shared limiter.
    #[must_use]
    pub fn limiter(&self) -> &RateLimiter<C> {
        &self.limiter
    }
}

impl<C: 'static, R: Clone, H: Clone, W: Clone> Clone for RateLimitLayer<C, R, H, W> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            refusal: self.refusal.clone(),
            report: self.report.clone(),
            mode: self.mode,
            cost: self.cost.clone(),
        }
    }
}

impl<S, C: Clock, R: Clone, H: Clone, W: Clone> Layer<S> for RateLimitLayer<C, R, H, W> {
    type Service = RateLimit<S, C, R, H, W>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(
            inner,
            self.limiter.clone(),
            self.refusal.clone(),
            self.report.clone(),
            self.mode,
            self.cost.clone(),
        )
    }
}

impl<C: Clock, R, H, W> std::fmt::Debug for RateLimitLayer<C, R, H, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}
