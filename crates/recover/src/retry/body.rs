//! [`ReplayBodyLayer`]: request bodies buffered so a retry can send them
//! again.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Request};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use seawall_core::BoxError;
use tower::{Layer, Service, ServiceExt};

use super::http::IdempotentOnly;
use super::service::ReplayRequest;

/// Buffers request bodies of up to `limit` bytes before the request goes
/// on, so that the [`RetryLayer`](crate::tower::RetryLayer) or
/// [`HedgeLayer`](crate::tower::HedgeLayer) inside can send them again. A
/// body that turns out longer is sent once, as it streams (what was read
/// first, then the rest), and the request is neither retried nor hedged.
///
/// Buffering waits for the whole body (up to the limit) before the first
/// attempt starts, and holds it in memory until the request is done: keep
/// the limit to what requests worth retrying carry (say 64 KiB). A body
/// whose declared length is over the limit is not read ahead at all. The
/// inner service gets `Request<ReplayBody<B>>`, whose copies
/// [`IdempotentOnly`] makes. The services are always ready: a request's
/// body is read first, then a clone of the inner service is readied for it,
/// so a slow upload holds none of the inner service's capacity (limit how
/// many bodies are read at once outside this layer).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use seawall_recover::RetryPolicy;
/// use seawall_recover::tower::{ReplayBody, ReplayBodyLayer, RetryLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// let calls = Arc::new(AtomicU32::new(0));
/// let counter = Arc::clone(&calls);
/// let upstream = service_fn(move |request: Request<ReplayBody<Full<bytes::Bytes>>>| {
///     let first = counter.fetch_add(1, Ordering::Relaxed) == 0;
///     async move {
///         let body = request.into_body().collect().await?.to_bytes();
///         let mut response = Response::new(String::from_utf8_lossy(&body).into_owned());
///         if first {
///             *response.status_mut() = StatusCode::BAD_GATEWAY;
///         }
///         Ok::<_, seawall_core::BoxError>(response)
///     }
/// });
/// let service = ServiceBuilder::new()
///     .layer(ReplayBodyLayer::new(64 * 1024))
///     .layer(RetryLayer::http(RetryPolicy::default()))
///     .service(upstream);
///
/// let request = Request::put("/doc").body(Full::from("hello")).unwrap();
/// let response = service.oneshot(request).await.unwrap();
/// assert_eq!((response.status(), response.body().as_str()), (StatusCode::OK, "hello"));
/// assert_eq!(calls.load(Ordering::Relaxed), 2);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ReplayBodyLayer {
    limit: usize,
}

impl ReplayBodyLayer {
    /// Buffers bodies of up to `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for ReplayBodyLayer {
    type Service = ReplayBodyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReplayBodyService {
            inner,
            limit: self.limit,
        }
    }
}

/// The service [`ReplayBodyLayer`] makes.
#[derive(Debug, Clone)]
pub struct ReplayBodyService<S> {
    inner: S,
    limit: usize,
}

impl<S> ReplayBodyService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The response future of [`ReplayBodyService`]: the body read, then the
/// call.
pub type ReplayBodyFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<Request<B>> for ReplayBodyService<S>
where
    S: Service<Request<ReplayBody<B>>> + Clone + Send + 'static,
    S::Future: Send,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ReplayBodyFuture<S::Response, S::Error>;

    /// Always ready: a request first has its body read, which may take as
    /// long as the client takes to send it, and only then waits for the
    /// inner service (a clone, in its future). So a slow upload holds no
    /// `Buffer` slot or concurrency permit while it arrives; a limit on how
    /// many bodies are read at once belongs outside this layer.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let limit = self.limit;
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = ReplayBody::read(body, limit).await;
            inner.oneshot(Request::from_parts(parts, body)).await
        })
    }
}

pin_project! {
    /// A request body that [`ReplayBodyLayer`] read: whole (it can be sent
    /// again), or too long (what was read, then the rest as it streams).
    pub struct ReplayBody<B> {
        #[pin]
        state: State<B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<B> {
        Whole { data: Bytes, trailers: Option<HeaderMap> },
        Streaming { read: Bytes, #[pin] rest: B },
        Failed { read: Bytes, error: Option<BoxError> },
    }
}

impl<B> ReplayBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    /// Reads `body` up to `limit` bytes.
    async fn read(mut body: B, limit: usize) -> Self {
        let declared = body.size_hint().exact();
        if declared.is_some_and(|length| usize::try_from(length).map_or(true, |n| n > limit)) {
            return Self::streaming(Bytes::new(), body);
        }
        let mut buffer = BytesMut::new();
        loop {
            match body.frame().await {
                None => return Self::whole(buffer.freeze(), None),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        let over = buffer.len().saturating_add(data.remaining()) > limit;
                        let chunk = data.copy_to_bytes(data.remaining());
                        if over {
                            // Not copied into the buffer: sent on as it is.
                            let read = if buffer.is_empty() {
                                chunk
                            } else {
                                buffer.extend_from_slice(&chunk);
                                buffer.freeze()
                            };
                            return Self::streaming(read, body);
                        }
                        buffer.extend_from_slice(&chunk);
                    }
                    Err(frame) => {
                        return match frame.into_trailers() {
                            Ok(trailers) => Self::whole(buffer.freeze(), Some(trailers)),
                            // A frame of a kind not known here: pass the
                            // rest on once.
                            Err(_) => Self::streaming(buffer.freeze(), body),
                        };
                    }
                },
                Some(Err(error)) => {
                    return Self {
                        state: State::Failed {
                            read: buffer.freeze(),
                            error: Some(error.into()),
                        },
                    };
                }
            }
        }
    }
}

impl<B> ReplayBody<B> {
    fn whole(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            state: State::Whole { data, trailers },
        }
    }

    fn streaming(read: Bytes, rest: B) -> Self {
        Self {
            state: State::Streaming { read, rest },
        }
    }

    /// A copy, if the body was read whole.
    #[must_use]
    pub fn try_clone(&self) -> Option<Self> {
        match &self.state {
            State::Whole { data, trailers } => Some(Self::whole(data.clone(), trailers.clone())),
            State::Streaming { .. } | State::Failed { .. } => None,
        }
    }

    /// Whether the body was read whole, so it can be sent again.
    #[must_use]
    pub fn is_replayable(&self) -> bool {
        matches!(self.state, State::Whole { .. })
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().state.project() {
            StateProj::Whole { data, trailers } => {
                if !data.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(std::mem::take(data)))));
                }
                Poll::Ready(
                    trailers
                        .take()
                        .map(|trailers| Ok(Frame::trailers(trailers))),
                )
            }
            StateProj::Streaming { read, rest } => {
                if !read.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(std::mem::take(read)))));
                }
                rest.poll_frame(cx).map(|frame| {
                    frame.map(|frame| match frame {
                        Ok(frame) => {
                            Ok(frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
                        }
                        Err(error) => Err(error.into()),
                    })
                })
            }
            StateProj::Failed { read, error } => {
                if !read.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(std::mem::take(read)))));
                }
                Poll::Ready(error.take().map(Err))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Whole { data, trailers } => data.is_empty() && trailers.is_none(),
            State::Streaming { read, rest } => read.is_empty() && rest.is_end_stream(),
            State::Failed { read, error } => read.is_empty() && error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Whole { data, .. } => SizeHint::with_exact(data.len() as u64),
            State::Streaming { read, rest } => {
                let read = read.len() as u64;
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(read));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
            State::Failed { read, .. } => SizeHint::with_exact(read.len() as u64),
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Whole { data, .. } => format!("whole, {} bytes", data.len()),
            State::Streaming { read, .. } => format!("streaming, {} bytes read", read.len()),
            State::Failed { .. } => "failed".to_owned(),
        };
        f.debug_struct("ReplayBody").field("state", &state).finish()
    }
}

/// Copies requests with an idempotent method whose body was read whole.
impl<B> ReplayRequest<Request<ReplayBody<B>>> for IdempotentOnly {
    fn replay(&self, request: &Request<ReplayBody<B>>) -> Option<Request<ReplayBody<B>>> {
        if !request.method().is_idempotent() {
            return None;
        }
        let body = request.body().try_clone()?;
        let mut copy = Request::new(body);
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}
