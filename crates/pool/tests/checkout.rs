//! Checkout and return: order, cancellation, broken objects, timeouts.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Peer, pool, settle};
use seawall_pool::{CheckoutTest, PoolConfig, PoolError};

fn config(max_size: u32) -> seawall_pool::PoolConfigBuilder {
    PoolConfig::builder()
        .max_size(max_size)
        .min_idle(0)
        .acquire_timeout(Duration::from_secs(1))
        .test_on_checkout(CheckoutTest::Never)
}

#[tokio::test(start_paused = true)]
async fn the_last_returned_is_reused_first() {
    let (pool, _) = pool(config(3).build().unwrap()).await;
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let c = pool.get().await.unwrap();
    let ids = [a.id, b.id, c.id];
    drop(a);
    drop(c);
    drop(b);
    assert_eq!(pool.get().await.unwrap().id, ids[1]);
    let first = pool.get().await.unwrap();
    let second = pool.get().await.unwrap();
    assert_eq!([first.id, second.id], [ids[1], ids[2]]);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_the_order_they_came() {
    let (pool, _) = pool(config(1).build().unwrap()).await;
    let held = pool.get().await.unwrap();
    let served = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..5 {
        let pool = pool.clone();
        let served = std::sync::Arc::clone(&served);
        tasks.push(tokio::spawn(async move {
            let conn = pool.get().await.unwrap();
            served.lock().push(n);
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(conn);
        }));
        settle().await; // each queues before the next comes
    }
    assert_eq!(pool.status().waiters, 5);
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*served.lock(), [0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn a_returned_object_goes_to_the_oldest_waiter_not_a_newcomer() {
    let (pool, _) = pool(config(1).build().unwrap()).await;
    let held = pool.get().await.unwrap();
    let id = held.id;
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get_owned().await }
    });
    settle().await;
    drop(held);
    // A newcomer that comes before the waiter runs finds nothing free.
    let newcomer = tokio::time::timeout(Duration::from_millis(1), pool.get()).await;
    assert!(newcomer.is_err(), "the newcomer waited");
    assert_eq!(waiter.await.unwrap().unwrap().id, id);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_times_out_after_acquire_timeout() {
    let (pool, _) = pool(config(1).build().unwrap()).await;
    let _held = pool.get().await.unwrap();
    let start = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(err.to_string(), "no pooled object within 1s");
    assert_eq!(pool.status().waiters, 0);
}

#[tokio::test(start_paused = true)]
async fn dropped_waits_leak_no_place() {
    let (pool, _) = pool(config(2).build().unwrap()).await;
    let held = [pool.get().await.unwrap(), pool.get().await.unwrap()];
    for _ in 0..100 {
        let wait = tokio::time::timeout(Duration::from_millis(5), pool.get()).await;
        assert!(wait.is_err());
    }
    drop(held);
    let again = [pool.get().await.unwrap(), pool.get().await.unwrap()];
    assert_eq!(pool.status().in_use, 2);
    drop(again);
    assert_eq!(pool.status().idle, 2);
}

#[tokio::test(start_paused = true)]
async fn a_get_dropped_while_an_object_is_made_leaves_it_to_the_pool() {
    let (pool, peer) = pool(config(1).build().unwrap()).await;
    drop(pool.get().await.unwrap().take());
    peer.create_millis.store(100, Ordering::SeqCst);
    let cut = tokio::time::timeout(Duration::from_millis(10), pool.get()).await;
    assert!(cut.is_err());
    assert_eq!(
        pool.status().size,
        1,
        "still being made, in the caller's place"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pool.status().idle, 1, "made, and given to the pool");
    let made = Peer::count(&peer.creates);
    pool.get()
        .await
        .expect("the object made for the caller that left");
    assert_eq!(Peer::count(&peer.creates), made, "not made twice");
}

#[tokio::test(start_paused = true)]
async fn making_an_object_is_not_cut_short_by_a_callers_deadline() {
    // A caller that queued gets its place with 500 ms of its 1 s left, and
    // must make an object, which takes 800 ms. It times out, but the
    // object is still made (with the whole create_timeout) and serves the
    // next caller: under load, cutting attempts to what the oldest waiter
    // has left would keep a pool from ever making one.
    let (pool, peer) = pool(config(1).build().unwrap()).await;
    let holder = pool.get_owned().await.unwrap();
    peer.create_millis.store(800, Ordering::SeqCst);
    let queued = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(holder.take()); // its place goes to the queued caller; no object
    assert!(queued.await.unwrap().unwrap_err().is_timeout());
    tokio::time::sleep(Duration::from_millis(400)).await; // made at 1.3 s
    assert_eq!(pool.status().idle, 1);
    let made = Peer::count(&peer.creates);
    pool.get()
        .await
        .expect("served by the object made meanwhile");
    assert_eq!(Peer::count(&peer.creates), made);
}

#[tokio::test(start_paused = true)]
async fn a_get_dropped_while_checking_discards_the_object() {
    let (pool, peer) = pool(
        config(1)
            .test_on_checkout(CheckoutTest::Always)
            .build()
            .unwrap(),
    )
    .await;
    drop(pool.get().await.unwrap());
    peer.check_millis.store(100, Ordering::SeqCst);
    let cut = tokio::time::timeout(Duration::from_millis(10), pool.get()).await;
    assert!(cut.is_err());
    assert_eq!(
        Peer::count(&peer.closed),
        1,
        "its state is unknown: discarded"
    );
    peer.check_millis.store(0, Ordering::SeqCst);
    pool.get().await.expect("a new one in its place");
}

#[tokio::test(start_paused = true)]
async fn broken_objects_are_replaced_and_never_handed_out() {
    let (pool, peer) = pool(config(2).build().unwrap()).await;
    let mut conn = pool.get().await.unwrap();
    let first = conn.id;
    conn.broken = true;
    drop(conn);
    assert_eq!(Peer::count(&peer.closed), 1, "discarded on return");
    assert_ne!(pool.get().await.unwrap().id, first);
}

#[tokio::test(start_paused = true)]
async fn objects_that_fail_their_check_are_never_handed_out() {
    let (pool, peer) = pool(
        config(2)
            .test_on_checkout(CheckoutTest::Always)
            .build()
            .unwrap(),
    )
    .await;
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let old = [a.id, b.id];
    drop((a, b));
    peer.failing_checks.store(true, Ordering::SeqCst);
    let conn = pool.get().await.unwrap();
    assert!(
        !old.contains(&conn.id),
        "both failed their check and were replaced"
    );
    assert_eq!(Peer::count(&peer.closed), 2);
}

#[tokio::test(start_paused = true)]
async fn a_recent_object_skips_the_check() {
    let idle = CheckoutTest::IdleLongerThan(Duration::from_millis(500));
    let (pool, peer) = pool(config(1).test_on_checkout(idle).build().unwrap()).await;
    drop(pool.get().await.unwrap());
    drop(pool.get().await.unwrap());
    assert_eq!(Peer::count(&peer.checks), 0);
    tokio::time::advance(Duration::from_millis(501)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(Peer::count(&peer.checks), 1);
}

#[tokio::test(start_paused = true)]
async fn an_object_dropped_while_its_holder_panics_is_discarded() {
    let (pool, peer) = pool(config(1).build().unwrap()).await;
    let owned = pool.get_owned().await.unwrap();
    let task = tokio::spawn(async move {
        let _conn = owned;
        panic!("the handler failed mid-query");
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(Peer::count(&peer.closed), 1);
    pool.get().await.expect("the next get does not wait for it");
}

#[tokio::test(start_paused = true)]
async fn take_detaches_an_object_and_frees_its_place() {
    let (pool, peer) = pool(config(1).build().unwrap()).await;
    let conn = pool.get().await.unwrap().take();
    assert_eq!(pool.status().size, 0);
    let other = pool.get().await.unwrap();
    assert_ne!(other.id, conn.id);
    assert_eq!(Peer::count(&peer.closed), 0);
}

#[tokio::test(start_paused = true)]
async fn an_outage_fails_callers_within_acquire_timeout_with_the_cause_and_backs_off() {
    let (pool, peer) = pool(config(4).build().unwrap()).await;
    drop(pool.get().await.unwrap().take());
    peer.down.store(true, Ordering::SeqCst);
    let before = Peer::count(&peer.creates);
    let start = tokio::time::Instant::now();
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(|_| ()) })
        })
        .collect();
    for caller in callers {
        let err = caller.await.unwrap().unwrap_err();
        let PoolError::Timeout {
            last_create_error, ..
        } = &err
        else {
            panic!("{err}");
        };
        assert!(last_create_error.is_some());
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), "creating an object failed");
        assert_eq!(
            std::error::Error::source(source).unwrap().to_string(),
            "peer down"
        );
    }
    assert!(start.elapsed() <= Duration::from_secs(1) + Duration::from_millis(1));
    // One try at a time while failing, with pauses of 10 ms doubling: about
    // eight tries in a second, not one per caller per millisecond.
    let tries = Peer::count(&peer.creates) - before;
    assert!((5..=12).contains(&tries), "{tries} tries");

    peer.down.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(2)).await;
    let conn = pool.get().await.expect("serves again by itself");
    assert!(!conn.broken);
}

/// A create that failed long before a wait began says nothing of why that
/// wait timed out (the pool was simply full): it is not given as the cause.
#[tokio::test(start_paused = true)]
async fn a_timeout_names_no_create_failure_older_than_its_wait() {
    let (pool, peer) = pool(config(2).build().unwrap()).await;
    let first = pool.get().await.unwrap();
    peer.down.store(true, Ordering::SeqCst);
    let outage = pool.get().await.unwrap_err();
    assert!(outage.is_timeout());
    peer.down.store(false, Ordering::SeqCst);
    pool.resize(1); // full with the one object: nothing is made again
    tokio::time::advance(Duration::from_secs(60)).await;
    drop(first);
    let _held = pool.get().await.expect("the idle one");
    let err = pool.get().await.unwrap_err();
    assert!(
        matches!(
            err,
            PoolError::Timeout {
                last_create_error: None,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A checkout check that hangs (a network black hole) costs the caller at
/// most `create_timeout`: the object is discarded and another one is had,
/// well within `acquire_timeout`.
#[tokio::test(start_paused = true)]
async fn a_hanging_check_is_cut_off_and_the_caller_served_anyway() {
    let config = config(2)
        .acquire_timeout(Duration::from_secs(30))
        .create_timeout(Duration::from_secs(1))
        .test_on_checkout(CheckoutTest::Always)
        .build()
        .unwrap();
    let (pool, peer) = pool(config).await;
    drop(pool.get().await.unwrap()); // one idle object
    peer.check_millis.store(60_000, Ordering::SeqCst);
    let start = tokio::time::Instant::now();
    let conn = pool.get().await.expect("served by a new object");
    assert_eq!(conn.id, 1, "the hanging one was discarded");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn fail_fast_refuses_to_start_without_a_first_object() {
    let fake = common::Fake::default();
    fake.0.down.store(true, Ordering::SeqCst);
    let err = seawall_pool::Pool::with_clock(
        fake.clone(),
        config(2).build().unwrap(),
        seawall_core::TokioClock::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "the pool could not make its first object");
    let lazy = config(2).fail_fast(false).build().unwrap();
    let pool = seawall_pool::Pool::with_clock(fake.clone(), lazy, seawall_core::TokioClock::new())
        .await
        .expect("not fail_fast: starts anyway");
    fake.0.down.store(false, Ordering::SeqCst);
    pool.get().await.unwrap();
}

/// A caller waiting for an object being made, or for the pause between
/// failed tries, hears of a close at once; nothing is made after it.
#[tokio::test(start_paused = true)]
async fn closing_stops_objects_being_made_and_fails_their_callers() {
    for outage in [false, true] {
        let (pool, peer) = pool(
            config(1)
                .acquire_timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        )
        .await;
        drop(pool.get().await.unwrap().take()); // empty: the next get makes one
        if outage {
            peer.down.store(true, Ordering::SeqCst); // tries, with pauses
        } else {
            peer.create_millis.store(10_000, Ordering::SeqCst); // a slow one
        }
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.get().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let creates = Peer::count(&peer.creates);
        let start = tokio::time::Instant::now();
        assert!(
            pool.close(Duration::from_secs(1)).await,
            "outage {outage}: all gone"
        );
        let err = waiter.await.unwrap().unwrap_err();
        assert!(err.is_closed(), "outage {outage}: {err}");
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "outage {outage}: at once"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            Peer::count(&peer.creates),
            creates,
            "outage {outage}: none made after"
        );
    }
}

/// A caller waiting for an object being made (slowly, or during an
/// outage) takes an object that comes back meanwhile: it is not left to
/// time out while an idle object sits in the pool for a newcomer.
#[tokio::test(start_paused = true)]
async fn a_caller_waiting_for_a_new_object_takes_one_that_comes_back() {
    for outage in [false, true] {
        let (pool, peer) = pool(config(2).build().unwrap()).await;
        let held = pool.get_owned().await.unwrap();
        let held_id = held.id;
        if outage {
            peer.down.store(true, Ordering::SeqCst);
        } else {
            peer.create_millis.store(5_000, Ordering::SeqCst);
        }
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.get_owned().await.map(|conn| conn.id) }
        });
        settle().await;
        tokio::time::sleep(Duration::from_millis(100)).await; // its object is being made
        let start = tokio::time::Instant::now();
        drop(held);
        let got = waiter.await.unwrap();
        assert_eq!(
            got.ok(),
            Some(held_id),
            "outage {outage}: the object that came back"
        );
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "outage {outage}: at once"
        );
        // The maker, its caller gone, gives its place and slot back.
        peer.down.store(false, Ordering::SeqCst);
        peer.create_millis.store(0, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let both = (pool.get().await, pool.get().await);
        assert!(
            both.0.is_ok() && both.1.is_ok(),
            "outage {outage}: both places back"
        );
        drop(both);
        assert!(
            pool.close(Duration::from_secs(1)).await,
            "outage {outage}: nothing stranded"
        );
    }
}

/// An object back from a keepalive check goes first to a caller waiting
/// for a maker, as a returned one does.
#[tokio::test(start_paused = true)]
async fn an_object_back_from_a_keepalive_check_goes_to_a_caller_waiting_for_a_maker() {
    let config = config(2)
        .acquire_timeout(Duration::from_secs(10))
        .keepalive_interval(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    let (pool, peer) = pool(config).await;
    peer.check_millis.store(5_000, Ordering::SeqCst);
    while Peer::count(&peer.checks) == 0 {
        tokio::time::sleep(Duration::from_secs(1)).await; // until upkeep checks it
    }
    peer.down.store(true, Ordering::SeqCst); // the caller's maker cannot make one
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|conn| conn.id) }
    });
    let got = waiter.await.unwrap();
    assert_eq!(got.ok(), Some(0), "the object back from its check");
}

/// A close while a checkout checks its object fails that checkout, as it
/// fails one waiting for an object being made: no object is handed out of
/// a closed pool.
#[tokio::test(start_paused = true)]
async fn a_close_during_a_checkout_check_fails_that_checkout() {
    let config = config(1)
        .test_on_checkout(CheckoutTest::Always)
        .build()
        .unwrap();
    let (pool, peer) = pool(config).await;
    settle().await;
    peer.check_millis.store(100, Ordering::SeqCst);
    let caller = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(10)).await; // in its check
    assert_eq!(Peer::count(&peer.checks), 1);
    assert!(pool.close(Duration::from_secs(1)).await, "all gone");
    let err = caller.await.unwrap().unwrap_err();
    assert!(err.is_closed(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn closing_fails_waiters_and_later_gets_and_waits_for_objects_out() {
    let (pool, peer) = pool(config(1).build().unwrap()).await;
    let held = pool.get_owned().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    settle().await;
    let closing = tokio::spawn({
        let pool = pool.clone();
        async move { pool.close(Duration::from_secs(5)).await }
    });
    settle().await;
    assert!(waiter.await.unwrap().unwrap_err().is_closed());
    assert!(pool.get().await.unwrap_err().is_closed());
    tokio::time::advance(Duration::from_secs(1)).await;
    drop(held);
    assert!(closing.await.unwrap(), "every object came back in time");
    assert_eq!(Peer::count(&peer.closed), Peer::count(&peer.creates));
}

#[tokio::test(start_paused = true)]
async fn resizing_serves_waiters_when_growing_and_retires_objects_when_shrinking() {
    let (pool, peer) = pool(config(1).build().unwrap()).await;
    let held = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(seawall_pool::Object::take) }
    });
    settle().await;
    pool.resize(2);
    let made = waiter.await.unwrap().unwrap();
    assert_ne!(made.id, held.id);
    drop(made);
    let again = pool.get().await.unwrap();
    assert_eq!(pool.status().size, 2);
    pool.resize(1);
    drop(again);
    assert_eq!(pool.status().size, 1, "one discarded on return");
    drop(held);
    assert_eq!(pool.status().idle, 1);
    assert!(Peer::count(&peer.closed) >= 1);
}

#[tokio::test(start_paused = true)]
async fn an_acquire_timeout_of_duration_max_waits_for_ever_without_overflow() {
    let (pool, _) = pool(config(1).acquire_timeout(Duration::MAX).build().unwrap()).await;
    let held = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    assert!(!waiter.is_finished());
    drop(held);
    waiter.await.unwrap().expect("served");
}

#[tokio::test(start_paused = true)]
async fn a_huge_max_size_costs_nothing_until_used() {
    let (pool, _) = pool(config(u32::MAX).build().unwrap()).await;
    let objects: Vec<_> = futures::future::join_all((0..5_000).map(|_| pool.get())).await;
    assert!(objects.iter().all(Result::is_ok));
    assert_eq!(pool.status().size, 5_000);
}

/// Upkeep making an object for `min_idle` when the pool closes stops too:
/// the object is never made.
#[tokio::test(start_paused = true)]
async fn closing_stops_upkeep_making_min_idle() {
    let (pool, peer) = pool(config(2).min_idle(1).build().unwrap()).await;
    settle().await;
    peer.create_millis.store(10_000, Ordering::SeqCst); // a slow one
    drop(pool.get().await.unwrap().take()); // upkeep makes another
    tokio::time::sleep(Duration::from_millis(100)).await;
    let creates = Peer::count(&peer.creates);
    assert!(creates >= 2, "upkeep is making one");
    let start = tokio::time::Instant::now();
    assert!(pool.close(Duration::from_secs(1)).await);
    assert!(start.elapsed() < Duration::from_millis(10), "at once");
    let closed = Peer::count(&peer.closed);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(Peer::count(&peer.closed), closed, "nothing was made after");
    assert_eq!(Peer::count(&peer.creates), creates);
}
