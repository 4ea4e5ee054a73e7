//! Tower middleware: [`CircuitBreakerLayer`], [`BulkheadLayer`],
//! [`TimeoutLayer`].
//!
//! Refusals are decided in `call`, never by holding `poll_ready`: a refused
//! request gets its answer at once. By default that is an error, boxed
//! unwrapped so that `err.downcast_ref::<BreakerError>()`,
//! `downcast_ref::<BulkheadFull>()` or `downcast_ref::<Elapsed>()` finds it
//! after any number of layers. With the `http` feature each layer can answer
//! with a response instead (`.refusal(RefuseWithResponse)`, or
//! `CircuitBreakerLayer::http`): 503 for an open breaker or a full bulkhead,
//! 504 for a deadline (see the crate's `http` module).

mod breaker;
mod bulkhead;
pub mod future;
mod timeout;

pub use breaker::{CircuitBreakerLayer, CircuitBreakerService};
pub use bulkhead::{BulkheadLayer, BulkheadService};
pub use timeout::{TimeoutLayer, TimeoutService};

pub use seawall_core::{BoxError, Refusal, RefusalFormat, RefuseWithError};
