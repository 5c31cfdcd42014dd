//! `<Dial>` and its nouns (Number, Client, Sip, Conference, Queue): the
//! attribute tables of the reference pages, the ten-noun limit, identity and
//! SIP URI rules.

use crate::ast::{
    Client, Conference, ConferenceBeep, ConferenceEvent, Dial, MachineDetectionOptions, Noun,
    NounOptions, Number, Queue, Sip,
};
use crate::error::ParseError;
use crate::parse::{Ctx, non_blank};
use crate::values::{self, PhoneNumber};
use crate::xml::{Attr, Element, Node};

/// Most Number, Client and Sip nouns one `<Dial>` may ring at once.
pub const MAX_DIAL_NOUNS: usize = 10;

impl Ctx<'_> {
    pub(crate) fn dial(&mut self, e: &Element) -> Result<Dial, ParseError> {
        self.note_attrs(e);
        let mut dial = Dial::default();
        for attr in &e.attrs {
            self.dial_attr(e, attr, &mut dial)?;
        }
        let has_elements = e.elements().next().is_some();
        if has_elements {
            for node in &e.children {
                match node {
                    Node::Text { text, offset } => self.blank_text(&e.name, text, *offset)?,
                    Node::Element(child) => {
                        let noun = self.noun(e, child)?;
                        dial.nouns.push(noun);
                    }
                }
            }
        } else {
            let (text, offset) = e.text();
            if !text.is_empty() {
                let number =
                    PhoneNumber::parse(&text).ok_or_else(|| ParseError::InvalidPhoneNumber {
                        element: e.name.clone(),
                        value: text.clone(),
                        at: self.pos(offset),
                    })?;
                dial.nouns.push(Noun::Number(Number::new(number)));
            }
        }
        let at = self.pos(e.offset);
        if dial.nouns.is_empty() {
            return Err(ParseError::NothingToDial { at });
        }
        let count = dial.dialable().count();
        if count > MAX_DIAL_NOUNS {
            return Err(ParseError::TooManyNouns {
                count,
                limit: MAX_DIAL_NOUNS,
                at,
            });
        }
        if dial.nouns.len() > 1 {
            let lone = e
                .elements()
                .find(|c| matches!(c.name.as_str(), "Conference" | "Queue"));
            if let Some(lone) = lone {
                return Err(ParseError::ExclusiveNoun {
                    element: lone.name.clone(),
                    at: self.pos(lone.offset),
                });
            }
        }
        Ok(dial)
    }

    fn dial_attr(&self, e: &Element, attr: &Attr, dial: &mut Dial) -> Result<(), ParseError> {
        match attr.name.as_str() {
            "action" => dial.action = Some(self.value(e, attr, values::parse_url)?),
            "answerOnBridge" => dial.answer_on_bridge = self.value(e, attr, values::parse_bool)?,
            "callerId" => dial.caller_id = Some(self.value(e, attr, values::parse_caller_id)?),
            "callReason" => {
                dial.call_reason = Some(self.value(e, attr, values::parse_call_reason)?)
            }
            "hangupOnStar" => dial.hangup_on_star = self.value(e, attr, values::parse_bool)?,
            "method" => dial.method = self.value(e, attr, values::parse_method)?,
            "record" => dial.record = self.value(e, attr, values::parse_record)?,
            "recordingStatusCallback" => {
                dial.recording_status_callback = Some(self.value(e, attr, values::parse_url)?);
            }
            "recordingStatusCallbackMethod" => {
                dial.recording_status_callback_method =
                    self.value(e, attr, values::parse_method)?;
            }
            "recordingStatusCallbackEvent" => {
                dial.recording_status_callback_event =
                    self.value(e, attr, values::parse_recording_events)?;
            }
            "recordingTrack" => {
                dial.recording_track = self.value(e, attr, values::parse_recording_track)?
            }
            "referUrl" => dial.refer_url = Some(self.value(e, attr, values::parse_url)?),
            "referMethod" => dial.refer_method = self.value(e, attr, values::parse_method)?,
            "ringTone" => dial.ring_tone = Some(self.value(e, attr, values::parse_ring_tone)?),
            "timeLimit" => {
                dial.time_limit = self.range(
                    e,
                    attr,
                    1,
                    86_400,
                    "a positive integer up to 86400 (seconds)",
                )?;
            }
            "timeout" => {
                dial.timeout = self.range(e, attr, 5, 600, "an integer 5..=600 (seconds)")?
            }
            "trim" => dial.trim = self.value(e, attr, values::parse_trim)?,
            _ => {}
        }
        Ok(())
    }

    fn noun(&mut self, dial: &Element, e: &Element) -> Result<Noun, ParseError> {
        match e.name.as_str() {
            "Number" => self.number(e).map(Noun::Number),
            "Client" => self.client(e).map(Noun::Client),
            "Sip" => self.sip(e).map(Noun::Sip),
            "Conference" => self.conference(e).map(|c| Noun::Conference(Box::new(c))),
            "Queue" => {
                let name = self.queue_name(e)?;
                let mut q = Queue {
                    name,
                    url: None,
                    method: values::Method::Post,
                };
                for attr in &e.attrs {
                    match attr.name.as_str() {
                        "url" => q.url = Some(self.value(e, attr, values::parse_url)?),
                        "method" => q.method = self.value(e, attr, values::parse_method)?,
                        _ => {}
                    }
                }
                self.note_attrs(e);
                Ok(Noun::Queue(q))
            }
            _ => Err(self.invalid_child(dial, e)),
        }
    }

    /// A queue's name: the element's text, 1–64 characters, no control
    /// characters.
    pub(crate) fn queue_name(&self, e: &Element) -> Result<String, ParseError> {
        let (name, _) = self.text_only(e)?;
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(ParseError::MissingContent {
                element: e.name.clone(),
                expected: "a queue name of 1 to 64 characters without control characters",
                at: self.pos(e.offset),
            });
        }
        Ok(name)
    }

    fn conference(&mut self, e: &Element) -> Result<Conference, ParseError> {
        let (name, _) = self.text_only(e)?;
        if name.is_empty() {
            return Err(ParseError::MissingContent {
                element: e.name.clone(),
                expected: "a name",
                at: self.pos(e.offset),
            });
        }
        if name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(ParseError::MissingContent {
                element: e.name.clone(),
                expected: "a name of at most 128 characters without control characters",
                at: self.pos(e.offset),
            });
        }
        let mut c = Conference::new(name);
        for attr in &e.attrs {
            match attr.name.as_str() {
                "muted" => c.muted = self.value(e, attr, values::parse_bool)?,
                "beep" => c.beep = self.value(e, attr, parse_conference_beep)?,
                "startConferenceOnEnter" => {
                    c.start_conference_on_enter = self.value(e, attr, values::parse_bool)?
                }
                "endConferenceOnExit" => {
                    c.end_conference_on_exit = self.value(e, attr, values::parse_bool)?
                }
                "waitUrl" => {
                    c.wait_url = if attr.value.trim().is_empty() {
                        None
                    } else {
                        Some(self.value(e, attr, values::parse_url)?)
                    }
                }
                "waitMethod" => c.wait_method = self.value(e, attr, values::parse_method)?,
                "maxParticipants" => {
                    c.max_participants =
                        self.range(e, attr, 2, 250, "an integer 2..=250 (participants)")?
                }
                "record" => c.record = self.value(e, attr, parse_conference_record)?,
                "trim" => c.trim = self.value(e, attr, values::parse_trim)?,
                "recordingStatusCallback" => {
                    c.recording_status_callback = Some(self.value(e, attr, values::parse_url)?)
                }
                "recordingStatusCallbackMethod" => {
                    c.recording_status_callback_method =
                        self.value(e, attr, values::parse_method)?
                }
                "recordingStatusCallbackEvent" => {
                    c.recording_status_callback_event =
                        self.value(e, attr, values::parse_recording_events)?
                }
                "statusCallback" => {
                    c.status_callback = Some(self.value(e, attr, values::parse_url)?)
                }
                "statusCallbackMethod" => {
                    c.status_callback_method = self.value(e, attr, values::parse_method)?
                }
                "statusCallbackEvent" => {
                    c.status_callback_event = self.value(e, attr, parse_conference_events)?
                }
                "participantLabel" => {
                    c.participant_label = Some(self.value(e, attr, parse_label)?)
                }
                "coach" => c.coach = Some(self.value(e, attr, parse_call_sid)?),
                _ => {}
            }
        }
        self.note_attrs(e);
        Ok(c)
    }

    /// The url, method and statusCallback* attributes shared by the nouns;
    /// returns whether `attr` was one of them.
    fn noun_option(
        &self,
        e: &Element,
        attr: &Attr,
        opts: &mut NounOptions,
    ) -> Result<bool, ParseError> {
        match attr.name.as_str() {
            "url" => opts.url = Some(self.value(e, attr, values::parse_url)?),
            "method" => opts.method = self.value(e, attr, values::parse_method)?,
            "statusCallback" => {
                opts.status_callback = Some(self.value(e, attr, values::parse_url)?)
            }
            "statusCallbackEvent" => {
                opts.status_callback_event = self.value(e, attr, values::parse_progress_events)?;
            }
            "statusCallbackMethod" => {
                opts.status_callback_method = self.value(e, attr, values::parse_method)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn number(&mut self, e: &Element) -> Result<Number, ParseError> {
        self.note_attrs(e);
        let (text, offset) = self.text_only(e)?;
        if text.is_empty() {
            return Err(ParseError::MissingContent {
                element: e.name.clone(),
                expected: "a phone number",
                at: self.pos(e.offset),
            });
        }
        let number = PhoneNumber::parse(&text).ok_or_else(|| ParseError::InvalidPhoneNumber {
            element: e.name.clone(),
            value: text.clone(),
            at: self.pos(offset),
        })?;
        let mut n = Number::new(number);
        for attr in &e.attrs {
            if self.noun_option(e, attr, &mut n.options)? {
                continue;
            }
            let md: &mut MachineDetectionOptions = &mut n.machine_detection;
            match attr.name.as_str() {
                "sendDigits" => n.send_digits = Some(self.value(e, attr, values::parse_digits)?),
                "byoc" => n.byoc = Some(self.value(e, attr, non_blank)?),
                "machineDetection" => {
                    md.mode = Some(self.value(e, attr, values::parse_machine_detection)?)
                }
                "machineDetectionTimeout" => {
                    md.timeout = self.range(e, attr, 3, 60, "an integer 3..=60 (seconds)")?;
                }
                "machineDetectionSpeechThreshold" => {
                    md.speech_threshold =
                        self.range(e, attr, 1000, 6000, "an integer 1000..=6000 (ms)")?;
                }
                "machineDetectionSpeechEndThreshold" => {
                    md.speech_end_threshold =
                        self.range(e, attr, 500, 5000, "an integer 500..=5000 (ms)")?;
                }
                "machineDetectionSilenceTimeout" => {
                    md.silence_timeout =
                        self.range(e, attr, 2000, 10_000, "an integer 2000..=10000 (ms)")?;
                }
                "amdStatusCallback" => {
                    md.status_callback = Some(self.value(e, attr, values::parse_url)?)
                }
                "amdStatusCallbackMethod" => {
                    md.status_callback_method = self.value(e, attr, values::parse_method)?;
                }
                _ => {}
            }
        }
        Ok(n)
    }

    fn client(&mut self, e: &Element) -> Result<Client, ParseError> {
        self.note_attrs(e);
        let mut identity: Option<(String, usize)> = None;
        let mut parameters = Vec::new();
        let structured = e.elements().next().is_some();
        for node in &e.children {
            match node {
                Node::Text { text, offset } if structured => {
                    self.blank_text(&e.name, text, *offset)?
                }
                Node::Text { .. } => {}
                Node::Element(child) => match child.name.as_str() {
                    "Identity" if identity.is_none() => {
                        self.note_attrs(child);
                        identity = Some(self.text_only(child)?);
                    }
                    "Parameter" => {
                        self.note_attrs(child);
                        parameters.push(self.parameter(child)?);
                    }
                    _ => return Err(self.invalid_child(e, child)),
                },
            }
        }
        let (identity, offset) = match identity {
            Some(found) => found,
            None if structured => {
                return Err(ParseError::MissingContent {
                    element: e.name.clone(),
                    expected: "an <Identity>",
                    at: self.pos(e.offset),
                });
            }
            None => e.text(),
        };
        if identity.is_empty() {
            return Err(ParseError::MissingContent {
                element: e.name.clone(),
                expected: "a client identity",
                at: self.pos(e.offset),
            });
        }
        values::check_identity(&identity).map_err(|reason| ParseError::InvalidIdentity {
            value: identity.clone(),
            reason,
            at: self.pos(offset),
        })?;
        let mut client = Client::new(identity);
        client.parameters = parameters;
        for attr in &e.attrs {
            self.noun_option(e, attr, &mut client.options)?;
        }
        Ok(client)
    }

    fn parameter(&self, e: &Element) -> Result<(String, String), ParseError> {
        let name = e.attrs.iter().find(|a| a.name == "name");
        let value = e.attrs.iter().find(|a| a.name == "value");
        let Some(name) = name else {
            return Err(ParseError::MissingAttribute {
                element: e.name.clone(),
                attribute: "name",
                at: self.pos(e.offset),
            });
        };
        // The pair goes into the INVITE as a header `X-<name>: <value>`:
        // the name must be a header-name token, the value one line.
        let name_value = self.value(e, name, |v| {
            let v = non_blank(v)?;
            if v.bytes().all(is_token_byte) {
                Ok(v)
            } else {
                Err("a header-name token (letters, digits, - . ! % * _ + ` ' ~)")
            }
        })?;
        let value_value = match value {
            Some(v) => self.value(e, v, |v| {
                header_value(v).map_err(|_| "one line without control characters")
            })?,
            None => String::new(),
        };
        Ok((name_value, value_value))
    }

    fn sip(&mut self, e: &Element) -> Result<Sip, ParseError> {
        self.note_attrs(e);
        let (text, offset) = self.text_only(e)?;
        if text.is_empty() {
            return Err(ParseError::MissingContent {
                element: e.name.clone(),
                expected: "a sip: URI",
                at: self.pos(e.offset),
            });
        }
        let (uri, headers) = split_sip_uri(&text).map_err(|reason| ParseError::InvalidSipUri {
            value: text.clone(),
            reason,
            at: self.pos(offset),
        })?;
        let mut sip = Sip::new(uri);
        sip.headers = headers;
        for attr in &e.attrs {
            if self.noun_option(e, attr, &mut sip.options)? {
                continue;
            }
            match attr.name.as_str() {
                "username" => sip.username = Some(self.value(e, attr, non_blank)?),
                "password" => sip.password = Some(attr.value.clone()),
                _ => {}
            }
        }
        Ok(sip)
    }
}

type Headers = Vec<(String, String)>;

/// Splits `sip:user@host;params?H1=v1&H2=v2` into the URI and its decoded
/// headers, checking the scheme and that a host is present.
pub(crate) fn split_sip_uri(text: &str) -> Result<(String, Headers), &'static str> {
    let text = text.trim();
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters");
    }
    let bytes = text.as_bytes();
    let rest = if bytes
        .get(..4)
        .is_some_and(|b| b.eq_ignore_ascii_case(b"sip:"))
    {
        &text[4..]
    } else if bytes
        .get(..5)
        .is_some_and(|b| b.eq_ignore_ascii_case(b"sips:"))
    {
        &text[5..]
    } else {
        return Err("scheme must be sip: or sips:");
    };
    let (addr, query) = match rest.split_once('?') {
        Some((addr, query)) => (addr, Some(query)),
        None => (rest, None),
    };
    let hostport = addr.rsplit_once('@').map_or(addr, |(_, h)| h);
    let host = hostport.split(';').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("no host");
    }
    let mut headers = Vec::new();
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name)?;
        if name.is_empty() {
            return Err("a header without a name");
        }
        // As Twilio allows: custom `X-` headers and User-to-User, nothing
        // that could rewrite the INVITE (Via, Route, From, Authorization...).
        // And Replaces (RFC 3891): a REFER's `Refer-To: <sip:c?Replaces=…>`
        // (an attended transfer) reaches referUrl as ReferTransferTarget,
        // and a <Sip> to it completes the transfer.
        if !(name.len() > 2 && name.as_bytes()[..2].eq_ignore_ascii_case(b"X-")
            || name.eq_ignore_ascii_case("User-to-User")
            || name.eq_ignore_ascii_case("Replaces"))
        {
            return Err("only X- headers, User-to-User and Replaces may be set in the URI");
        }
        if !name.bytes().all(is_token_byte) {
            return Err("a header name that is not a token");
        }
        headers.push((name, header_value(&percent_decode(value)?)?));
    }
    let uri_len = text.len() - query.map_or(0, |q| q.len() + 1);
    Ok((text[..uri_len].to_owned(), headers))
}

/// RFC 3261 §25.1 `token` characters (header names).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// A header value TwiML may set: one line, no control characters (a CR or
/// LF would end the header and start another: header injection).
fn header_value(v: &str) -> Result<String, &'static str> {
    if v.chars().any(|c| c.is_control() && c != '\t') {
        return Err("a header value with a line break or control character");
    }
    Ok(v.to_owned())
}

/// RFC 3986 percent-decoding (`+` stays `+`, as in SIP URIs).
fn percent_decode(s: &str) -> Result<String, &'static str> {
    const BAD: &str = "bad percent-encoding in a header";
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(BAD)?;
            let hex = std::str::from_utf8(hex).map_err(|_| BAD)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| BAD)?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BAD)
}

fn parse_conference_beep(v: &str) -> Result<ConferenceBeep, &'static str> {
    match v.trim() {
        b if b.eq_ignore_ascii_case("true") => Ok(ConferenceBeep::Both),
        b if b.eq_ignore_ascii_case("false") => Ok(ConferenceBeep::Off),
        b if b.eq_ignore_ascii_case("onEnter") => Ok(ConferenceBeep::OnEnter),
        b if b.eq_ignore_ascii_case("onExit") => Ok(ConferenceBeep::OnExit),
        _ => Err("true, false, onEnter or onExit"),
    }
}

fn parse_conference_record(v: &str) -> Result<bool, &'static str> {
    match v.trim() {
        r if r.eq_ignore_ascii_case("record-from-start") => Ok(true),
        r if r.eq_ignore_ascii_case("do-not-record") => Ok(false),
        _ => Err("record-from-start or do-not-record"),
    }
}

fn parse_conference_events(v: &str) -> Result<Vec<ConferenceEvent>, &'static str> {
    const EXPECTED: &str =
        "start end join leave mute hold modify speaker announcement, separated by spaces or commas";
    values::parse_word_list(v, EXPECTED, |w| match w {
        "start" => Some(ConferenceEvent::Start),
        "end" => Some(ConferenceEvent::End),
        "join" => Some(ConferenceEvent::Join),
        "leave" => Some(ConferenceEvent::Leave),
        "mute" => Some(ConferenceEvent::Mute),
        "hold" => Some(ConferenceEvent::Hold),
        "modify" => Some(ConferenceEvent::Modify),
        "speaker" => Some(ConferenceEvent::Speaker),
        "announcement" => Some(ConferenceEvent::Announcement),
        _ => None,
    })
}

fn parse_label(v: &str) -> Result<String, &'static str> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 128 || v.chars().any(char::is_control) {
        return Err("1 to 128 characters without control characters");
    }
    Ok(v.to_owned())
}

fn parse_call_sid(v: &str) -> Result<String, &'static str> {
    let v = v.trim();
    let ok = v.len() == 34 && v.starts_with("CA") && v[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err("a CallSid (CA and 32 hexadecimal digits)");
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_headers_are_split_and_decoded() {
        let (uri, headers) = split_sip_uri(
            "sip:AgentA@xyz.sip.us1.twilio.com?User-to-User=123456789%3Bencoding%3Dhex&X-Name=Agent%2C+A",
        )
        .expect("valid");
        assert_eq!(uri, "sip:AgentA@xyz.sip.us1.twilio.com");
        assert_eq!(
            headers,
            vec![
                (
                    "User-to-User".to_owned(),
                    "123456789;encoding=hex".to_owned()
                ),
                ("X-Name".to_owned(), "Agent,+A".to_owned()),
            ]
        );
    }

    #[test]
    fn a_refer_to_with_replaces_can_be_dialled() {
        let (uri, headers) = split_sip_uri(
            "sip:carol@10.0.0.3?Replaces=12345%4010.0.0.2%3Bto-tag%3D7743%3Bfrom-tag%3D6472",
        )
        .expect("valid");
        assert_eq!(uri, "sip:carol@10.0.0.3");
        assert_eq!(
            headers,
            vec![(
                "Replaces".to_owned(),
                "12345@10.0.0.2;to-tag=7743;from-tag=6472".to_owned()
            )]
        );
        assert!(split_sip_uri("sip:carol@10.0.0.3?Via=x").is_err());
    }

    #[test]
    fn sip_uri_rules() {
        assert_eq!(
            split_sip_uri("sips:bob@10.0.0.1:5061;transport=tls").map(|r| r.0),
            Ok("sips:bob@10.0.0.1:5061;transport=tls".into())
        );
        assert_eq!(split_sip_uri("SIP:example.com").map(|r| r.1.len()), Ok(0));
        assert_eq!(
            split_sip_uri("tel:+14155551212"),
            Err("scheme must be sip: or sips:")
        );
        assert_eq!(split_sip_uri("sip:bob@"), Err("no host"));
        assert_eq!(
            split_sip_uri("sip:bob@host?X-A=%zz"),
            Err("bad percent-encoding in a header")
        );
        assert_eq!(
            split_sip_uri("sip:bob@host?X-A=%4"),
            Err("bad percent-encoding in a header")
        );
        assert_eq!(
            split_sip_uri("sip:bob@host?=v"),
            Err("a header without a name")
        );
        assert_eq!(
            split_sip_uri("sip:b ob@host"),
            Err("contains whitespace or control characters")
        );
        assert_eq!(split_sip_uri("sip:é"), Ok(("sip:é".to_owned(), vec![])));
    }
}
