//! The `tandem` binary's library half: the config tree (design §7), the
//! command line, and [`run::run`], which wires a validated config to the
//! running parts. `main.rs` only glues them together.

pub mod cli;
pub mod config;
pub mod run;
