//! The response futures of the layers.

pub use crate::breaker::future::BreakerFuture;
pub use crate::bulkhead::future::BulkheadFuture;
pub use crate::timeout::future::TimeoutFuture;
