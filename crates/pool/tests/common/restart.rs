//! The restart scenario every real manager goes through: tasks keep asking
//! while the server is stopped and started again.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use seawall_pool::{CheckoutTest, Manager, Pool, PoolConfig, PoolError};
use tokio::time::Instant;

/// Reads `var`, or fails the test saying how to provide it.
pub fn from_env(var: &str, what: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{var} is not set: this test needs {what}. Run scripts/test, which \
             provides it, or export {var} yourself."
        ),
    }
}

/// A manager that counts the creations it is asked for.
pub struct Counted<M> {
    pub inner: M,
    pub creates: Arc<AtomicU32>,
}

impl<M: Manager> Manager for Counted<M> {
    type Object = M::Object;
    type Error = M::Error;

    async fn create(&self) -> Result<M::Object, M::Error> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        self.inner.create().await
    }

    async fn check(&self, object: &mut M::Object) -> Result<(), M::Error> {
        self.inner.check(object).await
    }

    fn is_broken(&self, object: &mut M::Object) -> bool {
        self.inner.is_broken(object)
    }

    fn recycle(&self, object: &mut M::Object) -> Result<(), M::Error> {
        self.inner.recycle(object)
    }
}

/// What the workers saw in one phase.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub ok: u32,
    pub failed: u32,
    /// The longest a failed `get` took.
    pub slowest_failure: Duration,
    /// The first few errors, as text.
    pub errors: Vec<String>,
    /// The first few errors of `get` itself, as text.
    pub pool_errors: Vec<String>,
    /// Objects handed out that then failed their round trip.
    pub broken: u32,
    /// The first few of those failures, as text.
    pub broken_errors: Vec<String>,
}

const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);

/// Real servers answer in real time, so this runs on tokio's real clock:
/// paused time would jump to the next timer while a connection is still
/// being made. Its bounds on time are wide (a failure within
/// `acquire_timeout` plus a second, at most 30 tries in 1.5 s where about
/// 8 are made) and none is a speed claim.
///
/// Runs the scenario: 8 tasks use the pool (through `work`, one round
/// trip each) while `stop` and `start` take the server away for about
/// 1.5 s; checks that callers fail within `acquire_timeout` with a clear
/// error, that creation backs off, and that the pool serves again by
/// itself with no broken object handed out.
pub async fn survives_a_restart<M, W, Fut, Stop, Start>(
    manager: M,
    work: W,
    stop: Stop,
    start: Start,
) where
    M: Manager,
    W: Fn(seawall_pool::OwnedObject<Counted<M>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
    Stop: Future<Output = ()>,
    Start: Future<Output = ()>,
{
    let creates = Arc::new(AtomicU32::new(0));
    let config = PoolConfig::builder()
        .max_size(4)
        .min_idle(2)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .create_timeout(Duration::from_millis(500))
        .test_on_checkout(CheckoutTest::IdleLongerThan(Duration::from_millis(500)))
        .build()
        .expect("valid");
    let counted = Counted {
        inner: manager,
        creates: Arc::clone(&creates),
    };
    let pool = Pool::new(counted, config).await.expect("the server is up");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let running = Arc::new(AtomicBool::new(true));
    let work = Arc::new(work);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (pool, seen, running, work) = (
                pool.clone(),
                Arc::clone(&seen),
                Arc::clone(&running),
                Arc::clone(&work),
            );
            tokio::spawn(async move {
                while running.load(Ordering::SeqCst) {
                    let asked = Instant::now();
                    let outcome = match pool.get_owned().await {
                        Ok(object) => {
                            let done = tokio::time::timeout(Duration::from_secs(2), work(object))
                                .await
                                .unwrap_or_else(|_| Err("the work hung".to_owned()));
                            if let Err(error) = &done {
                                let mut seen = seen.lock();
                                seen.broken += 1;
                                if seen.broken_errors.len() < 5 {
                                    seen.broken_errors.push(error.clone());
                                }
                            }
                            done
                        }
                        Err(error) => {
                            let text = describe(&error);
                            {
                                let mut seen = seen.lock();
                                if seen.pool_errors.len() < 5 {
                                    seen.pool_errors.push(text.clone());
                                }
                            }
                            Err(text)
                        }
                    };
                    let took = asked.elapsed();
                    {
                        let mut seen = seen.lock();
                        match outcome {
                            Ok(()) => seen.ok += 1,
                            Err(error) => {
                                seen.failed += 1;
                                seen.slowest_failure = seen.slowest_failure.max(took);
                                if seen.errors.len() < 5 {
                                    seen.errors.push(error);
                                }
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    let phase = |length: Duration| {
        let seen = Arc::clone(&seen);
        async move {
            *seen.lock() = Seen::default();
            tokio::time::sleep(length).await;
            std::mem::take(&mut *seen.lock())
        }
    };

    let healthy = phase(Duration::from_millis(300)).await;
    assert!(
        healthy.ok > 0 && healthy.failed == 0,
        "before the restart: {healthy:?}"
    );

    stop.await;
    let before = creates.load(Ordering::SeqCst);
    let outage = phase(Duration::from_millis(1_500)).await;
    let tries = creates.load(Ordering::SeqCst) - before;
    assert!(outage.failed > 0, "the outage was felt: {outage:?}");
    assert!(
        outage.slowest_failure <= ACQUIRE_TIMEOUT + Duration::from_secs(1),
        "callers heard within acquire_timeout: {outage:?}"
    );
    // Creating backs off while it fails: a 10 ms pause doubling, one try
    // at a time, makes about 8 tries in 1.5 s; a pool that spun would make
    // hundreds.
    assert!(tries <= 30, "{tries} creations tried during a 1.5 s outage");
    // The error says what is wrong: no object in time, because making one
    // failed, and why.
    assert!(
        outage.pool_errors.iter().any(|e| {
            e.starts_with("no pooled object within 50")
                && e.contains("ms: creating an object failed: ")
        }),
        "{outage:?}"
    );

    start.await;
    // The server answers again. Callers may still time out while the pool
    // waits out its last pause (up to 2 s), but no object it hands out may
    // fail: the dead ones were found out and discarded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = phase(Duration::from_millis(500)).await;
        assert_eq!(
            after.broken, 0,
            "a broken object was handed out after the restart: {after:?}"
        );
        if after.failed == 0 && after.ok > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pool does not serve again by itself: {after:?}"
        );
    }
    let settled = phase(Duration::from_millis(500)).await;
    assert!(
        settled.failed == 0 && settled.ok > 0,
        "a broken object was handed out after the restart: {settled:?}"
    );
    running.store(false, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("no panic");
    }
}

fn describe<E: std::error::Error + 'static>(error: &PoolError<E>) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
