//! Typed SDP errors. Every variant is a reason to refuse an offer or answer
//! with `488 Not Acceptable Here` (RFC 3261 §21.4.26).

/// Why a session description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is empty.
    #[error("empty SDP body")]
    Empty,
    /// The body is not UTF-8 text.
    #[error("SDP body is not UTF-8")]
    NotUtf8,
    /// The body, or its count of lines or media sections, is over the limit.
    #[error("SDP body too large")]
    TooLarge,
    /// A line is not `<letter>=<value>`.
    #[error("line {line}: not a <type>=<value> line")]
    BadLine {
        /// 1-based line number.
        line: usize,
    },
    /// The first line is not `v=0`.
    #[error("line {line}: expected v=0")]
    BadVersion {
        /// 1-based line number.
        line: usize,
    },
    /// A mandatory line (`o=`, `s=`) is missing.
    #[error("missing {kind}= line")]
    Missing {
        /// The line type letter.
        kind: char,
    },
    /// A line appears where it may not, or more often than allowed.
    #[error("line {line}: unexpected {kind}= line")]
    Unexpected {
        /// 1-based line number.
        line: usize,
        /// The line type letter.
        kind: char,
    },
    /// A field of a line is malformed.
    #[error("line {line}: bad {field} in {kind}= line")]
    BadField {
        /// 1-based line number.
        line: usize,
        /// The line type letter.
        kind: char,
        /// Which field.
        field: &'static str,
    },
    /// An RTP media section has no `c=` at media or session level.
    #[error("media section {media} has no connection address")]
    MissingConnection {
        /// 0-based media section index.
        media: usize,
    },
    /// The description has no usable audio stream (none, all rejected, or
    /// only over an unsupported transport such as `RTP/SAVP`).
    #[error("no usable audio stream")]
    NoAudio,
    /// No audio codec in common (PCMU, PCMA, Opus).
    #[error("no audio codec in common")]
    NoCommonCodec,
    /// An answer does not fit the offer it answers (RFC 3264 §6).
    #[error("answer does not match offer: {reason}")]
    AnswerMismatch {
        /// What does not match.
        reason: &'static str,
    },
}

impl SdpError {
    /// The SIP status code to refuse the offer with: always 488.
    pub fn sip_status(&self) -> u16 {
        488
    }
}
