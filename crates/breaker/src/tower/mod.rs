//! Tower middleware: [`CircuitBreakerLayer`], [`BulkheadLayer`],
//! [`TimeoutLayer`].
//!
//! Refusals are decided in `call`, never by holding `poll_ready`: a refused
//! request gets a ready error at once, boxed unwrapped so that
//! `err.downcast_ref::<BreakerError>()`, `downcast_ref::<BulkheadFull>()` or
//! `downcast_ref::<Elapsed>()` finds it after any number of layers.

mod breaker;
mod bulkhead;
pub mod future;
mod timeout;

pub use breaker::{CircuitBreakerLayer, CircuitBreakerService};
pub use bulkhead::{BulkheadLayer, BulkheadService};
pub use timeout::{TimeoutLayer, TimeoutService};

/// The error type of the services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
