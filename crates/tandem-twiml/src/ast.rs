//! The typed TwiML tree: verbs, `<Dial>` nouns and their attributes with
//! Twilio's documented defaults.

use std::fmt;

use crate::error::Position;
use crate::values::{
    CallProgressEvent, GatherInput, Loop, MachineDetection, Method, PhoneNumber, RecordMode,
    RecordingStatus, RecordingTrack, RejectReason, RingTone, Trim,
};

/// A parsed `<Response>`: its verbs in order plus what the parser noticed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    /// The verbs, in document order.
    pub verbs: Vec<Verb>,
    /// Unknown attributes (ignored) and attributes Tandem parses but does not
    /// act on yet; see [`Document::not_acted_on`].
    pub notices: Vec<Notice>,
}

impl Document {
    /// The notices for attributes and elements that are parsed but not yet
    /// acted on, for the engine to log when it runs the document.
    pub fn not_acted_on(&self) -> impl Iterator<Item = &Notice> {
        self.notices
            .iter()
            .filter(|n| n.kind == NoticeKind::NotActedOn)
    }

    /// The notices for unknown attributes, which were ignored.
    pub fn unknown_attributes(&self) -> impl Iterator<Item = &Notice> {
        self.notices
            .iter()
            .filter(|n| n.kind == NoticeKind::UnknownAttribute)
    }
}

/// What a [`Notice`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// An attribute TwiML does not define here; ignored like Twilio does.
    UnknownAttribute,
    /// Parsed and validated but not yet acted on by Tandem.
    NotActedOn,
}

/// Something the parser accepted but wants logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Unknown or not acted on.
    pub kind: NoticeKind,
    /// The element (`Dial`, `Number`, ...).
    pub element: String,
    /// The attribute; `None` when the element itself is meant (`Conference`).
    pub attribute: Option<String>,
    /// The attribute's value (empty for elements).
    pub value: String,
    /// Where it is.
    pub at: Position,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            NoticeKind::UnknownAttribute => "unknown, ignored",
            NoticeKind::NotActedOn => "parsed, not yet acted on",
        };
        match &self.attribute {
            Some(attr) => write!(
                f,
                "<{}> {attr}={:?} at {} ({what})",
                self.element, self.value, self.at
            ),
            None if self.value.is_empty() => {
                write!(f, "<{}> at {} ({what})", self.element, self.at)
            }
            None => write!(
                f,
                "<{}> {:?} at {} ({what})",
                self.element, self.value, self.at
            ),
        }
    }
}

/// One TwiML verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `<Dial>`.
    Dial(Dial),
    /// `<Say>`.
    Say(Say),
    /// `<Play>`.
    Play(Play),
    /// `<Pause>`.
    Pause(Pause),
    /// `<Gather>`.
    Gather(Gather),
    /// `<Hangup/>`.
    Hangup,
    /// `<Reject>`.
    Reject(Reject),
    /// `<Redirect>`.
    Redirect(Redirect),
    /// `<Record>`.
    Record(Record),
    /// `<Enqueue>`.
    Enqueue(Enqueue),
    /// `<Leave/>`: leave the queue (in an `<Enqueue waitUrl>` document).
    Leave,
}

impl Verb {
    /// The element name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dial(_) => "Dial",
            Self::Say(_) => "Say",
            Self::Play(_) => "Play",
            Self::Pause(_) => "Pause",
            Self::Gather(_) => "Gather",
            Self::Hangup => "Hangup",
            Self::Reject(_) => "Reject",
            Self::Redirect(_) => "Redirect",
            Self::Record(_) => "Record",
            Self::Enqueue(_) => "Enqueue",
            Self::Leave => "Leave",
        }
    }
}

/// `<Dial>` and its attributes. `Default` gives Twilio's defaults and no nouns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// `action`: requested when the dial ends; its TwiML replaces the document.
    pub action: Option<String>,
    /// `answerOnBridge` (false): ring the caller until a callee is bridged.
    pub answer_on_bridge: bool,
    /// `callerId`: E.164 when it is a phone number; default the caller's.
    pub caller_id: Option<String>,
    /// `callReason` (at most 50 characters).
    pub call_reason: Option<String>,
    /// `hangupOnStar` (false).
    pub hangup_on_star: bool,
    /// `method` for `action` (POST).
    pub method: Method,
    /// `record` (do-not-record).
    pub record: RecordMode,
    /// `recordingStatusCallback`.
    pub recording_status_callback: Option<String>,
    /// `recordingStatusCallbackMethod` (POST).
    pub recording_status_callback_method: Method,
    /// `recordingStatusCallbackEvent` (completed).
    pub recording_status_callback_event: Vec<RecordingStatus>,
    /// `recordingTrack` (both).
    pub recording_track: RecordingTrack,
    /// `referUrl`.
    pub refer_url: Option<String>,
    /// `referMethod` (POST).
    pub refer_method: Method,
    /// `ringTone` (none: the carrier's / first early media).
    pub ring_tone: Option<RingTone>,
    /// `timeLimit` in seconds (14400).
    pub time_limit: u32,
    /// `timeout` in seconds (30, 5..=600).
    pub timeout: u32,
    /// `trim` (do-not-trim).
    pub trim: Trim,
    /// What to dial, in order.
    pub nouns: Vec<Noun>,
}

impl Default for Dial {
    fn default() -> Self {
        Self {
            action: None,
            answer_on_bridge: false,
            caller_id: None,
            call_reason: None,
            hangup_on_star: false,
            method: Method::Post,
            record: RecordMode::DoNotRecord,
            recording_status_callback: None,
            recording_status_callback_method: Method::Post,
            recording_status_callback_event: vec![RecordingStatus::Completed],
            recording_track: RecordingTrack::Both,
            refer_url: None,
            refer_method: Method::Post,
            ring_tone: None,
            time_limit: 14_400,
            timeout: 30,
            trim: Trim::DoNotTrim,
            nouns: Vec::new(),
        }
    }
}

impl Dial {
    /// The nouns that create a child call (Number, Client, Sip).
    pub fn dialable(&self) -> impl Iterator<Item = &Noun> {
        self.nouns.iter().filter(|n| n.is_dialable())
    }
}

/// A `<Dial>` noun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Noun {
    /// `<Number>` or plain text in `<Dial>`.
    Number(Number),
    /// `<Client>`.
    Client(Client),
    /// `<Sip>`.
    Sip(Sip),
    /// `<Conference>`: join a room (the only noun of its `<Dial>`).
    Conference(Box<Conference>),
    /// `<Queue>`: take the caller at the front of a queue (the only noun
    /// of its `<Dial>`).
    Queue(Queue),
}

impl Noun {
    /// Whether Tandem places a child call for this noun.
    pub fn is_dialable(&self) -> bool {
        matches!(self, Self::Number(_) | Self::Client(_) | Self::Sip(_))
    }

    /// The options shared by Number, Client and Sip.
    pub fn options(&self) -> Option<&NounOptions> {
        match self {
            Self::Number(n) => Some(&n.options),
            Self::Client(c) => Some(&c.options),
            Self::Sip(s) => Some(&s.options),
            Self::Conference(_) | Self::Queue(_) => None,
        }
    }

    pub(crate) fn options_mut(&mut self) -> Option<&mut NounOptions> {
        match self {
            Self::Number(n) => Some(&mut n.options),
            Self::Client(c) => Some(&mut c.options),
            Self::Sip(s) => Some(&mut s.options),
            Self::Conference(_) | Self::Queue(_) => None,
        }
    }
}

/// Attributes shared by `<Number>`, `<Client>` and `<Sip>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NounOptions {
    /// `url`: screening TwiML run on the callee after answer, before bridging.
    pub url: Option<String>,
    /// `method` for `url` (POST).
    pub method: Method,
    /// `statusCallback`.
    pub status_callback: Option<String>,
    /// `statusCallbackEvent` (completed).
    pub status_callback_event: Vec<CallProgressEvent>,
    /// `statusCallbackMethod` (POST).
    pub status_callback_method: Method,
}

impl Default for NounOptions {
    fn default() -> Self {
        Self {
            url: None,
            method: Method::Post,
            status_callback: None,
            status_callback_event: vec![CallProgressEvent::Completed],
            status_callback_method: Method::Post,
        }
    }
}

/// `<Number>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    /// The number, E.164.
    pub number: PhoneNumber,
    /// `sendDigits`: DTMF played to the callee after answer (`w` = 500 ms).
    pub send_digits: Option<String>,
    /// `byoc` trunk SID.
    pub byoc: Option<String>,
    /// `machineDetection` and its settings.
    pub machine_detection: MachineDetectionOptions,
    /// url, method, statusCallback*.
    pub options: NounOptions,
}

impl Number {
    /// A `<Number>` with every attribute at its default.
    pub fn new(number: PhoneNumber) -> Self {
        Self {
            number,
            send_digits: None,
            byoc: None,
            machine_detection: MachineDetectionOptions::default(),
            options: NounOptions::default(),
        }
    }
}

/// `machineDetection*` and `amdStatusCallback*` of `<Number>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineDetectionOptions {
    /// `machineDetection` (none).
    pub mode: Option<MachineDetection>,
    /// `machineDetectionTimeout` seconds (30, 3..=60).
    pub timeout: u32,
    /// `machineDetectionSpeechThreshold` ms (2400, 1000..=6000).
    pub speech_threshold: u32,
    /// `machineDetectionSpeechEndThreshold` ms (1200, 500..=5000).
    pub speech_end_threshold: u32,
    /// `machineDetectionSilenceTimeout` ms (5000, 2000..=10000).
    pub silence_timeout: u32,
    /// `amdStatusCallback`.
    pub status_callback: Option<String>,
    /// `amdStatusCallbackMethod` (POST).
    pub status_callback_method: Method,
}

impl Default for MachineDetectionOptions {
    fn default() -> Self {
        Self {
            mode: None,
            timeout: 30,
            speech_threshold: 2400,
            speech_end_threshold: 1200,
            silence_timeout: 5000,
            status_callback: None,
            status_callback_method: Method::Post,
        }
    }
}

/// `<Client>`: `<Client>joey</Client>` or `<Identity>` plus `<Parameter>`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The identity (1..=256 characters).
    pub identity: String,
    /// `<Parameter name value>` custom parameters, in order.
    pub parameters: Vec<(String, String)>,
    /// url, method, statusCallback*.
    pub options: NounOptions,
}

impl Client {
    /// A `<Client>` with default attributes and no parameters.
    pub fn new(identity: impl Into<String>) -> Self {
        Self {
            identity: identity.into(),
            parameters: Vec::new(),
            options: NounOptions::default(),
        }
    }
}

/// `<Sip>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sip {
    /// The URI without its `?headers` part (`sip:alice@example.com;transport=tcp`).
    pub uri: String,
    /// Headers from the URI's `?` part, percent-decoded, in order.
    pub headers: Vec<(String, String)>,
    /// `username` for digest authentication towards the callee.
    pub username: Option<String>,
    /// `password` for digest authentication towards the callee.
    pub password: Option<String>,
    /// url, method, statusCallback*.
    pub options: NounOptions,
}

impl Sip {
    /// A `<Sip>` with default attributes and no headers.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            headers: Vec::new(),
            username: None,
            password: None,
            options: NounOptions::default(),
        }
    }
}

/// `<Queue>` in a `<Dial>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The queue's name.
    pub name: String,
    /// `url`: a document played to the dequeued caller before the bridge.
    pub url: Option<String>,
    /// `method` for `url` (POST).
    pub method: Method,
}

/// `<Enqueue>`: puts the caller in a queue until an agent's
/// `<Dial><Queue>` takes it, or it leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    /// The queue's name (1–64 characters).
    pub queue: String,
    /// `action`: requested with `QueueResult` when the caller leaves the
    /// queue (after the bridge, when it was bridged).
    pub action: Option<String>,
    /// `method` for `action` (POST).
    pub method: Method,
    /// `waitUrl`: what the caller hears while waiting; requested again each
    /// time its document ends (silence when absent).
    pub wait_url: Option<String>,
    /// `waitUrlMethod` (POST).
    pub wait_url_method: Method,
}

/// `<Conference beep>`: which arrivals and departures the room hears a
/// beep for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConferenceBeep {
    /// Both (`true`, the default).
    #[default]
    Both,
    /// Neither (`false`).
    Off,
    /// Arrivals only (`onEnter`).
    OnEnter,
    /// Departures only (`onExit`).
    OnExit,
}

impl ConferenceBeep {
    /// Whether a party joining is announced.
    pub fn on_enter(self) -> bool {
        matches!(self, Self::Both | Self::OnEnter)
    }

    /// Whether a party leaving is announced.
    pub fn on_exit(self) -> bool {
        matches!(self, Self::Both | Self::OnExit)
    }
}

/// `<Conference statusCallbackEvent>` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConferenceEvent {
    /// `start`: the conference started (`conference-start`).
    Start,
    /// `end`: it ended (`conference-end`).
    End,
    /// `join`: a participant joined (`participant-join`).
    Join,
    /// `leave`: a participant left (`participant-leave`).
    Leave,
    /// `mute`: muted or unmuted (`participant-mute` / `-unmute`).
    Mute,
    /// `hold`: held or unheld (`participant-hold` / `-unhold`).
    Hold,
    /// `modify`: a participant's settings changed (`participant-modify`).
    Modify,
    /// `speaker`: a participant started or stopped speaking
    /// (`participant-speech-start` / `-stop`).
    Speaker,
    /// `announcement`: an announcement ended (`announcement-end`).
    Announcement,
}

/// `<Conference>` and its attributes. `Default` gives Twilio's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    /// The room's name (rooms are per account: one Tandem, one namespace).
    pub name: String,
    /// `muted` (false): heard by no one, hears everyone.
    pub muted: bool,
    /// `beep` (true).
    pub beep: ConferenceBeep,
    /// `startConferenceOnEnter` (true).
    pub start_conference_on_enter: bool,
    /// `endConferenceOnExit` (false).
    pub end_conference_on_exit: bool,
    /// `waitUrl`: what a participant hears until the conference starts;
    /// `None` (also `waitUrl=""`) is silence.
    pub wait_url: Option<String>,
    /// `waitMethod` (POST).
    pub wait_method: Method,
    /// `maxParticipants` (250, 2..=250).
    pub max_participants: u32,
    /// `record`: `record-from-start` or `do-not-record` (the default).
    pub record: bool,
    /// `trim` (trim-silence).
    pub trim: Trim,
    /// `recordingStatusCallback`.
    pub recording_status_callback: Option<String>,
    /// `recordingStatusCallbackMethod` (POST).
    pub recording_status_callback_method: Method,
    /// `recordingStatusCallbackEvent` (completed).
    pub recording_status_callback_event: Vec<RecordingStatus>,
    /// `statusCallback`: the conference's events, for the first participant
    /// whose `<Conference>` names one.
    pub status_callback: Option<String>,
    /// `statusCallbackMethod` (POST).
    pub status_callback_method: Method,
    /// `statusCallbackEvent` (`start end` when absent).
    pub status_callback_event: Vec<ConferenceEvent>,
    /// `participantLabel` (at most 128 characters).
    pub participant_label: Option<String>,
    /// `coach`: the CallSid of the participant this one coaches.
    pub coach: Option<String>,
}

impl Conference {
    /// A room with Twilio's defaults.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            muted: false,
            beep: ConferenceBeep::Both,
            start_conference_on_enter: true,
            end_conference_on_exit: false,
            wait_url: None,
            wait_method: Method::Post,
            max_participants: 250,
            record: false,
            trim: Trim::TrimSilence,
            recording_status_callback: None,
            recording_status_callback_method: Method::Post,
            recording_status_callback_event: vec![RecordingStatus::Completed],
            status_callback: None,
            status_callback_method: Method::Post,
            status_callback_event: vec![ConferenceEvent::Start, ConferenceEvent::End],
            participant_label: None,
            coach: None,
        }
    }
}

/// `<Say>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Say {
    /// The text, SSML tags removed and whitespace collapsed.
    pub text: String,
    /// The SSML document (`<speak>…</speak>`) when the text holds SSML
    /// tags: the tags the synthesizer knows kept, the others unwrapped.
    pub ssml: Option<String>,
    /// `voice` (engine default when absent).
    pub voice: Option<String>,
    /// `language` (engine default, en-US, when absent).
    pub language: Option<String>,
    /// `loop` (1; 0 = forever).
    pub loop_: Loop,
}

/// `<Play>`: an audio URL or, with `digits`, DTMF tones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Play {
    /// The audio URL (absent when only `digits` is given).
    pub url: Option<String>,
    /// `digits`: DTMF to play (`w` = 500 ms).
    pub digits: Option<String>,
    /// `loop` (1; 0 = forever).
    pub loop_: Loop,
}

/// `<Pause>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    /// `length` in seconds (1).
    pub length: u32,
}

impl Default for Pause {
    fn default() -> Self {
        Self { length: 1 }
    }
}

/// A verb nested in `<Gather>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// `<Say>`.
    Say(Say),
    /// `<Play>`.
    Play(Play),
    /// `<Pause>`.
    Pause(Pause),
}

/// `<Gather>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    /// `input` (dtmf).
    pub input: GatherInput,
    /// `action` (default: the current document's URL).
    pub action: Option<String>,
    /// `method` (POST).
    pub method: Method,
    /// `timeout` in seconds of silence after the last digit (5).
    pub timeout: u32,
    /// `finishOnKey` (`#`; `None` when set to empty).
    pub finish_on_key: Option<char>,
    /// `numDigits` (unlimited).
    pub num_digits: Option<u32>,
    /// `actionOnEmptyResult` (false).
    pub action_on_empty_result: bool,
    /// `speechTimeout`: how long a silence after speech ends it (`None`:
    /// `timeout`, as on Twilio).
    pub speech_timeout: Option<SpeechTimeout>,
    /// `speechModel`, passed to the recogniser.
    pub speech_model: Option<String>,
    /// `hints`: words and phrases the recogniser should expect, as written.
    pub hints: Option<String>,
    /// `language` (`en-US`), a BCP 47 tag passed to the recogniser.
    pub language: String,
    /// `profanityFilter` (true): recognised profanity is starred out.
    pub profanity_filter: bool,
    /// `partialResultCallback`: interim results are posted there.
    pub partial_result_callback: Option<String>,
    /// `partialResultCallbackMethod` (POST).
    pub partial_result_callback_method: Method,
    /// `enhanced` (false), passed to the recogniser.
    pub enhanced: bool,
    /// Nested Say, Play and Pause, played while listening.
    pub prompts: Vec<Prompt>,
}

/// `<Gather speechTimeout>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeechTimeout {
    /// `auto`: the end of the utterance, a short pause.
    Auto,
    /// Seconds of silence after speech.
    Secs(u32),
}

impl Default for Gather {
    fn default() -> Self {
        Self {
            input: GatherInput::Dtmf,
            action: None,
            method: Method::Post,
            timeout: 5,
            finish_on_key: Some('#'),
            num_digits: None,
            action_on_empty_result: false,
            speech_timeout: None,
            speech_model: None,
            hints: None,
            language: "en-US".to_owned(),
            profanity_filter: true,
            partial_result_callback: None,
            partial_result_callback_method: Method::Post,
            enhanced: false,
            prompts: Vec::new(),
        }
    }
}

/// `<Reject>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reject {
    /// `reason` (rejected).
    pub reason: RejectReason,
}

/// `<Redirect>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The URL to fetch the next document from.
    pub url: String,
    /// `method` (POST).
    pub method: Method,
}

/// `<Record>`: records the caller's voice (a voicemail), then requests
/// `action` with the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `action` (default: the current document's URL).
    pub action: Option<String>,
    /// `method` for `action` (POST).
    pub method: Method,
    /// `timeout`: seconds of silence that end the recording (5; 0 = never).
    pub timeout: u32,
    /// `finishOnKey`: any of these keys ends the recording (`1234567890*#`;
    /// empty = none).
    pub finish_on_key: String,
    /// `maxLength` in seconds (3600).
    pub max_length: u32,
    /// `playBeep` (true): a beep before recording starts.
    pub play_beep: bool,
    /// `trim` (trim-silence).
    pub trim: Trim,
    /// `recordingStatusCallback`.
    pub recording_status_callback: Option<String>,
    /// `recordingStatusCallbackMethod` (POST).
    pub recording_status_callback_method: Method,
    /// `recordingStatusCallbackEvent` (completed).
    pub recording_status_callback_event: Vec<RecordingStatus>,
    /// `transcribe` (false; `transcribeCallback` implies it).
    pub transcribe: bool,
    /// `transcribeCallback`: posted the transcription.
    pub transcribe_callback: Option<String>,
}

impl Default for Record {
    fn default() -> Self {
        Self {
            action: None,
            method: Method::Post,
            timeout: 5,
            finish_on_key: "1234567890*#".to_owned(),
            max_length: 3600,
            play_beep: true,
            trim: Trim::TrimSilence,
            recording_status_callback: None,
            recording_status_callback_method: Method::Post,
            recording_status_callback_event: vec![RecordingStatus::Completed],
            transcribe: false,
            transcribe_callback: None,
        }
    }
}
