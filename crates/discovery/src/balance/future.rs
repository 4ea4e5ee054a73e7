//! The response future of [`Balance`](super::Balance).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::Classify;
use tokio::time::Instant;

use super::slot::Load;

pin_project! {
    /// Response future of [`Balance`](super::Balance): the chosen
    /// instance's call (counted in its load until it ends, where the
    /// balancer counts load, and classified for outlier detection, where
    /// the balancer ejects outliers), or the answer to a refusal.
    pub struct ResponseFuture<F, T, E, C> {
        #[pin]
        state: State<F, T, E, C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, T, E, C> {
        Called {
            #[pin]
            future: F,
            hold: Hold,
            classify: Option<C>,
        },
        Refused { answer: Option<Result<T, E>> },
    }
}

impl<F, T, E, C> ResponseFuture<F, T, E, C> {
    pub(crate) fn called(
        future: F,
        load: Option<Arc<Load>>,
        classify: Option<C>,
        started: Option<Instant>,
    ) -> Self {
        Self {
            state: State::Called {
                future,
                hold: Hold { load, started },
                classify,
            },
        }
    }

    pub(crate) fn refused(answer: Result<T, E>) -> Self {
        Self {
            state: State::Refused {
                answer: Some(answer),
            },
        }
    }
}

impl<F, T, E, IE, C> Future for ResponseFuture<F, T, E, C>
where
    F: Future<Output = Result<T, IE>>,
    IE: Into<E>,
    C: Classify<T, IE>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called {
                future,
                hold,
                classify,
            } => {
                let answer = ready!(future.poll(cx));
                if let (Some(load), Some(classify)) = (&hold.load, classify.take())
                    && let Some(record) = &load.record
                {
                    record.record(classify.classify(&answer));
                }
                // The request no longer loads its instance; its time counts.
                hold.release();
                Poll::Ready(answer.map_err(Into::into))
            }
            StateProj::Refused { answer } => Poll::Ready(
                answer
                    .take()
                    .expect("ResponseFuture polled after completion"),
            ),
        }
    }
}

/// A request's hold on its instance: its count in the load while it lasts,
/// and its time for peak-EWMA when it ends, answered or dropped.
struct Hold {
    load: Option<Arc<Load>>,
    started: Option<Instant>,
}

impl Hold {
    #[inline]
    fn release(&mut self) {
        let Some(load) = self.load.take() else {
            return;
        };
        if let Some(started) = self.started.take()
            && let Some(rtt) = &load.rtt
        {
            rtt.observe(started);
        }
    }
}

impl Drop for Hold {
    #[inline]
    fn drop(&mut self) {
        self.release();
    }
}

impl<F, T, E, C> std::fmt::Debug for ResponseFuture<F, T, E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
