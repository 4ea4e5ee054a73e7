//! Rate limiting for network services: "at most R per second, bursts up to
//! B", for one resource or per client, as a plain async API and tower
//! layers.
//!
//! # Example
//!
//! ```
//! use seawall_ratelimit::{Quota, RateLimiter};
//!
//! let limiter = RateLimiter::new(Quota::per_second(50).burst(5).build()?);
//! for _ in 0..5 {
//!     assert!(limiter.check().is_ok());
//! }
//! let refused = limiter.check().unwrap_err();
//! println!("slow down; retry in {:?}", refused.retry_after());
//! # Ok::<(), seawall_core::ConfigError>(())
//! ```
//!
//! # The algorithm
//!
//! seawall uses the generic cell rate algorithm (GCRA), which behaves
//! exactly like a token bucket of `burst` tokens refilled one token every
//! *emission interval* (`period / count`), but keeps the whole bucket in one
//! number: the time at which it will be full again (the *theoretical
//! arrival time*). Taking `n` tokens pushes that time `n` intervals later;
//! the request is allowed if that leaves it at most `burst` intervals ahead
//! of now. A check is therefore one compare-and-swap of one `u64`: no lock,
//! no refill timer, no allocation, and a refusal knows exactly how long to
//! wait. `docs/ratelimit.md` explains it with pictures, and how to choose
//! rate and burst.
//!
//! # Features
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `tower` | `RateLimitLayer` and `KeyedRateLimitLayer` | off |
//! | `http` | key extractors, `429 Too Many Requests` with `Retry-After`, `RateLimit` headers | off |
//! | `axum` | the extractors also read axum's `ConnectInfo` and `MatchedPath` | off |
//! | `serde` | `Quota` and the limiters' builders implement `Deserialize` (through the builders' checks) and `Serialize`, durations as `"250ms"` | off |
//! | `tracing` | events under the target `seawall::ratelimit`: refusals (trace), early key drops (debug), quota changes (info) | off |
//! | `metrics` | counters `seawall_ratelimit_admitted_total`, `_refused_total`, `_keys_evicted_early_total`, labelled `limiter` | off |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[cfg(feature = "serde")]
mod config_serde;
mod error;
mod gcra;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod keyed;
mod limiter;
mod loom;
#[cfg(all(test, loom))]
mod loom_gcra;
mod observe;
mod quota;
mod reservation;
mod state;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use error::{InsufficientCapacity, RateLimitError, RateLimited};
pub use keyed::{
    DEFAULT_MAX_KEYS, KeyFrom, KeyedRateLimiter, KeyedRateLimiterBuilder, KeyedReservation,
    KeyedStats,
};
pub use limiter::{RateLimiter, RateLimiterBuilder};
pub use quota::{Quota, QuotaBuilder};
pub use reservation::Reservation;
pub use state::LimitState;
