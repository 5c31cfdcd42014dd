//! The tokio task around one [`Call`]: feeds it SIP events, media events,
//! digits and timers on the tokio clock, and carries out its outputs
//! (sends through the endpoint, fetches, audio loads, name look-ups,
//! callbacks) in the order it gave them. No call logic lives here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use tandem_rtp::MediaEvent;
use tandem_sip::builder::{IdGen, response_to};
use tandem_sip::message::{HeadersExt, Request, SipMessage};
use tandem_transport::{Peer, ServerTx, Transport};
use tandem_twiml::{Event, Interpreter};
use tokio::sync::{Notify, mpsc};
use tracing::Instrument as _;
use url::Url;

use super::replay::{CallLog, LoggedStart, LoggingEnv, document_start};
use super::trace::Trace;
use super::{Audio, Call, CallMsg, Fetched, Output, RealEnv, Start, Who, user_of};
use crate::config::TwimlSource;
use crate::engine::Ctx;
use crate::media_ops::DigitsSource;

/// Requests waiting in one call's queue beyond which a new request from a
/// peer is refused (503) instead of queued. Responses, timeouts and the
/// answers to the call's own outputs are always queued: they are bounded by
/// what the call itself sent, and dropping one would desynchronise it.
const MAX_QUEUED_REQUESTS: usize = 256;

/// A call's queue: a deque behind a lock and a wake-up. A tokio channel
/// allocates a block of 32 slots (2 KB of 64-byte messages) as soon as it
/// is created, for queues that rarely hold more than two or three messages
/// at once; this one starts empty and gives back what a burst made it
/// grow (docs/benchmarks.md, memory per established call).
#[derive(Debug)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct QueueState {
    msgs: VecDeque<CallMsg>,
    /// Mailboxes alive: at zero the inbox reports the end.
    senders: usize,
    /// The inbox was dropped: the call is gone.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending side of a call's queue.
#[derive(Debug)]
pub(crate) struct Mailbox(Arc<Queue>);

/// The receiving side.
#[derive(Debug)]
pub(crate) struct Inbox(Arc<Queue>);

/// A call's queue.
pub(crate) fn mailbox() -> (Mailbox, Inbox) {
    let q = Arc::new(Queue {
        state: Mutex::new(QueueState {
            senders: 1,
            ..QueueState::default()
        }),
        ready: Notify::new(),
    });
    (Mailbox(q.clone()), Inbox(q))
}

impl Clone for Mailbox {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Mailbox(self.0.clone())
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let last = {
            let mut st = self.0.lock();
            st.senders -= 1;
            st.senders == 0
        };
        if last {
            self.0.ready.notify_one();
        }
    }
}

impl Mailbox {
    /// Queues a message the call must see (false: the call is gone).
    pub(crate) fn send(&self, msg: CallMsg) -> bool {
        {
            let mut st = self.0.lock();
            if st.closed {
                return false;
            }
            st.msgs.push_back(msg);
        }
        self.0.ready.notify_one();
        true
    }

    /// Whether the call is gone (its messages would be dropped).
    pub(crate) fn is_closed(&self) -> bool {
        self.0.lock().closed
    }

    /// Queues a new request from a peer unless the call is that far behind
    /// (or already gone): the request comes back with the status to answer,
    /// 503 or 481.
    pub(crate) fn offer(&self, msg: CallMsg) -> Result<(), (u16, CallMsg)> {
        {
            let mut st = self.0.lock();
            if st.closed {
                return Err((481, msg));
            }
            if st.msgs.len() >= MAX_QUEUED_REQUESTS {
                return Err((503, msg));
            }
            st.msgs.push_back(msg);
        }
        self.0.ready.notify_one();
        Ok(())
    }
}

impl Inbox {
    /// The next message; `None` once every mailbox is dropped and the
    /// queue is empty. Cancel-safe: a message is only taken when returned.
    pub(crate) async fn recv(&mut self) -> Option<CallMsg> {
        loop {
            {
                let mut st = self.0.lock();
                if let Some(m) = st.msgs.pop_front() {
                    if st.msgs.is_empty() && st.msgs.capacity() > 8 {
                        st.msgs = VecDeque::new();
                    }
                    return Some(m);
                }
                if st.senders == 0 {
                    return None;
                }
            }
            self.0.ready.notified().await;
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let left = {
            let mut st = self.0.lock();
            st.closed = true;
            std::mem::take(&mut st.msgs)
        };
        // Dropped outside the lock: a message may own a mailbox.
        drop(left);
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The document a new call runs (and how to log it), or the SIP status refusing it.
fn starting_document(ctx: &Ctx, to_user: &str) -> Result<(Start, LoggedStart), u16> {
    let Some(route) = ctx.cfg.number(to_user) else {
        tracing::warn!(to = %to_user, "no [[number]] for the dialed user: 404");
        return Err(404);
    };
    Ok(match &route.source {
        TwimlSource::File(path) => match ctx.twiml_file(path) {
            Ok(doc) => {
                let logged = LoggedStart::Document {
                    url: doc.url.clone(),
                    body: if ctx.cfg.call_log_dir.is_some() {
                        doc.body.to_string()
                    } else {
                        String::new()
                    },
                };
                let start = match &doc.parsed {
                    // The common case: the document is in memory, parsed.
                    Some(parsed) => Start {
                        interp: Interpreter::new((**parsed).clone(), doc.url.clone()),
                        document_url: doc.url,
                        fallback: None,
                    },
                    None => document_start(&doc.body, doc.url),
                };
                (start, logged)
            }
            Err(e) => {
                tracing::warn!(error = %e, "TwiML file unreadable");
                let mut interp = Interpreter::fetching(
                    Url::parse("file:///invalid").expect("static URL"),
                    tandem_twiml::Method::Post,
                );
                let _ = interp.poll_command();
                let _ = interp.handle(Event::FetchFailed { reason: e });
                let start = Start {
                    interp,
                    document_url: None,
                    fallback: None,
                };
                let logged = LoggedStart::Document {
                    url: None,
                    body: String::new(),
                };
                (start, logged)
            }
        },
        TwimlSource::Url {
            url,
            method,
            fallback,
        } => {
            let parsed = Url::parse(url).ok();
            let m = *method;
            let url = parsed
                .clone()
                .unwrap_or_else(|| Url::parse("http://invalid/").expect("static URL"));
            let logged = LoggedStart::Fetch {
                url: url.clone(),
                method: m,
                fallback: fallback.as_ref().map(|(u, _)| u.clone()),
            };
            let start = Start {
                interp: Interpreter::fetching(url, m),
                document_url: parsed,
                fallback: fallback
                    .as_ref()
                    .map(|(u, m)| tandem_webhook::Target::new(u.clone(), *m)),
            };
            (start, logged)
        }
    })
}

/// Runs one call from its INVITE to its end.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    me: Mailbox,
    inbox: Inbox,
    invite_tx: ServerTx,
    invite: Request,
    source: Peer,
) {
    // Built outside the async body: the task keeps for the call's whole life
    // whatever its future holds across an await, so only boxes cross one
    // (docs/benchmarks.md, memory per established call).
    match prepare(&ctx, &me, invite_tx, invite, source) {
        Prepared::Refused { call_id, outputs } => {
            let mut shell = Shell::new(ctx.clone(), me, String::new());
            for o in outputs {
                // Boxed: an inline `execute` future would size every
                // call's task, refused or not.
                Box::pin(shell.execute(o)).await;
            }
            ctx.calls.remove(&call_id);
        }
        Prepared::Call {
            call,
            call_id,
            media_rx,
            log,
            trace,
        } => {
            let span = tracing::info_span!("call", sid = %call.sid());
            let mut shell = Shell::new(ctx, me, call.sid().to_owned());
            shell.trace = Some(trace);
            Box::pin(call_loop(shell, call, call_id, inbox, media_rx, log).instrument(span)).await;
        }
    }
}

/// What a call placed through the REST API needs (api.rs builds it).
pub(crate) struct ApiCall {
    pub sid: String,
    pub from: String,
    pub to: String,
    /// The `<Dial>` that rings the callee.
    pub dial: tandem_twiml::Document,
    /// What runs once the callee answers.
    pub answered: (tandem_twiml::Document, Option<Url>),
    /// `FallbackUrl` for the first document.
    pub fallback: Option<tandem_webhook::Target>,
    /// `TimeLimit`: the call is hung up this long after it is answered.
    pub time_limit: Option<std::time::Duration>,
    /// `Record=true`.
    pub record: Option<super::ApiRecord>,
}

/// Starts a call placed through the REST API; `admitted` is its place
/// under `max_calls`, held for its life. False if it could not be built.
pub(crate) fn spawn_api<A: Send + 'static>(ctx: &Arc<Ctx>, api: ApiCall, admitted: A) -> bool {
    let (me, inbox) = mailbox();
    let (media_tx, media_rx) = mpsc::channel(64);
    let env: Box<dyn super::Env> = Box::new(RealEnv::new(ctx.clone(), me.clone(), media_tx));
    let start = Start {
        interp: Interpreter::new(api.dial, None),
        document_url: None,
        fallback: api.fallback,
    };
    let Some(mut call) = Call::new_api(
        now(),
        ctx.cfg.clone(),
        env,
        IdGen::from_entropy(),
        api.sid.clone(),
        &api.from,
        &api.to,
        start,
        api.answered,
    ) else {
        return false;
    };
    call.place(api.time_limit, api.record);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let _admitted = admitted;
        let span = tracing::info_span!("call", sid = %api.sid);
        let mut shell = Shell::new(ctx, me, api.sid.clone());
        shell.trace = Some(Box::new(Trace::new(now())));
        let key = format!("api-{}", api.sid);
        Box::pin(call_loop(shell, Box::new(call), key, inbox, media_rx, None).instrument(span))
            .await;
    });
    true
}

/// Starts a child call moved out of its `<Dial>` as a call of its own
/// (`POST …/Calls/{child}.json` with `Url` or `Twiml`): its media leg, its
/// Call-ID and its CallSid are routed to its own task from now on.
fn spawn_child(
    ctx: &Arc<Ctx>,
    mut spawn: super::Spawn,
    queue: Option<tandem_webhook::CallbackQueue>,
) {
    let (me, inbox) = mailbox();
    let (media_tx, media_rx) = mpsc::channel(64);
    let mut env = RealEnv::new(ctx.clone(), me.clone(), media_tx);
    if let Some(leg) = spawn.leg.take() {
        super::Env::adopt_leg(&mut env, leg);
    }
    let sid = spawn.callee.sid.clone();
    let call_id = spawn.callee.call_id.clone();
    ctx.calls.insert(call_id.clone(), me.clone());
    ctx.live.insert(sid.clone(), me.clone());
    let Some(call) = Call::adopted(
        now(),
        ctx.cfg.clone(),
        Box::new(env),
        IdGen::from_entropy(),
        spawn,
    ) else {
        tracing::warn!(%sid, "the child call could not be started");
        ctx.calls.remove(&call_id);
        ctx.live.remove(&sid);
        return;
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let span = tracing::info_span!("call", sid = %sid);
        let mut shell = Shell::new(ctx, me, sid.clone());
        shell.trace = Some(Box::new(Trace::new(now())));
        shell.live.push(sid.clone());
        if let Some(q) = queue {
            shell.queues.insert(sid, q);
        }
        Box::pin(call_loop(shell, Box::new(call), call_id, inbox, media_rx, None).instrument(span))
            .await;
    });
}

/// A new call, or the answer refusing it.
enum Prepared {
    Refused {
        call_id: String,
        outputs: std::collections::VecDeque<Output>,
    },
    Call {
        call: Box<Call>,
        call_id: String,
        media_rx: mpsc::Receiver<MediaEvent>,
        log: Option<CallLog>,
        trace: Box<Trace>,
    },
}

fn prepare(
    ctx: &Arc<Ctx>,
    me: &Mailbox,
    invite_tx: ServerTx,
    invite: Request,
    source: Peer,
) -> Prepared {
    let call_id = invite.headers.call_id().unwrap_or("").to_owned();
    let to_user = user_of(&invite.uri.to_string());
    let (start, logged) = match starting_document(ctx, &to_user) {
        Ok(s) => s,
        Err(code) => {
            let response = response_to(&invite, code, None, Some("tandem"));
            let outputs = [Output::Respond {
                stx: invite_tx,
                response,
            }]
            .into();
            return Prepared::Refused { call_id, outputs };
        }
    };
    let (media_tx, media_rx) = mpsc::channel(64);
    let t0 = now();
    let mut trace = Box::new(Trace::new(t0));
    trace.sip(
        t0,
        &call_id,
        Some("caller"),
        Some(source.addr),
        false,
        "INVITE".to_owned(),
    );
    // A local file's TwiML is never fetched: the inspector shows it as the
    // call's first document all the same.
    if let Some(TwimlSource::File(path)) = ctx.cfg.number(&to_user).map(|r| &r.source)
        && let Ok(doc) = ctx.twiml_file(path)
    {
        trace.answer(t0, &Ok((doc.body.to_string(), doc.url)));
    }
    let mut env: Box<dyn super::Env> = Box::new(RealEnv::new(ctx.clone(), me.clone(), media_tx));
    let mut ids = IdGen::from_entropy();
    let mut log = None;
    if ctx.cfg.call_log_dir.is_some() {
        // A logged call draws its tags and branches from a logged seed.
        let seed = u64::from(ids.u32()) << 32 | u64::from(ids.u32());
        ids = IdGen::seeded(seed);
        let l = CallLog::new(t0, seed, &invite, source, invite_tx, &logged);
        env = Box::new(LoggingEnv {
            inner: env,
            log: l.clone(),
        });
        log = Some(l);
    }
    let mut outputs = std::collections::VecDeque::new();
    match Call::new(
        t0,
        ctx.cfg.clone(),
        env,
        ids,
        invite_tx,
        invite,
        source,
        start,
        &mut outputs,
    ) {
        Some(call) => Prepared::Call {
            call: Box::new(call),
            call_id,
            media_rx,
            log,
            trace,
        },
        None => Prepared::Refused { call_id, outputs },
    }
}

/// Carries out a call's outputs.
struct Shell {
    ctx: Arc<Ctx>,
    me: Mailbox,
    sid: String,
    /// Call-IDs of child legs routed to this call.
    routed: Vec<String>,
    /// Callback queues, per call SID (the parent's and each child's).
    queues: HashMap<String, tandem_webhook::CallbackQueue>,
    /// CallSids of this task's calls not yet over, reachable by the REST API.
    live: Vec<String>,
    /// The inspector's ladder and webhooks (written when the call ends).
    trace: Option<Box<Trace>>,
}

impl Shell {
    fn new(ctx: Arc<Ctx>, me: Mailbox, sid: String) -> Self {
        Self {
            ctx,
            me,
            sid,
            routed: Vec::new(),
            queues: HashMap::new(),
            live: Vec::new(),
            trace: None,
        }
    }

    fn queue(&mut self, sid: &str) -> &tandem_webhook::CallbackQueue {
        let ctx = &self.ctx;
        self.queues
            .entry(sid.to_owned())
            .or_insert_with(|| ctx.callbacks.open(sid.to_owned()))
    }

    async fn execute(&mut self, o: Output) {
        if let Some(t) = self.trace.as_deref_mut() {
            trace_output(t, now(), &o);
        }
        let ep = &self.ctx.ep;
        match o {
            Output::Respond { stx, response } => {
                let _ = ep.respond(stx, response).await;
            }
            Output::Request { request, peer } => {
                let _ = ep.send_request(request, peer).await;
            }
            Output::Ack { request, peer } => {
                let _ = ep.send_stateless(SipMessage::Request(request), peer).await;
            }
            Output::Cancel { call_id, branch } => {
                let _ = ep.cancel(&call_id, &branch).await;
            }
            Output::Route { call_id } => {
                self.ctx.calls.insert(call_id.clone(), self.me.clone());
                self.routed.push(call_id);
            }
            Output::Unroute { call_id } => {
                self.ctx.calls.remove(&call_id);
                self.routed.retain(|c| *c != call_id);
            }
            Output::History(mut record) => {
                if crate::history::is_final(record.status) {
                    self.ctx.live.remove(&record.sid);
                    self.live.retain(|s| *s != record.sid);
                } else if !self.live.contains(&record.sid) {
                    self.ctx.live.insert(record.sid.clone(), self.me.clone());
                    self.live.push(record.sid.clone());
                }
                if let Some(h) = &self.ctx.history {
                    record.at = SystemTime::now();
                    h.record(*record);
                }
            }
            Output::Fetch {
                screen,
                req,
                params,
                fallback,
            } => {
                let reason = req.reason;
                spawn_fetch(
                    &self.ctx,
                    &self.me,
                    req,
                    params,
                    fallback,
                    move |result| match screen {
                        Some(call_id) => CallMsg::ScreenFetched { call_id, result },
                        None if reason == tandem_twiml::FetchReason::Refer => {
                            CallMsg::ReferFetched(result)
                        }
                        None if reason == tandem_twiml::FetchReason::Modify => {
                            CallMsg::ApiFetched(result)
                        }
                        None if matches!(
                            reason,
                            tandem_twiml::FetchReason::Wait | tandem_twiml::FetchReason::Dequeued
                        ) =>
                        {
                            CallMsg::WaitFetched {
                                result,
                                dequeue: reason == tandem_twiml::FetchReason::Dequeued,
                            }
                        }
                        None => CallMsg::Fetched(result),
                    },
                )
            }
            Output::LoadAudio {
                who,
                seq,
                prompt,
                base,
            } => spawn_load(&self.ctx, &self.me, who, seq, prompt, base),
            Output::Resolve(names) => {
                let me = self.me.clone();
                let ctx = self.ctx.clone();
                tokio::spawn(async move {
                    let mut found = Vec::with_capacity(names.len());
                    for name in names {
                        let targets = ctx.dns.resolve(&name).await;
                        // A TLS branch verifies the URI's host name, whatever
                        // SRV target it reaches (RFC 5922 §4).
                        for t in targets.iter().filter(|t| t.transport == Transport::Tls) {
                            ctx.ep.set_tls_name(t.addr, &name.host);
                        }
                        found.push((name, targets));
                    }
                    me.send(CallMsg::Resolved(found));
                });
            }
            Output::Status {
                url,
                method,
                mut event,
            } => {
                event.timestamp = SystemTime::now();
                let sid = event.call.call_sid.clone();
                if let Err(e) = self.queue(&sid).enqueue_status(url, method, &event) {
                    tracing::warn!(error = %e, "status callback dropped");
                }
            }
            Output::Recording { url, method, event } => {
                let sid = self.sid.clone();
                if let Err(e) = self.queue(&sid).enqueue_recording(url, method, &event) {
                    tracing::warn!(error = %e, "recording callback dropped");
                }
            }
            Output::Spawn(s) => {
                // The child's Call-ID, CallSid and callbacks are its own
                // call's from now on (its queue moves with it: its
                // `completed` follows what this call queued for it).
                self.routed.retain(|c| *c != s.callee.call_id);
                self.live.retain(|x| *x != s.callee.sid);
                let queue = self.queues.remove(&s.callee.sid);
                spawn_child(&self.ctx, *s, queue);
            }
            Output::Transcribe(t) => {
                let ctx = self.ctx.clone();
                tokio::spawn(crate::transcribe::run(ctx, *t));
            }
            Output::Recognize(r) => {
                let (ctx, me) = (self.ctx.clone(), self.me.clone());
                tokio::spawn(crate::speech::run(ctx, me, *r));
            }
            Output::Callback {
                sid,
                url,
                method,
                params,
            } => {
                let cb = tandem_webhook::Callback {
                    url,
                    method,
                    params,
                    kind: tandem_webhook::CallbackKind::CallProgress,
                };
                if let Err(e) = self.queue(&sid).enqueue(cb) {
                    tracing::warn!(error = %e, "callback dropped");
                }
            }
        }
    }
}

/// The call's loop. The call and every step's future live on the heap, so
/// an idle call costs a small task, not the size of its largest step
/// (docs/benchmarks.md: memory per established call).
async fn call_loop(
    mut shell: Shell,
    mut call: Box<Call>,
    call_id: String,
    mut inbox: Inbox,
    mut media_rx: mpsc::Receiver<MediaEvent>,
    log: Option<CallLog>,
) {
    let ctx = shell.ctx.clone();
    tracing::info!("call started");
    ctx.metrics.call_started();
    call.begin(now());
    loop {
        while let Some(o) = call.poll_output() {
            Box::pin(shell.execute(o)).await;
        }
        call.release();
        if call.is_done() {
            break;
        }
        let deadline = call.poll_timeout();
        tokio::select! {
            msg = inbox.recv() => match msg {
                Some(m) => {
                    let t = now();
                    if let Some(l) = &log {
                        l.msg(t, &m);
                    }
                    if let Some(tr) = shell.trace.as_deref_mut() {
                        trace_msg(tr, t, &call_id, &m);
                    }
                    call.handle_msg(t, m);
                }
                None => break,
            },
            Some(ev) = media_rx.recv() => {
                let t = now();
                if let Some(l) = &log {
                    l.media(t, &ev);
                }
                call.handle_media(t, ev);
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                let t = now();
                if let Some(l) = &log {
                    l.timer(t);
                }
                call.handle_timeout(t);
            }
        }
    }
    if let (Some(l), Some(dir)) = (log, ctx.cfg.call_log_dir.clone()) {
        let path = dir.join(format!("{}.calllog", shell.sid));
        let text = l.text();
        // Debug only: one file per call, written off the call's task.
        tokio::task::spawn_blocking(move || {
            if let Err(e) = std::fs::write(&path, text) {
                tracing::warn!(path = %path.display(), error = %e, "call log not written");
            }
        });
    }
    for c in shell.routed.drain(..) {
        ctx.calls.remove(&c);
    }
    for sid in shell.live.drain(..) {
        ctx.live.remove(&sid);
    }
    if let (Some(t), Some(h)) = (shell.trace.take(), &ctx.history) {
        h.record_trace(shell.sid.clone(), t.to_json());
    }
    ctx.calls.remove(&call_id);
    drop(call);
    ctx.metrics.call_ended();
    tracing::info!("call ended");
}

/// What the inspector keeps of an output: the SIP it sends, the requests
/// it makes of the application.
fn trace_output(t: &mut Trace, at: Instant, o: &Output) {
    match o {
        Output::Respond { response, .. } => {
            let cid = response.headers.call_id().unwrap_or("");
            t.sip(
                at,
                cid,
                None,
                None,
                true,
                super::trace::response_line(response),
            );
        }
        Output::Request { request, peer } => {
            let cid = request.headers.call_id().unwrap_or("");
            let who = format!("{}", request.uri);
            let who = who.trim_start_matches("sip:");
            t.sip(
                at,
                cid,
                Some(who),
                Some(peer.addr),
                true,
                request.method.to_string(),
            );
        }
        Output::Ack { request, .. } => {
            let cid = request.headers.call_id().unwrap_or("");
            t.sip(at, cid, None, None, true, "ACK".to_owned());
        }
        Output::Cancel { call_id, .. } => t.sip(at, call_id, None, None, true, "CANCEL".to_owned()),
        Output::Fetch { req, params, .. } => {
            let method = if req.method == tandem_twiml::Method::Get {
                "GET"
            } else {
                "POST"
            };
            let p = params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            t.request(at, "request", req.url.as_str(), method, p);
        }
        Output::Status { url, method, event } => {
            let p = event
                .params(0)
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            t.request(at, "status", url.as_str(), method_name(*method), p);
        }
        Output::Recording { url, method, event } => {
            let p = event
                .params()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            t.request(at, "callback", url.as_str(), method_name(*method), p);
        }
        Output::Callback {
            url,
            method,
            params,
            ..
        } => {
            let p = params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            t.request(at, "callback", url.as_str(), method_name(*method), p);
        }
        _ => {}
    }
}

fn method_name(m: tandem_webhook::Method) -> &'static str {
    if m == tandem_webhook::Method::Get {
        "GET"
    } else {
        "POST"
    }
}

/// What the inspector keeps of a message to the call.
fn trace_msg(t: &mut Trace, at: Instant, caller_call_id: &str, m: &CallMsg) {
    match m {
        CallMsg::Request {
            request, source, ..
        } => {
            let cid = request.headers.call_id().unwrap_or("");
            t.sip(
                at,
                cid,
                None,
                Some(source.addr),
                false,
                request.method.to_string(),
            );
        }
        CallMsg::Ack { call_id, .. } => t.sip(at, call_id, None, None, false, "ACK".to_owned()),
        CallMsg::Cancelled => t.sip(at, caller_call_id, None, None, false, "CANCEL".to_owned()),
        CallMsg::Response { response, .. } => {
            let cid = response.headers.call_id().unwrap_or("");
            t.sip(
                at,
                cid,
                None,
                None,
                false,
                super::trace::response_line(response),
            );
        }
        CallMsg::Timeout {
            call_id, method, ..
        } => {
            t.sip(
                at,
                call_id,
                None,
                None,
                false,
                format!("({method} timed out)"),
            );
        }
        CallMsg::AckTimeout { call_id, .. } => {
            t.sip(at, call_id, None, None, false, "(no ACK)".to_owned());
        }
        CallMsg::Fetched(r) | CallMsg::ReferFetched(r) | CallMsg::ApiFetched(r) => t.answer(at, r),
        CallMsg::ScreenFetched { result, .. } | CallMsg::WaitFetched { result, .. } => {
            t.answer(at, result)
        }
        _ => {}
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// Fetches a document (a `file://` URL from disk, else the web application,
/// signed) off the call's task, and sends the result back as `msg(result)`.
fn spawn_fetch(
    ctx: &Arc<Ctx>,
    me: &Mailbox,
    req: tandem_twiml::FetchRequest,
    params: tandem_webhook::Params,
    fallback: Option<tandem_webhook::Target>,
    msg: impl FnOnce(Box<Fetched>) -> CallMsg + Send + 'static,
) {
    let ctx = ctx.clone();
    let me = me.clone();
    tokio::spawn(async move {
        let result = if req.url.scheme() == "file" {
            match req.url.to_file_path() {
                Ok(p) => ctx
                    .twiml_file(&p)
                    .map(|d| (d.body.to_string(), Some(req.url.clone()))),
                Err(()) => Err(format!("bad file URL {}", req.url)),
            }
        } else {
            let method = req.method;
            let treq = tandem_webhook::TwimlRequest {
                target: tandem_webhook::Target::new(req.url.to_string(), method),
                base: None,
                params,
                fallback,
            };
            ctx.webhook
                .fetch_twiml(&treq)
                .await
                .map(|d| (d.body, Some(d.url)))
                .map_err(|e| e.to_string())
        };
        me.send(msg(Box::new(result)));
    });
}

/// Loads a prompt's audio (speech synthesis, a download, digits) off the
/// call's task.
fn spawn_load(
    ctx: &Arc<Ctx>,
    me: &Mailbox,
    who: Who,
    seq: u64,
    prompt: tandem_twiml::Prompt,
    base: Option<Url>,
) {
    let prompts = ctx.prompts.clone();
    let me = me.clone();
    tokio::spawn(async move {
        let result = match prompt {
            tandem_twiml::Prompt::Say(say) => match &say.ssml {
                Some(ssml) => {
                    prompts
                        .say_ssml(
                            ssml,
                            say.voice.as_deref(),
                            say.language.as_deref(),
                            say.loop_,
                        )
                        .await
                }
                None => {
                    prompts
                        .say(
                            &say.text,
                            say.voice.as_deref(),
                            say.language.as_deref(),
                            say.loop_,
                        )
                        .await
                }
            }
            .map(|p| Box::new(Audio::Prompt(p)))
            .map_err(|e| e.to_string()),
            tandem_twiml::Prompt::Play(play) => match (&play.digits, &play.url) {
                (Some(d), _) => DigitsSource::new(d)
                    .map(|d| Box::new(Audio::Digits(d)))
                    .map_err(|e| e.to_string()),
                (None, Some(url)) => {
                    let url = match &base {
                        Some(b) => b
                            .join(url)
                            .map(|u| u.to_string())
                            .unwrap_or_else(|_| url.clone()),
                        None => url.clone(),
                    };
                    prompts
                        .play(&url, play.loop_)
                        .await
                        .map(|p| Box::new(Audio::Prompt(p)))
                        .map_err(|e| e.to_string())
                }
                (None, None) => Err("<Play> without a URL or digits".to_owned()),
            },
            tandem_twiml::Prompt::Pause(_) => Err("pause".to_owned()),
        };
        me.send(CallMsg::AudioReady { who, seq, result });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call's queue never refuses what the call needs, refuses peers'
    /// requests with 503 once 256 wait, and with 481 once the call is gone.
    #[test]
    fn the_queue_sheds_only_new_requests_from_peers() {
        let (tx, mut rx) = mailbox();
        for _ in 0..MAX_QUEUED_REQUESTS {
            assert!(
                tx.offer(CallMsg::Ack {
                    call_id: String::new(),
                    sdp: None
                })
                .is_ok()
            );
        }
        assert!(matches!(
            tx.offer(CallMsg::Ack {
                call_id: String::new(),
                sdp: None
            }),
            Err((503, CallMsg::Ack { sdp: None, .. }))
        ));
        assert!(
            tx.send(CallMsg::Cancelled),
            "responses and timeouts always go in"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // 257 wait (the Cancelled counts too): two taken make room for one.
        rt.block_on(async {
            assert!(matches!(
                rx.recv().await,
                Some(CallMsg::Ack { sdp: None, .. })
            ));
            assert!(matches!(
                tx.offer(CallMsg::Ack {
                    call_id: String::new(),
                    sdp: None
                }),
                Err((503, _))
            ));
            assert!(matches!(
                rx.recv().await,
                Some(CallMsg::Ack { sdp: None, .. })
            ));
        });
        assert!(
            tx.offer(CallMsg::Ack {
                call_id: String::new(),
                sdp: None
            })
            .is_ok(),
            "room again once two are taken"
        );
        drop(rx);
        assert!(matches!(
            tx.offer(CallMsg::Ack {
                call_id: String::new(),
                sdp: None
            }),
            Err((481, CallMsg::Ack { sdp: None, .. }))
        ));
    }
}
