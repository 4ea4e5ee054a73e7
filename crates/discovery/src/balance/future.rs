//! The response future of [`Balance`](super::Balance).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::slot::Load;

pin_project! {
    /// Response future of [`Balance`](super::Balance): the chosen
    /// instance's call (counted in its load until it ends, where the
    /// balancer counts load), or the answer to a refusal.
    pub struct ResponseFuture<F, T, E> {
        #[pin]
        state: State<F, T, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, T, E> {
        Called { #[pin] future: F, load: Option<Arc<Load>> },
        Refused { answer: Option<Result<T, E>> },
    }
}

impl<F, T, E> ResponseFuture<F, T, E> {
    pub(crate) fn called(future: F, load: Option<Arc<Load>>) -> Self {
        Self {
            state: State::Called { future, load },
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

impl<F, T, E, IE> Future for ResponseFuture<F, T, E>
where
    F: Future<Output = Result<T, IE>>,
    IE: Into<E>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future, load } => {
                let answer = ready!(future.poll(cx));
                // The request no longer loads its instance.
                load.take();
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

impl<F, T, E> std::fmt::Debug for ResponseFuture<F, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
