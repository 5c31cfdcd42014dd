//! Codecs a leg can speak (PCMU, PCMA, Opus) and the transcoder that turns
//! one leg's payloads into the other's: decode -> resample 8 kHz <-> 48 kHz
//! -> encode, in 20 ms frames.
//!
//! Opus goes through `audiopus` (the system libopus) behind the `opus`
//! cargo feature; without it the `Opus` codec still exists for SDP, and
//! building its encoder or decoder returns [`CodecError::OpusUnavailable`].

use crate::g711;
use crate::resample::Resampler;

pub use tandem_types::{Codec, UnknownCodec};

/// Codec failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Built without the `opus` feature.
    #[error("Opus support is not compiled in (cargo feature `opus`)")]
    OpusUnavailable,
    /// libopus refused (bad packet, bad frame size...).
    #[error("opus: {0}")]
    Opus(String),
    /// telephone-event is not audio: it has no encoder or decoder.
    #[error("telephone-event is not an audio codec")]
    NotAudio,
    /// An encoder was given a frame of a size its codec cannot take.
    #[error("frame of {0} samples cannot be encoded")]
    BadFrameSize(usize),
}

#[cfg(feature = "opus")]
mod opus_impl {
    use super::CodecError;
    use audiopus::coder::{Decoder, Encoder};
    use audiopus::{Application, Bandwidth, Channels, MutSignals, SampleRate, packet::Packet};

    fn err(e: audiopus::Error) -> CodecError {
        CodecError::Opus(e.to_string())
    }

    pub struct OpusEncoder(Encoder);
    pub struct OpusDecoder(Decoder);

    impl OpusEncoder {
        /// `source_rate`: the rate the audio was captured at, which bounds
        /// the bandwidth worth coding (G.711 audio has nothing above 4 kHz,
        /// and coding it narrowband takes the SILK-only path, much cheaper).
        pub fn new(source_rate: u32) -> Result<Self, CodecError> {
            let mut e = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip)
                .map_err(err)?;
            // Complexity 5 halves the CPU of the default 9 for speech at a
            // small quality cost; calls are many.
            e.set_complexity(5).map_err(err)?;
            let max = match source_rate {
                0..=8000 => Some(Bandwidth::Narrowband),
                8001..=16000 => Some(Bandwidth::Wideband),
                _ => None,
            };
            if let Some(max) = max {
                e.set_max_bandwidth(max).map_err(err)?;
            }
            Ok(OpusEncoder(e))
        }
        pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
            let mut buf = [0u8; 1500];
            let n = self.0.encode(pcm, &mut buf).map_err(err)?;
            out.extend_from_slice(&buf[..n]);
            Ok(())
        }
    }

    impl OpusDecoder {
        pub fn new() -> Result<Self, CodecError> {
            Ok(OpusDecoder(
                Decoder::new(SampleRate::Hz48000, Channels::Mono).map_err(err)?,
            ))
        }
        /// Decodes a packet, or conceals a lost one when `payload` is None.
        pub fn decode(
            &mut self,
            payload: Option<&[u8]>,
            frame: usize,
            out: &mut Vec<i16>,
        ) -> Result<(), CodecError> {
            // Up to 120 ms per packet at 48 kHz, decoded straight into
            // `out` (no buffer per packet: callers reuse `out`).
            const MAX: usize = 5760;
            let packet = match payload {
                Some(p) => Some(Packet::try_from(p).map_err(err)?),
                None => None,
            };
            let len = if packet.is_none() {
                frame.min(MAX)
            } else {
                MAX
            };
            let start = out.len();
            out.resize(start + len, 0);
            let decoded = MutSignals::try_from(&mut out[start..])
                .map_err(err)
                .and_then(|signals| self.0.decode(packet, signals, false).map_err(err));
            match decoded {
                Ok(n) => {
                    out.truncate(start + n);
                    Ok(())
                }
                Err(e) => {
                    out.truncate(start);
                    Err(e)
                }
            }
        }
    }

    impl std::fmt::Debug for OpusEncoder {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("OpusEncoder")
        }
    }
    impl std::fmt::Debug for OpusDecoder {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("OpusDecoder")
        }
    }
}

#[derive(Debug)]
enum DecoderInner {
    Pcmu,
    Pcma,
    #[cfg(feature = "opus")]
    Opus(opus_impl::OpusDecoder),
}

/// Turns payloads of one codec into PCM at [`Codec::pcm_rate`].
#[derive(Debug)]
pub struct Decoder {
    codec: Codec,
    inner: DecoderInner,
}

impl Decoder {
    /// A decoder for `codec`.
    pub fn new(codec: Codec) -> Result<Self, CodecError> {
        let inner = match codec {
            Codec::Pcmu => DecoderInner::Pcmu,
            Codec::Pcma => DecoderInner::Pcma,
            #[cfg(feature = "opus")]
            Codec::Opus => DecoderInner::Opus(opus_impl::OpusDecoder::new()?),
            #[cfg(not(feature = "opus"))]
            Codec::Opus => return Err(CodecError::OpusUnavailable),
            Codec::TelephoneEvent => return Err(CodecError::NotAudio),
        };
        Ok(Decoder { codec, inner })
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes one payload, appending PCM to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        match &mut self.inner {
            DecoderInner::Pcmu => g711::decode_ulaw(payload, out),
            DecoderInner::Pcma => g711::decode_alaw(payload, out),
            #[cfg(feature = "opus")]
            DecoderInner::Opus(d) => d.decode(Some(payload), 0, out)?,
        }
        Ok(())
    }

    /// Fills `samples` of a lost packet: Opus packet-loss concealment,
    /// silence for G.711.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), CodecError> {
        match &mut self.inner {
            #[cfg(feature = "opus")]
            DecoderInner::Opus(d) => d.decode(None, samples, out)?,
            _ => out.resize(out.len() + samples, 0),
        }
        Ok(())
    }
}

#[derive(Debug)]
enum EncoderInner {
    Pcmu,
    Pcma,
    #[cfg(feature = "opus")]
    Opus(opus_impl::OpusEncoder),
}

/// Turns PCM at [`Codec::pcm_rate`] into payloads.
#[derive(Debug)]
pub struct Encoder {
    codec: Codec,
    inner: EncoderInner,
}

impl Encoder {
    /// An encoder for `codec`, for audio of full bandwidth.
    pub fn new(codec: Codec) -> Result<Self, CodecError> {
        Encoder::for_source_rate(codec, u32::MAX)
    }

    /// An encoder for `codec` fed audio that was captured at `source_rate`
    /// (an Opus encoder then codes no more bandwidth than the source has:
    /// narrowband for G.711 audio, at a fraction of the CPU).
    pub fn for_source_rate(codec: Codec, source_rate: u32) -> Result<Self, CodecError> {
        #[cfg(not(feature = "opus"))]
        let _ = source_rate;
        let inner = match codec {
            Codec::Pcmu => EncoderInner::Pcmu,
            Codec::Pcma => EncoderInner::Pcma,
            #[cfg(feature = "opus")]
            Codec::Opus => EncoderInner::Opus(opus_impl::OpusEncoder::new(source_rate)?),
            #[cfg(not(feature = "opus"))]
            Codec::Opus => return Err(CodecError::OpusUnavailable),
            Codec::TelephoneEvent => return Err(CodecError::NotAudio),
        };
        Ok(Encoder { codec, inner })
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Encodes one frame (for Opus: 2.5, 5, 10, 20, 40 or 60 ms), appending
    /// the payload to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match &mut self.inner {
            EncoderInner::Pcmu => g711::encode_ulaw(pcm, out),
            EncoderInner::Pcma => g711::encode_alaw(pcm, out),
            #[cfg(feature = "opus")]
            EncoderInner::Opus(e) => {
                if ![120, 240, 480, 960, 1920, 2880].contains(&pcm.len()) {
                    return Err(CodecError::BadFrameSize(pcm.len()));
                }
                e.encode(pcm, out)?
            }
        }
        Ok(())
    }
}

/// Converts one leg's payloads into the other leg's codec, 20 ms per
/// output payload. Between codecs of the same PCM rate no resampling
/// happens; PCMU <-> PCMA goes through linear PCM.
#[derive(Debug)]
pub struct Transcoder {
    dec: Decoder,
    enc: Encoder,
    resampler: Option<Resampler>,
    /// Decoded (and resampled) PCM waiting for a whole output frame.
    pending: Vec<i16>,
    scratch: Vec<i16>,
    frame: usize,
}

impl Transcoder {
    /// A transcoder from `from` payloads to `to` payloads.
    pub fn new(from: Codec, to: Codec) -> Result<Self, CodecError> {
        let resampler = (from.pcm_rate() != to.pcm_rate())
            .then(|| Resampler::new(from.pcm_rate(), to.pcm_rate()));
        Ok(Transcoder {
            dec: Decoder::new(from)?,
            enc: Encoder::for_source_rate(to, from.pcm_rate())?,
            resampler,
            pending: Vec::new(),
            scratch: Vec::new(),
            frame: to.samples_per_frame(20),
        })
    }

    /// Source codec.
    pub fn from_codec(&self) -> Codec {
        self.dec.codec()
    }

    /// Target codec.
    pub fn to_codec(&self) -> Codec {
        self.enc.codec()
    }

    /// Transcodes one payload; each whole 20 ms frame of output is pushed
    /// to `out` (zero or more payloads, usually one).
    pub fn transcode(&mut self, payload: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), CodecError> {
        self.scratch.clear();
        self.dec.decode(payload, &mut self.scratch)?;
        self.emit(out)
    }

    /// Stands in for a lost source packet of `samples` (at the source
    /// rate), so the output keeps its pace.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<Vec<u8>>) -> Result<(), CodecError> {
        self.scratch.clear();
        self.dec.conceal(samples, &mut self.scratch)?;
        self.emit(out)
    }

    fn emit(&mut self, out: &mut Vec<Vec<u8>>) -> Result<(), CodecError> {
        match &mut self.resampler {
            Some(r) => r.process(&self.scratch, &mut self.pending),
            None => self.pending.extend_from_slice(&self.scratch),
        }
        let mut done = 0;
        while self.pending.len() - done >= self.frame {
            let mut payload = Vec::new();
            self.enc
                .encode(&self.pending[done..done + self.frame], &mut payload)?;
            out.push(payload);
            done += self.frame;
        }
        self.pending.drain(..done);
        Ok(())
    }
}
