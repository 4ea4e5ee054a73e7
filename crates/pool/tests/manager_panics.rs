//! A manager that panics (a bug in it) costs the pool the object it was
//! handling: never a place, a slot, or the upkeep task.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Peer, pool, settle};
use seawall_pool::{CheckoutTest, CreateError, PoolConfig, PoolError};

fn config() -> seawall_pool::PoolConfigBuilder {
    PoolConfig::builder()
        .max_size(2)
        .min_idle(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(1))
        .test_on_checkout(CheckoutTest::Never)
}

#[tokio::test(start_paused = true)]
async fn a_panic_while_an_object_comes_back_discards_it_and_frees_its_place() {
    let (pool, peer) = pool(config().build().unwrap()).await;
    let (first, second) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    peer.panicking.store(true, Ordering::SeqCst);
    drop(first); // `is_broken` panics
    drop(second);
    peer.panicking.store(false, Ordering::SeqCst);
    assert_eq!(Peer::count(&peer.closed), 2, "both discarded");
    let status = pool.status();
    assert_eq!((status.in_use, status.waiters), (0, 0), "{status:?}");
    let both = (pool.get().await, pool.get().await);
    assert!(both.0.is_ok() && both.1.is_ok(), "both places came back");
    drop(both);
    assert!(pool.close(Duration::from_secs(1)).await, "nothing stranded");
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_create_is_a_failed_create_and_upkeep_goes_on() {
    let (pool, peer) = pool(config().build().unwrap()).await;
    settle().await;
    let held = pool.get().await.unwrap();
    peer.panicking.store(true, Ordering::SeqCst);
    let error = pool
        .get()
        .await
        .expect_err("the second object cannot be made");
    assert!(error.is_timeout(), "{error:?}");
    drop(held); // discarded: `is_broken` panics
    tokio::time::sleep(Duration::from_secs(5)).await; // upkeep tries to fill
    peer.panicking.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(pool.status().idle, 1, "upkeep filled min_idle again");
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_keepalive_check_discards_the_object_and_upkeep_goes_on() {
    let every = Duration::from_secs(60);
    let (pool, peer) = pool(config().keepalive_interval(every).build().unwrap()).await;
    settle().await;
    assert_eq!(pool.status().idle, 1);
    peer.panicking.store(true, Ordering::SeqCst);
    tokio::time::sleep(every + Duration::from_secs(1)).await;
    assert!(Peer::count(&peer.checks) >= 1, "checked, and panicked");
    peer.panicking.store(false, Ordering::SeqCst);
    tokio::time::sleep(every * 2).await;
    assert_eq!(pool.status().idle, 1, "replaced by upkeep");
    assert!(Peer::count(&peer.checks) >= 2, "upkeep still checks");
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_create_is_reported_as_one() {
    let (pool, peer) = pool(config().min_idle(0).build().unwrap()).await;
    drop(pool.get().await.unwrap().take()); // empty: the next get makes one
    peer.panicking.store(true, Ordering::SeqCst);
    let error = pool.get().await.expect_err("cannot be made");
    let PoolError::Timeout {
        last_create_error: Some(cause),
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert!(
        matches!(&**cause, CreateError::Panicked(message) if message == "the manager's create panicked"),
        "{cause:?}"
    );
    assert_eq!(
        cause.to_string(),
        "creating an object panicked: the manager's create panicked"
    );
    tokio::time::sleep(Duration::from_secs(5)).await; // the maker gives up
    assert_eq!(pool.status().in_use, 0, "nothing stranded");
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_discarded_objects_drop_frees_its_place() {
    let (pool, peer) = pool(config().max_size(1).build().unwrap()).await;
    let mut conn = pool.get().await.unwrap();
    conn.broken = true;
    peer.panicking_drop.store(true, Ordering::SeqCst);
    drop(conn); // discarded: broken, and its `Drop` panics
    peer.panicking_drop.store(false, Ordering::SeqCst);
    assert_eq!(Peer::count(&peer.closed), 1);
    let got = tokio::time::timeout(Duration::from_millis(10), pool.get()).await;
    assert!(got.is_ok(), "the place came back: {:?}", pool.status());
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_drop_of_an_object_upkeep_retires_leaves_upkeep_running() {
    let config = config()
        .max_size(1)
        .max_lifetime(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    let (pool, peer) = pool(config).await;
    settle().await;
    assert_eq!(pool.status().idle, 1);
    peer.panicking_drop.store(true, Ordering::SeqCst);
    // The idle object outlives its lifetime: upkeep retires it, and its
    // `Drop` panics.
    tokio::time::sleep(Duration::from_secs(61)).await;
    peer.panicking_drop.store(false, Ordering::SeqCst);
    assert!(Peer::count(&peer.closed) >= 1, "retired");
    // Upkeep goes on: it makes min_idle again, and retires by lifetime.
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(pool.status().idle, 1, "{:?}", pool.status());
    let got = tokio::time::timeout(Duration::from_millis(10), pool.get()).await;
    assert!(got.is_ok(), "served: {:?}", pool.status());
}
