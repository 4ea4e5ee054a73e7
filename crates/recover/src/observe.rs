//! What the crate reports: `tracing` events under the target
//! `seawall::recover` (feature `tracing`), and `metrics` counters named
//! `seawall_recover_*` (feature `metrics`). Each is made where the thing
//! happens, which is never on a path every request takes: a panic, a
//! retry, a hedge, a follower, a fallback, a restart.

// Without `tracing`, some of what the events would say goes unused.
#![cfg_attr(not(feature = "tracing"), allow(unused_variables))]

use std::time::Duration;

use crate::Exit;

/// A panic was caught by a layer (`part`: `"service"`).
#[cfg(feature = "tower")]
#[inline]
pub(crate) fn panic_caught(part: &'static str, panicked: &crate::Panicked) {
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: "seawall::recover",
        part,
        message = panicked.message(),
        location = panicked.location().map(tracing::field::display),
        "panic caught"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("seawall_recover_panics_total", "part" => part).increment(1);
}

/// A supervised task's run ended.
#[inline]
pub(crate) fn task_exited(task: &str, exit: &Exit) {
    #[cfg(feature = "tracing")]
    match exit {
        Exit::Completed => {
            tracing::debug!(target: "seawall::recover", task, "supervised task returned");
        }
        Exit::Error(error) => {
            tracing::warn!(target: "seawall::recover", task, error = %error, "supervised task failed");
        }
        Exit::Panicked(panicked) => {
            tracing::error!(
                target: "seawall::recover",
                task,
                message = panicked.message(),
                location = panicked.location().map(tracing::field::display),
                "supervised task panicked"
            );
        }
    }
    #[cfg(feature = "metrics")]
    if let Exit::Panicked(_) = exit {
        metrics::counter!("seawall_recover_panics_total", "part" => "task").increment(1);
    }
}

/// A supervised task starts again after `delay`.
#[inline]
pub(crate) fn task_restarting(task: &str, delay: Duration) {
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "seawall::recover",
        task,
        delay = %seawall_core::duration::format(delay),
        "restarting supervised task"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("seawall_recover_task_restarts_total", "task" => task.to_owned())
        .increment(1);
}

/// A supervised task reached its restart limit.
#[inline]
pub(crate) fn task_gave_up(task: &str, max_restarts: u32, within: Duration) {
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: "seawall::recover",
        task,
        max_restarts,
        within = %seawall_core::duration::format(within),
        "supervised task ended too often (restart limit reached); not restarting it"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("seawall_recover_tasks_given_up_total", "task" => task.to_owned())
        .increment(1);
}

/// A retry is scheduled after `wait`.
#[inline]
pub(crate) fn retrying(attempt: u32, wait: Duration) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: "seawall::recover",
        attempt,
        wait = %seawall_core::duration::format(wait),
        "retrying"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("seawall_recover_retries_total").increment(1);
}

/// A retry or a hedge (`part`) was not made: its budget had no room.
#[inline]
pub(crate) fn budget_exhausted(part: &'static str) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "seawall::recover", part, "budget exhausted");
    #[cfg(feature = "metrics")]
    metrics::counter!("seawall_recover_budget_exhausted_total", "part" => part).increment(1);
}

/// A hedge was sent.
#[cfg(feature = "tower")]
#[inline]
pub(crate) fn hedged() {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "seawall::recover", "hedge sent");
    #[cfg(feature = "metrics")]
    metrics::counter!("seawall_recover_hedges_total").increment(1);
}

/// A caller joined a run under way instead of making its own.
#[inline]
pub(crate) fn coalesced() {
    #[cfg(feature = "metrics")]
    metrics::counter!("seawall_recover_coalesced_total").increment(1);
}

/// A fallback answered instead of the call.
#[inline]
pub(crate) fn fell_back() {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "seawall::recover", "fallback answered");
    #[cfg(feature = "metrics")]
    metrics::counter!("seawall_recover_fallbacks_total").increment(1);
}
