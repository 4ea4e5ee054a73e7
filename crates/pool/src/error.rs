//! Why a pool did not hand out an object.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use seawall_core::duration::format;
use seawall_core::{RefusalKind, RefusalReason};

/// Why making an object failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateError<E> {
    /// [`Manager::create`](crate::Manager::create) returned this error.
    Failed(E),
    /// It took longer than `create_timeout`, this long.
    TimedOut(Duration),
    /// [`Manager::create`](crate::Manager::create) panicked, with this
    /// message (a bug in the manager; the pool goes on).
    Panicked(String),
}

impl<E> fmt::Display for CreateError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(_) => f.write_str("creating an object failed"),
            Self::TimedOut(after) => {
                write!(f, "creating an object took longer than {}", format(*after))
            }
            Self::Panicked(message) => write!(f, "creating an object panicked: {message}"),
        }
    }
}

impl<E: Error + 'static> Error for CreateError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Failed(error) => Some(error),
            Self::TimedOut(_) | Self::Panicked(_) => None,
        }
    }
}

/// Why [`Pool::get`](crate::Pool::get) or [`Pool::new`](crate::Pool::new)
/// failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError<E> {
    /// No object could be had within `acquire_timeout`. If making objects
    /// was failing meanwhile, the last failure is the error's source.
    Timeout {
        /// How long the caller waited.
        waited: Duration,
        /// The last failure to make an object, if making them was failing
        /// during the wait (a failure in it, or within `create_timeout`
        /// and the longest pause between tries, 2 s, before it).
        last_create_error: Option<Arc<CreateError<E>>>,
    },
    /// The pool was closed.
    Closed,
    /// [`Pool::new`](crate::Pool::new) could not make its first object
    /// (with `fail_fast`).
    Create(Arc<CreateError<E>>),
}

impl<E> PoolError<E> {
    /// Whether this is [`Timeout`](Self::Timeout).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// Whether this is [`Closed`](Self::Closed).
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }
}

impl<E> fmt::Display for PoolError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { waited, .. } => {
                // To the millisecond: the wait, not the timer's slack.
                let waited = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
                write!(
                    f,
                    "no pooled object within {}",
                    format(Duration::from_millis(waited))
                )
            }
            Self::Closed => f.write_str("pool closed"),
            Self::Create(_) => f.write_str("the pool could not make its first object"),
        }
    }
}

/// A refusal of [`PoolService`](crate::tower::PoolService): `Timeout` is
/// `Overloaded` (no object in time), `Closed` and `Create` are
/// `Unavailable`; both answer `503`.
impl<E: Error + Send + Sync + 'static> RefusalReason for PoolError<E> {
    fn kind(&self) -> RefusalKind {
        match self {
            Self::Timeout { .. } => RefusalKind::Overloaded,
            Self::Closed | Self::Create(_) => RefusalKind::Unavailable,
        }
    }
}

impl<E: Error + 'static> Error for PoolError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Timeout {
                last_create_error: Some(error),
                ..
            } => Some(&**error),
            Self::Create(error) => Some(&**error),
            _ => None,
        }
    }
}
