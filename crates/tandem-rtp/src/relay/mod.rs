//! The RTP relay: one [`Leg`] per call leg, each with a receive task on its
//! pre-bound RTP/RTCP pair that relays to the peer leg set with
//! [`Leg::relay_to`] (or [`bridge`]).
//!
//! Per packet the receive task reads into a buffer it owns, checks the
//! source (symmetric latching, RFC 4961 / "comedia"), hands the packet to
//! the tap, rewrites payload type, SSRC, sequence and timestamp in place for
//! the destination leg (module `tx`), and sends it with a non-blocking send
//! from the destination leg's own socket (so the far end sees symmetric
//! RTP). No allocation (outside Opus transcoding, module `xcode`), no await
//! while a lock is held, no queue: a packet the kernel will not take is
//! dropped, as a router would.
//!
//! An SRTP leg (SDES keys in its [`NegotiatedMedia`]) decrypts what it
//! receives before anything else looks at it (a packet that fails
//! authentication or replays is rejected) and encrypts everything sent to
//! it, relayed or generated, RTP and RTCP: the legs of a bridge may be one
//! SRTP and one plain.
//!
//! Generated audio ([`Leg::inject`]) is paced by `tokio::time::interval`
//! and, while active, mutes what is relayed toward that leg. A leg that
//! receives nothing for the configured time reports
//! [`MediaEvent::Timeout`].

mod frames;
mod inject;
mod runtime;
mod rx;
mod sources;
mod tap;
pub(crate) mod tx;
mod xcode;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

pub use frames::{MAX_FRAME_8K, PcmFrames};
pub use inject::{Injection, MediaSource, SourceOutput, SourcePacket};
pub use runtime::MediaRuntime;
pub use sources::{DigitsError, DigitsSource, MAX_DIGITS, PcmSource, RingbackSource};
pub use tap::{TAP_FRAME_MAX, Tap, TapFrame, TapPacket, tap_channel};
pub use tx::OutFormat;

use crate::pool::{PoolReturn, PortPair};
use crate::sdp::NegotiatedMedia;
use crate::srtp::SrtpSession;
use tx::{TxState, UNKNOWN};

/// Identifies a leg in events and taps. Chosen by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u32);

/// Per-leg settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegConfig {
    /// The leg's id in events and taps.
    pub id: LegId,
    /// Symmetric latching: send to where the remote's packets come from
    /// (the first packet after start or after [`Leg::set_media`] decides),
    /// and drop packets from any other address. Needed for endpoints behind
    /// NAT. Off: send to the SDP address, accept packets from anywhere.
    pub latching: bool,
    /// Report [`MediaEvent::Timeout`] when no RTP arrives for this long
    /// (only while the remote is expected to send).
    pub media_timeout: Option<Duration>,
    /// Seed for this leg's SSRC and initial sequence number and timestamp
    /// (None: random). Injected so a failing run can be replayed.
    pub seed: Option<u64>,
    /// The IP address the leg's signalling comes from. Latching accepts a
    /// first packet only from it or from the address the SDP names (both
    /// unknown: from anywhere).
    pub signal_ip: Option<IpAddr>,
}

impl LegConfig {
    /// Latching on, no timeout, random SSRC.
    pub fn new(id: LegId) -> Self {
        LegConfig {
            id,
            latching: true,
            media_timeout: None,
            seed: None,
            signal_ip: None,
        }
    }
}

/// What a leg reports to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// Symmetric latching chose the remote's address.
    Latched {
        /// The leg.
        leg: LegId,
        /// RTP or RTCP.
        rtcp: bool,
        /// The address now sent to.
        addr: SocketAddr,
    },
    /// No RTP received for the configured media timeout.
    Timeout {
        /// The leg.
        leg: LegId,
        /// The configured timeout.
        after: Duration,
    },
    /// RTP arrived again after a [`MediaEvent::Timeout`].
    Resumed {
        /// The leg.
        leg: LegId,
    },
    /// An injection ended (its source finished, or it was stopped or replaced).
    InjectionDone {
        /// The leg.
        leg: LegId,
        /// The injection's id ([`Injection::id`]).
        id: u64,
    },
}

/// Counters of one leg (monotonic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegStats {
    /// RTP packets received and accepted.
    pub rx_packets: u64,
    /// RTP payload bytes received and accepted.
    pub rx_bytes: u64,
    /// RTCP packets received and accepted.
    pub rx_rtcp: u64,
    /// Packets received but not relayed: no peer, peer muted by injection
    /// or on hold, no remote address, payload type not negotiated.
    pub not_relayed: u64,
    /// Packets dropped as not RTP/RTCP or from a foreign address after latching.
    pub rejected: u64,
    /// Of `rejected`: packets from an address the leg may not latch to, or
    /// not the latched one, or of another SSRC than the latched stream's
    /// (a third party spraying the port range).
    pub foreign: u64,
    /// Packets sent to this leg's remote (relayed or injected).
    pub tx_packets: u64,
    /// Sends the kernel refused (buffer full, unreachable).
    pub tx_errors: u64,
    /// Received packets dropped because they did not transcode (a bad Opus
    /// packet, or no Opus support compiled in).
    pub transcode_errors: u64,
    /// RTP packets that never arrived: gaps in the received stream's
    /// sequence numbers, less those that came late (telephone-events
    /// aside).
    pub lost: u64,
}

#[derive(Default)]
struct Counters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_rtcp: AtomicU64,
    not_relayed: AtomicU64,
    rejected: AtomicU64,
    foreign: AtomicU64,
    tx_packets: AtomicU64,
    tx_errors: AtomicU64,
    transcode_errors: AtomicU64,
    /// Signed: a late packet takes back what its gap counted.
    lost: std::sync::atomic::AtomicI64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the engine changes while the call runs; read by the receive task
/// when notified.
struct Control {
    peer: Option<Weak<LegShared>>,
    tap: Option<Arc<dyn Tap>>,
    rx_kind: [u8; 128],
    /// telephone-event clock rate of what the leg receives.
    rx_te_clock: u32,
    latching: bool,
    /// Bumped by `set_media`/`set_remote`: latch again.
    epoch: u64,
    /// The remote address the last SDP named (latching re-opens only when it changes).
    sdp_remote: Option<SocketAddr>,
    /// Latching only from this IP (the SDP's)...
    sdp_ip: Option<IpAddr>,
    /// ...or this one (the signalling source's, for a peer behind NAT).
    signal_ip: Option<IpAddr>,
    timeout: Option<Duration>,
    /// The media timeout applies ([`NegotiatedMedia::silence_is_dead`]).
    silence_counts: bool,
}

struct Sockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    ret: PoolReturn,
}

pub(crate) struct LegShared {
    id: LegId,
    local_rtp: SocketAddr,
    sockets: Option<Sockets>,
    tx: Mutex<TxState>,
    ctl: Mutex<Control>,
    /// Bumped after every change to `ctl`: the receive task compares it
    /// before each packet, so a packet that arrives after a change (the
    /// first packet after a bridge, sent by a peer that heard the 200 the
    /// bridge came before) is never handled with the state before it.
    ctl_gen: AtomicU64,
    notify: Notify,
    /// Where events go; another call's queue once the leg changes hands
    /// ([`Leg::set_events`]). Events are rare: a lock costs nothing here.
    events: Mutex<Option<mpsc::Sender<MediaEvent>>>,
    counters: Counters,
    next_injection: AtomicU64,
    /// The runtime the leg was started on; injections run there too.
    runtime: tokio::runtime::Handle,
    /// Whether `srtp` holds a session (read without the lock on every packet).
    srtp_on: AtomicBool,
    /// The leg's SRTP transforms: inbound used by its receive task,
    /// outbound by whoever sends to it (each holds the lock for one packet).
    srtp: Mutex<Option<SrtpSession>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LegShared {
    #[inline]
    fn sockets(&self) -> &Sockets {
        // Only taken in Drop.
        self.sockets
            .as_ref()
            .unwrap_or_else(|| unreachable!("sockets taken before drop"))
    }

    #[inline]
    fn tx(&self) -> MutexGuard<'_, TxState> {
        lock(&self.tx)
    }

    fn emit(&self, ev: MediaEvent) {
        if let Some(tx) = lock(&self.events).as_ref() {
            // Events are rare; a full channel means the engine is stuck, and
            // blocking the media path would not help it.
            if tx.try_send(ev).is_err() {
                tracing::warn!(
                    leg = self.id.0,
                    "media event dropped: channel full or closed"
                );
            }
        }
    }

    /// Send a finished RTP packet to this leg's remote (encrypted first on
    /// an SRTP leg).
    #[inline]
    fn send_rtp(&self, pkt: &[u8], dst: SocketAddr) {
        let sent = if self.srtp_on.load(Ordering::Relaxed) {
            match self.protect(pkt, false) {
                Some(enc) => send_now(&self.sockets().rtp, &enc, dst),
                None => return bump(&self.counters.tx_errors),
            }
        } else {
            send_now(&self.sockets().rtp, pkt, dst)
        };
        match sent {
            Ok(_) => bump(&self.counters.tx_packets),
            Err(_) => bump(&self.counters.tx_errors),
        }
    }

    /// Send an RTCP packet to this leg's remote (as SRTCP on an SRTP leg).
    fn send_rtcp(&self, pkt: &[u8], dst: SocketAddr) {
        if self.srtp_on.load(Ordering::Relaxed) {
            if let Some(enc) = self.protect(pkt, true) {
                let _ = send_now(&self.sockets().rtcp, &enc, dst);
            }
        } else {
            let _ = send_now(&self.sockets().rtcp, pkt, dst);
        }
    }

    /// Encrypts with the leg's outbound SRTP context (`None`: no session,
    /// or the transform refused).
    #[inline(never)]
    fn protect(&self, pkt: &[u8], rtcp: bool) -> Option<bytes::Bytes> {
        let mut guard = lock(&self.srtp);
        let s = guard.as_mut()?;
        if rtcp {
            s.protect_rtcp(pkt).ok()
        } else {
            s.protect_rtp(pkt).ok()
        }
    }

    /// Decrypts a received packet in place (SRTP or SRTCP); its new length,
    /// or `None` when it failed authentication or is a replay.
    #[inline(never)]
    fn unprotect(&self, buf: &mut [u8], n: usize, rtcp: bool) -> Option<usize> {
        let mut guard = lock(&self.srtp);
        let s = guard.as_mut()?;
        let plain = if rtcp {
            s.unprotect_rtcp(&buf[..n])
        } else {
            s.unprotect_rtp(&buf[..n])
        };
        drop(guard);
        let plain = plain.ok()?;
        // Shorter than what was read (the tag is gone): fits.
        let len = plain.len().min(n);
        buf[..len].copy_from_slice(&plain[..len]);
        Some(len)
    }

    fn control(&self, f: impl FnOnce(&mut Control)) {
        f(&mut lock(&self.ctl));
        self.ctl_gen.fetch_add(1, Ordering::Release);
        self.notify.notify_one();
    }
}

/// One non-blocking `sendto` on the socket, whatever tokio believes of its
/// write readiness: UDP sockets are almost always writable, and tokio only
/// learns so after a reactor turn (a fresh socket's first `try_send_to`
/// would fail). A full buffer still fails with `WouldBlock`: the packet is
/// dropped.
#[inline]
fn send_now(sock: &UdpSocket, pkt: &[u8], dst: SocketAddr) -> io::Result<usize> {
    socket2::SockRef::from(sock).send_to(pkt, &dst.into())
}

impl Drop for LegShared {
    fn drop(&mut self) {
        if let Some(s) = self.sockets.take() {
            s.ret.give_back((s.rtp, s.rtcp));
        }
    }
}

/// One call leg's media: its port pair, its receive task, its outgoing
/// stream. Dropping it stops the task and returns the ports to the pool.
pub struct Leg {
    shared: Arc<LegShared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg")
            .field("id", &self.shared.id)
            .field("local_rtp", &self.shared.local_rtp)
            .finish()
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Leg {
    /// Start a leg on an allocated pair, on the current tokio runtime (the
    /// sockets register with its reactor; nothing is bound). To spread legs
    /// over several runtimes (one per core), call it inside
    /// `handle.enter()`: the receive task and injections then run there.
    /// `events` receives [`MediaEvent`]s (bounded; dropped when full).
    pub fn start(
        pair: PortPair,
        cfg: LegConfig,
        events: Option<mpsc::Sender<MediaEvent>>,
    ) -> io::Result<Leg> {
        let local_rtp = pair.rtp_addr();
        let ((rtp, rtcp), ret) = pair.into_registered()?;
        let mut seed = cfg.seed.unwrap_or_else(rand::random);
        let r = splitmix(&mut seed);
        let tx = TxState::new(r as u32, (r >> 32) as u16, splitmix(&mut seed) as u32);
        let shared = Arc::new(LegShared {
            id: cfg.id,
            local_rtp,
            sockets: Some(Sockets { rtp, rtcp, ret }),
            tx: Mutex::new(tx),
            ctl: Mutex::new(Control {
                peer: None,
                tap: None,
                rx_kind: [UNKNOWN; 128],
                rx_te_clock: 8000,
                latching: cfg.latching,
                epoch: 0,
                sdp_remote: None,
                sdp_ip: None,
                signal_ip: cfg.signal_ip,
                timeout: cfg.media_timeout,
                silence_counts: true,
            }),
            ctl_gen: AtomicU64::new(0),
            notify: Notify::new(),
            events: Mutex::new(events),
            counters: Counters::default(),
            next_injection: AtomicU64::new(1),
            runtime: tokio::runtime::Handle::current(),
            srtp_on: AtomicBool::new(false),
            srtp: Mutex::new(None),
        });
        let task = tokio::spawn(rx::run(Arc::clone(&shared)));
        Ok(Leg { shared, task })
    }

    /// The leg's id.
    pub fn id(&self) -> LegId {
        self.shared.id
    }

    /// Local RTP address (for the SDP, through [`crate::sdp::LocalMedia`]).
    pub fn local_rtp_addr(&self) -> SocketAddr {
        self.shared.local_rtp
    }

    /// Apply the outcome of offer/answer: remote addresses, payload types,
    /// codec and ptime for generated audio, direction (hold). Latching
    /// starts over when the SDP names another address than before (a 200
    /// repeating its 183's SDP, or a re-INVITE that only holds, keeps the
    /// latched source and SSRC).
    pub fn set_media(&self, media: &NegotiatedMedia) {
        let same = lock(&self.shared.ctl)
            .sdp_remote
            .is_some_and(|a| Some(a) == media.remote_rtp);
        {
            let mut tx = self.shared.tx();
            let kept = (tx.remote, tx.remote_rtcp);
            tx.apply(media);
            if same {
                (tx.remote, tx.remote_rtcp) = kept;
            }
        }
        self.set_srtp(media);
        let kinds = tx::rx_kinds(media);
        let te_clock = media
            .telephone_event
            .as_ref()
            .map_or(8000, |t| t.clock_rate);
        let recv = media.silence_is_dead();
        self.shared.control(|c| {
            c.rx_kind = kinds;
            c.rx_te_clock = te_clock;
            c.silence_counts = recv;
            c.sdp_remote = media.remote_rtp;
            c.sdp_ip = media.remote_rtp.map(|a| a.ip());
            if !same {
                c.epoch += 1;
            }
        });
    }

    /// Starts, changes or ends the leg's SRTP: a new session only when the
    /// keys change (a re-INVITE repeating them keeps the rollover counters
    /// and the replay window).
    fn set_srtp(&self, media: &NegotiatedMedia) {
        let mut cur = lock(&self.shared.srtp);
        if cur.as_ref().map(SrtpSession::keys) == media.srtp.as_ref() {
            return;
        }
        *cur = match &media.srtp {
            None => None,
            Some(keys) => match SrtpSession::new(keys) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(leg = self.shared.id.0, error = %e, "SRTP not started");
                    None
                }
            },
        };
        self.shared.srtp_on.store(cur.is_some(), Ordering::Relaxed);
    }

    /// Whether the leg runs SRTP.
    pub fn is_srtp(&self) -> bool {
        self.shared.srtp_on.load(Ordering::Relaxed)
    }

    /// Set the remote addresses without SDP (payload types pass through
    /// unchanged). Latching starts over.
    pub fn set_remote(&self, rtp: Option<SocketAddr>, rtcp: Option<SocketAddr>) {
        {
            let mut tx = self.shared.tx();
            tx.remote = rtp;
            tx.remote_rtcp = rtcp.or_else(|| rtp.map(|a| SocketAddr::new(a.ip(), a.port() + 1)));
        }
        self.shared.control(|c| {
            c.sdp_remote = rtp;
            c.sdp_ip = rtp.map(|a| a.ip());
            c.epoch += 1;
        });
    }

    /// Where this leg's received media goes: `Some(peer)` relays it to that
    /// leg, `None` stops relaying (taps still see it).
    pub fn relay_to(&self, peer: Option<&Leg>) {
        let w = peer.map(|p| Arc::downgrade(&p.shared));
        self.shared.control(|c| c.peer = w);
    }

    /// Where the leg's [`MediaEvent`]s go from now on (a leg handed from
    /// one call to another).
    pub fn set_events(&self, events: Option<mpsc::Sender<MediaEvent>>) {
        *lock(&self.shared.events) = events;
    }

    /// Install or remove the tap on what this leg receives.
    pub fn set_tap(&self, tap: Option<Arc<dyn Tap>>) {
        self.shared.control(|c| c.tap = tap);
    }

    /// Change the media timeout (None: off). The silence clock restarts.
    pub fn set_media_timeout(&self, timeout: Option<Duration>) {
        self.shared.control(|c| c.timeout = timeout);
    }

    /// Turn symmetric latching on or off. Latching starts over.
    pub fn set_latching(&self, on: bool) {
        self.shared.control(|c| {
            c.latching = on;
            c.epoch += 1;
        });
    }

    /// Current remote RTP address (from SDP, or latched).
    pub fn remote_rtp_addr(&self) -> Option<SocketAddr> {
        self.shared.tx().remote
    }

    /// The format generated audio must use on this leg.
    pub fn out_format(&self) -> OutFormat {
        self.shared.tx().format
    }

    /// The SSRC of everything Tandem sends on this leg.
    pub fn ssrc(&self) -> u32 {
        self.shared.tx().ssrc
    }

    /// Start sending generated audio to this leg, paced every `ptime` by
    /// `tokio::time::interval`. Relayed audio toward this leg is muted from
    /// now until the injection ends; an injection already running is
    /// replaced. Dropping the returned handle stops it.
    pub fn inject(&self, source: impl MediaSource) -> Injection {
        inject::start(&self.shared, Box::new(source))
    }

    /// Counters.
    pub fn stats(&self) -> LegStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LegStats {
            rx_packets: l(&c.rx_packets),
            rx_bytes: l(&c.rx_bytes),
            rx_rtcp: l(&c.rx_rtcp),
            not_relayed: l(&c.not_relayed),
            rejected: l(&c.rejected),
            foreign: l(&c.foreign),
            tx_packets: l(&c.tx_packets),
            tx_errors: l(&c.tx_errors),
            transcode_errors: l(&c.transcode_errors),
            lost: c.lost.load(Ordering::Relaxed).max(0) as u64,
        }
    }

    /// Stop the leg and wait until its receive task is gone, so its ports
    /// are back in the pool when this returns.
    pub async fn close(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relay both ways between `a` and `b`.
pub fn bridge(a: &Leg, b: &Leg) {
    a.relay_to(Some(b));
    b.relay_to(Some(a));
}
