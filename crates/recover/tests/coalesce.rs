//! `Coalesce` and `CoalesceLayer`: one call per key, whatever happens to
//! the callers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use seawall_recover::Coalesce;

/// A "database" that counts its queries and answers after `delay`.
#[derive(Clone, Default)]
struct Database {
    queries: Arc<AtomicU32>,
}

impl Database {
    fn load(&self, key: u32, delay: Duration) -> impl Future<Output = String> + use<> {
        let n = self.queries.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            tokio::time::sleep(delay).await;
            format!("{key}, query {n}")
        }
    }

    fn queries(&self) -> u32 {
        self.queries.load(Ordering::Relaxed)
    }
}

/// `future`, or a failure if it is still waiting after a minute (of paused
/// time: at once): a wait nobody ends fails instead of hanging.
async fn within_a_minute<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("still waiting after a minute")
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_callers_of_one_key_make_one_call() {
    let group: Coalesce<u32, String> = Coalesce::new();
    let db = Database::default();
    let callers: Vec<_> = (0..10_000)
        .map(|_| {
            let (group, db) = (group.clone(), db.clone());
            tokio::spawn(async move { group.run(1, || db.load(1, Duration::from_secs(1))).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(
            within_a_minute(caller).await.unwrap().unwrap(),
            "1, query 1"
        );
    }
    assert_eq!(db.queries(), 1);
    assert!(group.is_empty(), "nothing kept after the call");

    // The key is free again: the next call runs anew.
    assert_eq!(
        group.run(1, || db.load(1, Duration::ZERO)).await.unwrap(),
        "1, query 2"
    );
}

#[tokio::test(start_paused = true)]
async fn keys_do_not_share() {
    let group: Coalesce<u32, String> = Coalesce::new();
    let db = Database::default();
    let (a, b) = tokio::join!(
        group.run(1, || db.load(1, Duration::from_millis(10))),
        group.run(2, || db.load(2, Duration::from_millis(10))),
    );
    assert_eq!(
        (a.unwrap().as_str(), b.unwrap().as_str()),
        ("1, query 1", "2, query 2")
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_leader_hands_over_to_a_follower() {
    let group: Coalesce<u32, String> = Coalesce::new();
    let db = Database::default();
    let leader = {
        let (group, db) = (group.clone(), db.clone());
        tokio::spawn(async move { group.run(1, || db.load(1, Duration::from_secs(10))).await })
    };
    tokio::task::yield_now().await;
    let followers: Vec<_> = (0..100)
        .map(|_| {
            let (group, db) = (group.clone(), db.clone());
            tokio::spawn(async move { group.run(1, || db.load(1, Duration::from_secs(1))).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    for follower in followers {
        assert_eq!(
            within_a_minute(follower).await.unwrap().unwrap(),
            "1, query 2"
        );
    }
    assert_eq!(
        db.queries(),
        2,
        "the leader's query, and one that took over"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panic_reaches_every_caller_as_an_error() {
    let group: Coalesce<u32, u32> = Coalesce::new();
    let slow_panic = || async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        panic!("query planner broke");
    };
    let (a, b) = within_a_minute(async {
        tokio::join!(group.run(1, slow_panic), group.run(1, || async { 5 }))
    })
    .await;
    assert_eq!(a.unwrap_err().message(), "query planner broke");
    assert_eq!(b.unwrap_err().message(), "query planner broke");
    // A panic in making the future counts the same.
    let error = group
        .run(1, || -> std::future::Ready<u32> { panic!("no future") })
        .await;
    assert_eq!(error.unwrap_err().message(), "no future");
    assert!(group.is_empty());
    assert_eq!(group.run(1, || async { 5 }).await, Ok(5));
}

#[tokio::test(start_paused = true)]
async fn a_ttl_keeps_successes_for_that_long_and_sweeps_them_out() {
    let group: Coalesce<u32, String> = Coalesce::with_ttl(Duration::from_secs(1));
    let db = Database::default();
    assert_eq!(
        group.run(1, || db.load(1, Duration::ZERO)).await.unwrap(),
        "1, query 1"
    );
    tokio::time::sleep(Duration::from_millis(999)).await;
    assert_eq!(
        group.run(1, || db.load(1, Duration::ZERO)).await.unwrap(),
        "1, query 1"
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        group.run(1, || db.load(1, Duration::ZERO)).await.unwrap(),
        "1, query 2"
    );

    // Panics are not kept.
    let _ = group.run(2, || async { panic!("once") }).await;
    assert_eq!(
        group.run(2, || db.load(2, Duration::ZERO)).await.unwrap(),
        "2, query 3"
    );

    // Expired results do not pile up.
    for key in 0..1_000 {
        group
            .run(key + 10, || async { String::new() })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(group.len() <= 300, "{} entries kept", group.len());
}

/// A value whose clone panics: the leader's result cannot be shared.
#[derive(Debug, PartialEq)]
struct Unclonable(u32);

impl Clone for Unclonable {
    fn clone(&self) -> Self {
        panic!("this value cannot be cloned");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_while_sharing_the_result_strands_no_follower() {
    let group: Coalesce<u32, Unclonable> = Coalesce::new();
    let leader = {
        let group = group.clone();
        tokio::spawn(async move {
            group
                .run(1, || async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Unclonable(1)
                })
                .await
        })
    };
    tokio::task::yield_now().await;
    let follower = group.run(1, || async { Unclonable(2) });
    // The leader's clone for the follower panics in the leader's task; the
    // follower takes over with its own future instead of waiting forever.
    assert_eq!(within_a_minute(follower).await, Ok(Unclonable(2)));
    assert!(leader.await.unwrap_err().is_panic());
    assert!(group.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_huge_ttl_keeps_without_overflowing() {
    let group: Coalesce<u32, u32> = Coalesce::with_ttl(Duration::MAX);
    assert_eq!(group.run(1, || async { 1 }).await, Ok(1));
    assert_eq!(group.run(1, || async { 2 }).await, Ok(1), "kept");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_follower_leaves_the_others_be() {
    let group: Coalesce<u32, String> = Coalesce::new();
    let db = Database::default();
    let lead = group.run(1, || db.load(1, Duration::from_millis(50)));
    let follow = group.run(1, || db.load(1, Duration::from_millis(50)));
    let quitter = group.run(1, || db.load(1, Duration::from_millis(50)));
    let quitter = tokio::time::timeout(Duration::from_millis(10), quitter);
    let (lead, follow, quitter) =
        within_a_minute(async { tokio::join!(lead, follow, quitter) }).await;
    assert!(quitter.is_err());
    assert_eq!(
        (lead.unwrap(), follow.unwrap()),
        ("1, query 1".into(), "1, query 1".into())
    );
    assert_eq!(db.queries(), 1);
}

#[cfg(feature = "tower")]
mod layer {
    use super::*;
    use seawall_core::{BoxError, RefusalKind, Refused};
    use seawall_recover::tower::{CoalesceLayer, SharedError};
    use std::convert::Infallible;
    use tower::{Layer, ServiceExt, service_fn};

    #[tokio::test(start_paused = true)]
    async fn the_layer_shares_answers_and_errors_and_skips_unkeyed_requests() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let backend = service_fn(move |path: &'static str| {
            counter.fetch_add(1, Ordering::Relaxed);
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                match path {
                    "/broken" => Err::<String, BoxError>("upstream reset".into()),
                    "/panic" => panic!("handler bug"),
                    _ => Ok(format!("page {path}")),
                }
            }
        });
        let key = |path: &&'static str| (!path.starts_with("/private")).then_some(*path);
        let service = CoalesceLayer::new(key).layer(backend);
        let call = |path| service.clone().oneshot(path);

        let (a, b) = within_a_minute(async { tokio::join!(call("/home"), call("/home")) }).await;
        assert_eq!(
            (a.unwrap(), b.unwrap()),
            ("page /home".into(), "page /home".into())
        );
        assert_eq!(calls.swap(0, Ordering::Relaxed), 1);

        let (a, b) =
            within_a_minute(async { tokio::join!(call("/private/me"), call("/private/me")) }).await;
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(
            calls.swap(0, Ordering::Relaxed),
            2,
            "unkeyed requests go alone"
        );

        let (a, b) =
            within_a_minute(async { tokio::join!(call("/broken"), call("/broken")) }).await;
        for error in [a.unwrap_err(), b.unwrap_err()] {
            let shared = error.downcast_ref::<SharedError>().expect("a shared error");
            assert_eq!(shared.inner().to_string(), "upstream reset");
        }
        assert_eq!(calls.swap(0, Ordering::Relaxed), 1);

        let (a, b) = within_a_minute(async { tokio::join!(call("/panic"), call("/panic")) }).await;
        for error in [a.unwrap_err(), b.unwrap_err()] {
            let refused = Refused::find(&*error).expect("a refusal");
            assert_eq!(refused.kind(), RefusalKind::Panicked);
        }
        assert_eq!(calls.swap(0, Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_requests_hold_no_permit_of_a_limit_inside() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let slow = service_fn(move |n: u32| {
            counter.fetch_add(1, Ordering::Relaxed);
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<u32, BoxError>(n)
            }
        });
        let service = tower::ServiceBuilder::new()
            .layer(CoalesceLayer::new(|n: &u32| Some(*n)))
            .concurrency_limit(1)
            .service(slow);
        let requests: Vec<_> = (0..100)
            .map(|_| tokio::spawn(service.clone().oneshot(7)))
            .collect();
        for request in requests {
            assert_eq!(within_a_minute(request).await.unwrap().unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ttl_keeps_answers_but_not_errors() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let backend = service_fn(move |path: &'static str| {
            counter.fetch_add(1, Ordering::Relaxed);
            async move {
                if path == "/broken" {
                    Err::<String, BoxError>("upstream reset".into())
                } else {
                    Ok(format!("page {path}"))
                }
            }
        });
        let service = CoalesceLayer::new(|path: &&'static str| Some(*path))
            .ttl(Duration::from_secs(10))
            .layer(backend);
        for _ in 0..3 {
            service.clone().oneshot("/home").await.unwrap();
            assert!(service.clone().oneshot("/broken").await.is_err());
        }
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1 + 3,
            "one call for /home, every /broken"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_inside_is_still_found_through_the_shared_error() {
        use seawall_core::{Refusal, RefusalReason, RefuseWithError, ResponseFormat};
        #[derive(Debug)]
        struct Full;
        impl std::fmt::Display for Full {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("full")
            }
        }
        impl std::error::Error for Full {}
        impl RefusalReason for Full {
            fn kind(&self) -> RefusalKind {
                RefusalKind::Overloaded
            }
            fn retry_after(&self) -> Option<Duration> {
                None
            }
        }
        let backend = service_fn(|_: u8| async {
            Refusal::<(), Infallible>::refuse(&RefuseWithError, ResponseFormat::Text, Full)
        });
        let service = CoalesceLayer::new(|n: &u8| Some(*n)).layer(backend);
        let error = service.oneshot(1).await.unwrap_err();
        assert_eq!(
            Refused::find(&*error).unwrap().kind(),
            RefusalKind::Overloaded
        );
    }
}
