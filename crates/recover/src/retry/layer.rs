//! [`RetryLayer`]: failed requests sent again, within a policy and a budget.

use seawall_core::DefaultClassifier;
use tower::Layer;

use super::service::{CloneRequest, RetryService};
use crate::{NoRetryAfter, Retry};

/// Sends a request again when its answer is worth another attempt, as
/// [`Retry`] decides: the backoff, the attempt and time limits, the budget,
/// and the waits that refusals and answers ask for.
///
/// Each attempt needs its own copy of the request: by default a clone
/// (`Req: Clone`), made before the first attempt; [`replay`](Self::replay)
/// takes any other [`ReplayRequest`](crate::tower::ReplayRequest), which
/// may decline to copy a request so that it is sent once and never
/// retried. The inner service must be `Clone`: the ready one goes with the
/// request, and each retry waits for it to be ready again.
///
/// [`http`](Self::http) (feature `http`) retries HTTP requests as HTTP
/// clients should: idempotent methods only, `5xx`, `408` and `429`
/// answers and transport errors, honouring `Retry-After`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use seawall_recover::{Retry, RetryPolicy};
/// use seawall_recover::tower::RetryLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let calls = Arc::new(AtomicU32::new(0));
/// let counter = Arc::clone(&calls);
/// let flaky = service_fn(move |n: u32| {
///     let call = counter.fetch_add(1, Ordering::Relaxed);
///     async move { if call == 0 { Err("reset") } else { Ok(n * 2) } }
/// });
/// let service = RetryLayer::new(Retry::new(RetryPolicy::default())).layer(flaky);
/// assert_eq!(service.oneshot(21).await, Ok(42));
/// assert_eq!(calls.load(Ordering::Relaxed), 2);
/// # }
/// ```
pub struct RetryLayer<K: 'static = DefaultClassifier, H: 'static = NoRetryAfter, P = CloneRequest> {
    retry: Retry<K, H>,
    replay: P,
}

impl<K: 'static, H: 'static, P: Clone> Clone for RetryLayer<K, H, P> {
    fn clone(&self) -> Self {
        Self {
            retry: self.retry.clone(),
            replay: self.replay.clone(),
        }
    }
}

impl<K: 'static, H: 'static, P> std::fmt::Debug for RetryLayer<K, H, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLayer")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<K: 'static, H: 'static> RetryLayer<K, H> {
    /// Retries as `retry` decides, copying requests by `Clone`.
    #[must_use]
    pub fn new(retry: Retry<K, H>) -> Self {
        Self {
            retry,
            replay: CloneRequest,
        }
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl RetryLayer<super::http::HttpRetry, super::http::HttpRetry, super::http::IdempotentOnly> {
    /// Retries HTTP requests under `policy`: only idempotent methods
    /// ([`IdempotentOnly`](crate::tower::IdempotentOnly): `GET`, `HEAD`,
    /// `OPTIONS`, `TRACE`, `PUT`, `DELETE`), whose body must be `Clone`
    /// (`String`, `Full<Bytes>`: buffer a streaming body first); answers
    /// and errors judged by [`HttpRetry`](crate::tower::HttpRetry).
    #[must_use]
    pub fn http(policy: crate::RetryPolicy) -> Self {
        let retry = Retry::new(policy)
            .classify(super::http::HttpRetry)
            .retry_after(super::http::HttpRetry);
        RetryLayer::new(retry).replay(super::http::IdempotentOnly)
    }
}

impl<K: 'static, H: 'static, P> RetryLayer<K, H, P> {
    /// Copies requests with `replay` instead.
    #[must_use]
    pub fn replay<P2>(self, replay: P2) -> RetryLayer<K, H, P2> {
        RetryLayer {
            retry: self.retry,
            replay,
        }
    }
}

impl<S, K: 'static, H: 'static, P: Clone> Layer<S> for RetryLayer<K, H, P> {
    type Service = RetryService<S, K, H, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService::new(inner, self.retry.clone(), self.replay.clone())
    }
}
