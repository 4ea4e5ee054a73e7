//! [`Coalesce`]: concurrent calls for one key share one run.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::panic::guard;
use crate::{Panicked, catch};

/// The table of runs under way (and, with a TTL, of results kept).
type Flights<K, V> = HashMap<K, Arc<Flight<V>>, foldhash::fast::RandomState>;

/// Collapses concurrent calls for the same key into one: the first caller
/// (the leader) runs its future, and every caller that comes for the key
/// while it runs (a follower) waits and gets a clone of its result, errors
/// included. Go's `singleflight`, for the cache stampede: a hot key expires
/// and thousands of requests would otherwise reach the database at once.
///
/// - **The leader is cancelled** (its future dropped): one of the followers
///   takes over and runs its own future for the key (each caller passes
///   one); the others follow it. The run is the leader's own future,
///   polled by the leader: a leader that stays alive but is no longer
///   polled (parked in a `select!` that moved on) keeps its followers
///   waiting, as a `join!` of its own would. Drop what you stop polling.
/// - **The leader's future panics**: the panic is caught, and the leader
///   and every follower get `Err(`[`Panicked`]`)`.
/// - **After completion** the key is free again at once, so the next call
///   runs anew, unless [`with_ttl`](Self::with_ttl) keeps results for a
///   short time (a result kept then answers calls without running).
///
/// Clones share the table. The table is one lock taken twice per run (to
/// join, and to leave), never while a future runs.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use seawall_recover::Coalesce;
///
/// let queries = AtomicU32::new(0);
/// let load_user = |id: u64| {
///     queries.fetch_add(1, Ordering::Relaxed);
///     async move {
///         tokio::time::sleep(Duration::from_millis(50)).await; // the database
///         format!("user {id}")
///     }
/// };
///
/// let users: Coalesce<u64, String> = Coalesce::new();
/// let (a, b, c) = tokio::join!(
///     users.run(7, || load_user(7)),
///     users.run(7, || load_user(7)),
///     users.run(7, || load_user(7)),
/// );
/// assert_eq!((a.unwrap(), b.unwrap(), c.unwrap().len()), ("user 7".into(), "user 7".into(), 6));
/// assert_eq!(queries.load(Ordering::Relaxed), 1);
/// # }
/// ```
pub struct Coalesce<K, V> {
    group: Arc<Group<K, V>>,
}

struct Group<K, V> {
    flights: Mutex<Table<K, V>>,
    ttl: Option<Duration>,
    /// With a TTL: which results are kept.
    keep: fn(&V) -> bool,
}

struct Table<K, V> {
    flights: Flights<K, V>,
    /// With a TTL: the size at which expired results are next swept out.
    sweep_at: usize,
}

/// One run for one key.
struct Flight<V> {
    state: Mutex<State<V>>,
    /// Woken when the state leaves `Running`.
    changed: Notify,
    /// How many callers joined as followers: counted under the table's
    /// lock, so once the leader has taken the flight out of the table the
    /// count is final.
    followers: AtomicUsize,
}

enum State<V> {
    Running,
    Done {
        result: Result<V, Panicked>,
        /// With a TTL: until when the result answers new calls.
        until: Option<Instant>,
    },
    /// The leader was dropped before it finished.
    Abandoned,
}

/// What a caller is for a key.
enum Role<V> {
    Lead(Arc<Flight<V>>),
    Follow(Arc<Flight<V>>),
    Kept(Result<V, Panicked>),
}

/// Sweeping a TTL table starts at this many entries.
const FIRST_SWEEP: usize = 64;

/// The longest a result is kept: a year (so `Instant + ttl` cannot
/// overflow).
const LONGEST_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

impl<K, V> Coalesce<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// A table that keeps nothing after a run completes.
    #[must_use]
    pub fn new() -> Self {
        Self::build(None, |_| true)
    }

    /// A table that keeps each result for `ttl` after its run completes,
    /// answering calls for the key with it meanwhile. Panics are not kept.
    /// Expired results are swept out as the table grows. A `ttl` beyond
    /// what the clock can add is kept for as long as it can (about a year).
    #[must_use]
    pub fn with_ttl(ttl: Duration) -> Self {
        Self::build(Some(ttl).filter(|ttl| !ttl.is_zero()), |_| true)
    }

    /// [`with_ttl`](Self::with_ttl), keeping only the results `keep`
    /// accepts (say, `Result::is_ok`: errors are shared with the callers
    /// that waited for them, but not kept for later ones).
    #[must_use]
    pub fn with_ttl_if(ttl: Duration, keep: fn(&V) -> bool) -> Self {
        Self::build(Some(ttl).filter(|ttl| !ttl.is_zero()), keep)
    }

    fn build(ttl: Option<Duration>, keep: fn(&V) -> bool) -> Self {
        let ttl = ttl.map(|ttl| ttl.min(LONGEST_TTL));
        crate::panic::install_hook();
        Self {
            group: Arc::new(Group {
                flights: Mutex::new(Table {
                    flights: HashMap::default(),
                    sweep_at: FIRST_SWEEP,
                }),
                ttl,
                keep,
            }),
        }
    }

    /// Runs `make()` for `key`, or waits for the run already under way for
    /// it and clones its result.
    ///
    /// # Errors
    ///
    /// [`Panicked`] if the run's future panicked.
    ///
    /// # Cancel safety
    ///
    /// Dropping a follower's future just stops its wait. Dropping the
    /// leader's future drops its run; a follower then takes over with its
    /// own `make`.
    pub async fn run<F, Fut>(&self, key: K, make: F) -> Result<V, Panicked>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        loop {
            match self.join(&key) {
                Role::Kept(result) => return result,
                Role::Lead(flight) => {
                    let mut lead = Lead {
                        group: &self.group,
                        key: &key,
                        flight,
                        finished: false,
                    };
                    let result = match guard(make) {
                        Ok(future) => catch(future).await,
                        Err(panicked) => Err(panicked),
                    };
                    lead.finish(&result);
                    return result;
                }
                Role::Follow(flight) => {
                    crate::observe::coalesced();
                    if let Some(result) = flight.wait().await {
                        return result;
                    }
                    // The leader was dropped: lead or follow anew.
                }
            }
        }
    }

    /// How many keys have a run under way (or, with a TTL, a result kept).
    #[must_use]
    pub fn len(&self) -> usize {
        self.group.flights.lock().flights.len()
    }

    /// Whether no key has a run under way or a result kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Leads a new flight for `key`, follows the one under way, or takes
    /// the result kept for it.
    fn join(&self, key: &K) -> Role<V> {
        let mut table = self.group.flights.lock();
        if let Some(flight) = table.flights.get(key) {
            match &*flight.state.lock() {
                State::Running => {
                    flight.followers.fetch_add(1, Ordering::Relaxed);
                    return Role::Follow(Arc::clone(flight));
                }
                State::Done {
                    result,
                    until: Some(until),
                } if Instant::now() < *until => return Role::Kept(result.clone()),
                // Expired, or left behind: replaced below.
                State::Done { .. } | State::Abandoned => {}
            }
        }
        if self.group.ttl.is_some() && table.flights.len() >= table.sweep_at {
            table.sweep();
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State::Running),
            changed: Notify::new(),
            followers: AtomicUsize::new(0),
        });
        table.flights.insert(key.clone(), Arc::clone(&flight));
        Role::Lead(flight)
    }
}

impl<K: Hash + Eq, V> Table<K, V> {
    /// Drops expired results, and sets the next sweep at twice what is left.
    fn sweep(&mut self) {
        let now = Instant::now();
        self.flights
            .retain(|_, flight| match &*flight.state.lock() {
                State::Running => true,
                State::Done { until, .. } => until.is_some_and(|until| now < until),
                State::Abandoned => false,
            });
        self.sweep_at = self.flights.len().saturating_mul(2).max(FIRST_SWEEP);
    }
}

impl<V: Clone> Flight<V> {
    /// Waits for the run: its result, or `None` if its leader was dropped.
    async fn wait(&self) -> Option<Result<V, Panicked>> {
        loop {
            let mut changed = pin!(self.changed.notified());
            // Registered before the state is read, so a change after the
            // read still wakes this wait.
            changed.as_mut().enable();
            match &*self.state.lock() {
                State::Running => {}
                State::Done { result, .. } => return Some(result.clone()),
                State::Abandoned => return None,
            }
            changed.await;
        }
    }
}

/// The leader's hold on its flight: finished with a result, or abandoned
/// when dropped first.
struct Lead<'a, K: Hash + Eq, V> {
    group: &'a Group<K, V>,
    key: &'a K,
    flight: Arc<Flight<V>>,
    finished: bool,
}

impl<K: Hash + Eq, V: Clone> Lead<'_, K, V> {
    /// Publishes `result`. Until it is published, a panic here (in `V`'s
    /// `clone`) leaves `finished` unset, so `Drop` abandons the flight and
    /// no caller is left waiting.
    fn finish(&mut self, result: &Result<V, Panicked>) {
        // A kept result is one that did not panic and that `keep` accepts.
        let until = self
            .group
            .ttl
            .filter(|_| result.as_ref().is_ok_and(self.group.keep))
            .and_then(|ttl| Instant::now().checked_add(ttl));
        if until.is_none() {
            self.leave_table();
        }
        // Nobody else can see the flight unless it stays in the table or a
        // follower joined while it was there: skip the clone otherwise.
        if until.is_some() || self.flight.followers.load(Ordering::Relaxed) > 0 {
            let result = result.clone();
            *self.flight.state.lock() = State::Done { result, until };
            self.flight.changed.notify_waiters();
        }
        self.finished = true;
    }
}

impl<K: Hash + Eq, V> Lead<'_, K, V> {
    /// Takes the flight out of the table, if it is still this one.
    fn leave_table(&self) {
        let mut table = self.group.flights.lock();
        if table
            .flights
            .get(self.key)
            .is_some_and(|flight| Arc::ptr_eq(flight, &self.flight))
        {
            table.flights.remove(self.key);
        }
    }
}

impl<K: Hash + Eq, V> Drop for Lead<'_, K, V> {
    /// The leader was dropped mid-run: free the key and wake the followers,
    /// one of which takes over.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.leave_table();
        *self.flight.state.lock() = State::Abandoned;
        self.flight.changed.notify_waiters();
    }
}

impl<K, V> Clone for Coalesce<K, V> {
    fn clone(&self) -> Self {
        Self {
            group: Arc::clone(&self.group),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for Coalesce<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for Coalesce<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalesce")
            .field("ttl", &self.group.ttl)
            .field("keys", &self.group.flights.lock().flights.len())
            .finish()
    }
}
