//! [`HedgeService`]: the service [`HedgeLayer`](crate::tower::HedgeLayer) makes.

use std::task::{Context, Poll};

use seawall_core::Classify;
use tower::Service;

use super::Hedge;
use super::future::HedgeFuture;
use crate::tower::ReplayRequest;

/// The service [`HedgeLayer`](crate::tower::HedgeLayer) makes.
#[derive(Clone)]
pub struct HedgeService<S, K, P> {
    inner: S,
    hedge: Hedge,
    classify: K,
    replay: P,
}

impl<S, K, P> HedgeService<S, K, P> {
    pub(super) fn new(inner: S, hedge: Hedge, classify: K, replay: P) -> Self {
        Self {
            inner,
            hedge,
            classify,
            replay,
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

impl<S: std::fmt::Debug, K, P> std::fmt::Debug for HedgeService<S, K, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HedgeService")
            .field("inner", &self.inner)
            .field("hedge", &self.hedge)
            .finish_non_exhaustive()
    }
}

impl<S, K, P, Req> Service<Req> for HedgeService<S, K, P>
where
    S: Service<Req> + Clone,
    K: Classify<S::Response, S::Error> + Clone,
    P: ReplayRequest<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = HedgeFuture<S, Req, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        HedgeFuture::new(
            ready,
            request,
            self.hedge.clone(),
            self.classify.clone(),
            &self.replay,
        )
    }
}
