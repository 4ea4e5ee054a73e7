//! [`Bulkhead`]: at most N calls at once, the rest refused or briefly
//! queued.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[cfg(feature = "tower")]
pub(crate) mod future;
#[cfg(feature = "tower")]
pub(crate) mod layer;
#[cfg(feature = "tower")]
pub(crate) mod service;

use seawall_core::{ConfigError, RefusalKind, RefusalReason, Shared};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits how many calls run at once, so one slow dependency cannot take
/// every worker, connection or socket of a service.
///
/// A call over the limit is refused at once with [`BulkheadFull`] (tower's
/// `ConcurrencyLimit` can only make it wait), or, with
/// [`max_wait`](BulkheadBuilder::max_wait), waits in line (first come, first
/// served) for at most that long, with at most
/// [`max_queue`](BulkheadBuilder::max_queue) callers waiting.
///
/// It is a handle: clones share the limit.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seawall_core::ConfigError> {
/// use seawall_breaker::{Bulkhead, BulkheadError};
///
/// let bulkhead = Bulkhead::builder().max_concurrent(1).build()?;
/// let busy = bulkhead.try_acquire().unwrap();
/// let refused = bulkhead.call(|| async { Ok::<_, ()>("never runs") }).await;
/// assert!(matches!(refused, Err(BulkheadError::Full(_))));
/// drop(busy);
/// assert_eq!(bulkhead.call(|| async { Ok::<_, ()>("runs") }).await, Ok("runs"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Bulkhead {
    inner: Shared<Inner>,
}

/// Aligned to its own cache lines, so the handle's reference count (cloned
/// with every service) never shares a line with the counts every call
/// changes.
#[repr(align(128))]
struct Inner {
    places: Places,
    max_concurrent: u32,
    max_wait: Duration,
    max_queue: u32,
    waiting: AtomicU32,
}

/// Where the places are counted.
enum Places {
    /// A bulkhead that never waits (`max_wait` zero): the places taken, one
    /// counter, so taking and freeing a place is one atomic operation each.
    Counter(AtomicU32),
    /// A bulkhead whose callers may wait in line: tokio's semaphore, which
    /// hands a freed place to the oldest caller in line.
    Queue(Arc<Semaphore>),
}

impl Bulkhead {
    /// A builder; `max_concurrent` is required.
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder {
            max_concurrent: None,
            max_wait: Duration::ZERO,
            max_queue: None,
        }
    }

    /// Takes a place now, or refuses.
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`] when all places are taken.
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        match &self.inner.places {
            Places::Counter(taken) => {
                let max = self.inner.max_concurrent;
                // Relaxed: the count guards no other memory; a place is a
                // number, not data handed from one call to the next.
                taken
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .map(|_| BulkheadPermit {
                        place: Place::Counted(self.inner.clone()),
                    })
                    .map_err(|_| self.full())
            }
            Places::Queue(semaphore) => Arc::clone(semaphore)
                .try_acquire_owned()
                .map(|permit| BulkheadPermit {
                    place: Place::Queued { _permit: permit },
                })
                .map_err(|_| self.full()),
        }
    }

    /// Takes a place, waiting in line for at most `max_wait` (refusing at
    /// once when `max_wait` is zero, the default, or the line is full).
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`] when no place freed up in time.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped wait leaves the line and holds no place.
    pub async fn acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        if let Ok(permit) = self.try_acquire() {
            return Ok(permit);
        }
        let inner = &*self.inner;
        // Only a bulkhead with a `max_wait` has a line.
        let Places::Queue(semaphore) = &inner.places else {
            return Err(self.full());
        };
        // Join the line if it has room; leave it however the wait ends.
        let joined = inner
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < inner.max_queue).then_some(w + 1)
            });
        if joined.is_err() {
            return Err(self.full());
        }
        let _in_line = InLine(&inner.waiting);
        let wait = Arc::clone(semaphore).acquire_owned();
        match tokio::time::timeout(inner.max_wait, wait).await {
            Ok(Ok(permit)) => Ok(BulkheadPermit {
                place: Place::Queued { _permit: permit },
            }),
            // Timed out, or the semaphore closed (it never is).
            Ok(Err(_)) | Err(_) => Err(self.full()),
        }
    }

    /// Runs `call` in a place, waiting as [`acquire`](Self::acquire) does.
    ///
    /// # Errors
    ///
    /// [`BulkheadError::Full`] without running `call`, or the call's own
    /// error as [`BulkheadError::Inner`].
    pub async fn call<T, E, F, Fut>(&self, call: F) -> Result<T, BulkheadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let _place = self.acquire().await.map_err(BulkheadError::Full)?;
        call().await.map_err(BulkheadError::Inner)
    }

    /// Keeps the bulkhead for the rest of the process, so that its clones
    /// (a tower service cloned per request, a permit per call) no longer
    /// count references: see [`Shared`]. (A bulkhead with a `max_wait`
    /// still counts one per permit, on tokio's semaphore.) For bulkheads
    /// made once at startup; the memory is never given back.
    #[must_use]
    pub fn leak(self) -> Self {
        Self {
            inner: self.inner.leak(),
        }
    }

    /// Places free now.
    #[must_use]
    pub fn available(&self) -> u32 {
        match &self.inner.places {
            Places::Counter(taken) => self
                .inner
                .max_concurrent
                .saturating_sub(taken.load(Ordering::Relaxed)),
            Places::Queue(semaphore) => {
                u32::try_from(semaphore.available_permits()).unwrap_or(u32::MAX)
            }
        }
    }

    /// The most calls at once.
    #[must_use]
    pub fn max_concurrent(&self) -> u32 {
        self.inner.max_concurrent
    }

    /// The line's settings: `max_wait` and `max_queue`.
    #[cfg(feature = "serde")]
    pub(crate) fn line(&self) -> (Duration, u32) {
        (self.inner.max_wait, self.inner.max_queue)
    }

    /// Callers waiting in line now.
    #[must_use]
    pub fn waiting(&self) -> u32 {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Whether [`acquire`](Self::acquire) would wait in line now rather
    /// than refuse: `max_wait` is set and the line has room. The line may
    /// fill before the caller joins it; `acquire` then refuses.
    #[cfg(feature = "tower")]
    pub(crate) fn has_room_in_line(&self) -> bool {
        !self.inner.max_wait.is_zero() && self.waiting() < self.inner.max_queue
    }

    fn full(&self) -> BulkheadFull {
        BulkheadFull {
            max_concurrent: self.inner.max_concurrent,
        }
    }
}

/// Leaves the line on drop, however the wait ended.
struct InLine<'a>(&'a AtomicU32);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("max_concurrent", &self.inner.max_concurrent)
            .field("available", &self.available())
            .field("waiting", &self.waiting())
            .finish_non_exhaustive()
    }
}

/// A place in a [`Bulkhead`]; freed on drop.
#[derive(Debug)]
#[must_use = "the place is freed when the permit is dropped"]
pub struct BulkheadPermit {
    place: Place,
}

#[derive(Debug)]
enum Place {
    Counted(Shared<Inner>),
    Queued { _permit: OwnedSemaphorePermit },
}

impl Drop for BulkheadPermit {
    fn drop(&mut self) {
        if let Place::Counted(inner) = &self.place
            && let Places::Counter(taken) = &inner.places
        {
            taken.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

/// Every place of a bulkhead was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadFull {
    pub(crate) max_concurrent: u32,
}

impl BulkheadFull {
    /// The bulkhead's limit.
    #[must_use]
    pub fn max_concurrent(&self) -> u32 {
        self.max_concurrent
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bulkhead full: {} calls in flight", self.max_concurrent)
    }
}

impl std::error::Error for BulkheadFull {}

/// Kind [`RefusalKind::Overloaded`] (HTTP `503`), with no wait.
impl RefusalReason for BulkheadFull {
    fn kind(&self) -> RefusalKind {
        RefusalKind::Overloaded
    }
}

/// Why a call through a [`Bulkhead`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkheadError<E> {
    /// No place was free in time; the call never ran.
    Full(BulkheadFull),
    /// The call ran and failed with its own error.
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for BulkheadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(full) => full.fmt(f),
            Self::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for BulkheadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Full(_) => None,
            Self::Inner(e) => e.source(),
        }
    }
}

/// Builds a [`Bulkhead`].
#[derive(Debug, Clone)]
#[must_use]
pub struct BulkheadBuilder {
    max_concurrent: Option<u32>,
    max_wait: Duration,
    max_queue: Option<u32>,
}

impl BulkheadBuilder {
    /// The most calls at once (required).
    pub fn max_concurrent(mut self, calls: u32) -> Self {
        self.max_concurrent = Some(calls);
        self
    }

    /// How long a call over the limit may wait for a place, first come first
    /// served. Zero (the default) refuses at once.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// The most callers waiting at once; more are refused at once.
    /// Unbounded by default (with a `max_wait`, each waits at most that).
    /// Only a bulkhead with a [`max_wait`](Self::max_wait) has a line:
    /// `build` refuses a `max_queue` without one.
    pub fn max_queue(mut self, callers: u32) -> Self {
        self.max_queue = Some(callers);
        self
    }

    /// Checks the values and builds the bulkhead.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `max_concurrent` is missing or zero (or, with
    /// a `max_wait`, above tokio's semaphore limit), or when `max_queue` is
    /// set without a `max_wait`.
    pub fn build(self) -> Result<Bulkhead, ConfigError> {
        let max_concurrent = self
            .max_concurrent
            .ok_or_else(|| ConfigError::missing("max_concurrent"))?;
        if max_concurrent == 0 {
            return Err(ConfigError::new("max_concurrent", "must be at least 1", 0));
        }
        // tokio's semaphore holds fewer permits than a `u32` on 32-bit
        // targets.
        let permits = usize::try_from(max_concurrent).unwrap_or(usize::MAX);
        if !self.max_wait.is_zero() && permits > Semaphore::MAX_PERMITS {
            return Err(ConfigError::new(
                "max_concurrent",
                format!("must be at most {} with a max_wait", Semaphore::MAX_PERMITS),
                max_concurrent,
            ));
        }
        if self.max_wait.is_zero() && self.max_queue.is_some() {
            return Err(ConfigError::invalid(
                "max_queue",
                "has no effect without a max_wait: nothing waits in line",
            ));
        }
        let places = if self.max_wait.is_zero() {
            Places::Counter(AtomicU32::new(0))
        } else {
            Places::Queue(Arc::new(Semaphore::new(permits)))
        };
        Ok(Bulkhead {
            inner: Shared::new(Inner {
                places,
                max_concurrent,
                max_wait: self.max_wait,
                max_queue: self.max_queue.unwrap_or(u32::MAX),
                waiting: AtomicU32::new(0),
            }),
        })
    }
}
