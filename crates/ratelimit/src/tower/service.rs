//! [`RateLimit`]: a tower service behind one shared [`RateLimiter`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use seawall_core::{Clock, MonotonicClock};
use tokio::time::{Instant, Sleep};
use tower::Service;

use super::future::ResponseFuture;
use super::refusal::{Refusal, RefuseWithError};
use crate::limiter::{Admission, RateLimiter};

/// Rate-limits the requests to `S` with a shared [`RateLimiter`]; made by
/// [`RateLimitLayer`](super::RateLimitLayer), whose docs describe the two
/// modes.
pub struct RateLimit<S, C = MonotonicClock, R = RefuseWithError> {
    inner: S,
    /// The limiter, and (wait mode) the permit `poll_ready` took.
    permit: Permit<C>,
    refusal: R,
    wait: bool,
    /// Wait mode: the timer, boxed once per service and reset after.
    sleep: Option<Pin<Box<Sleep>>>,
    sleeping: bool,
}

impl<S, C: Clock, R> RateLimit<S, C, R> {
    pub(crate) fn new(inner: S, limiter: RateLimiter<C>, refusal: R, wait: bool) -> Self {
        Self {
            inner,
            permit: Permit {
                limiter,
                unspent: None,
            },
            refusal,
            wait,
            sleep: None,
            sleeping: false,
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

    /// Consumes `self`, returning the inner service (an unspent permit goes
    /// back to the limiter).
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Wait mode: ready once the limiter admits a request, sleeping (on a
    /// reused timer) in between; never spins.
    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.sleeping {
                if let Some(sleep) = &mut self.sleep {
                    ready!(sleep.as_mut().poll(cx));
                }
                self.sleeping = false;
            }
            match self.permit.limiter.check_detailed() {
                Ok(admission) => {
                    self.permit.unspent = Some(admission);
                    return Poll::Ready(());
                }
                Err((refused, _)) => {
                    let deadline = Instant::now() + self.permit.limiter.wait_time(refused);
                    match &mut self.sleep {
                        Some(sleep) => sleep.as_mut().reset(deadline),
                        None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    self.sleeping = true;
                }
            }
        }
    }
}

impl<S, C, R, Req> Service<Req> for RateLimit<S, C, R>
where
    S: Service<Req>,
    C: Clock,
    R: Refusal<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = ResponseFuture<S::Future, R, S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.wait && self.permit.unspent.is_none() {
            ready!(self.poll_permit(cx));
        }
        self.inner.poll_ready(cx).map_err(R::inner_error)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // Wait mode spends the permit `poll_ready` took. Reject mode (and a
        // caller that skipped `poll_ready`) decides here.
        let admitted = match self.permit.unspent.take() {
            Some(admission) => admission,
            None => match self.permit.limiter.check_detailed() {
                Ok(admission) => admission,
                Err((refused, quota)) => {
                    return ResponseFuture::refused(self.refusal.refuse(refused, quota));
                }
            },
        };
        let note = if self.refusal.wants_notes() {
            self.refusal.note(&admitted.state())
        } else {
            None
        };
        ResponseFuture::called(self.inner.call(request), note)
    }
}

/// The limiter handle and the permit `poll_ready` took but `call` has not
/// spent. Dropped unspent (a service dropped while ready: a cancelled caller,
/// a balancer's spare), the permit goes back, so no capacity is used up by
/// a request that never happened.
struct Permit<C> {
    limiter: RateLimiter<C>,
    unspent: Option<Admission>,
}

impl<C> Drop for Permit<C> {
    fn drop(&mut self) {
        if let Some(permit) = self.unspent.take() {
            self.limiter.give_back(permit.interval, permit.end);
        }
    }
}

impl<S: Clone, C, R: Clone> Clone for RateLimit<S, C, R> {
    /// A clone shares the limiter; its permit and timer are its own.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            permit: Permit {
                limiter: self.permit.limiter.clone(),
                unspent: None,
            },
            refusal: self.refusal.clone(),
            wait: self.wait,
            sleep: None,
            sleeping: false,
        }
    }
}

impl<S: std::fmt::Debug, C: Clock, R> std::fmt::Debug for RateLimit<S, C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.permit.limiter)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}
