//! [`ResponseFuture`]: a request through a
//! [`PoolService`](super::PoolService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// A checkout (or check, or creation) and the call it makes, in a box: the
/// slow path.
type Boxed<T, Er> = Pin<Box<dyn Future<Output = Result<T, Er>> + Send>>;

pin_project! {
    /// Response future of [`PoolService`](super::PoolService): the call on
    /// an idle object, the boxed checkout-then-call when an object had to
    /// be checked or made, or a refusal's answer.
    pub struct ResponseFuture<F, T, Er> {
        #[pin]
        state: State<F, T, Er>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, T, Er> {
        Called { #[pin] future: F },
        Boxed { future: Boxed<T, Er> },
        Refused { answer: Option<Result<T, Er>> },
    }
}

impl<F, T, Er> ResponseFuture<F, T, Er> {
    pub(crate) fn called(future: F) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    pub(crate) fn boxed(future: Boxed<T, Er>) -> Self {
        Self {
            state: State::Boxed { future },
        }
    }

    pub(crate) fn refused(answer: Result<T, Er>) -> Self {
        Self {
            state: State::Refused {
                answer: Some(answer),
            },
        }
    }
}

impl<F, T, E, Er> Future for ResponseFuture<F, T, Er>
where
    F: Future<Output = Result<T, E>>,
    E: Into<Er>,
{
    type Output = Result<T, Er>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
            StateProj::Boxed { future } => future.as_mut().poll(cx),
            StateProj::Refused { answer } => Poll::Ready(
                answer
                    .take()
                    .expect("ResponseFuture polled after completion"),
            ),
        }
    }
}

impl<F, T, Er> fmt::Debug for ResponseFuture<F, T, Er> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
