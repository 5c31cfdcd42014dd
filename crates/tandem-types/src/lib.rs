//! tandem-types: the words every Tandem crate speaks, defined once.
//!
//! TwiML attribute values, webhook parameter values and the media plane's
//! codecs used to be defined in each crate that needed them (three
//! `RecordingTrack`s, two `Method`s, two `Codec`s...), with mappers between
//! copies that could drift apart. They live here now, as plain data with
//! their wire spellings, and every crate uses these:
//!
//! - [`Method`]: `GET`/`POST` of a webhook.
//! - [`CallStatus`], [`DialCallStatus`], [`DialOutcome`]: what a call and a
//!   `<Dial>` report.
//! - [`RecordingTrack`], [`Trim`], [`RecordingStatus`]: recording options
//!   and the states a recording callback reports.
//! - [`RingTone`]: the 40 `ringTone` codes (tandem-media has their sounds).
//! - [`Codec`]: what an RTP payload type can stand for (tandem-media has the
//!   encoders, tandem-rtp the SDP rules).
//!
//! No I/O, no clock, no dependency but `thiserror`: every crate may depend
//! on this one, and it depends on none of them.

mod codec;
mod ring_tone;
mod twilio;

pub use codec::{Codec, UnknownCodec};
pub use ring_tone::RingTone;
pub use twilio::{
    CallStatus, DialCallStatus, DialOutcome, Method, RecordingStatus, RecordingTrack, Trim,
};

/// A string that is not one of the values a vocabulary word accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} value")]
pub struct UnknownValue {
    /// The word (`method`, `recordingTrack`, `ringTone`...).
    pub what: &'static str,
}
