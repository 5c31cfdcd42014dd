//! In-band DTMF: every digit round-trips generate -> detect; twist, level,
//! duration and purity checks reject what they should.

use tandem_media::dtmf::{
    DIGITS, DetectedDigit, DetectorConfig, DtmfDetector, InbandConfig, InbandDigits, digit_freqs,
    digit_tone,
};
use tandem_media::tones::{RingTone, Ringback, amplitude_at};

fn detect(pcm: &[i16]) -> Vec<DetectedDigit> {
    let mut d = DtmfDetector::default();
    let mut out = Vec::new();
    // Feed in 20 ms frames, as the relay tap does.
    for f in pcm.chunks(160) {
        d.process(f, &mut out);
    }
    out
}

fn digits_of(found: &[DetectedDigit]) -> String {
    found.iter().map(|d| d.digit).collect()
}

fn pair(lo: f32, lo_dbm0: f32, hi: f32, hi_dbm0: f32, n: usize) -> Vec<i16> {
    (0..n)
        .map(|k| {
            let t = k as f32 / 8000.0;
            let v = amplitude_at(lo_dbm0) * (2.0 * std::f32::consts::PI * lo * t).sin()
                + amplitude_at(hi_dbm0) * (2.0 * std::f32::consts::PI * hi * t).sin();
            v as i16
        })
        .collect()
}

fn silence(n: usize) -> Vec<i16> {
    vec![0; n]
}

#[test]
fn every_digit_round_trips_generate_to_detect() {
    let sched = InbandDigits::new(DIGITS, InbandConfig::default()).unwrap();
    let mut pcm = vec![0i16; sched.total_samples() as usize];
    sched.fill(0, &mut pcm);
    let found = detect(&pcm);
    assert_eq!(digits_of(&found), DIGITS);
    // Each reported near its burst start (within two blocks).
    for (f, &(start, d)) in found.iter().zip(sched.bursts()) {
        assert_eq!(f.digit, d);
        assert!(
            f.at >= start && f.at <= start + 160,
            "{d}: at {} burst {start}",
            f.at
        );
    }
}

#[test]
fn generated_string_with_pause_has_the_right_schedule() {
    let sched = InbandDigits::new("1w2", InbandConfig::default()).unwrap();
    // 1: 100 ms tone + 100 ms gap, w: 500 ms, 2: 100 + 100.
    assert_eq!(sched.bursts(), &[(0, '1'), (1600 + 4000, '2')]);
    assert_eq!(sched.total_samples(), 1600 + 4000 + 1600);
    assert!(InbandDigits::new("12x", InbandConfig::default()).is_err());
    let mut pcm = vec![0i16; sched.total_samples() as usize];
    sched.fill(0, &mut pcm);
    assert_eq!(digits_of(&detect(&pcm)), "12");
    assert!(pcm[800..5600].iter().all(|&s| s == 0));
}

#[test]
fn every_digit_is_detected_when_fed_in_odd_frame_sizes() {
    for d in DIGITS.chars() {
        let mut pcm = silence(123);
        pcm.extend(digit_tone(d, 480, -10.0, -10.0).unwrap());
        pcm.extend(silence(500));
        let mut det = DtmfDetector::default();
        let mut out = Vec::new();
        for f in pcm.chunks(37) {
            det.process(f, &mut out);
        }
        assert_eq!(digits_of(&out), d.to_string());
    }
}

#[test]
fn forty_ms_is_always_detected_and_twenty_three_ms_never() {
    for offset in (0..80).step_by(7) {
        for d in DIGITS.chars() {
            let mut pcm = silence(160 + offset);
            pcm.extend(digit_tone(d, 320, -8.0, -6.0).unwrap());
            pcm.extend(silence(400));
            assert_eq!(
                digits_of(&detect(&pcm)),
                d.to_string(),
                "40 ms of {d} at offset {offset}"
            );

            let mut pcm = silence(160 + offset);
            pcm.extend(digit_tone(d, 184, -8.0, -6.0).unwrap());
            pcm.extend(silence(400));
            assert!(
                detect(&pcm).is_empty(),
                "23 ms of {d} at offset {offset} was detected"
            );
        }
    }
}

#[test]
fn a_held_key_is_one_digit_and_two_presses_are_two() {
    let mut pcm = digit_tone('5', 8000, -8.0, -6.0).unwrap(); // held 1 s
    assert_eq!(digits_of(&detect(&pcm)), "5");
    pcm.extend(silence(320)); // 40 ms release
    pcm.extend(digit_tone('5', 800, -8.0, -6.0).unwrap());
    assert_eq!(digits_of(&detect(&pcm)), "55");
    // Back-to-back different digits without a gap are two digits.
    let mut pcm = digit_tone('1', 800, -8.0, -6.0).unwrap();
    pcm.extend(digit_tone('9', 800, -8.0, -6.0).unwrap());
    assert_eq!(digits_of(&detect(&pcm)), "19");
}

#[test]
fn twist_limits_forward_and_reverse() {
    let (lo, hi) = digit_freqs('8').unwrap();
    let n = 800;
    // Reverse twist (low group stronger): accepted up to 8 dB.
    assert_eq!(digits_of(&detect(&pair(lo, -6.0, hi, -13.0, n))), "8");
    assert!(
        detect(&pair(lo, -6.0, hi, -16.0, n)).is_empty(),
        "10 dB reverse twist"
    );
    // Forward twist (high group stronger): accepted up to 4 dB.
    assert_eq!(digits_of(&detect(&pair(lo, -9.0, hi, -6.0, n))), "8");
    assert!(
        detect(&pair(lo, -12.0, hi, -6.0, n)).is_empty(),
        "6 dB forward twist"
    );
    // A custom limit is honoured.
    let mut det = DtmfDetector::new(DetectorConfig {
        max_reverse_twist_db: 12.0,
        ..DetectorConfig::default()
    });
    let mut out = Vec::new();
    det.process(&pair(lo, -6.0, hi, -16.0, n), &mut out);
    assert_eq!(digits_of(&out), "8");
}

#[test]
fn frequency_deviation_of_one_and_a_half_percent_is_accepted() {
    for d in DIGITS.chars() {
        let (lo, hi) = digit_freqs(d).unwrap();
        for k in [-1.0f32, 1.0] {
            let pcm = pair(
                lo * (1.0 + k * 0.015),
                -8.0,
                hi * (1.0 + k * 0.015),
                -6.0,
                800,
            );
            assert_eq!(
                digits_of(&detect(&pcm)),
                d.to_string(),
                "{d} off by {k}×1.5%"
            );
        }
    }
}

#[test]
fn weak_signals_are_ignored() {
    let (lo, hi) = digit_freqs('3').unwrap();
    assert_eq!(digits_of(&detect(&pair(lo, -25.0, hi, -25.0, 800))), "3");
    assert!(detect(&pair(lo, -40.0, hi, -40.0, 800)).is_empty());
}

#[test]
fn single_tones_and_call_progress_tones_do_not_trigger() {
    for f in [
        697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0, 1000.0, 425.0, 2100.0,
    ] {
        let pcm: Vec<i16> = (0..16_000)
            .map(|k| (12000.0 * (2.0 * std::f32::consts::PI * f * k as f32 / 8000.0).sin()) as i16)
            .collect();
        assert!(detect(&pcm).is_empty(), "{f} Hz triggered");
    }
    // Dial tone 350+440 and every ringback.
    assert!(detect(&pair(350.0, -10.0, 440.0, -10.0, 16_000)).is_empty());
    for &t in RingTone::ALL {
        let rb = Ringback::new(t);
        let mut pcm = vec![0i16; rb.period_samples() as usize];
        rb.fill(0, &mut pcm);
        assert!(detect(&pcm).is_empty(), "ringback {t} triggered");
    }
}

/// Speech-like signal: a glottal pulse train (harmonics of a gliding
/// 90-250 Hz pitch) through moving formant resonators, with noise bursts.
fn speech_like(seconds: usize, seed: u32) -> Vec<i16> {
    let n = seconds * 8000;
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        (rng as f32 / u32::MAX as f32) * 2.0 - 1.0
    };
    let mut out: Vec<f32> = Vec::with_capacity(n);
    let mut phase = 0.0f32;
    // Two-pole resonators for three formants.
    let mut state = [[0.0f32; 2]; 3];
    for k in 0..n {
        let t = k as f32 / 8000.0;
        let pitch = 170.0 + 80.0 * (2.0 * std::f32::consts::PI * 0.7 * t).sin();
        phase += pitch / 8000.0;
        let pulse = if phase >= 1.0 {
            phase -= 1.0;
            1.0
        } else {
            0.0
        };
        // Voiced for 300 ms, then a 100 ms fricative, repeating.
        let voiced = (k / 800) % 4 != 3;
        let excitation = if voiced {
            pulse * 4000.0
        } else {
            next() * 600.0
        };
        let formants = [
            600.0 + 300.0 * (t * 3.1).sin(),
            1400.0 + 500.0 * (t * 2.3).cos(),
            2500.0 + 200.0 * (t * 1.7).sin(),
        ];
        let mut y = 0.0;
        for (i, f) in formants.iter().enumerate() {
            let r = 0.97f32;
            let w = 2.0 * std::f32::consts::PI * f / 8000.0;
            let [y1, y2] = state[i];
            let v = excitation + 2.0 * r * w.cos() * y1 - r * r * y2;
            state[i] = [v, y1];
            y += v;
        }
        out.push(y);
    }
    // Normalise to a loud talker: peaks at -3 dBFS.
    let peak = out.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    out.iter().map(|&v| (v / peak * 23_000.0) as i16).collect()
}

#[test]
fn speech_like_audio_and_noise_do_not_trigger() {
    for seed in [1u32, 7, 42, 2024, 99_991] {
        let speech = speech_like(10, seed);
        assert!(
            speech.iter().any(|&s| s.unsigned_abs() > 3000),
            "signal too weak"
        );
        let found = detect(&speech);
        assert!(
            found.is_empty(),
            "seed {seed}: false digits {:?}",
            digits_of(&found)
        );
    }
    // White noise at a high level.
    let mut rng = 12345u32;
    let noise: Vec<i16> = (0..80_000)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            (rng >> 16) as i16 / 4
        })
        .collect();
    assert!(detect(&noise).is_empty());
}

#[test]
fn digits_are_still_found_over_background_noise() {
    let sched = InbandDigits::new("159#", InbandConfig::default()).unwrap();
    let mut pcm = vec![0i16; sched.total_samples() as usize];
    sched.fill(0, &mut pcm);
    // Noise about 25 dB below the tones.
    let mut rng = 777u32;
    for s in pcm.iter_mut() {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        *s = s.saturating_add(((rng >> 16) as i16) / 64);
    }
    assert_eq!(digits_of(&detect(&pcm)), "159#");
}
