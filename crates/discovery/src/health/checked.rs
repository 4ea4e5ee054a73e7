//! [`HealthChecked`]: a discovery source seen through active health checks
//! and a manual switch per instance.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::HealthCheck;
use crate::registry::Fed;
use crate::{Discovery, DiscoveryError, Instance, InstanceSet, Watch};

/// A [`Discovery`] source whose watches hold only the instances that pass
/// a [`HealthCheck`] and are not switched off with
/// [`disable`](Self::disable). A failing instance leaves the watches (and
/// so the balancers over them) without being deregistered, and comes back
/// when it passes again.
///
/// Each watched service has one task that follows the source and probes
/// every instance each interval, all at once; every watch of the service
/// through one `HealthChecked` shares it, and it stops when the last watch
/// is dropped. The first answer of a watch waits for the first probes
/// (at most the check's timeout), so it holds the instances that passed.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use seawall_discovery::{Discovery, HealthCheck, HealthChecked, Instance, StaticRegistry};
///
/// let up = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let down = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?; // closed
/// let registry = StaticRegistry::new([
///     Instance::new("api", "up", up.local_addr()?),
///     Instance::new("api", "down", down),
/// ])?;
/// let checked = HealthChecked::new(registry, HealthCheck::tcp().build()?);
/// let watch = checked.watch("api").await?;
/// let ids: Vec<_> = watch.current().iter().map(|i| i.id.clone()).collect();
/// assert_eq!(ids, ["up"]);
/// # Ok(()) }
/// ```
pub struct HealthChecked<D> {
    source: D,
    shared: Arc<Shared>,
}

struct Shared {
    check: HealthCheck,
    /// Switched off by hand: ids, by service.
    disabled: Mutex<HashMap<String, HashSet<String>>>,
    /// Bumped at each switch, to republish.
    switched: watch::Sender<u64>,
    watched: Fed,
}

impl<D: Discovery> HealthChecked<D> {
    /// `source`, seen through `check`.
    pub fn new(source: D, check: HealthCheck) -> Self {
        Self {
            source,
            shared: Arc::new(Shared {
                check,
                disabled: Mutex::new(HashMap::new()),
                switched: watch::Sender::new(0),
                watched: Fed::default(),
            }),
        }
    }

    /// Takes an instance out of the watches, however its probes go, until
    /// [`enable`](Self::enable)d (maintenance, a manual drain).
    pub fn disable(&self, service: &str, id: &str) {
        self.switch(service, id, false);
    }

    /// Undoes [`disable`](Self::disable): the instance is in the watches
    /// again when it passes its probes.
    pub fn enable(&self, service: &str, id: &str) {
        self.switch(service, id, true);
    }

    fn switch(&self, service: &str, id: &str, on: bool) {
        let changed = {
            let mut disabled = self.shared.disabled.lock();
            if on {
                let removed = disabled.get_mut(service).is_some_and(|ids| ids.remove(id));
                if disabled.get(service).is_some_and(HashSet::is_empty) {
                    disabled.remove(service);
                }
                removed
            } else {
                disabled
                    .entry(service.to_owned())
                    .or_default()
                    .insert(id.to_owned())
            }
        };
        if changed {
            self.shared.switched.send_modify(|n| *n += 1);
        }
    }

    /// The source seen through the checks.
    pub fn source(&self) -> &D {
        &self.source
    }
}

impl<D: Discovery> Discovery for HealthChecked<D> {
    async fn watch(&self, service: &str) -> Result<Watch, DiscoveryError> {
        if let Some(watch) = self.shared.watched.join(service) {
            return Ok(watch);
        }
        let mut source = self.source.watch(service).await?;
        let mut checker = Checker {
            service: service.to_owned(),
            // Subscribed now, so that a switch made right after this call
            // is seen.
            switched: self.shared.switched.subscribe(),
            shared: self.shared.clone(),
            health: BTreeMap::new(),
            published: watch::Sender::new(InstanceSet::default()),
        };
        checker.take_in(&source.changed().await?).await;
        // Another first watch may have got there meanwhile: share its
        // checker.
        let watch = match self.shared.watched.list(service, &checker.published) {
            Ok(watch) => watch,
            Err(theirs) => return Ok(theirs),
        };
        tokio::spawn(checker.run(source));
        Ok(watch)
    }

    /// The instances of the source that pass one probe now and are not
    /// switched off.
    async fn instances(&self, service: &str) -> Result<InstanceSet, DiscoveryError> {
        let all = self.source.instances(service).await?;
        let passed = probe_all(&self.shared.check, all.iter().cloned()).await;
        let disabled = self.shared.disabled.lock();
        let off = disabled.get(service);
        Ok(InstanceSet::from_sorted(
            all.iter()
                .filter(|i| passed.contains(&i.id) && !off.is_some_and(|ids| ids.contains(&i.id)))
                .cloned(),
        ))
    }
}

/// One instance's health, as its probes have gone.
struct Health {
    instance: Arc<Instance>,
    healthy: bool,
    /// Probes in a row that went against `healthy`.
    streak: u32,
}

/// Follows one service of the source and probes its instances.
struct Checker {
    service: String,
    switched: watch::Receiver<u64>,
    shared: Arc<Shared>,
    /// By id.
    health: BTreeMap<String, Health>,
    published: watch::Sender<InstanceSet>,
}

impl Checker {
    async fn run(mut self, source: Watch) {
        let mut source = Some(source);
        let mut tick = tokio::time::interval(self.shared.check.get_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.reset();
        let published = self.published.clone();
        loop {
            tokio::select! {
                () = published.closed() => if self.unlisted() { return },
                changed = next_set(&mut source) => match changed {
                    Ok(set) => self.take_in(&set).await,
                    // The source is gone: keep the last set, and probing.
                    Err(_) => source = None,
                },
                _ = self.switched.changed() => self.publish(),
                _ = tick.tick() => self.probe_round().await,
            }
        }
    }

    /// With no watcher left: unlists the checker and says so; a watcher
    /// that joined meanwhile keeps it going.
    fn unlisted(&self) -> bool {
        self.shared
            .watched
            .leave_if_unwatched(&self.service, &self.published)
    }

    /// Takes in the source's set: new and changed instances are probed at
    /// once, and count as healthy if they pass.
    async fn take_in(&mut self, set: &InstanceSet) {
        let mut fresh = Vec::new();
        let mut health = BTreeMap::new();
        for instance in set.iter() {
            match self.health.remove(&instance.id) {
                Some(mut known) if known.instance.address == instance.address => {
                    known.instance = instance.clone();
                    health.insert(instance.id.clone(), known);
                }
                _ => fresh.push(instance.clone()),
            }
        }
        let passed = probe_all(&self.shared.check, fresh.iter().cloned()).await;
        for instance in fresh {
            let healthy = passed.contains(&instance.id);
            let entry = Health {
                instance: instance.clone(),
                healthy,
                streak: 0,
            };
            health.insert(instance.id.clone(), entry);
        }
        self.health = health;
        self.publish();
    }

    /// Probes every instance once, all at once, and applies the thresholds.
    async fn probe_round(&mut self) {
        let all = self.health.values().map(|h| h.instance.clone());
        let passed = probe_all(&self.shared.check, all).await;
        let (up, down) = self.shared.check.thresholds();
        let mut changed = false;
        for (id, health) in &mut self.health {
            let ok = passed.contains(id);
            if ok == health.healthy {
                health.streak = 0;
                continue;
            }
            health.streak += 1;
            let needed = if health.healthy { down } else { up };
            if health.streak >= needed {
                health.healthy = ok;
                health.streak = 0;
                changed = true;
                #[cfg(feature = "tracing")]
                tracing::info!(target: "seawall::discovery", service = %self.service, instance = %id, healthy = ok, "health changed");
            }
        }
        if changed {
            self.publish();
        }
    }

    fn publish(&self) {
        let disabled = self.shared.disabled.lock();
        let off = disabled.get(&self.service);
        let set = InstanceSet::from_sorted(
            self.health
                .iter()
                .filter(|(id, h)| h.healthy && !off.is_some_and(|ids| ids.contains(*id)))
                .map(|(_, h)| h.instance.clone()),
        );
        drop(disabled);
        crate::registry::publish(&self.published, set);
    }
}

/// The source's next set; never, once the source is gone.
async fn next_set(source: &mut Option<Watch>) -> Result<InstanceSet, DiscoveryError> {
    match source {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

/// A checker that ends otherwise than by [`Checker::unlisted`] (its runtime
/// shutting down cancels it) unlists itself here, so a later watch starts
/// a new checker instead of joining a channel nobody publishes to.
impl Drop for Checker {
    fn drop(&mut self) {
        self.shared.watched.unlist(&self.service, &self.published);
    }
}

/// Probes every instance at once; the ids of those that passed.
async fn probe_all(
    check: &HealthCheck,
    instances: impl Iterator<Item = Arc<Instance>>,
) -> HashSet<String> {
    let mut probes = JoinSet::new();
    for instance in instances {
        let check = check.clone();
        probes.spawn(async move { (check.probe(instance.address).await, instance) });
    }
    let mut passed = HashSet::new();
    while let Some(done) = probes.join_next().await {
        if let Ok((true, instance)) = done {
            passed.insert(instance.id.clone());
        }
    }
    passed
}

impl<D: Clone> Clone for HealthChecked<D> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<D: fmt::Debug> fmt::Debug for HealthChecked<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthChecked")
            .field("source", &self.source)
            .field("check", &self.shared.check)
            .finish_non_exhaustive()
    }
}
