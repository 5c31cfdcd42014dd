//! Registrar bindings (RFC 3261 §10.3): being written.
