//! The upkeep task: retires idle objects past `idle_timeout` (above
//! `min_idle`) and past their lifetime, checks idle objects every
//! `keepalive_interval`, and makes objects up to `min_idle`.
//!
//! It works on idle objects the way a caller does: it takes a place for
//! each (never waiting, so never ahead of a caller), so the pool never
//! holds more than `max_size` even while objects are out for a check. A
//! caller that finds none idle meanwhile may make a new one.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use seawall_core::Clock;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::manager::Manager;
use crate::observe::Discard;
use crate::pool::Inner;

/// How often upkeep runs: every 30 s, or half the shortest of the times it
/// enforces or watches, whichever is sooner (but not more often than every 10 ms).
pub(crate) fn period<M: Manager, C>(inner: &Inner<M, C>) -> Duration {
    let config = &inner.config;
    [
        config.idle_timeout,
        config.max_lifetime,
        config.keepalive_interval,
        config.leak_detection_threshold,
    ]
    .into_iter()
    .flatten()
    .map(|d| d / 2)
    .fold(Duration::from_secs(30), Duration::min)
    .max(Duration::from_millis(10))
}

/// The task: holds the pool only while it works on it, so a pool nobody
/// else holds is dropped (and wakes it to end).
pub(crate) async fn run<M: Manager, C: Clock>(pool: Weak<Inner<M, C>>, wake: Arc<Notify>) {
    loop {
        let woken = wake.notified();
        let period = {
            let Some(inner) = pool.upgrade() else { return };
            if inner.closed.load(Ordering::Relaxed) {
                return;
            }
            inner.sweep().await;
            inner.fill().await;
            inner.report_leaks();
            period(&inner)
        };
        let _ = tokio::time::timeout(period, woken).await;
    }
}

/// The task that ends waits at their deadline: it sleeps until the oldest
/// waiter's deadline (deadlines fall in queue order), or until a first
/// waiter queues. Like `run`, it holds the pool only while it works.
pub(crate) async fn expire_waits<M: Manager, C: Clock>(pool: Weak<Inner<M, C>>, wake: Arc<Notify>) {
    loop {
        let queued = wake.notified();
        let next = {
            let Some(inner) = pool.upgrade() else { return };
            if inner.closed.load(Ordering::Relaxed) {
                return;
            }
            inner.gate.expire(Instant::now())
        };
        match next {
            Some(deadline) => {
                let _ = tokio::time::timeout_at(deadline, queued).await;
            }
            None => queued.await,
        }
    }
}

impl<M: Manager, C: Clock> Inner<M, C> {
    /// Retires and checks idle objects.
    async fn sweep(&self) {
        let mut held = Vec::new();
        while self.gate.try_take() {
            match self.slots.unpark() {
                Some(idle) => held.push(idle),
                None => {
                    self.gate.give();
                    break;
                }
            }
        }
        let now = self.clock.now_nanos();
        let min_idle = self.min_idle();
        let mut spare = self.live.load(Ordering::Relaxed).saturating_sub(min_idle);
        let idle_timeout = self.config.idle_timeout.map(super::pool::nanos);
        let keepalive = self.config.keepalive_interval.map(super::pool::nanos);
        let mut due = Vec::new();
        // Oldest first, so they go back in the order they were in.
        for (slot, entry) in held.into_iter().rev() {
            let idle_for = now.saturating_sub(entry.idle_since);
            let expired = now >= entry.retire_at;
            let idle_too_long =
                spare > 0 && idle_timeout.is_some_and(|timeout| idle_for >= timeout);
            if expired || idle_too_long {
                spare = spare.saturating_sub(1);
                let why = if expired {
                    Discard::Expired
                } else {
                    Discard::Idle
                };
                self.discard(slot, entry, why);
                self.gate.give();
            } else if keepalive.is_some_and(|every| now.saturating_sub(entry.seen_at) >= every) {
                due.push((slot, entry));
            } else {
                self.slots.park(slot, entry);
                self.gate.give();
            }
        }
        for (slot, mut entry) in due {
            let checked = tokio::time::timeout(
                self.config.create_timeout,
                self.manager.check(&mut entry.object),
            )
            .await;
            if matches!(checked, Ok(Ok(()))) {
                entry.seen_at = self.clock.now_nanos();
                self.slots.park(slot, entry);
            } else {
                self.discard(slot, entry, Discard::FailedCheck);
            }
            self.gate.give();
        }
    }

    /// Leak detection: the first message, once per checkout held longer
    /// than the threshold.
    fn report_leaks(&self) {
        let Some(threshold) = self.config.leak_detection_threshold else {
            return;
        };
        let now = self.clock.now_nanos();
        let threshold = crate::pool::nanos(threshold);
        self.slots.each_lent(|lent| {
            let held = now.saturating_sub(lent.since);
            if !lent.reported && held >= threshold {
                lent.reported = true;
                self.observer
                    .maybe_leaked(Duration::from_nanos(held), lent.at);
            }
        });
    }

    /// Makes objects until the pool holds `min_idle`, one at a time, while
    /// a place is free; stops at the first failure (the next round tries
    /// again).
    async fn fill(&self) {
        while !self.closed.load(Ordering::Relaxed)
            && self.live.load(Ordering::Relaxed) < self.min_idle()
            && self.may_create_now()
            && self.gate.try_take()
        {
            let made = self.create_once(self.config.create_timeout).await;
            match made {
                Ok(entry) => self.park_new(entry),
                Err(_) => {
                    self.gate.give();
                    return;
                }
            }
            self.gate.give();
        }
    }
}
