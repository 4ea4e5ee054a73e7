//! Tower middleware over [`RateLimiter`](crate::RateLimiter) and
//! [`KeyedRateLimiter`](crate::KeyedRateLimiter).
//!
//! Every layer holds a handle to one shared limiter, so every clone of the
//! layer and of its services (one per connection, behind a `Buffer`, in
//! several routers) counts against the same quota. tower's own
//! `tower::limit::RateLimit` keeps its state per service clone instead.

pub mod future;
mod keyed;
mod layer;
mod refusal;
mod service;

pub use keyed::{KeyExtractor, KeyedRateLimit, KeyedRateLimitLayer};
pub use layer::RateLimitLayer;
pub use refusal::{Refusal, RefuseWithError};
pub use service::RateLimit;

/// The error type of the services when refusals are errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
