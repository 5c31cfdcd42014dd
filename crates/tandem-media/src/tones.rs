//! Ringback tones for every `ringTone` code Twilio accepts, from ITU-T
//! E.180 Supplement 2 ("Various tones used in national networks") or the
//! national specification named on each entry, and a generator that fills
//! frames at any sample position, so the caller paces it.
//!
//! A tone is a single frequency, the sum of two, or a carrier amplitude
//! modulated by a low frequency (written `f×m`, e.g. India's 400×25 Hz);
//! its cadence is a list of on/off durations in milliseconds, starting
//! with "on", repeated forever. Generation is by position: sample `n` of the
//! stream is always the same value, so a generator can be shared by every
//! call and restarted anywhere. One cadence period per country is computed
//! once and cached.

use std::fmt;
use std::sync::OnceLock;

pub use tandem_types::RingTone;

use crate::RATE_8K;

/// Amplitude (16-bit peak) of a sine at 0 dBm0: G.711 μ-law's full-scale
/// sine (peak 32124) is +3.17 dBm0.
pub const DBM0_AMPLITUDE: f32 = 22_303.0;

/// Peak amplitude of a sine at `dbm0`.
pub fn amplitude_at(dbm0: f32) -> f32 {
    DBM0_AMPLITUDE * 10f32.powf(dbm0 / 20.0)
}

/// The frequencies of a tone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tone {
    /// One frequency, Hz.
    Single(f32),
    /// Two frequencies of equal level, Hz.
    Dual(f32, f32),
    /// A carrier amplitude modulated by a low frequency:
    /// `(1 + depth·cos(2π·modulator·t)) · sin(2π·carrier·t)`.
    Modulated {
        /// Carrier, Hz.
        carrier: f32,
        /// Modulating frequency, Hz.
        modulator: f32,
        /// Modulation depth, 0..=1.
        depth: f32,
    },
}

impl Tone {
    /// Frequencies present in the spectrum (for a modulated tone: the
    /// carrier and both sidebands).
    pub fn spectrum(&self) -> Vec<f32> {
        match *self {
            Tone::Single(f) => vec![f],
            Tone::Dual(a, b) => vec![a, b],
            Tone::Modulated {
                carrier, modulator, ..
            } => vec![carrier - modulator, carrier, carrier + modulator],
        }
    }

    /// Sample `n` (at `rate`) of this tone at `dbm0` per component.
    fn sample(&self, n: u64, rate: u32, dbm0: f32) -> f32 {
        let t = n as f64 / f64::from(rate);
        let s = |f: f32| (2.0 * std::f64::consts::PI * f64::from(f) * t).sin() as f32;
        match *self {
            Tone::Single(f) => amplitude_at(dbm0) * s(f),
            Tone::Dual(a, b) => amplitude_at(dbm0 - 3.0) * (s(a) + s(b)),
            Tone::Modulated {
                carrier,
                modulator,
                depth,
            } => {
                // Starts at the envelope's peak; normalised so the peak
                // equals a single tone's.
                let env = 1.0
                    + depth * (2.0 * std::f64::consts::PI * f64::from(modulator) * t).cos() as f32;
                amplitude_at(dbm0) * env / (1.0 + depth) * s(carrier)
            }
        }
    }
}

impl fmt::Display for Tone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Tone::Single(a) => write!(f, "{a} Hz"),
            Tone::Dual(a, b) => write!(f, "{a}+{b} Hz"),
            Tone::Modulated {
                carrier, modulator, ..
            } => write!(f, "{carrier}×{modulator} Hz"),
        }
    }
}

/// A tone with its cadence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    /// What sounds during "on" periods.
    pub tone: Tone,
    /// On, off, on, off... durations in ms, repeated.
    pub cadence: &'static [u32],
    /// Where the values come from.
    pub source: &'static str,
}

impl ToneSpec {
    /// One cadence period, ms.
    pub fn period_ms(&self) -> u32 {
        self.cadence.iter().sum()
    }
}

macro_rules! ring_tones {
    ($( $variant:ident = $code:literal, $country:literal: $tone:expr, $cadence:expr, $source:literal; )*) => {
        /// Frequencies, cadence and source of a ring tone.
        fn spec_of(tone: RingTone) -> ToneSpec {
            match tone {
                $(RingTone::$variant => ToneSpec { tone: $tone, cadence: $cadence, source: $source },)*
            }
        }

        #[cfg(test)]
        /// The codes as this table writes them, to check them against
        /// tandem-types' list.
        const TABLE_CODES: &[(RingTone, &str)] = &[$((RingTone::$variant, $code)),*];
    };
}

/// The sound of a [`RingTone`] (the codes themselves are tandem-types').
pub trait RingToneSpec {
    /// Frequencies, cadence and source.
    fn spec(self) -> ToneSpec;
}

impl RingToneSpec for RingTone {
    fn spec(self) -> ToneSpec {
        spec_of(self)
    }
}

use Tone::{Dual, Modulated, Single};

const fn am(carrier: f32, modulator: f32, depth: f32) -> Tone {
    Modulated {
        carrier,
        modulator,
        depth,
    }
}

// Cadences in ms, on first. Sources: "E.180 Suppl. 2" is ITU-T E.180
// Supplement 2, "Various tones used in national networks" (the country's
// own entry); national specifications where one is named. Values were
// cross-checked with Asterisk's indications.conf and DAHDI's zonedata.
const C_1_3: &[u32] = &[1000, 3000];
const C_1_4: &[u32] = &[1000, 4000];
const C_1_5: &[u32] = &[1000, 5000];
const C_1_2: &[u32] = &[1000, 2000];
const C_2_4: &[u32] = &[2000, 4000];
const C_DOUBLE: &[u32] = &[400, 200, 400, 2000];

ring_tones! {
    At = "at", "Austria": Single(420.0), C_1_5,
        "ITU-T E.180 Suppl. 2, Austria: 420 Hz, 1 s on 5 s off";
    Au = "au", "Australia": Dual(400.0, 450.0), C_DOUBLE,
        "AS/CA S002:2010 §5.3.4.1(b) Ring Tone B: 400+450 Hz, 0.4 on 0.2 off 0.4 on 2 off";
    Bg = "bg", "Bulgaria": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Bulgaria: 425 Hz, 1 s on 4 s off";
    Br = "br", "Brazil": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Brazil (Anatel): 425 Hz, 1 s on 4 s off";
    Be = "be", "Belgium": Single(425.0), C_1_3,
        "ITU-T E.180 Suppl. 2, Belgium: 425 Hz, 1 s on 3 s off";
    Ch = "ch", "Switzerland": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Switzerland: 425 Hz, 1 s on 4 s off";
    Cl = "cl", "Chile": Single(400.0), C_1_3,
        "ITU-T E.180 Suppl. 2, Chile (Telefónica CTC): 400 Hz, 1 s on 3 s off";
    Cn = "cn", "China": Single(450.0), C_1_4,
        "ITU-T E.180 Suppl. 2, China (YD/T 1051): 450 Hz, 1 s on 4 s off";
    Cz = "cz", "Czech Republic": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Czech Republic: 425 Hz, 1 s on 4 s off";
    De = "de", "Germany": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Germany (ringing tone I, 1 TR 110): 425 Hz, 1 s on 4 s off";
    Dk = "dk", "Denmark": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Denmark: 425 Hz, 1 s on 4 s off";
    Ee = "ee", "Estonia": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Estonia: 425 Hz, 1 s on 4 s off";
    Es = "es", "Spain": Single(425.0), &[1500, 3000],
        "ITU-T E.180 Suppl. 2, Spain: 425 Hz, 1.5 s on 3 s off";
    Fi = "fi", "Finland": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Finland: 425 Hz, 1 s on 4 s off";
    Fr = "fr", "France": Single(440.0), &[1500, 3500],
        "ITU-T E.180 Suppl. 2, France: 440 Hz, 1.5 s on 3.5 s off";
    Gr = "gr", "Greece": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Greece: 425 Hz, 1 s on 4 s off";
    Hu = "hu", "Hungary": Single(425.0), &[1250, 3750],
        "ITU-T E.180 Suppl. 2, Hungary: 425 Hz, 1.25 s on 3.75 s off";
    Il = "il", "Israel": Single(414.0), C_1_3,
        "ITU-T E.180 Suppl. 2, Israel (Bezeq): 414 Hz, 1 s on 3 s off";
    In = "in", "India": am(400.0, 25.0, 0.9), C_DOUBLE,
        "ITU-T E.180 Suppl. 2, India (DoT): 400×25 Hz, 0.4 on 0.2 off 0.4 on 2 off";
    It = "it", "Italy": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Italy: 425 Hz, 1 s on 4 s off";
    Lt = "lt", "Lithuania": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Lithuania: 425 Hz, 1 s on 4 s off";
    Jp = "jp", "Japan": am(400.0, 16.0, 0.9), C_1_2,
        "Japan, 事業用電気通信設備規則 別表第五号 (呼出音): 400 Hz modulated by 15-20 Hz (16 Hz used), 1 s on 2 s off";
    Mx = "mx", "Mexico": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Mexico: 425 Hz, 1 s on 4 s off";
    My = "my", "Malaysia": Single(425.0), C_DOUBLE,
        "ITU-T E.180 Suppl. 2, Malaysia: 425 Hz, 0.4 on 0.2 off 0.4 on 2 off";
    Nl = "nl", "Netherlands": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Netherlands: 425 Hz, 1 s on 4 s off";
    No = "no", "Norway": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Norway: 425 Hz, 1 s on 4 s off";
    Nz = "nz", "New Zealand": Dual(400.0, 450.0), C_DOUBLE,
        "Telecom NZ PTC/TNA 102: 400+450 Hz, 0.4 on 0.2 off 0.4 on 2 off";
    Ph = "ph", "Philippines": Dual(425.0, 480.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Philippines: 425+480 Hz, 1 s on 4 s off";
    Pl = "pl", "Poland": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Poland: 425 Hz, 1 s on 4 s off";
    Pt = "pt", "Portugal": Single(425.0), C_1_5,
        "ITU-T E.180 Suppl. 2, Portugal: 425 Hz, 1 s on 5 s off";
    Ru = "ru", "Russia": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Russia (GOST R 45.223-2001 ringing-control tone): 425 Hz, 1 s on 4 s off";
    Se = "se", "Sweden": Single(425.0), C_1_5,
        "ITU-T E.180 Suppl. 2, Sweden: 425 Hz, 1 s on 5 s off";
    Sg = "sg", "Singapore": am(425.0, 24.0, 1.0), C_DOUBLE,
        "IDA TS PSTN1: 425 Hz modulated 100% by 24 Hz, 0.4 on 0.2 off 0.4 on 2 off";
    Th = "th", "Thailand": Single(420.0), C_1_5,
        "ITU-T E.180 Suppl. 2, Thailand: 420 Hz, 1 s on 5 s off";
    Uk = "uk", "United Kingdom": Dual(400.0, 450.0), C_DOUBLE,
        "BT SIN 350: 400+450 Hz, 0.4 on 0.2 off 0.4 on 2 off";
    Us = "us", "United States": Dual(440.0, 480.0), C_2_4,
        "ANSI T1.401 / Telcordia GR-506 precise tone plan: 440+480 Hz, 2 s on 4 s off";
    UsOld = "us-old", "United States (pre-precise tone plan)": am(420.0, 40.0, 0.9), C_2_4,
        "Bell System (before the precise tone plan): 420×40 Hz, 2 s on 4 s off";
    Tw = "tw", "Taiwan": Dual(440.0, 480.0), C_1_2,
        "ITU-T E.180 Suppl. 2, Taiwan (Chunghwa Telecom): 440+480 Hz, 1 s on 2 s off";
    Ve = "ve", "Venezuela": Single(425.0), C_1_4,
        "ITU-T E.180 Suppl. 2, Venezuela: 425 Hz, 1 s on 4 s off";
    Za = "za", "South Africa": am(400.0, 33.0, 0.9), C_DOUBLE,
        "ITU-T E.180 Suppl. 2, South Africa (Telkom): 400×33 Hz, 0.4 on 0.2 off 0.4 on 2 off";
}

/// Level of each ringback (per component for dual tones: 3 dB less each).
pub const RINGBACK_DBM0: f32 = -13.0;
/// Samples of the linear fade at each edge of a burst (1 ms), against clicks.
const RAMP: usize = 8;

/// Renders one full cadence period of `spec` at 8 kHz.
pub fn render_period(spec: &ToneSpec, dbm0: f32) -> Vec<i16> {
    let per_ms = (RATE_8K / 1000) as usize;
    let mut out = Vec::with_capacity(spec.period_ms() as usize * per_ms);
    for (i, &ms) in spec.cadence.iter().enumerate() {
        let n = ms as usize * per_ms;
        if i % 2 == 1 {
            out.resize(out.len() + n, 0);
            continue;
        }
        for k in 0..n {
            // Each burst starts at phase 0, so every burst sounds the same.
            let ramp = (k.min(n - 1 - k) + 1).min(RAMP) as f32 / RAMP as f32;
            let v = spec.tone.sample(k as u64, RATE_8K, dbm0) * ramp;
            out.push(v.round().clamp(-32768.0, 32767.0) as i16);
        }
    }
    out
}

/// Ringback for one country, at 8 kHz, by sample position.
#[derive(Debug, Clone, Copy)]
pub struct Ringback {
    tone: RingTone,
    period: &'static [i16],
}

impl Ringback {
    /// The generator for `tone`. The first call per country renders its
    /// period (at most 6 s of samples); later calls share it.
    pub fn new(tone: RingTone) -> Self {
        static CACHE: [OnceLock<Box<[i16]>>; RingTone::ALL.len()] =
            [const { OnceLock::new() }; RingTone::ALL.len()];
        let idx = tone.index();
        let period = CACHE[idx]
            .get_or_init(|| render_period(&tone.spec(), RINGBACK_DBM0).into_boxed_slice());
        Ringback { tone, period }
    }

    /// Which country.
    pub fn tone(&self) -> RingTone {
        self.tone
    }

    /// Samples in one cadence period.
    pub fn period_samples(&self) -> u64 {
        self.period.len() as u64
    }

    /// Fills `out` with the samples starting at stream position `pos`.
    pub fn fill(&self, pos: u64, out: &mut [i16]) {
        fill_periodic(self.period, pos, out);
    }

    /// The 20 ms frame (160 samples) starting at `pos`.
    pub fn frame(&self, pos: u64) -> [i16; crate::FRAME_8K] {
        let mut f = [0i16; crate::FRAME_8K];
        self.fill(pos, &mut f);
        f
    }
}

fn fill_periodic(period: &[i16], pos: u64, out: &mut [i16]) {
    let len = period.len();
    let mut at = (pos % len as u64) as usize;
    let mut done = 0;
    while done < out.len() {
        let n = (len - at).min(out.len() - done);
        out[done..done + n].copy_from_slice(&period[at..at + n]);
        done += n;
        at = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_codes_parse_and_print() {
        assert_eq!(RingTone::ALL.len(), 40);
        for &t in RingTone::ALL {
            assert_eq!(t.code().parse::<RingTone>(), Ok(t));
            assert_eq!(t.code().to_ascii_uppercase().parse::<RingTone>(), Ok(t));
            assert_eq!(t.to_string(), t.code());
        }
        for bad in ["gb", "us_old", ""] {
            assert!(bad.parse::<RingTone>().is_err(), "{bad}");
        }
    }

    #[test]
    fn table_codes_match_the_vocabulary() {
        assert_eq!(TABLE_CODES.len(), RingTone::ALL.len());
        for &(tone, code) in TABLE_CODES {
            assert_eq!(tone.code(), code);
        }
    }

    #[test]
    fn fill_wraps_around_the_period() {
        let r = Ringback::new(RingTone::Uk);
        let p = r.period_samples();
        let mut a = [0i16; 400];
        let mut b = [0i16; 400];
        r.fill(p - 200, &mut a);
        r.fill(2 * p - 200, &mut b);
        assert_eq!(a, b);
        let mut start = [0i16; 200];
        r.fill(0, &mut start);
        assert_eq!(&a[200..], &start[..]);
        assert_eq!(&r.frame(0)[..], &start[..160]);
    }
}
