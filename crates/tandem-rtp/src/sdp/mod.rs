//! SDP session descriptions (RFC 4566): the typed model, the printer, and
//! typed accessors for the attributes a media relay needs (`rtpmap`, `fmtp`,
//! `ptime`, direction, `rtcp`). Parsing lives in `parse.rs`, offer/answer
//! (RFC 3264) in [`negotiate`].

mod error;
pub mod negotiate;
mod parse;

use std::fmt::{self, Write as _};
use std::net::IpAddr;

pub use error::SdpError;
pub use negotiate::{
    AnswerOptions, Codec, LocalMedia, MediaCapabilities, NegotiatedMedia, PayloadFormat,
    SdpSession, media_formats, negotiate_answer, rewrite_connection,
};

/// Largest SDP body accepted, in bytes. Real bodies are well under 4 KiB.
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// Most `m=` sections accepted in one description.
pub const MAX_MEDIA: usize = 32;
/// Most lines accepted in one description.
pub const MAX_LINES: usize = 1024;

/// One parsed session description.
///
/// Fields keep the order of RFC 4566 §5; the printer writes them back in that
/// order with CRLF line ends, so `parse(print(x)) == x`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionDescription {
    /// `o=`
    pub origin: Origin,
    /// `s=` (a single space when the sender had nothing to say)
    pub session_name: String,
    /// `i=`
    pub info: Option<String>,
    /// `u=`
    pub uri: Option<String>,
    /// `e=` lines
    pub emails: Vec<String>,
    /// `p=` lines
    pub phones: Vec<String>,
    /// Session-level `c=`
    pub connection: Option<Connection>,
    /// Session-level `b=` lines
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines, each with its `r=` lines (`t=0 0` when the sender
    /// omitted it; the printer writes `t=0 0` for an empty list).
    pub timing: Vec<Timing>,
    /// `z=`
    pub time_zones: Option<String>,
    /// Session-level `k=`
    pub key: Option<String>,
    /// Session-level `a=` lines
    pub attributes: Vec<Attribute>,
    /// `m=` sections, in order
    pub media: Vec<MediaDescription>,
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `-` when the sender has no user name.
    pub username: String,
    /// Opaque numeric string; kept as text because some senders exceed 64 bits.
    pub session_id: String,
    /// Incremented by the sender each time the description changes.
    pub session_version: u64,
    /// Address family of `address`.
    pub addr_type: AddrType,
    /// Unicast address or host name of the originator.
    pub address: String,
}

/// `IP4` or `IP6` (the network type is always `IN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`
    Ip4,
    /// `IP6`
    Ip6,
}

impl AddrType {
    /// The SDP token.
    pub fn as_str(self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }

    /// The family of an IP address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }
}

/// A `c=` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    /// Address family.
    pub addr_type: AddrType,
    /// The address as written (an IP literal, rarely a host name).
    pub address: String,
    /// Multicast `/ttl[/count]` suffix, kept verbatim (without the first `/`).
    pub suffix: Option<String>,
}

impl Connection {
    /// A unicast connection line for `ip`.
    pub fn new(ip: IpAddr) -> Self {
        Connection {
            addr_type: AddrType::of(ip),
            address: ip.to_string(),
            suffix: None,
        }
    }

    /// The address as an IP, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// `c=0.0.0.0` (or `::`): the RFC 2543 way to put a stream on hold.
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// A `b=<type>:<kbps>` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bandwidth {
    /// `AS`, `CT`, `TIAS`, ...
    pub kind: String,
    /// The value.
    pub value: u64,
}

/// A `t=` line and its `r=` lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timing {
    /// Start time (NTP seconds, 0 = unbounded).
    pub start: u64,
    /// Stop time (NTP seconds, 0 = unbounded).
    pub stop: u64,
    /// `r=` lines, verbatim.
    pub repeats: Vec<String>,
}

/// An `a=` line: `a=name` or `a=name:value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// Attribute name (case kept as written).
    pub name: String,
    /// Value after the first `:`, if any.
    pub value: Option<String>,
}

impl Attribute {
    /// `a=name`
    pub fn flag(name: &str) -> Self {
        Attribute {
            name: name.to_owned(),
            value: None,
        }
    }

    /// `a=name:value`
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Attribute {
            name: name.to_owned(),
            value: Some(value.into()),
        }
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaDescription {
    /// `audio`, `video`, `image`, ...
    pub media: String,
    /// Transport port; 0 means the stream is rejected or disabled.
    pub port: u16,
    /// `/<number of ports>`, when written.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/AVPF`, `RTP/SAVP`, `udptl`, ...
    pub proto: String,
    /// Format list (payload type numbers for RTP), as written.
    pub formats: Vec<String>,
    /// `i=`
    pub info: Option<String>,
    /// Media-level `c=` lines.
    pub connections: Vec<Connection>,
    /// Media-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// Media-level `k=`.
    pub key: Option<String>,
    /// Media-level `a=` lines.
    pub attributes: Vec<Attribute>,
}

/// Stream direction attribute (RFC 3264 §5.1, §8.4), as written by the side
/// that wrote the description: `sendonly` means "I will only send".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Both ways (the default when no attribute is present).
    #[default]
    SendRecv,
    /// The writer only sends (it puts the other side on hold).
    SendOnly,
    /// The writer only receives.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parse an attribute name.
    pub fn from_attr(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// The direction seen from the other side (`sendonly` <-> `recvonly`).
    pub fn reversed(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Does the writer send media?
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Does the writer receive media?
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// Build from the two flags.
    pub fn from_flags(sends: bool, receives: bool) -> Self {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpMap<'a> {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written (compare case-insensitively).
    pub encoding: &'a str,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count (1 when omitted).
    pub channels: u8,
}

impl RtpMap<'_> {
    fn parse(value: &str) -> Option<RtpMap<'_>> {
        let (pt, rest) = value.split_once(' ')?;
        let pt = parse_pt(pt)?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next().filter(|e| !e.is_empty())?;
        let clock_rate = parts.next()?.trim().parse().ok()?;
        let channels = match parts.next() {
            Some(c) => c.trim().parse().ok()?,
            None => 1,
        };
        Some(RtpMap {
            pt,
            encoding,
            clock_rate,
            channels,
        })
    }
}

/// Parse an RTP payload type number (0..=127).
pub(crate) fn parse_pt(s: &str) -> Option<u8> {
    let v: u8 = s.trim().parse().ok()?;
    (v < 128).then_some(v)
}

impl MediaDescription {
    /// The first attribute named `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// The value of the first attribute named `name`.
    pub fn attribute_value(&self, name: &str) -> Option<&str> {
        self.attribute(name).and_then(|a| a.value.as_deref())
    }

    /// Is this an RTP stream (`RTP/AVP`, `RTP/AVPF`, `RTP/SAVP`, ...)?
    pub fn is_rtp(&self) -> bool {
        self.proto.starts_with("RTP/")
    }

    /// The payload type numbers of an RTP stream; non-numeric formats skipped.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| parse_pt(f))
    }

    /// The `rtpmap` for payload type `pt`.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap<'_>> {
        self.attributes
            .iter()
            .filter(|a| a.name == "rtpmap")
            .filter_map(|a| RtpMap::parse(a.value.as_deref()?))
            .find(|m| m.pt == pt)
    }

    /// The `fmtp` parameters for payload type `pt`.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes
            .iter()
            .filter(|a| a.name == "fmtp")
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let (p, rest) = v.split_once(' ')?;
                (parse_pt(p)? == pt).then(|| rest.trim())
            })
    }

    /// `a=ptime` in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        let v: u32 = self.attribute_value("ptime")?.trim().parse().ok()?;
        (1..=1000).contains(&v).then_some(v)
    }

    /// The direction attribute written at media level, if any.
    pub fn own_direction(&self) -> Option<Direction> {
        self.attributes
            .iter()
            .rev()
            .find_map(|a| Direction::from_attr(&a.name))
    }

    /// `a=rtcp:<port> [IN IP4 <addr>]` (RFC 3605).
    pub fn rtcp(&self) -> Option<(u16, Option<IpAddr>)> {
        let v = self.attribute_value("rtcp")?;
        let mut it = v.split_ascii_whitespace();
        let port = it.next()?.parse().ok()?;
        let addr = match (it.next(), it.next(), it.next()) {
            (Some("IN"), Some(_), Some(a)) => a.parse().ok(),
            _ => None,
        };
        Some((port, addr))
    }

    /// Remove every attribute for which `drop` is true.
    pub fn remove_attributes(&mut self, mut drop: impl FnMut(&Attribute) -> bool) {
        self.attributes.retain(|a| !drop(a));
    }

    /// Replace (or add) the direction attribute.
    pub fn set_direction(&mut self, dir: Direction) {
        self.remove_attributes(|a| Direction::from_attr(&a.name).is_some());
        self.attributes.push(Attribute::flag(dir.as_str()));
    }
}

impl SessionDescription {
    /// Parse a body (UTF-8 text, CRLF or LF line ends). Never panics.
    pub fn parse(input: &[u8]) -> Result<Self, SdpError> {
        parse::parse(input)
    }

    /// Session-level direction attribute, if any.
    pub fn session_direction(&self) -> Option<Direction> {
        self.attributes
            .iter()
            .rev()
            .find_map(|a| Direction::from_attr(&a.name))
    }

    /// Effective direction of media section `idx`: media-level attribute,
    /// else session-level, else `sendrecv` (RFC 3264 §5.1).
    pub fn media_direction(&self, idx: usize) -> Direction {
        self.media
            .get(idx)
            .and_then(|m| m.own_direction())
            .or_else(|| self.session_direction())
            .unwrap_or_default()
    }

    /// Effective connection of media section `idx` (media-level, else
    /// session-level).
    pub fn media_connection(&self, idx: usize) -> Option<&Connection> {
        self.media
            .get(idx)
            .and_then(|m| m.connections.first())
            .or(self.connection.as_ref())
    }

    /// Index of the first `audio` section carried over RTP with a non-zero port.
    pub fn first_audio(&self) -> Option<usize> {
        self.media
            .iter()
            .position(|m| m.media.eq_ignore_ascii_case("audio") && m.is_rtp() && m.port != 0)
    }

    /// Is media section `idx` on hold from the writer's side: `sendonly`,
    /// `inactive`, or the old `c=0.0.0.0`?
    pub fn is_hold(&self, idx: usize) -> bool {
        !self.media_direction(idx).receives()
            || self
                .media_connection(idx)
                .is_some_and(|c| c.is_unspecified())
    }

    /// The body as bytes (what goes in a SIP message).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl std::str::FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, SdpError> {
        parse::parse(s.as_bytes())
    }
}

fn write_connection(f: &mut fmt::Formatter<'_>, c: &Connection) -> fmt::Result {
    write!(f, "c=IN {} {}", c.addr_type.as_str(), c.address)?;
    if let Some(s) = &c.suffix {
        write!(f, "/{s}")?;
    }
    f.write_str("\r\n")
}

fn write_attributes(f: &mut fmt::Formatter<'_>, attrs: &[Attribute]) -> fmt::Result {
    for a in attrs {
        match &a.value {
            Some(v) => write!(f, "a={}:{}\r\n", a.name, v)?,
            None => write!(f, "a={}\r\n", a.name)?,
        }
    }
    Ok(())
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        f.write_str("v=0\r\n")?;
        write!(
            f,
            "o={} {} {} IN {} {}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            o.addr_type.as_str(),
            o.address
        )?;
        let name = if self.session_name.is_empty() {
            " "
        } else {
            &self.session_name
        };
        write!(f, "s={name}\r\n")?;
        if let Some(i) = &self.info {
            write!(f, "i={i}\r\n")?;
        }
        if let Some(u) = &self.uri {
            write!(f, "u={u}\r\n")?;
        }
        for e in &self.emails {
            write!(f, "e={e}\r\n")?;
        }
        for p in &self.phones {
            write!(f, "p={p}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write_connection(f, c)?;
        }
        for b in &self.bandwidths {
            write!(f, "b={}:{}\r\n", b.kind, b.value)?;
        }
        if self.timing.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        for t in &self.timing {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        if let Some(z) = &self.time_zones {
            write!(f, "z={z}\r\n")?;
        }
        if let Some(k) = &self.key {
            write!(f, "k={k}\r\n")?;
        }
        write_attributes(f, &self.attributes)?;
        for m in &self.media {
            write!(f, "m={} {}", m.media, m.port)?;
            if let Some(n) = m.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", m.proto)?;
            for fmt_ in &m.formats {
                f.write_char(' ')?;
                f.write_str(fmt_)?;
            }
            f.write_str("\r\n")?;
            if let Some(i) = &m.info {
                write!(f, "i={i}\r\n")?;
            }
            for c in &m.connections {
                write_connection(f, c)?;
            }
            for b in &m.bandwidths {
                write!(f, "b={}:{}\r\n", b.kind, b.value)?;
            }
            if let Some(k) = &m.key {
                write!(f, "k={k}\r\n")?;
            }
            write_attributes(f, &m.attributes)?;
        }
        Ok(())
    }
}
