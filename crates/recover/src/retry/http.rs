//! HTTP retries: which answers are worth another attempt, the wait they
//! ask for, and which requests may be sent twice.

use std::any::Any;
use std::time::Duration;

use http::header::RETRY_AFTER;
use http::{Request, Response, StatusCode};
use seawall_core::http::RefusalMarker;
use seawall_core::{Classify, Outcome, RefusalKind, Refused};

use super::RetryAfter;
use super::service::ReplayRequest;

/// Judges HTTP answers for retries, and reads the wait they ask for.
///
/// As a classifier, a failure (worth retrying) is: a transport error; a
/// `5xx` answer other than `501 Not Implemented` and `505`; `408 Request
/// Timeout`; `429 Too Many Requests`. An answer a seawall layer made as a
/// refusal (it carries a `RefusalMarker`) is a failure if it gives a wait
/// (it is then retried after that wait at the earliest) or is a timeout;
/// an open breaker or a full bulkhead without a wait is not retried, nor
/// is a misconfiguration (a `500` that would come back the same).
///
/// As a [`RetryAfter`], it reads the refusal's own wait, or else the
/// `Retry-After` header in whole seconds (the HTTP-date form is not read).
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpRetry;

impl<B, E: Any> Classify<Response<B>, E> for HttpRetry {
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        match result {
            Err(error) => match Refused::find_in(error) {
                Some(refused) => refusal(refused.kind(), refused.retry_after()),
                None => Outcome::Failure,
            },
            Ok(response) => {
                if let Some(marker) = response.extensions().get::<RefusalMarker>() {
                    return refusal(marker.kind(), marker.retry_after());
                }
                let status = response.status();
                let retryable = matches!(
                    status,
                    StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS
                ) || (status.is_server_error()
                    && !matches!(
                        status,
                        StatusCode::NOT_IMPLEMENTED | StatusCode::HTTP_VERSION_NOT_SUPPORTED
                    ));
                if retryable {
                    Outcome::Failure
                } else {
                    Outcome::Success
                }
            }
        }
    }
}

/// Whether a seawall refusal of `kind` that asks for `retry_after` is worth
/// another attempt.
fn refusal(kind: RefusalKind, retry_after: Option<Duration>) -> Outcome {
    match (kind, retry_after) {
        // It would answer the same again.
        (RefusalKind::Misconfigured, _) => Outcome::Ignored,
        (_, Some(_)) => Outcome::Failure,
        (kind, None) => kind.outcome(),
    }
}

impl<B, E> RetryAfter<Response<B>, E> for HttpRetry {
    fn retry_after(&self, result: &Result<Response<B>, E>) -> Option<Duration> {
        let response = result.as_ref().ok()?;
        if let Some(marker) = response.extensions().get::<RefusalMarker>() {
            return marker.retry_after();
        }
        let seconds = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
        seconds.trim().parse::<u64>().ok().map(Duration::from_secs)
    }
}

/// Copies only requests with an idempotent method (`GET`, `HEAD`,
/// `OPTIONS`, `TRACE`, `PUT`, `DELETE`), whose repeat does no more than
/// the first; a `POST` or `PATCH` is sent once. The body must be `Clone`.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdempotentOnly;

impl<B: Clone> ReplayRequest<Request<B>> for IdempotentOnly {
    fn replay(&self, request: &Request<B>) -> Option<Request<B>> {
        request.method().is_idempotent().then(|| request.clone())
    }
}
