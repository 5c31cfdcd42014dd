//! DTMF (ITU-T Q.23 frequencies, Q.24 reception): in-band generation of
//! digit strings and a Goertzel detector with level, twist, purity and
//! minimum-duration checks.
//!
//! Digits are `0-9 * # A B C D`; in a digit string `w` is a 500 ms pause
//! (Twilio `sendDigits`). RFC 4733 event codes for them are in
//! [`event_code`] / [`event_digit`].

use crate::RATE_8K;
use crate::goertzel::Goertzel;
use crate::tones::amplitude_at;

/// Low-group (row) frequencies, Hz.
pub const ROW_FREQS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// High-group (column) frequencies, Hz; 1633 Hz is the A-D column.
pub const COL_FREQS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Every DTMF digit.
pub const DIGITS: &str = "0123456789*#ABCD";

/// (row, column) indices of a digit; lower-case a-d accepted.
pub fn digit_position(digit: char) -> Option<(usize, usize)> {
    let d = digit.to_ascii_uppercase();
    KEYPAD
        .iter()
        .enumerate()
        .find_map(|(r, row)| row.iter().position(|&c| c == d).map(|c| (r, c)))
}

/// (low, high) frequencies of a digit.
pub fn digit_freqs(digit: char) -> Option<(f32, f32)> {
    digit_position(digit).map(|(r, c)| (ROW_FREQS[r], COL_FREQS[c]))
}

/// RFC 4733 §3.2 event code of a digit: 0-9, `*` = 10, `#` = 11, A-D = 12-15.
pub fn event_code(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// The digit of an RFC 4733 event code 0-15.
pub fn event_digit(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        _ => None,
    }
}

/// A character that is not a DTMF digit nor `w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid DTMF digit {0:?}")]
pub struct InvalidDigit(pub char);

/// One step of a digit string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitStep {
    /// A digit.
    Digit(char),
    /// `w`: a 500 ms pause.
    Pause,
}

/// Parses a `sendDigits` string: DTMF digits and `w` (500 ms pause).
pub fn parse_digits(s: &str) -> Result<Vec<DigitStep>, InvalidDigit> {
    s.chars()
        .map(|c| match c {
            'w' | 'W' => Ok(DigitStep::Pause),
            c if event_code(c).is_some() => Ok(DigitStep::Digit(c.to_ascii_uppercase())),
            c => Err(InvalidDigit(c)),
        })
        .collect()
}

/// Length of a `w` pause, ms.
pub const PAUSE_MS: u32 = 500;

/// In-band digit timing and levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InbandConfig {
    /// Tone duration of each digit, ms (default 100).
    pub tone_ms: u32,
    /// Silence after each digit, ms (default 100).
    pub gap_ms: u32,
    /// Level of the low-group tone, dBm0 (default -8).
    pub low_dbm0: f32,
    /// Level of the high-group tone, dBm0 (default -6: 2 dB pre-emphasis).
    pub high_dbm0: f32,
}

impl Default for InbandConfig {
    fn default() -> Self {
        InbandConfig {
            tone_ms: 100,
            gap_ms: 100,
            low_dbm0: -8.0,
            high_dbm0: -6.0,
        }
    }
}

/// A digit string rendered as in-band tones at 8 kHz, by sample position.
#[derive(Debug, Clone)]
pub struct InbandDigits {
    /// (start sample, digit) of each tone burst.
    bursts: Vec<(u64, char)>,
    tone_len: u64,
    total: u64,
    cfg: InbandConfig,
}

impl InbandDigits {
    /// Schedules `digits` (with `w` pauses).
    pub fn new(digits: &str, cfg: InbandConfig) -> Result<Self, InvalidDigit> {
        let per_ms = u64::from(RATE_8K / 1000);
        let tone_len = u64::from(cfg.tone_ms) * per_ms;
        let mut at = 0;
        let mut bursts = Vec::new();
        for step in parse_digits(digits)? {
            match step {
                DigitStep::Digit(d) => {
                    bursts.push((at, d));
                    at += tone_len + u64::from(cfg.gap_ms) * per_ms;
                }
                DigitStep::Pause => at += u64::from(PAUSE_MS) * per_ms,
            }
        }
        Ok(InbandDigits {
            bursts,
            tone_len,
            total: at,
            cfg,
        })
    }

    /// Samples from start to the end of the last gap or pause.
    pub fn total_samples(&self) -> u64 {
        self.total
    }

    /// (start sample, digit) of every burst.
    pub fn bursts(&self) -> &[(u64, char)] {
        &self.bursts
    }

    /// Fills `out` with the samples starting at `pos`; past the end, silence.
    pub fn fill(&self, pos: u64, out: &mut [i16]) {
        out.fill(0);
        let end = pos + out.len() as u64;
        for &(start, digit) in &self.bursts {
            let stop = start + self.tone_len;
            if stop <= pos || start >= end {
                continue;
            }
            let from = start.max(pos);
            let to = stop.min(end);
            let (lo, hi) = digit_freqs(digit).unwrap_or((0.0, 0.0));
            for n in from..to {
                out[(n - pos) as usize] =
                    dtmf_sample(lo, hi, n - start, self.cfg.low_dbm0, self.cfg.high_dbm0);
            }
        }
    }
}

/// Sample `n` of a DTMF tone pair at the given levels.
fn dtmf_sample(lo: f32, hi: f32, n: u64, low_dbm0: f32, high_dbm0: f32) -> i16 {
    let t = n as f64 / f64::from(RATE_8K);
    let w = |f: f32| (2.0 * std::f64::consts::PI * f64::from(f) * t).sin() as f32;
    let v = amplitude_at(low_dbm0) * w(lo) + amplitude_at(high_dbm0) * w(hi);
    v.round().clamp(-32768.0, 32767.0) as i16
}

/// Renders `n` samples of one digit's tone pair (no gap).
pub fn digit_tone(digit: char, n: usize, low_dbm0: f32, high_dbm0: f32) -> Option<Vec<i16>> {
    let (lo, hi) = digit_freqs(digit)?;
    Some(
        (0..n as u64)
            .map(|k| dtmf_sample(lo, hi, k, low_dbm0, high_dbm0))
            .collect(),
    )
}

/// Detector thresholds. Defaults follow ITU-T Q.24 / Telcordia practice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Shortest tone reported, ms (default 40: Q.24 "must accept" is 40 ms).
    pub min_duration_ms: u32,
    /// Largest forward twist (high group stronger than low), dB (default 4).
    pub max_forward_twist_db: f32,
    /// Largest reverse twist (low group stronger than high), dB (default 8).
    pub max_reverse_twist_db: f32,
    /// Weakest accepted level per tone, dBm0 (default -30).
    pub min_level_dbm0: f32,
    /// Share of a block's energy the two tones must hold (default 0.7):
    /// rejects speech, music and noise, and blocks only partly covered.
    pub min_purity: f32,
    /// How much stronger than the others in its group the chosen tone must
    /// be, dB (default 4: at 1.5% off its nominal frequency a low-group
    /// tone leaks to 5.6 dB below itself into the neighbouring bin).
    pub min_group_margin_db: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            min_duration_ms: 40,
            max_forward_twist_db: 4.0,
            max_reverse_twist_db: 8.0,
            min_level_dbm0: -30.0,
            min_purity: 0.7,
            min_group_margin_db: 4.0,
        }
    }
}

/// A digit heard in-band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectedDigit {
    /// `0-9 * # A-D`.
    pub digit: char,
    /// Sample position (since the detector started) of the first block
    /// the tone was heard in.
    pub at: u64,
}

/// Samples per analysis block: 10 ms at 8 kHz (two per 20 ms frame). Short
/// blocks make the duration check sharp: with a purity threshold of 0.7 a
/// block counts only when the tone fills most of it, so a tone of 23 ms or
/// less never makes three hits in a row, and one of 40 ms always does.
pub const BLOCK: usize = 80;

/// In-band DTMF detector over 8 kHz PCM, fed any frame size.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    cfg: DetectorConfig,
    rows: [Goertzel; 4],
    cols: [Goertzel; 4],
    block: [f32; BLOCK],
    fill: usize,
    /// Position of the next sample fed.
    pos: u64,
    /// Digit heard in the last blocks, how many in a row, and where it began.
    candidate: Option<(char, u32, u64)>,
    /// Digit already reported and still sounding.
    reported: Option<char>,
    /// Blocks in a row without the reported digit.
    misses: u32,
    need_hits: u32,
    min_power: f32,
}

impl DtmfDetector {
    /// A detector with `cfg`.
    pub fn new(cfg: DetectorConfig) -> Self {
        let g = |f: f32| Goertzel::new(f, RATE_8K);
        let min_samples = cfg.min_duration_ms as usize * (RATE_8K as usize / 1000);
        // A tone of min_samples fully covers at least this many blocks,
        // whatever its alignment.
        let need_hits = ((min_samples + 1).saturating_sub(BLOCK) / BLOCK).max(2) as u32;
        let amp = amplitude_at(cfg.min_level_dbm0) * BLOCK as f32 / 2.0;
        DtmfDetector {
            cfg,
            rows: ROW_FREQS.map(g),
            cols: COL_FREQS.map(g),
            block: [0.0; BLOCK],
            fill: 0,
            pos: 0,
            candidate: None,
            reported: None,
            misses: 0,
            need_hits,
            // A tone half-filling a block at the minimum level.
            min_power: amp * amp * 0.25,
        }
    }

    /// Feeds samples; digits heard are appended to `out`, each once per key press.
    pub fn process(&mut self, pcm: &[i16], out: &mut Vec<DetectedDigit>) {
        for &s in pcm {
            self.block[self.fill] = f32::from(s);
            self.fill += 1;
            self.pos += 1;
            if self.fill == BLOCK {
                self.fill = 0;
                let start = self.pos - BLOCK as u64;
                let hit = self.classify();
                self.step(hit, start, out);
            }
        }
    }

    /// The digit a full block holds, if any.
    fn classify(&self) -> Option<char> {
        let b = &self.block;
        let energy: f32 = b.iter().map(|x| x * x).sum();
        if energy <= 0.0 {
            return None;
        }
        let rp = self.rows.map(|g| g.power(b));
        let cp = self.cols.map(|g| g.power(b));
        let (ri, &r) = best(&rp);
        let (ci, &c) = best(&cp);
        if r < self.min_power || c < self.min_power {
            return None;
        }
        let margin = 10f32.powf(self.cfg.min_group_margin_db / 10.0);
        if rp
            .iter()
            .enumerate()
            .any(|(i, &p)| i != ri && p * margin > r)
            || cp
                .iter()
                .enumerate()
                .any(|(i, &p)| i != ci && p * margin > c)
        {
            return None;
        }
        let twist_db = 10.0 * (c / r).log10();
        if twist_db > self.cfg.max_forward_twist_db || -twist_db > self.cfg.max_reverse_twist_db {
            return None;
        }
        let purity = (r + c) / (energy * BLOCK as f32 / 2.0);
        if purity < self.cfg.min_purity {
            return None;
        }
        Some(KEYPAD[ri][ci])
    }

    fn step(&mut self, hit: Option<char>, start: u64, out: &mut Vec<DetectedDigit>) {
        // Track the run of identical hits.
        self.candidate = match (hit, self.candidate) {
            (Some(d), Some((c, n, at))) if c == d => Some((d, n + 1, at)),
            (Some(d), _) => Some((d, 1, start)),
            (None, _) => None,
        };
        // A reported digit ends after two blocks (25 ms) without it, so a
        // short drop-out does not make a second key press.
        if let Some(r) = self.reported {
            if hit == Some(r) {
                self.misses = 0;
            } else {
                self.misses += 1;
                if self.misses >= 2 || hit.is_some() {
                    self.reported = None;
                }
            }
        }
        if let Some((d, n, at)) = self.candidate
            && n >= self.need_hits
            && self.reported.is_none()
        {
            self.reported = Some(d);
            self.misses = 0;
            out.push(DetectedDigit { digit: d, at });
        }
    }
}

impl Default for DtmfDetector {
    fn default() -> Self {
        DtmfDetector::new(DetectorConfig::default())
    }
}

fn best(p: &[f32; 4]) -> (usize, &f32) {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap_or((0, &0.0))
}
