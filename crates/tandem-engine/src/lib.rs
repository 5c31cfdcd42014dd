//! Tandem's B2BUA engine: inbound calls run TwiML; `<Dial>` forks up to ten
//! child legs, bridges the first to answer and cancels the rest (design §3–§7).

mod call;
pub mod config;
mod engine;
pub mod fork;
mod media;

pub use config::{EngineConfig, MediaConfig, NumberRoute, TwimlSource, Trunk};
pub use engine::{Engine, EngineError};
