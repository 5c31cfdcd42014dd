//! The engine's front door: routes every endpoint event by Call-ID to the
//! call actor that owns it (parent and child legs alike), and starts a new
//! call for an out-of-dialog INVITE from an allowed source (design §3, §4
//! step 1). Unknown in-dialog requests get 481, unknown sources 403.
//!
//! An event for a live call is routed on the shard's own task (`forward`,
//! installed as the endpoint's router); the dispatcher ([`Engine::run`])
//! gets the rest: new calls, requests the engine answers itself, events of
//! calls that have ended.

use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use tandem_sip::auth::{Algorithm, Secret};
use tandem_sip::builder::{IdGen, response_to};
use tandem_sip::message::{HeadersExt, Method, Request};
use tandem_sip::registrar::{RegisterError, RegisterOutcome, Registrar, RegistrarConfig};
use tandem_transport::{EndpointEvent, EndpointHandle, Peer, ServerTx, TuEvent};
use tokio::sync::mpsc;

use crate::admission::{Admission, Refusal};
use crate::call::{self, CallMsg, Mailbox};
use crate::config::EngineConfig;
use crate::http::{HttpServer, HttpState, Metrics};
use crate::media::Media;
use crate::media_ops::{Prompts, PromptsConfig};
use crate::recording::RecordingStore;

/// Errors starting the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The webhook client could not be built.
    #[error("webhook client: {0}")]
    Webhook(#[from] tandem_webhook::ClientBuildError),
    /// The RTP port pool could not be bound.
    #[error("RTP port pool: {0}")]
    Rtp(#[from] tandem_rtp::PoolError),
    /// The call history could not be opened.
    #[error("call history: {0}")]
    History(#[from] crate::history::HistoryError),
}

/// State shared by the dispatcher and every call.
pub(crate) struct Ctx {
    pub cfg: Arc<EngineConfig>,
    pub ep: EndpointHandle,
    pub webhook: tandem_webhook::WebhookClient,
    pub callbacks: tandem_webhook::CallbackDispatcher,
    /// Call-ID (parent or child leg) -> the actor owning it.
    pub calls: DashMap<String, Mailbox>,
    pub media: Option<Media>,
    /// Looks up SIP servers (RFC 3263) for trunks and `<Sip>` URIs.
    pub dns: crate::dns::Resolver,
    /// Bindings of `<Client>` identities (RFC 3261 §10.3); locked briefly, never across an await.
    pub registrar: Mutex<Registrar>,
    /// Speech and audio for `<Say>` and `<Play>`.
    pub prompts: Arc<Prompts>,
    /// Where recordings are written and how they are addressed.
    pub recordings: RecordingStore,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Local TwiML files, read at most once a second each (no file open per call).
    pub docs: DashMap<std::path::PathBuf, CachedDoc>,
    /// Admission control and throttles.
    pub admission: Admission,
    /// `<Conference>` rooms.
    pub rooms: Arc<crate::conference::Rooms>,
    /// `<Enqueue>` queues.
    pub queues: crate::queue::Queues,
    /// Call history (SQLite), when configured.
    pub history: Option<crate::history::History>,
    /// CallSid (a parent's or a child's, not yet over) -> the actor owning
    /// it: how the REST API reaches a live call.
    pub live: DashMap<String, Mailbox>,
}

/// A local TwiML file as last read.
#[derive(Debug, Clone)]
pub(crate) struct CachedDoc {
    pub body: Arc<str>,
    /// The parsed document, when it parses.
    pub parsed: Option<Arc<tandem_twiml::Document>>,
    pub url: Option<url::Url>,
    loaded: std::time::Instant,
}

/// How long a local TwiML file is served from memory before it is read again.
const DOC_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl Ctx {
    /// A local TwiML file, from memory when read less than a second ago.
    pub fn twiml_file(&self, path: &std::path::Path) -> Result<CachedDoc, String> {
        let now = std::time::Instant::now();
        if let Some(d) = self.docs.get(path)
            && now.duration_since(d.loaded) < DOC_TTL
        {
            return Ok(d.clone());
        }
        let body: Arc<str> = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .into();
        let url = std::fs::canonicalize(path)
            .ok()
            .and_then(|p| url::Url::from_file_path(p).ok());
        let parsed = tandem_twiml::parse(&body).ok().map(Arc::new);
        let doc = CachedDoc {
            body,
            parsed,
            url,
            loaded: now,
        };
        self.docs.insert(path.to_owned(), doc.clone());
        Ok(doc)
    }

    /// The live contacts of a `<Client>` identity: (contact URI, where to send).
    pub fn registrar_contacts(&self, identity: &str) -> Vec<(String, Peer)> {
        let now = tokio::time::Instant::now().into_std();
        let reg = self.registrar.lock().unwrap_or_else(|p| p.into_inner());
        reg.contacts(now, identity)
            .into_iter()
            .map(|b| (b.contact, b.source))
            .collect()
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("calls", &self.calls.len())
            .finish()
    }
}

/// Stops the tasks it holds when dropped.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// A running engine.
#[derive(Debug)]
pub struct Engine {
    ctx: Arc<Ctx>,
}

impl Engine {
    /// Builds the engine's shared state (webhook client, RTP pool).
    pub fn new(cfg: EngineConfig, ep: EndpointHandle) -> Result<Self, EngineError> {
        let metrics = Arc::new(Metrics::default());
        let webhook = tandem_webhook::WebhookClient::new(tandem_webhook::ClientConfig {
            auth_token: cfg.auth_token.clone(),
            twiml_timeout: cfg.webhook_timeout,
            ..tandem_webhook::ClientConfig::default()
        })?
        .observed(Arc::new(WebhookTimes(metrics.clone())));
        let callbacks = tandem_webhook::CallbackDispatcher::new(
            webhook.clone(),
            tandem_webhook::CallbackConfig::default(),
        );
        let media = match &cfg.media {
            Some(m) => Some(Media::new(m)?),
            None => None,
        };
        let mut ids = IdGen::from_entropy();
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(4) {
            chunk.copy_from_slice(&ids.u32().to_le_bytes());
        }
        let realm = cfg
            .sip_host
            .rsplit_once(':')
            .map_or(cfg.sip_host.as_str(), |(h, _)| h)
            .to_owned();
        let mut reg_cfg = RegistrarConfig::new(realm);
        // One challenge per algorithm, in the configured order (`[sip]
        // digest_algorithms`; MD5 alone by default: clients on libre up to
        // 1.x, baresip 1.0 among them, fail on a challenge whose algorithm
        // they do not know instead of skipping it).
        reg_cfg.digest.algorithms = if cfg.digest_algorithms.is_empty() {
            vec![Algorithm::Md5]
        } else {
            cfg.digest_algorithms.clone()
        };
        let registrar = Registrar::new(reg_cfg, key, tokio::time::Instant::now().into_std(), ids);
        let recordings = RecordingStore::new(&cfg.recording_dir, &cfg.public_url, &cfg.account_sid);
        match recordings.repair_all() {
            Ok(report) => tracing::debug!(?report, "recordings checked"),
            Err(e) => tracing::warn!(error = %e, "recordings folder not checked"),
        }
        let history = match &cfg.database {
            Some(path) => Some(crate::history::History::open(path, cfg.retention)?),
            None => None,
        };
        let prompts = Arc::new(Prompts::new(
            PromptsConfig::new(cfg.recording_dir.join("tts-cache")),
            Some(webhook.clone()),
        ));
        let ctx = Arc::new(Ctx {
            prompts,
            recordings: recordings.clone(),
            metrics,
            docs: DashMap::new(),
            admission: Admission::new(cfg.limits, std::time::Instant::now()),
            dns: crate::dns::Resolver::new(&cfg.dns_servers),
            queues: crate::queue::Queues::default(),
            rooms: Arc::new(
                crate::conference::Rooms::new(
                    callbacks.clone(),
                    cfg.account_sid.clone(),
                    Some(recordings.clone()),
                )
                .with_history(history.clone()),
            ),
            cfg: Arc::new(cfg),
            ep,
            webhook,
            callbacks,
            calls: DashMap::new(),
            history,
            live: DashMap::new(),
            media,
            registrar: Mutex::new(registrar),
        });
        let forward = Arc::new(Forward(Arc::downgrade(&ctx)));
        if ctx.ep.set_router(forward).is_err() {
            // Another engine took this endpoint first: every event goes
            // through the dispatcher instead.
            tracing::debug!("endpoint has a router already; events go through the dispatcher");
        }
        Ok(Self { ctx })
    }

    /// Starts Tandem's HTTP listener (recordings, `/healthz`, `/metrics`).
    pub async fn serve_http(&self, addr: std::net::SocketAddr) -> std::io::Result<HttpServer> {
        let mut state = HttpState::new(
            self.ctx.recordings.clone(),
            self.ctx.cfg.auth_token.clone(),
            self.ctx.metrics.clone(),
        );
        state.media_auth = self.ctx.cfg.media_auth;
        state.api = Some(self.ctx.clone());
        let ep = self.ctx.ep.clone();
        state.health = Some(Arc::new(move || {
            ep.health(HEALTH_STALL).map_err(|e| e.to_string())
        }));
        let mut registry = self.ctx.metrics.registry();
        registry.register_collector(Box::new(EngineCollector(self.ctx.clone())));
        state.registry = Arc::new(registry);
        crate::http::spawn(addr, state).await
    }

    /// Number of live call legs (parent and children), for tests and metrics.
    pub fn live_legs(&self) -> usize {
        self.ctx.calls.len()
    }

    /// Runs until the endpoint's event stream ends. Trunks with
    /// `register = true` are registered (and kept so) meanwhile.
    pub async fn run(&self, events: &mut mpsc::Receiver<EndpointEvent>) {
        let registrations: Vec<_> = self
            .ctx
            .cfg
            .trunks
            .iter()
            .filter_map(|t| crate::registration::spawn(self.ctx.clone(), t.clone()))
            .chain(
                self.ctx
                    .cfg
                    .trunks
                    .iter()
                    .filter_map(|t| crate::keepalive::spawn(self.ctx.clone(), t.clone())),
            )
            .collect();
        let _stop = AbortOnDrop(registrations);
        while let Some(ev) = events.recv().await {
            self.dispatch(ev).await;
        }
    }

    /// What [`forward`] gave back: requests the engine answers itself,
    /// new calls, events for calls that have ended.
    async fn dispatch(&self, ev: EndpointEvent) {
        let shard = ev.shard;
        // `ev`'s hold on its Call-ID lasts to the end of this function:
        // later events of the call queue behind this one until then.
        let Some(event) = forward(&self.ctx, shard, ev.event) else {
            return;
        };
        match event {
            TuEvent::Request {
                tx,
                request,
                source,
            } => {
                let stx = ServerTx { shard, tx };
                if let Method::Other(name) = &request.method {
                    self.not_implemented(stx, &request, name, source).await;
                    return;
                }
                let missing = missing_requirements(&self.ctx, &request);
                if !missing.is_empty() {
                    // RFC 3261 §8.2.2.3: an extension the request requires
                    // and Tandem does not do is refused, not ignored.
                    let unsupported = missing.join(", ");
                    tracing::info!(method = %request.method, %unsupported, "420: the request requires an extension Tandem lacks");
                    let mut r =
                        tandem_sip::builder::response_to(&request, 420, None, Some("tandem"));
                    r.headers
                        .push(tandem_sip::message::Header::Unsupported(unsupported.into()));
                    let _ = self.ctx.ep.respond(stx, r).await;
                    return;
                }
                let cid = request.headers.call_id().unwrap_or("").to_owned();
                let Some(actor) = self.ctx.calls.get(&cid).map(|a| a.clone()) else {
                    self.unmatched(stx, request, source).await;
                    return;
                };
                self.offer(&actor, stx, request, source).await;
            }
            TuEvent::Ack {
                tx: None,
                request,
                source,
            } => {
                // Names no 2xx Tandem sent (wrong or missing tags, or too
                // late): it acknowledges nothing. A forged ACK must not
                // complete a call its sender never saw answered.
                tracing::debug!(
                    call_id = request.headers.call_id().unwrap_or(""),
                    source = %source.addr,
                    "ACK matching no 2xx ignored"
                );
            }
            other => tracing::debug!(?other, "event for no live call dropped"),
        }
    }

    /// A request whose Call-ID no call owns.
    ///
    /// Order of the gates (docs/security.md): a source no trunk allows is
    /// held to its request rate first (dropped unanswered past it), then
    /// must prove a client identity by digest (throttled per source and per
    /// identity); only then does a new call meet `max_calls` and `max_cps`.
    /// Whatever is answered to a source that has not authenticated is sent
    /// once and forgotten: no retransmission toward a spoofed address, no
    /// state for a flood.
    async fn unmatched(&self, stx: ServerTx, request: Request, source: Peer) {
        let method = request.method.clone();
        if method == Method::Ack {
            return;
        }
        let now = std::time::Instant::now();
        let ip = source.addr.ip();
        let trusted = self.ctx.cfg.source_trunk(ip).is_some();
        let admission = &self.ctx.admission;
        if !trusted && !admission.allow_request(ip, now) {
            let _ = self.ctx.ep.respond_once(stx, None).await;
            return;
        }
        if method == Method::Register {
            self.register(stx, request, source, now).await;
            return;
        }
        if method != Method::Invite || request.headers.to_tag().is_some() {
            let resp = out_of_dialog(&request);
            self.answer(stx, resp, trusted).await;
            return;
        }
        if !trusted {
            // Not a trunk: only a configured client proving its identity by
            // digest may call. An open relay is a toll-fraud hole.
            if self.ctx.cfg.clients.is_empty() {
                tracing::debug!(source = %source.addr, "INVITE from a source no trunk allows: 403");
                let resp = response_to(&request, 403, None, Some("tandem"));
                let _ = self.ctx.ep.respond_once(stx, Some(resp)).await;
                return;
            }
            let Some(identity) = self.authenticate(stx, &request, ip, now).await else {
                return;
            };
            let client = self.ctx.cfg.clients.iter().find(|c| c.identity == identity);
            let from_user = from_user(&request).unwrap_or_default();
            if !client.is_some_and(|c| c.any_from) && from_user != identity {
                tracing::warn!(%identity, from_user, source = %source.addr,
                    "INVITE whose From is not the caller's identity: 403");
                let resp = response_to(
                    &request,
                    403,
                    Some("From Is Not Your Identity"),
                    Some("tandem"),
                );
                let _ = self.ctx.ep.respond(stx, resp).await;
                return;
            }
            tracing::info!(%identity, source = %source.addr, "INVITE from a client");
        }
        let replaces = request.headers.iter().find_map(|h| match h {
            tandem_sip::message::Header::Other(n, v) if n.eq_ignore_ascii_case("Replaces") => {
                Some(v.clone())
            }
            _ => None,
        });
        if let Some(value) = replaces {
            self.replaces(stx, request, source, &value).await;
            return;
        }
        let admitted = match admission.admit_call(now) {
            Ok(a) => a,
            Err(why) => {
                let (reason, retry) = match why {
                    Refusal::TooManyCalls => ("Too Many Calls", "5"),
                    Refusal::TooFast => ("Call Rate Limit", "1"),
                };
                tracing::debug!(source = %source.addr, reason, "new call refused: 503");
                let mut resp = response_to(&request, 503, Some(reason), Some("tandem"));
                resp.headers
                    .push(tandem_sip::message::Header::RetryAfter(retry.into()));
                let _ = self.ctx.ep.respond(stx, resp).await;
                return;
            }
        };
        let cid = request.headers.call_id().unwrap_or("").to_owned();
        let (tx, rx) = call::mailbox();
        self.ctx.calls.insert(cid, tx.clone());
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            // Held for the call's life: its place under `max_calls`.
            let _admitted = admitted;
            call::run(ctx, tx, rx, stx, request, source).await;
        });
    }

    /// An INVITE with `Replaces` (RFC 3891; call/replaces.rs): to the call
    /// owning the named dialog's Call-ID, which matches its tags; 481 when
    /// no call has it.
    async fn replaces(&self, stx: ServerTx, request: Request, source: Peer, value: &str) {
        let target = call::parse_replaces(value);
        let actor = target
            .as_ref()
            .and_then(|t| self.ctx.calls.get(&t.call_id).map(|a| a.clone()));
        let Some(actor) = actor else {
            let code = if target.is_some() { 481 } else { 400 };
            tracing::info!(
                code,
                replaces = value,
                "INVITE with Replaces naming no call"
            );
            let resp = response_to(&request, code, None, Some("tandem"));
            let _ = self.ctx.ep.respond(stx, resp).await;
            return;
        };
        self.offer(&actor, stx, request, source).await;
    }

    /// Hands a request to its call; a call whose queue is full (503) or
    /// that is gone answers through the endpoint here.
    async fn offer(&self, actor: &call::Mailbox, stx: ServerTx, request: Request, source: Peer) {
        let msg = CallMsg::Request {
            stx,
            request: Box::new(request),
            source,
        };
        if let Err((code, CallMsg::Request { stx, request, .. })) = actor.offer(msg) {
            if code == 503 {
                tracing::warn!(
                    call_id = request.headers.call_id().unwrap_or(""),
                    "call far behind: request refused with 503"
                );
            }
            // A new dialog's INVITE (Replaces) gets a To tag of ours.
            let tag = request.headers.to_tag().is_none().then_some("tandem");
            let resp = response_to(&request, code, None, tag);
            let _ = self.ctx.ep.respond(stx, resp).await;
        }
    }

    /// Answers: once and forgotten for an untrusted source, in the
    /// transaction (retransmitted as RFC 3261 asks) for a trunk.
    /// RFC 3261 §8.2.1: a method Tandem does not implement is answered 501
    /// with `Allow`, inside a dialog or not (the gate on untrusted sources
    /// counts it like any other request).
    async fn not_implemented(&self, stx: ServerTx, request: &Request, name: &str, source: Peer) {
        let ip = source.addr.ip();
        let trusted = self.ctx.cfg.source_trunk(ip).is_some();
        let now = std::time::Instant::now();
        if !trusted && !self.ctx.admission.allow_request(ip, now) {
            let _ = self.ctx.ep.respond_once(stx, None).await;
            return;
        }
        tracing::debug!(method = name, source = %source.addr, "501: method not implemented");
        let mut resp = response_to(request, 501, None, Some("tandem"));
        resp.headers.push(tandem_sip::message::Header::Allow(
            crate::call::ALLOW.into(),
        ));
        self.answer(stx, resp, trusted).await;
    }

    async fn answer(&self, stx: ServerTx, resp: tandem_sip::message::Response, trusted: bool) {
        if trusted {
            let _ = self.ctx.ep.respond(stx, resp).await;
        } else {
            let _ = self.ctx.ep.respond_once(stx, Some(resp)).await;
        }
    }

    /// The username of the credentials the registrar will check in
    /// `request` (not merely the first `Authorization`: a decoy header in
    /// front must not take the count).
    fn digest_username(&self, request: &Request) -> Option<String> {
        let reg = self.ctx.registrar.lock().unwrap_or_else(|p| p.into_inner());
        reg.authorization_username(request)
    }

    /// A REGISTER (RFC 3261 §10.3), its digest attempts throttled.
    async fn register(
        &self,
        stx: ServerTx,
        request: Request,
        source: Peer,
        now: std::time::Instant,
    ) {
        let ip = source.addr.ip();
        let user = self.digest_username(&request);
        if user.is_some() && !self.ctx.admission.may_try_auth(ip, user.as_deref(), now) {
            let resp = response_to(&request, 403, None, Some("tandem"));
            let _ = self.ctx.ep.respond_once(stx, Some(resp)).await;
            return;
        }
        let tnow = tokio::time::Instant::now().into_std();
        let clients = &self.ctx.cfg.clients;
        let outcome = {
            let mut reg = self.ctx.registrar.lock().unwrap_or_else(|p| p.into_inner());
            reg.expire(tnow);
            reg.handle_register(tnow, &request, source, |identity, _| {
                clients
                    .iter()
                    .find(|c| c.identity == identity)
                    .map(|c| Secret::Password(c.password.clone()))
            })
        };
        match outcome {
            RegisterOutcome::Updated { identity, response } => {
                self.ctx.admission.auth_succeeded(ip, &identity, now);
                let _ = self.ctx.ep.respond(stx, response).await;
            }
            RegisterOutcome::Rejected {
                error: RegisterError::BadCredentials(_),
                response,
            } => {
                self.ctx.admission.auth_failed(ip, user.as_deref(), now);
                let _ = self.ctx.ep.respond_once(stx, Some(response)).await;
            }
            other => {
                let _ = self
                    .ctx
                    .ep
                    .respond_once(stx, Some(other.into_response()))
                    .await;
            }
        }
    }

    /// Digest authentication of a client's INVITE: its identity, or `None`
    /// once the 401 or 403 is sent.
    async fn authenticate(
        &self,
        stx: ServerTx,
        request: &Request,
        ip: std::net::IpAddr,
        now: std::time::Instant,
    ) -> Option<String> {
        let user = self.digest_username(request);
        if user.is_some() && !self.ctx.admission.may_try_auth(ip, user.as_deref(), now) {
            let resp = response_to(request, 403, None, Some("tandem"));
            let _ = self.ctx.ep.respond_once(stx, Some(resp)).await;
            return None;
        }
        let tnow = tokio::time::Instant::now().into_std();
        let clients = &self.ctx.cfg.clients;
        let verdict = {
            let mut reg = self.ctx.registrar.lock().unwrap_or_else(|p| p.into_inner());
            reg.authenticate(tnow, request, |identity, _| {
                clients
                    .iter()
                    .find(|c| c.identity == identity)
                    .map(|c| Secret::Password(c.password.clone()))
            })
        };
        match verdict {
            Ok(identity) => {
                self.ctx.admission.auth_succeeded(ip, &identity, now);
                Some(identity)
            }
            Err(resp) => {
                if resp.status_code.code() == 403 {
                    self.ctx.admission.auth_failed(ip, user.as_deref(), now);
                }
                let _ = self.ctx.ep.respond_once(stx, Some(resp)).await;
                None
            }
        }
    }
}

/// The answer to a request that is neither an INVITE nor in a dialog of
/// Tandem's: a SUBSCRIBE names an event package Tandem has none of (489,
/// RFC 6665 §4.2.1.1); MESSAGE, PUBLISH, REFER and NOTIFY outside a dialog
/// are methods Tandem does not take there (405 with `Allow`, RFC 3261
/// §8.2.1); anything else names a dialog or transaction that does not
/// exist (481).
fn out_of_dialog(request: &Request) -> tandem_sip::message::Response {
    use tandem_sip::message::Header;
    let fresh = request.headers.to_tag().is_none();
    let code = match request.method {
        Method::Subscribe if fresh => 489,
        Method::Message | Method::Publish | Method::Refer | Method::Notify if fresh => 405,
        _ => 481,
    };
    let mut resp = response_to(request, code, None, Some("tandem"));
    if code == 405 {
        resp.headers.push(Header::Allow(crate::call::ALLOW.into()));
    }
    resp
}

/// The user part of a request's From URI.
fn from_user(request: &Request) -> Option<String> {
    use tandem_sip::message::Header;
    let v = request.headers.value_of(|h| matches!(h, Header::From(_)))?;
    let na = tandem_sip::header::NameAddr::parse(v).ok()?;
    tandem_sip::registrar::uri_user(na.uri).map(str::to_owned)
}

/// The extensions `request` requires that Tandem does not do.
fn missing_requirements<'a>(ctx: &Ctx, request: &'a Request) -> Vec<&'a str> {
    let supported = if ctx.cfg.session_timers.is_some() {
        SUPPORTED_OPTIONS
    } else {
        &SUPPORTED_OPTIONS[..2]
    };
    tandem_sip::message::unsupported_requirements(&request.headers, supported)
}

/// Hands an endpoint event to the call that owns its Call-ID, without
/// waiting (`None`). Gives it back when it takes more: a request Tandem answers
/// itself (501, 420), a Call-ID no call owns (a new call, or one that has
/// ended), a request for a call too far behind to take it, an ACK that
/// acknowledges nothing.
fn forward(ctx: &Ctx, shard: usize, event: TuEvent) -> Option<TuEvent> {
    let msg = match event {
        TuEvent::Request {
            tx,
            request,
            source,
        } => {
            if matches!(request.method, Method::Other(_))
                || !missing_requirements(ctx, &request).is_empty()
            {
                return Some(TuEvent::Request {
                    tx,
                    request,
                    source,
                });
            }
            let Some(actor) = ctx.calls.get(request.headers.call_id().unwrap_or("")) else {
                return Some(TuEvent::Request {
                    tx,
                    request,
                    source,
                });
            };
            let msg = CallMsg::Request {
                stx: ServerTx { shard, tx },
                request: Box::new(request),
                source,
            };
            return match actor.offer(msg) {
                Ok(()) => None,
                Err((
                    _,
                    CallMsg::Request {
                        stx,
                        request,
                        source,
                    },
                )) => Some(TuEvent::Request {
                    tx: stx.tx,
                    request: *request,
                    source,
                }),
                Err(_) => unreachable!("offer gives back the message it was given"),
            };
        }
        TuEvent::Ack { tx: None, .. } => return Some(event),
        event => event,
    };
    let Some(actor) = ctx.calls.get(msg.call_id()) else {
        return Some(msg);
    };
    let msg = match msg {
        TuEvent::Ack { request, .. } => CallMsg::Ack {
            call_id: request.headers.call_id().unwrap_or("").to_owned(),
            sdp: (!request.body.is_empty()).then(|| request.body.into_boxed_slice()),
        },
        TuEvent::Cancelled { .. } => CallMsg::Cancelled,
        TuEvent::Response { response, .. } => CallMsg::Response {
            response: Box::new(response),
            source: None,
        },
        TuEvent::Stray2xx { response, source } => CallMsg::Response {
            response: Box::new(response),
            source: Some(source),
        },
        TuEvent::Timeout {
            call_id,
            method,
            branch,
            ..
        } => CallMsg::Timeout {
            call_id,
            method,
            branch,
        },
        TuEvent::AckTimeout {
            call_id, was_2xx, ..
        } => CallMsg::AckTimeout { call_id, was_2xx },
        other => return Some(other),
    };
    if !actor.send(msg) {
        tracing::debug!("event for a finished call dropped");
    }
    None
}

/// The engine's [`tandem_transport::Router`]: [`forward`] on the shard's
/// task, so an event for a live call skips the dispatcher.
#[derive(Debug)]
struct Forward(std::sync::Weak<Ctx>);

impl tandem_transport::Router for Forward {
    fn route(&self, shard: usize, event: TuEvent) -> Option<TuEvent> {
        match self.0.upgrade() {
            Some(ctx) => forward(&ctx, shard, event),
            None => Some(event),
        }
    }
}

/// Option tags a request may require (`Require`): INVITE with `Replaces`
/// (RFC 3891), reliable provisional responses (RFC 3262) and session
/// timers (RFC 4028, unless switched off, which drops the last). Any other
/// is answered 420 (docs/sip-interop.md).
const SUPPORTED_OPTIONS: &[&str] = &["replaces", "100rel", "timer"];

/// A SIP shard with work waiting that has not moved for this long makes
/// `/healthz` fail.
const HEALTH_STALL: std::time::Duration = std::time::Duration::from_secs(5);

/// Every webhook exchange, timed into [`Metrics`].
struct WebhookTimes(Arc<Metrics>);

impl tandem_webhook::ExchangeObserver for WebhookTimes {
    fn exchanged(
        &self,
        elapsed: std::time::Duration,
        outcome: Result<u16, &tandem_webhook::WebhookError>,
    ) {
        let outcome =
            outcome.map_err(|e| matches!(e, tandem_webhook::WebhookError::Timeout { .. }));
        self.0.webhook(elapsed, outcome);
    }
}

/// What `/metrics` reads of the engine at scrape time: the SIP endpoint's
/// counters, admission control, rooms and queues, the history writer, the
/// RTP port pool.
struct EngineCollector(Arc<Ctx>);

impl std::fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineCollector")
    }
}

impl prometheus_client::collector::Collector for EngineCollector {
    fn encode(
        &self,
        mut enc: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        use crate::metrics::{counter, counters, gauge};
        use std::sync::atomic::Ordering::Relaxed;
        let ctx = &self.0;
        let s = ctx.ep.stats();
        let e = &mut enc;
        counters(
            e,
            "tandem_sip_transactions",
            "SIP transactions created, by side (client: Tandem sent the request).",
            "side",
            &[
                ("client", s.client_transactions),
                ("server", s.server_transactions),
            ],
        )?;
        counter(
            e,
            "tandem_sip_transaction_timeouts",
            "Client transactions that got no final response (Timer B or F).",
            s.transaction_timeouts,
        )?;
        counter(
            e,
            "tandem_sip_retransmissions",
            "Requests and responses Tandem retransmitted over UDP (timers A, E, G).",
            s.retransmissions,
        )?;
        counter(
            e,
            "tandem_sip_retransmissions_absorbed",
            "Retransmissions from peers absorbed by their transactions.",
            s.retransmissions_absorbed,
        )?;
        counter(
            e,
            "tandem_sip_datagrams_dropped",
            "UDP datagrams dropped: a SIP shard's inbox was full.",
            s.datagrams_dropped,
        )?;
        counter(
            e,
            "tandem_sip_requests_shed",
            "New requests answered 503: the event queue was full.",
            s.requests_shed,
        )?;
        counter(
            e,
            "tandem_sip_events_deferred",
            "Events a SIP shard held back until the event queue had room.",
            s.events_deferred,
        )?;
        counter(
            e,
            "tandem_sip_events_dropped",
            "Events dropped: the event queue and a shard's overflow were full.",
            s.events_dropped,
        )?;
        counter(
            e,
            "tandem_sip_tcp_refused",
            "TCP connections closed on accept: over tcp_max_connections or tcp_max_per_source.",
            s.tcp_refused,
        )?;
        counter(
            e,
            "tandem_sip_tls_failed",
            "Accepted TLS connections whose handshake failed or did not finish within tcp_header_timeout_ms.",
            s.tls_failed,
        )?;
        counter(
            e,
            "tandem_sip_malformed",
            "Messages that did not parse (requests answered 400, at most 50 a second per shard).",
            s.malformed,
        )?;
        let c = &ctx.admission.counters;
        counters(
            e,
            "tandem_calls_refused",
            "New calls answered 503 by admission control, by limit.",
            "limit",
            &[
                ("max_calls", c.calls_refused_max_calls.load(Relaxed)),
                ("max_cps", c.calls_refused_max_cps.load(Relaxed)),
            ],
        )?;
        counter(
            e,
            "tandem_sip_requests_throttled",
            "Out-of-dialog requests dropped: their source was over its rate.",
            c.requests_throttled.load(Relaxed),
        )?;
        counter(
            e,
            "tandem_auth_failures",
            "Failed digest attempts (wrong password or unknown identity).",
            c.auth_failures.load(Relaxed),
        )?;
        counter(
            e,
            "tandem_auth_throttled",
            "Digest attempts refused unchecked: too many failures from their source or for their identity.",
            c.auth_throttled.load(Relaxed),
        )?;
        gauge(
            e,
            "tandem_conferences",
            "Conference rooms open.",
            ctx.rooms.len() as u64,
        )?;
        gauge(
            e,
            "tandem_queued_calls",
            "Callers waiting in <Enqueue> queues.",
            ctx.queues.waiting() as u64,
        )?;
        if let Some(m) = &ctx.media {
            gauge(
                e,
                "tandem_rtp_ports_free",
                "RTP port pairs free in the pool.",
                m.ports_free() as u64,
            )?;
        }
        if let Some(h) = &ctx.history {
            let (dropped, written) = h.counts();
            counter(
                e,
                "tandem_history_rows_written",
                "Call states written to the history.",
                written,
            )?;
            counter(
                e,
                "tandem_history_rows_dropped",
                "Call states dropped: the history writer was behind or failed.",
                dropped,
            )?;
        }
        Ok(())
    }
}
