//! [`FallbackLayer`]: degraded answers for the results a policy picks.

use tower::Layer;

use super::service::FallbackService;
use crate::Fallback;

/// Replaces the results a [`Fallback`] policy picks with its degraded
/// answer: hystrix's fallback, as a layer. Put it outside the layers whose
/// refusals it answers (a breaker, a timeout, a rate limit) and pick them
/// with [`OnRefusal`](crate::OnRefusal).
///
/// The services keep the inner service's types, and are as ready as it is.
/// A seawall layer inside refuses in `call`, never in `poll_ready`, so its
/// refusals reach the policy; an error the inner service returns from
/// `poll_ready` (a closed `Buffer`) does not: it fails the service, not a
/// request, and passes through.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use seawall_core::{BoxError, RefusalKind};
/// use seawall_recover::tower::FallbackLayer;
/// use seawall_recover::{Fallback, OnRefusal};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # use seawall_core::{RefusalReason, Refused};
/// # #[derive(Debug)] struct Open;
/// # impl std::fmt::Display for Open {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("open") }
/// # }
/// # impl std::error::Error for Open {}
/// # impl RefusalReason for Open {
/// #     fn kind(&self) -> RefusalKind { RefusalKind::Unavailable }
/// #     fn retry_after(&self) -> Option<std::time::Duration> { None }
/// # }
/// // Stands for a service behind an open circuit breaker.
/// let broken = service_fn(|_: ()| async { Err::<String, BoxError>(Box::new(Refused::new(Open))) });
///
/// let degrade = Fallback::on(OnRefusal::kinds([RefusalKind::Unavailable, RefusalKind::TimedOut]))
///     .value("cached homepage".to_owned());
/// let service = FallbackLayer::new(degrade).layer(broken);
/// assert_eq!(service.oneshot(()).await.unwrap(), "cached homepage");
/// # }
/// ```
pub struct FallbackLayer<T, E> {
    fallback: Fallback<T, E>,
}

impl<T, E> FallbackLayer<T, E> {
    /// A layer answering with `fallback`; every service it makes shares it
    /// (and its last good answer).
    #[must_use]
    pub fn new(fallback: Fallback<T, E>) -> Self {
        Self { fallback }
    }
}

impl<T, E> Clone for FallbackLayer<T, E> {
    fn clone(&self) -> Self {
        Self {
            fallback: self.fallback.clone(),
        }
    }
}

impl<T, E> std::fmt::Debug for FallbackLayer<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl<S, T, E> Layer<S> for FallbackLayer<T, E> {
    type Service = FallbackService<S, T, E>;

    fn layer(&self, inner: S) -> Self::Service {
        FallbackService::new(inner, self.fallback.clone())
    }
}
