//! [`KeyedRateLimitLayer`] and [`KeyedRateLimit`]: a limit per key taken
//! from each request.

use std::hash::Hash;
use std::task::{Context, Poll};

use seawall_core::{Clock, MonotonicClock, Refusal, RefusalFormat, RefuseWithError};
use tower::{Layer, Service};

use super::future::ResponseFuture;
use super::report::{Annotate, Report};
use crate::keyed::KeyedRateLimiter;

/// Takes the rate-limit key from a request.
///
/// Implemented for closures `Fn(&Request) -> Key`; the `http` feature adds
/// extractors by peer IP, header and route.
pub trait KeyExtractor<Request> {
    /// The key: a client IP, an API key, a route.
    type Key;

    /// Returns the key of `request`.
    fn extract(&self, request: &Request) -> Self::Key;
}

impl<F, Request, K> KeyExtractor<Request> for F
where
    F: Fn(&Request) -> K,
{
    type Key = K;

    fn extract(&self, request: &Request) -> K {
        self(request)
    }
}

/// Applies a [`KeyedRateLimiter`] to a service: each request is checked
/// against the bucket of the key `extract` takes from it, and refused at
/// once when that key is over its limit (there is no wait mode: holding a
/// request per client is what a limit should prevent).
///
/// Refusals are answered as for [`RateLimitLayer`](super::RateLimitLayer):
/// an error by default, `429` with [`http`](Self::http).
///
/// # Readiness
///
/// The key is known only in `call`, so `poll_ready` cannot know whether the
/// request will be refused: it is the inner service's, as backpressure
/// should be. A client over its limit is refused in `call`, without
/// reaching the inner service, but only once the inner service is ready to
/// take a request: any layer inside whose `poll_ready` waits (a bulkhead
/// with a line, a concurrency limit) makes over-limit requests wait too,
/// and hold a place there while they do. So keep what waits away from
/// right behind this layer: a fail-fast bulkhead, or a `Buffer` (whose
/// `poll_ready` waits only for room in its queue) between this layer and
/// whatever waits.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use seawall_core::{RefusalKind, Refused};
/// use seawall_ratelimit::tower::KeyedRateLimitLayer;
/// use seawall_ratelimit::{KeyedRateLimiter, Quota};
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// struct Request { user: &'static str }
///
/// let limiter = KeyedRateLimiter::new(Quota::per_minute(1).build()?);
/// let mut svc = ServiceBuilder::new()
///     .layer(KeyedRateLimitLayer::new(limiter, |req: &Request| req.user))
///     .service_fn(|req: Request| async move { Ok::<_, std::convert::Infallible>(req.user) });
///
/// assert_eq!(svc.ready().await?.call(Request { user: "ada" }).await?, "ada");
/// assert_eq!(svc.ready().await?.call(Request { user: "bob" }).await?, "bob");
/// let err = svc.ready().await?.call(Request { user: "ada" }).await.unwrap_err();
/// assert_eq!(Refused::find(&*err).unwrap().kind(), RefusalKind::RateLimited);
/// # Ok(())
/// # }
/// ```
pub struct KeyedRateLimitLayer<
    K: 'static,
    X,
    C: 'static = MonotonicClock,
    R = RefuseWithError,
    H = (),
> {
    limiter: KeyedRateLimiter<K, C>,
    extract: X,
    refusal: R,
    report: H,
}

impl<K, X, C> KeyedRateLimitLayer<K, X, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Limits each request by the key `extract` takes from it; refusals are
    /// errors.
    pub fn new(limiter: KeyedRateLimiter<K, C>, extract: X) -> Self {
        Self {
            limiter,
            extract,
            refusal: RefuseWithError,
            report: (),
        }
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl<K, X, C> KeyedRateLimitLayer<K, X, C, seawall_core::http::RefuseWithResponse>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Limits each HTTP request by the key `extract` takes from it, answering
    /// refusals with `429 Too Many Requests` and `Retry-After`; the services
    /// keep the inner service's error type, so the layer drops into an axum
    /// router as it is. Add the `RateLimit` headers with
    /// [`headers`](Self::headers).
    pub fn http(limiter: KeyedRateLimiter<K, C>, extract: X) -> Self {
        KeyedRateLimitLayer::new(limiter, extract).refusal(seawall_core::http::RefuseWithResponse)
    }
}

impl<K: 'static, X, C: 'static, R, H> KeyedRateLimitLayer<K, X, C, R, H> {
    /// Answers refusals with `refusal` (such as `RefuseWithResponse`,
    /// feature `http`).
    pub fn refusal<R2>(self, refusal: R2) -> KeyedRateLimitLayer<K, X, C, R2, H> {
        KeyedRateLimitLayer {
            limiter: self.limiter,
            extract: self.extract,
            refusal,
            report: self.report,
        }
    }

    /// Tells every response about its key's limit with `report` (such as
    /// `http::RateLimitHeaders`).
    pub fn headers<H2>(self, report: H2) -> KeyedRateLimitLayer<K, X, C, R, H2> {
        KeyedRateLimitLayer {
            limiter: self.limiter,
            extract: self.extract,
            refusal: self.refusal,
            report,
        }
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &KeyedRateLimiter<K, C> {
        &self.limiter
    }
}

impl<K: 'static, X: Clone, C: 'static, R: Clone, H: Clone> Clone
    for KeyedRateLimitLayer<K, X, C, R, H>
{
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            extract: self.extract.clone(),
            refusal: self.refusal.clone(),
            report: self.report.clone(),
        }
    }
}

impl<S, K: 'static, X: Clone, C: 'static, R: Clone, H: Clone> Layer<S>
    for KeyedRateLimitLayer<K, X, C, R, H>
{
    type Service = KeyedRateLimit<S, K, X, C, R, H>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedRateLimit {
            inner,
            limiter: self.limiter.clone(),
            extract: self.extract.clone(),
            refusal: self.refusal.clone(),
            report: self.report.clone(),
        }
    }
}

/// Rate-limits the requests to `S` per key; made by
/// [`KeyedRateLimitLayer`].
pub struct KeyedRateLimit<
    S,
    K: 'static,
    X,
    C: 'static = MonotonicClock,
    R = RefuseWithError,
    H = (),
> {
    inner: S,
    limiter: KeyedRateLimiter<K, C>,
    extract: X,
    refusal: R,
    report: H,
}

impl<S, K: 'static, X, C: 'static, R, H> KeyedRateLimit<S, K, X, C, R, H> {
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

impl<S: Clone, K: 'static, X: Clone, C: 'static, R: Clone, H: Clone> Clone
    for KeyedRateLimit<S, K, X, C, R, H>
{
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            extract: self.extract.clone(),
            refusal: self.refusal.clone(),
            report: self.report.clone(),
        }
    }
}

impl<S, K, X, C, R, H, Req> Service<Req> for KeyedRateLimit<S, K, X, C, R, H>
where
    S: Service<Req>,
    S::Error: Into<R::Error>,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    X: KeyExtractor<Req, Key = K>,
    C: Clock,
    R: Refusal<S::Response, S::Error> + RefusalFormat<Req>,
    H: Report,
    H::Note: Annotate<S::Response>,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = ResponseFuture<S::Future, S::Response, R::Error, H::Note>;

    /// The inner service's readiness; see
    /// [Readiness](KeyedRateLimitLayer#readiness).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = self.extract.extract(&request);
        match self.limiter.check_detailed(&key, self.report.wants_state()) {
            Ok(state) => {
                let note = state.and_then(|state| self.report.admitted(&state));
                let future = self.inner.call(request);
                ResponseFuture::called(future, note)
            }
            Err((refused, quota)) => {
                let note = self.report.refused(&refused, quota);
                let format = self.refusal.format(&request);
                ResponseFuture::refused(self.refusal.refuse(format, refused), note)
            }
        }
    }
}

impl<K: 'static, X, C: 'static, R, H> std::fmt::Debug for KeyedRateLimitLayer<K, X, C, R, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedRateLimitLayer")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S: std::fmt::Debug, K: 'static, X, C: 'static, R, H> std::fmt::Debug
    for KeyedRateLimit<S, K, X, C, R, H>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedRateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}
