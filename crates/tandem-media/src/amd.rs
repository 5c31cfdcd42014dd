//! Answering-machine detection (AMD) for Twilio's `machineDetection`:
//! decides whether a call was answered by a human, a machine or a fax from
//! the callee's audio, sans-IO: the caller feeds 8 kHz mono PCM in any
//! chunk size and time is the count of samples fed (no clock).
//!
//! # How it decides
//!
//! The audio is cut into 20 ms frames. Each frame is classified as
//!
//! - **silence**: RMS below the speech threshold, which is the larger of
//!   [`MIN_SPEECH_RMS`] (about -45 dBm0) and [`NOISE_MARGIN`] times a
//!   noise-floor estimate (follows the quietest frames at once, creeps up
//!   by [`FLOOR_RISE`] per frame otherwise), so line noise is not speech;
//! - **tone**: loud enough, and one frequency of a 25 Hz spaced Goertzel
//!   bank over 350–2150 Hz holds at least [`TONE_SHARE`] of the frame's
//!   energy (beeps, fax tones). Consecutive tone frames within ±25 Hz of
//!   the first form a *tone run*; only a run whose frame levels stay within
//!   [`TONE_LEVEL_SPREAD`] (≈ 4 dB) counts as a beep or fax tone, because
//!   a sustained vowel can put 90 % of a frame in one harmonic but its
//!   level swells and fades;
//! - **speech**: anything else loud enough.
//!
//! An *utterance* starts with two speech frames in a row and ends after
//! `speech_end_threshold_ms` of silence. Tone frames neither start nor
//! extend an utterance, but they do break a run of silence.
//!
//! [`AmdMode::Enable`] (Twilio `Enable`):
//!
//! - speech still going `speech_threshold_ms` after the utterance started
//!   → [`AnsweredBy::MachineStart`] (a greeting);
//! - the first utterance ends before that → [`AnsweredBy::Human`] ("Hello?"
//!   then waiting: decided `speech_end_threshold_ms` after the last word);
//! - no utterance within `silence_timeout_ms` → [`AnsweredBy::Unknown`].
//!
//! [`AmdMode::DetectMessageEnd`] decides humans, silence and fax the same
//! way, but after a machine is detected it waits for the greeting to end:
//!
//! - a steady tone run in 400–2100 Hz lasting
//!   [`BEEP_MIN_MS`]–[`BEEP_MAX_MS`] → [`AnsweredBy::MachineEndBeep`] on the
//!   first frame after the tone;
//! - `speech_end_threshold_ms` of silence → [`AnsweredBy::MachineEndSilence`];
//! - `timeout_ms` reached, or [`AmdDetector::finish`] → [`AnsweredBy::MachineEndOther`].
//!
//! Fax, before any machine decision, in both modes: a steady 1100 Hz tone
//! (CNG, sent by a calling fax: 0.5 s on, 3 s off) for [`CNG_MIN_MS`], or a
//! steady 2100 Hz tone (CED, sent by an answering fax for 2.6–4 s) for
//! [`CED_MIN_MS`] → [`AnsweredBy::Fax`].
//!
//! `timeout_ms` bounds every decision: reached without one, the result is
//! [`AnsweredBy::Unknown`] (or `MachineEndOther` once a machine was seen).
//! `docs/amd.md` has the corpus and the measured accuracy.

use crate::goertzel::{Goertzel, energy};
use crate::{FRAME_8K, RATE_8K};

/// Frame length, ms.
const FRAME_MS: u32 = 20;
/// Lowest frame RMS counted as sound, whatever the noise floor: about
/// -45 dBm0 on the 16-bit scale G.711 decodes to (a 0 dBm0 sine has RMS
/// 15 771).
pub const MIN_SPEECH_RMS: f32 = 90.0;
/// Sound must be this many times the noise floor's RMS (≈ +10 dB).
pub const NOISE_MARGIN: f32 = 3.2;
/// Per-frame growth of the noise floor while frames are louder than it
/// (≈ +2 dB/s), so it follows rising noise but not speech, whose pauses
/// pull it back down.
pub const FLOOR_RISE: f32 = 1.005;
/// Share of a frame's energy one bank frequency must hold for a tone.
pub const TONE_SHARE: f32 = 0.6;
/// Largest ratio between the loudest and the quietest frame of a tone
/// (≈ 4 dB; the partly filled first and last frames stay within it).
pub const TONE_LEVEL_SPREAD: f32 = 1.6;
/// Shortest beep, ms.
pub const BEEP_MIN_MS: u32 = 160;
/// Longest beep, ms.
pub const BEEP_MAX_MS: u32 = 1600;
/// Beep frequency range, Hz.
pub const BEEP_RANGE_HZ: (f32, f32) = (400.0, 2100.0);
/// Steady 1100 Hz needed for fax CNG, ms.
pub const CNG_MIN_MS: u32 = 400;
/// Steady 2100 Hz needed for fax CED, ms.
pub const CED_MIN_MS: u32 = 1000;

const BANK_LOW_HZ: f32 = 350.0;
const BANK_STEP_HZ: f32 = 25.0;
const BANK_BINS: usize = 73; // 350..=2150 Hz
/// Speech frames in a row that start an utterance.
const ONSET_FRAMES: u32 = 2;

/// Twilio's `machineDetection` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AmdMode {
    /// `Enable`: decide human / machine / fax as soon as possible.
    #[default]
    Enable,
    /// `DetectMessageEnd`: for machines, wait for the end of the greeting.
    DetectMessageEnd,
}

/// Detector settings, in Twilio's terms; [`Default`] is Twilio's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdConfig {
    /// Enable or DetectMessageEnd.
    pub mode: AmdMode,
    /// `machineDetectionTimeout` × 1000: no decision after this, ms
    /// (default 30 000).
    pub timeout_ms: u32,
    /// `machineDetectionSpeechThreshold`: speech going on this long is a
    /// machine's greeting, ms (default 2400).
    pub speech_threshold_ms: u32,
    /// `machineDetectionSpeechEndThreshold`: silence that ends an
    /// utterance (and a greeting), ms (default 1200).
    pub speech_end_threshold_ms: u32,
    /// `machineDetectionSilenceTimeout`: initial silence after which the
    /// result is `unknown`, ms (default 5000).
    pub silence_timeout_ms: u32,
}

impl Default for AmdConfig {
    fn default() -> Self {
        AmdConfig {
            mode: AmdMode::Enable,
            timeout_ms: 30_000,
            speech_threshold_ms: 2400,
            speech_end_threshold_ms: 1200,
            silence_timeout_ms: 5000,
        }
    }
}

/// Who answered: Twilio's `AnsweredBy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnsweredBy {
    /// A person.
    Human,
    /// A machine (Enable mode).
    MachineStart,
    /// A machine, greeting ended by a beep (DetectMessageEnd).
    MachineEndBeep,
    /// A machine, greeting ended by silence (DetectMessageEnd).
    MachineEndSilence,
    /// A machine whose greeting end was not seen (DetectMessageEnd).
    MachineEndOther,
    /// A fax machine.
    Fax,
    /// No decision.
    Unknown,
}

impl AnsweredBy {
    /// Twilio's string for `AnsweredBy`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnsweredBy::Human => "human",
            AnsweredBy::MachineStart => "machine_start",
            AnsweredBy::MachineEndBeep => "machine_end_beep",
            AnsweredBy::MachineEndSilence => "machine_end_silence",
            AnsweredBy::MachineEndOther => "machine_end_other",
            AnsweredBy::Fax => "fax",
            AnsweredBy::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for AnsweredBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision and when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdResult {
    /// Who answered.
    pub answered_by: AnsweredBy,
    /// Audio fed before the decision, ms (`MachineDetectionDuration`).
    pub after_ms: u32,
}

/// What one 20 ms frame sounds like.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Frame {
    Silence,
    Tone {
        /// Bank frequency, Hz.
        freq: f32,
        /// Frame RMS.
        rms: f32,
    },
    Speech,
}

/// A run of tone frames at (about) one frequency.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ToneRun {
    /// Frequency of the first frame, Hz.
    freq: f32,
    frames: u32,
    min_rms: f32,
    max_rms: f32,
}

impl ToneRun {
    fn start(freq: f32, rms: f32) -> Self {
        ToneRun {
            freq,
            frames: 1,
            min_rms: rms,
            max_rms: rms,
        }
    }

    fn ms(&self) -> u32 {
        self.frames * FRAME_MS
    }

    /// Level held within [`TONE_LEVEL_SPREAD`]: a generated tone, not a
    /// sung or sustained vowel (whose level swells and fades).
    fn is_steady(&self) -> bool {
        self.max_rms <= TONE_LEVEL_SPREAD * self.min_rms
    }

    fn near(&self, hz: f32) -> bool {
        (self.freq - hz).abs() <= BANK_STEP_HZ
    }
}

/// Streaming answering-machine detector; see the module docs.
#[derive(Debug, Clone)]
pub struct AmdDetector {
    cfg: AmdConfig,
    bank: Vec<Goertzel>,
    /// Samples of the frame being filled.
    pending: Vec<i16>,
    /// Whole frames processed.
    frames: u32,
    noise_floor: Option<f32>,
    /// Consecutive speech frames (for the onset).
    speech_run: u32,
    /// Consecutive silence frames.
    silence_run: u32,
    /// Frame index where the current utterance started.
    utterance_start: Option<u32>,
    tone: Option<ToneRun>,
    /// When the machine was detected (DetectMessageEnd), ms.
    machine_at: Option<u32>,
    decided: bool,
}

impl AmdDetector {
    /// A detector at sample 0.
    pub fn new(cfg: AmdConfig) -> Self {
        let bank = (0..BANK_BINS)
            .map(|k| Goertzel::new(BANK_LOW_HZ + BANK_STEP_HZ * k as f32, RATE_8K))
            .collect();
        AmdDetector {
            cfg,
            bank,
            pending: Vec::with_capacity(FRAME_8K),
            frames: 0,
            noise_floor: None,
            speech_run: 0,
            silence_run: 0,
            utterance_start: None,
            tone: None,
            machine_at: None,
            decided: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AmdConfig {
        &self.cfg
    }

    /// Audio processed so far (whole frames), ms.
    pub fn elapsed_ms(&self) -> u32 {
        self.frames * FRAME_MS
    }

    /// When a machine was detected, ms: set in DetectMessageEnd mode while
    /// waiting for the greeting's end (Twilio reports only the end).
    pub fn machine_detected_ms(&self) -> Option<u32> {
        self.machine_at
    }

    /// Whether the decision was already returned.
    pub fn is_decided(&self) -> bool {
        self.decided
    }

    /// Feeds 8 kHz mono samples (any count). Returns the decision once,
    /// from the call that completes the deciding frame; `None` before and
    /// after. Samples after the decision are ignored.
    pub fn process(&mut self, pcm: &[i16]) -> Option<AmdResult> {
        let mut rest = pcm;
        while !self.decided && !rest.is_empty() {
            let take = (FRAME_8K - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == FRAME_8K {
                let frame = std::mem::take(&mut self.pending);
                let out = self.frame(&frame);
                self.pending = frame;
                self.pending.clear();
                if let Some(answered_by) = out {
                    return Some(self.decide(answered_by));
                }
            }
        }
        None
    }

    /// The call ended (or the caller's own timer fired) without a decision:
    /// [`AnsweredBy::MachineEndOther`] if a machine was already detected
    /// (DetectMessageEnd), else [`AnsweredBy::Unknown`]. `None` if already
    /// decided.
    pub fn finish(&mut self) -> Option<AmdResult> {
        if self.decided {
            return None;
        }
        let answered_by = if self.machine_at.is_some() {
            AnsweredBy::MachineEndOther
        } else {
            AnsweredBy::Unknown
        };
        Some(self.decide(answered_by))
    }

    fn decide(&mut self, answered_by: AnsweredBy) -> AmdResult {
        self.decided = true;
        let result = AmdResult {
            answered_by,
            after_ms: self.elapsed_ms(),
        };
        tracing::debug!(
            answered_by = answered_by.as_str(),
            after_ms = result.after_ms,
            machine_at = ?self.machine_at,
            "amd decision"
        );
        result
    }

    /// Classifies a frame: silence, tone or speech.
    fn classify(&mut self, pcm: &[i16]) -> Frame {
        let x: Vec<f32> = pcm.iter().map(|&s| f32::from(s)).collect();
        let e = energy(&x);
        let rms = (e / x.len() as f32).sqrt();
        let floor = match self.noise_floor {
            None => rms,
            Some(f) if rms < f => rms,
            Some(f) => f * FLOOR_RISE,
        };
        // A floor of digital silence must still be able to rise.
        self.noise_floor = Some(floor.max(1.0));
        let threshold = MIN_SPEECH_RMS.max(NOISE_MARGIN * floor);
        if rms < threshold {
            return Frame::Silence;
        }
        let (best, share) = self
            .bank
            .iter()
            .map(|g| (g.freq(), g.relative_power(&x, e)))
            .fold((0.0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
        if share >= TONE_SHARE {
            Frame::Tone { freq: best, rms }
        } else {
            Frame::Speech
        }
    }

    /// One 20 ms frame; `Some` when it decides.
    fn frame(&mut self, pcm: &[i16]) -> Option<AnsweredBy> {
        let kind = self.classify(pcm);
        self.frames += 1;
        let now = self.elapsed_ms();

        // Tone runs: the one that just ended (for beeps) and fax tones.
        let ended_tone = match (kind, self.tone) {
            (Frame::Tone { freq, rms }, Some(run)) if run.near(freq) => {
                self.tone = Some(ToneRun {
                    frames: run.frames + 1,
                    min_rms: run.min_rms.min(rms),
                    max_rms: run.max_rms.max(rms),
                    ..run
                });
                None
            }
            (Frame::Tone { freq, rms }, run) => {
                self.tone = Some(ToneRun::start(freq, rms));
                run
            }
            (_, run) => {
                self.tone = None;
                run
            }
        };
        if self.machine_at.is_none()
            && let Some(run) = self.tone
        {
            let ms = run.ms();
            if run.is_steady()
                && ((run.near(1100.0) && ms >= CNG_MIN_MS)
                    || (run.near(2100.0) && ms >= CED_MIN_MS))
            {
                return Some(AnsweredBy::Fax);
            }
        }

        match kind {
            Frame::Speech => {
                self.speech_run += 1;
                self.silence_run = 0;
            }
            Frame::Tone { .. } => {
                self.speech_run = 0;
                self.silence_run = 0;
            }
            Frame::Silence => {
                self.speech_run = 0;
                self.silence_run += 1;
            }
        }
        let silence_ms = self.silence_run * FRAME_MS;

        if self.machine_at.is_some() {
            // DetectMessageEnd: waiting for the end of the greeting.
            if let Some(run) = ended_tone {
                let (lo, hi) = BEEP_RANGE_HZ;
                if run.is_steady()
                    && (BEEP_MIN_MS..=BEEP_MAX_MS).contains(&run.ms())
                    && (lo..=hi).contains(&run.freq)
                {
                    return Some(AnsweredBy::MachineEndBeep);
                }
            }
            if silence_ms >= self.cfg.speech_end_threshold_ms {
                return Some(AnsweredBy::MachineEndSilence);
            }
            if now >= self.cfg.timeout_ms {
                return Some(AnsweredBy::MachineEndOther);
            }
            return None;
        }

        match self.utterance_start {
            None => {
                if self.speech_run >= ONSET_FRAMES {
                    self.utterance_start = Some(self.frames - ONSET_FRAMES);
                } else if now >= self.cfg.silence_timeout_ms {
                    return Some(AnsweredBy::Unknown);
                }
            }
            Some(start) => {
                let length_ms = (self.frames - start) * FRAME_MS;
                if kind == Frame::Speech && length_ms >= self.cfg.speech_threshold_ms {
                    match self.cfg.mode {
                        AmdMode::Enable => return Some(AnsweredBy::MachineStart),
                        AmdMode::DetectMessageEnd => {
                            tracing::debug!(after_ms = now, "amd: machine, waiting for the end");
                            self.machine_at = Some(now);
                            return None;
                        }
                    }
                }
                if silence_ms >= self.cfg.speech_end_threshold_ms {
                    return Some(AnsweredBy::Human);
                }
            }
        }
        if now >= self.cfg.timeout_ms {
            return Some(AnsweredBy::Unknown);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tones::amplitude_at;

    const MS: usize = 8; // samples per ms at 8 kHz

    fn silence(ms: usize) -> Vec<i16> {
        vec![0; ms * MS]
    }

    fn sine(freq: f32, ms: usize, dbm0: f32) -> Vec<i16> {
        let a = amplitude_at(dbm0);
        (0..ms * MS)
            .map(|n| {
                let t = n as f32 / RATE_8K as f32;
                (a * (2.0 * std::f32::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    /// Speech-like sound: a 120 Hz-pitched harmonic series whose pitch
    /// glides and whose syllables (150 ms on, 50 ms off) change the
    /// harmonic weights, so no frequency is steady nor dominant.
    fn babble(ms: usize, dbm0: f32) -> Vec<i16> {
        let a = amplitude_at(dbm0) / 3.0;
        let mut phase = [0.0f32; 20];
        (0..ms * MS)
            .map(|n| {
                let t = n as f32 / RATE_8K as f32;
                let syllable = n / (200 * MS);
                if n % (200 * MS) >= 150 * MS {
                    return 0;
                }
                let f0 = 110.0 + 25.0 * (t * 3.1).sin() + 10.0 * (syllable % 3) as f32;
                let mut v = 0.0;
                for (k, p) in phase.iter_mut().enumerate() {
                    let h = (k + 1) as f32;
                    *p += 2.0 * std::f32::consts::PI * f0 * h / RATE_8K as f32;
                    let w = 1.0 / h * (1.0 + ((syllable + k) % 4) as f32) / 2.0;
                    v += w * p.sin();
                }
                (a * v).clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    fn run(cfg: AmdConfig, audio: &[i16]) -> AmdResult {
        let mut d = AmdDetector::new(cfg);
        for chunk in audio.chunks(FRAME_8K) {
            if let Some(r) = d.process(chunk) {
                assert_eq!(d.process(chunk), None, "decides once");
                return r;
            }
        }
        d.finish().expect("undecided detector finishes")
    }

    fn cat(parts: &[Vec<i16>]) -> Vec<i16> {
        parts.concat()
    }

    fn dme() -> AmdConfig {
        AmdConfig {
            mode: AmdMode::DetectMessageEnd,
            ..AmdConfig::default()
        }
    }

    #[test]
    fn strings_are_twilios() {
        assert_eq!(AnsweredBy::MachineEndBeep.as_str(), "machine_end_beep");
        assert_eq!(AnsweredBy::Unknown.to_string(), "unknown");
        assert_eq!(AmdConfig::default().timeout_ms, 30_000);
    }

    #[test]
    fn silence_is_unknown_after_the_silence_timeout() {
        let r = run(AmdConfig::default(), &silence(8000));
        assert_eq!(r.answered_by, AnsweredBy::Unknown);
        assert_eq!(r.after_ms, 5000);
    }

    #[test]
    fn short_speech_then_silence_is_human() {
        let audio = cat(&[silence(500), babble(800, -15.0), silence(4000)]);
        let r = run(AmdConfig::default(), &audio);
        assert_eq!(r.answered_by, AnsweredBy::Human);
        assert!((2400..=2700).contains(&r.after_ms), "{r:?}");
        // Same in DetectMessageEnd.
        assert_eq!(run(dme(), &audio).answered_by, AnsweredBy::Human);
    }

    #[test]
    fn long_speech_is_machine_start() {
        let audio = cat(&[silence(300), babble(10_000, -15.0), silence(3000)]);
        let r = run(AmdConfig::default(), &audio);
        assert_eq!(r.answered_by, AnsweredBy::MachineStart);
        assert!((2600..=2900).contains(&r.after_ms), "{r:?}");
    }

    #[test]
    fn greeting_then_beep_is_machine_end_beep() {
        let audio = cat(&[
            silence(300),
            babble(8000, -15.0),
            silence(400),
            sine(1000.0, 500, -12.0),
            silence(3000),
        ]);
        let r = run(dme(), &audio);
        assert_eq!(r.answered_by, AnsweredBy::MachineEndBeep);
        // The beep ends at 9200 ms.
        assert!((9200..=9260).contains(&r.after_ms), "{r:?}");
    }

    #[test]
    fn greeting_then_silence_is_machine_end_silence() {
        let audio = cat(&[silence(300), babble(8000, -15.0), silence(3000)]);
        let r = run(dme(), &audio);
        assert_eq!(r.answered_by, AnsweredBy::MachineEndSilence);
        assert!((9400..=9600).contains(&r.after_ms), "{r:?}");
    }

    #[test]
    fn endless_greeting_is_machine_end_other_at_the_timeout() {
        let audio = cat(&[silence(300), babble(40_000, -15.0)]);
        let r = run(dme(), &audio);
        assert_eq!(r.answered_by, AnsweredBy::MachineEndOther);
        assert_eq!(r.after_ms, 30_000);
        // Call ended mid-greeting.
        let mut d = AmdDetector::new(dme());
        assert_eq!(d.process(&audio[..8000 * 8]), None);
        assert!(d.machine_detected_ms().is_some());
        let r = d.finish().unwrap();
        assert_eq!(r.answered_by, AnsweredBy::MachineEndOther);
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn cng_is_fax_in_both_modes() {
        let mut audio = silence(400);
        for _ in 0..3 {
            audio.extend(sine(1100.0, 500, -15.0));
            audio.extend(silence(3000));
        }
        for cfg in [AmdConfig::default(), dme()] {
            let r = run(cfg, &audio);
            assert_eq!(r.answered_by, AnsweredBy::Fax);
            assert!(r.after_ms <= 900, "{r:?}");
        }
    }

    #[test]
    fn noise_alone_is_not_speech() {
        // Deterministic white-ish noise around RMS 300 (-34 dBm0).
        let mut s = 0x1234_5678u32;
        let noise: Vec<i16> = (0..8000 * MS)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                ((s >> 16) as i16) / 64
            })
            .collect();
        let r = run(AmdConfig::default(), &noise);
        assert_eq!(r.answered_by, AnsweredBy::Unknown);
    }

    #[test]
    fn any_chunk_size_gives_the_same_result() {
        let audio = cat(&[silence(300), babble(700, -20.0), silence(3000)]);
        let whole = run(AmdConfig::default(), &audio);
        let mut d = AmdDetector::new(AmdConfig::default());
        let mut got = None;
        for chunk in audio.chunks(37) {
            if let Some(r) = d.process(chunk) {
                got = Some(r);
                break;
            }
        }
        assert_eq!(got, Some(whole));
    }
}
