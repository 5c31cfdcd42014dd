//! Zero-copy readers for the header values the SIP layers inspect on every
//! message (RFC 3261 §20, §25.1): Via (§20.42, RFC 3581 rport), name-addr
//! with tag (From/To/Contact/Route), CSeq, and comma splitting that respects
//! quotes and angle brackets (§7.3.1).

use rsip::Method;

/// A header value that does not follow its grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The Via sent-protocol is not `SIP/2.0/<transport>`.
    #[error("malformed Via sent-protocol")]
    ViaProtocol,
    /// The Via sent-by host or port is unreadable.
    #[error("malformed Via sent-by")]
    ViaSentBy,
    /// A name-addr has unbalanced quotes or angle brackets, or no URI.
    #[error("malformed name-addr")]
    NameAddr,
}

/// A 256-entry table of the bytes that are ASCII alphanumerics or in
/// `extra`: one load per byte where the parser classifies characters.
pub(crate) const fn byte_class(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
}

static TOKEN: [bool; 256] = byte_class(b"-.!%*_+`'~");

/// `token` characters (§25.1).
pub fn is_token_char(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Whether `value` holds a comma outside quotes and angle brackets.
pub fn has_top_level_comma(value: &str) -> bool {
    split_top_level_commas(value).nth(1).is_some()
}

/// Splits a header value at commas outside quoted strings and `<...>`.
pub fn split_top_level_commas(value: &str) -> impl Iterator<Item = &str> {
    let bytes = value.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut quoted = false;
    let mut angle = false;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b',' if !quoted && !angle => {
                    let part = value[start..i].trim_ascii();
                    i += 1;
                    start = i;
                    return Some(part);
                }
                _ => {}
            }
            i += 1;
        }
        done = true;
        Some(value[start.min(value.len())..].trim_ascii())
    })
    .filter(|s| !s.is_empty())
}

/// The first `b` in `s` (memchr: the parser's hottest search).
pub(crate) fn find(s: &str, b: u8) -> Option<usize> {
    memchr::memchr(b, s.as_bytes())
}

/// Iterates `;name=value` parameters (value optional), trimmed.
pub fn params(s: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    // Everything before the first ';' is not a parameter.
    let mut rest = find(s, b';').map(|i| &s[i + 1..]);
    std::iter::from_fn(move || {
        loop {
            let cur = rest?;
            let p = match find(cur, b';') {
                Some(i) => {
                    rest = Some(&cur[i + 1..]);
                    &cur[..i]
                }
                None => {
                    rest = None;
                    cur
                }
            };
            let p = p.trim_ascii();
            if p.is_empty() {
                continue;
            }
            return Some(match find(p, b'=') {
                Some(i) => (
                    p[..i].trim_ascii(),
                    Some(p[i + 1..].trim_ascii().trim_matches('"')),
                ),
                None => (p, None),
            });
        }
    })
}

/// A parsed Via value, borrowing from the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaRef<'a> {
    /// Transport token as written (`UDP`, `TCP`, ...).
    pub transport: &'a str,
    /// sent-by host (IPv6 without brackets).
    pub host: &'a str,
    /// sent-by port, if given.
    pub port: Option<u16>,
    /// The branch parameter.
    pub branch: Option<&'a str>,
    /// `rport` present (RFC 3581), with its value if filled in.
    pub rport: Option<Option<u16>>,
    /// The received parameter.
    pub received: Option<&'a str>,
    /// The maddr parameter.
    pub maddr: Option<&'a str>,
}

impl<'a> ViaRef<'a> {
    /// Parses `SIP / 2.0 / UDP host:port;params` (LWS allowed around `/`).
    pub fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let value = value.trim_ascii();
        let (proto, rest) = via_protocol(value)?;
        if !proto[0].eq_ignore_ascii_case("SIP")
            || proto[1] != "2.0"
            || proto[2].is_empty()
            || !proto[2].bytes().all(is_token_char)
        {
            return Err(HeaderError::ViaProtocol);
        }
        let (sent_by, params_str) = match find(rest, b';') {
            Some(i) => (rest[..i].trim_ascii(), &rest[i..]),
            None => (rest.trim_ascii(), ""),
        };
        let (host, port) = split_host_port(sent_by).ok_or(HeaderError::ViaSentBy)?;
        let mut via = ViaRef {
            transport: proto[2],
            host,
            port,
            branch: None,
            rport: None,
            received: None,
            maddr: None,
        };
        for (k, v) in params(params_str) {
            if k.eq_ignore_ascii_case("branch") {
                via.branch = v;
            } else if k.eq_ignore_ascii_case("rport") {
                via.rport = Some(v.and_then(|v| v.parse().ok()));
            } else if k.eq_ignore_ascii_case("received") {
                via.received = v;
            } else if k.eq_ignore_ascii_case("maddr") {
                via.maddr = v;
            }
        }
        Ok(via)
    }

    /// Whether the branch carries the RFC 3261 magic cookie.
    pub fn is_rfc3261(&self) -> bool {
        self.branch.is_some_and(|b| b.starts_with("z9hG4bK"))
    }
}

/// The three parts of a Via's sent-protocol and what follows them.
fn via_protocol(value: &str) -> Result<([&str; 3], &str), HeaderError> {
    // The common form first: `SIP/2.0/UDP host`, no LWS around the slashes.
    if let Some(after) = value.strip_prefix("SIP/2.0/")
        && let Some(sp) = after.find([' ', '\t'])
        && !after[..sp].contains('/')
    {
        return Ok((["SIP", "2.0", &after[..sp]], after[sp..].trim_ascii_start()));
    }
    let mut rest = value;
    let mut proto = [""; 3];
    for (n, slot) in proto.iter_mut().enumerate() {
        rest = rest.trim_ascii_start();
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(rest.len());
        *slot = &rest[..end];
        rest = rest[end..].trim_ascii_start();
        if n < 2 {
            rest = rest.strip_prefix('/').ok_or(HeaderError::ViaProtocol)?;
        }
    }
    Ok((proto, rest))
}

/// Splits `host[:port]` or `[v6][:port]`.
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim_ascii();
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = find(rest, b']')?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.trim_ascii().parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    let (host, port) = match memchr::memrchr(b':', s.as_bytes()) {
        Some(i) => (
            s[..i].trim_ascii(),
            Some(s[i + 1..].trim_ascii().parse().ok()?),
        ),
        None => (s, None),
    };
    if host.is_empty()
        || host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b':')
    {
        return None;
    }
    Some((host, port))
}

/// A name-addr or addr-spec (From, To, Contact, Route), borrowing from the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name, unquoted, if any.
    pub display: Option<&'a str>,
    /// The URI without the angle brackets.
    pub uri: &'a str,
    /// Header parameters after the URI (`;tag=...;expires=...`), with leading `;`.
    pub params: &'a str,
}

impl<'a> NameAddr<'a> {
    /// Parses `"Name" <uri>;params`, `Name <uri>;params` or `uri;params`.
    pub fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let v = value.trim_ascii();
        if let Some(lt) = find_unquoted(v, b'<') {
            let gt = find(&v[lt..], b'>').ok_or(HeaderError::NameAddr)? + lt;
            let display = v[..lt].trim_ascii();
            let display = display
                .strip_prefix('"')
                .and_then(|d| d.strip_suffix('"'))
                .unwrap_or(display);
            if !quotes_balanced(&v[..lt]) {
                return Err(HeaderError::NameAddr);
            }
            let uri = v[lt + 1..gt].trim_ascii();
            if uri.is_empty() || find(uri, b':').is_none() {
                return Err(HeaderError::NameAddr);
            }
            Ok(NameAddr {
                display: (!display.is_empty()).then_some(display),
                uri,
                params: v[gt + 1..].trim_ascii(),
            })
        } else {
            if memchr::memchr2(b'"', b'>', v.as_bytes()).is_some() {
                return Err(HeaderError::NameAddr);
            }
            // addr-spec: header params start at the first ';' (§20.10).
            let (uri, params) = match find(v, b';') {
                Some(i) => (v[..i].trim_ascii_end(), &v[i..]),
                None => (v, ""),
            };
            if uri.is_empty()
                || find(uri, b':').is_none()
                || uri.bytes().any(|b| b.is_ascii_whitespace())
            {
                return Err(HeaderError::NameAddr);
            }
            Ok(NameAddr {
                display: None,
                uri,
                params,
            })
        }
    }

    /// The tag parameter.
    pub fn tag(&self) -> Option<&'a str> {
        self.param("tag").flatten()
    }

    /// A header parameter by name: `Some(None)` when present without value.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        params(self.params)
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Whether every quoted string is closed, honouring `\\` escapes.
fn quotes_balanced(s: &str) -> bool {
    let mut quoted = false;
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        match b {
            b'\\' if quoted => {
                it.next();
            }
            b'"' => quoted = !quoted,
            _ => {}
        }
    }
    !quoted
}

fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let mut quoted = false;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            c if c == needle && !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Parses a CSeq value: `number method`.
pub fn parse_cseq(v: &str) -> Option<(u32, Method)> {
    let mut it = v.split_whitespace();
    let num: u32 = it.next()?.parse().ok()?;
    let method = it.next()?;
    if it.next().is_some() || num >= 1 << 31 || !method.bytes().all(is_token_char) {
        return None;
    }
    Some((num, crate::message::method_of(method)))
}

/// The host and port of a SIP URI (`sip:user@host:port;params`).
pub fn uri_host_port(uri: &str) -> Option<(&str, Option<u16>)> {
    let rest = uri.split_once(':')?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    split_host_port(&rest[..end])
}

/// A URI parameter (`;transport=tcp`) of a SIP URI.
pub fn uri_param<'a>(uri: &'a str, name: &str) -> Option<Option<&'a str>> {
    let rest = uri.rsplit_once('@').map_or(uri, |(_, h)| h);
    let rest = rest.split('?').next().unwrap_or(rest);
    params(rest)
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_and_params() {
        let v = ViaRef::parse(
            "SIP / 2.0 / UDP 192.0.2.1:5060 ;branch=z9hG4bK1;rport;received=10.0.0.1",
        )
        .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.1");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch, Some("z9hG4bK1"));
        assert_eq!(v.rport, Some(None));
        assert_eq!(v.received, Some("10.0.0.1"));
        assert!(v.is_rfc3261());
    }

    #[test]
    fn via_ipv6_and_rejects() {
        let v = ViaRef::parse("SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bKx").unwrap();
        assert_eq!((v.host, v.port), ("2001:db8::9", Some(5070)));
        assert!(ViaRef::parse("SIP/3.0/UDP h").is_err());
        assert!(ViaRef::parse("SIP/2.0/UDP").is_err());
        assert!(ViaRef::parse("SIP/2.0/UDP h:99999").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse("\"A, B\" <sip:a@b;lr>;tag=xyz").unwrap();
        assert_eq!(n.display, Some("A, B"));
        assert_eq!(n.uri, "sip:a@b;lr");
        assert_eq!(n.tag(), Some("xyz"));
        let n = NameAddr::parse("sip:a@b;tag=1").unwrap();
        assert_eq!((n.uri, n.tag()), ("sip:a@b", Some("1")));
        assert!(NameAddr::parse("\"unbalanced <sip:a@b>").is_err());
        assert!(NameAddr::parse("<sip:a@b").is_err());
    }

    #[test]
    fn comma_split_respects_quotes_and_brackets() {
        let parts: Vec<_> =
            split_top_level_commas("\"x,y\" <sip:a@b;p=1,2>, <sip:c@d>,sip:e@f").collect();
        assert_eq!(
            parts,
            vec!["\"x,y\" <sip:a@b;p=1,2>", "<sip:c@d>", "sip:e@f"]
        );
        assert!(!has_top_level_comma("<sip:a,b@c>"));
    }

    #[test]
    fn cseq_and_uri_helpers() {
        assert_eq!(parse_cseq("  42  INVITE "), Some((42, Method::Invite)));
        assert_eq!(parse_cseq("x INVITE"), None);
        assert_eq!(parse_cseq("4294967295 INVITE"), None);
        assert_eq!(
            uri_host_port("sip:bob@[::1]:5062;transport=tcp"),
            Some(("::1", Some(5062)))
        );
        assert_eq!(
            uri_param("sip:bob@h;transport=tcp?x=y", "transport"),
            Some(Some("tcp"))
        );
    }
}
