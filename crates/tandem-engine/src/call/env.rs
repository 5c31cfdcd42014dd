//! What the call state machine may ask of the world synchronously: media
//! legs (open, SDP, relay, inject, taps, recording, close), the registrar's
//! contacts, and counters. [`RealEnv`] runs them on tandem-rtp's legs; the
//! virtual-time harness (`call/tests/`) records them instead.
//!
//! Everything that takes time (SIP sends, fetches, audio loads, name
//! lookups, callbacks) is not here: the state machine queues an
//! [`Output`](super::Output) and the shell around it carries it out.

use std::collections::HashMap;
use std::sync::Arc;

use tandem_media::tones::RingTone;
use tandem_rtp::relay::{Injection, Tap};
use tandem_rtp::{LegId, MediaEvent};
use tandem_transport::Peer;
use tokio::sync::mpsc;

use super::shell::Mailbox;
use super::{Audio, CallMsg};
use crate::conference::{JoinSpec, Membership};
use crate::engine::Ctx;
use crate::media::{LegError, MediaLeg};
use crate::media_ops::{DigitsSource, DtmfTap, SpeechTap, VoiceTap, dtmf_tap, fan_out, voice_tap};
use crate::queue::{Position, Taken};
use crate::recording::{RecordingInfo, RecordingOptions, RecordingSession, RecordingTaps};

/// A recording just started: its sid and `in-progress` event.
#[derive(Debug, Clone)]
pub(crate) struct RecordingStarted {
    pub event: tandem_webhook::RecordingEvent,
}

/// The call's media plane and lookups, as the state machine sees them.
pub(crate) trait Env: Send {
    /// Whether media is anchored at all (else SDP passes through).
    fn has_media(&self) -> bool;
    /// A leg on a fresh port pair; its media timeout starts off. It
    /// latches only to its SDP's address or `signal`, where the leg's SIP
    /// comes from or goes to (docs/security.md, media integrity).
    fn open_leg(&mut self, signal: std::net::IpAddr) -> Result<LegId, LegError>;
    /// Answers a remote offer on `leg` (caller's INVITE, a re-INVITE).
    fn answer(&mut self, leg: LegId, offer: &[u8]) -> Result<Vec<u8>, LegError>;
    /// An offer from `leg`: following `remote_offer`'s codecs (G.711 added
    /// when it had none), or our own.
    fn offer(&mut self, leg: LegId, remote_offer: Option<&[u8]>) -> Result<Vec<u8>, LegError>;
    /// A new offer of `leg`'s session, for a peer's re-INVITE without
    /// SDP: the last description Tandem offered on it, its version kept
    /// when nothing was sent since (RFC 3264 §8), else Tandem's own.
    fn reoffer(&mut self, leg: LegId) -> Result<Vec<u8>, LegError> {
        self.offer(leg, None)
    }
    /// `sdp` is byte for byte the last SDP `leg`'s remote sent (offer or
    /// answer): a re-INVITE or UPDATE carrying it (a session refresh)
    /// changes nothing to pass on to the other leg.
    fn same_remote_sdp(&mut self, _leg: LegId, _sdp: &[u8]) -> bool {
        false
    }
    /// The remote's answer to our offer on `leg`.
    fn take_answer(&mut self, leg: LegId, answer: &[u8]) -> Result<(), LegError>;
    /// `leg`'s signalling is TLS: Tandem's offers on it are SDES-SRTP
    /// (`RTP/SAVP` with Tandem's key) unless `[rtp] srtp_over_tls` is off.
    fn offer_srtp(&mut self, _leg: LegId) {}
    /// Ringback toward `leg` (`None` stops it).
    fn ringback(&mut self, leg: LegId, tone: Option<RingTone>);
    /// What `from` receives is relayed to `to` (`None`: dropped).
    fn relay(&mut self, from: LegId, to: Option<LegId>);
    /// Relays both ways between `a` and `b`.
    fn bridge(&mut self, a: LegId, b: LegId);
    /// Plays loaded audio toward `leg`; the id comes back in
    /// `MediaEvent::InjectionDone`.
    fn play(&mut self, leg: LegId, audio: Audio) -> Option<u64>;
    /// Stops (or forgets, once done) a playback.
    fn stop_play(&mut self, id: u64);
    /// Plays `<Number sendDigits>` toward `leg`, to its end.
    fn send_digits(&mut self, leg: LegId, digits: &str) -> Result<(), String>;
    /// Media is expected on `leg` from now on (its media timeout runs), or
    /// no longer.
    fn expect_media(&mut self, leg: LegId, on: bool);
    /// DTMF received on `leg` (RFC 4733, in-band) is reported as
    /// `CallMsg::Digit` from now on.
    fn listen_dtmf(&mut self, leg: LegId);
    /// Voice activity on `leg` is reported as `CallMsg::Voice` from now on
    /// (`on`), or no longer.
    fn listen_voice(&mut self, leg: LegId, on: bool);
    /// What `leg` receives is kept for a speech `<Gather>` from now on
    /// (`on`, afresh), or no longer.
    fn listen_speech(&mut self, leg: LegId, on: bool);
    /// The audio kept on `leg` so far (8 kHz, 16-bit; empty when none).
    fn speech_audio(&mut self, leg: LegId) -> Vec<i16>;
    /// Starts a recording (a `<Dial>`'s or a `<Record>`'s): channel 1 `parent`.
    fn start_recording(
        &mut self,
        call_sid: &str,
        opts: RecordingOptions,
        parent: LegId,
    ) -> Result<RecordingStarted, String>;
    /// Channel 2 of the recording is `child` from now on.
    fn record_child(&mut self, child: LegId);
    /// Stops the recording, if one runs.
    fn stop_recording(&mut self) -> Option<Result<RecordingInfo, String>>;
    /// Closes `leg`: it stops relaying at once; its ports go back to the
    /// pool by the time [`Env::release`] returns.
    fn close_leg(&mut self, leg: LegId);
    /// Takes `leg` out of this call for another to adopt
    /// ([`Env::adopt_leg`]): it stops relaying and its taps come off; its
    /// ports stay open.
    fn detach_leg(&mut self, leg: LegId) -> DetachedLeg {
        DetachedLeg {
            id: leg,
            slot: None,
        }
    }
    /// Takes over a leg another call detached: its media events come to
    /// this call from now on.
    fn adopt_leg(&mut self, _leg: DetachedLeg) {}
    /// Frees what closing left for later. The shell calls it once the
    /// outputs of an input are sent, so that a CANCEL never waits for a
    /// leg's teardown.
    fn release(&mut self) {}
    /// The live contacts of a `<Client>` identity: (contact URI, where to send).
    fn contacts(&self, identity: &str) -> Vec<(String, Peer)>;
    /// Counters: a Dial ended with this status.
    fn dial_ended(&mut self, status: tandem_types::DialCallStatus);
    /// Puts `leg` in a conference room; the room's start and end come back
    /// as `CallMsg::Room`. Audio flows once [`Env::conference_audio`] is
    /// called (the room started, the wait music stopped).
    fn join_conference(&mut self, leg: LegId, spec: JoinSpec) -> Result<Joined, String>;
    /// The room's mix plays on the leg in the room, and its audio is heard.
    fn conference_audio(&mut self);
    /// Takes the leg out of its room (no-op when in none).
    fn leave_conference(&mut self);
    /// `<Enqueue>`: `call_sid` joins the back of queue `name` (`Err`: full).
    fn enqueue(&mut self, name: &str, call_sid: &str) -> Result<Position, Position>;
    /// Where `call_sid` stands in `name`.
    fn queue_position(&mut self, name: &str, call_sid: &str) -> Option<Position>;
    /// Takes `call_sid` out of `name`; whether it was still waiting.
    fn queue_leave(&mut self, name: &str, call_sid: &str) -> bool;
    /// `<Dial><Queue>`: the agent takes the front caller, or waits for one
    /// (then `CallMsg::Queue(Paired)` comes).
    fn queue_take(
        &mut self,
        name: &str,
        agent_sid: &str,
        url: Option<(String, tandem_twiml::Method)>,
    ) -> Taken;
    /// A waiting agent stops waiting.
    fn queue_cancel(&mut self, name: &str, agent_sid: &str);
    /// Answering-machine detection on `leg`: its one decision comes back
    /// as `CallMsg::Amd`.
    fn listen_amd(&mut self, leg: LegId, cfg: tandem_media::AmdConfig);
    /// Channel 2 of the running recording is what the room sends the
    /// caller from now on.
    fn record_conference(&mut self);
}

/// A media leg on its way from one call to another (a child call moved to
/// TwiML of its own through the REST API).
pub(crate) struct DetachedLeg {
    pub id: LegId,
    /// `None` in the test and replay environments.
    slot: Option<Box<LegSlot>>,
}

impl DetachedLeg {
    /// A leg with no media plane behind it (test and replay environments).
    #[cfg(test)]
    pub(crate) fn bare(id: LegId) -> Self {
        Self { id, slot: None }
    }
}

impl std::fmt::Debug for DetachedLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedLeg").field("id", &self.id).finish()
    }
}

/// A participant in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Joined {
    /// The room had started (or this participant started it).
    pub started: bool,
    /// `ConferenceSid`.
    pub conference_sid: String,
}

/// What a tap reports joins the call's own queue, in order with its SIP
/// events; the task ends when the tap is dropped (taken off, or its leg
/// closed) or the call is gone.
fn forward<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
    me: Mailbox,
    msg: impl Fn(T) -> CallMsg + Send + 'static,
) {
    tokio::spawn(async move {
        while let Some(x) = rx.recv().await {
            if !me.send(msg(x)) {
                break;
            }
        }
    });
}

/// [`Env`] on tandem-rtp legs, the engine's recordings and registrar.
pub(crate) struct RealEnv {
    ctx: Arc<Ctx>,
    me: Mailbox,
    media_tx: mpsc::Sender<MediaEvent>,
    /// Boxed: a slot is ~1 KB and the map keeps spare buckets.
    legs: HashMap<LegId, Box<LegSlot>>,
    playing: HashMap<u64, Injection>,
    /// Boxed: most calls never record.
    recording: Option<Box<(RecordingSession, RecordingTaps)>>,
    /// Legs closed while handling the current input, dropped by `release`
    /// (kept in the box they lived in: no move of a ~1 KB slot).
    #[allow(clippy::vec_box, reason = "the slots are moved out of `legs` as boxes")]
    closing: Vec<Box<LegSlot>>,
    /// The room the caller is in, with its leg and the mix's injection.
    room: Option<Box<(LegId, Membership, Option<Injection>)>>,
}

/// A leg and what listens on its one tap slot.
struct LegSlot {
    media: MediaLeg,
    dtmf: Option<Arc<DtmfTap>>,
    rec: Option<Arc<dyn Tap>>,
    voice: Option<Arc<VoiceTap>>,
    speech: Option<Arc<SpeechTap>>,
    room: Option<Arc<dyn Tap>>,
    amd: Option<Arc<dyn Tap>>,
}

impl LegSlot {
    fn retap(&self) {
        let mut taps: Vec<Arc<dyn Tap>> = Vec::new();
        if let Some(d) = &self.dtmf {
            taps.push(d.clone());
        }
        if let Some(r) = &self.rec {
            taps.push(r.clone());
        }
        if let Some(v) = &self.voice {
            taps.push(v.clone());
        }
        if let Some(s) = &self.speech {
            taps.push(s.clone());
        }
        if let Some(r) = &self.room {
            taps.push(r.clone());
        }
        if let Some(a) = &self.amd {
            taps.push(a.clone());
        }
        let tap = match taps.len() {
            0 => None,
            1 => taps.pop(),
            _ => Some(fan_out(taps)),
        };
        self.media.leg.set_tap(tap);
    }
}

impl RealEnv {
    pub(crate) fn new(ctx: Arc<Ctx>, me: Mailbox, media_tx: mpsc::Sender<MediaEvent>) -> Self {
        Self {
            ctx,
            me,
            media_tx,
            legs: HashMap::new(),
            playing: HashMap::new(),
            recording: None,
            closing: Vec::new(),
            room: None,
        }
    }

    fn leg(&mut self, id: LegId) -> Option<&mut LegSlot> {
        let slot = self.legs.get_mut(&id).map(|b| &mut **b);
        if slot.is_none() {
            tracing::debug!(?id, "media: no such leg");
        }
        slot
    }
}

impl std::fmt::Debug for RealEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealEnv")
            .field("legs", &self.legs.len())
            .finish()
    }
}

impl Env for RealEnv {
    fn has_media(&self) -> bool {
        self.ctx.media.is_some()
    }

    fn open_leg(&mut self, signal: std::net::IpAddr) -> Result<LegId, LegError> {
        let Some(m) = &self.ctx.media else {
            return Err(LegError::Exhausted);
        };
        let media = m.leg(self.media_tx.clone(), signal)?;
        media.leg.set_media_timeout(None);
        let id = media.leg.id();
        self.legs.insert(
            id,
            Box::new(LegSlot {
                media,
                dtmf: None,
                rec: None,
                voice: None,
                speech: None,
                room: None,
                amd: None,
            }),
        );
        Ok(id)
    }

    fn answer(&mut self, leg: LegId, offer: &[u8]) -> Result<Vec<u8>, LegError> {
        let caps = self.ctx.media.as_ref().map(|m| m.caps().clone());
        match (self.leg(leg), caps) {
            (Some(s), Some(caps)) => s.media.answer(offer, &caps),
            _ => Err(LegError::Exhausted),
        }
    }

    fn offer(&mut self, leg: LegId, remote_offer: Option<&[u8]>) -> Result<Vec<u8>, LegError> {
        let caps = self.ctx.media.as_ref().map(|m| m.caps().clone());
        match (self.leg(leg), caps) {
            (Some(s), Some(caps)) => match remote_offer {
                Some(o) => s.media.offer_from(o, &caps),
                None => Ok(s.media.offer(&caps)),
            },
            _ => Err(LegError::Exhausted),
        }
    }

    fn same_remote_sdp(&mut self, leg: LegId, sdp: &[u8]) -> bool {
        self.leg(leg).is_some_and(|s| s.media.same_remote(sdp))
    }

    fn reoffer(&mut self, leg: LegId) -> Result<Vec<u8>, LegError> {
        let caps = self.ctx.media.as_ref().map(|m| m.caps().clone());
        match (self.leg(leg), caps) {
            (Some(s), Some(caps)) => Ok(s.media.reoffer(&caps)),
            _ => Err(LegError::Exhausted),
        }
    }

    fn take_answer(&mut self, leg: LegId, answer: &[u8]) -> Result<(), LegError> {
        match self.leg(leg) {
            Some(s) => s.media.on_answer(answer),
            None => Ok(()),
        }
    }

    fn offer_srtp(&mut self, leg: LegId) {
        if self.ctx.media.as_ref().is_some_and(|m| m.srtp_over_tls())
            && let Some(s) = self.leg(leg)
        {
            s.media.use_srtp();
        }
    }

    fn ringback(&mut self, leg: LegId, tone: Option<RingTone>) {
        if let Some(s) = self.leg(leg) {
            match tone {
                Some(t) => s.media.start_ringback(t),
                None => s.media.stop_ringback(),
            }
        }
    }

    fn relay(&mut self, from: LegId, to: Option<LegId>) {
        let (Some(a), b) = (self.legs.get(&from), to.and_then(|t| self.legs.get(&t))) else {
            return;
        };
        a.media.leg.relay_to(b.map(|b| &b.media.leg));
    }

    fn bridge(&mut self, a: LegId, b: LegId) {
        if let (Some(x), Some(y)) = (self.legs.get(&a), self.legs.get(&b)) {
            tandem_rtp::bridge(&x.media.leg, &y.media.leg);
        }
    }

    fn play(&mut self, leg: LegId, audio: Audio) -> Option<u64> {
        let s = self.leg(leg)?;
        let injection = match audio {
            Audio::Prompt(p) => s.media.leg.inject(p),
            Audio::Digits(d) => s.media.leg.inject(d),
        };
        let id = injection.id();
        self.playing.insert(id, injection);
        Some(id)
    }

    fn stop_play(&mut self, id: u64) {
        self.playing.remove(&id);
    }

    fn send_digits(&mut self, leg: LegId, digits: &str) -> Result<(), String> {
        let Some(s) = self.leg(leg) else {
            return Err("no media on the callee's leg".to_owned());
        };
        let src = DigitsSource::new(digits).map_err(|e| e.to_string())?;
        s.media.leg.inject(src).detach();
        Ok(())
    }

    fn expect_media(&mut self, leg: LegId, on: bool) {
        let timeout = self.ctx.media.as_ref().and_then(|m| m.timeout());
        if let Some(s) = self.leg(leg) {
            s.media
                .leg
                .set_media_timeout(if on { timeout } else { None });
        }
    }

    fn listen_dtmf(&mut self, leg: LegId) {
        let me = self.me.clone();
        let Some(s) = self.leg(leg) else { return };
        if s.dtmf.is_some() {
            return;
        }
        let (tap, rx) = dtmf_tap(32);
        s.dtmf = Some(tap);
        s.retap();
        forward(rx, me, |d| CallMsg::Digit(Box::new(d)));
    }

    fn listen_voice(&mut self, leg: LegId, on: bool) {
        let me = self.me.clone();
        let Some(s) = self.leg(leg) else { return };
        if !on {
            if s.voice.take().is_some() {
                s.retap();
            }
            return;
        }
        if s.voice.is_some() {
            return;
        }
        let (tap, rx) = voice_tap(16);
        s.voice = Some(tap);
        s.retap();
        forward(rx, me, CallMsg::Voice);
    }

    fn listen_speech(&mut self, leg: LegId, on: bool) {
        let Some(s) = self.leg(leg) else { return };
        s.speech = on.then(SpeechTap::new);
        s.retap();
    }

    fn speech_audio(&mut self, leg: LegId) -> Vec<i16> {
        self.leg(leg)
            .and_then(|s| s.speech.as_ref().map(|t| t.snapshot()))
            .unwrap_or_default()
    }

    fn start_recording(
        &mut self,
        call_sid: &str,
        opts: RecordingOptions,
        parent: LegId,
    ) -> Result<RecordingStarted, String> {
        if self.recording.is_some() {
            return Err("a recording is already running".to_owned());
        }
        let (session, taps) = self
            .ctx
            .recordings
            .start(call_sid, opts, tokio::time::Instant::now())
            .map_err(|e| e.to_string())?;
        if let Some(s) = self.legs.get_mut(&parent) {
            s.rec = Some(taps.parent.clone());
            s.retap();
        }
        let event = session.in_progress_event();
        self.recording = Some(Box::new((session, taps)));
        Ok(RecordingStarted { event })
    }

    fn record_child(&mut self, child: LegId) {
        let Some((_, taps)) = self.recording.as_deref() else {
            return;
        };
        let tap = taps.child.clone();
        if let Some(s) = self.legs.get_mut(&child) {
            s.rec = Some(tap);
            s.retap();
        }
    }

    fn stop_recording(&mut self) -> Option<Result<RecordingInfo, String>> {
        let (mut session, _) = *self.recording.take()?;
        for s in self.legs.values_mut() {
            if s.rec.take().is_some() {
                s.retap();
            }
        }
        let result = session
            .stop(tokio::time::Instant::now())
            .map_err(|e| e.to_string());
        if let Ok(info) = &result {
            self.ctx.metrics.recording_finished(info.status);
        }
        Some(result)
    }

    fn close_leg(&mut self, leg: LegId) {
        if let Some(mut s) = self.legs.remove(&leg) {
            s.media.stop_ringback();
            s.media.leg.relay_to(None);
            let stats = s.media.leg.stats();
            if stats.foreign > 0 {
                tracing::info!(
                    leg = leg.0,
                    foreign = stats.foreign,
                    "media leg dropped foreign RTP"
                );
            }
            self.ctx.metrics.rtp_foreign(stats.foreign);
            self.ctx
                .metrics
                .rtp_leg_closed(stats.rx_packets, stats.tx_packets, stats.lost);
            self.closing.push(s);
        }
    }

    fn detach_leg(&mut self, leg: LegId) -> DetachedLeg {
        let slot = self.legs.remove(&leg).map(|mut s| {
            s.media.stop_ringback();
            s.media.leg.relay_to(None);
            s.dtmf = None;
            s.rec = None;
            s.voice = None;
            s.speech = None;
            s.room = None;
            s.amd = None;
            s.retap();
            s.media.leg.set_events(None);
            s
        });
        DetachedLeg { id: leg, slot }
    }

    fn adopt_leg(&mut self, leg: DetachedLeg) {
        if let Some(s) = leg.slot {
            s.media.leg.set_events(Some(self.media_tx.clone()));
            self.legs.insert(leg.id, s);
        }
    }

    fn release(&mut self) {
        // Dropping a leg stops its task; the ports return to the pool.
        self.closing = Vec::new();
    }

    fn contacts(&self, identity: &str) -> Vec<(String, Peer)> {
        self.ctx.registrar_contacts(identity)
    }

    fn dial_ended(&mut self, status: tandem_types::DialCallStatus) {
        self.ctx.metrics.dial_ended(status);
    }

    fn join_conference(&mut self, leg: LegId, spec: JoinSpec) -> Result<Joined, String> {
        self.leave_conference();
        if !self.legs.contains_key(&leg) {
            return Err("no media leg to join with".to_owned());
        }
        let m = self
            .ctx
            .rooms
            .join(spec, self.me.clone())
            .map_err(|e| e.to_string())?;
        let joined = Joined {
            started: m.started(),
            conference_sid: m.conference_sid().to_owned(),
        };
        self.room = Some(Box::new((leg, m, None)));
        Ok(joined)
    }

    fn conference_audio(&mut self) {
        let Some(room) = self.room.as_deref_mut() else {
            return;
        };
        let (leg, m, injection) = room;
        let Some(s) = self.legs.get_mut(leg) else {
            return;
        };
        if s.room.is_none() {
            s.room = Some(m.tap());
            s.retap();
        }
        if injection.is_none() {
            *injection = Some(s.media.leg.inject(m.source()));
        }
    }

    fn enqueue(&mut self, name: &str, call_sid: &str) -> Result<Position, Position> {
        self.ctx.queues.enqueue(name, call_sid, self.me.clone())
    }

    fn queue_position(&mut self, name: &str, call_sid: &str) -> Option<Position> {
        self.ctx.queues.position(name, call_sid)
    }

    fn queue_leave(&mut self, name: &str, call_sid: &str) -> bool {
        self.ctx.queues.leave(name, call_sid)
    }

    fn queue_take(
        &mut self,
        name: &str,
        agent_sid: &str,
        url: Option<(String, tandem_twiml::Method)>,
    ) -> Taken {
        self.ctx.queues.take(name, agent_sid, self.me.clone(), url)
    }

    fn queue_cancel(&mut self, name: &str, agent_sid: &str) {
        self.ctx.queues.cancel(name, agent_sid);
    }

    fn listen_amd(&mut self, leg: LegId, cfg: tandem_media::AmdConfig) {
        let me = self.me.clone();
        let Some(s) = self.leg(leg) else { return };
        let (tap, rx) = crate::media_ops::amd_tap(cfg);
        s.amd = Some(tap);
        s.retap();
        forward(rx, me, |r| CallMsg::Amd(Box::new(r)));
    }

    fn record_conference(&mut self) {
        let (Some(room), Some(rec)) = (self.room.as_deref(), self.recording.as_deref()) else {
            return;
        };
        room.1.hear_tap(Some(rec.1.child.clone()));
    }

    fn leave_conference(&mut self) {
        let Some(room) = self.room.take() else { return };
        let (leg, m, injection) = *room;
        drop(injection);
        if let Some(s) = self.legs.get_mut(&leg)
            && s.room.take().is_some()
        {
            s.retap();
        }
        drop(m);
    }
}
