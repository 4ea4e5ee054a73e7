//! [`KeyedRateLimitLayer`] and [`KeyedRateLimit`]: a limit per key taken
//! from each request.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{
    Clock, MonotonicClock, Refusal, RefusalFormat, RefusalKind, RefusalReason, RefuseWithError,
};
use tower::{Layer, Service};

use super::cost::{Cost, One};
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
    ///
    /// # Errors
    ///
    /// [`NoKey`] when the request carries nothing to key it by and sharing
    /// one key would be wrong (a per-client limit that finds no client
    /// address): the layer then refuses the request (`500`) rather than
    /// put every such request in one bucket.
    fn extract(&self, request: &Request) -> Result<Self::Key, NoKey>;
}

impl<F, Request, K> KeyExtractor<Request> for F
where
    F: Fn(&Request) -> K,
{
    type Key = K;

    fn extract(&self, request: &Request) -> Result<K, NoKey> {
        Ok(self(request))
    }
}

/// A request a [`KeyExtractor`] could not key: the service is set up
/// wrong, and the keyed layer refuses it (kind
/// [`Misconfigured`](RefusalKind::Misconfigured), `500` with `http`) and
/// logs why (feature `tracing`, level `error`, target
/// `seawall::ratelimit`), instead of putting every such request in one
/// shared bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoKey {
    reason: &'static str,
}

impl NoKey {
    /// A refusal saying why no key was found, and how to fix it.
    #[must_use]
    pub const fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// Why no key was found.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for NoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no rate-limit key in the request: {}", self.reason)
    }
}

impl std::error::Error for NoKey {}

/// Kind [`RefusalKind::Misconfigured`].
impl RefusalReason for NoKey {
    fn kind(&self) -> RefusalKind {
        RefusalKind::Misconfigured
    }
}

/// Says which keys never count.
type Exempt<K> = Arc<dyn Fn(&K) -> bool + Send + Sync>;

/// Which keys never count, and whether refusals are only reported.
struct Policy<K> {
    exempt: Option<Exempt<K>>,
    dry_run: bool,
}

impl<K> Clone for Policy<K> {
    fn clone(&self) -> Self {
        Self {
            exempt: self.exempt.clone(),
            dry_run: self.dry_run,
        }
    }
}

impl<K> Default for Policy<K> {
    fn default() -> Self {
        Self {
            exempt: None,
            dry_run: false,
        }
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
    W = One,
> {
    limiter: KeyedRateLimiter<K, C>,
    extract: X,
    refusal: R,
    report: H,
    cost: W,
    policy: Policy<K>,
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
            cost: One,
            policy: Policy::default(),
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

impl<K: 'static, X, C: 'static, R, H, W> KeyedRateLimitLayer<K, X, C, R, H, W> {
    /// Answers refusals with `refusal` (such as `RefuseWithResponse`,
    /// feature `http`).
    pub fn refusal<R2>(self, refusal: R2) -> KeyedRateLimitLayer<K, X, C, R2, H, W> {
        KeyedRateLimitLayer {
            limiter: self.limiter,
            extract: self.extract,
            refusal,
            report: self.report,
            cost: self.cost,
            policy: self.policy,
        }
    }

    /// Tells every response about its key's limit with `report` (such as
    /// `http::RateLimitHeaders`).
    pub fn headers<H2>(self, report: H2) -> KeyedRateLimitLayer<K, X, C, R, H2, W> {
        KeyedRateLimitLayer {
            limiter: self.limiter,
            extract: self.extract,
            refusal: self.refusal,
            report,
            cost: self.cost,
            policy: self.policy,
        }
    }

    /// Charges each request what `cost` says instead of one token (see
    /// [`Cost`]).
    pub fn cost<W2>(self, cost: W2) -> KeyedRateLimitLayer<K, X, C, R, H, W2> {
        KeyedRateLimitLayer {
            limiter: self.limiter,
            extract: self.extract,
            refusal: self.refusal,
            report: self.report,
            cost,
            policy: self.policy,
        }
    }

    /// Never limits the keys for which `exempt` is true (health checks,
    /// internal callers): they pass without being counted or tracked.
    #[must_use]
    pub fn exempt<F>(mut self, exempt: F) -> Self
    where
        F: Fn(&K) -> bool + Send + Sync + 'static,
    {
        self.policy.exempt = Some(Arc::new(exempt));
        self
    }

    /// Never limits these keys; see [`exempt`](Self::exempt).
    #[must_use]
    pub fn exempt_keys<I>(self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Hash + Eq + Send + Sync,
    {
        let keys: std::collections::HashSet<K> = keys.into_iter().collect();
        self.exempt(move |key| keys.contains(key))
    }

    /// Counts and reports as usual (the refused counter and the `RateLimit`
    /// headers included) but lets every request through: how a new limit
    /// is tried on live traffic before it is enforced. Each would-be
    /// refusal is also a `tracing` event (`info`, with `dry_run = true`);
    /// a request with no key (a server that records no peer address) is
    /// logged at `error` and let through too.
    #[must_use]
    pub fn dry_run(mut self) -> Self {
        self.policy.dry_run = true;
        self
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &KeyedRateLimiter<K, C> {
        &self.limiter
    }
}

impl<K: 'static, X: Clone, C: 'static, R: Clone, H: Clone, W: Clone> Clone
    for KeyedRateLimitLayer<K, X, C, R, H, W>
{
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            extract: self.extract.clone(),
            refusal: self.refusal.clone(),
            report: self.report.clone(),
            cost: self.cost.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S, K: 'static, X: Clone, C: 'static, R: Clone, H: Clone, W: Clone> Layer<S>
    for KeyedRateLimitLayer<K, X, C, R, H, W>
{
    type Service = KeyedRateLimit<S, K, X, C, R, H, W>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedRateLimit {
            inner,
            limiter: self.limiter.clone(),
            extract: self.extract.clone(),
            refusal: self.refusal.clone(),
            report: self.report.clone(),
            cost: self.cost.clone(),
            policy: self.policy.clone(),
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
    W = One,
> {
    inner: S,
    limiter: KeyedRateLimiter<K, C>,
    extract: X,
    refusal: R,
    report: H,
    cost: W,
    policy: Policy<K>,
}

impl<S, K: 'static, X, C: 'static, R, H, W> KeyedRateLimit<S, K, X, C, R, H, W> {
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

impl<S: Clone, K: 'static, X: Clone, C: 'static, R: Clone, H: Clone, W: Clone> Clone
    for KeyedRateLimit<S, K, X, C, R, H, W>
{
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            extract: self.extract.clone(),
            refusal: self.refusal.clone(),
            report: self.report.clone(),
            cost: self.cost.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S, K, X, C, R, H, W, Req> Service<Req> for KeyedRateLimit<S, K, X, C, R, H, W>
where
    S: Service<Req>,
    S::Error: Into<R::Error>,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    X: KeyExtractor<Req, Key = K>,
    C: Clock,
    R: Refusal<S::Response, S::Error> + RefusalFormat<Req>,
    H: Report,
    H::Note: Annotate<S::Response>,
    W: Cost<Req>,
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
        let key = match self.extract.extract(&request) {
            Ok(key) => key,
            Err(no_key) => {
                self.limiter
                    .observer()
                    .no_key(no_key.reason(), self.policy.dry_run);
                // A dry run reports the misconfiguration and lets it through:
                // trying a limit must not take the site down.
                if self.policy.dry_run {
                    return ResponseFuture::called(self.inner.call(request), None);
                }
                let format = self.refusal.format(&request);
                return ResponseFuture::refused(self.refusal.refuse(format, no_key), None);
            }
        };
        if let Some(exempt) = &self.policy.exempt
            && exempt(&key)
        {
            return ResponseFuture::called(self.inner.call(request), None);
        }
        let cost = self.cost.cost(&request);
        match self
            .limiter
            .check_detailed(&key, cost, self.report.wants_state())
        {
            Ok(state) => {
                let note = state.and_then(|state| self.report.admitted(&state));
                let future = self.inner.call(request);
                ResponseFuture::called(future, note)
            }
            Err((refused, quota)) => {
                let note = self.report.refused(&refused, quota, cost);
                if self.policy.dry_run {
                    self.limiter.observer().would_refuse(&refused);
                    return ResponseFuture::called(self.inner.call(request), note);
                }
                let format = self.refusal.format(&request);
                ResponseFuture::refused(self.refusal.refuse(format, refused), note)
            }
        }
    }
}

impl<K: 'static, X, C: 'static, R, H, W> std::fmt::Debug for KeyedRateLimitLayer<K, X, C, R, H, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedRateLimitLayer")
            .field("limiter", &self.limiter)
            .field("dry_run", &self.policy.dry_run)
            .finish_non_exhaustive()
    }
}

impl<S: std::fmt::Debug, K: 'static, X, C: 'static, R, H, W> std::fmt::Debug
    for KeyedRateLimit<S, K, X, C, R, H, W>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedRateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .field("dry_run", &self.policy.dry_run)
            .finish_non_exhaustive()
    }
}
