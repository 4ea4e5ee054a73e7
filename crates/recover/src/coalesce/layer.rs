//! [`CoalesceLayer`]: identical concurrent requests share one call.

use std::marker::PhantomData;
use std::time::Duration;

use tower::Layer;

use super::service::CoalesceService;
use crate::Coalesce;

/// Makes concurrent requests with the same key share one call to the inner
/// service: the first request of a key is sent, the ones that come while it
/// runs wait for its answer and get a clone of it. Errors are shared too,
/// as a [`SharedError`](crate::tower::SharedError) whose `source()` is the
/// inner service's error (so a seawall refusal inside is still found by
/// `Refused::find`).
///
/// The key comes from a function of the request; `None` sends the request
/// on its own (say, every request that is not a `GET`). A key must stand
/// for everything the answer depends on (path, query, the headers that
/// vary it): two requests with one key get one answer.
///
/// The response must be `Clone` (for HTTP, buffer the body first: a
/// `Response<Bytes>`). The inner service must be `Clone`. The services are
/// always ready: only the request that makes a call waits for the inner
/// service to be ready (in its future, on a clone), so requests waiting for
/// another's answer hold no `Buffer` slot or concurrency permit, and a
/// thousand identical requests pass a limit of one. A panic in the
/// shared call becomes a [`Refused`](seawall_core::Refused) error of kind
/// `Panicked` for every request that waited on it; if the request that
/// made the call is dropped, a waiting one makes the call instead.
///
/// Each service the layer makes (and its clones) has its own table of
/// calls under way: in an axum router, one per route the layer is on.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use seawall_recover::tower::CoalesceLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let calls = Arc::new(AtomicU32::new(0));
/// let counter = Arc::clone(&calls);
/// let backend = service_fn(move |path: String| {
///     counter.fetch_add(1, Ordering::Relaxed);
///     async move {
///         tokio::time::sleep(Duration::from_millis(20)).await;
///         Ok::<_, std::convert::Infallible>(format!("page {path}"))
///     }
/// });
/// let service = CoalesceLayer::new(|path: &String| Some(path.clone())).layer(backend);
///
/// let (a, b) = tokio::join!(
///     service.clone().oneshot("/home".to_owned()),
///     service.clone().oneshot("/home".to_owned()),
/// );
/// assert_eq!((a.unwrap(), b.unwrap()), ("page /home".into(), "page /home".into()));
/// assert_eq!(calls.load(Ordering::Relaxed), 1);
/// # }
/// ```
pub struct CoalesceLayer<F, K, R> {
    key: F,
    ttl: Option<Duration>,
    _types: PhantomData<fn() -> (K, R)>,
}

impl<F, K, R> CoalesceLayer<F, K, R> {
    /// Coalesces requests by the key `key` gives them (`None`: not
    /// coalesced).
    pub fn new(key: F) -> Self {
        Self {
            key,
            ttl: None,
            _types: PhantomData,
        }
    }

    /// Keeps each successful answer (not errors, not panics) for `ttl`
    /// after its call, answering requests with the same key from it
    /// meanwhile (a micro-cache). Off by default: a key is free again as
    /// soon as its call completes.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<F: Clone, K, R> Clone for CoalesceLayer<F, K, R> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            ttl: self.ttl,
            _types: PhantomData,
        }
    }
}

impl<F, K, R> std::fmt::Debug for CoalesceLayer<F, K, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoalesceLayer")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<S, F, K, R> Layer<S> for CoalesceLayer<F, K, R>
where
    F: Clone,
    K: std::hash::Hash + Eq + Clone,
    R: Clone,
{
    type Service = CoalesceService<S, F, K, R>;

    fn layer(&self, inner: S) -> Self::Service {
        let group = match self.ttl {
            Some(ttl) => Coalesce::with_ttl_if(ttl, Result::is_ok),
            None => Coalesce::new(),
        };
        CoalesceService::new(inner, self.key.clone(), group)
    }
}
