//! The response future of the rate-limit services.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use tower::Service;

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

pin_project! {
    /// The inner call of [`KeyedRateLimit`](super::KeyedRateLimit): made at once, or once the
    /// inner service it took along is ready.
    pub struct Waiting<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: WaitState<S, Req>,
    }
}

pin_project! {
    #[project = WaitProj]
    enum WaitState<S, Req>
    where
        S: Service<Req>,
    {
        // Boxed: the service and the request are large, and only a call
        // that waits for the inner service needs them.
        Unready { call: Option<Box<(S, Req)>> },
        Called { #[pin] future: S::Future },
    }
}

impl<S: Service<Req>, Req> Waiting<S, Req> {
    pub(crate) fn called(future: S::Future) -> Self {
        Self {
            state: WaitState::Called { future },
        }
    }

    pub(crate) fn unready(service: S, request: Req) -> Self {
        Self {
            state: WaitState::Unready {
                call: Some(Box::new((service, request))),
            },
        }
    }
}

impl<S: Service<Req>, Req> Future for Waiting<S, Req> {
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                WaitProj::Unready { call } => {
                    let waiting = call.as_mut().expect("Waiting polled after completion");
                    ready!(waiting.0.poll_ready(cx))?;
                    let (mut service, request) = *call.take().expect("checked above");
                    let future = service.call(request);
                    this.state.set(WaitState::Called { future });
                }
                WaitProj::Called { future } => return future.poll(cx),
            }
        }
    }
}

impl<S: Service<Req>, Req> std::fmt::Debug for Waiting<S, Req> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting").finish_non_exhaustive()
    }
}
