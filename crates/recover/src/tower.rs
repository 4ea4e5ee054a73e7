//! Tower middleware (each in its own folder, with `layer.rs`, `service.rs`
//! and `future.rs`): [`CatchPanicLayer`], [`CoalesceLayer`],
//! [`FallbackLayer`], [`RetryLayer`], [`HedgeLayer`].

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use crate::catch_panic::answer::PlainServerError;
pub use crate::catch_panic::answer::{AnswerPanic, LogPanic, ReportPanic, RespondWith};
pub use crate::catch_panic::future::CatchPanicFuture;
pub use crate::catch_panic::layer::CatchPanicLayer;
pub use crate::catch_panic::service::CatchPanic;
pub use crate::coalesce::layer::CoalesceLayer;
pub use crate::coalesce::service::{CoalesceFuture, CoalesceService, SharedError};
pub use crate::fallback::future::FallbackFuture;
pub use crate::fallback::layer::FallbackLayer;
pub use crate::fallback::service::FallbackService;
pub use crate::hedge::future::HedgeFuture;
pub use crate::hedge::layer::HedgeLayer;
pub use crate::hedge::service::HedgeService;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use crate::retry::body::{ReplayBody, ReplayBodyFuture, ReplayBodyLayer, ReplayBodyService};
pub use crate::retry::future::RetryFuture;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use crate::retry::http::{HttpRetry, IdempotentOnly};
pub use crate::retry::layer::RetryLayer;
pub use crate::retry::service::{CloneRequest, ReplayRequest, RetryService};

pub use seawall_core::{BoxError, Refusal, RefusalFormat, RefuseWithError};
