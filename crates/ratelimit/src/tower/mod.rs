//! Tower middleware over [`RateLimiter`](crate::RateLimiter) and
//! [`KeyedRateLimiter`](crate::KeyedRateLimiter).
//!
//! Every layer holds a handle to one shared limiter, so every clone of the
//! layer and of its services (one per connection, behind a `Buffer`, in
//! several routers) counts against the same quota. tower's own
//! `tower::limit::RateLimit` keeps its state per service clone instead.
//!
//! A refused request is answered through core's [`Refusal`]: by default a
//! [`Refused`](seawall_core::Refused) error (kind `RateLimited`, with the
//! wait) in a [`BoxError`]; with the `http` feature, `RefuseWithResponse`
//! (or the layers' `http` constructors) answers `429 Too Many Requests` with
//! `Retry-After`, and `http::RateLimitHeaders` adds the `RateLimit` headers
//! to every response.

mod cost;
pub mod future;
mod keyed;
mod layer;
mod report;
mod service;

pub use cost::{Cost, One};
pub use keyed::{KeyExtractor, KeyedRateLimit, KeyedRateLimitLayer, NoKey};
pub use layer::RateLimitLayer;
pub use report::{Annotate, Report};
pub use seawall_core::{BoxError, Refusal, RefusalFormat, RefuseWithError};
pub use service::RateLimit;
