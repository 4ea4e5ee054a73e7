//! `tracing` events (feature `tracing`), under the target `seawall::recover`.

use crate::Panicked;

/// A panic was caught in `part` (a service, a supervised task).
#[inline]
pub(crate) fn panic_caught(part: &str, panicked: &Panicked) {
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: "seawall::recover",
        part,
        message = panicked.message(),
        location = panicked.location().map(tracing::field::display),
        "panic caught"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (part, panicked);
}

/// A supervised task's run ended.
#[inline]
pub(crate) fn task_exited(task: &str, exit: &crate::Exit) {
    #[cfg(feature = "tracing")]
    match exit {
        crate::Exit::Completed => {
            tracing::debug!(target: "seawall::recover", task, "supervised task returned");
        }
        crate::Exit::Error(error) => {
            tracing::warn!(target: "seawall::recover", task, error = %error, "supervised task failed");
        }
        // Reported by `panic_caught` already.
        crate::Exit::Panicked(_) => {}
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (task, exit);
}

/// A supervised task reached its restart limit.
#[inline]
pub(crate) fn task_gave_up(task: &str, max_restarts: u32, within: std::time::Duration) {
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: "seawall::recover",
        task,
        max_restarts,
        within = %seawall_core::duration::format(within),
        "supervised task failed too often; not restarting it"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (task, max_restarts, within);
}
