//! Resilience for Rust network services: rate limits, circuit breakers,
//! pools, panic recovery and service discovery, each a plain async API and a
//! tower layer.
//!
//! This umbrella crate re-exports the seawall crates, so one dependency
//! brings them all: the shared vocabulary of `seawall-core` at the root,
//! and each defence as a module behind its feature (`seawall::ratelimit`).
//! The rest join as they land (see the README's table).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use seawall::{Classify, Clock, DefaultClassifier, ManualClock, Outcome};
//!
//! let clock = ManualClock::new();
//! clock.advance(Duration::from_millis(5));
//! assert_eq!(clock.now_nanos(), 5_000_000);
//!
//! let result: Result<(), &str> = Err("connection reset");
//! assert_eq!(DefaultClassifier.classify(&result), Outcome::Failure);
//! assert_eq!(seawall::duration::parse("250ms"), Ok(Duration::from_millis(250)));
//! ```
//!
//! # Features
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `breaker` | `seawall::breaker`: circuit breakers | off |
//! | `discovery` | `seawall::discovery`: registries (memory, static), registrations kept alive, watches, health checks; with `tower`, balancers with outlier ejection | off |
//! | `dns` | `seawall::discovery::DnsDiscovery`: instances from A/AAAA and SRV records (implies `discovery`) | off |
//! | `etcd` | `seawall::discovery::EtcdRegistry`: instances under leases in etcd (implies `discovery`; building it needs `protoc`) | off |
//! | `pool` | `seawall::pool`: async connection pools with HikariCP's guarantees, and a TCP manager | off |
//! | `postgres` | the pool's PostgreSQL manager, `seawall::pool::postgres` (implies `pool`) | off |
//! | `redis-pool` | the pool's Redis manager, `seawall::pool::redis` (implies `pool`) | off |
//! | `ratelimit` | `seawall::ratelimit`: GCRA rate limits, keyed limits | off |
//! | `recover` | `seawall::recover`: panic recovery, supervised tasks, fallbacks, retries with budgets, hedging, request coalescing | off |
//! | `tower` | the tower layers of the enabled crates | off |
//! | `http` | `seawall::http` and the crates' HTTP parts: refusals as 429 / 503 / 504 responses with `Retry-After` and a readable body (or problem+json), `RateLimit` headers, key extractors, 5xx, 408 and 429 as breaker failures, a panic as a `500`, HTTP retries | off |
//! | `grpc` | the crates' gRPC parts: `seawall::breaker::grpc::GrpcClassifier` | off |
//! | `axum` | the HTTP parts also read axum's `ConnectInfo` and `MatchedPath` | off |
//! | `serde` | the crates' configs read and written with serde through their builders' checks, durations as `"250ms"`; `seawall::config::deserialize` names a bad field by its path | off |
//! | `tokio` | `TokioClock`, a clock that follows tokio's (pausable) time | off |
//! | `tracing` | `tracing` events of the enabled crates, targets `seawall::<crate>` | off |
//! | `metrics` | `metrics` counters of the enabled crates, named `seawall_<crate>_*` | off |
//! | `full` | every feature above | off |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub use seawall_core::{
    BoxError, Classify, Clock, CoarseClock, ConfigError, DefaultClassifier, ManualClock,
    MonotonicClock, Outcome, Refusal, RefusalFormat, RefusalKind, RefusalReason, RefuseWithError,
    Refused, ResponseFormat, duration,
};

/// HTTP parts shared by every crate: refusals answered as responses
/// (`RefuseWithResponse`, `429` / `503` / `504` / `500` by kind),
/// `HttpClassifier`, and `error_response`, the response for a seawall
/// refusal that reached an error handler as an error.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[doc(inline)]
pub use seawall_core::http;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use seawall_core::TokioClock;

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
#[doc(inline)]
pub use seawall_core::config;

#[cfg(feature = "ratelimit")]
#[cfg_attr(docsrs, doc(cfg(feature = "ratelimit")))]
#[doc(inline)]
pub use seawall_ratelimit as ratelimit;

#[cfg(feature = "breaker")]
#[cfg_attr(docsrs, doc(cfg(feature = "breaker")))]
#[doc(inline)]
pub use seawall_breaker as breaker;

#[cfg(feature = "discovery")]
#[cfg_attr(docsrs, doc(cfg(feature = "discovery")))]
#[doc(inline)]
pub use seawall_discovery as discovery;

#[cfg(feature = "pool")]
#[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
#[doc(inline)]
pub use seawall_pool as pool;

#[cfg(feature = "recover")]
#[cfg_attr(docsrs, doc(cfg(feature = "recover")))]
#[doc(inline)]
pub use seawall_recover as recover;
