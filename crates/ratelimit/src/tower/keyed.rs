//! [`KeyedRateLimitLayer`] and [`KeyedRateLimit`]: a limit per key taken
//! from each request.

use std::hash::Hash;
use std::task::{Context, Poll};

use seawall_core::{Clock, MonotonicClock};
use tower::{Layer, Service};

use super::future::ResponseFuture;
use super::refusal::{Refusal, RefuseWithError};
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
/// once when that key is over its limit (there is no wait mode: the key is
/// known only in `call`, and holding a request per client is what a limit
/// should prevent).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use seawall_ratelimit::tower::KeyedRateLimitLayer;
/// use seawall_ratelimit::{KeyedRateLimiter, Quota, RateLimited};
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
/// assert!(err.downcast_ref::<RateLimited>().is_some());
/// # Ok(())
/// # }
/// ```
pub struct KeyedRateLimitLayer<K, X, C = MonotonicClock, R = RefuseWithError> {
    limiter: KeyedRateLimiter<K, C>,
    extract: X,
    refusal: R,
}

impl<K, X, C> KeyedRateLimitLayer<K, X, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Limits each request by the key `extract` takes from it.
    pub fn new(limiter: KeyedRateLimiter<K, C>, extract: X) -> Self {
        Self {
            limiter,
            extract,
            refusal: RefuseWithError,
        }
    }
}

impl<K, X, C, R> KeyedRateLimitLayer<K, X, C, R> {
    /// Answers refusals with `refusal` instead of an error.
    pub fn refusal<R2>(self, refusal: R2) -> KeyedRateLimitLayer<K, X, C, R2> {
        KeyedRateLimitLayer {
            limiter: self.limiter,
            extract: self.extract,
            refusal,
        }
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &KeyedRateLimiter<K, C> {
        &self.limiter
    }
}

impl<K, X: Clone, C, R: Clone> Clone for KeyedRateLimitLayer<K, X, C, R> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            extract: self.extract.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

impl<S, K, X: Clone, C, R: Clone> Layer<S> for KeyedRateLimitLayer<K, X, C, R> {
    type Service = KeyedRateLimit<S, K, X, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedRateLimit {
            inner,
            limiter: self.limiter.clone(),
            extract: self.extract.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

/// Rate-limits the requests to `S` per key; made by
/// [`KeyedRateLimitLayer`].
pub struct KeyedRateLimit<S, K, X, C = MonotonicClock, R = RefuseWithError> {
    inner: S,
    limiter: KeyedRateLimiter<K, C>,
    extract: X,
    refusal: R,
}

impl<S, K, X, C, R> KeyedRateLimit<S, K, X, C, R> {
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

impl<S: Clone, K, X: Clone, C, R: Clone> Clone for KeyedRateLimit<S, K, X, C, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            extract: self.extract.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

impl<S, K, X, C, R, Req> Service<Req> for KeyedRateLimit<S, K, X, C, R>
where
    S: Service<Req>,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    X: KeyExtractor<Req, Key = K>,
    C: Clock,
    R: Refusal<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = ResponseFuture<S::Future, R, S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(R::inner_error)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = self.extract.extract(&request);
        match self
            .limiter
            .check_detailed(&key, self.refusal.wants_notes())
        {
            Ok(state) => {
                let note = state.and_then(|state| self.refusal.note(&state));
                ResponseFuture::called(self.inner.call(request), note)
            }
            Err((refused, quota)) => ResponseFuture::refused(self.refusal.refuse(refused, quota)),
        }
    }
}

impl<K, X, C, R> std::fmt::Debug for KeyedRateLimitLayer<K, X, C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedRateLimitLayer")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S: std::fmt::Debug, K, X, C, R> std::fmt::Debug for KeyedRateLimit<S, K, X, C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedRateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}
