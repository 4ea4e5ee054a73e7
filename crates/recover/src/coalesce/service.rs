//! [`CoalesceService`]: the service [`CoalesceLayer`](crate::tower::CoalesceLayer) makes.

use std::error::Error;
use std::fmt;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{BoxError, Refused};
use tower::{Service, ServiceExt};

use crate::Coalesce;

/// The response future of [`CoalesceService`].
pub type CoalesceFuture<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

/// The service [`CoalesceLayer`](crate::tower::CoalesceLayer) makes.
pub struct CoalesceService<S, F, K, R> {
    inner: S,
    key: F,
    group: Coalesce<K, Result<R, SharedError>>,
}

impl<S, F, K, R> CoalesceService<S, F, K, R> {
    pub(super) fn new(inner: S, key: F, group: Coalesce<K, Result<R, SharedError>>) -> Self {
        Self { inner, key, group }
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

/// Clones share the table of calls under way.
impl<S: Clone, F: Clone, K, R> Clone for CoalesceService<S, F, K, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            key: self.key.clone(),
            group: self.group.clone(),
        }
    }
}

impl<S: fmt::Debug, F, K, R> fmt::Debug for CoalesceService<S, F, K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalesceService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F, K, R, Req> Service<Req> for CoalesceService<S, F, K, R>
where
    S: Service<Req, Response = R> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    F: Fn(&Req) -> Option<K>,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
    Req: Send + 'static,
{
    type Response = R;
    type Error = BoxError;
    type Future = CoalesceFuture<R>;

    /// Always ready: a request is let in to find out whether it shares a
    /// call under way, and only the one that makes the call waits for the
    /// inner service (in its future). So requests that wait for another's
    /// answer hold no `Buffer` slot or concurrency permit, and a thousand of
    /// them pass a limit of one.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let inner = self.inner.clone();
        let Some(key) = (self.key)(&request) else {
            return Box::pin(async move { inner.oneshot(request).await.map_err(Into::into) });
        };
        let group = self.group.clone();
        Box::pin(async move {
            let shared = group
                .run(key, move || async move {
                    let answer = inner.oneshot(request).await;
                    answer.map_err(|error| SharedError(Arc::from(error.into())))
                })
                .await;
            match shared {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(error)) => Err(Box::new(error) as BoxError),
                Err(panicked) => Err(Box::new(Refused::new(panicked)) as BoxError),
            }
        })
    }
}

/// The error of a call that several requests shared: each gets one of
/// these, and `source()` is the inner service's error.
#[derive(Clone)]
pub struct SharedError(Arc<dyn Error + Send + Sync>);

impl SharedError {
    /// The inner service's error.
    #[must_use]
    pub fn inner(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedError").field(&self.0).finish()
    }
}

/// "shared call failed"; the cause is the `source()`.
impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shared call failed")
    }
}

impl Error for SharedError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}
