//! Tandem's SIP core: messages on rsip with normalisation (RFC 3261 §7, §20),
//! sans-IO transactions (§17 with RFC 6026), dialogs (§12) and digest
//! authentication (RFC 7616/2617), session timers (RFC 4028). No I/O and no clock: time enters as
//! `Instant` arguments, randomness through [`builder::IdGen`].

pub mod auth;
pub mod builder;
pub mod dialog;
pub mod framing;
pub mod header;
pub mod message;
pub mod registrar;
pub mod registration;
pub mod session_timer;
pub mod transaction;
pub mod uri;

pub use message::{ParseError, parse, to_bytes};
