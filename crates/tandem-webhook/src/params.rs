//! Twilio's webhook request parameters: the ordered (name, value) list and the
//! builders for voice requests, `<Dial>` action callbacks, call progress
//! (status) callbacks, recording status callbacks and fallback requests.
//!
//! Names and values follow Twilio's "TwiML Voice Request" page and the
//! `<Dial>`, `<Number>` and `<Client>` reference pages.

use std::time::SystemTime;

use crate::time::rfc2822;

pub use tandem_types::{CallStatus, DialCallStatus, DialOutcome, RecordingStatus, RecordingTrack};

/// The `ApiVersion` every request carries.
pub const API_VERSION: &str = "2010-04-01";

/// Request parameters in the order they are sent. Names may repeat (Twilio
/// never does, but the type does not forbid it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// An empty list.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends a parameter.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Appends a parameter when `value` is `Some`.
    pub fn push_opt(&mut self, name: &str, value: Option<impl Into<String>>) {
        if let Some(v) = value {
            self.push(name, v);
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends every pair of `other`.
    pub fn extend(&mut self, other: Params) {
        self.0.extend(other.0);
    }

    /// The pairs as a slice.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.0
    }

    /// `application/x-www-form-urlencoded` serialisation, in order.
    pub fn to_form(&self) -> String {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (n, v) in &self.0 {
            ser.append_pair(n, v);
        }
        ser.finish()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        )
    }
}

/// `Direction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// `inbound`: a call that came in to Tandem.
    Inbound,
    /// `outbound-api`: a call created through the REST API.
    OutboundApi,
    /// `outbound-dial`: a child call created by `<Dial>`.
    OutboundDial,
}

impl Direction {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::OutboundApi => "outbound-api",
            Self::OutboundDial => "outbound-dial",
        }
    }
}

/// The parameters describing one call, sent with every voice request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// `CallSid`: `CA` + 32 hex digits.
    pub call_sid: String,
    /// `AccountSid`.
    pub account_sid: String,
    /// `From` (also sent as the legacy `Caller`).
    pub from: String,
    /// `To` (also sent as the legacy `Called`).
    pub to: String,
    /// `CallStatus` at the time of the request.
    pub status: CallStatus,
    /// `Direction`.
    pub direction: Direction,
    /// `ParentCallSid`, for child calls.
    pub parent_call_sid: Option<String>,
    /// `ForwardedFrom`, when the INVITE said the call was forwarded (Diversion).
    pub forwarded_from: Option<String>,
    /// `CallerName`, when known (display name of the caller).
    pub caller_name: Option<String>,
}

impl CallInfo {
    /// Twilio's standard voice request parameters: `CallSid, AccountSid,
    /// From, To, CallStatus, ApiVersion, Direction`, then `ParentCallSid`,
    /// `ForwardedFrom`, `CallerName` when known, then `Caller, Called`.
    pub fn voice_params(&self) -> Params {
        let mut p = Params::new();
        p.push("CallSid", &self.call_sid);
        p.push("AccountSid", &self.account_sid);
        p.push("From", &self.from);
        p.push("To", &self.to);
        p.push("CallStatus", self.status.as_str());
        p.push("ApiVersion", API_VERSION);
        p.push("Direction", self.direction.as_str());
        p.push_opt("ParentCallSid", self.parent_call_sid.as_deref());
        p.push_opt("ForwardedFrom", self.forwarded_from.as_deref());
        p.push_opt("CallerName", self.caller_name.as_deref());
        p.push("Caller", &self.from);
        p.push("Called", &self.to);
        p
    }
}

/// A recording attached to a completed child call's status callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRef {
    /// `RecordingSid` (`RE` + 32 hex).
    pub sid: String,
    /// `RecordingUrl`.
    pub url: String,
    /// `RecordingDuration` in seconds.
    pub duration_secs: u64,
}

/// One call progress event of a child call (`statusCallback` of a noun).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// The child call; its `status` is the `CallStatus` sent and its
    /// `parent_call_sid` the `ParentCallSid`.
    pub call: CallInfo,
    /// `CallDuration` in seconds (sent on the completed event only).
    pub duration_secs: Option<u64>,
    /// Recording of this call (sent on the completed event only).
    pub recording: Option<RecordingRef>,
    /// `SipResponseCode`: the final SIP status of the child INVITE, if any.
    pub sip_response_code: Option<u16>,
    /// When the event fired (`Timestamp`, RFC 2822 UTC).
    pub timestamp: SystemTime,
}

impl StatusEvent {
    /// Voice parameters of the child call, then `CallDuration`,
    /// `RecordingUrl/Sid/Duration`, `SipResponseCode`, `Timestamp`,
    /// `CallbackSource=call-progress-events` and `SequenceNumber`.
    pub fn params(&self, sequence_number: u32) -> Params {
        let mut p = self.call.voice_params();
        p.push_opt("CallDuration", self.duration_secs.map(|d| d.to_string()));
        if let Some(rec) = &self.recording {
            p.push("RecordingUrl", &rec.url);
            p.push("RecordingSid", &rec.sid);
            p.push("RecordingDuration", rec.duration_secs.to_string());
        }
        p.push_opt(
            "SipResponseCode",
            self.sip_response_code.map(|c| c.to_string()),
        );
        p.push("Timestamp", rfc2822(self.timestamp));
        p.push("CallbackSource", "call-progress-events");
        p.push("SequenceNumber", sequence_number.to_string());
        p
    }
}

/// One `recordingStatusCallback` event of a `<Dial>` recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingEvent {
    /// `AccountSid`.
    pub account_sid: String,
    /// `CallSid`: always the parent call.
    pub call_sid: String,
    /// `RecordingSid`.
    pub recording_sid: String,
    /// `RecordingUrl`.
    pub recording_url: String,
    /// `RecordingStatus`.
    pub status: RecordingStatus,
    /// `RecordingDuration` in seconds (not known while in progress).
    pub duration_secs: Option<u64>,
    /// `RecordingChannels`: 1 or 2.
    pub channels: u8,
    /// `RecordingStartTime` (RFC 2822 UTC).
    pub start_time: SystemTime,
    /// `RecordingTrack`.
    pub track: RecordingTrack,
    /// `RecordingSource`: `DialVerb`, `RecordVerb`, `Conference`,
    /// `OutboundAPI`.
    pub source: &'static str,
    /// `ErrorCode`, for an `absent` recording.
    pub error_code: Option<u32>,
}

impl RecordingEvent {
    /// `AccountSid, CallSid, RecordingSid, RecordingUrl, RecordingStatus,
    /// RecordingDuration, RecordingChannels, RecordingStartTime,
    /// RecordingSource, RecordingTrack`, then `ErrorCode` if any.
    pub fn params(&self) -> Params {
        let mut p = Params::new();
        p.push("AccountSid", &self.account_sid);
        p.push("CallSid", &self.call_sid);
        p.push("RecordingSid", &self.recording_sid);
        p.push("RecordingUrl", &self.recording_url);
        p.push("RecordingStatus", self.status.as_str());
        p.push_opt(
            "RecordingDuration",
            self.duration_secs.map(|d| d.to_string()),
        );
        p.push("RecordingChannels", self.channels.to_string());
        p.push("RecordingStartTime", rfc2822(self.start_time));
        p.push("RecordingSource", self.source);
        p.push("RecordingTrack", self.track.as_str());
        p.push_opt("ErrorCode", self.error_code.map(|c| c.to_string()));
        p
    }
}

/// Parameters of a fallback request: the original ones plus `ErrorCode` and
/// `ErrorUrl` (the URL that failed).
pub fn fallback_params(original: &Params, error_code: u32, error_url: &str) -> Params {
    let mut p = original.clone();
    p.push("ErrorCode", error_code.to_string());
    p.push("ErrorUrl", error_url);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn parent() -> CallInfo {
        CallInfo {
            call_sid: "CA0123456789abcdef0123456789abcdef".into(),
            account_sid: "AC00000000000000000000000000000001".into(),
            from: "+14155550100".into(),
            to: "+14155550199".into(),
            status: CallStatus::Ringing,
            direction: Direction::Inbound,
            parent_call_sid: None,
            forwarded_from: None,
            caller_name: Some("Alice".into()),
        }
    }

    fn names(p: &Params) -> Vec<&str> {
        p.iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn voice_params_carry_twilio_names_in_order() {
        let p = parent().voice_params();
        assert_eq!(
            names(&p),
            [
                "CallSid",
                "AccountSid",
                "From",
                "To",
                "CallStatus",
                "ApiVersion",
                "Direction",
                "CallerName",
                "Caller",
                "Called"
            ]
        );
        assert_eq!(p.get("CallStatus"), Some("ringing"));
        assert_eq!(p.get("ApiVersion"), Some("2010-04-01"));
        assert_eq!(p.get("Direction"), Some("inbound"));
        assert_eq!(p.get("Caller"), Some("+14155550100"));
        assert_eq!(p.get("Called"), Some("+14155550199"));
    }

    #[test]
    fn status_event_params_for_a_completed_child() {
        let child = CallInfo {
            call_sid: "CAchild".into(),
            status: CallStatus::Completed,
            direction: Direction::OutboundDial,
            parent_call_sid: Some("CAparent".into()),
            caller_name: None,
            ..parent()
        };
        let ev = StatusEvent {
            call: child,
            duration_secs: Some(7),
            recording: None,
            sip_response_code: Some(200),
            timestamp: UNIX_EPOCH + Duration::from_secs(1_281_929_101),
        };
        let p = ev.params(3);
        assert_eq!(p.get("ParentCallSid"), Some("CAparent"));
        assert_eq!(p.get("Direction"), Some("outbound-dial"));
        assert_eq!(p.get("CallDuration"), Some("7"));
        assert_eq!(p.get("SipResponseCode"), Some("200"));
        assert_eq!(p.get("Timestamp"), Some("Mon, 16 Aug 2010 03:25:01 +0000"));
        assert_eq!(p.get("CallbackSource"), Some("call-progress-events"));
        assert_eq!(p.get("SequenceNumber"), Some("3"));
    }

    #[test]
    fn recording_event_params() {
        let ev = RecordingEvent {
            account_sid: "AC1".into(),
            call_sid: "CA1".into(),
            recording_sid: "RE1".into(),
            recording_url: "http://t/rec/RE1".into(),
            status: RecordingStatus::Completed,
            duration_secs: Some(60),
            channels: 2,
            start_time: UNIX_EPOCH,
            track: RecordingTrack::Both,
            source: "DialVerb",
            error_code: None,
        };
        let p = ev.params();
        assert_eq!(
            names(&p),
            [
                "AccountSid",
                "CallSid",
                "RecordingSid",
                "RecordingUrl",
                "RecordingStatus",
                "RecordingDuration",
                "RecordingChannels",
                "RecordingStartTime",
                "RecordingSource",
                "RecordingTrack"
            ]
        );
        assert_eq!(
            p.get("RecordingStartTime"),
            Some("Thu, 01 Jan 1970 00:00:00 +0000")
        );
        assert_eq!(p.get("RecordingSource"), Some("DialVerb"));
        assert_eq!(p.get("RecordingChannels"), Some("2"));
    }

    #[test]
    fn form_encoding_escapes_plus_and_space() {
        let p: Params = [("From", "+1 415"), ("Body", "a&b=c")]
            .into_iter()
            .collect();
        assert_eq!(p.to_form(), "From=%2B1+415&Body=a%26b%3Dc");
    }

    #[test]
    fn fallback_params_add_error_code_and_url() {
        let p = fallback_params(&parent().voice_params(), 11200, "http://app/voice");
        assert_eq!(p.get("ErrorCode"), Some("11200"));
        assert_eq!(p.get("ErrorUrl"), Some("http://app/voice"));
        assert_eq!(p.get("CallSid"), Some("CA0123456789abcdef0123456789abcdef"));
    }
}
