//! [`CatchPanicLayer`]: panics in a tower service become answers.

use seawall_core::RefuseWithError;
use tower::Layer;

use super::answer::LogPanic;
use super::service::CatchPanic;

/// Catches panics in the service it wraps (in `poll_ready`, in `call`, and
/// while the response future is polled) and answers them, so one bad
/// request costs one answer instead of the connection, the task or the
/// process.
///
/// By default the answer is a [`Refused`](seawall_core::Refused) error in a
/// [`BoxError`](seawall_core::BoxError), with kind `Panicked` and the
/// [`Panicked`](crate::Panicked) as its reason. [`http`](Self::http)
/// (feature `http`) answers `500 Internal Server Error` instead, with a body
/// that says only "internal error" (the panic's message never reaches the
/// client), and keeps the inner service's error type, as axum's routers
/// require; `answer(RefuseWithResponse)` does the same and also answers
/// problem+json to clients that ask for JSON. [`answer`](Self::answer) takes any other
/// [`AnswerPanic`](crate::tower::AnswerPanic), such as
/// [`RespondWith`](crate::tower::RespondWith).
///
/// Every caught panic is first reported: to [`LogPanic`] by default (an
/// `ERROR` event with the `tracing` feature), or to the function given to
/// [`report`](Self::report).
///
/// The layer adds no allocation and no lock to a call; its services are
/// always as ready as the inner one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use seawall_core::{RefusalKind, Refused};
/// use seawall_recover::Panicked;
/// use seawall_recover::tower::CatchPanicLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let handler = service_fn(|n: u32| async move {
///     assert!(n != 0, "zero is not allowed");
///     Ok::<u32, std::convert::Infallible>(100 / n)
/// });
/// let service = CatchPanicLayer::new().layer(handler);
///
/// assert_eq!(service.clone().oneshot(4).await.unwrap(), 25);
/// let error = service.oneshot(0).await.unwrap_err();
/// let refused = Refused::find(&*error).expect("a seawall refusal");
/// assert_eq!(refused.kind(), RefusalKind::Panicked);
/// let panicked = refused.downcast_ref::<Panicked>().unwrap();
/// assert_eq!(panicked.message(), "zero is not allowed");
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer<A = RefuseWithError, H = LogPanic> {
    answer: A,
    report: H,
}

impl CatchPanicLayer {
    /// Answers panics with a [`Refused`](seawall_core::Refused) error and
    /// reports them to [`LogPanic`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            answer: RefuseWithError,
            report: LogPanic,
        }
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl CatchPanicLayer<super::answer::PlainServerError> {
    /// Answers panics with `500 Internal Server Error` in plain text, whose
    /// body says "internal error" and nothing of the panic
    /// ([`PlainServerError`](crate::tower::PlainServerError)); the services
    /// keep the inner service's error type. For problem+json to clients
    /// that ask for JSON, `.answer(RefuseWithResponse)` (which reads each
    /// request's `Accept` header).
    #[must_use]
    pub fn http() -> Self {
        CatchPanicLayer::new().answer(super::answer::PlainServerError)
    }
}

impl<A, H> CatchPanicLayer<A, H> {
    /// Answers panics with `answer`: a [`Refusal`](seawall_core::Refusal), or
    /// [`RespondWith`](crate::tower::RespondWith) a function of the panic.
    #[must_use]
    pub fn answer<A2>(self, answer: A2) -> CatchPanicLayer<A2, H> {
        CatchPanicLayer {
            answer,
            report: self.report,
        }
    }

    /// Reports every caught panic to `report` instead of [`LogPanic`]: a
    /// function `Fn(&Panicked) + Clone` (cloned into every call, so keep it
    /// cheap: a function or a closure over an `Arc`).
    #[must_use]
    pub fn report<H2>(self, report: H2) -> CatchPanicLayer<A, H2> {
        CatchPanicLayer {
            answer: self.answer,
            report,
        }
    }
}

impl<S, A: Clone, H: Clone> Layer<S> for CatchPanicLayer<A, H> {
    type Service = CatchPanic<S, A, H>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic::new(inner, self.answer.clone(), self.report.clone())
    }
}
