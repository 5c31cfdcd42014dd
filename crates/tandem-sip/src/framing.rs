//! Stream framing for SIP over TCP (RFC 3261 §18.3): messages are delimited
//! by the blank line and Content-Length, which is mandatory on streams.
//! CRLF keep-alives (RFC 5626 §3.5.1) between messages are skipped.

use bytes::{Buf, Bytes, BytesMut};

use crate::message::MAX_MESSAGE_SIZE;

/// Why a stream cannot be framed any further; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A header section ended without a Content-Length header.
    #[error("stream message without Content-Length")]
    MissingContentLength,
    /// Content-Length is not a number, or two disagree.
    #[error("malformed Content-Length on stream")]
    BadContentLength,
    /// The message exceeds the size limit.
    #[error("stream message exceeds {MAX_MESSAGE_SIZE} bytes")]
    TooLarge,
}

/// Accumulates stream bytes and yields complete messages.
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
    /// Number of CRLF keep-alive pings seen (a pong is owed for each double CRLF).
    pings: usize,
}

impl Framer {
    /// A framer with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The buffer to read into directly (avoids a copy).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Takes the count of double-CRLF pings received since the last call.
    pub fn take_pings(&mut self) -> usize {
        std::mem::take(&mut self.pings)
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        // Skip keep-alive CRLFs between messages.
        loop {
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.advance(4);
                self.pings += 1;
            } else if self.buf.starts_with(b"\r\n") && self.buf.len() >= 4 {
                self.buf.advance(2);
            } else if self.buf.starts_with(b"\r\n") {
                return Ok(None);
            } else {
                break;
            }
        }
        let Some(head_end) = find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > MAX_MESSAGE_SIZE {
                return Err(FrameError::TooLarge);
            }
            return Ok(None);
        };
        let len = content_length(&self.buf[..head_end])?;
        let total = head_end + 4 + len;
        if total > MAX_MESSAGE_SIZE {
            return Err(FrameError::TooLarge);
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some(self.buf.split_to(total).freeze()))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let v = std::str::from_utf8(trim(&line[colon + 1..]))
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(FrameError::BadContentLength)?;
            if found.is_some_and(|f| f != v) {
                return Err(FrameError::BadContentLength);
            }
            found = Some(v);
        }
    }
    found.ok_or(FrameError::MissingContentLength)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\nVia: x\r\n\r\nhello";

    #[test]
    fn frames_split_and_joined_messages() {
        let mut f = Framer::new();
        f.push(&MSG[..10]);
        assert_eq!(f.next_message().unwrap(), None);
        f.push(&MSG[10..]);
        f.push(b"\r\n\r\n");
        f.push(MSG);
        assert_eq!(f.next_message().unwrap().as_deref(), Some(MSG));
        assert_eq!(f.next_message().unwrap().as_deref(), Some(MSG));
        assert_eq!(f.take_pings(), 1);
        assert_eq!(f.next_message().unwrap(), None);
    }

    #[test]
    fn missing_or_bad_length_is_fatal() {
        let mut f = Framer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_message(), Err(FrameError::MissingContentLength));
        let mut f = Framer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(f.next_message(), Err(FrameError::BadContentLength));
        let mut f = Framer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n");
        assert_eq!(f.next_message(), Err(FrameError::TooLarge));
    }

    #[test]
    fn lying_length_waits_then_frames_next_bytes() {
        // A Content-Length longer than what was sent keeps the framer waiting:
        // the peer's next bytes are taken as body, as RFC 3261 §18.3 implies.
        let mut f = Framer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 4\r\n\r\nab");
        assert_eq!(f.next_message().unwrap(), None);
    }
}
