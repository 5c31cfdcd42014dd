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
///
/// Linear: the search for the blank line that ends a header section resumes
/// where the previous call stopped, and a found header section is parsed
/// once, so a message arriving a byte at a time costs about one scan of its
/// bytes, not one per byte received. Bytes may only be appended to
/// [`Framer::buffer_mut`].
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
    /// Number of CRLF keep-alive pings seen (a pong is owed for each double CRLF).
    pings: usize,
    /// No blank line (`\r\n\r\n`) starts before this offset of `buf`.
    scanned: usize,
    /// The size of the message at the front of `buf` (header section, blank
    /// line and body), once its header section is complete.
    frame_len: Option<usize>,
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

    /// Whether bytes of an incomplete message are buffered (the start of a
    /// keep-alive, up to three CR/LF bytes, does not count). Meaningful after
    /// [`Framer::next_message`] returned `Ok(None)`.
    pub fn in_message(&self) -> bool {
        self.buf.len() >= 4 || self.buf.iter().any(|&b| b != b'\r' && b != b'\n')
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    ///
    /// A header section longer than [`MAX_MESSAGE_SIZE`] without its blank
    /// line, or a message whose Content-Length takes it past that size, is
    /// [`FrameError::TooLarge`].
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() < self.scanned {
            // The buffer was not only appended to: start over.
            self.scanned = 0;
            self.frame_len = None;
        }
        if self.scanned == 0 && self.frame_len.is_none() {
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
        }
        let total = match self.frame_len {
            Some(total) => total,
            None => {
                let Some(head_end) = find(&self.buf[self.scanned..], b"\r\n\r\n") else {
                    if self.buf.len() > MAX_MESSAGE_SIZE {
                        return Err(FrameError::TooLarge);
                    }
                    // The last three bytes may begin a blank line.
                    self.scanned = self.buf.len().saturating_sub(3);
                    return Ok(None);
                };
                let head_end = self.scanned + head_end;
                let len = content_length(&self.buf[..head_end])?;
                let total = (head_end + 4).saturating_add(len);
                if total > MAX_MESSAGE_SIZE {
                    return Err(FrameError::TooLarge);
                }
                self.frame_len = Some(total);
                self.scanned = head_end;
                total
            }
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        self.scanned = 0;
        self.frame_len = None;
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

    /// A message of `head_len` header bytes (blank line included) and body "hello".
    fn big_message(head_len: usize) -> Vec<u8> {
        let start = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\nX-Pad: ";
        let mut m = start.to_vec();
        m.resize(head_len - 4, b'x');
        m.extend_from_slice(b"\r\n\r\nhello");
        m
    }

    #[test]
    fn a_60_kb_header_fed_a_byte_at_a_time_frames_in_linear_time() {
        let msg = big_message(60_000);
        let mut f = Framer::new();
        let started = std::time::Instant::now();
        for (i, &b) in msg.iter().enumerate() {
            f.push(&[b]);
            if i + 1 < msg.len() {
                assert_eq!(f.next_message(), Ok(None), "byte {i}");
                assert!(f.in_message());
            }
        }
        assert_eq!(f.next_message().unwrap().as_deref(), Some(&msg[..]));
        assert!(!f.in_message());
        // Rescanning the buffer from its start on every byte took ~1.8e9
        // comparisons here (tens of seconds in a debug build).
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // The framer is ready for the next message, keep-alives included.
        f.push(b"\r\n\r\n");
        f.push(&msg);
        assert_eq!(f.next_message().unwrap().as_deref(), Some(&msg[..]));
        assert_eq!(f.take_pings(), 1);
    }

    #[test]
    fn a_header_over_the_size_limit_is_fatal_as_soon_as_it_passes_it() {
        let msg = big_message(MAX_MESSAGE_SIZE + 100);
        let mut f = Framer::new();
        for (i, &b) in msg.iter().enumerate() {
            f.push(&[b]);
            let r = f.next_message();
            if i < MAX_MESSAGE_SIZE {
                assert_eq!(r, Ok(None), "byte {i}");
            } else {
                assert_eq!(r, Err(FrameError::TooLarge), "byte {i}");
                return;
            }
        }
        panic!("never refused");
    }

    #[test]
    fn a_body_trickled_after_its_header_frames_once_complete() {
        let mut f = Framer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\n");
        for &b in b"hell" {
            f.push(&[b]);
            assert_eq!(f.next_message(), Ok(None));
            assert!(f.in_message());
        }
        f.push(b"oOPT");
        assert_eq!(
            f.next_message().unwrap().as_deref(),
            Some(&b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello"[..])
        );
        assert_eq!(f.next_message(), Ok(None));
        assert!(f.in_message());
    }

    #[test]
    fn a_lone_keep_alive_crlf_is_not_a_partial_message() {
        let mut f = Framer::new();
        f.push(b"\r\n");
        assert_eq!(f.next_message(), Ok(None));
        assert!(!f.in_message());
        f.push(b"\r\n");
        assert_eq!(f.next_message(), Ok(None));
        assert_eq!(f.take_pings(), 1);
        assert!(!f.in_message());
    }
}
