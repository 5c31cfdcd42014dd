//! TwiML `<Response>` documents to typed verbs: element placement, the
//! attributes of Say, Play, Pause, Gather, Reject and Redirect, screening
//! restrictions, and the notices for unknown or not-acted-on attributes.

use crate::ast::{
    Document, Gather, Notice, NoticeKind, Pause, Play, Prompt, Record, Redirect, Reject, Say, Verb,
};
use crate::error::{LineIndex, ParseError, Position};
use crate::support::{self, Status};
use crate::values;
use crate::xml::{self, Attr, Element, Node};

/// Verbs Twilio defines that Tandem does not implement.
const UNSUPPORTED_VERBS: &[&str] = &[
    "Connect", "Start", "Stop", "Stream", "Refer", "Pay", "Prompt", "Sms", "Message", "Echo",
    "Siprec",
];

/// SSML tags inside `<Say>` handed to the synthesizer (espeak-ng's SSML
/// subset); the content of any other tag is kept, the tag itself dropped.
pub const SSML_TAGS: &[&str] = &["break", "emphasis", "p", "prosody", "s", "say-as", "sub"];

/// Writes `e`'s children as SSML: text escaped, known tags with their
/// attributes (escaped), unknown tags unwrapped.
fn ssml_children(e: &Element, out: &mut String) {
    for n in &e.children {
        match n {
            Node::Text { text, .. } => escape_xml(text, out),
            Node::Element(c) if SSML_TAGS.contains(&c.name.as_str()) => {
                out.push('<');
                out.push_str(&c.name);
                for a in &c.attrs {
                    out.push(' ');
                    out.push_str(&a.name);
                    out.push_str("=\"");
                    escape_xml(&a.value, out);
                    out.push('"');
                }
                if c.children.is_empty() {
                    out.push_str("/>");
                } else {
                    out.push('>');
                    ssml_children(c, out);
                    out.push_str("</");
                    out.push_str(&c.name);
                    out.push('>');
                }
            }
            Node::Element(c) => {
                tracing::info!(tag = %c.name, "SSML tag the synthesizer does not know: its text is read");
                ssml_children(c, out);
            }
        }
    }
}

fn escape_xml(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Largest document accepted, as on Twilio (64 kB, error 11750).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Parses a TwiML document run on the caller's leg.
///
/// Unknown verbs are errors (Twilio fails the call on them too); unknown
/// attributes are ignored with a warning and listed in
/// [`Document::notices`].
pub fn parse(source: &str) -> Result<Document, ParseError> {
    parse_with(source, false)
}

/// Parses a screening document (a noun's `url`, run on the callee's leg):
/// only Play, Say, Pause, Gather and Hangup are allowed.
pub fn parse_screening(source: &str) -> Result<Document, ParseError> {
    parse_with(source, true)
}

fn parse_with(source: &str, screening: bool) -> Result<Document, ParseError> {
    if source.len() > MAX_DOCUMENT_BYTES {
        return Err(ParseError::TooLarge {
            size: source.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    let lines = LineIndex::new(source);
    let root = xml::parse_tree(source, &lines)?;
    let mut ctx = Ctx {
        lines: &lines,
        notices: Vec::new(),
        screening,
    };
    if root.name != "Response" {
        return Err(ParseError::NotResponse {
            element: root.name,
            at: lines.position(root.offset),
        });
    }
    ctx.note_attrs(&root);
    let mut verbs = Vec::new();
    for node in &root.children {
        match node {
            Node::Element(e) => verbs.push(ctx.verb(e)?),
            Node::Text { text, offset } => ctx.blank_text("Response", text, *offset)?,
        }
    }
    Ok(Document {
        verbs,
        notices: ctx.notices,
    })
}

/// Parsing state shared by the verb and noun parsers.
pub(crate) struct Ctx<'a> {
    pub(crate) lines: &'a LineIndex<'a>,
    pub(crate) notices: Vec<Notice>,
    screening: bool,
}

impl Ctx<'_> {
    pub(crate) fn pos(&self, offset: usize) -> Position {
        self.lines.position(offset)
    }

    /// Records a notice for every attribute of `e` that is unknown or not
    /// acted on, and logs it.
    pub(crate) fn note_attrs(&mut self, e: &Element) {
        for attr in &e.attrs {
            match support::attribute_status(&e.name, &attr.name) {
                Some(Status::Supported) => {}
                Some(Status::NotActedOn) => self.note(NoticeKind::NotActedOn, &e.name, Some(attr)),
                None => self.note(NoticeKind::UnknownAttribute, &e.name, Some(attr)),
            }
        }
    }

    /// Records a notice about an element or attribute and logs it.
    pub(crate) fn note(&mut self, kind: NoticeKind, element: &str, attr: Option<&Attr>) {
        let at = self.pos(attr.map_or(0, |a| a.offset));
        let attribute = attr.map(|a| a.name.clone());
        let value = attr.map(|a| a.value.clone()).unwrap_or_default();
        match kind {
            NoticeKind::UnknownAttribute => tracing::warn!(
                element,
                attribute = attribute.as_deref().unwrap_or(""),
                %at,
                "unknown TwiML attribute ignored"
            ),
            NoticeKind::NotActedOn => tracing::info!(
                element,
                attribute = attribute.as_deref().unwrap_or(""),
                %at,
                "TwiML attribute parsed but not yet acted on"
            ),
        }
        self.notices.push(Notice {
            kind,
            element: element.to_owned(),
            attribute,
            value,
            at,
        });
    }

    pub(crate) fn invalid(&self, e: &Element, attr: &Attr, expected: &'static str) -> ParseError {
        ParseError::InvalidAttribute {
            element: e.name.clone(),
            attribute: attr.name.clone(),
            value: attr.value.clone(),
            expected,
            at: self.pos(attr.offset),
        }
    }

    /// Applies a value parser to an attribute, mapping its failure.
    pub(crate) fn value<T>(
        &self,
        e: &Element,
        attr: &Attr,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Result<T, ParseError> {
        parse(&attr.value).map_err(|expected| self.invalid(e, attr, expected))
    }

    /// An integer attribute in `min..=max`.
    pub(crate) fn range(
        &self,
        e: &Element,
        attr: &Attr,
        min: u32,
        max: u32,
        expected: &'static str,
    ) -> Result<u32, ParseError> {
        values::parse_range(&attr.value, min, max).ok_or_else(|| self.invalid(e, attr, expected))
    }

    /// Fails on non-blank text where only elements belong.
    pub(crate) fn blank_text(
        &self,
        element: &str,
        text: &str,
        offset: usize,
    ) -> Result<(), ParseError> {
        match text.find(|c: char| !c.is_whitespace()) {
            None => Ok(()),
            Some(lead) => Err(ParseError::UnexpectedText {
                element: element.to_owned(),
                text: text.trim().to_owned(),
                at: self.pos(offset + lead),
            }),
        }
    }

    /// Fails when `e` has child elements or non-blank text.
    fn no_content(&self, e: &Element) -> Result<(), ParseError> {
        for node in &e.children {
            match node {
                Node::Element(child) => return Err(self.invalid_child(e, child)),
                Node::Text { text, offset } => self.blank_text(&e.name, text, *offset)?,
            }
        }
        Ok(())
    }

    pub(crate) fn invalid_child(&self, parent: &Element, child: &Element) -> ParseError {
        ParseError::InvalidChild {
            parent: parent.name.clone(),
            element: child.name.clone(),
            at: self.pos(child.offset),
        }
    }

    /// Fails when `e` has child elements; returns its text.
    pub(crate) fn text_only(&self, e: &Element) -> Result<(String, usize), ParseError> {
        if let Some(child) = e.elements().next() {
            return Err(self.invalid_child(e, child));
        }
        Ok(e.text())
    }

    fn verb(&mut self, e: &Element) -> Result<Verb, ParseError> {
        let at = self.pos(e.offset);
        let forbidden = ParseError::NotAllowedInScreening {
            element: e.name.clone(),
            at,
        };
        match e.name.as_str() {
            "Dial" if self.screening => Err(forbidden),
            "Reject" | "Redirect" | "Record" | "Enqueue" | "Leave" if self.screening => {
                Err(forbidden)
            }
            "Dial" => Ok(Verb::Dial(self.dial(e)?)),
            "Say" => Ok(Verb::Say(self.say(e)?)),
            "Play" => Ok(Verb::Play(self.play(e)?)),
            "Pause" => Ok(Verb::Pause(self.pause(e)?)),
            "Gather" => Ok(Verb::Gather(self.gather(e)?)),
            "Hangup" => {
                self.note_attrs(e);
                self.no_content(e)?;
                Ok(Verb::Hangup)
            }
            "Reject" => Ok(Verb::Reject(self.reject(e)?)),
            "Redirect" => Ok(Verb::Redirect(self.redirect(e)?)),
            "Record" => Ok(Verb::Record(self.record(e)?)),
            "Enqueue" => Ok(Verb::Enqueue(self.enqueue(e)?)),
            "Leave" => {
                self.note_attrs(e);
                self.no_content(e)?;
                Ok(Verb::Leave)
            }
            "Number" | "Client" | "Sip" | "Conference" | "Queue" | "Identity" | "Parameter" => {
                Err(ParseError::InvalidChild {
                    parent: "Response".into(),
                    element: e.name.clone(),
                    at,
                })
            }
            name if self.screening && UNSUPPORTED_VERBS.contains(&name) => Err(forbidden),
            name if UNSUPPORTED_VERBS.contains(&name) => Err(ParseError::UnsupportedVerb {
                element: e.name.clone(),
                at,
            }),
            _ => Err(ParseError::UnknownVerb {
                element: e.name.clone(),
                at,
            }),
        }
    }

    fn say(&mut self, e: &Element) -> Result<Say, ParseError> {
        self.note_attrs(e);
        let mut say = Say::default();
        for attr in &e.attrs {
            match attr.name.as_str() {
                "voice" => say.voice = Some(self.value(e, attr, non_blank)?),
                "language" => say.language = Some(self.value(e, attr, non_blank)?),
                "loop" => say.loop_ = self.value(e, attr, values::parse_loop)?,
                _ => {}
            }
        }
        if e.elements().next().is_some() {
            let mut ssml = String::from("<speak>");
            ssml_children(e, &mut ssml);
            ssml.push_str("</speak>");
            say.ssml = Some(ssml);
        }
        say.text = e.deep_text();
        if say.text.is_empty() {
            return Err(ParseError::MissingContent {
                element: e.name.clone(),
                expected: "text to say",
                at: self.pos(e.offset),
            });
        }
        Ok(say)
    }

    fn play(&mut self, e: &Element) -> Result<Play, ParseError> {
        self.note_attrs(e);
        let mut play = Play::default();
        for attr in &e.attrs {
            match attr.name.as_str() {
                "loop" => play.loop_ = self.value(e, attr, values::parse_loop)?,
                "digits" => play.digits = Some(self.value(e, attr, values::parse_digits)?),
                _ => {}
            }
        }
        let (text, offset) = self.text_only(e)?;
        if !text.is_empty() {
            play.url =
                Some(
                    values::parse_url(&text).map_err(|expected| ParseError::InvalidContent {
                        element: e.name.clone(),
                        value: text.clone(),
                        expected,
                        at: self.pos(offset),
                    })?,
                );
        }
        if play.url.is_none() && play.digits.is_none() {
            return Err(ParseError::MissingContent {
                element: e.name.clone(),
                expected: "an audio URL or a digits attribute",
                at: self.pos(e.offset),
            });
        }
        Ok(play)
    }

    fn pause(&mut self, e: &Element) -> Result<Pause, ParseError> {
        self.note_attrs(e);
        let mut pause = Pause::default();
        for attr in &e.attrs {
            if attr.name == "length" {
                pause.length = self.range(e, attr, 0, 14_400, "an integer 0..=14400 (seconds)")?;
            }
        }
        self.no_content(e)?;
        Ok(pause)
    }

    fn gather(&mut self, e: &Element) -> Result<Gather, ParseError> {
        self.note_attrs(e);
        let mut gather = Gather::default();
        for attr in &e.attrs {
            match attr.name.as_str() {
                "input" => gather.input = self.value(e, attr, values::parse_gather_input)?,
                "action" => gather.action = Some(self.value(e, attr, values::parse_url)?),
                "method" => gather.method = self.value(e, attr, values::parse_method)?,
                "timeout" => {
                    gather.timeout = self.range(e, attr, 1, 600, "an integer 1..=600 (seconds)")?;
                }
                "finishOnKey" => {
                    gather.finish_on_key = self.value(e, attr, values::parse_finish_on_key)?;
                }
                "numDigits" => {
                    gather.num_digits = Some(self.range(e, attr, 1, 255, "an integer 1..=255")?);
                }
                "actionOnEmptyResult" => {
                    gather.action_on_empty_result = self.value(e, attr, values::parse_bool)?;
                }
                "speechTimeout" => {
                    gather.speech_timeout =
                        Some(self.value(e, attr, values::parse_speech_timeout)?);
                }
                "speechModel" => {
                    gather.speech_model = Some(self.value(e, attr, values::parse_speech_model)?);
                }
                "hints" => gather.hints = Some(self.value(e, attr, values::parse_hints)?),
                "language" => gather.language = self.value(e, attr, values::parse_language)?,
                "profanityFilter" => {
                    gather.profanity_filter = self.value(e, attr, values::parse_bool)?;
                }
                "partialResultCallback" => {
                    gather.partial_result_callback =
                        Some(self.value(e, attr, values::parse_url)?);
                }
                "partialResultCallbackMethod" => {
                    gather.partial_result_callback_method =
                        self.value(e, attr, values::parse_method)?;
                }
                "enhanced" => gather.enhanced = self.value(e, attr, values::parse_bool)?,
                _ => {}
            }
        }
        for node in &e.children {
            match node {
                Node::Text { text, offset } => self.blank_text(&e.name, text, *offset)?,
                Node::Element(child) => {
                    let prompt = match child.name.as_str() {
                        "Say" => Prompt::Say(self.say(child)?),
                        "Play" => Prompt::Play(self.play(child)?),
                        "Pause" => Prompt::Pause(self.pause(child)?),
                        _ => return Err(self.invalid_child(e, child)),
                    };
                    gather.prompts.push(prompt);
                }
            }
        }
        Ok(gather)
    }

    fn record(&mut self, e: &Element) -> Result<Record, ParseError> {
        self.note_attrs(e);
        let mut record = Record::default();
        for attr in &e.attrs {
            match attr.name.as_str() {
                "action" => record.action = Some(self.value(e, attr, values::parse_url)?),
                "method" => record.method = self.value(e, attr, values::parse_method)?,
                "timeout" => {
                    record.timeout =
                        self.range(e, attr, 0, 3600, "an integer 0..=3600 (seconds; 0 = none)")?;
                }
                "finishOnKey" => {
                    record.finish_on_key = self.value(e, attr, values::parse_finish_on_keys)?;
                }
                "maxLength" => {
                    record.max_length =
                        self.range(e, attr, 1, 14_400, "an integer 1..=14400 (seconds)")?;
                }
                "playBeep" => record.play_beep = self.value(e, attr, values::parse_bool)?,
                "trim" => record.trim = self.value(e, attr, values::parse_trim)?,
                "recordingStatusCallback" => {
                    record.recording_status_callback =
                        Some(self.value(e, attr, values::parse_url)?);
                }
                "recordingStatusCallbackMethod" => {
                    record.recording_status_callback_method =
                        self.value(e, attr, values::parse_method)?;
                }
                "recordingStatusCallbackEvent" => {
                    record.recording_status_callback_event =
                        self.value(e, attr, values::parse_recording_events)?;
                }
                "transcribe" => record.transcribe = self.value(e, attr, values::parse_bool)?,
                "transcribeCallback" => {
                    record.transcribe_callback = Some(self.value(e, attr, values::parse_url)?);
                }
                _ => {}
            }
        }
        self.no_content(e)?;
        Ok(record)
    }

    fn reject(&mut self, e: &Element) -> Result<Reject, ParseError> {
        self.note_attrs(e);
        let mut reject = Reject::default();
        for attr in &e.attrs {
            if attr.name == "reason" {
                reject.reason = self.value(e, attr, values::parse_reject_reason)?;
            }
        }
        self.no_content(e)?;
        Ok(reject)
    }

    fn enqueue(&mut self, e: &Element) -> Result<crate::ast::Enqueue, ParseError> {
        let mut q = crate::ast::Enqueue {
            queue: self.queue_name(e)?,
            action: None,
            method: values::Method::Post,
            wait_url: None,
            wait_url_method: values::Method::Post,
        };
        for attr in &e.attrs {
            match attr.name.as_str() {
                "action" => q.action = Some(self.value(e, attr, values::parse_url)?),
                "method" => q.method = self.value(e, attr, values::parse_method)?,
                "waitUrl" => {
                    q.wait_url = if attr.value.trim().is_empty() {
                        None
                    } else {
                        Some(self.value(e, attr, values::parse_url)?)
                    }
                }
                "waitUrlMethod" => q.wait_url_method = self.value(e, attr, values::parse_method)?,
                _ => {}
            }
        }
        self.note_attrs(e);
        Ok(q)
    }

    fn redirect(&mut self, e: &Element) -> Result<Redirect, ParseError> {
        self.note_attrs(e);
        let mut method = values::Method::Post;
        for attr in &e.attrs {
            if attr.name == "method" {
                method = self.value(e, attr, values::parse_method)?;
            }
        }
        let (text, offset) = self.text_only(e)?;
        if text.is_empty() {
            return Err(ParseError::MissingContent {
                element: e.name.clone(),
                expected: "a URL",
                at: self.pos(e.offset),
            });
        }
        let url = values::parse_url(&text).map_err(|expected| ParseError::InvalidContent {
            element: e.name.clone(),
            value: text.clone(),
            expected,
            at: self.pos(offset),
        })?;
        Ok(Redirect { url, method })
    }
}

/// A non-blank string attribute.
pub(crate) fn non_blank(v: &str) -> Result<String, &'static str> {
    let v = v.trim();
    if v.is_empty() {
        Err("a non-empty value")
    } else {
        Ok(v.to_owned())
    }
}
