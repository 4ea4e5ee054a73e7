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
use crate::pool::{Entry, Inner};

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
        // Each pass takes the idle objects for an instant; a keepalive
        // check holds one object (and its place) at a time, so a peer that
        // lets checks hang costs the pool one place, not all of them.
        let mut passes = self.max_size.load(Ordering::Relaxed).saturating_add(1);
        while let Some((slot, mut entry)) = self.sweep_pass() {
            let until = crate::pool::after(Instant::now(), self.config.create_timeout);
            if self.check(&mut entry.object, until).await == Some(true) {
                entry.seen_at = self.clock.now_nanos();
                self.repark(slot, entry);
                // Back idle: offered first to a caller waiting for a maker.
                self.pass_place();
            } else {
                self.discard(slot, entry, Discard::FailedCheck);
                self.gate.give();
            }
            passes -= 1;
            if passes == 0 {
                return;
            }
        }
    }

    /// Takes every idle object (a place for each, never waiting), retires
    /// those past their lifetime and, beyond `min_idle`, those idle past
    /// `idle_timeout`, oldest first; puts the rest back in their order but
    /// for the one longest unchecked past `keepalive_interval`, which it
    /// returns with its place.
    fn sweep_pass(&self) -> Option<(u32, Entry<M::Object>)> {
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
        let idle_timeout = self.config.idle_timeout.map(crate::pool::nanos);
        let keepalive = self.config.keepalive_interval.map(crate::pool::nanos);
        let mut spare = u32::try_from(held.len())
            .unwrap_or(u32::MAX)
            .saturating_sub(self.min_idle());
        let mut due: Option<(u32, Entry<M::Object>)> = None;
        // Oldest first, so they go back in the order they were in.
        for (slot, entry) in held.into_iter().rev() {
            let expired = now >= entry.retire_at;
            let idle_too_long = spare > 0
                && idle_timeout
                    .is_some_and(|timeout| now.saturating_sub(entry.idle_since) >= timeout);
            if expired || idle_too_long {
                spare = spare.saturating_sub(1);
                let why = if expired {
                    Discard::Expired
                } else {
                    Discard::Idle
                };
                self.discard(slot, entry, why);
                self.gate.give();
                continue;
            }
            let unchecked = now.saturating_sub(entry.seen_at);
            let is_due = keepalive.is_some_and(|every| unchecked >= every);
            if is_due && due.as_ref().is_none_or(|(_, d)| d.seen_at > entry.seen_at) {
                if let Some((slot, entry)) = due.replace((slot, entry)) {
                    self.repark(slot, entry);
                    self.pass_place();
                }
            } else {
                self.repark(slot, entry);
                self.pass_place();
            }
        }
        due
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

    /// Makes objects until `min_idle` are idle (and the pool is not full),
    /// one at a time, while a place is free; stops at the first failure
    /// (the next round tries again).
    async fn fill(&self) {
        // The count of idle objects locks every slot: asked last of the
        // cheap checks, so a full pool skips it.
        while !self.closed.load(Ordering::Relaxed)
            && self.live.load(Ordering::Relaxed) < self.max_size.load(Ordering::Relaxed)
            && u32::try_from(self.slots.parked()).unwrap_or(u32::MAX) < self.min_idle()
            && self.may_create_now()
            && self.gate.try_take()
        {
            // A close stops the try: nothing is made after it.
            let made = self.unless_closed(self.create_once()).await;
            match made {
                // A new idle object: its place goes first to a caller
                // waiting for one being made.
                Some(Ok(entry)) => {
                    if self.park_new(entry) {
                        self.pass_place();
                    } else {
                        self.gate.give();
                    }
                }
                None | Some(Err(_)) => {
                    self.gate.give();
                    return;
                }
            }
        }
    }
}
