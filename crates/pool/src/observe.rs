//! What a pool reports: `tracing` events under the target `seawall::pool`
//! (feature `tracing`) and `metrics` named `seawall_pool_*` with a `pool`
//! label (feature `metrics`), both naming the pool by its `name`.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

/// Why an object left the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Discard {
    /// The manager found it broken, or its `recycle` failed.
    Broken,
    /// It failed a check (at checkout or keepalive), or the check was
    /// abandoned.
    FailedCheck,
    /// Past its lifetime.
    Expired,
    /// Idle longer than `idle_timeout`.
    Idle,
    /// Returned while its holder panicked.
    Panicked,
    /// The pool shrank or closed.
    Shrunk,
}

#[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
impl Discard {
    #[cfg(feature = "metrics")]
    const ALL: [Self; 6] = [
        Self::Broken,
        Self::FailedCheck,
        Self::Expired,
        Self::Idle,
        Self::Panicked,
        Self::Shrunk,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Broken => "broken",
            Self::FailedCheck => "failed_check",
            Self::Expired => "expired",
            Self::Idle => "idle",
            Self::Panicked => "panicked",
            Self::Shrunk => "shrunk",
        }
    }
}

/// The pool's reporting handles, made once when it starts.
#[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
pub(crate) struct Observer {
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
}

#[cfg(feature = "metrics")]
struct Metrics {
    wait: metrics::Histogram,
    timeouts: metrics::Counter,
    creates: metrics::Counter,
    create_errors: metrics::Counter,
    recycles: metrics::Counter,
    discards: [metrics::Counter; 6],
}

impl Observer {
    pub(crate) fn new(name: &str) -> Self {
        #[cfg(feature = "metrics")]
        let counter = |what: &'static str| metrics::counter!(what, "pool" => name.to_owned());
        Self {
            name: name.into(),
            #[cfg(feature = "metrics")]
            metrics: Metrics {
                wait: metrics::histogram!("seawall_pool_wait_seconds", "pool" => name.to_owned()),
                timeouts: counter("seawall_pool_timeouts_total"),
                creates: counter("seawall_pool_creates_total"),
                create_errors: counter("seawall_pool_create_errors_total"),
                recycles: counter("seawall_pool_recycles_total"),
                discards: Discard::ALL.map(|why| {
                    metrics::counter!(
                        "seawall_pool_discards_total",
                        "pool" => name.to_owned(),
                        "reason" => why.label()
                    )
                }),
            },
        }
    }

    /// A caller got an object after waiting this long (zero for most).
    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn waited(&self, waited: Duration) {
        self.metrics.wait.record(waited.as_secs_f64());
    }

    pub(crate) fn timed_out(&self, waited: Duration) {
        #[cfg(feature = "metrics")]
        self.metrics.timeouts.increment(1);
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "seawall::pool",
            pool = %self.name,
            waited = %seawall_core::duration::format(waited),
            "no object within acquire_timeout"
        );
        let _ = waited;
    }

    pub(crate) fn created(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.creates.increment(1);
        #[cfg(feature = "tracing")]
        tracing::debug!(target: "seawall::pool", pool = %self.name, "object created");
    }

    pub(crate) fn create_failed(&self, error: &(dyn std::error::Error + 'static), failures: u32) {
        #[cfg(feature = "metrics")]
        self.metrics.create_errors.increment(1);
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "seawall::pool",
            pool = %self.name,
            error = %Chain(error),
            failures,
            "creating an object failed"
        );
        let _ = (error, failures);
    }

    #[inline]
    pub(crate) fn recycled(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.recycles.increment(1);
    }

    pub(crate) fn discarded(&self, why: Discard) {
        #[cfg(feature = "metrics")]
        self.metrics.discards[why as usize].increment(1);
        #[cfg(feature = "tracing")]
        tracing::debug!(target: "seawall::pool", pool = %self.name, reason = why.label(), "object discarded");
        let _ = why;
    }

    /// Leak detection's first message: an object held too long. Goes to
    /// `tracing` with that feature, else to standard error (the user asked
    /// for these warnings by setting the threshold).
    pub(crate) fn maybe_leaked(&self, held: Duration, taken_at: &'static Location<'static>) {
        let held = seawall_core::duration::format(held);
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "seawall::pool",
            pool = %self.name,
            held = %held,
            taken_at = %taken_at,
            "an object has been held longer than leak_detection_threshold: maybe leaked"
        );
        #[cfg(not(feature = "tracing"))]
        eprintln!(
            "seawall::pool: pool {}: an object taken at {taken_at} has been held for {held}, \
             longer than leak_detection_threshold: maybe leaked",
            self.name
        );
    }

    /// Leak detection's second message: a suspected leak came back.
    pub(crate) fn came_back(&self, held: Duration, taken_at: &'static Location<'static>) {
        let held = seawall_core::duration::format(held);
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "seawall::pool",
            pool = %self.name,
            held = %held,
            taken_at = %taken_at,
            "an object reported as maybe leaked came back"
        );
        #[cfg(not(feature = "tracing"))]
        eprintln!(
            "seawall::pool: pool {}: the object taken at {taken_at}, reported as maybe leaked, \
             came back after {held}",
            self.name
        );
    }
}

/// An error and its sources, joined by ": ".
#[cfg(feature = "tracing")]
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

#[cfg(feature = "tracing")]
impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
