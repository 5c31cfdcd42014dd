//! A call's event log, and its replay on the virtual clock.
//!
//! With `[debug] call_logs` set, every input of a call — its INVITE and
//! starting document, each SIP event, fetch answer, loaded audio, digit,
//! media event and timer, with its time since the call began in
//! microseconds — and the media plane's answers (leg and playback ids) are
//! written to `<dir>/<CallSid>.calllog` when the call ends. The tags,
//! branches and Call-IDs of a logged call come from a logged seed. Replaying
//! the log drives a [`Call`] through the same inputs at the same virtual
//! times and gives its outputs, so a field report reproduces exactly, in
//! microseconds, on a developer's machine (`replay`).
//!
//! One line per record, fields separated by spaces; free text (SIP
//! messages, documents) is escaped (`\\`, `\n`, `\r`, `\s` for a space) so a
//! line never breaks.

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use tandem_sip::message::SipMessage;
use tandem_sip::transaction::{Transport, TxId};

use super::*;
use crate::conference::{JoinSpec, RoomMsg};
use crate::media::LegError;
use crate::media_ops::{DigitsSource, DtmfKind};
use crate::queue::{Pairing, Position, QueueMsg, Taken};
use crate::recording::{RecordingInfo, RecordingOptions};

/// The first line of a call log.
const MAGIC: &str = "tandem-call-log 1";

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            ' ' => o.push_str("\\s"),
            c => o.push(c),
        }
    }
    if o.is_empty() { "\\e".to_owned() } else { o }
}

fn unesc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            o.push(c);
            continue;
        }
        match it.next() {
            Some('n') => o.push('\n'),
            Some('r') => o.push('\r'),
            Some('s') => o.push(' '),
            Some('e') => {}
            Some(x) => o.push(x),
            None => {}
        }
    }
    o
}

fn opt(s: Option<&str>) -> String {
    s.map_or_else(|| "-".to_owned(), esc)
}

fn unopt(s: &str) -> Option<String> {
    (s != "-").then(|| unesc(s))
}

/// A SIP message as a log line, its digest credentials redacted.
fn sip_text(mut m: SipMessage) -> String {
    redact_credentials(&mut m);
    esc(&String::from_utf8_lossy(&tandem_sip::message::to_bytes(&m)))
}

/// The `response=` of every `Authorization` and `Proxy-Authorization`
/// becomes `"redacted"`: a call log is made to be shared with a bug
/// report, and a digest response with its nonce lets anyone who reads it
/// guess the password offline. Nothing a replay does reads it (the
/// caller's digest was checked before the call began).
fn redact_credentials(m: &mut SipMessage) {
    use rsip::headers::UntypedHeader as _;
    use tandem_sip::message::Header;
    let headers = match m {
        SipMessage::Request(r) => &mut r.headers,
        SipMessage::Response(r) => &mut r.headers,
    };
    for h in headers.iter_mut() {
        match h {
            Header::Authorization(v) => *h = Header::Authorization(redact_digest(v.value()).into()),
            Header::ProxyAuthorization(v) => {
                *h = Header::ProxyAuthorization(redact_digest(v.value()).into());
            }
            Header::Other(name, v)
                if name.eq_ignore_ascii_case("authorization")
                    || name.eq_ignore_ascii_case("proxy-authorization") =>
            {
                *v = redact_digest(v);
            }
            _ => {}
        }
    }
}

/// `value` (a `Digest` credentials header) with its `response` parameter's
/// value replaced; a value without one, as it was.
fn redact_digest(value: &str) -> String {
    value
        .split(',')
        .map(|part| {
            // The first part carries the scheme: `Digest username=...`.
            let (lead, param) = match part.trim_start().split_once(' ') {
                Some((scheme, rest)) if !scheme.contains('=') => {
                    let at = part.len() - rest.len();
                    part.split_at(at)
                }
                _ => ("", part),
            };
            let trimmed = param.trim_start();
            match trimmed.split_once('=') {
                Some((name, _)) if name.trim().eq_ignore_ascii_case("response") => {
                    let ws = &param[..param.len() - trimmed.len()];
                    format!("{lead}{ws}response=\"redacted\"")
                }
                _ => part.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn peer_text(p: Peer) -> String {
    format!("{} {}", p.transport.as_str(), p.addr)
}

/// The lines of one call's log, shared by the call's shell and its logging env.
#[derive(Debug, Clone)]
pub(crate) struct CallLog {
    lines: Arc<Mutex<Vec<String>>>,
    t0: Instant,
}

impl CallLog {
    /// A log for a call that began at `t0`, with its seed and start.
    pub(crate) fn new(
        t0: Instant,
        seed: u64,
        invite: &Request,
        source: Peer,
        stx: ServerTx,
        start: &LoggedStart,
    ) -> Self {
        let mut lines = vec![
            MAGIC.to_owned(),
            format!("seed {seed}"),
            format!("source {}", peer_text(source)),
            format!("stx {} {:?}", stx.shard, stx.tx),
            format!("invite {}", sip_text(SipMessage::Request(invite.clone()))),
        ];
        lines.push(match start {
            LoggedStart::Document { url, body } => {
                format!(
                    "start doc {} {}",
                    opt(url.as_ref().map(Url::as_str)),
                    esc(body)
                )
            }
            LoggedStart::Fetch {
                url,
                method,
                fallback,
            } => format!(
                "start fetch {} {} {}",
                esc(url.as_str()),
                if *method == tandem_twiml::Method::Get {
                    "GET"
                } else {
                    "POST"
                },
                opt(fallback.as_deref())
            ),
        });
        Self {
            lines: Arc::new(Mutex::new(lines)),
            t0,
        }
    }

    fn push(&self, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }

    fn at(&self, now: Instant) -> u128 {
        now.saturating_duration_since(self.t0).as_micros()
    }

    /// Records a message before the call handles it.
    pub(crate) fn msg(&self, now: Instant, m: &CallMsg) {
        let mut l = format!("{} ", self.at(now));
        let _ = match m {
            CallMsg::Request {
                stx,
                request,
                source,
            } => write!(
                l,
                "req {} {:?} {} {}",
                stx.shard,
                stx.tx,
                peer_text(*source),
                sip_text(SipMessage::Request((**request).clone()))
            ),
            CallMsg::Ack { call_id, sdp: None } => write!(l, "ackon {}", esc(call_id)),
            CallMsg::Ack {
                call_id,
                sdp: Some(sdp),
            } => write!(
                l,
                "ackon {} {}",
                esc(call_id),
                esc(&String::from_utf8_lossy(sdp))
            ),
            CallMsg::Cancelled => write!(l, "cancelled"),
            CallMsg::Response { response, source } => write!(
                l,
                "resp {} {}",
                source.map_or_else(|| "- -".to_owned(), peer_text),
                sip_text(SipMessage::Response((**response).clone()))
            ),
            CallMsg::Timeout {
                call_id,
                method,
                branch,
            } => {
                write!(l, "timeout {} {} {}", esc(call_id), method, esc(branch))
            }
            CallMsg::AckTimeout { call_id, was_2xx } => {
                write!(l, "acktimeouton {} {}", esc(call_id), u8::from(*was_2xx))
            }
            CallMsg::Fetched(r) => write!(l, "fetched {}", fetched_text(r)),
            CallMsg::ReferFetched(r) => write!(l, "referfetched {}", fetched_text(r)),
            CallMsg::ApiFetched(r) => write!(l, "apifetched {}", fetched_text(r)),
            CallMsg::Api(cmd) => match &cmd.action {
                super::ApiAction::Twiml(body) => {
                    write!(l, "api {} twiml {}", esc(&cmd.sid), esc(body))
                }
                super::ApiAction::Url(url, method) => write!(
                    l,
                    "api {} url {} {}",
                    esc(&cmd.sid),
                    esc(url.as_str()),
                    method_text(*method)
                ),
                super::ApiAction::Cancel => write!(l, "api {} cancel", esc(&cmd.sid)),
                super::ApiAction::Complete => write!(l, "api {} complete", esc(&cmd.sid)),
            },
            CallMsg::WaitFetched { result, dequeue } => write!(
                l,
                "waitfetched {} {}",
                u8::from(*dequeue),
                fetched_text(result)
            ),
            CallMsg::Queue(q) => match &**q {
                QueueMsg::Dequeued {
                    room,
                    agent_sid,
                    url,
                    ..
                } => write!(
                    l,
                    "queue dequeued {} {} {} {}",
                    esc(room),
                    esc(agent_sid),
                    opt(url.as_ref().map(|u| u.0.as_str())),
                    url.as_ref().map_or("POST", |u| method_text(u.1))
                ),
                QueueMsg::Paired(p) => write!(
                    l,
                    "queue paired {} {} {} {}",
                    esc(&p.room),
                    esc(&p.caller_sid),
                    esc(&p.queue_sid),
                    p.queue_time
                ),
                QueueMsg::PeerGone => write!(l, "queue peergone"),
            },
            CallMsg::Amd(r) => write!(
                l,
                "amd {} {} {}",
                r.leg.0,
                r.result.answered_by.as_str(),
                r.result.after_ms
            ),
            CallMsg::Room(m) => write!(
                l,
                "room {}",
                match m {
                    RoomMsg::Started => "started",
                    RoomMsg::Ended => "ended",
                }
            ),
            CallMsg::ScreenFetched { call_id, result } => {
                write!(l, "screen {} {}", esc(call_id), fetched_text(result))
            }
            CallMsg::AudioReady { who, seq, result } => write!(
                l,
                "audio {} {seq} {}",
                who_text(*who),
                match result {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => format!("err {}", esc(e)),
                }
            ),
            CallMsg::Digit(d) => write!(
                l,
                "digit {} {} {}",
                d.leg.0,
                d.digit,
                if d.kind == DtmfKind::Rfc4733 {
                    "rfc4733"
                } else {
                    "inband"
                }
            ),
            CallMsg::Voice(c) => write!(l, "voice {} {}", c.leg.0, u8::from(c.speaking)),
            CallMsg::Recognized(r) => write!(
                l,
                "recognized {} {} {}",
                r.seq,
                r.partial.map_or("-".to_owned(), |n| n.to_string()),
                match &r.result {
                    Ok((text, conf)) => format!("ok {} {}", opt(conf.as_deref()), esc(text)),
                    Err(e) => format!("err {}", esc(e)),
                }
            ),
            CallMsg::Resolved(found) => {
                let _ = write!(l, "resolved");
                for (name, targets) in found {
                    let peers: Vec<String> = targets
                        .iter()
                        .map(|p| format!("{}@{}", p.transport.as_str(), p.addr))
                        .collect();
                    let _ = write!(
                        l,
                        " {}|{}|{}|{}={}",
                        esc(&name.host),
                        name.port.map_or("-".to_owned(), |p| p.to_string()),
                        name.transport.map_or("-", |t| t.as_str()),
                        u8::from(name.secure),
                        if peers.is_empty() {
                            "-".to_owned()
                        } else {
                            peers.join(",")
                        }
                    );
                }
                Ok(())
            }
        };
        self.push(l);
    }

    /// Records a media event before the call handles it.
    pub(crate) fn media(&self, now: Instant, ev: &MediaEvent) {
        let line = match ev {
            MediaEvent::Timeout { leg, after } => {
                format!(
                    "{} mediatimeout {} {}",
                    self.at(now),
                    leg.0,
                    after.as_micros()
                )
            }
            MediaEvent::InjectionDone { leg, id } => {
                format!("{} played {} {id}", self.at(now), leg.0)
            }
            _ => return,
        };
        self.push(line);
    }

    /// Records that the timers due at `now` fired.
    pub(crate) fn timer(&self, now: Instant) {
        self.push(format!("{} timer", self.at(now)));
    }

    /// The whole log.
    pub(crate) fn text(&self) -> String {
        let mut s = self
            .lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n");
        s.push('\n');
        s
    }
}

fn fetched_text(r: &Fetched) -> String {
    match r {
        Ok((body, url)) => format!("ok {} {}", opt(url.as_ref().map(Url::as_str)), esc(body)),
        Err(e) => format!("err {}", esc(e)),
    }
}

fn who_text(w: Who) -> String {
    match w {
        Who::Caller => "caller".to_owned(),
        Who::Branch(i) => format!("branch:{i}"),
        Who::Wait => "wait".to_owned(),
    }
}

/// How a call's document started, for the log.
#[derive(Debug, Clone)]
pub(crate) enum LoggedStart {
    /// A local document, as read.
    Document { url: Option<Url>, body: String },
    /// Fetched from the application.
    Fetch {
        url: Url,
        method: tandem_twiml::Method,
        fallback: Option<String>,
    },
}

/// The media plane with its answers written to the log (`env open`,
/// `env play`), so a replay hands out the same leg and playback ids.
pub(crate) struct LoggingEnv {
    pub inner: Box<dyn Env>,
    pub log: CallLog,
}

impl Env for LoggingEnv {
    fn has_media(&self) -> bool {
        self.inner.has_media()
    }
    fn open_leg(&mut self, signal: std::net::IpAddr) -> Result<LegId, LegError> {
        let r = self.inner.open_leg(signal);
        self.log.push(match &r {
            Ok(l) => format!("env open {}", l.0),
            Err(_) => "env open -".to_owned(),
        });
        r
    }
    fn answer(&mut self, leg: LegId, offer: &[u8]) -> Result<Vec<u8>, LegError> {
        let r = self.inner.answer(leg, offer);
        // Whether the offer could be answered decides 200 or 488.
        self.log.push(format!("env answer {}", u8::from(r.is_ok())));
        r
    }
    fn offer_srtp(&mut self, leg: LegId) {
        self.inner.offer_srtp(leg);
    }
    fn offer(&mut self, leg: LegId, remote: Option<&[u8]>) -> Result<Vec<u8>, LegError> {
        self.inner.offer(leg, remote)
    }
    fn reoffer(&mut self, leg: LegId) -> Result<Vec<u8>, LegError> {
        self.inner.reoffer(leg)
    }
    fn same_remote_sdp(&mut self, leg: LegId, sdp: &[u8]) -> bool {
        let same = self.inner.same_remote_sdp(leg, sdp);
        self.log.push(format!("env same {}", u8::from(same)));
        same
    }
    fn take_answer(&mut self, leg: LegId, answer: &[u8]) -> Result<(), LegError> {
        self.inner.take_answer(leg, answer)
    }
    fn ringback(&mut self, leg: LegId, tone: Option<tandem_media::tones::RingTone>) {
        self.inner.ringback(leg, tone);
    }
    fn relay(&mut self, from: LegId, to: Option<LegId>) {
        self.inner.relay(from, to);
    }
    fn bridge(&mut self, a: LegId, b: LegId) {
        self.inner.bridge(a, b);
    }
    fn play(&mut self, leg: LegId, audio: Audio) -> Option<u64> {
        let r = self.inner.play(leg, audio);
        self.log.push(format!(
            "env play {}",
            r.map_or("-".to_owned(), |i| i.to_string())
        ));
        r
    }
    fn stop_play(&mut self, id: u64) {
        self.inner.stop_play(id);
    }
    fn send_digits(&mut self, leg: LegId, digits: &str) -> Result<(), String> {
        self.inner.send_digits(leg, digits)
    }
    fn expect_media(&mut self, leg: LegId, on: bool) {
        self.inner.expect_media(leg, on);
    }
    fn listen_dtmf(&mut self, leg: LegId) {
        self.inner.listen_dtmf(leg);
    }
    fn listen_voice(&mut self, leg: LegId, on: bool) {
        self.inner.listen_voice(leg, on);
    }
    fn listen_speech(&mut self, leg: LegId, on: bool) {
        self.inner.listen_speech(leg, on);
    }
    fn speech_audio(&mut self, leg: LegId) -> Vec<i16> {
        // The audio is not logged: a replay recognises nothing of it.
        self.inner.speech_audio(leg)
    }
    fn start_recording(
        &mut self,
        sid: &str,
        opts: RecordingOptions,
        parent: LegId,
    ) -> Result<env::RecordingStarted, String> {
        let r = self.inner.start_recording(sid, opts, parent);
        self.log.push(match &r {
            Ok(s) => format!(
                "env recstart {} {}",
                esc(&s.event.recording_sid),
                esc(&s.event.recording_url)
            ),
            Err(e) => format!("env recstart - {}", esc(e)),
        });
        r
    }
    fn record_child(&mut self, child: LegId) {
        self.inner.record_child(child);
    }
    fn stop_recording(&mut self) -> Option<Result<RecordingInfo, String>> {
        let r = self.inner.stop_recording();
        self.log.push(match &r {
            Some(Ok(i)) => format!(
                "env recstop {} {} {} {}",
                esc(&i.sid),
                i.status.as_str(),
                i.duration_secs,
                esc(&i.url)
            ),
            Some(Err(e)) => format!("env recstop - {}", esc(e)),
            None => "env recstop -".to_owned(),
        });
        r
    }
    fn close_leg(&mut self, leg: LegId) {
        self.inner.close_leg(leg);
    }
    fn detach_leg(&mut self, leg: LegId) -> env::DetachedLeg {
        self.inner.detach_leg(leg)
    }
    fn adopt_leg(&mut self, leg: env::DetachedLeg) {
        self.inner.adopt_leg(leg);
    }
    fn release(&mut self) {
        self.inner.release();
    }
    fn contacts(&self, identity: &str) -> Vec<(String, Peer)> {
        self.inner.contacts(identity)
    }
    fn dial_ended(&mut self, status: tandem_types::DialCallStatus) {
        self.inner.dial_ended(status);
    }
    fn join_conference(&mut self, leg: LegId, spec: JoinSpec) -> Result<env::Joined, String> {
        let r = self.inner.join_conference(leg, spec);
        self.log.push(match &r {
            Ok(j) => format!(
                "env join {} {}",
                u8::from(j.started),
                esc(&j.conference_sid)
            ),
            Err(e) => format!("env join - {}", esc(e)),
        });
        r
    }
    fn conference_audio(&mut self) {
        self.inner.conference_audio();
    }
    fn leave_conference(&mut self) {
        self.inner.leave_conference();
    }
    fn record_conference(&mut self) {
        self.inner.record_conference();
    }
    fn listen_amd(&mut self, leg: LegId, cfg: tandem_media::AmdConfig) {
        self.inner.listen_amd(leg, cfg);
    }
    fn enqueue(&mut self, name: &str, call_sid: &str) -> Result<Position, Position> {
        let r = self.inner.enqueue(name, call_sid);
        self.log.push(match &r {
            Ok(p) => format!("env enqueue ok {}", position_text(p)),
            Err(p) => format!("env enqueue full {}", position_text(p)),
        });
        r
    }
    fn queue_position(&mut self, name: &str, call_sid: &str) -> Option<Position> {
        let r = self.inner.queue_position(name, call_sid);
        self.log.push(match &r {
            Some(p) => format!("env qpos {}", position_text(p)),
            None => "env qpos -".to_owned(),
        });
        r
    }
    fn queue_leave(&mut self, name: &str, call_sid: &str) -> bool {
        let r = self.inner.queue_leave(name, call_sid);
        self.log.push(format!("env qleave {}", u8::from(r)));
        r
    }
    fn queue_take(
        &mut self,
        name: &str,
        agent_sid: &str,
        url: Option<(String, tandem_twiml::Method)>,
    ) -> Taken {
        let r = self.inner.queue_take(name, agent_sid, url);
        self.log.push(match &r {
            Taken::Caller(p) => format!(
                "env qtake caller {} {} {} {}",
                esc(&p.room),
                esc(&p.caller_sid),
                esc(&p.queue_sid),
                p.queue_time
            ),
            Taken::Waiting { queue_sid } => format!("env qtake waiting {}", esc(queue_sid)),
        });
        r
    }
    fn queue_cancel(&mut self, name: &str, agent_sid: &str) {
        self.inner.queue_cancel(name, agent_sid);
    }
}

/// Why a log cannot be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Not a call log, or a version this build does not read.
    #[error("not a tandem call log (first line {0:?})")]
    NotALog(String),
    /// A line that does not parse.
    #[error("line {line}: {why}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// The media plane of a replay: hands out the logged leg and playback ids.
#[derive(Debug, Default)]
struct ReplayEnv {
    media: bool,
    legs: VecDeque<Option<u32>>,
    plays: VecDeque<Option<u64>>,
    /// Recordings started: (sid, url) or why not.
    recordings: VecDeque<Result<(String, String), String>>,
    /// Recordings stopped, as the log says.
    stops: VecDeque<Option<Result<RecordingInfo, String>>>,
    /// Conferences joined, as the log says.
    joins: VecDeque<Result<env::Joined, String>>,
    /// Queue answers, as the log says.
    enqueues: VecDeque<Result<Position, Position>>,
    positions: VecDeque<Option<Position>>,
    leaves: VecDeque<bool>,
    takes: VecDeque<(String, String, String, u64)>,
    /// Whether each offer could be answered (a log without these lines:
    /// every one).
    answers: VecDeque<bool>,
    /// Whether each re-offer was the remote's last SDP unchanged.
    same: VecDeque<bool>,
}

const REPLAY_SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 9 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

impl Env for ReplayEnv {
    fn has_media(&self) -> bool {
        self.media
    }
    fn open_leg(&mut self, _: std::net::IpAddr) -> Result<LegId, LegError> {
        match self.legs.pop_front().flatten() {
            Some(id) => Ok(LegId(id)),
            None => Err(LegError::Exhausted),
        }
    }
    fn answer(&mut self, _: LegId, _: &[u8]) -> Result<Vec<u8>, LegError> {
        if self.answers.pop_front().unwrap_or(true) {
            Ok(REPLAY_SDP.to_vec())
        } else {
            Err(LegError::Sdp(tandem_rtp::sdp::SdpError::NoCommonCodec))
        }
    }
    fn same_remote_sdp(&mut self, _: LegId, _: &[u8]) -> bool {
        self.same.pop_front().unwrap_or(false)
    }
    fn offer(&mut self, _: LegId, _: Option<&[u8]>) -> Result<Vec<u8>, LegError> {
        Ok(REPLAY_SDP.to_vec())
    }
    fn take_answer(&mut self, _: LegId, _: &[u8]) -> Result<(), LegError> {
        Ok(())
    }
    fn ringback(&mut self, _: LegId, _: Option<tandem_media::tones::RingTone>) {}
    fn relay(&mut self, _: LegId, _: Option<LegId>) {}
    fn bridge(&mut self, _: LegId, _: LegId) {}
    fn play(&mut self, _: LegId, _: Audio) -> Option<u64> {
        self.plays.pop_front().flatten()
    }
    fn stop_play(&mut self, _: u64) {}
    fn send_digits(&mut self, _: LegId, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn expect_media(&mut self, _: LegId, _: bool) {}
    fn listen_dtmf(&mut self, _: LegId) {}
    fn listen_voice(&mut self, _: LegId, _: bool) {}
    fn listen_speech(&mut self, _: LegId, _: bool) {}
    fn speech_audio(&mut self, _: LegId) -> Vec<i16> {
        Vec::new()
    }
    fn start_recording(
        &mut self,
        call_sid: &str,
        _: RecordingOptions,
        _: LegId,
    ) -> Result<env::RecordingStarted, String> {
        // The audio is not replayed; the recording's sid and URL are.
        let (sid, url) = self
            .recordings
            .pop_front()
            .unwrap_or_else(|| Err("no recording in the log".to_owned()))?;
        let mut event = RecordingInfo::stand_in(
            &sid,
            &url,
            tandem_webhook::RecordingStatus::InProgress,
            0,
            call_sid,
        )
        .event();
        event.duration_secs = None;
        Ok(env::RecordingStarted { event })
    }
    fn record_child(&mut self, _: LegId) {}
    fn stop_recording(&mut self) -> Option<Result<RecordingInfo, String>> {
        self.stops.pop_front().flatten()
    }
    fn close_leg(&mut self, _: LegId) {}
    fn contacts(&self, _: &str) -> Vec<(String, Peer)> {
        Vec::new()
    }
    fn dial_ended(&mut self, _: tandem_types::DialCallStatus) {}
    fn join_conference(&mut self, _: LegId, _: JoinSpec) -> Result<env::Joined, String> {
        self.joins
            .pop_front()
            .unwrap_or_else(|| Err("no conference join in the log".to_owned()))
    }
    fn conference_audio(&mut self) {}
    fn leave_conference(&mut self) {}
    fn record_conference(&mut self) {}
    fn listen_amd(&mut self, _: LegId, _: tandem_media::AmdConfig) {}
    fn enqueue(&mut self, _: &str, _: &str) -> Result<Position, Position> {
        self.enqueues
            .pop_front()
            .unwrap_or_else(|| Err(stand_in_position()))
    }
    fn queue_position(&mut self, _: &str, _: &str) -> Option<Position> {
        self.positions.pop_front().flatten()
    }
    fn queue_leave(&mut self, _: &str, _: &str) -> bool {
        self.leaves.pop_front().unwrap_or(false)
    }
    fn queue_take(&mut self, _: &str, _: &str, _: Option<(String, tandem_twiml::Method)>) -> Taken {
        match self.takes.pop_front() {
            Some((room, caller_sid, queue_sid, queue_time)) if !room.is_empty() => {
                Taken::Caller(Box::new(Pairing {
                    room,
                    caller_sid,
                    // The caller is not replayed: messages to it go nowhere.
                    caller: super::mailbox().0,
                    queue_sid,
                    queue_time,
                }))
            }
            Some((_, _, queue_sid, _)) => Taken::Waiting { queue_sid },
            None => Taken::Waiting {
                queue_sid: String::new(),
            },
        }
    }
    fn queue_cancel(&mut self, _: &str, _: &str) {}
}

fn position_text(p: &Position) -> String {
    format!(
        "{} {} {} {} {}",
        esc(&p.queue_sid),
        p.position,
        p.size,
        p.max,
        p.avg_secs
    )
}

fn parse_position(f: &[&str]) -> Option<Position> {
    let [sid, pos, size, max, avg] = f else {
        return None;
    };
    Some(Position {
        queue_sid: unesc(sid),
        position: pos.parse().ok()?,
        size: size.parse().ok()?,
        max: max.parse().ok()?,
        avg_secs: avg.parse().ok()?,
    })
}

fn stand_in_position() -> Position {
    Position {
        queue_sid: String::new(),
        position: 0,
        size: 0,
        max: 0,
        avg_secs: 0,
    }
}

fn method_text(m: tandem_twiml::Method) -> &'static str {
    if m == tandem_twiml::Method::Get {
        "GET"
    } else {
        "POST"
    }
}

/// One input of a log, at its time.
enum Input {
    Msg(CallMsg),
    Media(MediaEvent),
    Timer,
}

fn parse_transport(t: &str) -> Result<Transport, String> {
    Ok(match t {
        "UDP" | "udp" => Transport::Udp,
        "TCP" | "tcp" => Transport::Tcp,
        "TLS" | "tls" => Transport::Tls,
        x => return Err(format!("transport {x:?}")),
    })
}

fn parse_peer(t: &str, a: &str) -> Result<Peer, String> {
    let transport = parse_transport(t)?;
    Ok(Peer {
        transport,
        addr: a.parse().map_err(|e| format!("address {a:?}: {e}"))?,
    })
}

fn parse_tx(s: &str) -> Result<TxId, String> {
    let n = s
        .trim_start_matches("TxId(")
        .trim_end_matches(')')
        .parse()
        .map_err(|e| format!("tx {s:?}: {e}"))?;
    Ok(TxId::from_raw(n))
}

fn parse_sip(s: &str) -> Result<SipMessage, String> {
    tandem_sip::message::parse(unesc(s).as_bytes()).map_err(|e| e.to_string())
}

fn parse_fetched(f: &[&str]) -> Result<Fetched, String> {
    match f {
        ["ok", url, body] => Ok(Ok((
            unesc(body),
            unopt(url)
                .map(|u| Url::parse(&u))
                .transpose()
                .map_err(|e| e.to_string())?,
        ))),
        ["err", why] => Ok(Err(unesc(why))),
        _ => Err("fetch answer".to_owned()),
    }
}

/// One timed input of a log; `caller_call_id` names the caller's dialog
/// (the log's INVITE), for lines of logs older than Call-IDs on ACKs.
fn parse_input(f: &[&str], caller_call_id: &str) -> Result<Input, String> {
    Ok(match f {
        ["req", shard, tx, t, a, sip] => {
            let SipMessage::Request(request) = parse_sip(sip)? else {
                return Err("not a request".to_owned());
            };
            Input::Msg(CallMsg::Request {
                stx: ServerTx {
                    shard: shard.parse().map_err(|_| "shard")?,
                    tx: parse_tx(tx)?,
                },
                request: Box::new(request),
                source: parse_peer(t, a)?,
            })
        }
        // Logs written before ACKs carried their Call-ID: the caller's.
        ["ack"] => Input::Msg(CallMsg::Ack {
            call_id: caller_call_id.to_owned(),
            sdp: None,
        }),
        ["ack", sdp] => Input::Msg(CallMsg::Ack {
            call_id: caller_call_id.to_owned(),
            sdp: Some(unesc(sdp).into_bytes().into_boxed_slice()),
        }),
        ["ackon", cid] => Input::Msg(CallMsg::Ack {
            call_id: unesc(cid),
            sdp: None,
        }),
        ["ackon", cid, sdp] => Input::Msg(CallMsg::Ack {
            call_id: unesc(cid),
            sdp: Some(unesc(sdp).into_bytes().into_boxed_slice()),
        }),
        ["cancelled"] => Input::Msg(CallMsg::Cancelled),
        ["resp", t, a, sip] => {
            let SipMessage::Response(response) = parse_sip(sip)? else {
                return Err("not a response".to_owned());
            };
            let source = if *t == "-" {
                None
            } else {
                Some(parse_peer(t, a)?)
            };
            Input::Msg(CallMsg::Response {
                response: Box::new(response),
                source,
            })
        }
        ["timeout", call_id, method, branch] => Input::Msg(CallMsg::Timeout {
            call_id: unesc(call_id),
            method: Method::from_str(method).map_err(|e| e.to_string())?,
            branch: unesc(branch),
        }),
        ["acktimeout", w] => Input::Msg(CallMsg::AckTimeout {
            call_id: caller_call_id.to_owned(),
            was_2xx: *w == "1",
        }),
        ["acktimeouton", cid, w] => Input::Msg(CallMsg::AckTimeout {
            call_id: unesc(cid),
            was_2xx: *w == "1",
        }),
        ["fetched", rest @ ..] => Input::Msg(CallMsg::Fetched(Box::new(parse_fetched(rest)?))),
        ["referfetched", rest @ ..] => {
            Input::Msg(CallMsg::ReferFetched(Box::new(parse_fetched(rest)?)))
        }
        ["apifetched", rest @ ..] => {
            Input::Msg(CallMsg::ApiFetched(Box::new(parse_fetched(rest)?)))
        }
        ["api", sid, rest @ ..] => {
            let action = match rest {
                ["twiml", body] => super::ApiAction::Twiml(unesc(body)),
                ["url", url, method] => super::ApiAction::Url(
                    Url::parse(&unesc(url)).map_err(|e| format!("api url: {e}"))?,
                    if *method == "GET" {
                        tandem_twiml::Method::Get
                    } else {
                        tandem_twiml::Method::Post
                    },
                ),
                ["cancel"] => super::ApiAction::Cancel,
                ["complete"] => super::ApiAction::Complete,
                _ => return Err("api action".to_owned()),
            };
            Input::Msg(CallMsg::Api(Box::new(super::ApiCommand {
                sid: unesc(sid),
                action,
                reply: None,
            })))
        }
        ["waitfetched", rest @ ..] => {
            let (dequeue, rest) = rest.split_first().ok_or("waitfetched")?;
            Input::Msg(CallMsg::WaitFetched {
                result: Box::new(parse_fetched(rest)?),
                dequeue: *dequeue == "1",
            })
        }
        ["room", "started"] => Input::Msg(CallMsg::Room(RoomMsg::Started)),
        ["queue", "dequeued", room, agent_sid, url, method] => {
            let method = if *method == "GET" {
                tandem_twiml::Method::Get
            } else {
                tandem_twiml::Method::Post
            };
            Input::Msg(CallMsg::Queue(Box::new(QueueMsg::Dequeued {
                room: unesc(room),
                agent_sid: unesc(agent_sid),
                agent: super::mailbox().0,
                url: unopt(url).map(|u| (u, method)),
            })))
        }
        ["queue", "paired", room, caller_sid, queue_sid, time] => Input::Msg(CallMsg::Queue(
            Box::new(QueueMsg::Paired(Box::new(Pairing {
                room: unesc(room),
                caller_sid: unesc(caller_sid),
                caller: super::mailbox().0,
                queue_sid: unesc(queue_sid),
                queue_time: time.parse().map_err(|_| "queue time")?,
            }))),
        )),
        ["queue", "peergone"] => Input::Msg(CallMsg::Queue(Box::new(QueueMsg::PeerGone))),
        ["amd", leg, by, ms] => {
            use tandem_media::AnsweredBy as A;
            let answered_by = [
                A::Human,
                A::MachineStart,
                A::MachineEndBeep,
                A::MachineEndSilence,
                A::MachineEndOther,
                A::Fax,
                A::Unknown,
            ]
            .into_iter()
            .find(|a| a.as_str() == *by)
            .ok_or("AnsweredBy")?;
            Input::Msg(CallMsg::Amd(Box::new(crate::media_ops::AmdReport {
                leg: LegId(leg.parse().map_err(|_| "leg")?),
                result: tandem_media::AmdResult {
                    answered_by,
                    after_ms: ms.parse().map_err(|_| "ms")?,
                },
            })))
        }
        ["room", "ended"] => Input::Msg(CallMsg::Room(RoomMsg::Ended)),
        ["screen", call_id, rest @ ..] => Input::Msg(CallMsg::ScreenFetched {
            call_id: unesc(call_id),
            result: Box::new(parse_fetched(rest)?),
        }),
        ["audio", who, seq, ok @ ..] => {
            let who = match *who {
                "caller" => Who::Caller,
                "wait" => Who::Wait,
                w => Who::Branch(w.trim_start_matches("branch:").parse().map_err(|_| "who")?),
            };
            let result = match ok {
                ["ok"] => {
                    // The audio itself is not logged: a short stand-in plays.
                    let d = DigitsSource::new("1").map_err(|e| e.to_string())?;
                    Ok(Box::new(Audio::Digits(d)))
                }
                ["err", why] => Err(unesc(why)),
                _ => return Err("audio result".to_owned()),
            };
            Input::Msg(CallMsg::AudioReady {
                who,
                seq: seq.parse().map_err(|_| "seq")?,
                result,
            })
        }
        ["digit", leg, d, kind] => Input::Msg(CallMsg::Digit(Box::new(DtmfDigit {
            digit: d.chars().next().ok_or("digit")?,
            kind: if *kind == "rfc4733" {
                DtmfKind::Rfc4733
            } else {
                DtmfKind::Inband
            },
            leg: LegId(leg.parse().map_err(|_| "leg")?),
            at: tokio::time::Instant::now(),
        }))),
        ["recognized", seq, partial, rest @ ..] => {
            let result = match rest {
                ["ok", conf, text] => Ok((unesc(text), unopt(conf))),
                ["err", why] => Err(unesc(why)),
                _ => return Err("recognized result".to_owned()),
            };
            Input::Msg(CallMsg::Recognized(Box::new(super::Recognized {
                seq: seq.parse().map_err(|_| "seq")?,
                partial: (*partial != "-")
                    .then(|| partial.parse())
                    .transpose()
                    .map_err(|_| "partial")?,
                result,
            })))
        }
        ["voice", leg, speaking] => Input::Msg(CallMsg::Voice(VoiceChange {
            leg: LegId(leg.parse().map_err(|_| "leg")?),
            speaking: *speaking == "1",
            at: tokio::time::Instant::now(),
        })),
        ["resolved", found @ ..] => {
            let mut v = Vec::new();
            for x in found {
                let (name, peers) = x.split_once('=').ok_or("resolved entry")?;
                let [host, port, transport, secure] = name.split('|').collect::<Vec<_>>()[..]
                else {
                    return Err("resolved name".into());
                };
                let name = crate::dns::Name {
                    host: unesc(host),
                    port: (port != "-")
                        .then(|| port.parse())
                        .transpose()
                        .map_err(|_| "port")?,
                    transport: (transport != "-")
                        .then(|| parse_transport(transport))
                        .transpose()?,
                    secure: secure == "1",
                };
                let mut targets = Vec::new();
                for p in peers.split(',').filter(|p| *p != "-") {
                    let (t, a) = p.split_once('@').ok_or("resolved target")?;
                    targets.push(parse_peer(t, a)?);
                }
                v.push((name, targets));
            }
            Input::Msg(CallMsg::Resolved(v))
        }
        ["mediatimeout", leg, after] => Input::Media(MediaEvent::Timeout {
            leg: LegId(leg.parse().map_err(|_| "leg")?),
            after: Duration::from_micros(after.parse().map_err(|_| "after")?),
        }),
        ["played", leg, id] => Input::Media(MediaEvent::InjectionDone {
            leg: LegId(leg.parse().map_err(|_| "leg")?),
            id: id.parse().map_err(|_| "id")?,
        }),
        ["timer"] => Input::Timer,
        other => return Err(format!("unknown record {:?}", other.first())),
    })
}

/// Replays a call log on a virtual clock starting at `t0`: the call's
/// outputs with their times since the call began.
pub fn replay(text: &str, cfg: Arc<EngineConfig>) -> Result<Vec<(Duration, String)>, ReplayError> {
    let t0 = Instant::now();
    let mut lines = text.lines().enumerate();
    let first = lines.next().map(|(_, l)| l).unwrap_or("");
    if first != MAGIC {
        return Err(ReplayError::NotALog(first.to_owned()));
    }
    let bad = |line: usize, why: String| ReplayError::Line {
        line: line + 1,
        why,
    };
    let mut seed = 0;
    let mut source = None;
    let mut stx = None;
    let mut invite = None;
    let mut start = None;
    let mut env = ReplayEnv::default();
    let mut inputs = Vec::new();
    for (n, l) in lines {
        let f: Vec<&str> = l.split(' ').collect();
        match f.as_slice() {
            ["seed", s] => seed = s.parse().map_err(|_| bad(n, "seed".into()))?,
            ["source", t, a] => source = Some(parse_peer(t, a).map_err(|e| bad(n, e))?),
            ["stx", shard, tx] => {
                stx = Some(ServerTx {
                    shard: shard.parse().map_err(|_| bad(n, "shard".into()))?,
                    tx: parse_tx(tx).map_err(|e| bad(n, e))?,
                })
            }
            ["invite", sip] => match parse_sip(sip).map_err(|e| bad(n, e))? {
                SipMessage::Request(r) => invite = Some(r),
                SipMessage::Response(_) => return Err(bad(n, "invite is a response".into())),
            },
            ["start", "doc", url, body] => {
                let url = unopt(url).and_then(|u| Url::parse(&u).ok());
                start = Some(document_start(&unesc(body), url));
            }
            ["start", "fetch", url, method, fallback] => {
                let url = Url::parse(&unesc(url)).map_err(|e| bad(n, e.to_string()))?;
                let m = if *method == "GET" {
                    tandem_twiml::Method::Get
                } else {
                    tandem_twiml::Method::Post
                };
                start = Some(Start {
                    interp: Interpreter::fetching(url.clone(), m),
                    document_url: Some(url),
                    fallback: unopt(fallback)
                        .map(|u| tandem_webhook::Target::new(u, tandem_webhook::Method::Post)),
                });
            }
            ["env", "open", id] => {
                env.media = true;
                env.legs.push_back(id.parse().ok());
            }
            ["env", "play", id] => env.plays.push_back(id.parse().ok()),
            ["env", "answer", ok] => env.answers.push_back(*ok == "1"),
            ["env", "same", x] => env.same.push_back(*x == "1"),
            ["env", "enqueue", ok, rest @ ..] => {
                let p = parse_position(rest).ok_or_else(|| bad(n, "queue position".into()))?;
                env.enqueues
                    .push_back(if *ok == "ok" { Ok(p) } else { Err(p) });
            }
            ["env", "qpos", rest @ ..] => env.positions.push_back(parse_position(rest)),
            ["env", "qleave", x] => env.leaves.push_back(*x == "1"),
            ["env", "qtake", "caller", room, caller, sid, time] => env.takes.push_back((
                unesc(room),
                unesc(caller),
                unesc(sid),
                time.parse().map_err(|_| bad(n, "queue time".into()))?,
            )),
            ["env", "qtake", "waiting", sid] => {
                env.takes
                    .push_back((String::new(), String::new(), unesc(sid), 0))
            }
            ["env", "join", "-", why] => env.joins.push_back(Err(unesc(why))),
            ["env", "join", started, sid] => env.joins.push_back(Ok(env::Joined {
                started: *started == "1",
                conference_sid: unesc(sid),
            })),
            ["env", "recstart", sid, url] => env.recordings.push_back(match *sid {
                "-" => Err(unesc(url)),
                sid => Ok((unesc(sid), unesc(url))),
            }),
            ["env", "recstop", "-", rest @ ..] => {
                env.stops.push_back(rest.first().map(|e| Err(unesc(e))))
            }
            ["env", "recstop", sid, status, secs, url] => {
                let status = match *status {
                    "completed" => tandem_webhook::RecordingStatus::Completed,
                    "absent" => tandem_webhook::RecordingStatus::Absent,
                    x => return Err(bad(n, format!("recording status {x:?}"))),
                };
                let secs = secs
                    .parse()
                    .map_err(|_| bad(n, "recording seconds".into()))?;
                env.stops.push_back(Some(Ok(RecordingInfo::stand_in(
                    &unesc(sid),
                    &unesc(url),
                    status,
                    secs,
                    "",
                ))));
            }
            [at, rest @ ..] => {
                let at: u64 = at.parse().map_err(|_| bad(n, format!("time {at:?}")))?;
                let caller_call_id = invite
                    .as_ref()
                    .and_then(|r: &Request| r.headers.call_id())
                    .unwrap_or("");
                let input = parse_input(rest, caller_call_id).map_err(|e| bad(n, e))?;
                inputs.push((Duration::from_micros(at), input));
            }
            [] => {}
        }
    }
    let missing = |what: &str| ReplayError::Line {
        line: 0,
        why: format!("no {what} record"),
    };
    let mut refused = VecDeque::new();
    let call = Call::new(
        t0,
        cfg,
        Box::new(env),
        IdGen::seeded(seed),
        stx.ok_or_else(|| missing("stx"))?,
        invite.ok_or_else(|| missing("invite"))?,
        source.ok_or_else(|| missing("source"))?,
        start.ok_or_else(|| missing("start"))?,
        &mut refused,
    );
    let mut out: Vec<(Duration, String)> = refused
        .into_iter()
        .map(|o| (Duration::ZERO, describe(&o)))
        .collect();
    let Some(mut call) = call else {
        return Ok(out);
    };
    call.begin(t0);
    let mut drain = |call: &mut Call, at: Duration| {
        while let Some(o) = call.poll_output() {
            out.push((at, describe(&o)));
        }
    };
    drain(&mut call, Duration::ZERO);
    for (at, input) in inputs {
        let now = t0 + at;
        match input {
            Input::Msg(m) => call.handle_msg(now, m),
            Input::Media(ev) => call.handle_media(now, ev),
            Input::Timer => call.handle_timeout(now),
        }
        drain(&mut call, at);
    }
    Ok(out)
}

/// A document read locally, started as the shell does.
pub(crate) fn document_start(body: &str, url: Option<Url>) -> Start {
    let interp = match tandem_twiml::parse(body) {
        Ok(doc) => Interpreter::new(doc, url.clone()),
        Err(_) => {
            let u = url
                .clone()
                .unwrap_or_else(|| Url::parse("file:///invalid").expect("static URL"));
            let mut interp = Interpreter::fetching(u, tandem_twiml::Method::Post);
            // Let the interpreter report the invalid document its own way.
            let _ = interp.poll_command();
            let _ = interp.handle(Event::Fetched {
                body: body.to_owned(),
                final_url: url.clone(),
            });
            interp
        }
    };
    Start {
        interp,
        document_url: url,
        fallback: None,
    }
}

/// One output in a line: what a reader of a field report looks for.
pub(crate) fn describe(o: &Output) -> String {
    let first_line = |m: SipMessage| {
        let b = tandem_sip::message::to_bytes(&m);
        let s = String::from_utf8_lossy(&b);
        s.lines().next().unwrap_or("").to_owned()
    };
    match o {
        Output::Respond { response, .. } => {
            let cid = response.headers.call_id().unwrap_or("").to_owned();
            format!(
                "respond {} {cid}",
                first_line(SipMessage::Response(response.clone()))
            )
        }
        Output::Request { request, peer } => format!(
            "request {} {} to {}",
            request.method,
            request.headers.call_id().unwrap_or(""),
            peer.addr
        ),
        Output::Ack { request, peer } => format!(
            "ack {} to {}",
            request.headers.call_id().unwrap_or(""),
            peer.addr
        ),
        Output::Cancel { call_id, .. } => format!("cancel {call_id}"),
        Output::Route { call_id } => format!("route {call_id}"),
        Output::Unroute { call_id } => format!("unroute {call_id}"),
        Output::Fetch { screen, req, .. } => {
            let mut s = format!(
                "fetch {}{}",
                req.url,
                screen
                    .as_ref()
                    .map_or(String::new(), |c| format!(" screen {c}"))
            );
            for (k, v) in &req.params {
                let _ = write!(s, " {k}={v}");
            }
            s
        }
        Output::LoadAudio { who, seq, .. } => format!("load {} {seq}", who_text(*who)),
        Output::Resolve(names) => format!("resolve {names:?}"),
        Output::Status { url, event, .. } => format!(
            "status {url} {} {}{}",
            event.call.to,
            event.call.status.as_str(),
            event
                .duration_secs
                .map_or(String::new(), |d| format!(" duration={d}"))
        ),
        Output::Recording { url, event, .. } => {
            format!("recording {url} {}", event.status.as_str())
        }
        Output::Transcribe(t) => format!(
            "transcribe {} {}",
            t.recording_sid,
            t.callback.as_ref().map_or("-", Url::as_str)
        ),
        Output::Recognize(r) => format!(
            "recognize {} {} {}",
            r.seq,
            r.partial
                .map_or("final".to_owned(), |n| format!("partial {n}")),
            r.opts.language
        ),
        Output::History(r) => format!("history {} {}", r.sid, r.status),
        // The child's own call is not in this log.
        Output::Spawn(s) => format!("spawn {}", s.callee.sid),
        Output::Callback {
            sid, url, params, ..
        } => {
            let mut s = format!("callback {sid} {url}");
            for (k, v) in params.iter() {
                let _ = write!(s, " {k}={v}");
            }
            s
        }
    }
}
