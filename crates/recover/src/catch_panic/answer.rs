//! What the catch-panic layer answers and whom it tells.

use seawall_core::{BoxError, Refusal, RefusalFormat, RefuseWithError, ResponseFormat};

use crate::Panicked;

/// How a [`CatchPanic`](crate::tower::CatchPanic) service answers a caught
/// panic.
///
/// [`RefuseWithError`] (the default) fails the call with a [`Refused`](seawall_core::Refused)
/// error whose reason is the [`Panicked`]; `RefuseWithResponse` (feature
/// `http`) answers `500 Internal Server Error` with a body that says only
/// "internal error". [`RespondWith`] builds the answer from the panic.
///
/// The service also needs the answer to be a [`RefusalFormat`] for its
/// requests: the format is read from each request before it moves on to the
/// inner service.
pub trait AnswerPanic<Response, InnerError>: Clone {
    /// The service's error type.
    type Error;

    /// The answer to a request whose handling panicked.
    ///
    /// # Errors
    ///
    /// The error the service returns for the panic, if it answers with one.
    fn answer(&self, format: ResponseFormat, panicked: Panicked) -> Result<Response, Self::Error>;
}

/// Fails the call with a [`Refused`](seawall_core::Refused) error in a
/// [`BoxError`], whose reason is the [`Panicked`].
impl<Response, InnerError: Into<BoxError>> AnswerPanic<Response, InnerError> for RefuseWithError {
    type Error = BoxError;

    fn answer(&self, format: ResponseFormat, panicked: Panicked) -> Result<Response, BoxError> {
        Refusal::<Response, InnerError>::refuse(self, format, panicked)
    }
}

/// Answers `500 Internal Server Error`, whose body says "internal error" and
/// nothing of the panic, and keeps the inner service's error type.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl<B: From<String>, InnerError> AnswerPanic<http::Response<B>, InnerError>
    for seawall_core::http::RefuseWithResponse
{
    type Error = InnerError;

    fn answer(
        &self,
        format: ResponseFormat,
        panicked: Panicked,
    ) -> Result<http::Response<B>, InnerError> {
        Refusal::<http::Response<B>, InnerError>::refuse(self, format, panicked)
    }
}

/// Answers a caught panic with `500 Internal Server Error` in plain text,
/// whose body says "internal error" and nothing of the panic, with the
/// `RefusalMarker` every seawall refusal carries; the service keeps the
/// inner service's error type. What [`CatchPanicLayer::http`] answers.
///
/// It reads nothing from the request: finding the `Accept` header costs
/// every request about as much as the rest of the layer, for the sake of
/// the rare panic. `RefuseWithResponse` reads it, and answers
/// `application/problem+json` to clients that ask for JSON.
///
/// [`CatchPanicLayer::http`]: crate::tower::CatchPanicLayer::http
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainServerError;

#[cfg(feature = "http")]
impl<B: From<String>, InnerError> AnswerPanic<http::Response<B>, InnerError> for PlainServerError {
    type Error = InnerError;

    fn answer(
        &self,
        _format: ResponseFormat,
        panicked: Panicked,
    ) -> Result<http::Response<B>, InnerError> {
        Ok(seawall_core::http::refusal_response(
            &panicked,
            ResponseFormat::Text,
        ))
    }
}

/// Reads nothing: the answer is always plain text.
#[cfg(feature = "http")]
impl<Request> RefusalFormat<Request> for PlainServerError {
    #[inline]
    fn format(&self, _request: &Request) -> ResponseFormat {
        ResponseFormat::Text
    }
}

/// Answers a caught panic with the response a function builds from it; the
/// service keeps the inner service's error type. The function decides what
/// the client learns: the panic's message reaches the client only if it
/// puts it there.
///
/// ```
/// use http::{Response, StatusCode};
/// use seawall_recover::tower::{CatchPanicLayer, RespondWith};
///
/// let layer = CatchPanicLayer::new().answer(RespondWith(|_panicked: seawall_recover::Panicked| {
///     let mut response = Response::new(String::from("{\"error\":\"internal\"}"));
///     *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
///     response
/// }));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RespondWith<F>(pub F);

impl<Response, InnerError, F> AnswerPanic<Response, InnerError> for RespondWith<F>
where
    F: Fn(Panicked) -> Response + Clone,
{
    type Error = InnerError;

    fn answer(&self, _format: ResponseFormat, panicked: Panicked) -> Result<Response, InnerError> {
        Ok((self.0)(panicked))
    }
}

/// The function reads nothing from the request.
impl<Request, F> RefusalFormat<Request> for RespondWith<F> {
    #[inline]
    fn format(&self, _request: &Request) -> ResponseFormat {
        ResponseFormat::Text
    }
}

/// Whom a [`CatchPanic`](crate::tower::CatchPanic) service tells about a
/// caught panic, before it answers: [`LogPanic`] by default, or any
/// `Fn(&Panicked) + Clone` (to count it, or send it to an error tracker).
///
/// A report that panics in turn is caught as well (and goes unreported):
/// the layer still answers.
pub trait ReportPanic: Clone {
    /// Called once for every caught panic.
    fn report(&self, panicked: &Panicked);
}

/// `report.report(panicked)`, a panic in it caught and dropped.
#[inline]
pub(super) fn report_caught<H: ReportPanic>(report: &H, panicked: &Panicked) {
    let _ = crate::panic::guard(|| report.report(panicked));
}

impl<F: Fn(&Panicked) + Clone> ReportPanic for F {
    #[inline]
    fn report(&self, panicked: &Panicked) {
        self(panicked);
    }
}

/// The default report: with the `tracing` feature, an `ERROR` event under
/// the target `seawall::recover` with the panic's message and location;
/// without it, nothing (the process's panic hook has printed the panic
/// already).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogPanic;

impl ReportPanic for LogPanic {
    #[inline]
    fn report(&self, panicked: &Panicked) {
        crate::observe::panic_caught("service", panicked);
    }
}
