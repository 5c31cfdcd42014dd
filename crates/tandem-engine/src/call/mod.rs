//! One call as a sans-IO state machine (design §3, §4; docs/architecture.md
//! "The call state machine"): the caller's leg (UAS dialog), its TwiML
//! interpreter, the current `<Dial>`'s branches and fork arbiter, and the
//! media legs by id.
//!
//! Inputs are `handle_*(now, …)`; what to do comes out of
//! [`Call::poll_output`] in the order it must be done; the next timer is
//! [`Call::poll_timeout`]. The call never reads a clock, never awaits and
//! does no I/O: media goes through the synchronous [`Env`], everything that
//! takes time is an [`Output`] for the shell (`shell.rs`) to carry out and
//! answer with a [`CallMsg`]. The virtual-time harness (`tests/`) drives it
//! the same way, in microseconds.
//!
//! A branch lives from its INVITE (or its failure before one) to the
//! arbiter's `Ended` for it: its media leg, timers and status callbacks
//! start and end with it, not with the `<Dial>`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_rtp::{LegId, MediaEvent};
use tandem_sip::builder::{IdGen, response_to};
use tandem_sip::dialog::Dialog;
use tandem_sip::header::NameAddr;
use tandem_sip::message::{Header, HeadersExt, Method, Request, Response};
use tandem_transport::{Peer, ServerTx};
use tandem_twiml::{Command, Event, Interpreter};
use url::Url;

use crate::config::EngineConfig;
use crate::gather::Gathering;
use crate::media_ops::{DigitsSource, DtmfDigit, PromptSource, VoiceChange};

mod amd;
mod api;
mod conference;
mod dial;
mod env;
mod hold;
mod prack;
mod prompts;
mod queue;
mod record;
mod reinvite;
mod replaces;
pub mod replay;
mod screen;
mod session;
mod shell;
mod speech;
#[cfg(test)]
mod tests;
mod trace;
mod transfer;

pub(crate) use api::{ApiAction, ApiCommand, ApiRecord, ApiRefusal};

/// The methods Tandem takes in a call's dialogs (`Allow` of its INVITEs
/// and of its 1xx/2xx to a caller; RFC 3261 §20.5).
pub(crate) const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO, REFER, NOTIFY";
pub(crate) use env::{Env, RealEnv};
pub(crate) use replaces::parse_replaces;
pub(crate) use shell::{ApiCall, Mailbox, mailbox, run, spawn_api};

use dial::DialState;

/// What reaches a call: SIP events routed by Call-ID, and the answers to
/// the [`Output`]s the shell carried out.
#[derive(Debug)]
pub(crate) enum CallMsg {
    /// A request in one of the call's dialogs.
    Request {
        stx: ServerTx,
        request: Box<Request>,
        source: Peer,
    },
    /// The ACK for a 2xx Tandem sent in the dialog with this Call-ID (the
    /// caller's, or a callee's to the 2xx of its re-INVITE), with the SDP
    /// it carries: the answer when that 2xx carried Tandem's offer (a
    /// delayed offer, RFC 3261 §13.2.1, §14.2).
    Ack {
        call_id: String,
        sdp: Option<Box<[u8]>>,
    },
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
    /// A final response Tandem sent in the dialog with this Call-ID was
    /// never acknowledged: the caller's, or a callee's (the 2xx to its
    /// re-INVITE).
    AckTimeout { call_id: String, was_2xx: bool },
    /// The caller's document fetched (or not).
    Fetched(Box<Fetched>),
    /// Audio for a verb finished loading (speech synthesis, a download).
    AudioReady {
        who: Who,
        seq: u64,
        /// Boxed: the sources carry their frame buffers, and every slot of
        /// the call's queue is as large as the largest message.
        result: Result<Box<Audio>, String>,
    },
    /// A screening document fetched for the child leg with this Call-ID.
    ScreenFetched {
        call_id: String,
        result: Box<Fetched>,
    },
    /// A DTMF digit heard on one of the call's legs (RFC 4733, in-band).
    Digit(Box<DtmfDigit>),
    /// A leg started or stopped speaking (`<Record timeout>`).
    Voice(VoiceChange),
    /// The `referUrl` of a transfer answered (or not).
    ReferFetched(Box<Fetched>),
    /// A hold document (`waitUrl`) answered (or not); `dequeue`: it is a
    /// `<Queue url>` document.
    WaitFetched { result: Box<Fetched>, dequeue: bool },
    /// The conference room the caller is in started or ended.
    Room(crate::conference::RoomMsg),
    /// Answering-machine detection decided on a callee's leg.
    Amd(Box<crate::media_ops::AmdReport>),
    /// The call's queue (caller or agent) has news.
    Queue(Box<crate::queue::QueueMsg>),
    /// Names looked up for a `<Dial>` (host, port, address found).
    Resolved(Vec<(crate::dns::Name, Vec<Peer>)>),
    /// A speech `<Gather>`'s audio recognised (or not).
    Recognized(Box<Recognized>),
    /// The REST API modifies the call or one of its children.
    Api(Box<api::ApiCommand>),
    /// The `Url` of a REST API modification answered (or not).
    ApiFetched(Box<Fetched>),
}

/// What the recogniser made of a speech `<Gather>`'s audio.
#[derive(Debug)]
pub(crate) struct Recognized {
    /// The gathering it was for ([`Recognition::seq`]).
    pub seq: u64,
    /// An interim result's `SequenceNumber`; `None` for the utterance.
    pub partial: Option<u32>,
    /// The text and the confidence the recogniser gave, or why it failed.
    pub result: Result<(String, Option<String>), String>,
}

/// Audio to recognise for a speech `<Gather>` (docs/speech.md).
#[derive(Debug)]
pub(crate) struct Recognition {
    /// The gathering (echoed in [`Recognized::seq`]).
    pub seq: u64,
    /// `Some(n)`: an interim recognition, `SequenceNumber` n.
    pub partial: Option<u32>,
    /// 8 kHz 16-bit mono.
    pub samples: Vec<i16>,
    pub opts: SpeechOptions,
}

/// The `<Gather>` attributes the recogniser is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpeechOptions {
    pub language: String,
    pub hints: Option<String>,
    pub model: Option<String>,
    pub enhanced: bool,
}

/// A fetched document (body and final URL) or why it failed.
pub(crate) type Fetched = Result<(String, Option<Url>), String>;

/// A fetched answer as a document (with the URL it came from), or why not.
fn fetched_document(result: Fetched) -> Result<(tandem_twiml::Document, Option<Url>), String> {
    let (body, url) = result?;
    tandem_twiml::parse(&body)
        .map(|doc| (doc, url))
        .map_err(|e| format!("invalid TwiML: {e}"))
}

/// What the call asks the shell to do, in order.
#[derive(Debug)]
pub(crate) enum Output {
    /// Respond in a server transaction.
    Respond { stx: ServerTx, response: Response },
    /// Send a request in a new client transaction.
    Request { request: Request, peer: Peer },
    /// Send an ACK for a 2xx (outside any transaction).
    Ack { request: Request, peer: Peer },
    /// CANCEL the INVITE client transaction with this Call-ID and branch.
    Cancel { call_id: String, branch: String },
    /// Events of this Call-ID (a new child leg) come to this call from now on.
    Route { call_id: String },
    /// No longer.
    Unroute { call_id: String },
    /// Fetch a document; the answer comes back as `CallMsg::Fetched` (for
    /// the caller) or `CallMsg::ScreenFetched` (for a screened branch).
    Fetch {
        screen: Option<String>,
        req: tandem_twiml::FetchRequest,
        params: tandem_webhook::Params,
        fallback: Option<tandem_webhook::Target>,
    },
    /// Load a prompt's audio; the answer comes back as `CallMsg::AudioReady`.
    LoadAudio {
        who: Who,
        seq: u64,
        prompt: tandem_twiml::Prompt,
        base: Option<Url>,
    },
    /// Look these names up; the answer comes back as `CallMsg::Resolved`.
    Resolve(Vec<crate::dns::Name>),
    /// A call-progress status callback, queued in order per `event.call.call_sid`.
    Status {
        url: Url,
        method: tandem_webhook::Method,
        event: Box<tandem_webhook::StatusEvent>,
    },
    /// A recording status callback of the parent call.
    Recording {
        url: Url,
        method: tandem_webhook::Method,
        event: Box<tandem_webhook::RecordingEvent>,
    },
    /// Transcribe a `<Record>`'s recording and post the text to `callback`.
    Transcribe(Box<Transcription>),
    /// Recognise a speech `<Gather>`'s audio; the answer comes back as
    /// `CallMsg::Recognized`.
    Recognize(Box<Recognition>),
    /// A call's (or child call's) new state for the history; the shell
    /// stamps the wall clock (`at`) and keeps the CallSid reachable for the
    /// REST API until a final status.
    History(Box<crate::history::CallRecord>),
    /// A child call leaves this call to run TwiML of its own (REST API):
    /// the shell starts it as a call with its own task, its Call-ID and
    /// CallSid routed there.
    Spawn(Box<Spawn>),
    /// Another callback (`amdStatusCallback`), queued in order per `sid`.
    Callback {
        sid: String,
        url: Url,
        method: tandem_webhook::Method,
        params: tandem_webhook::Params,
    },
}

/// A child call moved out of its `<Dial>` to run TwiML of its own.
#[derive(Debug)]
pub(crate) struct Spawn {
    pub callee: transfer::CalleeLeg,
    /// Its media leg, out of the parent's media plane.
    pub leg: Option<env::DetachedLeg>,
    /// What it runs.
    pub start: Start,
    pub parent_sid: String,
}

/// A `<Record transcribe>` to carry out (docs/recording.md, "Transcription").
#[derive(Debug)]
pub(crate) struct Transcription {
    /// The recording's WAV, its sid and URL.
    pub path: std::path::PathBuf,
    pub recording_sid: String,
    pub recording_url: String,
    /// `transcribeCallback` (always POST, as on Twilio).
    pub callback: Option<Url>,
    /// The call's standard parameters.
    pub call: tandem_webhook::Params,
}

/// Which leg a prompt plays on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    Caller,
    Branch(usize),
    /// The caller, for a `<Conference waitUrl>` prompt.
    Wait,
}

/// Audio loaded for a verb, ready to inject.
#[expect(
    clippy::large_enum_variant,
    reason = "an Audio crosses the queue boxed (CallMsg::AudioReady carries Box<Audio>) and is moved once, into the injection"
)]
pub(crate) enum Audio {
    Prompt(PromptSource),
    Digits(DigitsSource),
}

impl std::fmt::Debug for Audio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Prompt(_) => "Audio::Prompt",
            Self::Digits(_) => "Audio::Digits",
        })
    }
}

/// The document a call starts with, as the shell found it.
#[derive(Debug)]
pub(crate) struct Start {
    pub interp: Interpreter,
    pub document_url: Option<Url>,
    /// The dialed number's fallback URL (for the initial fetch only).
    pub fallback: Option<tandem_webhook::Target>,
}

/// A media leg of our own and Tandem's SDP on it: the answer to `offer`,
/// or, for a party whose INVITE brought none, Tandem's offer (the answer
/// comes in its ACK). The leg is closed again when that fails.
/// A media leg for a peer at `signal`, with Tandem's answer to `offer`,
/// or Tandem's own offer when there is none (a delayed offer): SDES-SRTP
/// when the peer's signalling is TLS (keys only where the signalling is
/// encrypted, RFC 4568 §8.3), as on a branch.
fn sdp_on_new_leg(
    env: &mut dyn Env,
    signal: Peer,
    offer: Option<&[u8]>,
) -> Result<(LegId, Vec<u8>), crate::media::LegError> {
    let leg = env.open_leg(signal.addr.ip())?;
    let sdp = match offer {
        Some(offer) => env.answer(leg, offer),
        None => {
            if signal.transport == tandem_transport::Transport::Tls {
                env.offer_srtp(leg);
            }
            env.offer(leg, None)
        }
    };
    match sdp {
        Ok(sdp) => Ok((leg, sdp)),
        Err(e) => {
            env.close_leg(leg);
            Err(e)
        }
    }
}

/// Generates a `CA` + 32 hex SID.
pub(crate) fn call_sid(ids: &mut IdGen) -> String {
    ids.sid("CA")
}

fn user_of(uri: &str) -> String {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(user).to_owned(),
        None => String::new(),
    }
}

fn has_sdp(h: &rsip::Headers, body: &[u8]) -> bool {
    !body.is_empty()
        && h.value_of(|h| matches!(h, Header::ContentType(_)))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/sdp"))
}

/// Whole seconds between two instants, rounded to the nearest (Twilio's
/// `CallDuration`/`DialCallDuration` are whole seconds of talk).
fn secs_between(from: Instant, to: Instant) -> u64 {
    let d = to.saturating_duration_since(from);
    (d + Duration::from_millis(500)).as_secs()
}

/// A header's raw value by name (case-insensitive), for headers rsip keeps as `Other`.
fn other_header<'a>(h: &'a rsip::Headers, name: &str) -> Option<&'a str> {
    h.iter().find_map(|x| match x {
        Header::Other(n, v) if n.eq_ignore_ascii_case(name) => Some(v.as_str()),
        _ => None,
    })
}

/// `ForwardedFrom`: the user of the first Diversion (RFC 5806) or, failing
/// that, the first History-Info entry (RFC 7044) of the INVITE.
fn forwarded_from(invite: &Request) -> Option<String> {
    let v = other_header(&invite.headers, "Diversion")
        .or_else(|| other_header(&invite.headers, "History-Info"))?;
    let first = v.split(',').next()?.trim();
    let user = NameAddr::parse(first).ok().map(|n| user_of(n.uri))?;
    (!user.is_empty()).then_some(user)
}

/// `CallerName`: the display name of the From header, when there is one.
fn caller_name(invite: &Request) -> Option<String> {
    let v = invite.headers.value_of(|h| matches!(h, Header::From(_)))?;
    let name = v.split('<').next()?.trim().trim_matches('"').trim();
    (v.contains('<') && !name.is_empty()).then(|| name.to_owned())
}

/// The caller's side of the call.
pub(crate) struct Call {
    cfg: Arc<EngineConfig>,
    env: Box<dyn Env>,
    ids: IdGen,
    /// The time of the input being handled.
    now: Instant,
    out: VecDeque<Output>,
    sid: String,
    call_id: String,
    invite: Request,
    invite_tx: ServerTx,
    source: Peer,
    dialog: Dialog,
    local_tag: String,
    from_user: String,
    to_user: String,
    caller_name: Option<String>,
    forwarded_from: Option<String>,
    answered: bool,
    /// When the caller was answered (`duration` in the history).
    answered_at: Option<Instant>,
    /// How the call ends when it ends unanswered (the history's status).
    unanswered: tandem_webhook::CallStatus,
    early_sent: bool,
    caller_gone: bool,
    finished: bool,
    interp: Interpreter,
    document_url: Option<Url>,
    fallback: Option<tandem_webhook::Target>,
    media: Option<LegId>,
    answer_sdp: Option<Vec<u8>>,
    dial: Option<DialState>,
    /// A `<Dial>` waiting for its destinations' names to be looked up.
    pending_dial: Option<tandem_twiml::Dial>,
    dns: HashMap<crate::dns::Name, Vec<Peer>>,
    /// Finished Dials whose arbiter still waits for a branch's final
    /// response (a 2xx crossing our CANCEL is ACKed then BYEd), with the
    /// time after which they are dropped anyway (64*T1).
    past: Vec<(Instant, DialState)>,
    pause_until: Option<Instant>,
    gather: Option<Gathering>,
    /// DTMF on the caller's leg is listened for (`<Gather>`, `hangupOnStar`).
    dtmf_on: bool,
    /// What the caller's leg is playing for the current verb.
    playing: Option<u64>,
    /// Global counter: each prompt load gets its own number.
    seq: u64,
    /// The load the caller's current verb waits for.
    caller_seq: u64,
    /// `<Gather>` prompts still to play, then the gather itself.
    prompt_queue: VecDeque<tandem_twiml::Prompt>,
    pending_gather: Option<tandem_twiml::Gather>,
    /// The `<Record>` running, if any.
    record: Option<Box<record::RecordVerb>>,
    /// A REFER waiting for its `referUrl`.
    transfer: Option<Box<transfer::Transfer>>,
    /// The document the caller moves to when the current `<Dial>` or
    /// `<Enqueue>` ends (a transfer, the REST API), instead of its outcome.
    redirect: Option<Box<(tandem_twiml::Document, Option<Url>)>>,
    /// The `<Conference>` the caller is in.
    conference: Option<Box<conference::InConference>>,
    /// What the caller hears while it waits (conference, queue).
    hold: Option<Box<hold::Hold>>,
    /// A hold document is wanted (fetching or playing) for this.
    hold_wanted: Option<hold::HoldFor>,
    /// The caller's `<Enqueue>`, or the agent's `<Dial><Queue>` waiting for a caller.
    queue: Option<Box<queue::InQueue>>,
    /// The speech side of the running `<Gather>`.
    speech: Option<Box<speech::SpeechGather>>,
    /// `Inbound`; `OutboundDial` once a callee took the call over (a
    /// transfer by the caller), with the caller's CallSid as the parent.
    direction: tandem_webhook::Direction,
    parent_sid: Option<String>,
    /// The callee that took the call over, for its `completed`.
    handed: Option<Box<transfer::HandedOver>>,
    /// A call placed through the REST API, before its callee answers: there
    /// is no caller — the call is its one `<Dial>` branch (which has the
    /// call's CallSid) until that answers and takes the call over.
    phantom: bool,
    /// The phantom's branch reported a final status.
    api_ended: bool,
    /// What a REST API call runs once answered (`Twiml`, or a `<Redirect>`
    /// to its `Url`).
    api_doc: Option<Box<(tandem_twiml::Document, Option<Url>)>>,
    /// A REST API call's options and what came of them (`TimeLimit`,
    /// `MachineDetection`, `Record`, `FallbackUrl`: [`api::Placed`]).
    placed: Option<Box<api::Placed>>,
    /// How the caller's INVITE is answered as to session timers, until it is.
    caller_se: tandem_sip::session_timer::UasAnswer,
    /// The caller's leg's session clock (RFC 4028), once answered.
    session: Option<Box<session::LegSession>>,
    /// A reliable provisional response waiting for the caller's PRACK.
    reliable: Option<Box<prack::Reliable>>,
    /// The RSeq of the last reliable provisional (0: none yet).
    rseq: u32,
    /// Tandem's SDP to the caller is an offer (its INVITE or re-INVITE had
    /// none): the answer is due in the ACK.
    offer_pending: bool,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("sid", &self.sid)
            .field("answered", &self.answered)
            .field("finished", &self.finished)
            .finish()
    }
}

/// How long a finished Dial waits for its cancelled branches (64*T1).
const LINGER: Duration = Duration::from_secs(32);

impl Call {
    /// A call for `invite`; `None` when it was refused at once (the answer
    /// is in `out`). The shell found the document to run (`start`).
    #[allow(clippy::too_many_arguments)] // one per part of a new call
    pub(crate) fn new(
        now: Instant,
        cfg: Arc<EngineConfig>,
        env: Box<dyn Env>,
        ids: IdGen,
        invite_tx: ServerTx,
        invite: Request,
        source: Peer,
        start: Start,
        out: &mut VecDeque<Output>,
    ) -> Option<Self> {
        let parts = (now, cfg, env, ids, invite_tx, invite, source, start);
        Self::build(parts, true, out)
    }

    /// [`Call::new`]; `caller`: the INVITE is a real caller's, whose
    /// media gets a leg (a stand-in's does not).
    #[allow(clippy::type_complexity)] // Call::new's arguments, passed on
    fn build(
        parts: (
            Instant,
            Arc<EngineConfig>,
            Box<dyn Env>,
            IdGen,
            ServerTx,
            Request,
            Peer,
            Start,
        ),
        caller: bool,
        out: &mut VecDeque<Output>,
    ) -> Option<Self> {
        let (now, cfg, env, mut ids, invite_tx, invite, source, start) = parts;
        let sid = call_sid(&mut ids);
        let local_tag = ids.tag();
        let contact = cfg.contact(source.transport);
        let mut env = env;
        let fail = |code: u16, why: &str| {
            tracing::warn!(code, why, "inbound call refused");
            Output::Respond {
                stx: invite_tx,
                response: response_to(&invite, code, None, Some(&local_tag)),
            }
        };
        let to_user = user_of(&invite.uri.to_string());
        let Ok(dialog) = Dialog::uas(&invite, &local_tag, &contact) else {
            out.push_back(fail(400, "INVITE cannot form a dialog (Contact missing?)"));
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
        // A caller without an offer (delayed offer) gets Tandem's in the
        // 2xx and answers in its ACK.
        let delayed = !has_sdp(&invite.headers, &invite.body);
        if env.has_media() && caller {
            let offer = (!delayed).then_some(invite.body.as_slice());
            let leg = sdp_on_new_leg(&mut *env, source, offer);
            match leg {
                Ok((leg, sdp)) => {
                    media = Some(leg);
                    answer_sdp = Some(sdp);
                }
                Err(e) => {
                    out.push_back(fail(e.status(), &e.to_string()));
                    return None;
                }
            }
        }
        let caller_se = match Self::negotiate_caller(&cfg, &invite, &local_tag) {
            Ok(a) => a,
            Err(response) => {
                tracing::info!(
                    code = response.status_code.code(),
                    "inbound call refused: its Session-Expires is too short or malformed"
                );
                out.push_back(Output::Respond {
                    stx: invite_tx,
                    response,
                });
                return None;
            }
        };
        let call_id = invite.headers.call_id().unwrap_or("").to_owned();
        Some(Self {
            cfg,
            env,
            ids,
            now,
            out: VecDeque::new(),
            sid,
            call_id,
            caller_name: caller_name(&invite),
            forwarded_from: forwarded_from(&invite),
            invite,
            invite_tx,
            source,
            dialog,
            local_tag,
            from_user,
            to_user,
            answered: false,
            answered_at: None,
            unanswered: tandem_webhook::CallStatus::NoAnswer,
            early_sent: false,
            caller_gone: false,
            finished: false,
            interp: start.interp,
            document_url: start.document_url,
            fallback: start.fallback,
            media,
            answer_sdp,
            dial: None,
            pending_dial: None,
            dns: HashMap::new(),
            past: Vec::new(),
            pause_until: None,
            gather: None,
            dtmf_on: false,
            playing: None,
            seq: 0,
            caller_seq: 0,
            prompt_queue: VecDeque::new(),
            pending_gather: None,
            record: None,
            transfer: None,
            redirect: None,
            conference: None,
            hold: None,
            hold_wanted: None,
            queue: None,
            speech: None,
            direction: tandem_webhook::Direction::Inbound,
            parent_sid: None,
            handed: None,
            phantom: false,
            api_ended: false,
            api_doc: None,
            placed: None,
            caller_se,
            session: None,
            reliable: None,
            rseq: 0,
            offer_pending: delayed && media.is_some(),
        })
    }

    /// A call placed through the REST API (call/api.rs): `start` dials its
    /// callee; `sid` is its CallSid from the start.
    #[allow(clippy::too_many_arguments)] // one per part of a new call
    pub(crate) fn new_api(
        now: Instant,
        cfg: Arc<EngineConfig>,
        env: Box<dyn Env>,
        ids: IdGen,
        sid: String,
        from: &str,
        to: &str,
        start: Start,
        answered: (tandem_twiml::Document, Option<Url>),
    ) -> Option<Self> {
        let mut call = Self::stand_in(now, cfg, env, ids, sid, start)?;
        call.from_user = from.to_owned();
        call.to_user = to.to_owned();
        call.direction = tandem_webhook::Direction::OutboundApi;
        call.phantom = true;
        call.api_doc = Some(Box::new(answered));
        Some(call)
    }

    /// A child call moved to TwiML of its own through the REST API: it
    /// goes on as the callee's leg, answered, running `spawn.start`.
    pub(crate) fn adopted(
        now: Instant,
        cfg: Arc<EngineConfig>,
        env: Box<dyn Env>,
        ids: IdGen,
        spawn: Spawn,
    ) -> Option<Self> {
        let Spawn {
            callee,
            start,
            parent_sid,
            ..
        } = spawn;
        let mut call = Self::stand_in(now, cfg, env, ids, callee.sid.clone(), start)?;
        call.direction = tandem_webhook::Direction::OutboundDial;
        call.parent_sid = Some(parent_sid);
        call.answered = true;
        call.become_callee(callee, true);
        Some(call)
    }

    /// A call with no caller's INVITE: a stand-in for the INVITE a caller
    /// would have sent, from which its dialog (and a branch's INVITE) are
    /// built; nothing is ever sent in that dialog.
    fn stand_in(
        now: Instant,
        cfg: Arc<EngineConfig>,
        env: Box<dyn Env>,
        ids: IdGen,
        sid: String,
        start: Start,
    ) -> Option<Self> {
        let host = cfg.sip_host.clone();
        let invite = tandem_sip::builder::RequestBuilder::new(
            Method::Invite,
            tandem_sip::uri::parse(&format!("sip:api@{host}")).ok()?,
        )
        .via("UDP", &host, "z9hG4bKapi")
        .max_forwards(70)
        .from(format!("<sip:api@{host}>;tag=api"))
        .to(format!("<sip:api@{host}>"))
        .call_id(format!("api-{sid}"))
        .cseq(1)
        .contact(format!("<sip:api@{host}>"))
        .build();
        let stx = ServerTx {
            shard: 0,
            tx: tandem_transport::TxId::from_raw(0),
        };
        let source = Peer {
            transport: tandem_transport::Transport::Udp,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let mut refused = VecDeque::new();
        let parts = (now, cfg, env, ids, stx, invite, source, start);
        let mut call = Self::build(parts, false, &mut refused)?;
        call.sid = sid;
        Some(call)
    }

    /// The parent call's SID.
    pub(crate) fn sid(&self) -> &str {
        &self.sid
    }

    /// Runs the document's first verbs (call once, after `new`).
    pub(crate) fn begin(&mut self, now: Instant) {
        self.now = now;
        if !self.phantom && !self.answered {
            // (A REST API call's `queued` row was written by the API; a
            // child call moved to TwiML of its own is in progress already.)
            self.record_history(self.call_info(tandem_webhook::CallStatus::Ringing), None);
        }
        self.drive();
    }

    /// The next thing to do, in order. The queue's memory is given back
    /// once it is drained: an idle call keeps no buffer of outputs
    /// (docs/benchmarks.md, memory per established call).
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        let o = self.out.pop_front();
        if o.is_none() && self.out.capacity() > 0 {
            self.out = VecDeque::new();
        }
        o
    }

    /// Frees what the media plane left for after the outputs were sent
    /// (closed legs). Call it once `poll_output` is drained.
    pub(crate) fn release(&mut self) {
        self.env.release();
    }

    /// Whether the call is over: nothing left to run, no branch owing a
    /// final response. The shell drops it then.
    pub(crate) fn is_done(&self) -> bool {
        self.finished
            && self.past.is_empty()
            && self.dial.is_none()
            && !self.in_conference()
            && self.queue.is_none()
    }

    fn call_info(&self, status: tandem_webhook::CallStatus) -> tandem_webhook::CallInfo {
        tandem_webhook::CallInfo {
            call_sid: self.sid.clone(),
            account_sid: self.cfg.account_sid.clone(),
            from: self.from_user.clone(),
            to: self.to_user.clone(),
            status,
            direction: self.direction,
            parent_call_sid: self.parent_sid.clone(),
            forwarded_from: self.forwarded_from.clone(),
            caller_name: self.caller_name.clone(),
        }
    }

    /// Queues a call's (or child's) new state for the history.
    fn record_history(&mut self, info: tandem_webhook::CallInfo, duration: Option<u64>) {
        let mine = info.call_sid == self.sid;
        let mut record = crate::history::CallRecord::of(info);
        record.duration = duration;
        if mine {
            record.answered_by = self.placed.as_ref().and_then(|p| p.answered_by.clone());
        }
        self.out.push_back(Output::History(Box::new(record)));
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

    /// The earliest timer of the call.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut take = |x: Option<Instant>| {
            if let Some(x) = x {
                d = Some(d.map_or(x, |d| d.min(x)));
            }
        };
        take(self.pause_until);
        take(self.placed.as_ref().and_then(|p| p.ends_at));
        take(self.gather.as_ref().and_then(Gathering::deadline));
        take(self.conference_deadline());
        take(self.hold_deadline());
        take(self.queue_deadline());
        for t in self.amd_deadlines() {
            take(Some(t));
        }
        if let Some(r) = &self.record {
            for d in r.deadlines() {
                take(d);
            }
        }
        for (until, _) in &self.past {
            take(Some(*until));
        }
        for t in self.session_deadlines() {
            take(Some(t));
        }
        take(self.reliable_deadline());
        if let Some(dial) = &self.dial {
            for b in &dial.branches {
                if let Some(s) = &b.screen {
                    take(s.pause_until);
                    take(s.gather.as_ref().and_then(Gathering::deadline));
                }
            }
            take(dial.arbiter.poll_timeout());
            take(dial.time_limit);
        }
        d
    }

    /// A verb that waited (`<Dial>`, `<Enqueue>`) is over: its outcome
    /// goes to the document — unless the call is being moved to another
    /// document (a transfer, the REST API), which then runs instead,
    /// without the verb's `action`.
    fn outcome(&mut self, ev: Event) {
        match self.redirect.take() {
            Some(r) => {
                let (document, url) = *r;
                if let Some(u) = &url {
                    self.document_url = Some(u.clone());
                }
                self.feed(Event::Redirected { document, url });
            }
            None => self.feed(ev),
        }
    }

    fn feed(&mut self, ev: Event) {
        if self.interp.outcome().is_some() {
            // The document already ended (a Dial that ran last, a hangup):
            // nothing is waiting for this event.
            tracing::debug!(event = ev.name(), "document finished: event not needed");
            return;
        }
        if let Err(e) = self.interp.handle(ev) {
            tracing::warn!(error = %e, "interpreter refused an event");
        }
    }

    /// Executes every command the interpreter has ready.
    fn drive(&mut self) {
        while let Some(cmd) = self.interp.poll_command() {
            if self.finished || self.caller_gone {
                // Twilio still requests a Dial's action after the caller left;
                // its answer has no one left to run for.
                if let Command::Fetch(req) = cmd
                    && matches!(
                        req.reason,
                        tandem_twiml::FetchReason::DialAction
                            | tandem_twiml::FetchReason::RecordAction
                            | tandem_twiml::FetchReason::EnqueueAction
                    )
                {
                    self.fetch(req);
                }
                continue;
            }
            match cmd {
                Command::Answer => self.answer(),
                Command::Say(say) => self.play_prompt(Who::Caller, tandem_twiml::Prompt::Say(say)),
                Command::Play(play) => {
                    self.play_prompt(Who::Caller, tandem_twiml::Prompt::Play(play))
                }
                Command::Pause { duration } => self.pause_until = Some(self.now + duration),
                Command::Gather(mut g) => {
                    self.ensure_dtmf();
                    self.prompt_queue = std::mem::take(&mut g.prompts).into();
                    self.pending_gather = Some(g);
                    self.next_gather_prompt();
                }
                Command::Dial(d) => self.start_dial(d),
                Command::Record(r) => self.start_record(r),
                Command::Enqueue(e) => self.start_enqueue(e),
                Command::Hangup => self.hangup(480),
                Command::Reject { reason } => {
                    let code = match reason {
                        tandem_twiml::RejectReason::Busy => 486,
                        _ => 603,
                    };
                    self.hangup(code);
                }
                Command::Fetch(req) => self.fetch(req),
                Command::Screened(_) => {}
            }
        }
        if self.caller_gone && self.dial.is_none() && self.pending_dial.is_none() {
            self.finish();
        }
        if self.interp.outcome().is_some()
            && self.dial.is_none()
            && self.pending_dial.is_none()
            && !self.finished
        {
            self.hangup(480);
        }
    }

    /// The caller's side is over: its media leg closes.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let (status, duration) = match self.answered_at {
            Some(at) => (
                tandem_webhook::CallStatus::Completed,
                Some(secs_between(at, self.now)),
            ),
            // A REST API call that never got as far as a final status of its
            // branch (nothing could be dialled).
            None if self.phantom => (tandem_webhook::CallStatus::Failed, None),
            None => (self.unanswered, None),
        };
        if !(self.phantom && self.api_ended) {
            self.record_history(self.call_info(status), duration);
        }
        if self.record.is_some() {
            // The caller is gone (our BYE, a media timeout): Twilio still
            // posts what was recorded, with Digits=hangup.
            self.end_record("hangup");
            self.drive();
        }
        self.stop_placed_recording();
        if let Some(p) = self.playing.take() {
            self.env.stop_play(p);
        }
        if let Some(leg) = self.media.take() {
            self.env.close_leg(leg);
        }
        self.handed_over_completed();
    }

    fn fetch(&mut self, req: tandem_twiml::FetchRequest) {
        let mut params = self.call_info(self.status()).voice_params();
        for (k, v) in &req.params {
            params.push(k, v);
        }
        // A placed call's `AnsweredBy` goes with its first document.
        if let Some(p) = self.placed.as_mut() {
            for (k, v) in p.first_fetch.drain(..) {
                params.push(k, v);
            }
        }
        // The fallback serves the first document: an inbound call's, or
        // the one a placed call requests once answered (`FallbackUrl`).
        let first_placed = self
            .placed
            .as_mut()
            .is_some_and(|p| std::mem::take(&mut p.first_document));
        let fallback = if req.reason == tandem_twiml::FetchReason::Initial || first_placed {
            self.fallback.clone()
        } else {
            None
        };
        self.out.push_back(Output::Fetch {
            screen: None,
            req,
            params,
            fallback,
        });
    }

    /// A URL from the document (action, callback, screening url), resolved
    /// against the document's own URL.
    fn resolve_url(&self, url: &str) -> Option<Url> {
        match &self.document_url {
            Some(base) => base.join(url).ok(),
            None => Url::parse(url).ok(),
        }
    }

    /// The transport of the caller's leg (`None`) or branch `i`'s.
    fn leg_transport(&self, who: Option<usize>) -> tandem_transport::Transport {
        match who.and_then(|i| self.dial.as_ref()?.branches.get(i)) {
            Some(b) => b.peer.transport,
            None => self.source.transport,
        }
    }

    /// Tandem's Contact in the dialog of the caller (`None`) or branch `i`.
    fn contact(&self, who: Option<usize>) -> String {
        self.cfg.contact(self.leg_transport(who))
    }

    fn response(&self, code: u16, sdp: Option<&[u8]>) -> Response {
        let mut r = response_to(&self.invite, code, None, Some(&self.local_tag));
        if code > 100 && code < 300 {
            r.headers.push(Header::Contact(self.contact(None).into()));
            // What the caller may send in this dialog (UPDATE: session
            // refreshes without SDP) and the extensions Tandem supports.
            r.headers.push(Header::Allow(ALLOW.into()));
            r.headers.push(Header::Supported(
                if self.cfg.session_timers.is_some() {
                    "replaces, 100rel, timer"
                } else {
                    "replaces, 100rel"
                }
                .into(),
            ));
        }
        if let Some(sdp) = sdp {
            r.headers
                .push(Header::ContentType("application/sdp".into()));
            r.body = sdp.to_vec();
        }
        r
    }

    fn respond_caller(&mut self, response: Response) {
        if self.phantom {
            return;
        }
        let response = if prack::required(&self.invite) {
            match self.reliably(response) {
                Some(r) => r,
                None => return,
            }
        } else {
            response
        };
        self.out.push_back(Output::Respond {
            stx: self.invite_tx,
            response,
        });
    }

    /// Answers the caller: 200 with Tandem's SDP answer (or the winning
    /// callee's SDP when media is not anchored). From now on the caller's
    /// media is expected: its media timeout runs.
    fn answer(&mut self) {
        if self.answered || self.caller_gone || self.phantom {
            return;
        }
        let sdp = self.answer_sdp.clone();
        let mut r = self.response(200, sdp.as_deref());
        r.headers.extend(self.start_caller_session());
        self.answered = true;
        self.answered_at = Some(self.now);
        self.record_history(self.call_info(tandem_webhook::CallStatus::InProgress), None);
        self.dialog.confirm();
        self.respond_caller(r);
        if let Some(leg) = self.media {
            self.env.expect_media(leg, true);
        }
    }

    /// Ends the call: BYE if answered, else a final response.
    fn hangup(&mut self, code: u16) {
        if self.finished {
            return;
        }
        if !self.caller_gone {
            if self.answered {
                self.send_bye_caller();
            } else {
                self.unanswered = match code {
                    486 | 600 => tandem_webhook::CallStatus::Busy,
                    487 => tandem_webhook::CallStatus::Canceled,
                    408 | 480 | 603 => tandem_webhook::CallStatus::NoAnswer,
                    _ => tandem_webhook::CallStatus::Failed,
                };
                let r = self.response(code, None);
                self.respond_caller(r);
            }
        }
        self.caller_gone = true;
        if self.dial.is_some() {
            self.caller_left();
        }
        self.pending_dial = None;
        self.finish();
    }

    /// The caller's ACK to a 2xx: when that 2xx carried Tandem's offer
    /// (a delayed offer), it must carry the answer (RFC 3261 §13.2.1); one
    /// that does not, or whose answer is unusable, ends the call with BYE.
    fn on_ack(&mut self, sdp: Option<&[u8]>) {
        if !std::mem::take(&mut self.offer_pending) {
            return;
        }
        let Some(leg) = self.media else { return };
        if let Err(why) = self.answer_in_ack(leg, sdp) {
            tracing::warn!(%why, "the caller's ACK does not answer Tandem's offer: the call ends");
            self.hangup(488);
        }
    }

    /// The SDP of an ACK as the answer to the offer Tandem made on `leg`
    /// in its 2xx.
    fn answer_in_ack(&mut self, leg: LegId, sdp: Option<&[u8]>) -> Result<(), String> {
        match sdp {
            Some(sdp) => self.env.take_answer(leg, sdp).map_err(|e| e.to_string()),
            None => Err("no SDP".to_owned()),
        }
    }

    fn send_bye_caller(&mut self) {
        if self.phantom {
            return;
        }
        let branch = self.ids.branch();
        let transport = self.source.transport.as_str();
        match self.dialog.request(
            Method::Bye,
            transport,
            self.cfg.host(self.source.transport),
            &branch,
        ) {
            Ok(bye) => self.out.push_back(Output::Request {
                request: bye,
                peer: self.source,
            }),
            Err(e) => tracing::warn!(error = %e, "cannot build BYE to the caller"),
        }
    }

    // ----- inputs -----

    /// A message for the call: a SIP event or the answer to an output.
    pub(crate) fn handle_msg(&mut self, now: Instant, msg: CallMsg) {
        self.now = now;
        match msg {
            CallMsg::Request {
                stx,
                request,
                source,
            } => self.on_request(stx, *request, source),
            CallMsg::Ack { call_id, sdp } => {
                if call_id == self.call_id {
                    self.on_ack(sdp.as_deref());
                } else {
                    self.on_branch_ack(&call_id, sdp.as_deref());
                }
            }
            CallMsg::Cancelled => {
                tracing::info!("caller cancelled");
                self.reliable = None;
                self.unanswered = tandem_webhook::CallStatus::Canceled;
                self.caller_gone = true;
                self.caller_left();
                self.feed(Event::CallerHangup);
            }
            CallMsg::Response { response, source } => self.on_child_response(*response, source),
            CallMsg::Timeout {
                call_id,
                method,
                branch,
            } => {
                if method == Method::Invite {
                    self.on_invite_timeout(&call_id, &branch);
                }
            }
            CallMsg::AckTimeout { call_id, was_2xx } => {
                if call_id == self.call_id {
                    self.on_ack_timeout(was_2xx);
                } else if was_2xx {
                    self.on_branch_ack_timeout(&call_id);
                }
            }
            CallMsg::AudioReady { who, seq, result } => self.on_audio_ready(who, seq, result),
            CallMsg::ScreenFetched { call_id, result } => self.on_screen_fetched(&call_id, *result),
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
            CallMsg::Digit(d) => self.on_leg_digit(d.leg, d.digit),
            CallMsg::Voice(c) => self.on_voice(c),
            CallMsg::Recognized(r) => self.on_recognized(*r),
            CallMsg::Api(cmd) => self.on_api(*cmd),
            CallMsg::ApiFetched(result) => self.on_api_fetched(*result),
            CallMsg::ReferFetched(result) => self.on_refer_fetched(*result),
            CallMsg::WaitFetched { result, dequeue } => self.on_wait_fetched(*result, dequeue),
            CallMsg::Room(msg) => self.on_room(msg),
            CallMsg::Amd(report) => self.on_amd(*report),
            CallMsg::Queue(msg) => self.on_queue_msg(*msg),
            CallMsg::Resolved(found) => {
                for (name, targets) in found {
                    self.dns.insert(name, targets);
                }
                if let Some(spec) = self.pending_dial.take()
                    && !self.caller_gone
                {
                    self.start_dial(spec);
                }
            }
        }
        self.settle();
    }

    /// An event of a media leg.
    pub(crate) fn handle_media(&mut self, now: Instant, ev: MediaEvent) {
        self.now = now;
        match ev {
            MediaEvent::Timeout { leg, after } => self.on_media_timeout(leg, after),
            MediaEvent::InjectionDone { leg, id } => self.on_injection_done(leg, id),
            _ => {}
        }
        self.settle();
    }

    /// Timers due at `now` fire.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let t = now;
        if let Some(p) = self.placed.as_mut()
            && p.ends_at.is_some_and(|e| e <= t)
        {
            p.ends_at = None;
            tracing::info!("TimeLimit reached: the call is hung up");
            self.hangup(487);
        }
        let mut i = 0;
        while i < self.past.len() {
            if self.past[i].0 <= t {
                let (_, d) = self.past.remove(i);
                tracing::debug!("finished Dial dropped: a branch never sent its final response");
                self.drop_dial(d);
            } else {
                i += 1;
            }
        }
        if self.pause_until.is_some_and(|d| d <= t) {
            self.pause_until = None;
            self.verb_done(Who::Caller);
        }
        self.gather_timers(t);
        self.record_timers(t);
        self.screen_timers(t);
        self.conference_timers(t);
        self.hold_timers(t);
        self.queue_timers(t);
        self.amd_timers(t);
        self.session_timers(t);
        self.reliable_timers(t);
        let limit_hit = self
            .dial
            .as_ref()
            .is_some_and(|d| d.time_limit.is_some_and(|l| l <= t));
        if limit_hit {
            tracing::info!("timeLimit reached: ending the bridge");
            self.end_bridge(true);
        }
        if let Some(d) = &mut self.dial {
            d.arbiter.handle_timeout(t);
        }
        self.apply_actions();
        self.settle();
    }

    /// After every input: run what the interpreters have ready, drop
    /// settled Dials.
    fn settle(&mut self) {
        self.drive();
        self.drive_screens();
        let mut i = 0;
        while i < self.past.len() {
            if self.past[i].1.arbiter.is_settled() {
                let (_, d) = self.past.remove(i);
                self.drop_dial(d);
            } else {
                i += 1;
            }
        }
    }

    /// The caller never ACKed a final response: after a 2xx the session
    /// ends with BYE (RFC 3261 §13.3.1.4).
    fn on_ack_timeout(&mut self, was_2xx: bool) {
        if was_2xx {
            tracing::warn!("caller never ACKed our 200: ending the call");
            self.hangup(408);
        }
    }

    /// A callee never ACKed the 2xx to its re-INVITE: its session ends
    /// (BYE, RFC 3261 §13.3.1.4) — the bridge ends and the document goes
    /// on, as when the callee hangs up. The caller's call is not ended for
    /// it.
    fn on_branch_ack_timeout(&mut self, call_id: &str) {
        let bridged = self.dial.as_ref().and_then(|d| {
            let i = d.bridged?;
            (d.branches[i].call_id == call_id).then_some(i)
        });
        if bridged.is_some() {
            tracing::warn!(call_id, "the callee never ACKed our 200: ending the bridge");
            self.end_bridge(true);
        } else {
            tracing::debug!(call_id, "a 200 to no bridged callee never ACKed: ignored");
        }
    }

    fn on_media_timeout(&mut self, leg: LegId, after: Duration) {
        if Some(leg) == self.media {
            tracing::warn!(
                ?leg,
                ?after,
                "media timeout on the caller's leg: ending the call"
            );
            self.hangup(408);
            return;
        }
        let bridged = self.dial.as_ref().and_then(|d| {
            let i = d.bridged?;
            (d.branches[i].media == Some(leg)).then_some(i)
        });
        if bridged.is_some() {
            tracing::warn!(
                ?leg,
                ?after,
                "media timeout on the callee's leg: ending the bridge"
            );
            self.end_bridge(true);
        } else {
            tracing::debug!(
                ?leg,
                "media timeout on a leg where none is expected: ignored"
            );
        }
    }

    fn on_request(&mut self, stx: ServerTx, request: Request, source: Peer) {
        let cid = request.headers.call_id().unwrap_or("").to_owned();
        let ok = |r: &Request| response_to(r, 200, None, None);
        if !self.source_allowed(&cid, source) {
            tracing::warn!(call_id = cid, method = %request.method, source = %source.addr,
                "in-dialog request over UDP from an address the dialog's peer does not use: 403");
            self.out.push_back(Output::Respond {
                stx,
                response: response_to(&request, 403, None, None),
            });
            return;
        }
        if cid == self.call_id {
            if let Err(e) = self.dialog.on_request(&request) {
                self.out.push_back(Output::Respond {
                    stx,
                    response: response_to(&request, e.status(), None, None),
                });
                return;
            }
            match request.method {
                Method::Bye => {
                    self.out.push_back(Output::Respond {
                        stx,
                        response: ok(&request),
                    });
                    tracing::info!("caller hung up");
                    self.caller_gone = true;
                    self.caller_left();
                    self.end_record("hangup");
                    self.feed(Event::CallerHangup);
                }
                Method::Invite => {
                    // Re-INVITE (hold, resume, refresh): answered from our leg, offered on.
                    let before = self.session_snapshot(None);
                    let session = match self.refresh_by_peer(None, &request) {
                        Ok(h) => h,
                        Err(r) => {
                            self.dialog.remote_reinvite_pending = false;
                            self.out.push_back(Output::Respond { stx, response: r });
                            return;
                        }
                    };
                    let offered = has_sdp(&request.headers, &request.body);
                    match self.relay_reinvite(None, &request) {
                        Some(answer) => self.answer_sdp = Some(answer),
                        // An offer Tandem cannot answer: 488, and the
                        // session goes on as it was (RFC 3261 §14.2; only
                        // a 2xx refreshes its clock, RFC 4028 §10).
                        None if offered && self.env.has_media() && self.media.is_some() => {
                            self.restore_session(None, before);
                            self.dialog.remote_reinvite_pending = false;
                            self.out.push_back(Output::Respond {
                                stx,
                                response: response_to(&request, 488, None, None),
                            });
                            return;
                        }
                        None => {}
                    }
                    let mut r = response_to(&request, 200, None, None);
                    r.headers.push(Header::Contact(self.contact(None).into()));
                    r.headers.extend(session);
                    // Without an offer, the SDP below is Tandem's: the ACK answers it.
                    self.offer_pending = self.media.is_some()
                        && self.answer_sdp.is_some()
                        && !has_sdp(&request.headers, &request.body);
                    if let Some(sdp) = &self.answer_sdp {
                        r.headers
                            .push(Header::ContentType("application/sdp".into()));
                        r.body = sdp.clone();
                    }
                    self.dialog.remote_reinvite_pending = false;
                    self.out.push_back(Output::Respond { stx, response: r });
                }
                Method::Info => {
                    let digit = dtmf_from_info(&request);
                    self.out.push_back(Output::Respond {
                        stx,
                        response: ok(&request),
                    });
                    if let Some(d) = digit {
                        self.on_caller_digit(d);
                    }
                }
                Method::Refer => self.on_caller_refer(stx, request),
                Method::Update => self.answer_update(stx, &request, None),
                Method::PRack => self.on_prack(stx, &request),
                Method::Subscribe => self.out.push_back(Output::Respond {
                    stx,
                    response: bad_event(&request),
                }),
                _ => self.out.push_back(Output::Respond {
                    stx,
                    response: ok(&request),
                }),
            }
            return;
        }
        if request.method == Method::Invite
            && self.dial.as_ref().is_none_or(|d| d.index(&cid).is_none())
            && other_header(&request.headers, "Replaces").is_some()
        {
            self.on_replaces(stx, request, source);
            return;
        }
        self.on_branch_request(stx, request, &cid);
    }

    /// Whether an in-dialog request on `cid` may come from `source`. Over
    /// UDP a source address is easy to forge, and Call-ID and tags travel
    /// in clear to anyone on the path: so a call that a trunk sent takes
    /// in-dialog requests only from addresses that trunk allows, and a
    /// branch only from the address its INVITE went to or one a trunk
    /// allows (a carrier's other edge). TCP and client calls are held to
    /// their dialog's tags alone (a client may roam).
    fn source_allowed(&self, cid: &str, source: Peer) -> bool {
        if source.transport != tandem_transport::Transport::Udp {
            return true;
        }
        let ip = source.addr.ip();
        if cid == self.call_id {
            let original = self.source.addr.ip();
            return match self.cfg.source_trunk(original) {
                Some(trunk) => ip == original || trunk.allows(ip),
                None => true,
            };
        }
        let Some(branch) = self
            .dial
            .as_ref()
            .and_then(|d| d.index(cid).map(|i| &d.branches[i]))
        else {
            return true;
        };
        if branch.peer.transport != tandem_transport::Transport::Udp {
            return true;
        }
        // Where the callee's side may send from: where its INVITE went, the
        // host its 2xx named as its target, the hops of its Record-Route
        // (a carrier answering from another node), or any trunk's address.
        let named = branch.dialog.as_ref().is_some_and(|d| {
            std::iter::once(&d.remote_target)
                .chain(&d.route_set)
                .any(|uri| uri_ip(uri) == Some(ip))
        });
        ip == branch.peer.addr.ip() || named || self.cfg.source_trunk(ip).is_some()
    }

    /// A digit from a media leg: the caller's, or a screened branch's.
    fn on_leg_digit(&mut self, leg: LegId, digit: char) {
        if Some(leg) == self.media {
            self.on_caller_digit(digit);
            return;
        }
        let branch = self.dial.as_ref().and_then(|d| {
            d.branches
                .iter()
                .position(|b| b.media == Some(leg) && b.screen.is_some())
        });
        if let Some(i) = branch {
            self.on_screen_digit(i, digit);
        }
    }
}

/// An in-dialog SUBSCRIBE: Tandem serves no event package (RFC 6665
/// §3.1.6.1 answers 489 Bad Event; `Allow-Events` lists none).
fn bad_event(request: &Request) -> Response {
    tracing::info!("in-dialog SUBSCRIBE: no event package served, 489");
    response_to(request, 489, None, None)
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
    /// A call's queue allocates a block of 32 messages up front: keep the
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

/// The host of a SIP URI (or name-addr) when it is an IP address literal.
fn uri_ip(uri: &str) -> Option<std::net::IpAddr> {
    let uri = uri.trim().trim_start_matches('<');
    let rest = uri.split_once(':')?.1;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split([';', '>', '?']).next()?;
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next()?.parse().ok();
    }
    hostport.split(':').next()?.parse().ok()
}

#[cfg(test)]
mod uri_ip_tests {
    #[test]
    fn ip_literals_are_read_from_targets_and_routes() {
        use super::uri_ip;
        let ip = |s: &str| s.parse::<std::net::IpAddr>().ok();
        assert_eq!(
            uri_ip("sip:bob@192.0.2.7:5060;transport=udp"),
            ip("192.0.2.7")
        );
        assert_eq!(uri_ip("<sip:192.0.2.8;lr>"), ip("192.0.2.8"));
        assert_eq!(uri_ip("sip:[2001:db8::1]:5060"), ip("2001:db8::1"));
        assert_eq!(uri_ip("sip:bob@sbc.example.com"), None);
    }
}
