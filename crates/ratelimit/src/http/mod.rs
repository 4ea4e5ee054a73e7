//! HTTP parts: `429 Too Many Requests`, the `RateLimit` headers, and keys
//! taken from requests.
//!
//! The layers' `http` constructors answer refusals with core's
//! [`RefuseWithResponse`]: `429` with `Retry-After` (the wait in whole
//! seconds, rounded up) and a short body, as text or
//! `application/problem+json`. [`RateLimitHeaders`] adds the IETF draft's
//! `RateLimit-Policy` and `RateLimit` headers to every response.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::net::SocketAddr;
//! use http::{Request, Response, StatusCode};
//! use seawall_ratelimit::http::{PeerIp, RateLimitHeaders};
//! use seawall_ratelimit::tower::KeyedRateLimitLayer;
//! use seawall_ratelimit::{KeyedRateLimiter, Quota};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! let limiter = KeyedRateLimiter::new(Quota::per_minute(1).build()?);
//! let layer = KeyedRateLimitLayer::http(limiter, PeerIp::new())
//!     .headers(RateLimitHeaders::new("per-client")?);
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
//! assert_eq!(refused.body(), "rate limited: retry in 60 s\n");
//! # Ok(())
//! # }
//! ```

mod extract;

use std::sync::Arc;
use std::time::Duration;

use http::Response;
use http::header::{HeaderName, HeaderValue};
use seawall_core::ConfigError;

pub use extract::{ClientHeader, HeaderDigest, HeaderKey, MAX_KEY_BYTES, PeerIp, RouteKey};
pub use seawall_core::http::RefuseWithResponse;
/// Whole seconds, rounded up: what `Retry-After` and the `t` and `w`
/// parameters carry.
pub use seawall_core::http::seconds_up;

use crate::error::RateLimited;
use crate::quota::Quota;
use crate::state::LimitState;
use crate::tower::{Annotate, Report};

/// The `RateLimit-Policy` header: the quota, as `"name";q=burst;w=seconds`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The `RateLimit` header: what is left, as `"name";r=remaining;t=seconds`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Adds the IETF draft's `RateLimit-Policy` and `RateLimit` headers
/// (draft-ietf-httpapi-ratelimit-headers) to every response of a rate-limit
/// layer, admitted or refused: the quota as `q` (the burst) per `w` seconds
/// (the time an empty bucket takes to refill), and what is left as `r`
/// requests with the bucket full again in `t` seconds. Pass it to the
/// layers' `headers`.
#[derive(Debug, Clone)]
pub struct RateLimitHeaders {
    /// The policy name, quoted.
    policy: Arc<str>,
}

impl RateLimitHeaders {
    /// The headers, naming the policy `policy`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `policy` is empty or is not printable ASCII
    /// without `"` or `\` (it goes in the header as a quoted string).
    pub fn new(policy: &str) -> Result<Self, ConfigError> {
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
            policy: format!("\"{policy}\"").into(),
        })
    }

    /// The policy; a budget that never refills has no window `w`.
    fn policy_header(&self, quota: Quota) -> HeaderValue {
        let burst = quota.burst();
        match quota.replenish_all() {
            Duration::MAX => header_value(&format!("{};q={burst}", self.policy)),
            replenish => {
                let window = seconds_up(replenish).max(1);
                header_value(&format!("{};q={burst};w={window}", self.policy))
            }
        }
    }

    /// What is left; with no reset time `t` when it never resets.
    fn limit_header(&self, remaining: u32, reset: Duration) -> HeaderValue {
        match reset {
            Duration::MAX => header_value(&format!("{};r={remaining}", self.policy)),
            reset => header_value(&format!(
                "{};r={remaining};t={}",
                self.policy,
                seconds_up(reset)
            )),
        }
    }
}

/// The `RateLimit-Policy` and `RateLimit` values for one response.
///
/// Written only if the response carries no `RateLimit` header yet, or one
/// less restrictive: when rate-limit layers are stacked (per client inside
/// a global limit), the client learns about the limit nearest to refusing
/// it, as the IETF draft asks, whichever layer is outermost.
#[derive(Debug)]
pub struct HeaderNote {
    policy: HeaderValue,
    limit: HeaderValue,
    /// Requests left, and whole seconds to full (`None`: never).
    restriction: (u32, Option<u64>),
}

/// How restrictive a `RateLimit` value is: `r` and `t` (`None` when it has
/// no `t`: never full again); `None` if it does not parse.
fn restriction(value: &HeaderValue) -> Option<(u32, Option<u64>)> {
    let text = value.to_str().ok()?;
    // The parameters follow the policy's name, which may be a quoted
    // string holding `;` and `=` itself (with `\` escapes).
    let params = match text.strip_prefix('"') {
        Some(quoted) => {
            let mut escaped = false;
            let end = quoted.find(|c| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })?;
            &quoted[end + 1..]
        }
        None => text.split_once(';').map_or("", |(_, params)| params),
    };
    let param = |name: &str| {
        params
            .split(';')
            .find_map(|part| part.trim().strip_prefix(name)?.strip_prefix('='))
    };
    let remaining = param("r")?.parse().ok()?;
    let reset = match param("t") {
        Some(t) => Some(t.parse().ok()?),
        None => None,
    };
    Some((remaining, reset))
}

/// Whether `a` is more restrictive than `b`: fewer requests left, or as
/// few and longer to wait.
fn stricter(a: (u32, Option<u64>), b: (u32, Option<u64>)) -> bool {
    let wait = |t: Option<u64>| t.unwrap_or(u64::MAX);
    (a.0, std::cmp::Reverse(wait(a.1))) < (b.0, std::cmp::Reverse(wait(b.1)))
}

impl Report for RateLimitHeaders {
    type Note = HeaderNote;

    fn wants_state(&self) -> bool {
        true
    }

    /// No headers under an unlimited quota: there is no limit to report.
    fn admitted(&self, state: &LimitState) -> Option<HeaderNote> {
        if state.quota.is_unlimited() {
            return None;
        }
        Some(self.note(state.quota, state.remaining, state.reset))
    }

    fn refused(&self, refused: &RateLimited, quota: Quota, cost: u32) -> Option<HeaderNote> {
        // `t` is the time until the bucket is full again, as on admitted
        // responses: the wait until the request's `cost` tokens are free,
        // plus the time the rest of the burst takes; never, for a refusal
        // no wait would cure.
        let reset = if refused.is_final() {
            Duration::MAX
        } else {
            let cost = quota.emission_interval().saturating_mul(cost);
            refused
                .retry_after()
                .saturating_add(quota.replenish_all())
                .saturating_sub(cost)
        };
        Some(self.note(quota, 0, reset))
    }
}

impl RateLimitHeaders {
    fn note(&self, quota: Quota, remaining: u32, reset: Duration) -> HeaderNote {
        HeaderNote {
            policy: self.policy_header(quota),
            limit: self.limit_header(remaining, reset),
            restriction: (
                remaining,
                (reset != Duration::MAX).then(|| seconds_up(reset)),
            ),
        }
    }
}

impl<B> Annotate<Response<B>> for HeaderNote {
    fn annotate(self, response: &mut Response<B>) {
        let headers = response.headers_mut();
        if let Some(existing) = headers.get(RATELIMIT).and_then(restriction)
            && !stricter(self.restriction, existing)
        {
            return;
        }
        headers.insert(RATELIMIT_POLICY, self.policy);
        headers.insert(RATELIMIT, self.limit);
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
    fn policy_names_are_checked() {
        assert!(RateLimitHeaders::new("per-client").is_ok());
        let err = RateLimitHeaders::new("bad\"name").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"policy: must be printable ASCII without quotes or backslashes, got "bad\"name""#
        );
        assert!(RateLimitHeaders::new("").is_err());
        assert!(RateLimitHeaders::new("tab\there").is_err());
    }

    /// Stacked layers: the most restrictive note stays, whichever layer
    /// writes last.
    #[test]
    fn the_most_restrictive_note_wins() {
        let quota = Quota::per_second(10).burst(50).build().unwrap();
        let (client, global) = (
            RateLimitHeaders::new("per-client").unwrap(),
            RateLimitHeaders::new("global").unwrap(),
        );
        let written = |notes: Vec<HeaderNote>| {
            let mut response = Response::new(());
            for note in notes {
                note.annotate(&mut response);
            }
            response.headers()[RATELIMIT].to_str().unwrap().to_owned()
        };
        let tight = || client.note(quota, 2, Duration::from_secs(4));
        let loose = || global.note(quota, 40, Duration::from_secs(1));
        assert_eq!(written(vec![tight(), loose()]), r#""per-client";r=2;t=4"#);
        assert_eq!(written(vec![loose(), tight()]), r#""per-client";r=2;t=4"#);
        // As few left: the longer wait wins; no `t` (never) is longest.
        let never = || global.note(quota, 2, Duration::MAX);
        assert_eq!(written(vec![tight(), never()]), r#""global";r=2"#);
        assert_eq!(written(vec![never(), tight()]), r#""global";r=2"#);
        // A name with `;` and `=` in its quotes is not read as parameters.
        let odd = RateLimitHeaders::new("a;r=99;t=0").unwrap();
        let odd = || odd.note(quota, 1, Duration::from_secs(9));
        assert_eq!(written(vec![odd(), loose()]), r#""a;r=99;t=0";r=1;t=9"#);
        assert_eq!(written(vec![loose(), odd()]), r#""a;r=99;t=0";r=1;t=9"#);
    }

    #[test]
    fn headers_describe_quota_and_state() {
        let quota = Quota::per_second(10).burst(50).build().unwrap();
        let headers = RateLimitHeaders::new("api").unwrap();
        assert_eq!(headers.policy_header(quota), r#""api";q=50;w=5"#);
        assert_eq!(
            headers.limit_header(7, Duration::from_millis(300)),
            r#""api";r=7;t=1"#
        );
        let budget = Quota::per_second(0).burst(9).build().unwrap();
        assert_eq!(headers.policy_header(budget), r#""api";q=9"#);
        assert_eq!(headers.limit_header(0, Duration::MAX), r#""api";r=0"#);
    }
}
