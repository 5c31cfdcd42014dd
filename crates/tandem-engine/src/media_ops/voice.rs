//! Voice activity for `<Record timeout>` and the beep that starts a
//! `<Record>`.
//!
//! [`VoiceTap`] decodes what a leg receives (G.711, or Opus through
//! tandem-media's decoder) and reports only the changes between speaking
//! and silent: speech starts after [`VOICED_TO_SPEAK`] of frames louder than
//! [`SPEECH_RMS`], and ends after [`HANGOVER`] of quieter ones (the pauses
//! between words do not count). While speech goes on, it is reported again
//! every [`KEEPALIVE`], so a leg that stops sending packets in the middle of
//! a word (SIPp at the end of its file, a phone with DTX) is heard as silent
//! by the call within `KEEPALIVE` of its last report: the call counts
//! silence on its own clock, not from packets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_media::{Decoder, Prompt};
use tandem_rtp::LegId;
use tandem_rtp::relay::{Tap, TapPacket};
use tandem_rtp::sdp::Codec;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::PromptSource;

/// A frame whose RMS is at or above this is voiced: about −40 dBm0 on the
/// 16-bit scale G.711 decodes to, 20 dB under quiet speech and well over a
/// telephone line's idle noise (−60 to −50 dBm0).
pub const SPEECH_RMS: u32 = 160;
/// Voiced audio needed before speech is reported (a click is not speech).
pub const VOICED_TO_SPEAK: Duration = Duration::from_millis(60);
/// Quiet audio needed before the end of speech is reported.
pub const HANGOVER: Duration = Duration::from_millis(300);
/// While speaking, speech is reported again after this much audio.
pub const KEEPALIVE: Duration = Duration::from_secs(1);

/// A change of a leg's voice activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceChange {
    /// The leg.
    pub leg: LegId,
    /// Speaking from now on (again every [`KEEPALIVE`] while it lasts), or
    /// silent (since [`HANGOVER`] ago).
    pub speaking: bool,
    /// Arrival of the packet that decided it.
    pub at: Instant,
}

/// The voice activity detector of one leg; install it in the leg's tap
/// slot. Changes come out of the receiver [`voice_tap`] returned.
pub struct VoiceTap {
    state: Mutex<State>,
    tx: mpsc::Sender<VoiceChange>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for VoiceTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceTap")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

#[derive(Default)]
struct State {
    speaking: bool,
    /// Microseconds of voiced (or, while speaking, quiet) audio in a row.
    voiced_us: u64,
    quiet_us: u64,
    /// Audio since speech was last reported.
    since_report_us: u64,
    pcm: Vec<i16>,
    /// Built on the first Opus packet.
    opus: Option<Box<Decoder>>,
    opus_failed: bool,
}

/// A voice tap and the receiver of its changes. When the consumer lags,
/// changes are dropped (counted), never waited for.
pub fn voice_tap(capacity: usize) -> (Arc<VoiceTap>, mpsc::Receiver<VoiceChange>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let tap = VoiceTap {
        state: Mutex::new(State::default()),
        tx,
        dropped: AtomicU64::new(0),
    };
    (Arc::new(tap), rx)
}

impl VoiceTap {
    /// Changes dropped because the receiver was full or gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Tap for VoiceTap {
    fn packet(&self, p: &TapPacket<'_>) {
        let change = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.on_packet(p)
        };
        if let Some(speaking) = change {
            tracing::debug!(leg = ?p.leg, speaking, "voice activity changed");
            let c = VoiceChange {
                leg: p.leg,
                speaking,
                at: p.at,
            };
            if self.tx.try_send(c).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl State {
    /// Decodes the packet and returns the new activity when it changed.
    fn on_packet(&mut self, p: &TapPacket<'_>) -> Option<bool> {
        let rate = match p.codec {
            Some(c @ (Codec::Pcmu | Codec::Pcma)) => {
                self.pcm.resize(p.payload.len(), 0);
                let n = tandem_rtp::codec::decode_g711(p.payload, &mut self.pcm, c == Codec::Pcma);
                self.pcm.truncate(n);
                8_000
            }
            Some(Codec::Opus) => {
                if self.opus.is_none() && !self.opus_failed {
                    match Decoder::new(Codec::Opus) {
                        Ok(d) => self.opus = Some(Box::new(d)),
                        Err(e) => {
                            tracing::warn!(error = %e, "no Opus decoder: voice activity not measured");
                            self.opus_failed = true;
                        }
                    }
                }
                let d = self.opus.as_mut()?;
                self.pcm.clear();
                if d.decode(p.payload, &mut self.pcm).is_err() {
                    return None;
                }
                Codec::Opus.pcm_rate()
            }
            // Telephone-events and payload types not negotiated.
            _ => return None,
        };
        if self.pcm.is_empty() {
            return None;
        }
        let us = self.pcm.len() as u64 * 1_000_000 / u64::from(rate);
        if self.speaking {
            self.since_report_us += us;
        }
        if rms(&self.pcm) >= SPEECH_RMS {
            self.quiet_us = 0;
            self.voiced_us += us;
            if !self.speaking && self.voiced_us >= VOICED_TO_SPEAK.as_micros() as u64 {
                self.speaking = true;
                self.since_report_us = 0;
                return Some(true);
            }
            if self.speaking && self.since_report_us >= KEEPALIVE.as_micros() as u64 {
                self.since_report_us = 0;
                return Some(true);
            }
        } else {
            self.voiced_us = 0;
            self.quiet_us += us;
            if self.speaking && self.quiet_us >= HANGOVER.as_micros() as u64 {
                self.speaking = false;
                return Some(false);
            }
        }
        None
    }
}

/// Root mean square of the samples.
fn rms(pcm: &[i16]) -> u32 {
    let sum: u64 = pcm
        .iter()
        .map(|&s| (i64::from(s) * i64::from(s)) as u64)
        .sum();
    ((sum / pcm.len().max(1) as u64) as f64).sqrt() as u32
}

/// Length of the `<Record playBeep>` beep.
pub const BEEP: Duration = Duration::from_millis(500);
/// Its frequency.
pub const BEEP_HZ: f32 = 1_000.0;

/// The beep before a `<Record>`: [`BEEP`] of [`BEEP_HZ`] at −10 dBm0, with
/// 5 ms ramps so it does not click.
pub fn beep() -> PromptSource {
    let n = (BEEP.as_micros() as usize) * 8 / 1_000;
    let ramp = 40;
    let amp = tandem_media::tones::amplitude_at(-10.0);
    let samples: Vec<i16> = (0..n)
        .map(|i| {
            let edge = i.min(n - 1 - i).min(ramp) as f32 / ramp as f32;
            let phase = 2.0 * std::f32::consts::PI * BEEP_HZ * i as f32 / 8_000.0;
            (amp * edge * phase.sin()) as i16
        })
        .collect();
    let prompt = Prompt::from_pcm(8_000, &samples, 8_000).expect("8 kHz to 8 kHz never fails");
    PromptSource::new(prompt, 1).expect("an 8 kHz prompt needs no resampling")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &[u8], at: Instant) -> TapPacket<'_> {
        TapPacket {
            leg: LegId(1),
            pt: 0,
            ssrc: 7,
            seq: 0,
            ts: 0,
            marker: false,
            codec: Some(Codec::Pcmu),
            payload,
            at,
        }
    }

    fn mulaw(amplitude: f32) -> Vec<u8> {
        (0..160)
            .map(|i| {
                let s = amplitude * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8000.0).sin();
                tandem_media::g711::linear_to_ulaw(s as i16)
            })
            .collect()
    }

    #[test]
    fn speech_and_its_end_are_reported_once_each() {
        let (tap, mut rx) = voice_tap(8);
        let loud = mulaw(3_000.0);
        let quiet = mulaw(20.0);
        let t0 = Instant::now();
        let mut t = t0;
        let mut feed = |payload: &[u8], frames: u32| {
            for _ in 0..frames {
                tap.packet(&packet(payload, t));
                t += Duration::from_millis(20);
            }
        };
        feed(&quiet, 50);
        assert!(rx.try_recv().is_err(), "line noise is not speech");
        feed(&loud, 2);
        assert!(rx.try_recv().is_err(), "40 ms is a click, not speech");
        feed(&quiet, 1);
        feed(&loud, 10);
        let c = rx.try_recv().expect("speech");
        assert!(c.speaking);
        assert_eq!(c.at, t0 + Duration::from_millis(20 * 55));
        // Pauses between words (200 ms) do not end the speech.
        feed(&quiet, 10);
        feed(&loud, 5);
        assert!(rx.try_recv().is_err());
        // Speech goes on: reported again after a second of it.
        feed(&loud, 50);
        let c = rx.try_recv().expect("still speaking");
        assert!(c.speaking);
        assert_eq!(c.at, t0 + Duration::from_millis(20 * (55 + 50)));
        assert!(rx.try_recv().is_err());
        feed(&quiet, 30);
        let c = rx.try_recv().expect("end of speech");
        assert!(!c.speaking);
        assert_eq!(c.at, t0 + Duration::from_millis(20 * (128 + 14)));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn the_beep_is_half_a_second_of_tone() {
        let b = beep();
        assert_eq!(b.total_duration(), BEEP);
    }
}
