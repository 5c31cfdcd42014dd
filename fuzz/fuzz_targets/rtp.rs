//! The RTP fixed header (RFC 3550 §5.1) and RTCP common header parsers of
//! tandem-rtp, in-place rewriting, G.711 payload decoding, and RFC 4733
//! telephone-event decoding (tandem-media).
//!
//! The input is read twice: as one datagram, and as a sequence of datagrams,
//! each a one-byte length then that many bytes, fed to one event receiver.

use tandem_media::g711;
use tandem_media::rfc4733::{EventPayload, EventReceiver};
use tandem_rtp::rtp::{self, RtpHeader};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let mut receiver = EventReceiver::new();
        datagram(data, &mut receiver);

        let mut receiver = EventReceiver::new();
        let mut rest = data;
        while let Some((&len, tail)) = rest.split_first() {
            let n = usize::from(len).min(tail.len());
            datagram(&tail[..n], &mut receiver);
            rest = &tail[n..];
        }
    });
}

fn datagram(p: &[u8], receiver: &mut EventReceiver) {
    if rtp::is_rtcp(p) {
        let mut copy = p.to_vec();
        rtp::rewrite_rtcp_sender(&mut copy, 0x0102_0304);
        assert_eq!(&copy[4..8], &[1, 2, 3, 4]);
        assert_eq!(copy.len(), p.len());
    }
    let Some(h) = RtpHeader::parse(p) else { return };
    // The relay slices the payload with these: they must lie inside the packet.
    let end = h
        .payload_offset
        .checked_add(h.payload_len)
        .expect("payload offset + length overflows");
    assert!(
        end <= p.len(),
        "payload {}..{end} outside a {}-byte packet",
        h.payload_offset,
        p.len()
    );
    let payload = &p[h.payload_offset..end];

    // Rewriting the fixed header keeps the layout. (The SSRC stays: in a
    // 12-byte packet with the P bit its last byte is the padding count.)
    let mut copy = p.to_vec();
    let (marker, pt, seq, ts) = (!h.marker, h.pt ^ 1, h.seq.wrapping_add(1), h.ts ^ 7);
    rtp::rewrite(&mut copy, marker, pt, seq, ts, h.ssrc);
    let r = RtpHeader::parse(&copy).expect("a rewritten packet parses");
    assert_eq!(
        (r.payload_offset, r.payload_len),
        (h.payload_offset, h.payload_len)
    );
    assert_eq!(
        (r.marker, r.pt, r.seq, r.ts, r.ssrc),
        (marker, pt, seq, ts, h.ssrc)
    );

    let mut pcm = Vec::new();
    match h.pt {
        0 | 8 => {
            if h.pt == 0 {
                g711::decode_ulaw(payload, &mut pcm);
            } else {
                g711::decode_alaw(payload, &mut pcm);
            }
            assert_eq!(pcm.len(), payload.len());
        }
        _ => {
            if let Ok(ev) = EventPayload::parse(payload) {
                let _ = (ev.event, ev.end, ev.volume, ev.duration);
            }
            if let Ok(Some(ev)) = receiver.receive(h.ts, h.marker, payload) {
                let _ = ev.digit;
            }
        }
    }
}
