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
    /// The method is not one Tandem knows (answered with 501, §8.2.1).
    #[error("unknown method")]
    UnknownMethod,
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
            Self::UnknownMethod => (501, Cow::Borrowed("Not Implemented")),
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
    let (head_end, body_start) = find_head_end(buf).ok_or(ParseError::HeaderSection)?;
    let head = normalise_head(&buf[..head_end])?;
    let body = &buf[body_start..];

    let first_line_end = head.iter().position(|&b| b == b'\r').unwrap_or(head.len());
    check_start_line(&head[..first_line_end])?;

    let mut raw = Vec::with_capacity(head.len() + 4 + body.len());
    tidy_header_lines(&head, &mut raw)?;
    raw.extend_from_slice(b"\r\n\r\n");
    let parsed = rsip::SipMessage::try_from(raw.as_slice()).map_err(|_| classify(&head))?;
    let mut msg = normalise_headers(parsed)?;

    let declared = content_length(&msg)?;
    let body = match declared {
        Some(n) if n > body.len() => {
            return Err(ParseError::ContentLengthTooLarge {
                declared: n,
                actual: body.len(),
            });
        }
        Some(n) => &body[..n],
        None => body,
    };
    *msg.body_mut() = body.to_vec();
    validate(&msg)?;
    Ok(msg)
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

/// Rewrites each header line as `Name: value`: whitespace around the colon
/// and at the ends of the value is legal (§7.3.1) but trips rsip.
fn tidy_header_lines(head: &[u8], out: &mut Vec<u8>) -> Result<(), ParseError> {
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    out.extend_from_slice(first.strip_suffix(b"\r").unwrap_or(first));
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(ParseError::HeaderSection)?;
        let name = line[..colon].trim_ascii();
        if name.is_empty() || !name.iter().all(|&b| header::is_token_char(b)) {
            return Err(ParseError::HeaderSection);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(line[colon + 1..].trim_ascii());
    }
    Ok(())
}

fn check_start_line(line: &[u8]) -> Result<(), ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::StartLine)?;
    if let Some(rest) = line.strip_prefix("SIP/") {
        if !rest.starts_with("2.0 ") {
            return Err(ParseError::Version);
        }
        let code = rest[4..].split(' ').next().unwrap_or("");
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) || code.starts_with('0') {
            return Err(ParseError::StartLine);
        }
        return Ok(());
    }
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("");
    let uri = parts.next().ok_or(ParseError::StartLine)?;
    let version = parts.next().ok_or(ParseError::StartLine)?;
    if parts.next().is_some() || method.is_empty() || !method.bytes().all(header::is_token_char) {
        return Err(ParseError::StartLine);
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(if version.starts_with("SIP/") {
            ParseError::Version
        } else {
            ParseError::StartLine
        });
    }
    if uri.is_empty() || uri.contains(['<', '>']) {
        return Err(ParseError::RequestUri);
    }
    let scheme = uri.split(':').next().unwrap_or("");
    if uri.len() == scheme.len() {
        return Err(ParseError::RequestUri);
    }
    if !["sip", "sips", "tel"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
    {
        return Err(ParseError::UriScheme);
    }
    if method.parse::<Method>().is_err() {
        return Err(ParseError::UnknownMethod);
    }
    Ok(())
}

/// Names the fault when rsip rejects a message whose start line looked fine.
fn classify(head: &[u8]) -> ParseError {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    if !first.starts_with("SIP/") {
        let uri = first.split(' ').nth(1).unwrap_or("");
        if rsip::Uri::try_from(uri).is_err() {
            return ParseError::RequestUri;
        }
    }
    for line in lines {
        let Some((name, _)) = line.split_once(':') else {
            return ParseError::HeaderSection;
        };
        if !name.trim_end().bytes().all(header::is_token_char) || name.trim_end().is_empty() {
            return ParseError::HeaderSection;
        }
    }
    ParseError::HeaderSection
}

/// Expands compact names and splits comma-joined multi-value headers.
fn normalise_headers(mut msg: SipMessage) -> Result<SipMessage, ParseError> {
    let needs = msg.headers().iter().any(|h| match h {
        Header::Other(name, _) => name.len() == 1,
        Header::Via(v) => header::has_top_level_comma(v.value()),
        Header::Route(v) => header::has_top_level_comma(v.value()),
        Header::RecordRoute(v) => header::has_top_level_comma(v.value()),
        Header::Contact(v) => header::has_top_level_comma(v.value()),
        _ => false,
    });
    if !needs {
        return Ok(msg);
    }
    let old: Vec<Header> = std::mem::take(msg.headers_mut()).into();
    let mut out = Vec::with_capacity(old.len() + 2);
    for h in old {
        let h = match h {
            Header::Other(name, value) if name.len() == 1 => expand_compact(name, value),
            other => other,
        };
        match &h {
            Header::Via(v) => split_into(&mut out, v.value(), |s| Header::Via(s.into())),
            Header::Route(v) => split_into(&mut out, v.value(), |s| Header::Route(s.into())),
            Header::RecordRoute(v) => {
                split_into(&mut out, v.value(), |s| Header::RecordRoute(s.into()))
            }
            Header::Contact(v) if v.value().trim() != "*" => {
                split_into(&mut out, v.value(), |s| Header::Contact(s.into()))
            }
            _ => out.push(h),
        }
    }
    *msg.headers_mut() = out.into();
    Ok(msg)
}

fn split_into(out: &mut Vec<Header>, value: &str, make: impl Fn(&str) -> Header) {
    for part in header::split_top_level_commas(value) {
        out.push(make(part));
    }
}

/// RFC 3261 §7.3.3 compact forms, plus the common extensions (RFC 3515 r,
/// RFC 3891/4028 and others listed by IANA).
fn expand_compact(name: String, value: String) -> Header {
    let v = value;
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'v' => Header::Via(v.into()),
        b'f' => Header::From(v.into()),
        b't' => Header::To(v.into()),
        b'i' => Header::CallId(v.into()),
        b'm' => Header::Contact(v.into()),
        b'l' => Header::ContentLength(v.into()),
        b'c' => Header::ContentType(v.into()),
        b'e' => Header::ContentEncoding(v.into()),
        b'k' => Header::Supported(v.into()),
        b's' => Header::Subject(v.into()),
        b'o' => Header::Event(v.into()),
        b'r' => Header::Other("Refer-To".into(), v),
        b'b' => Header::Other("Referred-By".into(), v),
        b'x' => Header::Other("Session-Expires".into(), v),
        b'u' => Header::Other("Allow-Events".into(), v),
        _ => Header::Other(name, v),
    }
}

fn content_length(msg: &SipMessage) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    for h in msg.headers().iter() {
        if let Header::ContentLength(v) = h {
            let n = v
                .value()
                .trim()
                .parse::<usize>()
                .map_err(|_| ParseError::BadHeader("Content-Length"))?;
            if found.is_some_and(|f| f != n) {
                return Err(ParseError::DuplicateHeader("Content-Length"));
            }
            found = Some(n);
        }
    }
    Ok(found)
}

fn validate(msg: &SipMessage) -> Result<(), ParseError> {
    let h = msg.headers();
    let mut vias = h.iter().filter(|h| matches!(h, Header::Via(_))).peekable();
    if vias.peek().is_none() {
        return Err(ParseError::MissingHeader("Via"));
    }
    for via in vias {
        ViaRef::parse(header_value(via)).map_err(|_| ParseError::BadHeader("Via"))?;
    }
    let from = single(h, "From", |h| matches!(h, Header::From(_)))?;
    header::NameAddr::parse(from).map_err(|_| ParseError::BadHeader("From"))?;
    let to = single(h, "To", |h| matches!(h, Header::To(_)))?;
    header::NameAddr::parse(to).map_err(|_| ParseError::BadHeader("To"))?;
    let call_id = single(h, "Call-ID", |h| matches!(h, Header::CallId(_)))?;
    if call_id.trim().is_empty() || call_id.trim().contains(char::is_whitespace) {
        return Err(ParseError::BadHeader("Call-ID"));
    }
    single(h, "CSeq", |h| matches!(h, Header::CSeq(_)))?;
    let (_, cseq_method) = h.cseq().ok_or(ParseError::BadHeader("CSeq"))?;
    if let SipMessage::Request(req) = msg {
        if cseq_method != req.method {
            return Err(ParseError::CSeqMismatch);
        }
        if let Some(mf) = h.value_of(|h| matches!(h, Header::MaxForwards(_))) {
            mf.trim()
                .parse::<u8>()
                .map_err(|_| ParseError::BadHeader("Max-Forwards"))?;
        }
    }
    Ok(())
}

fn single<'a>(
    h: &'a Headers,
    name: &'static str,
    pred: impl Fn(&Header) -> bool,
) -> Result<&'a str, ParseError> {
    let mut it = h.iter().filter(|h| pred(h));
    let first = it.next().ok_or(ParseError::MissingHeader(name))?;
    if it.next().is_some() {
        return Err(ParseError::DuplicateHeader(name));
    }
    Ok(header_value(first))
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
    let mut s = String::with_capacity(512 + msg.body().len());
    match msg {
        SipMessage::Request(r) => {
            let _ = write!(s, "{} {} SIP/2.0\r\n", r.method, r.uri);
        }
        SipMessage::Response(r) => {
            let _ = write!(
                s,
                "SIP/2.0 {} {}\r\n",
                r.status_code.code(),
                reason_phrase(&r.status_code)
            );
        }
    }
    for h in msg.headers().iter() {
        if matches!(h, Header::ContentLength(_)) {
            continue;
        }
        s.push_str(header_name(h));
        s.push_str(": ");
        s.push_str(header_value(h));
        s.push_str("\r\n");
    }
    let _ = write!(s, "Content-Length: {}\r\n\r\n", msg.body().len());
    let mut out = s.into_bytes();
    out.extend_from_slice(msg.body());
    Bytes::from(out)
}

/// The reason phrase of a status code (custom phrases survive via `Other`).
pub fn reason_phrase(code: &StatusCode) -> Cow<'static, str> {
    match code {
        StatusCode::Other(_, phrase) => Cow::Owned(phrase.clone()),
        other => {
            let text = other.to_string();
            match text.split_once(' ') {
                Some((_, phrase)) => Cow::Owned(phrase.to_owned()),
                None => Cow::Borrowed("Unknown"),
            }
        }
    }
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
