//! Request bodies buffered for retries, and the ones too long to be.
#![cfg(feature = "http")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use parking_lot::Mutex;
use seawall_core::BoxError;
use seawall_recover::tower::{ReplayBody, ReplayBodyLayer, RetryLayer};
use seawall_recover::{Jitter, RetryPolicy};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

type Chunks =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// A body of these chunks with no declared length, and trailers if given.
fn chunks(parts: &[&'static str], trailers: Option<HeaderMap>) -> Chunks {
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = parts
        .iter()
        .map(|part| Ok(Frame::data(Bytes::from_static(part.as_bytes()))))
        .collect();
    if let Some(trailers) = trailers {
        frames.push(Ok(Frame::trailers(trailers)));
    }
    StreamBody::new(futures::stream::iter(frames))
}

/// What each call's body said: data, and trailer `x-sum` if any.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// An upstream that fails with 502 on its first call; keeps what each
/// call's body said (data, and trailer `x-sum` if any).
fn upstream<B>(
    seen: &Seen,
) -> impl tower::Service<
    Request<ReplayBody<B>>,
    Response = Response<String>,
    Error = BoxError,
    Future = impl Future<Output = Result<Response<String>, BoxError>> + use<B>,
> + Clone
+ use<B>
where
    B: http_body::Body<Error = Infallible> + Send + 'static,
    B::Data: Send,
{
    let seen = Arc::clone(seen);
    let calls = Arc::new(AtomicU32::new(0));
    service_fn(move |request: Request<ReplayBody<B>>| {
        let first = calls.fetch_add(1, Ordering::Relaxed) == 0;
        let seen = Arc::clone(&seen);
        async move {
            let collected = request.into_body().collect().await?;
            let trailer = collected
                .trailers()
                .and_then(|t| t.get("x-sum"))
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            let data = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
            seen.lock().push((data, trailer));
            let mut response = Response::new(String::new());
            if first {
                *response.status_mut() = StatusCode::BAD_GATEWAY;
            }
            Ok::<_, BoxError>(response)
        }
    })
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .backoff(
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
            Jitter::None,
        )
        .build()
        .expect("a valid policy")
}

#[tokio::test]
async fn a_short_body_is_sent_again_with_its_trailers() {
    let seen = Seen::default();
    let service = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(16))
        .layer(RetryLayer::http(policy()))
        .service(upstream(&seen));
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", "42".parse().unwrap());
    let request = Request::put("/")
        .body(chunks(&["hel", "lo"], Some(trailers)))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let expected = ("hello".to_owned(), Some("42".to_owned()));
    assert_eq!(*seen.lock(), [expected.clone(), expected]);
}

#[tokio::test]
async fn a_long_body_is_sent_once_whole() {
    let seen = Seen::default();
    let service = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(4))
        .layer(RetryLayer::http(policy()))
        .service(upstream(&seen));
    let request = Request::put("/")
        .body(chunks(&["abc", "def", "ghi"], None))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "not retried");
    assert_eq!(*seen.lock(), [("abcdefghi".to_owned(), None)]);
}

#[tokio::test]
async fn a_declared_long_body_is_not_read_ahead() {
    let seen = Seen::default();
    let service = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(4))
        .layer(RetryLayer::http(policy()))
        .service(upstream(&seen));
    let request = Request::put("/")
        .body(Full::<Bytes>::from("too long"))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(*seen.lock(), [("too long".to_owned(), None)]);
}

#[tokio::test]
async fn a_post_is_sent_once_even_when_short() {
    let seen = Seen::default();
    let service = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(64))
        .layer(RetryLayer::http(policy()))
        .service(upstream(&seen));
    let request = Request::builder()
        .method(Method::POST)
        .uri("/")
        .body(Full::<Bytes>::from("x"))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(seen.lock().len(), 1);
}

#[tokio::test]
async fn a_body_that_fails_midway_reaches_the_inner_service_failed_and_is_sent_once() {
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(Bytes::from_static(b"par"))),
        Err(std::io::Error::other("client went away")),
    ];
    let body = StreamBody::new(futures::stream::iter(frames));
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let upstream = service_fn(move |request: Request<ReplayBody<_>>| {
        counter.fetch_add(1, Ordering::Relaxed);
        async move {
            let body = request.into_body();
            assert!(!body.is_replayable());
            let error = body.collect().await.expect_err("the read failed");
            assert_eq!(error.to_string(), "client went away");
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            Ok::<_, BoxError>(response)
        }
    });
    let service = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(64))
        .layer(RetryLayer::http(policy()))
        .service(upstream);
    let response = service
        .oneshot(Request::put("/").body(body).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "a failed body is not sent again"
    );
}

#[tokio::test]
async fn a_whole_body_says_its_length() {
    use http_body::Body as _;
    let seen = Arc::new(Mutex::new(None));
    let hint = Arc::clone(&seen);
    let upstream = service_fn(move |request: Request<ReplayBody<Chunks>>| {
        *hint.lock() = request.body().size_hint().exact();
        async { Ok::<_, BoxError>(Response::new(String::new())) }
    });
    let service = ReplayBodyLayer::new(64).layer(upstream);
    let request = Request::put("/")
        .body(chunks(&["ab", "cde"], None))
        .unwrap();
    service.oneshot(request).await.unwrap();
    assert_eq!(*seen.lock(), Some(5));
}
