//! The virtual-time call harness: one [`Call`] driven by a script — SIP
//! messages in, media events, digits, fetch answers — on a clock that only
//! moves when the script says so; every output and every media operation is
//! recorded with its virtual time, in microseconds. A test per behaviour,
//! each named after it; the regressions name the defect they pin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tandem_sip::builder::RequestBuilder;
use tandem_sip::transaction::{Transport, TxId};
use tandem_webhook::CallStatus;

use super::*;
use crate::config::EngineConfig;
use crate::media::LegError;
use crate::recording::{RecordingInfo, RecordingOptions};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
const CALLER: &str = "127.0.0.9:5060";

/// What the fake media plane was asked, with the virtual time.
#[derive(Debug, Default)]
struct EnvState {
    next: u32,
    open: Vec<LegId>,
    expected: Vec<LegId>,
    closed: Vec<(Instant, LegId)>,
    /// Legs handed to another call.
    detached: Vec<LegId>,
    listening: Vec<LegId>,
    bridges: Vec<(LegId, LegId)>,
    plays: Vec<(LegId, u64)>,
    /// Legs whose voice activity is listened to.
    voice: Vec<LegId>,
    /// Legs whose audio is kept for speech recognition, and how many
    /// milliseconds of it a snapshot returns.
    speech: Vec<LegId>,
    speech_ms: u32,
    /// Recordings: (started at, leg, options); stopped at.
    recordings: Vec<(Instant, LegId, RecordingOptions)>,
    stopped: Vec<Instant>,
    /// What the next recording stops as: seconds of audio (0 = absent).
    record_secs: u64,
    contacts: HashMap<String, Vec<(String, Peer)>>,
    now: Option<Instant>,
    /// Conference: what the next join answers (started, or why refused).
    join_answer: Option<Result<bool, String>>,
    /// Rooms joined: (at, leg, spec).
    joins: Vec<(Instant, LegId, crate::conference::JoinSpec)>,
    /// When the room's mix started playing, and when the caller left.
    room_audio: Vec<Instant>,
    left: Vec<Instant>,
    /// Playbacks stopped.
    stopped_plays: Vec<u64>,
    /// Answering-machine detections started: (at, leg, settings).
    amd: Vec<(Instant, LegId, tandem_media::AmdConfig)>,
    /// Queue: the next enqueue is full; what the next take finds
    /// (room, caller sid, seconds waited); the operations asked.
    queue_full: bool,
    take: Option<(String, String, u64)>,
    queue_ops: Vec<String>,
    /// SDP answers taken on legs (to Tandem's offers).
    answers: Vec<(LegId, Vec<u8>)>,
    /// Legs whose offers were asked to be SRTP.
    srtp: Vec<LegId>,
    /// The last SDP each leg's remote sent (offers answered, answers taken).
    remote: HashMap<LegId, Vec<u8>>,
}

#[derive(Debug, Clone, Default)]
struct FakeEnv(Arc<Mutex<EnvState>>);

impl FakeEnv {
    fn st(&self) -> std::sync::MutexGuard<'_, EnvState> {
        self.0.lock().unwrap()
    }
}

/// An offer [`FakeEnv`] cannot answer (as one with no common codec).
const UNUSABLE_SDP: &[u8] = b"v=0 unusable";
const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

impl Env for FakeEnv {
    fn has_media(&self) -> bool {
        true
    }
    fn open_leg(&mut self, _: std::net::IpAddr) -> Result<LegId, LegError> {
        let mut s = self.st();
        s.next += 1;
        let id = LegId(s.next);
        s.open.push(id);
        Ok(id)
    }
    fn answer(&mut self, leg: LegId, offer: &[u8]) -> Result<Vec<u8>, LegError> {
        if offer == UNUSABLE_SDP {
            return Err(LegError::Sdp(tandem_rtp::sdp::SdpError::NoCommonCodec));
        }
        self.st().remote.insert(leg, offer.to_vec());
        Ok(SDP.to_vec())
    }
    fn same_remote_sdp(&mut self, leg: LegId, sdp: &[u8]) -> bool {
        self.st().remote.get(&leg).is_some_and(|r| r == sdp)
    }
    fn offer(&mut self, _: LegId, _: Option<&[u8]>) -> Result<Vec<u8>, LegError> {
        Ok(SDP.to_vec())
    }
    fn take_answer(&mut self, leg: LegId, answer: &[u8]) -> Result<(), LegError> {
        self.st().answers.push((leg, answer.to_vec()));
        self.st().remote.insert(leg, answer.to_vec());
        Ok(())
    }
    fn offer_srtp(&mut self, leg: LegId) {
        self.st().srtp.push(leg);
    }
    fn ringback(&mut self, _: LegId, _: Option<tandem_media::tones::RingTone>) {}
    fn relay(&mut self, _: LegId, _: Option<LegId>) {}
    fn bridge(&mut self, a: LegId, b: LegId) {
        self.st().bridges.push((a, b));
    }
    fn play(&mut self, leg: LegId, _: Audio) -> Option<u64> {
        let mut s = self.st();
        let id = 1000 + s.plays.len() as u64;
        s.plays.push((leg, id));
        Some(id)
    }
    fn stop_play(&mut self, id: u64) {
        self.st().stopped_plays.push(id);
    }
    fn send_digits(&mut self, _: LegId, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn expect_media(&mut self, leg: LegId, on: bool) {
        let mut s = self.st();
        s.expected.retain(|l| *l != leg);
        if on {
            s.expected.push(leg);
        }
    }
    fn listen_dtmf(&mut self, leg: LegId) {
        self.st().listening.push(leg);
    }
    fn listen_voice(&mut self, leg: LegId, on: bool) {
        let mut s = self.st();
        s.voice.retain(|l| *l != leg);
        if on {
            s.voice.push(leg);
        }
    }
    fn listen_speech(&mut self, leg: LegId, on: bool) {
        let mut s = self.st();
        s.speech.retain(|l| *l != leg);
        if on {
            s.speech.push(leg);
        }
    }
    fn speech_audio(&mut self, leg: LegId) -> Vec<i16> {
        let s = self.st();
        if s.speech.contains(&leg) {
            vec![1; 8 * s.speech_ms as usize]
        } else {
            Vec::new()
        }
    }
    fn start_recording(
        &mut self,
        call_sid: &str,
        opts: RecordingOptions,
        leg: LegId,
    ) -> Result<env::RecordingStarted, String> {
        use crate::recording::RecordingSource as S;
        if !matches!(opts.source, S::RecordVerb | S::OutboundApi) {
            return Err("no <Dial> recordings in the harness".to_owned());
        }
        let mut s = self.st();
        let now = s.now.expect("clock set");
        s.recordings.push((now, leg, opts));
        let n = s.recordings.len();
        let mut info = RecordingInfo::stand_in(
            &format!("RE{n:032}"),
            &format!("http://127.0.0.1:8080/rec/RE{n:032}"),
            tandem_webhook::RecordingStatus::InProgress,
            0,
            call_sid,
        );
        info.source = s.recordings[n - 1].2.source;
        let mut event = info.event();
        event.duration_secs = None;
        Ok(env::RecordingStarted { event })
    }
    fn record_child(&mut self, _: LegId) {}
    fn stop_recording(&mut self) -> Option<Result<RecordingInfo, String>> {
        let mut s = self.st();
        let now = s.now.expect("clock set");
        let n = s.recordings.len();
        if n == s.stopped.len() {
            return None;
        }
        s.stopped.push(now);
        let secs = s.record_secs;
        let status = if secs == 0 {
            tandem_webhook::RecordingStatus::Absent
        } else {
            tandem_webhook::RecordingStatus::Completed
        };
        let mut info = RecordingInfo::stand_in(
            &format!("RE{n:032}"),
            &format!("http://127.0.0.1:8080/rec/RE{n:032}"),
            status,
            secs,
            "",
        );
        info.source = s.recordings[n - 1].2.source;
        Some(Ok(info))
    }
    fn detach_leg(&mut self, leg: LegId) -> env::DetachedLeg {
        let mut s = self.st();
        s.open.retain(|l| *l != leg);
        s.expected.retain(|l| *l != leg);
        s.detached.push(leg);
        env::DetachedLeg::bare(leg)
    }
    fn close_leg(&mut self, leg: LegId) {
        let mut s = self.st();
        let now = s.now.expect("clock set");
        s.open.retain(|l| *l != leg);
        s.expected.retain(|l| *l != leg);
        s.closed.push((now, leg));
    }
    fn contacts(&self, identity: &str) -> Vec<(String, Peer)> {
        self.st()
            .contacts
            .get(identity)
            .cloned()
            .unwrap_or_default()
    }
    fn dial_ended(&mut self, _: tandem_types::DialCallStatus) {}
    fn join_conference(
        &mut self,
        leg: LegId,
        spec: crate::conference::JoinSpec,
    ) -> Result<env::Joined, String> {
        let mut s = self.st();
        let now = s.now.expect("clock set");
        let started = s.join_answer.clone().unwrap_or(Ok(true))?;
        s.joins.push((now, leg, spec));
        Ok(env::Joined {
            started,
            conference_sid: format!("CF{:032}", s.joins.len()),
        })
    }
    fn conference_audio(&mut self) {
        let mut s = self.st();
        let now = s.now.expect("clock set");
        s.room_audio.push(now);
    }
    fn record_conference(&mut self) {}
    fn enqueue(
        &mut self,
        name: &str,
        call_sid: &str,
    ) -> Result<crate::queue::Position, crate::queue::Position> {
        let mut s = self.st();
        s.queue_ops.push(format!("enqueue {name} {call_sid}"));
        let p = fake_position(1);
        if s.queue_full { Err(p) } else { Ok(p) }
    }
    fn queue_position(&mut self, name: &str, _: &str) -> Option<crate::queue::Position> {
        let mut s = self.st();
        s.queue_ops.push(format!("position {name}"));
        Some(fake_position(2))
    }
    fn queue_leave(&mut self, name: &str, call_sid: &str) -> bool {
        self.st().queue_ops.push(format!("leave {name} {call_sid}"));
        true
    }
    fn queue_take(
        &mut self,
        name: &str,
        agent_sid: &str,
        _: Option<(String, tandem_twiml::Method)>,
    ) -> crate::queue::Taken {
        let mut s = self.st();
        s.queue_ops.push(format!("take {name} {agent_sid}"));
        match s.take.take() {
            Some((room, caller_sid, queue_time)) => {
                crate::queue::Taken::Caller(Box::new(crate::queue::Pairing {
                    room,
                    caller_sid,
                    caller: super::mailbox().0,
                    queue_sid: fake_position(1).queue_sid,
                    queue_time,
                }))
            }
            None => crate::queue::Taken::Waiting {
                queue_sid: fake_position(1).queue_sid,
            },
        }
    }
    fn queue_cancel(&mut self, name: &str, agent_sid: &str) {
        self.st()
            .queue_ops
            .push(format!("cancel {name} {agent_sid}"));
    }
    fn listen_amd(&mut self, leg: LegId, cfg: tandem_media::AmdConfig) {
        let mut s = self.st();
        let now = s.now.expect("clock set");
        s.amd.push((now, leg, cfg));
    }
    fn leave_conference(&mut self) {
        let mut s = self.st();
        let now = s.now.expect("clock set");
        if s.joins.len() > s.left.len() {
            s.left.push(now);
        }
    }
}

fn fake_position(position: u32) -> crate::queue::Position {
    crate::queue::Position {
        queue_sid: format!("QU{:032}", 7),
        position,
        size: 2,
        max: 100,
        avg_secs: 12,
    }
}

/// A status callback as the harness saw it queued.
#[derive(Debug, Clone)]
struct Status {
    at: Duration,
    to: String,
    status: CallStatus,
    duration: Option<u64>,
    params: Vec<(String, String)>,
}

/// One call on a virtual clock.
struct Harness {
    call: Call,
    env: FakeEnv,
    t0: Instant,
    now: Instant,
    log: Vec<(Duration, Output)>,
    tx: u64,
    /// The call's event log, when the test asked for one.
    events: Option<super::replay::CallLog>,
}

fn config() -> Arc<EngineConfig> {
    Arc::new(EngineConfig {
        account_sid: "AC00000000000000000000000000000000".into(),
        auth_token: "token".into(),
        sip_host: "127.0.0.1:5080".into(),
        tls_host: None,
        dns_servers: Vec::new(),
        digest_algorithms: Vec::new(),
        public_url: "http://127.0.0.1:8080".into(),
        trunks: Vec::new(),
        numbers: Vec::new(),
        clients: Vec::new(),
        limits: Default::default(),
        recording_dir: std::env::temp_dir(),
        transcribe_command: None,
        speech_command: None,
        call_log_dir: None,
        database: None,
        retention: None,
        webhook_timeout: Duration::from_secs(5),
        media_auth: false,
        media: None,
        session_timers: Some(Default::default()),
    })
}

fn peer(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
    }
}

fn caller_invite(extra: &[(&str, &str)]) -> Request {
    let mut b = RequestBuilder::new(
        Method::Invite,
        rsip::Uri::try_from("sip:+15550001000@127.0.0.1:5080").unwrap(),
    )
    .via("UDP", CALLER, "z9hG4bKcaller1")
    .max_forwards(70)
    .from("\"Alice Smith\" <sip:+15551112222@127.0.0.9>;tag=caller")
    .to("<sip:+15550001000@127.0.0.1:5080>")
    .call_id("caller-call-id")
    .cseq(1)
    .contact(format!("<sip:alice@{CALLER}>"));
    for (k, v) in extra {
        b = b.header(Header::Other((*k).to_owned(), (*v).to_owned()));
    }
    b.body("application/sdp", SDP.to_vec()).build()
}

impl Harness {
    fn start(twiml: &str) -> Self {
        Self::start_with(twiml, caller_invite(&[]), FakeEnv::default())
    }

    fn start_with(twiml: &str, invite: Request, env: FakeEnv) -> Self {
        Self::start_full(twiml, invite, env, false)
    }

    fn start_full(twiml: &str, invite: Request, env: FakeEnv, logged: bool) -> Self {
        Self::start_cfg(twiml, invite, env, logged, config())
    }

    fn start_cfg(
        twiml: &str,
        invite: Request,
        env: FakeEnv,
        logged: bool,
        cfg: Arc<EngineConfig>,
    ) -> Self {
        Self::start_from(twiml, invite, env, logged, cfg, peer(CALLER))
    }

    /// As [`Self::start_cfg`], the caller's INVITE from `source`.
    fn start_from(
        twiml: &str,
        invite: Request,
        env: FakeEnv,
        logged: bool,
        cfg: Arc<EngineConfig>,
        source: Peer,
    ) -> Self {
        let t0 = Instant::now();
        env.st().now = Some(t0);
        let doc = tandem_twiml::parse(twiml).expect("test document parses");
        let url = Url::parse("http://app.test/voice").unwrap();
        let start = Start {
            interp: Interpreter::new(doc, Some(url.clone())),
            document_url: Some(url),
            fallback: None,
        };
        let stx = ServerTx {
            shard: 0,
            tx: TxId::from_raw(1),
        };
        let mut boxed: Box<dyn Env> = Box::new(env.clone());
        let mut events = None;
        if logged {
            let l = super::replay::CallLog::new(
                t0,
                7,
                &invite,
                source,
                stx,
                &super::replay::LoggedStart::Document {
                    url: Some(Url::parse("http://app.test/voice").unwrap()),
                    body: twiml.to_owned(),
                },
            );
            boxed = Box::new(super::replay::LoggingEnv {
                inner: boxed,
                log: l.clone(),
            });
            events = Some(l);
        }
        let mut refused = VecDeque::new();
        let call = Call::new(
            t0,
            cfg,
            boxed,
            IdGen::seeded(7),
            stx,
            invite,
            source,
            start,
            &mut refused,
        )
        .expect("call starts");
        let mut h = Self {
            call,
            env,
            t0,
            now: t0,
            log: Vec::new(),
            tx: 10,
            events,
        };
        h.call.begin(t0);
        h.drain();
        h
    }

    fn at(&self) -> Duration {
        self.now - self.t0
    }

    /// The call's event log replays to the same outputs at the same
    /// virtual times; returns how many outputs there were.
    fn assert_replays(&self) -> usize {
        let text = self.events.as_ref().expect("a logged call").text();
        let replayed =
            super::replay::replay(&text, self.call.cfg.clone()).expect("the log replays");
        let original: Vec<(Duration, String)> = self
            .log
            .iter()
            .map(|(at, o)| (*at, super::replay::describe(o)))
            .collect();
        assert_eq!(replayed, original);
        original.len()
    }

    fn drain(&mut self) {
        while let Some(o) = self.call.poll_output() {
            self.log.push((self.at(), o));
        }
    }

    /// Moves the clock by `d`, firing every timer on its way at its own instant.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.call.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.env.st().now = Some(self.now);
            if let Some(l) = &self.events {
                l.timer(self.now);
            }
            self.call.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
        self.env.st().now = Some(end);
    }

    fn msg(&mut self, m: CallMsg) {
        self.env.st().now = Some(self.now);
        if let Some(l) = &self.events {
            l.msg(self.now, &m);
        }
        self.call.handle_msg(self.now, m);
        self.drain();
    }

    fn media(&mut self, ev: MediaEvent) {
        self.env.st().now = Some(self.now);
        if let Some(l) = &self.events {
            l.media(self.now, &ev);
        }
        self.call.handle_media(self.now, ev);
        self.drain();
    }

    /// The INVITEs sent to callees, in order.
    fn invites(&self) -> Vec<Request> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Request { request, .. }
                    if request.method == Method::Invite
                        && request.headers.call_id() != Some("caller-call-id") =>
                {
                    Some(request.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Branch `i`'s callee answers `code` (with a To tag and a Contact).
    fn callee(&mut self, i: usize, code: u16, tag: &str) {
        let invite = self.invites()[i].clone();
        let mut r = response_to(&invite, code, None, Some(tag));
        if (101..300).contains(&code) {
            r.headers.push(Header::Contact(
                format!("<sip:callee{i}@127.0.0.{}:5060>", i + 20).into(),
            ));
        }
        if code == 200 || code == 183 {
            r.headers
                .push(Header::ContentType("application/sdp".into()));
            r.body = SDP.to_vec();
        }
        self.msg(CallMsg::Response {
            response: Box::new(r),
            source: None,
        });
    }

    fn request(&mut self, req: Request) {
        self.request_from(req, peer(CALLER));
    }

    fn request_from(&mut self, req: Request, source: Peer) {
        self.tx += 1;
        let stx = ServerTx {
            shard: 0,
            tx: TxId::from_raw(self.tx),
        };
        self.msg(CallMsg::Request {
            stx,
            request: Box::new(req),
            source,
        });
    }

    /// The caller hangs up (BYE in its dialog).
    fn caller_bye(&mut self) {
        let bye = RequestBuilder::new(
            Method::Bye,
            rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
        )
        .via("UDP", CALLER, "z9hG4bKcallerbye")
        .max_forwards(70)
        .from("<sip:+15551112222@127.0.0.9>;tag=caller")
        .to(format!(
            "<sip:+15550001000@127.0.0.1:5080>;tag={}",
            self.call.local_tag
        ))
        .call_id("caller-call-id")
        .cseq(2)
        .build();
        self.request(bye);
    }

    fn statuses(&self) -> Vec<Status> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Status { event, .. } => Some(Status {
                    at: *at,
                    to: event.call.to.clone(),
                    status: event.call.status,
                    duration: event.duration_secs,
                    params: event
                        .params(0)
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                }),
                _ => None,
            })
            .collect()
    }

    fn statuses_of(&self, to: &str) -> Vec<(Duration, CallStatus, Option<u64>)> {
        self.statuses()
            .into_iter()
            .filter(|s| s.to == to)
            .map(|s| (s.at, s.status, s.duration))
            .collect()
    }

    /// The Dial action's parameters (the fetch with DialCallStatus).
    fn action(&self) -> Option<(Duration, HashMap<String, String>)> {
        self.log.iter().find_map(|(at, o)| match o {
            Output::Fetch { req, params, .. }
                if req.params.iter().any(|(k, _)| k == "DialCallStatus") =>
            {
                let mut m: HashMap<String, String> = params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                for (k, v) in &req.params {
                    m.insert(k.clone(), v.clone());
                }
                Some((*at, m))
            }
            _ => None,
        })
    }

    fn byes_to_caller(&self) -> usize {
        self.log
            .iter()
            .filter(|(_, o)| matches!(o, Output::Request { request, .. }
                if request.method == Method::Bye && request.headers.call_id() == Some("caller-call-id")))
            .count()
    }

    fn sent(&self, method: Method, call_id: &str) -> Vec<Duration> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Request { request, .. } | Output::Ack { request, .. }
                    if request.method == method && request.headers.call_id() == Some(call_id) =>
                {
                    Some(*at)
                }
                _ => None,
            })
            .collect()
    }

    /// The requests Tandem sent by `method`, with where they went.
    fn sent_with_peer(&self, method: Method) -> Vec<(Request, Peer)> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Request { request, peer } if request.method == method => {
                    Some((request.clone(), *peer))
                }
                _ => None,
            })
            .collect()
    }

    fn cancels(&self) -> Vec<(Duration, String)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Cancel { call_id, .. } => Some((*at, call_id.clone())),
                _ => None,
            })
            .collect()
    }
}

impl Harness {
    /// The history records the call gave, in order: (at, sid, status, duration).
    fn history(&self) -> Vec<(Duration, String, CallStatus, Option<u64>)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::History(r) => Some((*at, r.sid.clone(), r.status, r.duration)),
                _ => None,
            })
            .collect()
    }
}

fn call_id(r: &Request) -> String {
    r.headers.call_id().unwrap().to_owned()
}

const EVENTS: &str = r#"statusCallbackEvent="initiated ringing answered completed""#;

/// The history (issue 11) sees the parent and each child as their states
/// change: the parent ringing, answered, completed with its talk time
/// (rounded to the nearest second, as `CallDuration`); the
/// winner initiated, ringing, answered, completed; the loser cancelled.
#[test]
fn the_history_follows_the_parent_and_every_child() {
    let mut h = Harness::start(
        r#"<Response><Dial><Sip>sip:a@127.0.0.21:5060</Sip><Sip>sip:b@127.0.0.22:5060</Sip></Dial></Response>"#,
    );
    h.advance(100 * MS);
    h.callee(0, 180, "ta");
    h.advance(400 * MS);
    h.callee(1, 200, "tb");
    h.advance(20 * SEC);
    h.caller_bye();
    let rows = h.history();
    let parent = rows[0].1.clone();
    let of = |sid: &str| -> Vec<(Duration, CallStatus, Option<u64>)> {
        rows.iter()
            .filter(|r| r.1 == sid)
            .map(|r| (r.0, r.2, r.3))
            .collect()
    };
    assert_eq!(
        of(&parent),
        [
            (Duration::ZERO, CallStatus::Ringing, None),
            // A <Dial> without answerOnBridge answers the caller at once.
            (Duration::ZERO, CallStatus::InProgress, None),
            (20_500 * MS, CallStatus::Completed, Some(21)),
        ]
    );
    let children: Vec<String> = rows
        .iter()
        .filter(|r| r.1 != parent)
        .map(|r| r.1.clone())
        .fold(Vec::new(), |mut v, s| {
            if !v.contains(&s) {
                v.push(s);
            }
            v
        });
    assert_eq!(children.len(), 2);
    assert_eq!(
        of(&children[0]),
        [
            (Duration::ZERO, CallStatus::Initiated, None),
            (100 * MS, CallStatus::Ringing, None),
            (500 * MS, CallStatus::Canceled, None),
        ]
    );
    assert_eq!(
        of(&children[1]),
        [
            (Duration::ZERO, CallStatus::Initiated, None),
            (500 * MS, CallStatus::InProgress, None),
            (20_500 * MS, CallStatus::Completed, Some(20)),
        ]
    );
}

/// Regression (issue "Calls that last"): a simultaneous ring answered by one
/// callee was hung up by the cancelled branch's silent leg hitting the media
/// timeout. The loser's leg now closes when it is cancelled, media is
/// expected only on the caller's and the bridged legs, and the call talks on.
#[test]
fn a_cancelled_branch_never_ends_the_bridged_call() {
    let mut h = Harness::start(&format!(
        r#"<Response><Dial action="/action"><Sip {EVENTS} statusCallback="/s/a">sip:a@127.0.0.21:5060</Sip><Sip {EVENTS} statusCallback="/s/b">sip:b@127.0.0.22:5060</Sip></Dial></Response>"#
    ));
    assert_eq!(h.invites().len(), 2);
    let legs = h.env.st().open.clone();
    assert_eq!(legs.len(), 3, "caller's leg and one per branch");
    h.advance(100 * MS);
    h.callee(0, 180, "ta");
    h.callee(1, 180, "tb");
    h.advance(400 * MS);
    h.callee(1, 200, "tb");
    let a = call_id(&h.invites()[0]);
    assert_eq!(h.cancels(), [(500 * MS, a)]);
    // The loser's ports went back at once; media is expected where it flows.
    assert_eq!(h.env.st().closed, [(h.t0 + 500 * MS, legs[1])]);
    let mut expected = h.env.st().expected.clone();
    expected.sort_by_key(|l| l.0);
    assert_eq!(expected, [legs[0], legs[2]]);
    // A late timeout report from the cancelled leg ends nothing.
    h.advance(4 * SEC);
    h.media(MediaEvent::Timeout {
        leg: legs[1],
        after: 4 * SEC,
    });
    assert_eq!(h.byes_to_caller(), 0);
    h.advance(6 * SEC);
    h.caller_bye();
    let (at, p) = h.action().expect("action requested");
    assert_eq!(at, 10_500 * MS);
    assert_eq!(p["DialCallStatus"], "completed");
    assert_eq!(p["DialCallDuration"], "10");
    assert_eq!(
        h.statuses_of("a")
            .iter()
            .map(|s| (s.0, s.1))
            .collect::<Vec<_>>(),
        [
            (Duration::ZERO, CallStatus::Initiated),
            (100 * MS, CallStatus::Ringing),
            (500 * MS, CallStatus::Canceled)
        ]
    );
    assert_eq!(
        h.statuses_of("b"),
        [
            (Duration::ZERO, CallStatus::Initiated, None),
            (100 * MS, CallStatus::Ringing, None),
            (500 * MS, CallStatus::InProgress, None),
            (10_500 * MS, CallStatus::Completed, Some(10)),
        ]
    );
}

/// Regression: the busy branch reported at the end of the whole call, the
/// loser `no-answer`, the unregistered `<Client>` nothing, and the winner's
/// CallDuration short. Each branch now reports the moment it ends.
#[test]
fn every_branch_reports_its_own_end_when_it_happens() {
    let mut h = Harness::start(&format!(
        r#"<Response><Dial action="/action"><Sip {EVENTS} statusCallback="/s">sip:busy@127.0.0.21</Sip><Sip {EVENTS} statusCallback="/s">sip:ring@127.0.0.22</Sip><Sip {EVENTS} statusCallback="/s">sip:talk@127.0.0.23</Sip><Client {EVENTS} statusCallback="/s">nobody</Client></Dial></Response>"#
    ));
    assert_eq!(
        h.invites().len(),
        3,
        "no INVITE for the unregistered client"
    );
    assert_eq!(
        h.statuses_of("client:nobody"),
        [(Duration::ZERO, CallStatus::Failed, None)]
    );
    h.advance(100 * MS);
    h.callee(0, 486, "t0");
    assert_eq!(
        h.statuses_of("busy").last().map(|s| (s.0, s.1)),
        Some((100 * MS, CallStatus::Busy))
    );
    h.callee(1, 180, "t1");
    h.advance(900 * MS);
    h.callee(2, 200, "t2");
    assert_eq!(
        h.statuses_of("ring").last().map(|s| (s.0, s.1)),
        Some((SEC, CallStatus::Canceled))
    );
    h.advance(5 * SEC);
    h.caller_bye();
    assert_eq!(
        h.statuses_of("talk").last().copied(),
        Some((6 * SEC, CallStatus::Completed, Some(5)))
    );
    let (_, p) = h.action().unwrap();
    assert_eq!(p["DialCallDuration"], "5");
}

/// Regression: a second 2xx with another To tag (a forking proxy behind the
/// callee) replaced the bridged dialog and was never hung up.
#[test]
fn a_second_2xx_from_another_dialog_is_acked_then_byed_and_the_bridge_kept() {
    let mut h = Harness::start(r#"<Response><Dial><Sip>sip:x@127.0.0.21</Sip></Dial></Response>"#);
    h.advance(100 * MS);
    h.callee(0, 200, "first");
    h.advance(10 * MS);
    h.callee(0, 200, "second");
    let cid = call_id(&h.invites()[0]);
    assert_eq!(h.sent(Method::Ack, &cid), [100 * MS, 110 * MS]);
    assert_eq!(h.sent(Method::Bye, &cid), [110 * MS]);
    let bye = h
        .log
        .iter()
        .find_map(|(_, o)| match o {
            Output::Request { request, .. } if request.method == Method::Bye => {
                Some(request.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(bye.headers.to_tag(), Some("second"));
    // The caller's BYE hangs up the first dialog, the one bridged.
    h.advance(SEC);
    h.caller_bye();
    let last = h
        .log
        .iter()
        .rev()
        .find_map(|(_, o)| match o {
            Output::Request { request, .. } if request.method == Method::Bye => {
                Some(request.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(last.headers.to_tag(), Some("first"));
}

/// Regression: `DialCallDuration=0` was sent for a Dial nobody answered.
#[test]
fn dial_call_duration_is_absent_when_nobody_was_connected() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/a"><Sip>sip:x@127.0.0.21</Sip></Dial></Response>"#,
    );
    h.advance(100 * MS);
    h.callee(0, 486, "t");
    let (_, p) = h.action().unwrap();
    assert_eq!(p["DialCallStatus"], "busy");
    assert!(!p.contains_key("DialCallDuration"), "{p:?}");
}

/// Regression: `answered` went out at bridge time, so a screened callee that
/// declined never reported it.
#[test]
fn answered_is_reported_when_the_callee_answers_even_if_screening_declines() {
    let mut h = Harness::start(&format!(
        r#"<Response><Dial action="/a"><Sip {EVENTS} statusCallback="/s" url="/screen">sip:x@127.0.0.21</Sip></Dial></Response>"#
    ));
    h.advance(200 * MS);
    h.callee(0, 200, "t");
    let screen_fetch = h.log.iter().any(|(_, o)| {
        matches!(
            o,
            Output::Fetch {
                screen: Some(_),
                ..
            }
        )
    });
    assert!(screen_fetch, "the screening document is fetched");
    assert_eq!(
        h.statuses_of("x").last().map(|s| (s.0, s.1)),
        Some((200 * MS, CallStatus::InProgress))
    );
    let cid = call_id(&h.invites()[0]);
    h.advance(SEC);
    h.msg(CallMsg::ScreenFetched {
        call_id: cid.clone(),
        result: Box::new(Ok(("<Response><Hangup/></Response>".into(), None))),
    });
    assert_eq!(h.sent(Method::Bye, &cid), [1200 * MS]);
    assert_eq!(
        h.statuses_of("x").last().copied(),
        Some((1200 * MS, CallStatus::Completed, Some(1)))
    );
}

/// Regression: a screening `<Gather>`'s nested `<Say>` was never played to
/// the callee, and its keys were heard only as SIP INFO. Now the prompt plays
/// on the callee's leg and an RFC 4733 (or in-band) key decides.
#[test]
fn a_screened_callee_hears_the_gather_prompt_and_answers_by_rfc4733() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/a"><Sip url="/screen">sip:x@127.0.0.21</Sip></Dial></Response>"#,
    );
    h.advance(200 * MS);
    h.callee(0, 200, "t");
    let cid = call_id(&h.invites()[0]);
    let branch_leg = h.env.st().open[1];
    assert!(
        h.env.st().listening.contains(&branch_leg),
        "keys listened for on the callee's leg"
    );
    h.msg(CallMsg::ScreenFetched {
        call_id: cid,
        result: Box::new(Ok((
            r#"<Response><Gather numDigits="1" action="/accept"><Say>Press 1</Say></Gather><Hangup/></Response>"#.into(),
            Some(Url::parse("http://app.test/screen").unwrap()),
        ))),
    });
    let (who, seq) = h
        .log
        .iter()
        .find_map(|(_, o)| match o {
            Output::LoadAudio { who, seq, .. } => Some((*who, *seq)),
            _ => None,
        })
        .expect("the Say is loaded for the callee");
    assert_eq!(who, Who::Branch(0));
    let digits = crate::media_ops::DigitsSource::new("1").unwrap();
    h.msg(CallMsg::AudioReady {
        who,
        seq,
        result: Ok(Box::new(Audio::Digits(digits))),
    });
    assert_eq!(h.env.st().plays.first().map(|p| p.0), Some(branch_leg));
    h.advance(SEC);
    h.msg(CallMsg::Digit(Box::new(DtmfDigit {
        digit: '1',
        kind: crate::media_ops::DtmfKind::Rfc4733,
        leg: branch_leg,
        at: tokio::time::Instant::from_std(h.now),
    })));
    let accept = h.log.iter().find_map(|(_, o)| match o {
        Output::Fetch {
            screen: Some(_),
            req,
            ..
        } if req.url.path() == "/accept" => Some(req.params.clone()),
        _ => None,
    });
    assert_eq!(accept, Some(vec![("Digits".to_owned(), "1".to_owned())]));
}

/// Regression: ForwardedFrom and CallerName were never sent.
#[test]
fn forwarded_from_and_caller_name_come_from_the_invite() {
    let invite = caller_invite(&[(
        "Diversion",
        "<sip:+15559990000@carrier.test>;reason=unconditional",
    )]);
    let h = Harness::start_with(
        r#"<Response><Dial><Sip statusCallbackEvent="initiated" statusCallback="/s">sip:x@127.0.0.21</Sip></Dial></Response>"#,
        invite,
        FakeEnv::default(),
    );
    let s = &h.statuses()[0];
    let get = |k: &str| {
        s.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("ForwardedFrom"), Some("+15559990000"));
    assert_eq!(get("CallerName"), Some("Alice Smith"));
}

/// A 2xx crossing the caller's CANCEL after the Dial ended is ACKed then
/// BYEd by the same arbiter (no second implementation, no fixed delay).
#[test]
fn a_2xx_crossing_the_callers_cancel_is_acked_then_byed() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/a"><Sip>sip:x@127.0.0.21</Sip></Dial></Response>"#,
    );
    h.advance(100 * MS);
    h.callee(0, 180, "t");
    h.msg(CallMsg::Cancelled);
    let (_, p) = h.action().unwrap();
    assert_eq!(p["DialCallStatus"], "canceled");
    assert!(
        !h.call.is_done(),
        "the branch still owes its final response"
    );
    h.advance(5 * MS);
    h.callee(0, 200, "t");
    let cid = call_id(&h.invites()[0]);
    assert_eq!(h.sent(Method::Ack, &cid), [105 * MS]);
    assert_eq!(h.sent(Method::Bye, &cid), [105 * MS]);
    assert!(h.call.is_done());
    let unrouted = h
        .log
        .iter()
        .any(|(_, o)| matches!(o, Output::Unroute { call_id } if *call_id == cid));
    assert!(unrouted);
}

/// The Dial `timeout` ends ringing branches `no-answer` at the deadline to
/// the microsecond, and their legs close then.
#[test]
fn the_dial_timeout_ends_ringing_branches_no_answer_to_the_microsecond() {
    let mut h = Harness::start(&format!(
        r#"<Response><Dial timeout="5" action="/a"><Sip {EVENTS} statusCallback="/s">sip:x@127.0.0.21</Sip></Dial></Response>"#
    ));
    h.callee(0, 180, "t");
    h.advance(5 * SEC - Duration::from_micros(1));
    assert!(h.cancels().is_empty());
    h.advance(Duration::from_micros(1));
    assert_eq!(h.cancels().len(), 1);
    assert_eq!(h.cancels()[0].0, 5 * SEC);
    assert_eq!(
        h.statuses_of("x").last().map(|s| (s.0, s.1)),
        Some((5 * SEC, CallStatus::NoAnswer))
    );
    let (_, p) = h.action().unwrap();
    assert_eq!(p["DialCallStatus"], "no-answer");
}

/// The caller's leg timing out ends the call; a bridged callee's leg timing
/// out ends the bridge (the callee gets BYE, the document goes on).
#[test]
fn media_timeouts_end_what_their_leg_carries() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/a"><Sip>sip:x@127.0.0.21</Sip></Dial></Response>"#,
    );
    h.callee(0, 200, "t");
    let legs = h.env.st().open.clone();
    h.advance(30 * SEC);
    h.media(MediaEvent::Timeout {
        leg: legs[1],
        after: 30 * SEC,
    });
    let cid = call_id(&h.invites()[0]);
    assert_eq!(h.sent(Method::Bye, &cid), [30 * SEC]);
    assert_eq!(h.byes_to_caller(), 0);
    let (_, p) = h.action().unwrap();
    assert_eq!(p["DialCallStatus"], "completed");
    h.media(MediaEvent::Timeout {
        leg: legs[0],
        after: 30 * SEC,
    });
    assert_eq!(h.byes_to_caller(), 1);
}

/// Regression (found by the SIPp `screening` case): a screened callee that
/// accepted got a second ACK for its one 2xx when it was bridged.
#[test]
fn a_screened_callee_that_accepts_is_acked_once_and_bridged() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/a"><Sip url="/screen">sip:x@127.0.0.21</Sip></Dial></Response>"#,
    );
    h.advance(200 * MS);
    h.callee(0, 200, "t");
    let cid = call_id(&h.invites()[0]);
    h.advance(300 * MS);
    h.msg(CallMsg::ScreenFetched {
        call_id: cid.clone(),
        result: Box::new(Ok(("<Response/>".into(), None))),
    });
    assert_eq!(h.sent(Method::Ack, &cid), [200 * MS]);
    assert_eq!(
        h.env.st().bridges.len(),
        1,
        "bridged once the screening accepted"
    );
}

/// A call's event log replays to the same outputs at the same virtual
/// times: the forked call that talks, with its loser's late timeout report,
/// a screening with a key by RFC 4733, and the caller's BYE.
#[test]
fn a_call_log_replays_to_the_same_outputs_at_the_same_times() {
    let twiml = format!(
        r#"<Response><Dial action="/action"><Sip {EVENTS} statusCallback="/s/a">sip:a@127.0.0.21:5060</Sip><Sip {EVENTS} statusCallback="/s/b" url="/screen">sip:b@127.0.0.22:5060</Sip></Dial></Response>"#
    );
    let mut h = Harness::start_full(&twiml, caller_invite(&[]), FakeEnv::default(), true);
    h.advance(100 * MS);
    h.callee(0, 180, "ta");
    h.advance(400 * MS);
    h.callee(1, 200, "tb");
    let cid = call_id(&h.invites()[1]);
    h.msg(CallMsg::ScreenFetched {
        call_id: cid,
        result: Box::new(Ok((
            r#"<Response><Gather numDigits="1"><Say>Press 1</Say></Gather><Hangup/></Response>"#
                .into(),
            None,
        ))),
    });
    let seq = h
        .log
        .iter()
        .find_map(|(_, o)| match o {
            Output::LoadAudio { seq, .. } => Some(*seq),
            _ => None,
        })
        .unwrap();
    h.msg(CallMsg::AudioReady {
        who: Who::Branch(1),
        seq,
        result: Err("speech unavailable".into()),
    });
    let b_leg = h.env.st().open[2];
    h.advance(700 * MS);
    h.msg(CallMsg::Digit(Box::new(DtmfDigit {
        digit: '1',
        kind: crate::media_ops::DtmfKind::Rfc4733,
        leg: b_leg,
        at: tokio::time::Instant::from_std(h.now),
    })));
    h.advance(8 * SEC);
    h.caller_bye();
    let outputs = h.assert_replays();
    assert!(outputs > 10, "{outputs}");
}

/// A call log keeps no digest response (it is made to be shared with a
/// bug report; with its nonce, a response lets a reader guess the password
/// offline): the caller's `Authorization` and a callee's in-dialog
/// `Proxy-Authorization` carry `response="redacted"`, the rest of the
/// header as it was, and the log still replays to the same outputs.
#[test]
fn a_call_log_keeps_no_digest_response() {
    let secret = "0123456789abcdef0123456789abcdef";
    let credentials = format!(
        r#"Digest username="carol", realm="tandem", nonce="n0nce", uri="sip:+15550001000@127.0.0.1", response="{secret}", algorithm=MD5"#
    );
    let invite = caller_invite(&[("Authorization", &credentials)]);
    let mut h = Harness::start_full(BRIDGE_ONE, invite, FakeEnv::default(), true);
    h.bridged();
    let info = h
        .callee_request(Method::Info, 60)
        .header(Header::ProxyAuthorization(
            format!(r#"Digest username="a",response="{secret}",nonce="x""#).into(),
        ))
        .build();
    h.request_from(info, peer("127.0.0.21:5060"));
    h.caller_bye();
    let text = h.events.as_ref().expect("a logged call").text();
    assert!(!text.contains(secret), "{text}");
    assert_eq!(text.matches(r#"response="redacted""#).count(), 2, "{text}");
    assert!(text.contains(r#"username="carol""#));
    assert!(text.contains(r#"nonce="n0nce""#) && text.contains("algorithm=MD5"));
    h.assert_replays();
    // A log from before ACKs carried their Call-ID (`ack`) reads the same:
    // its ACKs are the caller's.
    assert!(text.contains(" ackon caller-call-id\n"), "{text}");
    let old = text.replace(" ackon caller-call-id\n", " ack\n");
    let cfg = h.call.cfg.clone();
    assert_eq!(
        super::replay::replay(&old, cfg.clone()).expect("the old log replays"),
        super::replay::replay(&text, cfg).expect("the log replays")
    );
}

/// A log from another build or a truncated file says what is wrong.
#[test]
fn a_broken_call_log_is_refused_with_its_line() {
    assert!(matches!(
        super::replay::replay("not a log\n", config()),
        Err(super::replay::ReplayError::NotALog(_))
    ));
    let e = super::replay::replay("tandem-call-log 1\nseed 7\n12 bogus\n", config()).unwrap_err();
    assert_eq!(e.to_string(), "line 3: unknown record Some(\"bogus\")");
}

/// Regression (issue "Hostile networks and overload"): in-dialog requests
/// were matched on the Call-ID alone, so anyone who knew it could hang up a
/// call. A BYE naming other tags gets 481 and the call goes on; the callee's
/// leg is held to its own dialog the same way.
#[test]
fn a_bye_with_the_call_id_but_other_tags_gets_481() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
    );
    h.bridged();
    let forged = |from: &str, to: String, call_id: &str| {
        RequestBuilder::new(
            Method::Bye,
            rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
        )
        .via("UDP", CALLER, "z9hG4bKforged")
        .max_forwards(70)
        .from(from)
        .to(to)
        .call_id(call_id)
        .cseq(7)
        .build()
    };
    let answered = |h: &Harness| {
        h.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Respond { response, .. }
                    if response.headers.cseq().is_some_and(|(n, _)| n == 7) =>
                {
                    Some(response.status_code.code())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // The caller's dialog, with a guessed To tag.
    h.request(forged(
        "<sip:+15551112222@127.0.0.9>;tag=caller",
        "<sip:+15550001000@127.0.0.1:5080>;tag=guess".into(),
        "caller-call-id",
    ));
    // The callee's dialog, with a guessed From tag, from the callee's address.
    let callee_cid = call_id(&h.invites()[0]);
    h.request_from(
        forged(
            "<sip:a@127.0.0.21>;tag=guess",
            format!("<sip:+15551112222@127.0.0.1>;tag={}", h.call.local_tag),
            &callee_cid,
        ),
        peer("127.0.0.21:5060"),
    );
    assert_eq!(answered(&h), [481, 481]);
    assert_eq!(h.byes_to_caller(), 0, "the call goes on");
    assert!(h.action().is_none(), "the Dial goes on");
    h.caller_bye();
    assert!(h.action().is_some(), "the real BYE ends it");
}

/// Regression (issue "Hostile networks and overload"): over UDP a source
/// address is forged at will and tags cross the network in clear. A call a
/// trunk sent takes in-dialog requests only from that trunk's addresses; a
/// branch only from the address its INVITE went to (or a trunk's).
#[test]
fn in_dialog_requests_over_udp_come_from_the_dialogs_peer() {
    let cfg = carrier_config("sip:127.0.0.9:5060", ("127.0.0.8", 31));
    let mut h = Harness::start_cfg(
        r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
        caller_invite(&[]),
        FakeEnv::default(),
        false,
        Arc::new(cfg),
    );
    h.bridged();
    let callee_cid = call_id(&h.invites()[0]);
    let callee_bye = |cseq: u32, local_tag: &str| {
        RequestBuilder::new(
            Method::Bye,
            rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
        )
        .via("UDP", "127.0.0.21:5060", "z9hG4bKcalleebye")
        .max_forwards(70)
        .from("<sip:a@127.0.0.21>;tag=calleetag")
        .to(format!("<sip:+15551112222@127.0.0.1>;tag={local_tag}"))
        .call_id(&callee_cid)
        .cseq(cseq)
        .build()
    };
    // Right tags, an outsider's address: refused on both legs.
    let tag = h.call.local_tag.clone();
    let branch_tag = h.invites()[0].headers.from_tag().unwrap().to_owned();
    h.request_from(callee_bye(11, &branch_tag), peer("198.51.100.66:5060"));
    assert_eq!(h.answered_cseq(11), [403]);
    let caller_bye = |cseq: u32, tag: &str| {
        RequestBuilder::new(
            Method::Bye,
            rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
        )
        .via("UDP", "198.51.100.66:5060", "z9hG4bKspoof")
        .max_forwards(70)
        .from("<sip:+15551112222@127.0.0.9>;tag=caller")
        .to(format!("<sip:+15550001000@127.0.0.1:5080>;tag={tag}"))
        .call_id("caller-call-id")
        .cseq(cseq)
        .build()
    };
    h.request_from(caller_bye(12, &tag), peer("198.51.100.66:5060"));
    assert_eq!(h.answered_cseq(12), [403]);
    assert_eq!(h.byes_to_caller(), 0, "the call goes on");
    assert!(h.action().is_none(), "the Dial goes on");
    // Over TCP the tags alone decide (a TCP peer's address is not forged blind).
    let tcp = Peer {
        transport: Transport::Tcp,
        addr: "198.51.100.66:5060".parse().unwrap(),
    };
    h.request_from(caller_bye(13, "guess"), tcp);
    assert_eq!(h.answered_cseq(13), [481]);
    // Another address of the same trunk may send in the caller's dialog.
    let info = RequestBuilder::new(
        Method::Info,
        rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
    )
    .via("UDP", "127.0.0.8:5060", "z9hG4bKinfo")
    .max_forwards(70)
    .from("<sip:+15551112222@127.0.0.9>;tag=caller")
    .to(format!("<sip:+15550001000@127.0.0.1:5080>;tag={tag}"))
    .call_id("caller-call-id")
    .cseq(14)
    .build();
    h.request_from(info, peer("127.0.0.8:5060"));
    assert_eq!(h.answered_cseq(14), [200]);
    assert!(h.action().is_none());
    // The callee may send from the host its 2xx named (127.0.0.20).
    h.request_from(callee_bye(15, &branch_tag), peer("127.0.0.20:5060"));
    assert_eq!(h.answered_cseq(15), [200]);
    assert!(h.action().is_some(), "the callee's BYE ends it");
}

// ----- <Record> -----

impl Harness {
    /// The `<Record action>` fetches: (time, parameters).
    fn record_actions(&self) -> Vec<(Duration, Vec<(String, String)>)> {
        self.fetches_for(tandem_twiml::FetchReason::RecordAction)
    }

    /// The fetches made for `reason`: (time, the verb's parameters).
    fn fetches_for(
        &self,
        reason: tandem_twiml::FetchReason,
    ) -> Vec<(Duration, Vec<(String, String)>)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Fetch { req, .. } if req.reason == reason => {
                    Some((*at, req.params.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn recording_callbacks(&self) -> Vec<(Duration, tandem_webhook::RecordingStatus)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Recording { event, .. } => Some((*at, event.status)),
                _ => None,
            })
            .collect()
    }

    fn caller_leg(&self) -> LegId {
        self.env.st().open[0]
    }

    fn voice(&mut self, speaking: bool) {
        let leg = self.caller_leg();
        self.msg(CallMsg::Voice(VoiceChange {
            leg,
            speaking,
            at: tokio::time::Instant::from_std(self.now),
        }));
    }

    fn key(&mut self, digit: char) {
        let leg = self.caller_leg();
        self.msg(CallMsg::Digit(Box::new(DtmfDigit {
            digit,
            kind: crate::media_ops::DtmfKind::Rfc4733,
            leg,
            at: tokio::time::Instant::from_std(self.now),
        })));
    }

    /// The caller speaks for `d`: speech reported now and every KEEPALIVE,
    /// as the voice tap does.
    fn speak(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.voice(true);
            let step = crate::media_ops::KEEPALIVE.min(end - self.now);
            self.advance(step);
        }
    }

    /// The beep (the first playback on the caller's leg) ends now.
    fn beep_done(&mut self) {
        let (leg, id) = self.env.st().plays[0];
        self.media(MediaEvent::InjectionDone { leg, id });
    }
}

fn param<'a>(params: &'a [(String, String)], k: &str) -> &'a str {
    params
        .iter()
        .find(|(n, _)| n == k)
        .map_or("<missing>", |(_, v)| v.as_str())
}

#[test]
fn record_beeps_then_records_until_silence_and_posts_the_recording() {
    let mut h = Harness::start(
        r#"<Response><Record action="/vm" timeout="3" recordingStatusCallback="/rs" recordingStatusCallbackEvent="in-progress completed"/></Response>"#,
    );
    h.env.st().record_secs = 4;
    let leg = h.caller_leg();
    assert_eq!(h.env.st().plays, vec![(leg, 1000)], "the beep plays first");
    assert!(h.env.st().recordings.is_empty(), "not during the beep");
    h.advance(500 * MS);
    h.beep_done();
    {
        let st = h.env.st();
        assert_eq!(st.recordings.len(), 1);
        let (_, rec_leg, opts) = st.recordings[0];
        assert_eq!(rec_leg, leg);
        assert_eq!(opts.track, tandem_media::RecordingTrack::Inbound);
        assert_eq!(opts.layout, tandem_media::ChannelLayout::Mono);
        assert_eq!(opts.trim, tandem_media::Trim::TrimSilence);
        assert!(st.voice.contains(&leg), "voice activity listened to");
    }
    // Speech from 1 s to 6 s (with a pause shorter than the timeout), then
    // silence: the recording ends 3 s after the speech ended.
    h.advance(500 * MS);
    h.voice(true);
    h.advance(2 * SEC);
    h.voice(false); // reported HANGOVER after the last word
    h.advance(2 * SEC);
    h.voice(true);
    h.advance(SEC);
    h.voice(false);
    h.advance(10 * SEC);
    let stopped = h.env.st().stopped.clone();
    assert_eq!(stopped.len(), 1);
    let expected = 6 * SEC + 3 * SEC - crate::media_ops::HANGOVER;
    assert_eq!(stopped[0] - h.t0, expected);
    assert!(h.env.st().voice.is_empty(), "voice tap removed");
    let actions = h.record_actions();
    assert_eq!(actions.len(), 1);
    let (at, params) = &actions[0];
    assert_eq!(*at, expected);
    assert_eq!(param(params, "RecordingDuration"), "4");
    assert_eq!(param(params, "Digits"), "");
    assert!(param(params, "RecordingUrl").ends_with(param(params, "RecordingSid")));
    use tandem_webhook::RecordingStatus as S;
    assert_eq!(
        h.recording_callbacks(),
        vec![(500 * MS, S::InProgress), (expected, S::Completed)]
    );
}

#[test]
fn record_finish_on_key_ends_it_with_the_key() {
    let mut h = Harness::start(
        r##"<Response><Record action="/vm" finishOnKey="#" playBeep="false" timeout="0"/></Response>"##,
    );
    h.env.st().record_secs = 2;
    assert!(h.env.st().plays.is_empty(), "no beep");
    assert_eq!(h.env.st().recordings.len(), 1, "recording at once");
    assert!(
        h.env.st().voice.is_empty(),
        "timeout 0: no silence detection"
    );
    h.advance(20 * SEC);
    h.key('5');
    assert!(h.env.st().stopped.is_empty(), "5 is not a finishing key");
    h.advance(SEC);
    h.key('#');
    let actions = h.record_actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].0, 21 * SEC);
    assert_eq!(param(&actions[0].1, "Digits"), "#");
}

#[test]
fn record_max_length_ends_it_while_the_caller_still_speaks() {
    let mut h = Harness::start(
        r#"<Response><Record action="/vm" maxLength="10" playBeep="false"/></Response>"#,
    );
    h.env.st().record_secs = 10;
    h.advance(SEC);
    h.speak(30 * SEC);
    assert_eq!(h.env.st().stopped[0] - h.t0, 10 * SEC);
    assert_eq!(h.record_actions().len(), 1);
}

#[test]
fn an_empty_recording_skips_the_action_and_runs_the_next_verb() {
    let mut h = Harness::start(
        r#"<Response><Record action="/vm" playBeep="false"/><Say>No message</Say></Response>"#,
    );
    h.env.st().record_secs = 0;
    // Nobody speaks: the default 5 s of silence end it.
    h.advance(6 * SEC);
    assert_eq!(h.env.st().stopped[0] - h.t0, 5 * SEC);
    assert!(h.record_actions().is_empty());
    let said = h
        .log
        .iter()
        .any(|(_, o)| matches!(o, Output::LoadAudio { prompt: tandem_twiml::Prompt::Say(s), .. } if s.text == "No message"));
    assert!(said, "the next verb runs");
}

#[test]
fn the_caller_hanging_up_during_record_posts_digits_hangup() {
    let mut h = Harness::start(
        r#"<Response><Record action="/vm" playBeep="false"/><Say>unreachable</Say></Response>"#,
    );
    h.env.st().record_secs = 7;
    h.advance(SEC);
    h.speak(7 * SEC);
    h.caller_bye();
    assert_eq!(h.env.st().stopped[0] - h.t0, 8 * SEC);
    let actions = h.record_actions();
    assert_eq!(actions.len(), 1, "{:?}", h.log);
    assert_eq!(param(&actions[0].1, "Digits"), "hangup");
    assert_eq!(param(&actions[0].1, "RecordingDuration"), "7");
    assert!(h.call.is_done());
}

#[test]
fn a_media_timeout_during_record_still_posts_the_recording() {
    let mut h = Harness::start(
        r#"<Response><Record action="/vm" playBeep="false" timeout="0"/></Response>"#,
    );
    h.env.st().record_secs = 3;
    h.advance(30 * SEC);
    let leg = h.caller_leg();
    h.media(MediaEvent::Timeout {
        leg,
        after: 30 * SEC,
    });
    assert_eq!(h.byes_to_caller(), 1);
    let actions = h.record_actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(param(&actions[0].1, "Digits"), "hangup");
    let st = h.env.st();
    assert!(
        st.stopped[0] <= st.closed[0].0,
        "stopped before its leg closed"
    );
}

#[test]
fn a_key_during_the_beep_ends_the_record_with_nothing_recorded() {
    let mut h = Harness::start(r#"<Response><Record action="/vm"/><Say>Next</Say></Response>"#);
    h.advance(200 * MS);
    h.key('1');
    assert!(h.env.st().recordings.is_empty());
    assert!(h.record_actions().is_empty());
    // The beep's late end changes nothing.
    h.beep_done();
    assert!(h.env.st().recordings.is_empty());
}

/// A `<Record>` call's log replays too: the beep's playback, the voice
/// changes, the key and the recording's sid, URL and duration come from
/// the log.
#[test]
fn a_record_call_log_replays_to_the_same_outputs() {
    let mut h = Harness::start_full(
        r#"<Response><Record action="/vm" recordingStatusCallback="/rs" recordingStatusCallbackEvent="in-progress completed"/></Response>"#,
        caller_invite(&[]),
        FakeEnv::default(),
        true,
    );
    h.env.st().record_secs = 3;
    h.advance(500 * MS);
    h.beep_done();
    h.advance(SEC);
    h.voice(true);
    h.advance(3 * SEC);
    h.voice(false);
    h.advance(SEC);
    h.key('*');
    h.msg(CallMsg::Fetched(Box::new(Ok((
        "<Response><Say>Thanks</Say></Response>".into(),
        None,
    )))));
    h.advance(SEC);
    h.caller_bye();
    assert_eq!(h.record_actions().len(), 1);
    h.assert_replays();
}

#[test]
fn a_caller_whose_packets_stop_mid_speech_is_silent_within_a_keepalive() {
    let mut h = Harness::start(
        r#"<Response><Record action="/vm" playBeep="false" timeout="2"/></Response>"#,
    );
    h.env.st().record_secs = 3;
    h.advance(SEC);
    h.voice(true);
    h.advance(crate::media_ops::KEEPALIVE);
    h.voice(true);
    // No packet after this: no end of speech is ever reported.
    h.advance(30 * SEC);
    let last = SEC + crate::media_ops::KEEPALIVE;
    assert_eq!(
        h.env.st().stopped[0] - h.t0,
        last + 2 * SEC + crate::media_ops::KEEPALIVE
    );
    assert_eq!(h.record_actions().len(), 1);
}

/// Regression (issue "Every noun and attribute … acted on"): a REFER from
/// either party was answered 200 and ignored, so the referrer believed the
/// transfer happened. Without `referUrl` it is declined (603, Twilio's
/// error 13802), and the call goes on.
#[test]
fn a_refer_from_either_party_is_declined_not_silently_accepted() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
    );
    h.bridged();
    let refer = |from: &str, to: String, call_id: &str, via: &str, cseq: u32| {
        RequestBuilder::new(
            Method::Refer,
            rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
        )
        .via("UDP", via, "z9hG4bKrefer")
        .max_forwards(70)
        .from(from)
        .to(to)
        .call_id(call_id)
        .cseq(cseq)
        .header(Header::Other(
            "Refer-To".into(),
            "<sip:+15557770000@127.0.0.30>".into(),
        ))
        .build()
    };
    let callee_cid = call_id(&h.invites()[0]);
    let local_tag = h.call.local_tag.clone();
    let branch_tag = h.invites()[0].headers.from_tag().unwrap().to_owned();
    h.request_from(
        refer(
            "<sip:a@127.0.0.21>;tag=calleetag",
            format!("<sip:+15551112222@127.0.0.1>;tag={branch_tag}"),
            &callee_cid,
            "127.0.0.21:5060",
            40,
        ),
        peer("127.0.0.21:5060"),
    );
    h.request(refer(
        "<sip:+15551112222@127.0.0.9>;tag=caller",
        format!("<sip:+15550001000@127.0.0.1:5080>;tag={local_tag}"),
        "caller-call-id",
        CALLER,
        41,
    ));
    assert_eq!(h.answered_cseq(40), [603]);
    assert_eq!(h.answered_cseq(41), [603]);
    assert_eq!(h.byes_to_caller(), 0, "the call goes on");
    assert!(h.action().is_none(), "the Dial goes on");
}

impl Harness {
    /// The caller's ACK to Tandem's 2xx, without SDP.
    fn caller_ack(&mut self) {
        self.msg(CallMsg::Ack {
            call_id: "caller-call-id".into(),
            sdp: None,
        });
    }

    /// Branch 0's callee answers 10 ms in and the caller ACKs: the call is
    /// bridged.
    fn bridged(&mut self) {
        self.advance(10 * MS);
        self.callee(0, 200, "calleetag");
        self.caller_ack();
    }

    /// A request in bridged branch 0's dialog, from the callee (its tags).
    fn callee_request(&self, method: Method, cseq: u32) -> RequestBuilder {
        let callee_cid = call_id(&self.invites()[0]);
        let branch_tag = self.invites()[0].headers.from_tag().unwrap().to_owned();
        RequestBuilder::new(
            method,
            rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
        )
        .via("UDP", "127.0.0.21:5060", &format!("z9hG4bKcallee{cseq}"))
        .max_forwards(70)
        .from("<sip:a@127.0.0.21>;tag=calleetag")
        .to(format!("<sip:+15551112222@127.0.0.1>;tag={branch_tag}"))
        .call_id(&callee_cid)
        .cseq(cseq)
    }

    /// A REFER from bridged branch 0 (its dialog's tags, its address).
    fn callee_refer(&mut self, cseq: u32, refer_to: Option<&str>) {
        let mut b = self.callee_request(Method::Refer, cseq);
        if let Some(t) = refer_to {
            b = b.header(Header::Other("Refer-To".into(), t.into()));
        }
        self.request_from(b.build(), peer("127.0.0.21:5060"));
    }

    /// Bridged branch 0 hangs up (BYE in its dialog).
    fn callee_bye_now(&mut self) {
        let bye = self.callee_request(Method::Bye, 90).build();
        self.request_from(bye, peer("127.0.0.21:5060"));
    }

    fn answered_cseq(&self, cseq: u32) -> Vec<u16> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Respond { response, .. }
                    if response.headers.cseq().is_some_and(|(n, _)| n == cseq) =>
                {
                    Some(response.status_code.code())
                }
                _ => None,
            })
            .collect()
    }

    /// The NOTIFYs sent in branch 0's dialog: (sipfrag, Subscription-State).
    fn notifies(&self) -> Vec<(String, String)> {
        self.notifies_in(&call_id(&self.invites()[0]))
    }

    /// The NOTIFYs sent in the dialog with Call-ID `cid`: (sipfrag, Subscription-State).
    fn notifies_in(&self, cid: &str) -> Vec<(String, String)> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Request { request, .. }
                    if request.method == Method::Notify
                        && request.headers.call_id() == Some(cid) =>
                {
                    Some((
                        String::from_utf8_lossy(&request.body).trim().to_owned(),
                        other_header(&request.headers, "Subscription-State")
                            .unwrap_or("")
                            .to_owned(),
                    ))
                }
                _ => None,
            })
            .collect()
    }

    fn refer_fetches(&self) -> Vec<Vec<(String, String)>> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Fetch { req, params, .. }
                    if req.reason == tandem_twiml::FetchReason::Refer =>
                {
                    assert_eq!(req.url.as_str(), "http://app.test/refer");
                    Some(
                        params
                            .iter()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect(),
                    )
                }
                _ => None,
            })
            .collect()
    }
}

const REFER_DIAL: &str = r#"<Response><Dial action="/action" referUrl="/refer"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#;

#[test]
fn a_callees_refer_moves_the_caller_to_the_refer_urls_document() {
    let mut h = Harness::start(REFER_DIAL);
    h.bridged();
    h.advance(5 * SEC);
    h.callee_refer(20, Some("<sip:+15557770000@127.0.0.30?X-Ticket=42>"));
    assert_eq!(h.answered_cseq(20), [202]);
    assert_eq!(
        h.notifies(),
        [(
            "SIP/2.0 100 Trying".to_owned(),
            "active;expires=60".to_owned()
        )]
    );
    let fetches = h.refer_fetches();
    assert_eq!(fetches.len(), 1);
    assert_eq!(
        param(&fetches[0], "ReferTransferTarget"),
        "sip:+15557770000@127.0.0.30?X-Ticket=42"
    );
    assert_eq!(param(&fetches[0], "CallStatus"), "in-progress");
    assert_eq!(h.sent(Method::Bye, &call_id(&h.invites()[0])).len(), 0);
    // The application answers with a Dial to the target.
    h.advance(50 * MS);
    h.msg(CallMsg::ReferFetched(Box::new(Ok((
        r#"<Response><Dial><Sip>sip:target@127.0.0.30:5060</Sip></Dial></Response>"#.into(),
        Some(Url::parse("http://app.test/refer").unwrap()),
    )))));
    assert_eq!(
        h.notifies()[1],
        (
            "SIP/2.0 200 OK".to_owned(),
            "terminated;reason=noresource".to_owned()
        )
    );
    assert_eq!(h.sent(Method::Bye, &call_id(&h.invites()[0])).len(), 1);
    assert!(h.action().is_none(), "the Dial's action is not requested");
    let invites = h.invites();
    assert_eq!(invites.len(), 2, "the caller is dialled to the target");
    assert_eq!(invites[1].uri.to_string(), "sip:target@127.0.0.30:5060");
    assert_eq!(h.byes_to_caller(), 0, "the caller stays");
    // The new Dial bridges; its action (none) ends the document.
    h.advance(100 * MS);
    let cid = call_id(&invites[1]);
    let mut r = response_to(&invites[1], 200, None, Some("target"));
    r.headers
        .push(Header::Contact("<sip:target@127.0.0.30:5060>".into()));
    r.headers
        .push(Header::ContentType("application/sdp".into()));
    r.body = SDP.to_vec();
    h.msg(CallMsg::Response {
        response: Box::new(r),
        source: None,
    });
    assert!(
        h.sent(Method::Ack, &cid).len() == 1,
        "the target is bridged"
    );
}

#[test]
fn a_failed_refer_url_leaves_the_bridge_up() {
    let mut h = Harness::start(REFER_DIAL);
    h.bridged();
    h.callee_refer(20, Some("<sip:b@127.0.0.30>"));
    h.msg(CallMsg::ReferFetched(Box::new(Err("HTTP 500".into()))));
    assert_eq!(
        h.notifies().last().cloned(),
        Some((
            "SIP/2.0 503 Service Unavailable".to_owned(),
            "terminated;reason=noresource".to_owned()
        ))
    );
    assert_eq!(h.sent(Method::Bye, &call_id(&h.invites()[0])).len(), 0);
    assert!(h.action().is_none(), "the Dial goes on");
    // A document that does not parse fails the same way, on a second REFER.
    h.callee_refer(21, Some("<sip:b@127.0.0.30>"));
    assert_eq!(h.answered_cseq(21), [202]);
    h.msg(CallMsg::ReferFetched(Box::new(Ok((
        "<Respons>".into(),
        None,
    )))));
    assert_eq!(h.notifies().len(), 4);
    assert_eq!(h.sent(Method::Bye, &call_id(&h.invites()[0])).len(), 0);
    // Without a Refer-To, or while one waits, a REFER is declined.
    h.callee_refer(22, None);
    assert_eq!(h.answered_cseq(22), [603]);
    h.callee_refer(23, Some("<sip:b@127.0.0.30>"));
    h.callee_refer(24, Some("<sip:c@127.0.0.30>"));
    assert_eq!(h.answered_cseq(24), [603]);
    // The callee hangs up before the referUrl answers: nothing moves.
    h.callee_bye_now();
    h.msg(CallMsg::ReferFetched(Box::new(Ok((
        "<Response><Hangup/></Response>".into(),
        None,
    )))));
    let (_, action) = h.action().expect("the Dial ended by the callee's BYE");
    assert_eq!(action["DialCallStatus"], "completed");
}

impl Harness {
    /// A REFER from the caller, in its dialog.
    fn caller_refer(&mut self, cseq: u32, refer_to: &str) {
        let local_tag = self.call.local_tag.clone();
        let refer = RequestBuilder::new(
            Method::Refer,
            rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
        )
        .via("UDP", CALLER, &format!("z9hG4bKcallerrefer{cseq}"))
        .max_forwards(70)
        .from("<sip:+15551112222@127.0.0.9>;tag=caller")
        .to(format!("<sip:+15550001000@127.0.0.1:5080>;tag={local_tag}"))
        .call_id("caller-call-id")
        .cseq(cseq)
        .header(Header::Other("Refer-To".into(), refer_to.into()))
        .build();
        self.request(refer);
    }

    /// The NOTIFYs sent in the caller's dialog: (sipfrag, Subscription-State).
    fn caller_notifies(&self) -> Vec<(String, String)> {
        self.notifies_in("caller-call-id")
    }
}

/// The caller transfers the callee (issue 10: "a REFER from the called
/// party (or the caller)"): 202, NOTIFY 100 to the caller, the referUrl
/// asked with the parent's parameters; on its answer NOTIFY 200 and BYE to
/// the caller, and the callee's call — its own CallSid, outbound-dial, the
/// caller's as parent — runs the document: a Dial to the target, bridged
/// with the callee's leg. The callee's BYE ends that Dial (its action has
/// the child's parameters), and the child's `completed` reports the whole
/// time it was answered.
#[test]
fn a_callers_refer_hands_the_callee_to_the_refer_urls_document() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/action" referUrl="/refer"><Sip statusCallback="/child" statusCallbackEvent="completed">sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
    );
    h.bridged();
    let parent = h.call.sid.clone();
    let callee_cid = call_id(&h.invites()[0]);
    let (caller_leg, callee_leg) = {
        let st = h.env.st();
        (st.open[0], st.open[1])
    };
    h.advance(5 * SEC);
    h.caller_refer(41, "<sip:target@127.0.0.30>");
    assert_eq!(h.answered_cseq(41), [202]);
    assert_eq!(
        h.caller_notifies(),
        [(
            "SIP/2.0 100 Trying".to_owned(),
            "active;expires=60".to_owned()
        )]
    );
    let fetches = h.refer_fetches();
    assert_eq!(fetches.len(), 1);
    assert_eq!(
        param(&fetches[0], "ReferTransferTarget"),
        "sip:target@127.0.0.30"
    );
    assert_eq!(param(&fetches[0], "CallSid"), parent);
    h.advance(50 * MS);
    h.msg(CallMsg::ReferFetched(Box::new(Ok((
        r#"<Response><Dial action="/after"><Sip>sip:target@127.0.0.30:5060</Sip></Dial></Response>"#.into(),
        Some(Url::parse("http://app.test/refer").unwrap()),
    )))));
    assert_eq!(
        h.caller_notifies()[1],
        (
            "SIP/2.0 200 OK".to_owned(),
            "terminated;reason=noresource".to_owned()
        )
    );
    assert_eq!(h.byes_to_caller(), 1, "the referrer leaves");
    assert_eq!(
        h.sent(Method::Bye, &callee_cid).len(),
        0,
        "the callee stays"
    );
    assert!(
        h.action().is_none(),
        "the first Dial's action is not requested"
    );
    assert!(h.env.st().closed.iter().any(|(_, l)| *l == caller_leg));
    assert!(h.statuses_of("a").is_empty(), "the child lives on");
    let invites = h.invites();
    assert_eq!(invites.len(), 2, "the callee is dialled to the target");
    assert_eq!(invites[1].uri.to_string(), "sip:target@127.0.0.30:5060");
    // The target answers: bridged with the callee's leg.
    h.advance(100 * MS);
    let mut r = response_to(&invites[1], 200, None, Some("target"));
    r.headers
        .push(Header::Contact("<sip:target@127.0.0.30:5060>".into()));
    r.headers
        .push(Header::ContentType("application/sdp".into()));
    r.body = SDP.to_vec();
    h.msg(CallMsg::Response {
        response: Box::new(r),
        source: None,
    });
    let target_leg = *h.env.st().open.last().unwrap();
    assert_ne!(target_leg, callee_leg);
    assert!(h.env.st().bridges.contains(&(callee_leg, target_leg)));
    // The callee hangs up, in its own dialog.
    h.advance(10 * SEC);
    h.callee_bye_now();
    assert_eq!(h.answered_cseq(90), [200]);
    let (_, action) = h.action().expect("the second Dial's action");
    assert_eq!(action["DialCallStatus"], "completed");
    assert_eq!(action["DialCallDuration"], "10");
    assert_ne!(action["CallSid"], parent);
    assert_eq!(action["ParentCallSid"], parent);
    assert_eq!(action["Direction"], "outbound-dial");
    assert_eq!(
        action["To"], "a",
        "the child's To, as its status callbacks say"
    );
    h.msg(CallMsg::Fetched(Box::new(Ok(("<Response/>".into(), None)))));
    let child = h.statuses_of("a");
    assert_eq!(child.len(), 1, "{child:?}");
    assert_eq!(child[0].1, CallStatus::Completed);
    assert_eq!(child[0].2, Some(15), "answered from 10 ms to 15.16 s");
    assert!(h.call.is_done());
}

/// A REFER from the caller before any bridge, or without referUrl, is
/// declined; a failed referUrl keeps the bridge and says 503 to the caller.
#[test]
fn a_callers_refer_that_cannot_be_carried_out_changes_nothing() {
    let mut h = Harness::start(REFER_DIAL);
    h.advance(10 * MS);
    h.caller_ack();
    h.caller_refer(40, "<sip:target@127.0.0.30>");
    assert_eq!(h.answered_cseq(40), [603], "ringing: no bridge yet");
    h.callee(0, 200, "calleetag");
    h.caller_refer(41, "<sip:target@127.0.0.30>");
    assert_eq!(h.answered_cseq(41), [202]);
    h.msg(CallMsg::ReferFetched(Box::new(Err("HTTP 500".into()))));
    assert_eq!(
        h.caller_notifies().last().cloned(),
        Some((
            "SIP/2.0 503 Service Unavailable".to_owned(),
            "terminated;reason=noresource".to_owned()
        ))
    );
    assert_eq!(h.byes_to_caller(), 0);
    assert_eq!(h.sent(Method::Bye, &call_id(&h.invites()[0])).len(), 0);
    assert!(h.action().is_none(), "the bridge goes on");
}

/// A transfer's call log replays: the REFER, the referUrl's answer.
#[test]
fn a_transfer_call_log_replays_to_the_same_outputs() {
    let mut h = Harness::start_full(REFER_DIAL, caller_invite(&[]), FakeEnv::default(), true);
    h.bridged();
    h.advance(SEC);
    h.callee_refer(20, Some("<sip:+15557770000@127.0.0.30>"));
    h.advance(30 * MS);
    h.msg(CallMsg::ReferFetched(Box::new(Ok((
        r#"<Response><Dial><Sip>sip:target@127.0.0.30:5060</Sip></Dial></Response>"#.into(),
        None,
    )))));
    h.advance(SEC);
    h.caller_bye();
    assert_eq!(h.invites().len(), 2);
    h.assert_replays();
}

/// `callReason` reaches every callee as the INVITE's Subject.
#[test]
fn call_reason_is_the_callees_subject() {
    let h = Harness::start(
        r#"<Response><Dial callReason="Your order #42"><Sip>sip:a@127.0.0.21:5060</Sip><Sip>sip:b@127.0.0.22:5060</Sip></Dial></Response>"#,
    );
    let invites = h.invites();
    assert_eq!(invites.len(), 2);
    for i in &invites {
        let subject = i.headers.iter().find_map(|h| match h {
            Header::Subject(s) => Some(rsip::headers::UntypedHeader::value(s).to_owned()),
            _ => None,
        });
        assert_eq!(subject.as_deref(), Some("Your order #42"));
    }
    let plain =
        Harness::start(r#"<Response><Dial><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#);
    assert!(
        !plain.invites()[0]
            .headers
            .iter()
            .any(|h| matches!(h, Header::Subject(_)))
    );
}

/// Regression (issue "Next to a real PBX …"): an UPDATE with an SDP offer
/// got 200 without an answer, and a SUBSCRIBE 200 while nothing was
/// subscribed. The offer is answered (and passed on as a re-INVITE), a
/// bodiless UPDATE is a plain 200, a SUBSCRIBE gets 489 Bad Event.
#[test]
fn update_offers_are_answered_and_subscribe_is_a_bad_event() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
    );
    h.bridged();
    let local_tag = h.call.local_tag.clone();
    let caller_req = |method: Method, cseq: u32, sdp: bool| {
        let b = RequestBuilder::new(
            method,
            rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
        )
        .via("UDP", CALLER, &format!("z9hG4bKupd{cseq}"))
        .max_forwards(70)
        .from("<sip:+15551112222@127.0.0.9>;tag=caller")
        .to(format!("<sip:+15550001000@127.0.0.1:5080>;tag={local_tag}"))
        .call_id("caller-call-id")
        .cseq(cseq)
        .contact(format!("<sip:alice@{CALLER}>"));
        if sdp {
            // A changed description (an unchanged one is a refresh, not
            // passed on).
            b.body("application/sdp", [SDP, b"a=ptime:30\r\n"].concat())
                .build()
        } else {
            b.build()
        }
    };
    let response_of = |h: &Harness, cseq: u32| {
        h.log.iter().find_map(|(_, o)| match o {
            Output::Respond { response, .. }
                if response.headers.cseq().is_some_and(|(n, _)| n == cseq) =>
            {
                Some(response.clone())
            }
            _ => None,
        })
    };
    let callee_cid = call_id(&h.invites()[0]);
    let reinvites_before = h.sent(Method::Invite, &callee_cid).len();
    h.request(caller_req(Method::Update, 30, true));
    let r = response_of(&h, 30).expect("answered");
    assert_eq!(r.status_code.code(), 200);
    assert!(
        has_sdp(&r.headers, &r.body),
        "the offer is answered in the 200"
    );
    assert_eq!(
        h.sent(Method::Invite, &callee_cid).len(),
        reinvites_before + 1,
        "the change is offered on to the callee"
    );
    h.request(caller_req(Method::Update, 31, false));
    let r = response_of(&h, 31).expect("answered");
    assert_eq!(r.status_code.code(), 200);
    assert!(r.body.is_empty());
    h.request(caller_req(Method::Subscribe, 32, false));
    assert_eq!(h.answered_cseq(32), [489]);
    // The same from the callee's side.
    let update = h
        .callee_request(Method::Update, 33)
        .contact("<sip:a@127.0.0.21:5060>")
        .body("application/sdp", SDP.to_vec())
        .build();
    h.request_from(update, peer("127.0.0.21:5060"));
    let r = response_of(&h, 33).expect("answered");
    assert_eq!(r.status_code.code(), 200);
    assert!(has_sdp(&r.headers, &r.body));
    assert_eq!(h.byes_to_caller(), 0, "the call goes on");
}

// ----- <Dial><Conference> -----

fn conference_doc(attrs: &str, dial: &str) -> String {
    format!(
        r#"<Response><Dial action="/after" {dial}><Conference {attrs}>room-1</Conference></Dial><Say>not reached</Say></Response>"#
    )
}

impl Harness {
    /// A hold document answers (`dequeue`: the `<Queue url>` one).
    fn hold_doc(&mut self, body: &str, url: Option<&str>, dequeue: bool) {
        self.msg(CallMsg::WaitFetched {
            result: Box::new(Ok((body.to_owned(), url.map(|u| Url::parse(u).unwrap())))),
            dequeue,
        });
    }

    /// The waitUrl fetches, in order.
    fn wait_fetches(&self) -> Vec<(Duration, Url)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Fetch { req, .. } if req.reason == tandem_twiml::FetchReason::Wait => {
                    Some((*at, req.url.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn prompt_loads(&self) -> Vec<(Duration, Who)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::LoadAudio { who, .. } => Some((*at, *who)),
                _ => None,
            })
            .collect()
    }

    /// The last prompt load is ready now.
    fn audio_ready(&mut self) {
        let (who, seq) = self
            .log
            .iter()
            .rev()
            .find_map(|(_, o)| match o {
                Output::LoadAudio { who, seq, .. } => Some((*who, *seq)),
                _ => None,
            })
            .expect("a prompt load");
        let d = crate::media_ops::DigitsSource::new("1").unwrap();
        self.msg(CallMsg::AudioReady {
            who,
            seq,
            result: Ok(Box::new(Audio::Digits(d))),
        });
    }
}

#[test]
fn a_conference_caller_is_answered_joins_and_its_action_gets_answered_when_it_hangs_up() {
    let mut h = Harness::start(&conference_doc(
        r#"participantLabel="agent" endConferenceOnExit="true""#,
        "",
    ));
    let leg = h.caller_leg();
    {
        let st = h.env.st();
        assert_eq!(st.joins.len(), 1);
        let (_, l, spec) = &st.joins[0];
        assert_eq!(*l, leg);
        assert_eq!(spec.call_sid, h.call.sid);
        assert_eq!(spec.conference.name, "room-1");
        assert_eq!(spec.conference.participant_label.as_deref(), Some("agent"));
        assert!(spec.conference.end_conference_on_exit);
        assert_eq!(st.room_audio, vec![h.t0], "a started room plays at once");
    }
    // Answered before joining: 200 to the INVITE.
    assert!(h.log.iter().any(
        |(_, o)| matches!(o, Output::Respond { response, .. } if response.status_code == 200.into())
    ));
    h.advance(90 * SEC);
    assert!(
        h.action().is_none(),
        "the conference goes on while the caller stays"
    );
    h.caller_bye();
    let (at, p) = h.action().expect("the Dial's action");
    assert_eq!(at, 90 * SEC);
    assert_eq!(p["DialCallStatus"], "answered");
    assert_eq!(p["DialBridged"], "true");
    assert!(!p.contains_key("DialCallSid") && !p.contains_key("DialCallDuration"));
    assert_eq!(h.env.st().left, vec![h.t0 + 90 * SEC]);
}

#[test]
fn a_waiting_participant_loops_the_wait_url_until_the_room_starts() {
    let env = FakeEnv::default();
    env.st().join_answer = Some(Ok(false));
    let mut h = Harness::start_with(
        &conference_doc(
            r#"startConferenceOnEnter="false" waitUrl="/hold" waitMethod="GET""#,
            "",
        ),
        caller_invite(&[]),
        env,
    );
    let waits = h.wait_fetches();
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].1.as_str(), "http://app.test/hold");
    assert!(h.env.st().room_audio.is_empty(), "no mix before the start");
    h.advance(100 * MS);
    h.hold_doc(
        "<Response><Say>please hold</Say><Pause length=\"2\"/><Dial>+15550001111</Dial></Response>",
        Some("http://app.test/hold"),
        false,
    );
    // The Say loads, plays and ends; the Pause runs 2 s; the Dial is skipped;
    // then the Say again.
    assert_eq!(h.prompt_loads().len(), 1);
    assert_eq!(h.prompt_loads()[0].1, Who::Wait);
    h.advance(50 * MS);
    h.audio_ready();
    let (leg, id) = *h.env.st().plays.last().unwrap();
    h.advance(1500 * MS);
    h.media(MediaEvent::InjectionDone { leg, id });
    h.advance(1999 * MS);
    assert_eq!(h.prompt_loads().len(), 1, "the pause still runs");
    h.advance(MS);
    assert_eq!(h.prompt_loads().len(), 2, "the document loops");
    h.audio_ready();
    let (_, playing) = *h.env.st().plays.last().unwrap();
    h.advance(300 * MS);
    h.msg(CallMsg::Room(crate::conference::RoomMsg::Started));
    assert!(
        h.env.st().stopped_plays.contains(&playing),
        "the wait music stops at the start"
    );
    assert_eq!(h.env.st().room_audio, vec![h.now]);
    assert_eq!(h.wait_fetches().len(), 1);
    // The room ends (another participant's endConferenceOnExit): the Dial ends.
    h.advance(10 * SEC);
    h.msg(CallMsg::Room(crate::conference::RoomMsg::Ended));
    let (at, p) = h.action().expect("the Dial's action");
    assert_eq!(at, h.at());
    assert_eq!(p["DialCallStatus"], "answered");
}

#[test]
fn a_wait_document_whose_audio_never_loads_is_retried_once_a_second_not_spun() {
    let env = FakeEnv::default();
    env.st().join_answer = Some(Ok(false));
    let mut h = Harness::start_with(
        &conference_doc(r#"startConferenceOnEnter="false" waitUrl="/hold""#, ""),
        caller_invite(&[]),
        env,
    );
    h.hold_doc(
        "<Response><Play>http://app.test/missing.wav</Play></Response>",
        None,
        false,
    );
    for _ in 0..5 {
        let (who, seq) = match &h
            .log
            .iter()
            .rev()
            .find(|(_, o)| matches!(o, Output::LoadAudio { .. }))
            .unwrap()
            .1
        {
            Output::LoadAudio { who, seq, .. } => (*who, *seq),
            _ => unreachable!(),
        };
        h.msg(CallMsg::AudioReady {
            who,
            seq,
            result: Err("404".into()),
        });
        h.advance(SEC);
    }
    let loads = h.prompt_loads();
    assert_eq!(loads.len(), 6, "{loads:?}");
    assert!(
        loads.windows(2).all(|w| w[1].0 - w[0].0 >= SEC),
        "{loads:?}"
    );
}

#[test]
fn hangup_on_star_and_time_limit_take_the_caller_out_of_the_room() {
    let mut h = Harness::start(&conference_doc("", r#"hangupOnStar="true""#));
    h.advance(3 * SEC);
    h.key('1');
    assert!(h.action().is_none());
    h.key('*');
    let (at, p) = h.action().expect("the Dial's action");
    assert_eq!(at, 3 * SEC);
    assert_eq!(p["DialCallStatus"], "answered");
    assert_eq!(h.byes_to_caller(), 0, "the caller stays on the call");
    assert_eq!(h.env.st().left.len(), 1);

    let mut h = Harness::start(&conference_doc("", r#"timeLimit="7""#));
    h.advance(6999 * MS);
    assert!(h.action().is_none());
    h.advance(MS);
    let (at, p) = h.action().expect("the Dial's action");
    assert_eq!(at, 7 * SEC);
    assert_eq!(p["DialCallStatus"], "answered");
}

#[test]
fn a_full_room_fails_the_dial_and_the_document_goes_on() {
    let env = FakeEnv::default();
    env.st().join_answer = Some(Err("conference \"room-1\" is full (2 participants)".into()));
    let h = Harness::start_with(
        r#"<Response><Dial><Conference maxParticipants="2">room-1</Conference></Dial><Say>sorry</Say></Response>"#,
        caller_invite(&[]),
        env,
    );
    assert!(h.env.st().left.is_empty());
    assert_eq!(h.prompt_loads().len(), 1, "the next verb runs");
    assert_eq!(h.prompt_loads()[0].1, Who::Caller);
}

#[test]
fn a_conference_call_log_replays_to_the_same_outputs() {
    let env = FakeEnv::default();
    env.st().join_answer = Some(Ok(false));
    let mut h = Harness::start_full(
        &conference_doc(
            r#"startConferenceOnEnter="false" waitUrl="/hold""#,
            r#"hangupOnStar="true""#,
        ),
        caller_invite(&[]),
        env,
        true,
    );
    h.advance(20 * MS);
    h.hold_doc("<Response><Say>hold</Say></Response>", None, false);
    h.audio_ready();
    h.advance(2 * SEC);
    h.msg(CallMsg::Room(crate::conference::RoomMsg::Started));
    h.advance(5 * SEC);
    h.key('*');
    assert!(h.assert_replays() > 3);
}

// ----- <Number machineDetection> -----

/// A config whose trunk takes every number.
fn trunk_config() -> Arc<EngineConfig> {
    Arc::new(carrier_config("sip:127.0.0.30:5060", ("127.0.0.30", 32)))
}

/// The test config with one trunk, "carrier", taking every number through
/// `proxy` and sending calls from `source` (an address and prefix length).
fn carrier_config(proxy: &str, source: (&str, u8)) -> EngineConfig {
    let mut cfg = (*config()).clone();
    cfg.trunks = vec![crate::config::Trunk {
        name: "carrier".into(),
        proxy: proxy.into(),
        username: None,
        password: None,
        prefixes: vec![String::new()],
        sources: vec![(source.0.parse().unwrap(), source.1)],
        register: None,
        options_interval: None,
    }];
    cfg
}

fn start_dialing(twiml: &str, logged: bool) -> Harness {
    Harness::start_cfg(
        twiml,
        caller_invite(&[]),
        FakeEnv::default(),
        logged,
        trunk_config(),
    )
}

impl Harness {
    fn amd_decides(&mut self, leg: LegId, by: tandem_media::AnsweredBy, ms: u32) {
        self.msg(CallMsg::Amd(Box::new(crate::media_ops::AmdReport {
            leg,
            result: tandem_media::AmdResult {
                answered_by: by,
                after_ms: ms,
            },
        })));
    }

    fn screen_fetches(&self) -> Vec<(Duration, HashMap<String, String>)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Fetch {
                    screen: Some(_),
                    params,
                    ..
                } => Some((
                    *at,
                    params
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                )),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn sync_machine_detection_holds_the_callee_then_posts_answered_by_to_its_url() {
    let mut h = start_dialing(
        r#"<Response><Dial><Number machineDetection="Enable" url="/screen">+15550002000</Number></Dial></Response>"#,
        false,
    );
    h.advance(100 * MS);
    h.callee(0, 200, "c0");
    let callee_leg = h.env.st().open[1];
    {
        let st = h.env.st();
        assert_eq!(st.amd.len(), 1);
        assert_eq!(st.amd[0].1, callee_leg);
        assert_eq!(st.amd[0].2.mode, tandem_media::AmdMode::Enable);
        assert_eq!(st.amd[0].2.timeout_ms, 30_000);
        assert!(st.bridges.is_empty(), "not bridged before the decision");
    }
    assert!(
        h.screen_fetches().is_empty(),
        "the url waits for the decision"
    );
    h.advance(1_700 * MS);
    h.amd_decides(callee_leg, tandem_media::AnsweredBy::Human, 1_680);
    let fetches = h.screen_fetches();
    assert_eq!(fetches.len(), 1);
    assert_eq!(fetches[0].0, 1_800 * MS);
    assert_eq!(fetches[0].1["AnsweredBy"], "human");
    assert_eq!(fetches[0].1["MachineDetectionDuration"], "1680");
}

#[test]
fn sync_machine_detection_without_url_bridges_after_the_decision() {
    let mut h = start_dialing(
        r#"<Response><Dial><Number machineDetection="DetectMessageEnd" machineDetectionSpeechThreshold="3000">+15550002000</Number></Dial></Response>"#,
        false,
    );
    h.callee(0, 200, "c0");
    let callee_leg = h.env.st().open[1];
    assert_eq!(h.env.st().amd[0].2.speech_threshold_ms, 3_000);
    assert_eq!(
        h.env.st().amd[0].2.mode,
        tandem_media::AmdMode::DetectMessageEnd
    );
    h.advance(9 * SEC);
    assert!(h.env.st().bridges.is_empty());
    h.amd_decides(callee_leg, tandem_media::AnsweredBy::MachineEndBeep, 9_000);
    assert_eq!(h.env.st().bridges.len(), 1);
}

#[test]
fn a_callee_sending_no_audio_is_unknown_a_second_after_the_detection_timeout() {
    let mut h = start_dialing(
        r#"<Response><Dial><Number machineDetection="Enable" machineDetectionTimeout="3" url="/screen">+15550002000</Number></Dial></Response>"#,
        false,
    );
    h.callee(0, 200, "c0");
    h.advance(3_999 * MS);
    assert!(h.screen_fetches().is_empty());
    h.advance(MS);
    let fetches = h.screen_fetches();
    assert_eq!(fetches.len(), 1);
    assert_eq!(fetches[0].0, 4 * SEC);
    assert_eq!(fetches[0].1["AnsweredBy"], "unknown");
    assert_eq!(fetches[0].1["MachineDetectionDuration"], "3000");
    // A late decision changes nothing.
    let callee_leg = h.env.st().open[1];
    h.amd_decides(callee_leg, tandem_media::AnsweredBy::Human, 3_500);
    assert_eq!(h.screen_fetches().len(), 1);
}

#[test]
fn async_machine_detection_bridges_at_once_and_posts_to_amd_status_callback() {
    let mut h = start_dialing(
        r#"<Response><Dial><Number machineDetection="Enable" amdStatusCallback="/amd" amdStatusCallbackMethod="GET">+15550002000</Number></Dial></Response>"#,
        true,
    );
    h.callee(0, 200, "c0");
    let callee_leg = h.env.st().open[1];
    assert_eq!(h.env.st().bridges.len(), 1, "bridged without waiting");
    assert_eq!(h.env.st().amd.len(), 1);
    h.advance(2_600 * MS);
    h.amd_decides(callee_leg, tandem_media::AnsweredBy::MachineStart, 2_600);
    let cb: Vec<_> = h
        .log
        .iter()
        .filter_map(|(at, o)| match o {
            Output::Callback {
                url,
                method,
                params,
                ..
            } => Some((*at, url.to_string(), *method, params.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(cb.len(), 1);
    assert_eq!(cb[0].0, 2_600 * MS);
    assert_eq!(cb[0].1, "http://app.test/amd");
    assert_eq!(cb[0].2, tandem_webhook::Method::Get);
    assert_eq!(cb[0].3.get("AnsweredBy"), Some("machine_start"));
    assert_eq!(cb[0].3.get("MachineDetectionDuration"), Some("2600"));
    assert!(cb[0].3.get("CallSid").is_some_and(|s| s.starts_with("CA")));
    assert!(h.assert_replays() > 3);
}

// ----- <Enqueue>, <Dial><Queue> -----

impl Harness {
    /// The fetches for `reason`, with all their parameters.
    fn fetches(
        &self,
        reason: tandem_twiml::FetchReason,
    ) -> Vec<(Duration, Url, HashMap<String, String>)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Fetch { req, params, .. } if req.reason == reason => Some((
                    *at,
                    req.url.clone(),
                    params
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .chain(req.params.iter().cloned())
                        .collect(),
                )),
                _ => None,
            })
            .collect()
    }

    fn queue_msg(&mut self, m: crate::queue::QueueMsg) {
        self.msg(CallMsg::Queue(Box::new(m)));
    }
}

const ENQUEUE: &str = r#"<Response><Enqueue action="/after-queue" waitUrl="/wait" waitUrlMethod="GET">support</Enqueue><Say>not reached</Say></Response>"#;

#[test]
fn an_enqueued_caller_hears_the_wait_url_with_its_position_and_leave_ends_it() {
    let mut h = Harness::start(ENQUEUE);
    assert_eq!(
        h.env.st().queue_ops[0],
        format!("enqueue support {}", h.call.sid)
    );
    let waits = h.fetches(tandem_twiml::FetchReason::Wait);
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].1.as_str(), "http://app.test/wait");
    let p = &waits[0].2;
    assert_eq!(p["QueuePosition"], "2");
    assert_eq!(p["CurrentQueueSize"], "2");
    assert_eq!(p["MaxQueueSize"], "100");
    assert_eq!(p["AvgQueueTime"], "12");
    assert_eq!(p["QueueTime"], "0");
    assert!(p["QueueSid"].starts_with("QU"));
    // A document of speech only is requested again when it ends.
    h.advance(SEC);
    h.hold_doc("<Response><Say>hold on</Say></Response>", None, false);
    h.audio_ready();
    let (leg, id) = *h.env.st().plays.last().unwrap();
    h.advance(4 * SEC);
    h.media(MediaEvent::InjectionDone { leg, id });
    let waits = h.fetches(tandem_twiml::FetchReason::Wait);
    assert_eq!(waits.len(), 2);
    assert_eq!(waits[1].0, 5 * SEC);
    assert_eq!(waits[1].2["QueueTime"], "5");
    // The next document says <Leave/>: the action gets QueueResult=leave.
    h.hold_doc("<Response><Leave/></Response>", None, false);
    let actions = h.fetches(tandem_twiml::FetchReason::EnqueueAction);
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].1.as_str(), "http://app.test/after-queue");
    assert_eq!(actions[0].2["QueueResult"], "leave");
    assert_eq!(actions[0].2["QueueTime"], "5");
    assert!(
        h.env
            .st()
            .queue_ops
            .iter()
            .any(|o| o.starts_with("leave support"))
    );
}

#[test]
fn a_dequeued_caller_hears_the_agents_url_then_joins_and_reports_bridged() {
    let mut h = Harness::start_full(ENQUEUE, caller_invite(&[]), FakeEnv::default(), true);
    h.advance(7 * SEC);
    h.queue_msg(crate::queue::QueueMsg::Dequeued {
        room: "\u{1}queue QU1 CAagent".into(),
        agent_sid: "CAagent".into(),
        agent: super::mailbox().0,
        url: Some((
            "http://app.test/connecting".into(),
            tandem_twiml::Method::Post,
        )),
    });
    let urls = h.fetches(tandem_twiml::FetchReason::Dequeued);
    assert_eq!(urls.len(), 1);
    assert_eq!(urls[0].2["DequeingCallSid"], "CAagent");
    assert_eq!(urls[0].2["QueueTime"], "7");
    assert!(h.env.st().joins.is_empty(), "the url plays first");
    // A queue wait document still in flight is not taken for the url's.
    h.hold_doc("<Response><Say>hold on</Say></Response>", None, false);
    assert!(h.prompt_loads().is_empty());
    h.hold_doc("<Response><Say>connecting</Say></Response>", None, true);
    h.audio_ready();
    let (leg, id) = *h.env.st().plays.last().unwrap();
    h.advance(2 * SEC);
    h.media(MediaEvent::InjectionDone { leg, id });
    {
        let st = h.env.st();
        assert_eq!(st.joins.len(), 1);
        assert_eq!(st.joins[0].2.conference.name, "\u{1}queue QU1 CAagent");
        assert!(st.joins[0].2.conference.end_conference_on_exit);
        assert_eq!(st.room_audio.len(), 1);
    }
    h.advance(30 * SEC);
    h.msg(CallMsg::Room(crate::conference::RoomMsg::Ended));
    let actions = h.fetches(tandem_twiml::FetchReason::EnqueueAction);
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].2["QueueResult"], "bridged");
    assert_eq!(actions[0].2["QueueTime"], "7", "waited until dequeued");
    assert!(h.assert_replays() > 4);
}

#[test]
fn a_caller_hanging_up_in_the_queue_leaves_it_and_the_action_gets_hangup() {
    let mut h = Harness::start(ENQUEUE);
    h.advance(3 * SEC);
    h.caller_bye();
    assert!(
        h.env
            .st()
            .queue_ops
            .iter()
            .any(|o| o.starts_with("leave support"))
    );
    let actions = h.fetches(tandem_twiml::FetchReason::EnqueueAction);
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].2["QueueResult"], "hangup");
    assert_eq!(actions[0].2["QueueTime"], "3");
    assert!(h.call.is_done());
}

#[test]
fn a_full_queue_gets_queue_full_at_once() {
    let env = FakeEnv::default();
    env.st().queue_full = true;
    let h = Harness::start_with(ENQUEUE, caller_invite(&[]), env);
    let actions = h.fetches(tandem_twiml::FetchReason::EnqueueAction);
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].0, Duration::ZERO);
    assert_eq!(actions[0].2["QueueResult"], "queue-full");
}

const AGENT: &str = r#"<Response><Dial action="/after-agent" timeout="20"><Queue url="/connecting">support</Queue></Dial></Response>"#;

#[test]
fn an_agent_takes_the_front_caller_and_its_action_gets_the_queue_parameters() {
    let env = FakeEnv::default();
    env.st().take = Some(("\u{1}queue QU1 CAx".into(), "CAcaller".into(), 42));
    let mut h = Harness::start_with(AGENT, caller_invite(&[]), env);
    {
        let st = h.env.st();
        assert!(st.queue_ops[0].starts_with("take support"));
        assert_eq!(st.joins.len(), 1);
        assert_eq!(st.joins[0].2.conference.name, "\u{1}queue QU1 CAx");
    }
    h.advance(65 * SEC);
    h.queue_msg(crate::queue::QueueMsg::PeerGone);
    let (at, p) = h.action().expect("the Dial's action");
    assert_eq!(at, 65 * SEC);
    assert_eq!(p["DialCallStatus"], "completed");
    assert_eq!(p["DialCallSid"], "CAcaller");
    assert_eq!(p["DialCallDuration"], "65");
    assert_eq!(p["QueueTime"], "42");
    assert!(p["QueueSid"].starts_with("QU"));
    assert_eq!(h.env.st().left.len(), 1);
}

#[test]
fn an_agent_on_an_empty_queue_waits_for_a_caller_until_its_timeout() {
    let mut h = Harness::start(AGENT);
    assert!(h.env.st().joins.is_empty());
    h.advance(5 * SEC);
    h.queue_msg(crate::queue::QueueMsg::Paired(Box::new(
        crate::queue::Pairing {
            room: "\u{1}queue QU1 CAy".into(),
            caller_sid: "CAlate".into(),
            caller: super::mailbox().0,
            queue_sid: "QU1".into(),
            queue_time: 0,
        },
    )));
    assert_eq!(h.env.st().joins.len(), 1, "joined when the caller came");

    let mut h = Harness::start(AGENT);
    h.advance(19_999 * MS);
    assert!(h.action().is_none());
    h.advance(MS);
    let (at, p) = h.action().expect("the Dial's action");
    assert_eq!(at, 20 * SEC);
    assert_eq!(p["DialCallStatus"], "no-answer");
    assert!(
        h.env
            .st()
            .queue_ops
            .iter()
            .any(|o| o.starts_with("cancel support"))
    );
}

// ----- callerId rules for <Number> legs -----

/// The trunk config, with the harness's caller among the trunk's sources.
fn caller_is_trunk() -> Arc<EngineConfig> {
    let mut cfg = (*trunk_config()).clone();
    cfg.trunks[0].sources = vec![("127.0.0.9".parse().unwrap(), 32)];
    Arc::new(cfg)
}

fn client_invite() -> Request {
    let mut r = caller_invite(&[]);
    for h in r.headers.iter_mut() {
        if let Header::From(f) = h {
            *f = "<sip:carol@127.0.0.9>;tag=caller".into();
        }
    }
    r
}

#[test]
fn a_sip_endpoint_may_not_reuse_its_to_or_from_as_caller_id_toward_numbers() {
    for caller_id in ["+15551112222", "+15550001000", "(555) 111-2222"] {
        let h = Harness::start_cfg(
            &format!(
                r#"<Response><Dial action="/a" callerId="{caller_id}"><Number>+15550002000</Number></Dial></Response>"#
            ),
            caller_invite(&[]),
            FakeEnv::default(),
            false,
            trunk_config(),
        );
        let normalized = tandem_twiml::PhoneNumber::parse(caller_id)
            .is_some_and(|p| ["+15551112222", "+15550001000"].contains(&p.to_string().as_str()));
        if normalized {
            assert!(h.invites().is_empty(), "{caller_id}: refused");
            assert_eq!(h.action().unwrap().1["DialCallStatus"], "failed");
        } else {
            assert_eq!(h.invites().len(), 1, "{caller_id}");
        }
    }
    // Another number of the user's is fine; so is its own From toward <Sip>.
    let h = Harness::start_cfg(
        r#"<Response><Dial callerId="+15557770000"><Number>+15550002000</Number><Sip>sip:x@127.0.0.40</Sip></Dial></Response>"#,
        caller_invite(&[]),
        FakeEnv::default(),
        false,
        trunk_config(),
    );
    assert_eq!(h.invites().len(), 2);
    assert!(
        h.invites()[0]
            .headers
            .value_of(|h| matches!(h, Header::From(_)))
            .unwrap()
            .contains("+15557770000")
    );
    // A carrier's call (from a trunk) may show its own To: the company's number.
    let h = Harness::start_cfg(
        r#"<Response><Dial callerId="+15550001000"><Number>+15550002000</Number></Dial></Response>"#,
        caller_invite(&[]),
        FakeEnv::default(),
        false,
        caller_is_trunk(),
    );
    assert_eq!(h.invites().len(), 1);
}

#[test]
fn a_client_call_needs_a_phone_number_as_caller_id_for_number_legs() {
    let doc = r#"<Response><Dial action="/a"><Number>+15550002000</Number><Client>joey</Client></Dial></Response>"#;
    let mut env = FakeEnv::default();
    env.st().contacts.insert(
        "joey".into(),
        vec![("sip:joey@127.0.0.41:5060".into(), peer("127.0.0.41:5060"))],
    );
    let h = Harness::start_cfg(doc, client_invite(), env.clone(), false, trunk_config());
    let invites = h.invites();
    assert_eq!(invites.len(), 1, "only the client is rung");
    assert!(invites[0].uri.to_string().contains("joey"));
    env = FakeEnv::default();
    let h = Harness::start_cfg(
        r#"<Response><Dial callerId="+15557770000"><Number>+15550002000</Number></Dial></Response>"#,
        client_invite(),
        env,
        false,
        trunk_config(),
    );
    assert_eq!(h.invites().len(), 1, "with a callerId the number is dialed");
}

#[test]
fn a_transcribed_record_hands_its_recording_to_the_transcriber_only_when_it_holds_audio() {
    let doc = r##"<Response><Record action="/vm" finishOnKey="#" playBeep="false" timeout="0" transcribeCallback="/tx"/></Response>"##;
    let transcriptions = |h: &Harness| -> Vec<(Duration, String, Option<String>)> {
        h.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Transcribe(t) => Some((
                    *at,
                    t.recording_sid.clone(),
                    t.callback.as_ref().map(|u| u.to_string()),
                )),
                _ => None,
            })
            .collect()
    };
    let mut h = Harness::start(doc);
    h.env.st().record_secs = 4;
    h.advance(4 * SEC);
    h.key('#');
    let t = transcriptions(&h);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].0, 4 * SEC);
    assert_eq!(t[0].1, format!("RE{:032}", 1));
    assert_eq!(t[0].2.as_deref(), Some("http://app.test/tx"));
    // Nothing recorded: nothing to transcribe.
    let mut h = Harness::start(doc);
    h.env.st().record_secs = 0;
    h.advance(SEC);
    h.key('#');
    assert!(transcriptions(&h).is_empty());
}

// ----- <Gather input="speech"> -----

impl Harness {
    /// The recognitions asked for: (time, seq, partial, options, ms of audio).
    fn recognitions(&self) -> Vec<(Duration, u64, Option<u32>, SpeechOptions, usize)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Recognize(r) => {
                    Some((*at, r.seq, r.partial, r.opts.clone(), r.samples.len() / 8))
                }
                _ => None,
            })
            .collect()
    }

    /// The recogniser answers the last recognition asked for.
    fn recognized(&mut self, text: &str, confidence: Option<&str>) {
        let (_, seq, partial, _, _) = self.recognitions().pop().expect("a recognition");
        self.msg(CallMsg::Recognized(Box::new(Recognized {
            seq,
            partial,
            result: Ok((text.to_owned(), confidence.map(str::to_owned))),
        })));
    }

    fn gather_actions(&self) -> Vec<(Duration, Vec<(String, String)>)> {
        self.fetches_for(tandem_twiml::FetchReason::GatherAction)
    }

    fn partial_callbacks(&self) -> Vec<(Duration, tandem_webhook::Params)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Callback { url, params, .. } if url.path() == "/partial" => {
                    Some((*at, params.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

fn cb_param<'a>(p: &'a tandem_webhook::Params, k: &str) -> &'a str {
    p.iter()
        .find(|(n, _)| *n == k)
        .map_or("<missing>", |(_, v)| v)
}

/// The caller speaks from 1 s to 3.5 s; `speechTimeout` 2 s of silence
/// after it ends the utterance (the tap reports the silence HANGOVER
/// late); the audio goes to the recogniser with the Gather's options, and
/// its text and confidence go to `action`. The taps come off.
#[test]
fn a_speech_gather_recognises_the_utterance_after_its_speech_timeout() {
    let mut h = Harness::start(
        r#"<Response><Gather input="speech" action="/heard" timeout="4" speechTimeout="2" hints="sales, support" language="en-GB" speechModel="phone_call" enhanced="true"/></Response>"#,
    );
    let leg = h.caller_leg();
    {
        let st = h.env.st();
        assert!(st.speech.contains(&leg) && st.voice.contains(&leg));
    }
    h.env.st().speech_ms = 3500;
    h.advance(SEC);
    h.speak(2500 * MS);
    h.voice(false);
    h.advance(5 * SEC);
    let recs = h.recognitions();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let (at, _, partial, opts, ms) = recs[0].clone();
    assert_eq!(at, 3500 * MS + 2 * SEC - crate::media_ops::HANGOVER);
    assert_eq!((partial, ms), (None, 3500));
    assert_eq!(
        opts,
        SpeechOptions {
            language: "en-GB".into(),
            hints: Some("sales, support".into()),
            model: Some("phone_call".into()),
            enhanced: true,
        }
    );
    assert!(h.gather_actions().is_empty(), "waits for the recogniser");
    h.advance(700 * MS);
    h.recognized("Talk to sales", Some("0.91"));
    let actions = h.gather_actions();
    assert_eq!(actions.len(), 1);
    let (at, params) = &actions[0];
    assert_eq!(*at, 9200 * MS);
    assert_eq!(param(params, "SpeechResult"), "Talk to sales");
    assert_eq!(param(params, "Confidence"), "0.91");
    let st = h.env.st();
    assert!(st.speech.is_empty() && st.voice.is_empty(), "taps off");
}

/// No speech within `timeout`: no input, the next verb; nothing is
/// recognised. A speech gather without `speechTimeout` uses `timeout`.
#[test]
fn a_speech_gather_without_speech_times_out_and_speech_timeout_defaults_to_timeout() {
    let mut h = Harness::start(
        r#"<Response><Gather input="speech" action="/heard" timeout="3"/><Say>Bye</Say></Response>"#,
    );
    let loads = |h: &Harness| {
        h.log
            .iter()
            .filter(|(_, o)| matches!(o, Output::LoadAudio { .. }))
            .count()
    };
    h.advance(2999 * MS);
    assert_eq!(loads(&h), 0);
    h.advance(MS);
    assert_eq!(loads(&h), 1, "the next verb's audio loads");
    assert!(h.recognitions().is_empty() && h.gather_actions().is_empty());

    let mut h = Harness::start(
        r#"<Response><Gather input="speech" action="/heard" timeout="3"/></Response>"#,
    );
    h.advance(SEC);
    h.speak(SEC);
    h.voice(false);
    h.advance(10 * SEC);
    let at = h.recognitions()[0].0;
    assert_eq!(at, 2 * SEC + 3 * SEC - crate::media_ops::HANGOVER);
}

/// `dtmf speech`: the first input wins. A key before any speech makes a
/// DTMF gather (speech after it is not recognised); speech first makes
/// keys ignored.
#[test]
fn dtmf_speech_takes_the_first_input() {
    let twiml = r##"<Response><Gather input="dtmf speech" action="/heard" numDigits="2" speechTimeout="auto"/></Response>"##;
    let mut h = Harness::start(twiml);
    h.advance(SEC);
    h.key('4');
    h.speak(2 * SEC);
    h.key('2');
    let actions = h.gather_actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(param(&actions[0].1, "Digits"), "42");
    assert!(h.recognitions().is_empty());

    let mut h = Harness::start(twiml);
    h.advance(SEC);
    h.speak(SEC);
    h.key('4');
    h.key('2');
    h.voice(false);
    assert!(
        h.gather_actions().is_empty(),
        "keys ignored once speech was heard"
    );
    h.advance(2 * SEC);
    let at = h.recognitions()[0].0;
    assert_eq!(
        at,
        2 * SEC + crate::gather::AUTO_SILENCE - crate::media_ops::HANGOVER
    );
    h.recognized("", None);
    assert!(
        h.gather_actions().is_empty(),
        "nothing recognised: no input"
    );
}

/// `partialResultCallback`: once a second of speech the audio so far is
/// recognised and posted (UnstableSpeechResult, Stability, SequenceNumber),
/// one at a time; profanity is starred out in partial and final results
/// unless `profanityFilter="false"`.
#[test]
fn partial_results_are_posted_while_the_caller_speaks() {
    let mut h = Harness::start(
        r#"<Response><Gather input="speech" action="/heard" speechTimeout="auto" partialResultCallback="/partial"/></Response>"#,
    );
    h.advance(SEC);
    h.speak(SEC);
    // 1 s after the first speech: the first interim recognition.
    let recs = h.recognitions();
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].0, recs[0].2), (2 * SEC, Some(1)));
    h.advance(300 * MS);
    h.recognized("oh", None);
    h.speak(1200 * MS);
    // At 3 s the second one; it is not answered before 4 s, so 4 s skips.
    h.speak(1500 * MS);
    let recs = h.recognitions();
    assert_eq!(
        recs.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
        vec![(2 * SEC, Some(1)), (3 * SEC, Some(2))]
    );
    h.recognized("oh shit the", None);
    h.voice(false);
    h.advance(2 * SEC);
    let cbs = h.partial_callbacks();
    assert_eq!(cbs.len(), 2);
    assert_eq!(cb_param(&cbs[0].1, "UnstableSpeechResult"), "oh");
    assert_eq!(cb_param(&cbs[0].1, "SequenceNumber"), "1");
    assert_eq!(cb_param(&cbs[0].1, "Stability"), "0.00");
    assert_eq!(cb_param(&cbs[1].1, "UnstableSpeechResult"), "oh s*** the");
    assert_eq!(cb_param(&cbs[1].1, "SequenceNumber"), "2");
    assert_eq!(cb_param(&cbs[1].1, "Stability"), "0.33");
    assert!(cb_param(&cbs[1].1, "CallSid").starts_with("CA"));
    let last = h.recognitions().pop().unwrap();
    assert_eq!(last.2, None, "the utterance");
    h.recognized("oh shit the printer", Some("0.5"));
    assert_eq!(
        param(&h.gather_actions()[0].1, "SpeechResult"),
        "oh s*** the printer"
    );

    let mut h = Harness::start(
        r#"<Response><Gather input="speech" action="/heard" speechTimeout="1" profanityFilter="false"/></Response>"#,
    );
    h.speak(SEC);
    h.voice(false);
    h.advance(2 * SEC);
    h.recognized("oh shit", None);
    assert_eq!(param(&h.gather_actions()[0].1, "SpeechResult"), "oh shit");
    assert!(h.partial_callbacks().is_empty());
}

/// An utterance is cut at 60 s; a failed recognition is no input; a
/// recognition answering after the gather ended is dropped.
#[test]
fn a_long_utterance_is_cut_and_failures_are_no_input() {
    let mut h = Harness::start(
        r#"<Response><Gather input="speech" action="/heard" actionOnEmptyResult="true"/><Say>next</Say></Response>"#,
    );
    h.advance(SEC);
    h.speak(70 * SEC);
    let recs = h.recognitions();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].0, SEC + crate::gather::MAX_UTTERANCE);
    let seq = recs[0].1;
    h.msg(CallMsg::Recognized(Box::new(Recognized {
        seq,
        partial: None,
        result: Err("recogniser exited with 1".into()),
    })));
    let actions = h.gather_actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(param(&actions[0].1, "Digits"), "", "actionOnEmptyResult");
    // Stale: another answer for the same gathering changes nothing.
    h.recognized("late", None);
    assert_eq!(h.gather_actions().len(), 1);
}

/// A speech gather's call log replays: the voice changes and the
/// recogniser's answers come from the log.
#[test]
fn a_speech_gather_call_log_replays_to_the_same_outputs() {
    let mut h = Harness::start_full(
        r#"<Response><Gather input="speech" action="/heard" speechTimeout="auto" partialResultCallback="/partial"/></Response>"#,
        caller_invite(&[]),
        FakeEnv::default(),
        true,
    );
    h.advance(SEC);
    h.speak(1500 * MS);
    h.recognized("talk", None);
    h.voice(false);
    h.advance(2 * SEC);
    h.recognized("talk to sales", Some("0.8"));
    assert_eq!(h.gather_actions().len(), 1);
    assert_eq!(h.partial_callbacks().len(), 1);
    h.assert_replays();
}

// ----- INVITE with Replaces (RFC 3891) -----

impl Harness {
    /// A new party's INVITE (Call-ID `replacer`, its tag `rtag`) naming a
    /// dialog by `replaces`; its CSeq is 70.
    fn replacing_invite(&mut self, replaces: &str) {
        let invite = RequestBuilder::new(
            Method::Invite,
            rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
        )
        .via("UDP", "127.0.0.40:5060", "z9hG4bKreplacer")
        .max_forwards(70)
        .from("<sip:carol@127.0.0.40>;tag=rtag")
        .to("<sip:tandem@127.0.0.1:5080>")
        .call_id("replacer")
        .cseq(70)
        .contact("<sip:carol@127.0.0.40:5060>")
        .header(Header::Other("Replaces".into(), replaces.into()))
        .body("application/sdp", SDP.to_vec())
        .build();
        self.request_from(invite, peer("127.0.0.40:5060"));
    }

    /// Branch 0's dialog as a `Replaces` value (its Call-ID, our tag, the callee's).
    fn callee_dialog(&self) -> String {
        let invite = &self.invites()[0];
        format!(
            "{};to-tag={};from-tag=calleetag",
            call_id(invite),
            invite.headers.from_tag().unwrap()
        )
    }

    fn routed(&self) -> Vec<(bool, String)> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Route { call_id } => Some((true, call_id.clone())),
                Output::Unroute { call_id } => Some((false, call_id.clone())),
                _ => None,
            })
            .collect()
    }
}

/// An attended transfer completed toward Tandem: the bridged callee's
/// transfer target INVITEs with Replaces naming the callee's dialog. It is
/// answered 200 on a leg of its own and bridged with the caller; the
/// callee gets BYE; the caller's hangup later BYEs the new party, and the
/// Dial's action reports the bridge as one.
#[test]
fn an_invite_with_replaces_takes_the_bridged_callees_place() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
    );
    h.bridged();
    let callee_cid = call_id(&h.invites()[0]);
    let caller_leg = h.env.st().open[0];
    h.advance(3 * SEC);
    let replaces = h.callee_dialog();
    h.replacing_invite(&replaces);
    assert_eq!(h.answered_cseq(70), [200]);
    assert_eq!(
        h.sent(Method::Bye, &callee_cid).len(),
        1,
        "the replaced callee"
    );
    assert_eq!(
        h.routed(),
        [
            (true, callee_cid.clone()),
            (true, "replacer".into()),
            (false, callee_cid)
        ]
    );
    let new_leg = *h.env.st().open.last().unwrap();
    assert!(h.env.st().bridges.contains(&(caller_leg, new_leg)));
    assert!(h.action().is_none(), "the bridge goes on");
    h.advance(2 * SEC);
    h.caller_bye();
    assert_eq!(h.sent(Method::Bye, "replacer").len(), 1, "the new party");
    let (_, action) = h.action().expect("the Dial's action");
    assert_eq!(action["DialCallStatus"], "completed");
    assert_eq!(action["DialCallDuration"], "5");
}

/// Replaces naming the caller's dialog: the new party takes the caller's
/// place in the bridge; its BYE later ends the call like the caller's.
#[test]
fn an_invite_with_replaces_takes_the_callers_place() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
    );
    h.bridged();
    let callee_leg = h.env.st().open[1];
    let replaces = format!("caller-call-id;to-tag={};from-tag=caller", h.call.local_tag);
    h.replacing_invite(&replaces);
    assert_eq!(h.answered_cseq(70), [200]);
    assert_eq!(h.byes_to_caller(), 1, "the replaced caller");
    let new_leg = *h.env.st().open.last().unwrap();
    assert!(h.env.st().bridges.contains(&(new_leg, callee_leg)));
    assert_eq!(h.sent(Method::Bye, &call_id(&h.invites()[0])).len(), 0);
    // The new party hangs up in its dialog.
    let bye = RequestBuilder::new(
        Method::Bye,
        rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
    )
    .via("UDP", "127.0.0.40:5060", "z9hG4bKreplacerbye")
    .max_forwards(70)
    .from("<sip:carol@127.0.0.40>;tag=rtag")
    .to(format!(
        "<sip:tandem@127.0.0.1:5080>;tag={}",
        h.call.local_tag
    ))
    .call_id("replacer")
    .cseq(71)
    .build();
    h.request_from(bye, peer("127.0.0.40:5060"));
    assert_eq!(h.answered_cseq(71), [200]);
    assert_eq!(h.sent(Method::Bye, &call_id(&h.invites()[0])).len(), 1);
    assert_eq!(
        h.action().expect("the Dial's action").1["DialCallStatus"],
        "completed"
    );
}

/// What cannot be replaced is refused with the RFC's codes: an unknown
/// dialog 481, early-only naming a confirmed one 486, a leg that is not
/// bridged (still ringing) 603; nothing changes.
#[test]
fn an_invite_with_replaces_that_cannot_be_served_changes_nothing() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
    );
    h.advance(10 * MS);
    h.callee(0, 180, "calleetag");
    let ringing = h.callee_dialog();
    h.replacing_invite(&ringing);
    assert_eq!(h.answered_cseq(70), [603], "not bridged yet");
    h.callee(0, 200, "calleetag");
    h.caller_ack();
    let replaces = h.callee_dialog();
    h.replacing_invite(&replaces.replace("calleetag", "other"));
    h.replacing_invite(&format!("{replaces};early-only"));
    h.replacing_invite("garbage");
    assert_eq!(h.answered_cseq(70), [603, 481, 486, 400]);
    assert!(h.routed().iter().all(|(_, c)| c != "replacer"));
    assert_eq!(h.sent(Method::Bye, &call_id(&h.invites()[0])).len(), 0);
    assert_eq!(h.byes_to_caller(), 0);
}

/// The other direction of an attended transfer: a REFER whose Refer-To
/// carries `?Replaces=` reaches referUrl as ReferTransferTarget; a `<Sip>`
/// to it sends the INVITE with that Replaces header.
#[test]
fn a_sip_noun_with_replaces_sends_it_on() {
    let mut h = Harness::start(REFER_DIAL);
    h.bridged();
    let target = "sip:carol@127.0.0.30:5060?Replaces=abc%40127.0.0.30%3Bto-tag%3D1%3Bfrom-tag%3D2";
    h.callee_refer(20, Some(&format!("<{target}>")));
    assert_eq!(param(&h.refer_fetches()[0], "ReferTransferTarget"), target);
    h.msg(CallMsg::ReferFetched(Box::new(Ok((
        format!(
            "<Response><Dial><Sip>{}</Sip></Dial></Response>",
            target.replace('&', "&amp;")
        ),
        None,
    )))));
    let invites = h.invites();
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[1].uri.to_string(), "sip:carol@127.0.0.30:5060");
    assert_eq!(
        other_header(&invites[1].headers, "Replaces"),
        Some("abc@127.0.0.30;to-tag=1;from-tag=2")
    );
}

/// A screening document's speech `<Gather>` listens to the callee: its
/// utterance is recognised and goes to the screening's `action` (with the
/// child's partial results), and the taps come off the callee's leg.
#[test]
fn a_screened_callee_answers_by_speech() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/a"><Sip url="/screen">sip:x@127.0.0.21</Sip></Dial></Response>"#,
    );
    h.advance(200 * MS);
    h.callee(0, 200, "t");
    let cid = call_id(&h.invites()[0]);
    let branch_leg = h.env.st().open[1];
    h.msg(CallMsg::ScreenFetched {
        call_id: cid,
        result: Box::new(Ok((
            r#"<Response><Gather input="speech" speechTimeout="auto" hints="yes, no" partialResultCallback="/partial" action="/accept"/><Hangup/></Response>"#.into(),
            Some(Url::parse("http://app.test/screen").unwrap()),
        ))),
    });
    {
        let st = h.env.st();
        assert!(st.speech.contains(&branch_leg) && st.voice.contains(&branch_leg));
    }
    let voice = |h: &mut Harness, speaking: bool| {
        h.msg(CallMsg::Voice(VoiceChange {
            leg: branch_leg,
            speaking,
            at: tokio::time::Instant::from_std(h.now),
        }));
    };
    h.advance(SEC);
    voice(&mut h, true);
    h.advance(SEC);
    let partial = h.recognitions();
    assert_eq!(partial.len(), 1);
    assert_eq!(partial[0].2, Some(1));
    assert_eq!(partial[0].3.hints.as_deref(), Some("yes, no"));
    h.recognized("yes", None);
    let cbs = h.partial_callbacks();
    assert_eq!(cbs.len(), 1);
    assert_eq!(cb_param(&cbs[0].1, "Direction"), "outbound-dial");
    assert_eq!(cb_param(&cbs[0].1, "UnstableSpeechResult"), "yes");
    voice(&mut h, false);
    h.advance(2 * SEC);
    let last = h.recognitions().pop().unwrap();
    assert_eq!(last.2, None);
    h.recognized("yes", Some("0.7"));
    let accept = h.log.iter().find_map(|(_, o)| match o {
        Output::Fetch {
            screen: Some(_),
            req,
            ..
        } if req.url.path() == "/accept" => Some(req.params.clone()),
        _ => None,
    });
    assert_eq!(
        accept,
        Some(vec![
            ("SpeechResult".to_owned(), "yes".to_owned()),
            ("Confidence".to_owned(), "0.7".to_owned())
        ])
    );
    let st = h.env.st();
    assert!(!st.speech.contains(&branch_leg) && !st.voice.contains(&branch_leg));
}

// ----- the REST API modifies live calls (issue 11, call/api.rs) -----

impl Harness {
    /// A REST API modification of `sid`; its answer.
    fn api(&mut self, sid: &str, action: super::ApiAction) -> Result<(), super::ApiRefusal> {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.msg(CallMsg::Api(Box::new(super::ApiCommand {
            sid: sid.to_owned(),
            action,
            reply: Some(tx),
        })));
        rx.try_recv().expect("the call answers at once")
    }

    /// The child CallSids of the history, in the order they first appear.
    fn child_sids(&self) -> Vec<String> {
        let parent = self.call.sid().to_owned();
        let mut v: Vec<String> = Vec::new();
        for (_, sid, _, _) in self.history() {
            if sid != parent && !v.contains(&sid) {
                v.push(sid);
            }
        }
        v
    }

    /// The documents fetched for the caller, by path.
    fn fetched_paths(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Fetch {
                    screen: None, req, ..
                } => Some(req.url.path().to_owned()),
                _ => None,
            })
            .collect()
    }
}

/// `Twiml` on a parent in a bridged `<Dial>`: the callee is hung up, the
/// Dial's action is not requested, and the new document runs at once.
#[test]
fn the_api_moves_a_bridged_parent_to_new_twiml_without_the_dial_action() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
    );
    h.callee(0, 200, "ta");
    h.advance(30 * SEC);
    let sid = h.call.sid().to_owned();
    let b = call_id(&h.invites()[0]);
    let r = h.api(
        &sid,
        super::ApiAction::Twiml(r#"<Response><Redirect>/next</Redirect></Response>"#.into()),
    );
    assert_eq!(r, Ok(()));
    assert_eq!(h.sent(Method::Bye, &b), [30 * SEC]);
    assert_eq!(
        h.fetched_paths(),
        ["/next"],
        "no Dial action, the new document's verb"
    );
    assert!(h.action().is_none());
    assert_eq!(h.byes_to_caller(), 0, "the caller stays");
}

/// `Url` on a parent pausing: fetched with the call's parameters, then the
/// pause stops and the fetched document runs; a failed fetch changes nothing.
#[test]
fn the_api_url_is_fetched_then_replaces_what_the_caller_was_doing() {
    let mut h = Harness::start(r#"<Response><Pause length="60"/><Hangup/></Response>"#);
    h.advance(5 * SEC);
    let sid = h.call.sid().to_owned();
    let url = Url::parse("http://app.test/moved").unwrap();
    assert_eq!(
        h.api(&sid, super::ApiAction::Url(url, tandem_twiml::Method::Post)),
        Ok(())
    );
    let (req, params) = h
        .log
        .iter()
        .find_map(|(_, o)| match o {
            Output::Fetch { req, params, .. } if req.url.path() == "/moved" => {
                Some((req.clone(), params.clone()))
            }
            _ => None,
        })
        .expect("the Url is fetched");
    assert_eq!(req.reason, tandem_twiml::FetchReason::Modify);
    assert!(params.iter().any(|(k, v)| k == "CallSid" && v == sid));
    h.msg(CallMsg::ApiFetched(Box::new(Err("timeout".into()))));
    h.advance(SEC);
    assert_eq!(
        h.byes_to_caller(),
        0,
        "a failed Url leaves the call as it was"
    );
    h.msg(CallMsg::ApiFetched(Box::new(Ok((
        "<Response><Hangup/></Response>".into(),
        Some(Url::parse("http://app.test/moved").unwrap()),
    )))));
    assert_eq!(
        h.byes_to_caller(),
        1,
        "the pause stopped; <Hangup/> ran at 6 s"
    );
    assert_eq!(
        h.history().last().map(|r| (r.0, r.2, r.3)),
        Some((6 * SEC, CallStatus::Completed, Some(6)))
    );
}

/// `Status=canceled` on one ringing child of two cancels it alone; on the
/// last one left the Dial ends `canceled` and its action says so.
#[test]
fn the_api_cancels_ringing_children_one_by_one() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip><Sip>sip:b@127.0.0.22:5060</Sip></Dial></Response>"#,
    );
    h.callee(0, 180, "ta");
    h.callee(1, 180, "tb");
    h.advance(2 * SEC);
    let kids = h.child_sids();
    let (a, b) = (call_id(&h.invites()[0]), call_id(&h.invites()[1]));
    assert_eq!(h.api(&kids[0], super::ApiAction::Cancel), Ok(()));
    assert_eq!(h.cancels(), [(2 * SEC, a.clone())]);
    assert!(h.action().is_none(), "b still rings");
    assert_eq!(
        h.api(&kids[0], super::ApiAction::Cancel),
        Err(super::ApiRefusal::NotInProgress),
        "a cancelled child is over"
    );
    h.advance(SEC);
    assert_eq!(h.api(&kids[1], super::ApiAction::Complete), Ok(()));
    assert_eq!(h.cancels(), [(2 * SEC, a), (3 * SEC, b)]);
    let (at, p) = h.action().expect("the Dial ended");
    assert_eq!(at, 3 * SEC);
    assert_eq!(p["DialCallStatus"], "canceled");
    let ends: Vec<CallStatus> = h
        .history()
        .iter()
        .filter(|r| r.1 != h.call.sid())
        .filter(|r| crate::history::is_final(r.2))
        .map(|r| r.2)
        .collect();
    assert_eq!(ends, [CallStatus::Canceled, CallStatus::Canceled]);
}

/// `Status=completed` on the bridged child hangs it up: the Dial ends
/// `completed` with its duration and runs its action; `canceled` on it
/// changes nothing (it is in progress).
#[test]
fn the_api_completes_a_bridged_child_and_the_parent_runs_the_action() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
    );
    h.callee(0, 200, "ta");
    h.advance(12 * SEC);
    let kid = h.child_sids()[0].clone();
    let b = call_id(&h.invites()[0]);
    assert_eq!(h.api(&kid, super::ApiAction::Cancel), Ok(()));
    assert!(h.sent(Method::Bye, &b).is_empty());
    assert_eq!(h.api(&kid, super::ApiAction::Complete), Ok(()));
    assert_eq!(h.sent(Method::Bye, &b), [12 * SEC]);
    let (at, p) = h.action().expect("action requested");
    assert_eq!(at, 12 * SEC);
    assert_eq!(p["DialCallStatus"], "completed");
    assert_eq!(p["DialCallDuration"], "12");
    assert_eq!(h.byes_to_caller(), 0);
}

/// `Twiml` on the bridged child: it leaves the bridge with its dialog, its
/// media leg (handed over, not closed) and its CallSid to run the new
/// document as a call of its own; the parent's Dial ends `completed` and
/// its action runs. The child's call (`Call::adopted`) runs the document
/// on the callee's leg — no new INVITE, a BYE when it hangs up — and its
/// `completed` goes out with its ParentCallSid and its whole duration. A
/// child still ringing cannot be redirected.
#[test]
fn the_api_moves_a_bridged_child_to_its_own_twiml_and_the_parent_runs_the_action() {
    let mut h = Harness::start(
        r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip><Sip statusCallback="http://app.test/kid" statusCallbackEvent="completed">sip:b@127.0.0.22:5060</Sip></Dial></Response>"#,
    );
    h.callee(0, 180, "ta");
    let kids = h.child_sids();
    assert_eq!(
        h.api(&kids[0], super::ApiAction::Twiml("<Response/>".into())),
        Err(super::ApiRefusal::NotInProgress),
        "a ringing child is not redirected"
    );
    h.advance(SEC);
    h.callee(1, 200, "tb");
    h.advance(12 * SEC);
    let kid = h.child_sids()[1].clone();
    let parent = h.call.sid().to_owned();
    let b = call_id(&h.invites()[1]);
    let child_leg = h.env.st().bridges.last().expect("bridged").1;
    let r = h.api(
        &kid,
        super::ApiAction::Twiml(r#"<Response><Pause length="3"/><Hangup/></Response>"#.into()),
    );
    assert_eq!(r, Ok(()));
    assert!(
        h.sent(Method::Bye, &b).is_empty(),
        "the child is not hung up"
    );
    assert_eq!(h.env.st().detached, [child_leg], "its leg is handed over");
    assert!(!h.env.st().closed.iter().any(|(_, l)| *l == child_leg));
    let (at, p) = h.action().expect("the parent's Dial action runs");
    assert_eq!(at, 13 * SEC);
    assert_eq!(p["DialCallStatus"], "completed");
    assert_eq!(p["DialCallSid"], kid);
    assert_eq!(p["DialCallDuration"], "12");
    assert_eq!(h.byes_to_caller(), 0, "the caller stays");
    assert!(
        !h.statuses()
            .iter()
            .any(|s| param(&s.params, "CallSid") == kid),
        "the child's completed is not the parent's to send"
    );
    assert!(
        !h.log
            .iter()
            .any(|(_, o)| matches!(o, Output::Unroute { call_id } if *call_id == b)),
        "the child's Call-ID stays routed (to its own call now)"
    );
    let at = h
        .log
        .iter()
        .position(|(_, o)| matches!(o, Output::Spawn(_)))
        .expect("the child is spawned");
    let Output::Spawn(spawn) = h.log.remove(at).1 else {
        unreachable!()
    };
    assert_eq!(spawn.callee.sid, kid);
    assert_eq!(spawn.parent_sid, parent);
    assert_eq!(spawn.callee.call_id, b);
    assert_eq!(spawn.leg.as_ref().map(|l| l.id), Some(child_leg));

    // The child's own call.
    let env = FakeEnv::default();
    env.st().now = Some(h.now);
    let mut spawn = *spawn;
    let leg = spawn.leg.take().expect("a leg");
    let mut fresh = env.clone();
    Env::adopt_leg(&mut fresh, leg);
    let call = Call::adopted(h.now, config(), Box::new(fresh), IdGen::seeded(3), spawn)
        .expect("the child's call starts");
    let mut c = Harness {
        call,
        env,
        t0: h.t0,
        now: h.now,
        log: Vec::new(),
        tx: 10,
        events: None,
    };
    c.call.begin(c.now);
    c.drain();
    assert!(
        c.invites().is_empty(),
        "no new INVITE: the callee is answered"
    );
    assert!(
        !c.log
            .iter()
            .any(|(_, o)| matches!(o, Output::Respond { .. }))
    );
    c.advance(10 * SEC);
    assert_eq!(
        c.sent(Method::Bye, &b),
        [16 * SEC],
        "<Pause length=3/><Hangup/> on the callee's leg"
    );
    let done = c.statuses();
    let last = done.last().expect("the child's completed");
    assert_eq!(
        (last.status, last.duration),
        (CallStatus::Completed, Some(15))
    );
    assert_eq!(param(&last.params, "CallSid"), kid);
    assert_eq!(param(&last.params, "ParentCallSid"), parent);
    assert_eq!(param(&last.params, "Direction"), "outbound-dial");
    let hist = c.history();
    let end = hist.last().expect("history");
    assert_eq!(
        (end.1.as_str(), end.2),
        (kid.as_str(), CallStatus::Completed)
    );
}

/// `Status=canceled` on a parent still ringing (`answerOnBridge`) answers
/// it 487 and cancels its branch; `completed` on an answered one sends BYE;
/// a call that is over refuses every modification.
#[test]
fn the_api_hangs_up_a_parent_and_refuses_a_finished_call() {
    let mut h = Harness::start(
        r#"<Response><Dial answerOnBridge="true"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
    );
    h.callee(0, 180, "ta");
    h.advance(SEC);
    let sid = h.call.sid().to_owned();
    assert_eq!(h.api(&sid, super::ApiAction::Cancel), Ok(()));
    assert_eq!(h.cancels().len(), 1, "its ringing branch is cancelled");
    let refused = h.log.iter().any(|(_, o)| {
        matches!(o, Output::Respond { response, .. } if u16::from(response.status_code.clone()) == 487)
    });
    assert!(refused, "a ringing caller gets 487");
    assert_eq!(h.history().last().map(|r| r.2), Some(CallStatus::Canceled));
    assert_eq!(
        h.api(&sid, super::ApiAction::Complete),
        Err(super::ApiRefusal::NotInProgress)
    );

    let mut h = Harness::start(r#"<Response><Say>hi</Say><Pause length="60"/></Response>"#);
    h.advance(3 * SEC);
    let sid = h.call.sid().to_owned();
    assert_eq!(h.api(&sid, super::ApiAction::Complete), Ok(()));
    assert_eq!(h.byes_to_caller(), 1);
    assert_eq!(h.history().last().map(|r| r.2), Some(CallStatus::Completed));
}

/// A call modified through the API replays from its log.
#[test]
fn api_modifications_replay() {
    let mut h = Harness::start_full(
        r#"<Response><Dial><Sip>sip:a@127.0.0.21:5060</Sip><Sip>sip:b@127.0.0.22:5060</Sip></Dial><Pause length="9"/></Response>"#,
        caller_invite(&[]),
        FakeEnv::default(),
        true,
    );
    h.callee(0, 180, "ta");
    h.advance(SEC);
    let kids = h.child_sids();
    h.api(&kids[0], super::ApiAction::Cancel).unwrap();
    let sid = h.call.sid().to_owned();
    h.api(
        &sid,
        super::ApiAction::Url(
            Url::parse("http://app.test/x").unwrap(),
            tandem_twiml::Method::Get,
        ),
    )
    .unwrap();
    h.msg(CallMsg::ApiFetched(Box::new(Ok((
        "<Response><Hangup/></Response>".into(),
        None,
    )))));
    assert!(h.assert_replays() > 10);
}

// ----- calls placed through the REST API (POST Calls.json) -----

const API_SID: &str = "CA0123456789abcdef0123456789abcdef";

impl Harness {
    /// A call placed through the REST API: `dial` rings its callee,
    /// `answered` runs once it answers.
    fn start_api(dial: &str, answered: &str) -> Self {
        let t0 = Instant::now();
        let env = FakeEnv::default();
        env.st().now = Some(t0);
        let start = Start {
            interp: Interpreter::new(tandem_twiml::parse(dial).unwrap(), None),
            document_url: None,
            fallback: None,
        };
        let call = Call::new_api(
            t0,
            trunk_config(),
            Box::new(env.clone()),
            IdGen::seeded(9),
            API_SID.into(),
            "+15550009999",
            "+15550001111",
            start,
            (tandem_twiml::parse(answered).unwrap(), None),
        )
        .expect("call starts");
        let mut h = Self {
            call,
            env,
            t0,
            now: t0,
            log: Vec::new(),
            tx: 10,
            events: None,
        };
        h.call.begin(t0);
        h.drain();
        h
    }

    /// Whether anything was answered or sent in the stand-in caller's dialog.
    fn touched_the_phantom(&self) -> bool {
        self.log.iter().any(|(_, o)| match o {
            Output::Respond { .. } => true,
            Output::Request { request, .. } => request
                .headers
                .call_id()
                .is_some_and(|c| c.starts_with("api-")),
            _ => false,
        })
    }
}

/// A REST API call is its callee's leg: one INVITE from the `From`, the
/// CallSid the API gave from `initiated` on (direction `outbound-api`, no
/// parent); once answered its document runs on that leg (here: 5 s, then
/// BYE to the callee) and it ends `completed` with its duration. Nothing
/// is ever sent to a caller: there is none.
#[test]
fn a_call_placed_through_the_api_becomes_its_callee_leg_once_answered() {
    let mut h = Harness::start_api(
        r#"<Response><Dial timeout="60" callerId="+15550009999"><Sip statusCallback="http://app.test/s" statusCallbackEvent="initiated ringing answered completed">sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
        r#"<Response><Pause length="5"/><Hangup/></Response>"#,
    );
    let invites = h.invites();
    assert_eq!(invites.len(), 1);
    assert!(
        h.invites()[0]
            .headers
            .value_of(|x| matches!(x, Header::From(_)))
            .unwrap()
            .contains("+15550009999")
    );
    h.advance(300 * MS);
    h.callee(0, 180, "ta");
    h.advance(2 * SEC);
    h.callee(0, 200, "ta");
    let b = call_id(&invites[0]);
    assert_eq!(h.sent(Method::Ack, &b).len(), 1);
    h.advance(10 * SEC);
    assert_eq!(
        h.sent(Method::Bye, &b),
        [7_300 * MS],
        "the document ran on the callee's leg"
    );
    assert!(!h.touched_the_phantom());
    assert_eq!(
        h.history()
            .iter()
            .map(|r| (r.0, r.1.as_str(), r.2, r.3))
            .collect::<Vec<_>>(),
        [
            (Duration::ZERO, API_SID, CallStatus::Initiated, None),
            (300 * MS, API_SID, CallStatus::Ringing, None),
            (2_300 * MS, API_SID, CallStatus::InProgress, None),
            (7_300 * MS, API_SID, CallStatus::Completed, Some(5)),
        ]
    );
    let statuses: Vec<(CallStatus, String, String)> = h
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Status { event, .. } => Some((
                event.call.status,
                event.call.call_sid.clone(),
                event.call.direction.as_str().to_owned(),
            )),
            _ => None,
        })
        .collect();
    let want: Vec<(CallStatus, String, String)> = [
        CallStatus::Initiated,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
    ]
    .into_iter()
    .map(|s| (s, API_SID.to_owned(), "outbound-api".to_owned()))
    .collect();
    assert_eq!(statuses, want);
    assert!(h.call.is_done());
}

/// A busy callee ends a REST API call `busy`, once, with nothing run.
#[test]
fn a_busy_callee_ends_an_api_call_busy() {
    let mut h = Harness::start_api(
        r#"<Response><Dial callerId="+15550009999"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
        r#"<Response><Say>never</Say></Response>"#,
    );
    h.advance(SEC);
    h.callee(0, 486, "ta");
    let finals: Vec<CallStatus> = h
        .history()
        .into_iter()
        .filter(|r| crate::history::is_final(r.2))
        .map(|r| r.2)
        .collect();
    assert_eq!(finals, [CallStatus::Busy]);
    assert!(!h.touched_the_phantom());
    assert!(h.call.is_done());
}

/// `MachineDetection` on a placed call: its `<Number machineDetection>`
/// holds the answered callee until the detector decides (here: human after
/// 1.5 s), then the call's `Url` is requested with `AnsweredBy` and
/// `MachineDetectionDuration`, and the history keeps `AnsweredBy`.
#[test]
fn a_placed_call_with_machine_detection_requests_its_url_with_answered_by() {
    let mut h = Harness::start_api(
        r#"<Response><Dial><Number machineDetection="Enable">+15550001111</Number></Dial></Response>"#,
        r#"<Response><Redirect>http://app.test/answered</Redirect></Response>"#,
    );
    h.advance(SEC);
    h.callee(0, 200, "ta");
    let leg = h.env.st().amd.last().expect("detection started").1;
    h.advance(1_500 * MS);
    assert!(
        h.fetched_paths().is_empty(),
        "the Url waits for the detector"
    );
    h.amd_decides(leg, tandem_media::AnsweredBy::Human, 1_500);
    let (req, params) = h
        .log
        .iter()
        .find_map(|(_, o)| match o {
            Output::Fetch { req, params, .. } => Some((req.clone(), params.clone())),
            _ => None,
        })
        .expect("the Url is requested");
    assert_eq!(req.url.path(), "/answered");
    let p: HashMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(p["AnsweredBy"], "human");
    assert_eq!(p["MachineDetectionDuration"], "1500");
    assert_eq!(p["CallSid"], API_SID);
    let by: Vec<Option<String>> = h
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::History(r) if r.status == CallStatus::InProgress => Some(r.answered_by.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        by,
        [None, Some("human".to_owned())],
        "answered, then detected"
    );
}

/// `TimeLimit` on a placed call: hung up that long after the answer,
/// whatever its document is doing.
#[test]
fn a_placed_call_is_hung_up_at_its_time_limit() {
    let mut h = Harness::start_api(
        r#"<Response><Dial><Number>+15550001111</Number></Dial></Response>"#,
        r#"<Response><Pause length="60"/></Response>"#,
    );
    h.call.place(Some(5 * SEC), None);
    h.advance(2 * SEC);
    h.callee(0, 200, "ta");
    let b = call_id(&h.invites()[0]);
    h.advance(30 * SEC);
    assert_eq!(h.sent(Method::Bye, &b), [7 * SEC], "5 s after the answer");
    assert_eq!(
        h.history().last().map(|r| (r.2, r.3)),
        Some((CallStatus::Completed, Some(5)))
    );
}

/// `FallbackUrl` of a placed call serves the document its `Url` names
/// once answered (the first document it requests), and no later one.
#[test]
fn a_placed_calls_fallback_serves_its_first_document_only() {
    let mut h = Harness::start_api(
        r#"<Response><Dial><Number>+15550001111</Number></Dial></Response>"#,
        r#"<Response><Redirect>http://app.test/answered</Redirect></Response>"#,
    );
    h.call.fallback = Some(tandem_webhook::Target::new(
        "http://app.test/fallback",
        tandem_twiml::Method::Post,
    ));
    h.callee(0, 200, "ta");
    h.msg(CallMsg::Fetched(Box::new(Ok((
        "<Response><Redirect>http://app.test/next</Redirect></Response>".into(),
        Url::parse("http://app.test/answered").ok(),
    )))));
    let fetches: Vec<(String, bool)> = h
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Fetch { req, fallback, .. } => {
                Some((req.url.path().to_owned(), fallback.is_some()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        fetches,
        [("/answered".to_owned(), true), ("/next".to_owned(), false)]
    );
}

/// `Twiml` on a caller waiting in `<Enqueue>` (or dequeued through the
/// REST API's Members resource, which is the same modification): it
/// leaves the queue, its hold document stops, and the new document runs
/// without the `<Enqueue action>`.
#[test]
fn the_api_moves_a_caller_out_of_its_queue_without_the_enqueue_action() {
    let mut h = Harness::start(ENQUEUE);
    h.advance(SEC);
    h.hold_doc("<Response><Pause length=\"30\"/></Response>", None, false);
    h.advance(2 * SEC);
    let sid = h.call.sid().to_owned();
    let r = h.api(
        &sid,
        super::ApiAction::Twiml(r#"<Response><Redirect>/moved</Redirect></Response>"#.into()),
    );
    assert_eq!(r, Ok(()));
    assert!(
        h.env
            .st()
            .queue_ops
            .iter()
            .any(|o| *o == format!("leave support {sid}"))
    );
    assert!(
        h.fetches(tandem_twiml::FetchReason::EnqueueAction)
            .is_empty()
    );
    assert_eq!(h.fetched_paths().last().map(String::as_str), Some("/moved"));
    h.advance(60 * SEC);
    assert!(
        h.fetches(tandem_twiml::FetchReason::Wait).len() == 1,
        "the hold document is not requested again"
    );
}

/// `Twiml` on a caller in a `<Conference>`: it leaves the room and the
/// new document runs without the `<Dial action>`.
#[test]
fn the_api_moves_a_caller_out_of_its_conference_without_the_dial_action() {
    let mut h = Harness::start(&conference_doc("", ""));
    h.advance(20 * SEC);
    let sid = h.call.sid().to_owned();
    let r = h.api(
        &sid,
        super::ApiAction::Twiml(r#"<Response><Redirect>/moved</Redirect></Response>"#.into()),
    );
    assert_eq!(r, Ok(()));
    assert_eq!(h.env.st().left, vec![h.t0 + 20 * SEC]);
    assert!(h.action().is_none());
    assert_eq!(h.fetched_paths().last().map(String::as_str), Some("/moved"));
    assert_eq!(h.byes_to_caller(), 0);
}

/// `AsyncAmd=true` on a placed call: its `Url` runs at once on answer, the
/// detection goes on on the call's leg after the callee took the call over,
/// and its result goes to `AsyncAmdStatusCallback` with the call's
/// CallSid, and to the history.
#[test]
fn a_placed_call_with_async_amd_runs_its_url_at_once_and_posts_the_result() {
    let mut h = Harness::start_api(
        r#"<Response><Dial><Number machineDetection="Enable" amdStatusCallback="http://app.test/amd">+15550001111</Number></Dial></Response>"#,
        r#"<Response><Redirect>http://app.test/answered</Redirect></Response>"#,
    );
    h.callee(0, 200, "ta");
    assert_eq!(h.fetched_paths(), ["/answered"], "no wait for the detector");
    let leg = h.env.st().amd.last().expect("detection started").1;
    h.advance(2 * SEC);
    h.amd_decides(leg, tandem_media::AnsweredBy::MachineStart, 2_000);
    let posted: Vec<(String, String, String)> = h
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Callback {
                sid, url, params, ..
            } => Some((
                sid.clone(),
                url.path().to_owned(),
                param(
                    &params
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect::<Vec<_>>(),
                    "AnsweredBy",
                )
                .to_owned(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        posted,
        [(
            API_SID.to_owned(),
            "/amd".to_owned(),
            "machine_start".to_owned()
        )]
    );
    let last = h
        .log
        .iter()
        .rev()
        .find_map(|(_, o)| match o {
            Output::History(r) => Some(r.answered_by.clone()),
            _ => None,
        })
        .flatten();
    assert_eq!(last.as_deref(), Some("machine_start"));
}

/// `Record=true` on a placed call: recorded on the callee's leg from the
/// answer to the end of the call, `in-progress` and `completed` posted to
/// its `RecordingStatusCallback` with `RecordingSource=OutboundAPI`.
#[test]
fn a_placed_call_with_record_is_recorded_from_its_answer_to_its_end() {
    let mut h = Harness::start_api(
        r#"<Response><Dial><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#,
        r#"<Response><Pause length="4"/><Hangup/></Response>"#,
    );
    h.call.place(
        None,
        Some(super::ApiRecord {
            opts: crate::recording::RecordingOptions {
                from: crate::recording::RecordFrom::Answer,
                layout: tandem_media::ChannelLayout::Mono,
                track: tandem_media::RecordingTrack::Both,
                trim: tandem_media::Trim::TrimSilence,
                source: crate::recording::RecordingSource::OutboundApi,
            },
            callback: Some((
                Url::parse("http://app.test/rec").unwrap(),
                tandem_webhook::Method::Post,
                vec![
                    tandem_twiml::RecordingStatus::InProgress,
                    tandem_twiml::RecordingStatus::Completed,
                ],
            )),
        }),
    );
    h.env.st().record_secs = 4;
    h.advance(SEC);
    h.callee(0, 200, "ta");
    let leg = h.call.media.expect("the callee's leg is the call's");
    h.advance(10 * SEC);
    {
        let st = h.env.st();
        assert_eq!(st.recordings.len(), 1);
        assert_eq!((st.recordings[0].0, st.recordings[0].1), (h.t0 + SEC, leg));
        assert_eq!(st.stopped, [h.t0 + 5 * SEC], "stopped when the call ended");
    }
    let events: Vec<(Duration, String, String)> = h
        .log
        .iter()
        .filter_map(|(at, o)| match o {
            Output::Recording { url, event, .. } => {
                assert_eq!(url.path(), "/rec");
                let p = event.params();
                Some((
                    *at,
                    p.get("RecordingStatus").unwrap_or("").to_owned(),
                    p.get("RecordingSource").unwrap_or("").to_owned(),
                ))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        events,
        [
            (SEC, "in-progress".to_owned(), "OutboundAPI".to_owned()),
            (5 * SEC, "completed".to_owned(), "OutboundAPI".to_owned()),
        ]
    );
}

// ----- Session timers (RFC 4028) -----

const SECOND: Duration = Duration::from_secs(1);

/// A caller's INVITE that supports session timers, with these extra headers.
fn timer_invite(extra: &[(&str, &str)]) -> Request {
    let mut invite = caller_invite(extra);
    invite
        .headers
        .push(Header::Supported("replaces, timer".into()));
    invite
}

impl Harness {
    /// The final responses sent to the caller's INVITE (CSeq 1).
    fn invite_answers(&self) -> Vec<Response> {
        self.invite_responses()
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| r.status_code.code() >= 200)
            .collect()
    }

    /// The requests Tandem sent in the dialog with Call-ID `cid` by `method`.
    fn requests_in(&self, method: &Method, cid: &str) -> Vec<(Duration, Request)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Request { request, .. }
                    if request.method == *method && request.headers.call_id() == Some(cid) =>
                {
                    Some((*at, request.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// A re-INVITE from the caller in its dialog, with these extra headers.
    fn caller_reinvite(&mut self, cseq: u32, extra: &[(&str, &str)]) {
        self.caller_reinvite_with(cseq, extra, SDP);
    }

    /// The same, offering `sdp`.
    fn caller_reinvite_with(&mut self, cseq: u32, extra: &[(&str, &str)], sdp: &[u8]) {
        let mut b = RequestBuilder::new(
            Method::Invite,
            rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
        )
        .via("UDP", CALLER, &format!("z9hG4bKre{cseq}"))
        .max_forwards(70)
        .from("<sip:+15551112222@127.0.0.9>;tag=caller")
        .to(format!(
            "<sip:+15550001000@127.0.0.1:5080>;tag={}",
            self.call.local_tag
        ))
        .call_id("caller-call-id")
        .cseq(cseq)
        .contact(format!("<sip:alice@{CALLER}>"))
        .header(Header::Supported("timer".into()));
        for (k, v) in extra {
            b = b.header(Header::Other((*k).to_owned(), (*v).to_owned()));
        }
        self.request(b.body("application/sdp", sdp.to_vec()).build());
    }

    /// The peer answers `code` to a request Tandem sent, with extra headers.
    fn answer_request(&mut self, req: &Request, code: u16, extra: Vec<Header>) {
        let mut r = response_to(req, code, None, None);
        for h in extra {
            r.headers.push(h);
        }
        self.msg(CallMsg::Response {
            response: Box::new(r),
            source: None,
        });
    }
}

const BRIDGE_ONE: &str =
    r#"<Response><Dial action="/action"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#;

/// A caller that asks for a 90 s session and refreshes it keeps its call;
/// when its refreshes stop, Tandem ends the call 30 s (a third) before the
/// session would expire: BYE to the caller and the callee (regression: such a caller's INVITE used to get 420 when it
/// required `timer`).
#[test]
fn a_caller_that_stops_refreshing_is_hung_up_before_its_session_expires() {
    let mut invite = timer_invite(&[("Session-Expires", "90")]);
    invite.headers.push(Header::Require("timer".into()));
    let mut h = Harness::start_with(BRIDGE_ONE, invite, FakeEnv::default());
    h.bridged();
    let ok = &h.invite_answers()[0];
    assert_eq!(ok.status_code.code(), 200);
    assert_eq!(
        ok.headers.named("Session-Expires"),
        Some("90;refresher=uac")
    );
    assert!(ok.headers.iter().any(
        |x| matches!(x, Header::Require(_)) && tandem_sip::message::header_value(x) == "timer"
    ));
    // Refreshed at 50 s: the 200 names the session again.
    h.advance(50 * SECOND);
    h.caller_reinvite(2, &[("Session-Expires", "90;refresher=uac")]);
    let re = h
        .log
        .iter()
        .rev()
        .find_map(|(_, o)| match o {
            Output::Respond { response, .. }
                if response.headers.cseq() == Some((2, Method::Invite)) =>
            {
                Some(response.clone())
            }
            _ => None,
        })
        .expect("re-INVITE answered");
    assert_eq!(re.status_code.code(), 200);
    assert_eq!(
        re.headers.named("Session-Expires"),
        Some("90;refresher=uac")
    );
    // 60 s after the refresh (90 − 30) and not before: BYE both ways.
    h.advance(59 * SECOND);
    assert_eq!(h.byes_to_caller(), 0, "the refreshed session still runs");
    let callee_cid = call_id(&h.invites()[0]);
    h.advance(2 * SECOND);
    assert_eq!(h.byes_to_caller(), 1);
    let bye_at = h.requests_in(&Method::Bye, "caller-call-id")[0].0;
    assert_eq!(bye_at, 10 * MS + 110 * SECOND);
    assert_eq!(h.requests_in(&Method::Bye, &callee_cid).len(), 1);
}

/// A caller that asks Tandem to refresh (`refresher=uas`) is refreshed at
/// half the interval: by UPDATE when it allows UPDATE, by a re-INVITE with
/// the SDP it was answered with when it does not. An unanswered refresh
/// ends the call when the session would have.
#[test]
fn tandem_refreshes_a_caller_that_asks_it_to_and_gives_up_when_unanswered() {
    for (allow, method) in [
        ("INVITE, ACK, BYE, CANCEL, UPDATE", Method::Update),
        ("INVITE, ACK, BYE, CANCEL", Method::Invite),
    ] {
        let mut invite = timer_invite(&[("Session-Expires", "120;refresher=uas")]);
        invite.headers.push(Header::Allow(allow.into()));
        let mut h = Harness::start_with(BRIDGE_ONE, invite, FakeEnv::default());
        h.bridged();
        let ok = &h.invite_answers()[0];
        assert_eq!(
            ok.headers.named("Session-Expires"),
            Some("120;refresher=uas")
        );
        h.advance(60 * SECOND - 20 * MS);
        assert!(h.requests_in(&method, "caller-call-id").is_empty());
        h.advance(20 * MS);
        let sent = h.requests_in(&method, "caller-call-id");
        assert_eq!(sent.len(), 1, "{method}: one refresh at half the interval");
        let (at, refresh) = &sent[0];
        // `<Dial>` answered the caller at once (0 s).
        assert_eq!(*at, 60 * SECOND);
        assert_eq!(
            refresh.headers.named("Session-Expires"),
            Some("120;refresher=uac")
        );
        assert_eq!(
            has_sdp(&refresh.headers, &refresh.body),
            method == Method::Invite
        );
        let refresh = refresh.clone();
        h.answer_request(
            &refresh,
            200,
            vec![Header::Other(
                "Session-Expires".into(),
                "120;refresher=uac".into(),
            )],
        );
        // The next one 60 s later; this one goes unanswered: the call ends
        // 32 s before the session's end (120 − 32 = 88 s after the refresh).
        h.advance(60 * SECOND);
        assert_eq!(h.requests_in(&method, "caller-call-id").len(), 2);
        assert_eq!(h.byes_to_caller(), 0);
        h.advance(28 * SECOND - MS);
        assert_eq!(h.byes_to_caller(), 0);
        h.advance(2 * MS);
        assert_eq!(h.byes_to_caller(), 1, "{method}: unanswered refresh");
    }
}

/// An interval below Tandem's Min-SE from a caller that can retry gets 422
/// with Min-SE and no call; from one that cannot, it is raised instead.
#[test]
fn a_too_short_session_gets_422_with_min_se_or_is_raised() {
    let refused = |invite: Request| {
        let mut out = VecDeque::new();
        let env: Box<dyn Env> = Box::new(FakeEnv::default());
        let start = Start {
            interp: Interpreter::new(tandem_twiml::parse(BRIDGE_ONE).unwrap(), None),
            document_url: None,
            fallback: None,
        };
        let stx = ServerTx {
            shard: 0,
            tx: TxId::from_raw(1),
        };
        let call = Call::new(
            Instant::now(),
            config(),
            env,
            IdGen::seeded(7),
            stx,
            invite,
            peer(CALLER),
            start,
            &mut out,
        );
        assert!(call.is_none(), "refused");
        let Some(Output::Respond { response, .. }) = out.pop_front() else {
            panic!("answered")
        };
        assert!(response.headers.to_tag().is_some());
        response
    };
    let r = refused(timer_invite(&[("Session-Expires", "30")]));
    assert_eq!(r.status_code.code(), 422);
    assert_eq!(r.headers.named("Min-SE"), Some("90"));
    let r = refused(timer_invite(&[("Session-Expires", "soon")]));
    assert_eq!(r.status_code.code(), 400);

    let mut h = Harness::start_with(
        BRIDGE_ONE,
        caller_invite(&[("Session-Expires", "30")]),
        FakeEnv::default(),
    );
    h.advance(10 * MS);
    h.callee(0, 200, "calleetag");
    let ok = &h.invite_answers()[0];
    assert_eq!(
        ok.headers.named("Session-Expires"),
        Some("90;refresher=uas")
    );
    assert!(
        !ok.headers.iter().any(|x| matches!(x, Header::Require(_))),
        "a caller without the extension is not required to have it"
    );
}

/// Tandem's INVITE to a callee offers session timers; a 422 is answered
/// once with the interval it asks for; a callee that makes Tandem the
/// refresher is refreshed by UPDATE, and a 481 to that refresh ends the
/// bridge (its dialog is gone) and the `<Dial>` goes on to its action.
#[test]
fn a_callee_session_is_negotiated_refreshed_and_ended_by_a_481() {
    let mut h = Harness::start(BRIDGE_ONE);
    h.advance(10 * MS);
    let first = h.invites()[0].clone();
    assert!(
        tandem_sip::message::lists(
            &first.headers,
            |x| matches!(x, Header::Supported(_)),
            "timer"
        ),
        "the INVITE offers session timers"
    );
    assert_eq!(first.headers.named("Session-Expires"), Some("1800"));
    assert_eq!(first.headers.named("Min-SE"), Some("90"));
    h.answer_request(
        &first,
        422,
        vec![Header::Other("Min-SE".into(), "3600".into())],
    );
    let invites = h.invites();
    assert_eq!(invites.len(), 2, "asked again");
    let second = invites[1].clone();
    assert_eq!(second.headers.cseq(), Some((2, Method::Invite)));
    assert_eq!(second.headers.named("Session-Expires"), Some("3600"));
    assert_eq!(second.headers.named("Min-SE"), Some("3600"));
    assert_ne!(
        second.headers.top_via().unwrap().unwrap().branch,
        first.headers.top_via().unwrap().unwrap().branch
    );
    let mut ok = response_to(&second, 200, None, Some("calleetag"));
    ok.headers
        .push(Header::Contact("<sip:callee0@127.0.0.21:5060>".into()));
    ok.headers.push(Header::Other(
        "Session-Expires".into(),
        "3600;refresher=uac".into(),
    ));
    ok.headers
        .push(Header::Allow("INVITE, ACK, BYE, UPDATE".into()));
    ok.headers
        .push(Header::ContentType("application/sdp".into()));
    ok.body = SDP.to_vec();
    h.msg(CallMsg::Response {
        response: Box::new(ok),
        source: None,
    });
    h.caller_ack();
    let cid = call_id(&second);
    h.advance(1800 * SECOND);
    let updates = h.requests_in(&Method::Update, &cid);
    assert_eq!(updates.len(), 1, "refreshed at half the interval");
    assert_eq!(
        updates[0].1.headers.named("Session-Expires"),
        Some("3600;refresher=uac")
    );
    assert!(h.action().is_none());
    let update = updates[0].1.clone();
    h.answer_request(&update, 481, Vec::new());
    let (_, params) = h.action().expect("the Dial ends and its action runs");
    assert_eq!(params["DialCallStatus"], "completed");
    assert_eq!(h.byes_to_caller(), 0, "the caller's call goes on");
}

// ----- Reliable provisional responses (RFC 3262) -----

const RINGING_BRIDGE: &str = r#"<Response><Dial answerOnBridge="true" action="/action"><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#;

impl Harness {
    /// Every response sent to the caller's INVITE (CSeq 1), with its time.
    fn invite_responses(&self) -> Vec<(Duration, Response)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Respond { response, .. }
                    if response.headers.cseq() == Some((1, Method::Invite)) =>
                {
                    Some((*at, response.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// A PRACK from the caller naming `rack`.
    fn prack(&mut self, cseq: u32, rack: &str) {
        let req = RequestBuilder::new(
            Method::PRack,
            rsip::Uri::try_from("sip:tandem@127.0.0.1:5080").unwrap(),
        )
        .via("UDP", CALLER, &format!("z9hG4bKprack{cseq}"))
        .max_forwards(70)
        .from("<sip:+15551112222@127.0.0.9>;tag=caller")
        .to(format!(
            "<sip:+15550001000@127.0.0.1:5080>;tag={}",
            self.call.local_tag
        ))
        .call_id("caller-call-id")
        .cseq(cseq)
        .header(Header::Other("RAck".into(), rack.into()))
        .build();
        self.request(req);
    }
}

/// A caller that requires 100rel gets its 183 (with SDP) reliably: Require
/// and RSeq, sent again at 0.5, 1.5, 3.5 s until the PRACK; the PRACK gets
/// 200 and stops it. A callee's answer before the PRACK holds the 2xx
/// (the 183 carried SDP) until it comes; a PRACK for another RSeq is 481.
#[test]
fn a_caller_that_requires_100rel_gets_its_183_until_it_pracks_and_its_200_after() {
    let mut invite = caller_invite(&[]);
    invite.headers.push(Header::Require("100rel".into()));
    let mut h = Harness::start_with(RINGING_BRIDGE, invite, FakeEnv::default());
    let sent = h.invite_responses();
    assert_eq!(sent.len(), 1);
    let (_, first) = &sent[0];
    assert_eq!(first.status_code.code(), 183);
    assert!(first.headers.iter().any(
        |x| matches!(x, Header::Require(_)) && tandem_sip::message::header_value(x) == "100rel"
    ));
    let rseq: u32 = first.headers.named("RSeq").unwrap().parse().unwrap();
    assert!((1..1 << 31).contains(&rseq));
    h.advance(3600 * MS);
    let at: Vec<Duration> = h.invite_responses().iter().map(|(at, _)| *at).collect();
    assert_eq!(at, [Duration::ZERO, 500 * MS, 1500 * MS, 3500 * MS]);
    // The callee answers before the PRACK: the 2xx waits.
    h.callee(0, 200, "calleetag");
    assert_eq!(h.invite_responses().len(), 4, "2xx held");
    h.prack(2, &format!("{} 1 INVITE", rseq + 1));
    assert_eq!(h.answered_cseq(2), [481]);
    h.prack(3, &format!("{rseq} 1 INVITE"));
    assert_eq!(h.answered_cseq(3), [200]);
    let sent = h.invite_responses();
    assert_eq!(sent.len(), 5);
    assert_eq!(sent[4].1.status_code.code(), 200, "the held 2xx goes out");
    h.advance(10 * SECOND);
    assert_eq!(
        h.invite_responses().len(),
        5,
        "nothing is retransmitted any more"
    );
    // A caller that only supports 100rel gets a plain 183.
    let invite = caller_invite(&[]);
    let mut invite = invite;
    invite.headers.push(Header::Supported("100rel".into()));
    let h = Harness::start_with(RINGING_BRIDGE, invite, FakeEnv::default());
    let (_, first) = &h.invite_responses()[0];
    assert_eq!(first.status_code.code(), 183);
    assert_eq!(first.headers.named("RSeq"), None);
}

/// No PRACK within 64·T1 (32 s): the INVITE gets 500 and the Dial's
/// branch is cancelled.
#[test]
fn a_caller_that_never_pracks_gets_500_after_64_t1() {
    let mut invite = caller_invite(&[]);
    invite.headers.push(Header::Require("100rel".into()));
    let mut h = Harness::start_with(RINGING_BRIDGE, invite, FakeEnv::default());
    h.advance(31_999 * MS);
    assert!(
        h.invite_responses()
            .iter()
            .all(|(_, r)| r.status_code.code() == 183)
    );
    h.advance(2 * MS);
    let (at, last) = h.invite_responses().pop().unwrap();
    assert_eq!((at, last.status_code.code()), (32 * SECOND, 500));
    assert_eq!(h.cancels().len(), 1, "the callee stops ringing");
}

// ----- Delayed offer (RFC 3261 §13.2.1) -----

/// A caller's INVITE without SDP.
fn offerless_invite() -> Request {
    let mut invite = caller_invite(&[]);
    invite.body.clear();
    invite
        .headers
        .retain(|h| !matches!(h, Header::ContentType(_)));
    invite
}

/// A caller whose INVITE has no offer gets Tandem's in the 2xx, from a leg
/// of its own, and its ACK's SDP is taken as the answer on that leg; the
/// callee is offered G.711 as for any caller and the two legs are bridged.
/// An `answerOnBridge` ring carries no SDP (an offer cannot go in an
/// unreliable 1xx). An ACK without the answer ends the call.
#[test]
fn a_caller_without_an_offer_gets_tandems_and_answers_in_its_ack() {
    let mut h = Harness::start_with(BRIDGE_ONE, offerless_invite(), FakeEnv::default());
    let ok = h.invite_answers()[0].clone();
    assert_eq!(ok.status_code.code(), 200);
    assert!(
        has_sdp(&ok.headers, &ok.body),
        "the 2xx carries Tandem's offer"
    );
    let caller_leg = h.call.media.expect("a leg for the caller");
    h.advance(10 * MS);
    assert!(has_sdp(&h.invites()[0].headers, &h.invites()[0].body));
    h.msg(CallMsg::Ack {
        call_id: "caller-call-id".into(),
        sdp: Some(b"v=0 answer".to_vec().into_boxed_slice()),
    });
    assert_eq!(h.env.st().answers, [(caller_leg, b"v=0 answer".to_vec())]);
    h.callee(0, 200, "calleetag");
    assert_eq!(h.env.st().bridges.len(), 1);
    assert_eq!(h.byes_to_caller(), 0);

    let mut h = Harness::start_with(RINGING_BRIDGE, offerless_invite(), FakeEnv::default());
    let ring = h.invite_responses()[0].1.clone();
    assert_eq!(ring.status_code.code(), 180);
    assert!(ring.body.is_empty());
    h.advance(10 * MS);
    h.callee(0, 200, "calleetag");
    let ok = h.invite_answers()[0].clone();
    assert!(has_sdp(&ok.headers, &ok.body));
    h.caller_ack();
    assert_eq!(h.byes_to_caller(), 1, "no answer in the ACK: BYE");
}

/// A bridged callee's re-INVITE without SDP asks for an offer (RFC 3261
/// §14.2; CUCM re-syncs media so after a transfer): Tandem's 2xx carries
/// one from the callee's leg, and the callee's ACK answer is taken on
/// that leg (regression: the 2xx carried no SDP). An ACK without the
/// answer leaves the leg as it was and the call goes on; an ACK in the
/// caller's dialog still answers the caller's offer only.
#[test]
fn a_callees_reinvite_without_sdp_gets_an_offer_and_its_ack_answers() {
    let mut h = Harness::start(BRIDGE_ONE);
    h.bridged();
    let callee_cid = call_id(&h.invites()[0]);
    let callee_leg = h.env.st().bridges[0].1;
    // The callee's 200 answered Tandem's INVITE offer already.
    let taken = h.env.st().answers.len();
    let reinvites_to_caller = |h: &Harness| h.requests_in(&Method::Invite, "caller-call-id").len();

    let reinvite = h.callee_request(Method::Invite, 50).build();
    assert!(reinvite.body.is_empty());
    h.request_from(reinvite, peer("127.0.0.21:5060"));
    let ok = h
        .log
        .iter()
        .rev()
        .find_map(|(_, o)| match o {
            Output::Respond { response, .. }
                if response.headers.cseq().is_some_and(|(n, _)| n == 50) =>
            {
                Some(response.clone())
            }
            _ => None,
        })
        .expect("a response to the re-INVITE");
    assert_eq!(ok.status_code.code(), 200);
    assert!(
        has_sdp(&ok.headers, &ok.body),
        "the 2xx carries Tandem's offer"
    );
    assert_eq!(
        reinvites_to_caller(&h),
        0,
        "nothing to pass on to the caller"
    );
    h.msg(CallMsg::Ack {
        call_id: callee_cid.clone(),
        sdp: Some(b"v=0 callee answer".to_vec().into_boxed_slice()),
    });
    assert_eq!(
        h.env.st().answers[taken..],
        [(callee_leg, b"v=0 callee answer".to_vec())]
    );
    // A second ACK (a retransmission) answers nothing more.
    h.msg(CallMsg::Ack {
        call_id: callee_cid.clone(),
        sdp: Some(b"v=0 again".to_vec().into_boxed_slice()),
    });
    assert_eq!(h.env.st().answers.len(), taken + 1);

    let reinvite = h.callee_request(Method::Invite, 51).build();
    h.request_from(reinvite, peer("127.0.0.21:5060"));
    h.msg(CallMsg::Ack {
        call_id: callee_cid,
        sdp: None,
    });
    assert_eq!(h.env.st().answers.len(), taken + 1);
    assert_eq!(h.byes_to_caller(), 0, "the call goes on");
    assert!(h.action().is_none(), "the Dial goes on");
    // The caller's ACK, by its dialog's Call-ID, is the caller's.
    h.msg(CallMsg::Ack {
        call_id: "caller-call-id".into(),
        sdp: Some(b"v=0 stray".to_vec().into_boxed_slice()),
    });
    assert_eq!(
        h.env.st().answers.len(),
        taken + 1,
        "no offer of Tandem's pending with the caller"
    );
}

/// A re-INVITE resending the peer's last SDP as it was (a session
/// refresh) is answered and not passed on: the other leg gets no
/// re-INVITE (it got one for every refresh); a changed SDP (a hold) still
/// goes on. From the callee the same. The call's log replays to the same
/// outputs.
#[test]
fn an_unchanged_reinvite_is_answered_not_passed_on() {
    let mut h = Harness::start_full(BRIDGE_ONE, caller_invite(&[]), FakeEnv::default(), true);
    h.bridged();
    let callee_cid = call_id(&h.invites()[0]);
    let to_callee = |h: &Harness| h.requests_in(&Method::Invite, &callee_cid).len();
    let to_caller = |h: &Harness| h.requests_in(&Method::Invite, "caller-call-id").len();
    let (callee0, caller0) = (to_callee(&h), to_caller(&h));
    // The caller's INVITE offered `SDP`; so does its refresh.
    h.caller_reinvite(2, &[]);
    assert_eq!(h.answered_cseq(2), [200]);
    assert_eq!(
        to_callee(&h),
        callee0,
        "an unchanged refresh stays on its leg"
    );
    // The callee's 200 carried `SDP`; its refresh with it stays too.
    let refresh = h
        .callee_request(Method::Invite, 50)
        .body("application/sdp", SDP.to_vec())
        .build();
    h.request_from(refresh, peer("127.0.0.21:5060"));
    assert_eq!(h.answered_cseq(50), [200]);
    assert_eq!(to_caller(&h), caller0);
    // A change (a hold) goes on.
    let held = [SDP, b"a=sendonly\r\n"].concat();
    h.caller_reinvite_with(3, &[], &held);
    assert_eq!(h.answered_cseq(3), [200]);
    assert_eq!(to_callee(&h), callee0 + 1, "a hold goes on");
    h.assert_replays();
}

/// A re-INVITE whose offer Tandem cannot answer (no common codec) gets
/// 488 and the session goes on as it was (RFC 3261 §14.2), from the
/// caller or from the bridged callee; nothing is offered on. Regression:
/// the caller got a 200 repeating the old answer, the callee a 200
/// without SDP. A 488 refreshes no session clock (RFC 4028 §10): a caller
/// whose only refresh was refused is ended before its session expires,
/// where a caller whose refresh was answered is not.
#[test]
fn a_reinvite_tandem_cannot_answer_gets_488_and_refreshes_nothing() {
    for usable in [false, true] {
        let invite = timer_invite(&[("Session-Expires", "90")]);
        let mut h = Harness::start_with(BRIDGE_ONE, invite, FakeEnv::default());
        h.bridged();
        let callee_cid = call_id(&h.invites()[0]);
        let offered_on = |h: &Harness| h.requests_in(&Method::Invite, &callee_cid).len();
        let before = offered_on(&h);
        h.advance(40 * SECOND);
        let changed = [SDP, b"a=ptime:30\r\n"].concat();
        let sdp = if usable { &changed[..] } else { UNUSABLE_SDP };
        h.caller_reinvite_with(2, &[("Session-Expires", "90")], sdp);
        assert_eq!(h.answered_cseq(2), [if usable { 200 } else { 488 }]);
        assert_eq!(offered_on(&h) - before, usize::from(usable), "offered on");
        h.advance(25 * SECOND);
        assert_eq!(
            h.byes_to_caller(),
            usize::from(!usable),
            "usable {usable}: refreshed only by the 200"
        );
    }

    let mut h = Harness::start_full(BRIDGE_ONE, caller_invite(&[]), FakeEnv::default(), true);
    h.bridged();
    let reinvite = h
        .callee_request(Method::Invite, 50)
        .body("application/sdp", UNUSABLE_SDP.to_vec())
        .build();
    h.request_from(reinvite, peer("127.0.0.21:5060"));
    assert_eq!(h.answered_cseq(50), [488]);
    assert_eq!(
        h.requests_in(&Method::Invite, "caller-call-id").len(),
        0,
        "nothing offered to the caller"
    );
    assert_eq!(h.byes_to_caller(), 0);
    assert!(h.action().is_none(), "the bridge goes on");
    // The log says which offer could not be answered: it replays to the 488.
    h.assert_replays();
}

/// A callee that never ACKs the 2xx to its re-INVITE loses its session
/// (BYE, RFC 3261 §13.3.1.4): the bridge ends and the Dial's action runs;
/// the caller's call is not ended for it (it was: "caller never ACKed",
/// 408). The caller's own missing ACK still ends the call.
#[test]
fn a_callee_that_never_acks_its_reinvites_200_loses_the_bridge_not_the_call() {
    let mut h = Harness::start(BRIDGE_ONE);
    h.bridged();
    let callee_cid = call_id(&h.invites()[0]);
    let reinvite = h.callee_request(Method::Invite, 50).build();
    h.request_from(reinvite, peer("127.0.0.21:5060"));
    h.msg(CallMsg::AckTimeout {
        call_id: callee_cid.clone(),
        was_2xx: true,
    });
    assert_eq!(h.requests_in(&Method::Bye, &callee_cid).len(), 1);
    assert_eq!(h.byes_to_caller(), 0, "the caller's call goes on");
    assert!(h.action().is_some(), "the Dial ends: its action runs");

    let mut h = Harness::start(BRIDGE_ONE);
    h.advance(10 * MS);
    h.callee(0, 200, "calleetag");
    h.msg(CallMsg::AckTimeout {
        call_id: "caller-call-id".into(),
        was_2xx: true,
    });
    assert_eq!(
        h.byes_to_caller(),
        1,
        "the caller's missing ACK ends the call"
    );
}

// ----- A trunk's proxy as the route of its branches -----

/// Regression (found against Kamailio, scripts/interop): a `<Number>`'s
/// callee answered through a trunk that did not record-route; Tandem's BYE
/// went to the trunk's proxy with no Route, and the proxy answered 404.
/// Now the proxy is the branch's route: in-dialog requests carry
/// `Route: <sip:proxy;lr>`. A proxy that record-routes sets the route
/// itself; a `<Sip>` branch gets none.
#[test]
fn a_number_through_a_trunk_routes_its_in_dialog_requests_via_the_proxy() {
    let cfg = carrier_config("sip:127.0.0.30:5070", ("127.0.0.30", 32));
    let routes_of_bye = |doc: &str, record_route: Option<&str>| {
        let mut h = Harness::start_cfg(
            doc,
            caller_invite(&[]),
            FakeEnv::default(),
            false,
            Arc::new(cfg.clone()),
        );
        h.advance(10 * MS);
        let invite = h.invites()[0].clone();
        let mut ok = response_to(&invite, 200, None, Some("calleetag"));
        ok.headers
            .push(Header::Contact("<sip:callee@198.51.100.7:5060>".into()));
        if let Some(rr) = record_route {
            ok.headers.push(Header::RecordRoute(rr.into()));
        }
        h.msg(CallMsg::Response {
            response: Box::new(ok),
            source: None,
        });
        h.caller_bye();
        let (_, bye) = h
            .requests_in(&Method::Bye, &call_id(&invite))
            .pop()
            .expect("BYE to the callee");
        assert_eq!(bye.uri.to_string(), "sip:callee@198.51.100.7:5060");
        bye.headers
            .iter()
            .filter(|x| matches!(x, Header::Route(_)))
            .map(|x| tandem_sip::message::header_value(x).to_owned())
            .collect::<Vec<_>>()
    };
    let number = r#"<Response><Dial><Number>+15557654321</Number></Dial></Response>"#;
    assert_eq!(routes_of_bye(number, None), ["<sip:127.0.0.30:5070;lr>"]);
    assert_eq!(
        routes_of_bye(number, Some("<sip:edge.carrier.example;lr>")),
        ["<sip:edge.carrier.example;lr>"]
    );
    let sip = r#"<Response><Dial><Sip>sip:a@127.0.0.21:5060</Sip></Dial></Response>"#;
    assert!(routes_of_bye(sip, None).is_empty());
}

// ----- Legs over TLS -----

/// A caller over TLS without an offer (a delayed offer) gets Tandem's
/// offer as SDES-SRTP, as a branch over TLS does; over UDP, plain RTP
/// (keys only where the signalling is encrypted). Regression: the TLS
/// caller's delayed offer was plain RTP.
#[test]
fn a_tls_callers_delayed_offer_is_offered_srtp() {
    let mut cfg = (*config()).clone();
    cfg.tls_host = Some("127.0.0.1:5081".into());
    for (transport, srtp) in [(Transport::Tls, true), (Transport::Udp, false)] {
        let env = FakeEnv::default();
        let h = Harness::start_from(
            BRIDGE_ONE,
            offerless_invite(),
            env.clone(),
            false,
            Arc::new(cfg.clone()),
            Peer {
                transport,
                addr: CALLER.parse().unwrap(),
            },
        );
        let caller_leg = h.call.media.expect("a leg for the caller");
        let ok = h.invite_answers()[0].clone();
        assert!(
            has_sdp(&ok.headers, &ok.body),
            "the 2xx carries Tandem's offer"
        );
        assert_eq!(env.st().srtp.contains(&caller_leg), srtp, "{transport:?}");
    }
}

/// A caller over TLS gets Tandem's Contact naming TLS and the TLS
/// listener's port; a `<Number>` through a `sips:` trunk is an INVITE over
/// TLS to port 5061 with a `sips:` Request-URI, a TLS Via and Contact; the
/// BYEs of both legs go over TLS with TLS Vias.
#[test]
fn legs_over_tls_name_tls_in_via_contact_and_uri() {
    let mut cfg = carrier_config("sips:127.0.0.30", ("127.0.0.30", 32));
    cfg.tls_host = Some("127.0.0.1:5081".into());
    let tls = |addr: &str| Peer {
        transport: Transport::Tls,
        addr: addr.parse().unwrap(),
    };
    let env = FakeEnv::default();
    let mut h = Harness::start_from(
        r#"<Response><Dial><Number>+15557654321</Number></Dial></Response>"#,
        caller_invite(&[]),
        env.clone(),
        false,
        Arc::new(cfg),
        tls(CALLER),
    );
    h.advance(10 * MS);
    // The branch's leg was asked to offer SRTP (keys only over TLS); the
    // caller's leg answers what the caller offered.
    {
        let st = env.st();
        assert_eq!(st.srtp.len(), 1);
        assert_ne!(Some(st.srtp[0]), st.open.first().copied());
    }
    let (invite, to) = h.sent_with_peer(Method::Invite).remove(0);
    assert_eq!(to, tls("127.0.0.30:5061"));
    assert_eq!(invite.uri.to_string(), "sips:+15557654321@127.0.0.30");
    let via = |r: &Request| {
        r.headers
            .iter()
            .find_map(|x| match x {
                x @ Header::Via(_) => Some(tandem_sip::message::header_value(x).to_owned()),
                _ => None,
            })
            .unwrap()
    };
    assert!(
        via(&invite).starts_with("SIP/2.0/TLS 127.0.0.1:5081;"),
        "{}",
        via(&invite)
    );
    let contact = |headers: &rsip::Headers| {
        headers
            .iter()
            .find_map(|x| match x {
                x @ Header::Contact(_) => Some(tandem_sip::message::header_value(x).to_owned()),
                _ => None,
            })
            .unwrap()
    };
    let tls_contact = "<sip:tandem@127.0.0.1:5081;transport=tls>";
    assert_eq!(contact(&invite.headers), tls_contact);
    h.callee(0, 200, "calleetag");
    let ok = h.invite_answers().remove(0);
    assert_eq!(ok.status_code.code(), 200);
    assert_eq!(contact(&ok.headers), tls_contact);
    // The callee hangs up: Tandem's BYE to the caller goes over TLS.
    let bye = h.callee_request(Method::Bye, 2).build();
    h.request_from(bye, tls("127.0.0.30:5061"));
    let (bye, to) = h.sent_with_peer(Method::Bye).remove(0);
    assert_eq!(to, tls(CALLER));
    assert!(
        via(&bye).starts_with("SIP/2.0/TLS 127.0.0.1:5081;"),
        "{}",
        via(&bye)
    );
}

// ----- A destination's name with several targets (RFC 3263) -----

/// A `<Sip>` URI naming a host is looked up first; its targets are tried
/// in order: the first times out (or its connection is refused, reported
/// the same way), the second answers 503, the third answers and is
/// bridged. Each try is a new transaction (new Via branch, next CSeq) to
/// the next address; the log replays.
#[test]
fn a_branch_fails_over_to_the_next_target_of_its_name() {
    let doc = r#"<Response><Dial><Sip>sip:bob@carrier.test</Sip></Dial></Response>"#;
    let mut h = Harness::start_full(doc, caller_invite(&[]), FakeEnv::default(), true);
    h.advance(10 * MS);
    let names = h
        .log
        .iter()
        .find_map(|(_, o)| match o {
            Output::Resolve(n) => Some(n.clone()),
            _ => None,
        })
        .expect("the name is looked up before any INVITE");
    assert!(h.invites().is_empty());
    assert_eq!(names.len(), 1);
    assert_eq!(
        (names[0].host.as_str(), names[0].port, names[0].transport),
        ("carrier.test", None, None)
    );
    let tcp = |a: &str| Peer {
        transport: Transport::Tcp,
        addr: a.parse().unwrap(),
    };
    let targets = ["192.0.2.1:5060", "192.0.2.2:5060", "192.0.2.3:5070"];
    h.msg(CallMsg::Resolved(vec![(
        names[0].clone(),
        targets.iter().map(|a| tcp(a)).collect(),
    )]));
    let via_branch = |r: &Request| {
        r.headers
            .top_via()
            .unwrap()
            .unwrap()
            .branch
            .unwrap()
            .to_owned()
    };
    let (first, to) = h.sent_with_peer(Method::Invite).remove(0);
    assert_eq!(to, tcp(targets[0]));
    assert!(
        tandem_sip::message::header_value(
            first
                .headers
                .iter()
                .find(|x| matches!(x, Header::Via(_)))
                .unwrap()
        )
        .starts_with("SIP/2.0/TCP ")
    );
    // No answer from the first target.
    h.msg(CallMsg::Timeout {
        call_id: call_id(&first),
        method: Method::Invite,
        branch: via_branch(&first),
    });
    let (second, to) = h.sent_with_peer(Method::Invite).remove(1);
    assert_eq!(to, tcp(targets[1]));
    assert_eq!(call_id(&second), call_id(&first));
    assert_ne!(via_branch(&second), via_branch(&first));
    assert_eq!(second.headers.cseq().unwrap().0, 2);
    // The second is overloaded.
    h.msg(CallMsg::Response {
        response: Box::new(response_to(&second, 503, None, Some("busy"))),
        source: None,
    });
    let (third, to) = h.sent_with_peer(Method::Invite).remove(2);
    assert_eq!(to, tcp(targets[2]));
    assert_eq!(third.headers.cseq().unwrap().0, 3);
    // The third answers: bridged, and the caller was never told of the others.
    h.callee(2, 200, "third");
    assert!(
        h.invite_answers()
            .iter()
            .all(|r| r.status_code.code() == 200)
    );
    assert_eq!(h.invite_answers().len(), 1);
    assert!(!h.env.st().bridges.is_empty());
    h.assert_replays();
}

/// With its targets used up, a branch fails as before (here: the one
/// target times out, 408 to the Dial).
#[test]
fn a_branch_without_other_targets_fails() {
    let doc = r#"<Response><Dial><Sip>sip:bob@carrier.test</Sip></Dial><Say>next</Say></Response>"#;
    let mut h = Harness::start(doc);
    h.advance(10 * MS);
    let name = h
        .log
        .iter()
        .find_map(|(_, o)| match o {
            Output::Resolve(n) => Some(n[0].clone()),
            _ => None,
        })
        .unwrap();
    let only = Peer {
        transport: Transport::Udp,
        addr: "192.0.2.1:5060".parse().unwrap(),
    };
    h.msg(CallMsg::Resolved(vec![(name, vec![only])]));
    let first = h.invites().remove(0);
    let branch = first
        .headers
        .top_via()
        .unwrap()
        .unwrap()
        .branch
        .unwrap()
        .to_owned();
    h.msg(CallMsg::Timeout {
        call_id: call_id(&first),
        method: Method::Invite,
        branch,
    });
    assert_eq!(h.invites().len(), 1, "no other target to try");
}

// ----- Reliable provisionals from callees (RFC 3262) -----

/// Tandem's INVITEs say `Supported: 100rel`; a callee's reliable 183
/// (`Require: 100rel`, `RSeq`) is PRACKed in its early dialog with the
/// right `RAck`, a retransmission of it is not PRACKed again, the next
/// reliable 180 is, and the 200's ACK keeps the INVITE's CSeq.
#[test]
fn reliable_provisionals_from_a_callee_are_pracked_once_each() {
    let mut h =
        Harness::start(r#"<Response><Dial><Sip>sip:bob@127.0.0.21:5060</Sip></Dial></Response>"#);
    h.advance(10 * MS);
    let invite = h.invites()[0].clone();
    assert!(
        tandem_sip::message::lists(
            &invite.headers,
            |x| matches!(x, Header::Supported(_)),
            "100rel"
        ),
        "the INVITE offers 100rel"
    );
    let reliable = |code: u16, rseq: u32, sdp: bool| {
        let mut r = response_to(&invite, code, None, Some("early"));
        r.headers
            .push(Header::Contact("<sip:bob@127.0.0.21:5060>".into()));
        r.headers.push(Header::Require("100rel".into()));
        r.headers
            .push(Header::Other("RSeq".into(), rseq.to_string()));
        if sdp {
            r.headers
                .push(Header::ContentType("application/sdp".into()));
            r.body = SDP.to_vec();
        }
        CallMsg::Response {
            response: Box::new(r),
            source: None,
        }
    };
    let pracks = |h: &Harness| -> Vec<Request> {
        h.requests_in(&Method::PRack, &call_id(&invite))
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    };
    h.msg(reliable(183, 7, true));
    let p = pracks(&h);
    assert_eq!(p.len(), 1);
    assert_eq!(other_header(&p[0].headers, "RAck"), Some("7 1 INVITE"));
    assert_eq!(p[0].headers.cseq(), Some((2, Method::PRack)));
    assert_eq!(p[0].headers.to_tag(), Some("early"));
    assert_eq!(p[0].uri.to_string(), "sip:bob@127.0.0.21:5060");
    // The 183 again (its PRACK was lost: the PRACK's own transaction
    // retransmits it): not processed, not PRACKed again.
    h.msg(reliable(183, 7, true));
    assert_eq!(pracks(&h).len(), 1);
    h.msg(reliable(180, 8, false));
    let p = pracks(&h);
    assert_eq!(p.len(), 2);
    assert_eq!(other_header(&p[1].headers, "RAck"), Some("8 1 INVITE"));
    assert_eq!(p[1].headers.cseq(), Some((3, Method::PRack)));
    // An unreliable 180 is not PRACKed.
    let mut plain = response_to(&invite, 180, None, Some("early"));
    plain
        .headers
        .push(Header::Contact("<sip:bob@127.0.0.21:5060>".into()));
    h.msg(CallMsg::Response {
        response: Box::new(plain),
        source: None,
    });
    assert_eq!(pracks(&h).len(), 2);
    h.callee(0, 200, "early");
    let acks: Vec<&Request> = h
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Ack { request, .. } if request.headers.call_id() == Some(&call_id(&invite)) => {
                Some(request)
            }
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(
        acks[0].headers.cseq(),
        Some((1, Method::Ack)),
        "the INVITE's CSeq"
    );
}
