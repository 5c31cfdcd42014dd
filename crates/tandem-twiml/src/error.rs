//! Parse errors and source positions for TwiML documents.

use std::fmt;

/// A place in a TwiML document: 1-based line and column (in characters) plus
/// the byte offset it was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Position {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
    /// Byte offset into the document.
    pub offset: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Maps byte offsets of one document to line and column.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex<'a> {
    source: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes the line starts of `source`.
    pub(crate) fn new(source: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self {
            source,
            line_starts,
        }
    }

    /// The position of byte `offset` (clamped to the document length).
    pub(crate) fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.source.len());
        let line = self.line_starts.partition_point(|start| *start <= offset);
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self
            .source
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
            offset,
        }
    }
}

/// Why a TwiML document was rejected. Every variant carries the position of
/// the offending element, attribute or text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The document is not well-formed XML.
    #[error("malformed XML at {at}: {message}")]
    Xml {
        /// What the XML reader reported.
        message: String,
        /// Where the reader stopped.
        at: Position,
    },
    /// The document is larger than Twilio accepts (its error 11750).
    #[error("document of {size} bytes exceeds the {limit}-byte TwiML limit")]
    TooLarge {
        /// The document's size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The document contains no element at all.
    #[error("empty document: no <Response> element")]
    Empty,
    /// The root element is not `<Response>`.
    #[error("root element <{element}> at {at} is not <Response>")]
    NotResponse {
        /// The root element found.
        element: String,
        /// Its position.
        at: Position,
    },
    /// Elements are nested deeper than any TwiML document needs.
    #[error("<{element}> at {at} is nested deeper than {limit} levels")]
    TooDeep {
        /// The element that went too deep.
        element: String,
        /// Its position.
        at: Position,
        /// The nesting limit.
        limit: usize,
    },
    /// An element inside `<Response>` that is no TwiML verb.
    #[error("unknown verb <{element}> at {at}")]
    UnknownVerb {
        /// The element name.
        element: String,
        /// Its position.
        at: Position,
    },
    /// A TwiML verb that Twilio has but Tandem does not implement.
    #[error("verb <{element}> at {at} is not supported by Tandem")]
    UnsupportedVerb {
        /// The verb name.
        element: String,
        /// Its position.
        at: Position,
    },
    /// An element that is not allowed inside its parent (a `<Dial>` inside
    /// `<Gather>`, an unknown noun inside `<Dial>`, ...).
    #[error("<{element}> at {at} is not allowed inside <{parent}>")]
    InvalidChild {
        /// The parent element.
        parent: String,
        /// The misplaced element.
        element: String,
        /// Its position.
        at: Position,
    },
    /// Non-blank text where only elements are allowed.
    #[error("unexpected text {text:?} inside <{element}> at {at}")]
    UnexpectedText {
        /// The element containing the text.
        element: String,
        /// The text (trimmed).
        text: String,
        /// Where the text starts.
        at: Position,
    },
    /// An attribute value outside its allowed values.
    #[error("<{element}> attribute {attribute}={value:?} at {at} is invalid: expected {expected}")]
    InvalidAttribute {
        /// The element carrying the attribute.
        element: String,
        /// The attribute name.
        attribute: String,
        /// The rejected value.
        value: String,
        /// What the attribute accepts.
        expected: &'static str,
        /// Position of the attribute.
        at: Position,
    },
    /// A required attribute is absent.
    #[error("<{element}> at {at} lacks the required attribute {attribute}")]
    MissingAttribute {
        /// The element.
        element: String,
        /// The missing attribute.
        attribute: &'static str,
        /// Position of the element.
        at: Position,
    },
    /// A verb or noun lacks the text it needs (a URL, a number, an identity).
    #[error("<{element}> at {at} is empty: {expected} expected")]
    MissingContent {
        /// The element.
        element: String,
        /// What the text should have been.
        expected: &'static str,
        /// Position of the element.
        at: Position,
    },
    /// The text of a verb is not what it must be (a URL for `<Redirect>` or
    /// `<Play>`).
    #[error("<{element}> text {value:?} at {at} is invalid: expected {expected}")]
    InvalidContent {
        /// The element.
        element: String,
        /// The rejected text.
        value: String,
        /// What the text should have been.
        expected: &'static str,
        /// Where the text starts.
        at: Position,
    },
    /// Text that should be a phone number is not E.164 nor a US number.
    #[error("<{element}> at {at}: {value:?} is not a phone number (E.164 or US)")]
    InvalidPhoneNumber {
        /// The element holding the number.
        element: String,
        /// The rejected text.
        value: String,
        /// Where the text starts.
        at: Position,
    },
    /// A `<Client>` identity breaks the identity rules.
    #[error("<Client> identity {value:?} at {at} is invalid: {reason}")]
    InvalidIdentity {
        /// The rejected identity.
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
        /// Where the identity starts.
        at: Position,
    },
    /// A `<Sip>` URI is not a usable `sip:`/`sips:` URI.
    #[error("<Sip> URI {value:?} at {at} is invalid: {reason}")]
    InvalidSipUri {
        /// The rejected URI.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
        /// Where the URI starts.
        at: Position,
    },
    /// More than ten `<Number>`, `<Client>` and `<Sip>` nouns in one `<Dial>`.
    #[error("<Dial> at {at} has {count} nouns; at most {limit} are allowed")]
    TooManyNouns {
        /// How many dialable nouns were found.
        count: usize,
        /// The limit.
        limit: usize,
        /// Position of the `<Dial>`.
        at: Position,
    },
    /// A `<Dial>` with nothing to dial.
    #[error("<Dial> at {at} has nothing to dial")]
    NothingToDial {
        /// Position of the `<Dial>`.
        at: Position,
    },
    /// `<Conference>` or `<Queue>` mixed with other nouns or text.
    #[error("<{element}> at {at} must be the only noun of its <Dial>")]
    ExclusiveNoun {
        /// The noun that must stand alone.
        element: String,
        /// Its position.
        at: Position,
    },
    /// A verb that a screening document (a noun's `url`) may not contain.
    #[error(
        "<{element}> at {at} is not allowed in a screening document (only Play, Say, Pause, Gather, Hangup)"
    )]
    NotAllowedInScreening {
        /// The verb.
        element: String,
        /// Its position.
        at: Position,
    },
}

impl ParseError {
    /// The position the error points at, if it has one.
    pub fn position(&self) -> Option<Position> {
        match self {
            Self::Empty | Self::TooLarge { .. } => None,
            Self::Xml { at, .. }
            | Self::NotResponse { at, .. }
            | Self::TooDeep { at, .. }
            | Self::UnknownVerb { at, .. }
            | Self::UnsupportedVerb { at, .. }
            | Self::InvalidChild { at, .. }
            | Self::UnexpectedText { at, .. }
            | Self::InvalidAttribute { at, .. }
            | Self::MissingAttribute { at, .. }
            | Self::MissingContent { at, .. }
            | Self::InvalidContent { at, .. }
            | Self::InvalidPhoneNumber { at, .. }
            | Self::InvalidIdentity { at, .. }
            | Self::InvalidSipUri { at, .. }
            | Self::TooManyNouns { at, .. }
            | Self::NothingToDial { at }
            | Self::ExclusiveNoun { at, .. }
            | Self::NotAllowedInScreening { at, .. } => Some(*at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_counts_lines_and_characters() {
        let src = "ab\n<é>x\n\nz";
        let idx = LineIndex::new(src);
        assert_eq!(idx.position(0).to_string(), "1:1");
        assert_eq!(idx.position(2).to_string(), "1:3");
        assert_eq!(idx.position(3).to_string(), "2:1");
        // 'x' follows "<é>" which is 4 bytes but 3 characters.
        assert_eq!(idx.position(7).to_string(), "2:4");
        assert_eq!(idx.position(10).to_string(), "4:1");
        assert_eq!(idx.position(1000).offset, src.len());
    }
}
