//! SDP parsing and printing against the styles real endpoints send, and the
//! malformed bodies that must be refused with a typed error.

mod sdp_samples;

use sdp_samples::*;
use tandem_rtp::sdp::{AddrType, Direction, SdpError, SessionDescription};

fn parse(s: &str) -> SessionDescription {
    match SessionDescription::parse(s.as_bytes()) {
        Ok(sd) => sd,
        Err(e) => panic!("parse failed: {e}\n{s}"),
    }
}

#[test]
fn parses_sipp_default_offer() {
    let sd = parse(SIPP);
    assert_eq!(sd.origin.username, "user1");
    assert_eq!(sd.origin.session_id, "53655765");
    assert_eq!(sd.origin.session_version, 2353687637);
    assert_eq!(sd.session_name, "-");
    assert_eq!(sd.connection.as_ref().unwrap().address, "127.0.0.1");
    assert_eq!(sd.media.len(), 1);
    let m = &sd.media[0];
    assert_eq!(
        (m.media.as_str(), m.port, m.proto.as_str()),
        ("audio", 6000, "RTP/AVP")
    );
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![0]);
    assert_eq!(m.rtpmap(0).unwrap().encoding, "PCMU");
    assert_eq!(sd.media_direction(0), Direction::SendRecv);
}

#[test]
fn parses_asterisk_offer() {
    let sd = parse(ASTERISK);
    let m = &sd.media[0];
    assert_eq!(
        m.payload_types().collect::<Vec<_>>(),
        vec![0, 8, 3, 111, 101]
    );
    assert_eq!(m.fmtp(101), Some("0-16"));
    assert_eq!(m.ptime(), Some(20));
    assert_eq!(m.attribute_value("maxptime"), Some("150"));
    assert_eq!(sd.media_direction(0), Direction::SendRecv);
}

#[test]
fn parses_freeswitch_offer_with_rtcp_attribute() {
    let sd = parse(FREESWITCH);
    let m = &sd.media[0];
    let opus = m.rtpmap(102).unwrap();
    assert_eq!(
        (opus.encoding, opus.clock_rate, opus.channels),
        ("opus", 48000, 2)
    );
    assert_eq!(m.fmtp(102), Some("useinbandfec=1; maxplaybackrate=16000"));
    assert_eq!(m.rtcp(), Some((24581, Some("10.0.0.5".parse().unwrap()))));
    assert_eq!(m.rtpmap(103).unwrap().clock_rate, 48000);
}

#[test]
fn parses_baresip_offer_with_lf_line_ends() {
    let lf = BARESIP.replace("\r\n", "\n");
    let sd = parse(&lf);
    assert_eq!(sd, parse(BARESIP));
    assert_eq!(sd.media[0].attribute_value("mid"), Some("0"));
    assert_eq!(sd.bandwidths.len(), 0);
    assert_eq!(sd.media[0].bandwidths[0].kind, "AS");
}

#[test]
fn parses_linphone_offer_with_video_and_session_attributes() {
    let sd = parse(LINPHONE);
    assert_eq!(sd.media.len(), 2);
    assert_eq!(sd.bandwidths[0].value, 380);
    assert!(sd.attributes.iter().any(|a| a.name == "rtcp-xr"));
    assert_eq!(sd.media[1].media, "video");
    assert_eq!(sd.first_audio(), Some(0));
}

#[test]
fn parses_ipv6_offer() {
    let sd = parse(IPV6);
    assert_eq!(sd.origin.addr_type, AddrType::Ip6);
    assert_eq!(
        sd.media_connection(0).unwrap().ip(),
        Some("2001:db8::10".parse().unwrap())
    );
}

#[test]
fn hold_styles_are_recognised() {
    assert!(parse(HOLD_SENDONLY).is_hold(0));
    assert!(parse(HOLD_ZERO_ADDR).is_hold(0));
    assert!(parse(HOLD_INACTIVE).is_hold(0));
    assert!(!parse(SIPP).is_hold(0));
    assert_eq!(parse(HOLD_SENDONLY).media_direction(0), Direction::SendOnly);
}

#[test]
fn session_level_direction_applies_to_media_without_one() {
    let s = SIPP.replace("t=0 0\r\n", "t=0 0\r\na=recvonly\r\n");
    assert_eq!(parse(&s).media_direction(0), Direction::RecvOnly);
}

#[test]
fn round_trip_is_exact_for_canonical_bodies() {
    for (name, s) in ALL {
        let sd = parse(s);
        assert_eq!(sd.to_string(), *s, "{name} did not print back identically");
        assert_eq!(parse(&sd.to_string()), sd, "{name}");
    }
}

#[test]
fn trailing_spaces_blank_lines_and_unknown_letters_are_tolerated() {
    let s = "v=0\r\no=- 1 1 IN IP4 10.0.0.1 \r\ns=-\r\n\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\ny=1234\r\nm=audio 4000 RTP/AVP 0\r\n\r\n";
    let sd = parse(s);
    assert_eq!(sd.origin.address, "10.0.0.1");
    assert_eq!(sd.media[0].port, 4000);
}

#[test]
fn missing_timing_line_is_accepted_and_printed() {
    let s =
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
    let sd = parse(s);
    assert!(sd.to_string().contains("t=0 0\r\n"));
}

fn err(s: &str) -> SdpError {
    match SessionDescription::parse(s.as_bytes()) {
        Ok(sd) => panic!("accepted bad SDP:\n{s}\n{sd:?}"),
        Err(e) => {
            assert_eq!(e.sip_status(), 488);
            e
        }
    }
}

const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";

#[test]
fn bad_bodies_get_typed_errors() {
    assert_eq!(err(""), SdpError::Empty);
    assert_eq!(err("\r\n \r\n"), SdpError::Empty);
    assert_eq!(
        SessionDescription::parse(b"v=0\r\no=\xff\xfe").unwrap_err(),
        SdpError::NotUtf8
    );
    assert_eq!(
        err("o=- 1 1 IN IP4 1.2.3.4\r\n"),
        SdpError::BadVersion { line: 1 }
    );
    assert_eq!(err("v=1\r\n"), SdpError::BadVersion { line: 1 });
    assert_eq!(
        err("v=0\r\ns=-\r\nt=0 0\r\n"),
        SdpError::Missing { kind: 'o' }
    );
    assert_eq!(
        err("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nt=0 0\r\n"),
        SdpError::Missing { kind: 's' }
    );
    assert_eq!(
        err("v=0\r\nthis is not sdp\r\n"),
        SdpError::BadLine { line: 2 }
    );
    assert_eq!(err("v=0\r\n=x\r\n"), SdpError::BadLine { line: 2 });
    assert!(matches!(
        err("v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n"),
        SdpError::BadField {
            kind: 'o',
            field: "field count",
            ..
        }
    ));
    assert!(matches!(
        err("v=0\r\no=- 1 x IN IP4 1.2.3.4\r\ns=-\r\n"),
        SdpError::BadField {
            kind: 'o',
            field: "session version",
            ..
        }
    ));
    assert!(matches!(
        err("v=0\r\no=- 1 1 ATM IP4 1.2.3.4\r\ns=-\r\n"),
        SdpError::BadField {
            kind: 'o',
            field: "network type",
            ..
        }
    ));
    assert!(matches!(
        err(&format!("{HEAD}c=IN IP4 10.0.0.1\r\n")),
        SdpError::Unexpected { kind: 'c', .. }
    ));
    assert!(matches!(
        err("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 300.1.2.3\r\n"),
        SdpError::BadField {
            kind: 'c',
            field: "address",
            ..
        }
    ));
    assert!(matches!(
        err("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP6 10.0.0.1\r\n"),
        SdpError::BadField {
            kind: 'c',
            field: "address",
            ..
        }
    ));
    assert!(matches!(
        err("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP5 10.0.0.1\r\n"),
        SdpError::BadField {
            kind: 'c',
            field: "address type",
            ..
        }
    ));
    assert!(matches!(
        err(&format!("{HEAD}m=audio 70000 RTP/AVP 0\r\n")),
        SdpError::BadField {
            kind: 'm',
            field: "port",
            ..
        }
    ));
    assert!(matches!(
        err(&format!("{HEAD}m=audio 4000 RTP/AVP 0 200\r\n")),
        SdpError::BadField {
            kind: 'm',
            field: "payload type",
            ..
        }
    ));
    assert!(matches!(
        err(&format!("{HEAD}m=audio 4000 RTP/AVP\r\n")),
        SdpError::BadField {
            kind: 'm',
            field: "format list",
            ..
        }
    ));
    assert!(matches!(
        err(&format!("{HEAD}m=audio 4000\r\n")),
        SdpError::BadField {
            kind: 'm',
            field: "field count",
            ..
        }
    ));
    assert!(matches!(
        err(&format!("{HEAD}m=audio 4000 RTP/AVP 0\r\na=:x\r\n")),
        SdpError::BadField {
            kind: 'a',
            field: "attribute name",
            ..
        }
    ));
    assert!(matches!(
        err(&format!("{HEAD}b=AS\r\n")),
        SdpError::BadField { kind: 'b', .. }
    ));
    assert!(matches!(
        err(&format!("{HEAD}m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n")),
        SdpError::Unexpected { kind: 't', .. }
    ));
    assert!(matches!(
        err("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n"),
        SdpError::Unexpected { kind: 'o', line: 3 }
    ));
    assert_eq!(
        err("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"),
        SdpError::MissingConnection { media: 0 }
    );
    assert_eq!(err(&"a".repeat(70_000)), SdpError::TooLarge);
    let many = format!("{HEAD}{}", "m=audio 0 RTP/AVP 0\r\n".repeat(40));
    assert_eq!(err(&many), SdpError::TooLarge);
    let lines = format!("{HEAD}{}", "a=x\r\n".repeat(2000));
    assert_eq!(err(&lines), SdpError::TooLarge);
}

#[test]
fn rejected_stream_without_connection_is_accepted() {
    let s = format!("{}m=video 0 RTP/AVP 96\r\n", SIPP);
    let sd = parse(&s);
    assert_eq!(sd.media[1].port, 0);
}

/// Every prefix and many byte mutations of real bodies: the parser returns,
/// it never panics.
#[test]
fn parser_never_panics_on_truncated_or_mutated_input() {
    for (_, s) in ALL {
        let b = s.as_bytes();
        for end in 0..=b.len() {
            let _ = SessionDescription::parse(&b[..end]);
        }
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut v = b.to_vec();
            let i = (seed as usize) % v.len();
            v[i] = (seed >> 32) as u8;
            if let Ok(sd) = SessionDescription::parse(&v) {
                // Whatever parses also prints and re-parses to the same value.
                assert_eq!(SessionDescription::parse(&sd.to_bytes()), Ok(sd));
            }
        }
    }
}
