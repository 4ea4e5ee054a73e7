//! `PoolService`: the pool as backpressure, refusals through the shared
//! refusal surface, objects back when calls end.
#![cfg(all(feature = "tower", feature = "http"))]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{Fake, pool};
use seawall_core::{RefusalKind, Refused, TokioClock};
use seawall_pool::tower::PoolService;
use seawall_pool::{CheckoutTest, OwnedObject, PoolConfig, PoolError};
use tower::{Service, ServiceExt};

type Object = OwnedObject<Fake, TokioClock>;

fn config(test: CheckoutTest) -> PoolConfig {
    PoolConfig::builder()
        .max_size(1)
        .min_idle(0)
        .acquire_timeout(Duration::from_secs(1))
        .test_on_checkout(test)
        .build()
        .expect("valid")
}

async fn id_of(conn: Object, _: ()) -> Result<u32, Infallible> {
    Ok(conn.id)
}

fn poll_ready<S: Service<()>>(service: &mut S) -> Poll<Result<(), S::Error>> {
    service.poll_ready(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_pool_holds_readiness_back_until_an_object_returns() {
    let (pool, _) = pool(config(CheckoutTest::Never)).await;
    let held = pool.get_owned().await.unwrap();
    let mut service = PoolService::new(pool.clone(), id_of);
    assert!(poll_ready(&mut service).is_pending(), "no place: not ready");
    drop(held);
    assert!(poll_ready(&mut service).is_ready());
    assert_eq!(service.call(()).await.unwrap(), 0);
    assert_eq!(
        pool.status().idle,
        1,
        "the object went back when the call ended"
    );
}

#[tokio::test(start_paused = true)]
async fn after_acquire_timeout_the_service_is_ready_and_refuses_with_503_semantics() {
    let (pool, _) = pool(config(CheckoutTest::Never)).await;
    let _held = pool.get_owned().await.unwrap();
    let mut service = PoolService::new(pool.clone(), id_of);
    let start = tokio::time::Instant::now();
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let error = service.call(()).await.unwrap_err();
    let refused = Refused::find(&*error).expect("a seawall refusal");
    assert_eq!(refused.kind(), RefusalKind::Overloaded);
    let reason = refused.downcast_ref::<PoolError<std::io::Error>>().unwrap();
    assert!(reason.is_timeout());
    assert_eq!(pool.status().waiters, 0, "the timed-out wait left the line");
}

#[tokio::test(start_paused = true)]
async fn a_closed_pool_is_ready_at_once_and_refuses() {
    let (pool, _) = pool(config(CheckoutTest::Never)).await;
    assert!(pool.close(Duration::ZERO).await);
    let mut service = PoolService::new(pool, id_of);
    assert!(
        poll_ready(&mut service).is_ready(),
        "ready at once: it will refuse"
    );
    let error = service.call(()).await.unwrap_err();
    let refused = Refused::find(&*error).expect("a seawall refusal");
    assert_eq!(refused.kind(), RefusalKind::Unavailable);
}

#[tokio::test(start_paused = true)]
async fn refusals_answer_503_with_the_http_refusal() {
    let (pool, _) = pool(config(CheckoutTest::Never)).await;
    assert!(pool.close(Duration::ZERO).await);
    let service = PoolService::new(pool, |conn: Object, _: http::Request<String>| async move {
        Ok::<_, Infallible>(http::Response::new(conn.id.to_string()))
    })
    .with_refusal(seawall_core::http::RefuseWithResponse);
    let response = service
        .oneshot(http::Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn a_service_dropped_while_holding_a_place_gives_it_back() {
    let (pool, _) = pool(config(CheckoutTest::Never)).await;
    let mut service = PoolService::new(pool.clone(), id_of);
    assert!(poll_ready(&mut service).is_ready());
    assert!(
        tokio::time::timeout(Duration::from_millis(10), pool.get())
            .await
            .is_err()
    );
    drop(service);
    pool.get().await.expect("the place came back");
}

#[tokio::test(start_paused = true)]
async fn a_service_dropped_while_waiting_leaves_the_line() {
    let (pool, _) = pool(config(CheckoutTest::Never)).await;
    let held = pool.get_owned().await.unwrap();
    let mut service = PoolService::new(pool.clone(), id_of);
    assert!(poll_ready(&mut service).is_pending());
    assert_eq!(pool.status().waiters, 1);
    drop(service);
    assert_eq!(pool.status().waiters, 0);
    drop(held);
    pool.get()
        .await
        .expect("the place was not handed to the gone service");
}

#[tokio::test(start_paused = true)]
async fn objects_that_need_a_check_or_making_go_the_slow_way_and_still_serve() {
    let (pool, peer) = pool(config(CheckoutTest::Always)).await;
    let service = PoolService::new(pool.clone(), id_of);
    assert_eq!(service.clone().oneshot(()).await.unwrap(), 0);
    assert_eq!(
        service.oneshot(()).await.unwrap(),
        0,
        "checked, then reused"
    );
    assert_eq!(common::Peer::count(&peer.checks), 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_future_dropped_before_its_first_poll_gives_its_place_back() {
    let (pool, _) = pool(config(CheckoutTest::Never)).await;
    drop(pool.get().await.unwrap().take()); // empty: the call must make one
    let mut service = PoolService::new(pool.clone(), id_of);
    assert!(poll_ready(&mut service).is_ready());
    drop(service.call(())); // never polled: a client that left at once
    let got = tokio::time::timeout(Duration::from_millis(10), pool.get()).await;
    assert!(
        got.is_ok(),
        "the place did not come back: {:?}",
        pool.status()
    );
}

/// User code that panics inside `call` (here the `Drop` of an idle object
/// the pool discards on the way) loses no place and no slot.
#[tokio::test(start_paused = true)]
async fn a_panic_inside_call_gives_the_place_back() {
    let (pool, peer) = pool(config(CheckoutTest::Never)).await;
    drop(pool.get().await.unwrap()); // one idle object
    peer.panicking
        .store(true, std::sync::atomic::Ordering::SeqCst); // discarded at checkout...
    peer.panicking_drop
        .store(true, std::sync::atomic::Ordering::SeqCst); // ...and its drop panics
    let mut service = PoolService::new(pool.clone(), id_of);
    assert!(poll_ready(&mut service).is_ready());
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(service.call(()));
    }));
    assert!(unwound.is_ok(), "the drop's panic is caught in the pool");
    peer.panicking
        .store(false, std::sync::atomic::Ordering::SeqCst);
    peer.panicking_drop
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let status = pool.status();
    assert_eq!((status.size, status.in_use), (0, 0), "{status:?}");
    let got = tokio::time::timeout(Duration::from_millis(10), pool.get()).await;
    assert!(
        got.is_ok(),
        "the place and slot came back: {:?}",
        pool.status()
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_future_dropped_before_its_object_arrives_strands_nothing() {
    let (pool, peer) = pool(config(CheckoutTest::Never)).await;
    drop(pool.get().await.unwrap().take()); // empty: the next call makes one
    peer.create_millis
        .store(100, std::sync::atomic::Ordering::SeqCst);
    let mut service = PoolService::new(pool.clone(), id_of);
    assert!(poll_ready(&mut service).is_ready());
    {
        let mut call = pin!(service.call(()));
        assert!(
            call.as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The maker either never started (the caller was gone first) or gave
    // what it made to the pool: nothing is stranded either way.
    let status = pool.status();
    assert_eq!(status.size, status.idle, "{status:?}");
    pool.get().await.expect("the place came back");
}

#[tokio::test(start_paused = true)]
async fn the_wait_for_an_object_counts_from_poll_ready_not_again_from_call() {
    let (pool, peer) = pool(config(CheckoutTest::Never)).await;
    drop(pool.get().await.unwrap().take()); // empty: the call must make one
    peer.create_millis
        .store(10_000, std::sync::atomic::Ordering::SeqCst);
    let mut service = PoolService::new(pool.clone(), id_of);
    let start = tokio::time::Instant::now();
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let error = service.call(()).await.unwrap_err();
    let refused = Refused::find(&*error).expect("a seawall refusal");
    assert!(
        refused
            .downcast_ref::<PoolError<std::io::Error>>()
            .unwrap()
            .is_timeout()
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "one acquire_timeout in all"
    );
}
