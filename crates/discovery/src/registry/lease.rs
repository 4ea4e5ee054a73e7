//! [`Registration`]: a registered instance, kept alive in the background.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{DiscoveryError, Instance};

/// What a backend does for a registration, driven by [`keep`].
pub(crate) trait Lease: Send + 'static {
    /// Keeps the registration alive one more period; registers it again if
    /// the backend lost it (a lease that expired, a backend restarted).
    fn refresh(&mut self) -> impl Future<Output = Result<(), DiscoveryError>> + Send;

    /// Removes the registration.
    fn deregister(&mut self) -> impl Future<Output = Result<(), DiscoveryError>> + Send;
}

/// The shortest and longest time to live a registration may ask for.
pub(crate) const TTL: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));

/// Checks a registration's time to live.
pub(crate) fn check_ttl(ttl: Duration) -> Result<(), DiscoveryError> {
    if ttl < TTL.0 || ttl > TTL.1 {
        return Err(seawall_core::ConfigError::new(
            "ttl",
            "must be from 1s to 24h",
            format!("{ttl:?}"),
        )
        .into());
    }
    Ok(())
}

/// An instance registered by [`Registry::register`](super::Registry::register),
/// kept alive in the background until [`deregister`](Self::deregister)ed
/// or dropped.
///
/// A background task refreshes the registration three times per time to
/// live. If the backend lost it (its lease expired while the backend could
/// not be reached, or the backend restarted empty), the task registers it
/// again as soon as the backend answers.
///
/// Dropping a registration deregisters it in the background;
/// [`deregister`](Self::deregister) does the same and waits for it, so a
/// server can deregister before it stops serving. If the tokio runtime
/// shuts down first, nothing deregisters: the registration lapses when its
/// time to live runs out, as a crashed process's does.
pub struct Registration {
    instance: Arc<Instance>,
    stop: Option<oneshot::Sender<Stop>>,
    task: Option<JoinHandle<Result<(), DiscoveryError>>>,
}

/// What a registration's task is told to do.
#[derive(Debug)]
enum Stop {
    /// Stop refreshing and deregister.
    Deregister,
    /// Stop refreshing; let the registration lapse.
    Abandon,
}

impl Registration {
    /// Starts keeping `lease` alive for `instance`.
    pub(crate) fn start(instance: Arc<Instance>, ttl: Duration, lease: impl Lease) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(keep(lease, ttl / 3, stopped));
        Self {
            instance,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The instance registered.
    #[must_use]
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Deregisters the instance and waits until the backend has it gone.
    ///
    /// # Errors
    ///
    /// The backend's error if it could not be told; the registration then
    /// lapses when its time to live runs out.
    pub async fn deregister(mut self) -> Result<(), DiscoveryError> {
        self.stop(Stop::Deregister);
        match self.task.take() {
            Some(task) => task.await.map_err(|_| DiscoveryError::Closed)?,
            None => Ok(()),
        }
    }

    /// Stops keeping the registration alive without deregistering it: it
    /// lapses when its time to live runs out, as a crashed process's does.
    pub fn abandon(mut self) {
        self.stop(Stop::Abandon);
    }

    fn stop(&mut self, how: Stop) {
        if let Some(stop) = self.stop.take() {
            // The task may have ended already (its runtime stopping).
            let _ = stop.send(how);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.stop(Stop::Deregister);
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// Refreshes `lease` every `period` until told to stop. A refresh that
/// fails is tried again after a tenth of the period (at least 100 ms), so a
/// backend that comes back is used again before the lease runs out. A stop
/// does not wait for a refresh under way (one to a backend that does not
/// answer): the refresh is dropped.
async fn keep(
    mut lease: impl Lease,
    period: Duration,
    mut stopped: oneshot::Receiver<Stop>,
) -> Result<(), DiscoveryError> {
    let retry = (period / 10).max(Duration::from_millis(100));
    let mut next = Instant::now() + period;
    let how = loop {
        tokio::select! {
            how = &mut stopped => break how,
            () = tokio::time::sleep_until(next) => {}
        }
        tokio::select! {
            how = &mut stopped => break how,
            refreshed = lease.refresh() => {
                next = Instant::now() + match refreshed {
                    Ok(()) => period,
                    Err(_failed) => {
                        #[cfg(feature = "tracing")]
                        tracing::warn!(target: "seawall::discovery", error = %_failed, "refresh failed; retrying");
                        retry
                    }
                };
            }
        }
    };
    match how {
        Ok(Stop::Abandon) => Ok(()),
        // Told to, or the registration was dropped.
        Ok(Stop::Deregister) | Err(_) => lease.deregister().await,
    }
}
