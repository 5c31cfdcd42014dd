//! SIP message parsing (tandem_sip::parse), the serializer round trip, the
//! header accessors, digest credential parsing and checking, the stateless
//! error response, and TCP stream framing (Framer) with the input split in two.

use std::time::Duration;

use tandem_sip::auth::{
    Challenge, Credentials, DigestRequest, DigestServer, DigestServerConfig, Secret,
};
use tandem_sip::framing::Framer;
use tandem_sip::message::{
    Header, HeadersExt, MessageExt, SipMessage, error_response, header_name, header_value,
};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        check_message(data);
        check_framing(data);
    });
}

fn check_message(data: &[u8]) {
    let msg = match tandem_sip::parse(data) {
        Ok(msg) => msg,
        Err(e) => {
            let _ = e.response_status();
            let _ = e.to_string();
            let _ = error_response(data, &e);
            return;
        }
    };
    read_headers(&msg);
    if let SipMessage::Request(req) = &msg {
        // A Request-URI prints back to the same URI.
        let printed = req.uri.to_string();
        assert_eq!(
            tandem_sip::uri::parse(&printed).as_ref(),
            Ok(&req.uri),
            "{printed}"
        );
    }
    let bytes = tandem_sip::to_bytes(&msg);
    // A message Tandem accepted and wrote back out goes through the parser
    // again (it may be refused; it must not panic).
    if let Ok(again) = tandem_sip::parse(&bytes) {
        read_headers(&again);
        let _ = tandem_sip::to_bytes(&again);
    }
}

fn read_headers(msg: &SipMessage) {
    let h = msg.hdrs();
    if let Some(Ok(via)) = h.top_via() {
        let _ = via.is_rfc3261();
    }
    let _ = h.call_id();
    let _ = h.cseq();
    let _ = h.from_tag();
    let _ = h.to_tag();
    let _ = h.named("contact");
    for header in h.iter() {
        let _ = header_name(header);
        let value = header_value(header);
        match header {
            Header::Authorization(_) | Header::ProxyAuthorization(_) => {
                check_credentials(msg, value)
            }
            Header::WwwAuthenticate(_) | Header::ProxyAuthenticate(_) => {
                if let Ok(c) = Challenge::parse(value) {
                    let _ = c.to_string();
                }
            }
            _ => {}
        }
    }
}

fn check_credentials(msg: &SipMessage, value: &str) {
    if let Ok(c) = Credentials::parse(value) {
        let _ = c.to_string();
    }
    let SipMessage::Request(req) = msg else {
        return;
    };
    let uri = req.uri.to_string();
    let _ = tandem_sip::header::uri_host_port(&uri);
    let _ = tandem_sip::header::uri_param(&uri, "transport");
    let method = req.method.to_string();
    let request = DigestRequest {
        method: &method,
        uri: &uri,
        body: &req.body,
    };
    let mut server = DigestServer::new(DigestServerConfig::new("tandem"), [7; 32]);
    let _ = server.verify(
        Duration::from_secs(1_700_000_000),
        &request,
        value,
        |_, _| Some(Secret::Password("secret".to_owned())),
    );
}

fn check_framing(data: &[u8]) {
    // The first byte chooses where the stream is cut.
    let cut = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut framer = Framer::new();
    framer.push(&data[..cut]);
    if drain(&mut framer) {
        framer.push(&data[cut..]);
        drain(&mut framer);
    }
    let _ = framer.take_pings();
    let _ = framer.in_message();
}

/// Takes every complete frame; false once the stream is broken.
fn drain(framer: &mut Framer) -> bool {
    loop {
        match framer.next_message() {
            Ok(Some(frame)) => {
                let _ = tandem_sip::parse(&frame);
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}
