//! Ready-made [`MediaSource`]s: 8 kHz PCM from a closure, a country's
//! ringback (tandem-media's E.180 cadences) and DTMF digit strings (RFC 4733
//! events when the leg negotiated telephone-event, in-band tones otherwise).
//! Every one encodes through [`PcmFrames`], so G.711 and Opus legs alike
//! hear them.

use std::time::Duration;

use tandem_media::dtmf::{InbandConfig, InbandDigits, parse_digits};
use tandem_media::rfc4733::{EventEncoderConfig, EventSchedule, encode_digits};
use tandem_media::{RingTone, Ringback};

use super::frames::PcmFrames;
use super::inject::{MediaSource, SourceOutput, SourcePacket};
use super::tx::OutFormat;

/// 8 kHz PCM from a closure, encoded for the leg. `fill` writes one
/// packet's worth of samples and returns false when finished.
pub struct PcmSource<F> {
    fill: F,
    frames: PcmFrames,
}

impl<F: FnMut(&mut [i16]) -> bool + Send + 'static> PcmSource<F> {
    /// A source from a sample generator.
    pub fn new(fill: F) -> Self {
        PcmSource {
            fill,
            frames: PcmFrames::new(),
        }
    }
}

impl<F: FnMut(&mut [i16]) -> bool + Send + 'static> MediaSource for PcmSource<F> {
    fn next_packet(&mut self, format: &OutFormat, payload: &mut [u8]) -> SourceOutput {
        self.frames.next(format, payload, &mut self.fill)
    }
}

/// A country's ringback, looping until the injection is stopped.
pub struct RingbackSource {
    ringback: Ringback,
    pos: u64,
    frames: PcmFrames,
}

impl RingbackSource {
    /// Ringback for `tone`.
    pub fn new(tone: RingTone) -> Self {
        RingbackSource {
            ringback: Ringback::new(tone),
            pos: 0,
            frames: PcmFrames::new(),
        }
    }
}

impl MediaSource for RingbackSource {
    fn next_packet(&mut self, format: &OutFormat, payload: &mut [u8]) -> SourceOutput {
        let (ringback, pos) = (&self.ringback, &mut self.pos);
        self.frames.next(format, payload, |out| {
            ringback.fill(*pos, out);
            *pos += out.len() as u64;
            true
        })
    }
}

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

enum DigitState {
    Start,
    Events {
        schedule: EventSchedule,
        next: usize,
        elapsed: Duration,
    },
    Inband {
        tones: InbandDigits,
        pos: u64,
        frames: Box<PcmFrames>,
    },
    Done,
}

/// A DTMF digit string (`<Number sendDigits>`, `<Play digits>`: `0-9 * #
/// A-D`, `w` or `W` = 500 ms pause, as Twilio documents): RFC 4733 §2.3
/// telephone-events if the leg negotiated telephone-event, ITU-T Q.23
/// in-band tones otherwise (on G.711 and Opus legs). Ends after the last
/// digit's gap (100 ms tone, 100 ms gap per digit, 500 ms per `w`).
pub struct DigitsSource {
    digits: String,
    duration: Duration,
    state: DigitState,
}

impl std::fmt::Debug for DigitsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigitsSource")
            .field("digits", &self.digits)
            .field("duration", &self.duration)
            .finish()
    }
}

impl DigitsSource {
    /// Checks the digits now, so a bad `sendDigits` fails before the call
    /// (empty, a character that is no digit, longer than [`MAX_DIGITS`]).
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
        Ok(DigitsSource {
            digits: digits.to_owned(),
            duration: Duration::from_micros(tones.total_samples() * 125),
            state: DigitState::Start,
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

    fn start(&self, format: &OutFormat) -> DigitState {
        tracing::debug!(
            digits = %self.digits,
            rfc4733 = format.telephone_event_pt.is_some(),
            codec = %format.codec,
            "sending DTMF"
        );
        if format.telephone_event_pt.is_some() {
            let cfg = EventEncoderConfig {
                clock_rate: format.telephone_event_clock,
                ..EventEncoderConfig::default()
            };
            return match encode_digits(&self.digits, &cfg) {
                Ok(schedule) => DigitState::Events {
                    schedule,
                    next: 0,
                    elapsed: Duration::ZERO,
                },
                Err(_) => DigitState::Done,
            };
        }
        match InbandDigits::new(&self.digits, InbandConfig::default()) {
            Ok(tones) => DigitState::Inband {
                tones,
                pos: 0,
                frames: Box::new(PcmFrames::new()),
            },
            Err(_) => DigitState::Done,
        }
    }
}

impl MediaSource for DigitsSource {
    fn next_packet(&mut self, format: &OutFormat, payload: &mut [u8]) -> SourceOutput {
        if let DigitState::Start = self.state {
            self.state = self.start(format);
        }
        match &mut self.state {
            DigitState::Start | DigitState::Done => SourceOutput::Done,
            DigitState::Events {
                schedule,
                next,
                elapsed,
            } => {
                let now = *elapsed;
                *elapsed += Duration::from_millis(u64::from(format.ptime));
                match schedule.packets.get(*next) {
                    Some(p) if p.send_at <= now => {
                        *next += 1;
                        payload[..4].copy_from_slice(&p.payload);
                        SourceOutput::Packet(SourcePacket {
                            len: 4,
                            event: true,
                            marker: p.marker,
                            timestamp: p.timestamp,
                        })
                    }
                    Some(_) => SourceOutput::Skip,
                    None if now < schedule.total => SourceOutput::Skip,
                    None => SourceOutput::Done,
                }
            }
            DigitState::Inband { tones, pos, frames } => frames.next(format, payload, |out| {
                if *pos >= tones.total_samples() {
                    return false;
                }
                tones.fill(*pos, out);
                *pos += out.len() as u64;
                true
            }),
        }
    }
}
