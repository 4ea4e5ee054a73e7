//! Retries: limits, backoff, refusals and their waits, budgets, and the
//! layer over panics and HTTP.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use seawall_core::{BoxError, Outcome, RefusalKind, RefusalReason, Refused};
use seawall_recover::{Jitter, Retry, RetryBudget, RetryPolicy};
use tokio::time::Instant;

fn no_jitter(attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .backoff(
            Duration::from_millis(10),
            Duration::from_secs(2),
            Jitter::None,
        )
        .build()
        .expect("a valid policy")
}

/// A refusal of any kind, with or without a wait.
#[derive(Debug)]
struct Refusal(RefusalKind, Option<Duration>);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refusal {}

impl RefusalReason for Refusal {
    fn kind(&self) -> RefusalKind {
        self.0
    }
    fn retry_after(&self) -> Option<Duration> {
        self.1
    }
}

fn refused(kind: RefusalKind, wait: Option<Duration>) -> BoxError {
    Box::new(Refused::new(Refusal(kind, wait)))
}

/// Runs `retry` on a call that fails with `error()` `failures` times, then
/// succeeds; returns the result, the attempts and the time taken.
async fn attempts_with(
    retry: &Retry,
    failures: u32,
    error: impl Fn() -> BoxError,
) -> (Result<u32, BoxError>, u32, Duration) {
    let attempts = AtomicU32::new(0);
    let started = Instant::now();
    let result = retry
        .run(|| async {
            let n = attempts.fetch_add(1, Ordering::Relaxed);
            if n < failures { Err(error()) } else { Ok(n) }
        })
        .await;
    (result, attempts.load(Ordering::Relaxed), started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn errors_are_retried_with_backoff_up_to_the_attempt_limit() {
    let retry = Retry::new(no_jitter(3));
    let (result, attempts, took) = attempts_with(&retry, 2, || "reset".into()).await;
    assert_eq!((result.unwrap(), attempts), (2, 3));
    assert_eq!(took, Duration::from_millis(10 + 20));

    let (result, attempts, _) = attempts_with(&retry, 5, || "reset".into()).await;
    assert_eq!(result.unwrap_err().to_string(), "reset");
    assert_eq!(attempts, 3);

    let (result, attempts, took) = attempts_with(&retry, 0, || "reset".into()).await;
    assert_eq!((result.unwrap(), attempts, took), (0, 1, Duration::ZERO));
}

/// A retry with no wait is sent in the poll that saw the failure: no timer,
/// which would wait for the next tick of tokio's clock (tower's retry
/// tests poll once and expect the second request).
#[tokio::test]
async fn a_retry_without_a_wait_goes_in_the_same_poll() {
    use futures::FutureExt;
    use tower::{Layer, ServiceExt, service_fn};

    let zero = |limit: Option<Duration>| {
        let builder = RetryPolicy::builder().max_attempts(3).backoff(
            Duration::ZERO,
            Duration::ZERO,
            Jitter::None,
        );
        match limit {
            Some(limit) => builder.max_total_time(limit),
            None => builder,
        }
        .build()
        .expect("valid")
    };
    for limit in [None, Some(Duration::from_secs(1))] {
        let retry = Retry::new(zero(limit));
        let (result, attempts, _) = attempts_with(&retry, 2, || "down".into())
            .now_or_never()
            .expect("done in one poll");
        assert_eq!((result.expect("third"), attempts), (2, 3), "run, {limit:?}");

        let calls = std::sync::Arc::new(AtomicU32::new(0));
        let counter = std::sync::Arc::clone(&calls);
        let service =
            seawall_recover::tower::RetryLayer::new(retry).layer(service_fn(move |n: u32| {
                let made = counter.fetch_add(1, Ordering::Relaxed);
                async move {
                    if made < 2 {
                        Err::<u32, BoxError>("down".into())
                    } else {
                        Ok(n)
                    }
                }
            }));
        let answer = service.oneshot(7).now_or_never().expect("done in one poll");
        assert_eq!(answer.expect("third"), 7, "layer, {limit:?}");
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }
}

/// Retries with no wait spend the task's tokio budget: a long run of
/// instant failures yields to the scheduler instead of holding the thread.
#[tokio::test]
async fn retries_without_a_wait_yield_now_and_then() {
    use futures::FutureExt;
    use tower::{Layer, ServiceExt, service_fn};

    let policy = RetryPolicy::builder()
        .max_attempts(1_000)
        .backoff(Duration::ZERO, Duration::ZERO, Jitter::None)
        .build()
        .expect("valid");
    let retry = Retry::new(policy);
    let mut run = Box::pin(attempts_with(&retry, u32::MAX, || "down".into()));
    assert!((&mut run).now_or_never().is_none(), "run yielded");
    assert_eq!(run.await.1, 1_000);

    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let counter = std::sync::Arc::clone(&calls);
    let service =
        seawall_recover::tower::RetryLayer::new(retry).layer(service_fn(move |_: u32| {
            counter.fetch_add(1, Ordering::Relaxed);
            async { Err::<u32, BoxError>("down".into()) }
        }));
    let mut answer = Box::pin(service.oneshot(7));
    assert!((&mut answer).now_or_never().is_none(), "the layer yielded");
    assert!(answer.await.is_err());
    assert_eq!(calls.load(Ordering::Relaxed), 1_000);
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_past_the_time_limit() {
    let policy = RetryPolicy::builder()
        .max_attempts(100)
        .max_total_time(Duration::from_millis(100))
        .backoff(
            Duration::from_millis(10),
            Duration::from_secs(1),
            Jitter::None,
        )
        .build()
        .unwrap();
    let (_, attempts, took) = attempts_with(&Retry::new(policy), 100, || "reset".into()).await;
    // Waits 10, 20, 40 (70 ms); the next 80 would end past 100 ms.
    assert_eq!((attempts, took), (4, Duration::from_millis(70)));
}

#[tokio::test(start_paused = true)]
async fn the_classifier_decides_what_is_worth_retrying() {
    let only_unavailable = |result: &Result<u32, BoxError>| match result {
        Err(error) if error.to_string() == "503" => Outcome::Failure,
        Err(_) => Outcome::Ignored,
        Ok(_) => Outcome::Success,
    };
    let retry = Retry::new(no_jitter(3)).classify(only_unavailable);
    let attempts = AtomicU32::new(0);
    let result = retry
        .run(|| async {
            attempts.fetch_add(1, Ordering::Relaxed);
            Err::<u32, BoxError>("400".into())
        })
        .await;
    assert!(result.is_err());
    assert_eq!(attempts.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn refusals_are_retried_after_their_wait_or_not_at_all() {
    let policy = RetryPolicy::builder()
        .backoff(
            Duration::from_millis(10),
            Duration::from_secs(5),
            Jitter::None,
        )
        .build()
        .unwrap();
    let retry = Retry::new(policy);
    // An open breaker that says "in 2 s": retried after 2 s, not 10 ms.
    let wait = Some(Duration::from_secs(2));
    let (result, attempts, took) =
        attempts_with(&retry, 1, || refused(RefusalKind::Unavailable, wait)).await;
    assert_eq!((result.unwrap(), attempts), (1, 2));
    assert_eq!(took, Duration::from_secs(2));

    // A full bulkhead that gives no wait: not retried.
    let (result, attempts, _) =
        attempts_with(&retry, 1, || refused(RefusalKind::Overloaded, None)).await;
    assert!(result.is_err());
    assert_eq!(attempts, 1);

    // A misconfiguration (a per-client limit that finds no client): it
    // would answer the same again, so not retried.
    let (result, attempts, _) =
        attempts_with(&retry, 1, || refused(RefusalKind::Misconfigured, None)).await;
    assert!(result.is_err());
    assert_eq!(attempts, 1);

    // A timeout: retried after the backoff.
    let (result, attempts, took) =
        attempts_with(&retry, 1, || refused(RefusalKind::TimedOut, None)).await;
    assert_eq!(
        (result.unwrap(), attempts, took),
        (1, 2, Duration::from_millis(10))
    );

    // A wait beyond the longest backoff: not waited, not retried.
    let (result, attempts, took) = attempts_with(&retry, 1, || {
        refused(RefusalKind::Unavailable, Some(Duration::from_secs(30)))
    })
    .await;
    assert!(result.is_err());
    assert_eq!((attempts, took), (1, Duration::ZERO));

    // A wait beyond the time limit: not retried.
    let limited = RetryPolicy::builder()
        .max_total_time(Duration::from_secs(1))
        .build()
        .unwrap();
    let (result, attempts, _) = attempts_with(&Retry::new(limited), 1, || {
        refused(RefusalKind::RateLimited, wait)
    })
    .await;
    assert!(result.is_err());
    assert_eq!(attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_stops_retries() {
    let budget = RetryBudget::new(0.5, 0, Duration::from_secs(10)).unwrap();
    let policy = RetryPolicy::builder()
        .max_attempts(10)
        .backoff(Duration::ZERO, Duration::ZERO, Jitter::None)
        .budget(budget)
        .build()
        .unwrap();
    let retry = Retry::new(policy);
    let mut total = 0;
    for _ in 0..10 {
        let (_, attempts, _) = attempts_with(&retry, u32::MAX, || "down".into()).await;
        total += attempts;
    }
    assert_eq!(total, 10 + 5, "ten requests and half as many retries");
}

/// A `run` dropped while it waits to retry gives that retry back to the
/// budget, as the layer's future does.
#[tokio::test(start_paused = true)]
async fn a_run_dropped_before_its_retry_gives_the_retry_back() {
    let budget = RetryBudget::with_clock(
        1.0,
        0,
        Duration::from_secs(10),
        seawall_core::ManualClock::new(),
    )
    .unwrap();
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .backoff(Duration::from_secs(1), Duration::from_secs(1), Jitter::None)
        .budget(budget.clone())
        .build()
        .unwrap();
    let retry = Retry::new(policy);
    // One request, so one retry allowed; taken, then dropped in its wait.
    let cut = tokio::time::timeout(
        Duration::from_millis(100),
        attempts_with(&retry, u32::MAX, || "down".into()),
    )
    .await;
    assert!(cut.is_err(), "cut off in the backoff");
    assert!(budget.try_withdraw(), "the unmade retry came back");
}

mod budget_bound {
    use super::*;
    use proptest::prelude::*;
    use seawall_core::ManualClock;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// However requests fail, attempts never exceed
        /// requests × (1 + ratio) + floor within one window.
        #[test]
        fn attempts_stay_within_the_budget(
            failures in proptest::collection::vec(0_u32..8, 1..60),
            ratio_percent in 0_u32..=100,
            floor_per_second in 0_u32..3,
            max_attempts in 1_u32..6,
        ) {
            let ratio = f64::from(ratio_percent) / 100.0;
            let window = Duration::from_secs(10);
            let budget =
                RetryBudget::with_clock(ratio, floor_per_second, window, ManualClock::new()).unwrap();
            let policy = RetryPolicy::builder()
                .max_attempts(max_attempts)
                .backoff(Duration::ZERO, Duration::ZERO, Jitter::None)
                .budget(budget)
                .build()
                .unwrap();
            let retry = Retry::new(policy);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let attempts: u32 = runtime.block_on(async {
                let mut total = 0;
                for &failing in &failures {
                    total += attempts_with(&retry, failing, || "down".into()).await.1;
                }
                total
            });
            let requests = failures.len() as f64;
            let floor = f64::from(floor_per_second) * 10.0;
            prop_assert!(
                f64::from(attempts) <= requests * (1.0 + ratio) + floor + 1e-9,
                "{attempts} attempts for {requests} requests at {ratio} + {floor}"
            );
        }
    }
}

#[cfg(feature = "http")]
mod layer {
    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use seawall_recover::tower::{CatchPanicLayer, RetryLayer};
    use std::sync::Arc;
    use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

    #[tokio::test(start_paused = true)]
    async fn a_panic_under_the_retry_layer_is_retried_like_a_timeout() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let service = ServiceBuilder::new()
            .layer(RetryLayer::new(Retry::new(no_jitter(3))))
            .layer(CatchPanicLayer::new())
            .service(service_fn(move |n: u32| {
                let call = counter.fetch_add(1, Ordering::Relaxed);
                async move {
                    assert!(call > 0, "first call falls over");
                    Ok::<u32, BoxError>(n)
                }
            }));
        assert_eq!(service.oneshot(9).await.unwrap(), 9);
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    /// The retry's time came, but the service took long to get ready for
    /// it, past `max_total_time`: no retry starts then; the caller gets the
    /// last answer when the time is up.
    #[tokio::test(start_paused = true)]
    async fn no_retry_starts_past_the_time_limit_while_readying() {
        let policy = RetryPolicy::builder()
            .backoff(
                Duration::from_millis(10),
                Duration::from_secs(1),
                Jitter::None,
            )
            .max_total_time(Duration::from_secs(2))
            .build()
            .unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let one_at_a_time = tower::limit::ConcurrencyLimit::new(
            service_fn(move |_: u32| {
                counter.fetch_add(1, Ordering::Relaxed);
                async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err::<u32, BoxError>("down".into())
                }
            }),
            1,
        );
        // Another caller queues for the one place while the first attempt
        // runs, and keeps it for 10 s.
        let mut other = one_at_a_time.clone();
        let retried = RetryLayer::new(Retry::new(policy)).layer(one_at_a_time);
        let call = tokio::spawn(retried.oneshot(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = tokio::spawn(async move {
            other.ready().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let started = Instant::now();
        let error = call.await.unwrap().unwrap_err();
        assert_eq!(error.to_string(), "down");
        assert_eq!(calls.load(Ordering::Relaxed), 1, "no retry after the limit");
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(1_950),
            "answered when the 2 s were up"
        );
        other.await.unwrap();
    }

    /// A retry taken from the budget but never made (the caller stopped
    /// waiting during the backoff) goes back to the budget.
    #[tokio::test(start_paused = true)]
    async fn a_retry_never_made_goes_back_to_the_budget() {
        let budget = RetryBudget::new(0.0, 1, Duration::from_secs(1)).unwrap(); // one retry
        let policy = RetryPolicy::builder()
            .backoff(
                Duration::from_millis(100),
                Duration::from_secs(1),
                Jitter::None,
            )
            .budget(budget)
            .build()
            .unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let service = RetryLayer::new(Retry::new(policy)).layer(service_fn(move |_: u32| {
            counter.fetch_add(1, Ordering::Relaxed);
            async { Err::<u32, BoxError>("down".into()) }
        }));
        let cut = tokio::time::timeout(Duration::from_millis(50), service.clone().oneshot(1)).await;
        assert!(cut.is_err(), "given up during the backoff");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        // The budget's one retry is still there for the next request.
        assert!(service.oneshot(2).await.is_err());
        assert_eq!(
            calls.load(Ordering::Relaxed),
            3,
            "the next request was retried once"
        );
    }

    /// Answers with the statuses in order (one per call), `Retry-After: 1`
    /// on a 503; counts calls.
    fn upstream(
        statuses: &'static [u16],
        calls: &Arc<AtomicU32>,
    ) -> impl tower::Service<
        Request<String>,
        Response = Response<String>,
        Error = BoxError,
        Future = impl Future<Output = Result<Response<String>, BoxError>> + use<>,
    > + Clone
    + use<> {
        let calls = Arc::clone(calls);
        service_fn(move |_: Request<String>| {
            let n = calls.fetch_add(1, Ordering::Relaxed) as usize;
            let status = statuses[n.min(statuses.len() - 1)];
            async move {
                let mut response = Response::new(String::new());
                *response.status_mut() = StatusCode::from_u16(status).expect("a status");
                if status == 503 {
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, 1.into());
                }
                Ok::<_, BoxError>(response)
            }
        })
    }

    fn request(method: Method) -> Request<String> {
        Request::builder()
            .method(method)
            .uri("/")
            .body(String::new())
            .expect("a request")
    }

    #[tokio::test(start_paused = true)]
    async fn http_retries_idempotent_requests_on_5xx_honouring_retry_after() {
        let calls = Arc::new(AtomicU32::new(0));
        let service = RetryLayer::http(no_jitter(3)).layer(upstream(&[503, 200], &calls));
        let started = Instant::now();
        let response = service.clone().oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(calls.swap(0, Ordering::Relaxed), 2);
        assert_eq!(started.elapsed(), Duration::from_secs(1), "Retry-After: 1");

        let service = RetryLayer::http(no_jitter(3)).layer(upstream(&[503, 200], &calls));
        let response = service.oneshot(request(Method::POST)).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "POST is sent once"
        );
        assert_eq!(calls.swap(0, Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_longer_than_the_longest_backoff_is_not_waited() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let upstream = service_fn(move |_: Request<String>| {
            counter.fetch_add(1, Ordering::Relaxed);
            async move {
                let mut response = Response::new(String::new());
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                let day = http::HeaderValue::from_static("86400");
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, day);
                Ok::<_, BoxError>(response)
            }
        });
        let service = RetryLayer::http(no_jitter(3)).layer(upstream);
        let started = Instant::now();
        let response = service.oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            (calls.load(Ordering::Relaxed), started.elapsed()),
            (1, Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn http_leaves_client_errors_alone_and_retries_429() {
        let calls = Arc::new(AtomicU32::new(0));
        let service = RetryLayer::http(no_jitter(3)).layer(upstream(&[404, 200], &calls));
        let response = service.oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(calls.swap(0, Ordering::Relaxed), 1);

        let service = RetryLayer::http(no_jitter(3)).layer(upstream(&[429, 429, 429, 200], &calls));
        let response = service.oneshot(request(Method::PUT)).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "three attempts"
        );
        assert_eq!(calls.swap(0, Ordering::Relaxed), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_seawall_refusal_answer_is_retried_after_its_wait() {
        use seawall_core::ResponseFormat;
        use seawall_core::http::refusal_response;
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let limited = service_fn(move |_: Request<String>| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            async move {
                Ok::<_, BoxError>(if n == 0 {
                    let wait = Some(Duration::from_millis(1500));
                    refusal_response(
                        &Refusal(RefusalKind::RateLimited, wait),
                        ResponseFormat::Text,
                    )
                } else {
                    Response::new(String::new())
                })
            }
        });
        let service = RetryLayer::http(no_jitter(3)).layer(limited);
        let started = Instant::now();
        let response = service.oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_seawall_misconfiguration_answer_is_not_retried() {
        use seawall_core::ResponseFormat;
        use seawall_core::http::refusal_response;
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let misconfigured = service_fn(move |_: Request<String>| {
            counter.fetch_add(1, Ordering::Relaxed);
            async move {
                Ok::<_, BoxError>(refusal_response::<String>(
                    &Refusal(RefusalKind::Misconfigured, None),
                    ResponseFormat::Text,
                ))
            }
        });
        let service = RetryLayer::http(no_jitter(3)).layer(misconfigured);
        let response = service.oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(calls.load(Ordering::Relaxed), 1, "sent once");
    }
}
