//! Opus <-> G.711 transcoding in the relay, on real loopback UDP: a 1 kHz
//! tone sent as Opus arrives as PCMU (and the reverse) with the out
//! codec's payload type and timestamp step, still dominated by 1 kHz
//! (Goertzel); telephone-event passes through; a bad Opus packet is
//! counted and dropped; a G.711-only bridge stays byte-identical.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tandem_media::goertzel::tone_share;
use tandem_media::{Decoder, Encoder, g711};
use tandem_rtp::rtp::write_header;
use tandem_rtp::sdp::{Codec, Direction, NegotiatedMedia, PayloadFormat};
use tandem_rtp::{Leg, LegConfig, LegId, bridge};

const WAIT: Duration = Duration::from_millis(500);
const QUIET: Duration = Duration::from_millis(150);
const OPUS_PT: u8 = 111;
const TE_PT: u8 = 101;
/// 1 s of 20 ms packets.
const PACKETS: usize = 50;

fn cfg(id: u32) -> LegConfig {
    LegConfig {
        id: LegId(id),
        latching: true,
        media_timeout: None,
        seed: Some(u64::from(id) * 104_729),
        signal_ip: None,
    }
}

fn media(remote: SocketAddr, codec: Codec, pt: u8) -> NegotiatedMedia {
    let clock = if codec == Codec::Opus { 48_000 } else { 8000 };
    let codec = PayloadFormat::new(pt, codec);
    let mut te = PayloadFormat::new(TE_PT, Codec::TelephoneEvent);
    te.clock_rate = clock;
    NegotiatedMedia {
        remote_rtp: Some(remote),
        remote_rtcp: Some(SocketAddr::new(remote.ip(), remote.port() + 1)),
        codec: codec.clone(),
        telephone_event: Some(te.clone()),
        formats: vec![codec, te],
        ptime: 20,
        remote_direction: Direction::SendRecv,
        srtp: None,
    }
}

/// A 1 kHz sine, `n` samples at `rate` starting at sample `from`.
fn tone(from: usize, n: usize, rate: u32) -> Vec<i16> {
    (from..from + n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            (8000.0 * (2.0 * std::f32::consts::PI * 1000.0 * t).sin()) as i16
        })
        .collect()
}

/// Send one RTP packet from `ep` to `to`.
async fn send(ep: &Endpoint, to: SocketAddr, pt: u8, seq: u16, ts: u32, payload: &[u8]) {
    let mut buf = vec![0u8; 12 + payload.len()];
    write_header(&mut buf, false, pt, seq, ts, ep.ssrc);
    buf[12..].copy_from_slice(payload);
    ep.sock.send_to(&buf, to).await.unwrap();
}

/// Two legs with the given codecs, bridged, each endpoint latched.
async fn legs(
    base: u16,
    ca: (Codec, u8),
    cb: (Codec, u8),
) -> (tandem_rtp::PortPool, Leg, Leg, Endpoint, Endpoint) {
    let pool = pool(base, 4);
    let a = Leg::start(pool.allocate().unwrap(), cfg(1), None).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), cfg(2), None).unwrap();
    let ea = Endpoint::new(0xA).await;
    let eb = Endpoint::new(0xB).await;
    a.set_media(&media(ea.addr(), ca.0, ca.1));
    b.set_media(&media(eb.addr(), cb.0, cb.1));
    bridge(&a, &b);
    (pool, a, b, ea, eb)
}

/// Share of the 1 kHz bin in `pcm` (skipping the codec's start-up), and
/// the shares at two other frequencies, which must be small.
fn assert_1khz(pcm: &[i16], rate: u32) {
    let skip = rate as usize / 5;
    assert!(pcm.len() > skip * 3, "only {} samples", pcm.len());
    let block = &pcm[skip..];
    let at = |f: f32| tone_share(block, f, rate);
    let (k1, k05, k2) = (at(1000.0), at(500.0), at(2000.0));
    assert!(k1 > 0.7, "1 kHz share {k1}");
    assert!(k05 < 0.05 && k2 < 0.05, "other shares {k05} {k2}");
    assert!(tandem_media::goertzel::rms(block) > 2000.0);
}

/// Timestamps step by `step`, sequence numbers by one, one SSRC.
fn assert_stream(pkts: &[Rx], pt: u8, step: u32) {
    assert_continuous(pkts);
    for w in pkts.windows(2) {
        assert_eq!(w[1].h.ts.wrapping_sub(w[0].h.ts), step);
    }
    assert!(pkts.iter().all(|p| p.h.pt == pt));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_leg_to_pcmu_leg_is_transcoded() {
    let (_pool, a, b, ea, eb) = legs(22400, (Codec::Opus, OPUS_PT), (Codec::Pcmu, 0)).await;
    let mut enc = Encoder::new(tandem_media::Codec::Opus).unwrap();
    for i in 0..PACKETS {
        let mut payload = Vec::new();
        enc.encode(&tone(i * 960, 960, 48_000), &mut payload)
            .unwrap();
        let (seq, ts) = (7000 + i as u16, 90_000 + 960 * i as u32);
        send(&ea, a.local_rtp_addr(), OPUS_PT, seq, ts, &payload).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = eb.recv_n(PACKETS, WAIT).await;
    assert!(got.len() >= PACKETS - 2, "{} packets", got.len());
    assert_stream(&got, 0, 160);
    let mut pcm = Vec::new();
    for p in &got {
        assert_eq!(p.payload.len(), 160);
        g711::decode_ulaw(&p.payload, &mut pcm);
    }
    assert_1khz(&pcm, 8000);

    // telephone-event is not transcoded: it goes on the same stream (next
    // sequence number, timestamp in B's 8 kHz clock, no marker of a
    // source switch), with its duration in B's telephone-event clock.
    let last = got.last().unwrap().h;
    let ts_in = 90_000 + 960 * (PACKETS as u32 - 1);
    let event = [5, 0x8a, 0x03, 0xc0];
    send(&ea, a.local_rtp_addr(), TE_PT, 7050, ts_in, &event).await;
    let p = eb.recv(WAIT).await.unwrap();
    assert_eq!((p.h.pt, &p.payload[..]), (TE_PT, &[5, 0x8a, 0, 160][..]));
    assert_eq!((p.h.ssrc, p.h.seq), (last.ssrc, last.seq.wrapping_add(1)));
    assert!(!p.h.marker);
    let dt = p.h.ts.wrapping_sub(last.ts) as i32;
    assert!(dt.abs() <= 480, "event ts {dt} samples from the audio");

    // A packet that is not Opus is counted and concealed (Opus PLC), so the
    // stream keeps its pace.
    send(&ea, a.local_rtp_addr(), OPUS_PT, 7051, 200_960, &[0xff; 3]).await;
    let c = eb.recv(WAIT).await.unwrap();
    assert_eq!((c.h.pt, c.payload.len()), (0, 160));
    assert_eq!(c.h.seq, p.h.seq.wrapping_add(1));
    assert_eq!(a.stats().transcode_errors, 1);
    let mut payload = Vec::new();
    enc.encode(&tone(0, 960, 48_000), &mut payload).unwrap();
    send(&ea, a.local_rtp_addr(), OPUS_PT, 7052, 201_920, &payload).await;
    let q = eb.recv(WAIT).await.unwrap();
    assert_eq!((q.h.pt, q.payload.len()), (0, 160));
    assert_eq!(q.h.seq, c.h.seq.wrapping_add(1));
    assert_eq!(q.h.ts.wrapping_sub(c.h.ts), 160);
    assert!(eb.recv(QUIET).await.is_none());
    assert_eq!(b.stats().transcode_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcmu_leg_to_opus_leg_is_transcoded() {
    let (_pool, a, _b, ea, eb) = legs(22420, (Codec::Pcmu, 0), (Codec::Opus, OPUS_PT)).await;
    for i in 0..PACKETS {
        let mut payload = Vec::new();
        g711::encode_ulaw(&tone(i * 160, 160, 8000), &mut payload);
        let (seq, ts) = (100 + i as u16, 4000 + 160 * i as u32);
        send(&ea, a.local_rtp_addr(), 0, seq, ts, &payload).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = eb.recv_n(PACKETS, WAIT).await;
    assert!(got.len() >= PACKETS - 2, "{} packets", got.len());
    assert_stream(&got, OPUS_PT, 960);
    let mut dec = Decoder::new(tandem_media::Codec::Opus).unwrap();
    let mut pcm = Vec::new();
    for p in &got {
        dec.decode(&p.payload, &mut pcm).unwrap();
    }
    assert_eq!(pcm.len(), got.len() * 960);
    assert_1khz(&pcm, 48_000);
    assert_eq!(a.stats().transcode_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_only_bridge_relays_payloads_byte_identical() {
    let (_pool, a, b, mut ea, eb) = legs(22440, (Codec::Pcmu, 0), (Codec::Pcmu, 0)).await;
    let payload = |i: usize| {
        (0..160)
            .map(|j| (i * 31 + j * 7) as u8)
            .collect::<Vec<u8>>()
    };
    ea.send_many(a.local_rtp_addr(), PACKETS, 5, |_| false, payload)
        .await;
    let got = eb.recv_n(PACKETS, WAIT).await;
    assert_eq!(got.len(), PACKETS);
    assert_stream(&got, 0, 160);
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.payload, payload(i), "packet {i}");
    }
    assert_eq!(a.stats().transcode_errors + b.stats().transcode_errors, 0);
}
