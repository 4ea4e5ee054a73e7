//! HTTP vocabulary shared by the crates' `http` features: which responses
//! count as failures ([`HttpClassifier`]), and what status a refusal becomes
//! ([`HttpRefusal`], [`RefuseWithResponse`]).
//!
//! ```
//! use std::time::Duration;
//! use http::{Response, StatusCode};
//! use seawall_core::http::{HttpClassifier, HttpRefusal, RefuseWithResponse};
//! use seawall_core::{Classify, Outcome, Refusal};
//!
//! /// A made-up refusal: the queue is full for another 1.5 s.
//! #[derive(Debug)]
//! struct QueueFull;
//!
//! impl HttpRefusal for QueueFull {
//!     fn status(&self) -> StatusCode { StatusCode::SERVICE_UNAVAILABLE }
//!     fn retry_after(&self) -> Option<Duration> { Some(Duration::from_millis(1_500)) }
//! }
//!
//! let refused: Result<Response<String>, std::io::Error> = RefuseWithResponse.refuse(QueueFull);
//! let response = refused.unwrap();
//! assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(response.headers()["retry-after"], "2");
//!
//! let upstream: Result<Response<()>, std::io::Error> =
//!     Ok(Response::builder().status(502).body(()).unwrap());
//! assert_eq!(HttpClassifier.classify(&upstream), Outcome::Failure);
//! ```

use std::time::Duration;

use http::header::{HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};

use crate::{Classify, Outcome, Refusal};

/// Classifies HTTP results: a `5xx` response or an error is a failure, any
/// other response a success. A `4xx` is the client's mistake, so it
/// succeeds as far as the dependency's health goes; to leave it out of the
/// rates altogether, classify with a closure that returns
/// [`Outcome::Ignored`] for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpClassifier;

impl<B, E> Classify<Response<B>, E> for HttpClassifier {
    #[inline]
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        match result {
            Ok(response) if response.status().is_server_error() => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// What a refusal means in HTTP: its status, and how long the client should
/// wait before trying again, if that is known.
pub trait HttpRefusal {
    /// The status of the response (`429`, `503`, `504`, ...).
    fn status(&self) -> StatusCode;

    /// The wait that goes in `Retry-After`, if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Answers a refusal with its HTTP response: an empty body, the refusal's
/// [`status`](HttpRefusal::status), and `Retry-After` in whole seconds
/// (rounded up, at least 1) when the refusal knows the wait. The services
/// keep the inner service's error type, so a layer drops into an axum router
/// as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefuseWithResponse;

impl<Refused, B, E> Refusal<Refused, Response<B>, E> for RefuseWithResponse
where
    Refused: HttpRefusal,
    B: Default,
{
    type Error = E;

    fn refuse(&self, refused: Refused) -> Result<Response<B>, E> {
        Ok(refusal_response(&refused))
    }

    fn inner_error(error: E) -> E {
        error
    }
}

/// The response for `refused`: its status, an empty body, and `Retry-After`
/// when it knows the wait.
pub fn refusal_response<B: Default>(refused: &impl HttpRefusal) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = refused.status();
    if let Some(wait) = refused.retry_after() {
        let seconds = seconds_up(wait).max(1);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Whole seconds, rounded up: what `Retry-After` carries.
#[must_use]
pub fn seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Unavailable(Option<Duration>);

    impl HttpRefusal for Unavailable {
        fn status(&self) -> StatusCode {
            StatusCode::SERVICE_UNAVAILABLE
        }

        fn retry_after(&self) -> Option<Duration> {
            self.0
        }
    }

    fn status(code: u16) -> Result<Response<()>, ()> {
        Ok(Response::builder().status(code).body(()).unwrap())
    }

    #[test]
    fn server_errors_and_errors_fail() {
        assert_eq!(HttpClassifier.classify(&status(200)), Outcome::Success);
        assert_eq!(HttpClassifier.classify(&status(404)), Outcome::Success);
        assert_eq!(HttpClassifier.classify(&status(429)), Outcome::Success);
        assert_eq!(HttpClassifier.classify(&status(500)), Outcome::Failure);
        assert_eq!(HttpClassifier.classify(&status(599)), Outcome::Failure);
        assert_eq!(
            HttpClassifier.classify(&Err::<Response<()>, _>(())),
            Outcome::Failure
        );
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_a_second() {
        let cases = [
            (None, None),
            (Some(Duration::ZERO), Some("1")),
            (Some(Duration::from_millis(1)), Some("1")),
            (Some(Duration::from_secs(30)), Some("30")),
            (Some(Duration::from_millis(30_001)), Some("31")),
        ];
        for (wait, header) in cases {
            let response: Response<()> = refusal_response(&Unavailable(wait));
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            let got = response
                .headers()
                .get(RETRY_AFTER)
                .map(|v| v.to_str().unwrap());
            assert_eq!(got, header, "{wait:?}");
        }
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(seconds_up(Duration::ZERO), 0);
        assert_eq!(seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(seconds_up(Duration::from_millis(2_001)), 3);
    }
}
