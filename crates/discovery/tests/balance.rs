//! `Balance`: where requests go, readiness, and the cases that bit tower's
//! balancer.
#![cfg(feature = "tower")]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use seawall_core::{RefusalKind, Refused};
use seawall_discovery::balance::{Balance, NoInstances};
use seawall_discovery::{Discovery, Instance, StaticRegistry};
use tower::util::BoxService;
use tower::{Service, ServiceExt, service_fn};
use tower_test::mock;

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn api(id: &str, port: u16) -> Instance {
    Instance::new("api", id, at(port))
}

/// A service per instance that answers with the instance's id.
fn echo_id(instance: &Instance) -> BoxService<u64, String, Infallible> {
    let id = instance.id.clone();
    BoxService::new(service_fn(move |_: u64| {
        let id = id.clone();
        async move { Ok::<_, Infallible>(id) }
    }))
}

async fn send<S: Service<u64, Response = String>>(svc: &mut S, n: u64) -> String
where
    S::Error: std::fmt::Debug,
{
    let ready = svc.ready().await.expect("ready");
    ready.call(n).await.expect("an answer")
}

fn counts(answers: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for id in answers {
        *seen.entry(id).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn no_instance_is_a_503_refusal_answered_at_once() {
    let registry = StaticRegistry::new([]).unwrap();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), echo_id);
    let err = balance.ready().await.unwrap().call(1).await.unwrap_err();
    let refused = Refused::find(&*err).expect("a seawall refusal");
    assert_eq!(refused.kind(), RefusalKind::Unavailable);
    assert_eq!(refused.kind().status(), 503);
    let reason = refused.downcast_ref::<NoInstances>().unwrap();
    assert_eq!(reason.service(), "api");
    assert_eq!(err.to_string(), "no instance of `api` is available");
}

#[tokio::test]
async fn p2c_spreads_requests_and_follows_the_set() {
    let registry = StaticRegistry::new([api("a", 1), api("b", 2), api("c", 3)]).unwrap();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), echo_id);
    let mut answers = Vec::new();
    for n in 0..3_000 {
        answers.push(send(&mut balance, n).await);
    }
    let seen = counts(answers);
    assert_eq!(seen.len(), 3, "{seen:?}");
    // Nothing stays in flight here, so two choices are two random draws.
    assert!(seen.values().all(|&n| (800..1200).contains(&n)), "{seen:?}");

    registry.replace([api("b", 2), api("d", 4)]).unwrap();
    let mut answers = Vec::new();
    for n in 0..200 {
        answers.push(send(&mut balance, n).await);
    }
    let seen = counts(answers);
    assert_eq!(seen.keys().len(), 2, "{seen:?}");
    assert!(seen.contains_key("b") && seen.contains_key("d"), "{seen:?}");
}

/// The less loaded of the two wins: with every request to `a` still in
/// flight, `b` gets the next ones.
#[tokio::test]
async fn p2c_prefers_the_instance_with_fewer_requests_in_flight() {
    let registry = StaticRegistry::new([api("a", 1), api("b", 2)]).unwrap();
    let (a, mut a_handle) = mock::pair::<u64, String>();
    let (b, mut b_handle) = mock::pair::<u64, String>();
    let mocks = Mutex::new(HashMap::from([("a", a), ("b", b)]));
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), move |i: &Instance| {
        mocks.lock().unwrap().remove(i.id.as_str()).unwrap()
    });
    a_handle.allow(100);
    b_handle.allow(100);
    let mut calls = Vec::new();
    for n in 0..10 {
        calls.push(balance.ready().await.unwrap().call(n));
    }
    assert_eq!(
        balance.in_flight("a").unwrap() + balance.in_flight("b").unwrap(),
        10
    );
    let spread = balance
        .in_flight("a")
        .unwrap()
        .abs_diff(balance.in_flight("b").unwrap());
    assert!(spread <= 1, "two instances, ten requests, spread {spread}");
    drop(calls);
    assert_eq!(
        balance.in_flight("a"),
        Some(0),
        "a dropped call frees its count"
    );
}

#[tokio::test]
async fn weighted_sends_a_canary_its_share() {
    let registry =
        StaticRegistry::new([api("stable", 1).weight(90), api("canary", 2).weight(10)]).unwrap();
    let mut balance = Balance::weighted(registry.watch("api").await.unwrap(), echo_id);
    let mut answers = Vec::new();
    for n in 0..10_000 {
        answers.push(send(&mut balance, n).await);
    }
    let seen = counts(answers);
    // 1,000 expected; a binomial's five standard deviations are 150 (a
    // run outside them: about one in two million).
    assert!((850..=1150).contains(&seen["canary"]), "{seen:?}");

    // All drained (weight 0): nowhere to go.
    registry
        .replace([api("stable", 1).weight(0), api("canary", 2).weight(0)])
        .unwrap();
    let err = balance.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(Refused::find(&*err).is_some(), "{err}");
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_instance() {
    let ids: Vec<Instance> = (0..8).map(|i| api(&format!("n{i}"), i)).collect();
    let registry = StaticRegistry::new(ids.clone()).unwrap();
    let mut balance = Balance::consistent_hash(
        registry.watch("api").await.unwrap(),
        |user: &u64| *user,
        echo_id,
    );
    let mut first = HashMap::new();
    for user in 0..1_000u64 {
        first.insert(user, send(&mut balance, user).await);
    }
    for user in 0..1_000u64 {
        assert_eq!(send(&mut balance, user).await, first[&user], "user {user}");
    }
    assert!(counts(first.values().cloned()).len() == 8);

    // One more instance: only keys that now go to it moved, about a ninth.
    let mut more = ids;
    more.push(api("n8", 8));
    registry.replace(more).unwrap();
    let mut moved = 0;
    for user in 0..1_000u64 {
        let now = send(&mut balance, user).await;
        if now != first[&user] {
            assert_eq!(now, "n8");
            moved += 1;
        }
    }
    assert!((55..=167).contains(&moved), "moved {moved} of 1000");
}

#[tokio::test]
async fn the_zone_is_preferred_while_enough_of_it_is_ready() {
    let registry = StaticRegistry::new([
        api("a1", 1).zone("a"),
        api("a2", 2).zone("a"),
        api("b1", 3).zone("b"),
        api("b2", 4).zone("b"),
    ])
    .unwrap();
    let (a2, mut a2_handle) = mock::pair::<u64, String>();
    let a2 = Mutex::new(Some(a2));
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), move |i: &Instance| {
        if i.id == "a2" {
            BoxService::new(
                a2.lock()
                    .unwrap()
                    .take()
                    .unwrap()
                    .map_err(|e| panic!("{e}")),
            )
        } else {
            echo_id(i)
        }
    })
    .prefer_zone("a", 0.5);

    // a2 is not ready: one of two in zone a, still half.
    a2_handle.allow(0);
    let answers: Vec<String> = {
        let mut out = Vec::new();
        for n in 0..100 {
            out.push(send(&mut balance, n).await);
        }
        out
    };
    assert_eq!(counts(answers).keys().collect::<Vec<_>>(), ["a1"]);

    // A stricter rule (all of zone a ready) sends the same traffic to b.
    let mut balance = balance.prefer_zone("a", 1.0);
    let mut answers = Vec::new();
    for n in 0..200 {
        answers.push(send(&mut balance, n).await);
    }
    let seen = counts(answers);
    assert!(
        seen.contains_key("b1") && seen.contains_key("b2"),
        "{seen:?}"
    );
}

/// tower's balancer (0.5.3) could send a request to another endpoint than
/// the one it picked when discovery removed one meanwhile. Here every
/// instance's service is a mock that panics if called when not ready, and
/// the set changes between `poll_ready` and `call`: the request goes to a
/// ready instance of the set `poll_ready` saw, and the change is taken in
/// at the next `poll_ready`.
#[tokio::test]
async fn a_change_between_ready_and_call_never_misroutes() {
    let registry = StaticRegistry::new([api("a", 1), api("b", 2), api("c", 3)]).unwrap();
    let handles: Arc<Mutex<HashMap<String, mock::Handle<u64, String>>>> = Arc::default();
    let made = handles.clone();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), move |i: &Instance| {
        let (service, mut handle) = mock::pair::<u64, String>();
        // b is never ready; the others take one request each time.
        handle.allow(if i.id == "b" { 0 } else { 1 });
        made.lock().unwrap().insert(i.id.clone(), handle);
        service
    });
    let spawned = tokio_test_ready(&mut balance).await;
    registry.replace([api("b", 2), api("d", 4)]).unwrap();
    let call = spawned.call(7);
    let (answerer, request) = next_request(&handles, ["a", "c"]).await;
    assert_eq!(request, 7);
    drop(call);

    // Taken in now: a and c are gone, d is new and ready, b still is not.
    let spawned = tokio_test_ready(&mut balance).await;
    let _call = spawned.call(8);
    let (to, request) = next_request(&handles, ["d"]).await;
    assert_eq!((to.as_str(), request), ("d", 8));
    assert!(answerer == "a" || answerer == "c");
}

/// `ready()` on the balancer, returning it.
async fn tokio_test_ready<S: Service<u64>>(svc: &mut S) -> &mut S
where
    S::Error: std::fmt::Debug,
{
    svc.ready().await.expect("ready")
}

/// The first of these instances' mocks that has a request.
async fn next_request<const N: usize>(
    handles: &Mutex<HashMap<String, mock::Handle<u64, String>>>,
    among: [&str; N],
) -> (String, u64) {
    for _ in 0..100 {
        for id in among {
            let mut all = handles.lock().expect("not poisoned");
            let handle = all.get_mut(id).expect("a mock per instance");
            if let std::task::Poll::Ready(Some((request, respond))) =
                futures_poll_once(handle.next_request())
            {
                respond.send_response(id.to_owned());
                return (id.to_owned(), request);
            }
        }
        tokio::task::yield_now().await;
    }
    panic!("no request reached any of {among:?}");
}

fn futures_poll_once<F: std::future::Future>(future: F) -> std::task::Poll<F::Output> {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
}

/// An instance whose service is not ready is polled again and joins when
/// it is; meanwhile the balancer waits only if no instance is ready.
#[tokio::test]
async fn an_instance_not_ready_yet_joins_when_ready() {
    let registry = StaticRegistry::new([api("slow", 1)]).unwrap();
    let (slow, mut handle) = mock::pair::<u64, String>();
    let slow = Mutex::new(Some(slow));
    let mut balance = tower_test::mock::Spawn::new(Balance::p2c(
        registry.watch("api").await.unwrap(),
        move |_: &Instance| slow.lock().unwrap().take().unwrap(),
    ));
    handle.allow(0);
    assert!(
        balance.poll_ready().is_pending(),
        "its only instance is busy"
    );
    handle.allow(1);
    assert!(balance.is_woken());
    assert!(balance.poll_ready().is_ready());
    let call = balance.call(5);
    let (request, respond) = handle.next_request().await.unwrap();
    assert_eq!(request, 5);
    respond.send_response("slow".into());
    assert_eq!(call.await.unwrap(), "slow");
}

/// All busy, then a new instance appears: the balancer wakes and uses it.
#[tokio::test]
async fn a_new_instance_wakes_a_waiting_balancer() {
    let registry = StaticRegistry::new([api("busy", 1)]).unwrap();
    let (busy, mut handle) = mock::pair::<u64, String>();
    handle.allow(0);
    let busy = Mutex::new(Some(BoxService::new(busy)));
    let mut balance = tower_test::mock::Spawn::new(Balance::p2c(
        registry.watch("api").await.unwrap(),
        move |i: &Instance| {
            busy.lock()
                .unwrap()
                .take()
                .unwrap_or_else(|| echo_id_boxed(i))
        },
    ));
    assert!(balance.poll_ready().is_pending());
    registry.replace([api("busy", 1), api("fresh", 2)]).unwrap();
    assert!(balance.is_woken(), "a change of the set wakes it");
    assert!(balance.poll_ready().is_ready());
    assert_eq!(balance.call(1).await.unwrap(), "fresh");
}

fn echo_id_boxed(i: &Instance) -> BoxService<u64, String, tower::BoxError> {
    BoxService::new(echo_id(i).map_err(|e| match e {}))
}

/// An instance whose service fails in `poll_ready` is dropped; it comes
/// back when discovery says so (here, the instance changes).
#[tokio::test(start_paused = true)]
async fn a_failed_instance_comes_back_when_discovery_changes_it() {
    let registry = StaticRegistry::new([api("ok", 1), api("flaky", 2)]).unwrap();
    let made = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = made.clone();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), move |i: &Instance| {
        log.lock().unwrap().push(i.id.clone());
        Broken {
            inner: echo_id_boxed(i),
            broken: i.id == "flaky" && i.version.is_none(),
        }
    });
    let mut answers = Vec::new();
    for n in 0..50 {
        answers.push(send(&mut balance, n).await);
    }
    assert_eq!(counts(answers).keys().collect::<Vec<_>>(), ["ok"]);
    assert_eq!(balance.instances().count(), 1, "flaky was dropped");

    registry
        .replace([api("ok", 1), api("flaky", 2).version("2")])
        .unwrap();
    let mut answers = Vec::new();
    for n in 0..200 {
        answers.push(send(&mut balance, n).await);
    }
    assert!(
        counts(answers).contains_key("flaky"),
        "back after the change"
    );
    assert_eq!(
        made.lock()
            .unwrap()
            .iter()
            .filter(|id| *id == "flaky")
            .count(),
        2
    );
}

/// A service that fails `poll_ready` when `broken`.
struct Broken<S> {
    inner: S,
    broken: bool,
}

impl<S: Service<u64, Error = tower::BoxError>> Service<u64> for Broken<S> {
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        if self.broken {
            return std::task::Poll::Ready(Err("connection refused".into()));
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: u64) -> Self::Future {
        self.inner.call(request)
    }
}

/// A watch as tower's `Discover`: tower's own balancer over a seawall
/// registry follows its changes.
#[tokio::test]
async fn tower_balances_over_a_watch() {
    use seawall_discovery::balance::WatchDiscover;
    use tower::load::{CompleteOnResponse, PendingRequestsDiscover};

    let registry = StaticRegistry::new([api("a", 1), api("b", 2)]).unwrap();
    let discover = WatchDiscover::new(registry.watch("api").await.unwrap(), echo_id);
    let loaded = PendingRequestsDiscover::new(discover, CompleteOnResponse::default());
    let mut balance = tower::balance::p2c::Balance::new(loaded);
    let mut answers = Vec::new();
    for n in 0..100 {
        answers.push(balance.ready().await.unwrap().call(n).await.unwrap());
    }
    let seen = counts(answers);
    assert_eq!(seen.len(), 2, "{seen:?}");

    registry.replace([api("b", 2), api("c", 3)]).unwrap();
    let mut answers = Vec::new();
    for n in 0..100 {
        answers.push(balance.ready().await.unwrap().call(n).await.unwrap());
    }
    let seen = counts(answers);
    assert!(!seen.contains_key("a") && seen.len() == 2, "{seen:?}");

    // The registry gone: tower keeps the last set.
    drop(registry);
    assert_eq!(
        balance.ready().await.unwrap().call(1).await.unwrap().len(),
        1
    );
}

/// A set sent just before its source goes is still taken in, and the
/// balancer keeps it once the source is gone, also when it takes the set
/// in again (a setting that redelivers it).
#[tokio::test]
async fn the_last_set_before_the_source_goes_is_kept() {
    let registry = StaticRegistry::new([api("a", 1)]).unwrap();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), echo_id);
    assert_eq!(balance.ready().await.unwrap().call(0).await.unwrap(), "a");
    registry.replace([api("b", 2)]).unwrap();
    drop(registry);
    for n in 0..10 {
        let to = balance.ready().await.unwrap().call(n).await.unwrap();
        assert_eq!(to, "b");
    }
    let mut balance = balance.prefer_zone("eu-1", 0.5);
    for n in 0..10 {
        let to = balance.ready().await.unwrap().call(n).await.unwrap();
        assert_eq!(to, "b");
    }
    assert_eq!(balance.instances().count(), 1);
}

/// tower #856's sequence: ready, a removal, ready again (which takes the
/// change in), then call: the request goes to an instance of the new set
/// whose service is ready, never to a removed one.
#[tokio::test]
async fn ready_change_ready_call_goes_to_the_new_set() {
    let registry = StaticRegistry::new([api("a", 1), api("b", 2), api("c", 3)]).unwrap();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), echo_id);
    balance.ready().await.unwrap();
    registry.replace([api("c", 3), api("d", 4)]).unwrap();
    for n in 0..50 {
        let to = balance.ready().await.unwrap().call(n).await.unwrap();
        assert!(to == "c" || to == "d", "sent to {to}");
    }
}

/// A drained instance (weight 0) is never picked by a weighing balancer,
/// so it does not make the balancer ready: with the only other instance
/// busy, the balancer waits for it instead of refusing.
#[tokio::test]
async fn a_drained_instance_does_not_make_a_weighted_balancer_ready() {
    let registry =
        StaticRegistry::new([api("busy", 1).weight(10), api("drained", 2).weight(0)]).unwrap();
    let (busy, mut handle) = mock::pair::<u64, String>();
    handle.allow(0);
    let busy = Mutex::new(Some(BoxService::new(busy)));
    let mut balance = tower_test::mock::Spawn::new(Balance::weighted(
        registry.watch("api").await.unwrap(),
        move |i: &Instance| {
            busy.lock()
                .unwrap()
                .take()
                .filter(|_| i.id == "busy")
                .unwrap_or_else(|| echo_id_boxed(i))
        },
    ));
    assert!(
        balance.poll_ready().is_pending(),
        "ready only through a drained instance"
    );
    handle.allow(1);
    assert!(balance.poll_ready().is_ready());
    let call = balance.call(1);
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response("busy".into());
    assert_eq!(call.await.unwrap(), "busy");
}

/// An instance whose service failed gets a new service after a wait (1 s,
/// then twice as long at each failure in a row), though discovery says
/// nothing: a static list recovers by itself.
#[tokio::test(start_paused = true)]
async fn a_failed_instance_is_tried_again_after_a_wait() {
    let registry = StaticRegistry::new([api("flaky", 1)]).unwrap();
    let made = Arc::new(Mutex::new(0));
    let count = made.clone();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), move |i: &Instance| {
        let mut made = count.lock().unwrap();
        *made += 1;
        // Broken the first two times.
        Broken {
            inner: echo_id_boxed(i),
            broken: *made <= 2,
        }
    });
    let refused = balance.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(
        Refused::find(&*refused).is_some(),
        "no instance while it waits"
    );
    tokio::time::advance(std::time::Duration::from_millis(1_000)).await;
    let refused = balance.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(Refused::find(&*refused).is_some(), "failed again");
    assert_eq!(*made.lock().unwrap(), 2);
    // The second wait is twice the first.
    tokio::time::advance(std::time::Duration::from_millis(1_500)).await;
    assert!(
        balance.ready().await.unwrap().call(3).await.is_err(),
        "still waiting"
    );
    tokio::time::advance(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        balance.ready().await.unwrap().call(4).await.unwrap(),
        "flaky"
    );
    assert_eq!(*made.lock().unwrap(), 3);
}

/// Peak-EWMA: with nothing in flight at any pick, requests in flight say
/// nothing, and response times decide: the fast instance gets most. Once
/// the slow one is fast again and its estimate has decayed, it is tried
/// again and gets its share back.
#[tokio::test(start_paused = true)]
async fn peak_ewma_prefers_the_faster_instance_and_retries_the_slower() {
    use std::time::Duration;
    let latency = Arc::new(Mutex::new(HashMap::from([
        ("a".to_owned(), Duration::from_millis(50)),
        ("b".to_owned(), Duration::from_millis(5)),
    ])));
    let registry = StaticRegistry::new([api("a", 1), api("b", 2)]).unwrap();
    let watch = registry.watch("api").await.unwrap();
    let delays = latency.clone();
    let make = move |instance: &Instance| {
        let id = instance.id.clone();
        let delays = delays.clone();
        BoxService::new(service_fn(move |_: u64| {
            let id = id.clone();
            let delay = delays.lock().expect("not poisoned")[&id];
            async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(id)
            }
        }))
    };
    let mut balance = Balance::p2c_peak_ewma(
        watch,
        Duration::from_millis(10),
        Duration::from_secs(1),
        make,
    )
    .unwrap();
    let mut answers = Vec::new();
    for n in 0..200 {
        answers.push(send(&mut balance, n).await);
    }
    let seen = counts(answers);
    assert!(seen["b"] >= 190, "{seen:?}");

    latency
        .lock()
        .unwrap()
        .insert("a".to_owned(), Duration::from_millis(5));
    tokio::time::advance(Duration::from_secs(10)).await;
    let mut answers = Vec::new();
    for n in 0..200 {
        answers.push(send(&mut balance, n).await);
    }
    let seen = counts(answers);
    assert!(seen["a"] >= 40 && seen["b"] >= 40, "{seen:?}");
}

/// Peak-EWMA still counts requests in flight: with equal response times,
/// concurrent requests spread over both.
#[tokio::test(start_paused = true)]
async fn peak_ewma_weighs_requests_in_flight() {
    use std::time::Duration;
    let registry = StaticRegistry::new([api("a", 1), api("b", 2)]).unwrap();
    let (a, mut a_handle) = mock::pair::<u64, String>();
    let (b, mut b_handle) = mock::pair::<u64, String>();
    let mocks = Mutex::new(HashMap::from([("a", a), ("b", b)]));
    let mut balance = Balance::p2c_peak_ewma(
        registry.watch("api").await.unwrap(),
        Duration::from_millis(10),
        Duration::from_secs(1),
        move |i: &Instance| mocks.lock().unwrap().remove(i.id.as_str()).unwrap(),
    )
    .unwrap();
    a_handle.allow(100);
    b_handle.allow(100);
    let mut calls = Vec::new();
    for n in 0..10 {
        calls.push(balance.ready().await.unwrap().call(n));
    }
    let spread = balance
        .in_flight("a")
        .unwrap()
        .abs_diff(balance.in_flight("b").unwrap());
    assert!(spread <= 1, "two instances, ten requests, spread {spread}");
}
