//! The shared vocabulary of seawall's crates: clocks, call outcomes, config
//! errors and durations.
//!
//! Each seawall crate (rate limits, breakers, pools, recovery, discovery)
//! depends on this one and on no sibling, so what two of them need lives
//! here, and nothing else does:
//!
//! - [`Clock`]: nanoseconds as a `u64` for hot paths, with the production
//!   [`MonotonicClock`], the millisecond [`CoarseClock`] (a read costs a
//!   load), the test [`ManualClock`], and (feature `tokio`) `TokioClock` for
//!   paused-time tests;
//! - [`Outcome`] and [`Classify`]: whether a finished call counts as a
//!   success, a failure or neither, decided by the user;
//! - [`ConfigError`]: what every config builder's `build()` returns;
//! - [`Shared`]: the handle behind every limiter, breaker and bulkhead,
//!   counted like an `Arc` or leaked to count nothing;
//! - [`duration`]: the `"250ms"` / `"5s"` grammar of every config, and
//!   (feature `serde`) `config`, which reads configs from any serde format
//!   with errors named by their path;
//! - refusals: every refusal of a seawall layer has a [`RefusalKind`]
//!   (which fixes its HTTP status) and maybe a wait; a crate's own refusal
//!   types implement [`RefusalReason`]; a tower layer answers through a
//!   [`Refusal`], with a [`Refused`] error ([`RefuseWithError`]) or
//!   (feature `http`) a response, and [`Refused::find`] recognises one in a
//!   [`BoxError`]; `http::HttpClassifier` makes a `5xx` a failure.
//!
//! # Example
//!
//! A toy fixed-window counter, tested with a manual clock and a classifier
//! that ignores client errors:
//!
//! ```
//! use std::time::Duration;
//! use seawall_core::{Classify, Clock, ConfigError, ManualClock, Outcome};
//!
//! struct FailureCounter<C> { clock: C, window_nanos: u64, start: u64, failures: u32 }
//!
//! impl<C: Clock> FailureCounter<C> {
//!     fn new(clock: C, window: Duration) -> Result<Self, ConfigError> {
//!         if window.is_zero() {
//!             return Err(ConfigError::new("window", "must be longer than zero", "0s"));
//!         }
//!         let start = clock.now_nanos();
//!         let window_nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
//!         Ok(Self { clock, window_nanos, start, failures: 0 })
//!     }
//!
//!     fn record(&mut self, outcome: Outcome) -> u32 {
//!         let now = self.clock.now_nanos();
//!         if now.saturating_sub(self.start) >= self.window_nanos {
//!             (self.start, self.failures) = (now, 0);
//!         }
//!         self.failures += u32::from(outcome.is_failure());
//!         self.failures
//!     }
//! }
//!
//! let ignore_client_errors = |r: &Result<u16, ()>| match r {
//!     Ok(status) if *status >= 500 => Outcome::Failure,
//!     Ok(status) if *status >= 400 => Outcome::Ignored,
//!     Ok(_) => Outcome::Success,
//!     Err(()) => Outcome::Failure,
//! };
//!
//! let clock = ManualClock::new();
//! let mut counter = FailureCounter::new(clock.clone(), Duration::from_secs(1))?;
//! assert_eq!(counter.record(ignore_client_errors.classify(&Ok(503))), 1);
//! assert_eq!(counter.record(ignore_client_errors.classify(&Ok(404))), 1);
//! clock.advance(Duration::from_secs(1));
//! assert_eq!(counter.record(ignore_client_errors.classify(&Err(()))), 1);
//!
//! let err = FailureCounter::new(clock, Duration::ZERO).err().unwrap();
//! assert_eq!(err.to_string(), "window: must be longer than zero, got 0s");
//! # Ok::<(), ConfigError>(())
//! ```
//!
//! # Features
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `serde` | `duration::serde`, to read and write `Duration` fields as `"250ms"`; `config::deserialize`, errors named by their path in the document | off |
//! | `tokio` | `TokioClock`, a [`Clock`] that follows tokio's (pausable) time | off |
//! | `http` | module `http`: `HttpClassifier`, `RefuseWithResponse` (refusals as 429 / 503 / 504 responses), `RefusalMarker` | off |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod clock;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod config;
pub mod duration;
mod error;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod outcome;
#[doc(hidden)]
pub mod panic;
#[doc(hidden)]
pub mod random;
mod refusal;
mod shared;

#[cfg(feature = "tokio")]
pub use clock::TokioClock;
pub use clock::{Clock, CoarseClock, ManualClock, MonotonicClock};
pub use error::ConfigError;
pub use outcome::{Classify, DefaultClassifier, Outcome};
pub use refusal::{
    BoxError, Refusal, RefusalFormat, RefusalKind, RefusalReason, RefuseWithError, Refused,
    ResponseFormat,
};
pub use shared::Shared;
