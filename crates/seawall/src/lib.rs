//! Resilience for Rust network services: rate limits, circuit breakers,
//! pools, panic recovery and service discovery, each a plain async API and a
//! tower layer.
//!
//! This umbrella crate re-exports the seawall crates, so one dependency
//! brings them all. Today it holds the shared vocabulary of
//! [`seawall-core`](seawall_core); the feature crates join it as they land
//! (see the README's table).
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
//! | `serde` | configs read and written with serde, durations as `"250ms"` | off |
//! | `tokio` | `TokioClock`, a clock that follows tokio's (pausable) time | off |
//! | `full` | every feature above | off |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub use seawall_core::{
    Classify, Clock, ConfigError, DefaultClassifier, ManualClock, MonotonicClock, Outcome, duration,
};
