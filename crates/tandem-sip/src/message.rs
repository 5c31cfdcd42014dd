//! SIP messages (RFC 3261 §7, §20, §25): parsing on rsip with the normalisation
//! rsip lacks (line folding, compact header names, comma-joined header values),
//! validation of the mandatory headers, allocation-light accessors and a
//! byte-exact serializer.
//!
//! The rest of Tandem reads messages through [`Headers`] helpers defined here
//! and never depends on rsip's parsing quirks.

use std::borrow::Cow;
use std::fmt::Write as _;

use bytes::Bytes;
use rsip::headers::UntypedHeader;
use rsip::message::HasHeaders;
pub use rsip::{Header, Headers, Method, Request, Response, SipMessage, StatusCode, Uri};

use crate::header::{self, ViaRef};

/// Largest message Tandem accepts (UDP datagrams and TCP frames alike).
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// Why a datagram or stream frame is not an acceptable SIP message.
///
/// [`ParseError::response_status`] says what a server answers (§16.3, §21.4.1);
/// errors that leave nothing to answer to are dropped by the transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The first line is neither a Request-Line nor a Status-Line.
    #[error("malformed start line")]
    StartLine,
    /// The message is larger than [`MAX_MESSAGE_SIZE`].
    #[error("message too large")]
    TooLarge,
    /// The SIP-Version is not SIP/2.0 (§8.2.2... answered with 505).
    #[error("SIP version not supported")]
    Version,
    /// The header section could not be split into headers.
    #[error("malformed header section")]
    HeaderSection,
    /// A mandatory header (§8.1.1) is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header is present more than once where only one is allowed.
    #[error("duplicate {0} header")]
    DuplicateHeader(&'static str),
    /// A header's value does not follow its grammar.
    #[error("malformed {0} header")]
    BadHeader(&'static str),
    /// The CSeq method differs from the request method (§8.2.2... RFC 4475 §3.1.2.13).
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    /// Content-Length says more bytes than the message carries.
    #[error("Content-Length {declared} exceeds the {actual}-byte body")]
    ContentLengthTooLarge {
        /// The value of Content-Length.
        declared: usize,
        /// Bytes actually present after the header section.
        actual: usize,
    },
    /// The Request-URI does not parse.
    #[error("malformed Request-URI")]
    RequestUri,
    /// The Request-URI scheme is not sip, sips or tel (answered with 416).
    #[error("unsupported URI scheme")]
    UriScheme,
}

impl ParseError {
    /// The status code and reason phrase a server answers with.
    pub fn response_status(&self) -> (u16, Cow<'static, str>) {
        match self {
            Self::Version => (505, Cow::Borrowed("Version Not Supported")),
            Self::UriScheme => (416, Cow::Borrowed("Unsupported URI Scheme")),
            Self::TooLarge => (513, Cow::Borrowed("Message Too Large")),
            other => (400, Cow::Owned(format!("Bad Request ({other})"))),
        }
    }
}

/// Parses one complete SIP message (a UDP datagram or one TCP frame).
///
/// Line folding is undone, compact header names are expanded, comma-joined
/// Via/Route/Record-Route/Contact values are split into one header each, and
/// the headers every message needs are checked. A body longer than
/// Content-Length is truncated to it (§18.3); a shorter one is an error.
///
/// The parser is Tandem's own (rsip provides the types): one pass over the
/// header section with `memchr`, names matched without allocating, one
/// `String` per value. A header section with folded lines or bare LF line
/// ends is first rewritten to plain CRLF lines (the slow path).
pub fn parse(buf: &[u8]) -> Result<SipMessage, ParseError> {
    if buf.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLarge);
    }
    // Leading CRLFs before the start line are ignored (§7.5).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(ParseError::StartLine)?;
    let buf = &buf[start..];
    if let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") {
        match parse_head(&buf[..end]) {
            Ok(msg) => return finish(msg, &buf[end + 4..]),
            Err(Fault::Bad(e)) => return Err(e),
            Err(Fault::Irregular) => {}
        }
    }
    let (head_end, body_start) = find_head_end(buf).ok_or(ParseError::HeaderSection)?;
    let head = normalise_head(&buf[..head_end])?;
    match parse_head(&head) {
        Ok(msg) => finish(msg, &buf[body_start..]),
        Err(Fault::Bad(e)) => Err(e),
        Err(Fault::Irregular) => Err(ParseError::HeaderSection),
    }
}

/// Content-Length applied to the bytes after the header section, then the
/// mandatory headers checked.
fn finish(mut msg: SipMessage, body: &[u8]) -> Result<SipMessage, ParseError> {
    let declared = {
        let seen = Seen::of(msg.headers());
        let declared = seen.content_length.clone()?;
        if let Some(n) = declared
            && n > body.len()
        {
            return Err(ParseError::ContentLengthTooLarge {
                declared: n,
                actual: body.len(),
            });
        }
        let method = match &msg {
            SipMessage::Request(r) => Some(&r.method),
            SipMessage::Response(_) => None,
        };
        seen.validate(method)?;
        declared
    };
    let body = match declared {
        Some(n) => &body[..n],
        None => body,
    };
    if !body.is_empty() {
        *msg.body_mut() = body.to_vec();
    }
    Ok(msg)
}

/// Why the fast path gave up on a header section.
enum Fault {
    /// Not a SIP message: the error stands.
    Bad(ParseError),
    /// Folded lines or bare LF line ends: normalise, then parse again.
    Irregular,
}

impl From<ParseError> for Fault {
    fn from(e: ParseError) -> Self {
        Self::Bad(e)
    }
}

/// Parses a header section whose lines end in CRLF (the last one without
/// it), with no folded lines.
fn parse_head(head: &[u8]) -> Result<SipMessage, Fault> {
    // The start line is judged first (a bad version is 505 whatever follows).
    let first_end = memchr::memchr2(b'\r', b'\n', head).unwrap_or(head.len());
    let first = std::str::from_utf8(&head[..first_end]).map_err(|_| ParseError::StartLine)?;
    let start = start_line(first)?;
    let rest = std::str::from_utf8(&head[first_end..]).map_err(|_| ParseError::HeaderSection)?;
    let mut lines = Lines { rest };
    // What is left of the first line: nothing, but its line end is checked.
    lines.next().transpose()?;
    let mut headers = Vec::with_capacity(16);
    for line in lines {
        let line = line?;
        if line.starts_with([' ', '\t']) {
            return Err(Fault::Irregular);
        }
        let colon = memchr::memchr(b':', line.as_bytes()).ok_or(ParseError::HeaderSection)?;
        let name = line[..colon].trim_ascii_end();
        if name.is_empty() || !name.bytes().all(header::is_token_char) {
            return Err(Fault::Bad(ParseError::HeaderSection));
        }
        push_header(&mut headers, name, line[colon + 1..].trim_ascii());
    }
    let headers = Headers::from(headers);
    Ok(match start {
        Start::Request(method, uri) => SipMessage::Request(Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }),
        Start::Response(status_code) => SipMessage::Response(Response {
            status_code,
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }),
    })
}

/// The lines of a header section, CR LF stripped; a bare LF (or bare CR)
/// sends the section to the slow path (or refuses it).
struct Lines<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<&'a str, Fault>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let bytes = self.rest.as_bytes();
        let Some(at) = memchr::memchr2(b'\r', b'\n', bytes) else {
            let line = self.rest;
            self.rest = "";
            return Some(Ok(line));
        };
        if bytes[at] == b'\n' {
            return Some(Err(Fault::Irregular));
        }
        match bytes.get(at + 1) {
            Some(b'\n') => {
                let line = &self.rest[..at];
                self.rest = &self.rest[at + 2..];
                Some(Ok(line))
            }
            _ => Some(Err(Fault::Bad(ParseError::HeaderSection))),
        }
    }
}

enum Start {
    Request(Method, Uri),
    Response(StatusCode),
}

/// The Request-Line (§7.1) or Status-Line (§7.2).
fn start_line(line: &str) -> Result<Start, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let Some(rest) = rest.strip_prefix("2.0 ") else {
            return Err(ParseError::Version);
        };
        let (code, reason) = match header::find(rest, b' ') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) || code.starts_with('0') {
            return Err(ParseError::StartLine);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::StartLine)?;
        // A code rsip names keeps its standard phrase (as rsip's own parser
        // did); any other keeps the phrase received.
        let status = match StatusCode::from(code) {
            StatusCode::Other(..) => StatusCode::Other(code, reason.to_owned()),
            known => known,
        };
        return Ok(Start::Response(status));
    }
    let sp1 = header::find(line, b' ').ok_or(ParseError::StartLine)?;
    let sp2 = header::find(&line[sp1 + 1..], b' ').ok_or(ParseError::StartLine)? + sp1 + 1;
    let (method, uri, version) = (&line[..sp1], &line[sp1 + 1..sp2], &line[sp2 + 1..]);
    if header::find(version, b' ').is_some()
        || method.is_empty()
        || !method.bytes().all(header::is_token_char)
    {
        return Err(ParseError::StartLine);
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(if version.starts_with("SIP/") {
            ParseError::Version
        } else {
            ParseError::StartLine
        });
    }
    if uri.is_empty() || memchr::memchr2(b'<', b'>', uri.as_bytes()).is_some() {
        return Err(ParseError::RequestUri);
    }
    let scheme = &uri[..header::find(uri, b':').ok_or(ParseError::RequestUri)?];
    if !["sip", "sips", "tel"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
    {
        return Err(ParseError::UriScheme);
    }
    let uri = crate::uri::parse(uri).map_err(|_| ParseError::RequestUri)?;
    Ok(Start::Request(method_of(method), uri))
}

/// A method token (case-sensitive, §7.1): the ones rsip names, any other
/// as `Method::Other` (answered 501 by a UAS that does not implement it).
pub fn method_of(token: &str) -> Method {
    match token {
        "INVITE" => Method::Invite,
        "ACK" => Method::Ack,
        "BYE" => Method::Bye,
        "CANCEL" => Method::Cancel,
        "OPTIONS" => Method::Options,
        "REGISTER" => Method::Register,
        "PRACK" => Method::PRack,
        "UPDATE" => Method::Update,
        "INFO" => Method::Info,
        "REFER" => Method::Refer,
        "NOTIFY" => Method::Notify,
        "SUBSCRIBE" => Method::Subscribe,
        "MESSAGE" => Method::Message,
        "PUBLISH" => Method::Publish,
        other => Method::Other(other.to_owned()),
    }
}

/// Adds one header line: its name matched (long or compact form, any case)
/// to rsip's typed variant without allocating, a comma-joined
/// Via/Route/Record-Route/Contact split into one header per value.
fn push_header(out: &mut Vec<Header>, name: &str, value: &str) {
    let mut lower = [0u8; 20];
    let n = name.len();
    if n > lower.len() {
        out.push(Header::Other(name.to_owned(), value.to_owned()));
        return;
    }
    for (d, s) in lower.iter_mut().zip(name.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    let v = || value.to_owned();
    let h = match &lower[..n] {
        b"via" | b"v" => return split_into(out, value, |s| Header::Via(s.into())),
        b"route" => return split_into(out, value, |s| Header::Route(s.into())),
        b"record-route" => return split_into(out, value, |s| Header::RecordRoute(s.into())),
        b"contact" | b"m" if value != "*" => {
            return split_into(out, value, |s| Header::Contact(s.into()));
        }
        b"contact" | b"m" => Header::Contact(v().into()),
        b"from" | b"f" => Header::From(v().into()),
        b"to" | b"t" => Header::To(v().into()),
        b"call-id" | b"i" => Header::CallId(v().into()),
        b"cseq" => Header::CSeq(v().into()),
        b"max-forwards" => Header::MaxForwards(v().into()),
        b"content-length" | b"l" => Header::ContentLength(v().into()),
        b"content-type" | b"c" => Header::ContentType(v().into()),
        b"content-encoding" | b"e" => Header::ContentEncoding(v().into()),
        b"supported" | b"k" => Header::Supported(v().into()),
        b"subject" | b"s" => Header::Subject(v().into()),
        b"event" | b"o" => Header::Event(v().into()),
        b"allow" => Header::Allow(v().into()),
        b"require" => Header::Require(v().into()),
        b"proxy-require" => Header::ProxyRequire(v().into()),
        b"unsupported" => Header::Unsupported(v().into()),
        b"user-agent" => Header::UserAgent(v().into()),
        b"server" => Header::Server(v().into()),
        b"expires" => Header::Expires(v().into()),
        b"min-expires" => Header::MinExpires(v().into()),
        b"authorization" => Header::Authorization(v().into()),
        b"proxy-authorization" => Header::ProxyAuthorization(v().into()),
        b"www-authenticate" => Header::WwwAuthenticate(v().into()),
        b"proxy-authenticate" => Header::ProxyAuthenticate(v().into()),
        b"authentication-info" => Header::AuthenticationInfo(v().into()),
        b"accept" => Header::Accept(v().into()),
        b"accept-encoding" => Header::AcceptEncoding(v().into()),
        b"accept-language" => Header::AcceptLanguage(v().into()),
        b"alert-info" => Header::AlertInfo(v().into()),
        b"call-info" => Header::CallInfo(v().into()),
        b"content-disposition" => Header::ContentDisposition(v().into()),
        b"content-language" => Header::ContentLanguage(v().into()),
        b"date" => Header::Date(v().into()),
        b"error-info" => Header::ErrorInfo(v().into()),
        b"in-reply-to" => Header::InReplyTo(v().into()),
        b"mime-version" => Header::MimeVersion(v().into()),
        b"organization" => Header::Organization(v().into()),
        b"priority" => Header::Priority(v().into()),
        b"reply-to" => Header::ReplyTo(v().into()),
        b"retry-after" => Header::RetryAfter(v().into()),
        b"subscription-state" => Header::SubscriptionState(v().into()),
        b"timestamp" => Header::Timestamp(v().into()),
        b"warning" => Header::Warning(v().into()),
        // Compact forms of extensions (RFC 3515, RFC 3892, RFC 4028, RFC 6665).
        b"r" => Header::Other("Refer-To".into(), v()),
        b"b" => Header::Other("Referred-By".into(), v()),
        b"x" => Header::Other("Session-Expires".into(), v()),
        b"u" => Header::Other("Allow-Events".into(), v()),
        _ => Header::Other(name.to_owned(), v()),
    };
    out.push(h);
}

/// Pushes a multi-value header, one header per comma-separated value when
/// it has commas outside quotes and angle brackets (§7.3.1).
fn split_into(out: &mut Vec<Header>, value: &str, make: impl Fn(&str) -> Header) {
    if memchr::memchr(b',', value.as_bytes()).is_none() || !header::has_top_level_comma(value) {
        out.push(make(value));
        return;
    }
    for part in header::split_top_level_commas(value) {
        out.push(make(part));
    }
}

/// Finds the end of the header section: returns (end of last header line,
/// start of body). Accepts CRLFCRLF and, leniently, LFLF.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            let prev_cr = i > 0 && buf[i - 1] == b'\r';
            let line_end = if prev_cr { i - 1 } else { i };
            let next = i + 1;
            if buf.get(next) == Some(&b'\n') {
                return Some((line_end, next + 1));
            }
            if buf.get(next) == Some(&b'\r') && buf.get(next + 1) == Some(&b'\n') {
                return Some((line_end, next + 2));
            }
            if next == buf.len() {
                // Header section with no blank line: tolerated for bodiless UDP messages.
                return Some((line_end, next));
            }
        }
        i += 1;
    }
    None
}

/// Undoes line folding (§7.3.1) and turns bare LF line ends into CRLF,
/// borrowing when the header section needs neither.
fn normalise_head(head: &[u8]) -> Result<Cow<'_, [u8]>, ParseError> {
    let needs_work = head.windows(2).any(|w| {
        (w[0] == b'\n' && (w[1] == b' ' || w[1] == b'\t')) || (w[1] == b'\n' && w[0] != b'\r')
    }) || head.first() == Some(&b'\n');
    if !needs_work {
        return Ok(Cow::Borrowed(head));
    }
    let mut out = Vec::with_capacity(head.len());
    let mut i = 0;
    while i < head.len() {
        let b = head[i];
        if b == b'\r' && head.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        if b == b'\n' {
            if matches!(head.get(i + 1), Some(b' ' | b'\t')) {
                // Folded continuation: the line break and leading whitespace become one space.
                while out.last().is_some_and(|c: &u8| *c == b' ' || *c == b'\t') {
                    out.pop();
                }
                out.push(b' ');
                i += 1;
                while matches!(head.get(i), Some(b' ' | b'\t')) {
                    i += 1;
                }
                continue;
            }
            out.extend_from_slice(b"\r\n");
            i += 1;
            continue;
        }
        if b == b'\r' {
            return Err(ParseError::HeaderSection);
        }
        out.push(b);
        i += 1;
    }
    Ok(Cow::Owned(out))
}

/// A header that must appear once: not yet, once (its value), or more.
#[derive(Clone, Copy)]
enum Once<'a> {
    Absent,
    One(&'a str),
    Many,
}

impl<'a> Once<'a> {
    fn see(&mut self, v: &'a str) {
        *self = match self {
            Self::Absent => Self::One(v),
            _ => Self::Many,
        };
    }

    fn get(self, name: &'static str) -> Result<&'a str, ParseError> {
        match self {
            Self::Absent => Err(ParseError::MissingHeader(name)),
            Self::One(v) => Ok(v),
            Self::Many => Err(ParseError::DuplicateHeader(name)),
        }
    }
}

/// The headers every message needs, gathered in one pass over the list.
struct Seen<'a> {
    vias: usize,
    bad_via: bool,
    from: Once<'a>,
    to: Once<'a>,
    call_id: Once<'a>,
    cseq: Once<'a>,
    max_forwards: Option<&'a str>,
    content_length: Result<Option<usize>, ParseError>,
}

impl<'a> Seen<'a> {
    fn of(headers: &'a Headers) -> Self {
        let mut seen = Seen {
            vias: 0,
            bad_via: false,
            from: Once::Absent,
            to: Once::Absent,
            call_id: Once::Absent,
            cseq: Once::Absent,
            max_forwards: None,
            content_length: Ok(None),
        };
        for h in headers.iter() {
            match h {
                Header::Via(v) => {
                    seen.vias += 1;
                    seen.bad_via |= ViaRef::parse(v.value()).is_err();
                }
                Header::From(v) => seen.from.see(v.value()),
                Header::To(v) => seen.to.see(v.value()),
                Header::CallId(v) => seen.call_id.see(v.value()),
                Header::CSeq(v) => seen.cseq.see(v.value()),
                Header::MaxForwards(v) => {
                    seen.max_forwards = seen.max_forwards.or(Some(v.value()));
                }
                Header::ContentLength(v) => {
                    // Repeated with the same value is tolerated; differing is not.
                    let n = v.value().trim_ascii().parse::<usize>();
                    seen.content_length = match (seen.content_length, n) {
                        (Err(e), _) => Err(e),
                        (_, Err(_)) => Err(ParseError::BadHeader("Content-Length")),
                        (Ok(Some(f)), Ok(n)) if f != n => {
                            Err(ParseError::DuplicateHeader("Content-Length"))
                        }
                        (Ok(_), Ok(n)) => Ok(Some(n)),
                    };
                }
                _ => {}
            }
        }
        seen
    }

    /// The checks of §8.1.1 and §8.2.2, in the order they are reported.
    fn validate(&self, method: Option<&Method>) -> Result<(), ParseError> {
        if self.vias == 0 {
            return Err(ParseError::MissingHeader("Via"));
        }
        if self.bad_via {
            return Err(ParseError::BadHeader("Via"));
        }
        let from = self.from.get("From")?;
        header::NameAddr::parse(from).map_err(|_| ParseError::BadHeader("From"))?;
        let to = self.to.get("To")?;
        header::NameAddr::parse(to).map_err(|_| ParseError::BadHeader("To"))?;
        let call_id = self.call_id.get("Call-ID")?.trim_ascii();
        if call_id.is_empty() || call_id.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ParseError::BadHeader("Call-ID"));
        }
        let cseq = self.cseq.get("CSeq")?;
        let (_, cseq_method) = header::parse_cseq(cseq).ok_or(ParseError::BadHeader("CSeq"))?;
        if let Some(method) = method {
            // An extension method is let through to be answered 501, which
            // RFC 4475 §3.1.2.18 prefers to the 400 of the mismatch.
            if cseq_method != *method && !matches!(method, Method::Other(_)) {
                return Err(ParseError::CSeqMismatch);
            }
            if let Some(mf) = self.max_forwards {
                mf.trim_ascii()
                    .parse::<u8>()
                    .map_err(|_| ParseError::BadHeader("Max-Forwards"))?;
            }
        }
        Ok(())
    }
}

/// The value of any header, typed or not.
pub fn header_value(h: &Header) -> &str {
    match h {
        Header::Accept(v) => v.value(),
        Header::AcceptEncoding(v) => v.value(),
        Header::AcceptLanguage(v) => v.value(),
        Header::AlertInfo(v) => v.value(),
        Header::Allow(v) => v.value(),
        Header::AuthenticationInfo(v) => v.value(),
        Header::Authorization(v) => v.value(),
        Header::CSeq(v) => v.value(),
        Header::CallId(v) => v.value(),
        Header::CallInfo(v) => v.value(),
        Header::Contact(v) => v.value(),
        Header::ContentDisposition(v) => v.value(),
        Header::ContentEncoding(v) => v.value(),
        Header::ContentLanguage(v) => v.value(),
        Header::ContentLength(v) => v.value(),
        Header::ContentType(v) => v.value(),
        Header::Date(v) => v.value(),
        Header::ErrorInfo(v) => v.value(),
        Header::Event(v) => v.value(),
        Header::Expires(v) => v.value(),
        Header::From(v) => v.value(),
        Header::InReplyTo(v) => v.value(),
        Header::MaxForwards(v) => v.value(),
        Header::MimeVersion(v) => v.value(),
        Header::MinExpires(v) => v.value(),
        Header::Organization(v) => v.value(),
        Header::Other(_, v) => v,
        Header::Priority(v) => v.value(),
        Header::ProxyAuthenticate(v) => v.value(),
        Header::ProxyAuthorization(v) => v.value(),
        Header::ProxyRequire(v) => v.value(),
        Header::RecordRoute(v) => v.value(),
        Header::ReplyTo(v) => v.value(),
        Header::Require(v) => v.value(),
        Header::RetryAfter(v) => v.value(),
        Header::Route(v) => v.value(),
        Header::Server(v) => v.value(),
        Header::Subject(v) => v.value(),
        Header::SubscriptionState(v) => v.value(),
        Header::Supported(v) => v.value(),
        Header::Timestamp(v) => v.value(),
        Header::To(v) => v.value(),
        Header::Unsupported(v) => v.value(),
        Header::UserAgent(v) => v.value(),
        Header::Via(v) => v.value(),
        Header::Warning(v) => v.value(),
        Header::WwwAuthenticate(v) => v.value(),
    }
}

/// Read access to the headers Tandem's SIP layers rely on.
pub trait HeadersExt {
    /// The first header matching `pred`, as its value.
    fn value_of(&self, pred: impl Fn(&Header) -> bool) -> Option<&str>;
    /// The value of the first header with this (full, case-insensitive) name.
    fn named(&self, name: &str) -> Option<&str>;
    /// The topmost Via, parsed.
    fn top_via(&self) -> Option<Result<ViaRef<'_>, header::HeaderError>>;
    /// Call-ID.
    fn call_id(&self) -> Option<&str>;
    /// CSeq number and method.
    fn cseq(&self) -> Option<(u32, Method)>;
    /// The tag parameter of From.
    #[allow(clippy::wrong_self_convention)] // the From header's tag, not a conversion
    fn from_tag(&self) -> Option<&str>;
    /// The tag parameter of To.
    fn to_tag(&self) -> Option<&str>;
}

impl HeadersExt for Headers {
    fn value_of(&self, pred: impl Fn(&Header) -> bool) -> Option<&str> {
        self.iter().find(|h| pred(h)).map(header_value)
    }

    fn named(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|h| header_name(h).eq_ignore_ascii_case(name))
            .map(header_value)
    }

    fn top_via(&self) -> Option<Result<ViaRef<'_>, header::HeaderError>> {
        self.value_of(|h| matches!(h, Header::Via(_)))
            .map(ViaRef::parse)
    }

    fn call_id(&self) -> Option<&str> {
        self.value_of(|h| matches!(h, Header::CallId(_)))
            .map(str::trim)
    }

    fn cseq(&self) -> Option<(u32, Method)> {
        let v = self.value_of(|h| matches!(h, Header::CSeq(_)))?;
        header::parse_cseq(v)
    }

    fn from_tag(&self) -> Option<&str> {
        let v = self.value_of(|h| matches!(h, Header::From(_)))?;
        header::NameAddr::parse(v).ok()?.tag()
    }

    fn to_tag(&self) -> Option<&str> {
        let v = self.value_of(|h| matches!(h, Header::To(_)))?;
        header::NameAddr::parse(v).ok()?.tag()
    }
}

/// The option tags a request's `Require` headers name that are not in
/// `supported` (RFC 3261 §8.2.2.3: the request is answered 420 with them
/// in `Unsupported`). Tags compare case-insensitively.
pub fn unsupported_requirements<'a>(headers: &'a Headers, supported: &[&str]) -> Vec<&'a str> {
    list_tokens(headers, |h| matches!(h, Header::Require(_)))
        .filter(|t| !t.is_empty() && !supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
        .collect()
}

/// The comma-separated tokens (trimmed) of every header `is` picks: the
/// methods of `Allow`, the option tags of `Supported` or `Require`.
pub fn list_tokens<'a>(
    headers: &'a Headers,
    is: impl Fn(&Header) -> bool + 'a,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |h| is(h))
        .flat_map(|h| header_value(h).split(','))
        .map(str::trim)
}

/// Whether the headers `is` picks list `token` (case-insensitive), e.g.
/// UPDATE in `Allow`, `100rel` in `Require`.
pub fn lists(headers: &Headers, is: impl Fn(&Header) -> bool, token: &str) -> bool {
    list_tokens(headers, is).any(|t| t.eq_ignore_ascii_case(token))
}

/// A header's canonical name as Tandem writes it.
pub fn header_name(h: &Header) -> &str {
    match h {
        Header::Accept(_) => "Accept",
        Header::AcceptEncoding(_) => "Accept-Encoding",
        Header::AcceptLanguage(_) => "Accept-Language",
        Header::AlertInfo(_) => "Alert-Info",
        Header::Allow(_) => "Allow",
        Header::AuthenticationInfo(_) => "Authentication-Info",
        Header::Authorization(_) => "Authorization",
        Header::CSeq(_) => "CSeq",
        Header::CallId(_) => "Call-ID",
        Header::CallInfo(_) => "Call-Info",
        Header::Contact(_) => "Contact",
        Header::ContentDisposition(_) => "Content-Disposition",
        Header::ContentEncoding(_) => "Content-Encoding",
        Header::ContentLanguage(_) => "Content-Language",
        Header::ContentLength(_) => "Content-Length",
        Header::ContentType(_) => "Content-Type",
        Header::Date(_) => "Date",
        Header::ErrorInfo(_) => "Error-Info",
        Header::Event(_) => "Event",
        Header::Expires(_) => "Expires",
        Header::From(_) => "From",
        Header::InReplyTo(_) => "In-Reply-To",
        Header::MaxForwards(_) => "Max-Forwards",
        Header::MimeVersion(_) => "MIME-Version",
        Header::MinExpires(_) => "Min-Expires",
        Header::Organization(_) => "Organization",
        Header::Other(name, _) => name,
        Header::Priority(_) => "Priority",
        Header::ProxyAuthenticate(_) => "Proxy-Authenticate",
        Header::ProxyAuthorization(_) => "Proxy-Authorization",
        Header::ProxyRequire(_) => "Proxy-Require",
        Header::RecordRoute(_) => "Record-Route",
        Header::ReplyTo(_) => "Reply-To",
        Header::Require(_) => "Require",
        Header::RetryAfter(_) => "Retry-After",
        Header::Route(_) => "Route",
        Header::Server(_) => "Server",
        Header::Subject(_) => "Subject",
        Header::SubscriptionState(_) => "Subscription-State",
        Header::Supported(_) => "Supported",
        Header::Timestamp(_) => "Timestamp",
        Header::To(_) => "To",
        Header::Unsupported(_) => "Unsupported",
        Header::UserAgent(_) => "User-Agent",
        Header::Via(_) => "Via",
        Header::Warning(_) => "Warning",
        Header::WwwAuthenticate(_) => "WWW-Authenticate",
    }
}

/// Accessors shared by requests and responses.
pub trait MessageExt {
    /// The headers.
    fn hdrs(&self) -> &Headers;
}

impl MessageExt for SipMessage {
    fn hdrs(&self) -> &Headers {
        self.headers()
    }
}
impl MessageExt for Request {
    fn hdrs(&self) -> &Headers {
        &self.headers
    }
}
impl MessageExt for Response {
    fn hdrs(&self) -> &Headers {
        &self.headers
    }
}

/// Serializes a message byte-exactly: start line, one line per header with
/// its canonical name, a Content-Length matching the body, the raw body.
pub fn to_bytes(msg: &SipMessage) -> Bytes {
    match msg {
        SipMessage::Request(r) => request_bytes(r),
        SipMessage::Response(r) => response_bytes(r),
    }
}

/// [`to_bytes`] of a request, without wrapping (or cloning) it.
pub fn request_bytes(r: &Request) -> Bytes {
    // The Request-URI's length is not known before it is written: room for
    // a long one (a longer one grows the buffer once).
    let mut s = String::with_capacity(wire_len(160, &r.headers, &r.body));
    let _ = write!(s, "{} {} SIP/2.0\r\n", r.method, r.uri);
    finish_bytes(s, &r.headers, &r.body)
}

/// [`to_bytes`] of a response, without wrapping (or cloning) it.
pub fn response_bytes(r: &Response) -> Bytes {
    let reason = reason_phrase(&r.status_code);
    let mut s = String::with_capacity(wire_len(16 + reason.len(), &r.headers, &r.body));
    let _ = write!(s, "SIP/2.0 {} {reason}\r\n", r.status_code.code());
    finish_bytes(s, &r.headers, &r.body)
}

/// The serialized size with `start` bytes for the start line: the buffer
/// is allocated once, and a response a transaction keeps for 32 s does not
/// carry a fixed slack with it.
fn wire_len(start: usize, headers: &Headers, body: &[u8]) -> usize {
    let heads: usize = headers
        .iter()
        .map(|h| header_name(h).len() + header_value(h).len() + 4)
        .sum();
    // "Content-Length: N\r\n\r\n"
    start + heads + 28 + body.len()
}

fn finish_bytes(mut s: String, headers: &Headers, body: &[u8]) -> Bytes {
    for h in headers.iter() {
        if matches!(h, Header::ContentLength(_)) {
            continue;
        }
        s.push_str(header_name(h));
        s.push_str(": ");
        s.push_str(header_value(h));
        s.push_str("\r\n");
    }
    let _ = write!(s, "Content-Length: {}\r\n\r\n", body.len());
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// The reason phrase of a status code (custom phrases survive via `Other`):
/// rsip names codes in CamelCase (`BusyHere`); on the wire they are spaced
/// as in RFC 3261 (`486 Busy Here`).
pub fn reason_phrase(code: &StatusCode) -> Cow<'static, str> {
    match code {
        StatusCode::Other(_, phrase) => Cow::Owned(phrase.clone()),
        // The phrases of nearly every message a call sends, without
        // formatting the code first (a test holds them equal to the rest).
        StatusCode::Trying => Cow::Borrowed("Trying"),
        StatusCode::Ringing => Cow::Borrowed("Ringing"),
        StatusCode::SessionProgress => Cow::Borrowed("Session Progress"),
        StatusCode::OK => Cow::Borrowed("OK"),
        StatusCode::RequestTerminated => Cow::Borrowed("Request Terminated"),
        other => Cow::Owned(spaced_name(other)),
    }
}

/// rsip's name of a code, spaced: a word starts where a capital follows a
/// small letter (`OK` stays whole).
fn spaced_name(code: &StatusCode) -> String {
    let text = code.to_string();
    let name = text.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
    if name.is_empty() {
        return "Unknown".to_owned();
    }
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_ascii_lowercase();
        out.push(c);
    }
    out
}

/// Builds a status code with a chosen reason phrase.
pub fn status(code: u16, reason: Option<&str>) -> StatusCode {
    match reason {
        Some(r) => StatusCode::Other(code, r.to_owned()),
        None => StatusCode::from(code),
    }
}

/// Builds the stateless error response to a request that failed to parse
/// (§8.2, §21.4.1), from its raw lines. Returns `None` when the message is a
/// response, an ACK, or lacks the Via, From, To, Call-ID or CSeq needed to
/// route and match an answer: such input is dropped.
pub fn error_response(raw: &[u8], err: &ParseError) -> Option<Bytes> {
    let text = std::str::from_utf8(raw).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.lines();
    let start = lines.next()?.trim();
    if start.starts_with("SIP/") || start.is_empty() {
        return None;
    }
    if start.split(' ').next()?.eq_ignore_ascii_case("ACK") {
        return None;
    }
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => vias.push(value),
            "from" | "f" => from = from.or(Some(value)),
            "to" | "t" => to = to.or(Some(value)),
            "call-id" | "i" => call_id = call_id.or(Some(value)),
            "cseq" => cseq = cseq.or(Some(value)),
            _ => {}
        }
    }
    // Via routes the answer; the rest is copied when present (RFC 4475 §3.1.2.15:
    // even a request missing From, To and Call-ID deserves its 400).
    if vias.is_empty() {
        return None;
    }
    let (code, reason) = err.response_status();
    let mut s = String::with_capacity(256 + head.len());
    let _ = write!(s, "SIP/2.0 {code} {reason}\r\n");
    for v in vias {
        let _ = write!(s, "Via: {v}\r\n");
    }
    if let Some(from) = from {
        let _ = write!(s, "From: {from}\r\n");
    }
    if let Some(to) = to {
        let has_tag = header::NameAddr::parse(to)
            .ok()
            .and_then(|n| n.tag())
            .is_some();
        if has_tag {
            let _ = write!(s, "To: {to}\r\n");
        } else {
            let seed = call_id.unwrap_or(start);
            let tag = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            let _ = write!(s, "To: {to};tag={tag:016x}\r\n");
        }
    }
    if let Some(call_id) = call_id {
        let _ = write!(s, "Call-ID: {call_id}\r\n");
    }
    if let Some(cseq) = cseq {
        let _ = write!(s, "CSeq: {cseq}\r\n");
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    Some(Bytes::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn reason_phrases_are_spaced_words() {
        // The short cuts say what the general rule says.
        for code in [100, 180, 183, 200, 487] {
            let sc = StatusCode::from(code);
            assert_eq!(reason_phrase(&sc), spaced_name(&sc), "{code}");
        }
        let phrase = |c: u16| reason_phrase(&StatusCode::from(c)).into_owned();
        assert_eq!(phrase(183), "Session Progress");
        assert_eq!(phrase(486), "Busy Here");
        assert_eq!(phrase(503), "Service Unavailable");
        assert_eq!(phrase(200), "OK");
        assert_eq!(
            reason_phrase(&StatusCode::Other(599, "Custom Thing".into())),
            "Custom Thing"
        );
    }

    #[test]
    fn serialized_messages_fill_their_buffer() {
        let mut r = request("Max-Forwards: 70\r\n");
        r.body = b"v=0\r\n".to_vec();
        let bytes = request_bytes(&r);
        assert_eq!(bytes, to_bytes(&SipMessage::Request(r.clone())));
        let SipMessage::Request(back) = parse(&bytes).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(back.body, r.body);
        assert_eq!(request_bytes(&back), bytes);
        let resp = crate::builder::response_to(&r, 200, None, Some("t"));
        let bytes = response_bytes(&resp);
        assert!(bytes.starts_with(b"SIP/2.0 200 OK\r\n"), "{bytes:?}");
        // Sized up front, and closely: a kept response holds little more
        // than itself.
        let room = wire_len(16 + 2, &resp.headers, &resp.body);
        assert!(
            (bytes.len()..bytes.len() + 48).contains(&room),
            "{room} for {}",
            bytes.len()
        );
    }

    /// The patched rsip (vendor/rsip/PATCHES.md): any token is a method,
    /// case-sensitively; an IPv6 host prints as an IPv6 reference.
    #[test]
    fn extension_methods_and_ipv6_hosts_survive_rsip() {
        assert_eq!("INVITE".parse::<Method>().ok(), Some(Method::Invite));
        assert_eq!(
            "invite".parse::<Method>().ok(),
            Some(Method::Other("invite".into()))
        );
        assert_eq!(method_of("PRACK"), Method::PRack);
        assert_eq!(method_of("FOO").to_string(), "FOO");
        assert_eq!(Method::PRack.to_string(), "PRACK");
        assert!("FO O".parse::<Method>().is_err());
        let host = rsip::HostWithPort::try_from("[2001:db8::1]:5070").unwrap();
        assert_eq!(host.to_string(), "[2001:db8::1]:5070");
        let bare = rsip::HostWithPort::try_from("2001:db8::1").unwrap();
        assert_eq!(bare.to_string(), "[2001:db8::1]");
        // A request with an extension method parses; its CSeq must agree.
        let text = "FOO sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\n\
             CSeq: 1 FOO\r\nContent-Length: 0\r\n\r\n";
        let SipMessage::Request(r) = parse(text.as_bytes()).unwrap() else {
            panic!("a request")
        };
        assert_eq!(r.method, Method::Other("FOO".into()));
        // A mismatching CSeq is a 400 for a known method; an extension
        // method is let through to be answered 501 (RFC 4475 §3.1.2.18).
        let odd = text.replace("CSeq: 1 FOO", "CSeq: 1 INVITE");
        assert!(parse(odd.as_bytes()).is_ok());
        let bad = odd.replace("FOO sip:", "BYE sip:");
        assert_eq!(parse(bad.as_bytes()).err(), Some(ParseError::CSeqMismatch));
    }

    #[test]
    fn requirements_outside_the_supported_options_are_named() {
        let none = request("");
        assert!(unsupported_requirements(&none.headers, &["replaces"]).is_empty());
        let ok = request("Require: Replaces\r\n");
        assert!(unsupported_requirements(&ok.headers, &["replaces"]).is_empty());
        let two = request("Require: 100rel, replaces\r\nRequire: timer\r\n");
        assert_eq!(
            unsupported_requirements(&two.headers, &["replaces"]),
            ["100rel", "timer"]
        );
    }
}
