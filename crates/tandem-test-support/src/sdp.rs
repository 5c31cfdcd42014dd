//! The SDP a test peer offers or answers, and what it reads of Tandem's.

/// A PCMU-only audio offer or answer from 127.0.0.1 receiving on `port`.
pub fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

/// The port of the first `m=audio` line of a SIP message's SDP (panics
/// without one: the test expected media).
pub fn sdp_port(msg: &str) -> u16 {
    msg.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in:\n{msg}"))
}
