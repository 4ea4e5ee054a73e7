//! Random sequences of checkouts, returns, broken returns, takes, waits and
//! resizes against a pool of fakes, checking after every step that:
//!
//! - the objects that exist never exceed `max_size` (once a shrink has been
//!   paid for);
//! - no object is lost: every one made is in the pool, out with a caller,
//!   taken, or closed;
//! - callers are served in the order they asked, none skipped.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Conn, Fake, Peer};
use parking_lot::Mutex;
use proptest::prelude::*;
use seawall_core::TokioClock;
use seawall_pool::{CheckoutTest, OwnedObject, Pool, PoolConfig};

#[derive(Debug, Clone)]
enum Op {
    /// A caller asks (and may queue).
    Get,
    /// The n-th object out comes back.
    Return(usize),
    /// The n-th object out comes back broken.
    ReturnBroken(usize),
    /// The n-th object out is taken for good.
    Take(usize),
    /// Time passes (upkeep may run).
    Wait(u64),
    /// The pool is resized.
    Resize(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Get),
        3 => (0..8usize).prop_map(Op::Return),
        1 => (0..8usize).prop_map(Op::ReturnBroken),
        1 => (0..8usize).prop_map(Op::Take),
        1 => (1..120_000u64).prop_map(Op::Wait),
        1 => (1..6u32).prop_map(Op::Resize),
    ]
}

type Out = OwnedObject<Fake, TokioClock>;

struct World {
    pool: Pool<Fake, TokioClock>,
    peer: Arc<Peer>,
    /// Objects out, in the order they were handed over.
    out: Arc<Mutex<Vec<Out>>>,
    /// The ask numbers of served callers, in the order they were served.
    served: Arc<Mutex<Vec<u32>>>,
    asked: u32,
    taken: Vec<Conn>,
}

impl World {
    async fn step(&mut self, op: Op) {
        match op {
            Op::Get => {
                let pool = self.pool.clone();
                let (out, served, n) =
                    (Arc::clone(&self.out), Arc::clone(&self.served), self.asked);
                self.asked += 1;
                tokio::spawn(async move {
                    let object = pool.get_owned().await.expect("acquire_timeout is an hour");
                    served.lock().push(n);
                    out.lock().push(object);
                });
            }
            Op::Return(n) => drop(self.remove(n)),
            Op::ReturnBroken(n) => {
                if let Some(mut object) = self.remove(n) {
                    object.broken = true;
                }
            }
            Op::Take(n) => self.taken.extend(self.remove(n).map(OwnedObject::take)),
            Op::Wait(millis) => tokio::time::sleep(Duration::from_millis(millis)).await,
            Op::Resize(size) => self.pool.resize(size),
        }
        for _ in 0..4 {
            tokio::time::sleep(Duration::ZERO).await;
            tokio::task::yield_now().await;
        }
    }

    fn remove(&self, n: usize) -> Option<Out> {
        let mut out = self.out.lock();
        (!out.is_empty()).then(|| {
            let at = n % out.len();
            out.remove(at)
        })
    }

    fn check(&self, paid_for: bool) {
        let status = self.pool.status();
        if paid_for {
            assert!(status.size <= status.max_size, "{status:?}");
        }
        let made = Peer::count(&self.peer.creates);
        let closed = Peer::count(&self.peer.closed);
        let taken = u32::try_from(self.taken.len()).expect("few");
        assert_eq!(
            made - closed - taken,
            status.size,
            "every object accounted for: {status:?}"
        );
        let served = self.served.lock();
        assert!(
            served.windows(2).all(|w| w[0] < w[1]),
            "served out of order: {served:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_pool_keeps_its_invariants(ops in prop::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let config = PoolConfig::builder()
                .max_size(3)
                .min_idle(1)
                .acquire_timeout(Duration::from_secs(3_600))
                .idle_timeout(Duration::from_secs(60))
                .max_lifetime(Duration::from_secs(300))
                .test_on_checkout(CheckoutTest::Never)
                .build()
                .expect("valid");
            let (pool, peer) = common::pool(config).await;
            let mut world = World {
                pool,
                peer,
                out: Arc::default(),
                served: Arc::default(),
                asked: 0,
                taken: Vec::new(),
            };
            let mut max_seen = world.pool.status().max_size;
            for op in ops {
                if let Op::Resize(size) = op {
                    max_seen = max_seen.max(size);
                }
                world.step(op).await;
                // A shrink is paid for as objects come back; until then the
                // pool may hold up to the largest size it had.
                let status = world.pool.status();
                assert!(status.size <= max_seen, "{status:?}");
                world.check(status.max_size == max_seen);
            }
            // Everyone asking is served once everything comes back.
            loop {
                let out = std::mem::take(&mut *world.out.lock());
                if out.is_empty() && world.served.lock().len() == world.asked as usize {
                    break;
                }
                drop(out);
                world.step(Op::Wait(1)).await;
            }
            world.check(true);
        });
    }
}
