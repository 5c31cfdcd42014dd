//! RFC 4733 telephone-event: the packet schedule for sending a digit
//! string, and a receiver that reports each event once.
//!
//! # Sending (§2.5.1)
//! Each digit is one event with one RTP timestamp (the event's start, in
//! the telephone-event clock). Its first packet carries the marker bit;
//! updates follow every `update_interval` with the duration so far; when
//! the tone ends, the final packet with the E bit and the full duration is
//! sent three times (§2.5.1.4). A packet describes the audio up to the time
//! it is sent, like an audio packet: the first goes out one update interval
//! after the event starts. Digits are separated by `gap`; `w` adds a 500 ms
//! pause. The caller stamps packets with its own sequence numbers, adds the
//! offsets to the stream's base timestamp, and sends each at its offset.
//!
//! # Receiving (§2.5.2)
//! An event is identified by its RTP timestamp. The first packet of a new
//! timestamp reports the digit, whether or not it carries the marker (the
//! start packet may be lost, and even every packet but an end one);
//! updates, end packets and their retransmissions for a known timestamp
//! report nothing; packets older than the current event are stale.

use std::time::Duration;

use crate::dtmf::{DigitStep, InvalidDigit, PAUSE_MS, event_code, event_digit, parse_digits};

/// Sending parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventEncoderConfig {
    /// The telephone-event clock rate from SDP (8000, or 48000 next to Opus).
    pub clock_rate: u32,
    /// Tone duration of each digit (default 100 ms).
    pub tone: Duration,
    /// Silence between digits (default 100 ms).
    pub gap: Duration,
    /// Interval between update packets (default 50 ms).
    pub update_interval: Duration,
    /// Spacing of the three end packets (default 20 ms).
    pub end_spacing: Duration,
    /// Volume field: power level in -dBm0, 0..=63 (default 10).
    pub volume: u8,
}

impl Default for EventEncoderConfig {
    fn default() -> Self {
        EventEncoderConfig {
            clock_rate: 8000,
            tone: Duration::from_millis(100),
            gap: Duration::from_millis(100),
            update_interval: Duration::from_millis(50),
            end_spacing: Duration::from_millis(20),
            volume: 10,
        }
    }
}

/// How many times the end packet is sent.
pub const END_PACKETS: usize = 3;

/// One telephone-event packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// The 4-byte payload: event, E|R|volume, duration (network order).
    pub payload: [u8; 4],
    /// RTP marker bit: set on the first packet of an event.
    pub marker: bool,
    /// RTP timestamp offset from the start of the string, clock units.
    pub timestamp: u32,
    /// When to send it, from the start of the string.
    pub send_at: Duration,
    /// The digit this packet belongs to.
    pub digit: char,
}

impl EventPacket {
    /// Whether this is an end packet (E bit).
    pub fn is_end(&self) -> bool {
        self.payload[1] & 0x80 != 0
    }
    /// The duration field, clock units.
    pub fn duration(&self) -> u16 {
        u16::from_be_bytes([self.payload[2], self.payload[3]])
    }
}

/// Why a digit string cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventEncodeError {
    /// A character that is not a digit nor `w`.
    #[error(transparent)]
    InvalidDigit(#[from] InvalidDigit),
    /// The tone duration does not fit the 16-bit duration field.
    #[error("event duration exceeds the 16-bit duration field at this clock rate")]
    DurationTooLong,
    /// A zero update interval or clock rate.
    #[error("update interval and clock rate must be positive")]
    InvalidTiming,
}

/// A digit string's packets with their timing, and the total length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSchedule {
    /// Packets in sending order.
    pub packets: Vec<EventPacket>,
    /// Time from the start to the end of the last gap or pause.
    pub total: Duration,
}

/// Builds the packets for `digits` (`0-9 * # A-D`, `w` = 500 ms pause).
pub fn encode_digits(
    digits: &str,
    cfg: &EventEncoderConfig,
) -> Result<EventSchedule, EventEncodeError> {
    if cfg.update_interval.is_zero() || cfg.clock_rate == 0 {
        return Err(EventEncodeError::InvalidTiming);
    }
    let units =
        |d: Duration| -> u64 { (d.as_micros() * u128::from(cfg.clock_rate) / 1_000_000) as u64 };
    let tone_units = units(cfg.tone);
    let duration_field =
        u16::try_from(tone_units).map_err(|_| EventEncodeError::DurationTooLong)?;
    let mut packets = Vec::new();
    let mut t = Duration::ZERO;
    for step in parse_digits(digits)? {
        let digit = match step {
            DigitStep::Pause => {
                t += Duration::from_millis(u64::from(PAUSE_MS));
                continue;
            }
            DigitStep::Digit(d) => d,
        };
        let code = event_code(digit).unwrap_or(0);
        let timestamp = units(t) as u32;
        let payload = |end: bool, dur: u16| {
            let d = dur.to_be_bytes();
            [
                code,
                (if end { 0x80 } else { 0 }) | (cfg.volume & 0x3F),
                d[0],
                d[1],
            ]
        };
        // Updates while the tone lasts.
        let mut k = 1u32;
        while cfg.update_interval * k < cfg.tone {
            let elapsed = cfg.update_interval * k;
            packets.push(EventPacket {
                payload: payload(false, units(elapsed) as u16),
                marker: k == 1,
                timestamp,
                send_at: t + elapsed,
                digit,
            });
            k += 1;
        }
        // The end, three times; the first is also the start if the tone
        // is shorter than one update interval.
        for i in 0..END_PACKETS {
            packets.push(EventPacket {
                payload: payload(true, duration_field),
                marker: k == 1 && i == 0,
                timestamp,
                send_at: t + cfg.tone + cfg.end_spacing * i as u32,
                digit,
            });
        }
        t += cfg.tone + cfg.gap;
    }
    Ok(EventSchedule { packets, total: t })
}

/// A parsed telephone-event payload (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// Event code (0-15 are DTMF digits).
    pub event: u8,
    /// E bit.
    pub end: bool,
    /// Volume, -dBm0.
    pub volume: u8,
    /// Duration so far, clock units.
    pub duration: u16,
}

/// A payload shorter than 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("telephone-event payload shorter than 4 bytes")]
pub struct ShortPayload;

impl EventPayload {
    /// Parses the first event block of a payload.
    pub fn parse(payload: &[u8]) -> Result<Self, ShortPayload> {
        if payload.len() < 4 {
            return Err(ShortPayload);
        }
        Ok(EventPayload {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3F,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }
}

/// An event the receiver reports, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedEvent {
    /// Event code.
    pub event: u8,
    /// The DTMF digit, for codes 0-15.
    pub digit: Option<char>,
    /// The event's RTP timestamp.
    pub timestamp: u32,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    event: u8,
    duration: u16,
    ended: bool,
}

/// Turns received telephone-event packets into events, each reported once.
#[derive(Debug, Clone, Default)]
pub struct EventReceiver {
    current: Option<Current>,
}

impl EventReceiver {
    /// A receiver with no event seen.
    pub fn new() -> Self {
        EventReceiver::default()
    }

    /// Handles one packet (its RTP timestamp, marker bit and payload).
    /// Returns the event when this packet is the first seen of it.
    pub fn receive(
        &mut self,
        timestamp: u32,
        _marker: bool,
        payload: &[u8],
    ) -> Result<Option<ReceivedEvent>, ShortPayload> {
        let p = EventPayload::parse(payload)?;
        if let Some(cur) = &mut self.current {
            let delta = timestamp.wrapping_sub(cur.timestamp) as i32;
            if delta == 0 {
                // Update, end or a retransmission of the current event.
                cur.duration = cur.duration.max(p.duration);
                cur.ended |= p.end;
                return Ok(None);
            }
            if delta < 0 {
                // A late packet of an earlier event.
                return Ok(None);
            }
            // A long event continued with a new timestamp (§2.5.1.3): same
            // code, starting where the previous segment's duration ended.
            if !cur.ended
                && p.event == cur.event
                && timestamp == cur.timestamp.wrapping_add(u32::from(cur.duration))
            {
                *cur = Current {
                    timestamp,
                    event: p.event,
                    duration: p.duration,
                    ended: p.end,
                };
                return Ok(None);
            }
        }
        self.current = Some(Current {
            timestamp,
            event: p.event,
            duration: p.duration,
            ended: p.end,
        });
        Ok(Some(ReceivedEvent {
            event: p.event,
            digit: event_digit(p.event),
            timestamp,
        }))
    }
}
