//! [`CatchPanicFuture`]: a call whose panics become answers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use seawall_core::ResponseFormat;

use super::answer::{AnswerPanic, ReportPanic, report_caught};
use crate::Panicked;
use crate::panic::guard;

pin_project! {
    /// Response future of [`CatchPanic`](crate::tower::CatchPanic): the
    /// inner call, polled so that a panic becomes the layer's answer.
    pub struct CatchPanicFuture<F, A, H> {
        #[pin]
        state: State<F>,
        answer: A,
        report: H,
        format: ResponseFormat,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] future: F },
        // A panic to answer; `None` once answered.
        Caught { panicked: Option<Panicked> },
    }
}

impl<F, A, H> CatchPanicFuture<F, A, H> {
    pub(super) fn running(future: F, answer: A, report: H, format: ResponseFormat) -> Self {
        Self {
            state: State::Running { future },
            answer,
            report,
            format,
        }
    }

    /// Already reported.
    pub(super) fn answered(
        panicked: Panicked,
        answer: A,
        report: H,
        format: ResponseFormat,
    ) -> Self {
        Self {
            state: State::Caught {
                panicked: Some(panicked),
            },
            answer,
            report,
            format,
        }
    }
}

impl<F, T, E, A, H> Future for CatchPanicFuture<F, A, H>
where
    F: Future<Output = Result<T, E>>,
    E: Into<A::Error>,
    A: AnswerPanic<T, E>,
    H: ReportPanic,
{
    type Output = Result<T, A::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let panicked = match this.state.as_mut().project() {
            StateProj::Running { future } => match guard(|| future.poll(cx)) {
                Ok(Poll::Ready(result)) => return Poll::Ready(result.map_err(Into::into)),
                Ok(Poll::Pending) => return Poll::Pending,
                Err(panicked) => {
                    report_caught(&*this.report, &panicked);
                    panicked
                }
            },
            // Polled after it answered: say so rather than panic.
            StateProj::Caught { panicked } => panicked
                .take()
                .unwrap_or_else(Panicked::polled_after_completion),
        };
        this.state.set(State::Caught { panicked: None });
        Poll::Ready(this.answer.answer(*this.format, panicked))
    }
}

impl<F, A, H> std::fmt::Debug for CatchPanicFuture<F, A, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatchPanicFuture").finish_non_exhaustive()
    }
}
