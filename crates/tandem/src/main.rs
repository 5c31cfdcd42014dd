//! The `tandem` binary: config, CLI, tracing, signals, wiring.

fn main() {}
