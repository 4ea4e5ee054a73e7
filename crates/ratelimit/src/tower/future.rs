//! The response future of the rate-limit services.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::refusal::Refusal;

pin_project! {
    /// Response future of [`RateLimit`](super::RateLimit) and
    /// [`KeyedRateLimit`](super::KeyedRateLimit): the inner call, or a
    /// ready refusal.
    pub struct ResponseFuture<F, R, Resp, E>
    where
        R: Refusal<Resp, E>,
    {
        #[pin]
        state: State<F, R, Resp, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R, Resp, E>
    where
        R: Refusal<Resp, E>,
    {
        Called {
            #[pin]
            future: F,
            note: Option<R::Note>,
        },
        Refused {
            answer: Option<Result<Resp, R::Error>>,
        },
    }
}

impl<F, R, Resp, E> ResponseFuture<F, R, Resp, E>
where
    R: Refusal<Resp, E>,
{
    pub(crate) fn called(future: F, note: Option<R::Note>) -> Self {
        Self {
            state: State::Called { future, note },
        }
    }

    pub(crate) fn refused(answer: Result<Resp, R::Error>) -> Self {
        Self {
            state: State::Refused {
                answer: Some(answer),
            },
        }
    }
}

impl<F, R, Resp, E> Future for ResponseFuture<F, R, Resp, E>
where
    F: Future<Output = Result<Resp, E>>,
    R: Refusal<Resp, E>,
{
    type Output = Result<Resp, R::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future, note } => Poll::Ready(match ready!(future.poll(cx)) {
                Ok(mut response) => {
                    if let Some(note) = note.take() {
                        R::annotate(&mut response, note);
                    }
                    Ok(response)
                }
                Err(error) => Err(R::inner_error(error)),
            }),
            StateProj::Refused { answer } => Poll::Ready(
                answer
                    .take()
                    .expect("ResponseFuture polled after completion"),
            ),
        }
    }
}

impl<F, R, Resp, E> std::fmt::Debug for ResponseFuture<F, R, Resp, E>
where
    R: Refusal<Resp, E>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
