//! [`CatchPanicLayer`](crate::tower::CatchPanicLayer): panics in a tower
//! service become answers.

pub(crate) mod answer;
pub(crate) mod future;
pub(crate) mod layer;
pub(crate) mod service;
