//! The recording webhook server: an HTTP/1.1 server on loopback that records
//! every request (method, path, query, headers, form parameters, arrival
//! order) and answers from per-path scripts, a TwiML directory or a default.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Largest request body the recorder reads; larger bodies get 413.
const MAX_BODY: usize = 1024 * 1024;

/// Errors of the recording server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address we tried to bind.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The request log file could not be opened.
    #[error("cannot open request log {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Fewer requests than awaited arrived before the deadline.
    #[error("waited {after:?} for {wanted}, got {got} matching requests")]
    Timeout {
        /// How many were awaited.
        wanted: usize,
        /// How many matching requests had arrived.
        got: usize,
        /// How long we waited.
        after: Duration,
    },
}

/// One scripted answer: status, body, content type, extra headers and a delay
/// before the answer is sent (the request is recorded on arrival).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response body.
    pub body: String,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Further response headers (e.g. `Location`).
    pub headers: Vec<(String, String)>,
    /// Delay before answering.
    pub delay: Duration,
}

impl ScriptedResponse {
    /// 200 with a TwiML body (`text/xml`).
    pub fn twiml(body: impl Into<String>) -> Self {
        Self {
            status: 200,
            body: body.into(),
            content_type: Some("text/xml".to_owned()),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// The given status with an empty `text/plain` body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            body: String::new(),
            content_type: Some("text/plain".to_owned()),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Replaces the body and its content type (`None` sends no `Content-Type`).
    pub fn with_body(mut self, content_type: Option<&str>, body: impl Into<String>) -> Self {
        self.content_type = content_type.map(str::to_owned);
        self.body = body.into();
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Waits this long before answering.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One request as the recorder saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Arrival order, from 0.
    pub index: usize,
    /// When it arrived (tokio clock).
    pub received_at: Instant,
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Bytes,
    /// Decoded query parameters, in order.
    pub query_params: Vec<(String, String)>,
    /// Decoded form parameters (`application/x-www-form-urlencoded` body), in order.
    pub form_params: Vec<(String, String)>,
}

impl RecordedRequest {
    /// First header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A parameter from the form body, else from the query.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form_params
            .iter()
            .chain(self.query_params.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Path plus `?query` when there is one, as the client sent it.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// How to start a recorder.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Serve `DIR/<path>` as TwiML for paths that have no script.
    pub twiml_dir: Option<PathBuf>,
    /// Append each request as one JSON line to this file.
    pub log_file: Option<PathBuf>,
    /// Answer for paths with no script and no file.
    pub default_response: ScriptedResponse,
    /// Requests kept in memory; later ones are counted but not stored.
    pub max_recorded: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            port: 0,
            twiml_dir: None,
            log_file: None,
            default_response: ScriptedResponse::twiml("<Response/>"),
            max_recorded: 10_000,
        }
    }
}

#[derive(Default)]
struct Route {
    once: VecDeque<ScriptedResponse>,
    always: Option<ScriptedResponse>,
}

struct State {
    config: RecorderConfig,
    started: Instant,
    routes: Mutex<HashMap<String, Route>>,
    requests: Mutex<Vec<RecordedRequest>>,
    arrived: watch::Sender<usize>,
    log: Option<tokio::sync::Mutex<tokio::fs::File>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running recording server; stops (and drops its connections) when dropped.
pub struct WebhookRecorder {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for WebhookRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookRecorder {
    /// Starts a recorder on 127.0.0.1 with a free port and the default answer.
    pub async fn start() -> Result<Self, RecorderError> {
        Self::start_with(RecorderConfig::default()).await
    }

    /// Starts a recorder with the given configuration.
    pub async fn start_with(config: RecorderConfig) -> Result<Self, RecorderError> {
        let want = SocketAddr::from(([127, 0, 0, 1], config.port));
        let listener = TcpListener::bind(want)
            .await
            .map_err(|source| RecorderError::Bind { addr: want, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| RecorderError::Bind { addr: want, source })?;
        let log = match &config.log_file {
            Some(path) => {
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|source| RecorderError::Log {
                        path: path.clone(),
                        source,
                    })?;
                Some(tokio::sync::Mutex::new(file))
            }
            None => None,
        };
        let state = Arc::new(State {
            config,
            started: Instant::now(),
            routes: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            arrived: watch::channel(0).0,
            log,
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(Self { addr, state, task })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url()` followed by `path` (which should start with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// Answers every request to `path` with `response` (after one-shot answers).
    pub fn respond(&self, path: &str, response: ScriptedResponse) {
        lock(&self.state.routes)
            .entry(path.to_owned())
            .or_default()
            .always = Some(response);
    }

    /// Answers the next request to `path` with `response`; one-shot answers
    /// queue up and are used in order before the path's permanent answer.
    pub fn respond_once(&self, path: &str, response: ScriptedResponse) {
        lock(&self.state.routes)
            .entry(path.to_owned())
            .or_default()
            .once
            .push_back(response);
    }

    /// Every request stored so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// Stored requests to `path`, in arrival order.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        lock(&self.state.requests)
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// How many requests arrived (stored or not).
    pub fn count(&self) -> usize {
        *self.state.arrived.borrow()
    }

    /// Waits until at least `n` requests arrived; returns the stored ones.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, RecorderError> {
        self.wait_matching(n, timeout, |_| true).await
    }

    /// Waits until at least `n` requests to `path` arrived; returns them.
    pub async fn wait_for_path(
        &self,
        path: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, RecorderError> {
        self.wait_matching(n, timeout, |r| r.path == path).await
    }

    /// Waits until at least `n` stored requests satisfy `pred`; returns them.
    pub async fn wait_matching(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&RecordedRequest) -> bool,
    ) -> Result<Vec<RecordedRequest>, RecorderError> {
        let matching = || -> Vec<RecordedRequest> {
            lock(&self.state.requests)
                .iter()
                .filter(|r| pred(r))
                .cloned()
                .collect()
        };
        let mut rx = self.state.arrived.subscribe();
        let wait = async {
            loop {
                let found = matching();
                if found.len() >= n {
                    return found;
                }
                if rx.changed().await.is_err() {
                    // The sender lives in `state`, which we hold: unreachable in
                    // practice, but never spin.
                    std::future::pending::<()>().await;
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(found) => Ok(found),
            Err(_) => Err(RecorderError::Timeout {
                wanted: n,
                got: matching().len(),
                after: timeout,
            }),
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, "recorder accept failed");
                continue;
            }
        };
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&state), req));
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%err, "recorder connection ended with an error");
            }
        });
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(plain(413)),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let is_form = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let query = parts.uri.query().map(str::to_owned);
    let decode = |raw: &[u8]| -> Vec<(String, String)> {
        form_urlencoded::parse(raw)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    let path = parts.uri.path().to_owned();
    let mut recorded = RecordedRequest {
        index: 0,
        received_at: Instant::now(),
        method: parts.method.as_str().to_owned(),
        path: path.clone(),
        query_params: query
            .as_deref()
            .map(|q| decode(q.as_bytes()))
            .unwrap_or_default(),
        query,
        headers,
        form_params: if is_form { decode(&body) } else { Vec::new() },
        body,
    };
    {
        let mut stored = lock(&state.requests);
        recorded.index = *state.arrived.borrow();
        if stored.len() < state.config.max_recorded {
            stored.push(recorded.clone());
        }
        state.arrived.send_modify(|n| *n += 1);
    }
    if let Some(log) = &state.log {
        let since = recorded.received_at.duration_since(state.started);
        let mut line = crate::json::request_line(&recorded, since);
        line.push('\n');
        let mut file = log.lock().await;
        if let Err(err) = file.write_all(line.as_bytes()).await {
            tracing::warn!(%err, "recorder cannot write its request log");
        }
    }
    let scripted = pick_response(&state, &path).await;
    if !scripted.delay.is_zero() {
        tokio::time::sleep(scripted.delay).await;
    }
    Ok(build_response(&scripted))
}

async fn pick_response(state: &State, path: &str) -> ScriptedResponse {
    {
        let mut routes = lock(&state.routes);
        if let Some(route) = routes.get_mut(path) {
            if let Some(once) = route.once.pop_front() {
                return once;
            }
            if let Some(always) = &route.always {
                return always.clone();
            }
        }
    }
    if let Some(dir) = &state.config.twiml_dir
        && let Some(file) = safe_join(dir, path)
        && let Ok(text) = tokio::fs::read_to_string(&file).await
    {
        return ScriptedResponse::twiml(text);
    }
    state.config.default_response.clone()
}

/// `dir` joined with the URL path, refusing anything but plain components.
fn safe_join(dir: &Path, url_path: &str) -> Option<PathBuf> {
    let relative = Path::new(url_path.trim_start_matches('/'));
    if relative.as_os_str().is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(dir.join(relative))
}

fn plain(status: u16) -> Response<Full<Bytes>> {
    build_response(&ScriptedResponse::status(status))
}

fn build_response(scripted: &ScriptedResponse) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(scripted.status);
    if let Some(ct) = &scripted.content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct.as_str());
    }
    for (name, value) in &scripted.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(scripted.body.clone())))
        .unwrap_or_else(|err| {
            tracing::warn!(%err, "scripted response is not valid HTTP; answering 500");
            let mut fallback = Response::new(Full::new(Bytes::new()));
            *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_parent_and_root_components() {
        let dir = Path::new("/srv/twiml");
        assert_eq!(
            safe_join(dir, "/voice/a.xml"),
            Some(PathBuf::from("/srv/twiml/voice/a.xml"))
        );
        assert_eq!(safe_join(dir, "/../etc/passwd"), None);
        assert_eq!(
            safe_join(dir, "/a/./b"),
            Some(PathBuf::from("/srv/twiml/a/b"))
        );
        assert_eq!(safe_join(dir, "/"), None);
    }
}
