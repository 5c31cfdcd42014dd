//! A trunk's `proxy`: a `sip:`/`sips:` URI (RFC 3261 §19.1.1) reduced to
//! what routing needs: host, port and transport.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// A validated proxy URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipProxy {
    /// The URI as written (use it as the Request-URI host part source or Route).
    pub uri: String,
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// User part, if any (`sip:gateway@host`).
    pub user: Option<String>,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Explicit port, if any.
    pub port: Option<u16>,
    /// Transport: the `;transport=` parameter, else UDP for `sip:` and TCP for `sips:`.
    pub transport: ProxyTransport,
}

/// The transport a proxy is reached over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyTransport {
    /// UDP (the default for `sip:`).
    Udp,
    /// TCP (`;transport=tcp`).
    Tcp,
    /// TLS (`;transport=tls`, and the only transport of `sips:`).
    Tls,
}

impl fmt::Display for ProxyTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        })
    }
}

impl SipProxy {
    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The explicit port, else 5060 (`sip:`) or 5061 (`sips:`).
    pub fn port_or_default(&self) -> u16 {
        self.port
            .unwrap_or(if self.transport == ProxyTransport::Tls {
                5061
            } else {
                5060
            })
    }

    /// Parses a proxy URI; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            Err(format!(
                "{s:?} is not a sip: or sips: URI with a host ({why})"
            ))
        };
        let Some((scheme, rest)) = s.split_once(':') else {
            return bad("no scheme");
        };
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "sip" => false,
            "sips" => true,
            _ => return bad("the scheme must be sip or sips"),
        };
        if rest.contains('?') {
            return bad("URI headers are not allowed");
        }
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("it contains a space or control character");
        }
        let (userhost, params) = rest.split_once(';').unwrap_or((rest, ""));
        let (user, hostport) = match userhost.rsplit_once('@') {
            Some(("", _)) => return bad("empty user part"),
            Some((user, hostport)) => (Some(user.to_owned()), hostport),
            None => (None, userhost),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let Some((addr, after)) = v6.split_once(']') else {
                return bad("unclosed [");
            };
            if addr.parse::<Ipv6Addr>().is_err() {
                return bad("bad IPv6 address");
            }
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return bad("junk after ]"),
                },
            };
            (addr, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return bad("no host");
        }
        if !hostport.starts_with('[') && !is_hostname(host) {
            return bad("bad host");
        }
        let port = match port {
            None => None,
            Some(p) => match parse_port(p) {
                Some(p) => Some(p),
                None => return bad("the port must be 1 to 65535"),
            },
        };
        let mut transport = if secure {
            ProxyTransport::Tls
        } else {
            ProxyTransport::Udp
        };
        for param in params.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.is_empty() {
                return bad("empty parameter name");
            }
            if name.eq_ignore_ascii_case("transport") {
                transport = match value.to_ascii_lowercase().as_str() {
                    "udp" if !secure => ProxyTransport::Udp,
                    "tcp" if !secure => ProxyTransport::Tcp,
                    "tls" => ProxyTransport::Tls,
                    _ => return bad("transport must be udp, tcp or tls (tls for sips)"),
                };
            }
        }
        Ok(Self {
            uri: s.to_owned(),
            secure,
            user,
            host: host.to_owned(),
            port,
            transport,
        })
    }
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok().filter(|&p| p != 0)
}

/// An IPv4 address or a DNS name (letters, digits, `-` and `.`).
fn is_hostname(h: &str) -> bool {
    h.len() <= 253
        && h.split('.').enumerate().all(|(i, label)| {
            // A fully qualified name may end with one dot.
            (label.is_empty() && i > 0 && h.ends_with('.') && h.len() > 1)
                || (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-'))
        })
        && !h.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_uris_parse_host_port_and_transport() {
        let p = SipProxy::parse("sip:127.0.0.1:5090").expect("valid");
        assert_eq!(
            (p.host.as_str(), p.port, p.transport),
            ("127.0.0.1", Some(5090), ProxyTransport::Udp)
        );
        assert!(!p.secure);
        let p = SipProxy::parse("sip:gw@carrier.example;transport=TCP;lr").expect("valid");
        assert_eq!(p.user.as_deref(), Some("gw"));
        assert_eq!(
            (p.host.as_str(), p.port_or_default(), p.transport),
            ("carrier.example", 5060, ProxyTransport::Tcp)
        );
        let p = SipProxy::parse("sips:[2001:db8::1]:5061").expect("valid");
        assert!(p.secure);
        assert_eq!(p.ip(), Some("2001:db8::1".parse().expect("ip")));
        assert_eq!(p.transport, ProxyTransport::Tls);
        let p = SipProxy::parse("sip:carrier.example;transport=tls").expect("valid");
        assert_eq!(
            (p.transport, p.port_or_default()),
            (ProxyTransport::Tls, 5061)
        );
        assert!(SipProxy::parse("sips:carrier.example;transport=tcp").is_err());
        assert!(SipProxy::parse("SIP:sbc.example.com.").is_ok());
    }

    #[test]
    fn malformed_proxy_uris_are_rejected() {
        for bad in [
            "",
            "127.0.0.1:5090",
            "http://x",
            "tel:+15550001000",
            "sip:",
            "sip:@host",
            "sip:host:0",
            "sip:host:99999",
            "sip:host:",
            "sip:[::1",
            "sip:[nope]",
            "sip:ho st",
            "sip:host?x=y",
            "sip:host;transport=sctp",
            "sips:host;transport=udp",
            "sip:-bad-.example",
            "sip:a..b",
            "sip:user@",
            "sip:host;=x",
        ] {
            assert!(SipProxy::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
