//! Graceful shutdown: [`Drain`] counts the requests in flight, and
//! [`shutdown`] deregisters first, then waits for them to finish.

#[cfg(feature = "tower")]
mod service;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use service::{DrainFuture, Drained};

use crate::{DiscoveryError, Registration};

/// Counts the requests in flight, so that a server that is stopping can
/// wait for them: [`guard`](Self::guard) per request, or (feature `tower`)
/// `Drain` as a layer, which counts a request until its response future
/// ends (not while a streamed body is still being sent). Clones share one
/// count.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use seawall_discovery::Drain;
///
/// let drain = Drain::new();
/// let request = drain.guard();
/// assert_eq!(drain.in_flight(), 1);
/// assert_eq!(drain.wait(Duration::from_millis(10)).await, Err(1));
/// drop(request);
/// assert_eq!(drain.wait(Duration::from_millis(10)).await, Ok(()));
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Drain {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    in_flight: AtomicUsize,
    /// Woken when `in_flight` comes down to zero.
    idle: Notify,
}

/// One request in flight, counted by its [`Drain`] until dropped.
#[must_use = "the request counts only while the guard lives"]
pub struct DrainGuard {
    shared: Arc<Shared>,
}

impl Drain {
    /// A count at zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request until the guard is dropped.
    pub fn guard(&self) -> DrainGuard {
        // Relaxed: the count guards no other memory; `wait` re-reads it
        // after registering for the wake-up.
        self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
        DrainGuard {
            shared: self.shared.clone(),
        }
    }

    /// Requests in flight now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Waits until no request is in flight, for at most `timeout`.
    ///
    /// # Errors
    ///
    /// The number of requests still in flight when `timeout` ran out.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only waits.
    pub async fn wait(&self, timeout: Duration) -> Result<(), usize> {
        let idle = async {
            loop {
                let notified = self.shared.idle.notified();
                let mut notified = std::pin::pin!(notified);
                // Registered before the count is read: a last request that
                // ends in between still wakes us.
                notified.as_mut().enable();
                if self.in_flight() == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(timeout, idle).await.is_ok() {
            return Ok(());
        }
        match self.in_flight() {
            0 => Ok(()),
            left => Err(left),
        }
    }
}

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if self.shared.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

/// What [`shutdown`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Whether deregistering worked (if not, the registration lapses when
    /// its time to live runs out).
    pub deregistered: Result<(), DiscoveryError>,
    /// Requests still in flight when the wait ran out; 0 if all finished.
    pub left_in_flight: usize,
}

/// Stops announcing an instance before it stops serving: deregisters it,
/// waits `grace` (for clients' watches and balancers to see the instance
/// gone: they may still send requests meanwhile), then waits for the
/// requests `drain` counts to finish, until `timeout` (counted from the
/// start, `grace` included) runs out. Stop accepting connections after it
/// returns (for example through hyper's or axum's graceful shutdown).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seawall_discovery::DiscoveryError> {
/// use std::time::Duration;
/// use seawall_discovery::{Discovery, Drain, Instance, MemoryRegistry, Registry, shutdown};
///
/// let registry = MemoryRegistry::new();
/// let me = Instance::new("api", "api-1", "10.0.0.1:80".parse().unwrap());
/// let registration = registry.register(me, Duration::from_secs(10)).await?;
/// let drain = Drain::new();
/// let report = shutdown(registration, &drain, Duration::from_secs(1), Duration::from_secs(5)).await;
/// assert!(report.deregistered.is_ok());
/// assert_eq!(report.left_in_flight, 0);
/// assert!(registry.instances("api").await?.is_empty());
/// # Ok(()) }
/// ```
pub async fn shutdown(
    registration: Registration,
    drain: &Drain,
    grace: Duration,
    timeout: Duration,
) -> ShutdownReport {
    let deadline = tokio::time::Instant::now() + timeout;
    let deregistered = registration.deregister().await;
    tokio::time::sleep_until((tokio::time::Instant::now() + grace).min(deadline)).await;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let left_in_flight = drain.wait(left).await.err().unwrap_or(0);
    ShutdownReport {
        deregistered,
        left_in_flight,
    }
}

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl fmt::Debug for DrainGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainGuard").finish_non_exhaustive()
    }
}
