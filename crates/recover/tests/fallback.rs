//! Fallbacks: the plain function, the policy, and the layer in front of a
//! real circuit breaker.

use std::time::Duration;

use seawall_recover::{Fallback, OnError, fallback};

#[tokio::test]
async fn the_function_may_answer_or_decline() {
    let answered = fallback(async { Err::<u32, &str>("down") }, |_| Ok(0)).await;
    assert_eq!(answered, Ok(0));
    let declined = fallback(async { Err::<u32, &str>("bad input") }, Err).await;
    assert_eq!(declined, Err("bad input"));
    let fine = fallback(async { Ok::<u32, &str>(5) }, |_| Ok(0)).await;
    assert_eq!(fine, Ok(5));
}

#[tokio::test]
async fn a_predicate_may_look_at_answers_too() {
    // An "HTTP status" answer: 503s are replaced, 404s are not.
    let degrade: Fallback<u16, ()> =
        Fallback::on(|result: &Result<u16, ()>| matches!(result, Ok(503) | Err(()))).value(200);
    assert_eq!(degrade.apply(Ok(503)), Ok(200));
    assert_eq!(degrade.apply(Ok(404)), Ok(404));
    assert_eq!(degrade.apply(Err(())), Ok(200));
}

#[tokio::test(start_paused = true)]
async fn stale_answers_are_served_only_while_recent() {
    let stale: Fallback<String, &str> = Fallback::on(OnError).stale(Duration::from_secs(10));
    assert_eq!(stale.apply(Err("down")), Err("down"), "nothing good yet");
    assert_eq!(stale.apply(Ok("v1".into())), Ok("v1".into()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(stale.apply(Ok("v2".into())), Ok("v2".into()));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        stale.apply(Err("down")),
        Ok("v2".into()),
        "v2 is 10 s old: still served"
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(stale.apply(Err("down")), Err("down"), "too old");
}

#[tokio::test]
async fn with_gets_the_failed_result() {
    let degrade: Fallback<String, String> =
        Fallback::on(OnError).with(|result| result.or_else(|e| Ok(format!("degraded ({e})"))));
    assert_eq!(
        degrade.call(async { Err("x".to_owned()) }).await,
        Ok("degraded (x)".into())
    );
}

#[cfg(feature = "tower")]
mod behind_a_real_breaker {
    use super::*;
    use seawall_breaker::tower::{CircuitBreakerLayer, TimeoutLayer};
    use seawall_breaker::{BreakerConfig, CircuitBreaker};
    use seawall_core::{BoxError, RefusalKind};
    use seawall_recover::OnRefusal;
    use seawall_recover::tower::FallbackLayer;
    use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

    fn breaker() -> CircuitBreaker {
        let config = BreakerConfig::builder()
            .count_window(4)
            .minimum_calls(3)
            .failure_rate_threshold(50.0)
            .wait_in_open(Duration::from_secs(30))
            .build()
            .expect("a valid config");
        CircuitBreaker::new(config)
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_and_a_timeout_get_the_fallback_other_errors_do_not() {
        let breaker = breaker();
        let upstream = service_fn(|path: &'static str| async move {
            match path {
                "/slow" => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok("late".to_owned())
                }
                "/bad" => Err::<String, BoxError>("400 from upstream".into()),
                _ => Ok(format!("fresh {path}")),
            }
        });
        let degrade = Fallback::on(OnRefusal::kinds([
            RefusalKind::Unavailable,
            RefusalKind::TimedOut,
        ]))
        .value("degraded".to_owned());
        let service = ServiceBuilder::new()
            .layer(FallbackLayer::new(degrade))
            .layer(CircuitBreakerLayer::new(breaker.clone()))
            .layer(TimeoutLayer::new(Duration::from_secs(1)))
            .service(upstream);

        assert_eq!(service.clone().oneshot("/").await.unwrap(), "fresh /");
        // A timeout is a refusal of kind TimedOut: degraded.
        assert_eq!(service.clone().oneshot("/slow").await.unwrap(), "degraded");
        // The dependency's own error passes through.
        let error = service.clone().oneshot("/bad").await.unwrap_err();
        assert_eq!(error.to_string(), "400 from upstream");

        // Two failures of three calls: the breaker opens and refuses.
        assert_eq!(breaker.state(), seawall_breaker::State::Open);
        assert_eq!(service.clone().oneshot("/").await.unwrap(), "degraded");

        // Without the fallback, the same call is refused.
        let bare = CircuitBreakerLayer::new(breaker).layer(service_fn(|_: &'static str| async {
            Ok::<_, BoxError>(String::new())
        }));
        let refused = bare.oneshot("/").await.unwrap_err();
        let refused = seawall_core::Refused::find(&*refused).expect("a refusal");
        assert_eq!(refused.kind(), RefusalKind::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_good_answer_is_served_while_the_breaker_is_open() {
        let breaker = breaker();
        let service = ServiceBuilder::new()
            .layer(FallbackLayer::new(
                Fallback::on(OnRefusal::any()).stale(Duration::from_secs(60)),
            ))
            .layer(CircuitBreakerLayer::new(breaker.clone()))
            .service(service_fn(|n: u32| async move {
                if n == 0 {
                    Err::<u32, BoxError>("down".into())
                } else {
                    Ok(n)
                }
            }));
        assert_eq!(service.clone().oneshot(7).await.unwrap(), 7);
        breaker.force_open();
        assert_eq!(service.clone().oneshot(8).await.unwrap(), 7, "stale");
    }
}
