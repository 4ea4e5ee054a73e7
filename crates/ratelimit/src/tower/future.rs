//! The response future of the rate-limit services.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::report::Annotate;

pin_project! {
    /// Response future of [`RateLimit`](super::RateLimit) and
    /// [`KeyedRateLimit`](super::KeyedRateLimit): the inner call, or the
    /// answer to a refusal, with the [`Report`](super::Report)'s note
    /// written on the response.
    pub struct ResponseFuture<F, T, E, N> {
        #[pin]
        state: State<F, T, E>,
        note: Option<N>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, T, E> {
        Called { #[pin] future: F },
        Refused { answer: Option<Result<T, E>> },
    }
}

impl<F, T, E, N> ResponseFuture<F, T, E, N> {
    pub(crate) fn called(future: F, note: Option<N>) -> Self {
        Self {
            state: State::Called { future },
            note,
        }
    }

    pub(crate) fn refused(answer: Result<T, E>, note: Option<N>) -> Self {
        Self {
            state: State::Refused {
                answer: Some(answer),
            },
            note,
        }
    }
}

impl<F, T, E, IE, N> Future for ResponseFuture<F, T, E, N>
where
    F: Future<Output = Result<T, IE>>,
    IE: Into<E>,
    N: Annotate<T>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = match this.state.project() {
            StateProj::Called { future } => ready!(future.poll(cx)).map_err(Into::into),
            StateProj::Refused { answer } => answer
                .take()
                .expect("ResponseFuture polled after completion"),
        };
        Poll::Ready(answer.map(|mut response| {
            if let Some(note) = this.note.take() {
                note.annotate(&mut response);
            }
            response
        }))
    }
}

impl<F, T, E, N> std::fmt::Debug for ResponseFuture<F, T, E, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
