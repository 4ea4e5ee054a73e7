//! A manager whose objects and peer the tests control.

#![allow(dead_code, unreachable_pub)]

pub mod restart;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use seawall_core::TokioClock;
use seawall_pool::{Manager, Pool, PoolConfig};

/// The peer the fake objects talk to.
#[derive(Debug, Default)]
pub struct Peer {
    /// New objects cannot be made while set.
    pub down: AtomicBool,
    /// Checks fail while set.
    pub failing_checks: AtomicBool,
    /// Creations started.
    pub creates: AtomicU32,
    /// Checks started.
    pub checks: AtomicU32,
    /// Objects dropped.
    pub closed: AtomicU32,
    /// How long a creation takes, in milliseconds (on tokio's clock, which
    /// the tests that set it pause).
    pub create_millis: AtomicU32,
    /// How long a check takes, in milliseconds.
    pub check_millis: AtomicU32,
    /// Every method of the manager panics while set (a bug in it).
    pub panicking: AtomicBool,
    /// Connections panic when dropped while set.
    pub panicking_drop: AtomicBool,
}

impl Peer {
    pub fn count(counter: &AtomicU32) -> u32 {
        counter.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
pub struct Conn {
    pub id: u32,
    pub broken: bool,
    peer: Arc<Peer>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.peer.closed.fetch_add(1, Ordering::SeqCst);
        // A connection's own `Drop` is user code too.
        assert!(
            !self.peer.panicking_drop.load(Ordering::SeqCst) || std::thread::panicking(),
            "a connection panicked as it was dropped"
        );
    }
}

#[derive(Debug, Clone, Default)]
pub struct Fake(pub Arc<Peer>);

impl Manager for Fake {
    type Object = Conn;
    type Error = std::io::Error;

    // Not `async fn`: a panic in `create` comes before its future exists,
    // one in `check` (below) while its future is polled; the pool must
    // catch both.
    fn create(&self) -> impl Future<Output = Result<Conn, std::io::Error>> + Send {
        self.panic_if_asked("create");
        let fake = self.clone();
        async move { fake.make().await }
    }

    async fn check(&self, _: &mut Conn) -> Result<(), std::io::Error> {
        self.0.checks.fetch_add(1, Ordering::SeqCst);
        self.panic_if_asked("check");
        let millis = self.0.check_millis.load(Ordering::SeqCst);
        if millis > 0 {
            tokio::time::sleep(Duration::from_millis(millis.into())).await;
        }
        if self.0.failing_checks.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("check failed"));
        }
        Ok(())
    }

    fn is_broken(&self, conn: &mut Conn) -> bool {
        self.panic_if_asked("is_broken");
        conn.broken
    }

    fn recycle(&self, _: &mut Conn) -> Result<(), std::io::Error> {
        self.panic_if_asked("recycle");
        Ok(())
    }
}

impl Fake {
    async fn make(&self) -> Result<Conn, std::io::Error> {
        let id = self.0.creates.fetch_add(1, Ordering::SeqCst);
        let millis = self.0.create_millis.load(Ordering::SeqCst);
        if millis > 0 {
            tokio::time::sleep(Duration::from_millis(millis.into())).await;
        }
        if self.0.down.load(Ordering::SeqCst) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "peer down",
            ));
        }
        Ok(Conn {
            id,
            broken: false,
            peer: Arc::clone(&self.0),
        })
    }

    fn panic_if_asked(&self, method: &str) {
        assert!(
            !self.0.panicking.load(Ordering::SeqCst),
            "the manager's {method} panicked"
        );
    }
}

/// A pool of fakes on tokio's (paused) time.
pub async fn pool(config: PoolConfig) -> (Pool<Fake, TokioClock>, Arc<Peer>) {
    let fake = Fake::default();
    let peer = Arc::clone(&fake.0);
    let pool = Pool::with_clock(fake, config, TokioClock::new())
        .await
        .expect("the fake peer is up");
    (pool, peer)
}

/// Lets spawned tasks and the upkeep task run until they wait.
pub async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}
