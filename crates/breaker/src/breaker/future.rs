//! [`BreakerFuture`]: a call through the breaker layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::{Classify, Clock, Refusal, ResponseFormat};

use crate::breaker::{FailOnUnwind, OwnedPermit};
use crate::error::BreakerRefusal;
use crate::timeout::TimedOut;

pin_project! {
    /// Response future of [`CircuitBreakerService`](crate::tower::CircuitBreakerService):
    /// records the outcome when the call ends (a dropped future counts as
    /// ignored, or a half-open trial dropped late as a failure) or when the
    /// breaker's timeout passes (a failure), or answers
    /// the refusal.
    pub struct BreakerFuture<F, C: Clock, K, R> {
        #[pin]
        state: BreakerState<F, C, K>,
        refusal: R,
        format: ResponseFormat,
    }
}

pin_project! {
    #[project = BreakerProj]
    enum BreakerState<F, C: Clock, K> {
        Called {
            #[pin]
            future: F,
            // The breaker's timeout, if it has one, started when the call
            // first waits (calls that finish at once never read the clock).
            // Pinned in place: no allocation per call.
            #[pin]
            deadline: Option<tokio::time::Sleep>,
            permit: Option<OwnedPermit<C>>,
            classify: K,
        },
        Refused { refused: Option<BreakerRefusal> },
    }
}

impl<F, C: Clock, K, R> BreakerFuture<F, C, K, R> {
    pub(crate) fn called(
        future: F,
        permit: Option<OwnedPermit<C>>,
        classify: K,
        refusal: R,
        format: ResponseFormat,
    ) -> Self {
        Self {
            state: BreakerState::Called {
                future,
                deadline: None,
                permit,
                classify,
            },
            refusal,
            format,
        }
    }

    pub(crate) fn refused(refused: BreakerRefusal, refusal: R, format: ResponseFormat) -> Self {
        Self {
            state: BreakerState::Refused {
                refused: Some(refused),
            },
            refusal,
            format,
        }
    }
}

impl<F, T, E, C, K, R> Future for BreakerFuture<F, C, K, R>
where
    F: Future<Output = Result<T, E>>,
    E: Into<R::Error>,
    C: Clock,
    K: Classify<T, E>,
    R: Refusal<T, E>,
{
    type Output = Result<T, R::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            BreakerProj::Called {
                future,
                deadline,
                permit,
                classify,
            } => {
                // A panic in the call is a failure of the call.
                let armed = FailOnUnwind::arm(permit);
                let polled = future.poll(cx);
                let permit = armed.disarm();
                if let Poll::Ready(result) = polled {
                    if let Some(permit) = permit.take() {
                        permit.record(classify.classify(&result));
                    }
                    return Poll::Ready(result.map_err(Into::into));
                }
                let mut deadline = deadline;
                if deadline.is_none() {
                    let after = permit.as_ref().and_then(OwnedPermit::timeout);
                    deadline.set(after.map(tokio::time::sleep));
                }
                let Some(sleep) = deadline.as_pin_mut() else {
                    return Poll::Pending;
                };
                ready!(sleep.poll(cx));
                let permit = permit
                    .take()
                    .expect("BreakerFuture polled after completion");
                let after = permit.timeout().unwrap_or_default();
                permit.failure();
                Poll::Ready(this.refusal.refuse(*this.format, TimedOut { after }))
            }
            BreakerProj::Refused { refused } => Poll::Ready(
                this.refusal.refuse(
                    *this.format,
                    refused
                        .take()
                        .expect("BreakerFuture polled after completion"),
                ),
            ),
        }
    }
}

impl<F, C: Clock, K, R> std::fmt::Debug for BreakerFuture<F, C, K, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerFuture").finish_non_exhaustive()
    }
}
