//! DTMF out: `<Number sendDigits>` and `<Play digits>`. RFC 4733 §2.3
//! telephone-events when the leg negotiated telephone-event (tandem-rtp's
//! [`DigitsSource`], tandem-media's schedule), ITU-T Q.23 in-band tones
//! otherwise (on G.711 legs by the same source, on Opus legs here). `w` (or
//! `W`) is a 500 ms pause, as Twilio documents.

use std::time::Duration;

use tandem_media::InbandDigits;
use tandem_media::dtmf::{InbandConfig, parse_digits};
use tandem_rtp::relay::{DigitsSource, MediaSource, OutFormat, SourceOutput, SourcePacket};
use tandem_rtp::sdp::Codec;

use super::encode::{MAX_FRAME_8K, PcmOut};

/// Longest digit string accepted (Twilio documents no limit; 256 steps
/// last at most 128 s).
pub const MAX_DIGITS: usize = 256;

/// Why a digit string cannot be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigitsError {
    /// The string holds no digit and no pause.
    #[error("empty digit string")]
    Empty,
    /// A character that is not `0-9 * # A-D` nor `w`.
    #[error("invalid DTMF digit {digit:?} at position {index}")]
    Invalid {
        /// The character.
        digit: char,
        /// Its position (in characters).
        index: usize,
    },
    /// More than [`MAX_DIGITS`] characters.
    #[error("digit string of {len} characters is longer than {max}")]
    TooLong {
        /// Characters given.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Checks `digits` and returns the source that plays them. Inject it after
/// the leg has its media (`set_media`), so it sees the negotiated format.
pub fn digits_source(digits: &str) -> Result<SendDigits, DigitsError> {
    SendDigits::new(digits)
}

/// A [`MediaSource`] playing a DTMF string: RFC 4733 events if the leg
/// negotiated telephone-event, in-band tones otherwise. Ends after the last
/// digit's gap (100 ms tone, 100 ms gap per digit, 500 ms per `w`).
pub struct SendDigits {
    digits: String,
    duration: Duration,
    state: State,
}

enum State {
    Start,
    Rtp(DigitsSource),
    Opus(OpusTones),
    Done,
}

struct OpusTones {
    tones: InbandDigits,
    pos: u64,
    ts: u32,
    first: bool,
    out: PcmOut,
    pcm: [i16; MAX_FRAME_8K],
}

impl std::fmt::Debug for SendDigits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendDigits")
            .field("digits", &self.digits)
            .field("duration", &self.duration)
            .finish()
    }
}

impl SendDigits {
    /// Checks the string (see [`digits_source`]).
    pub fn new(digits: &str) -> Result<Self, DigitsError> {
        let len = digits.chars().count();
        if len > MAX_DIGITS {
            return Err(DigitsError::TooLong {
                len,
                max: MAX_DIGITS,
            });
        }
        if let Err(bad) = parse_digits(digits) {
            let index = digits.chars().position(|c| c == bad.0).unwrap_or(0);
            return Err(DigitsError::Invalid {
                digit: bad.0,
                index,
            });
        }
        if len == 0 {
            return Err(DigitsError::Empty);
        }
        let tones = InbandDigits::new(digits, InbandConfig::default()).map_err(|bad| {
            DigitsError::Invalid {
                digit: bad.0,
                index: 0,
            }
        })?;
        Ok(SendDigits {
            digits: digits.to_owned(),
            duration: Duration::from_micros(tones.total_samples() * 125),
            state: State::Start,
        })
    }

    /// How long the string takes to play (tones, gaps and pauses).
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The digit string.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    fn start(&self, format: &OutFormat) -> State {
        let g711 = matches!(format.codec, Codec::Pcmu | Codec::Pcma);
        if format.telephone_event_pt.is_some() || g711 {
            tracing::debug!(
                digits = %self.digits,
                rfc4733 = format.telephone_event_pt.is_some(),
                "sending DTMF"
            );
            return match DigitsSource::new(&self.digits) {
                Ok(s) => State::Rtp(s),
                Err(_) => State::Done,
            };
        }
        if PcmOut::samples_8k(format).is_none() {
            tracing::warn!(codec = ?format.codec, ptime = format.ptime, "cannot send DTMF on this leg");
            return State::Done;
        }
        match InbandDigits::new(&self.digits, InbandConfig::default()) {
            Ok(tones) => {
                tracing::debug!(digits = %self.digits, "sending DTMF in-band on an Opus leg");
                State::Opus(OpusTones {
                    tones,
                    pos: 0,
                    ts: 0,
                    first: true,
                    out: PcmOut::default(),
                    pcm: [0; MAX_FRAME_8K],
                })
            }
            Err(_) => State::Done,
        }
    }
}

impl MediaSource for SendDigits {
    fn next_packet(&mut self, format: &OutFormat, payload: &mut [u8]) -> SourceOutput {
        if let State::Start = self.state {
            self.state = self.start(format);
        }
        match &mut self.state {
            State::Start | State::Done => SourceOutput::Done,
            State::Rtp(s) => s.next_packet(format, payload),
            State::Opus(o) => {
                let Some(n) = PcmOut::samples_8k(format) else {
                    return SourceOutput::Done;
                };
                if o.pos >= o.tones.total_samples() {
                    return SourceOutput::Done;
                }
                o.tones.fill(o.pos, &mut o.pcm[..n]);
                o.pos += n as u64;
                let Some(len) = o.out.encode(format, &o.pcm[..n], payload) else {
                    return SourceOutput::Done;
                };
                let p = SourcePacket {
                    len,
                    event: false,
                    marker: o.first,
                    timestamp: o.ts,
                };
                o.first = false;
                o.ts = o.ts.wrapping_add(format.clock_rate / 1000 * format.ptime);
                SourceOutput::Packet(p)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_string() {
        assert_eq!(digits_source("").unwrap_err(), DigitsError::Empty);
        assert_eq!(
            digits_source("12x").unwrap_err(),
            DigitsError::Invalid {
                digit: 'x',
                index: 2
            }
        );
        let long = "1".repeat(MAX_DIGITS + 1);
        assert!(matches!(
            digits_source(&long),
            Err(DigitsError::TooLong { .. })
        ));
        // 3 digits of 200 ms and one 500 ms pause.
        let s = digits_source("12w#").unwrap();
        assert_eq!(s.duration(), Duration::from_millis(1100));
        assert!(digits_source("wW*#ABCDabcd0").is_ok());
    }

    #[test]
    fn opus_without_telephone_event_gets_tones() {
        let mut s = digits_source("5").unwrap();
        let f = OutFormat {
            codec: Codec::Opus,
            pt: 111,
            clock_rate: 48_000,
            ptime: 20,
            telephone_event_pt: None,
            telephone_event_clock: 48_000,
        };
        let mut buf = [0u8; 1500];
        let mut packets = 0;
        let mut ts = Vec::new();
        loop {
            match s.next_packet(&f, &mut buf) {
                SourceOutput::Packet(p) => {
                    packets += 1;
                    ts.push(p.timestamp);
                    assert!(p.len > 0 && !p.event);
                }
                SourceOutput::Skip => {}
                SourceOutput::Done => break,
            }
            assert!(packets < 100, "never ends");
        }
        // 200 ms in 20 ms packets, 960 ticks apart.
        assert_eq!(packets, 10);
        assert!(ts.windows(2).all(|w| w[1] - w[0] == 960));
    }
}
