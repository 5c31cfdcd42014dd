//! SDES-SRTP through the relay on real loopback UDP: keys agreed by
//! offer/answer (the peer's `a=crypto` in, Tandem's out), an SRTP leg
//! bridged to a plain one, audio both ways decrypted and re-encrypted
//! intact, SRTCP both ways, and what must not pass (plain RTP, a tampered
//! packet, a replay) rejected and counted.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tandem_rtp::rtp::{RtpHeader, write_header};
use tandem_rtp::sdp::{
    AnswerOptions, Codec, Direction, LocalMedia, MediaCapabilities, NegotiatedMedia, PayloadFormat,
    SdpSession, SessionDescription,
};
use tandem_rtp::srtp::{Crypto, SrtpKey, SrtpPeer, Suite};
use tandem_rtp::{Leg, LegConfig, LegId, bridge};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_millis(500);

fn plain_media(remote: SocketAddr) -> NegotiatedMedia {
    let codec = PayloadFormat::new(0, Codec::Pcmu);
    NegotiatedMedia {
        remote_rtp: Some(remote),
        remote_rtcp: Some(SocketAddr::new(remote.ip(), remote.port() + 1)),
        codec: codec.clone(),
        telephone_event: None,
        formats: vec![codec],
        ptime: 20,
        remote_direction: Direction::SendRecv,
        srtp: None,
    }
}

fn offer(port: u16, key: &SrtpKey) -> Vec<u8> {
    let crypto = Crypto {
        tag: 1,
        key: key.clone(),
    };
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:{}\r\n",
        crypto.value()
    )
    .into_bytes()
}

fn rtp(seq: u16, fill: u8) -> Vec<u8> {
    let mut p = vec![fill; 12 + 160];
    write_header(&mut p, false, 0, seq, u32::from(seq) * 160, 0x5EC0_0001);
    p
}

async fn recv(sock: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    match tokio::time::timeout(WAIT, sock.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test]
async fn an_srtp_leg_bridges_to_a_plain_leg_both_ways() {
    let pool = pool(22460, 4);
    let mut cfg = LegConfig::new(LegId(1));
    cfg.seed = Some(1);
    let a = Leg::start(pool.allocate().unwrap(), cfg, None).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), LegConfig::new(LegId(2)), None).unwrap();
    bridge(&a, &b);

    // The SRTP phone's offer, answered by Tandem's SDP session on leg A.
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_rtcp = UdpSocket::bind(SocketAddr::new(
        phone.local_addr().unwrap().ip(),
        phone.local_addr().unwrap().port() + 1,
    ))
    .await
    .ok();
    let phone_key = SrtpKey::random(Suite::AesCm128HmacSha1_80);
    let offer =
        SessionDescription::parse(&offer(phone.local_addr().unwrap().port(), &phone_key)).unwrap();
    let mut sess = SdpSession::new(
        7,
        LocalMedia {
            addr: "127.0.0.1".parse().unwrap(),
            rtp_port: a.local_rtp_addr().port(),
        },
    );
    let (answer, neg) = sess
        .answer(
            &offer,
            &MediaCapabilities::default(),
            AnswerOptions::default(),
        )
        .unwrap();
    let am = &answer.media[0];
    assert_eq!(am.proto, "RTP/SAVP");
    let tandem = Crypto::parse(
        am.attribute_value("crypto")
            .expect("a=crypto in the answer"),
    )
    .expect("Tandem's crypto line parses");
    assert_eq!(tandem.tag, 1);
    assert_ne!(tandem.key, phone_key, "Tandem sends with its own key");
    a.set_media(&neg);
    assert!(a.is_srtp());
    let mut peer = SrtpPeer::new(&phone_key, &tandem.key).unwrap();

    // The plain phone on leg B.
    let plain = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    b.set_media(&plain_media(plain.local_addr().unwrap()));
    assert!(!b.is_srtp());

    // SRTP -> plain: decrypted, the payload intact.
    for seq in 1..=20u16 {
        let sent = peer.protect(&rtp(seq, seq as u8)).unwrap();
        phone.send_to(&sent, a.local_rtp_addr()).await.unwrap();
        let got = recv(&plain).await.expect("relayed to the plain leg");
        let h = RtpHeader::parse(&got).unwrap();
        assert_eq!(h.payload_len, 160);
        assert!(
            got[h.payload_offset..].iter().all(|&x| x == seq as u8),
            "seq {seq}"
        );
    }
    // Plain -> SRTP: encrypted with Tandem's key, decryptable by the phone.
    for seq in 1..=20u16 {
        plain
            .send_to(&rtp(seq, 0x40 + seq as u8), b.local_rtp_addr())
            .await
            .unwrap();
        let got = recv(&phone).await.expect("relayed to the SRTP leg");
        assert_eq!(got.len(), 12 + 160 + 10, "an 80-bit tag");
        let clear = peer
            .unprotect(&got)
            .expect("authenticates with Tandem's key");
        let h = RtpHeader::parse(&clear).unwrap();
        assert!(
            clear[h.payload_offset..]
                .iter()
                .all(|&x| x == 0x40 + seq as u8)
        );
    }

    // What must not pass: plain RTP, a tampered packet, a replay.
    let rejected = a.stats().rejected;
    phone
        .send_to(&rtp(100, 1), a.local_rtp_addr())
        .await
        .unwrap();
    let mut tampered = peer.protect(&rtp(101, 1)).unwrap();
    tampered[30] ^= 0x80;
    phone.send_to(&tampered, a.local_rtp_addr()).await.unwrap();
    let replay = peer.protect(&rtp(5, 1)).unwrap();
    phone.send_to(&replay, a.local_rtp_addr()).await.unwrap();
    assert_eq!(recv(&plain).await, None, "nothing relayed");
    assert_eq!(a.stats().rejected, rejected + 3);

    // SRTCP: an RTCP receiver report from the plain side reaches the
    // phone encrypted (longer by the SRTCP index and tag).
    if let Some(phone_rtcp) = phone_rtcp {
        let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 9];
        let plain_rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b_rtcp = SocketAddr::new(b.local_rtp_addr().ip(), b.local_rtp_addr().port() + 1);
        plain_rtcp.send_to(&rr, b_rtcp).await.unwrap();
        let got = recv(&phone_rtcp).await.expect("RTCP relayed");
        assert_eq!(got.len(), rr.len() + 4 + 10, "SRTCP index and tag");
        assert_eq!(&got[..4], &rr[..4], "the header stays clear");
    }
}

/// Offers: a leg told to use SRTP offers RTP/SAVP with its key, and reads
/// the callee's key from the answer; an answer without one is refused.
#[test]
fn an_srtp_offer_and_its_answer() {
    let local = LocalMedia {
        addr: "127.0.0.1".parse().unwrap(),
        rtp_port: 30_000,
    };
    let mut ours = SdpSession::new(1, local);
    ours.use_srtp(true);
    let offer = ours.offer(&MediaCapabilities::default(), Direction::SendRecv);
    assert_eq!(offer.media[0].proto, "RTP/SAVP");
    let mine = Crypto::parse(offer.media[0].attribute_value("crypto").unwrap()).unwrap();
    // The callee answers with its own key.
    let mut theirs = SdpSession::new(
        2,
        LocalMedia {
            rtp_port: 40_000,
            ..local
        },
    );
    let (answer, their_neg) = theirs
        .answer(
            &offer,
            &MediaCapabilities::default(),
            AnswerOptions::default(),
        )
        .unwrap();
    let neg = tandem_rtp::sdp::negotiate_answer(&offer, &answer).unwrap();
    let keys = neg.srtp.expect("SRTP negotiated");
    assert_eq!(keys.outbound, mine.key);
    assert_eq!(Some(keys.inbound), their_neg.srtp.map(|k| k.outbound));
    // An answer that drops the key line is not SRTP: refused.
    let mut bare = answer.clone();
    bare.media[0].remove_attributes(|a| a.name == "crypto");
    assert!(tandem_rtp::sdp::negotiate_answer(&offer, &bare).is_err());
    // A plain offer from the other leg becomes this leg's SRTP offer, and
    // back: the profile is each leg's own.
    let mut plain_leg = SdpSession::new(3, local);
    let plain_offer = plain_leg.offer(&MediaCapabilities::default(), Direction::SendRecv);
    assert_eq!(plain_offer.media[0].proto, "RTP/AVP");
    let fwd = ours
        .offer_from(&plain_offer, &MediaCapabilities::default())
        .unwrap();
    assert_eq!(fwd.media[0].proto, "RTP/SAVP");
    assert!(fwd.media[0].attribute_value("crypto").is_some());
    let back = plain_leg
        .offer_from(&offer, &MediaCapabilities::default())
        .unwrap();
    assert_eq!(back.media[0].proto, "RTP/AVP");
    assert!(back.media[0].attribute_value("crypto").is_none());
    // An SRTP offer with no usable key line is not an audio stream Tandem
    // can take.
    let mut unusable = offer.clone();
    unusable.media[0].remove_attributes(|a| a.name == "crypto");
    assert!(
        SdpSession::new(4, local)
            .answer(
                &unusable,
                &MediaCapabilities::default(),
                AnswerOptions::default()
            )
            .is_err()
    );
}
