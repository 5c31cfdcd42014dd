//! Ready-made [`MediaSource`]s: 8 kHz PCM from a closure, a country's
//! ringback (tandem-media's E.180 cadences) and DTMF digit strings (RFC 4733
//! events when the leg negotiated telephone-event, in-band tones otherwise).
//! They encode G.711 only: on an Opus leg they end at once, and the engine
//! plays through a transcoding source of its own.

use std::time::Duration;

use tandem_media::dtmf::{InbandConfig, InbandDigits, InvalidDigit, parse_digits};
use tandem_media::rfc4733::{EventEncoderConfig, EventSchedule, encode_digits};
use tandem_media::{RingTone, Ringback};

use super::inject::{MediaSource, SourceOutput, SourcePacket};
use super::tx::OutFormat;
use crate::sdp::Codec;

/// Largest frame the PCM sources produce: 60 ms at 8 kHz.
const MAX_FRAME: usize = 480;

/// Encode one frame of 8 kHz PCM for a G.711 leg; `None` on other codecs.
fn encode_frame(format: &OutFormat, pcm: &[i16], payload: &mut [u8]) -> Option<usize> {
    let alaw = match format.codec {
        Codec::Pcmu => false,
        Codec::Pcma => true,
        _ => return None,
    };
    Some(crate::codec::encode_g711(pcm, payload, alaw))
}

fn frame_len(format: &OutFormat) -> usize {
    (format.frame_samples() as usize).min(MAX_FRAME)
}

/// Frame state shared by the PCM sources: the source timeline and a frame
/// buffer (no allocation per packet).
struct Frames {
    ts: u32,
    first: bool,
    pcm: [i16; MAX_FRAME],
}

impl Frames {
    fn new() -> Self {
        Frames {
            ts: 0,
            first: true,
            pcm: [0; MAX_FRAME],
        }
    }

    /// Fill one frame with `fill` (false: finished) and encode it.
    fn next(
        &mut self,
        format: &OutFormat,
        payload: &mut [u8],
        fill: impl FnOnce(&mut [i16]) -> bool,
    ) -> SourceOutput {
        let n = frame_len(format);
        if !fill(&mut self.pcm[..n]) {
            return SourceOutput::Done;
        }
        let Some(len) = encode_frame(format, &self.pcm[..n], payload) else {
            return SourceOutput::Done;
        };
        let p = SourcePacket {
            len,
            event: false,
            marker: self.first,
            timestamp: self.ts,
        };
        self.first = false;
        self.ts = self.ts.wrapping_add(n as u32);
        SourceOutput::Packet(p)
    }
}

/// 8 kHz PCM from a closure, encoded to the leg's G.711 law. `fill` writes
/// one packet's worth of samples and returns false when finished.
pub struct PcmSource<F> {
    fill: F,
    frames: Frames,
}

impl<F: FnMut(&mut [i16]) -> bool + Send + 'static> PcmSource<F> {
    /// A source from a sample generator.
    pub fn new(fill: F) -> Self {
        PcmSource {
            fill,
            frames: Frames::new(),
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
    frames: Frames,
}

impl RingbackSource {
    /// Ringback for `tone` (Twilio's `ringTone` code, parsed by tandem-media).
    pub fn new(tone: RingTone) -> Self {
        RingbackSource {
            ringback: Ringback::new(tone),
            pos: 0,
            frames: Frames::new(),
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
    },
}

/// A DTMF digit string (`0-9 * # A-D`, `w` = 500 ms pause): RFC 4733 events
/// if the leg negotiated telephone-event, else in-band tones. Ends after
/// the last digit's gap.
pub struct DigitsSource {
    digits: String,
    state: DigitState,
    frames: Frames,
}

impl DigitsSource {
    /// Check the digits now, so a bad `sendDigits` fails before the call.
    pub fn new(digits: &str) -> Result<Self, InvalidDigit> {
        parse_digits(digits)?;
        Ok(DigitsSource {
            digits: digits.to_owned(),
            state: DigitState::Start,
            frames: Frames::new(),
        })
    }
}

impl MediaSource for DigitsSource {
    fn next_packet(&mut self, format: &OutFormat, payload: &mut [u8]) -> SourceOutput {
        if let DigitState::Start = self.state {
            self.state = if format.telephone_event_pt.is_some() {
                let cfg = EventEncoderConfig {
                    clock_rate: format.telephone_event_clock,
                    ..EventEncoderConfig::default()
                };
                match encode_digits(&self.digits, &cfg) {
                    Ok(schedule) => DigitState::Events {
                        schedule,
                        next: 0,
                        elapsed: Duration::ZERO,
                    },
                    Err(_) => return SourceOutput::Done,
                }
            } else {
                match InbandDigits::new(&self.digits, InbandConfig::default()) {
                    Ok(tones) => DigitState::Inband { tones, pos: 0 },
                    Err(_) => return SourceOutput::Done,
                }
            };
        }
        match &mut self.state {
            DigitState::Start => SourceOutput::Done,
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
            DigitState::Inband { tones, pos } => self.frames.next(format, payload, |out| {
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
