//! [`Shared`]: the handle behind every seawall limiter, breaker and
//! bulkhead.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// State shared by every clone of a handle: reference-counted like an
/// [`Arc`], or, once [`leak`](Self::leak)ed, kept for the rest of the
/// process so that a clone counts nothing.
///
/// Each count is an atomic write to one cache line. A tower stack is cloned
/// for every request by hyper's and axum's adapters, and each response
/// future holds a handle too, so every worker thread writes the counts of
/// every stateful layer several times per request, and those lines move
/// between cores. A handle leaked at startup has no count: its clones copy
/// a reference. Its memory is never given back and its `Drop` never runs,
/// so leak only what lives as long as the server (a stack built in
/// `main`), not what is made per key or per tenant.
///
/// # Examples
///
/// ```
/// use seawall_core::Shared;
///
/// let counted = Shared::new(vec![1, 2, 3]);
/// let clone = counted.clone();
/// assert_eq!(clone.len(), 3);
/// assert!(!clone.is_leaked());
///
/// let forever = counted.leak();
/// assert!(forever.clone().is_leaked());
/// assert_eq!(forever[2], 3);
/// ```
pub struct Shared<T: 'static> {
    inner: Handle<T>,
}

enum Handle<T: 'static> {
    Counted(Arc<T>),
    Leaked(&'static T),
}

impl<T> Shared<T> {
    /// Shares `value`, counted.
    pub fn new(value: T) -> Self {
        Self {
            inner: Handle::Counted(Arc::new(value)),
        }
    }

    /// Keeps the state for the rest of the process: this handle and its
    /// clones count nothing from now on (clones made before stay counted,
    /// and the state outlives them all).
    #[must_use]
    pub fn leak(self) -> Self {
        match self.inner {
            Handle::Counted(arc) => {
                let kept: &'static Arc<T> = Box::leak(Box::new(arc));
                Self {
                    inner: Handle::Leaked(kept),
                }
            }
            leaked @ Handle::Leaked(_) => Self { inner: leaked },
        }
    }

    /// Whether this handle was leaked.
    #[must_use]
    pub fn is_leaked(&self) -> bool {
        matches!(self.inner, Handle::Leaked(_))
    }
}

impl<T> Clone for Shared<T> {
    #[inline]
    fn clone(&self) -> Self {
        Self {
            inner: match &self.inner {
                Handle::Counted(arc) => Handle::Counted(Arc::clone(arc)),
                Handle::Leaked(state) => Handle::Leaked(state),
            },
        }
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match &self.inner {
            Handle::Counted(arc) => arc,
            Handle::Leaked(state) => state,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaked_handle_counts_nothing_and_outlives_counted_clones() {
        let counted = Shared::new(String::from("state"));
        let Handle::Counted(arc) = &counted.inner else {
            unreachable!("new handles are counted")
        };
        let weak = Arc::downgrade(arc);
        let before = counted.clone();
        let leaked = counted.leak();
        assert_eq!(weak.strong_count(), 2, "the clone, and the one kept");
        let clones: Vec<_> = (0..10).map(|_| leaked.clone()).collect();
        assert_eq!(weak.strong_count(), 2, "leaked clones count nothing");
        drop(before);
        drop(clones);
        assert_eq!(weak.strong_count(), 1);
        assert_eq!(&*leaked, "state");
        assert!(leaked.leak().is_leaked());
    }
}
