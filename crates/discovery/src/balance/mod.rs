//! Balancers: tower services that spread requests over the instances of a
//! service as discovery finds them ([`Balance`]), and a [`Watch`](crate::Watch)
//! as tower's `Discover` for tower's own balancers ([`WatchDiscover`]).

mod discover;
mod error;
pub mod future;
mod outlier;
mod p2c;
mod ring;
mod service;
mod slot;
mod weighted;

pub use discover::WatchDiscover;
pub use error::NoInstances;
pub use outlier::{OutlierDetection, OutlierDetectionBuilder};
pub use service::Balance;
