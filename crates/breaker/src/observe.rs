//! What a breaker reports: transitions to a user callback, `tracing` events
//! under the target `seawall::breaker` (feature `tracing`), and `metrics`
//! named `seawall_breaker_*` with a `breaker` label (feature `metrics`).

use std::fmt;
use std::sync::Arc;

use crate::state::State;

/// A change of state, as the `on_transition` callback sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
}

pub(crate) type Listener = Arc<dyn Fn(&str, Transition) + Send + Sync>;

/// The breaker's reporting handles, made once when it is built.
#[derive(Clone)]
#[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
pub(crate) struct Observer {
    name: Arc<str>,
    listener: Option<Listener>,
    #[cfg(feature = "metrics")]
    refused: metrics::Counter,
    #[cfg(feature = "metrics")]
    failures: metrics::Counter,
    #[cfg(feature = "metrics")]
    slow: metrics::Counter,
    #[cfg(feature = "metrics")]
    opened: metrics::Counter,
}

impl Observer {
    pub(crate) fn new(name: &str, listener: Option<Listener>) -> Self {
        #[cfg(feature = "metrics")]
        let counter = |what: &'static str| metrics::counter!(what, "breaker" => name.to_owned());
        Self {
            name: name.into(),
            listener,
            #[cfg(feature = "metrics")]
            refused: counter("seawall_breaker_refused_total"),
            #[cfg(feature = "metrics")]
            failures: counter("seawall_breaker_failures_total"),
            #[cfg(feature = "metrics")]
            slow: counter("seawall_breaker_slow_calls_total"),
            #[cfg(feature = "metrics")]
            opened: counter("seawall_breaker_opened_total"),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    pub(crate) fn refused(&self, state: State) {
        #[cfg(feature = "metrics")]
        self.refused.increment(1);
        #[cfg(feature = "tracing")]
        tracing::debug!(target: "seawall::breaker", breaker = %self.name, ?state, "call refused");
        let _ = state;
    }

    #[inline]
    pub(crate) fn recorded(&self, failure: bool, slow: bool) {
        #[cfg(feature = "metrics")]
        {
            if failure {
                self.failures.increment(1);
            }
            if slow {
                self.slow.increment(1);
            }
        }
        #[cfg(feature = "tracing")]
        if slow {
            tracing::trace!(target: "seawall::breaker", breaker = %self.name, failure, "slow call");
        }
        let _ = (failure, slow);
    }

    /// Called under the transition lock, once per transition.
    pub(crate) fn transition(&self, from: State, to: State) {
        #[cfg(feature = "metrics")]
        if to == State::Open {
            self.opened.increment(1);
        }
        #[cfg(feature = "tracing")]
        {
            if to == State::Open {
                tracing::warn!(target: "seawall::breaker", breaker = %self.name, ?from, ?to, "circuit opened");
            } else {
                tracing::info!(target: "seawall::breaker", breaker = %self.name, ?from, ?to, "circuit state changed");
            }
        }
        // A listener that panics is its own bug: the transition stands, and
        // the caller goes on (it may be unwinding already: a permit dropped
        // by a panic records its outcome, and a second panic would abort).
        if let Some(listener) = &self.listener {
            let call = || listener(&self.name, Transition { from, to });
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
                // Its `Drop` could panic in turn.
                std::mem::forget(payload);
            }
        }
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer")
            .field("name", &self.name)
            .field("listener", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

/// A breaker's state and window, read at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The state.
    pub state: State,
    /// Calls in the window.
    pub calls: u32,
    /// Failed calls in the window.
    pub failures: u32,
    /// Slow calls in the window.
    pub slow_calls: u32,
    /// `failures / calls`, 0 with no calls.
    pub failure_rate: f64,
    /// `slow_calls / calls`, 0 with no calls.
    pub slow_call_rate: f64,
    /// Time left in open, when open.
    pub retry_after: Option<std::time::Duration>,
}
