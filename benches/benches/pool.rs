//! seawall-pool beside deadpool 0.13 and bb8 0.9, in one run, each case
//! with the three pools interleaved:
//!
//! - `round_trip`: get and return one object of a pool of 16, by 1, 16,
//!   256 and 4,096 tasks on a 2-worker runtime; `at once` drops each object
//!   straight away, `across a yield` holds it over a `yield_now`, so
//!   waiters queue. The objects are numbers: the figure is the pools' own
//!   cost. Like for like: no pool checks an object on checkout (seawall
//!   `CheckoutTest::Never`, bb8 `test_on_check_out(false)`; deadpool always
//!   calls its manager's `recycle`, here an `Ok` at once); beside them
//!   `floor`, tokio's fair semaphore of 16 permits (no objects): the least
//!   a pool serving waiters in order does on this runtime;
//! - `select_one`: `SELECT 1` through each pool of 16 against the real
//!   PostgreSQL of `SEAWALL_TEST_POSTGRES_URL`, 64 tasks: seawall's
//!   default checkout test (a connection used in the last 500 ms is not
//!   checked), deadpool-postgres's default (`RecyclingMethod::Fast`:
//!   `is_closed` only), bb8-postgres with `test_on_check_out(false)`.
//!
//! `cargo bench -p seawall-benches --bench pool`; results in
//! docs/benchmarks.md.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use seawall::pool::{CheckoutTest, Manager, Pool, PoolConfig};
use tokio::runtime::Runtime;
use tokio::sync::{AcquireError, Semaphore, SemaphorePermit};

const SIZE: u32 = 16;

/// Numbers, made one after another: the same manager for every pool.
#[derive(Default)]
struct Numbers(AtomicU64);

impl Numbers {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

impl Manager for Numbers {
    type Object = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    async fn check(&self, _: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }
}

impl deadpool::managed::Manager for Numbers {
    type Type = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    async fn recycle(
        &self,
        _: &mut u64,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

impl bb8::ManageConnection for Numbers {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    async fn is_valid(&self, _: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

/// Not a pool: tokio's fair semaphore of 16 permits, a permit in place of
/// an object. The least any bounded pool with a FIFO queue does, so the
/// floor of the round trip on this runtime.
#[derive(Clone)]
struct Floor(Arc<Semaphore>);

impl Floor {
    async fn get(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        self.0.acquire().await
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `iters` operations split over `tasks` tasks; the wall time.
fn spread<F, Fut>(runtime: &Runtime, tasks: u64, iters: u64, task: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let each = iters.div_ceil(tasks);
    runtime.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks).map(|_| tokio::spawn(task(each))).collect();
        for handle in handles {
            handle.await.expect("no panic");
        }
        start
            .elapsed()
            .mul_f64(iters as f64 / (each * tasks) as f64)
    })
}

/// Benches `pool` under `id`: `tasks` tasks, each looping `get` and then
/// `$body` with the object bound to `$object`.
macro_rules! bench_pool {
    ($group:expr, $runtime:expr, $id:expr, $pool:expr, $tasks:expr, |$object:ident| $body:block) => {
        $group.bench_function($id, |b| {
            b.iter_custom(|iters| {
                spread(&$runtime, $tasks, iters, |n| {
                    let pool = $pool.clone();
                    async move {
                        for _ in 0..n {
                            let $object = pool.get().await.expect("object");
                            $body
                        }
                    }
                })
            });
        });
    };
}

fn round_trip(c: &mut Criterion) {
    let runtime = runtime();
    let config = PoolConfig::builder()
        .max_size(SIZE)
        .test_on_checkout(CheckoutTest::Never)
        .build()
        .expect("valid");
    let ours = runtime
        .block_on(Pool::new(Numbers::default(), config))
        .expect("started");
    let deadpool = deadpool::managed::Pool::<Numbers>::builder(Numbers::default())
        .max_size(SIZE as usize)
        .build()
        .expect("built");
    let bb8 = runtime
        .block_on(
            bb8::Pool::builder()
                .max_size(SIZE)
                .min_idle(Some(SIZE))
                .test_on_check_out(false)
                .build(Numbers::default()),
        )
        .expect("built");
    let floor = Floor(Arc::new(Semaphore::new(SIZE as usize)));
    // Every pool makes its 16 objects before measuring.
    runtime.block_on(async {
        let mut held = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..SIZE {
            held.0.push(ours.get().await.expect("object"));
            held.1.push(deadpool.get().await.expect("object"));
            held.2.push(bb8.get().await.expect("object"));
        }
    });

    let mut group = c.benchmark_group("pool_round_trip");
    for hold in [false, true] {
        let mode = if hold { "across a yield" } else { "at once" };
        for tasks in [1_u64, 16, 256, 4_096] {
            let id = |peer: &str| BenchmarkId::new(format!("{peer}, {mode}"), tasks);
            bench_pool!(group, runtime, id("seawall"), ours, tasks, |object| {
                black_box(*object);
                if hold {
                    tokio::task::yield_now().await;
                }
            });
            bench_pool!(group, runtime, id("deadpool"), deadpool, tasks, |object| {
                black_box(*object);
                if hold {
                    tokio::task::yield_now().await;
                }
            });
            bench_pool!(group, runtime, id("bb8"), bb8, tasks, |object| {
                black_box(*object);
                if hold {
                    tokio::task::yield_now().await;
                }
            });
            bench_pool!(group, runtime, id("floor"), floor, tasks, |permit| {
                black_box(&permit);
                if hold {
                    tokio::task::yield_now().await;
                }
            });
        }
    }
    group.finish();
}

fn postgres_config() -> tokio_postgres::Config {
    let var = "SEAWALL_TEST_POSTGRES_URL";
    let url = std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: the select_one bench needs a running PostgreSQL. Run \
             scripts/test (benches once) or export {var} to a server's URL."
        )
    });
    url.parse().expect("a PostgreSQL URL")
}

fn select_one(c: &mut Criterion) {
    let runtime = runtime();
    let config = postgres_config();
    let pool_config = PoolConfig::builder().max_size(SIZE).build().expect("valid");
    let ours = runtime
        .block_on(Pool::new(
            seawall::pool::postgres::PostgresManager::new(config.clone()),
            pool_config,
        ))
        .expect("PostgreSQL is up");
    let deadpool = deadpool_postgres::Pool::builder(deadpool_postgres::Manager::from_config(
        config.clone(),
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    ))
    .max_size(SIZE as usize)
    .build()
    .expect("built");
    let bb8 = runtime
        .block_on(
            bb8::Pool::builder()
                .max_size(SIZE)
                .test_on_check_out(false)
                .build(bb8_postgres::PostgresConnectionManager::new(
                    config,
                    tokio_postgres::NoTls,
                )),
        )
        .expect("PostgreSQL is up");
    const TASKS: u64 = 64;
    let mut group = c.benchmark_group("pool_select_one");
    let id = |peer: &str| BenchmarkId::new(peer, TASKS);
    bench_pool!(group, runtime, id("seawall"), ours, TASKS, |client| {
        let row = client.query_one("SELECT 1", &[]).await.expect("row");
        black_box(row.get::<_, i32>(0));
    });
    bench_pool!(group, runtime, id("deadpool"), deadpool, TASKS, |client| {
        let row = client.query_one("SELECT 1", &[]).await.expect("row");
        black_box(row.get::<_, i32>(0));
    });
    bench_pool!(group, runtime, id("bb8"), bb8, TASKS, |client| {
        let row = client.query_one("SELECT 1", &[]).await.expect("row");
        black_box(row.get::<_, i32>(0));
    });
    group.finish();
}

criterion_group!(benches, round_trip, select_one);
criterion_main!(benches);
