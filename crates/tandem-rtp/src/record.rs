//! Feeding tandem-media's [`Recorder`] from relay taps: each received G.711
//! packet is decoded and placed on the recording's wall clock by its RTP
//! timestamp, anchored to its arrival time. Lost packets leave gaps that the
//! recorder writes as silence, so the file lasts as long as the call.

use std::sync::{Arc, Mutex, PoisonError};

use tandem_media::Recorder;
use tandem_media::recorder::{Leg as Channel, RecordingSink};
use tokio::time::Instant;

use crate::relay::{Tap, TapPacket};
use crate::sdp::Codec;

/// Recording sample rate (8 kHz).
const RATE: u64 = 8000;
/// A packet further than this from where its arrival says it belongs
/// re-anchors the timestamp mapping (new source, clock skew, a jump).
const RESYNC: u64 = RATE / 5;

/// Position in samples at 8 kHz of `at`, counted from `start`.
pub fn position(start: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(start).as_nanos() as u64 * RATE / 1_000_000_000
}

struct Anchor {
    ssrc: u32,
    ts: u32,
    at: u64,
}

/// A [`Tap`] that decodes what one leg receives into one channel of a shared
/// recorder. Install one per leg: [`Channel::Parent`] on the caller's leg
/// (channel 1 of a dual recording), [`Channel::Child`] on the callee's.
///
/// Runs on the leg's receive task: the recorder's lock is held only for the
/// push, and a file sink sees a buffered write about once a second. The
/// engine calls [`Recorder::advance`] on its own timer with [`position`], so
/// silence at the end of a call is written too, and [`Recorder::finish`]
/// with the call's end. Opus packets are skipped (not decoded here).
pub struct RecordingTap<W: RecordingSink + Send + 'static> {
    rec: Arc<Mutex<Recorder<W>>>,
    start: Instant,
    channel: Channel,
    anchor: Mutex<Option<Anchor>>,
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
        })
    }

    fn place(&self, p: &TapPacket<'_>) -> u64 {
        let arrival = position(self.start, p.at);
        let mut anchor = self.anchor.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(a) = anchor.as_ref().filter(|a| a.ssrc == p.ssrc) {
            let delta = i64::from(p.ts.wrapping_sub(a.ts) as i32);
            let at = a.at as i64 + delta;
            if at >= 0 && (at as u64).abs_diff(arrival) <= RESYNC {
                return at as u64;
            }
        }
        *anchor = Some(Anchor {
            ssrc: p.ssrc,
            ts: p.ts,
            at: arrival,
        });
        arrival
    }
}

impl<W: RecordingSink + Send + 'static> Tap for RecordingTap<W> {
    fn packet(&self, p: &TapPacket<'_>) {
        let alaw = match p.codec {
            Some(Codec::Pcmu) => false,
            Some(Codec::Pcma) => true,
            // No SDP on the leg: G.711 by its static payload type.
            None if p.pt == 0 || p.pt == 8 => p.pt == 8,
            _ => return,
        };
        let mut pcm = [0i16; 480];
        let n = crate::codec::decode_g711(p.payload, &mut pcm, alaw);
        let at = self.place(p);
        let mut rec = self.rec.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = rec.push(self.channel, at, &pcm[..n]) {
            tracing::warn!(error = %e, "recording frame dropped");
        }
    }
}
