//! Allocation-free access to the RTP fixed header (RFC 3550 §5.1) and the
//! RTCP common header (§6.4), read and rewritten in place.

/// Length of the RTP fixed header.
pub const RTP_HEADER_LEN: usize = 12;

/// The fixed-header fields the relay uses, read from a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (0..=127).
    pub pt: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Offset of the payload (after CSRCs and header extension).
    pub payload_offset: usize,
    /// Payload length (without padding).
    pub payload_len: usize,
}

impl RtpHeader {
    /// Parse a packet's header; `None` if it is not RTP version 2 or is
    /// truncated.
    #[inline]
    pub fn parse(p: &[u8]) -> Option<RtpHeader> {
        if p.len() < RTP_HEADER_LEN || p[0] >> 6 != 2 {
            return None;
        }
        let cc = (p[0] & 0x0f) as usize;
        let mut off = RTP_HEADER_LEN + 4 * cc;
        if p[0] & 0x10 != 0 {
            let ext = p.get(off + 2..off + 4)?;
            off += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
        }
        let mut end = p.len();
        if p[0] & 0x20 != 0 {
            end = end.checked_sub(*p.last()? as usize)?;
        }
        if off > end {
            return None;
        }
        Some(RtpHeader {
            marker: p[1] & 0x80 != 0,
            pt: p[1] & 0x7f,
            seq: u16::from_be_bytes([p[2], p[3]]),
            ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
            payload_offset: off,
            payload_len: end - off,
        })
    }
}

/// Rewrite marker, payload type, sequence, timestamp and SSRC in place.
/// `p` must hold at least [`RTP_HEADER_LEN`] bytes (checked by the caller
/// through [`RtpHeader::parse`]).
#[inline]
pub fn rewrite(p: &mut [u8], marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    p[1] = (u8::from(marker) << 7) | (pt & 0x7f);
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Write a plain 12-byte header (no CSRC, no extension) in `p[..12]`.
#[inline]
pub fn write_header(p: &mut [u8], marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    p[0] = 0x80;
    rewrite(p, marker, pt, seq, ts, ssrc);
}

/// Is this an RTCP packet (version 2, packet type SR..APP, RFC 5761 §4)?
#[inline]
pub fn is_rtcp(p: &[u8]) -> bool {
    p.len() >= 8 && p[0] >> 6 == 2 && (200..=204).contains(&p[1])
}

/// Replace the sender SSRC of the first RTCP packet of a compound packet.
#[inline]
pub fn rewrite_rtcp_sender(p: &mut [u8], ssrc: u32) {
    if is_rtcp(p) {
        p[4..8].copy_from_slice(&ssrc.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_rewrite_round_trip() {
        let mut p = [0u8; 172];
        write_header(&mut p, true, 8, 65535, 0xdead_beef, 42);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(
            (h.marker, h.pt, h.seq, h.ts, h.ssrc),
            (true, 8, 65535, 0xdead_beef, 42)
        );
        assert_eq!((h.payload_offset, h.payload_len), (12, 160));
        rewrite(&mut p, false, 101, 1, 2, 3);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!((h.marker, h.pt, h.seq, h.ts, h.ssrc), (false, 101, 1, 2, 3));
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut p = vec![0x80 | 0x20 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        p.extend_from_slice(&[9, 9, 9, 9]); // CSRC
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // one-word extension
        p.extend_from_slice(&[7; 10]); // payload
        p.extend_from_slice(&[0, 0, 3]); // padding
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!((h.payload_offset, h.payload_len), (24, 10));
    }

    #[test]
    fn junk_is_not_rtp() {
        assert!(RtpHeader::parse(&[0x80; 11]).is_none());
        assert!(RtpHeader::parse(&[0x40; 20]).is_none());
        // Extension longer than the packet.
        let mut p = [0u8; 16];
        p[0] = 0x90;
        p[14] = 0xff;
        assert!(RtpHeader::parse(&p).is_none());
        // Padding longer than the packet.
        let mut p = [0u8; 13];
        p[0] = 0xa0;
        p[12] = 200;
        assert!(RtpHeader::parse(&p).is_none());
        assert!(is_rtcp(&[0x80, 200, 0, 6, 1, 2, 3, 4]));
        assert!(!is_rtcp(&[0x80, 0, 0, 6, 1, 2, 3, 4]));
    }
}
