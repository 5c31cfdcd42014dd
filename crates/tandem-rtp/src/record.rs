//! Feeding tandem-media's [`Recorder`] from relay taps: each received
//! packet (G.711, or Opus decoded and brought down to 8 kHz) is placed on
//! the recording's wall clock by its RTP timestamp, anchored to its arrival
//! time. Lost packets leave gaps that the recorder writes as silence, so
//! the file lasts as long as the call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tandem_media::recorder::{Leg as Channel, RecordingSink};
use tandem_media::{Decoder, RATE_8K, Recorder, Resampler};
use tokio::time::Instant;

use crate::relay::{Tap, TapPacket};
use crate::sdp::Codec;

/// A packet further than this from where its arrival says it belongs
/// re-anchors the timestamp mapping (new source, clock skew, a jump).
const RESYNC: u64 = RATE_8K as u64 / 5;

/// Position in samples at 8 kHz of `at`, counted from `start`.
pub fn position(start: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(start).as_nanos() as u64 * u64::from(RATE_8K) / 1_000_000_000
}

struct Anchor {
    ssrc: u32,
    /// RTP clock rate of the stream (a codec change re-anchors).
    clock: u32,
    ts: u32,
    at: u64,
}

/// Opus decoding state of one leg's tap: built on the first Opus packet.
struct OpusIn {
    ssrc: u32,
    dec: Decoder,
    down: Resampler,
    pcm48: Vec<i16>,
    pcm8: Vec<i16>,
}

/// A [`Tap`] that decodes what one leg receives into one channel of a shared
/// recorder. Install one per leg: [`Channel::Parent`] on the caller's leg
/// (channel 1 of a dual recording), [`Channel::Child`] on the callee's.
///
/// Runs on the leg's receive task: the recorder's lock is held only for the
/// push, and a file sink sees a buffered write about once a second. The
/// engine calls [`Recorder::advance`] on its own timer with [`position`], so
/// silence at the end of a call is written too, and [`Recorder::finish`]
/// with the call's end. Opus packets are decoded (48 kHz) and resampled to
/// the recording's 8 kHz; the decoder is built on a leg's first Opus packet.
pub struct RecordingTap<W: RecordingSink + Send + 'static> {
    rec: Arc<Mutex<Recorder<W>>>,
    start: Instant,
    channel: Channel,
    anchor: Mutex<Option<Anchor>>,
    opus: Mutex<Option<Box<OpusIn>>>,
    /// Packets whose audio reached the recorder.
    recorded: AtomicU64,
}

impl<W: RecordingSink + Send + 'static> RecordingTap<W> {
    /// A tap for `channel`, positions counted from `start` (the instant
    /// the recording started).
    pub fn new(rec: Arc<Mutex<Recorder<W>>>, start: Instant, channel: Channel) -> Arc<Self> {
        Arc::new(RecordingTap {
            rec,
            start,
            channel,
            anchor: Mutex::new(None),
            opus: Mutex::new(None),
            recorded: AtomicU64::new(0),
        })
    }

    /// Where `p` belongs, in 8 kHz samples; `clock` is its RTP clock rate.
    fn place(&self, p: &TapPacket<'_>, clock: u32) -> u64 {
        let arrival = position(self.start, p.at);
        let mut anchor = self.anchor.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(a) = anchor
            .as_ref()
            .filter(|a| a.ssrc == p.ssrc && a.clock == clock)
        {
            let delta = i64::from(p.ts.wrapping_sub(a.ts) as i32) * i64::from(RATE_8K)
                / i64::from(clock.max(1));
            let at = a.at as i64 + delta;
            if at >= 0 && (at as u64).abs_diff(arrival) <= RESYNC {
                return at as u64;
            }
        }
        *anchor = Some(Anchor {
            ssrc: p.ssrc,
            clock,
            ts: p.ts,
            at: arrival,
        });
        arrival
    }
}

impl<W: RecordingSink + Send + 'static> RecordingTap<W> {
    /// Packets whose audio reached the recorder so far (an undecodable or
    /// foreign packet does not count).
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    fn push(&self, at: u64, pcm: &[i16]) {
        if !pcm.is_empty() {
            self.recorded.fetch_add(1, Ordering::Relaxed);
        }
        let mut rec = self.rec.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = rec.push(self.channel, at, pcm) {
            tracing::warn!(error = %e, "recording frame dropped");
        }
    }

    /// Decodes an Opus packet to 8 kHz and records it.
    fn opus(&self, p: &TapPacket<'_>) {
        let mut slot = self.opus.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|o| o.ssrc != p.ssrc) {
            // A new stream: fresh decoder state, no resampler history.
            match Decoder::new(Codec::Opus) {
                Ok(dec) => {
                    *slot = Some(Box::new(OpusIn {
                        ssrc: p.ssrc,
                        dec,
                        down: Resampler::new(Codec::Opus.pcm_rate(), RATE_8K),
                        pcm48: Vec::with_capacity(5760),
                        pcm8: Vec::with_capacity(960),
                    }));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no Opus decoder: Opus audio not recorded");
                    return;
                }
            }
        }
        let Some(o) = slot.as_mut() else { return };
        o.pcm48.clear();
        if let Err(e) = o.dec.decode(p.payload, &mut o.pcm48) {
            tracing::debug!(error = %e, "undecodable Opus packet not recorded");
            return;
        }
        o.pcm8.clear();
        o.down.process(&o.pcm48, &mut o.pcm8);
        let at = self.place(p, Codec::Opus.clock_rate());
        self.push(at, &o.pcm8);
    }
}

impl<W: RecordingSink + Send + 'static> Tap for RecordingTap<W> {
    fn packet(&self, p: &TapPacket<'_>) {
        let alaw = match p.codec {
            Some(Codec::Pcmu) => false,
            Some(Codec::Pcma) => true,
            Some(Codec::Opus) => return self.opus(p),
            // No SDP on the leg: G.711 by its static payload type.
            None if p.pt == 0 || p.pt == 8 => p.pt == 8,
            _ => return,
        };
        let mut pcm = [0i16; 480];
        let n = crate::codec::decode_g711(p.payload, &mut pcm, alaw);
        let at = self.place(p, RATE_8K);
        self.push(at, &pcm[..n]);
    }
}
