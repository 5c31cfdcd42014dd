//! Dialog creation, in-dialog requests and their rules.

use super::*;
use crate::message::SipMessage;
use crate::message::parse;

fn req(text: &str) -> Request {
    match parse(text.replace('\n', "\r\n").as_bytes()).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("request expected"),
    }
}

fn resp(text: &str) -> Response {
    match parse(text.replace('\n', "\r\n").as_bytes()).unwrap() {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => panic!("response expected"),
    }
}

const INVITE: &str = "INVITE sip:bob@192.0.2.4 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv
Max-Forwards: 70
From: <sip:alice@tandem>;tag=ta
To: <sip:bob@192.0.2.4>
Call-ID: d1
CSeq: 10 INVITE
Contact: <sip:tandem@192.0.2.1:5060>
Content-Length: 0

";

fn ok_with(tag: &str, rr: &str) -> Response {
    resp(&format!(
        "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv
{rr}From: <sip:alice@tandem>;tag=ta
To: <sip:bob@192.0.2.4>;tag={tag}
Call-ID: d1
CSeq: 10 INVITE
Contact: <sip:bob@192.0.2.9:5070>
Content-Length: 0

"
    ))
}

#[test]
fn uac_dialog_reverses_record_route_and_targets_the_contact() {
    let inv = req(INVITE);
    let ok = ok_with(
        "tb",
        "Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\n",
    );
    let mut d = Dialog::uac(&inv, &ok).unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(d.id.remote_tag, "tb");
    assert_eq!(
        d.route_set,
        vec!["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    );
    assert_eq!(d.next_hop(), "sip:p2.example;lr");
    let bye = d
        .request(Method::Bye, "UDP", "192.0.2.1:5060", "z9hG4bKbye")
        .unwrap();
    assert_eq!(bye.uri.to_string(), "sip:bob@192.0.2.9:5070");
    assert_eq!(bye.headers.cseq(), Some((11, Method::Bye)));
    assert_eq!(bye.headers.to_tag(), Some("tb"));
    assert_eq!(bye.headers.from_tag(), Some("ta"));
    let routes: Vec<_> = bye
        .headers
        .iter()
        .filter(|h| matches!(h, Header::Route(_)))
        .map(header_value)
        .collect();
    assert_eq!(routes, vec!["<sip:p2.example;lr>", "<sip:p1.example;lr>"]);
}

#[test]
fn ack_for_2xx_reuses_the_invite_cseq_with_a_new_branch() {
    let inv = req(INVITE);
    let mut d = Dialog::uac(&inv, &ok_with("tb", "")).unwrap();
    d.request(Method::Info, "UDP", "h:1", "z9hG4bKi").unwrap();
    let ack = d.ack("UDP", "192.0.2.1:5060", "z9hG4bKack").unwrap();
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.headers.cseq(), Some((10, Method::Ack)));
    assert_eq!(
        ack.headers.top_via().unwrap().unwrap().branch,
        Some("z9hG4bKack")
    );
}

#[test]
fn strict_router_becomes_the_request_uri() {
    let inv = req(INVITE);
    let ok = ok_with("tb", "Record-Route: <sip:strict.example>\n");
    let mut d = Dialog::uac(&inv, &ok).unwrap();
    let bye = d.request(Method::Bye, "UDP", "h:1", "z9hG4bKs").unwrap();
    assert_eq!(bye.uri.to_string(), "sip:strict.example");
    let routes: Vec<_> = bye
        .headers
        .iter()
        .filter(|h| matches!(h, Header::Route(_)))
        .map(header_value)
        .collect();
    assert_eq!(routes, vec!["<sip:bob@192.0.2.9:5070>"]);
}

#[test]
fn forked_provisionals_make_distinct_early_dialogs() {
    let inv = req(INVITE);
    let ringing = |tag: &str| {
        resp(&format!(
            "SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv
From: <sip:alice@tandem>;tag=ta
To: <sip:bob@192.0.2.4>;tag={tag}
Call-ID: d1
CSeq: 10 INVITE
Contact: <sip:{tag}@192.0.2.{}:5060>
Content-Length: 0

",
            tag.len()
        ))
    };
    let mut set = Dialogs::new();
    let a = Dialog::uac(&inv, &ringing("x1")).unwrap();
    let b = Dialog::uac(&inv, &ringing("y22")).unwrap();
    assert_eq!(a.state, DialogState::Early);
    assert_ne!(a.id, b.id);
    let (ida, idb) = (a.id.clone(), b.id.clone());
    set.insert(a);
    set.insert(b);
    assert_eq!(set.len(), 2);
    // The 2xx from one fork confirms that dialog only; the other fails.
    set.get_mut(&ida)
        .unwrap()
        .on_invite_response(&ok_with("x1", ""));
    assert_eq!(set.get_mut(&ida).unwrap().state, DialogState::Confirmed);
    assert_eq!(
        set.get_mut(&ida).unwrap().remote_target,
        "sip:bob@192.0.2.9:5070"
    );
    assert_eq!(set.get_mut(&idb).unwrap().state, DialogState::Early);
    assert!(
        Dialog::uac(
            &inv,
            &resp(
                "SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv
From: <sip:alice@tandem>;tag=ta
To: <sip:bob@192.0.2.4>
Call-ID: d1
CSeq: 10 INVITE
Content-Length: 0

"
            )
        )
        .is_err()
    );
}

fn uas() -> Dialog {
    let inv = req("INVITE sip:+15550001000@tandem SIP/2.0
Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKc
Record-Route: <sip:edge.carrier;lr>
Max-Forwards: 70
From: <sip:+15551112222@carrier>;tag=caller
To: <sip:+15550001000@tandem>
Call-ID: in1
CSeq: 5 INVITE
Contact: <sip:caller@198.51.100.1:5060>
Content-Length: 0

");
    Dialog::uas(&inv, "tandem1", "<sip:tandem@192.0.2.1>").unwrap()
}

#[test]
fn uas_dialog_keeps_record_route_order_and_tags() {
    let mut d = uas();
    assert_eq!(d.route_set, vec!["<sip:edge.carrier;lr>"]);
    assert_eq!(d.remote_target, "sip:caller@198.51.100.1:5060");
    let bye = d
        .request(Method::Bye, "UDP", "192.0.2.1:5060", "z9hG4bKb")
        .unwrap();
    assert_eq!(bye.headers.from_tag(), Some("tandem1"));
    assert_eq!(bye.headers.to_tag(), Some("caller"));
    assert_eq!(bye.headers.cseq(), Some((1, Method::Bye)));
}

fn in_dialog(method: &str, seq: u32, contact: &str) -> Request {
    req(&format!(
        "{method} sip:tandem@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK{seq}{method}
Max-Forwards: 70
From: <sip:+15551112222@carrier>;tag=caller
To: <sip:+15550001000@tandem>;tag=tandem1
Call-ID: in1
CSeq: {seq} {method}
{contact}Content-Length: 0

"
    ))
}

#[test]
fn cseq_must_increase_else_500() {
    let mut d = uas();
    d.on_request(&in_dialog("INFO", 6, "")).unwrap();
    let err = d.on_request(&in_dialog("INFO", 6, "")).unwrap_err();
    assert_eq!(err.status(), 500);
    // ACK carries the INVITE's CSeq and is never refused.
    d.on_request(&in_dialog("ACK", 5, "")).unwrap();
}

#[test]
fn reinvite_refreshes_the_remote_target() {
    let mut d = uas();
    d.on_request(&in_dialog(
        "INVITE",
        7,
        "Contact: <sip:caller@203.0.113.5:5099>\n",
    ))
    .unwrap();
    assert_eq!(d.remote_target, "sip:caller@203.0.113.5:5099");
}

#[test]
fn reinvite_glare_gets_491() {
    let mut d = uas();
    d.confirm();
    d.request(Method::Invite, "UDP", "h:1", "z9hG4bKre")
        .unwrap();
    let err = d.on_request(&in_dialog("INVITE", 8, "")).unwrap_err();
    assert_eq!(err, DialogError::Glare);
    assert_eq!(err.status(), 491);
}

#[test]
fn unknown_dialog_gets_481() {
    let mut set = Dialogs::new();
    set.insert(uas());
    assert!(set.match_request(&in_dialog("BYE", 9, "")).is_ok());
    let stray = in_dialog("BYE", 9, "").clone();
    let mut other = stray.clone();
    for h in other.headers.iter_mut() {
        if let Header::CallId(_) = h {
            *h = Header::CallId("nope".into());
        }
    }
    assert_eq!(set.match_request(&other).unwrap_err().status(), 481);
}

#[test]
fn bye_terminates() {
    let mut d = uas();
    d.on_request(&in_dialog("BYE", 6, "")).unwrap();
    assert_eq!(d.state, DialogState::Terminated);
}

/// A request naming the dialog's Call-ID but not both its tags (a forger
/// who knows the Call-ID, a stale peer) is refused with 481 and changes
/// nothing: not the CSeq, not the target, not the state.
#[test]
fn a_request_with_the_call_id_but_other_tags_gets_481() {
    use rsip::headers::UntypedHeader as _;
    let mut d = uas();
    let forged = |from: &str, to: &str| {
        let mut r = in_dialog("BYE", 9, "");
        for h in r.headers.iter_mut() {
            match h {
                Header::From(v) => *h = Header::From(v.value().replace("tag=caller", from).into()),
                Header::To(v) => *h = Header::To(v.value().replace("tag=tandem1", to).into()),
                _ => {}
            }
        }
        r
    };
    for (from, to) in [
        ("tag=other", "tag=tandem1"),
        ("tag=caller", "tag=guess"),
        ("tag=caller", "x=1"),
    ] {
        let err = d.on_request(&forged(from, to)).unwrap_err();
        assert_eq!(err.status(), 481, "{from} {to}");
    }
    assert_ne!(d.state, DialogState::Terminated);
    d.on_request(&in_dialog("BYE", 9, "")).unwrap();
    assert_eq!(d.state, DialogState::Terminated);
}
