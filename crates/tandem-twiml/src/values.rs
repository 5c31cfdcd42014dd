//! Typed attribute values of TwiML (methods, record modes, event lists,
//! E.164 numbers, DTMF strings) and the rules that validate them.

use std::fmt;

pub use tandem_types::{Method, RecordingStatus, RecordingTrack, RingTone, Trim};

/// `<Dial record>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecordMode {
    /// `do-not-record` (alias `false`), the default.
    #[default]
    DoNotRecord,
    /// `record-from-answer` (alias `true`), mixed mono.
    RecordFromAnswer,
    /// `record-from-ringing`, mixed mono.
    RecordFromRinging,
    /// `record-from-answer-dual`: caller on channel 1, callee on channel 2.
    RecordFromAnswerDual,
    /// `record-from-ringing-dual`.
    RecordFromRingingDual,
}

/// Call progress events a noun's `statusCallbackEvent` subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallProgressEvent {
    /// Dialing started.
    Initiated,
    /// The callee is ringing.
    Ringing,
    /// The callee answered.
    Answered,
    /// The child call ended, whatever its status.
    Completed,
}

impl CallProgressEvent {
    /// The name used in TwiML and in `CallStatus`-style parameters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Completed => "completed",
        }
    }
}

/// `<Number machineDetection>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MachineDetection {
    /// `Enable`: report `AnsweredBy` as soon as known.
    Enable,
    /// `DetectMessageEnd`: wait for the end of a machine's greeting.
    DetectMessageEnd,
}

/// `<Reject reason>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RejectReason {
    /// `rejected` (the default): SIP 603 Decline.
    #[default]
    Rejected,
    /// `busy`: SIP 486 Busy Here.
    Busy,
}

/// `<Gather input>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GatherInput {
    /// `dtmf`, the default.
    #[default]
    Dtmf,
    /// `speech` (recognised by an external program, docs/speech.md).
    Speech,
    /// `dtmf speech`.
    DtmfSpeech,
}

/// `loop` of `<Say>` and `<Play>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Loop {
    /// Repeat this many times (at least 1).
    Times(u32),
    /// `loop="0"`: repeat until the call ends or the verb is interrupted.
    Forever,
}

impl Default for Loop {
    fn default() -> Self {
        Self::Times(1)
    }
}

/// A phone number in E.164 form (`+` and 8 to 15 digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses E.164 (`+14155551212`, separators allowed) or a US number in
    /// the loose forms Twilio accepts (`(415) 555-1212`, `415-555-1212`,
    /// `1 415 555 1212`), normalised to E.164.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (plus, rest) = match text.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut digits = String::with_capacity(16);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return None,
            }
        }
        if plus {
            if (8..=15).contains(&digits.len()) && !digits.starts_with('0') {
                return Some(Self(format!("+{digits}")));
            }
            return None;
        }
        let national = match digits.len() {
            10 => digits.as_str(),
            11 if digits.starts_with('1') => &digits[1..],
            _ => return None,
        };
        // A NANP area code never starts with 0 or 1.
        if national.starts_with(['0', '1']) {
            return None;
        }
        Some(Self(format!("+1{national}")))
    }

    /// The E.164 string, `+` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn parse_bool(v: &str) -> Result<bool, &'static str> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err("true or false")
    }
}

pub(crate) fn parse_speech_timeout(v: &str) -> Result<crate::ast::SpeechTimeout, &'static str> {
    const EXPECTED: &str = "auto or an integer 1..=600 (seconds)";
    if v.trim().eq_ignore_ascii_case("auto") {
        return Ok(crate::ast::SpeechTimeout::Auto);
    }
    parse_range(v, 1, 600)
        .map(crate::ast::SpeechTimeout::Secs)
        .ok_or(EXPECTED)
}

/// `speechModel`: a model name (`phone_call`, `numbers_and_commands`,
/// `googlev2_telephony`, `deepgram_nova-2`…) for the recogniser to read.
pub(crate) fn parse_speech_model(v: &str) -> Result<String, &'static str> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    ok.then(|| v.to_owned())
        .ok_or("a model name (letters, digits, _ - .; at most 64)")
}

/// `hints`: at most 500 comma-separated phrases of at most 100 characters
/// (Twilio's limits).
pub(crate) fn parse_hints(v: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "at most 500 comma-separated phrases of at most 100 characters";
    let phrases: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if phrases.len() > 500 || phrases.iter().any(|p| p.chars().count() > 100) {
        return Err(EXPECTED);
    }
    Ok(phrases.join(", "))
}

/// `language`: a BCP 47 tag (`en-US`, `es-419`, `cmn-Hans-CN`).
pub(crate) fn parse_language(v: &str) -> Result<String, &'static str> {
    let v = v.trim();
    let ok = (2..=35).contains(&v.len())
        && v.split('-').all(|part| {
            (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        && v.split('-')
            .next()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_alphabetic()));
    ok.then(|| v.to_owned())
        .ok_or("a BCP 47 language tag such as en-US")
}

pub(crate) fn parse_method(v: &str) -> Result<Method, &'static str> {
    v.parse().map_err(|_| "GET or POST")
}

pub(crate) fn parse_record(v: &str) -> Result<RecordMode, &'static str> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "do-not-record" | "false" => RecordMode::DoNotRecord,
        "record-from-answer" | "true" => RecordMode::RecordFromAnswer,
        "record-from-ringing" => RecordMode::RecordFromRinging,
        "record-from-answer-dual" => RecordMode::RecordFromAnswerDual,
        "record-from-ringing-dual" => RecordMode::RecordFromRingingDual,
        _ => {
            return Err("do-not-record, record-from-answer, record-from-ringing, \
                        record-from-answer-dual, record-from-ringing-dual, true or false");
        }
    })
}

pub(crate) fn parse_recording_track(v: &str) -> Result<RecordingTrack, &'static str> {
    v.parse().map_err(|_| "inbound, outbound or both")
}

pub(crate) fn parse_trim(v: &str) -> Result<Trim, &'static str> {
    v.parse().map_err(|_| "trim-silence or do-not-trim")
}

pub(crate) fn parse_ring_tone(v: &str) -> Result<RingTone, &'static str> {
    v.parse()
        .map_err(|_| "an ISO 3166-1 alpha-2 code Twilio lists (us, uk, de, ...)")
}

pub(crate) fn parse_machine_detection(v: &str) -> Result<MachineDetection, &'static str> {
    if v.eq_ignore_ascii_case("Enable") {
        Ok(MachineDetection::Enable)
    } else if v.eq_ignore_ascii_case("DetectMessageEnd") {
        Ok(MachineDetection::DetectMessageEnd)
    } else {
        Err("Enable or DetectMessageEnd")
    }
}

pub(crate) fn parse_reject_reason(v: &str) -> Result<RejectReason, &'static str> {
    match v.to_ascii_lowercase().as_str() {
        "rejected" => Ok(RejectReason::Rejected),
        "busy" => Ok(RejectReason::Busy),
        _ => Err("rejected or busy"),
    }
}

pub(crate) fn parse_gather_input(v: &str) -> Result<GatherInput, &'static str> {
    let mut dtmf = false;
    let mut speech = false;
    for word in v.split_whitespace() {
        match word.to_ascii_lowercase().as_str() {
            "dtmf" => dtmf = true,
            "speech" => speech = true,
            _ => return Err("dtmf, speech or \"dtmf speech\""),
        }
    }
    match (dtmf, speech) {
        (true, false) => Ok(GatherInput::Dtmf),
        (false, true) => Ok(GatherInput::Speech),
        (true, true) => Ok(GatherInput::DtmfSpeech),
        (false, false) => Err("dtmf, speech or \"dtmf speech\""),
    }
}

pub(crate) fn parse_loop(v: &str) -> Result<Loop, &'static str> {
    match v.trim().parse::<u32>() {
        Ok(0) => Ok(Loop::Forever),
        Ok(n) if n <= 1000 => Ok(Loop::Times(n)),
        _ => Err("an integer 0..=1000 (0 = until hangup)"),
    }
}

/// An integer in `min..=max`.
pub(crate) fn parse_range(v: &str, min: u32, max: u32) -> Option<u32> {
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
}

/// Splits a list on spaces and commas (the RCML page writes commas).
fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// A list of words separated by spaces or commas, each mapped by `word`;
/// duplicates kept once, in first-seen order; empty or any unknown word is
/// `expected`.
pub(crate) fn parse_word_list<T: PartialEq>(
    v: &str,
    expected: &'static str,
    word: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, &'static str> {
    let mut out = Vec::new();
    for w in split_list(v) {
        let item = word(&w.to_ascii_lowercase()).ok_or(expected)?;
        if !out.contains(&item) {
            out.push(item);
        }
    }
    if out.is_empty() {
        return Err(expected);
    }
    Ok(out)
}

pub(crate) fn parse_progress_events(v: &str) -> Result<Vec<CallProgressEvent>, &'static str> {
    const EXPECTED: &str = "initiated, ringing, answered, completed separated by spaces or commas";
    parse_word_list(v, EXPECTED, |w| match w {
        "initiated" => Some(CallProgressEvent::Initiated),
        "ringing" => Some(CallProgressEvent::Ringing),
        "answered" => Some(CallProgressEvent::Answered),
        "completed" => Some(CallProgressEvent::Completed),
        _ => None,
    })
}

pub(crate) fn parse_recording_events(v: &str) -> Result<Vec<RecordingStatus>, &'static str> {
    const EXPECTED: &str = "in-progress, completed, absent separated by spaces or commas";
    parse_word_list(v, EXPECTED, |w| w.parse().ok())
}

/// `sendDigits` / `<Play digits>`: `0-9 * # A-D` and `w` (a 500 ms wait).
pub(crate) fn parse_digits(v: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "1 to 256 of 0-9 * # A-D w";
    let v = v.trim();
    let ok = !v.is_empty()
        && v.len() <= 256
        && v.chars()
            .all(|c| matches!(c, '0'..='9' | '*' | '#' | 'A'..='D' | 'w'));
    if ok { Ok(v.to_owned()) } else { Err(EXPECTED) }
}

/// `finishOnKey`: one of `0-9 * #`, or empty for none.
pub(crate) fn parse_finish_on_key(v: &str) -> Result<Option<char>, &'static str> {
    let mut chars = v.trim().chars();
    match (chars.next(), chars.next()) {
        (None, _) => Ok(None),
        (Some(c @ ('0'..='9' | '*' | '#')), None) => Ok(Some(c)),
        _ => Err("one of 0-9 * #, or empty"),
    }
}

/// `<Record finishOnKey>`: any set of `0-9 * #` (each key once kept, in
/// order); empty means no key ends the recording.
pub(crate) fn parse_finish_on_keys(v: &str) -> Result<String, &'static str> {
    let mut keys = String::new();
    for c in v.trim().chars() {
        if !matches!(c, '0'..='9' | '*' | '#') {
            return Err("keys among 0-9 * #, or empty");
        }
        if !keys.contains(c) {
            keys.push(c);
        }
    }
    Ok(keys)
}

/// A relative or absolute URL: non-blank, no whitespace or control
/// characters; an absolute one must be http(s) with a host without `_`.
pub(crate) fn parse_url(v: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "a relative or absolute http(s) URL";
    let v = v.trim();
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EXPECTED);
    }
    match url::Url::parse(v) {
        Ok(abs) => {
            let web = matches!(abs.scheme(), "http" | "https");
            let host_ok = abs
                .host_str()
                .is_some_and(|h| !h.is_empty() && !h.contains('_'));
            if web && host_ok {
                Ok(v.to_owned())
            } else {
                Err(EXPECTED)
            }
        }
        Err(url::ParseError::RelativeUrlWithoutBase) => Ok(v.to_owned()),
        Err(_) => Err(EXPECTED),
    }
}

/// `callReason`: at most 50 characters.
pub(crate) fn parse_call_reason(v: &str) -> Result<String, &'static str> {
    // It becomes the callee's Subject header: one line, no control
    // characters (a CR/LF would inject headers).
    if v.chars().count() <= 50 && !v.chars().any(char::is_control) {
        Ok(v.trim().to_owned())
    } else {
        Err("at most 50 characters, no control characters")
    }
}

/// `callerId`: a phone number (normalised to E.164 when it is one), a
/// `client:` identity or a SIP caller string (letters, digits, `+-_.:@`).
pub(crate) fn parse_caller_id(v: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "a phone number, client:identity or 1 to 256 letters, digits and - _ . ! ~ * ' ( ) & = + $ ,";
    let v = v.trim();
    if let Some(number) = PhoneNumber::parse(v) {
        return Ok(number.0);
    }
    // It becomes the user part of the child INVITE's From URI
    // (`sip:<callerId>@host`): only what a SIP user part carries without
    // escaping (RFC 3261 §25.1 unreserved and user-unreserved, less `;`
    // `?` `/` which would start URI parameters or headers), so `a@b;x`
    // cannot reshape the URI. `client:name` keeps its one colon.
    let user = v.strip_prefix("client:").unwrap_or(v);
    let ok = !user.is_empty()
        && v.chars().count() <= 256
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,".contains(&b));
    if ok { Ok(v.to_owned()) } else { Err(EXPECTED) }
}

/// Checks a `<Client>` identity: 1..=256 characters, no control, space,
/// delimiter (`< > # % "`) or unwise (`{ } | \ ^ [ ] ``) characters.
pub(crate) fn check_identity(v: &str) -> Result<(), &'static str> {
    if v.is_empty() {
        return Err("empty");
    }
    if v.chars().count() > 256 {
        return Err("longer than 256 characters");
    }
    if v.chars().any(|c| c.is_control()) {
        return Err("contains a control character");
    }
    if v.chars().any(char::is_whitespace) {
        return Err("contains a space");
    }
    if v.chars().any(|c| "<>#%\"{}|\\^[]`".contains(c)) {
        return Err("contains a delimiter or unwise character");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_numbers_in_loose_forms_become_e164() {
        for loose in [
            "(415) 555-1212",
            "415-555-1212",
            "415.555.1212",
            "4155551212",
            "1 415 555 1212",
            "+1 (415) 555-1212",
        ] {
            assert_eq!(
                PhoneNumber::parse(loose).map(|n| n.0),
                Some("+14155551212".into()),
                "{loose}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("415-123-4567").map(|n| n.0),
            Some("+14151234567".into())
        );
        assert_eq!(
            PhoneNumber::parse("+442071838750").map(|n| n.0),
            Some("+442071838750".into())
        );
    }

    #[test]
    fn non_numbers_are_refused() {
        for bad in [
            "",
            "+",
            "555-1212",
            "015-555-1212",
            "415-555-1212x3",
            "+0123456789",
            "+1234567",
            "joey",
            "+1234567890123456",
        ] {
            assert_eq!(PhoneNumber::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn event_lists_accept_spaces_and_commas() {
        use CallProgressEvent::*;
        assert_eq!(
            parse_progress_events("initiated ringing answered completed"),
            Ok(vec![Initiated, Ringing, Answered, Completed])
        );
        assert_eq!(
            parse_progress_events("initiated,ringing, answered"),
            Ok(vec![Initiated, Ringing, Answered])
        );
        assert!(parse_progress_events("initiated;ringing").is_err());
        assert!(parse_progress_events(" , ").is_err());
        assert_eq!(
            parse_recording_events("in-progress,absent"),
            Ok(vec![RecordingStatus::InProgress, RecordingStatus::Absent])
        );
    }

    #[test]
    fn digits_identities_and_urls_follow_the_rules() {
        assert_eq!(parse_digits("wwww1928"), Ok("wwww1928".into()));
        assert_eq!(parse_digits("*#ABCD0"), Ok("*#ABCD0".into()));
        assert!(parse_digits("12x").is_err());
        assert!(parse_digits("ww e").is_err());
        assert!(check_identity("user_jane").is_ok());
        assert!(check_identity(&"a".repeat(256)).is_ok());
        assert_eq!(
            check_identity(&"a".repeat(257)),
            Err("longer than 256 characters")
        );
        assert_eq!(check_identity("jo ey"), Err("contains a space"));
        assert_eq!(
            check_identity("jo#ey"),
            Err("contains a delimiter or unwise character")
        );
        assert_eq!(
            check_identity("jo\u{7}ey"),
            Err("contains a control character")
        );
        assert!(parse_url("/handleDialCallStatus").is_ok());
        assert_eq!(
            parse_speech_timeout("auto"),
            Ok(crate::ast::SpeechTimeout::Auto)
        );
        assert_eq!(
            parse_speech_timeout("3"),
            Ok(crate::ast::SpeechTimeout::Secs(3))
        );
        assert!(parse_speech_timeout("0").is_err() && parse_speech_timeout("soon").is_err());
        assert_eq!(
            parse_speech_model("deepgram_nova-2"),
            Ok("deepgram_nova-2".into())
        );
        assert!(parse_speech_model("a b").is_err() && parse_speech_model("").is_err());
        assert_eq!(
            parse_hints(" sales,support ,, billing"),
            Ok("sales, support, billing".into())
        );
        assert!(parse_hints(&"x,".repeat(501)).is_err());
        assert!(parse_hints(&"y".repeat(101)).is_err());
        assert_eq!(parse_language("en-GB"), Ok("en-GB".into()));
        assert!(parse_language("cmn-Hans-CN").is_ok() && parse_language("es-419").is_ok());
        assert!(parse_language("e").is_err() && parse_language("en_US").is_err());
        assert!(parse_language("419").is_err());
        assert!(parse_url("www.myexample.com").is_ok());
        assert!(parse_url("https://myapp.com/calls/events").is_ok());
        assert!(parse_url("https://my_app.com/x").is_err());
        assert!(parse_url("ftp://example.com/x").is_err());
        assert!(parse_url("a b").is_err());
    }

    #[test]
    fn record_aliases_and_ring_tones() {
        assert_eq!(parse_record("true"), Ok(RecordMode::RecordFromAnswer));
        assert_eq!(parse_record("false"), Ok(RecordMode::DoNotRecord));
        assert!(parse_record("yes").is_err());
        assert_eq!(parse_ring_tone("US-OLD").map(RingTone::code), Ok("us-old"));
        assert!(parse_ring_tone("xx").is_err());
        assert_eq!(parse_caller_id("(415) 555-1212"), Ok("+14155551212".into()));
        assert_eq!(parse_caller_id("client:joey"), Ok("client:joey".into()));
        assert!(parse_caller_id("a b").is_err());
        assert_eq!(parse_finish_on_key(""), Ok(None));
        assert_eq!(parse_call_reason(" Delivery "), Ok("Delivery".to_owned()));
        assert!(parse_call_reason("a\r\nX-Evil: 1").is_err());
        assert_eq!(parse_finish_on_keys(" #*1#"), Ok("#*1".to_owned()));
        assert_eq!(parse_finish_on_keys(""), Ok(String::new()));
        assert!(parse_finish_on_keys("#a").is_err());
        assert!(parse_finish_on_key("##").is_err());
    }
}
