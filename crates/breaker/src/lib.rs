//! Circuit breaking for network services: stop hammering a dependency that
//! is failing, and give it room to recover.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), seawall_core::ConfigError> {
//! use std::time::Duration;
//! use seawall_breaker::{BreakerConfig, CircuitBreaker, State};
//! use seawall_core::ManualClock;
//!
//! let clock = ManualClock::new();
//! let config = BreakerConfig::builder()
//!     .count_window(10)
//!     .minimum_calls(4)
//!     .failure_rate_threshold(50.0)
//!     .wait_in_open(Duration::from_secs(5))
//!     .permitted_calls_in_half_open(1)
//!     .build()?;
//! let breaker = CircuitBreaker::with_clock(config, clock.clone());
//!
//! // Two successes, two failures: 50% of 4 calls, so it opens.
//! for ok in [true, true, false, false] {
//!     let _ = breaker.call(|| async move { if ok { Ok(()) } else { Err("timeout") } }).await;
//! }
//! assert_eq!(breaker.state(), State::Open);
//!
//! // After the wait, one trial call decides.
//! clock.advance(Duration::from_secs(6));
//! breaker.call(|| async { Ok::<_, &str>(()) }).await.unwrap();
//! assert_eq!(breaker.state(), State::Closed);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `tower` | `CircuitBreakerLayer`, `BulkheadLayer`, `TimeoutLayer` | off |
//! | `tracing` | events under the target `seawall::breaker`: transitions (warn when opening), refusals (debug), slow calls (trace) | off |
//! | `metrics` | counters `seawall_breaker_refused_total`, `_failures_total`, `_slow_calls_total`, `_opened_total`, labelled `breaker` | off |
//! | `serde` | `BreakerConfig`, `Bulkhead` and `Timeout` implement `Deserialize` (through their builders' checks) and `Serialize`, durations as `"250ms"` | off |
//! | `http` | the `http` module: a `5xx`, `408` or `429` counts as a failure; an open breaker answers `503` with `Retry-After`, a full bulkhead `503`, a deadline `504` | off |
//! | `grpc` | the `grpc` module: `GrpcClassifier`, which counts `grpc-status` `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED` and `INTERNAL` as failures (implies `http`) | off |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod breaker;
mod bulkhead;
mod config;
#[cfg(feature = "serde")]
mod config_serde;
mod error;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod hystrix;
mod loom;
#[cfg(all(test, loom))]
mod loom_state;
#[cfg(all(test, loom))]
mod loom_window;
mod observe;
mod registry;
mod state;
mod time_window;
mod timeout;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
mod window;

pub use breaker::{CircuitBreaker, CircuitBreakerBuilder, OwnedPermit, Permit};
pub use bulkhead::{Bulkhead, BulkheadBuilder, BulkheadError, BulkheadFull, BulkheadPermit};
pub use config::{BreakerConfig, BreakerConfigBuilder, TrialRule};
pub use error::{BreakerError, BreakerRefusal};
pub use hystrix::{Hystrix, HystrixError, HystrixSettings};
pub use observe::{Snapshot, Transition};
pub use registry::BreakerRegistry;
pub use state::State;
pub use timeout::{TimedOut, Timeout, TimeoutError};
