//! What a pool asks of the code that makes its objects.

use std::future::Future;

/// Makes, checks and recycles a pool's objects (connections, usually).
///
/// Only [`create`](Self::create) and [`check`](Self::check) are required.
/// The pool calls:
///
/// - `create` when it needs an object and has room: at start (for
///   `min_idle`), after a discard, or for a caller that found none idle;
///   bounded by `create_timeout`, and retried with growing pauses while it
///   fails;
/// - `check` on an idle object before handing it out (as `test_on_checkout`
///   says) and every `keepalive_interval`: a cheap round trip, such as
///   `SELECT 1` or `PING`; an error discards the object;
/// - [`is_broken`](Self::is_broken) at every checkout and return: a quick
///   look with no I/O (has the peer closed the connection?);
/// - [`recycle`](Self::recycle) at every return, before the object is idle
///   again: resets what the last user may have changed, with no I/O.
///
/// A panic in any of them is caught and costs only the object at hand:
/// one that panics in `check`, `is_broken` or `recycle` is discarded, and
/// a panic in `create` is a failed create
/// ([`CreateError::Panicked`](crate::CreateError::Panicked)). The caller,
/// the place it held and the pool's upkeep go on.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use seawall_pool::Manager;
///
/// /// Numbers, made one after another.
/// struct Numbers(AtomicU32);
///
/// impl Manager for Numbers {
///     type Object = u32;
///     type Error = Infallible;
///
///     async fn create(&self) -> Result<u32, Infallible> {
///         Ok(self.0.fetch_add(1, Ordering::Relaxed))
///     }
///
///     async fn check(&self, _: &mut u32) -> Result<(), Infallible> {
///         Ok(())
///     }
/// }
/// ```
pub trait Manager: Send + Sync + 'static {
    /// What the pool holds.
    type Object: Send + 'static;
    /// Why an object could not be made or failed its check.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes a new object.
    fn create(&self) -> impl Future<Output = Result<Self::Object, Self::Error>> + Send;

    /// Tells whether an idle object still works, with a round trip.
    fn check(
        &self,
        object: &mut Self::Object,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Tells, without I/O, that an object can no longer be used. The
    /// default says never.
    fn is_broken(&self, object: &mut Self::Object) -> bool {
        let _ = object;
        false
    }

    /// Prepares a returned object for its next user, without I/O; an error
    /// discards it. The default does nothing.
    ///
    /// # Errors
    /// Whatever stops the object from being reused.
    fn recycle(&self, object: &mut Self::Object) -> Result<(), Self::Error> {
        let _ = object;
        Ok(())
    }
}
