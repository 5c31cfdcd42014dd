//! Offer/answer (RFC 3264) as Tandem runs it on each leg: answers to real
//! offers, offers forwarded to the other leg, answers read back, hold and
//! resume, and the session-version rule.

mod sdp_samples;

use std::net::{IpAddr, SocketAddr};

use sdp_samples::*;
use tandem_rtp::sdp::{
    AnswerOptions, Codec, Direction, LocalMedia, MediaCapabilities, SdpError, SdpSession,
    SessionDescription, media_formats, negotiate_answer, rewrite_connection,
};

fn parse(s: &str) -> SessionDescription {
    SessionDescription::parse(s.as_bytes()).expect("sample parses")
}

const TANDEM: &str = "203.0.113.5";

fn session(port: u16) -> SdpSession {
    SdpSession::new(
        777,
        LocalMedia {
            addr: TANDEM.parse().unwrap(),
            rtp_port: port,
        },
    )
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn answers_sipp_with_pcmu_and_tandem_address() {
    let mut s = session(20000);
    let caps = MediaCapabilities::default();
    let (ans, neg) = s
        .answer(&parse(SIPP), &caps, AnswerOptions::default())
        .unwrap();
    let text = ans.to_string();
    assert!(text.contains("c=IN IP4 203.0.113.5\r\n"), "{text}");
    assert!(text.contains("m=audio 20000 RTP/AVP 0\r\n"), "{text}");
    assert!(
        text.contains("o=tandem 777 1 IN IP4 203.0.113.5\r\n"),
        "{text}"
    );
    assert!(text.contains("a=sendrecv\r\n"));
    // SIPp offered no telephone-event, so none is answered.
    assert!(!text.contains("telephone-event"));
    assert_eq!(neg.codec.codec, Codec::Pcmu);
    assert_eq!(neg.remote_rtp, Some(addr("127.0.0.1:6000")));
    assert_eq!(neg.remote_rtcp, Some(addr("127.0.0.1:6001")));
    assert_eq!(neg.ptime, 20);
    assert!(neg.send_enabled() && neg.recv_enabled());
    // The answer itself parses back.
    assert_eq!(parse(&text), ans);
}

#[test]
fn answers_asterisk_with_its_telephone_event_payload_type_and_ptime() {
    let mut s = session(20002);
    let (ans, neg) = s
        .answer(
            &parse(ASTERISK),
            &MediaCapabilities::default(),
            AnswerOptions::default(),
        )
        .unwrap();
    let m = &ans.media[0];
    assert_eq!(m.formats, vec!["0", "101"]);
    assert_eq!(m.fmtp(101), Some("0-16"));
    assert_eq!(m.ptime(), Some(20));
    assert_eq!(neg.telephone_event.as_ref().map(|t| t.pt), Some(101));
}

#[test]
fn answers_freeswitch_with_opus_and_48k_events_and_rtcp_attribute() {
    let mut s = session(20004);
    let (ans, neg) = s
        .answer(
            &parse(FREESWITCH),
            &MediaCapabilities::default(),
            AnswerOptions::default(),
        )
        .unwrap();
    assert_eq!(neg.codec.codec, Codec::Opus);
    assert_eq!(neg.codec.pt, 102);
    assert_eq!(
        neg.codec.fmtp.as_deref(),
        Some("useinbandfec=1; maxplaybackrate=16000")
    );
    let te = neg.telephone_event.unwrap();
    assert_eq!((te.pt, te.clock_rate), (103, 48000));
    assert_eq!(neg.remote_rtcp, Some(addr("10.0.0.5:24581")));
    let m = &ans.media[0];
    assert_eq!(m.rtpmap(102).unwrap().channels, 2);
    assert_eq!(m.formats, vec!["102", "103"]);
}

#[test]
fn preferred_codec_wins_when_offered() {
    let mut s = session(20006);
    let opts = AnswerOptions {
        prefer: Some(Codec::Pcma),
        hold: false,
    };
    let (_, neg) = s
        .answer(&parse(FREESWITCH), &MediaCapabilities::default(), opts)
        .unwrap();
    assert_eq!((neg.codec.codec, neg.codec.pt), (Codec::Pcma, 8));
    // With PCMA the 8 kHz telephone-event is chosen.
    assert_eq!(neg.telephone_event.map(|t| t.pt), Some(101));
}

#[test]
fn capabilities_limit_the_codecs() {
    let caps = MediaCapabilities {
        codecs: vec![Codec::Pcma],
        telephone_event: false,
        ..Default::default()
    };
    let (ans, neg) = session(20008)
        .answer(&parse(BARESIP), &caps, AnswerOptions::default())
        .unwrap();
    assert_eq!(neg.codec.codec, Codec::Pcma);
    assert_eq!(neg.telephone_event, None);
    assert_eq!(ans.media[0].formats, vec!["8"]);
}

#[test]
fn video_is_rejected_with_port_zero_keeping_the_line_count() {
    let (ans, neg) = session(20010)
        .answer(
            &parse(LINPHONE),
            &MediaCapabilities::default(),
            AnswerOptions::default(),
        )
        .unwrap();
    assert_eq!(ans.media.len(), 2);
    assert_eq!(ans.media[0].port, 20010);
    assert_eq!(
        (ans.media[1].media.as_str(), ans.media[1].port),
        ("video", 0)
    );
    assert_eq!(neg.codec.codec, Codec::Opus);
    // telephone-event/48000 goes with Opus.
    assert_eq!(neg.telephone_event.map(|t| t.pt), Some(101));
}

#[test]
fn ipv6_offer_gets_remote_v6_address() {
    let mut s = SdpSession::new(
        1,
        LocalMedia {
            addr: "2001:db8::1".parse().unwrap(),
            rtp_port: 30000,
        },
    );
    let (ans, neg) = s
        .answer(
            &parse(IPV6),
            &MediaCapabilities::default(),
            AnswerOptions::default(),
        )
        .unwrap();
    assert!(ans.to_string().contains("c=IN IP6 2001:db8::1\r\n"));
    assert_eq!(neg.remote_rtp, Some(addr("[2001:db8::10]:30000")));
    assert_eq!(neg.codec.codec, Codec::Pcma);
}

#[test]
fn unusable_offers_are_refused_with_488_errors() {
    let caps = MediaCapabilities::default();
    let o = AnswerOptions::default();
    // SDES-SRTP is answered in kind (tandem-rtp's tests/srtp.rs); a key
    // line Tandem cannot use (an MKI here) leaves no usable audio.
    let (ans, neg) = session(1).answer(&parse(SRTP_ONLY), &caps, o).unwrap();
    assert_eq!(ans.media[0].proto, "RTP/SAVP");
    assert!(neg.srtp.is_some());
    let with_mki = SRTP_ONLY.replace("VubGVz\r", "VubGVz|2^20|1:4\r");
    assert_ne!(with_mki, SRTP_ONLY);
    assert_eq!(
        session(1).answer(&parse(&with_mki), &caps, o).unwrap_err(),
        SdpError::NoAudio
    );
    assert_eq!(
        session(1).answer(&parse(G729_ONLY), &caps, o).unwrap_err(),
        SdpError::NoCommonCodec
    );
    let video_only = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
    let e = session(1).answer(&parse(video_only), &caps, o).unwrap_err();
    assert_eq!((e.clone(), e.sip_status()), (SdpError::NoAudio, 488));
    let no_media = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n";
    assert_eq!(
        session(1).answer(&parse(no_media), &caps, o).unwrap_err(),
        SdpError::NoAudio
    );
}

#[test]
fn hold_offer_sendonly_is_answered_recvonly_and_stops_sending() {
    let mut s = session(20012);
    let caps = MediaCapabilities::default();
    let (a1, n1) = s
        .answer(&parse(ASTERISK), &caps, AnswerOptions::default())
        .unwrap();
    assert!(n1.send_enabled());
    let (a2, n2) = s
        .answer(&parse(HOLD_SENDONLY), &caps, AnswerOptions::default())
        .unwrap();
    assert_eq!(a2.media_direction(0), Direction::RecvOnly);
    assert!(n2.is_held());
    assert!(!n2.send_enabled());
    assert!(n2.recv_enabled());
    assert_eq!(a2.origin.session_version, a1.origin.session_version + 1);
    // Resume: back to sendrecv, version moves again.
    let (a3, n3) = s
        .answer(&parse(ASTERISK), &caps, AnswerOptions::default())
        .unwrap();
    assert_eq!(a3.media_direction(0), Direction::SendRecv);
    assert!(n3.send_enabled());
    assert_eq!(a3.origin.session_version, a2.origin.session_version + 1);
}

#[test]
fn hold_by_zero_address_means_no_remote_rtp_address() {
    let (ans, neg) = session(20014)
        .answer(
            &parse(HOLD_ZERO_ADDR),
            &MediaCapabilities::default(),
            AnswerOptions::default(),
        )
        .unwrap();
    assert_eq!(neg.remote_rtp, None);
    assert!(neg.is_held());
    assert!(!neg.send_enabled());
    assert_eq!(ans.media_direction(0), Direction::RecvOnly);
}

#[test]
fn inactive_offer_is_answered_inactive() {
    let (ans, neg) = session(20016)
        .answer(
            &parse(HOLD_INACTIVE),
            &MediaCapabilities::default(),
            AnswerOptions::default(),
        )
        .unwrap();
    assert_eq!(ans.media_direction(0), Direction::Inactive);
    assert!(!neg.send_enabled() && !neg.recv_enabled());
}

#[test]
fn tandem_hold_answers_without_receiving() {
    let opts = AnswerOptions {
        prefer: None,
        hold: true,
    };
    let (ans, _) = session(20018)
        .answer(&parse(SIPP), &MediaCapabilities::default(), opts)
        .unwrap();
    assert_eq!(ans.media_direction(0), Direction::SendOnly);
}

#[test]
fn unchanged_reanswer_keeps_the_session_version() {
    let mut s = session(20020);
    let caps = MediaCapabilities::default();
    let (a1, _) = s
        .answer(&parse(SIPP), &caps, AnswerOptions::default())
        .unwrap();
    let (a2, _) = s
        .answer(&parse(SIPP), &caps, AnswerOptions::default())
        .unwrap();
    assert_eq!(a1, a2);
    assert_eq!(s.version(), 1);
}

#[test]
fn own_offer_lists_capabilities_and_reoffers_bump_the_version() {
    let mut s = session(20022);
    let caps = MediaCapabilities::default();
    let o1 = s.offer(&caps, Direction::SendRecv);
    let text = o1.to_string();
    assert!(
        text.contains("m=audio 20022 RTP/AVP 0 8 111 101 110\r\n"),
        "{text}"
    );
    assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"));
    assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\n"));
    assert!(text.contains("a=rtpmap:110 telephone-event/48000\r\n"));
    assert!(text.contains("a=ptime:20\r\n"));
    let o2 = s.offer(&caps, Direction::SendOnly);
    assert_eq!(o2.origin.session_version, o1.origin.session_version + 1);
    assert_eq!(o2.origin.session_id, o1.origin.session_id);
    assert_eq!(o2.media_direction(0), Direction::SendOnly);
}

#[test]
fn offer_forwarded_to_the_other_leg_keeps_payload_types_and_drops_the_rest() {
    let mut b = session(20024);
    let o = b
        .offer_from(&parse(FREESWITCH), &MediaCapabilities::default())
        .unwrap();
    let m = &o.media[0];
    assert_eq!(o.media.len(), 1);
    assert_eq!(m.port, 20024);
    // G722 and CN are dropped, the PTs and fmtp of the rest kept.
    assert_eq!(m.formats, vec!["102", "0", "8", "103", "101"]);
    assert_eq!(m.fmtp(102), Some("useinbandfec=1; maxplaybackrate=16000"));
    assert_eq!(m.ptime(), Some(20));
    assert!(m.rtcp().is_none());
    assert!(o.to_string().contains("c=IN IP4 203.0.113.5\r\n"));

    // SIPp offers no telephone-event; Tandem adds its own so it can send digits.
    let o = session(20026)
        .offer_from(&parse(SIPP), &MediaCapabilities::default())
        .unwrap();
    assert_eq!(o.media[0].formats, vec!["0", "101"]);

    // An Opus-only caller (telephone-event at 48 kHz only): G.711 is
    // appended with a telephone-event at 8 kHz, so a G.711-only callee is
    // reached through the transcoder.
    let opus_only = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 111 110\r\na=rtpmap:111 opus/48000/2\r\n\
        a=rtpmap:110 telephone-event/48000\r\n";
    let o = session(20030)
        .offer_from(&parse(opus_only), &MediaCapabilities::default())
        .unwrap();
    assert_eq!(o.media[0].formats, vec!["111", "110", "0", "8", "101"]);
    assert_eq!(
        o.media[0].rtpmap(101).map(|m| (m.encoding, m.clock_rate)),
        Some(("telephone-event", 8000))
    );

    // Hold propagates.
    let o = session(20028)
        .offer_from(&parse(HOLD_ZERO_ADDR), &MediaCapabilities::default())
        .unwrap();
    assert_eq!(o.media_direction(0), Direction::SendOnly);
    assert!(!o.to_string().contains("0.0.0.0"));
}

#[test]
fn answer_to_tandem_offer_is_read_back() {
    let mut b = session(20030);
    let offer = b.offer(&MediaCapabilities::default(), Direction::SendRecv);
    let answer = parse(
        "v=0\r\no=- 5 5 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\n",
    );
    let neg = negotiate_answer(&offer, &answer).unwrap();
    assert_eq!((neg.codec.codec, neg.codec.pt), (Codec::Pcma, 8));
    assert_eq!(neg.telephone_event.map(|t| t.pt), Some(101));
    assert_eq!(neg.ptime, 30);
    assert_eq!(neg.remote_rtp, Some(addr("10.1.1.1:4000")));

    // The answerer may use its own dynamic payload type number.
    let answer = parse(
        "v=0\r\no=- 5 5 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 96 97\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:97 telephone-event/48000\r\n",
    );
    let neg = negotiate_answer(&offer, &answer).unwrap();
    assert_eq!((neg.codec.codec, neg.codec.pt), (Codec::Opus, 96));
    assert_eq!(neg.telephone_event.map(|t| t.pt), Some(97));
    // Formats from the answer come first, the offer's fill in.
    assert!(
        neg.formats
            .iter()
            .any(|f| f.pt == 0 && f.codec == Codec::Pcmu)
    );
}

#[test]
fn bad_answers_are_refused() {
    let mut b = session(20032);
    let offer = b.offer(&MediaCapabilities::default(), Direction::SendRecv);
    let rejected = parse(
        "v=0\r\no=- 5 5 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n",
    );
    assert_eq!(
        negotiate_answer(&offer, &rejected).unwrap_err(),
        SdpError::NoCommonCodec
    );
    let two = parse(
        "v=0\r\no=- 5 5 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n",
    );
    assert!(matches!(
        negotiate_answer(&offer, &two).unwrap_err(),
        SdpError::AnswerMismatch { .. }
    ));
    let g729 = parse(
        "v=0\r\no=- 5 5 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n",
    );
    assert_eq!(
        negotiate_answer(&offer, &g729).unwrap_err(),
        SdpError::NoCommonCodec
    );
}

#[test]
fn rewrite_replaces_addresses_and_strips_transport_attributes() {
    let mut sd = parse(BARESIP);
    let local = LocalMedia {
        addr: IpAddr::from([198, 51, 100, 7]),
        rtp_port: 40000,
    };
    rewrite_connection(&mut sd, local);
    let text = sd.to_string();
    assert!(text.contains("c=IN IP4 198.51.100.7\r\n"));
    assert!(text.contains("m=audio 40000 RTP/AVP 96 0 8 101\r\n"));
    assert!(!text.contains("a=ssrc"));
    assert!(!text.contains("a=mid"));
    assert!(!text.contains("192.168.0.15\r\nt="));
    let mut fs = parse(FREESWITCH);
    rewrite_connection(&mut fs, local);
    assert!(!fs.to_string().contains("a=rtcp:"));
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    let sd = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0 18\r\n",
    );
    let f = media_formats(&sd.media[0]);
    assert_eq!(
        f.iter().map(|f| (f.pt, f.codec)).collect::<Vec<_>>(),
        vec![(8, Codec::Pcma), (0, Codec::Pcmu)]
    );
}
