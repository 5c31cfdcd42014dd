//! Decoding what a leg receives to 8 kHz PCM, for the taps that listen to
//! it (the conference mixer, answering-machine detection): G.711 as is,
//! Opus decoded at 48 kHz and brought down to 8 kHz. The Opus decoder is
//! built on the leg's first Opus packet.

use tandem_media::{Decoder, Resampler};
use tandem_rtp::relay::TapPacket;
use tandem_rtp::sdp::Codec;

/// One leg's decoding state.
#[derive(Default)]
pub struct Pcm8k {
    pcm: Vec<i16>,
    down: Vec<i16>,
    opus: Option<Box<(Decoder, Resampler)>>,
    opus_failed: bool,
}

impl Pcm8k {
    /// The packet's audio at 8 kHz; `None` for what is not audio (events,
    /// payload types not negotiated) or does not decode.
    pub fn decode(&mut self, p: &TapPacket<'_>) -> Option<&[i16]> {
        match p.codec {
            Some(c @ (Codec::Pcmu | Codec::Pcma)) => {
                self.pcm.resize(p.payload.len(), 0);
                let n = tandem_rtp::codec::decode_g711(p.payload, &mut self.pcm, c == Codec::Pcma);
                self.pcm.truncate(n);
                Some(&self.pcm)
            }
            Some(Codec::Opus) => {
                if self.opus.is_none() && !self.opus_failed {
                    match Decoder::new(Codec::Opus) {
                        Ok(dec) => {
                            let rs = Resampler::new(Codec::Opus.pcm_rate(), tandem_media::RATE_8K);
                            self.opus = Some(Box::new((dec, rs)));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "no Opus decoder: this leg's audio is not heard");
                            self.opus_failed = true;
                        }
                    }
                }
                let (dec, down) = &mut **self.opus.as_mut()?;
                self.pcm.clear();
                dec.decode(p.payload, &mut self.pcm).ok()?;
                self.down.clear();
                down.process(&self.pcm, &mut self.down);
                Some(&self.down)
            }
            _ => None,
        }
    }
}
