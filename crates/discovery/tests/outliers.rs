//! Passive outlier ejection in `Balance`: who goes out, for how long, and
//! what never ejects.
#![cfg(feature = "tower")]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall_core::{BoxError, Outcome, RefusalKind, RefusalReason, Refused};
use seawall_discovery::balance::{Balance, OutlierDetection};
use seawall_discovery::{Discovery, Instance, StaticRegistry};
use tower::util::BoxService;
use tower::{Service, ServiceExt, service_fn};

fn api(id: &str, port: u16) -> Instance {
    Instance::new("api", id, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// How each instance answers, switchable mid-test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Behaviour {
    Fine,
    Fail,
    /// An error that is a seawall refusal (a rate limit inside).
    Refuse,
    /// `Ok`, with a body the test's classifier calls a failure.
    Answer500,
    /// Never answers.
    Hang,
}

#[derive(Clone, Default)]
struct Fleet(Arc<Mutex<HashMap<String, Behaviour>>>);

impl Fleet {
    fn set(&self, id: &str, behaviour: Behaviour) {
        self.0
            .lock()
            .expect("not poisoned")
            .insert(id.to_owned(), behaviour);
    }

    /// A service per instance that answers `Ok(id)` or fails as told.
    fn make(&self) -> impl FnMut(&Instance) -> BoxService<u64, String, BoxError> + Send + 'static {
        let fleet = self.clone();
        move |instance: &Instance| {
            let id = instance.id.clone();
            let fleet = fleet.clone();
            BoxService::new(service_fn(move |_: u64| {
                let behaviour = *fleet
                    .0
                    .lock()
                    .expect("not poisoned")
                    .get(&id)
                    .unwrap_or(&Behaviour::Fine);
                let id = id.clone();
                async move {
                    match behaviour {
                        Behaviour::Fine => Ok(id),
                        Behaviour::Answer500 => Ok(format!("500 from {id}")),
                        Behaviour::Fail => Err::<String, BoxError>(format!("{id} failed").into()),
                        Behaviour::Refuse => Err(Box::new(Refused::new(Limited)) as BoxError),
                        Behaviour::Hang => std::future::pending().await,
                    }
                }
            }))
        }
    }
}

#[derive(Debug)]
struct Limited;

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rate limited inside")
    }
}

impl std::error::Error for Limited {}

impl RefusalReason for Limited {
    fn kind(&self) -> RefusalKind {
        RefusalKind::RateLimited
    }
}

/// Sends `n` requests one after another: who answered (`Err` as "err").
async fn spread<S>(balance: &mut S, n: u64) -> HashMap<String, usize>
where
    S: Service<u64, Response = String, Error = BoxError>,
{
    let mut seen = HashMap::new();
    for at in 0..n {
        let answer = balance.ready().await.expect("ready").call(at).await;
        let who = match answer {
            Ok(id) => id,
            Err(error) => match Refused::find(&*error) {
                Some(refused) => format!("refused: {}", refused.kind()),
                None => error.to_string(),
            },
        };
        *seen.entry(who).or_insert(0) += 1;
    }
    seen
}

fn rules(consecutive: u32, percent: f64) -> OutlierDetection {
    OutlierDetection::builder()
        .consecutive_failures(consecutive)
        .base_ejection_time(Duration::from_secs(10))
        .max_ejection_percent(percent)
        .build()
        .expect("valid rules")
}

fn four() -> StaticRegistry {
    StaticRegistry::new([api("a", 1), api("b", 2), api("c", 3), api("d", 4)])
        .expect("valid instances")
}

#[tokio::test(start_paused = true)]
async fn a_failing_instance_goes_out_then_comes_back_for_longer_each_time() {
    let fleet = Fleet::default();
    fleet.set("d", Behaviour::Fail);
    let registry = four();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), fleet.make())
        .outlier_detection(rules(3, 50.0));

    // Until `d` has failed three times in a row it gets its share.
    let seen = spread(&mut balance, 200).await;
    assert_eq!(seen.get("d failed"), Some(&3), "{seen:?}");
    let out: Vec<_> = balance.ejected().map(|i| i.id.clone()).collect();
    assert_eq!(out, ["d"]);
    let seen = spread(&mut balance, 1_000).await;
    assert!(!seen.contains_key("d failed"), "{seen:?}");

    // Back after the base time, failing again: out again at once, for
    // twice as long.
    tokio::time::advance(Duration::from_secs(10)).await;
    let seen = spread(&mut balance, 200).await;
    assert_eq!(seen.get("d failed"), Some(&3), "{seen:?}");
    tokio::time::advance(Duration::from_secs(19)).await;
    let seen = spread(&mut balance, 200).await;
    assert!(!seen.contains_key("d failed"), "{seen:?}");
    tokio::time::advance(Duration::from_secs(1)).await;

    // Healed meanwhile: it is back and stays.
    fleet.set("d", Behaviour::Fine);
    let seen = spread(&mut balance, 400).await;
    assert!(seen.get("d").is_some_and(|&n| n > 50), "{seen:?}");
    assert_eq!(balance.ejected().count(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_cap_keeps_most_of_a_failing_fleet_in() {
    let fleet = Fleet::default();
    for id in ["a", "b", "c", "d"] {
        fleet.set(id, Behaviour::Fail);
    }
    let registry = four();
    let mut balance = Balance::weighted(registry.watch("api").await.unwrap(), fleet.make())
        .outlier_detection(rules(2, 25.0));
    let seen = spread(&mut balance, 1_000).await;
    // One of four may be out: the other three keep getting requests.
    assert_eq!(balance.ejected().count(), 1);
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 1_000);
}

#[tokio::test(start_paused = true)]
async fn refusals_from_inside_never_eject() {
    let fleet = Fleet::default();
    fleet.set("a", Behaviour::Refuse);
    let registry = four();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), fleet.make())
        .outlier_detection(rules(1, 100.0));
    let seen = spread(&mut balance, 400).await;
    assert!(seen["refused: rate limited"] > 50, "{seen:?}");
    assert_eq!(balance.ejected().count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_classifier_decides_what_fails() {
    let fleet = Fleet::default();
    fleet.set("b", Behaviour::Answer500);
    let registry = four();
    let classify = |result: &Result<String, BoxError>| match result {
        Ok(body) if body.starts_with("500") => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    };
    let mut balance = Balance::consistent_hash(
        registry.watch("api").await.unwrap(),
        |n: &u64| *n % 64,
        fleet.make(),
    )
    .outlier_detection(rules(2, 50.0))
    .classify(classify);
    let seen = spread(&mut balance, 400).await;
    assert_eq!(seen.get("500 from b"), Some(&2), "{seen:?}");
    let out: Vec<_> = balance.ejected().map(|i| i.id.clone()).collect();
    assert_eq!(out, ["b"]);
}

#[tokio::test(start_paused = true)]
async fn the_last_instance_in_is_never_ejected() {
    let fleet = Fleet::default();
    fleet.set("a", Behaviour::Fail);
    fleet.set("b", Behaviour::Fail);
    let registry = StaticRegistry::new([api("a", 1)]).unwrap();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), fleet.make())
        .outlier_detection(rules(2, 100.0));
    let seen = spread(&mut balance, 10).await;
    assert_eq!(seen["a failed"], 10, "{seen:?}");
    assert_eq!(balance.ejected().count(), 0);
    // Of two failing instances, one may go, never both.
    registry.replace([api("a", 1), api("b", 2)]).unwrap();
    let seen = spread(&mut balance, 100).await;
    assert_eq!(seen.values().sum::<usize>(), 100, "{seen:?}");
    assert_eq!(balance.ejected().count(), 1);
}

/// While one instance is out and the other is busy, the balancer waits,
/// and wakes by itself when the ejection is over.
#[tokio::test(start_paused = true)]
async fn a_balancer_waiting_on_busy_instances_wakes_when_one_comes_back() {
    let fleet = Fleet::default();
    fleet.set("a", Behaviour::Fail);
    let registry = StaticRegistry::new([api("a", 1), api("b", 2)]).unwrap();
    // Each instance takes one request at a time.
    let mut make = fleet.make();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), move |i: &Instance| {
        BoxService::new(tower::limit::ConcurrencyLimit::new(make(i), 1))
    })
    .outlier_detection(rules(1, 50.0));
    while balance.ejected().count() == 0 {
        spread(&mut balance, 1).await;
    }
    // `b` now holds a request that never ends: it is busy.
    fleet.set("b", Behaviour::Hang);
    let _stuck = balance.ready().await.unwrap().call(0);
    let waited = tokio::time::timeout(Duration::from_secs(9), balance.ready()).await;
    assert!(waited.is_err(), "nothing is ready while `a` is out");
    // `a`'s ten seconds end: the balancer wakes, and `a` (healed) answers.
    fleet.set("a", Behaviour::Fine);
    let waiting = tokio::time::Instant::now();
    let ready = tokio::time::timeout(Duration::from_secs(5), balance.ready()).await;
    let ready = ready.expect("woken at readmission").unwrap();
    assert!(
        waiting.elapsed() <= Duration::from_millis(1_010),
        "woken {:?} after the wait began, not at the readmission (1 s)",
        waiting.elapsed()
    );
    let answer = ready.call(1).await;
    assert_eq!(answer.unwrap(), "a");
}

#[tokio::test(start_paused = true)]
async fn an_instance_that_changes_at_the_same_address_stays_out() {
    let fleet = Fleet::default();
    fleet.set("c", Behaviour::Fail);
    let registry = four();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), fleet.make())
        .outlier_detection(rules(2, 50.0));
    spread(&mut balance, 100).await;
    assert_eq!(balance.ejected().count(), 1);
    // Its weight changes: it is the same server, still out.
    registry
        .replace([api("a", 1), api("b", 2), api("c", 3).weight(7), api("d", 4)])
        .unwrap();
    let seen = spread(&mut balance, 200).await;
    assert!(!seen.contains_key("c failed"), "{seen:?}");
    // Gone and back at a new address: a new server, judged afresh.
    registry
        .replace([api("a", 1), api("b", 2), api("c", 33), api("d", 4)])
        .unwrap();
    let seen = spread(&mut balance, 200).await;
    assert_eq!(seen.get("c failed"), Some(&2), "{seen:?}");
    let ids: HashSet<_> = balance.ejected().map(|i| i.id.clone()).collect();
    assert_eq!(ids, HashSet::from(["c".to_owned()]));
}

#[tokio::test(start_paused = true)]
async fn a_set_shrunk_to_ejected_instances_brings_them_back() {
    let fleet = Fleet::default();
    fleet.set("c", Behaviour::Fail);
    let registry = four();
    let mut balance = Balance::p2c(registry.watch("api").await.unwrap(), fleet.make())
        .outlier_detection(rules(1, 50.0));
    while balance.ejected().count() == 0 {
        spread(&mut balance, 1).await;
    }
    // Only `c`, which is out, is left: it is used rather than nothing.
    fleet.set("c", Behaviour::Fine);
    registry.replace([api("c", 3)]).unwrap();
    let seen = spread(&mut balance, 5).await;
    assert_eq!(seen.get("c"), Some(&5), "{seen:?}");
}
