//! Values of Twilio's attributes and parameters, with their wire spellings.
//! Parsing ignores ASCII case, as TwiML attributes do.

use std::fmt;
use std::str::FromStr;

use crate::UnknownValue;

/// An enum of fixed wire spellings: `as_str`, `Display`, `FromStr`
/// (ASCII case ignored) and `ALL`, from one table.
macro_rules! words {
    (
        $(#[$meta:meta])*
        $name:ident as $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The value as written on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $( if s.eq_ignore_ascii_case($wire) { return Ok($name::$variant); } )*
                Err(UnknownValue { what: $what })
            }
        }
    };
}

words! {
    /// HTTP method of a webhook or document fetch (`method`,
    /// `statusCallbackMethod`, ... attributes).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    Method as "method" {
        /// `GET`: parameters in the query string.
        Get = "GET",
        /// `POST`: parameters in an `application/x-www-form-urlencoded`
        /// body (Twilio's default).
        #[default]
        Post = "POST",
    }
}

words! {
    /// `CallStatus` values.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    CallStatus as "CallStatus" {
        /// Created, not yet dialled (REST API calls).
        Queued = "queued",
        /// Dialling started (status callbacks only).
        Initiated = "initiated",
        /// The callee is ringing.
        Ringing = "ringing",
        /// Answered.
        InProgress = "in-progress",
        /// Answered and ended normally.
        Completed = "completed",
        /// The callee was busy (SIP 486, 600, 603).
        Busy = "busy",
        /// Could not be routed or was refused (any other failure).
        Failed = "failed",
        /// Nobody answered (SIP 408, 480, or the `timeout`).
        NoAnswer = "no-answer",
        /// Cancelled before an answer (the caller left, another branch won,
        /// or the REST API).
        Canceled = "canceled",
    }
}

words! {
    /// `DialCallStatus`: how a `<Dial>` ended, for its `action`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    DialCallStatus as "DialCallStatus" {
        /// A callee answered and was bridged.
        Completed = "completed",
        /// Answered (conference dials only).
        Answered = "answered",
        /// Every branch was busy.
        Busy = "busy",
        /// Nobody answered within `timeout`.
        NoAnswer = "no-answer",
        /// No branch could be routed.
        Failed = "failed",
        /// Cancelled (the caller hung up, or the REST API) before an answer.
        Canceled = "canceled",
    }
}

/// How a `<Dial>` ended: the parameters its `action` request adds to the
/// parent call's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialOutcome {
    /// `DialCallStatus`.
    pub status: DialCallStatus,
    /// `DialCallSid` of the winning (or last) child call.
    pub call_sid: Option<String>,
    /// `DialCallDuration` in seconds; sent only when a callee was bridged.
    pub duration: Option<u32>,
    /// `DialBridged`: whether the caller was connected to a callee; a
    /// bridged `answerOnBridge` dial also answered the caller.
    pub bridged: bool,
    /// `RecordingUrl` when the dial was recorded.
    pub recording_url: Option<String>,
    /// Parameters a noun adds (`<Queue>`: `QueueSid`, `QueueTime`), last.
    pub extra: Vec<(String, String)>,
}

impl DialOutcome {
    /// `DialCallStatus, DialCallSid, DialCallDuration, DialBridged,
    /// RecordingUrl`, each when known, in that order.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut p = vec![("DialCallStatus".to_owned(), self.status.as_str().to_owned())];
        if let Some(sid) = &self.call_sid {
            p.push(("DialCallSid".to_owned(), sid.clone()));
        }
        if let Some(d) = self.duration {
            p.push(("DialCallDuration".to_owned(), d.to_string()));
        }
        p.push(("DialBridged".to_owned(), self.bridged.to_string()));
        if let Some(url) = &self.recording_url {
            p.push(("RecordingUrl".to_owned(), url.clone()));
        }
        p.extend(self.extra.iter().cloned());
        p
    }
}

words! {
    /// `recordingTrack`: which directions of the caller's audio a recording
    /// keeps.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    RecordingTrack as "recordingTrack" {
        /// Audio received from the caller; always mono.
        Inbound = "inbound",
        /// Audio sent to the caller; always mono.
        Outbound = "outbound",
        /// Both directions (the default).
        #[default]
        Both = "both",
    }
}

words! {
    /// `trim`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    Trim as "trim" {
        /// Cut leading and trailing silence.
        TrimSilence = "trim-silence",
        /// Keep the recording whole (the default).
        #[default]
        DoNotTrim = "do-not-trim",
    }
}

words! {
    /// `RecordingStatus`, and the events `recordingStatusCallbackEvent`
    /// subscribes to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    RecordingStatus as "RecordingStatus" {
        /// The recording started.
        InProgress = "in-progress",
        /// The recording is complete and available.
        Completed = "completed",
        /// There is no recording (nothing was heard, or all was trimmed).
        Absent = "absent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_ignore_case() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>(), Ok(*m));
        }
        assert_eq!("get".parse::<Method>(), Ok(Method::Get));
        assert_eq!("pOsT".parse(), Ok(Method::Post));
        assert!("PUT".parse::<Method>().is_err());
        for s in CallStatus::ALL {
            assert_eq!(s.to_string().parse::<CallStatus>(), Ok(*s));
        }
        assert_eq!("No-Answer".parse(), Ok(DialCallStatus::NoAnswer));
        assert_eq!("TRIM-SILENCE".parse(), Ok(Trim::TrimSilence));
        assert_eq!(
            "sideways".parse::<RecordingTrack>(),
            Err(UnknownValue {
                what: "recordingTrack"
            })
        );
        assert_eq!(RecordingTrack::default(), RecordingTrack::Both);
        assert_eq!(Trim::default(), Trim::DoNotTrim);
        assert_eq!(Method::default(), Method::Post);
    }

    #[test]
    fn dial_outcome_params_in_twilio_order() {
        let o = DialOutcome {
            status: DialCallStatus::Completed,
            call_sid: Some("CA1".into()),
            duration: Some(7),
            bridged: true,
            recording_url: None,
            extra: Vec::new(),
        };
        let names: Vec<_> = o.params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "DialCallStatus",
                "DialCallSid",
                "DialCallDuration",
                "DialBridged"
            ]
        );
        let unbridged = DialOutcome {
            status: DialCallStatus::Busy,
            call_sid: None,
            duration: None,
            bridged: false,
            recording_url: None,
            extra: Vec::new(),
        };
        assert_eq!(
            unbridged.params(),
            [
                ("DialCallStatus".to_owned(), "busy".to_owned()),
                ("DialBridged".to_owned(), "false".to_owned())
            ]
        );
    }
}
