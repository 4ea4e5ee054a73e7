//! HTTP parts: what the breaker's refusals become as responses, and which
//! responses count as failures.
//!
//! | Refusal | Status | `Retry-After` |
//! |---|---|---|
//! | [`BreakerError::Open`] | `503 Service Unavailable` | the time left in open, in whole seconds rounded up |
//! | [`BreakerError::ForcedOpen`], [`BreakerError::HalfOpenFull`] | `503 Service Unavailable` | none (not known) |
//! | [`BreakerError::TimedOut`] (the breaker's own `timeout`) | `504 Gateway Timeout` | none |
//! | [`BulkheadFull`] | `503 Service Unavailable` | none |
//! | [`Elapsed`] | `504 Gateway Timeout` | none |
//!
//! [`CircuitBreakerLayer::http`](crate::tower::CircuitBreakerLayer::http)
//! sets both halves: [`HttpClassifier`] (a `5xx` response or an error is a
//! failure) and [`RefuseWithResponse`]. The bulkhead and timeout layers
//! take `.refusal(RefuseWithResponse)`. The services then keep the inner
//! service's error type, as axum's routers require.
//!
//! Put the bulkhead outside the breaker, so that a full bulkhead's `503` is
//! not counted against the dependency, and the timeout inside it, so that
//! its `504` is:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use seawall_breaker::http::RefuseWithResponse;
//! use seawall_breaker::tower::{BulkheadLayer, CircuitBreakerLayer, TimeoutLayer};
//! use seawall_breaker::{BreakerConfig, Bulkhead, CircuitBreaker};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! let breaker = CircuitBreaker::new(
//!     BreakerConfig::builder()
//!         .count_window(2)
//!         .minimum_calls(2)
//!         .wait_in_open(Duration::from_secs(30))
//!         .build()?,
//! );
//! let mut svc = ServiceBuilder::new()
//!     .layer(BulkheadLayer::new(Bulkhead::builder().max_concurrent(100).build()?).refusal(RefuseWithResponse))
//!     .layer(CircuitBreakerLayer::http(breaker))
//!     .layer(TimeoutLayer::new(Duration::from_secs(1)).refusal(RefuseWithResponse))
//!     .service_fn(|_: Request<String>| async {
//!         let mut failing = Response::new(String::new());
//!         *failing.status_mut() = StatusCode::BAD_GATEWAY;
//!         Ok::<_, Infallible>(failing)
//!     });
//!
//! // Two 502s fill the window with failures, and the circuit opens.
//! for _ in 0..2 {
//!     let response = svc.ready().await?.call(Request::new(String::new())).await?;
//!     assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
//! }
//! let refused = svc.ready().await?.call(Request::new(String::new())).await?;
//! assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(refused.headers()["retry-after"], "30");
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::time::Duration;

use http::StatusCode;

pub use seawall_core::http::{HttpClassifier, HttpRefusal, RefuseWithResponse, refusal_response};

use crate::bulkhead::BulkheadFull;
use crate::error::BreakerError;
use crate::timeout::Elapsed;

impl HttpRefusal for BreakerError<Infallible> {
    fn status(&self) -> StatusCode {
        match self {
            Self::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Open { retry_after } => Some(*retry_after),
            Self::ForcedOpen | Self::HalfOpenFull | Self::TimedOut { .. } => None,
            Self::Inner(never) => match *never {},
        }
    }
}

impl HttpRefusal for BulkheadFull {
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

impl HttpRefusal for Elapsed {
    fn status(&self) -> StatusCode {
        StatusCode::GATEWAY_TIMEOUT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_their_statuses() {
        let open = BreakerError::Open {
            retry_after: Duration::from_millis(2_500),
        };
        let response: http::Response<()> = refusal_response(&open);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "3");

        for refused in [BreakerError::ForcedOpen, BreakerError::HalfOpenFull] {
            let response: http::Response<()> = refusal_response(&refused);
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().get("retry-after").is_none());
        }

        let full = BulkheadFull { max_concurrent: 4 };
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        let elapsed = Elapsed {
            after: Duration::from_secs(1),
        };
        assert_eq!(elapsed.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
