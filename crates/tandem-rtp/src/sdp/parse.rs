//! Hand-written SDP parser (RFC 4566 §5): one pass over the lines, no
//! backtracking, no panics. Lenient where real endpoints are sloppy (LF line
//! ends, blank lines, trailing spaces, a missing `t=`, unknown line letters),
//! strict where a wrong value would misroute media (addresses, ports, payload
//! types).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{
    AddrType, Attribute, Bandwidth, Connection, MAX_LINES, MAX_MEDIA, MAX_SDP_LEN,
    MediaDescription, Origin, SdpError, SessionDescription, Timing, parse_pt,
};

pub(super) fn parse(input: &[u8]) -> Result<SessionDescription, SdpError> {
    if input.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge);
    }
    let text = std::str::from_utf8(input).map_err(|_| SdpError::NotUtf8)?;
    if text.trim().is_empty() {
        return Err(SdpError::Empty);
    }

    let mut origin: Option<Origin> = None;
    let mut session_name: Option<String> = None;
    let mut sd = SessionDescription {
        origin: Origin {
            username: String::new(),
            session_id: String::new(),
            session_version: 0,
            addr_type: AddrType::Ip4,
            address: String::new(),
        },
        session_name: String::new(),
        info: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: None,
        bandwidths: Vec::new(),
        timing: Vec::new(),
        time_zones: None,
        key: None,
        attributes: Vec::new(),
        media: Vec::new(),
    };
    let mut seen_version = false;

    for (idx, raw) in text.split('\n').enumerate() {
        let n = idx + 1;
        if n > MAX_LINES {
            return Err(SdpError::TooLarge);
        }
        let line = raw.trim_end_matches(['\r', ' ', '\t']);
        if line.is_empty() {
            continue;
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_alphabetic() {
            return Err(SdpError::BadLine { line: n });
        }
        let kind = bytes[0] as char;
        // Byte 1 is '=', so index 2 is a char boundary.
        let value = &line[2..];

        if !seen_version {
            if kind != 'v' || value.trim() != "0" {
                return Err(SdpError::BadVersion { line: n });
            }
            seen_version = true;
            continue;
        }

        let unexpected = SdpError::Unexpected { line: n, kind };
        if let Some(m) = sd.media.last_mut() {
            match kind {
                'm' => {}
                'i' if m.info.is_none() => {
                    m.info = Some(value.to_owned());
                    continue;
                }
                'c' => {
                    m.connections.push(parse_connection(value, n)?);
                    continue;
                }
                'b' => {
                    m.bandwidths.push(parse_bandwidth(value, n)?);
                    continue;
                }
                'k' if m.key.is_none() => {
                    m.key = Some(value.to_owned());
                    continue;
                }
                'a' => {
                    m.attributes.push(parse_attribute(value, n)?);
                    continue;
                }
                'v' | 'o' | 's' | 'i' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' | 'k' => {
                    return Err(unexpected);
                }
                // Unknown letters are ignored (RFC 4566 §5 lets extensions add them).
                _ => continue,
            }
        }
        match kind {
            'o' if origin.is_none() => origin = Some(parse_origin(value, n)?),
            's' if session_name.is_none() => session_name = Some(value.to_owned()),
            'i' if sd.info.is_none() => sd.info = Some(value.to_owned()),
            'u' if sd.uri.is_none() => sd.uri = Some(value.to_owned()),
            'e' => sd.emails.push(value.to_owned()),
            'p' => sd.phones.push(value.to_owned()),
            'c' if sd.connection.is_none() => sd.connection = Some(parse_connection(value, n)?),
            'b' => sd.bandwidths.push(parse_bandwidth(value, n)?),
            't' => sd.timing.push(parse_timing(value, n)?),
            'r' => match sd.timing.last_mut() {
                Some(t) => t.repeats.push(value.to_owned()),
                None => return Err(unexpected),
            },
            'z' if sd.time_zones.is_none() => sd.time_zones = Some(value.to_owned()),
            'k' if sd.key.is_none() => sd.key = Some(value.to_owned()),
            'a' => sd.attributes.push(parse_attribute(value, n)?),
            'm' => {
                if sd.media.len() >= MAX_MEDIA {
                    return Err(SdpError::TooLarge);
                }
                sd.media.push(parse_media(value, n)?);
            }
            'v' | 'o' | 's' | 'i' | 'u' | 'c' | 'z' | 'k' => return Err(unexpected),
            _ => {}
        }
    }

    sd.origin = origin.ok_or(SdpError::Missing { kind: 'o' })?;
    sd.session_name = session_name.ok_or(SdpError::Missing { kind: 's' })?;
    if sd.timing.is_empty() {
        // Some endpoints omit t=; "0 0" (unbounded) is what they mean.
        sd.timing.push(Timing {
            start: 0,
            stop: 0,
            repeats: Vec::new(),
        });
    }
    for (i, m) in sd.media.iter().enumerate() {
        if m.is_rtp() && m.port != 0 && m.connections.is_empty() && sd.connection.is_none() {
            return Err(SdpError::MissingConnection { media: i });
        }
    }
    Ok(sd)
}

fn bad(line: usize, kind: char, field: &'static str) -> SdpError {
    SdpError::BadField { line, kind, field }
}

fn parse_addr_type(s: &str, line: usize, kind: char) -> Result<AddrType, SdpError> {
    match s {
        "IP4" => Ok(AddrType::Ip4),
        "IP6" => Ok(AddrType::Ip6),
        _ => Err(bad(line, kind, "address type")),
    }
}

/// An IP literal of the right family, or a plausible host name.
fn valid_address(addr: &str, ty: AddrType) -> bool {
    match ty {
        AddrType::Ip4 if addr.parse::<Ipv4Addr>().is_ok() => return true,
        AddrType::Ip6 if addr.parse::<Ipv6Addr>().is_ok() => return true,
        _ => {}
    }
    let host = !addr.is_empty()
        && addr.len() <= 253
        && addr
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && addr.bytes().any(|b| b.is_ascii_alphabetic());
    host && addr.parse::<Ipv4Addr>().is_err()
}

fn parse_origin(value: &str, line: usize) -> Result<Origin, SdpError> {
    let mut f = value.split_ascii_whitespace();
    let (Some(user), Some(id), Some(ver), Some(net), Some(ty), Some(addr), None) = (
        f.next(),
        f.next(),
        f.next(),
        f.next(),
        f.next(),
        f.next(),
        f.next(),
    ) else {
        return Err(bad(line, 'o', "field count"));
    };
    if net != "IN" {
        return Err(bad(line, 'o', "network type"));
    }
    let session_version = ver.parse().map_err(|_| bad(line, 'o', "session version"))?;
    if !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(line, 'o', "session id"));
    }
    let addr_type = parse_addr_type(ty, line, 'o')?;
    Ok(Origin {
        username: user.to_owned(),
        session_id: id.to_owned(),
        session_version,
        addr_type,
        address: addr.to_owned(),
    })
}

fn parse_connection(value: &str, line: usize) -> Result<Connection, SdpError> {
    let mut f = value.split_ascii_whitespace();
    let (Some(net), Some(ty), Some(addr), None) = (f.next(), f.next(), f.next(), f.next()) else {
        return Err(bad(line, 'c', "field count"));
    };
    if net != "IN" {
        return Err(bad(line, 'c', "network type"));
    }
    let addr_type = parse_addr_type(ty, line, 'c')?;
    let (address, suffix) = match addr.split_once('/') {
        Some((a, s)) => (a, Some(s.to_owned())),
        None => (addr, None),
    };
    if !valid_address(address, addr_type) {
        return Err(bad(line, 'c', "address"));
    }
    Ok(Connection {
        addr_type,
        address: address.to_owned(),
        suffix,
    })
}

fn parse_bandwidth(value: &str, line: usize) -> Result<Bandwidth, SdpError> {
    let (kind, v) = value.split_once(':').ok_or(bad(line, 'b', "format"))?;
    if kind.is_empty() {
        return Err(bad(line, 'b', "type"));
    }
    let value = v.trim().parse().map_err(|_| bad(line, 'b', "value"))?;
    Ok(Bandwidth {
        kind: kind.to_owned(),
        value,
    })
}

fn parse_timing(value: &str, line: usize) -> Result<Timing, SdpError> {
    let mut f = value.split_ascii_whitespace();
    let (Some(a), Some(b), None) = (f.next(), f.next(), f.next()) else {
        return Err(bad(line, 't', "field count"));
    };
    Ok(Timing {
        start: a.parse().map_err(|_| bad(line, 't', "start time"))?,
        stop: b.parse().map_err(|_| bad(line, 't', "stop time"))?,
        repeats: Vec::new(),
    })
}

fn parse_attribute(value: &str, line: usize) -> Result<Attribute, SdpError> {
    let (name, val) = match value.split_once(':') {
        Some((n, v)) => (n, Some(v.to_owned())),
        None => (value, None),
    };
    if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(bad(line, 'a', "attribute name"));
    }
    Ok(Attribute {
        name: name.to_owned(),
        value: val,
    })
}

fn parse_media(value: &str, line: usize) -> Result<MediaDescription, SdpError> {
    let mut f = value.split_ascii_whitespace();
    let (Some(media), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
        return Err(bad(line, 'm', "field count"));
    };
    let (port, port_count) = match port.split_once('/') {
        Some((p, c)) => (
            p,
            Some(c.parse().map_err(|_| bad(line, 'm', "port count"))?),
        ),
        None => (port, None),
    };
    let port: u16 = port.parse().map_err(|_| bad(line, 'm', "port"))?;
    let formats: Vec<String> = f.map(str::to_owned).collect();
    let is_rtp = proto.starts_with("RTP/");
    if formats.is_empty() && port != 0 {
        return Err(bad(line, 'm', "format list"));
    }
    if is_rtp && formats.iter().any(|p| parse_pt(p).is_none()) {
        return Err(bad(line, 'm', "payload type"));
    }
    Ok(MediaDescription {
        media: media.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats,
        info: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    })
}
