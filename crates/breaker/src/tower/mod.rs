//! Tower middleware (each in its middleware's folder, beside the core type:
//! `breaker/`, `bulkhead/`, `timeout/`, each with `layer.rs`, `service.rs`
//! and `future.rs`): [`CircuitBreakerLayer`], [`BulkheadLayer`],
//! [`TimeoutLayer`].
//!
//! A layer that is going to refuse (an open breaker, a full bulkhead) is
//! ready at once, without asking its inner service, and refuses in `call`:
//! a refused request gets its answer at once, even in front of a stuck
//! inner service. By default the answer is a [`Refused`](seawall_core::Refused)
//! error in a [`BoxError`], which `Refused::find` recognises after any
//! number of layers and whose `downcast_ref` gives the crate's own
//! [`BreakerRefusal`](crate::BreakerRefusal), [`BulkheadFull`](crate::BulkheadFull)
//! or [`TimedOut`](crate::TimedOut). With the `http` feature each layer's
//! `http` constructor answers with a response instead: 503 for an open
//! breaker or a full bulkhead, 504 for a deadline (see the crate's `http`
//! module).

pub mod future;

pub use crate::breaker::layer::CircuitBreakerLayer;
pub use crate::breaker::service::CircuitBreakerService;
pub use crate::bulkhead::layer::BulkheadLayer;
pub use crate::bulkhead::service::BulkheadService;
pub use crate::timeout::layer::TimeoutLayer;
pub use crate::timeout::service::TimeoutService;

pub use seawall_core::{BoxError, Refusal, RefusalFormat, RefuseWithError};
