//! DTMF in: a [`Tap`] that turns what a leg receives into digits, each key
//! press reported once. RFC 4733 telephone-events (§2.5.2: tandem-media's
//! `EventReceiver`, one report per event timestamp, reset on a new SSRC) and
//! in-band tones (ITU-T Q.23/Q.24: tandem-media's Goertzel `DtmfDetector`
//! on decoded G.711). Once a leg has sent a telephone-event, in-band
//! detection stops for it, so an endpoint that sends both is heard once.
//! SIP INFO digits (`application/dtmf-relay`) are the call actor's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_media::dtmf::DetectedDigit;
use tandem_media::{DtmfDetector, EventReceiver};
use tandem_rtp::LegId;
use tandem_rtp::relay::{Tap, TapPacket};
use tandem_rtp::sdp::Codec;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A telephone-event arriving this soon after the same digit was heard
/// in-band is the same key press.
const SAME_PRESS: Duration = Duration::from_millis(500);

/// How a digit arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DtmfKind {
    /// RFC 4733 telephone-event.
    Rfc4733,
    /// In-band tones in the audio.
    Inband,
}

/// A digit received on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    /// `0-9 * # A-D`.
    pub digit: char,
    /// How it arrived.
    pub kind: DtmfKind,
    /// The leg that received it.
    pub leg: LegId,
    /// Arrival of the packet that completed it.
    pub at: Instant,
}

/// The DTMF detector of one leg. Install it with `leg.set_tap(Some(tap))`
/// (or inside [`fan_out`] next to the recorder); digits come out of the
/// receiver [`dtmf_tap`] returned.
pub struct DtmfTap {
    state: Mutex<State>,
    tx: mpsc::Sender<DtmfDigit>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for DtmfTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtmfTap")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

struct State {
    events: EventReceiver,
    event_ssrc: Option<u32>,
    /// The leg has sent telephone-events: in-band detection is off.
    out_of_band: bool,
    detector: DtmfDetector,
    found: Vec<DetectedDigit>,
    pcm: [i16; CHUNK],
    last_inband: Option<(char, Instant)>,
}

/// Samples decoded at a time (60 ms of G.711).
const CHUNK: usize = 480;

/// A DTMF tap and the receiver of its digits. The channel holds `capacity`
/// digits; when the consumer lags, further digits are dropped (counted by
/// [`DtmfTap::dropped`]), never waited for.
pub fn dtmf_tap(capacity: usize) -> (Arc<DtmfTap>, mpsc::Receiver<DtmfDigit>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let tap = DtmfTap {
        state: Mutex::new(State {
            events: EventReceiver::new(),
            event_ssrc: None,
            out_of_band: false,
            detector: DtmfDetector::default(),
            found: Vec::with_capacity(4),
            pcm: [0; CHUNK],
            last_inband: None,
        }),
        tx,
        dropped: AtomicU64::new(0),
    };
    (Arc::new(tap), rx)
}

impl DtmfTap {
    /// Digits dropped because the receiver was full or gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn emit(&self, digit: char, kind: DtmfKind, p: &TapPacket<'_>) {
        tracing::debug!(leg = ?p.leg, %digit, ?kind, "DTMF received");
        let d = DtmfDigit {
            digit,
            kind,
            leg: p.leg,
            at: p.at,
        };
        if self.tx.try_send(d).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Tap for DtmfTap {
    fn packet(&self, p: &TapPacket<'_>) {
        let alaw = match p.codec {
            Some(Codec::TelephoneEvent) => {
                let got = {
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    st.on_event(p)
                };
                if let Some(d) = got {
                    self.emit(d, DtmfKind::Rfc4733, p);
                }
                return;
            }
            Some(Codec::Pcmu) => false,
            Some(Codec::Pcma) => true,
            // Opus (not decoded here) or a payload type not negotiated.
            _ => return,
        };
        let mut digits = [None; 4];
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.out_of_band {
                return;
            }
            st.on_audio(p, alaw, &mut digits);
        }
        for d in digits.into_iter().flatten() {
            self.emit(d, DtmfKind::Inband, p);
        }
    }
}

impl State {
    fn on_event(&mut self, p: &TapPacket<'_>) -> Option<char> {
        self.out_of_band = true;
        if self.event_ssrc != Some(p.ssrc) {
            // A new stream (re-INVITE, transfer): its timestamps start anew.
            self.event_ssrc = Some(p.ssrc);
            self.events = EventReceiver::new();
        }
        let ev = self.events.receive(p.ts, p.marker, p.payload).ok()??;
        let digit = ev.digit?;
        let heard = self.last_inband.take();
        if heard.is_some_and(|(d, t)| d == digit && p.at.saturating_duration_since(t) < SAME_PRESS)
        {
            return None;
        }
        Some(digit)
    }

    fn on_audio(&mut self, p: &TapPacket<'_>, alaw: bool, digits: &mut [Option<char>; 4]) {
        let mut k = 0;
        for chunk in p.payload.chunks(CHUNK) {
            let n = tandem_rtp::codec::decode_g711(chunk, &mut self.pcm, alaw);
            self.found.clear();
            self.detector.process(&self.pcm[..n], &mut self.found);
            for f in &self.found {
                self.last_inband = Some((f.digit, p.at));
                if let Some(slot) = digits.get_mut(k) {
                    *slot = Some(f.digit);
                    k += 1;
                }
            }
        }
    }
}

/// One tap slot shared by several taps (the recorder and the DTMF
/// detector), called in order for every packet.
pub fn fan_out(taps: Vec<Arc<dyn Tap>>) -> Arc<dyn Tap> {
    Arc::new(FanOut(taps.into_boxed_slice()))
}

struct FanOut(Box<[Arc<dyn Tap>]>);

impl Tap for FanOut {
    fn packet(&self, p: &TapPacket<'_>) {
        for t in &self.0 {
            t.packet(p);
        }
    }
}
