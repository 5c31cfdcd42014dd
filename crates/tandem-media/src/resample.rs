//! Rational-ratio polyphase resampler (windowed-sinc low-pass, Kaiser
//! window), streaming: state carries across calls, so 20 ms frames can be
//! fed one at a time. Used 8 kHz <-> 48 kHz between G.711 and Opus legs, and
//! from any WAV rate to a leg's rate in the player.
//!
//! The filter passes up to 80% of the lower rate's Nyquist frequency (3.2
//! kHz at 8 kHz, the telephone band) and stops at 100% with 60 dB of
//! attenuation.

/// Streaming resampler from `from` Hz to `to` Hz.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Upsampling factor L.
    up: usize,
    /// Downsampling factor M.
    down: usize,
    /// Taps per phase.
    taps: usize,
    /// Polyphase coefficients: phase p at `p * taps .. (p + 1) * taps`,
    /// tap t applies to input sample `i - t`.
    coeffs: Vec<f32>,
    /// The last `taps - 1` inputs followed by new ones.
    history: Vec<f32>,
    /// Position of the next output in the upsampled domain, relative to
    /// the first sample of `history` (shifted by `taps - 1` inputs).
    next: u64,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Zeroth-order modified Bessel function of the first kind.
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz (both non-zero).
    pub fn new(from: u32, to: u32) -> Self {
        assert!(from > 0 && to > 0, "sample rates must be positive");
        let g = gcd(from, to);
        let up = (to / g) as usize;
        let down = (from / g) as usize;
        if up == down {
            return Resampler {
                from,
                to,
                up: 1,
                down: 1,
                taps: 1,
                coeffs: vec![1.0],
                history: Vec::new(),
                next: 0,
            };
        }
        // Design in the upsampled domain (rate from * up).
        let fs_up = f64::from(from) * up as f64;
        let nyq_low = f64::from(from.min(to)) / 2.0;
        let pass = 0.8 * nyq_low;
        let stop = nyq_low;
        let cutoff = (pass + stop) / 2.0 / fs_up; // cycles per upsampled sample
        let width = (stop - pass) / fs_up;
        let atten = 60.0;
        let beta = 0.1102 * (atten - 8.7);
        let n_est = ((atten - 8.0) / (2.285 * 2.0 * std::f64::consts::PI * width)).ceil() as usize;
        let taps = n_est.div_ceil(up).max(2);
        let n = taps * up;
        let mid = (n - 1) as f64 / 2.0;
        let mut proto = vec![0f64; n];
        for (k, c) in proto.iter_mut().enumerate() {
            let x = k as f64 - mid;
            let sinc = if x == 0.0 {
                2.0 * cutoff
            } else {
                (2.0 * std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * x)
            };
            let r = 2.0 * k as f64 / (n - 1) as f64 - 1.0;
            let w = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta);
            // Gain `up` restores the level lost to zero stuffing.
            *c = sinc * w * up as f64;
        }
        let mut coeffs = vec![0f32; n];
        for p in 0..up {
            for t in 0..taps {
                coeffs[p * taps + t] = proto[p + t * up] as f32;
            }
        }
        Resampler {
            from,
            to,
            up,
            down,
            taps,
            coeffs,
            history: vec![0.0; taps - 1],
            next: 0,
        }
    }

    /// Input rate, Hz.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Output rate, Hz.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Delay the filter adds, in output samples.
    pub fn delay(&self) -> usize {
        (self.taps * self.up) / 2 / self.down
    }

    /// Resamples `input`, appending the output to `out`. Over a long run
    /// the output count tracks `input.len() * to / from`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.up == 1 && self.down == 1 {
            out.extend_from_slice(input);
            return;
        }
        self.history.extend(input.iter().map(|&s| f32::from(s)));
        let (up, down, taps) = (self.up as u64, self.down as u64, self.taps);
        // Output n needs input index i = next / up (within history, after
        // the taps - 1 warm-up samples), using x[i], x[i-1] .. x[i-taps+1].
        loop {
            let i = (self.next / up) as usize + taps - 1;
            if i >= self.history.len() {
                break;
            }
            let phase = (self.next % up) as usize;
            let c = &self.coeffs[phase * taps..(phase + 1) * taps];
            let x = &self.history[i + 1 - taps..=i];
            // c[t] applies to x[i - t]: walk x backwards.
            let acc: f32 = c.iter().zip(x.iter().rev()).map(|(a, b)| a * b).sum();
            out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            self.next += down;
        }
        // Keep the last taps - 1 inputs before the next needed one.
        let consumed = (self.next / up) as usize;
        if consumed > 0 {
            self.history.drain(..consumed.min(self.history.len()));
            self.next -= consumed as u64 * up;
        }
    }

    /// Resamples a whole buffer at once (no streaming state kept), padding
    /// the end so the output has exactly `input.len() * to / from` samples
    /// and no filter delay.
    pub fn resample_all(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
        let mut r = Resampler::new(from, to);
        let want = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
        let delay = r.delay();
        let mut out = Vec::with_capacity(want + delay);
        r.process(input, &mut out);
        // Flush the filter with silence.
        let pad = vec![0i16; (delay * from as usize).div_ceil(to as usize) + r.taps];
        r.process(&pad, &mut out);
        out.drain(..delay.min(out.len()));
        out.truncate(want);
        out
    }
}
