//! SIP, SIPS and other URIs (RFC 3261 §19.1, §25.1) parsed by hand into
//! rsip's [`Uri`]: one pass over the text, no parser combinators, one
//! `String` per part kept.
//!
//! rsip's own URI tokenizer is not used on Tandem's paths: it stops a user
//! part at `.` or `;` (`sip:user;par=u%40example.net@example.com`, RFC 4475
//! §3.1.1.9), cannot read an IPv6 reference (`sip:[2001:db8::10]:5070`) and
//! builds a formatted error on every failed alternative. The user part and
//! parameter values are kept as received (escapes included), so a URI
//! prints back as it came.

use std::net::{IpAddr, Ipv6Addr};

use rsip::{Auth, Host, HostWithPort, Param, Scheme, Uri};

use crate::header::byte_class;

/// Why a URI does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// No `scheme:` prefix, or a scheme with characters outside RFC 3986's.
    #[error("missing or malformed URI scheme")]
    Scheme,
    /// The user part holds a character no SIP URI allows there.
    #[error("malformed URI user part")]
    User,
    /// Empty host, an unclosed or invalid IPv6 reference, or a character no
    /// host name allows.
    #[error("malformed URI host")]
    Host,
    /// A port that is not a number up to 65535.
    #[error("malformed URI port")]
    Port,
    /// An empty parameter name or a character no parameter allows.
    #[error("malformed URI parameter")]
    Param,
}

/// Parses a URI: `sip:` and `sips:` fully (user, password, host, port,
/// parameters; `?headers` are dropped, as rsip's `Uri` cannot hold them),
/// any other scheme (`tel:`, `urn:`) as its scheme and the rest as the
/// host, its `;` parameters split off.
pub fn parse(s: &str) -> Result<Uri, UriError> {
    let (scheme, rest) = s.split_once(':').ok_or(UriError::Scheme)?;
    let scheme = parse_scheme(scheme)?;
    if !matches!(scheme, Scheme::Sip | Scheme::Sips) {
        return parse_other(scheme, rest);
    }
    // '@' appears in no host, parameter or header, and raw in no user part:
    // the first one ends the userinfo.
    let (auth, rest) = match memchr::memchr(b'@', rest.as_bytes()) {
        Some(at) => (Some(parse_userinfo(&rest[..at])?), &rest[at + 1..]),
        None => (None, rest),
    };
    let rest = match memchr::memchr(b'?', rest.as_bytes()) {
        Some(q) => &rest[..q],
        None => rest,
    };
    let (host_port, params) = match memchr::memchr(b';', rest.as_bytes()) {
        Some(semi) => (&rest[..semi], Some(&rest[semi + 1..])),
        None => (rest, None),
    };
    Ok(Uri {
        scheme: Some(scheme),
        auth,
        host_with_port: parse_host_port(host_port)?,
        params: parse_params(params)?,
        headers: Vec::new(),
    })
}

fn parse_scheme(scheme: &str) -> Result<Scheme, UriError> {
    if scheme.eq_ignore_ascii_case("sip") {
        return Ok(Scheme::Sip);
    }
    if scheme.eq_ignore_ascii_case("sips") {
        return Ok(Scheme::Sips);
    }
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
        return Err(UriError::Scheme);
    }
    Ok(Scheme::Other(scheme.to_ascii_lowercase()))
}

/// `tel:+1-555-0100;phone-context=example.com`: the subscriber part as the
/// host, parameters as for SIP URIs.
fn parse_other(scheme: Scheme, rest: &str) -> Result<Uri, UriError> {
    let (body, params) = match memchr::memchr(b';', rest.as_bytes()) {
        Some(semi) => (&rest[..semi], Some(&rest[semi + 1..])),
        None => (rest, None),
    };
    if body.is_empty() || !body.bytes().all(is_uric) {
        return Err(UriError::Host);
    }
    Ok(Uri {
        scheme: Some(scheme),
        auth: None,
        host_with_port: HostWithPort {
            host: Host::Domain(body.into()),
            port: None,
        },
        params: parse_params(params)?,
        headers: Vec::new(),
    })
}

fn parse_userinfo(userinfo: &str) -> Result<Auth, UriError> {
    let (user, password) = match memchr::memchr(b':', userinfo.as_bytes()) {
        Some(colon) => (&userinfo[..colon], Some(&userinfo[colon + 1..])),
        None => (userinfo, None),
    };
    // RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved ),
    // password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," ).
    if user.is_empty() || !user.bytes().all(is_user_char) {
        return Err(UriError::User);
    }
    if let Some(p) = password
        && !p.bytes().all(is_user_char)
    {
        return Err(UriError::User);
    }
    Ok(Auth {
        user: user.to_owned(),
        password: password.map(str::to_owned),
    })
}

/// `host[:port]`, the host a name, an IPv4 address or an IPv6 reference.
pub(crate) fn parse_host_port(s: &str) -> Result<HostWithPort, UriError> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let close = memchr::memchr(b']', v6.as_bytes()).ok_or(UriError::Host)?;
        let ip: Ipv6Addr = v6[..close].parse().map_err(|_| UriError::Host)?;
        let after = &v6[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(UriError::Host),
        };
        (Host::IpAddr(IpAddr::V6(ip)), port)
    } else {
        let (name, port) = match memchr::memchr(b':', s.as_bytes()) {
            Some(colon) => (&s[..colon], Some(&s[colon + 1..])),
            None => (s, None),
        };
        if name.is_empty() || !name.bytes().all(|b| HOST[usize::from(b)]) {
            return Err(UriError::Host);
        }
        let host = match parse_ipv4(name) {
            Some(ip) => Host::IpAddr(ip),
            None => Host::Domain(name.into()),
        };
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(UriError::Port);
            }
            let n: u16 = p.parse().map_err(|_| UriError::Port)?;
            Some(n.into())
        }
    };
    Ok(HostWithPort { host, port })
}

fn parse_ipv4(name: &str) -> Option<IpAddr> {
    // A name whose last label starts with a digit can only be an address
    // (RFC 1123 §2.1 top labels are alphabetic): skip the parse otherwise.
    let last = name.rsplit('.').next()?;
    if !last.bytes().next()?.is_ascii_digit() {
        return None;
    }
    name.parse().ok()
}

/// The parameters after the first `;`, if there is one.
fn parse_params(s: Option<&str>) -> Result<Vec<Param>, UriError> {
    let Some(s) = s else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(2);
    for p in s.split(';') {
        let (name, value) = match memchr::memchr(b'=', p.as_bytes()) {
            Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
            None => (p, None),
        };
        if name.is_empty()
            || !name.bytes().all(is_param_char)
            || value.is_some_and(|v| !v.bytes().all(is_param_char))
        {
            return Err(UriError::Param);
        }
        out.push(param(name, value));
    }
    Ok(out)
}

/// One URI parameter as rsip types it; a value rsip cannot type (an
/// unknown transport, an extension method) stays an `Other` parameter.
pub(crate) fn param(name: &str, value: Option<&str>) -> Param {
    Param::try_from((name, value))
        .unwrap_or_else(|_| Param::Other(name.into(), value.map(Into::into)))
}

/// unreserved / escaped / user-unreserved (RFC 3261 §25.1) and '%' of an
/// escape (checked loosely: the octets are kept), plus the '#' that PBX
/// feature codes (`*97#`) carry unescaped in the wild.
static USER: [bool; 256] = byte_class(b"-_.!~*'()%&=+$,;?/#");
/// paramchar, and the '[' ']' ':' of IPv6 `maddr`/`received` values.
static PARAM: [bool; 256] = byte_class(b"-_.!~*'()%[]/:&+$");
/// A host name's characters (an IPv6 reference is read apart), with the
/// '_' that container and NetBIOS names carry although RFC 1123 has none.
static HOST: [bool; 256] = byte_class(b"-._");
/// RFC 3986 characters a URI body may hold (no space, quote, angle
/// bracket or control).
static URIC: [bool; 256] = byte_class(b"!#$%&'()*+,-./:;=?@[]_~");

fn is_user_char(b: u8) -> bool {
    USER[usize::from(b)]
}

fn is_param_char(b: u8) -> bool {
    PARAM[usize::from(b)]
}

fn is_uric(b: u8) -> bool {
    URIC[usize::from(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) -> String {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).to_string()
    }

    #[test]
    fn sip_uris_parse_into_their_parts_and_print_back() {
        let u = parse("sip:alice:secret@atlanta.example.com:5070;transport=tcp;lr").unwrap();
        assert_eq!(u.scheme, Some(Scheme::Sip));
        let auth = u.auth.as_ref().unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.password.as_deref()),
            ("alice", Some("secret"))
        );
        assert_eq!(u.host().to_string(), "atlanta.example.com");
        assert_eq!(u.port().map(|p| *p.value()), Some(5070));
        assert_eq!(u.transport(), Some(&rsip::Transport::Tcp));
        assert!(u.params.contains(&Param::Lr));
        for s in [
            "sip:john.doe@example.com",
            "sips:+15550001000@10.0.0.1:5061;user=phone",
            "sip:[2001:db8::10]:5070",
            "sip:[2001:db8::10]",
            "sip:user;par=u%40example.net@example.com",
            "sip:example.com;maddr=[2001:db8::1];x-foo",
            "sip:%61lice@example.com;method=FOO",
            "tel:+1-555-0100;phone-context=example.com",
            "urn:service:sos",
        ] {
            assert_eq!(round_trip(s), s);
        }
        let v6 = parse("sip:[2001:db8::10]:5070").unwrap();
        assert_eq!(
            v6.host(),
            &Host::IpAddr("2001:db8::10".parse::<IpAddr>().unwrap())
        );
        let semi = parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(semi.user(), Some("user;par=u%40example.net"));
        assert_eq!(semi.host().to_string(), "example.com");
    }

    #[test]
    fn headers_are_dropped_and_other_schemes_keep_their_body() {
        let u = parse("sip:bob@example.com;lr?Subject=hi").unwrap();
        assert_eq!(u.to_string(), "sip:bob@example.com;lr");
        let tel = parse("tel:+1-555-0100;phone-context=example.com").unwrap();
        assert_eq!(tel.scheme, Some(Scheme::Other("tel".into())));
        assert_eq!(tel.host().to_string(), "+1-555-0100");
        assert_eq!(tel.params.len(), 1);
    }

    #[test]
    fn malformed_uris_name_their_fault() {
        for (s, e) in [
            ("example.com", UriError::Scheme),
            ("1sip:a@b", UriError::Scheme),
            ("sip:", UriError::Host),
            ("sip:a@", UriError::Host),
            ("sip:@example.com", UriError::User),
            ("sip:a b@example.com", UriError::User),
            ("sip:[2001:db8::10", UriError::Host),
            ("sip:[2001:db8::zz]", UriError::Host),
            ("sip:[::1]x", UriError::Host),
            ("sip:example.com:", UriError::Port),
            ("sip:example.com:65536", UriError::Port),
            ("sip:example.com:5o60", UriError::Port),
            ("sip:exa mple.com", UriError::Host),
            ("sip:example.com;", UriError::Param),
            ("sip:example.com;a=b c", UriError::Param),
            ("tel:", UriError::Host),
        ] {
            assert_eq!(parse(s).err(), Some(e), "{s}");
        }
    }
}
