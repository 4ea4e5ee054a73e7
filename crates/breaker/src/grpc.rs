//! A classifier for gRPC responses (feature `grpc`): which `grpc-status`
//! codes count against the upstream.

use http::Response;
use seawall_core::http::{HttpClassifier, RefusalMarker};
use seawall_core::{Classify, Outcome};

/// gRPC status codes, as `grpc-status` carries them.
const DEADLINE_EXCEEDED: u8 = 4;
const RESOURCE_EXHAUSTED: u8 = 8;
const INTERNAL: u8 = 13;
const UNAVAILABLE: u8 = 14;

/// Classifies gRPC responses by their `grpc-status`: `UNAVAILABLE` (14),
/// `DEADLINE_EXCEEDED` (4), `RESOURCE_EXHAUSTED` (8) and `INTERNAL` (13)
/// are failures of the upstream; every other code (`OK`, and the codes that
/// speak of the request, such as `INVALID_ARGUMENT` or `NOT_FOUND`) is a
/// success. A response without `grpc-status`, an error, and a refusal from
/// a seawall layer inside are classified as [`HttpClassifier`] does (a
/// `503` from a proxy in between is a failure).
///
/// It reads the status in the response headers, where a server puts it
/// when it fails before sending a message (a "trailers-only" response, how
/// most servers answer `UNAVAILABLE` or an early `DEADLINE_EXCEEDED`). A
/// status sent in the trailers after a streamed body is not known when the
/// response arrives: such a call counts by its HTTP status.
///
/// ```
/// use http::Response;
/// use seawall_breaker::grpc::GrpcClassifier;
/// use seawall_core::{Classify, Outcome};
///
/// let unavailable: Result<_, std::io::Error> =
///     Ok(Response::builder().header("grpc-status", "14").body(()).unwrap());
/// assert_eq!(GrpcClassifier::new().classify(&unavailable), Outcome::Failure);
/// let not_found: Result<_, std::io::Error> =
///     Ok(Response::builder().header("grpc-status", "5").body(()).unwrap());
/// assert_eq!(GrpcClassifier::new().classify(&not_found), Outcome::Success);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcClassifier {
    /// Bit `n` set: code `n` is a failure.
    failures: u32,
    /// For responses without a status, errors and refusals.
    http: HttpClassifier,
}

impl Default for GrpcClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl GrpcClassifier {
    /// Failures on `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`
    /// and `INTERNAL`.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            failures: 1 << UNAVAILABLE
                | 1 << DEADLINE_EXCEEDED
                | 1 << RESOURCE_EXHAUSTED
                | 1 << INTERNAL,
            http: HttpClassifier::new(),
        }
    }

    /// Classifies responses without a `grpc-status`, errors and refusals
    /// with `http` (default [`HttpClassifier::new`]), say one whose
    /// `transient_4xx_succeed` is set.
    #[must_use]
    pub const fn http(mut self, http: HttpClassifier) -> Self {
        self.http = http;
        self
    }

    /// Whether `code` (0 to 16) counts as a failure; other codes are
    /// ignored here.
    #[must_use]
    pub const fn fails_on(mut self, code: u8, failure: bool) -> Self {
        if code <= 16 {
            if failure {
                self.failures |= 1 << code;
            } else {
                self.failures &= !(1 << code);
            }
        }
        self
    }

    /// The outcome of a `grpc-status` code.
    #[must_use]
    pub const fn code_outcome(&self, code: u8) -> Outcome {
        if code <= 16 && self.failures & (1 << code) != 0 {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }
}

impl<B, E: 'static> Classify<Response<B>, E> for GrpcClassifier {
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        if let Ok(response) = result
            && response.extensions().get::<RefusalMarker>().is_none()
            && let Some(code) = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u8>().ok())
        {
            return self.code_outcome(code);
        }
        self.http.classify(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc(status: u16, code: Option<&str>) -> Result<Response<()>, std::io::Error> {
        let mut response = Response::builder().status(status);
        if let Some(code) = code {
            response = response.header("grpc-status", code);
        }
        Ok(response.body(()).unwrap())
    }

    #[test]
    fn upstream_codes_fail_and_request_codes_do_not() {
        let c = GrpcClassifier::new();
        for code in ["4", "8", "13", "14"] {
            assert_eq!(
                c.classify(&grpc(200, Some(code))),
                Outcome::Failure,
                "{code}"
            );
        }
        for code in ["0", "1", "3", "5", "7", "16"] {
            assert_eq!(
                c.classify(&grpc(200, Some(code))),
                Outcome::Success,
                "{code}"
            );
        }
        // No status yet (it comes in the trailers): the HTTP status decides.
        assert_eq!(c.classify(&grpc(200, None)), Outcome::Success);
        assert_eq!(c.classify(&grpc(503, None)), Outcome::Failure);
        // A status that is not a number is no status.
        assert_eq!(c.classify(&grpc(200, Some("fourteen"))), Outcome::Success);
        // The set can change.
        let strict = c.fails_on(2, true).fails_on(13, false);
        assert_eq!(strict.classify(&grpc(200, Some("2"))), Outcome::Failure);
        assert_eq!(strict.classify(&grpc(200, Some("13"))), Outcome::Success);
        assert_eq!(c.fails_on(200, true), c, "out of range: no change");
        // Without a status, the HTTP classifier given decides.
        let lenient = c.http(HttpClassifier::new().transient_4xx_succeed(true));
        assert_eq!(c.classify(&grpc(429, None)), Outcome::Failure);
        assert_eq!(lenient.classify(&grpc(429, None)), Outcome::Success);
    }

    #[test]
    fn a_seawall_refusal_inside_counts_as_its_kind() {
        use seawall_core::http::refusal_response;
        use seawall_core::{RefusalKind, RefusalReason, ResponseFormat};
        #[derive(Debug)]
        struct Limited;
        impl std::fmt::Display for Limited {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("limited")
            }
        }
        impl std::error::Error for Limited {}
        impl RefusalReason for Limited {
            fn kind(&self) -> RefusalKind {
                RefusalKind::RateLimited
            }
        }
        let mut response: Response<String> = refusal_response(&Limited, ResponseFormat::Text);
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("8"));
        let result: Result<_, std::io::Error> = Ok(response);
        assert_eq!(GrpcClassifier::new().classify(&result), Outcome::Ignored);
    }
}
