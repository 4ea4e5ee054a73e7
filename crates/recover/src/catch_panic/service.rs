//! [`CatchPanic`]: the service [`CatchPanicLayer`](crate::tower::CatchPanicLayer) makes.

use std::task::{Context, Poll};

use seawall_core::{RefusalFormat, RefuseWithError};
use tower::Service;

use super::answer::{AnswerPanic, LogPanic, ReportPanic, report_caught};
use super::future::CatchPanicFuture;
use crate::Panicked;
use crate::panic::guard;

/// The service [`CatchPanicLayer`](crate::tower::CatchPanicLayer) makes: a
/// panic in the inner service's `poll_ready`, in its `call`, or while its
/// response future is polled, becomes the answer `A` gives.
///
/// A panic in `poll_ready` makes this service ready, and the next `call`
/// answers it without calling the inner service; the call after that
/// polls the inner service again. The inner service is used as the panic
/// left it: catching keeps the server up, it does not repair the state the
/// panic interrupted.
pub struct CatchPanic<S, A = RefuseWithError, H = LogPanic> {
    inner: S,
    answer: A,
    report: H,
    /// A panic caught in `poll_ready`, for the next `call` to answer.
    caught: Option<Panicked>,
}

impl<S, A, H> CatchPanic<S, A, H> {
    pub(super) fn new(inner: S, answer: A, report: H) -> Self {
        crate::panic::install_hook();
        Self {
            inner,
            answer,
            report,
            caught: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// A clone starts with no panic to answer.
impl<S: Clone, A: Clone, H: Clone> Clone for CatchPanic<S, A, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            answer: self.answer.clone(),
            report: self.report.clone(),
            caught: None,
        }
    }
}

impl<S: std::fmt::Debug, A, H> std::fmt::Debug for CatchPanic<S, A, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatchPanic")
            .field("inner", &self.inner)
            .field("caught", &self.caught)
            .finish_non_exhaustive()
    }
}

impl<S, Req, A, H> Service<Req> for CatchPanic<S, A, H>
where
    S: Service<Req>,
    S::Error: Into<A::Error>,
    A: AnswerPanic<S::Response, S::Error> + RefusalFormat<Req>,
    H: ReportPanic,
{
    type Response = S::Response;
    type Error = A::Error;
    type Future = CatchPanicFuture<S::Future, A, H>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.caught.is_some() {
            return Poll::Ready(Ok(()));
        }
        let inner = &mut self.inner;
        match guard(|| inner.poll_ready(cx)) {
            Ok(ready) => ready.map_err(Into::into),
            Err(panicked) => {
                report_caught(&self.report, &panicked);
                self.caught = Some(panicked);
                Poll::Ready(Ok(()))
            }
        }
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let format = self.answer.format(&request);
        let answer = self.answer.clone();
        let report = self.report.clone();
        if let Some(panicked) = self.caught.take() {
            return CatchPanicFuture::answered(panicked, answer, report, format);
        }
        let inner = &mut self.inner;
        match guard(move || inner.call(request)) {
            Ok(future) => CatchPanicFuture::running(future, answer, report, format),
            Err(panicked) => {
                report_caught(&report, &panicked);
                CatchPanicFuture::answered(panicked, answer, report, format)
            }
        }
    }
}
