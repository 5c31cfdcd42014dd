//! One call's actor (design §3, §4): owns the caller's leg (UAS dialog), its
//! TwiML interpreter, the current `<Dial>`'s child legs (UAC dialogs) and fork
//! arbiter, and the media legs; talks to the endpoint by messages. Every SIP
//! event of the call and its children arrives here in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tandem_rtp::MediaEvent;
use tandem_sip::builder::{IdGen, RequestBuilder, response_to};
use tandem_sip::dialog::Dialog;
use tandem_sip::header::{NameAddr, uri_host_port, uri_param};
use tandem_sip::message::{Header, HeadersExt, Method, Request, Response, SipMessage};
use tandem_transport::{Peer, ServerTx, Transport};
use tandem_twiml::{Command, DialCallStatus, DialOutcome, Event, Interpreter, Noun};
use tokio::sync::mpsc;
use tracing::Instrument as _;
use url::Url;

use crate::config::TwimlSource;
use crate::engine::Ctx;
use crate::fork::{Action, ForkArbiter, RingbackPolicy};
use crate::gather::Gathering;
use crate::media::MediaLeg;
use crate::media_ops::{
    DtmfDigit, DtmfTap, PromptSource, SendDigits, digits_source, dtmf_tap, fan_out,
};
use crate::recording::{RecordFrom, RecordingOptions, RecordingSession, RecordingTaps};
use std::collections::VecDeque;
use tandem_rtp::relay::Injection;
use tandem_rtp::relay::Tap;

mod dial;
mod prompts;
mod reinvite;
mod screen;

/// What reaches a call actor.
#[derive(Debug)]
pub(crate) enum CallMsg {
    /// A request in one of the call's dialogs (or a retransmission-free new one).
    Request {
        stx: ServerTx,
        request: Box<Request>,
        source: Peer,
    },
    /// The ACK for the caller's 2xx.
    Ack,
    /// The caller's CANCEL matched its INVITE (200 and 487 already sent).
    Cancelled,
    /// A response on a child leg; `source` is set for a 2xx whose transaction had ended.
    Response {
        response: Box<Response>,
        source: Option<Peer>,
    },
    /// A client transaction timed out.
    Timeout {
        call_id: String,
        method: Method,
        branch: String,
    },
    /// The caller never ACKed our final response.
    AckTimeout { was_2xx: bool },
    /// A document fetched (or not).
    Fetched(Box<Fetched>),
    /// Audio for a verb finished loading (speech synthesis, a download).
    AudioReady {
        who: Who,
        seq: u64,
        /// Boxed: the sources carry their frame buffers, and every slot of
        /// the actor's queue is as large as the largest message.
        result: Result<Box<Audio>, String>,
    },
    /// A screening document fetched for the child leg with this Call-ID.
    ScreenFetched {
        call_id: String,
        result: Box<Fetched>,
    },
}

/// A fetched document (body and final URL) or why it failed. Boxed in
/// messages: every slot of an actor's queue is as large as its largest message.
pub(crate) type Fetched = Result<(String, Option<Url>), String>;

/// Generates a `CA` + 32 hex SID.
fn call_sid(ids: &mut IdGen) -> String {
    format!(
        "CA{:08x}{:08x}{:08x}{:08x}",
        ids.u32(),
        ids.u32(),
        ids.u32(),
        ids.u32()
    )
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BranchState {
    Calling,
    Ringing,
    Answered,
    Bridged,
    Ended,
}

#[derive(Debug)]
struct Branch {
    sid: String,
    call_id: String,
    via_branch: String,
    invite: Request,
    peer: Peer,
    to: String,
    dialog: Option<Dialog>,
    state: BranchState,
    media: Option<MediaLeg>,
    status_callback: Option<(
        Url,
        tandem_webhook::Method,
        Vec<tandem_twiml::CallProgressEvent>,
    )>,
    callbacks: Option<tandem_webhook::CallbackQueue>,
    answered_at: Option<Instant>,
    ringing_reported: bool,
    final_code: Option<u16>,
    answer_sdp: Option<Vec<u8>>,
    parent_sid: String,
    account_sid: String,
    /// The noun's screening document (`url`), resolved.
    screen_url: Option<(Url, tandem_twiml::Method)>,
    /// Digest credentials for 401/407 (trunk's or the `<Sip>` noun's).
    credentials: Option<(String, String)>,
    /// The INVITE was already re-sent with credentials once.
    auth_tried: bool,
    /// The screening document running on this answered callee.
    screen: Option<Screen>,
    /// `<Number sendDigits>`, played to the callee once bridged.
    send_digits: Option<String>,
}

/// A screening in progress on a callee's leg (design §4 step 5).
#[derive(Debug)]
struct Screen {
    interp: Interpreter,
    playing: Option<Injection>,
    pause_until: Option<Instant>,
    gather: Option<Gathering>,
    document_url: Option<Url>,
}

#[derive(Debug)]
struct DialState {
    spec: tandem_twiml::Dial,
    arbiter: ForkArbiter,
    branches: Vec<Branch>,
    by_call_id: HashMap<String, usize>,
    bridged: Option<usize>,
    bridged_at: Option<Instant>,
    time_limit: Option<Instant>,
    result: Option<DialCallStatus>,
    /// `record` of this Dial, and the recording once started.
    rec_opts: Option<RecordingOptions>,
    recording: Option<(RecordingSession, RecordingTaps)>,
    /// recordingStatusCallback, method and events.
    rec_callback: Option<(
        Url,
        tandem_webhook::Method,
        Vec<tandem_twiml::RecordingEvent>,
    )>,
}

struct Call {
    ctx: Arc<Ctx>,
    me: mpsc::Sender<CallMsg>,
    ids: IdGen,
    sid: String,
    call_id: String,
    invite: Request,
    invite_tx: ServerTx,
    source: Peer,
    dialog: Dialog,
    local_tag: String,
    from_user: String,
    to_user: String,
    answered: bool,
    early_sent: bool,
    caller_gone: bool,
    finished: bool,
    interp: Interpreter,
    document_url: Option<Url>,
    media: Option<MediaLeg>,
    answer_sdp: Option<Vec<u8>>,
    media_tx: mpsc::Sender<MediaEvent>,
    dial: Option<DialState>,
    pause_until: Option<Instant>,
    gather: Option<Gathering>,
    /// DTMF heard on the caller's leg (RFC 4733 or in-band), installed the
    /// first time something listens for it (`<Gather>`, `hangupOnStar`).
    dtmf: Option<Arc<DtmfTap>>,
    /// The receiver of a tap just installed, for the actor's loop to take.
    new_dtmf_rx: Option<mpsc::Receiver<DtmfDigit>>,
    /// What the caller's leg is playing for the current verb.
    playing: Option<Injection>,
    /// Bumped per verb so that late prompt loads are ignored.
    verb_seq: u64,
    /// `<Gather>` prompts still to play, then the gather itself.
    prompt_queue: VecDeque<tandem_twiml::Prompt>,
    pending_gather: Option<tandem_twiml::Gather>,
    /// The parent call's callback queue (recording callbacks), opened on first use.
    callbacks: Option<tandem_webhook::CallbackQueue>,
    /// Cancelled branches still owing a final response, until a deadline.
    lingering: Vec<(Instant, Branch)>,
}

/// Which leg a prompt plays on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    Caller,
    Branch(usize),
}

/// Audio loaded for a verb, ready to inject.
pub(crate) enum Audio {
    Prompt(PromptSource),
    Digits(SendDigits),
}

impl std::fmt::Debug for Audio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Prompt(_) => "Audio::Prompt",
            Self::Digits(_) => "Audio::Digits",
        })
    }
}

/// Runs one call from its INVITE to its end.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    me: mpsc::Sender<CallMsg>,
    rx: mpsc::Receiver<CallMsg>,
    invite_tx: ServerTx,
    invite: Request,
    source: Peer,
) {
    let call_id = invite.headers.call_id().unwrap_or("").to_owned();
    let (media_tx, media_rx) = mpsc::channel(64);
    let started = Box::pin(Call::start(&ctx, me, invite_tx, invite, source, media_tx))
        .await
        .map(Box::new);
    let Some(call) = started else {
        ctx.calls.remove(&call_id);
        return;
    };
    let span = tracing::info_span!("call", sid = %call.sid);
    Box::pin(call_loop(ctx, call, rx, media_rx).instrument(span)).await;
}

/// The actor's loop. The call and every step's future live on the heap, so
/// an idle call costs a small task, not the size of its largest step
/// (docs/benchmarks.md: memory per established call).
async fn call_loop(
    ctx: Arc<Ctx>,
    mut call: Box<Call>,
    mut rx: mpsc::Receiver<CallMsg>,
    mut media_rx: mpsc::Receiver<MediaEvent>,
) {
    let mut dtmf_rx: Option<mpsc::Receiver<DtmfDigit>> = None;
    tracing::info!(from = %call.from_user, to = %call.to_user, "call started");
    ctx.metrics.call_started();
    Box::pin(call.drive()).await;
    while !call.finished || !call.lingering.is_empty() {
        let deadline = call.next_deadline();
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => Box::pin(call.on_msg(m)).await,
                None => break,
            },
            ev = media_rx.recv() => {
                if let Some(ev) = ev {
                    Box::pin(call.on_media(ev)).await;
                }
            }
            d = recv_opt(&mut dtmf_rx) => match d {
                Some(d) => Box::pin(call.on_digit(d.digit)).await,
                None => dtmf_rx = None,
            },
            () = sleep_until(deadline), if deadline.is_some() => Box::pin(call.on_timer()).await,
        }
        Box::pin(call.drive()).await;
        Box::pin(call.drive_screens()).await;
        if let Some(r) = call.new_dtmf_rx.take() {
            dtmf_rx = Some(r);
        }
    }
    Box::pin(call.cleanup()).await;
    ctx.metrics.call_ended();
    tracing::info!("call ended");
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

fn user_of(uri: &str) -> String {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(user).to_owned(),
        None => String::new(),
    }
}

fn twiml_method(m: tandem_twiml::Method) -> tandem_webhook::Method {
    match m {
        tandem_twiml::Method::Get => tandem_webhook::Method::Get,
        _ => tandem_webhook::Method::Post,
    }
}

fn has_sdp(h: &rsip::Headers, body: &[u8]) -> bool {
    !body.is_empty()
        && h.value_of(|h| matches!(h, Header::ContentType(_)))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/sdp"))
}

impl Call {
    async fn start(
        ctx: &Arc<Ctx>,
        me: mpsc::Sender<CallMsg>,
        invite_tx: ServerTx,
        invite: Request,
        source: Peer,
        media_tx: mpsc::Sender<MediaEvent>,
    ) -> Option<Self> {
        let mut ids = IdGen::from_entropy();
        let sid = call_sid(&mut ids);
        let local_tag = ids.tag();
        let contact = format!("<sip:tandem@{}>", ctx.cfg.sip_host);
        let fail = |code: u16, why: &str| {
            tracing::warn!(code, why, "inbound call refused");
            response_to(&invite, code, None, Some(&local_tag))
        };
        let to_user = user_of(&invite.uri.to_string());
        let Some(route) = ctx.cfg.number(&to_user).cloned() else {
            let r = fail(404, "no [[number]] for the dialed user");
            let _ = ctx.ep.respond(invite_tx, r).await;
            return None;
        };
        let Ok(dialog) = Dialog::uas(&invite, &local_tag, &contact) else {
            let r = fail(400, "INVITE cannot form a dialog (Contact missing?)");
            let _ = ctx.ep.respond(invite_tx, r).await;
            return None;
        };
        let from_user = invite
            .headers
            .value_of(|h| matches!(h, Header::From(_)))
            .and_then(|v| NameAddr::parse(v).ok().map(|n| user_of(n.uri)))
            .unwrap_or_default();
        // Media: answer the caller's offer on a leg of our own.
        let mut media = None;
        let mut answer_sdp = None;
        if let Some(m) = &ctx.media
            && has_sdp(&invite.headers, &invite.body)
        {
            let leg = m.leg(media_tx.clone()).and_then(|mut leg| {
                let sdp = leg.answer(&invite.body, m.caps())?;
                Ok((leg, sdp))
            });
            match leg {
                Ok((leg, sdp)) => {
                    media = Some(leg);
                    answer_sdp = Some(sdp);
                }
                Err(e) => {
                    let r = fail(e.status(), &e.to_string());
                    let _ = ctx.ep.respond(invite_tx, r).await;
                    return None;
                }
            }
        }
        let (interp, document_url) = match &route.source {
            TwimlSource::File(path) => match ctx.twiml_file(path) {
                // The common case: the document is in memory, parsed.
                Ok(doc) => match &doc.parsed {
                    Some(parsed) => (
                        Interpreter::new((**parsed).clone(), doc.url.clone()),
                        doc.url,
                    ),
                    None => {
                        let url = doc
                            .url
                            .clone()
                            .unwrap_or_else(|| Url::parse("file:///invalid").expect("static URL"));
                        let mut interp = Interpreter::fetching(url, tandem_twiml::Method::Post);
                        // Let the interpreter report the invalid document its own way.
                        let _ = interp.poll_command();
                        let _ = interp.handle(Event::Fetched {
                            body: doc.body.to_string(),
                            final_url: doc.url.clone(),
                        });
                        (interp, doc.url)
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "TwiML file unreadable");
                    let mut interp = Interpreter::fetching(
                        Url::parse("file:///invalid").expect("static URL"),
                        tandem_twiml::Method::Post,
                    );
                    let _ = interp.poll_command();
                    let _ = interp.handle(Event::FetchFailed { reason: e });
                    (interp, None)
                }
            },
            TwimlSource::Url { url, method, .. } => {
                let parsed = Url::parse(url).ok();
                let m = match method {
                    tandem_webhook::Method::Get => tandem_twiml::Method::Get,
                    _ => tandem_twiml::Method::Post,
                };
                (
                    Interpreter::fetching(
                        parsed
                            .clone()
                            .unwrap_or_else(|| Url::parse("http://invalid/").expect("static URL")),
                        m,
                    ),
                    parsed,
                )
            }
        };
        let call_id = invite.headers.call_id().unwrap_or("").to_owned();
        Some(Self {
            ctx: ctx.clone(),
            me,
            ids,
            sid,
            call_id,
            invite,
            invite_tx,
            source,
            dialog,
            local_tag,
            from_user,
            to_user,
            answered: false,
            early_sent: false,
            caller_gone: false,
            finished: false,
            interp,
            document_url,
            media,
            answer_sdp,
            media_tx,
            dial: None,
            pause_until: None,
            gather: None,
            dtmf: None,
            new_dtmf_rx: None,
            playing: None,
            verb_seq: 0,
            prompt_queue: VecDeque::new(),
            pending_gather: None,
            callbacks: None,
            lingering: Vec::new(),
        })
    }

    fn call_info(&self, status: tandem_webhook::CallStatus) -> tandem_webhook::CallInfo {
        tandem_webhook::CallInfo {
            call_sid: self.sid.clone(),
            account_sid: self.ctx.cfg.account_sid.clone(),
            from: self.from_user.clone(),
            to: self.to_user.clone(),
            status,
            direction: tandem_webhook::Direction::Inbound,
            parent_call_sid: None,
            forwarded_from: None,
            caller_name: None,
        }
    }

    fn status(&self) -> tandem_webhook::CallStatus {
        if self.caller_gone || self.finished {
            tandem_webhook::CallStatus::Completed
        } else if self.answered {
            tandem_webhook::CallStatus::InProgress
        } else {
            tandem_webhook::CallStatus::Ringing
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut take = |x: Option<Instant>| {
            if let Some(x) = x {
                d = Some(d.map_or(x, |d| d.min(x)));
            }
        };
        take(self.pause_until);
        take(self.gather.as_ref().map(Gathering::deadline));
        for (until, _) in &self.lingering {
            take(Some(*until));
        }
        if let Some(d) = &self.dial {
            for b in &d.branches {
                if let Some(s) = &b.screen {
                    take(s.pause_until);
                    take(s.gather.as_ref().map(Gathering::deadline));
                }
            }
        }
        if let Some(dial) = &self.dial {
            take(dial.arbiter.poll_timeout());
            take(dial.time_limit);
        }
        d
    }

    fn feed(&mut self, ev: Event) {
        if let Err(e) = self.interp.handle(ev) {
            tracing::warn!(error = %e, "interpreter refused an event");
        }
    }

    /// Executes every command the interpreter has ready.
    async fn drive(&mut self) {
        while let Some(cmd) = self.interp.poll_command() {
            if self.finished || self.caller_gone {
                // Twilio still requests a Dial's action after the caller left;
                // its answer has no one left to run for.
                if let Command::Fetch(req) = cmd
                    && req.reason == tandem_twiml::FetchReason::DialAction
                {
                    self.fetch(req);
                }
                continue;
            }
            match cmd {
                Command::Answer => self.answer().await,
                Command::Say(say) => self.play_prompt(Who::Caller, tandem_twiml::Prompt::Say(say)),
                Command::Play(play) => {
                    self.play_prompt(Who::Caller, tandem_twiml::Prompt::Play(play))
                }
                Command::Pause { duration } => self.pause_until = Some(now() + duration),
                Command::Gather(mut g) => {
                    self.ensure_dtmf();
                    self.prompt_queue = std::mem::take(&mut g.prompts).into();
                    self.pending_gather = Some(g);
                    self.next_gather_prompt();
                }
                Command::Dial(d) => self.start_dial(d).await,
                Command::Hangup => self.hangup(480).await,
                Command::Reject { reason } => {
                    let code = match reason {
                        tandem_twiml::RejectReason::Busy => 486,
                        _ => 603,
                    };
                    self.hangup(code).await;
                }
                Command::Fetch(req) => self.fetch(req),
                Command::Screened(_) => {}
            }
        }
        if self.caller_gone && self.dial.is_none() {
            self.finished = true;
        }
        if self.interp.outcome().is_some() && self.dial.is_none() && !self.finished {
            self.hangup(480).await;
        }
    }

    fn fetch(&self, req: tandem_twiml::FetchRequest) {
        let mut params = self.call_info(self.status()).voice_params();
        for (k, v) in &req.params {
            params.push(k, v);
        }
        let fallback = match self.ctx.cfg.number(&self.to_user).map(|n| &n.source) {
            Some(TwimlSource::Url {
                fallback: Some((u, m)),
                ..
            }) if req.reason == tandem_twiml::FetchReason::Initial => {
                Some(tandem_webhook::Target::new(u.clone(), *m))
            }
            _ => None,
        };
        spawn_fetch(&self.ctx, &self.me, req, params, fallback, CallMsg::Fetched);
    }

    /// A URL from the document (action, callback, screening url), resolved
    /// against the document's own URL.
    fn resolve_url(&self, url: &str) -> Option<Url> {
        match &self.document_url {
            Some(base) => base.join(url).ok(),
            None => Url::parse(url).ok(),
        }
    }

    fn contact(&self) -> String {
        format!("<sip:tandem@{}>", self.ctx.cfg.sip_host)
    }

    fn response(&self, code: u16, sdp: Option<&[u8]>) -> Response {
        let mut r = response_to(&self.invite, code, None, Some(&self.local_tag));
        if code > 100 && code < 300 {
            r.headers.push(Header::Contact(self.contact().into()));
        }
        if let Some(sdp) = sdp {
            r.headers
                .push(Header::ContentType("application/sdp".into()));
            r.body = sdp.to_vec();
        }
        r
    }

    /// Answers the caller: 200 with Tandem's SDP answer (or the winning
    /// callee's SDP when media is not anchored).
    async fn answer(&mut self) {
        if self.answered || self.caller_gone {
            return;
        }
        let sdp = self.answer_sdp.clone();
        let r = self.response(200, sdp.as_deref());
        self.answered = true;
        self.dialog.confirm();
        let _ = self.ctx.ep.respond(self.invite_tx, r).await;
    }

    /// Ends the call: BYE if answered, else a final response.
    async fn hangup(&mut self, code: u16) {
        if self.finished {
            return;
        }
        if !self.caller_gone {
            if self.answered {
                self.send_bye_caller().await;
            } else {
                let r = self.response(code, None);
                let _ = self.ctx.ep.respond(self.invite_tx, r).await;
            }
        }
        self.caller_gone = true;
        if self.dial.is_some() {
            self.caller_left().await;
        }
        self.finished = true;
    }

    async fn send_bye_caller(&mut self) {
        let branch = self.ids.branch();
        let (transport, host) = (
            self.source.transport.as_str(),
            self.ctx.cfg.sip_host.clone(),
        );
        match self.dialog.request(Method::Bye, transport, &host, &branch) {
            Ok(bye) => {
                let _ = self.ctx.ep.send_request(bye, self.source).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot build BYE to the caller"),
        }
    }

    // ----- events -----

    async fn on_msg(&mut self, msg: CallMsg) {
        match msg {
            CallMsg::Request {
                stx,
                request,
                source,
            } => self.on_request(stx, *request, source).await,
            CallMsg::Ack => {}
            CallMsg::Cancelled => {
                tracing::info!("caller cancelled");
                self.caller_gone = true;
                self.caller_left().await;
                self.feed(Event::CallerHangup);
                self.finished = self.dial.is_none();
            }
            CallMsg::Response { response, source } => {
                self.on_child_response(*response, source).await
            }
            CallMsg::Timeout { call_id, .. } if self.branch_index(&call_id).is_none() => {
                if let Some(pos) = self
                    .lingering
                    .iter()
                    .position(|(_, b)| b.call_id == call_id)
                {
                    let (_, b) = self.lingering.remove(pos);
                    self.ctx.calls.remove(&b.call_id);
                }
            }
            CallMsg::Timeout {
                call_id,
                method,
                branch,
            } => {
                let i = self.branch_index(&call_id);
                let invite_of_branch = i.is_some_and(|i| {
                    self.dial
                        .as_ref()
                        .is_some_and(|d| d.branches[i].via_branch == branch)
                });
                if let (Method::Invite, Some(i), true) = (method, i, invite_of_branch) {
                    self.branch_failed(i, 408).await;
                }
            }
            CallMsg::AckTimeout { was_2xx } => {
                if was_2xx {
                    tracing::warn!("caller never ACKed our 200: ending the call");
                    self.hangup(408).await;
                }
            }
            CallMsg::AudioReady { who, seq, result } => self.on_audio_ready(who, seq, result),
            CallMsg::ScreenFetched { call_id, result } => {
                let Some(i) = self.branch_index(&call_id) else {
                    return;
                };
                if let Some(s) = self
                    .dial
                    .as_mut()
                    .and_then(|d| d.branches[i].screen.as_mut())
                {
                    let ev = match *result {
                        Ok((body, final_url)) => {
                            s.document_url = final_url.clone();
                            Event::Fetched { body, final_url }
                        }
                        Err(reason) => Event::FetchFailed { reason },
                    };
                    let _ = s.interp.handle(ev);
                }
                self.drive_screens().await;
            }
            CallMsg::Fetched(result) => match *result {
                Ok((body, final_url)) => {
                    if let Some(u) = &final_url {
                        self.document_url = Some(u.clone());
                    }
                    self.feed(Event::Fetched { body, final_url });
                }
                Err(reason) => {
                    tracing::warn!(%reason, "TwiML fetch failed");
                    self.feed(Event::FetchFailed { reason });
                }
            },
        }
    }

    async fn on_media(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::Timeout { leg, after } => {
                tracing::warn!(?leg, ?after, "media timeout: ending the call");
                self.hangup(408).await;
            }
            MediaEvent::InjectionDone { leg, id } => self.on_injection_done(leg, id),
            _ => {}
        }
    }

    async fn on_timer(&mut self) {
        let t = now();
        let ctx = self.ctx.clone();
        self.lingering.retain(|(until, b)| {
            let keep = *until > t;
            if !keep {
                ctx.calls.remove(&b.call_id);
            }
            keep
        });
        if self.pause_until.is_some_and(|d| d <= t) {
            self.pause_until = None;
            self.verb_done(Who::Caller);
        }
        if let Some(ev) = self.gather.as_mut().and_then(|g| g.on_timeout(t)) {
            self.gather = None;
            self.feed(ev);
        }
        self.screen_timers(t).await;
        let limit_hit = self
            .dial
            .as_ref()
            .is_some_and(|d| d.time_limit.is_some_and(|l| l <= t));
        if limit_hit {
            tracing::info!("timeLimit reached: ending the bridge");
            self.end_bridge(true).await;
        }
        if let Some(d) = &mut self.dial {
            d.arbiter.handle_timeout(t);
        }
        self.apply_actions().await;
    }

    async fn on_request(&mut self, stx: ServerTx, request: Request, source: Peer) {
        let cid = request.headers.call_id().unwrap_or("").to_owned();
        let ok = |r: &Request| response_to(r, 200, None, None);
        if cid == self.call_id {
            match self.dialog.on_request(&request) {
                Ok(()) => {}
                Err(e) => {
                    let _ = self
                        .ctx
                        .ep
                        .respond(stx, response_to(&request, e.status(), None, None))
                        .await;
                    return;
                }
            }
            match request.method {
                Method::Bye => {
                    let _ = self.ctx.ep.respond(stx, ok(&request)).await;
                    tracing::info!("caller hung up");
                    self.caller_gone = true;
                    self.caller_left().await;
                    self.feed(Event::CallerHangup);
                    if self.dial.is_none() {
                        self.finished = true;
                    }
                }
                Method::Invite => {
                    // Re-INVITE (hold, resume, refresh): answered from our leg, offered on.
                    if let Some(answer) = self.relay_reinvite(None, &request).await {
                        self.answer_sdp = Some(answer);
                    }
                    let mut r = response_to(&request, 200, None, None);
                    r.headers.push(Header::Contact(self.contact().into()));
                    if let Some(sdp) = &self.answer_sdp {
                        r.headers
                            .push(Header::ContentType("application/sdp".into()));
                        r.body = sdp.clone();
                    }
                    self.dialog.remote_reinvite_pending = false;
                    let _ = self.ctx.ep.respond(stx, r).await;
                }
                Method::Info => {
                    let digit = dtmf_from_info(&request);
                    let _ = self.ctx.ep.respond(stx, ok(&request)).await;
                    if let Some(d) = digit {
                        self.on_digit(d).await;
                    }
                }
                _ => {
                    let _ = self.ctx.ep.respond(stx, ok(&request)).await;
                }
            }
            return;
        }
        // A request in a child leg's dialog.
        let Some(i) = self.branch_index(&cid) else {
            let _ = self
                .ctx
                .ep
                .respond(stx, response_to(&request, 481, None, None))
                .await;
            return;
        };
        let _ = source;
        if request.method == Method::Invite {
            let answer = self.relay_reinvite(Some(i), &request).await;
            let mut r = response_to(&request, 200, None, None);
            r.headers.push(Header::Contact(self.contact().into()));
            if let Some(sdp) = answer {
                r.headers
                    .push(Header::ContentType("application/sdp".into()));
                r.body = sdp;
            }
            let _ = self.ctx.ep.respond(stx, r).await;
            return;
        }
        let _ = self.ctx.ep.respond(stx, ok(&request)).await;
        if request.method == Method::Info {
            let screen = self
                .dial
                .as_mut()
                .and_then(|d| d.branches[i].screen.as_mut());
            if let (Some(digit), Some(s)) = (dtmf_from_info(&request), screen)
                && let Some(ev) = s.gather.as_mut().and_then(|g| g.on_digit(now(), digit))
            {
                s.gather = None;
                let _ = s.interp.handle(ev);
            }
            self.drive_screens().await;
            return;
        }
        if request.method == Method::Bye {
            let bridged = self.dial.as_ref().is_some_and(|d| d.bridged == Some(i));
            if let Some(d) = &mut self.dial {
                d.branches[i].state = BranchState::Ended;
                d.branches[i].screen = None;
            }
            if bridged {
                tracing::info!("callee hung up");
                self.end_bridge(false).await;
            } else if let Some(d) = &mut self.dial {
                d.arbiter.on_branch_hangup(now(), i);
                self.apply_actions().await;
            }
        }
    }

    async fn cleanup(&mut self) {
        if let Some(d) = self.dial.take() {
            for b in d.branches {
                self.ctx.calls.remove(&b.call_id);
                if let Some(m) = b.media {
                    m.close().await;
                }
            }
        }
        for (_, b) in self.lingering.drain(..) {
            self.ctx.calls.remove(&b.call_id);
        }
        if let Some(m) = self.media.take() {
            m.close().await;
        }
        self.ctx.calls.remove(&self.call_id);
    }
}

/// Fetches a document (a `file://` URL from disk, else the web application,
/// signed) off the call's task, and sends the result back as `msg(result)`.
fn spawn_fetch(
    ctx: &Arc<Ctx>,
    me: &mpsc::Sender<CallMsg>,
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
            let treq = tandem_webhook::TwimlRequest {
                target: tandem_webhook::Target::new(req.url.to_string(), twiml_method(req.method)),
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
        let _ = me.send(msg(Box::new(result))).await;
    });
}

fn noun_options(n: &Noun) -> Option<&tandem_twiml::NounOptions> {
    match n {
        Noun::Number(x) => Some(&x.options),
        Noun::Client(x) => Some(&x.options),
        Noun::Sip(x) => Some(&x.options),
        _ => None,
    }
}

/// A child leg's call parameters (Direction outbound-dial, ParentCallSid).
fn child_info(b: &Branch, status: tandem_webhook::CallStatus) -> tandem_webhook::CallInfo {
    let from = b
        .invite
        .headers
        .value_of(|h| matches!(h, Header::From(_)))
        .and_then(|v| NameAddr::parse(v).ok().map(|n| user_of(n.uri)))
        .unwrap_or_default();
    tandem_webhook::CallInfo {
        call_sid: b.sid.clone(),
        account_sid: b.account_sid.clone(),
        from,
        to: b.to.clone(),
        status,
        direction: tandem_webhook::Direction::OutboundDial,
        parent_call_sid: Some(b.parent_sid.clone()),
        forwarded_from: None,
        caller_name: None,
    }
}

/// Queues a status callback for a child leg when its noun asked for `event`.
fn report(
    b: &Branch,
    event: tandem_twiml::CallProgressEvent,
    status: tandem_webhook::CallStatus,
    duration: Option<u64>,
) {
    let (Some((url, method, events)), Some(q)) = (&b.status_callback, &b.callbacks) else {
        return;
    };
    if !events.contains(&event) {
        return;
    }
    let ev = tandem_webhook::StatusEvent {
        call: child_info(b, status),
        duration_secs: duration,
        recording: None,
        sip_response_code: b.final_code,
        timestamp: SystemTime::now(),
    };
    if let Err(e) = q.enqueue_status(url.clone(), *method, &ev) {
        tracing::warn!(error = %e, "status callback dropped");
    }
}

/// A DTMF digit from SIP INFO (`application/dtmf-relay` `Signal=5`, or `application/dtmf` `5`).
fn dtmf_from_info(req: &Request) -> Option<char> {
    let ct = req
        .headers
        .value_of(|h| matches!(h, Header::ContentType(_)))?
        .trim()
        .to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let value = if ct == "application/dtmf-relay" {
        body.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Signal=")
                    .or_else(|| l.trim().strip_prefix("Signal ="))
            })?
            .trim()
    } else if ct == "application/dtmf" {
        body.trim()
    } else {
        return None;
    };
    let c = value.chars().next()?;
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}
#[cfg(test)]
mod footprint {
    /// An actor's queue allocates a block of 32 messages up front: keep the
    /// message small (regression: 1,264 bytes cost 40 KB per call).
    #[test]
    fn call_messages_stay_small() {
        assert!(
            std::mem::size_of::<super::CallMsg>() <= 72,
            "{}",
            std::mem::size_of::<super::CallMsg>()
        );
    }
}
