//! [`Balance`]: a tower service that spreads requests over the instances a
//! [`Watch`] follows.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{Refusal, RefusalFormat, RefuseWithError};
use std::time::Duration;
use tokio::time::Instant;
use tower::Service;

use super::error::NoInstances;
use super::future::ResponseFuture;
use super::p2c::{self, Candidates};
use super::ring::Ring;
use super::slot::{Rng, Slot};
use super::weighted::Alias;
use crate::{Instance, InstanceSet, Watch};

/// Spreads requests over the instances of one service, each reached
/// through its own service that `make` builds from its [`Instance`] (a
/// client for its address), as the instances come and go.
///
/// How it picks (each a constructor):
/// - [`p2c`](Self::p2c): the less loaded (fewer requests in flight) of two
///   instances drawn at random;
/// - [`weighted`](Self::weighted): at random in proportion to
///   [`Instance::weight`];
/// - [`consistent_hash`](Self::consistent_hash): by a key taken from the
///   request, on a Ketama ring, so one key keeps going to one instance.
///
/// With [`prefer_zone`](Self::prefer_zone), requests stay in the caller's
/// zone while at least a share of the instances there is ready.
///
/// # Readiness
///
/// `poll_ready` takes in the watch's changes, then polls the instances'
/// services that are not known to be ready (new ones, the one called last,
/// ones that were not ready). It is ready when one is, and ready at once
/// when there is no instance at all, so that `call` refuses with
/// [`NoInstances`] instead of waiting. It waits (for an instance's service,
/// or a change of the set) only while every instance is busy. An instance
/// whose service fails in `poll_ready` is dropped, and gets a new service
/// when the watch changes it or after a wait (1 s, doubled at each failure
/// in a row, up to 30 s).
///
/// `call` picks among the ready instances and sends the request to the
/// one it picked; the set changes only in `poll_ready`, so a removal can
/// never send a request elsewhere than where it was picked for.
pub struct Balance<Req, S, R = RefuseWithError> {
    name: Arc<str>,
    watch: Watch,
    on_change: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    make: Box<dyn FnMut(&Instance) -> S + Send>,
    slots: Vec<Slot>,
    services: Vec<S>,
    /// Slots whose services are not known to be ready.
    unready: Vec<usize>,
    /// Slots in the caller's zone.
    local: Vec<usize>,
    /// Ready slots: all, and in the zone.
    ready: (usize, usize),
    zone: Option<Zone>,
    /// Pick only in the zone (the zone rule held at the last `poll_ready`).
    local_only: bool,
    strategy: Strategy<Req>,
    /// Instances whose services failed, as they were then, kept out until
    /// they change or their wait is over.
    failed: HashMap<String, Failed>,
    /// The earliest end of a failed instance's wait.
    retry_at: Option<Instant>,
    /// A timer for it, made the first time every instance is busy.
    retry_sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    rng: Rng,
    refusal: R,
    _request: PhantomData<fn(Req)>,
}

/// The caller's zone, and the share of its instances that must be ready
/// for requests to stay in it.
#[derive(Debug, Clone)]
struct Zone {
    name: String,
    min_ready_share: f64,
}

enum Strategy<Req> {
    P2c,
    Weighted {
        all: Alias,
        local: Alias,
    },
    Hash {
        ring: Ring,
        points: u32,
        key: Box<dyn Fn(&Req) -> u64 + Send>,
    },
}

/// An instance whose service failed in `poll_ready`.
#[derive(Debug)]
struct Failed {
    instance: Arc<Instance>,
    /// When a new service is made for it, unless the instance changes first.
    retry_at: Instant,
    /// The wait after its next failure: doubled each time, from
    /// [`RETRY`]`.0` up to [`RETRY`]`.1`.
    next_wait: Duration,
}

/// The first and the longest wait before a failed instance gets a new
/// service.
const RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// Points per instance of average weight on a consistent-hash ring.
const RING_POINTS: u32 = 160;

impl<Req, S> Balance<Req, S> {
    /// Picks the less loaded of two random instances (power of two
    /// choices), load being requests in flight.
    pub fn p2c(watch: Watch, make: impl FnMut(&Instance) -> S + Send + 'static) -> Self {
        Self::new(watch, make, Strategy::P2c)
    }

    /// Picks at random in proportion to the instances' weights; an
    /// instance of weight 0 gets nothing (and no service is made for it).
    pub fn weighted(watch: Watch, make: impl FnMut(&Instance) -> S + Send + 'static) -> Self {
        let strategy = Strategy::Weighted {
            all: Alias::default(),
            local: Alias::default(),
        };
        Self::new(watch, make, strategy)
    }

    /// Picks by the key `key` takes from each request, on a consistent
    /// hash ring: a key goes to the same instance while the set does not
    /// change, to the next one on the ring while that one is not ready,
    /// and (with equal weights) adding one instance to `n` moves about
    /// `1 / (n + 1)` of the keys. Keys hash the same in every process of
    /// this version on machines of one byte order, so every client of a
    /// fleet sends a key to one instance. Instances of weight 0 get
    /// nothing.
    pub fn consistent_hash<K: Hash>(
        watch: Watch,
        key: impl Fn(&Req) -> K + Send + 'static,
        make: impl FnMut(&Instance) -> S + Send + 'static,
    ) -> Self {
        let strategy = Strategy::Hash {
            ring: Ring::default(),
            points: RING_POINTS,
            key: Box::new(move |request| Ring::hash(&key(request))),
        };
        Self::new(watch, make, strategy)
    }

    fn new(
        watch: Watch,
        make: impl FnMut(&Instance) -> S + Send + 'static,
        strategy: Strategy<Req>,
    ) -> Self {
        let name = watch.service_name();
        Self {
            name,
            watch,
            on_change: None,
            make: Box::new(make),
            slots: Vec::new(),
            services: Vec::new(),
            unready: Vec::new(),
            local: Vec::new(),
            ready: (0, 0),
            zone: None,
            local_only: false,
            strategy,
            failed: HashMap::new(),
            retry_at: None,
            retry_sleep: None,
            rng: Rng::new(),
            refusal: RefuseWithError,
            _request: PhantomData,
        }
    }
}

impl<Req, S, R> Balance<Req, S, R> {
    /// Keeps requests in `zone` while at least `min_ready_share` (0 to 1;
    /// out of range is clamped) of the instances there are ready, and at
    /// least one; otherwise uses every zone. An instance is in the zone when
    /// its [`Instance::zone`] is `zone`.
    #[must_use]
    pub fn prefer_zone(mut self, zone: impl Into<String>, min_ready_share: f64) -> Self {
        let share = if min_ready_share.is_nan() {
            1.0
        } else {
            min_ready_share.clamp(0.0, 1.0)
        };
        self.zone = Some(Zone {
            name: zone.into(),
            min_ready_share: share,
        });
        // The slots' zones are set when the next set is taken in.
        self.watch.redeliver();
        self
    }

    /// Answers refusals with `refusal` (for example
    /// `RefuseWithResponse`, a `503` response) instead of an error.
    #[must_use]
    pub fn refusal<R2>(self, refusal: R2) -> Balance<Req, S, R2> {
        Balance {
            name: self.name,
            watch: self.watch,
            on_change: self.on_change,
            make: self.make,
            slots: self.slots,
            services: self.services,
            unready: self.unready,
            local: self.local,
            ready: self.ready,
            zone: self.zone,
            local_only: self.local_only,
            strategy: self.strategy,
            failed: self.failed,
            retry_at: self.retry_at,
            retry_sleep: self.retry_sleep,
            rng: self.rng,
            refusal,
            _request: PhantomData,
        }
    }

    /// The instances it balances over now, with their services ready or
    /// not.
    pub fn instances(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.slots.iter().map(|slot| &slot.instance)
    }

    /// Requests in flight to the instance with this id, as a
    /// [`p2c`](Balance::p2c) balancer counts them; `None` for an unknown id
    /// or another kind of balancer (which counts nothing).
    #[must_use]
    pub fn in_flight(&self, id: &str) -> Option<usize> {
        if !matches!(self.strategy, Strategy::P2c) {
            return None;
        }
        self.slots
            .iter()
            .find(|slot| slot.instance.id == id)
            .map(Slot::pending)
    }

    /// Takes in a new set: keeps the services of unchanged instances,
    /// makes services for new and changed ones, drops the rest.
    fn take_in(&mut self, set: &InstanceSet) {
        let now = Instant::now();
        self.failed.retain(|id, failed| {
            // Still the instance that failed, still waiting: still out.
            set.get(id).is_some_and(|now| *now == failed.instance)
        });
        self.retry_at = None;
        let weighs = !matches!(self.strategy, Strategy::P2c);
        let mut old: HashMap<String, (Slot, S)> = self
            .slots
            .drain(..)
            .zip(self.services.drain(..))
            .map(|(slot, service)| (slot.instance.id.clone(), (slot, service)))
            .collect();
        let zone = self.zone.as_ref().map(|zone| zone.name.as_str());
        for instance in set.iter() {
            if let Some(failed) = self.failed.get(&instance.id)
                && failed.retry_at > now
            {
                self.retry_at = Some(
                    self.retry_at
                        .map_or(failed.retry_at, |at| at.min(failed.retry_at)),
                );
                continue;
            }
            // Weighing balancers never pick weight 0: no service for it.
            if weighs && instance.weight == 0 {
                continue;
            }
            let (slot, service) = match old.remove(&instance.id) {
                Some((mut slot, service)) if slot.instance == *instance => {
                    slot.instance = instance.clone();
                    slot.local = zone.is_some() && instance.zone.as_deref() == zone;
                    (slot, service)
                }
                _ => (Slot::new(instance.clone(), zone), (self.make)(instance)),
            };
            self.slots.push(slot);
            self.services.push(service);
        }
        self.reindex();
    }

    /// Rebuilds what is derived from the slots.
    fn reindex(&mut self) {
        self.unready = (0..self.slots.len())
            .filter(|&at| !self.slots[at].ready)
            .collect();
        self.local = (0..self.slots.len())
            .filter(|&at| self.slots[at].local)
            .collect();
        self.ready = (
            self.slots.iter().filter(|slot| slot.ready).count(),
            self.local
                .iter()
                .filter(|&&at| self.slots[at].ready)
                .count(),
        );
        match &mut self.strategy {
            Strategy::P2c => {}
            Strategy::Weighted { all, local } => {
                *all = Alias::new(&self.slots, 0..self.slots.len());
                *local = Alias::new(&self.slots, self.local.iter().copied());
            }
            Strategy::Hash { ring, points, .. } => *ring = Ring::new(&self.slots, *points),
        }
    }

    /// Drops the slots at `gone` (their services failed).
    fn drop_failed(&mut self, gone: &[usize]) {
        let mut at = 0;
        self.slots.retain(|_| {
            at += 1;
            !gone.contains(&(at - 1))
        });
        let mut at = 0;
        self.services.retain(|_| {
            at += 1;
            !gone.contains(&(at - 1))
        });
        self.reindex();
    }

    fn set_ready(&mut self, at: usize, ready: bool) {
        let slot = &mut self.slots[at];
        if slot.ready == ready {
            return;
        }
        slot.ready = ready;
        let (all, local) = &mut self.ready;
        if ready {
            *all += 1;
            *local += usize::from(slot.local);
        } else {
            *all -= 1;
            *local -= usize::from(slot.local);
        }
    }

    /// Whether the zone rule keeps requests in the zone now.
    fn zone_holds(&self) -> bool {
        let Some(zone) = &self.zone else {
            return false;
        };
        let ready = self.ready.1;
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let enough = ready as f64 >= zone.min_ready_share * self.local.len() as f64;
        ready > 0 && enough
    }

    fn pick(&mut self, request: &Req, local_only: bool) -> Option<usize> {
        let slots = &self.slots;
        match &self.strategy {
            Strategy::P2c => {
                let candidates = if local_only {
                    Candidates::Some(&self.local)
                } else {
                    Candidates::All(slots.len())
                };
                p2c::pick(slots, candidates, local_only, &mut self.rng)
            }
            Strategy::Weighted { all, local } => {
                let table = if local_only { local } else { all };
                table.pick(slots, local_only, &mut self.rng)
            }
            Strategy::Hash { ring, key, .. } => ring.pick(slots, key(request), local_only),
        }
    }
}

impl<Req, S, R> Service<Req> for Balance<Req, S, R>
where
    S: Service<Req>,
    S::Error: Into<R::Error>,
    R: Refusal<S::Response, S::Error> + RefusalFormat<Req>,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = ResponseFuture<S::Future, S::Response, R::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            if let Some(set) = self.watch.take_changed() {
                self.on_change = None;
                self.take_in(&set);
            } else if self.retry_at.is_some_and(|at| at <= Instant::now()) {
                // A failed instance's wait is over: a new service for it.
                self.take_in(&self.watch.current());
            }
            let mut failed = Vec::new();
            let mut at = 0;
            while at < self.unready.len() {
                let slot = self.unready[at];
                match self.services[slot].poll_ready(cx) {
                    Poll::Pending => at += 1,
                    Poll::Ready(ready) => {
                        self.unready.swap_remove(at);
                        match ready {
                            Ok(()) => {
                                self.set_ready(slot, true);
                                if !self.failed.is_empty() {
                                    // Back on its feet: its next failure waits
                                    // from the start.
                                    self.failed.remove(&self.slots[slot].instance.id);
                                }
                            }
                            Err(_error) => {
                                #[cfg(feature = "tracing")]
                                tracing::warn!(
                                    target: "seawall::discovery",
                                    instance = %self.slots[slot].instance.id,
                                    "instance failed; out until it changes or its wait is over",
                                );
                                failed.push(slot);
                            }
                        }
                    }
                }
            }
            if !failed.is_empty() {
                let now = Instant::now();
                for &slot in &failed {
                    let instance = self.slots[slot].instance.clone();
                    let wait = self
                        .failed
                        .get(&instance.id)
                        .map_or(RETRY.0, |before| before.next_wait);
                    let retry_at = now + wait;
                    self.retry_at = Some(self.retry_at.map_or(retry_at, |at| at.min(retry_at)));
                    let next_wait = (wait * 2).min(RETRY.1);
                    let id = instance.id.clone();
                    self.failed.insert(
                        id,
                        Failed {
                            instance,
                            retry_at,
                            next_wait,
                        },
                    );
                }
                self.drop_failed(&failed);
            }
            self.local_only = self.zone_holds();
            // Ready with an instance to call, or with none at all (`call`
            // refuses at once).
            if self.ready.0 > 0 || self.slots.is_empty() {
                return Poll::Ready(Ok(()));
            }
            // Every instance is busy: wait for one, for a new set, or for
            // a failed instance's wait to end.
            if self.on_change.is_none() {
                self.on_change = self.watch.on_change();
            }
            let changed = match &mut self.on_change {
                Some(change) => change.as_mut().poll(cx).is_ready(),
                None => false,
            };
            if changed {
                self.on_change = None;
                continue;
            }
            let Some(retry_at) = self.retry_at else {
                return Poll::Pending;
            };
            let sleep = self
                .retry_sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(retry_at)));
            if sleep.deadline() != retry_at {
                sleep.as_mut().reset(retry_at);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let picked = match self.pick(&request, self.local_only) {
            None if self.local_only => self.pick(&request, false),
            picked => picked,
        };
        let Some(at) = picked else {
            let format = self.refusal.format(&request);
            let refused = NoInstances::new(self.name.clone());
            return ResponseFuture::refused(self.refusal.refuse(format, refused));
        };
        self.set_ready(at, false);
        self.unready.push(at);
        // Only two choices read the load: the others skip counting it.
        let load = matches!(self.strategy, Strategy::P2c).then(|| self.slots[at].load.clone());
        ResponseFuture::called(self.services[at].call(request), load)
    }
}

impl<Req, S, R> fmt::Debug for Balance<Req, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let strategy = match self.strategy {
            Strategy::P2c => "p2c",
            Strategy::Weighted { .. } => "weighted",
            Strategy::Hash { .. } => "consistent_hash",
        };
        f.debug_struct("Balance")
            .field("service", &self.name)
            .field("strategy", &strategy)
            .field("instances", &self.slots.len())
            .field("ready", &self.ready.0)
            .field("zone", &self.zone.as_ref().map(|zone| &zone.name))
            .finish_non_exhaustive()
    }
}
