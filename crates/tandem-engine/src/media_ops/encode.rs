//! Encoding of generated 8 kHz PCM for a leg's negotiated codec: G.711
//! (ITU-T G.711, μ-law or A-law) directly, Opus (RFC 7587) through a
//! streaming 8 → 48 kHz resampler and tandem-media's encoder. Used by the
//! prompt and in-band digit sources.

use tandem_media::{Encoder, Resampler};
use tandem_rtp::relay::OutFormat;
use tandem_rtp::sdp::Codec;

/// Largest packet the sources produce, in 8 kHz samples (60 ms).
pub(crate) const MAX_FRAME_8K: usize = 480;

/// Per-source encoder state (only Opus keeps any).
#[derive(Debug, Default)]
pub(crate) struct PcmOut {
    opus: Option<OpusOut>,
    /// The Opus encoder could not be built: the source ends.
    failed: bool,
}

#[derive(Debug)]
struct OpusOut {
    enc: Encoder,
    up: Resampler,
    pending: Vec<i16>,
    out: Vec<u8>,
}

impl PcmOut {
    /// 8 kHz samples that make one packet of `format`, or `None` when the
    /// codec or packet time cannot be produced.
    pub(crate) fn samples_8k(format: &OutFormat) -> Option<usize> {
        let n = 8 * format.ptime as usize;
        let ok = match format.codec {
            Codec::Pcmu | Codec::Pcma => (1..=MAX_FRAME_8K).contains(&n),
            // Opus frames of 10, 20, 40 or 60 ms (RFC 6716 §2.1.4).
            Codec::Opus => matches!(format.ptime, 10 | 20 | 40 | 60),
            Codec::TelephoneEvent => false,
        };
        ok.then_some(n)
    }

    /// Encodes `pcm` (8 kHz, one packet's worth) into `payload` for
    /// `format`; `None` when this leg's codec cannot be produced.
    pub(crate) fn encode(
        &mut self,
        format: &OutFormat,
        pcm: &[i16],
        payload: &mut [u8],
    ) -> Option<usize> {
        match format.codec {
            Codec::Pcmu => Some(tandem_rtp::codec::encode_g711(pcm, payload, false)),
            Codec::Pcma => Some(tandem_rtp::codec::encode_g711(pcm, payload, true)),
            Codec::Opus => self.encode_opus(pcm, payload),
            Codec::TelephoneEvent => None,
        }
    }

    fn encode_opus(&mut self, pcm: &[i16], payload: &mut [u8]) -> Option<usize> {
        if self.failed {
            return None;
        }
        if self.opus.is_none() {
            match Encoder::for_source_rate(tandem_media::Codec::Opus, tandem_media::RATE_8K) {
                Ok(enc) => {
                    self.opus = Some(OpusOut {
                        enc,
                        up: Resampler::new(tandem_media::RATE_8K, tandem_media::RATE_48K),
                        pending: Vec::with_capacity(4 * tandem_media::FRAME_48K),
                        out: Vec::with_capacity(512),
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no Opus encoder: generated audio not sent");
                    self.failed = true;
                    return None;
                }
            }
        }
        let o = self.opus.as_mut()?;
        let want = pcm.len() * 6;
        o.up.process(pcm, &mut o.pending);
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
            self.failed = true;
            return None;
        }
        let n = o.out.len().min(payload.len());
        payload[..n].copy_from_slice(&o.out[..n]);
        Some(n)
    }
}
