//! [`HedgeFuture`]: a request, and maybe its hedge.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use seawall_core::{Classify, Outcome};
use tokio::time::{Instant, Sleep};
use tower::Service;

use super::Hedge;
use crate::tower::ReplayRequest;

pin_project! {
    /// Response future of [`HedgeService`](crate::tower::HedgeService): the
    /// first attempt and, once it is slow, a second one; the first good
    /// answer wins and the other attempt is dropped.
    pub struct HedgeFuture<S, Req, K>
    where
        S: Service<Req>,
    {
        #[pin]
        first: Option<S::Future>,
        #[pin]
        second: Option<S::Future>,
        // Armed at the first poll that finds the first attempt pending.
        #[pin]
        delay: Option<Sleep>,
        // The copy a hedge sends; `None` once sent, or if none may be.
        request: Option<Req>,
        service: S,
        hedge: Hedge,
        classify: K,
        // When the first attempt started, if its latency is counted.
        started: Option<Instant>,
        // A failed answer kept while the other attempt runs.
        failed: Option<Result<S::Response, S::Error>>,
        // Whether the hedge was taken from the budget.
        withdrawn: bool,
        // Whether the hedge delay has passed (a zero delay, at once: a
        // timer would wait for the next tick of tokio's clock).
        due: bool,
    }

    impl<S, Req, K> PinnedDrop for HedgeFuture<S, Req, K>
    where
        S: Service<Req>,
    {
        // A request dropped unanswered (an outer timeout, a client gone)
        // after its hedge delay had passed was a slow one: count it, at
        // least as slow as it had been, so the slowest do not drop out of
        // the percentile. One dropped sooner says nothing of its latency.
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Taken from the budget, never sent: given back.
            if *this.withdrawn && this.request.is_some() {
                this.hedge.budget().refund();
            }
            if let Some(started) = this.started.take() {
                let ran = started.elapsed();
                if this.hedge.delay().is_some_and(|delay| ran >= delay) {
                    this.hedge.record(ran);
                }
            }
        }
    }
}

impl<S, Req, K> HedgeFuture<S, Req, K>
where
    S: Service<Req>,
{
    pub(super) fn new<P: ReplayRequest<Req>>(
        mut service: S,
        request: Req,
        hedge: Hedge,
        classify: K,
        replay: &P,
    ) -> Self {
        let copy = replay.replay(&request);
        // Only a request that may be hedged counts toward the budget.
        if copy.is_some() {
            hedge.budget().deposit();
        }
        let started = hedge.times_attempts().then(Instant::now);
        let first = service.call(request);
        Self {
            first: Some(first),
            second: None,
            delay: None,
            request: copy,
            service,
            hedge,
            classify,
            started,
            failed: None,
            withdrawn: false,
            due: false,
        }
    }
}

impl<S, Req, K> Future for HedgeFuture<S, Req, K>
where
    S: Service<Req>,
    K: Classify<S::Response, S::Error>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(first) = this.first.as_mut().as_pin_mut()
                && let Poll::Ready(result) = first.poll(cx)
            {
                if let Some(started) = this.started.take() {
                    this.hedge.record(started.elapsed());
                }
                this.first.set(None);
                let good = this.classify.classify(&result) != Outcome::Failure;
                if good || this.second.is_none() {
                    // Drop the hedge now, with what it holds.
                    this.second.set(None);
                    return Poll::Ready(result);
                }
                *this.failed = Some(result);
            }
            if let Some(second) = this.second.as_mut().as_pin_mut()
                && let Poll::Ready(result) = second.poll(cx)
            {
                this.second.set(None);
                let good = this.classify.classify(&result) != Outcome::Failure;
                if good || this.first.is_none() {
                    // The first attempt is dropped unanswered: count how
                    // long it ran, at least, or the slowest first attempts
                    // would drop out of the percentile and pull it down.
                    if let Some(started) = this.started.take() {
                        this.hedge.record(started.elapsed());
                    }
                    this.first.set(None);
                    return Poll::Ready(result);
                }
                *this.failed = Some(result);
            }
            if this.first.is_none() && this.second.is_none() {
                // Both failed (a hedge that failed first leaves its answer
                // here for the first attempt's failure to replace).
                if let Some(result) = this.failed.take() {
                    return Poll::Ready(result);
                }
            }
            // Whether to send the hedge now.
            if this.request.is_none() || this.second.is_some() || this.first.is_none() {
                return Poll::Pending;
            }
            if !*this.due {
                if this.delay.is_none() {
                    let Some(after) = this.hedge.delay() else {
                        // No delay known yet: this request is not hedged.
                        *this.request = None;
                        return Poll::Pending;
                    };
                    if !after.is_zero() {
                        this.delay.set(Some(tokio::time::sleep(after)));
                    }
                }
                if let Some(delay) = this.delay.as_mut().as_pin_mut()
                    && delay.poll(cx).is_pending()
                {
                    return Poll::Pending;
                }
                *this.due = true;
            }
            // Take the hedge from the budget before readying the service, so
            // a refusal reserves nothing of it; once per request.
            if !*this.withdrawn {
                if !this.hedge.budget().try_withdraw() {
                    crate::observe::budget_exhausted("hedge");
                    *this.request = None;
                    return Poll::Pending;
                }
                *this.withdrawn = true;
            }
            match this.service.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                // Not able to send a hedge: the first attempt goes alone,
                // and the hedge goes back to the budget.
                Poll::Ready(Err(_)) => {
                    this.hedge.budget().refund();
                    *this.request = None;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(())) => {}
            }
            let Some(request) = this.request.take() else {
                return Poll::Pending;
            };
            crate::observe::hedged();
            this.second.set(Some(this.service.call(request)));
            // Poll the hedge at once, in the loop.
        }
    }
}

impl<S, Req, K> std::fmt::Debug for HedgeFuture<S, Req, K>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HedgeFuture")
            .field("hedged", &self.second.is_some())
            .finish_non_exhaustive()
    }
}
