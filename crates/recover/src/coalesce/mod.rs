//! Request coalescing: [`Coalesce`](crate::Coalesce), and (feature `tower`)
//! [`CoalesceLayer`](crate::tower::CoalesceLayer).

pub(crate) mod group;
#[cfg(feature = "tower")]
pub(crate) mod layer;
#[cfg(feature = "tower")]
pub(crate) mod service;
