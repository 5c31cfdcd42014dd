//! Conference rooms for `<Dial><Conference>` (docs/conference.md): rooms by
//! name, each with tandem-media's [`Mixer`] ticked every 20 ms by its own
//! task, the parties' audio in through a leg tap and out through one
//! injection per leg, and the room's status callbacks.
//!
//! A party is a call leg. What its remote sends is decoded on the leg's
//! receive task ([`PartyTap`]) and pushed into the mixer; at each tick the
//! room moves every party's N-1 mix into that party's output queue, which
//! its leg's injection ([`PartySource`]) drains at the leg's own pace. The
//! queue holds at most [`OUT_FRAMES`] frames: the leg's clock and the
//! room's differ by a few ppm and by scheduling jitter, never by more.
//!
//! Until a participant with `startConferenceOnEnter` joins, the room is not
//! started: nothing is mixed, and each party hears its `waitUrl` (played by
//! its call, not here). The calls learn of the start and of the end through
//! their mailboxes ([`RoomMsg`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tandem_media::mixer::MIX_FRAME;
use tandem_media::{Mixer, PartyId};
use tandem_rtp::relay::{MediaSource, OutFormat, PcmFrames, SourceOutput, Tap, TapPacket};
use tandem_rtp::sdp::Codec;
use tandem_twiml::{ConferenceEvent, Method};
use tandem_webhook::{Callback, CallbackDispatcher, CallbackKind, CallbackQueue, Params};
use tokio::task::JoinHandle;
use url::Url;

use crate::call::{CallMsg, Mailbox};
use crate::media_ops::Pcm8k;
use crate::recording::{RecordingSession, RecordingStore};

/// Mixed frames a party's output queue holds at most (60 ms).
pub(crate) const OUT_FRAMES: usize = 3;
/// The mixer's step.
pub(crate) const TICK: Duration = Duration::from_millis(20);
/// RMS above which a party counts as speaking (`speaker` events), the same
/// threshold `<Record>` uses.
const SPEECH_RMS: f32 = 160.0;
/// Ticks of speech before `participant-speech-start` (60 ms) and of
/// quiet before `participant-speech-stop` (300 ms).
const SPEECH_START_TICKS: u32 = 3;
const SPEECH_STOP_TICKS: u32 = 15;
/// The join and leave beeps: 1 kHz then 1.5 kHz tones of 150 ms (rising
/// on entry, falling on exit).
const BEEP_SAMPLES: usize = 1_200;

/// What a room tells a participant's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoomMsg {
    /// The conference started: stop the wait music, the mix is playing.
    Started,
    /// The conference ended: the participant is out of it.
    Ended,
}

/// How a participant joins.
#[derive(Debug, Clone)]
pub(crate) struct JoinSpec {
    pub call_sid: String,
    pub conference: tandem_twiml::Conference,
}

/// Why a participant could not join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JoinError {
    /// `maxParticipants` reached.
    #[error("conference {0:?} is full ({1} participants)")]
    Full(String, u32),
    /// The room has just ended and is not yet gone.
    #[error("conference {0:?} is ending")]
    Ending(String),
    /// The mixer refused the party (never expected: 8 kHz, a fresh id).
    #[error("mixer: {0}")]
    Mixer(String),
}

/// A party's place in a room; dropping it leaves the room.
pub(crate) struct Membership {
    room: Arc<Room>,
    party: PartyId,
    rooms: Arc<Rooms>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("room", &self.room.name)
            .field("party", &self.party)
            .finish()
    }
}

impl Membership {
    /// The room started when this party joined.
    pub(crate) fn started(&self) -> bool {
        self.room.lock().started
    }

    /// The tap that feeds this party's audio into the room.
    pub(crate) fn tap(&self) -> Arc<dyn Tap> {
        Arc::new(PartyTap {
            room: self.room.clone(),
            party: self.party,
            dec: Mutex::new(Pcm8k::default()),
        })
    }

    /// The source that plays the room's mix to this party.
    pub(crate) fn source(&self) -> PartySource {
        PartySource {
            room: self.room.clone(),
            party: self.party,
            frames: PcmFrames::new(),
        }
    }

    /// What this party hears goes to `tap` too (as PCMU packets), for
    /// channel 2 of a `<Dial record>`; `None` stops it.
    pub(crate) fn hear_tap(&self, tap: Option<Arc<dyn Tap>>) {
        let mut st = self.room.lock();
        if let Some(p) = st.parties.iter_mut().find(|p| p.id == self.party) {
            p.hears = tap.map(|tap| Box::new(HearTap { tap, seq: 0, ts: 0 }));
        }
    }

    /// The room's `ConferenceSid`.
    pub(crate) fn conference_sid(&self) -> &str {
        &self.room.sid
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.rooms.leave(&self.room, self.party);
    }
}

/// Every room of the engine, by name.
pub(crate) struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    callbacks: CallbackDispatcher,
    account_sid: String,
    recordings: Option<RecordingStore>,
    /// Where conferences are kept once created (the REST API lists them).
    history: Option<crate::history::History>,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms").finish_non_exhaustive()
    }
}

struct Room {
    name: String,
    sid: String,
    account_sid: String,
    created: SystemTime,
    state: Mutex<RoomState>,
}

struct RoomState {
    mixer: Mixer,
    parties: Vec<Party>,
    next_party: u32,
    started: bool,
    ended: bool,
    /// Status callbacks: the first participant's `statusCallback`.
    events: Option<Events>,
    /// Beep samples still to add to every party's output.
    beep: Option<(bool, usize)>,
    task: Option<JoinHandle<()>>,
    /// `record="record-from-start"`: the room's whole mix.
    recording: Option<Box<RoomRecording>>,
    /// Last change: a participant in or out, the start, a mute.
    updated: SystemTime,
    /// Ended through the REST API (`ReasonConferenceEnded`).
    ended_by_api: bool,
}

/// The room's own recording: the mix of everyone (a silent party of the
/// mixer hears exactly that) fed to a mono recording.
struct RoomRecording {
    session: RecordingSession,
    tap: HearTap,
    callback: Option<(Url, Method, Vec<tandem_twiml::RecordingStatus>)>,
    queue: CallbackQueue,
}

/// The mixer party whose output is the whole room (it never speaks).
const RECORDER: PartyId = PartyId(0);

struct Events {
    queue: CallbackQueue,
    url: Url,
    method: Method,
    wanted: Vec<ConferenceEvent>,
    sequence: u32,
}

struct Party {
    id: PartyId,
    call_sid: String,
    me: Mailbox,
    spec: tandem_twiml::Conference,
    out: VecDeque<i16>,
    speaking: bool,
    /// Ticks above (speaking: below) the speech threshold in a row.
    run: u32,
    /// Where what the party hears is copied (a recording's channel).
    hears: Option<Box<HearTap>>,
    joined: SystemTime,
}

/// A tap fed with each tick's mix for one party, as the packets a leg
/// would have received (PCMU, 20 ms, one SSRC).
struct HearTap {
    tap: Arc<dyn Tap>,
    seq: u16,
    ts: u32,
}

impl HearTap {
    fn feed(&mut self, pcm: &[i16]) {
        let mut payload = [0u8; MIX_FRAME];
        let n = pcm.len().min(MIX_FRAME);
        for (o, s) in payload.iter_mut().zip(&pcm[..n]) {
            *o = tandem_media::g711::linear_to_ulaw(*s);
        }
        self.tap.packet(&TapPacket {
            leg: tandem_rtp::LegId(0),
            at: tokio::time::Instant::now(),
            pt: 0,
            codec: Some(Codec::Pcmu),
            marker: self.seq == 0,
            seq: self.seq,
            ts: self.ts,
            ssrc: 0x00c0_ffee,
            payload: &payload[..n],
        });
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(n as u32);
    }
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Rooms {
    pub(crate) fn new(
        callbacks: CallbackDispatcher,
        account_sid: String,
        recordings: Option<RecordingStore>,
    ) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            callbacks,
            account_sid,
            recordings,
            history: None,
        }
    }

    /// Conferences are written to `history` as they are created, start
    /// and end.
    pub(crate) fn with_history(mut self, history: Option<crate::history::History>) -> Self {
        self.history = history;
        self
    }

    /// A room's new state for the history (queue bridges aside).
    fn note(
        &self,
        room: &Room,
        status: &'static str,
        reason: Option<&'static str>,
        ended_by: Option<&str>,
    ) {
        if let Some(h) = &self.history
            && !room.name.starts_with('\u{1}')
        {
            h.record_conference(crate::history::ConferenceRecord {
                sid: room.sid.clone(),
                name: room.name.clone(),
                status,
                reason,
                ended_by: ended_by.map(str::to_owned),
                at: SystemTime::now(),
            });
        }
    }

    /// Rooms open now.
    pub(crate) fn len(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Adds a party to the room `spec.conference.name`, creating it. The
    /// party hears the mix once the room has started.
    pub(crate) fn join(
        self: &Arc<Self>,
        spec: JoinSpec,
        me: Mailbox,
    ) -> Result<Membership, JoinError> {
        let name = spec.conference.name.clone();
        let mut created = false;
        let room = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            rooms
                .entry(name.clone())
                .or_insert_with(|| {
                    created = true;
                    Arc::new(Room {
                        name: name.clone(),
                        sid: conference_sid(),
                        account_sid: self.account_sid.clone(),
                        created: SystemTime::now(),
                        state: Mutex::new(RoomState {
                            mixer: Mixer::new(),
                            parties: Vec::new(),
                            next_party: 1,
                            started: false,
                            ended: false,
                            events: None,
                            beep: None,
                            task: None,
                            recording: None,
                            updated: SystemTime::now(),
                            ended_by_api: false,
                        }),
                    })
                })
                .clone()
        };
        if created {
            self.note(&room, "init", None, None);
        }
        let mut st = room.lock();
        if st.ended {
            return Err(JoinError::Ending(name));
        }
        // The smallest maxParticipants of those in the room and the joiner.
        let max = st
            .parties
            .iter()
            .map(|p| p.spec.max_participants)
            .chain([spec.conference.max_participants])
            .min()
            .unwrap_or(250);
        if st.parties.len() as u32 >= max {
            return Err(JoinError::Full(name, max));
        }
        let id = PartyId(st.next_party);
        st.next_party += 1;
        if let Err(e) = st.mixer.add_party(id, tandem_media::MIX_RATE) {
            return Err(JoinError::Mixer(e.to_string()));
        }
        if st.events.is_none()
            && let Some(url) = spec
                .conference
                .status_callback
                .as_deref()
                .and_then(|u| Url::parse(u).ok())
        {
            st.events = Some(Events {
                queue: self.callbacks.open(room.sid.clone()),
                url,
                method: spec.conference.status_callback_method,
                wanted: spec.conference.status_callback_event.clone(),
                sequence: 0,
            });
        }
        if let Some(coached) = &spec.conference.coach {
            let target = st
                .parties
                .iter()
                .find(|p| &p.call_sid == coached)
                .map(|p| p.id);
            match target {
                Some(t) => {
                    let _ = st.mixer.set_coach(id, Some(t));
                }
                None => {
                    tracing::warn!(coach = %coached, "coach: no participant with this CallSid in the room; heard by no one")
                }
            }
        }
        if spec.conference.muted {
            let _ = st.mixer.set_muted(id, true);
        }
        let starts = spec.conference.start_conference_on_enter;
        let beep = spec.conference.beep.on_enter();
        st.parties.push(Party {
            id,
            call_sid: spec.call_sid.clone(),
            me,
            spec: spec.conference,
            out: VecDeque::with_capacity(OUT_FRAMES * MIX_FRAME),
            speaking: false,
            run: 0,
            hears: None,
            joined: SystemTime::now(),
        });
        st.updated = SystemTime::now();
        tracing::info!(room = %room.name, conference = %room.sid, call = %spec.call_sid, parties = st.parties.len(), "participant joined");
        if starts && !st.started {
            st.started = true;
            event(&room, &mut st, "conference-start", None, &[]);
            self.note(&room, "in-progress", None, None);
            for p in &st.parties {
                if p.id != id {
                    p.me.send(CallMsg::Room(RoomMsg::Started));
                }
            }
        }
        if st.task.is_none() {
            st.task = Some(tokio::spawn(run(room.clone())));
        }
        if beep && st.started {
            st.beep = Some((true, 0));
        }
        if st.started && st.recording.is_none() {
            self.start_recording(&room, &mut st);
        }
        event(&room, &mut st, "participant-join", Some(id), &[]);
        drop(st);
        Ok(Membership {
            room,
            party: id,
            rooms: self.clone(),
        })
    }

    fn leave(&self, room: &Arc<Room>, id: PartyId) {
        let mut st = room.lock();
        let Some(i) = st.parties.iter().position(|p| p.id == id) else {
            return;
        };
        event(room, &mut st, "participant-leave", Some(id), &[]);
        let party = st.parties.remove(i);
        let _ = st.mixer.remove_party(id);
        st.updated = SystemTime::now();
        tracing::info!(room = %room.name, call = %party.call_sid, parties = st.parties.len(), "participant left");
        if party.spec.beep.on_exit() && st.started && !st.parties.is_empty() {
            st.beep = Some((false, 0));
        }
        let ends = party.spec.end_conference_on_exit && st.started;
        if ends || st.parties.is_empty() {
            let reason = if st.ended_by_api {
                "conference-ended-via-api"
            } else if ends {
                "participant-with-end-conference-on-exit-left"
            } else {
                "last-participant-left"
            };
            st.ended = true;
            self.note(room, "completed", Some(reason), Some(&party.call_sid));
            stop_recording(room, &mut st);
            if st.started {
                let extra = [
                    ("ReasonConferenceEnded", reason),
                    ("CallSidEndingConference", party.call_sid.as_str()),
                ];
                event(room, &mut st, "conference-end", None, &extra);
            }
            let RoomState { parties, mixer, .. } = &mut *st;
            for p in parties.drain(..) {
                let _ = mixer.remove_party(p.id);
                p.me.send(CallMsg::Room(RoomMsg::Ended));
            }
            if let Some(t) = st.task.take() {
                t.abort();
            }
            drop(st);
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            if rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
                rooms.remove(&room.name);
            }
        }
    }
}

/// A conference as the REST API shows it (docs/api.md, "Conferences").
#[derive(Debug, Clone)]
pub(crate) struct RoomView {
    pub sid: String,
    pub name: String,
    pub started: bool,
    pub created: SystemTime,
    pub updated: SystemTime,
    pub parties: Vec<PartyView>,
}

/// A participant as the REST API shows it.
#[derive(Debug, Clone)]
pub(crate) struct PartyView {
    pub call_sid: String,
    pub label: Option<String>,
    pub muted: bool,
    pub coaching: Option<String>,
    pub start_on_enter: bool,
    pub end_on_exit: bool,
    pub joined: SystemTime,
}

fn party_view(p: &Party) -> PartyView {
    PartyView {
        call_sid: p.call_sid.clone(),
        label: p.spec.participant_label.clone(),
        muted: p.spec.muted,
        coaching: p.spec.coach.clone(),
        start_on_enter: p.spec.start_conference_on_enter,
        end_on_exit: p.spec.end_conference_on_exit,
        joined: p.joined,
    }
}

impl Rooms {
    fn room_by_sid(&self, sid: &str) -> Option<Arc<Room>> {
        self.rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|r| r.sid == sid)
            .cloned()
    }

    /// The conferences open now, oldest first (the private rooms of queue
    /// bridges aside).
    pub(crate) fn views(&self) -> Vec<RoomView> {
        let rooms: Vec<Arc<Room>> = self
            .rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|r| !r.name.starts_with('\u{1}'))
            .cloned()
            .collect();
        let mut v: Vec<RoomView> = rooms
            .iter()
            .filter_map(|r| {
                let st = r.lock();
                (!st.ended).then(|| RoomView {
                    sid: r.sid.clone(),
                    name: r.name.clone(),
                    started: st.started,
                    created: r.created,
                    updated: st.updated,
                    parties: st.parties.iter().map(party_view).collect(),
                })
            })
            .collect();
        v.sort_by(|a, b| a.created.cmp(&b.created).then(a.sid.cmp(&b.sid)));
        v
    }

    /// Mutes or unmutes `call_sid` in the room `sid` (`participant-mute` or
    /// `-unmute` to the room's status callback); the participant as it is
    /// now, `None` when it is not there.
    pub(crate) fn set_muted(&self, sid: &str, call_sid: &str, muted: bool) -> Option<PartyView> {
        let room = self.room_by_sid(sid)?;
        let mut st = room.lock();
        let i = st.parties.iter().position(|p| p.call_sid == call_sid)?;
        let id = st.parties[i].id;
        if st.parties[i].spec.muted != muted {
            let _ = st.mixer.set_muted(id, muted);
            st.parties[i].spec.muted = muted;
            st.updated = SystemTime::now();
            let name = if muted {
                "participant-mute"
            } else {
                "participant-unmute"
            };
            event(&room, &mut st, name, Some(id), &[]);
            tracing::info!(room = %room.name, call = call_sid, muted, "participant muted through the REST API");
        }
        Some(party_view(&st.parties[i]))
    }

    /// Takes `call_sid` out of the room `sid` (all of them with `None`):
    /// its call leaves as when the conference ends for it, and its `<Dial>`
    /// action runs. Whether anyone was there.
    pub(crate) fn remove(&self, sid: &str, call_sid: Option<&str>) -> bool {
        let Some(room) = self.room_by_sid(sid) else {
            return false;
        };
        let mut st = room.lock();
        if call_sid.is_none() {
            st.ended_by_api = true;
        }
        let mut any = false;
        for p in st
            .parties
            .iter()
            .filter(|p| call_sid.is_none_or(|c| p.call_sid == c))
        {
            tracing::info!(room = %room.name, call = %p.call_sid, "participant removed through the REST API");
            any |= p.me.send(CallMsg::Room(RoomMsg::Ended));
        }
        any
    }

    /// Starts the room's recording when a participant asks for one.
    fn start_recording(&self, room: &Room, st: &mut RoomState) {
        let Some(spec) = st
            .parties
            .iter()
            .find(|p| p.spec.record)
            .map(|p| p.spec.clone())
        else {
            return;
        };
        let Some(store) = &self.recordings else {
            tracing::warn!(room = %room.name, "no recording store: conference not recorded");
            return;
        };
        let opts = crate::recording::RecordingOptions::conference(spec.trim);
        let (session, taps) = match store.start(&room.sid, opts, tokio::time::Instant::now()) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(room = %room.name, error = %e, "conference recording not started");
                return;
            }
        };
        if st
            .mixer
            .add_party(RECORDER, tandem_media::MIX_RATE)
            .is_err()
        {
            return;
        }
        let callback = spec.recording_status_callback.as_deref().and_then(|u| {
            let url = Url::parse(u).ok()?;
            Some((
                url,
                spec.recording_status_callback_method,
                spec.recording_status_callback_event.clone(),
            ))
        });
        let rec = RoomRecording {
            tap: HearTap {
                tap: taps.parent,
                seq: 0,
                ts: 0,
            },
            callback,
            queue: self.callbacks.open(room.sid.clone()),
            session,
        };
        tracing::info!(room = %room.name, recording = %rec.session.sid(), "conference recording started");
        if let Some((url, method, events)) = &rec.callback
            && events.contains(&tandem_twiml::RecordingStatus::InProgress)
        {
            let params = recording_params(room, &rec.session.in_progress_event());
            send(&rec.queue, url, *method, params, CallbackKind::Recording);
        }
        st.recording = Some(Box::new(rec));
    }
}

/// Finishes the room's recording and reports it.
fn stop_recording(room: &Room, st: &mut RoomState) {
    let Some(mut rec) = st.recording.take() else {
        return;
    };
    let _ = st.mixer.remove_party(RECORDER);
    let info = match rec.session.stop(tokio::time::Instant::now()) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(room = %room.name, error = %e, "conference recording not finished");
            return;
        }
    };
    tracing::info!(room = %room.name, recording = %info.sid, status = info.status.as_str(), secs = info.duration_secs, "conference recording finished");
    let wanted = match info.status {
        tandem_webhook::RecordingStatus::Absent => tandem_twiml::RecordingStatus::Absent,
        _ => tandem_twiml::RecordingStatus::Completed,
    };
    if let Some((url, method, events)) = &rec.callback
        && events.contains(&wanted)
    {
        let params = recording_params(room, &info.event());
        send(&rec.queue, url, *method, params, CallbackKind::Recording);
    }
}

/// A conference recording's callback parameters: a recording event's, with
/// `ConferenceSid` for `CallSid` and `RecordingSource=Conference`.
fn recording_params(room: &Room, ev: &tandem_webhook::RecordingEvent) -> Params {
    let mut p = Params::new();
    for (k, v) in ev.params().iter() {
        match k {
            "CallSid" => p.push("ConferenceSid", room.sid.as_str()),
            "RecordingSource" => p.push("RecordingSource", "Conference"),
            _ => p.push(k, v),
        }
    }
    p
}

fn send(queue: &CallbackQueue, url: &Url, method: Method, params: Params, kind: CallbackKind) {
    let cb = Callback {
        url: url.clone(),
        method,
        params,
        kind,
    };
    if let Err(e) = queue.enqueue(cb) {
        tracing::warn!(error = %e, "conference callback dropped");
    }
}

/// Queues one of the room's status callbacks, if its event was asked for.
fn event(
    room: &Room,
    st: &mut RoomState,
    name: &'static str,
    party: Option<PartyId>,
    extra: &[(&str, &str)],
) {
    let kind = match name {
        "conference-start" => ConferenceEvent::Start,
        "conference-end" => ConferenceEvent::End,
        "participant-join" => ConferenceEvent::Join,
        "participant-leave" => ConferenceEvent::Leave,
        "participant-mute" | "participant-unmute" => ConferenceEvent::Mute,
        _ => ConferenceEvent::Speaker,
    };
    let p = party.and_then(|id| st.parties.iter().find(|p| p.id == id));
    let mut params = Params::new();
    let Some(ev) = st.events.as_mut() else { return };
    if !ev.wanted.contains(&kind) {
        return;
    }
    params.push("ConferenceSid", room.sid.as_str());
    params.push("FriendlyName", room.name.as_str());
    params.push("AccountSid", room.account_sid.as_str());
    params.push("SequenceNumber", ev.sequence.to_string());
    params.push("Timestamp", tandem_webhook::rfc2822(SystemTime::now()));
    params.push("StatusCallbackEvent", name);
    if let Some(p) = p {
        params.push("CallSid", p.call_sid.as_str());
        params.push("Muted", p.spec.muted.to_string());
        params.push("Hold", "false");
        params.push("Coaching", p.spec.coach.is_some().to_string());
        if let Some(c) = &p.spec.coach {
            params.push("CallSidToCoach", c.as_str());
        }
        params.push(
            "EndConferenceOnExit",
            p.spec.end_conference_on_exit.to_string(),
        );
        params.push(
            "StartConferenceOnEnter",
            p.spec.start_conference_on_enter.to_string(),
        );
        if let Some(l) = &p.spec.participant_label {
            params.push("ParticipantLabel", l.as_str());
        }
    }
    for (k, v) in extra {
        params.push(*k, *v);
    }
    ev.sequence += 1;
    let cb = Callback {
        url: ev.url.clone(),
        method: ev.method,
        params,
        kind: CallbackKind::CallProgress,
    };
    if let Err(e) = ev.queue.enqueue(cb) {
        tracing::warn!(error = %e, "conference status callback dropped");
    }
}

/// The room's clock: one mixer step every [`TICK`] until the room ends.
async fn run(room: Arc<Room>) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        every.tick().await;
        let mut st = room.lock();
        if st.ended {
            return;
        }
        if !st.started {
            continue;
        }
        tick(&room, &mut st);
    }
}

fn tick(room: &Room, st: &mut RoomState) {
    st.mixer.tick();
    let beep = st.beep.take();
    let mut speech = Vec::new();
    let RoomState { mixer, parties, .. } = st;
    for p in parties.iter_mut() {
        let Ok(mix) = mixer.output(p.id) else {
            continue;
        };
        let start = p.out.len();
        p.out.extend(mix.iter().copied());
        if let Some((rising, at)) = beep {
            for (k, s) in p.out.range_mut(start..).enumerate() {
                *s = s.saturating_add(beep_sample(rising, at + k));
            }
        }
        if let Some(h) = p.hears.as_mut() {
            let mut frame = [0i16; MIX_FRAME];
            let mut n = 0;
            for (f, s) in frame.iter_mut().zip(p.out.range(start..)) {
                *f = *s;
                n += 1;
            }
            h.feed(&frame[..n]);
        }
        while p.out.len() > OUT_FRAMES * MIX_FRAME {
            p.out.drain(..MIX_FRAME);
        }
        let level = mixer.level(p.id).unwrap_or(0.0);
        let loud = level >= SPEECH_RMS;
        if loud != p.speaking {
            p.run += 1;
            let need = if p.speaking {
                SPEECH_STOP_TICKS
            } else {
                SPEECH_START_TICKS
            };
            if p.run >= need {
                p.speaking = loud;
                p.run = 0;
                speech.push((p.id, loud));
            }
        } else {
            p.run = 0;
        }
    }
    if let Some(rec) = st.recording.as_deref_mut()
        && let Ok(all) = st.mixer.output(RECORDER)
    {
        rec.tap.feed(all);
    }
    if let Some((rising, at)) = beep
        && at + MIX_FRAME < BEEP_SAMPLES
    {
        st.beep = Some((rising, at + MIX_FRAME));
    }
    for (id, loud) in speech {
        let name = if loud {
            "participant-speech-start"
        } else {
            "participant-speech-stop"
        };
        event(room, st, name, Some(id), &[]);
    }
}

/// The beep's sample `i`: two tones of 75 ms, rising or falling, at about
/// −16 dBm0.
fn beep_sample(rising: bool, i: usize) -> i16 {
    if i >= BEEP_SAMPLES {
        return 0;
    }
    let first = i < BEEP_SAMPLES / 2;
    let hz = if first == rising { 1_000.0 } else { 1_500.0 };
    let t = i as f32 / 8_000.0;
    (2_000.0 * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16
}

fn conference_sid() -> String {
    format!("CF{:032x}", rand::random::<u128>())
}

/// Decodes a party's packets into the room.
struct PartyTap {
    room: Arc<Room>,
    party: PartyId,
    dec: Mutex<Pcm8k>,
}

impl Tap for PartyTap {
    fn packet(&self, p: &TapPacket<'_>) {
        let mut dec = self.dec.lock().unwrap_or_else(|e| e.into_inner());
        let Some(samples) = dec.decode(p) else { return };
        let mut st = self.room.lock();
        if st.started && !st.ended {
            let _ = st.mixer.push(self.party, samples);
        }
    }
}

/// Plays a party's mix toward its leg.
pub(crate) struct PartySource {
    room: Arc<Room>,
    party: PartyId,
    frames: PcmFrames,
}

impl MediaSource for PartySource {
    fn next_packet(&mut self, format: &OutFormat, payload: &mut [u8]) -> SourceOutput {
        let (room, party) = (&self.room, self.party);
        self.frames.next(format, payload, |out| {
            let mut st = room.lock();
            if st.ended {
                return false;
            }
            let Some(p) = st.parties.iter_mut().find(|p| p.id == party) else {
                return false;
            };
            let n = out.len().min(p.out.len());
            for (o, s) in out.iter_mut().zip(p.out.drain(..n)) {
                *o = s;
            }
            out[n..].fill(0);
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::mailbox;

    fn rooms() -> Arc<Rooms> {
        let client = tandem_webhook::WebhookClient::new(Default::default()).unwrap();
        let cb = CallbackDispatcher::new(client, Default::default());
        Arc::new(Rooms::new(cb, "AC0".into(), None))
    }

    fn spec(sid: &str, f: impl FnOnce(&mut tandem_twiml::Conference)) -> JoinSpec {
        let mut c = tandem_twiml::Conference::new("r");
        f(&mut c);
        JoinSpec {
            call_sid: sid.into(),
            conference: c,
        }
    }

    /// What a party's leg would send: `n` 8 kHz samples pulled from its source.
    fn pull(src: &mut PartySource, n: usize) -> Vec<i16> {
        let fmt = OutFormat::default();
        let mut out = Vec::new();
        let mut payload = [0u8; 1500];
        while out.len() < n {
            match src.next_packet(&fmt, &mut payload) {
                SourceOutput::Packet(p) => out.extend(
                    payload[..p.len]
                        .iter()
                        .map(|b| tandem_media::g711::ulaw_to_linear(*b)),
                ),
                other => panic!("source ended: {other:?}"),
            }
        }
        out
    }

    fn tone_packet(hz: f32, k: usize) -> Vec<u8> {
        (0..160)
            .map(|i| {
                let t = (k * 160 + i) as f32 / 8_000.0;
                let s = (8_000.0 * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16;
                tandem_media::g711::linear_to_ulaw(s)
            })
            .collect()
    }

    fn feed(tap: &Arc<dyn Tap>, payload: &[u8]) {
        tap.packet(&TapPacket {
            leg: tandem_rtp::LegId(1),
            at: tokio::time::Instant::now(),
            pt: 0,
            codec: Some(Codec::Pcmu),
            marker: false,
            seq: 0,
            ts: 0,
            ssrc: 1,
            payload,
        });
    }

    #[tokio::test(start_paused = true)]
    async fn each_party_hears_the_others_and_not_itself_once_the_room_starts() {
        let rooms = rooms();
        let (m1, mut in1) = mailbox();
        let (m2, _in2) = mailbox();
        let (m3, _in3) = mailbox();
        let a = rooms
            .join(spec("CA1", |c| c.start_conference_on_enter = false), m1)
            .unwrap();
        let b = rooms
            .join(spec("CA2", |c| c.start_conference_on_enter = false), m2)
            .unwrap();
        assert!(!a.started() && !b.started());
        let c = rooms
            .join(
                spec("CA3", |c| c.beep = tandem_twiml::ConferenceBeep::Off),
                m3,
            )
            .unwrap();
        assert!(c.started());
        assert!(matches!(
            in1.recv().await,
            Some(CallMsg::Room(RoomMsg::Started))
        ));
        let (ta, tb, tc) = (a.tap(), b.tap(), c.tap());
        let (mut sa, mut sc) = (a.source(), c.source());
        let mut heard_a = Vec::new();
        let mut heard_c = Vec::new();
        for k in 0..50 {
            feed(&ta, &tone_packet(600.0, k));
            feed(&tb, &tone_packet(1_000.0, k));
            feed(&tc, &tone_packet(1_700.0, k));
            tokio::time::sleep(TICK).await;
            heard_a.extend(pull(&mut sa, 160));
            heard_c.extend(pull(&mut sc, 160));
        }
        let share = |pcm: &[i16], hz| tandem_media::goertzel::tone_share(&pcm[1600..], hz, 8_000);
        assert!(share(&heard_a, 600.0) < 0.02, "{}", share(&heard_a, 600.0));
        assert!(share(&heard_a, 1_000.0) > 0.3 && share(&heard_a, 1_700.0) > 0.3);
        assert!(share(&heard_c, 1_700.0) < 0.02);
        assert!(share(&heard_c, 600.0) > 0.3 && share(&heard_c, 1_000.0) > 0.3);
        drop((a, b, c));
        assert_eq!(rooms.len(), 0, "the last one out closes the room");
    }

    #[tokio::test(start_paused = true)]
    async fn end_conference_on_exit_ends_it_for_everyone_and_max_participants_holds() {
        let rooms = rooms();
        let (m1, mut in1) = mailbox();
        let (m2, _in2) = mailbox();
        let (m3, _in3) = mailbox();
        let a = rooms
            .join(spec("CA1", |c| c.max_participants = 2), m1)
            .unwrap();
        let b = rooms
            .join(spec("CA2", |c| c.end_conference_on_exit = true), m2)
            .unwrap();
        let full = rooms.join(spec("CA3", |_| {}), m3).unwrap_err();
        assert_eq!(full, JoinError::Full("r".into(), 2));
        drop(b);
        assert!(matches!(
            in1.recv().await,
            Some(CallMsg::Room(RoomMsg::Ended))
        ));
        assert_eq!(rooms.len(), 0);
        let mut src = a.source();
        let mut payload = [0u8; 1500];
        assert_eq!(
            src.next_packet(&OutFormat::default(), &mut payload),
            SourceOutput::Done,
            "an ended room's mix stops"
        );
        drop(a);
        // A new room of the same name starts afresh.
        let (m4, _in4) = mailbox();
        let d = rooms.join(spec("CA4", |_| {}), m4).unwrap();
        assert!(d.started());
        assert_eq!(rooms.len(), 1);
    }

    #[test]
    fn beeps_rise_on_entry_and_fall_on_exit() {
        let f = |rising, i| {
            let s: Vec<i16> = (i..i + 200).map(|k| beep_sample(rising, k)).collect();
            tandem_media::goertzel::tone_share(&s, 1_000.0, 8_000)
        };
        assert!(f(true, 0) > 0.8, "{}", f(true, 0));
        assert!(f(true, 700) < 0.2);
        assert!(f(false, 700) > 0.8);
        assert!(f(false, 0) < 0.2);
        assert_eq!(beep_sample(true, BEEP_SAMPLES), 0);
    }

    #[test]
    fn conference_sids_look_like_twilio_ones() {
        let s = conference_sid();
        assert_eq!(s.len(), 34);
        assert!(s.starts_with("CF"));
        assert_ne!(s, conference_sid());
    }
}
