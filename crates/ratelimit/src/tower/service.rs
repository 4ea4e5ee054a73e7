//! [`RateLimit`]: a tower service behind one shared [`RateLimiter`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use seawall_core::{Clock, MonotonicClock, Refusal, RefusalFormat, RefuseWithError};
use tokio::time::{Instant, Sleep};
use tower::Service;

use super::cost::{Cost, One};
use super::future::ResponseFuture;
use super::report::{Annotate, Report};
use crate::error::RateLimited;
use crate::gcra::Reserved;
use crate::limiter::{Admission, RateLimiter};
use crate::quota::Quota;

/// Rate-limits the requests to `S` with a shared [`RateLimiter`]; made by
/// [`RateLimitLayer`](super::RateLimitLayer), whose docs describe the two
/// modes.
pub struct RateLimit<S, C: Clock = MonotonicClock, R = RefuseWithError, H = (), W = One> {
    inner: S,
    /// The limiter, and the permit `poll_ready` took.
    permit: Permit<C>,
    /// Reject mode: the refusal `poll_ready` found, answered by `call`.
    refused: Option<(RateLimited, Quota)>,
    refusal: R,
    report: H,
    mode: Mode,
    cost: W,
    /// Wait mode: the timer, boxed once per service and reset after.
    sleep: Option<Pin<Box<Sleep>>>,
}

/// What a rate-limit service does with a request over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Refuses it.
    Reject,
    /// Waits for its place in `poll_ready`.
    Wait,
    /// Reports it and lets it through.
    DryRun,
}

impl<S, C: Clock, R, H, W> RateLimit<S, C, R, H, W> {
    pub(crate) fn new(
        inner: S,
        limiter: RateLimiter<C>,
        refusal: R,
        report: H,
        mode: Mode,
        cost: W,
    ) -> Self {
        Self {
            inner,
            permit: Permit {
                limiter,
                unspent: None,
                waiting: None,
            },
            refused: None,
            refusal,
            report,
            mode,
            cost,
            sleep: None,
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

    /// Wait mode: ready once the limiter admits a request. Like
    /// [`RateLimiter::acquire`], a request that cannot pass at once reserves
    /// its place and sleeps (on a reused timer) until it comes, so waiters
    /// pass in order and at the full rate. A place that never comes (a
    /// budget used up, a burst of zero) is refused instead, in `call`.
    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.permit.waiting.is_none() {
            let limiter = &self.permit.limiter;
            let refused = match limiter.check_detailed() {
                Ok(admission) => {
                    self.permit.unspent = Some(admission);
                    return Poll::Ready(());
                }
                Err(refused) => refused,
            };
            let Ok(place) = limiter.reserve_raw(1) else {
                self.refused = Some(refused);
                return Poll::Ready(());
            };
            // A place that never comes (a budget used up) took nothing.
            let Some(wait) = limiter.wait_time(place.act_at) else {
                self.refused = Some(refused);
                return Poll::Ready(());
            };
            let deadline = Instant::now() + wait;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.permit.waiting = Some(place);
        }
        if let Some(sleep) = &mut self.sleep {
            ready!(sleep.as_mut().poll(cx));
        }
        self.permit.unspent = self.permit.waiting.take().map(|taken| Admission { taken });
        Poll::Ready(())
    }
}

impl<S, C, R, H, W, Req> Service<Req> for RateLimit<S, C, R, H, W>
where
    S: Service<Req>,
    S::Error: Into<R::Error>,
    C: Clock,
    R: Refusal<S::Response, S::Error> + RefusalFormat<Req>,
    H: Report,
    H::Note: Annotate<S::Response>,
    W: Cost<Req>,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = ResponseFuture<S::Future, S::Response, R::Error, H::Note>;

    /// Reject mode: takes the permit, or finds the refusal and is ready at
    /// once without asking the inner service (which may be stuck), leaving
    /// `call` to answer it. Wait mode: waits for the permit. Then, holding a
    /// permit, asks the inner service. A dry run asks the inner service
    /// either way, since `call` lets the request through.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.unspent.is_none() {
            if self.mode == Mode::Wait {
                self.refused = None;
                ready!(self.poll_permit(cx));
                if self.refused.is_some() {
                    return Poll::Ready(Ok(()));
                }
            } else {
                // Decided afresh at every poll: a refusal found by an earlier
                // poll may have turned into room since.
                match self.permit.limiter.check_detailed() {
                    Ok(admission) => {
                        self.permit.unspent = Some(admission);
                        self.refused = None;
                    }
                    Err(refused) => {
                        self.refused = Some(refused);
                        // A dry run lets it through: the inner service
                        // must be ready for it.
                        if self.mode != Mode::DryRun {
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // The permit `poll_ready` took, or (for a caller that skipped
        // `poll_ready`) a decision now; then the request's whole cost. A
        // refusal before the cost was asked was for the first token.
        let decided = match self.refused.take() {
            Some((refused, quota)) => Err((refused, quota, 1)),
            None => {
                // Asked while the permit is still held by the service: a
                // panic in it leaves the permit to go back with the service.
                let cost = self.cost.cost(&request);
                let admitted = match self.permit.unspent.take() {
                    Some(admission) => Ok(admission),
                    None => self.permit.limiter.check_detailed(),
                };
                match admitted {
                    Ok(admission) => self
                        .charge(admission, cost)
                        .map_err(|(refused, quota)| (refused, quota, cost)),
                    Err((refused, quota)) => Err((refused, quota, 1)),
                }
            }
        };
        match decided {
            Ok(admission) => {
                self.permit.limiter.report_admitted();
                let note = if self.report.wants_state() {
                    self.report.admitted(&admission.state())
                } else {
                    None
                };
                ResponseFuture::called(self.inner.call(request), note)
            }
            Err((refused, quota, cost)) => {
                self.permit.limiter.report_refused(&refused);
                let note = self.report.refused(&refused, quota, cost);
                if self.mode == Mode::DryRun {
                    self.permit.limiter.observer().would_refuse(&refused);
                    return ResponseFuture::called(self.inner.call(request), note);
                }
                let format = self.refusal.format(&request);
                ResponseFuture::refused(self.refusal.refuse(format, refused), note)
            }
        }
    }
}

impl<S, C: Clock, R, H, W> RateLimit<S, C, R, H, W> {
    /// Charges a request admitted with one token its whole `cost`: the
    /// permit goes back for a cost of zero; a cost over one takes the rest
    /// at once, or refuses the whole request (giving the permit back) when
    /// it does not fit. In wait mode the rest is reserved, as debt that the
    /// callers behind wait for.
    fn charge(&self, admission: Admission, cost: u32) -> Result<Admission, (RateLimited, Quota)> {
        let limiter = &self.permit.limiter;
        match cost {
            1 => Ok(admission),
            0 => {
                limiter.give_back(&admission.taken);
                Ok(admission)
            }
            // More than the burst: no wait would do.
            cost if admission.taken.rule.cost(cost).is_err() => {
                limiter.give_back(&admission.taken);
                Err((
                    RateLimited::new(0, crate::gcra::NEVER),
                    admission.taken.rule.quota(),
                ))
            }
            // The rest is reserved, unless its time never comes (a budget
            // without enough left, which then takes nothing): the first
            // token goes back, refused.
            cost if self.mode == Mode::Wait => match limiter.reserve_raw(cost - 1) {
                Ok(rest) if rest.act_at != crate::gcra::NEVER => Ok(Admission { taken: rest }),
                _ => {
                    limiter.give_back(&admission.taken);
                    Err((RateLimited::new(0, crate::gcra::NEVER), limiter.quota()))
                }
            },
            cost => match limiter.check_detailed_n(cost - 1) {
                Ok(rest) => Ok(rest),
                Err(refused) => {
                    limiter.give_back(&admission.taken);
                    Err(refused)
                }
            },
        }
    }
}

/// The limiter handle, the permit `poll_ready` took but `call` has not
/// spent, and the place a waiting `poll_ready` reserved. Dropped unspent (a
/// service dropped while ready or waiting: a cancelled caller, a balancer's
/// spare), they go back, so no capacity is used up by a request that never
/// happened.
struct Permit<C: Clock> {
    limiter: RateLimiter<C>,
    unspent: Option<Admission>,
    waiting: Option<Reserved>,
}

impl<C: Clock> Drop for Permit<C> {
    fn drop(&mut self) {
        let unused = self.unspent.take().map(|permit| permit.taken);
        for taken in unused.into_iter().chain(self.waiting.take()) {
            self.limiter.give_back(&taken);
        }
    }
}

impl<S: Clone, C: Clock, R: Clone, H: Clone, W: Clone> Clone for RateLimit<S, C, R, H, W> {
    /// A clone shares the limiter; its permit, refusal and timer are its own.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            permit: Permit {
                limiter: self.permit.limiter.clone(),
                unspent: None,
                waiting: None,
            },
            refused: None,
            refusal: self.refusal.clone(),
            report: self.report.clone(),
            mode: self.mode,
            cost: self.cost.clone(),
            sleep: None,
        }
    }
}

impl<S: std::fmt::Debug, C: Clock, R, H, W> std::fmt::Debug for RateLimit<S, C, R, H, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.permit.limiter)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}
