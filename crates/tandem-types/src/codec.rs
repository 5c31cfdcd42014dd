//! What an RTP payload type can stand for in Tandem: the audio codecs it
//! negotiates and RFC 4733 telephone-events. Encoders and decoders are
//! tandem-media's; SDP rules are tandem-rtp's.

use std::fmt;
use std::str::FromStr;

/// A payload format Tandem negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// Opus (RFC 7587), dynamic payload type, `opus/48000/2`.
    Opus,
    /// RFC 4733 named events, `telephone-event/<rate>`, dynamic payload
    /// type. Not audio: no encoder or decoder takes it.
    TelephoneEvent,
}

impl Codec {
    /// The audio codecs, in Tandem's default preference order.
    pub const AUDIO: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::Opus];

    /// True for audio codecs, false for telephone-event.
    pub fn is_audio(self) -> bool {
        self != Codec::TelephoneEvent
    }

    /// The RTP clock rate normally used with this codec.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::Pcmu | Codec::Pcma | Codec::TelephoneEvent => 8000,
        }
    }

    /// Static payload type (RFC 3551), `None` for dynamic ones.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::Opus | Codec::TelephoneEvent => None,
        }
    }

    /// Payload type Tandem offers: the static one, 111 for Opus, 101 for
    /// telephone-event.
    pub fn default_payload_type(self) -> u8 {
        match self {
            Codec::Opus => 111,
            Codec::TelephoneEvent => 101,
            _ => self.static_payload_type().unwrap_or(0),
        }
    }

    /// The `a=rtpmap` encoding name.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
            Codec::TelephoneEvent => "telephone-event",
        }
    }

    /// Channels in `a=rtpmap` (Opus is always written `/2`, RFC 7587).
    pub fn rtpmap_channels(self) -> u8 {
        match self {
            Codec::Opus => 2,
            _ => 1,
        }
    }

    /// The codec of an `a=rtpmap` line: encoding name (ASCII case
    /// ignored), clock rate and channels. G.711 at 8 kHz, Opus only as
    /// `opus/48000/2` (RFC 7587 §7), telephone-event at any rate.
    pub fn from_rtpmap(name: &str, clock_rate: u32, channels: u8) -> Option<Codec> {
        let c = if name.eq_ignore_ascii_case("telephone-event") {
            return Some(Codec::TelephoneEvent);
        } else {
            Codec::AUDIO
                .into_iter()
                .find(|c| c.encoding_name().eq_ignore_ascii_case(name))?
        };
        let channels_ok = c != Codec::Opus || channels == 2;
        (c.clock_rate() == clock_rate && channels_ok).then_some(c)
    }

    /// Rate of the PCM this codec encodes and decodes (Tandem runs Opus at
    /// 48 kHz, mono).
    pub fn pcm_rate(self) -> u32 {
        self.clock_rate()
    }

    /// PCM samples in a frame of `ptime_ms`.
    pub fn samples_per_frame(self, ptime_ms: u32) -> usize {
        (self.pcm_rate() / 1000 * ptime_ms) as usize
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// An encoding name that is none of PCMU, PCMA, opus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec name (PCMU, PCMA or opus)")]
pub struct UnknownCodec;

impl FromStr for Codec {
    type Err = UnknownCodec;
    /// An audio codec by its encoding name, ASCII case ignored
    /// (telephone-event is not a codec one can choose).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Codec::AUDIO
            .into_iter()
            .find(|c| c.encoding_name().eq_ignore_ascii_case(s))
            .ok_or(UnknownCodec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpmap_rules() {
        assert_eq!(Codec::from_rtpmap("pcmu", 8000, 1), Some(Codec::Pcmu));
        assert_eq!(Codec::from_rtpmap("PCMA", 16000, 1), None);
        assert_eq!(Codec::from_rtpmap("opus", 48000, 2), Some(Codec::Opus));
        assert_eq!(Codec::from_rtpmap("opus", 48000, 1), None);
        assert_eq!(
            Codec::from_rtpmap("telephone-event", 48000, 1),
            Some(Codec::TelephoneEvent)
        );
        assert_eq!(Codec::from_rtpmap("G729", 8000, 1), None);
        assert_eq!("OPUS".parse(), Ok(Codec::Opus));
        assert_eq!("telephone-event".parse::<Codec>(), Err(UnknownCodec));
        assert_eq!(Codec::TelephoneEvent.default_payload_type(), 101);
        assert_eq!(Codec::Opus.samples_per_frame(20), 960);
    }
}
