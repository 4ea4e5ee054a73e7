//! Tower: [`PoolService`], a service that runs each request on an object
//! checked out of a pool.

pub mod future;
mod service;

pub use service::PoolService;
