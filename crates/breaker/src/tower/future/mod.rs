//! The response futures of the layers.

mod breaker;
mod bulkhead;
mod timeout;

pub use breaker::BreakerFuture;
pub use bulkhead::BulkheadFuture;
pub use timeout::TimeoutFuture;
