//! [`WatchDiscover`]: a [`Watch`] as tower's `Discover`, for tower's own
//! balancers.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tower::discover::Change as TowerChange;

use crate::{Change, Instance, InstanceSet, Watch};

/// The changes of a [`Watch`] as a stream of tower's
/// [`Change`](tower::discover::Change)s, keyed by instance id, with a
/// service that `make` builds for each new or changed instance: what
/// tower's `Discover` is, so tower's balancers (`p2c::Balance` with
/// peak-EWMA load, for one) run over a seawall registry.
///
/// An instance that changes is inserted again under its id (tower's
/// balancer replaces the old service). The stream ends when the registry
/// is gone; tower's balancer then keeps the last set.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use seawall_discovery::balance::WatchDiscover;
/// use seawall_discovery::{Discovery, Instance, StaticRegistry};
/// use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
/// use tower::{Service, ServiceExt, service_fn};
///
/// let registry = StaticRegistry::new([Instance::new("api", "a", "10.0.0.1:80".parse()?)])?;
/// let discover = WatchDiscover::new(registry.watch("api").await?, |i: &Instance| {
///     let id = i.id.clone();
///     service_fn(move |_: u32| std::future::ready(Ok::<_, std::convert::Infallible>(id.clone())))
/// });
/// let loaded = PendingRequestsDiscover::new(discover, CompleteOnResponse::default());
/// let mut balance = tower::balance::p2c::Balance::new(loaded);
/// assert_eq!(balance.ready().await?.call(1).await?, "a");
/// # Ok(()) }
/// ```
pub struct WatchDiscover<S> {
    watch: Watch,
    on_change: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    make: Box<dyn FnMut(&Instance) -> S + Send>,
    seen: InstanceSet,
    queued: std::vec::IntoIter<Change>,
}

impl<S> WatchDiscover<S> {
    /// Follows `watch`, building a service for each instance with `make`.
    pub fn new(watch: Watch, make: impl FnMut(&Instance) -> S + Send + 'static) -> Self {
        Self {
            watch,
            on_change: None,
            make: Box::new(make),
            seen: InstanceSet::default(),
            queued: Vec::new().into_iter(),
        }
    }
}

impl<S> Unpin for WatchDiscover<S> {}

impl<S> Stream for WatchDiscover<S> {
    type Item = Result<TowerChange<String, S>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(change) = this.queued.next() {
                let tower = match change {
                    Change::Added(instance) | Change::Updated(instance) => {
                        TowerChange::Insert(instance.id.clone(), (this.make)(&instance))
                    }
                    Change::Removed(instance) => TowerChange::Remove(instance.id.clone()),
                };
                return Poll::Ready(Some(Ok(tower)));
            }
            if let Some(set) = this.watch.take_changed() {
                this.on_change = None;
                this.queued = set.changes_since(&this.seen).into_iter();
                this.seen = set;
                continue;
            }
            if this.on_change.is_none() {
                match this.watch.on_change() {
                    Some(change) => this.on_change = Some(change),
                    None => return Poll::Ready(None),
                }
            }
            let Some(change) = &mut this.on_change else {
                return Poll::Pending;
            };
            if change.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.on_change = None;
        }
    }
}

impl<S> fmt::Debug for WatchDiscover<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchDiscover")
            .field("service", &self.watch.service())
            .field("instances", &self.seen.len())
            .finish_non_exhaustive()
    }
}
