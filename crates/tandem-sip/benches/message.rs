//! Parse and serialize cost of realistic SIP messages (issue 2 budget: an
//! INVITE with SDP round trip under 10 µs).
//!
//! `cargo bench -p tandem-sip --bench message -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

/// The allocator the `tandem` binary runs on (crates/tandem/src/main.rs):
/// a parsed message is a dozen small allocations, so the allocator is part
/// of the figure.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A carrier-style INVITE: two Vias, Record-Route, Contact, Allow, Supported,
/// User-Agent and an SDP offer with PCMU, PCMA and telephone-event.
fn invite() -> Vec<u8> {
    let sdp = "v=0\r\n\
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
    let head = format!(
        "INVITE sip:+14155550123@tandem.example.com:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---7f3e2a1b9c;rport\r\n\
Via: SIP/2.0/UDP 10.0.0.12:5060;branch=z9hG4bK3a7c9e1f;received=10.0.0.12\r\n\
Record-Route: <sip:198.51.100.7;lr;ftag=as6f8e2b1c>\r\n\
Max-Forwards: 69\r\n\
From: \"Alice Smith\" <sip:+12125550199@carrier.example.net>;tag=as6f8e2b1c\r\n\
To: <sip:+14155550123@tandem.example.com>\r\n\
Call-ID: 4f9e1b2c7d3a5e6f8a0b1c2d3e4f5a6b@198.51.100.7\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:+12125550199@198.51.100.7:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE, PRACK\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: CarrierSBC/4.2.1\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n",
        sdp.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(sdp.as_bytes());
    out
}

/// The 200 OK a callee answers that INVITE with (SDP answer included).
fn ok_200() -> Vec<u8> {
    let sdp = "v=0\r\n\
o=tandem 1 1 IN IP4 192.0.2.20\r\n\
s=-\r\n\
c=IN IP4 192.0.2.20\r\n\
t=0 0\r\n\
m=audio 30000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n";
    let head = format!(
        "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---7f3e2a1b9c;rport=5060\r\n\
Via: SIP/2.0/UDP 10.0.0.12:5060;branch=z9hG4bK3a7c9e1f;received=10.0.0.12\r\n\
Record-Route: <sip:198.51.100.7;lr;ftag=as6f8e2b1c>\r\n\
From: \"Alice Smith\" <sip:+12125550199@carrier.example.net>;tag=as6f8e2b1c\r\n\
To: <sip:+14155550123@tandem.example.com>;tag=td7a91c3e5\r\n\
Call-ID: 4f9e1b2c7d3a5e6f8a0b1c2d3e4f5a6b@198.51.100.7\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:tandem@192.0.2.20:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, INFO, UPDATE\r\n\
Supported: timer\r\n\
Server: Tandem/0.1\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n",
        sdp.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(sdp.as_bytes());
    out
}

/// The ACK for that 200 (its own branch, no body).
fn ack() -> Vec<u8> {
    b"ACK sip:tandem@192.0.2.20:5060;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---0b1c2d3e4f;rport\r\n\
Route: <sip:198.51.100.7;lr;ftag=as6f8e2b1c>\r\n\
Max-Forwards: 70\r\n\
From: \"Alice Smith\" <sip:+12125550199@carrier.example.net>;tag=as6f8e2b1c\r\n\
To: <sip:+14155550123@tandem.example.com>;tag=td7a91c3e5\r\n\
Call-ID: 4f9e1b2c7d3a5e6f8a0b1c2d3e4f5a6b@198.51.100.7\r\n\
CSeq: 102 ACK\r\n\
Content-Length: 0\r\n\r\n"
        .to_vec()
}

fn bench_messages(c: &mut Criterion) {
    let invite = invite();
    let ok = ok_200();
    let parsed = tandem_sip::parse(&invite).expect("benchmark INVITE parses");
    // The fixture must survive a round trip, or the figures mean nothing.
    let again = tandem_sip::to_bytes(&parsed);
    assert_eq!(
        tandem_sip::parse(&again).expect("re-parses"),
        parsed,
        "round trip changes the INVITE"
    );
    tandem_sip::parse(&ok).expect("benchmark 200 OK parses");
    let ack = ack();
    tandem_sip::parse(&ack).expect("benchmark ACK parses");
    let tandem_sip::message::SipMessage::Request(invite_req) = &parsed else {
        unreachable!("an INVITE is a request")
    };

    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Bytes(invite.len() as u64));
    g.bench_function("invite_parse", |b| {
        b.iter(|| tandem_sip::parse(black_box(&invite)).unwrap())
    });
    g.bench_function("invite_serialize", |b| {
        b.iter(|| tandem_sip::to_bytes(black_box(&parsed)))
    });
    g.bench_function("invite_round_trip", |b| {
        b.iter(|| tandem_sip::to_bytes(&tandem_sip::parse(black_box(&invite)).unwrap()))
    });
    // What rsip alone costs on the same bytes (Tandem's wrapper adds
    // normalisation and validation around it): the lower bound of the parse.
    g.bench_function("invite_rsip_only", |b| {
        b.iter(|| rsip::SipMessage::try_from(black_box(invite.as_slice())).unwrap())
    });
    g.throughput(Throughput::Bytes(ok.len() as u64));
    g.bench_function("ok200_parse", |b| {
        b.iter(|| tandem_sip::parse(black_box(&ok)).unwrap())
    });
    g.throughput(Throughput::Bytes(ack.len() as u64));
    g.bench_function("ack_parse", |b| {
        b.iter(|| tandem_sip::parse(black_box(&ack)).unwrap())
    });
    // What a UAS's transaction user spends building a 200 for that INVITE.
    g.throughput(Throughput::Elements(1));
    g.bench_function("response_200_build", |b| {
        b.iter(|| {
            tandem_sip::builder::response_to(black_box(invite_req), 200, None, Some("td7a91c3e5"))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_messages);
criterion_main!(benches);
