//! [`CatchPanicFuture`]: a call whose panics become answers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use seawall_core::ResponseFormat;

use super::answer::{AnswerPanic, ReportPanic};
use crate::Panicked;
use crate::panic::guard;

pin_project! {
    /// Response future of [`CatchPanic`](crate::tower::CatchPanic): the
    /// inner call, polled so that a panic becomes the layer's answer.
    pub struct CatchPanicFuture<F, A, H> {
        // `None` once the call is answered.
        #[pin]
        future: Option<F>,
        // A panic to answer at the first poll.
        caught: Option<Panicked>,
        answer: A,
        report: H,
        format: ResponseFormat,
    }
}

impl<F, A, H> CatchPanicFuture<F, A, H> {
    pub(super) fn running(future: F, answer: A, report: H, format: ResponseFormat) -> Self {
        Self {
            future: Some(future),
            caught: None,
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
            future: None,
            caught: Some(panicked),
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let panicked = match this.future.as_mut().as_pin_mut() {
            Some(future) => match guard(|| future.poll(cx)) {
                Ok(Poll::Ready(result)) => return Poll::Ready(result.map_err(Into::into)),
                Ok(Poll::Pending) => return Poll::Pending,
                Err(panicked) => {
                    this.report.report(&panicked);
                    panicked
                }
            },
            // Polled after it answered: say so rather than panic.
            None => this
                .caught
                .take()
                .unwrap_or_else(Panicked::polled_after_completion),
        };
        this.future.set(None);
        Poll::Ready(this.answer.answer(*this.format, panicked))
    }
}

impl<F, A, H> std::fmt::Debug for CatchPanicFuture<F, A, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatchPanicFuture")
            .field("caught", &self.caught)
            .finish_non_exhaustive()
    }
}
