//! Tandem's own HTTP listener (design §6 inbound, issue 5): `RecordingUrl`
//! media, the recording resource in Twilio's 2010-04-01 JSON shape,
//! `/healthz` and Prometheus `/metrics`, on hyper 1 (HTTP/1.1).
//!
//! Routes (see `docs/recording.md`):
//! - `GET /healthz` → `200 ok`, or `503 stalled: …` when a SIP shard has
//!   work waiting and has not moved for 5 s ([`HttpState::health`]).
//! - `GET /metrics` → [`Metrics`] and the engine's collectors, in the
//!   OpenMetrics text format (prometheus-client).
//! - `GET /2010-04-01/Accounts/{AccountSid}/Recordings/{RecordingSid}` and
//!   `….wav` → the WAV file, streamed; `….mp3` → 415 (not supported).
//!   Public like Twilio's default (the SID is the secret) unless
//!   [`HttpState::media_auth`] is set.
//! - `GET …/Recordings/{RecordingSid}.json` → the recording resource; always
//!   requires HTTP Basic auth with AccountSid and auth token.
//!
//! `HEAD` is answered like `GET` without a body; other methods get 405 with
//! `Allow`. Anything else, an unknown account or a SID that is not `RE` + 32
//! hex digits gets 404, so no request can name a file outside the
//! recordings folder.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::header::{ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::recording::{API_PREFIX, RecordingStore, is_recording_sid};

/// Most connections served at once; further ones wait in the accept backlog.
const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from a recording per body frame.
const CHUNK: usize = 64 * 1024;
/// Largest sidecar served (they are about 1 KiB).
const MAX_META: u64 = 64 * 1024;

/// Response body: a small buffer or a streamed file.
pub type HttpBody = BoxBody<Bytes, io::Error>;

pub use crate::metrics::Metrics;

/// What `/healthz` asks: `Err(why)` when Tandem is not doing its work
/// (a stalled SIP shard), answered 503 with the reason.
pub type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the listener serves from.
#[derive(Clone)]
pub struct HttpState {
    /// Recordings folder, account and URL base.
    pub recordings: RecordingStore,
    /// Auth token: the password of HTTP Basic auth (user = AccountSid).
    pub auth_token: String,
    /// Require Basic auth for recording media too (Twilio's "enforce HTTP
    /// auth on media URLs"); default off: media URLs are public and the
    /// SID (128 random bits) is the secret.
    pub media_auth: bool,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// What `/metrics` shows: [`Metrics`] and whatever collectors were
    /// added to it (the engine's).
    pub registry: Arc<prometheus_client::registry::Registry>,
    /// `/healthz` answers 503 when this fails; without one it answers `ok`.
    pub health: Option<HealthCheck>,
    /// The engine, for the REST API's Calls resource (`None`: not served).
    pub(crate) api: Option<Arc<crate::engine::Ctx>>,
}

impl HttpState {
    /// State with media public; `/metrics` shows `metrics` alone.
    pub fn new(
        recordings: RecordingStore,
        auth_token: impl Into<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        HttpState {
            recordings,
            auth_token: auth_token.into(),
            media_auth: false,
            registry: Arc::new(metrics.registry()),
            metrics,
            health: None,
            api: None,
        }
    }
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("recordings", &self.recordings)
            .field("media_auth", &self.media_auth)
            .finish_non_exhaustive()
    }
}

/// A running listener started by [`spawn`].
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// The bound address (the port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish, and returns when
    /// every connection is closed.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "http listener ended abnormally");
        }
    }
}

/// Binds `addr` and serves on the current runtime until
/// [`HttpServer::shutdown`] (or until the handle is dropped).
pub async fn spawn(addr: SocketAddr, state: HttpState) -> io::Result<HttpServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, mut rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        serve(listener, state, async move {
            // Ends on `shutdown` or when the handle is dropped.
            let _ = rx.wait_for(|stop| *stop).await;
        })
        .await;
    });
    tracing::info!(%addr, "http listener started");
    Ok(HttpServer {
        addr,
        shutdown: tx,
        task,
    })
}

/// Serves `listener` until `shutdown` completes, then closes connections
/// gracefully (requests in flight finish) and returns once they are gone.
pub async fn serve(listener: TcpListener, state: HttpState, shutdown: impl Future<Output = ()>) {
    let state = Arc::new(state);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let state = Arc::clone(&state);
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
    tracing::info!("http listener stopped");
}

/// Answers one request.
pub async fn handle<B>(state: &HttpState, req: Request<B>) -> Response<HttpBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    state.metrics.http_request();
    let (parts, body) = req.into_parts();
    let head = parts.method == Method::HEAD;
    let routed = if parts.uri.path().starts_with("/demo/") {
        crate::demo::route(&parts, body).await
    } else if parts.uri.path().starts_with("/inspector") {
        crate::inspector::route(state, &parts).await
    } else {
        crate::api::route(state, &parts, body).await
    };
    if let Some(resp) = routed {
        tracing::debug!(method = %parts.method, path = parts.uri.path(), status = resp.status().as_u16(),
            "http request");
        if head {
            let (parts, _) = resp.into_parts();
            return Response::from_parts(parts, empty());
        }
        return resp;
    }
    let req = Request::from_parts(parts, ());
    if req.method() != Method::GET && !head {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let resp = route(state, &req).await;
    tracing::debug!(method = %req.method(), path = req.uri().path(), status = resp.status().as_u16(),
        "http request");
    if head {
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, empty());
    }
    resp
}

async fn route<B>(state: &HttpState, req: &Request<B>) -> Response<HttpBody> {
    let path = req.uri().path();
    match path {
        "/healthz" => {
            return match state.health.as_ref().map_or(Ok(()), |check| check()) {
                Ok(()) => text(StatusCode::OK, "ok\n"),
                Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("stalled: {why}\n")),
            };
        }
        "/metrics" => {
            let mut r = text(StatusCode::OK, crate::metrics::render(&state.registry));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            return r;
        }
        _ => {}
    }
    let Some(rest) = path
        .strip_prefix(API_PREFIX)
        .and_then(|p| p.strip_prefix('/'))
    else {
        return not_found();
    };
    let mut parts = rest.split('/');
    let (Some(account), Some("Recordings"), Some(file), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return not_found();
    };
    let store = &state.recordings;
    if account != store.account_sid() {
        return not_found();
    }
    let (sid, ext) = file.split_once('.').unwrap_or((file, ""));
    if !is_recording_sid(sid) {
        return not_found();
    }
    match ext {
        "" | "wav" => {
            if state.media_auth && !authorized(state, req) {
                return unauthorized();
            }
            wav(&store.wav_path(sid)).await
        }
        "json" => {
            if !authorized(state, req) {
                return unauthorized();
            }
            meta(&store.meta_path(sid)).await
        }
        "mp3" => text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "recordings are served as WAV only\n",
        ),
        _ => not_found(),
    }
}

/// Streams a recording.
async fn wav(path: &std::path::Path) -> Response<HttpBody> {
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return not_found(),
        Err(e) => return internal(path, &e),
    };
    let len = match file.metadata().await {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return not_found(),
        Err(e) => return internal(path, &e),
    };
    let body = FileBody {
        file,
        remaining: len,
        buf: BytesMut::new(),
    };
    let mut r = Response::new(BodyExt::boxed(body));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("audio/x-wav"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// Serves a recording's sidecar resource.
async fn meta(path: &std::path::Path) -> Response<HttpBody> {
    let bytes = match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() && m.len() <= MAX_META => tokio::fs::read(path).await,
        Ok(_) => return not_found(),
        Err(e) => Err(e),
    };
    match bytes {
        Ok(b) => {
            let mut r = full(StatusCode::OK, Bytes::from(b));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => not_found(),
        Err(e) => internal(path, &e),
    }
}

/// Whether the request carries `Authorization: Basic` with AccountSid and
/// the auth token (compared in constant time).
fn authorized<B>(state: &HttpState, req: &Request<B>) -> bool {
    authorized_headers(state, req.headers())
}

/// Whether the headers carry HTTP Basic auth with the AccountSid and the
/// auth token.
pub(crate) fn authorized_headers(state: &HttpState, headers: &http::HeaderMap) -> bool {
    let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, cred)) = v.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(cred.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", state.recordings.account_sid(), state.auth_token);
    ct_eq(&decoded, expected.as_bytes())
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An empty body.
pub(crate) fn empty() -> HttpBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A response with a small body.
pub(crate) fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<HttpBody> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<HttpBody> {
    let mut r = full(status, body);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A JSON body.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<HttpBody> {
    let mut r = full(status, body.to_string());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn not_found() -> Response<HttpBody> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

fn unauthorized() -> Response<HttpBody> {
    let mut r = text(StatusCode::UNAUTHORIZED, "authentication required\n");
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Tandem\""),
    );
    r
}

fn internal(path: &std::path::Path, e: &io::Error) -> Response<HttpBody> {
    tracing::error!(path = %path.display(), error = %e, "recording not readable");
    text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
}

/// A file streamed in [`CHUNK`]-sized frames, at most `remaining` bytes (the
/// length when the response started, so a growing file still matches its
/// `Content-Length`).
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = CHUNK.min(usize::try_from(this.remaining).unwrap_or(CHUNK));
        if this.buf.len() < want {
            this.buf.resize(want, 0);
        }
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        ready!(Pin::new(&mut this.file).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "recording shrank while being served",
            ))));
        }
        this.remaining -= n as u64;
        let chunk = this.buf.split_to(n).freeze();
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
