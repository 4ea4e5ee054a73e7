//! HTTP parts: what the breaker's refusals become as responses, and which
//! responses count as failures.
//!
//! Each refusal's status comes from its kind (see `seawall_core`'s
//! `RefusalKind`, which holds the whole workspace's mapping):
//!
//! | Refusal | Kind | Status | `Retry-After` |
//! |---|---|---|---|
//! | [`BreakerRefusal::Open`](crate::BreakerRefusal::Open) | `Unavailable` | `503 Service Unavailable` | the time left in open, in whole seconds rounded up |
//! | [`BreakerRefusal::HalfOpenFull`](crate::BreakerRefusal::HalfOpenFull) | `Unavailable` | `503 Service Unavailable` | the most half-open may still last, rounded the same way |
//! | [`BreakerRefusal::ForcedOpen`](crate::BreakerRefusal::ForcedOpen) | `Unavailable` | `503 Service Unavailable` | none (not known) |
//! | [`BulkheadFull`](crate::BulkheadFull) | `Overloaded` | `503 Service Unavailable` | none |
//! | [`TimedOut`](crate::TimedOut) (a `TimeoutLayer`'s deadline, or the breaker's own `timeout`) | `TimedOut` | `504 Gateway Timeout` | none |
//!
//! Each layer has an `http` constructor:
//! [`CircuitBreakerLayer::http`](crate::tower::CircuitBreakerLayer::http)
//! sets both halves, [`HttpClassifier`] (a `5xx` response or an error is a
//! failure; a refusal made by a seawall layer inside is not, unless it is a
//! timeout) and [`RefuseWithResponse`];
//! [`BulkheadLayer::http`](crate::tower::BulkheadLayer::http) and
//! [`TimeoutLayer::http`](crate::tower::TimeoutLayer::http) answer with
//! responses. The services then keep the inner service's error type, as
//! axum's routers require.
//!
//! Put the bulkhead outside the breaker, so that a full bulkhead's `503`
//! never reaches it, and the timeout inside it, so that its `504` counts as
//! a failure:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
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
//!     .layer(BulkheadLayer::http(Bulkhead::builder().max_concurrent(100).build()?))
//!     .layer(CircuitBreakerLayer::http(breaker))
//!     .layer(TimeoutLayer::http(Duration::from_secs(1)))
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
//! assert_eq!(refused.body(), "service unavailable: retry in 30 s\n");
//! # Ok(())
//! # }
//! ```

pub use seawall_core::http::{
    HttpClassifier, RefusalMarker, RefuseWithResponse, error_response, refusal_response,
    response_format,
};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Response, StatusCode};
    use seawall_core::ResponseFormat;

    use super::*;
    use crate::bulkhead::BulkheadFull;
    use crate::error::BreakerRefusal;
    use crate::timeout::TimedOut;

    fn respond(refused: &impl seawall_core::RefusalReason) -> Response<String> {
        refusal_response(refused, ResponseFormat::Text)
    }

    #[test]
    fn refusals_map_to_their_statuses() {
        let open = BreakerRefusal::Open {
            retry_after: Duration::from_millis(2_500),
        };
        let response = respond(&open);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "3");

        let forced = respond(&BreakerRefusal::ForcedOpen);
        assert_eq!(forced.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(forced.headers().get("retry-after").is_none());
        let full = respond(&BreakerRefusal::HalfOpenFull {
            retry_after: Duration::from_secs(12),
        });
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(full.headers()["retry-after"], "12");
        let full = BulkheadFull { max_concurrent: 4 };
        assert_eq!(respond(&full).status(), StatusCode::SERVICE_UNAVAILABLE);
        let elapsed = TimedOut {
            after: Duration::from_secs(1),
        };
        assert_eq!(respond(&elapsed).status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
