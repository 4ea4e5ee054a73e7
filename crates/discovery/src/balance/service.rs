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

use seawall_core::{
    Classify, ConfigError, DefaultClassifier, Refusal, RefusalFormat, RefuseWithError,
};
use std::time::Duration;
use tokio::time::Instant;
use tower::Service;

use super::error::NoInstances;
use super::future::ResponseFuture;
use super::outlier::{Ejections, OutlierDetection};
use super::p2c::{self, Candidates};
use super::ring::Ring;
use super::slot::{EwmaRules, Load, Rng, Slot};
use super::weighted::Alias;
use crate::{Instance, InstanceSet, Watch};

/// Spreads requests over the instances of one service, each reached
/// through its own service that `make` builds from its [`Instance`] (a
/// client for its address), as the instances come and go.
///
/// How it picks (each a constructor):
/// - [`p2c`](Self::p2c): the less loaded (fewer requests in flight) of two
///   instances drawn at random;
/// - [`p2c_peak_ewma`](Self::p2c_peak_ewma): the same, load being the
///   requests in flight weighed by a peak-EWMA of response times;
/// - [`weighted`](Self::weighted): at random in proportion to
///   [`Instance::weight`];
/// - [`consistent_hash`](Self::consistent_hash): by a key taken from the
///   request, on a Ketama ring, so one key keeps going to one instance.
///
/// With [`prefer_zone`](Self::prefer_zone), requests stay in the caller's
/// zone while at least a share of the instances there is ready. With
/// [`outlier_detection`](Self::outlier_detection), instances whose requests
/// keep failing are left out for a while (passive health checking).
///
/// # Readiness
///
/// `poll_ready` takes in the watch's changes, then polls the instances'
/// services that are not known to be ready (new ones, the one called last,
/// ones that were not ready). It is ready when one is, and ready at once
/// when there is no instance at all, so that `call` refuses with
/// [`NoInstances`] instead of waiting. It waits (for an instance's service,
/// a change of the set, or the end of an ejection or of a failed
/// instance's wait) only while every instance is busy or out. Ejected
/// instances are not polled until their ejection ends. An instance
/// whose service fails in `poll_ready` is dropped, and gets a new service
/// when the watch changes it or after a wait (1 s, doubled at each failure
/// in a row, up to 30 s).
///
/// `call` picks among the ready instances and sends the request to the
/// one it picked; the set changes only in `poll_ready`, so a removal can
/// never send a request elsewhere than where it was picked for.
pub struct Balance<Req, S, R = RefuseWithError, C = DefaultClassifier> {
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
    /// Outlier detection's shared state, when it is on.
    outliers: Option<Arc<Ejections>>,
    /// Ejections seen so far.
    seen_ejections: u64,
    /// Slots out now.
    out: usize,
    /// When the first of them comes back, in outlier detection's time and
    /// as a tokio instant.
    readmit_at: Option<(u64, Instant)>,
    classify: C,
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
    P2cEwma(EwmaRules),
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

/// The earlier of `at` and `other`.
fn earliest<T: Ord + Copy>(at: Option<T>, other: T) -> Option<T> {
    Some(at.map_or(other, |at| at.min(other)))
}

impl<Req> Strategy<Req> {
    /// Whether picks read the instances' loads (two choices).
    fn counts_load(&self) -> bool {
        matches!(self, Self::P2c | Self::P2cEwma(_))
    }
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

    /// Picks the cheaper of two random instances (power of two choices),
    /// an instance's cost being its peak-EWMA response time times its
    /// requests in flight plus one (Finagle's and tower's peak-EWMA load).
    ///
    /// The estimate jumps to a response time above it at once, moves
    /// toward faster ones with weight `1 - e^(-t / decay)` (`t` the time
    /// since its last update), and decays toward zero while no response
    /// comes, so an instance that was slow is tried again after a while.
    /// An instance starts at `default_rtt`; one with requests in flight
    /// counts as taking at least `default_rtt`, so that an idle instance
    /// whose estimate decayed does not draw every request before its first
    /// answer. A request dropped before it answers counts with the time
    /// it took until then. Times are tokio's (`tokio::time::Instant`), two
    /// readings per request.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `default_rtt` or `decay` if either is 0 or
    /// more than 24 h.
    pub fn p2c_peak_ewma(
        watch: Watch,
        default_rtt: Duration,
        decay: Duration,
        make: impl FnMut(&Instance) -> S + Send + 'static,
    ) -> Result<Self, ConfigError> {
        let rules = EwmaRules::new(default_rtt, decay)?;
        Ok(Self::new(watch, make, Strategy::P2cEwma(rules)))
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
            outliers: None,
            seen_ejections: 0,
            out: 0,
            readmit_at: None,
            classify: DefaultClassifier,
            rng: Rng::new(),
            refusal: RefuseWithError,
            _request: PhantomData,
        }
    }
}

impl<Req, S, R, C> Balance<Req, S, R, C> {
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

    /// Ejects instances whose requests fail by `rules` (see
    /// [`OutlierDetection`]): they get no requests until their ejection
    /// time is over. Requests are judged by the classifier (see
    /// [`classify`](Self::classify)). Set it before the first request: an
    /// instance's record starts when its slot is made.
    #[must_use]
    pub fn outlier_detection(mut self, rules: OutlierDetection) -> Self {
        self.outliers = Some(Ejections::new(rules));
        // Every slot gets a record when the set is taken in again.
        self.watch.redeliver();
        self
    }

    /// Judges finished requests with `classify` for outlier detection
    /// (instead of [`DefaultClassifier`]): for example, to count an HTTP
    /// `5xx` answer as a failure.
    #[must_use]
    pub fn classify<C2>(self, classify: C2) -> Balance<Req, S, R, C2> {
        self.map(|_, refusal| (classify, refusal))
    }

    /// Answers refusals with `refusal` (for example
    /// `RefuseWithResponse`, a `503` response) instead of an error.
    #[must_use]
    pub fn refusal<R2>(self, refusal: R2) -> Balance<Req, S, R2, C> {
        self.map(|classify, _| (classify, refusal))
    }

    /// The same balancer with another classifier and refusal.
    fn map<C2, R2>(self, swap: impl FnOnce(C, R) -> (C2, R2)) -> Balance<Req, S, R2, C2> {
        let (classify, refusal) = swap(self.classify, self.refusal);
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
            outliers: self.outliers,
            seen_ejections: self.seen_ejections,
            out: self.out,
            readmit_at: self.readmit_at,
            classify,
            rng: self.rng,
            refusal,
            _request: PhantomData,
        }
    }

    /// The instances outlier detection has taken out, as of the last
    /// `poll_ready`.
    pub fn ejected(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.slots
            .iter()
            .filter(|slot| slot.out)
            .map(|slot| &slot.instance)
    }

    /// The instances it balances over now, with their services ready or
    /// not.
    pub fn instances(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.slots.iter().map(|slot| &slot.instance)
    }

    /// Requests in flight to the instance with this id, as a
    /// [`p2c`](Balance::p2c) or [`p2c_peak_ewma`](Balance::p2c_peak_ewma)
    /// balancer counts them; `None` for an unknown id or another kind of
    /// balancer (which counts nothing).
    #[must_use]
    pub fn in_flight(&self, id: &str) -> Option<usize> {
        if !self.strategy.counts_load() {
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
        let weighs = !self.strategy.counts_load();
        let rtt = match &self.strategy {
            Strategy::P2cEwma(rules) => Some(rules),
            _ => None,
        };
        let mut old: HashMap<String, (Slot, S)> = self
            .slots
            .drain(..)
            .zip(self.services.drain(..))
            .map(|(slot, service)| (slot.instance.id.clone(), (slot, service)))
            .collect();
        let zone = self.zone.as_ref().map(|zone| zone.name.as_str());
        let outliers = self.outliers.as_ref();
        // A slot whose record belongs to other rules (or none) starts anew.
        let current = |slot: &Slot| match (&slot.load.record, outliers) {
            (Some(record), Some(shared)) => record.shares(shared),
            (None, None) => true,
            _ => false,
        };
        for instance in set.iter() {
            if let Some(failed) = self.failed.get(&instance.id)
                && failed.retry_at > now
            {
                self.retry_at = earliest(self.retry_at, failed.retry_at);
                continue;
            }
            // Weighing balancers never pick weight 0: no service for it.
            if weighs && instance.weight == 0 {
                continue;
            }
            let (slot, service) = match old.remove(&instance.id) {
                Some((mut slot, service)) if slot.instance == *instance && current(&slot) => {
                    slot.instance = instance.clone();
                    slot.local = Slot::in_zone(instance, zone);
                    (slot, service)
                }
                Some((before, _))
                    if before.instance.address == instance.address && current(&before) =>
                {
                    // Changed, at the same address: a new service, but the
                    // same requests in flight and the same record.
                    let mut slot = Slot::new(instance.clone(), zone, before.load);
                    slot.out = before.out;
                    (slot, (self.make)(instance))
                }
                before => {
                    if let Some((before, _)) = before {
                        before.leave();
                    }
                    let load = Load::new(outliers, rtt);
                    (
                        Slot::new(instance.clone(), zone, load),
                        (self.make)(instance),
                    )
                }
            };
            self.slots.push(slot);
            self.services.push(service);
        }
        // The rest have left.
        for (slot, _) in old.values() {
            slot.leave();
        }
        self.reindex();
    }

    /// Rebuilds what is derived from the slots.
    fn reindex(&mut self) {
        // The set shrank to instances that are all out: never all out.
        if !self.slots.is_empty() && self.slots.iter().all(|slot| slot.out) {
            for slot in &mut self.slots {
                if let Some(record) = &slot.load.record
                    && let Some(until) = record.ejected_until()
                {
                    record.readmit(until);
                }
                slot.out = false;
            }
        }
        self.unready = (0..self.slots.len())
            .filter(|&at| !self.slots[at].ready && !self.slots[at].out)
            .collect();
        self.out = self.slots.iter().filter(|slot| slot.out).count();
        if let Some(shared) = &self.outliers {
            shared.set_total(self.slots.len());
        }
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
            Strategy::P2c | Strategy::P2cEwma(_) => {}
            Strategy::Weighted { all, local } => {
                *all = Alias::new(&self.slots, 0..self.slots.len());
                *local = Alias::new(&self.slots, self.local.iter().copied());
            }
            Strategy::Hash { ring, points, .. } => *ring = Ring::new(&self.slots, *points),
        }
    }

    /// Drops the slots at `gone` (their services failed).
    fn drop_failed(&mut self, gone: &[usize]) {
        for &at in gone {
            self.slots[at].leave();
        }
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

    /// Takes out the instances that outlier detection ejected since the
    /// last look and brings back those whose time is over. Nothing to do
    /// (no clock read) while none is out and none was ejected; while some
    /// are out, one clock read, and a look at every slot only when one is
    /// due back.
    fn sweep_outliers(&mut self) {
        let Some(shared) = &self.outliers else {
            return;
        };
        let ejections = shared.ejections();
        let fresh = ejections != self.seen_ejections;
        if !fresh && self.out == 0 {
            return;
        }
        let now = shared.now();
        if !fresh && self.readmit_at.is_some_and(|(due, _)| due > now) {
            return;
        }
        // A look at every slot, after an ejection or when one is due back.
        let shared = Arc::clone(shared);
        self.seen_ejections = ejections;
        let mut next: Option<u64> = None;
        let mut taken_out = false;
        for at in 0..self.slots.len() {
            let slot = &mut self.slots[at];
            let Some(record) = &slot.load.record else {
                continue;
            };
            match record.ejected_until() {
                Some(until) if until > now => {
                    next = earliest(next, until);
                    if slot.out {
                        continue;
                    }
                    #[cfg(feature = "tracing")]
                    tracing::warn!(
                        target: "seawall::discovery",
                        instance = %slot.instance.id,
                        "outlier detection ejected an instance",
                    );
                    slot.out = true;
                    self.out += 1;
                    taken_out = true;
                    self.set_ready(at, false);
                }
                ejected => {
                    if ejected.is_some() {
                        record.readmit(now);
                    }
                    if slot.out {
                        #[cfg(feature = "tracing")]
                        tracing::info!(
                            target: "seawall::discovery",
                            instance = %slot.instance.id,
                            "an ejected instance is back in",
                        );
                        slot.out = false;
                        self.out -= 1;
                        self.unready.push(at);
                    }
                }
            }
        }
        if taken_out {
            let slots = &self.slots;
            self.unready.retain(|&at| !slots[at].out);
        }
        self.readmit_at = next.map(|due| (due, shared.instant(due)));
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

    /// Picks a slot for `request`; `now` is the time of the pick, read for
    /// peak-EWMA only.
    fn pick(&mut self, request: &Req, local_only: bool, now: Option<Instant>) -> Option<usize> {
        let slots = &self.slots;
        let candidates = if local_only {
            Candidates::Some(&self.local)
        } else {
            Candidates::All(slots.len())
        };
        match &self.strategy {
            Strategy::P2c => p2c::pick(slots, candidates, local_only, &mut self.rng),
            Strategy::P2cEwma(rules) => {
                let now = now.map_or(0.0, |now| rules.since_origin(now));
                let default = rules.default_rtt;
                let cost = |slot: &Slot| {
                    let estimate = slot.load.rtt.as_ref().map_or(0.0, |rtt| rtt.estimate(now));
                    match slot.pending() {
                        0 => estimate,
                        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
                        pending => estimate.max(default) * (pending + 1) as f64,
                    }
                };
                p2c::pick_by(slots, candidates, local_only, &mut self.rng, cost)
            }
            Strategy::Weighted { all, local } => {
                let table = if local_only { local } else { all };
                table.pick(slots, local_only, &mut self.rng)
            }
            Strategy::Hash { ring, key, .. } => ring.pick(slots, key(request), local_only),
        }
    }
}

impl<Req, S, R, C> Service<Req> for Balance<Req, S, R, C>
where
    S: Service<Req>,
    S::Error: Into<R::Error>,
    R: Refusal<S::Response, S::Error> + RefusalFormat<Req>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = R::Error;
    type Future = ResponseFuture<S::Future, S::Response, R::Error, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            if let Some(set) = self.watch.take_changed() {
                self.on_change = None;
                self.take_in(&set);
            } else if self.retry_at.is_some_and(|at| at <= Instant::now()) {
                // A failed instance's wait is over: a new service for it.
                self.take_in(&self.watch.current());
            }
            self.sweep_outliers();
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
                    self.retry_at = earliest(self.retry_at, retry_at);
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
            // Ready with an instance to call, or with none at all or all
            // of them ejected (`call` refuses at once).
            if self.ready.0 > 0 || self.slots.len() == self.out {
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
            let wake_at = match self.readmit_at {
                Some((_, readmit)) => earliest(self.retry_at, readmit),
                None => self.retry_at,
            };
            let Some(wake_at) = wake_at else {
                return Poll::Pending;
            };
            let sleep = self
                .retry_sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(wake_at)));
            if sleep.deadline() != wake_at {
                sleep.as_mut().reset(wake_at);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let started = matches!(self.strategy, Strategy::P2cEwma(_)).then(Instant::now);
        let picked = match self.pick(&request, self.local_only, started) {
            None if self.local_only => self.pick(&request, false, started),
            picked => picked,
        };
        let Some(at) = picked else {
            let format = self.refusal.format(&request);
            let refused = NoInstances::new(self.name.clone());
            return ResponseFuture::refused(self.refusal.refuse(format, refused));
        };
        self.set_ready(at, false);
        self.unready.push(at);
        // Only two choices read the load, and only outlier detection the
        // outcome: the others skip counting them.
        let judged = self.outliers.is_some();
        let load = (judged || self.strategy.counts_load()).then(|| self.slots[at].load.clone());
        let classify = judged.then(|| self.classify.clone());
        ResponseFuture::called(self.services[at].call(request), load, classify, started)
    }
}

impl<Req, S, R, C> fmt::Debug for Balance<Req, S, R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let strategy = match self.strategy {
            Strategy::P2c => "p2c",
            Strategy::P2cEwma(_) => "p2c_peak_ewma",
            Strategy::Weighted { .. } => "weighted",
            Strategy::Hash { .. } => "consistent_hash",
        };
        f.debug_struct("Balance")
            .field("service", &self.name)
            .field("strategy", &strategy)
            .field("instances", &self.slots.len())
            .field("ready", &self.ready.0)
            .field("ejected", &self.out)
            .field("zone", &self.zone.as_ref().map(|zone| &zone.name))
            .finish_non_exhaustive()
    }
}
