//! Keep a service standing when its own code panics or a dependency fails:
//! catch panics as values ([`catch`], `tower::CatchPanicLayer`), restart
//! background tasks ([`Supervisor`]), answer failures with a degraded value
//! ([`Fallback`]), retry without amplifying an outage ([`Retry`],
//! [`RetryBudget`]), hedge slow requests (`tower::HedgeLayer`), and collapse
//! a stampede of identical requests into one call ([`Coalesce`]). The guide
//! is `docs/recover.md` in the repository.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use seawall_recover::catch;
//!
//! async fn handler(id: &str) -> u32 {
//!     id.parse().expect("ids are numbers")
//! }
//!
//! assert_eq!(catch(handler("7")).await, Ok(7));
//! let panicked = catch(handler("seven")).await.unwrap_err();
//! assert!(panicked.message().contains("ids are numbers"));
//! # }
//! ```
//!
//! # Features
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `tower` | module `tower`: `CatchPanicLayer`, `FallbackLayer`, `RetryLayer`, `CoalesceLayer`, `HedgeLayer`; and `Hedge`, `HedgeDelay` | off |
//! | `http` | `CatchPanicLayer::http` (a panic answers `500`), `RetryLayer::http` (idempotent methods; `5xx`, `408`, `429`; `Retry-After`), `ReplayBodyLayer` (bodies buffered so retries and hedges can send them again) | off |
//! | `serde` | `RestartPolicy` and `RetryPolicy` read and written with serde, through their builders | off |
//! | `tracing` | events under the target `seawall::recover` | off |
//! | `metrics` | counters `seawall_recover_panics_total{part}`, `_retries_total`, `_budget_exhausted_total{part}`, `_hedges_total`, `_coalesced_total`, `_fallbacks_total`, `_task_restarts_total{task}`, `_tasks_given_up_total{task}` | off |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[cfg(feature = "tower")]
mod catch_panic;
mod coalesce;
#[cfg(feature = "serde")]
mod config_serde;
mod fallback;
#[cfg(feature = "tower")]
mod hedge;
mod observe;
mod panic;
mod retry;
mod supervisor;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use coalesce::group::Coalesce;
pub use fallback::{Fallback, FallbackBuilder, FallbackOn, OnError, OnRefusal, fallback};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use hedge::{Hedge, HedgeBuilder, HedgeDelay};
pub use panic::{Catch, PanicLocation, Panicked, catch};
pub use retry::{
    Jitter, NoRetryAfter, Retry, RetryAfter, RetryBudget, RetryPolicy, RetryPolicyBuilder, retry,
};
pub use supervisor::{
    Exit, Restart, RestartPolicy, RestartPolicyBuilder, Shutdown, ShutdownReport, SpawnError,
    Supervisor, TaskEvent, TaskState, TaskStatus,
};
