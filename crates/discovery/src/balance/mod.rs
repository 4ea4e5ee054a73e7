//! Balancers: tower services that spread requests over the instances of a
//! service as discovery finds them ([`Balance`]).

mod error;
pub mod future;
mod p2c;
mod ring;
mod service;
mod slot;
mod weighted;

pub use error::NoInstances;
pub use service::Balance;
