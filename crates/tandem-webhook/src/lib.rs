//! tandem-webhook: every HTTP request Tandem makes to an application, the way
//! Twilio makes it — TwiML fetches (with fallback URL), `<Dial>` action
//! requests, call progress and recording status callbacks — with Twilio's
//! parameter names, `X-Twilio-Signature` signing, timeouts, and per-call
//! ordered, bounded, retried callback delivery. See `docs/webhooks.md`.
//!
//! Layers: [`params`] and [`request`] are pure (parameters, URLs, signing);
//! [`client`] does the HTTP exchange (over [`tls`] for `https`); [`callbacks`] queues asynchronous
//! callbacks per call.

pub mod callbacks;
pub mod client;
pub mod error;
pub mod params;
pub mod request;
pub mod time;
pub mod tls;

pub use callbacks::{
    Callback, CallbackConfig, CallbackDispatcher, CallbackKind, CallbackQueue, CallbackStats,
    EnqueueError,
};
pub use client::{
    ClientConfig, ExchangeObserver, Response, Target, TwimlDocument, TwimlRequest, WebhookClient,
};
pub use error::WebhookError;
pub use params::{
    API_VERSION, CallInfo, CallStatus, DialCallStatus, DialOutcome, Direction, Params,
    RecordingEvent, RecordingRef, RecordingStatus, RecordingTrack, StatusEvent, fallback_params,
};
pub use request::{Method, PreparedRequest, prepare, redact, resolve_url, signature};
pub use time::rfc2822;
pub use tls::ClientBuildError;
