//! The interpreter's vocabulary: events fed in, commands emitted, outcomes.

use std::time::Duration;

use url::Url;

use crate::ast::{Dial, Document, Gather, Play, Record, Say};
use crate::values::{Method, RejectReason};

pub use tandem_types::{DialCallStatus, DialOutcome};

/// What the engine reports to the interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The last `Say`, `Play` or `Pause` command finished playing.
    VerbDone,
    /// The `Gather` command ended with these digits (on `finishOnKey`,
    /// `numDigits`, or the timeout after at least one digit).
    Digits {
        /// The digits, without the finishing key.
        digits: String,
        /// The key that ended input, if one did.
        finished_on_key: Option<char>,
    },
    /// The `Gather` command timed out with no input at all.
    GatherTimeout,
    /// The `Gather` command heard speech and the recogniser transcribed it.
    Speech {
        /// `SpeechResult`: the text (empty when nothing was recognised).
        result: String,
        /// `Confidence` as the recogniser gave it (0..1), when it did.
        confidence: Option<String>,
    },
    /// The `Dial` command ended.
    DialOutcome(DialOutcome),
    /// The `Record` command ended.
    Recorded(RecordOutcome),
    /// The caller left the queue of the `Enqueue` command.
    Enqueued(EnqueueOutcome),
    /// The party whose leg runs this interpreter hung up: the caller (for a
    /// screening interpreter, the callee).
    CallerHangup,
    /// The response body of the pending `Fetch` command.
    Fetched {
        /// The TwiML text.
        body: String,
        /// The URL the body finally came from when HTTP redirects were
        /// followed; `None` means the requested URL. Relative URLs in the
        /// new document resolve against it.
        final_url: Option<Url>,
    },
    /// The pending `Fetch` answered with a document the engine parsed itself
    /// (e.g. to try the number's fallback URL when the body did not parse).
    /// On a screening leg, verbs a screening document may not contain fail
    /// the screening when reached.
    FetchedDocument {
        /// The parsed document.
        document: Document,
        /// As in [`Event::Fetched`].
        final_url: Option<Url>,
    },
    /// The call moves to this document now, whatever it was waiting for:
    /// a transfer's `referUrl` answered while a `<Dial>` was bridged (the
    /// engine ended the Dial without its action). On the caller's leg only.
    Redirected {
        /// The parsed document.
        document: Document,
        /// The URL it came from; relative URLs in it resolve against it.
        url: Option<Url>,
    },
    /// The pending `Fetch` failed (no answer, timeout, 4xx/5xx, not TwiML),
    /// fallback URL included.
    FetchFailed {
        /// Why, for the log.
        reason: String,
    },
}

impl Event {
    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::VerbDone => "VerbDone",
            Self::Digits { .. } => "Digits",
            Self::GatherTimeout => "GatherTimeout",
            Self::Speech { .. } => "Speech",
            Self::DialOutcome(_) => "DialOutcome",
            Self::Recorded(_) => "Recorded",
            Self::Enqueued(_) => "Enqueued",
            Self::CallerHangup => "CallerHangup",
            Self::Fetched { .. } => "Fetched",
            Self::FetchedDocument { .. } => "FetchedDocument",
            Self::Redirected { .. } => "Redirected",
            Self::FetchFailed { .. } => "FetchFailed",
        }
    }
}

/// Why a document is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchReason {
    /// The call's first document (`voice_url` or a local file).
    Initial,
    /// `<Dial action>` after the dial ended.
    DialAction,
    /// `<Gather action>` (or the document URL) with the digits.
    GatherAction,
    /// `<Record action>` (or the document URL) with the recording.
    RecordAction,
    /// `<Redirect>`.
    Redirect,
    /// A noun's `url`: the screening document.
    Screening,
    /// `<Dial referUrl>` with `ReferTransferTarget`: a bridged callee sent
    /// a REFER. The engine's own fetch; its answer is fed back as
    /// [`Event::Redirected`], not as `Fetched`.
    Refer,
    /// A `<Conference>` or `<Enqueue>` `waitUrl`: what the caller hears
    /// while it waits. The engine's own fetch, played on its own.
    Wait,
    /// `<Enqueue action>` with `QueueResult`.
    EnqueueAction,
    /// `<Queue url>`: the document the dequeued caller hears before the
    /// bridge. The engine's own fetch.
    Dequeued,
    /// The REST API moved the call to a new `Url`. The engine's own fetch;
    /// its answer is fed back as [`Event::Redirected`].
    Modify,
}

/// A document request for the webhook client. The interpreter adds only the
/// verb's own parameters; the standard call parameters are the client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Absolute URL, resolved against the current document's URL.
    pub url: Url,
    /// GET or POST.
    pub method: Method,
    /// Verb parameters (`DialCallStatus`, `Digits`, ...), in order.
    pub params: Vec<(String, String)>,
    /// What the fetch is for.
    pub reason: FetchReason,
}

/// The verdict of a screening document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScreeningVerdict {
    /// The document ended without `<Hangup>`: bridge this callee.
    Accepted,
    /// `<Hangup>` ran or the callee hung up: drop this branch.
    Declined,
    /// The document could not be fetched or was invalid: drop this branch.
    Failed,
}

/// What the engine must do next, in order. Commands that play something
/// (`Say`, `Play`, `Pause`) are followed by [`Event::VerbDone`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Answer the caller (200 OK) before the next command.
    Answer,
    /// Speak text.
    Say(Say),
    /// Play audio (URL resolved) and/or DTMF digits.
    Play(Play),
    /// Stay silent.
    Pause {
        /// How long.
        duration: Duration,
    },
    /// Play the prompts while collecting DTMF; answer with
    /// [`Event::Digits`] or [`Event::GatherTimeout`].
    Gather(Gather),
    /// Put the caller in a queue (URLs resolved; the caller already
    /// answered); answer with [`Event::Enqueued`].
    Enqueue(crate::ast::Enqueue),
    /// Record the caller (beep first when `play_beep`); answer with
    /// [`Event::Recorded`]. `action` is resolved (the document's URL when
    /// the verb had none).
    Record(Record),
    /// Ring the nouns (only Number, Client, Sip; URLs resolved), or join
    /// the one `<Conference>` (the caller already answered); answer with
    /// [`Event::DialOutcome`] (`answered` for a conference, without
    /// `DialCallSid` and `DialCallDuration`).
    Dial(Dial),
    /// End the call. On a caller never answered (only after an unbridged
    /// `answerOnBridge` dial) the engine ends it with a final response.
    Hangup,
    /// Refuse the unanswered call: 486 for busy, 603 for rejected.
    Reject {
        /// `<Reject reason>`.
        reason: RejectReason,
    },
    /// Fetch a document; answer with [`Event::Fetched`] or
    /// [`Event::FetchFailed`].
    Fetch(FetchRequest),
    /// Screening only: the verdict; the screening interpreter is finished.
    Screened(ScreeningVerdict),
}

/// `QueueResult`: how a caller left its `<Enqueue>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueResult {
    /// Taken by an agent and bridged; reported once the bridge ended.
    Bridged,
    /// The queue was full.
    QueueFull,
    /// The caller hung up while waiting.
    Hangup,
    /// A `<Leave>` in the wait document.
    Leave,
    /// The call was redirected (REST API) while waiting.
    Redirected,
    /// The caller could not be queued (no media to wait with).
    Error,
    /// Tandem failed.
    SystemError,
}

impl QueueResult {
    /// Twilio's string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bridged => "bridged",
            Self::QueueFull => "queue-full",
            Self::Hangup => "hangup",
            Self::Leave => "leave",
            Self::Redirected => "redirected",
            Self::Error => "error",
            Self::SystemError => "system-error",
        }
    }
}

/// How an `<Enqueue>` ended, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueOutcome {
    /// `QueueResult`.
    pub result: QueueResult,
    /// `QueueSid` (`QU` + 32 hex), when the caller was in a queue.
    pub queue_sid: Option<String>,
    /// `QueueTime`: seconds spent waiting in the queue.
    pub queue_time: u64,
}

impl EnqueueOutcome {
    /// The `action` request's parameters.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut p = vec![("QueueResult".to_owned(), self.result.as_str().to_owned())];
        if let Some(sid) = &self.queue_sid {
            p.push(("QueueSid".to_owned(), sid.clone()));
        }
        p.push(("QueueTime".to_owned(), self.queue_time.to_string()));
        p
    }
}

/// How a `<Record>` ended, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordOutcome {
    /// `RecordingSid`; `None` when nothing was recorded (no audio, all
    /// silence trimmed, no media): Twilio then skips `action` and runs the
    /// next verb.
    pub recording_sid: Option<String>,
    /// `RecordingUrl`.
    pub recording_url: Option<String>,
    /// `RecordingDuration` in whole seconds.
    pub duration_secs: u64,
    /// `Digits`: the key that ended the recording, `hangup` when the caller
    /// hung up, empty on silence or `maxLength`.
    pub digits: String,
}

impl RecordOutcome {
    /// Whether there is a recording to report to `action`.
    pub fn is_empty(&self) -> bool {
        self.recording_sid.is_none()
    }

    /// The `action` request's parameters, in Twilio's order.
    pub fn params(&self) -> Vec<(String, String)> {
        vec![
            (
                "RecordingUrl".to_owned(),
                self.recording_url.clone().unwrap_or_default(),
            ),
            (
                "RecordingDuration".to_owned(),
                self.duration_secs.to_string(),
            ),
            (
                "RecordingSid".to_owned(),
                self.recording_sid.clone().unwrap_or_default(),
            ),
            ("Digits".to_owned(), self.digits.clone()),
        ]
    }
}

/// How an interpreter finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// `<Hangup>` or the end of the document.
    HungUp,
    /// `<Reject>` on an unanswered call.
    Rejected(RejectReason),
    /// The caller (or screened callee) hung up first.
    RemoteHangup,
    /// A document failed to fetch or parse, or looped: the caller heard
    /// the application error message and was hung up on.
    ApplicationError,
    /// Screening finished with this verdict.
    Screened(ScreeningVerdict),
}
