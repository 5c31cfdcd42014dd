//! Test support for Tandem (never published): a recording webhook server that
//! plays the application side of Twilio's webhooks in tests, plus small
//! misbehaving servers (garbage answers, silent sockets, closed ports), and
//! the SDP and RTP a test peer sends.

pub mod json;
pub mod misbehaving;
pub mod recorder;
pub mod rtp;
pub mod sdp;

pub use misbehaving::{GarbageServer, closed_port_url};
pub use recorder::{
    RecordedRequest, RecorderConfig, RecorderError, ScriptedResponse, WebhookRecorder,
};
