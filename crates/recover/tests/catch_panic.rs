//! `CatchPanicLayer`: a panic in every position of a tower service.
#![cfg(feature = "http")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use seawall_core::{BoxError, RefusalKind, Refused};
use seawall_recover::Panicked;
use seawall_recover::tower::{CatchPanicLayer, RespondWith};
use tower::{Layer, Service, ServiceExt};

/// Where the service panics, by the request: `"ready"` arms a panic in the
/// next `poll_ready`, `"call"` panics in `call`, `"future"` in the future.
#[derive(Clone, Default)]
struct Fragile {
    panic_in_ready: bool,
    calls: Arc<AtomicU32>,
}

impl Service<&'static str> for Fragile {
    type Response = &'static str;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<&'static str, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if std::mem::take(&mut self.panic_in_ready) {
            panic!("ready broke");
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: &'static str) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match request {
            "call" => panic!("call broke"),
            "arm" => self.panic_in_ready = true,
            _ => {}
        }
        Box::pin(async move {
            tokio::task::yield_now().await;
            assert!(request != "future", "future broke");
            Ok(request)
        })
    }
}

fn panicked(error: &BoxError) -> &Panicked {
    let refused = Refused::find(&**error).expect("a seawall refusal");
    assert_eq!(refused.kind(), RefusalKind::Panicked);
    refused.downcast_ref::<Panicked>().expect("its reason")
}

#[tokio::test]
async fn a_panic_anywhere_becomes_an_error_and_the_service_goes_on() {
    let inner = Fragile::default();
    let calls = Arc::clone(&inner.calls);
    let mut service = CatchPanicLayer::new().layer(inner);

    let error = service
        .ready()
        .await
        .unwrap()
        .call("call")
        .await
        .unwrap_err();
    assert_eq!(panicked(&error).message(), "call broke");
    let error = service
        .ready()
        .await
        .unwrap()
        .call("future")
        .await
        .unwrap_err();
    assert_eq!(panicked(&error).message(), "future broke");
    assert!(
        panicked(&error)
            .location()
            .unwrap()
            .file()
            .ends_with("catch_panic.rs")
    );

    // "arm" succeeds and makes the next `poll_ready` panic: the service is
    // ready anyway, and answers the next call without calling the inner.
    assert_eq!(
        service.ready().await.unwrap().call("arm").await.unwrap(),
        "arm"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    let error = service
        .ready()
        .await
        .unwrap()
        .call("fine")
        .await
        .unwrap_err();
    assert_eq!(panicked(&error).message(), "ready broke");
    assert_eq!(
        calls.load(Ordering::Relaxed),
        3,
        "the panicked call was not forwarded"
    );

    // And afterwards it works as before.
    assert_eq!(
        service.ready().await.unwrap().call("fine").await.unwrap(),
        "fine"
    );
}

/// A panic payload that panics as it is dropped: the second panic is
/// caught too, and the first still answers as a panic.
#[tokio::test]
async fn a_payload_whose_drop_panics_is_caught_too() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("the payload's drop panicked");
        }
    }
    // Inside another catch, as in a supervised task: the hook records the
    // second panic too.
    let outer = seawall_recover::catch(async {
        let first_line = line!() + 2;
        let caught = seawall_recover::catch(async {
            std::panic::panic_any(Bomb);
            #[allow(unreachable_code)]
            1_u8
        })
        .await;
        (caught, first_line)
    })
    .await;
    let (caught, first_line) = outer.expect("the inner catch caught both");
    let panicked = caught.expect_err("it panicked");
    assert!(!panicked.has_message(), "{panicked}");
    // The location is the first panic's, not the payload's `Drop`'s.
    let line = panicked.location().expect("the hook saw it").line();
    assert_eq!(line, first_line, "{panicked}");
}

#[tokio::test]
async fn every_panic_is_reported_once() {
    let reported = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&reported);
    let mut service = CatchPanicLayer::new()
        .report(move |_: &Panicked| {
            count.fetch_add(1, Ordering::Relaxed);
        })
        .layer(Fragile::default());
    for request in ["call", "future", "arm", "fine", "fine"] {
        let _ = service.ready().await.unwrap().call(request).await;
    }
    assert_eq!(reported.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn a_report_hook_that_panics_is_caught_too() {
    let mut service = CatchPanicLayer::new()
        .report(|panicked: &Panicked| panic!("could not report {}", panicked.message()))
        .layer(Fragile::default());
    for (request, broke) in [("call", "call broke"), ("future", "future broke")] {
        let error = service
            .ready()
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap_err();
        assert_eq!(panicked(&error).message(), broke);
    }
    assert_eq!(
        service.ready().await.unwrap().call("arm").await.unwrap(),
        "arm"
    );
    let error = service
        .ready()
        .await
        .unwrap()
        .call("fine")
        .await
        .unwrap_err();
    assert_eq!(panicked(&error).message(), "ready broke");
}

async fn handler(request: Request<String>) -> Result<Response<String>, Infallible> {
    if request.uri().path() == "/panic" {
        panic!("secret: the database password is hunter2");
    }
    Ok(Response::new("ok".to_owned()))
}

fn get(path: &str, accept: Option<&str>) -> Request<String> {
    let mut builder = Request::get(path);
    if let Some(accept) = accept {
        builder = builder.header(http::header::ACCEPT, accept);
    }
    builder.body(String::new()).expect("a valid request")
}

#[tokio::test]
async fn over_http_a_panic_is_a_500_that_tells_nothing() {
    let service = CatchPanicLayer::http().layer(tower::service_fn(handler));
    let response = service.clone().oneshot(get("/panic", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let marker = response
        .extensions()
        .get::<seawall_core::http::RefusalMarker>();
    assert_eq!(
        marker.map(seawall_core::http::RefusalMarker::kind),
        Some(RefusalKind::Panicked)
    );
    assert_eq!(response.into_body(), "internal error\n");

    // `http()` answers plain text whatever the client asks for;
    // `RefuseWithResponse` answers problem+json to clients that ask.
    let negotiating = CatchPanicLayer::new()
        .answer(seawall_core::http::RefuseWithResponse)
        .layer(tower::service_fn(handler));
    let response = negotiating
        .oneshot(get("/panic", Some("application/json")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body();
    assert!(
        body.starts_with(r#"{"type":"about:blank","title":"Internal Server Error""#),
        "{body}"
    );
    assert!(!body.contains("hunter2"));

    let response = service
        .clone()
        .oneshot(get("/panic", Some("application/json")))
        .await
        .unwrap();
    assert_eq!(response.into_body(), "internal error\n");
    let response = service.oneshot(get("/", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_custom_response_may_say_what_it_likes() {
    let answer = RespondWith(|panicked: Panicked| {
        let mut response = Response::new(format!("sorry: {}", panicked.message()));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
    });
    let service = CatchPanicLayer::new()
        .answer(answer)
        .layer(tower::service_fn(handler));
    let response = service.oneshot(get("/panic", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.into_body().starts_with("sorry: secret"));
}

#[tokio::test]
async fn bodies_of_other_types_work_too() {
    use bytes::Bytes;
    use http_body_util::Full;
    let handler = tower::service_fn(|_: Request<()>| async {
        panic!("boom");
        #[allow(unreachable_code)]
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let service = CatchPanicLayer::http().layer(handler);
    let response = service.oneshot(Request::new(())).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"internal error\n");
}
