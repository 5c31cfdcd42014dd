//! Which TwiML elements and attributes Tandem acts on and which it only
//! parses; the single table behind the parser's notices and
//! `docs/twiml-support.md`.

/// How far Tandem supports an element or attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Parsed, validated and acted on (by the interpreter or, through the
    /// commands it emits, by the engine).
    Supported,
    /// Parsed and validated, but not acted on yet; logged when used.
    NotActedOn,
}

impl Status {
    /// The word used in the support matrix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Supported => "supported",
            Self::NotActedOn => "parsed, not yet acted on",
        }
    }
}

/// One row of the support matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Element name (`Dial`, `Number`, ...).
    pub element: &'static str,
    /// Attribute name; `None` for the element itself.
    pub attribute: Option<&'static str>,
    /// Support status.
    pub status: Status,
}

const fn el(element: &'static str, status: Status) -> Entry {
    Entry {
        element,
        attribute: None,
        status,
    }
}

const fn at(element: &'static str, attribute: &'static str, status: Status) -> Entry {
    Entry {
        element,
        attribute: Some(attribute),
        status,
    }
}

use Status::Supported as S;

/// Every element and attribute Tandem knows, with its status.
pub const MATRIX: &[Entry] = &[
    el("Response", S),
    el("Dial", S),
    at("Dial", "action", S),
    at("Dial", "answerOnBridge", S),
    at("Dial", "callerId", S),
    at("Dial", "callReason", S),
    at("Dial", "hangupOnStar", S),
    at("Dial", "method", S),
    at("Dial", "record", S),
    at("Dial", "recordingStatusCallback", S),
    at("Dial", "recordingStatusCallbackMethod", S),
    at("Dial", "recordingStatusCallbackEvent", S),
    at("Dial", "recordingTrack", S),
    at("Dial", "referUrl", S),
    at("Dial", "referMethod", S),
    at("Dial", "ringTone", S),
    at("Dial", "timeLimit", S),
    at("Dial", "timeout", S),
    at("Dial", "trim", S),
    el("Number", S),
    at("Number", "sendDigits", S),
    at("Number", "url", S),
    at("Number", "method", S),
    at("Number", "byoc", S),
    at("Number", "statusCallback", S),
    at("Number", "statusCallbackEvent", S),
    at("Number", "statusCallbackMethod", S),
    at("Number", "machineDetection", S),
    at("Number", "machineDetectionTimeout", S),
    at("Number", "machineDetectionSpeechThreshold", S),
    at("Number", "machineDetectionSpeechEndThreshold", S),
    at("Number", "machineDetectionSilenceTimeout", S),
    at("Number", "amdStatusCallback", S),
    at("Number", "amdStatusCallbackMethod", S),
    el("Client", S),
    at("Client", "url", S),
    at("Client", "method", S),
    at("Client", "statusCallback", S),
    at("Client", "statusCallbackEvent", S),
    at("Client", "statusCallbackMethod", S),
    el("Identity", S),
    el("Parameter", S),
    at("Parameter", "name", S),
    at("Parameter", "value", S),
    el("Sip", S),
    at("Sip", "username", S),
    at("Sip", "password", S),
    at("Sip", "url", S),
    at("Sip", "method", S),
    at("Sip", "statusCallback", S),
    at("Sip", "statusCallbackEvent", S),
    at("Sip", "statusCallbackMethod", S),
    el("Conference", S),
    at("Conference", "muted", S),
    at("Conference", "beep", S),
    at("Conference", "startConferenceOnEnter", S),
    at("Conference", "endConferenceOnExit", S),
    at("Conference", "waitUrl", S),
    at("Conference", "waitMethod", S),
    at("Conference", "maxParticipants", S),
    at("Conference", "record", S),
    at("Conference", "trim", S),
    at("Conference", "recordingStatusCallback", S),
    at("Conference", "recordingStatusCallbackMethod", S),
    at("Conference", "recordingStatusCallbackEvent", S),
    at("Conference", "statusCallback", S),
    at("Conference", "statusCallbackMethod", S),
    at("Conference", "statusCallbackEvent", S),
    at("Conference", "participantLabel", S),
    at("Conference", "coach", S),
    el("Queue", S),
    at("Queue", "url", S),
    at("Queue", "method", S),
    el("Enqueue", S),
    at("Enqueue", "action", S),
    at("Enqueue", "method", S),
    at("Enqueue", "waitUrl", S),
    at("Enqueue", "waitUrlMethod", S),
    el("Leave", S),
    el("Say", S),
    at("Say", "voice", S),
    at("Say", "language", S),
    at("Say", "loop", S),
    el("SSML", S),
    el("Play", S),
    at("Play", "loop", S),
    at("Play", "digits", S),
    el("Pause", S),
    at("Pause", "length", S),
    el("Record", S),
    at("Record", "action", S),
    at("Record", "method", S),
    at("Record", "timeout", S),
    at("Record", "finishOnKey", S),
    at("Record", "maxLength", S),
    at("Record", "playBeep", S),
    at("Record", "trim", S),
    at("Record", "recordingStatusCallback", S),
    at("Record", "recordingStatusCallbackMethod", S),
    at("Record", "recordingStatusCallbackEvent", S),
    at("Record", "transcribe", S),
    at("Record", "transcribeCallback", S),
    el("Gather", S),
    at("Gather", "input", S),
    at("Gather", "action", S),
    at("Gather", "method", S),
    at("Gather", "timeout", S),
    at("Gather", "finishOnKey", S),
    at("Gather", "numDigits", S),
    at("Gather", "actionOnEmptyResult", S),
    at("Gather", "speechTimeout", S),
    at("Gather", "speechModel", S),
    at("Gather", "hints", S),
    at("Gather", "language", S),
    at("Gather", "profanityFilter", S),
    at("Gather", "partialResultCallback", S),
    at("Gather", "partialResultCallbackMethod", S),
    at("Gather", "enhanced", S),
    el("Hangup", S),
    el("Reject", S),
    at("Reject", "reason", S),
    el("Redirect", S),
    at("Redirect", "method", S),
];

/// The status of `attribute` on `element`, `None` when TwiML does not define
/// it there (an unknown attribute).
pub fn attribute_status(element: &str, attribute: &str) -> Option<Status> {
    MATRIX
        .iter()
        .find(|e| e.element == element && e.attribute == Some(attribute))
        .map(|e| e.status)
}

/// The status of an element, `None` when Tandem does not know it.
pub fn element_status(element: &str) -> Option<Status> {
    MATRIX
        .iter()
        .find(|e| e.element == element && e.attribute.is_none())
        .map(|e| e.status)
}

/// The matrix row as written in `docs/twiml-support.md`:
/// `| Element | attribute | status |` (attribute `—` for the element).
pub fn markdown_row_prefix(entry: &Entry) -> String {
    format!(
        "| {} | {} | {} |",
        entry.element,
        entry.attribute.unwrap_or("—"),
        entry.status.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_matrix_row_is_in_the_support_document() {
        let doc = include_str!("../../../docs/twiml-support.md");
        let missing: Vec<String> = MATRIX
            .iter()
            .map(markdown_row_prefix)
            .filter(|row| !doc.lines().any(|line| line.starts_with(row.as_str())))
            .collect();
        assert!(
            missing.is_empty(),
            "rows missing from docs/twiml-support.md: {missing:#?}"
        );
    }

    #[test]
    fn lookups_distinguish_known_and_unknown() {
        assert_eq!(attribute_status("Dial", "timeout"), Some(Status::Supported));
        assert_eq!(
            attribute_status("Gather", "speechModel"),
            Some(Status::Supported)
        );
        assert_eq!(attribute_status("Dial", "sendDigits"), None);
        assert_eq!(element_status("Queue"), Some(Status::Supported));
        assert_eq!(element_status("Task"), None);
    }
}
