//! [`PoolService`]: requests run on pooled objects, with the pool as
//! backpressure.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{Clock, CoarseClock, Refusal, RefusalFormat, RefuseWithError};
use tokio::time::Instant;
use tower::Service;

use super::future::ResponseFuture;
use crate::error::PoolError;
use crate::gate::{Denied, Waiter};
use crate::manager::Manager;
use crate::object::OwnedObject;
use crate::pool::{Inner, Place, Pool};

/// A service that checks an object out of a pool for each request and
/// runs `call(object, request)` on it; the object goes back when the call's
/// future ends.
///
/// `poll_ready` waits for a place in the pool, so a service in front of an
/// exhausted pool is not ready (backpressure), up to `acquire_timeout`.
/// Then, as for a closed pool, it answers `Ready` and refuses in `call`
/// through its [`Refusal`]: a [`PoolError`] (`Timeout`, `Closed`), which is
/// a `503` with `seawall_core::http::RefuseWithResponse`.
///
/// The object for a request is the last returned idle one when it needs no
/// check (no allocation); otherwise checking or making one runs in a boxed
/// future.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use std::convert::Infallible;
/// use seawall_pool::tower::PoolService;
/// use seawall_pool::{Manager, OwnedObject, Pool, PoolConfig};
/// use tower::ServiceExt;
///
/// struct Adders;
/// impl Manager for Adders {
///     type Object = u64;
///     type Error = Infallible;
///     async fn create(&self) -> Result<u64, Infallible> { Ok(100) }
///     async fn check(&self, _: &mut u64) -> Result<(), Infallible> { Ok(()) }
/// }
///
/// let pool = Pool::new(Adders, PoolConfig::builder().max_size(2).build()?).await?;
/// let service = PoolService::new(pool, |base: OwnedObject<Adders>, n: u64| async move {
///     Ok::<_, Infallible>(*base + n)
/// });
/// assert_eq!(service.oneshot(1).await?, 101);
/// # Ok(())
/// # }
/// ```
pub struct PoolService<M: Manager, F, C: Clock = CoarseClock, R = RefuseWithError> {
    turn: Turn<M, C>,
    call: F,
    refusal: R,
    /// Where the service was made: what leak detection names.
    made_at: &'static Location<'static>,
}

/// The pool and this service's turn in it: what `poll_ready` decided, given
/// back (or given up) when dropped.
struct Turn<M: Manager, C: Clock> {
    pool: Pool<M, C>,
    ready: Ready,
}

/// What `poll_ready` decided.
#[derive(Default)]
enum Ready {
    #[default]
    Unknown,
    /// Queued in the pool's line since then.
    Waiting(Arc<Waiter>, Instant),
    /// A place in the pool, held for the call, and when the wait for it
    /// began (the wait for an object in it ends `acquire_timeout` after).
    Place(Instant),
    /// The pool refuses: closed, or no place within `acquire_timeout`.
    Refused(Refused),
}

#[derive(Clone, Copy)]
enum Refused {
    Closed,
    /// No place within `acquire_timeout` of then.
    Timeout(Instant),
}

impl Refused {
    fn error<M: Manager, C: Clock>(self, pool: &Pool<M, C>) -> PoolError<M::Error> {
        match self {
            Self::Closed => PoolError::Closed,
            Self::Timeout(since) => pool.inner.timed_out(since),
        }
    }
}

impl<M: Manager, C: Clock> Drop for Turn<M, C> {
    fn drop(&mut self) {
        match std::mem::take(&mut self.ready) {
            Ready::Place(_) => self.pool.inner.gate.give(),
            Ready::Waiting(waiter, _) => self.pool.inner.gate.abandon(&waiter),
            Ready::Unknown | Ready::Refused(_) => {}
        }
    }
}

impl<M: Manager, C: Clock> Turn<M, C> {
    /// Takes a place, waiting up to `acquire_timeout`; ready with a place or
    /// a refusal.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let gate = &self.pool.inner.gate;
        let (mut waiter, since) = match std::mem::take(&mut self.ready) {
            Ready::Place(since) => {
                self.ready = Ready::Place(since);
                return Poll::Ready(());
            }
            Ready::Refused(why) => {
                // Tried again for a free place, but not waited for twice.
                self.ready = if gate.try_take() {
                    Ready::Place(Instant::now())
                } else {
                    Ready::Refused(why)
                };
                return Poll::Ready(());
            }
            Ready::Waiting(waiter, since) => (Some(waiter), since),
            Ready::Unknown => (None, Instant::now()),
        };
        let deadline = crate::pool::after(since, self.pool.inner.config.acquire_timeout);
        match gate.poll_take(&mut waiter, deadline, cx) {
            Poll::Ready(Ok(())) => self.ready = Ready::Place(since),
            Poll::Ready(Err(Denied::Shut)) => self.ready = Ready::Refused(Refused::Closed),
            Poll::Ready(Err(Denied::TimedOut)) => {
                self.ready = Ready::Refused(Refused::Timeout(since));
            }
            Poll::Pending => {
                if let Some(queued) = waiter {
                    self.ready = Ready::Waiting(queued, since);
                }
                return Poll::Pending;
            }
        }
        Poll::Ready(())
    }
}

/// The place `call` took for a request whose future has not run yet:
/// given back if that future is dropped before its first poll (a client
/// gone at once, a `Buffer` dropping a future it never ran).
struct Unstarted<M: Manager, C: Clock> {
    inner: Arc<Inner<M, C>>,
    armed: bool,
}

impl<M: Manager, C: Clock> Drop for Unstarted<M, C> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.gate.give();
        }
    }
}

impl<M: Manager, F, C: Clock> PoolService<M, F, C> {
    /// Requests run by `call` on objects from `pool`, refusals as
    /// [`seawall_core::Refused`] errors. Leak detection names the place
    /// this is called from as where objects were taken.
    #[track_caller]
    pub fn new(pool: Pool<M, C>, call: F) -> Self {
        Self {
            turn: Turn {
                pool,
                ready: Ready::Unknown,
            },
            call,
            refusal: RefuseWithError,
            made_at: Location::caller(),
        }
    }
}

impl<M: Manager, F, C: Clock, R> PoolService<M, F, C, R> {
    /// The same service answering refusals through `refusal` (with the
    /// `http` feature, `seawall_core::http::RefuseWithResponse` answers
    /// `503`).
    pub fn with_refusal<R2>(self, refusal: R2) -> PoolService<M, F, C, R2> {
        PoolService {
            turn: self.turn,
            call: self.call,
            refusal,
            made_at: self.made_at,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool<M, C> {
        &self.turn.pool
    }
}

impl<M: Manager, F: Clone, C: Clock, R: Clone> Clone for PoolService<M, F, C, R> {
    /// A clone shares the pool; its turn is its own.
    fn clone(&self) -> Self {
        Self {
            turn: Turn {
                pool: self.turn.pool.clone(),
                ready: Ready::Unknown,
            },
            call: self.call.clone(),
            refusal: self.refusal.clone(),
            made_at: self.made_at,
        }
    }
}

impl<M: Manager, F, C: Clock, R> fmt::Debug for PoolService<M, F, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolService")
            .field("pool", &self.turn.pool)
            .finish_non_exhaustive()
    }
}

impl<M, F, C, R, Req, Fut, T, E> Service<Req> for PoolService<M, F, C, R>
where
    M: Manager,
    C: Clock,
    F: Fn(OwnedObject<M, C>, Req) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    E: Into<R::Error>,
    R: Refusal<T, E> + RefusalFormat<Req> + Send + 'static,
    R::Error: Send + 'static,
    Req: Send + 'static,
    T: Send + 'static,
{
    type Response = T;
    type Error = R::Error;
    type Future = ResponseFuture<Fut, T, R::Error>;

    /// Takes a place in the pool, waiting up to `acquire_timeout`; ready at
    /// once when the pool refuses (closed), and after the timeout.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.turn.poll(cx).map(Ok)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let pool = &self.turn.pool;
        let inner = &pool.inner;
        let decided = match std::mem::take(&mut self.turn.ready) {
            Ready::Place(since) => Ok(since),
            Ready::Refused(why) => Err(why),
            // Called without `poll_ready`: decided now, without waiting.
            Ready::Waiting(waiter, since) => {
                inner.gate.abandon(&waiter);
                Err(Refused::Timeout(since))
            }
            Ready::Unknown if inner.gate.try_take() => Ok(Instant::now()),
            Ready::Unknown => Err(Refused::Timeout(Instant::now())),
        };
        // The format is read only where a refusal may follow: the fast
        // path below never refuses.
        let since = match decided {
            Ok(since) => since,
            Err(why) => {
                let format = self.refusal.format(&request);
                return ResponseFuture::refused(self.refusal.refuse(format, why.error(pool)));
            }
        };
        // Guarded from here: `try_idle` drops the objects it discards,
        // which is user code that may panic.
        let place = Place { inner };
        if let Some((slot, entry)) = inner.try_idle() {
            place.keep();
            inner.waited_since(since);
            inner.lend(slot, self.made_at);
            let object = OwnedObject::new(Arc::clone(inner), slot, entry);
            return ResponseFuture::called((self.call)(object, request));
        }
        place.keep();
        let mut unstarted = Unstarted {
            inner: Arc::clone(inner),
            armed: true,
        };
        // User code: the place is the guard's already if it panics.
        let format = self.refusal.format(&request);
        let (call, refusal, made_at) = (self.call.clone(), self.refusal.clone(), self.made_at);
        ResponseFuture::boxed(Box::pin(async move {
            // From here on the place is the `Place`'s to give back.
            unstarted.armed = false;
            let inner = &unstarted.inner;
            let deadline = crate::pool::after(since, inner.config.acquire_timeout);
            let found = inner.fill_place(Place { inner }, Some(deadline)).await;
            match found {
                Ok((slot, entry)) => {
                    inner.waited_since(since);
                    inner.lend(slot, made_at);
                    let object = OwnedObject::new(Arc::clone(inner), slot, entry);
                    call(object, request).await.map_err(Into::into)
                }
                Err(error) => refusal.refuse(format, error),
            }
        }))
    }
}
