//! Outbound registration to a trunk (RFC 3261 §10.2): being written.
