//! HTTP vocabulary shared by the crates' `http` features: which responses
//! count as failures ([`HttpClassifier`]), and the response a refusal
//! becomes ([`RefuseWithResponse`]).
//!
//! A refusal's status comes from its [`RefusalKind`]: `429` when rate
//! limited, `503` when a breaker is open or a bulkhead full, `504` when a
//! deadline passed, `500` for a panic. `Retry-After` carries its wait, in
//! whole seconds rounded up, and the body says the same in words, as text,
//! or as `application/problem+json` (RFC 9457) when the request's `Accept`
//! names that type or `application/json`. The response carries a
//! [`RefusalMarker`] extension, so that an outer breaker, retry or outlier
//! detector can tell "seawall refused" from "the upstream answered 503":
//! [`HttpClassifier`] ignores marked responses, except timeouts and panics.
//! [`error_response`] turns a seawall refusal that arrived as an error into
//! its response.
//!
//! ```
//! use std::time::Duration;
//! use http::{Response, StatusCode};
//! use seawall_core::http::{HttpClassifier, RefusalMarker, refusal_response};
//! use seawall_core::{Classify, Outcome, RefusalKind, RefusalReason, ResponseFormat};
//!
//! /// A made-up refusal: the queue is full for another 1.5 s.
//! #[derive(Debug)]
//! struct QueueFull;
//! # impl std::fmt::Display for QueueFull {
//! #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("queue full") }
//! # }
//! # impl std::error::Error for QueueFull {}
//!
//! impl RefusalReason for QueueFull {
//!     fn kind(&self) -> RefusalKind { RefusalKind::Overloaded }
//!     fn retry_after(&self) -> Option<Duration> { Some(Duration::from_millis(1_500)) }
//! }
//!
//! // What `RefuseWithResponse` answers, for a client that sent no `Accept`:
//! let response: Response<String> = refusal_response(&QueueFull, ResponseFormat::Text);
//! assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(response.headers()["retry-after"], "2");
//! assert_eq!(response.body(), "overloaded: retry in 2 s\n");
//! assert!(response.extensions().get::<RefusalMarker>().is_some());
//!
//! // An outer breaker ignores it; it counts the upstream's own 502.
//! let refused: Result<_, std::io::Error> = Ok(response);
//! assert_eq!(HttpClassifier::new().classify(&refused), Outcome::Ignored);
//! let upstream: Result<Response<()>, std::io::Error> =
//!     Ok(Response::builder().status(502).body(()).unwrap());
//! assert_eq!(HttpClassifier::new().classify(&upstream), Outcome::Failure);
//! ```

use std::fmt::Write as _;
use std::time::Duration;

use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};

use crate::refusal::refusal_outcome;
use crate::{
    Classify, Outcome, Refusal, RefusalFormat, RefusalKind, RefusalReason, ResponseFormat,
};

/// Classifies HTTP results: a `5xx` response or an error is a failure, and
/// so are `408 Request Timeout` and `429 Too Many Requests` unless
/// [`transient_4xx_succeed`](Self::transient_4xx_succeed) says otherwise;
/// any other response is a success. A refusal that a seawall layer inside
/// made (a response with a [`RefusalMarker`], or a seawall error) counts as
/// its [`RefusalKind::outcome`] says: a timeout fails; a rate limit, an open
/// breaker or a full bulkhead is ignored, since the upstream never saw the
/// request. So a `429` from a seawall limiter inside is ignored, and a
/// `429` from the upstream is a failure.
///
/// `408` and `429` are the two `4xx` that speak of the upstream rather than
/// the request: it gave up waiting for the request, or it is shedding load.
/// Polly's and .NET's resilience handlers treat them as transient failures,
/// and so does this classifier by default. Any other `4xx` is the client's
/// mistake and counts as a success; to leave it out of the rates
/// altogether, classify with a closure that returns [`Outcome::Ignored`]
/// for it.
///
/// ```
/// use http::{Response, StatusCode};
/// use seawall_core::http::HttpClassifier;
/// use seawall_core::{Classify, Outcome};
///
/// let busy: Result<_, std::io::Error> =
///     Ok(Response::builder().status(StatusCode::TOO_MANY_REQUESTS).body(()).unwrap());
/// assert_eq!(HttpClassifier::new().classify(&busy), Outcome::Failure);
/// assert_eq!(
///     HttpClassifier::new().transient_4xx_succeed(true).classify(&busy),
///     Outcome::Success,
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpClassifier {
    transient_4xx_succeed: bool,
}

impl HttpClassifier {
    /// The classifier with its defaults: `5xx`, `408`, `429` and errors
    /// fail.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            transient_4xx_succeed: false,
        }
    }

    /// Whether `408` and `429` count as successes, like every other `4xx`
    /// (off by default): for an upstream whose `429` answers a quota of
    /// this client's rather than its own load.
    #[must_use]
    pub const fn transient_4xx_succeed(mut self, succeed: bool) -> Self {
        self.transient_4xx_succeed = succeed;
        self
    }

    /// The outcome of a response `status` from the upstream.
    #[must_use]
    pub fn status_outcome(&self, status: StatusCode) -> Outcome {
        let transient =
            status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS;
        if status.is_server_error() || (transient && !self.transient_4xx_succeed) {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }
}

impl<B, E: 'static> Classify<Response<B>, E> for HttpClassifier {
    #[inline]
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        match result {
            Ok(response) => {
                if let Some(marker) = response.extensions().get::<RefusalMarker>() {
                    marker.kind.outcome()
                } else {
                    self.status_outcome(response.status())
                }
            }
            Err(error) => refusal_outcome(error).unwrap_or(Outcome::Failure),
        }
    }
}

/// The extension on every response a seawall layer made as a refusal: its
/// kind and wait. Find it with `response.extensions().get::<RefusalMarker>()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalMarker {
    kind: RefusalKind,
    retry_after: Option<Duration>,
}

impl RefusalMarker {
    /// The kind of refusal the response answered.
    #[must_use]
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// The wait the refusal gave, if any (`Retry-After`, unrounded).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// The format for refusals answered to a request with these headers:
/// [`ResponseFormat::ProblemJson`] when `Accept` names
/// `application/problem+json` or `application/json` (with a non-zero `q`),
/// [`ResponseFormat::Text`] otherwise (including `*/*`).
#[must_use]
#[inline]
pub fn response_format(headers: &HeaderMap) -> ResponseFormat {
    // Most requests send no `Accept`, or one without JSON: one lookup.
    match headers.get(ACCEPT) {
        None => ResponseFormat::Text,
        Some(_) => accepted_format(headers),
    }
}

/// The format the `Accept` header values ask for.
fn accepted_format(headers: &HeaderMap) -> ResponseFormat {
    let accepts_json = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let wanted = media.eq_ignore_ascii_case("application/problem+json")
                || media.eq_ignore_ascii_case("application/json");
            wanted && !parts.any(|param| is_q_zero(param.trim()))
        });
    if accepts_json {
        ResponseFormat::ProblemJson
    } else {
        ResponseFormat::Text
    }
}

/// `q=0`, `q=0.0`, `q=0.000`: the client refuses the type.
fn is_q_zero(param: &str) -> bool {
    let Some((name, value)) = param.split_once('=') else {
        return false;
    };
    name.trim().eq_ignore_ascii_case("q")
        && value.trim().strip_prefix('0').is_some_and(|rest| {
            rest.is_empty() || rest.trim_start_matches('.').bytes().all(|b| b == b'0')
        })
}

/// Answers a refusal with its HTTP response (see [`refusal_response`]). The
/// services keep the inner service's error type, so a layer drops into an
/// axum router as it is. The response body type needs `From<String>` (axum's
/// `Body`, `String`, http-body-util's `Full<Bytes>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefuseWithResponse;

impl<B, E> Refusal<Response<B>, E> for RefuseWithResponse
where
    B: From<String>,
{
    type Error = E;

    fn refuse<R: RefusalReason>(
        &self,
        format: ResponseFormat,
        reason: R,
    ) -> Result<Response<B>, E> {
        Ok(refusal_response(&reason, format))
    }
}

/// The format the request's `Accept` header asks for ([`response_format`]).
impl<B> RefusalFormat<Request<B>> for RefuseWithResponse {
    #[inline]
    fn format(&self, request: &Request<B>) -> ResponseFormat {
        response_format(request.headers())
    }
}

/// The response for `refused`: the status of its kind, `Retry-After` in
/// whole seconds rounded up (at least 1) when it knows the wait, a short
/// body in `format` (`rate limited: retry in 2 s`), and a [`RefusalMarker`].
pub fn refusal_response<B: From<String>>(
    refused: &impl RefusalReason,
    format: ResponseFormat,
) -> Response<B> {
    respond(refused.kind(), refused.retry_after(), format)
}

/// The response for a refusal of `kind` with `retry_after`.
fn respond<B: From<String>>(
    kind: RefusalKind,
    retry_after: Option<Duration>,
    format: ResponseFormat,
) -> Response<B> {
    let wait = retry_after.map(|wait| seconds_up(wait).max(1));
    let status = StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let detail = match wait {
        Some(seconds) => format!("{kind}: retry in {seconds} s"),
        None => kind.describe().to_owned(),
    };
    let (content_type, body) = match format {
        ResponseFormat::Text => ("text/plain; charset=utf-8", format!("{detail}\n")),
        ResponseFormat::ProblemJson => {
            // `detail` is our own ASCII text: no character needs escaping.
            let title = status.canonical_reason().unwrap_or("Error");
            let mut json = format!(
                r#"{{"type":"about:blank","title":"{title}","status":{},"detail":"{detail}""#,
                status.as_u16()
            );
            if let Some(seconds) = wait {
                let _ = write!(json, r#","retry_after":{seconds}"#); // a String: never fails
            }
            json.push('}');
            ("application/problem+json", json)
        }
    };
    let mut response = Response::new(B::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(seconds) = wait {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
        .extensions_mut()
        .insert(RefusalMarker { kind, retry_after });
    response
}

/// The response for a seawall refusal in `error` (an error a layer with
/// [`RefuseWithError`](crate::RefuseWithError) answered, found by
/// [`Refused::find`](crate::Refused::find)), or `None` for any other error:
/// for an error handler in front of layers that refuse with errors, such
/// as axum's `HandleErrorLayer`.
///
/// ```
/// use std::time::Duration;
/// use http::{Response, StatusCode};
/// use seawall_core::http::error_response;
/// use seawall_core::{BoxError, RefusalKind, RefusalReason, Refused, ResponseFormat};
///
/// # #[derive(Debug)] struct Busy;
/// # impl std::fmt::Display for Busy {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("busy") }
/// # }
/// # impl std::error::Error for Busy {}
/// # impl RefusalReason for Busy {
/// #     fn kind(&self) -> RefusalKind { RefusalKind::RateLimited }
/// #     fn retry_after(&self) -> Option<Duration> { Some(Duration::from_secs(2)) }
/// # }
/// let refused: BoxError = Box::new(Refused::new(Busy));
/// let response: Response<String> = error_response(&*refused, ResponseFormat::Text).unwrap();
/// assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
///
/// let other: BoxError = "connection reset".into();
/// assert!(error_response::<String>(&*other, ResponseFormat::Text).is_none());
/// ```
#[must_use]
pub fn error_response<B: From<String>>(
    error: &(dyn std::error::Error + 'static),
    format: ResponseFormat,
) -> Option<Response<B>> {
    crate::Refused::find(error)
        .map(|refused| respond(refused.kind(), refused.retry_after(), format))
}

/// Whole seconds, rounded up: what `Retry-After` carries.
#[must_use]
pub fn seconds_up(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::refusal::TestRefusal as Refusal;

    fn status(code: u16) -> Result<Response<()>, ()> {
        Ok(Response::builder().status(code).body(()).unwrap())
    }

    #[test]
    fn server_errors_timeouts_overload_and_errors_fail() {
        let c = HttpClassifier::new();
        for (code, outcome) in [
            (200, Outcome::Success),
            (404, Outcome::Success),
            (408, Outcome::Failure),
            (429, Outcome::Failure),
            (500, Outcome::Failure),
            (599, Outcome::Failure),
        ] {
            assert_eq!(c.classify(&status(code)), outcome, "{code}");
        }
        assert_eq!(c.classify(&Err::<Response<()>, _>(())), Outcome::Failure);
        // The switch: 408 and 429 count like any other 4xx.
        let lenient = c.transient_4xx_succeed(true);
        assert_eq!(lenient.classify(&status(408)), Outcome::Success);
        assert_eq!(lenient.classify(&status(429)), Outcome::Success);
        assert_eq!(lenient.classify(&status(503)), Outcome::Failure);
    }

    #[test]
    fn marked_refusals_count_as_their_kind() {
        for (kind, outcome) in [
            (RefusalKind::RateLimited, Outcome::Ignored),
            (RefusalKind::Unavailable, Outcome::Ignored),
            (RefusalKind::Overloaded, Outcome::Ignored),
            (RefusalKind::TimedOut, Outcome::Failure),
        ] {
            let response: Response<String> =
                refusal_response(&Refusal(kind, None), ResponseFormat::Text);
            assert_eq!(
                HttpClassifier::new().classify(&Ok::<_, ()>(response)),
                outcome,
                "{kind}"
            );
        }
    }

    #[test]
    fn statuses_waits_and_bodies() {
        let cases = [
            (RefusalKind::RateLimited, None, 429, None, "rate limited\n"),
            (
                RefusalKind::RateLimited,
                Some(Duration::ZERO),
                429,
                Some("1"),
                "rate limited: retry in 1 s\n",
            ),
            (
                RefusalKind::Unavailable,
                Some(Duration::from_millis(1)),
                503,
                Some("1"),
                "service unavailable: retry in 1 s\n",
            ),
            (
                RefusalKind::Overloaded,
                Some(Duration::from_secs(30)),
                503,
                Some("30"),
                "overloaded: retry in 30 s\n",
            ),
            (
                RefusalKind::TimedOut,
                Some(Duration::from_millis(30_001)),
                504,
                Some("31"),
                "timed out: retry in 31 s\n",
            ),
            (RefusalKind::Panicked, None, 500, None, "internal error\n"),
        ];
        for (kind, wait, code, header, body) in cases {
            let response: Response<String> =
                refusal_response(&Refusal(kind, wait), ResponseFormat::Text);
            assert_eq!(response.status().as_u16(), code);
            let got = response
                .headers()
                .get(RETRY_AFTER)
                .map(|v| v.to_str().unwrap());
            assert_eq!(got, header, "{wait:?}");
            assert_eq!(response.body(), body);
            assert_eq!(
                response.headers()[CONTENT_TYPE],
                "text/plain; charset=utf-8"
            );
            let marker = response.extensions().get::<RefusalMarker>().unwrap();
            assert_eq!((marker.kind(), marker.retry_after()), (kind, wait));
        }
    }

    #[test]
    fn problem_json_when_accepted() {
        let refused = Refusal(RefusalKind::RateLimited, Some(Duration::from_millis(1_500)));
        let response: Response<String> = refusal_response(&refused, ResponseFormat::ProblemJson);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        assert_eq!(
            response.body(),
            r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"rate limited: retry in 2 s","retry_after":2}"#
        );
        let unavailable = Refusal(RefusalKind::Unavailable, None);
        let response: Response<String> =
            refusal_response(&unavailable, ResponseFormat::ProblemJson);
        assert_eq!(
            response.body(),
            r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"service unavailable"}"#
        );
    }

    #[test]
    fn format_follows_accept() {
        let format = |accept: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in accept {
                headers.append(ACCEPT, HeaderValue::from_str(value).unwrap());
            }
            response_format(&headers)
        };
        assert_eq!(format(&[]), ResponseFormat::Text);
        assert_eq!(format(&["*/*"]), ResponseFormat::Text);
        assert_eq!(format(&["text/html, */*;q=0.8"]), ResponseFormat::Text);
        assert_eq!(
            format(&["application/problem+json"]),
            ResponseFormat::ProblemJson
        );
        assert_eq!(
            format(&["text/html", "Application/JSON; q=0.5"]),
            ResponseFormat::ProblemJson
        );
        assert_eq!(format(&["application/json;q=0"]), ResponseFormat::Text);
        assert_eq!(format(&["application/json; q=0.000"]), ResponseFormat::Text);
        assert_eq!(
            format(&["application/json;q=0.01"]),
            ResponseFormat::ProblemJson
        );
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(seconds_up(Duration::ZERO), 0);
        assert_eq!(seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(seconds_up(Duration::from_millis(2_001)), 3);
    }
}
