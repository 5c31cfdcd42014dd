//! Sans-IO transaction throughput on one core (issue 2 budget: over 200,000
//! transactions/s). Virtual time: the clock is an `Instant` moved by the
//! benchmark, so Timer L / Timer K retire transactions without waiting.
//!
//! Each lifecycle is measured twice:
//! - `full`: bytes in, bytes out, as the transport drives the layer: incoming
//!   messages are parsed and the TU builds its requests/responses in the loop;
//! - `preparsed`: incoming messages are parsed and TU messages built before the
//!   clock starts, so only the state machine (with the serialization of what it
//!   sends, which it owns) is timed.
//!
//! Transactions run in chunks of [`CHUNK`]: after each chunk virtual time jumps
//! past every timer and `handle_timeout` retires them (timed), so at most
//! `CHUNK` transactions are live.
//!
//! `cargo bench -p tandem-sip --bench transaction -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

/// The allocator the `tandem` binary runs on (crates/tandem/src/main.rs):
/// a parsed message is a dozen small allocations, so the allocator is part
/// of the figure.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tandem_sip::builder::{IdGen, RequestBuilder, response_to};
use tandem_sip::message::{Header, Method, Request, Response, SipMessage};
use tandem_sip::transaction::{Peer, TimerConfig, TransactionLayer, Transport, TuEvent};

/// Live transactions at most, between two sweeps of the timers.
const CHUNK: u64 = 1024;
/// Past every transaction timer with default T1/T2/T4 (64*T1 = 32 s).
const SWEEP: Duration = Duration::from_secs(40);

fn peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], 5098)),
    }
}

const SDP: &str = "v=0\r\n\
o=- 3911263748 3911263748 IN IP4 203.0.113.10\r\n\
s=-\r\n\
c=IN IP4 203.0.113.10\r\n\
t=0 0\r\n\
m=audio 16384 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// The INVITE of server transaction `i` (the shape of benches/message.rs).
fn invite_bytes(i: u64) -> Vec<u8> {
    format!(
        "INVITE sip:+14155550123@tandem.example.com:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bK-inv-{i:016x};rport\r\n\
Via: SIP/2.0/UDP 10.0.0.12:5060;branch=z9hG4bK3a7c9e1f;received=10.0.0.12\r\n\
Record-Route: <sip:127.0.0.1:5098;lr;ftag=as6f8e2b1c>\r\n\
Max-Forwards: 69\r\n\
From: \"Alice Smith\" <sip:+12125550199@carrier.example.net>;tag=as6f8e2b1c\r\n\
To: <sip:+14155550123@tandem.example.com>\r\n\
Call-ID: bench-{i:016x}@198.51.100.7\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:+12125550199@127.0.0.1:5098;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE, PRACK\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: CarrierSBC/4.2.1\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
    .into_bytes()
}

/// The ACK for the 2xx of server transaction `i` (own branch, §13.2.2.4).
fn ack_bytes(i: u64) -> Vec<u8> {
    format!(
        "ACK sip:tandem@127.0.0.1:5060;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bK-ack-{i:016x};rport\r\n\
Route: <sip:127.0.0.1:5098;lr;ftag=as6f8e2b1c>\r\n\
Max-Forwards: 70\r\n\
From: \"Alice Smith\" <sip:+12125550199@carrier.example.net>;tag=as6f8e2b1c\r\n\
To: <sip:+14155550123@tandem.example.com>;tag=uas{i:x}\r\n\
Call-ID: bench-{i:016x}@198.51.100.7\r\n\
CSeq: 102 ACK\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The request of client transaction `i` (an OPTIONS ping of a trunk).
fn options_request(i: u64) -> Request {
    RequestBuilder::new(
        Method::Options,
        "sip:trunk.example.net:5060".try_into().expect("valid URI"),
    )
    .via("UDP", "127.0.0.1:5060", &format!("z9hG4bK-opt-{i:016x}"))
    .max_forwards(70)
    .from("<sip:tandem@127.0.0.1>;tag=tandem1")
    .to("<sip:trunk.example.net>")
    .call_id(format!("opt-{i:016x}"))
    .cseq(1)
    .build()
}

/// The trunk's 200 to client transaction `i`.
fn options_ok_bytes(i: u64) -> Vec<u8> {
    format!(
        "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-opt-{i:016x};rport=5060\r\n\
From: <sip:tandem@127.0.0.1>;tag=tandem1\r\n\
To: <sip:trunk.example.net>;tag=trunk{i:x}\r\n\
Call-ID: opt-{i:016x}\r\n\
CSeq: 1 OPTIONS\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n\
Accept: application/sdp\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn parse(b: &[u8]) -> SipMessage {
    tandem_sip::parse(b).expect("benchmark message parses")
}

/// The UAS's 180 and 200 (with Contact) for an INVITE.
fn uas_responses(invite: &Request, i: u64) -> (Response, Response) {
    let tag = format!("uas{i:x}");
    let ringing = response_to(invite, 180, None, Some(&tag));
    let mut ok = response_to(invite, 200, None, Some(&tag));
    ok.headers.push(Header::Contact(
        "<sip:tandem@127.0.0.1:5060;transport=udp>"
            .to_owned()
            .into(),
    ));
    (ringing, ok)
}

/// Drains what the layer sends, touching each datagram as a transport would.
fn drain(l: &mut TransactionLayer) -> usize {
    let mut n = 0;
    while let Some(t) = l.poll_transmit() {
        n += black_box(t.data.len());
    }
    n
}

/// Server INVITE: INVITE → 100 → TU responds 180, 200 → ACK reaches the TU
/// → Timer L retires the transaction (RFC 6026).
/// A message pre-parsed (`Ok`) or still bytes to parse in the timed loop (`Err`).
type Input = Result<SipMessage, Vec<u8>>;

fn take(m: Input) -> SipMessage {
    m.unwrap_or_else(|bytes| parse(&bytes))
}

struct ServerInvite {
    invite: Input,
    ack: Input,
    /// The TU's 180 and 200, or `None` to build them in the timed loop.
    responses: Option<(Response, Response)>,
}

fn server_invite_run(
    l: &mut TransactionLayer,
    now: &mut Instant,
    inputs: &mut Vec<ServerInvite>,
    first: u64,
) {
    let p = peer();
    // `drain`, so that freeing the input buffer itself stays out of the timing.
    for (k, item) in inputs.drain(..).enumerate() {
        let i = first + k as u64;
        l.handle_message(*now, take(item.invite), p);
        let Some(TuEvent::Request { tx, request, .. }) = l.poll_event() else {
            panic!("INVITE did not reach the TU")
        };
        drain(l); // the 100 Trying
        let (ringing, ok) = item.responses.unwrap_or_else(|| uas_responses(&request, i));
        assert!(l.respond(*now, tx, ringing));
        assert!(l.respond(*now, tx, ok));
        drain(l);
        l.handle_message(*now, take(item.ack), p);
        let Some(TuEvent::Ack { tx: Some(_), .. }) = l.poll_event() else {
            panic!("ACK not matched")
        };
        *now += Duration::from_micros(1);
        if (k as u64 + 1).is_multiple_of(CHUNK) {
            sweep(l, now);
        }
    }
    sweep(l, now);
}

fn sweep(l: &mut TransactionLayer, now: &mut Instant) {
    *now += SWEEP;
    l.handle_timeout(*now);
    while l.poll_event().is_some() {}
    drain(l);
    debug_assert!(l.is_empty());
}

/// Client non-INVITE: request sent → 200 received → Timer K retires it.
fn client_non_invite_run(
    l: &mut TransactionLayer,
    now: &mut Instant,
    requests: &mut Vec<Option<Request>>,
    responses: &mut Vec<Input>,
    first: u64,
) {
    let p = peer();
    for (k, (req, resp)) in requests.drain(..).zip(responses.drain(..)).enumerate() {
        let i = first + k as u64;
        let req = req.unwrap_or_else(|| options_request(i));
        let tx = l.send_request(*now, req, p);
        drain(l);
        l.handle_message(*now, take(resp), p);
        let Some(TuEvent::Response { tx: got, .. }) = l.poll_event() else {
            panic!("response not matched")
        };
        assert_eq!(got, tx);
        *now += Duration::from_micros(1);
        if (k as u64 + 1).is_multiple_of(CHUNK) {
            sweep(l, now);
        }
    }
    sweep(l, now);
}

fn bench_transactions(c: &mut Criterion) {
    let mut g = c.benchmark_group("transaction");
    g.throughput(Throughput::Elements(1));

    for preparsed in [false, true] {
        let name = if preparsed {
            "server_invite_preparsed"
        } else {
            "server_invite_full"
        };
        g.bench_function(name, |b| {
            let mut l = TransactionLayer::new(TimerConfig::default(), IdGen::seeded(1));
            let mut now = Instant::now();
            let mut next = 0u64;
            b.iter_custom(|iters| {
                let first = next;
                next += iters;
                // Untimed: the inputs of `iters` transactions.
                let mut inputs: Vec<ServerInvite> = (first..first + iters)
                    .map(|i| {
                        let (inv, ack) = (invite_bytes(i), ack_bytes(i));
                        if preparsed {
                            let invite = parse(&inv);
                            let SipMessage::Request(r) = &invite else {
                                unreachable!()
                            };
                            let responses = Some(uas_responses(r, i));
                            ServerInvite {
                                invite: Ok(invite),
                                ack: Ok(parse(&ack)),
                                responses,
                            }
                        } else {
                            ServerInvite {
                                invite: Err(inv),
                                ack: Err(ack),
                                responses: None,
                            }
                        }
                    })
                    .collect();
                let start = Instant::now();
                server_invite_run(&mut l, &mut now, &mut inputs, first);
                let elapsed = start.elapsed();
                drop(inputs);
                elapsed
            });
        });
    }

    for preparsed in [false, true] {
        let name = if preparsed {
            "client_non_invite_preparsed"
        } else {
            "client_non_invite_full"
        };
        g.bench_function(name, |b| {
            let mut l = TransactionLayer::new(TimerConfig::default(), IdGen::seeded(2));
            let mut now = Instant::now();
            let mut next = 0u64;
            b.iter_custom(|iters| {
                let first = next;
                next += iters;
                let range = first..first + iters;
                let (mut requests, mut responses): (Vec<_>, Vec<_>) = if preparsed {
                    range
                        .map(|i| (Some(options_request(i)), Ok(parse(&options_ok_bytes(i)))))
                        .unzip()
                } else {
                    range.map(|i| (None, Err(options_ok_bytes(i)))).unzip()
                };
                let start = Instant::now();
                client_non_invite_run(&mut l, &mut now, &mut requests, &mut responses, first);
                let elapsed = start.elapsed();
                drop((requests, responses));
                elapsed
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench_transactions);
criterion_main!(benches);
