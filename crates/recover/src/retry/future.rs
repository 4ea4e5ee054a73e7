//! [`RetryFuture`]: a request's attempts.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::{Classify, Shared};
use tokio::time::{Instant, Sleep};
use tower::Service;

use super::service::ReplayRequest;
use super::{Attempts, Policy, RetryAfter};

pin_project! {
    /// Response future of [`RetryService`](crate::tower::RetryService): the
    /// attempts of one request, with the backoff between them.
    pub struct RetryFuture<S, Req, K, H, P>
    where
        S: Service<Req>,
        K: 'static,
        H: 'static,
    {
        #[pin]
        state: State<S::Future, Result<S::Response, S::Error>>,
        service: S,
        // The copy the next attempt sends; `None` if it cannot be retried.
        request: Option<Req>,
        retry: Shared<Policy<K, H>>,
        replay: P,
        attempts: Attempts,
    }

    impl<S, Req, K, H, P> PinnedDrop for RetryFuture<S, Req, K, H, P>
    where
        S: Service<Req>,
        K: 'static,
        H: 'static,
    {
        // Dropped with a retry scheduled and not made (a caller gone, an
        // outer timeout): the retry goes back to the budget.
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let scheduled = match this.state.project() {
                StateProj::Waiting { last, .. } | StateProj::Readying { last, .. } => last.is_some(),
                StateProj::Calling { .. } => false,
            };
            if scheduled {
                this.retry.give_back_retry();
            }
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Calling { #[pin] future: F },
        // Boxed: a timer is large, and only a retry needs one; so is the
        // last answer, kept for a retry that the time limit stops while
        // the service gets ready for it. The backoff's timer then times
        // that limit. `last` is `Some` while the retry, taken from the
        // budget, is not made yet.
        Waiting { sleep: Option<Pin<Box<Sleep>>>, last: Option<Box<R>> },
        Readying { limit: Option<Pin<Box<Sleep>>>, last: Option<Box<R>> },
    }
}

impl<S, Req, K: 'static, H: 'static, P> RetryFuture<S, Req, K, H, P>
where
    S: Service<Req>,
{
    pub(super) fn new(
        future: S::Future,
        service: S,
        request: Option<Req>,
        retry: Shared<Policy<K, H>>,
        replay: P,
        attempts: Attempts,
    ) -> Self {
        Self {
            state: State::Calling { future },
            service,
            request,
            retry,
            replay,
            attempts,
        }
    }
}

impl<S, Req, K: 'static, H: 'static, P> Future for RetryFuture<S, Req, K, H, P>
where
    S: Service<Req>,
    S::Error: Any,
    K: Classify<S::Response, S::Error>,
    H: RetryAfter<S::Response, S::Error>,
    P: ReplayRequest<Req>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    if this.request.is_none() {
                        return Poll::Ready(result);
                    }
                    match this.retry.next(&result, this.attempts) {
                        // No wait: no timer, which would wait for the next
                        // tick of tokio's clock.
                        Some(wait) => this.state.set(State::Waiting {
                            sleep: (!wait.is_zero()).then(|| Box::pin(tokio::time::sleep(wait))),
                            last: Some(Box::new(result)),
                        }),
                        None => return Poll::Ready(result),
                    }
                }
                StateProj::Waiting { sleep, last } => {
                    if let Some(sleep) = sleep.as_mut() {
                        ready!(sleep.as_mut().poll(cx));
                    } else {
                        // No wait: a retry spends the task's tokio budget,
                        // so a run of instant failures yields now and then.
                        ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
                    }
                    let limit = match (this.retry.deadline(this.attempts), sleep.take()) {
                        (Some(at), Some(mut timer)) => {
                            timer.as_mut().reset(at);
                            Some(timer)
                        }
                        (Some(at), None) => Some(Box::pin(tokio::time::sleep_until(at))),
                        (None, _) => None,
                    };
                    let last = last.take();
                    this.state.set(State::Readying { limit, last });
                }
                StateProj::Readying { limit, last } => {
                    // No retry starts past the time limit: the caller gets
                    // the last answer then, and the budget its retry back.
                    // The timer only wakes a wait for readiness; a service
                    // ready by the limit itself is called.
                    let ready = this.service.poll_ready(cx);
                    let late = match limit.as_mut() {
                        Some(limit) if ready.is_ready() => Instant::now() > limit.deadline(),
                        Some(limit) => limit.as_mut().poll(cx).is_ready(),
                        None => false,
                    };
                    if late && let Some(last) = last.take() {
                        this.retry.give_back_retry();
                        return Poll::Ready(*last);
                    }
                    if let Poll::Ready(Err(error)) = ready {
                        // No retry: it goes back to the budget.
                        if last.take().is_some() {
                            this.retry.give_back_retry();
                        }
                        return Poll::Ready(Err(error));
                    }
                    ready!(ready)?;
                    // A copy for the attempt after this one, if there may
                    // be one; the kept request goes now.
                    let copy = this.request.as_ref().and_then(|r| this.replay.replay(r));
                    let request = std::mem::replace(this.request, copy)
                        .expect("a retry is only scheduled with a request kept for it");
                    let future = this.service.call(request);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

impl<S, Req, K: 'static, H: 'static, P> std::fmt::Debug for RetryFuture<S, Req, K, H, P>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryFuture")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
