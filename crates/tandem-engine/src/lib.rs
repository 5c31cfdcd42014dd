//! Tandem's B2BUA engine: inbound calls run TwiML; `<Dial>` forks up to ten
//! child legs, bridges the first to answer and cancels the rest.

pub mod fork;
