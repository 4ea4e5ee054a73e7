//! What the pool does by itself: fill `min_idle`, retire idle and old
//! objects, keep idle ones alive.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Peer, pool, settle};
use seawall_pool::{CheckoutTest, PoolConfig};

fn config() -> seawall_pool::PoolConfigBuilder {
    PoolConfig::builder()
        .max_size(4)
        .min_idle(2)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_on_checkout(CheckoutTest::Never)
}

/// Lets the upkeep task run for `times` spans of `every` (paused time
/// jumps from timer to timer while every task waits).
async fn run_for(every: Duration, times: u32) {
    tokio::time::sleep(every * times).await;
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_filled_at_start_and_after_discards() {
    let (pool, _) = pool(config().build().unwrap()).await;
    settle().await;
    assert_eq!(pool.status().idle, 2, "filled at start");
    let mut conn = pool.get().await.unwrap();
    conn.broken = true;
    drop(conn);
    settle().await;
    assert_eq!(pool.status().idle, 2, "refilled after a discard");
    let _out = [
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
    ];
    assert_eq!(pool.status().idle, 0);
    tokio::time::sleep(Duration::from_secs(31)).await;
    let status = pool.status();
    assert_eq!(
        (status.size, status.idle),
        (4, 1),
        "idle refilled up to max_size, no further"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_objects_above_min_idle_retire_after_idle_timeout() {
    let idle = Duration::from_secs(60);
    let (pool, peer) = pool(config().idle_timeout(idle).build().unwrap()).await;
    settle().await;
    let all = [
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
    ];
    drop(all);
    assert_eq!(pool.status().idle, 4);
    run_for(Duration::from_secs(10), 5).await;
    assert_eq!(pool.status().idle, 4, "not idle long enough yet");
    run_for(Duration::from_secs(10), 4).await;
    assert_eq!(pool.status().idle, 2, "down to min_idle, never below");
    assert_eq!(Peer::count(&peer.closed), 2);
    run_for(Duration::from_secs(60), 3).await;
    assert_eq!(pool.status().idle, 2);
}

#[tokio::test(start_paused = true)]
async fn the_oldest_idle_objects_are_the_ones_retired() {
    let idle = Duration::from_secs(60);
    let (pool, _) = pool(config().min_idle(1).idle_timeout(idle).build().unwrap()).await;
    let [a, b] = [pool.get().await.unwrap(), pool.get().await.unwrap()];
    let fresh = b.id;
    drop(a);
    tokio::time::advance(Duration::from_secs(40)).await;
    drop(b);
    run_for(Duration::from_secs(5), 7).await; // a idle 75 s, b 35 s
    assert_eq!(pool.status().idle, 1);
    assert_eq!(pool.get().await.unwrap().id, fresh);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_is_enforced_at_checkout_return_and_in_upkeep() {
    let life = Duration::from_secs(100);
    let (pool, peer) = pool(config().min_idle(0).max_lifetime(life).build().unwrap()).await;
    // At checkout: past its lifetime, the idle object is replaced.
    let first = pool.get().await.unwrap().id;
    tokio::time::advance(life).await;
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.id, first);
    // At return: past its lifetime while out, it is discarded.
    tokio::time::advance(life).await;
    drop(conn);
    assert_eq!(pool.status().size, 0);
    // In upkeep: an idle object past its lifetime goes without a caller.
    drop(pool.get().await.unwrap());
    run_for(Duration::from_secs(25), 5).await;
    assert_eq!(pool.status().size, 0);
    assert_eq!(Peer::count(&peer.closed), Peer::count(&peer.creates));
}

#[tokio::test(start_paused = true)]
async fn lifetimes_are_spread_so_objects_made_together_do_not_retire_together() {
    let life = Duration::from_secs(1_000);
    let (pool, peer) = pool(
        config()
            .max_size(64)
            .min_idle(0)
            .max_lifetime(life)
            .build()
            .unwrap(),
    )
    .await;
    drop(take_all(&pool, 64).await);
    // Jitter takes up to 2.5% off each lifetime: at 98.75% some, not all,
    // have retired; at 100% all have.
    tokio::time::advance(Duration::from_millis(987_500)).await;
    let taken: Vec<_> = take_all(&pool, 64).await;
    let retired = Peer::count(&peer.closed);
    assert!(
        (1..64).contains(&retired),
        "{retired} of 64 retired at 98.75%"
    );
    drop(taken);
    tokio::time::advance(Duration::from_millis(12_500)).await;
    let _again = take_all(&pool, 64).await;
    assert_eq!(
        Peer::count(&peer.closed),
        64,
        "all of the first 64 retired by 100%"
    );
}

async fn take_all(
    pool: &seawall_pool::Pool<common::Fake, seawall_core::TokioClock>,
    n: usize,
) -> Vec<seawall_pool::Object<'_, common::Fake, seawall_core::TokioClock>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(pool.get().await.expect("room for all"));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn idle_objects_are_checked_every_keepalive_interval_and_dead_ones_replaced() {
    let every = Duration::from_secs(60);
    let (pool, peer) = pool(config().keepalive_interval(every).build().unwrap()).await;
    settle().await;
    assert_eq!(Peer::count(&peer.checks), 0);
    // Upkeep runs every 30 s; the test looks in between its runs.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(Peer::count(&peer.checks), 2, "both idle objects checked");
    peer.failing_checks.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        Peer::count(&peer.closed),
        2,
        "the firewall cut them: found out"
    );
    assert_eq!(pool.status().idle, 2, "and replaced");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_pool_closes_its_idle_objects() {
    let (pool, peer) = pool(config().build().unwrap()).await;
    settle().await;
    assert_eq!(Peer::count(&peer.creates), 2);
    drop(pool);
    settle().await;
    assert_eq!(Peer::count(&peer.closed), 2);
}

#[tokio::test(start_paused = true)]
async fn a_keepalive_check_that_hangs_holds_one_object_not_all() {
    let every = Duration::from_secs(60);
    let (pool, peer) = pool(
        config()
            .min_idle(4)
            .keepalive_interval(every)
            .build()
            .unwrap(),
    )
    .await;
    settle().await;
    assert_eq!(pool.status().idle, 4);
    peer.check_millis.store(10_000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(61)).await; // a check is under way
    assert_eq!(Peer::count(&peer.checks), 1);
    let start = tokio::time::Instant::now();
    let _three = [
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
    ];
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the other three were there at once"
    );
}

#[tokio::test(start_paused = true)]
async fn closing_during_a_keepalive_check_still_drops_every_object() {
    let every = Duration::from_secs(60);
    let (pool, peer) = pool(
        config()
            .min_idle(2)
            .keepalive_interval(every)
            .build()
            .unwrap(),
    )
    .await;
    settle().await;
    peer.check_millis.store(10_000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(61)).await; // a check is under way
    assert!(
        pool.close(Duration::from_secs(20)).await,
        "the checked object was dropped too"
    );
    assert_eq!(Peer::count(&peer.closed), Peer::count(&peer.creates));
}
