//! Tandem's B2BUA engine: inbound calls run TwiML; `<Dial>` forks up to ten
//! child legs, bridges the first to answer and cancels the rest (design §3–§7).

mod admission;
mod api;
mod call;
mod conference;
pub mod config;
mod demo;
mod dns;
mod engine;
pub mod fork;
mod gather;
pub mod history;
pub mod http;
mod inspector;
mod keepalive;
mod media;
pub mod media_ops;
pub mod metrics;
mod queue;
pub mod recording;
mod registration;
mod speech;
mod transcribe;

pub use admission::Limits;
pub use call::replay::{ReplayError, replay};
pub use config::{Client, EngineConfig, MediaConfig, NumberRoute, Trunk, TwimlSource};
pub use engine::{Engine, EngineError};
