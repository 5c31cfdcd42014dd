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

/// How long a cancelled branch is waited for (64*T1 with the default T1).
const LINGER: Duration = Duration::from_secs(32);

/// An inert stand-in left in a finished Dial's branch list.
fn placeholder_branch(b: &Branch) -> Branch {
    Branch {
        sid: b.sid.clone(),
        call_id: b.call_id.clone(),
        via_branch: String::new(),
        invite: b.invite.clone(),
        peer: b.peer,
        to: String::new(),
        dialog: None,
        state: BranchState::Ended,
        media: None,
        status_callback: None,
        callbacks: None,
        answered_at: None,
        ringing_reported: true,
        final_code: b.final_code,
        answer_sdp: None,
        parent_sid: String::new(),
        account_sid: String::new(),
        screen_url: None,
        credentials: None,
        auth_tried: true,
        screen: None,
        send_digits: None,
    }
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

    /// Installs the DTMF tap on the caller's leg if it is not there yet
    /// (sharing the tap slot with a recording in progress).
    fn ensure_dtmf(&mut self) {
        if self.dtmf.is_some() {
            return;
        }
        let Some(leg) = &self.media else { return };
        let (tap, rx) = dtmf_tap(32);
        let rec = self
            .dial
            .as_ref()
            .and_then(|d| d.recording.as_ref())
            .map(|(_, taps)| taps.parent.clone());
        let combined: Arc<dyn Tap> = match rec {
            Some(r) => fan_out(vec![tap.clone() as Arc<dyn Tap>, r]),
            None => tap.clone(),
        };
        leg.leg.set_tap(Some(combined));
        self.dtmf = Some(tap);
        self.new_dtmf_rx = Some(rx);
    }

    /// Starts a Say, Play or Pause on a leg; its end feeds VerbDone to the
    /// interpreter that asked (the caller's, or a branch's screening).
    fn play_prompt(&mut self, who: Who, prompt: tandem_twiml::Prompt) {
        self.verb_seq += 1;
        let seq = self.verb_seq;
        let has_leg = match who {
            Who::Caller => self.media.is_some(),
            Who::Branch(i) => self
                .dial
                .as_ref()
                .is_some_and(|d| d.branches[i].media.is_some()),
        };
        if let tandem_twiml::Prompt::Pause(p) = &prompt {
            let until = now() + Duration::from_secs(u64::from(p.length));
            match who {
                Who::Caller => self.pause_until = Some(until),
                Who::Branch(i) => {
                    if let Some(s) = self
                        .dial
                        .as_mut()
                        .and_then(|d| d.branches[i].screen.as_mut())
                    {
                        s.pause_until = Some(until);
                    }
                }
            }
            return;
        }
        if !has_leg {
            tracing::info!("no media on this leg: prompt skipped");
            self.verb_done(who);
            return;
        }
        let prompts = self.ctx.prompts.clone();
        let me = self.me.clone();
        let base = match who {
            Who::Caller => self.document_url.clone(),
            Who::Branch(i) => self
                .dial
                .as_ref()
                .and_then(|d| d.branches[i].screen.as_ref())
                .and_then(|s| s.document_url.clone()),
        };
        tokio::spawn(async move {
            let result = match prompt {
                tandem_twiml::Prompt::Say(say) => prompts
                    .say(
                        &say.text,
                        say.voice.as_deref(),
                        say.language.as_deref(),
                        say.loop_,
                    )
                    .await
                    .map(|p| Box::new(Audio::Prompt(p)))
                    .map_err(|e| e.to_string()),
                tandem_twiml::Prompt::Play(play) => match (&play.digits, &play.url) {
                    (Some(d), _) => digits_source(d)
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
            let _ = me.send(CallMsg::AudioReady { who, seq, result }).await;
        });
    }

    fn on_audio_ready(&mut self, who: Who, seq: u64, result: Result<Box<Audio>, String>) {
        if seq != self.verb_seq {
            return;
        }
        let audio = match result {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "prompt not played");
                self.verb_done(who);
                return;
            }
        };
        let leg = match who {
            Who::Caller => self.media.as_ref().map(|m| &m.leg),
            Who::Branch(i) => self
                .dial
                .as_ref()
                .and_then(|d| d.branches[i].media.as_ref())
                .map(|m| &m.leg),
        };
        let Some(leg) = leg else {
            self.verb_done(who);
            return;
        };
        let injection = match *audio {
            Audio::Prompt(p) => leg.inject(p),
            Audio::Digits(d) => leg.inject(d),
        };
        match who {
            Who::Caller => self.playing = Some(injection),
            Who::Branch(i) => {
                if let Some(s) = self
                    .dial
                    .as_mut()
                    .and_then(|d| d.branches[i].screen.as_mut())
                {
                    s.playing = Some(injection);
                }
            }
        }
    }

    fn on_injection_done(&mut self, leg: tandem_rtp::LegId, id: u64) {
        let is = |inj: &Option<Injection>, l: Option<tandem_rtp::LegId>| {
            inj.as_ref().is_some_and(|i| i.id() == id) && l == Some(leg)
        };
        if is(&self.playing, self.media.as_ref().map(|m| m.leg.id())) {
            self.playing = None;
            self.verb_done(Who::Caller);
            return;
        }
        let n = self.dial.as_ref().map_or(0, |d| d.branches.len());
        for i in 0..n {
            let hit = self.dial.as_ref().is_some_and(|d| {
                let b = &d.branches[i];
                b.screen
                    .as_ref()
                    .is_some_and(|s| is(&s.playing, b.media.as_ref().map(|m| m.leg.id())))
            });
            if hit {
                if let Some(s) = self
                    .dial
                    .as_mut()
                    .and_then(|d| d.branches[i].screen.as_mut())
                {
                    s.playing = None;
                }
                self.verb_done(Who::Branch(i));
                return;
            }
        }
    }

    /// A verb's audio ended: the next `<Gather>` prompt, or VerbDone.
    fn verb_done(&mut self, who: Who) {
        match who {
            Who::Caller => {
                if self.pending_gather.is_some() {
                    self.next_gather_prompt();
                } else {
                    self.feed(Event::VerbDone);
                }
            }
            Who::Branch(i) => {
                if let Some(s) = self
                    .dial
                    .as_mut()
                    .and_then(|d| d.branches[i].screen.as_mut())
                {
                    let _ = s.interp.handle(Event::VerbDone);
                }
            }
        }
    }

    /// Plays the next prompt of the pending `<Gather>`, or starts collecting.
    fn next_gather_prompt(&mut self) {
        if let Some(p) = self.prompt_queue.pop_front() {
            self.play_prompt(Who::Caller, p);
            return;
        }
        if let Some(g) = self.pending_gather.take() {
            self.gather = Some(Gathering::new(now(), &g));
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

    fn branch_index(&self, call_id: &str) -> Option<usize> {
        self.dial.as_ref()?.by_call_id.get(call_id).copied()
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

    async fn on_digit(&mut self, digit: char) {
        if let Some(g) = self.pending_gather.take() {
            // A key during the prompts stops them and starts the gather with it.
            self.prompt_queue.clear();
            self.playing = None;
            self.pause_until = None;
            self.verb_seq += 1;
            self.gather = Some(Gathering::new(now(), &g));
        }
        if let Some(g) = &mut self.gather {
            if let Some(ev) = g.on_digit(now(), digit) {
                self.gather = None;
                self.feed(ev);
            }
            return;
        }
        let star_hangup = self
            .dial
            .as_ref()
            .is_some_and(|d| d.bridged.is_some() && d.spec.hangup_on_star && digit == '*');
        if star_hangup {
            tracing::info!("hangupOnStar: caller pressed *");
            self.end_bridge(true).await;
        }
    }

    // ----- dial -----

    async fn start_dial(&mut self, spec: tandem_twiml::Dial) {
        let t = now();
        let caller_id = spec
            .caller_id
            .clone()
            .unwrap_or_else(|| self.from_user.clone());
        let mut branches = Vec::new();
        let mut unreachable = Vec::new();
        for noun in &spec.nouns {
            for target in self.targets(noun).await {
                let built = match target {
                    Ok(target) => self.build_branch(noun, target, &caller_id),
                    Err(code) => Err(code),
                };
                match built {
                    Ok(b) => branches.push(b),
                    Err(code) => {
                        unreachable.push((branches.len(), code));
                        branches.push(self.dead_branch(code));
                    }
                }
            }
        }
        let screening: Vec<bool> = branches.iter().map(|b| b.screen_url.is_some()).collect();
        let policy = if spec.ring_tone.is_some() {
            RingbackPolicy::RingTone
        } else {
            RingbackPolicy::CalleeEarlyMedia
        };
        let arbiter = ForkArbiter::new(
            t,
            branches.len(),
            Duration::from_secs(u64::from(spec.timeout)),
            screening,
            policy,
        );
        let by_call_id = branches
            .iter()
            .enumerate()
            .map(|(i, b)| (b.call_id.clone(), i))
            .collect();
        for b in &branches {
            self.ctx.calls.insert(b.call_id.clone(), self.me.clone());
        }
        let time_limit = None;
        let rec_opts = RecordingOptions::from_twiml(spec.record, spec.recording_track, spec.trim);
        let rec_callback = spec.recording_status_callback.as_ref().and_then(|u| {
            let url = match self.document_url.as_ref() {
                Some(b) => b.join(u).ok()?,
                None => Url::parse(u).ok()?,
            };
            let events = if spec.recording_status_callback_event.is_empty() {
                vec![tandem_twiml::RecordingEvent::Completed]
            } else {
                spec.recording_status_callback_event.clone()
            };
            Some((
                url,
                twiml_method(spec.recording_status_callback_method),
                events,
            ))
        });
        self.dial = Some(DialState {
            spec,
            arbiter,
            branches,
            by_call_id,
            bridged: None,
            bridged_at: None,
            time_limit,
            result: None,
            rec_opts,
            recording: None,
            rec_callback,
        });
        // Send every INVITE at once.
        let dial = self.dial.as_mut().expect("just set");
        for b in dial.branches.iter_mut() {
            if b.state == BranchState::Calling {
                let _ = self.ctx.ep.send_request(b.invite.clone(), b.peer).await;
                report(
                    b,
                    tandem_twiml::CallProgressEvent::Initiated,
                    tandem_webhook::CallStatus::Initiated,
                    None,
                );
            }
        }
        for (i, code) in unreachable {
            if let Some(d) = &mut self.dial {
                d.arbiter.on_failed(t, i, code);
            }
        }
        if self
            .dial
            .as_ref()
            .and_then(|d| d.rec_opts.as_ref())
            .is_some_and(|o| o.from == RecordFrom::Ringing)
        {
            self.start_recording();
        }
        let answer_on_bridge = self.dial.as_ref().is_some_and(|d| d.spec.answer_on_bridge);
        if !self.answered && answer_on_bridge && !self.early_sent {
            // The caller rings until a callee is bridged; with anchored media it hears ringback.
            let sdp = self.answer_sdp.clone();
            let code = if sdp.is_some() { 183 } else { 180 };
            let r = self.response(code, sdp.as_deref());
            let _ = self.ctx.ep.respond(self.invite_tx, r).await;
            self.early_sent = true;
        }
        self.apply_actions().await;
    }

    fn dead_branch(&mut self, code: u16) -> Branch {
        let call_id = self.ids.call_id();
        Branch {
            sid: call_sid(&mut self.ids),
            call_id,
            via_branch: String::new(),
            invite: self.invite.clone(),
            peer: self.source,
            to: String::new(),
            dialog: None,
            state: BranchState::Ended,
            media: None,
            status_callback: None,
            callbacks: None,
            answered_at: None,
            ringing_reported: false,
            final_code: Some(code),
            answer_sdp: None,
            parent_sid: self.sid.clone(),
            account_sid: self.ctx.cfg.account_sid.clone(),
            screen_url: None,
            credentials: None,
            auth_tried: false,
            screen: None,
            send_digits: None,
        }
    }

    /// Where a noun rings: one target for `<Number>` and `<Sip>`, one per
    /// registered contact for `<Client>`; an Err ends that branch at once
    /// with its SIP status.
    async fn targets(&mut self, noun: &Noun) -> Vec<Result<Target, u16>> {
        match noun {
            Noun::Sip(s) => {
                let creds = s.username.clone().zip(s.password.clone());
                vec![resolve(&s.uri, s.headers.clone(), creds).await]
            }
            Noun::Number(n) => {
                let number = n.number.to_string();
                let Some(trunk) = self.ctx.cfg.trunk_for(&number, n.byoc.as_deref()) else {
                    tracing::warn!(%number, "no trunk carries this number");
                    return vec![Err(404)];
                };
                let host = trunk
                    .proxy
                    .split_once(':')
                    .map_or(trunk.proxy.as_str(), |(_, h)| h);
                let creds = trunk.username.clone().zip(trunk.password.clone());
                vec![resolve(&format!("sip:{number}@{host}"), Vec::new(), creds).await]
            }
            Noun::Client(c) => {
                let contacts = self.ctx.registrar_contacts(&c.identity);
                if contacts.is_empty() {
                    tracing::info!(identity = %c.identity, "<Client> not registered: branch fails");
                    return vec![Err(480)];
                }
                contacts
                    .into_iter()
                    .map(|(uri, peer)| {
                        Ok(Target {
                            uri,
                            peer,
                            headers: Vec::new(),
                            credentials: None,
                        })
                    })
                    .collect()
            }
            _ => vec![Err(488)],
        }
    }

    /// Builds a branch's INVITE toward a target.
    fn build_branch(
        &mut self,
        noun: &Noun,
        target: Target,
        caller_id: &str,
    ) -> Result<Branch, u16> {
        let Target {
            uri,
            peer,
            headers: extra,
            credentials,
        } = target;
        let transport = peer.transport;
        let call_id = self.ids.call_id();
        let via_branch = self.ids.branch();
        let tag = self.ids.tag();
        let Ok(ruri) = rsip::Uri::try_from(uri.split('?').next().unwrap_or(&uri)) else {
            return Err(400);
        };
        let host_port = &self.ctx.cfg.sip_host;
        let mut b = RequestBuilder::new(Method::Invite, ruri)
            .via(transport.as_str(), host_port, &via_branch)
            .max_forwards(70)
            .from(format!("<sip:{caller_id}@{host_port}>;tag={tag}"))
            .to(format!("<{}>", uri.split('?').next().unwrap_or(&uri)))
            .call_id(call_id.clone())
            .cseq(1)
            .contact(self.contact());
        for (k, v) in extra {
            b = b.header(Header::Other(k, v));
        }
        if let Noun::Client(c) = noun {
            for (k, v) in &c.parameters {
                b = b.header(Header::Other(format!("X-{k}"), v.clone()));
            }
        }
        // Media: a leg per branch, offered the caller's codecs.
        let mut media = None;
        let mut body = None;
        if let Some(m) = &self.ctx.media {
            let mut leg = m.leg(self.media_tx.clone()).map_err(|e| e.status())?;
            let sdp = if has_sdp(&self.invite.headers, &self.invite.body) {
                leg.offer_from(&self.invite.body, m.caps())
                    .map_err(|e| e.status())?
            } else {
                leg.offer(m.caps())
            };
            body = Some(sdp);
            media = Some(leg);
        } else if has_sdp(&self.invite.headers, &self.invite.body) {
            body = Some(self.invite.body.clone());
        }
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        let invite = b.build();
        let status_callback = noun_options(noun).and_then(|o| {
            let base = self.document_url.as_ref();
            let url = o.status_callback.as_ref()?;
            let url = match base {
                Some(b) => b.join(url).ok()?,
                None => Url::parse(url).ok()?,
            };
            let events = if o.status_callback_event.is_empty() {
                vec![tandem_twiml::CallProgressEvent::Completed]
            } else {
                o.status_callback_event.clone()
            };
            Some((url, twiml_method(o.status_callback_method), events))
        });
        let screen_url = noun_options(noun).and_then(|o| {
            let url = o.url.as_ref()?;
            let url = match self.document_url.as_ref() {
                Some(b) => b.join(url).ok()?,
                None => Url::parse(url).ok()?,
            };
            Some((url, o.method))
        });
        let sid = call_sid(&mut self.ids);
        let callbacks = status_callback
            .as_ref()
            .map(|_| self.ctx.callbacks.open(sid.clone()));
        Ok(Branch {
            sid,
            call_id,
            via_branch,
            invite,
            peer,
            to: user_of(&uri),
            dialog: None,
            state: BranchState::Calling,
            media,
            status_callback,
            callbacks,
            answered_at: None,
            ringing_reported: false,
            final_code: None,
            answer_sdp: None,
            parent_sid: self.sid.clone(),
            account_sid: self.ctx.cfg.account_sid.clone(),
            screen_url,
            credentials,
            auth_tried: false,
            screen: None,
            send_digits: match noun {
                Noun::Number(n) => n.send_digits.clone(),
                _ => None,
            },
        })
    }

    /// A 2xx to a re-INVITE Tandem sent the caller: ACK it and take its SDP.
    async fn on_parent_reinvite_response(&mut self, response: &Response, seq: u32) {
        let branch = self.ids.branch();
        let host = self.ctx.cfg.sip_host.clone();
        let leg = LegSignal {
            dialog: &mut self.dialog,
            media: self.media.as_mut(),
            peer: self.source,
        };
        leg.ack_reinvite(&self.ctx, response, seq, &host, &branch)
            .await;
    }

    /// A 2xx to a re-INVITE Tandem sent a callee: ACK it and take its SDP.
    async fn on_child_reinvite_response(&mut self, i: usize, response: &Response, seq: u32) {
        let branch = self.ids.branch();
        let host = self.ctx.cfg.sip_host.clone();
        let Some(b) = self.dial.as_mut().map(|d| &mut d.branches[i]) else {
            return;
        };
        let Some(dialog) = &mut b.dialog else { return };
        let leg = LegSignal {
            dialog,
            media: b.media.as_mut(),
            peer: b.peer,
        };
        leg.ack_reinvite(&self.ctx, response, seq, &host, &branch)
            .await;
    }

    /// A re-INVITE from one side of the bridge (hold, resume, codec change):
    /// answered at once from Tandem's anchored leg, and offered on to the other
    /// side so that hold propagates (design §1: re-INVITEs pass between legs).
    async fn relay_reinvite(
        &mut self,
        from_child: Option<usize>,
        request: &Request,
    ) -> Option<Vec<u8>> {
        let caps = self.ctx.media.as_ref()?.caps().clone();
        let body = &request.body;
        if !has_sdp(&request.headers, body) {
            return None;
        }
        let host = self.ctx.cfg.sip_host.clone();
        let branch = self.ids.branch();
        let bridged = self.dial.as_ref().and_then(|d| d.bridged);
        match from_child {
            None => {
                let answer = match self.media.as_mut()?.answer(body, &caps) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "caller's re-INVITE SDP unusable");
                        return None;
                    }
                };
                if let Some(i) = bridged {
                    let b = &mut self.dial.as_mut()?.branches[i];
                    if let (Some(m), Some(dialog)) = (&mut b.media, &mut b.dialog)
                        && let Ok(offer) = m.offer_from(body, &caps)
                        && let Ok(mut re) = dialog.request(
                            Method::Invite,
                            b.peer.transport.as_str(),
                            &host,
                            &branch,
                        )
                    {
                        re.headers
                            .push(Header::ContentType("application/sdp".into()));
                        re.body = offer;
                        let _ = self.ctx.ep.send_request(re, b.peer).await;
                    }
                }
                Some(answer)
            }
            Some(i) => {
                let b = &mut self.dial.as_mut()?.branches[i];
                let answer = match b.media.as_mut()?.answer(body, &caps) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "callee's re-INVITE SDP unusable");
                        return None;
                    }
                };
                if bridged == Some(i)
                    && let Some(m) = &mut self.media
                    && let Ok(offer) = m.offer_from(body, &caps)
                    && let Ok(mut re) = self.dialog.request(
                        Method::Invite,
                        self.source.transport.as_str(),
                        &host,
                        &branch,
                    )
                {
                    re.headers
                        .push(Header::ContentType("application/sdp".into()));
                    re.body = offer;
                    let _ = self.ctx.ep.send_request(re, self.source).await;
                }
                Some(answer)
            }
        }
    }

    /// Runs the noun's `url` document on an answered callee (design §4 step 5):
    /// the caller keeps hearing ringback, the other branches keep ringing.
    fn start_screening(&mut self, i: usize) {
        let Some(d) = &mut self.dial else { return };
        let b = &mut d.branches[i];
        let Some((url, method)) = b.screen_url.clone() else {
            d.arbiter
                .on_screening_done(now(), i, tandem_twiml::ScreeningVerdict::Accepted);
            return;
        };
        tracing::info!(branch = i, %url, "screening the callee");
        b.screen = Some(Screen {
            interp: Interpreter::screening(url, method),
            playing: None,
            pause_until: None,
            gather: None,
            document_url: None,
        });
    }

    /// Executes the commands of every screening interpreter.
    async fn drive_screens(&mut self) {
        let n = self.dial.as_ref().map_or(0, |d| d.branches.len());
        for i in 0..n {
            loop {
                let Some(d) = &mut self.dial else { return };
                let b = &mut d.branches[i];
                let Some(screen) = &mut b.screen else { break };
                let Some(cmd) = screen.interp.poll_command() else {
                    break;
                };
                match cmd {
                    Command::Fetch(req) => {
                        let mut params =
                            child_info(b, tandem_webhook::CallStatus::InProgress).voice_params();
                        for (k, v) in &req.params {
                            params.push(k, v);
                        }
                        let call_id = b.call_id.clone();
                        spawn_fetch(&self.ctx, &self.me, req, params, None, move |result| {
                            CallMsg::ScreenFetched { call_id, result }
                        });
                    }
                    Command::Say(say) => {
                        self.play_prompt(Who::Branch(i), tandem_twiml::Prompt::Say(say));
                    }
                    Command::Play(play) => {
                        self.play_prompt(Who::Branch(i), tandem_twiml::Prompt::Play(play));
                    }
                    Command::Pause { duration } => screen.pause_until = Some(now() + duration),
                    Command::Gather(g) => screen.gather = Some(Gathering::new(now(), &g)),
                    Command::Screened(verdict) => {
                        tracing::info!(branch = i, ?verdict, "screening done");
                        b.screen = None;
                        d.arbiter.on_screening_done(now(), i, verdict);
                        self.apply_actions().await;
                    }
                    Command::Answer | Command::Hangup => {}
                    other => tracing::warn!(?other, "command not allowed in a screening document"),
                }
            }
        }
    }

    async fn screen_timers(&mut self, t: Instant) {
        let Some(d) = &mut self.dial else { return };
        for b in &mut d.branches {
            let Some(s) = &mut b.screen else { continue };
            if s.pause_until.is_some_and(|p| p <= t) {
                s.pause_until = None;
                let _ = s.interp.handle(Event::VerbDone);
            }
            if let Some(ev) = s.gather.as_mut().and_then(|g| g.on_timeout(t)) {
                s.gather = None;
                let _ = s.interp.handle(ev);
            }
        }
        self.drive_screens().await;
    }

    async fn on_child_response(&mut self, response: Response, stray_source: Option<Peer>) {
        let cid = response.headers.call_id().unwrap_or("").to_owned();
        let Some((seq, Method::Invite)) = response.headers.cseq() else {
            // Responses to BYE, CANCEL, INFO: the transactions did their part.
            return;
        };
        if cid == self.call_id {
            self.on_parent_reinvite_response(&response, seq).await;
            return;
        }
        let Some(i) = self.branch_index(&cid) else {
            self.on_lingering_response(&cid, &response).await;
            return;
        };
        let reinvite = self
            .dial
            .as_ref()
            .and_then(|d| d.branches[i].dialog.as_ref())
            .is_some_and(|dl| seq > dl.invite_seq);
        if reinvite {
            self.on_child_reinvite_response(i, &response, seq).await;
            return;
        }
        let code = response.status_code.code();
        let t = now();
        let sdp = has_sdp(&response.headers, &response.body);
        let host = self.ctx.cfg.sip_host.clone();
        let Some(dial) = &mut self.dial else { return };
        let b = &mut dial.branches[i];
        if (200..300).contains(&code) {
            // Every 2xx is ACKed at once (ACK before any BYE); the arbiter decides what follows.
            let dialog = match b.dialog.take() {
                Some(mut d) if d.id.remote_tag == response.headers.to_tag().unwrap_or("") => {
                    d.on_invite_response(&response);
                    Ok(d)
                }
                _ => Dialog::uac(&b.invite, &response),
            };
            let Ok(dialog) = dialog else {
                tracing::warn!("2xx without To tag from a callee: cannot ACK it");
                return;
            };
            let ack_branch = self.ids.branch();
            if let Ok(ack) = dialog.ack(b.peer.transport.as_str(), &host, &ack_branch) {
                let _ = self
                    .ctx
                    .ep
                    .send_stateless(SipMessage::Request(ack), b.peer)
                    .await;
            }
            b.dialog = Some(dialog);
            if stray_source.is_some()
                || b.state == BranchState::Answered
                || b.state == BranchState::Bridged
            {
                return;
            }
            if let (Some(m), true) = (&mut b.media, sdp)
                && let Err(e) = m.on_answer(&response.body)
            {
                tracing::warn!(error = %e, "callee's SDP answer unusable");
            }
            // Kept only to answer the caller with when media is not anchored.
            if sdp && b.media.is_none() {
                b.answer_sdp = Some(response.body.clone());
            }
            b.state = BranchState::Answered;
            b.answered_at = Some(t);
            dial.arbiter.on_answered(t, i);
        } else if code > 100 && code < 200 {
            if b.state == BranchState::Calling {
                b.state = BranchState::Ringing;
            }
            if b.dialog.is_none() && response.headers.to_tag().is_some() {
                b.dialog = Dialog::uac(&b.invite, &response).ok();
            }
            if let (Some(m), true) = (&mut b.media, sdp) {
                let _ = m.on_answer(&response.body);
            }
            if !b.ringing_reported {
                b.ringing_reported = true;
                report(
                    b,
                    tandem_twiml::CallProgressEvent::Ringing,
                    tandem_webhook::CallStatus::Ringing,
                    None,
                );
            }
            dial.arbiter.on_provisional(t, i, code, sdp);
        } else if matches!(code, 401 | 407) && b.credentials.is_some() && !b.auth_tried {
            // Answer the challenge once with the trunk's or the noun's credentials.
            b.auth_tried = true;
            let branch = self.ids.branch();
            let cnonce = self.ids.tag();
            match authorized_invite(
                &b.invite,
                &response,
                b.credentials.as_ref(),
                &branch,
                &cnonce,
            ) {
                Ok(invite) => {
                    b.invite = invite.clone();
                    b.via_branch = branch;
                    let peer = b.peer;
                    let _ = self.ctx.ep.send_request(invite, peer).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, code, "cannot answer the callee's challenge");
                    b.final_code = Some(code);
                    b.state = BranchState::Ended;
                    dial.arbiter.on_failed(t, i, code);
                }
            }
        } else if code >= 300 {
            b.final_code = Some(code);
            b.state = BranchState::Ended;
            dial.arbiter.on_failed(t, i, code);
        }
        self.apply_actions().await;
    }

    /// A final response on a branch cancelled after its Dial ended: a 2xx is
    /// ACKed then BYEd (ACK first), anything final lets the branch go.
    async fn on_lingering_response(&mut self, cid: &str, response: &Response) {
        let Some(pos) = self.lingering.iter().position(|(_, b)| b.call_id == cid) else {
            return;
        };
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        let (_, b) = self.lingering.remove(pos);
        self.ctx.calls.remove(&b.call_id);
        if code >= 300 {
            return;
        }
        tracing::info!(code, "a cancelled branch answered anyway: ACK then BYE");
        let host = self.ctx.cfg.sip_host.clone();
        let Ok(mut dialog) = Dialog::uac(&b.invite, response) else {
            return;
        };
        let transport = b.peer.transport.as_str();
        if let Ok(ack) = dialog.ack(transport, &host, &self.ids.branch()) {
            let _ = self
                .ctx
                .ep
                .send_stateless(SipMessage::Request(ack), b.peer)
                .await;
        }
        if let Ok(bye) = dialog.request(Method::Bye, transport, &host, &self.ids.branch()) {
            let _ = self.ctx.ep.send_request(bye, b.peer).await;
        }
    }

    async fn branch_failed(&mut self, i: usize, code: u16) {
        if let Some(d) = &mut self.dial {
            if d.branches[i].state == BranchState::Ended {
                return;
            }
            d.branches[i].state = BranchState::Ended;
            d.branches[i].final_code = Some(code);
            d.arbiter.on_failed(now(), i, code);
        }
        self.apply_actions().await;
    }

    /// The caller left (BYE or CANCEL) during a Dial.
    async fn caller_left(&mut self) {
        let bridged = self.dial.as_ref().and_then(|d| d.bridged);
        if bridged.is_some() {
            self.end_bridge(true).await;
            return;
        }
        if let Some(d) = &mut self.dial {
            d.arbiter.on_caller_hangup(now());
        }
        self.apply_actions().await;
    }

    async fn bye_branch(&mut self, i: usize) {
        let host = self.ctx.cfg.sip_host.clone();
        let branch = self.ids.branch();
        let Some(d) = &mut self.dial else { return };
        let b = &mut d.branches[i];
        if let Some(dialog) = &mut b.dialog
            && let Ok(bye) = dialog.request(Method::Bye, b.peer.transport.as_str(), &host, &branch)
        {
            let _ = self.ctx.ep.send_request(bye, b.peer).await;
        }
        b.state = BranchState::Ended;
    }

    async fn apply_actions(&mut self) {
        while let Some(action) = self.dial.as_mut().and_then(|d| d.arbiter.poll_action()) {
            match action {
                Action::Cancel(i) => {
                    let (cid, br) = {
                        let b = &self.dial.as_ref().expect("dial").branches[i];
                        (b.call_id.clone(), b.via_branch.clone())
                    };
                    let _ = self.ctx.ep.cancel(&cid, &br).await;
                }
                Action::AckThenBye(i) | Action::Bye(i) => self.bye_branch(i).await,
                Action::StartScreening(i) => self.start_screening(i),
                Action::Bridge(i) => self.bridge(i).await,
                Action::PlayRingback => self.play_ringback(),
                Action::PlayEarlyMedia(i) => self.play_early_media(i),
                Action::Finished(result) => self.dial_finished(result).await,
            }
        }
    }

    fn play_ringback(&mut self) {
        let tone = self
            .dial
            .as_ref()
            .and_then(|d| d.spec.ring_tone)
            .and_then(|t| t.code().parse().ok())
            .unwrap_or(tandem_media::tones::RingTone::Us);
        if let Some(m) = &mut self.media {
            m.start_ringback(tone);
        }
    }

    fn play_early_media(&mut self, i: usize) {
        if let (Some(parent), Some(d)) = (&mut self.media, &self.dial)
            && let Some(child) = &d.branches[i].media
        {
            parent.stop_ringback();
            child.leg.relay_to(Some(&parent.leg));
        }
    }

    async fn bridge(&mut self, i: usize) {
        let t = now();
        if self.dial.as_ref().is_some_and(|d| d.spec.hangup_on_star) {
            self.ensure_dtmf();
        }
        if !self.answered && !self.caller_gone {
            if self.ctx.media.is_none() {
                // Signalling only: the caller gets the callee's own SDP answer.
                self.answer_sdp = self
                    .dial
                    .as_ref()
                    .and_then(|d| d.branches[i].answer_sdp.clone());
            }
            self.answer().await;
        }
        let Some(d) = &mut self.dial else { return };
        d.bridged = Some(i);
        d.bridged_at = Some(t);
        if d.spec.time_limit > 0 {
            d.time_limit = Some(t + Duration::from_secs(u64::from(d.spec.time_limit)));
        }
        let b = &mut d.branches[i];
        b.state = BranchState::Bridged;
        // The offer in the INVITE is answered; later requests need only its headers.
        b.invite.body = Vec::new();
        report(
            b,
            tandem_twiml::CallProgressEvent::Answered,
            tandem_webhook::CallStatus::InProgress,
            None,
        );
        if let (Some(parent), Some(child)) = (&mut self.media, &b.media) {
            parent.stop_ringback();
            tandem_rtp::bridge(&parent.leg, &child.leg);
        }
        if let (Some(child), Some(digits)) = (&b.media, &b.send_digits) {
            match digits_source(digits) {
                Ok(src) => child.leg.inject(src).detach(),
                Err(e) => tracing::warn!(error = %e, "sendDigits not played"),
            }
        }
        if self
            .dial
            .as_ref()
            .is_some_and(|d| d.recording.is_none() && d.rec_opts.is_some())
        {
            self.start_recording();
        }
        if let Some(d) = &self.dial
            && let (Some((_, taps)), Some(child)) = (&d.recording, &d.branches[i].media)
        {
            child.leg.set_tap(Some(taps.child.clone()));
        }
        tracing::info!(branch = i, "bridged");
    }

    /// The bridge ended: `by_us` when the caller left, timeLimit or hangupOnStar.
    async fn end_bridge(&mut self, by_us: bool) {
        let Some(i) = self.dial.as_ref().and_then(|d| d.bridged) else {
            return;
        };
        if by_us {
            let live = self
                .dial
                .as_ref()
                .is_some_and(|d| d.branches[i].state == BranchState::Bridged);
            if live {
                self.bye_branch(i).await;
            }
        }
        let Some(d) = &mut self.dial else { return };
        d.branches[i].state = BranchState::Ended;
        let duration = d
            .bridged_at
            .map_or(0, |a| now().saturating_duration_since(a).as_secs());
        d.result = Some(DialCallStatus::Completed);
        let outcome = DialOutcome {
            status: DialCallStatus::Completed,
            call_sid: Some(d.branches[i].sid.clone()),
            duration: Some(duration as u32),
            bridged: true,
            recording_url: None,
        };
        self.finish_dial(outcome).await;
    }

    async fn dial_finished(&mut self, result: crate::fork::DialResult) {
        let Some(d) = &mut self.dial else { return };
        if d.bridged.is_some() {
            // The bridge is up; the Dial ends when it does.
            return;
        }
        let status = result.status.dial_call_status();
        let outcome = DialOutcome {
            status,
            call_sid: d.branches.first().map(|b| b.sid.clone()),
            duration: Some(0),
            bridged: false,
            recording_url: None,
        };
        self.finish_dial(outcome).await;
    }

    /// Starts the Dial's recording: channel 1 the caller, channel 2 the callee.
    fn start_recording(&mut self) {
        let Some(opts) = self.dial.as_ref().and_then(|d| d.rec_opts) else {
            return;
        };
        let Some(parent) = &self.media else {
            tracing::info!("no media on the caller's leg: nothing to record");
            return;
        };
        match self
            .ctx
            .recordings
            .start(&self.sid, opts, tokio::time::Instant::now())
        {
            Ok((session, taps)) => {
                let tap: Arc<dyn Tap> = match &self.dtmf {
                    Some(d) => fan_out(vec![d.clone() as Arc<dyn Tap>, taps.parent.clone()]),
                    None => taps.parent.clone(),
                };
                parent.leg.set_tap(Some(tap));
                let event = session.in_progress_event();
                let cb = self.dial.as_ref().and_then(|d| d.rec_callback.clone());
                if let Some((url, method, events)) = cb
                    && events.contains(&tandem_twiml::RecordingEvent::InProgress)
                    && let Err(e) = self
                        .parent_callbacks()
                        .enqueue_recording(url, method, &event)
                {
                    tracing::warn!(error = %e, "recording callback dropped");
                }
                tracing::info!(recording = %session.sid(), "recording started");
                if let Some(d) = &mut self.dial {
                    d.recording = Some((session, taps));
                }
            }
            Err(e) => tracing::warn!(error = %e, "recording not started"),
        }
    }

    /// The parent call's callback queue, opened on first use.
    fn parent_callbacks(&mut self) -> &tandem_webhook::CallbackQueue {
        let sid = self.sid.clone();
        let ctx = self.ctx.clone();
        self.callbacks
            .get_or_insert_with(|| ctx.callbacks.open(sid))
    }

    async fn finish_dial(&mut self, mut outcome: DialOutcome) {
        let Some(mut d) = self.dial.take() else {
            return;
        };
        self.ctx.metrics.dial_ended(webhook_status(outcome.status));
        if let Some((mut session, _)) = d.recording.take() {
            // The caller's leg goes back to DTMF only.
            if let Some(m) = &self.media {
                m.leg.set_tap(self.dtmf.clone().map(|t| t as Arc<dyn Tap>));
            }
            match session.stop(tokio::time::Instant::now()) {
                Ok(info) => {
                    self.ctx.metrics.recording_finished(info.status);
                    if info.status == tandem_webhook::RecordingStatus::Completed {
                        outcome.recording_url = Some(info.url.clone());
                    }
                    let wanted = match info.status {
                        tandem_webhook::RecordingStatus::Absent => {
                            tandem_twiml::RecordingEvent::Absent
                        }
                        _ => tandem_twiml::RecordingEvent::Completed,
                    };
                    if let Some((url, method, events)) = &d.rec_callback
                        && events.contains(&wanted)
                    {
                        let (url, method) = (url.clone(), *method);
                        let q = self.parent_callbacks();
                        if let Err(e) = q.enqueue_recording(url, method, &info.event()) {
                            tracing::warn!(error = %e, "recording callback dropped");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "recording not finished"),
            }
        }
        let t = now();
        for b in d.branches.iter_mut() {
            let status = match (b.answered_at, b.final_code) {
                (Some(_), _) => tandem_webhook::CallStatus::Completed,
                (None, Some(486 | 600)) => tandem_webhook::CallStatus::Busy,
                (None, Some(408 | 480 | 487)) | (None, None) => {
                    tandem_webhook::CallStatus::NoAnswer
                }
                (None, Some(_)) => tandem_webhook::CallStatus::Failed,
            };
            let duration = b
                .answered_at
                .map(|a| t.saturating_duration_since(a).as_secs());
            report(
                b,
                tandem_twiml::CallProgressEvent::Completed,
                status,
                duration,
            );
            if let Some(m) = b.media.take() {
                m.close().await;
            }
            if matches!(b.state, BranchState::Calling | BranchState::Ringing) {
                // CANCELled but not yet final: its 200 may cross our CANCEL and must
                // still be ACKed then BYEd, so its Call-ID stays routed here.
                b.state = BranchState::Ended;
                b.screen = None;
                self.lingering
                    .push((t + LINGER, std::mem::replace(b, placeholder_branch(b))));
            } else {
                self.ctx.calls.remove(&b.call_id);
            }
        }
        if let Some(parent) = &mut self.media {
            parent.stop_ringback();
            parent.leg.relay_to(None);
        }
        tracing::info!(status = %outcome.status, "dial finished");
        self.feed(Event::DialOutcome(outcome));
        if self.caller_gone {
            self.finished = true;
        }
        let _ = d.spec.action.take();
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

/// One leg's dialog, media and peer, for what both sides of a bridge do alike.
struct LegSignal<'a> {
    dialog: &'a mut Dialog,
    media: Option<&'a mut MediaLeg>,
    peer: Peer,
}

impl LegSignal<'_> {
    /// ACKs the 2xx of a re-INVITE Tandem sent on this leg (CSeq `seq`) and
    /// takes the SDP answer it carries.
    async fn ack_reinvite(
        self,
        ctx: &Ctx,
        response: &Response,
        seq: u32,
        host: &str,
        branch: &str,
    ) {
        if !(200..300).contains(&response.status_code.code()) {
            return;
        }
        self.dialog.on_invite_response(response);
        if let Ok(ack) = self
            .dialog
            .ack_for(seq, self.peer.transport.as_str(), host, branch)
        {
            let _ = ctx
                .ep
                .send_stateless(SipMessage::Request(ack), self.peer)
                .await;
        }
        if let (Some(m), true) = (self.media, has_sdp(&response.headers, &response.body))
            && let Err(e) = m.on_answer(&response.body)
        {
            tracing::warn!(error = %e, "answer to our re-INVITE unusable");
        }
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

/// The INVITE re-sent with credentials for a 401/407 (RFC 3261 §22.2): new
/// branch, next CSeq, Authorization or Proxy-Authorization.
fn authorized_invite(
    invite: &Request,
    challenge: &Response,
    credentials: Option<&(String, String)>,
    branch: &str,
    cnonce: &str,
) -> Result<Request, tandem_sip::auth::AuthError> {
    use tandem_sip::auth::{Challenge, DigestClient, DigestRequest};
    let proxy = challenge.status_code.code() == 407;
    let value = challenge
        .headers
        .iter()
        .find(|h| {
            if proxy {
                matches!(h, Header::ProxyAuthenticate(_))
            } else {
                matches!(h, Header::WwwAuthenticate(_))
            }
        })
        .map(tandem_sip::message::header_value)
        .unwrap_or("");
    let parsed = Challenge::parse(value)?;
    let (user, pass) = credentials
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .unwrap_or(("", ""));
    let uri = invite.uri.to_string();
    let creds = DigestClient::new().authorize(
        &parsed,
        &DigestRequest {
            method: "INVITE",
            uri: &uri,
            body: &invite.body,
        },
        user,
        pass,
        cnonce,
    )?;
    let mut next = invite.clone();
    let seq = next.headers.cseq().map_or(1, |c| c.0) + 1;
    let mut via_done = false;
    for h in next.headers.iter_mut() {
        match h {
            Header::Via(_) if !via_done => {
                via_done = true;
                let v = tandem_sip::message::header_value(h);
                let rewritten = match v.split_once(";branch=") {
                    Some((head, rest)) => {
                        let tail = rest
                            .split_once(';')
                            .map_or(String::new(), |(_, t)| format!(";{t}"));
                        format!("{head};branch={branch}{tail}")
                    }
                    None => format!("{v};branch={branch}"),
                };
                *h = Header::Via(rewritten.into());
            }
            Header::CSeq(_) => *h = Header::CSeq(format!("{seq} INVITE").into()),
            _ => {}
        }
    }
    next.headers
        .retain(|h| !matches!(h, Header::Authorization(_) | Header::ProxyAuthorization(_)));
    let value = creds.to_string();
    next.headers.push(if proxy {
        Header::ProxyAuthorization(value.into())
    } else {
        Header::Authorization(value.into())
    });
    Ok(next)
}

/// Where a branch's INVITE goes.
#[derive(Debug)]
struct Target {
    uri: String,
    peer: Peer,
    headers: Vec<(String, String)>,
    credentials: Option<(String, String)>,
}

/// Resolves a SIP URI to the peer to send to (`transport=tcp` honoured, port 5060 by default).
async fn resolve(
    uri: &str,
    headers: Vec<(String, String)>,
    credentials: Option<(String, String)>,
) -> Result<Target, u16> {
    let Some((host, port)) = uri_host_port(uri) else {
        tracing::warn!(%uri, "destination URI has no host");
        return Err(400);
    };
    let transport = match uri_param(uri, "transport").flatten() {
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        _ => Transport::Udp,
    };
    let port = port.unwrap_or(5060);
    let Some(addr) = tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
    else {
        tracing::warn!(%uri, "cannot resolve the destination");
        return Err(404);
    };
    Ok(Target {
        uri: uri.to_owned(),
        peer: Peer { transport, addr },
        headers,
        credentials,
    })
}

/// The same `DialCallStatus` in the webhook crate's vocabulary.
fn webhook_status(s: DialCallStatus) -> tandem_webhook::DialCallStatus {
    match s {
        DialCallStatus::Completed => tandem_webhook::DialCallStatus::Completed,
        DialCallStatus::Answered => tandem_webhook::DialCallStatus::Answered,
        DialCallStatus::Busy => tandem_webhook::DialCallStatus::Busy,
        DialCallStatus::NoAnswer => tandem_webhook::DialCallStatus::NoAnswer,
        DialCallStatus::Failed => tandem_webhook::DialCallStatus::Failed,
        DialCallStatus::Canceled => tandem_webhook::DialCallStatus::Canceled,
    }
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
