//! HTTP parts: `429 Too Many Requests`, the `RateLimit` headers, and keys
//! taken from requests.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::net::SocketAddr;
//! use http::{Request, Response, StatusCode};
//! use seawall_ratelimit::http::{PeerIp, TooManyRequests};
//! use seawall_ratelimit::tower::KeyedRateLimitLayer;
//! use seawall_ratelimit::{KeyedRateLimiter, Quota};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! let limiter = KeyedRateLimiter::new(Quota::per_minute(1).build()?);
//! let layer = KeyedRateLimitLayer::new(limiter, PeerIp::new())
//!     .refusal(TooManyRequests::with_headers("per-client")?);
//! let mut svc = layer.layer(service_fn(|_: Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::from("hi")))
//! }));
//!
//! let request = || {
//!     let mut req = Request::new(String::new());
//!     // What the server puts there for each connection.
//!     req.extensions_mut().insert(SocketAddr::from(([192, 0, 2, 7], 40000)));
//!     req
//! };
//! let ok = svc.ready().await?.call(request()).await?;
//! assert_eq!(ok.status(), StatusCode::OK);
//! assert_eq!(ok.headers()["ratelimit"], r#""per-client";r=0;t=60"#);
//!
//! let refused = svc.ready().await?.call(request()).await?;
//! assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(refused.headers()["retry-after"], "60");
//! assert_eq!(refused.headers()["ratelimit-policy"], r#""per-client";q=1;w=60"#);
//! # Ok(())
//! # }
//! ```

mod extract;

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use seawall_core::ConfigError;

pub use extract::{HeaderKey, MAX_KEY_BYTES, PeerIp, RouteKey};
/// Whole seconds, rounded up: what `Retry-After` and the `t` and `w`
/// parameters carry.
pub use seawall_core::http::seconds_up;
use seawall_core::http::{HttpRefusal, refusal_response};

use crate::error::RateLimited;
use crate::quota::Quota;
use crate::state::LimitState;
use crate::tower::Refusal;

/// The `RateLimit-Policy` header: the quota, as `"name";q=burst;w=seconds`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The `RateLimit` header: what is left, as `"name";r=remaining;t=seconds`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Answers a refused request with `429 Too Many Requests` and a
/// `Retry-After` of the wait in whole seconds, rounded up. The services
/// then keep the inner service's error type, so the layer drops into axum
/// routers as it is.
///
/// With [`with_headers`](Self::with_headers) every response (admitted or
/// not) also carries the IETF draft's `RateLimit-Policy` and `RateLimit`
/// headers (draft-ietf-httpapi-ratelimit-headers): the quota as `q` (the
/// burst) per `w` seconds (the time an empty bucket takes to refill), and
/// what is left as `r` requests with the bucket full again in `t` seconds.
#[derive(Debug, Clone, Default)]
pub struct TooManyRequests {
    /// The policy name, quoted, when the headers are on.
    policy: Option<Arc<str>>,
}

impl TooManyRequests {
    /// 429 with `Retry-After`; no other headers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// 429 with `Retry-After`, and `RateLimit-Policy` / `RateLimit` headers
    /// on every response, naming the policy `policy`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `policy` is empty or is not printable ASCII
    /// without `"` or `\` (it goes in the header as a quoted string).
    pub fn with_headers(policy: &str) -> Result<Self, ConfigError> {
        let printable = policy
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if policy.is_empty() || !printable {
            return Err(ConfigError::new(
                "policy",
                "must be printable ASCII without quotes or backslashes",
                format_args!("{policy:?}"),
            ));
        }
        Ok(Self {
            policy: Some(format!("\"{policy}\"").into()),
        })
    }

    fn policy_header(policy: &str, quota: Quota) -> HeaderValue {
        let window = seconds_up(quota.replenish_all()).max(1);
        header_value(&format!("{policy};q={};w={window}", quota.burst()))
    }

    fn limit_header(policy: &str, remaining: u32, reset: Duration) -> HeaderValue {
        header_value(&format!("{policy};r={remaining};t={}", seconds_up(reset)))
    }
}

/// The `RateLimit-Policy` and `RateLimit` values for one response.
#[derive(Debug)]
pub struct RateLimitHeaders {
    policy: HeaderValue,
    limit: HeaderValue,
}

impl<B: Default, E> Refusal<Response<B>, E> for TooManyRequests {
    type Error = E;
    type Note = RateLimitHeaders;

    fn refuse(&self, refused: RateLimited, quota: Quota) -> Result<Response<B>, E> {
        let mut response: Response<B> = refusal_response(&refused);
        if let Some(policy) = &self.policy {
            let headers = response.headers_mut();
            // `t` is the time until the bucket is full again, as on admitted
            // responses: the wait for one request plus the rest of the burst.
            let reset = refused.retry_after() + quota.replenish_all() - quota.emission_interval();
            headers.insert(RATELIMIT_POLICY, Self::policy_header(policy, quota));
            headers.insert(RATELIMIT, Self::limit_header(policy, 0, reset));
        }
        Ok(response)
    }

    fn inner_error(error: E) -> E {
        error
    }

    fn note(&self, state: &LimitState) -> Option<RateLimitHeaders> {
        let policy = self.policy.as_deref()?;
        Some(RateLimitHeaders {
            policy: Self::policy_header(policy, state.quota),
            limit: Self::limit_header(policy, state.remaining, state.reset),
        })
    }

    fn annotate(response: &mut Response<B>, note: RateLimitHeaders) {
        let headers = response.headers_mut();
        headers.insert(RATELIMIT_POLICY, note.policy);
        headers.insert(RATELIMIT, note.limit);
    }

    fn wants_notes(&self) -> bool {
        self.policy.is_some()
    }
}

impl HttpRefusal for RateLimited {
    fn status(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    fn retry_after(&self) -> Option<Duration> {
        Some(RateLimited::retry_after(self))
    }
}

/// Header text made of checked ASCII: the policy name was validated, and
/// the rest is digits and punctuation.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_a_429_with_its_wait() {
        let refused = RateLimited::new(0, 1_500_000_000);
        let response: Response<()> = refusal_response(&refused);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
    }

    #[test]
    fn policy_names_are_checked() {
        assert!(TooManyRequests::with_headers("per-client").is_ok());
        let err = TooManyRequests::with_headers("bad\"name").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"policy: must be printable ASCII without quotes or backslashes, got "bad\"name""#
        );
        assert!(TooManyRequests::with_headers("").is_err());
        assert!(TooManyRequests::with_headers("tab\there").is_err());
    }

    #[test]
    fn headers_describe_quota_and_state() {
        let quota = Quota::per_second(10).burst(50).build().unwrap();
        assert_eq!(
            TooManyRequests::policy_header("\"api\"", quota),
            r#""api";q=50;w=5"#
        );
        assert_eq!(
            TooManyRequests::limit_header("\"api\"", 7, Duration::from_millis(300)),
            r#""api";r=7;t=1"#
        );
    }
}
