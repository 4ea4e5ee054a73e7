//! [`HedgeLayer`]: a second attempt for slow requests.

use seawall_core::DefaultClassifier;
use tower::Layer;

use super::Hedge;
use super::service::HedgeService;
use crate::tower::CloneRequest;

/// Sends a second copy of a request when the first is slow (past a fixed
/// delay, or past a percentile of recent first attempts, as the [`Hedge`]
/// says), takes the first good answer and drops the other attempt; a
/// budget caps the hedges.
///
/// "Good" is what the classifier does not call a failure
/// ([`DefaultClassifier`]: any `Ok`): a failed answer from one attempt
/// waits for the other's. Hedge only requests that are safe to send twice:
/// the copy comes from a [`ReplayRequest`](crate::tower::ReplayRequest),
/// `Clone` by default (for HTTP, `IdempotentOnly` sends non-idempotent
/// methods once). The inner service must be `Clone`, and the hedge is sent
/// only once a clone of it is ready.
///
/// A request whose first attempt answers on its first poll arms no timer;
/// any other arms one (a tokio `Sleep`) for the delay. With a percentile
/// delay, every request reads the clock four times (two to time its first
/// attempt, two to see whether the latency window is over).
/// Only requests that may be hedged (their copy could be made) count
/// toward the budget.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), seawall_core::ConfigError> {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use seawall_recover::{Hedge, HedgeDelay};
/// use seawall_recover::tower::HedgeLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// // The first call is stuck; the second answers in 10 ms.
/// let calls = Arc::new(AtomicU32::new(0));
/// let counter = Arc::clone(&calls);
/// let replicas = service_fn(move |_: ()| {
///     let slow = counter.fetch_add(1, Ordering::Relaxed) == 0;
///     async move {
///         let took = if slow { Duration::from_secs(30) } else { Duration::from_millis(10) };
///         tokio::time::sleep(took).await;
///         Ok::<_, std::convert::Infallible>(took)
///     }
/// });
/// let hedge = Hedge::builder().delay(HedgeDelay::Fixed(Duration::from_millis(50))).build()?;
/// let service = HedgeLayer::new(hedge).layer(replicas);
///
/// let started = tokio::time::Instant::now();
/// assert_eq!(service.oneshot(()).await.unwrap(), Duration::from_millis(10));
/// assert_eq!(started.elapsed(), Duration::from_millis(60));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HedgeLayer<K = DefaultClassifier, P = CloneRequest> {
    hedge: Hedge,
    classify: K,
    replay: P,
}

impl<K, P> std::fmt::Debug for HedgeLayer<K, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("hedge", &self.hedge)
            .finish_non_exhaustive()
    }
}

impl HedgeLayer {
    /// Hedges as `hedge` says; any `Ok` is a good answer; requests are
    /// copied with `Clone`.
    #[must_use]
    pub fn new(hedge: Hedge) -> Self {
        Self {
            hedge,
            classify: DefaultClassifier,
            replay: CloneRequest,
        }
    }
}

impl<K, P> HedgeLayer<K, P> {
    /// Judges answers with `classify`: an answer it calls a failure does
    /// not win while the other attempt runs.
    #[must_use]
    pub fn classify<K2>(self, classify: K2) -> HedgeLayer<K2, P> {
        HedgeLayer {
            hedge: self.hedge,
            classify,
            replay: self.replay,
        }
    }

    /// Copies requests with `replay` (say, `IdempotentOnly` for HTTP).
    #[must_use]
    pub fn replay<P2>(self, replay: P2) -> HedgeLayer<K, P2> {
        HedgeLayer {
            hedge: self.hedge,
            classify: self.classify,
            replay,
        }
    }
}

impl<S, K: Clone, P: Clone> Layer<S> for HedgeLayer<K, P> {
    type Service = HedgeService<S, K, P>;

    fn layer(&self, inner: S) -> Self::Service {
        HedgeService::new(
            inner,
            self.hedge.clone(),
            self.classify.clone(),
            self.replay.clone(),
        )
    }
}
