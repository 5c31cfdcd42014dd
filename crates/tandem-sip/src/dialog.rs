//! Dialogs (RFC 3261 §12): written by the lead.
