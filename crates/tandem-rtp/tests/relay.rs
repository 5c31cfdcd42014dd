//! The relay on real loopback UDP: delivery and order, latching, rewriting
//! across source switches, payload-type mapping, hold, RTCP, taps,
//! injection, media timeouts and port release.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tandem_rtp::relay::{PcmSource, TapPacket, tap_channel};
use tandem_rtp::sdp::{Codec, Direction, NegotiatedMedia, PayloadFormat};
use tandem_rtp::{Leg, LegConfig, LegId, MediaEvent, bridge};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_millis(500);
const QUIET: Duration = Duration::from_millis(100);

fn cfg(id: u32) -> LegConfig {
    LegConfig {
        id: LegId(id),
        latching: true,
        media_timeout: None,
        seed: Some(u64::from(id) * 7919),
        signal_ip: None,
    }
}

fn media(remote: SocketAddr, codec: Codec, pt: u8, te_pt: Option<u8>) -> NegotiatedMedia {
    let codec = PayloadFormat::new(pt, codec);
    let te = te_pt.map(|p| PayloadFormat::new(p, Codec::TelephoneEvent));
    let mut formats = vec![codec.clone()];
    formats.extend(te.clone());
    NegotiatedMedia {
        remote_rtp: Some(remote),
        remote_rtcp: Some(SocketAddr::new(remote.ip(), remote.port() + 1)),
        codec,
        telephone_event: te,
        formats,
        ptime: 20,
        remote_direction: Direction::SendRecv,
        srtp: None,
    }
}

async fn next_event(rx: &mut mpsc::Receiver<MediaEvent>) -> MediaEvent {
    tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .expect("event in time")
        .expect("channel open")
}

/// No media event comes within `ms`.
async fn quiet_for(rx: &mut mpsc::Receiver<MediaEvent>, ms: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(ms), rx.recv())
        .await
        .is_err()
}

/// Two legs bridged, both endpoints latched, receive buffers empty.
async fn bridged(base: u16) -> (tandem_rtp::PortPool, Leg, Leg, Endpoint, Endpoint) {
    let pool = pool(base, 4);
    let a = Leg::start(pool.allocate().unwrap(), cfg(1), None).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), cfg(2), None).unwrap();
    bridge(&a, &b);
    let (ea, eb) = latched(&a, &b).await;
    (pool, a, b, ea, eb)
}

/// An endpoint for each of two bridged legs, both latched, receive
/// buffers empty.
async fn latched(a: &Leg, b: &Leg) -> (Endpoint, Endpoint) {
    let mut ea = Endpoint::new(0xA).await;
    let mut eb = Endpoint::new(0xB).await;
    ea.send(a.local_rtp_addr(), 0, &[0; 160]).await;
    eb.send(b.local_rtp_addr(), 0, &[0; 160]).await;
    let _ = ea.drain(QUIET).await;
    let _ = eb.drain(QUIET).await;
    (ea, eb)
}

fn numbered(i: usize) -> Vec<u8> {
    let mut p = vec![0u8; 160];
    p[..4].copy_from_slice(&(i as u32).to_be_bytes());
    p
}

fn number_of(p: &Rx) -> u32 {
    u32::from_be_bytes([p.payload[0], p.payload[1], p.payload[2], p.payload[3]])
}

/// Two endpoints exchange 1,000 packets each way through the relay: none
/// lost, order kept, one continuous stream each way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_packets_each_way_arrive_in_order() {
    let (_pool, a, b, ea, eb) = bridged(22000).await;
    const N: usize = 1000;
    let (ra, rb) = (ea.clone(), eb.clone());
    let recv_a = tokio::spawn(async move { ra.recv_n(N, WAIT).await });
    let recv_b = tokio::spawn(async move { rb.recv_n(N, WAIT).await });
    let (mut sa, mut sb) = (ea.clone(), eb.clone());
    let (a_addr, b_addr) = (a.local_rtp_addr(), b.local_rtp_addr());
    let send_a =
        tokio::spawn(async move { sa.send_many(a_addr, N, 20, |_| false, numbered).await });
    let send_b =
        tokio::spawn(async move { sb.send_many(b_addr, N, 20, |_| false, numbered).await });
    send_a.await.unwrap();
    send_b.await.unwrap();
    for (got, name) in [
        (recv_b.await.unwrap(), "A->B"),
        (recv_a.await.unwrap(), "B->A"),
    ] {
        assert_eq!(got.len(), N, "{name}: lost packets");
        let order: Vec<u32> = got.iter().map(number_of).collect();
        assert_eq!(order, (0..N as u32).collect::<Vec<_>>(), "{name}: order");
        assert_continuous(&got);
    }
    assert_eq!(a.stats().rx_packets, N as u64 + 1);
    // Plus the latching packet, if B had latched before it came.
    assert!(b.stats().tx_packets >= N as u64);
    assert_eq!(a.stats().tx_errors + b.stats().tx_errors, 0);
}

/// Latching sends to where the packets come from (the NAT's address), not
/// to the SDP address, and ignores other senders afterwards.
#[tokio::test]
async fn latching_follows_the_source_and_rejects_strangers() {
    let pool = pool(22020, 4);
    let (etx, mut erx) = mpsc::channel(16);
    let a = Leg::start(pool.allocate().unwrap(), cfg(1), Some(etx)).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), cfg(2), None).unwrap();
    bridge(&a, &b);
    let mut nat = Endpoint::new(1).await;
    let mut eb = Endpoint::new(2).await;
    // The SDP names an address nobody listens on.
    a.set_media(&media("127.0.0.1:9".parse().unwrap(), Codec::Pcmu, 0, None));
    b.set_media(&media(eb.addr(), Codec::Pcmu, 0, None));
    nat.send(a.local_rtp_addr(), 0, &[1; 160]).await;
    assert_eq!(
        next_event(&mut erx).await,
        MediaEvent::Latched {
            leg: LegId(1),
            rtcp: false,
            addr: nat.addr()
        }
    );
    assert_eq!(a.remote_rtp_addr(), Some(nat.addr()));
    assert!(eb.recv(WAIT).await.is_some());
    eb.send(b.local_rtp_addr(), 0, &[2; 160]).await;
    assert_eq!(nat.recv(WAIT).await.unwrap().payload, vec![2; 160]);
    // A stranger's packets are dropped.
    let mut stranger = Endpoint::new(3).await;
    stranger.send(a.local_rtp_addr(), 0, &[3; 160]).await;
    assert!(eb.recv(QUIET).await.is_none());
    assert_eq!(a.stats().rejected, 1);

    // Without latching the SDP address is used and anyone is heard.
    a.set_latching(false);
    a.set_remote(Some(nat.addr()), None);
    stranger.send(a.local_rtp_addr(), 0, &[4; 160]).await;
    assert_eq!(eb.recv(WAIT).await.unwrap().payload, vec![4; 160]);
}

/// What the caller hears when the source changes: Tandem's ringback, then
/// callee 1's early media, then callee 2's answer. One SSRC, sequence
/// numbers +1, timestamps moving forward, marker at each switch.
#[tokio::test]
async fn source_switches_give_one_continuous_stream() {
    let pool = pool(22040, 6);
    let caller = Leg::start(pool.allocate().unwrap(), cfg(1), None).unwrap();
    let b1 = Leg::start(pool.allocate().unwrap(), cfg(2), None).unwrap();
    let b2 = Leg::start(pool.allocate().unwrap(), cfg(3), None).unwrap();
    let ea = Endpoint::new(0xCA11).await;
    let mut e1 = Endpoint::new(0x1111).await;
    let mut e2 = Endpoint::new(0x2222).await;
    e1.seq = 60_000; // wraps during the test
    caller.set_media(&media(ea.addr(), Codec::Pcmu, 0, Some(101)));
    b1.set_media(&media(e1.addr(), Codec::Pcmu, 0, Some(101)));
    b2.set_media(&media(e2.addr(), Codec::Pcmu, 0, Some(101)));

    // 1. Ringback: 10 frames of generated audio.
    let mut left = 10;
    let mut ring = caller.inject(PcmSource::new(move |pcm: &mut [i16]| {
        pcm.fill(1000);
        left -= 1;
        left >= 0
    }));
    // Early media from callee 1 is muted while ringback plays.
    b1.relay_to(Some(&caller));
    e1.send(b1.local_rtp_addr(), 0, &[9; 160]).await;
    ring.finished().await;
    let mut got = ea.drain(QUIET).await;
    assert_eq!(got.len(), 10, "ringback frames only");

    // 2. Early media from callee 1.
    for _ in 0..5 {
        e1.send(b1.local_rtp_addr(), 0, &[1; 160]).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 3. Callee 2 answers; callee 1 is cancelled.
    b1.relay_to(None);
    b2.relay_to(Some(&caller));
    for _ in 0..5 {
        e2.send(b2.local_rtp_addr(), 0, &[2; 160]).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    got.extend(ea.drain(QUIET).await);
    assert_eq!(got.len(), 20);
    assert_continuous(&got);
    assert_eq!(got[0].h.ssrc, caller.ssrc());
    let markers: Vec<usize> = (0..got.len()).filter(|&i| got[i].h.marker).collect();
    assert_eq!(markers, vec![0, 10, 15]);
    assert!(got[10..15].iter().all(|p| p.payload == vec![1; 160]));
    assert!(got[15..].iter().all(|p| p.payload == vec![2; 160]));
    // Timestamps follow the wall clock across the switch (at least a frame).
    for i in [10, 15] {
        assert!(got[i].h.ts.wrapping_sub(got[i - 1].h.ts) >= 160);
    }
}

/// Payload types are rewritten to each leg's own numbers, and PCMU is
/// transcoded to PCMA when the other leg settled on A-law.
#[tokio::test]
async fn payload_types_map_per_leg_and_g711_laws_are_transcoded() {
    let pool = pool(22060, 4);
    let a = Leg::start(pool.allocate().unwrap(), cfg(1), None).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), cfg(2), None).unwrap();
    let mut ea = Endpoint::new(1).await;
    let eb = Endpoint::new(2).await;
    a.set_media(&media(ea.addr(), Codec::Pcmu, 0, Some(101)));
    b.set_media(&media(eb.addr(), Codec::Pcma, 8, Some(96)));
    bridge(&a, &b);
    let ulaw_silence = 0xFF;
    ea.send(a.local_rtp_addr(), 0, &[ulaw_silence; 160]).await;
    let p = eb.recv(WAIT).await.unwrap();
    assert_eq!(p.h.pt, 8);
    assert_eq!(p.payload, vec![tandem_media::g711::linear_to_alaw(0); 160]);
    ea.send(a.local_rtp_addr(), 101, &[5, 0x8a, 0, 160]).await;
    let p = eb.recv(WAIT).await.unwrap();
    assert_eq!((p.h.pt, p.payload), (96, vec![5, 0x8a, 0, 160]));
    // A payload type not negotiated on A is not relayed.
    ea.send(a.local_rtp_addr(), 18, &[0; 20]).await;
    assert!(eb.recv(QUIET).await.is_none());
    assert_eq!(a.stats().not_relayed, 1);
}

/// An injection stopped before its task ever ran (the callee answers while
/// the ringback is only just started, on a busy runtime) unmutes the leg:
/// the other side's audio is relayed again and the end is reported.
#[tokio::test]
async fn an_injection_stopped_before_it_ran_unmutes_the_leg() {
    let pool = pool(22480, 4);
    let (etx, mut erx) = mpsc::channel(16);
    let a = Leg::start(pool.allocate().unwrap(), cfg(1), Some(etx)).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), cfg(2), None).unwrap();
    bridge(&a, &b);
    let ea = Endpoint::new(0xA).await;
    let mut eb = Endpoint::new(0xB).await;
    a.set_media(&media(ea.addr(), Codec::Pcmu, 0, None));
    b.set_media(&media(eb.addr(), Codec::Pcmu, 0, None));
    // Started and stopped with no await between: on this single-threaded
    // runtime its task cannot have been polled.
    let ring = a.inject(PcmSource::new(|pcm: &mut [i16]| {
        pcm.fill(0);
        true
    }));
    let id = ring.id();
    ring.stop();
    assert_eq!(
        next_event(&mut erx).await,
        MediaEvent::InjectionDone { leg: LegId(1), id }
    );
    eb.send(b.local_rtp_addr(), 0, &[7; 160]).await;
    assert_eq!(ea.recv(WAIT).await.unwrap().payload, vec![7; 160]);
    assert_eq!(b.stats().not_relayed, 0);
}

/// Sends an RTP packet whose payload is all `fill` from `from` to `to`,
/// right behind a datagram to `trigger`, and returns when the trigger
/// arrives: the reactor turn that wakes this task has also found the
/// packet and woken `to`'s receive task, which has not run yet (on a
/// single-threaded runtime).
async fn send_behind_trigger(
    from: &std::net::UdpSocket,
    trigger: &tokio::net::UdpSocket,
    to: SocketAddr,
    fill: u8,
) {
    let mut pkt = vec![0u8; 172];
    tandem_rtp::rtp::write_header(&mut pkt, false, 0, 1, 160, 0x5100 | u32::from(fill));
    pkt[12..].fill(fill);
    from.send_to(b"x", trigger.local_addr().unwrap()).unwrap();
    from.send_to(&pkt, to).unwrap();
    let mut buf = [0u8; 8];
    trigger.recv_from(&mut buf).await.unwrap();
}

/// A packet already waiting when the receive task wakes for a bridge is
/// handled with the bridge (the first packet of a peer that heard the 200,
/// which went out after the bridge was made). Made deterministic on this
/// single-threaded runtime: a trigger datagram sent before the packet wakes
/// the test in the same reactor turn that finds the packet, so the bridge
/// is made after the receive task is woken for the packet and before it runs.
#[tokio::test]
async fn a_packet_waiting_when_the_bridge_is_made_is_relayed() {
    let pool = pool(22500, 4);
    let a = Leg::start(pool.allocate().unwrap(), cfg(1), None).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), cfg(2), None).unwrap();
    let eb = Endpoint::new(0xB).await;
    let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    a.set_media(&media(caller.local_addr().unwrap(), Codec::Pcmu, 0, None));
    b.set_media(&media(eb.addr(), Codec::Pcmu, 0, None));
    let trigger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Both receive tasks asleep on their sockets.
    tokio::time::sleep(Duration::from_millis(20)).await;
    send_behind_trigger(&caller, &trigger, a.local_rtp_addr(), 5).await;
    bridge(&a, &b);
    assert_eq!(eb.recv(WAIT).await.unwrap().payload, vec![5; 160]);
    assert_eq!(a.stats().not_relayed, 0);
}

/// Stopping a playing ringback unmutes the leg at once: the callee's first
/// packet, already waiting when the ringback is stopped, reaches the caller
/// (an aborted injection task is only dropped when the runtime next gets to
/// it). Same trigger technique as above.
#[tokio::test]
async fn a_packet_waiting_when_the_ringback_stops_is_relayed() {
    let pool = pool(22520, 4);
    let a = Leg::start(pool.allocate().unwrap(), cfg(1), None).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), cfg(2), None).unwrap();
    let ea = Endpoint::new(0xA).await;
    let callee = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    a.set_media(&media(ea.addr(), Codec::Pcmu, 0, None));
    b.set_media(&media(callee.local_addr().unwrap(), Codec::Pcmu, 0, None));
    bridge(&a, &b);
    let ring = a.inject(PcmSource::new(|pcm: &mut [i16]| {
        pcm.fill(0);
        true
    }));
    let trigger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The ringback plays; everything asleep between its ticks.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = ea.drain(Duration::from_millis(1)).await;
    send_behind_trigger(&callee, &trigger, b.local_rtp_addr(), 6).await;
    ring.stop();
    let got = ea.recv_n(3, Duration::from_millis(300)).await;
    assert!(
        got.iter().any(|p| p.payload == vec![6; 160]),
        "the callee's packet was muted: {} packets, none of it",
        got.len()
    );
}

/// A leg whose remote holds (sendonly / c=0.0.0.0) gets nothing; resume
/// restores the flow.
#[tokio::test]
async fn hold_stops_media_toward_the_holding_leg() {
    let (_pool, a, b, ea, mut eb) = bridged(22080).await;
    let mut held = media(ea.addr(), Codec::Pcmu, 0, None);
    held.remote_direction = Direction::SendOnly;
    a.set_media(&held);
    b.set_media(&media(eb.addr(), Codec::Pcmu, 0, None));
    eb.send(b.local_rtp_addr(), 0, &[1; 160]).await;
    assert!(ea.recv(QUIET).await.is_none());
    held.remote_direction = Direction::SendRecv;
    a.set_media(&held);
    eb.send(b.local_rtp_addr(), 0, &[2; 160]).await;
    assert_eq!(ea.recv(WAIT).await.unwrap().payload, vec![2; 160]);
}

/// RTCP goes odd port to odd port, with the sender SSRC rewritten.
#[tokio::test]
async fn rtcp_is_relayed_between_the_odd_ports() {
    let (_pool, a, b, ea, eb) = bridged(22100).await;
    let rtcp_b =
        tokio::net::UdpSocket::bind(SocketAddr::new(eb.addr().ip(), eb.addr().port() + 1)).await;
    let Ok(rtcp_b) = rtcp_b else { return }; // port + 1 taken by someone else: nothing to prove
    let rtcp_a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0, 0xA];
    rr.resize(32, 0);
    let a_rtcp = SocketAddr::new(a.local_rtp_addr().ip(), a.local_rtp_addr().port() + 1);
    rtcp_a.send_to(&rr, a_rtcp).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(WAIT, rtcp_b.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 32);
    assert_eq!(from.port(), b.local_rtp_addr().port() + 1);
    assert_eq!(
        u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        b.ssrc()
    );
    assert_eq!(a.stats().rx_rtcp, 1);
    drop(ea);
}

/// Taps see every packet a leg receives, relayed or not, with its arrival
/// time and codec; the channel adapter drops rather than queue without bound.
#[tokio::test]
async fn taps_see_received_packets() {
    let (_pool, a, _b, mut ea, _eb) = bridged(22120).await;
    a.set_media(&media(ea.addr(), Codec::Pcma, 8, Some(101)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    a.set_tap(Some(Arc::new(move |p: &TapPacket<'_>| {
        s.lock()
            .unwrap()
            .push((p.leg, p.pt, p.codec, p.payload.len()));
    })));
    tokio::time::sleep(Duration::from_millis(10)).await;
    ea.send(a.local_rtp_addr(), 8, &[0xd5; 160]).await;
    ea.send(a.local_rtp_addr(), 101, &[1, 0, 0, 160]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (LegId(1), 8, Some(Codec::Pcma), 160),
            (LegId(1), 101, Some(Codec::TelephoneEvent), 4)
        ]
    );

    let (tap, mut frames, dropped) = tap_channel(2);
    a.set_tap(Some(tap));
    tokio::time::sleep(Duration::from_millis(10)).await;
    for _ in 0..5 {
        ea.send(a.local_rtp_addr(), 8, &[0xd5; 160]).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(frames.recv().await.unwrap().payload(), &[0xd5; 160][..]);
    assert_eq!(frames.recv().await.unwrap().codec, Some(Codec::Pcma));
    assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), 3);
}

/// Injection is paced at 20 ms on tokio's clock: on paused time, ten frames
/// take exactly 180 ms of virtual time, and the end is reported.
#[tokio::test(start_paused = true)]
async fn injection_is_paced_by_tokio_time() {
    let pool = pool(22140, 2);
    let (etx, mut erx) = mpsc::channel(16);
    let a = Leg::start(pool.allocate().unwrap(), cfg(1), Some(etx)).unwrap();
    let ea = Endpoint::new(1).await;
    a.set_media(&media(ea.addr(), Codec::Pcma, 8, None));
    let t0 = tokio::time::Instant::now();
    let mut n = 0;
    let inj = a.inject(PcmSource::new(move |pcm: &mut [i16]| {
        pcm.fill(0);
        n += 1;
        n <= 10
    }));
    let id = inj.id();
    inj.detach();
    assert_eq!(
        next_event(&mut erx).await,
        MediaEvent::InjectionDone { leg: LegId(1), id }
    );
    assert_eq!(t0.elapsed(), Duration::from_millis(200));
    let got = ea.drain(Duration::from_millis(1)).await;
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|p| p.h.pt == 8 && p.payload.len() == 160));
    assert_continuous(&got);
    for w in got.windows(2) {
        assert_eq!(w[1].h.ts.wrapping_sub(w[0].h.ts), 160);
    }
}

/// A leg that hears nothing for the media timeout says so once, and says
/// when media is back.
#[tokio::test]
async fn media_timeout_fires_once_and_resume_is_reported() {
    let pool = pool(22160, 2);
    let (etx, mut erx) = mpsc::channel(16);
    let mut c = cfg(1);
    c.media_timeout = Some(Duration::from_millis(150));
    c.latching = false;
    let a = Leg::start(pool.allocate().unwrap(), c, Some(etx)).unwrap();
    let mut ea = Endpoint::new(1).await;
    let t0 = std::time::Instant::now();
    assert_eq!(
        next_event(&mut erx).await,
        MediaEvent::Timeout {
            leg: LegId(1),
            after: Duration::from_millis(150)
        }
    );
    assert!(t0.elapsed() >= Duration::from_millis(150));
    // Once only.
    assert!(quiet_for(&mut erx, 300).await);
    ea.send(a.local_rtp_addr(), 0, &[0; 160]).await;
    assert_eq!(
        next_event(&mut erx).await,
        MediaEvent::Resumed { leg: LegId(1) }
    );
    // Steady media keeps it quiet.
    for _ in 0..15 {
        ea.send(a.local_rtp_addr(), 0, &[0; 160]).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(erx.try_recv().is_err());
    // Held (remote sends nothing by contract): no timeout.
    let mut m = media(ea.addr(), Codec::Pcmu, 0, None);
    m.remote_direction = Direction::RecvOnly;
    a.set_media(&m);
    assert!(quiet_for(&mut erx, 300).await);
    // Holding (`sendonly`) and silent, as many phones are on hold: no
    // timeout either (regression: a call held longer than the media
    // timeout was hung up).
    m.remote_direction = Direction::SendOnly;
    a.set_media(&m);
    assert!(quiet_for(&mut erx, 300).await);
    // Resumed (`sendrecv`) and still silent: the timeout runs again, from
    // the resume.
    m.remote_direction = Direction::SendRecv;
    let resumed = std::time::Instant::now();
    a.set_media(&m);
    assert_eq!(
        next_event(&mut erx).await,
        MediaEvent::Timeout {
            leg: LegId(1),
            after: Duration::from_millis(150)
        }
    );
    assert!(resumed.elapsed() >= Duration::from_millis(150));
}

/// Closing a leg gives its ports back to the pool, drained.
#[tokio::test]
async fn closed_legs_return_their_ports() {
    let pool = pool(22180, 1);
    let pair = pool.allocate().unwrap();
    let port = pair.rtp_port();
    let a = Leg::start(pair, cfg(1), None).unwrap();
    assert!(pool.allocate().is_err());
    a.close().await;
    assert_eq!(pool.available(), 1);
    let again = pool.allocate().unwrap();
    assert_eq!(again.rtp_port(), port);
    // A dropped (not closed) leg returns its ports as soon as its task ends.
    let b = Leg::start(again, cfg(2), None).unwrap();
    drop(b);
    for _ in 0..100 {
        if pool.available() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("dropped leg did not return its ports");
}

/// A pair a leg gave back stays registered with its runtime's reactor: the
/// next legs on it relay both ways, on that runtime, and on another one
/// after the first has shut down (the pair moves to the new reactor).
#[test]
fn pairs_given_back_relay_again_on_their_runtime_and_on_another() {
    let pool = pool(22380, 2);
    let call = |rt: &tokio::runtime::Runtime, id: u32| {
        let call = async {
            let a = Leg::start(pool.allocate().unwrap(), cfg(id), None).unwrap();
            let b = Leg::start(pool.allocate().unwrap(), cfg(id + 1), None).unwrap();
            bridge(&a, &b);
            let (mut ea, mut eb) = latched(&a, &b).await;
            ea.send(a.local_rtp_addr(), 0, &numbered(1)).await;
            eb.send(b.local_rtp_addr(), 0, &numbered(2)).await;
            let (to_b, to_a) = (eb.recv_n(1, WAIT).await, ea.recv_n(1, WAIT).await);
            let got = |p: &[Rx]| p.first().map(number_of);
            assert_eq!(got(&to_b), Some(1), "call {id}: A->B");
            assert_eq!(got(&to_a), Some(2), "call {id}: B->A");
            let ports = (a.local_rtp_addr().port(), b.local_rtp_addr().port());
            a.close().await;
            b.close().await;
            assert_eq!(pool.available(), 2);
            ports
        };
        let limit = Duration::from_secs(5);
        rt.block_on(async { tokio::time::timeout(limit, call).await })
            .unwrap_or_else(|_| panic!("call {id} did not end"))
    };
    let current = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = current();
    let ports = call(&first, 1);
    // The same pairs, still registered here.
    let mut again = call(&first, 3);
    assert_eq!(
        (again.0.min(again.1), again.0.max(again.1)),
        (ports.0.min(ports.1), ports.0.max(ports.1))
    );
    drop(first);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    again = call(&multi, 5);
    assert_eq!(
        (again.0.min(again.1), again.0.max(again.1)),
        (ports.0.min(ports.1), ports.0.max(ports.1))
    );
    // And back on a current-thread runtime: moved once more.
    call(&current(), 7);
}

/// Regression: an RTCP address latched first is kept when RTP latches
/// afterwards (RTP used to overwrite it with its own port + 1).
#[tokio::test]
async fn rtcp_latched_first_survives_rtp_latching() {
    let pool = pool(22280, 2);
    let a = Leg::start(pool.allocate().unwrap(), cfg(1), None).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), cfg(2), None).unwrap();
    bridge(&a, &b);
    let rtcp_of = |l: &Leg| SocketAddr::new(l.local_rtp_addr().ip(), l.local_rtp_addr().port() + 1);
    let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0, 0xA];
    rr.resize(32, 0);
    // A's endpoint: RTCP from an unrelated port, first.
    let a_rtcp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    a_rtcp.send_to(&rr, rtcp_of(&a)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut ea = Endpoint::new(0xA).await;
    ea.send(a.local_rtp_addr(), 0, &[0; 160]).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    // B's endpoint latches too, then sends RTCP toward A.
    let eb = Endpoint::new(0xB).await;
    let b_rtcp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    b_rtcp.send_to(&rr, rtcp_of(&b)).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(WAIT, a_rtcp.recv_from(&mut buf))
        .await
        .expect("RTCP reaches the address A's RTCP came from")
        .unwrap();
    assert_eq!(n, 32);
    drop(eb);
}

/// Legs on dedicated media threads relay like any other, and stop with
/// the media runtime.
#[test]
fn legs_on_media_threads_relay() {
    let media = tandem_rtp::MediaRuntime::new(2).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = pool(22300, 2);
        let a = media
            .start_leg(7, pool.allocate().unwrap(), cfg(1), None)
            .unwrap();
        let b = media
            .start_leg(7, pool.allocate().unwrap(), cfg(2), None)
            .unwrap();
        bridge(&a, &b);
        let mut ea = Endpoint::new(0xA).await;
        let eb = Endpoint::new(0xB).await;
        b.set_remote(Some(eb.addr()), None);
        ea.send(a.local_rtp_addr(), 0, &[7; 160]).await;
        assert_eq!(eb.recv(WAIT).await.unwrap().payload, vec![7; 160]);
        drop((a, b));
    });
    drop(media);
}

/// Regression (issue "Hostile networks and overload"): latching took the
/// first packet from anyone and re-opened on every SDP, so a third party
/// spraying the port range captured the call's audio. Now a leg latches
/// only to the SDP's address or the signalling source's (NAT), then holds
/// that source and its SSRC until an SDP names another address.
#[tokio::test]
async fn latching_takes_only_the_sdp_or_signalling_address_and_locks_the_stream() {
    let pool = pool(22320, 4);
    let (etx, mut erx) = mpsc::channel(16);
    let mut ca = cfg(1);
    // The phone's signalling comes from 127.0.0.3 (its NAT's public side);
    // its SDP names a private address nobody reaches.
    ca.signal_ip = Some("127.0.0.3".parse().unwrap());
    let a = Leg::start(pool.allocate().unwrap(), ca, Some(etx)).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), cfg(2), None).unwrap();
    bridge(&a, &b);
    let eb = Endpoint::new(2).await;
    let sdp = media("127.0.0.4:9".parse().unwrap(), Codec::Pcmu, 0, None);
    a.set_media(&sdp);
    b.set_media(&media(eb.addr(), Codec::Pcmu, 0, None));
    // The attacker sprays first, from an address neither names.
    let mut attacker = Endpoint::on("127.0.0.5", 0xBAD).await;
    for _ in 0..3 {
        attacker.send(a.local_rtp_addr(), 0, &[6; 160]).await;
    }
    assert!(
        eb.recv(QUIET).await.is_none(),
        "nothing of the attacker's relayed"
    );
    assert_eq!(a.stats().foreign, 3);
    assert_eq!(a.remote_rtp_addr(), Some("127.0.0.4:9".parse().unwrap()));
    // The phone's first packet comes from the signalling address: latched.
    let mut phone = Endpoint::on("127.0.0.3", 0x1).await;
    phone.send(a.local_rtp_addr(), 0, &[1; 160]).await;
    assert_eq!(
        next_event(&mut erx).await,
        MediaEvent::Latched {
            leg: LegId(1),
            rtcp: false,
            addr: phone.addr()
        }
    );
    assert_eq!(eb.recv(WAIT).await.unwrap().payload, vec![1; 160]);
    // Another port of the same address does not take it over.
    let mut neighbour = Endpoint::on("127.0.0.3", 0x1).await;
    neighbour.send(a.local_rtp_addr(), 0, &[7; 160]).await;
    assert!(eb.recv(QUIET).await.is_none());
    // A forged packet from the phone's own address and port but another
    // SSRC is dropped while the phone's stream is live...
    phone.send(a.local_rtp_addr(), 0, &[1; 160]).await;
    assert!(eb.recv(WAIT).await.is_some());
    phone.ssrc = 0xF00;
    phone.send(a.local_rtp_addr(), 0, &[8; 160]).await;
    assert!(eb.recv(QUIET).await.is_none());
    assert_eq!(a.stats().foreign, 5);
    // ...and taken once the old stream has been silent 500 ms (a PBX that
    // switches sources without a re-INVITE).
    tokio::time::sleep(Duration::from_millis(600)).await;
    phone.send(a.local_rtp_addr(), 0, &[9; 160]).await;
    assert_eq!(eb.recv(WAIT).await.unwrap().payload, vec![9; 160]);
    // The same SDP again (a 200 repeating its 183, a hold that keeps the
    // address) keeps the latch: no window for the attacker.
    a.set_media(&sdp);
    attacker.send(a.local_rtp_addr(), 0, &[6; 160]).await;
    assert!(eb.recv(QUIET).await.is_none());
    assert_eq!(
        a.remote_rtp_addr(),
        Some(phone.addr()),
        "still sending to the phone"
    );
    phone.send(a.local_rtp_addr(), 0, &[2; 160]).await;
    assert_eq!(eb.recv(WAIT).await.unwrap().payload, vec![2; 160]);
    // A re-INVITE naming a new address re-opens latching, to that address
    // (or the signalling one) only.
    let mut moved = Endpoint::on("127.0.0.6", 0x2).await;
    a.set_media(&media(moved.addr(), Codec::Pcmu, 0, None));
    attacker.send(a.local_rtp_addr(), 0, &[6; 160]).await;
    assert!(eb.recv(QUIET).await.is_none());
    moved.send(a.local_rtp_addr(), 0, &[3; 160]).await;
    assert_eq!(eb.recv(WAIT).await.unwrap().payload, vec![3; 160]);
    assert_eq!(a.remote_rtp_addr(), Some(moved.addr()));
    assert_eq!(a.stats().foreign, 7);
    // Its NAT mapping changes (same address, new port) and its SDP does
    // not: after 2 s of silence from the old port the new one takes over;
    // the attacker still cannot.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    attacker.send(a.local_rtp_addr(), 0, &[6; 160]).await;
    assert!(eb.recv(QUIET).await.is_none());
    let mut rebound = Endpoint::on("127.0.0.6", 0x3).await;
    rebound.send(a.local_rtp_addr(), 0, &[4; 160]).await;
    assert_eq!(eb.recv(WAIT).await.unwrap().payload, vec![4; 160]);
    assert_eq!(a.remote_rtp_addr(), Some(rebound.addr()));
    assert_eq!(a.stats().foreign, 8);
}
