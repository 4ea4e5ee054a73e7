//! [`Supervisor`]: background tasks that are started again when they fail.

mod policy;
mod task;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::Panicked;

pub use policy::{Restart, RestartPolicy, RestartPolicyBuilder};
use task::Runner;

/// How many events a receiver may fall behind before it misses some.
const EVENTS: usize = 256;

/// How long `shutdown` waits for an aborted task's future to be dropped.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// Runs named background tasks and starts them again when they fail, as an
/// Erlang supervisor does: each task has a [`RestartPolicy`] (which ends
/// restart it, a backoff with jitter, and an intensity limit past which it
/// is given up and marked failed).
///
/// A task is a function that makes the task's future; it is called again
/// for every restart, and gets a [`Shutdown`] signal to watch. A panic in
/// the future is caught (with [`catch`](crate::catch)) and counts as a
/// failure, like an `Err`.
///
/// [`shutdown`](Self::shutdown) signals every task, waits up to a timeout
/// for them to return, and aborts the rest. Dropping every handle of a
/// supervisor signals its tasks too, but waits for nothing.
///
/// [`status`](Self::status) gives each task's state and restart count;
/// [`events`](Self::events) every start, end, restart and give-up as it
/// happens.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use seawall_recover::{RestartPolicy, Supervisor, TaskState};
///
/// let supervisor = Supervisor::new();
/// let runs = Arc::new(AtomicU32::new(0));
/// let counter = Arc::clone(&runs);
/// supervisor.spawn("refresher", RestartPolicy::default(), move |shutdown| {
///     let run = counter.fetch_add(1, Ordering::Relaxed);
///     async move {
///         if run < 2 {
///             return Err(format!("run {run} lost its connection"));
///         }
///         shutdown.cancelled().await; // work until asked to stop
///         Ok(())
///     }
/// })?;
///
/// tokio::time::sleep(Duration::from_secs(1)).await; // two restarts, 100 ms and 200 ms at most
/// let status = supervisor.task("refresher").unwrap();
/// assert_eq!((status.state, status.restarts), (TaskState::Running, 2));
///
/// let report = supervisor.shutdown(Duration::from_secs(5)).await;
/// assert_eq!(report.ended, ["refresher"]);
/// assert!(report.aborted.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

struct Shared {
    tasks: Mutex<Vec<Entry>>,
    stop: watch::Sender<bool>,
    events: broadcast::Sender<TaskEvent>,
    /// Held by the shutdown under way; then the report of the first one
    /// that finished, for every later call.
    shut: tokio::sync::Mutex<Option<ShutdownReport>>,
    /// Supervised tasks that called `shutdown`: not waited for.
    exempt: Mutex<Vec<tokio::task::Id>>,
    /// Told when a task is added to `exempt`.
    exempted: tokio::sync::Notify,
}

/// A task as the supervisor keeps it.
struct Entry {
    name: Arc<str>,
    status: Arc<Mutex<TaskStatus>>,
    /// `None` once `shutdown` has taken it.
    handle: Option<JoinHandle<()>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with no tasks.
    #[must_use]
    pub fn new() -> Self {
        crate::panic::install_hook();
        let (stop, _) = watch::channel(false);
        let (events, _) = broadcast::channel(EVENTS);
        Self {
            shared: Arc::new(Shared {
                tasks: Mutex::new(Vec::new()),
                stop,
                events,
                shut: tokio::sync::Mutex::new(None),
                exempt: Mutex::new(Vec::new()),
                exempted: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Starts a task named `name` on the current tokio runtime, under
    /// `policy`. `make` is called for the first run and again for every
    /// restart; the future it returns ends the run with `Ok(())`, with an
    /// error (kept as text in the task's status), or with a panic.
    ///
    /// # Errors
    ///
    /// [`SpawnError`]: a task of that name exists already, the supervisor
    /// is shutting down, or there is no tokio runtime here.
    pub fn spawn<F, Fut, E>(
        &self,
        name: impl Into<String>,
        policy: RestartPolicy,
        make: F,
    ) -> Result<(), SpawnError>
    where
        F: FnMut(Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let name: Arc<str> = name.into().into();
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SpawnError::NoRuntime)?;
        let mut tasks = self.shared.tasks.lock();
        // Checked under the lock `shutdown` takes to collect the tasks, so
        // no task starts after it.
        if *self.shared.stop.borrow() {
            return Err(SpawnError::ShuttingDown);
        }
        if tasks.iter().any(|task| task.name == name) {
            return Err(SpawnError::DuplicateName(name.to_string()));
        }
        let status = Arc::new(Mutex::new(TaskStatus::new(&name)));
        let runner = Runner {
            name: Arc::clone(&name),
            policy,
            status: Arc::clone(&status),
            shutdown: Shutdown {
                stop: self.shared.stop.subscribe(),
            },
            events: self.shared.events.clone(),
        };
        let handle = runtime.spawn(runner.run(make));
        tasks.push(Entry {
            name,
            status,
            handle: Some(handle),
        });
        Ok(())
    }

    /// Every task's status, in the order they were spawned.
    #[must_use]
    pub fn status(&self) -> Vec<TaskStatus> {
        let tasks = self.shared.tasks.lock();
        tasks
            .iter()
            .map(|task| task.status.lock().clone())
            .collect()
    }

    /// The status of the task named `name`.
    #[must_use]
    pub fn task(&self, name: &str) -> Option<TaskStatus> {
        let tasks = self.shared.tasks.lock();
        let task = tasks.iter().find(|task| &*task.name == name)?;
        Some(task.status.lock().clone())
    }

    /// Events from now on: every start, end, restart and give-up. A
    /// receiver that falls more than 256 events behind misses the oldest
    /// (tokio's broadcast channel reports how many).
    #[must_use]
    pub fn events(&self) -> broadcast::Receiver<TaskEvent> {
        self.shared.events.subscribe()
    }

    /// Stops every task: signals [`Shutdown`], waits up to `timeout` for
    /// the tasks to return, then aborts the ones still running (their
    /// futures are dropped at their next await; this waits up to a second
    /// more for that, for all of them together). No task starts or restarts afterwards; `spawn`
    /// refuses.
    ///
    /// A later call (a second signal handler) waits for the first and
    /// returns its report. If a call is dropped before it ends (a
    /// `select!` that took another branch), the tasks it had not waited for
    /// are left for the next call to wait for and report. A supervised task
    /// may call it (the task that listens for signals): that task is
    /// neither waited for nor aborted, and is in neither list of the
    /// report, whether it calls first or later.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        if let Some(caller) = tokio::task::try_id() {
            let mut exempt = self.shared.exempt.lock();
            if !exempt.contains(&caller) {
                exempt.push(caller);
            }
            drop(exempt);
            self.shared.exempted.notify_waiters();
        }
        let mut shut = self.shared.shut.lock().await;
        if let Some(report) = &*shut {
            return report.clone();
        }
        let report = self.stop_all(timeout).await;
        *shut = Some(report.clone());
        report
    }

    /// Whether a supervised task called `shutdown` (then it is not waited
    /// for).
    fn exempt(&self, task: tokio::task::Id) -> bool {
        self.shared.exempt.lock().contains(&task)
    }

    /// Waits for `handle` until `deadline`; `None` if its task called
    /// `shutdown` meanwhile, else whether it ended in time.
    async fn wait_for(
        &self,
        handle: &mut JoinHandle<()>,
        deadline: Option<tokio::time::Instant>,
    ) -> Option<bool> {
        loop {
            // Registered before the list is read: an exemption in between
            // still wakes this.
            let exempted = self.shared.exempted.notified();
            if self.exempt(handle.id()) {
                return None;
            }
            let ended = async {
                match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, &mut *handle)
                        .await
                        .is_ok(),
                    None => {
                        let _ = (&mut *handle).await;
                        true
                    }
                }
            };
            tokio::select! {
                ended = ended => return Some(ended),
                () = exempted => {}
            }
        }
    }

    async fn stop_all(&self, timeout: Duration) -> ShutdownReport {
        let mut taken = Taken {
            shared: &self.shared,
            entries: {
                let mut tasks = self.shared.tasks.lock();
                self.shared.stop.send_replace(true);
                tasks
                    .iter_mut()
                    .map(|task| Entry {
                        name: Arc::clone(&task.name),
                        status: Arc::clone(&task.status),
                        handle: task.handle.take(),
                    })
                    .collect()
            },
        };
        // A timeout past what the clock can add waits without a deadline.
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        let mut report = ShutdownReport::default();
        let mut late = Vec::new();
        for entry in &mut taken.entries {
            let Some(handle) = entry.handle.as_mut() else {
                continue;
            };
            // A task that called `shutdown` itself is left to end.
            let Some(ended) = self.wait_for(handle, deadline).await else {
                continue;
            };
            let Some(handle) = entry.handle.take() else {
                continue;
            };
            if ended {
                report.ended.push(entry.name.to_string());
            } else {
                handle.abort();
                late.push((Arc::clone(&entry.name), Arc::clone(&entry.status), handle));
            }
        }
        // One grace period for all the aborted tasks together, so that their
        // futures have normally been dropped when this returns (a future
        // stuck in blocking code is dropped when that code returns, later).
        let grace = tokio::time::Instant::now() + ABORT_GRACE;
        for (name, status, handle) in late {
            let cancelled = match tokio::time::timeout_at(grace, handle).await {
                Ok(Err(error)) => error.is_cancelled(),
                // It returned on its own meanwhile: its state says how.
                Ok(Ok(())) => false,
                // Not dropped yet: aborted all the same.
                Err(_) => true,
            };
            if cancelled {
                status.lock().state = TaskState::Aborted;
                report.aborted.push(name.to_string());
            } else {
                report.ended.push(name.to_string());
            }
        }
        report
    }
}

/// The handles a shutdown waits on. Those it has not waited on when it is
/// dropped (its caller stopped waiting, or they belong to tasks that called
/// `shutdown` themselves) go back to their tasks, for a later shutdown.
struct Taken<'a> {
    shared: &'a Shared,
    entries: Vec<Entry>,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let mut tasks = self.shared.tasks.lock();
        for entry in &mut self.entries {
            let Some(handle) = entry.handle.take() else {
                continue;
            };
            if let Some(task) = tasks
                .iter_mut()
                .find(|task| Arc::ptr_eq(&task.name, &entry.name))
            {
                task.handle = Some(handle);
            }
        }
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("tasks", &self.status())
            .finish()
    }
}

/// The signal a supervised task watches to stop: raised by
/// [`Supervisor::shutdown`], or when every handle of the supervisor is
/// dropped.
#[derive(Debug, Clone)]
pub struct Shutdown {
    stop: watch::Receiver<bool>,
}

impl Shutdown {
    /// Whether the task has been asked to stop.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    /// Waits until the task is asked to stop.
    pub async fn cancelled(&self) {
        let mut stop = self.stop.clone();
        // An error means every handle of the supervisor is gone: stop too.
        let _ = stop.wait_for(|stop| *stop).await;
    }
}

/// A snapshot of one supervised task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskStatus {
    /// The name it was spawned with.
    pub name: String,
    /// What it is doing.
    pub state: TaskState,
    /// How many times it has been started again, in all.
    pub restarts: u64,
    /// How its last run ended, if one has.
    pub last_exit: Option<Exit>,
}

impl TaskStatus {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            state: TaskState::Running,
            restarts: 0,
            last_exit: None,
        }
    }
}

/// What a supervised task is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// A run is under way.
    Running,
    /// Waiting out the backoff before it starts again.
    Restarting {
        /// The backoff it waits (after jitter).
        delay: Duration,
    },
    /// It returned `Ok(())` and its policy does not restart it.
    Finished,
    /// It failed and will not start again: its policy is
    /// [`Restart::Never`], or it reached its restart limit.
    Failed,
    /// It ended after the supervisor asked it to stop.
    Stopped,
    /// It did not stop within the shutdown's timeout, and was aborted.
    Aborted,
}

/// How one run of a supervised task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// It returned `Ok(())`.
    Completed,
    /// It returned this error (as text).
    Error(String),
    /// It panicked.
    Panicked(Panicked),
}

/// `completed`, `failed: <error>`, or the panic (`panicked at <file:line:col>: <message>`).
impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Completed => f.write_str("completed"),
            Self::Error(error) => write!(f, "failed: {error}"),
            Self::Panicked(panicked) => fmt::Display::fmt(panicked, f),
        }
    }
}

impl Exit {
    /// Whether the run failed (an error or a panic).
    #[must_use]
    pub fn is_failure(&self) -> bool {
        !matches!(self, Self::Completed)
    }
}

/// What happened to a supervised task, as [`Supervisor::events`] reports
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskEvent {
    /// A run started: `run` 1 is the first, 2 the first restart.
    Started {
        /// The task.
        name: Arc<str>,
        /// Which run, from 1.
        run: u64,
    },
    /// A run ended.
    Exited {
        /// The task.
        name: Arc<str>,
        /// How.
        exit: Exit,
    },
    /// The task starts again after `delay`.
    Restarting {
        /// The task.
        name: Arc<str>,
        /// The backoff, after jitter.
        delay: Duration,
    },
    /// The task reached its restart limit and is marked failed.
    GaveUp {
        /// The task.
        name: Arc<str>,
        /// The limit: restarts within the window.
        max_restarts: u32,
        /// The window.
        within: Duration,
    },
    /// The task ended for good: finished, failed (under [`Restart::Never`],
    /// or after [`GaveUp`](Self::GaveUp)), or stopped by a shutdown. Every
    /// task's last event, except one aborted by a shutdown.
    Ended {
        /// The task.
        name: Arc<str>,
        /// Its final state.
        state: TaskState,
    },
}

/// What [`Supervisor::shutdown`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Tasks that had ended, or ended within the timeout.
    pub ended: Vec<String>,
    /// Tasks still running at the timeout, which were aborted.
    pub aborted: Vec<String>,
}

/// Why [`Supervisor::spawn`] did not start a task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnError {
    /// A task of this name exists already.
    DuplicateName(String),
    /// The supervisor is shutting down.
    ShuttingDown,
    /// `spawn` was called outside a tokio runtime.
    NoRuntime,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateName(name) => write!(f, "a task named {name:?} is supervised already"),
            Self::ShuttingDown => f.write_str("the supervisor is shutting down"),
            Self::NoRuntime => f.write_str("no tokio runtime to spawn the task on"),
        }
    }
}

impl std::error::Error for SpawnError {}
