//! Virtual-time tests of every transaction machine: the clock is a plain
//! `Instant` moved by the test, so a 32 s timeout runs in microseconds.

use super::*;
use crate::builder::RequestBuilder;
use crate::message::parse;

const MS: Duration = Duration::from_millis(1);

fn udp(port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

fn tcp(port: u16) -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

fn request(method: Method, branch: &str) -> Request {
    request_in(method, branch, "call-1")
}

fn request_in(method: Method, branch: &str, call_id: &str) -> Request {
    RequestBuilder::new(method, "sip:bob@127.0.0.1:5099".try_into().unwrap())
        .via("UDP", "127.0.0.1:5098", branch)
        .max_forwards(70)
        .from("<sip:alice@127.0.0.1>;tag=alice1")
        .to("<sip:bob@127.0.0.1>")
        .call_id(call_id)
        .cseq(1)
        .build()
}

/// The ACK for a 2xx to an INVITE of [`request_in`]: its own branch, the
/// dialog's Call-ID and tags (`to`: the To header with the 2xx's tag), the
/// INVITE's CSeq number.
fn ack_in(call_id: &str, branch: &str, to: &str) -> Request {
    RequestBuilder::new(Method::Ack, "sip:bob@127.0.0.1".try_into().unwrap())
        .via("UDP", "127.0.0.1:5098", branch)
        .from("<sip:alice@127.0.0.1>;tag=alice1")
        .to(to)
        .call_id(call_id)
        .cseq(1)
        .build()
}

/// An in-dialog request: [`request`] with the dialog's To tag.
fn in_dialog(method: Method, branch: &str) -> Request {
    RequestBuilder::new(method, "sip:bob@127.0.0.1:5099".try_into().unwrap())
        .via("UDP", "127.0.0.1:5098", branch)
        .max_forwards(70)
        .from("<sip:alice@127.0.0.1>;tag=alice1")
        .to("<sip:bob@127.0.0.1>;tag=t")
        .call_id("call-1")
        .cseq(2)
        .build()
}

fn layer() -> TransactionLayer {
    TransactionLayer::new(TimerConfig::default(), IdGen::seeded(1))
}

/// Advances virtual time to `until`, firing timers exactly at their deadlines,
/// and records (offset from `t0`, parsed message) for every transmit.
fn run_until(l: &mut TransactionLayer, t0: Instant, until: Instant) -> Vec<(Duration, SipMessage)> {
    let mut out = Vec::new();
    while let Some(t) = l.poll_timeout() {
        if t > until {
            break;
        }
        l.handle_timeout(t);
        while let Some(x) = l.poll_transmit() {
            out.push((t - t0, parse(&x.data).unwrap()));
        }
    }
    out
}

fn drain(l: &mut TransactionLayer) -> Vec<SipMessage> {
    std::iter::from_fn(|| l.poll_transmit())
        .map(|x| parse(&x.data).unwrap())
        .collect()
}

fn events(l: &mut TransactionLayer) -> Vec<TuEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn response(req: &Request, code: u16) -> SipMessage {
    SipMessage::Response(response_to(req, code, None, Some("bobtag")))
}

fn code(m: &SipMessage) -> u16 {
    match m {
        SipMessage::Response(r) => r.status_code.code(),
        SipMessage::Request(_) => 0,
    }
}

fn method(m: &SipMessage) -> Option<Method> {
    match m {
        SipMessage::Request(r) => Some(r.method.clone()),
        SipMessage::Response(_) => None,
    }
}

#[test]
fn unanswered_invite_over_udp_retransmits_on_schedule_and_times_out_at_32s() {
    let mut l = layer();
    let t0 = Instant::now();
    let tx = l.send_request(t0, request(Method::Invite, "z9hG4bKa"), udp(5099));
    assert_eq!(drain(&mut l).len(), 1);
    let sent = run_until(&mut l, t0, t0 + Duration::from_secs(40));
    let times: Vec<_> = sent.iter().map(|(d, _)| d.as_millis()).collect();
    assert_eq!(times, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert!(sent.iter().all(|(_, m)| method(m) == Some(Method::Invite)));
    let ev = events(&mut l);
    assert!(matches!(ev.as_slice(), [TuEvent::Timeout { tx: t, .. }] if *t == tx));
    assert_eq!(l.state(tx), None);
    assert!(l.is_empty());
}

#[test]
fn timer_b_fires_at_exactly_64_t1() {
    let mut l = layer();
    let t0 = Instant::now();
    l.send_request(t0, request(Method::Invite, "z9hG4bKa"), udp(5099));
    l.handle_timeout(t0 + Duration::from_secs(32) - MS);
    assert!(events(&mut l).is_empty());
    l.handle_timeout(t0 + Duration::from_secs(32));
    assert!(matches!(
        events(&mut l).as_slice(),
        [TuEvent::Timeout { .. }]
    ));
}

#[test]
fn non_invite_retransmissions_cap_at_t2_and_time_out_with_timer_f() {
    let mut l = layer();
    let t0 = Instant::now();
    l.send_request(t0, request(Method::Options, "z9hG4bKo"), udp(5099));
    drain(&mut l);
    let sent = run_until(&mut l, t0, t0 + Duration::from_secs(40));
    let times: Vec<_> = sent.iter().map(|(d, _)| d.as_millis()).collect();
    assert_eq!(
        times,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(matches!(
        events(&mut l).as_slice(),
        [TuEvent::Timeout { .. }]
    ));
}

#[test]
fn non_invite_in_proceeding_retransmits_every_t2() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Options, "z9hG4bKo");
    l.send_request(t0, req.clone(), udp(5099));
    drain(&mut l);
    l.handle_message(t0 + 100 * MS, response(&req, 180), udp(5099));
    let sent = run_until(&mut l, t0, t0 + Duration::from_secs(10));
    let times: Vec<_> = sent.iter().map(|(d, _)| d.as_millis()).collect();
    // Timer E was armed for 0.5 s before the 1xx; from then on it runs at T2.
    assert_eq!(times, vec![500, 4500, 8500]);
}

#[test]
fn reliable_transport_never_retransmits() {
    let mut l = layer();
    let t0 = Instant::now();
    l.send_request(t0, request(Method::Invite, "z9hG4bKt"), tcp(5099));
    drain(&mut l);
    let sent = run_until(&mut l, t0, t0 + Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(matches!(
        events(&mut l).as_slice(),
        [TuEvent::Timeout { .. }]
    ));
}

/// A peer the transport cannot reach (a TCP connect refused): its client
/// transactions still waiting end at once with a timeout, not at Timer B
/// or F 32 s later; those to other peers and one already answered stay.
#[test]
fn a_transport_failure_ends_the_peers_pending_client_transactions_at_once() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = l.send_request(t0, request(Method::Invite, "z9hG4bKf1"), tcp(5099));
    let options = l.send_request(t0, request(Method::Options, "z9hG4bKf2"), tcp(5099));
    let answered_req = request(Method::Invite, "z9hG4bKf3");
    let answered = l.send_request(t0, answered_req.clone(), tcp(5099));
    let elsewhere = l.send_request(t0, request(Method::Invite, "z9hG4bKf4"), tcp(5098));
    let over_udp = l.send_request(t0, request(Method::Invite, "z9hG4bKf5"), udp(5099));
    l.handle_message(t0 + MS, response(&answered_req, 200), tcp(5099));
    drain(&mut l);
    events(&mut l);
    assert_eq!(l.transport_failed(tcp(5099)), 2);
    let ev = events(&mut l);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| matches!(e, TuEvent::Timeout { .. })));
    assert_eq!(l.state(invite), None);
    assert_eq!(l.state(options), None);
    assert_eq!(l.state(answered), Some(State::Accepted));
    assert_eq!(l.state(elsewhere), Some(State::Calling));
    assert_eq!(l.state(over_udp), Some(State::Calling));
    assert_eq!(l.transport_failed(tcp(5099)), 0, "nothing left to fail");
}

#[test]
fn client_invite_completed_absorbs_final_retransmissions_with_ack() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKc");
    l.send_request(t0, req.clone(), udp(5099));
    drain(&mut l);
    l.handle_message(t0 + 10 * MS, response(&req, 486), udp(5099));
    let acks = drain(&mut l);
    assert_eq!(acks.len(), 1);
    let SipMessage::Request(ack) = &acks[0] else {
        panic!("ACK expected")
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.headers.to_tag(), Some("bobtag"));
    assert_eq!(ack.headers.cseq(), Some((1, Method::Ack)));
    assert_eq!(
        ack.headers.top_via().unwrap().unwrap().branch,
        Some("z9hG4bKc")
    );
    assert_eq!(events(&mut l).len(), 1);
    // Retransmitted 486: ACK again, TU not told.
    l.handle_message(t0 + 600 * MS, response(&req, 486), udp(5099));
    assert_eq!(drain(&mut l).len(), 1);
    assert!(events(&mut l).is_empty());
    // Timer D ends the transaction 32 s later.
    l.handle_timeout(t0 + 10 * MS + Duration::from_secs(32));
    assert!(l.is_empty());
}

#[test]
fn client_invite_accepted_passes_every_2xx_until_timer_m() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKm");
    let tx = l.send_request(t0, req.clone(), udp(5099));
    drain(&mut l);
    l.handle_message(t0 + 10 * MS, response(&req, 200), udp(5099));
    l.handle_message(t0 + 510 * MS, response(&req, 200), udp(5099));
    let ev = events(&mut l);
    assert_eq!(ev.len(), 2, "the TU sees each 2xx to ACK it");
    assert_eq!(l.state(tx), Some(State::Accepted));
    assert!(drain(&mut l).is_empty(), "the transaction never ACKs a 2xx");
    l.handle_timeout(t0 + 10 * MS + Duration::from_secs(32));
    assert_eq!(l.state(tx), None);
}

#[test]
fn cancel_before_any_provisional_is_held_until_one_arrives() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKx");
    let tx = l.send_request(t0, req.clone(), udp(5099));
    drain(&mut l);
    assert!(l.cancel(t0 + 100 * MS, tx));
    assert!(
        drain(&mut l).is_empty(),
        "no CANCEL before a provisional response"
    );
    // The INVITE keeps retransmitting meanwhile.
    let sent = run_until(&mut l, t0, t0 + 600 * MS);
    assert_eq!(sent.len(), 1);
    assert_eq!(method(&sent[0].1), Some(Method::Invite));
    l.handle_message(t0 + 700 * MS, response(&req, 180), udp(5099));
    let out = drain(&mut l);
    assert_eq!(out.len(), 1);
    let SipMessage::Request(cancel) = &out[0] else {
        panic!("CANCEL expected")
    };
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.headers.cseq(), Some((1, Method::Cancel)));
    assert_eq!(cancel.headers.to_tag(), None);
    assert_eq!(
        cancel.headers.top_via().unwrap().unwrap().branch,
        Some("z9hG4bKx")
    );
    // 200 to CANCEL, then 487 to INVITE: ACKed by the transaction.
    l.handle_message(t0 + 710 * MS, response(cancel, 200), udp(5099));
    l.handle_message(t0 + 720 * MS, response(&req, 487), udp(5099));
    let out = drain(&mut l);
    assert_eq!(
        out.iter().filter_map(method).collect::<Vec<_>>(),
        vec![Method::Ack]
    );
}

#[test]
fn cancelled_invite_without_final_gives_up_after_64_t1() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKg");
    let tx = l.send_request(t0, req.clone(), udp(5099));
    l.handle_message(t0, response(&req, 180), udp(5099));
    events(&mut l);
    assert!(l.cancel(t0, tx));
    l.handle_timeout(t0 + Duration::from_secs(32));
    let ev = events(&mut l);
    assert!(
        ev.iter()
            .any(|e| matches!(e, TuEvent::Timeout { tx: t, .. } if *t == tx))
    );
    assert_eq!(l.state(tx), None);
}

#[test]
fn final_response_before_provisional_voids_a_pending_cancel() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKv");
    let tx = l.send_request(t0, req.clone(), udp(5099));
    drain(&mut l);
    l.cancel(t0, tx);
    l.handle_message(t0 + 5 * MS, response(&req, 200), udp(5099));
    assert!(drain(&mut l).is_empty(), "no CANCEL after a final response");
    assert!(!l.cancel(t0 + 6 * MS, tx) || l.state(tx) == Some(State::Accepted));
}

#[test]
fn server_invite_sends_100_and_absorbs_retransmissions() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKs");
    l.handle_message(t0, SipMessage::Request(req.clone()), udp(5098));
    // No 100 yet: the TU has 200 ms to answer first (§17.2.1).
    assert!(drain(&mut l).is_empty());
    let sent = run_until(&mut l, t0, t0 + 300 * MS);
    let sent: Vec<_> = sent.iter().map(|(d, m)| (d.as_millis(), code(m))).collect();
    assert_eq!(sent, vec![(200, 100)]);
    let ev = events(&mut l);
    let [TuEvent::Request { tx, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    let tx = *tx;
    // A retransmitted INVITE gets the 100 again and does not reach the TU.
    l.handle_message(t0 + 500 * MS, SipMessage::Request(req.clone()), udp(5098));
    assert_eq!(
        drain(&mut l).iter().map(code).collect::<Vec<_>>(),
        vec![100]
    );
    assert!(events(&mut l).is_empty());
    // 486: retransmitted by timer G (T1, doubling, capped at T2) until ACK or H.
    l.respond(
        t0 + Duration::from_secs(1),
        tx,
        response_to(&req, 486, None, Some("t")),
    );
    assert_eq!(
        drain(&mut l).iter().map(code).collect::<Vec<_>>(),
        vec![486]
    );
    let t1 = t0 + Duration::from_secs(1);
    let sent = run_until(&mut l, t1, t1 + Duration::from_secs(33));
    let times: Vec<_> = sent.iter().map(|(d, _)| d.as_millis()).collect();
    assert_eq!(
        times,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(matches!(
        events(&mut l).as_slice(),
        [TuEvent::AckTimeout { was_2xx: false, .. }]
    ));
}

#[test]
fn server_invite_ack_for_non_2xx_is_absorbed_and_confirms() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKk");
    l.handle_message(t0, SipMessage::Request(req.clone()), udp(5098));
    let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
        panic!()
    };
    let resp = response_to(&req, 603, None, Some("t"));
    l.respond(t0, tx, resp.clone());
    drain(&mut l);
    let ack = build_ack(&req, &resp);
    l.handle_message(t0 + 10 * MS, SipMessage::Request(ack.clone()), udp(5098));
    assert_eq!(l.state(tx), Some(State::Confirmed));
    assert!(
        events(&mut l).is_empty(),
        "ACK for non-2xx stays in the transaction"
    );
    l.handle_message(t0 + 20 * MS, SipMessage::Request(ack), udp(5098));
    assert!(events(&mut l).is_empty());
    assert!(run_until(&mut l, t0, t0 + Duration::from_secs(10)).is_empty());
    assert_eq!(l.state(tx), None, "Timer I ended it");
}

#[test]
fn server_invite_2xx_retransmitted_until_ack_reaches_tu() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bK2");
    l.handle_message(t0, SipMessage::Request(req.clone()), udp(5098));
    let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
        panic!()
    };
    l.respond(t0, tx, response_to(&req, 200, None, Some("t")));
    drain(&mut l);
    let sent = run_until(&mut l, t0, t0 + Duration::from_secs(2));
    assert_eq!(
        sent.iter().map(|(d, _)| d.as_millis()).collect::<Vec<_>>(),
        vec![500, 1500]
    );
    // INVITE retransmission in Accepted is absorbed without answering.
    l.handle_message(
        t0 + Duration::from_secs(2),
        SipMessage::Request(req.clone()),
        udp(5098),
    );
    assert!(drain(&mut l).is_empty());
    // The ACK for the 2xx has its own branch and is matched by the dialog
    // (Call-ID, both tags) and the CSeq number.
    let ack = ack_in("call-1", "z9hG4bKack", "<sip:bob@127.0.0.1>;tag=t");
    l.handle_message(
        t0 + Duration::from_secs(2),
        SipMessage::Request(ack),
        udp(5098),
    );
    let ev = events(&mut l);
    assert!(matches!(ev.as_slice(), [TuEvent::Ack { tx: Some(t), .. }] if *t == tx));
    assert!(run_until(&mut l, t0, t0 + Duration::from_secs(40)).is_empty());
    assert!(events(&mut l).is_empty(), "acknowledged: no AckTimeout");
}

/// Regression (issue "Hostile networks and overload"): the ACK for a 2xx was
/// matched on Call-ID and CSeq alone, so a blind forger who guessed those
/// (they are in the INVITE it sent itself, from a spoofed trunk address)
/// completed the call without ever seeing Tandem's To tag. Now an ACK with
/// another To tag, or none, acknowledges nothing: the 2xx goes on being
/// retransmitted and ends in AckTimeout.
#[test]
fn an_ack_without_the_2xx_to_tag_acknowledges_nothing() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bK3");
    l.handle_message(t0, SipMessage::Request(req.clone()), udp(5098));
    let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
        panic!()
    };
    l.respond(t0, tx, response_to(&req, 200, None, Some("secret-tag")));
    drain(&mut l);
    for to in ["<sip:bob@127.0.0.1>;tag=guess", "<sip:bob@127.0.0.1>"] {
        let forged = ack_in("call-1", "z9hG4bKforged", to);
        l.handle_message(t0 + 100 * MS, SipMessage::Request(forged), udp(5098));
        let ev = events(&mut l);
        assert!(
            matches!(ev.as_slice(), [TuEvent::Ack { tx: None, .. }]),
            "{to}: {ev:?}"
        );
    }
    // Still unacknowledged: retransmitted, then Timer L reports it.
    let sent = run_until(&mut l, t0, t0 + Duration::from_secs(40));
    assert!(sent.len() >= 5, "2xx retransmitted: {}", sent.len());
    assert!(matches!(
        events(&mut l).as_slice(),
        [TuEvent::AckTimeout { was_2xx: true, .. }]
    ));
}

#[test]
fn unacknowledged_2xx_reports_ack_timeout_at_timer_l() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKl");
    l.handle_message(t0, SipMessage::Request(req.clone()), udp(5098));
    let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
        panic!()
    };
    l.respond(t0, tx, response_to(&req, 200, None, Some("t")));
    run_until(&mut l, t0, t0 + Duration::from_secs(33));
    assert!(matches!(
        events(&mut l).as_slice(),
        [TuEvent::AckTimeout { was_2xx: true, .. }]
    ));
}

#[test]
fn received_cancel_gets_200_and_the_invite_487() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKc1");
    l.handle_message(t0, SipMessage::Request(req.clone()), udp(5098));
    let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
        panic!()
    };
    l.respond(t0, tx, response_to(&req, 180, None, Some("ringtag")));
    drain(&mut l);
    l.handle_message(
        t0 + 5 * MS,
        SipMessage::Request(build_cancel(&req)),
        udp(5098),
    );
    let out = drain(&mut l);
    let codes: Vec<_> = out.iter().map(code).collect();
    assert_eq!(codes, vec![200, 487]);
    let SipMessage::Response(r487) = &out[1] else {
        panic!()
    };
    assert_eq!(
        r487.headers.to_tag(),
        Some("ringtag"),
        "487 keeps the dialog's tag"
    );
    assert_eq!(r487.headers.cseq(), Some((1, Method::Invite)));
    assert!(matches!(events(&mut l).as_slice(), [TuEvent::Cancelled { tx: t, .. }] if *t == tx));
    // The TU's late 200 is refused: the transaction is already completed.
    assert!(!l.respond(t0, tx, response_to(&req, 200, None, Some("ringtag"))));
}

#[test]
fn cancel_matching_nothing_gets_481() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKnone");
    l.handle_message(t0, SipMessage::Request(build_cancel(&req)), udp(5098));
    assert_eq!(
        drain(&mut l).iter().map(code).collect::<Vec<_>>(),
        vec![481]
    );
    assert!(events(&mut l).is_empty());
}

#[test]
fn cancel_after_final_response_gets_200_only() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKc2");
    l.handle_message(t0, SipMessage::Request(req.clone()), udp(5098));
    let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
        panic!()
    };
    l.respond(t0, tx, response_to(&req, 200, None, Some("t")));
    drain(&mut l);
    l.handle_message(t0 + MS, SipMessage::Request(build_cancel(&req)), udp(5098));
    assert_eq!(
        drain(&mut l).iter().map(code).collect::<Vec<_>>(),
        vec![200]
    );
    assert!(events(&mut l).is_empty());
}

#[test]
fn merged_request_gets_482() {
    let mut l = layer();
    let t0 = Instant::now();
    l.handle_message(
        t0,
        SipMessage::Request(request(Method::Invite, "z9hG4bKp1")),
        udp(5098),
    );
    drain(&mut l);
    events(&mut l);
    // Same Call-ID, From tag and CSeq over another path (another branch).
    l.handle_message(
        t0,
        SipMessage::Request(request(Method::Invite, "z9hG4bKp2")),
        udp(5098),
    );
    let out = drain(&mut l);
    assert_eq!(out.iter().map(code).collect::<Vec<_>>(), vec![482]);
    assert!(events(&mut l).is_empty());
}

#[test]
fn server_non_invite_completed_resends_final_then_timer_j() {
    let mut l = layer();
    let t0 = Instant::now();
    let req = request(Method::Options, "z9hG4bKn");
    l.handle_message(t0, SipMessage::Request(req.clone()), udp(5098));
    let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
        panic!()
    };
    assert!(drain(&mut l).is_empty(), "no 100 for non-INVITE");
    l.respond(t0, tx, response_to(&req, 200, None, Some("t")));
    assert_eq!(drain(&mut l).len(), 1);
    l.handle_message(
        t0 + Duration::from_secs(1),
        SipMessage::Request(req),
        udp(5098),
    );
    assert_eq!(
        drain(&mut l).iter().map(code).collect::<Vec<_>>(),
        vec![200]
    );
    assert!(events(&mut l).is_empty());
    l.handle_timeout(t0 + Duration::from_secs(32));
    assert_eq!(l.state(tx), None);
}

#[test]
fn responses_follow_rport_and_received() {
    let mut l = layer();
    let t0 = Instant::now();
    // Via says 127.0.0.1:5098 with rport; the packet came from 127.0.0.2:40000 (a NAT).
    let src = Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 2], 40000)),
    };
    l.handle_message(
        t0,
        SipMessage::Request(request(Method::Invite, "z9hG4bKr")),
        src,
    );
    // The 100 Trying, 200 ms later, goes where the request came from.
    l.handle_timeout(t0 + TRYING_AFTER);
    let x = l.poll_transmit().unwrap();
    assert_eq!(x.peer, src);
    let ev = events(&mut l);
    let [TuEvent::Request { request, .. }] = ev.as_slice() else {
        panic!()
    };
    let via = request.headers.top_via().unwrap().unwrap();
    assert_eq!(via.received, Some("127.0.0.2"));
    assert_eq!(via.rport, Some(Some(40000)));
}

#[test]
fn stray_2xx_is_handed_to_the_tu() {
    let mut l = layer();
    let req = request(Method::Invite, "z9hG4bKgone");
    l.handle_message(Instant::now(), response(&req, 200), udp(5099));
    assert!(matches!(
        events(&mut l).as_slice(),
        [TuEvent::Stray2xx { .. }]
    ));
}

#[test]
fn a_response_sent_once_is_never_retransmitted_and_keeps_no_state() {
    let mut l = layer();
    let t0 = Instant::now();
    for (method, branch) in [
        (Method::Invite, "z9hG4bKo1"),
        (Method::Register, "z9hG4bKo2"),
    ] {
        let req = request(method.clone(), branch);
        l.handle_message(t0, SipMessage::Request(req.clone()), udp(5098));
        drain(&mut l);
        let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
            panic!()
        };
        assert!(l.respond_once(tx, Some(response_to(&req, 401, None, Some("t")))));
        assert_eq!(
            drain(&mut l).iter().map(code).collect::<Vec<_>>(),
            vec![401]
        );
        assert_eq!(l.state(tx), None, "{method}: nothing kept");
        assert!(!l.respond_once(tx, None), "{method}: gone");
        assert!(!l.respond(t0, tx, response_to(&req, 500, None, Some("t"))));
    }
    assert!(l.is_empty());
    // Nothing is sent again, ever: no Timer G, no Timer J state.
    assert!(run_until(&mut l, t0, t0 + Duration::from_secs(40)).is_empty());
    // The ACK of the 401 names no transaction: it goes up without one.
    let req = request(Method::Invite, "z9hG4bKo1");
    let ack = build_ack(&req, &response_to(&req, 401, None, Some("t")));
    l.handle_message(t0, SipMessage::Request(ack), udp(5098));
    assert!(matches!(
        events(&mut l).as_slice(),
        [TuEvent::Ack { tx: None, .. }]
    ));
    // A retransmission of the request is new to the layer (and to its
    // sender's limit): it reaches the TU again.
    l.handle_message(t0, SipMessage::Request(req), udp(5098));
    drain(&mut l);
    let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
        panic!()
    };
    // Discarded without an answer: nothing sent, nothing kept.
    assert!(l.respond_once(tx, None));
    assert!(drain(&mut l).is_empty());
    assert!(l.is_empty());
}

/// Regression (issue "Hostile networks and overload"): every INVITE got its
/// 100 Trying at once, so an INVITE flood from spoofed sources was
/// reflected 1:1 even when Tandem dropped or refused each request. Now the
/// 100 waits 200 ms for the TU (RFC 3261 §17.2.1); an answer or a discard
/// before then means no 100 at all, and a retransmission gets it at once.
#[test]
fn an_invite_answered_within_200_ms_gets_no_100() {
    let mut l = layer();
    let t0 = Instant::now();
    // Answered at 50 ms: the 180 is the first thing sent, no 100 follows.
    let a = request(Method::Invite, "z9hG4bKt1");
    l.handle_message(t0, SipMessage::Request(a.clone()), udp(5098));
    let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
        panic!()
    };
    l.respond(t0 + 50 * MS, tx, response_to(&a, 180, None, Some("t")));
    // Dropped unanswered at 10 ms: nothing is ever sent.
    let b = request_in(Method::Invite, "z9hG4bKt2", "call-2");
    l.handle_message(t0, SipMessage::Request(b), udp(5098));
    let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
        panic!()
    };
    assert!(l.respond_once(tx, None));
    let sent: Vec<u16> = drain(&mut l).iter().map(code).collect();
    assert_eq!(sent, vec![180]);
    assert!(run_until(&mut l, t0, t0 + Duration::from_secs(1)).is_empty());
    // Retransmitted at 100 ms, unanswered: the 100 goes with the retransmission.
    let c = request_in(Method::Invite, "z9hG4bKt3", "call-3");
    l.handle_message(t0, SipMessage::Request(c.clone()), udp(5098));
    events(&mut l);
    l.handle_message(t0 + 100 * MS, SipMessage::Request(c), udp(5098));
    assert_eq!(
        drain(&mut l).iter().map(code).collect::<Vec<_>>(),
        vec![100]
    );
    // ...and not again when its timer would have fired.
    assert!(run_until(&mut l, t0, t0 + 300 * MS).is_empty());
}

/// Regression (review of the issue "Hostile networks and overload"): a
/// CANCEL matched its INVITE by branch alone, from any address, and a
/// CANCEL for no INVITE kept a transaction for 32 s. Over UDP it must come
/// from the INVITE's source; an unmatched one gets 481 once and no state.
#[test]
fn a_cancel_from_elsewhere_or_for_nothing_gets_481_and_keeps_no_state() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = request(Method::Invite, "z9hG4bKc1");
    l.handle_message(t0, SipMessage::Request(invite.clone()), udp(5098));
    let TuEvent::Request { tx, .. } = events(&mut l).remove(0) else {
        panic!()
    };
    let cancel = build_cancel(&invite);
    let elsewhere = Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([198, 51, 100, 9], 5098)),
    };
    l.handle_message(t0, SipMessage::Request(cancel.clone()), elsewhere);
    assert_eq!(
        drain(&mut l).iter().map(code).collect::<Vec<_>>(),
        vec![481]
    );
    assert!(events(&mut l).is_empty(), "the INVITE goes on");
    assert_eq!(l.state(tx), Some(State::Proceeding));
    assert_eq!(l.len(), 1, "nothing kept for the 481");
    // From the INVITE's own source it cancels.
    l.handle_message(t0, SipMessage::Request(cancel), udp(5098));
    let mut codes: Vec<u16> = drain(&mut l).iter().map(code).collect();
    codes.sort_unstable();
    assert_eq!(codes, vec![200, 487]);
    assert!(matches!(
        events(&mut l).as_slice(),
        [TuEvent::Cancelled { .. }]
    ));
    // A CANCEL for no INVITE at all.
    let stray = build_cancel(&request_in(Method::Invite, "z9hG4bKnone", "call-9"));
    let before = l.len();
    l.handle_message(t0, SipMessage::Request(stray), udp(5098));
    assert_eq!(
        drain(&mut l).iter().map(code).collect::<Vec<_>>(),
        vec![481]
    );
    assert_eq!(l.len(), before);
}

/// A settled transaction lingers up to 64·T1 (Timers L, M, J) to absorb
/// retransmissions: it keeps its keys, its timers and the one response it
/// may still resend, and none of the request, nor bytes it will never send
/// again. At thousands of calls a second these are most of Tandem's memory
/// (docs/benchmarks.md §3(q)).
#[test]
fn settled_transactions_keep_only_what_they_still_resend() {
    let kept = |l: &TransactionLayer, tx: TxId| {
        let t = &l.txs[&tx.0];
        (t.request.is_some(), t.last.as_ref().map(Bytes::len))
    };
    let mut l = layer();
    let t0 = Instant::now();
    // Server INVITE: 2xx, then its ACK.
    let inv = request(Method::Invite, "z9hG4bKs1");
    l.handle_message(t0, SipMessage::Request(inv.clone()), udp(5098));
    let TuEvent::Request {
        tx: sinv,
        request: got,
        ..
    } = events(&mut l).remove(0)
    else {
        panic!()
    };
    // The transaction user got the whole request (body and all headers);
    // the transaction keeps what its own responses copy.
    assert!(
        got.headers
            .iter()
            .any(|h| matches!(h, Header::MaxForwards(_)))
    );
    assert!(
        !l.txs[&sinv.0]
            .request
            .as_ref()
            .unwrap()
            .headers
            .iter()
            .any(|h| matches!(h, Header::MaxForwards(_)))
    );
    l.respond(t0, sinv, response_to(&inv, 200, None, Some("t")));
    assert!(!kept(&l, sinv).0, "settled by its 2xx");
    assert!(
        kept(&l, sinv).1.is_some(),
        "the 2xx is resent until its ACK"
    );
    let ack = ack_in("call-1", "z9hG4bKack", "<sip:bob@127.0.0.1>;tag=t");
    l.handle_message(t0, SipMessage::Request(ack), udp(5098));
    assert_eq!(kept(&l, sinv), (false, None));
    // Server BYE in the dialog: its 200 adds nothing to what the layer
    // builds from the BYE, so it is rebuilt for a retransmitted BYE, not
    // kept.
    let bye = in_dialog(Method::Bye, "z9hG4bKs2");
    l.handle_message(t0, SipMessage::Request(bye.clone()), udp(5098));
    let TuEvent::Request {
        tx: sbye,
        request: got,
        ..
    } = events(&mut l).pop().unwrap()
    else {
        panic!()
    };
    // Built, as the transaction user builds it, from the request it got
    // (its Via stamped with the rport).
    let ok = response_to(&got, 200, None, None);
    let ok_bytes = to_bytes(&SipMessage::Response(ok.clone()));
    l.respond(t0, sbye, ok);
    assert_eq!(kept(&l, sbye), (false, None));
    // A final with more in it (a tag of its own, a header) is kept, sized
    // to fit.
    let options = request(Method::Options, "z9hG4bKs3");
    l.handle_message(t0, SipMessage::Request(options.clone()), udp(5098));
    let TuEvent::Request { tx: sopt, .. } = events(&mut l).pop().unwrap() else {
        panic!()
    };
    let ok = response_to(&options, 200, None, Some("t"));
    let ok_len = to_bytes(&SipMessage::Response(ok.clone())).len();
    l.respond(t0, sopt, ok);
    assert_eq!(kept(&l, sopt), (false, Some(ok_len)));
    // Client INVITE answered 2xx, client BYE answered 200.
    let cinv = l.send_request(t0, request(Method::Invite, "z9hG4bKc1"), udp(5099));
    l.handle_message(
        t0,
        response(&request(Method::Invite, "z9hG4bKc1"), 200),
        udp(5099),
    );
    assert_eq!(kept(&l, cinv), (false, None));
    let cbye = l.send_request(t0, request(Method::Bye, "z9hG4bKc2"), udp(5099));
    assert!(
        kept(&l, cbye).0 && kept(&l, cbye).1.is_some(),
        "resent until answered"
    );
    l.handle_message(
        t0,
        response(&request(Method::Bye, "z9hG4bKc2"), 200),
        udp(5099),
    );
    assert_eq!(kept(&l, cbye), (false, None));
    drain(&mut l);
    events(&mut l);
    // And all five still do their job: a retransmitted BYE gets the same
    // 200, byte for byte; a retransmitted OPTIONS the one kept.
    l.handle_message(t0 + MS, SipMessage::Request(bye.clone()), udp(5098));
    let again: Vec<Transmit> = std::iter::from_fn(|| l.poll_transmit()).collect();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].peer, &again[0].data), (udp(5098), &ok_bytes));
    l.handle_message(t0 + MS, SipMessage::Request(options), udp(5098));
    assert_eq!(
        drain(&mut l).iter().map(code).collect::<Vec<_>>(),
        vec![200]
    );
    assert_eq!(l.len(), 5);
    // Until Timer J ends it, from the BYE's arrival.
    let j = t0 + TimerConfig::default().timer_j(false);
    l.handle_timeout(j - MS);
    l.handle_message(j - MS, SipMessage::Request(bye.clone()), udp(5098));
    assert_eq!(drain(&mut l).len(), 1);
    l.handle_timeout(j);
    assert!(l.state(sbye).is_none());
    // What one lingering transaction costs before its strings: the request
    // boxed and dropped, its strings in one allocation, each held once,
    // deadlines as words (736 bytes at first, then 360, then 224).
    assert!(
        std::mem::size_of::<Tx>() <= 192,
        "{}",
        std::mem::size_of::<Tx>()
    );
}

/// The index tables hold ids and rehash from the transactions' own keys as
/// they grow: every one of thousands of transactions stays findable by its
/// responses, retransmissions and ACKs, and none is left behind.
#[test]
fn thousands_of_transactions_stay_findable_as_their_tables_grow() {
    const N: usize = 3000;
    let mut l = layer();
    let t0 = Instant::now();
    let byes: Vec<_> = (0..N)
        .map(|i| request_in(Method::Bye, &format!("z9hG4bKc{i}"), &format!("c{i}")))
        .collect();
    for r in &byes {
        l.send_request(t0, r.clone(), udp(5099));
    }
    let invites: Vec<_> = (0..N)
        .map(|i| request_in(Method::Invite, &format!("z9hG4bKs{i}"), &format!("s{i}")))
        .collect();
    for r in &invites {
        l.handle_message(t0, SipMessage::Request(r.clone()), udp(5098));
    }
    drain(&mut l);
    let server_txs: Vec<TxId> = events(&mut l)
        .into_iter()
        .map(|e| match e {
            TuEvent::Request { tx, .. } => tx,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(server_txs.len(), N);
    for r in byes.iter().rev() {
        l.handle_message(t0, response(r, 200), udp(5099));
    }
    for (r, tx) in invites.iter().zip(&server_txs) {
        l.respond(t0, *tx, response_to(r, 200, None, Some("t")));
        // A retransmitted INVITE is absorbed: found, not new.
        l.handle_message(t0, SipMessage::Request(r.clone()), udp(5098));
    }
    for (i, r) in invites.iter().enumerate() {
        let ack = ack_in(
            r.headers.call_id().unwrap(),
            &format!("z9hG4bKa{i}"),
            "<sip:bob@127.0.0.1>;tag=t",
        );
        l.handle_message(t0, SipMessage::Request(ack), udp(5098));
    }
    let ev = events(&mut l);
    let responses = ev
        .iter()
        .filter(|e| matches!(e, TuEvent::Response { .. }))
        .count();
    let acked: std::collections::HashSet<TxId> = ev
        .iter()
        .filter_map(|e| match e {
            TuEvent::Ack { tx: Some(tx), .. } => Some(*tx),
            _ => None,
        })
        .collect();
    assert_eq!((responses, acked.len(), ev.len()), (N, N, 2 * N));
    assert_eq!(acked, server_txs.iter().copied().collect());
    drain(&mut l);
    assert!(run_until(&mut l, t0, t0 + Duration::from_secs(40)).is_empty());
    assert!(events(&mut l).is_empty(), "every 2xx was acknowledged");
    assert!(l.is_empty());
}

/// Deadlines are packed with their kind: every kind comes back as itself.
#[test]
fn timer_kinds_pack_and_unpack() {
    for (i, kind) in TimerKind::ALL.into_iter().enumerate() {
        assert_eq!(kind as usize, i);
        assert_eq!(TimerKind::from_index(pack(12_345, kind) & 0xf), kind);
        assert_eq!(pack(12_345, kind) >> 4, 12_345);
    }
}

/// A table that grows rehashes from the hashes its entries keep, never
/// through the transactions (a cache miss and SipHash of its strings
/// each: a busy shard stalled tens of milliseconds): transactions out of
/// the id map while their table grows a hundredfold are all found once
/// back.
#[test]
fn index_tables_grow_without_reading_transactions() {
    let branch = |i: u64| format!("z9hG4bK{i}");
    let tx = |i: u64| {
        Box::new(Tx::new(
            Kind::ClientNonInvite,
            udp(5099),
            Method::Bye,
            [&branch(i), "", "c", ""],
        ))
    };
    let mut txs = Txs::default();
    let mut index = Index::default();
    for i in 0..10 {
        txs.insert(i, tx(i));
        index.add(&txs, i, Table::Client);
    }
    let out: Vec<_> = (0..10).map(|i| (i, txs.remove(&i).unwrap())).collect();
    for i in 10..1_010 {
        txs.insert(i, tx(i));
        index.add(&txs, i, Table::Client);
    }
    txs.extend(out);
    for i in 0..1_010 {
        let key = Key::Client {
            branch: &branch(i),
            method: &Method::Bye,
        };
        assert_eq!(index.find(&txs, &key), Some(i), "{i}");
    }
}
