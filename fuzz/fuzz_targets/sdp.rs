//! SDP (RFC 4566) parsing and printing, the typed accessors, and offer/answer
//! (RFC 3264) against a fixed local capability set: Tandem answering the
//! input as an offer, forwarding it as an offer to the other leg, and reading
//! it as the answer to Tandem's own offer.
//!
//! Checked: the printer's contract `parse(print(x)) == x`, and that every
//! description Tandem writes parses again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tandem_rtp::sdp::{
    AnswerOptions, Codec, Direction, LocalMedia, MediaCapabilities, SdpSession, SessionDescription,
    media_formats, negotiate_answer, rewrite_connection,
};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let sd = match SessionDescription::parse(data) {
            Ok(sd) => sd,
            Err(e) => {
                let _ = e.sip_status();
                let _ = e.to_string();
                return;
            }
        };
        round_trip(&sd);
        read(&sd);
        negotiate(&sd, data.len());
    });
}

fn round_trip(sd: &SessionDescription) {
    let printed = sd.to_bytes();
    match SessionDescription::parse(&printed) {
        Ok(again) => assert_eq!(
            &again,
            sd,
            "parse(print(x)) != x for {:?}",
            String::from_utf8_lossy(&printed)
        ),
        Err(e) => panic!(
            "printed SDP does not parse ({e}): {:?}",
            String::from_utf8_lossy(&printed)
        ),
    }
}

/// A description Tandem wrote must parse.
fn reparse(sd: &SessionDescription) {
    let printed = sd.to_bytes();
    if let Err(e) = SessionDescription::parse(&printed) {
        panic!(
            "Tandem's own SDP does not parse ({e}): {:?}",
            String::from_utf8_lossy(&printed)
        );
    }
}

fn read(sd: &SessionDescription) {
    let _ = sd.session_direction();
    let _ = sd.first_audio();
    for (i, m) in sd.media.iter().enumerate() {
        let _ = sd.media_direction(i);
        let _ = sd.media_connection(i).map(|c| (c.ip(), c.is_unspecified()));
        let _ = sd.is_hold(i);
        let _ = m.is_rtp();
        for pt in m.payload_types() {
            let _ = m.rtpmap(pt);
            let _ = m.fmtp(pt);
        }
        let _ = m.ptime();
        let _ = m.own_direction();
        let _ = m.rtcp();
        let _ = media_formats(m);
    }
}

fn negotiate(offer: &SessionDescription, len: usize) {
    let caps = MediaCapabilities::default();
    let local = if len.is_multiple_of(2) {
        LocalMedia {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            rtp_port: 30000,
        }
    } else {
        LocalMedia {
            addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            rtp_port: 30002,
        }
    };
    let opts = AnswerOptions {
        prefer: [None, Some(Codec::Pcma), Some(Codec::Opus)][len % 3],
        hold: len.is_multiple_of(5),
    };

    // Tandem answers the input (an INVITE's offer).
    let mut session = SdpSession::new(4711, local);
    if let Ok((answer, negotiated)) = session.answer(offer, &caps, opts) {
        reparse(&answer);
        let _ = (
            negotiated.send_enabled(),
            negotiated.recv_enabled(),
            negotiated.is_held(),
        );
        // A re-INVITE with the same offer: same answer, same version.
        if let Ok((again, _)) = session.answer(offer, &caps, opts) {
            reparse(&again);
        }
    }

    // Tandem forwards the input as an offer to the other leg.
    let mut other = SdpSession::new(4712, local);
    if let Ok(forwarded) = other.offer_from(offer, &caps) {
        reparse(&forwarded);
    }

    // The input as the answer to Tandem's own offer.
    let mut own = SdpSession::new(4713, local);
    let mine = own.offer(&caps, Direction::SendRecv);
    reparse(&mine);
    if let Ok(negotiated) = negotiate_answer(&mine, offer) {
        let _ = negotiated.send_enabled();
    }
    // ... and as the answer to an offer with the input's own streams.
    let _ = negotiate_answer(offer, offer);

    // The description relayed with Tandem's address written in.
    let mut relayed = offer.clone();
    rewrite_connection(&mut relayed, local);
    own.stamp(&mut relayed);
    reparse(&relayed);
}
