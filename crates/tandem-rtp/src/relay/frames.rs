//! The one encoder of generated audio. Ringback, DTMF tones, `<Say>` and
//! `<Play>` all make 8 kHz PCM; [`PcmFrames`] cuts it into packets of the
//! leg's packet time and encodes them for the leg's codec: G.711 (μ-law or
//! A-law) directly, Opus (RFC 7587) through a streaming 8 → 48 kHz
//! resampler and tandem-media's encoder. It keeps the source's RTP
//! timeline (timestamps in the leg's clock, marker on the first packet).

use tandem_media::{Encoder, RATE_8K, RATE_48K, Resampler};

use super::inject::{SourceOutput, SourcePacket};
use super::tx::OutFormat;
use crate::sdp::Codec;

/// Largest packet the generated sources produce, in 8 kHz samples (60 ms).
pub const MAX_FRAME_8K: usize = 480;

/// Packetiser and encoder of generated 8 kHz PCM. The Opus state (about
/// 20 KB with libopus) is built on the first Opus packet only, so G.711
/// legs (most calls) never pay for it.
pub struct PcmFrames {
    ts: u32,
    first: bool,
    /// The source could not be encoded (no Opus encoder): it ends.
    failed: bool,
    pcm: [i16; MAX_FRAME_8K],
    opus: Option<Box<OpusOut>>,
}

struct OpusOut {
    enc: Encoder,
    up: Resampler,
    pending: Vec<i16>,
    out: Vec<u8>,
}

impl Default for PcmFrames {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PcmFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcmFrames")
            .field("ts", &self.ts)
            .field("opus", &self.opus.is_some())
            .finish()
    }
}

impl PcmFrames {
    /// A timeline starting at timestamp 0 with the marker bit set.
    pub fn new() -> Self {
        PcmFrames {
            ts: 0,
            first: true,
            failed: false,
            pcm: [0; MAX_FRAME_8K],
            opus: None,
        }
    }

    /// 8 kHz samples that make one packet of `format`, or `None` when its
    /// codec or packet time cannot be produced.
    pub fn samples_8k(format: &OutFormat) -> Option<usize> {
        let n = 8 * format.ptime as usize;
        let ok = match format.codec {
            Codec::Pcmu | Codec::Pcma => (1..=MAX_FRAME_8K).contains(&n),
            // Opus frames of 10, 20, 40 or 60 ms (RFC 6716 §2.1.4).
            Codec::Opus => matches!(format.ptime, 10 | 20 | 40 | 60),
            Codec::TelephoneEvent => false,
        };
        ok.then_some(n)
    }

    /// Asks `fill` for one packet's worth of 8 kHz samples (it returns
    /// false when the source is finished) and encodes them into `payload`.
    /// `Done` when the source is finished or this leg's codec cannot be
    /// produced.
    pub fn next(
        &mut self,
        format: &OutFormat,
        payload: &mut [u8],
        fill: impl FnOnce(&mut [i16]) -> bool,
    ) -> SourceOutput {
        if self.failed {
            return SourceOutput::Done;
        }
        let Some(n) = Self::samples_8k(format) else {
            tracing::warn!(codec = ?format.codec, ptime = format.ptime, "cannot send generated audio on this leg");
            self.failed = true;
            return SourceOutput::Done;
        };
        if !fill(&mut self.pcm[..n]) {
            return SourceOutput::Done;
        }
        let len = match format.codec {
            Codec::Pcmu => crate::codec::encode_g711(&self.pcm[..n], payload, false),
            Codec::Pcma => crate::codec::encode_g711(&self.pcm[..n], payload, true),
            Codec::Opus => match self.encode_opus(n, payload) {
                Some(len) => len,
                None => {
                    self.failed = true;
                    return SourceOutput::Done;
                }
            },
            Codec::TelephoneEvent => return SourceOutput::Done,
        };
        let p = SourcePacket {
            len,
            event: false,
            marker: self.first,
            timestamp: self.ts,
        };
        self.first = false;
        self.ts = self.ts.wrapping_add(format.frame_samples());
        SourceOutput::Packet(p)
    }

    fn encode_opus(&mut self, n: usize, payload: &mut [u8]) -> Option<usize> {
        if self.opus.is_none() {
            match Encoder::for_source_rate(Codec::Opus, RATE_8K) {
                Ok(enc) => {
                    self.opus = Some(Box::new(OpusOut {
                        enc,
                        up: Resampler::new(RATE_8K, RATE_48K),
                        pending: Vec::with_capacity(4 * tandem_media::FRAME_48K),
                        out: Vec::with_capacity(512),
                    }));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no Opus encoder: generated audio not sent");
                    return None;
                }
            }
        }
        let o = self.opus.as_mut()?;
        let want = n * (RATE_48K / RATE_8K) as usize;
        o.up.process(&self.pcm[..n], &mut o.pending);
        if o.pending.len() < want {
            // The resampler's start-up delay: pad once, the stream then
            // keeps a constant lead.
            let pad = want - o.pending.len();
            o.pending.splice(0..0, std::iter::repeat_n(0, pad));
        }
        o.out.clear();
        let res = o.enc.encode(&o.pending[..want], &mut o.out);
        o.pending.drain(..want);
        if let Err(e) = res {
            tracing::warn!(error = %e, "Opus encode failed: generated audio stops");
            return None;
        }
        let len = o.out.len().min(payload.len());
        payload[..len].copy_from_slice(&o.out[..len]);
        Some(len)
    }
}
