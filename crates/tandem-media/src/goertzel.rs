//! Goertzel single-bin DFT: the power of one frequency over a block of
//! samples, at the exact target frequency (the generalised form, not
//! rounded to a DFT bin). Used by the DTMF detector and the tone analysis
//! helpers the golden tests rely on.

/// Precomputed coefficient for one target frequency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goertzel {
    coeff: f32,
    freq: f32,
}

impl Goertzel {
    /// A filter for `freq` Hz at `sample_rate` Hz.
    pub fn new(freq: f32, sample_rate: u32) -> Self {
        let w = 2.0 * std::f32::consts::PI * freq / sample_rate as f32;
        Goertzel {
            coeff: 2.0 * w.cos(),
            freq,
        }
    }

    /// The target frequency in Hz.
    pub fn freq(&self) -> f32 {
        self.freq
    }

    /// |X(f)|² over `block`: for a full-scale-A sine at `freq` filling the
    /// block this is about (A·N/2)².
    pub fn power(&self, block: &[f32]) -> f32 {
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in block {
            let s0 = x + self.coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - self.coeff * s1 * s2
    }

    /// Power normalised by the block's energy: the share of the block's
    /// energy at `freq`, near 1.0 for a pure tone filling the block, near
    /// the filled fraction for a tone covering part of it, small for noise.
    pub fn relative_power(&self, block: &[f32], energy: f32) -> f32 {
        if energy <= 0.0 || block.is_empty() {
            return 0.0;
        }
        self.power(block) / (energy * block.len() as f32 / 2.0)
    }
}

/// Sum of squares of a block.
pub fn energy(block: &[f32]) -> f32 {
    block.iter().map(|x| x * x).sum()
}

/// Power of `freq` in an i16 block, relative to the block energy (see
/// [`Goertzel::relative_power`]). Convenience for tests and analysis.
pub fn tone_share(block: &[i16], freq: f32, sample_rate: u32) -> f32 {
    let f: Vec<f32> = block.iter().map(|&s| f32::from(s)).collect();
    let e = energy(&f);
    Goertzel::new(freq, sample_rate).relative_power(&f, e)
}

/// Root-mean-square level of a block of i16 samples.
pub fn rms(block: &[i16]) -> f32 {
    if block.is_empty() {
        return 0.0;
    }
    let e: f64 = block.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (e / block.len() as f64).sqrt() as f32
}
