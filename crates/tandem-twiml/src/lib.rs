//! tandem-twiml: TwiML documents to typed verbs with Twilio's validation
//! rules, and a sans-IO interpreter that turns them into call commands.
//!
//! - [`parse`] / [`parse_screening`] read a `<Response>` into a [`Document`];
//!   a bad document yields a [`ParseError`] naming the element, attribute,
//!   value and `line:column`.
//! - [`support`] lists what Tandem acts on; [`Document::not_acted_on`] lists
//!   what a given document uses that is only parsed.
//! - [`Interpreter`] is fed [`Event`]s and emits [`Command`]s; it does no I/O
//!   and reads no clock.
//!
//! ```
//! use tandem_twiml::{Command, DialCallStatus, DialOutcome, Event, Interpreter, parse};
//!
//! let doc = parse("<Response><Dial timeout=\"20\">415-123-4567</Dial><Say>Bye</Say></Response>")?;
//! let base = url::Url::parse("http://app.example/voice.xml").ok();
//! let mut call = Interpreter::new(doc, base);
//! assert_eq!(call.poll_command(), Some(Command::Answer));
//! assert!(matches!(call.poll_command(), Some(Command::Dial(d)) if d.timeout == 20));
//! call.handle(Event::DialOutcome(DialOutcome {
//!     status: DialCallStatus::NoAnswer,
//!     call_sid: None,
//!     duration: None,
//!     bridged: false,
//!     recording_url: None,
//!     extra: Vec::new(),
//! }))?;
//! assert!(matches!(call.poll_command(), Some(Command::Say(s)) if s.text == "Bye"));
//! call.handle(Event::VerbDone)?;
//! assert_eq!(call.poll_command(), Some(Command::Hangup));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ast;
mod command;
mod dial;
mod error;
mod interp;
mod parse;
pub mod support;
mod values;
mod xml;

pub use ast::{
    Client, Conference, ConferenceBeep, ConferenceEvent, Dial, Document, Enqueue, Gather,
    MachineDetectionOptions, Notice, NoticeKind, Noun, NounOptions, Number, Pause, Play, Prompt,
    Queue, Record, Redirect, Reject, Say, Sip, SpeechTimeout, Verb,
};
pub use command::{
    Command, DialCallStatus, DialOutcome, EnqueueOutcome, Event, FetchReason, FetchRequest,
    Outcome, QueueResult, RecordOutcome, ScreeningVerdict,
};
pub use dial::MAX_DIAL_NOUNS;
pub use error::{ParseError, Position};
pub use interp::{APPLICATION_ERROR_TEXT, InterpretError, Interpreter, MAX_CONSECUTIVE_REDIRECTS};
pub use parse::{MAX_DOCUMENT_BYTES, parse, parse_screening};
pub use values::{
    CallProgressEvent, GatherInput, Loop, MachineDetection, Method, PhoneNumber, RecordMode,
    RecordingStatus, RecordingTrack, RejectReason, RingTone, Trim,
};
