//! A leg's receive task: drains its RTP and RTCP sockets, latches, taps,
//! rewrites and relays each packet to the peer leg, and watches for silence.

use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::tap::{Tap, TapPacket};
use super::tx::{K_PCMA, K_PCMU, K_TE, SourceKey, TxState, UNKNOWN, codec_of};
use super::xcode::{self, Outcome, Stream};
use super::{LegShared, MediaEvent, bump, lock};
use crate::rtp::{self, RtpHeader};

/// Packets drained from one socket before the other gets a turn.
const BATCH: usize = 32;
/// Largest datagram read; longer ones are truncated and then rejected.
const BUF: usize = 2048;

thread_local! {
    /// The packet buffer of every receive task on this thread: a task reads
    /// and handles its packets without an `await` between, so one buffer per
    /// thread does. (In each task, held across its `await`, it made every
    /// leg 2 KB larger, a tenth of an anchored call's memory; on the stack
    /// of each wake-up it cost a 2 KB clear per wake-up: docs/benchmarks.md
    /// §3(q).)
    static SCRATCH: std::cell::RefCell<[u8; BUF]> = const { std::cell::RefCell::new([0; BUF]) };
}
/// Timer deadline when no timeout is armed.
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// The receive task's own copy of the control state.
struct Local {
    peer: Option<Weak<LegShared>>,
    tap: Option<Arc<dyn Tap>>,
    rx_kind: [u8; 128],
    rx_te_clock: u32,
    latching: bool,
    epoch: u64,
    /// `LegShared::ctl_gen` when the control state was last loaded.
    ctl_gen: u64,
    latched: Option<SocketAddr>,
    latched_rtcp: Option<SocketAddr>,
    /// Where latching may come from: the SDP's address, the signalling
    /// source's (a peer behind NAT). Both `None`: anywhere.
    latch_ips: [Option<IpAddr>; 2],
    /// The SSRC the latched source sends, and when it was last heard.
    ssrc: Option<(u32, Instant)>,
    timeout: Option<Duration>,
    silence_counts: bool,
    last_rx: Instant,
    timed_out: bool,
    /// Opus <-> G.711 transcoding state of the current source toward the
    /// peer (created on the first packet that needs it).
    xcode: Option<Box<Stream>>,
    /// `SourceKey::origin` of the next transcoded stream.
    xcode_origin: u64,
    /// Sequence gaps in what the leg receives.
    seq: SeqTrack,
}

/// Packets lost on the way to a leg, from the gaps in the sequence numbers
/// of the stream it receives (RFC 3550 A.3 in spirit: a packet arriving
/// late takes back the loss its gap counted). A new SSRC, or a jump of
/// more than 3,000, starts over without counting: a new stream, not loss.
#[derive(Debug, Default)]
pub(super) struct SeqTrack {
    ssrc: u32,
    max: u16,
    started: bool,
}

impl SeqTrack {
    /// Packets newly found missing (positive) or found late (negative).
    pub(super) fn on(&mut self, ssrc: u32, seq: u16) -> i64 {
        if !self.started || ssrc != self.ssrc {
            *self = Self {
                ssrc,
                max: seq,
                started: true,
            };
            return 0;
        }
        match seq.wrapping_sub(self.max) as i16 {
            0 => 0,
            d @ 1..=3000 => {
                self.max = seq;
                i64::from(d) - 1
            }
            -3000..=-1 => -1,
            _ => {
                self.max = seq;
                0
            }
        }
    }
}

enum Wake {
    Rtp,
    Rtcp,
    Control,
    Timer,
}

pub(super) async fn run(shared: Arc<LegShared>) {
    let mut local = Local {
        peer: None,
        tap: None,
        rx_kind: [UNKNOWN; 128],
        rx_te_clock: 8000,
        latching: false,
        ctl_gen: 0,
        epoch: u64::MAX,
        latched: None,
        latched_rtcp: None,
        latch_ips: [None; 2],
        ssrc: None,
        timeout: None,
        silence_counts: true,
        last_rx: Instant::now(),
        timed_out: false,
        xcode: None,
        seq: SeqTrack::default(),
        xcode_origin: (1 << 63) | u64::from(shared.id.0),
    };
    let socks = shared.sockets();
    let mut notified = pin!(shared.notify.notified());
    let mut sleep = pin!(tokio::time::sleep(FAR));
    load_control(&shared, &mut local);
    rearm(&local, sleep.as_mut());
    let mut rtcp_first = false;

    loop {
        let wake = poll_fn(|cx| {
            rtcp_first = !rtcp_first;
            let (a, b) = if rtcp_first {
                (&socks.rtcp, &socks.rtp)
            } else {
                (&socks.rtp, &socks.rtcp)
            };
            if a.poll_recv_ready(cx).is_ready() {
                return Poll::Ready(if rtcp_first { Wake::Rtcp } else { Wake::Rtp });
            }
            if b.poll_recv_ready(cx).is_ready() {
                return Poll::Ready(if rtcp_first { Wake::Rtp } else { Wake::Rtcp });
            }
            if notified.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Control);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            Poll::Pending
        })
        .await;

        match wake {
            Wake::Rtp => {
                let now = Instant::now();
                let got = SCRATCH.with_borrow_mut(|buf| {
                    let mut got = false;
                    for _ in 0..BATCH {
                        match socks.rtp.try_recv_from(buf) {
                            Ok((n, src)) => {
                                refresh_control(&shared, &mut local);
                                let Some(n) = plain(&shared, buf, n, false) else {
                                    continue;
                                };
                                got |= on_rtp(&shared, &mut local, &mut buf[..n], src, now);
                            }
                            Err(_) => break,
                        }
                    }
                    got
                });
                if got {
                    local.last_rx = now;
                    if local.timed_out {
                        local.timed_out = false;
                        shared.emit(MediaEvent::Resumed { leg: shared.id });
                        rearm(&local, sleep.as_mut());
                    }
                }
            }
            Wake::Rtcp => SCRATCH.with_borrow_mut(|buf| {
                for _ in 0..BATCH {
                    match socks.rtcp.try_recv_from(buf) {
                        Ok((n, src)) => {
                            refresh_control(&shared, &mut local);
                            let Some(n) = plain(&shared, buf, n, true) else {
                                continue;
                            };
                            on_rtcp(&shared, &mut local, &mut buf[..n], src);
                        }
                        Err(_) => break,
                    }
                }
            }),
            Wake::Control => {
                notified.set(shared.notify.notified());
                load_control(&shared, &mut local);
                local.last_rx = Instant::now();
                local.timed_out = false;
                rearm(&local, sleep.as_mut());
            }
            Wake::Timer => {
                let now = Instant::now();
                match local.timeout {
                    Some(t) if local.silence_counts && !local.timed_out => {
                        if now.saturating_duration_since(local.last_rx) >= t {
                            local.timed_out = true;
                            shared.emit(MediaEvent::Timeout {
                                leg: shared.id,
                                after: t,
                            });
                            sleep.as_mut().reset(now + FAR);
                        } else {
                            sleep.as_mut().reset(local.last_rx + t);
                        }
                    }
                    _ => sleep.as_mut().reset(now + FAR),
                }
            }
        }
    }
}

/// The received packet as plain RTP/RTCP: as it is on a plain leg,
/// decrypted on an SRTP leg (`None`, counted as rejected, when it fails
/// authentication, replays, or is plain on an SRTP leg).
#[inline]
fn plain(shared: &LegShared, buf: &mut [u8], n: usize, rtcp: bool) -> Option<usize> {
    if !shared.srtp_on.load(std::sync::atomic::Ordering::Relaxed) {
        return Some(n);
    }
    let len = shared.unprotect(buf, n, rtcp);
    if len.is_none() {
        bump(&shared.counters.rejected);
    }
    len
}

fn rearm(local: &Local, sleep: std::pin::Pin<&mut tokio::time::Sleep>) {
    match local.timeout {
        Some(t) if local.silence_counts => sleep.reset(local.last_rx + t),
        _ => sleep.reset(Instant::now() + FAR),
    }
}

/// Load the control state again if it changed since it was last loaded.
#[inline]
fn refresh_control(shared: &LegShared, local: &mut Local) {
    if shared.ctl_gen.load(Ordering::Acquire) != local.ctl_gen {
        load_control(shared, local);
    }
}

fn load_control(shared: &LegShared, local: &mut Local) {
    local.ctl_gen = shared.ctl_gen.load(Ordering::Acquire);
    let c = lock(&shared.ctl);
    local.peer = c.peer.clone();
    local.tap = c.tap.clone();
    local.rx_kind = c.rx_kind;
    local.rx_te_clock = c.rx_te_clock;
    local.latching = c.latching;
    local.timeout = c.timeout;
    local.silence_counts = c.silence_counts;
    local.latch_ips = [
        c.sdp_ip.map(|a| a.to_canonical()),
        c.signal_ip.map(|a| a.to_canonical()),
    ];
    if c.epoch != local.epoch {
        local.epoch = c.epoch;
        local.latched = None;
        local.latched_rtcp = None;
        local.ssrc = None;
    }
}

/// How long the latched source must have been silent before another port
/// of an allowed address takes its place.
const RELATCH_AFTER: Duration = Duration::from_secs(2);

/// How long the latched SSRC must have been silent before another SSRC from
/// the same address takes its place (a PBX switching what it sends without a
/// re-INVITE); until then packets of another SSRC are dropped.
const SSRC_SWITCH: Duration = Duration::from_millis(500);

/// The SSRC lock: `ssrc` from the latched source is its stream's, or
/// replaces a stream silent for [`SSRC_SWITCH`].
#[inline]
fn check_ssrc(local: &mut Local, ssrc: u32, now: Instant) -> bool {
    match &mut local.ssrc {
        Some((s, seen)) if *s == ssrc => {
            *seen = now;
            true
        }
        Some((s, seen)) if now.saturating_duration_since(*seen) < SSRC_SWITCH => {
            let _ = s;
            false
        }
        slot => {
            *slot = Some((ssrc, now));
            true
        }
    }
}

/// Accept or reject a packet's source; latch on the first one from an
/// address the leg may latch to (the SDP's or the signalling source's IP).
#[inline]
fn check_source(
    shared: &LegShared,
    local: &mut Local,
    src: SocketAddr,
    rtcp: bool,
    now: Instant,
) -> bool {
    if !local.latching {
        return true;
    }
    let latched = if rtcp {
        local.latched_rtcp
    } else {
        local.latched
    };
    let allowed =
        local.latch_ips == [None; 2] || local.latch_ips.contains(&Some(src.ip().to_canonical()));
    // A latched source silent this long gives way to another port of an
    // allowed address: a phone whose NAT mapping changed mid-call, with an
    // SDP that (naming its private address) did not change.
    let stale = now.saturating_duration_since(local.last_rx) >= RELATCH_AFTER;
    match latched {
        Some(a) if a == src => true,
        Some(_) if !(allowed && stale) => false,
        None if !allowed => false,
        _ => {
            if !rtcp {
                local.ssrc = None;
            }
            {
                let mut tx = shared.tx();
                if rtcp {
                    local.latched_rtcp = Some(src);
                    tx.remote_rtcp = Some(src);
                } else {
                    local.latched = Some(src);
                    tx.remote = Some(src);
                    if local.latched_rtcp.is_none() {
                        // Until RTCP latches on its own, guess it sits next door.
                        tx.remote_rtcp =
                            Some(SocketAddr::new(src.ip(), src.port().wrapping_add(1)));
                    }
                }
            }
            shared.emit(MediaEvent::Latched {
                leg: shared.id,
                rtcp,
                addr: src,
            });
            true
        }
    }
}

/// Handle one RTP packet. Returns true if it was accepted (counts as media).
#[inline]
fn on_rtp(
    shared: &LegShared,
    local: &mut Local,
    pkt: &mut [u8],
    src: SocketAddr,
    now: Instant,
) -> bool {
    let c = &shared.counters;
    let Some(h) = RtpHeader::parse(pkt) else {
        bump(&c.rejected);
        return false;
    };
    let kind = local.rx_kind[h.pt as usize];
    // telephone-event is exempt from the SSRC lock: some gateways send it
    // with an SSRC of its own (still from the latched address).
    if !check_source(shared, local, src, false, now)
        || (local.latching && kind != K_TE && !check_ssrc(local, h.ssrc, now))
    {
        bump(&c.rejected);
        bump(&c.foreign);
        return false;
    }
    bump(&c.rx_packets);
    if kind != K_TE {
        let gap = local.seq.on(h.ssrc, h.seq);
        if gap != 0 {
            c.lost.fetch_add(gap, std::sync::atomic::Ordering::Relaxed);
        }
    }
    c.rx_bytes
        .fetch_add(h.payload_len as u64, std::sync::atomic::Ordering::Relaxed);

    if let Some(tap) = &local.tap {
        tap.packet(&TapPacket {
            leg: shared.id,
            at: now,
            pt: h.pt,
            codec: codec_of(kind),
            marker: h.marker,
            seq: h.seq,
            ts: h.ts,
            ssrc: h.ssrc,
            payload: &pkt[h.payload_offset..h.payload_offset + h.payload_len],
        });
    }

    let Some(peer) = local.peer.as_ref().and_then(Weak::upgrade) else {
        bump(&c.not_relayed);
        return true;
    };
    let mut tx = peer.tx();
    let dst = match tx.remote {
        Some(d) if tx.send_enabled && tx.injecting.is_none() => d,
        _ => {
            drop(tx);
            bump(&c.not_relayed);
            return true;
        }
    };
    let mapped = if kind == UNKNOWN {
        UNKNOWN
    } else {
        tx.pt_out[kind as usize]
    };
    // telephone-event of a source whose audio is transcoded: on the
    // transcoded stream's timeline, in the peer's telephone-event clock.
    if kind == K_TE
        && mapped != UNKNOWN
        && let Some(weak) = local.peer.as_ref()
        && let Some(s) = local.xcode.as_deref_mut()
        && s.carries(weak, h.ssrc, tx.format.codec)
    {
        let out_clock = tx.format.telephone_event_clock;
        let (seq_in, ts_in) = s.event(h.seq, h.ts, local.rx_te_clock, out_clock);
        let key = SourceKey {
            origin: s.origin,
            ssrc: h.ssrc,
        };
        let (seq, ts, _) = tx.map(key, seq_in, ts_in, now);
        let ssrc = tx.ssrc;
        drop(tx);
        rtp::rewrite(pkt, h.marker, mapped, seq, ts, ssrc);
        let payload = &mut pkt[h.payload_offset..h.payload_offset + h.payload_len];
        xcode::scale_event_duration(payload, local.rx_te_clock, out_clock);
        peer.send_rtp(pkt, dst);
        return true;
    }
    // PCMU <-> PCMA when the legs settled on different G.711 laws.
    let mut transcode = None;
    let out_pt = if mapped != UNKNOWN {
        mapped
    } else if kind == K_PCMU && tx.pt_out[K_PCMA as usize] != UNKNOWN {
        transcode = Some(K_PCMA);
        tx.pt_out[K_PCMA as usize]
    } else if kind == K_PCMA && tx.pt_out[K_PCMU as usize] != UNKNOWN {
        transcode = Some(K_PCMU);
        tx.pt_out[K_PCMU as usize]
    } else if let Some((from, to, pt)) = transcode_target(kind, &tx) {
        drop(tx);
        relay_transcoded(shared, local, &peer, &h, pkt, (from, to, pt), now);
        return true;
    } else if tx.passthrough {
        h.pt
    } else {
        drop(tx);
        bump(&c.not_relayed);
        return true;
    };
    let key = SourceKey {
        origin: u64::from(shared.id.0),
        ssrc: h.ssrc,
    };
    let (seq, ts, switched) = tx.map(key, h.seq, h.ts, now);
    let ssrc = tx.ssrc;
    drop(tx);
    let marker = h.marker || (switched && kind != K_TE);
    rtp::rewrite(pkt, marker, out_pt, seq, ts, ssrc);
    if let Some(to) = transcode {
        let payload = &mut pkt[h.payload_offset..h.payload_offset + h.payload_len];
        crate::codec::transcode_g711(payload, to == K_PCMA);
    }
    peer.send_rtp(pkt, dst);
    true
}

/// Codecs and out payload type when a packet of `kind` must go through
/// the Opus transcoder toward the leg owning `tx`.
#[inline]
fn transcode_target(kind: u8, tx: &TxState) -> Option<(xcode::MCodec, xcode::MCodec, u8)> {
    if tx.passthrough {
        return None;
    }
    let from = xcode::media_codec(kind)?;
    let to = xcode::out_codec(tx.format.codec)?;
    xcode::needs_transcoder(from, to).then_some((from, to, tx.format.pt))
}

/// Relay one packet through the source's transcoder: zero or more 20 ms
/// payloads in the peer's codec, numbered on the transcoded stream's own
/// timeline and mapped onto the peer's outgoing stream like any source.
/// The transcoding runs with no lock held.
#[inline(never)]
fn relay_transcoded(
    shared: &LegShared,
    local: &mut Local,
    peer: &LegShared,
    h: &RtpHeader,
    pkt: &[u8],
    (from, to, pt): (xcode::MCodec, xcode::MCodec, u8),
    now: Instant,
) {
    let c = &shared.counters;
    let Some(weak) = local.peer.as_ref() else {
        return;
    };
    let s = Stream::get(
        &mut local.xcode,
        &mut local.xcode_origin,
        weak,
        h.ssrc,
        from,
        to,
    );
    let payload = &pkt[h.payload_offset..h.payload_offset + h.payload_len];
    match s.push(h.seq, h.ts, payload) {
        Outcome::Ready => {}
        Outcome::Stale => return bump(&c.not_relayed),
        Outcome::Concealed => bump(&c.transcode_errors),
        Outcome::Error => return bump(&c.transcode_errors),
    }
    let key = SourceKey {
        origin: s.origin,
        ssrc: h.ssrc,
    };
    let mut marker = h.marker;
    for p in &s.out {
        let n = rtp::RTP_HEADER_LEN + p.len();
        if n > s.buf.len() {
            bump(&c.transcode_errors);
            continue;
        }
        let mut tx = peer.tx();
        // The peer may have changed while the frame was transcoded.
        let dst = match tx.remote {
            Some(d) if tx.send_enabled && tx.injecting.is_none() && tx.format.pt == pt => d,
            _ => {
                drop(tx);
                bump(&c.not_relayed);
                return;
            }
        };
        let (seq, ts, switched) = tx.map(key, s.next_seq, s.next_ts, now);
        let ssrc = tx.ssrc;
        drop(tx);
        s.next_seq = s.next_seq.wrapping_add(1);
        s.next_ts = s.next_ts.wrapping_add(s.frame);
        rtp::write_header(&mut s.buf[..], marker || switched, pt, seq, ts, ssrc);
        s.buf[rtp::RTP_HEADER_LEN..n].copy_from_slice(p);
        peer.send_rtp(&s.buf[..n], dst);
        marker = false;
    }
}

fn on_rtcp(shared: &LegShared, local: &mut Local, pkt: &mut [u8], src: SocketAddr) {
    let c = &shared.counters;
    if !rtp::is_rtcp(pkt) {
        bump(&c.rejected);
        return;
    }
    if !check_source(shared, local, src, true, Instant::now()) {
        bump(&c.rejected);
        bump(&c.foreign);
        return;
    }
    bump(&c.rx_rtcp);
    let Some(peer) = local.peer.as_ref().and_then(Weak::upgrade) else {
        return;
    };
    let (dst, ssrc) = {
        let tx = peer.tx();
        match tx.remote_rtcp {
            Some(d) if tx.send_enabled => (d, tx.ssrc),
            _ => return,
        }
    };
    // The far end knows the stream by the SSRC Tandem gave it.
    rtp::rewrite_rtcp_sender(pkt, ssrc);
    peer.send_rtcp(pkt, dst);
}

#[cfg(test)]
mod tests {
    use super::SeqTrack;

    /// Every anchored leg has one receive task for its whole life: what the
    /// task's future holds is paid per leg (two per call, more per fork).
    /// The packet buffer is not in it (it was: 2 KB more per leg).
    #[tokio::test]
    async fn the_receive_task_holds_no_packet_buffer() {
        use std::net::{IpAddr, Ipv4Addr};
        let pool = (0..10u16)
            .find_map(|i| {
                crate::PortPool::bind(&crate::PoolConfig {
                    addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    port_min: 23460 + i * 1000,
                    port_max: 23461 + i * 1000,
                    recv_buffer: None,
                })
                .ok()
            })
            .expect("a free port pair");
        let leg = super::super::Leg::start(
            pool.allocate().unwrap(),
            super::super::LegConfig {
                id: crate::relay::LegId(1),
                latching: true,
                media_timeout: None,
                seed: Some(1),
                signal_ip: None,
            },
            None,
        )
        .unwrap();
        let task = super::run(std::sync::Arc::clone(&leg.shared));
        let size = std::mem::size_of_val(&task);
        assert!(size < 1024, "{size} bytes (616 when written)");
    }

    fn run(seqs: &[(u32, u16)]) -> i64 {
        let mut t = SeqTrack::default();
        seqs.iter().map(|&(ssrc, seq)| t.on(ssrc, seq)).sum()
    }

    #[test]
    fn gaps_count_as_loss_and_late_packets_take_it_back() {
        assert_eq!(run(&[(1, 10), (1, 11), (1, 12)]), 0);
        assert_eq!(run(&[(1, 10), (1, 13), (1, 14)]), 2, "11 and 12 lost");
        assert_eq!(run(&[(1, 10), (1, 13), (1, 11), (1, 14)]), 1, "11 late");
        assert_eq!(run(&[(1, 10), (1, 10), (1, 11)]), 0, "a duplicate");
        assert_eq!(
            run(&[(1, 65534), (1, 65535), (1, 1)]),
            1,
            "0 lost at the wrap"
        );
    }

    #[test]
    fn a_new_stream_is_not_loss() {
        assert_eq!(run(&[(1, 10), (2, 5000), (2, 5001)]), 0, "new SSRC");
        assert_eq!(run(&[(1, 10), (1, 20_000), (1, 20_001)]), 0, "a jump");
    }
}
