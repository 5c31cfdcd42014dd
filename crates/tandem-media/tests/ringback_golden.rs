//! Golden tests of every ringback: a Goertzel analysis of the generated
//! audio finds the specified frequencies in every burst and the specified
//! on/off cadence to within a few milliseconds.

use tandem_media::goertzel::{Goertzel, energy, tone_share};
use tandem_media::tones::{RingTone, RingToneSpec, Ringback, Tone};

const RATE: u32 = 8000;
/// Analysis block for the cadence: 2 ms.
const STEP: usize = 16;
/// Edge tolerance of the measured cadence, ms.
const TOLERANCE_MS: i64 = 4;

/// Generates `periods` cadence periods in 20 ms frames, as a caller pacing
/// the generator would.
fn generate(rb: &Ringback, periods: u64) -> Vec<i16> {
    let total = rb.period_samples() * periods;
    let mut out = Vec::with_capacity(total as usize);
    let mut pos = 0;
    while pos < total {
        out.extend_from_slice(&rb.frame(pos));
        pos += 160;
    }
    out.truncate(total as usize);
    out
}

/// On/off segments (ms) from the Goertzel power of the tone's components
/// in 2 ms blocks; off runs shorter than 30 ms (the envelope dips of a
/// 100%-modulated tone) are merged into the surrounding burst.
fn cadence_of(samples: &[i16], tone: &Tone) -> Vec<(bool, i64)> {
    // A short block has wide bins: use the carrier / every component.
    let filters: Vec<Goertzel> = tone
        .spectrum()
        .iter()
        .map(|&f| Goertzel::new(f, RATE))
        .collect();
    let on: Vec<bool> = samples
        .chunks(STEP)
        .map(|b| {
            let f: Vec<f32> = b.iter().map(|&s| f32::from(s)).collect();
            let p: f32 = filters.iter().map(|g| g.power(&f)).sum();
            // 1% of the amplitude of a -13 dBm0 tone filling the block.
            p > (25.0 * STEP as f32 / 2.0).powi(2)
        })
        .collect();
    let mut runs: Vec<(bool, i64)> = Vec::new();
    for v in on {
        match runs.last_mut() {
            Some((state, n)) if *state == v => *n += 1,
            _ => runs.push((v, 1)),
        }
    }
    // Merge short off runs inside bursts.
    let mut merged: Vec<(bool, i64)> = Vec::new();
    for (state, n) in runs {
        let ms = n * STEP as i64 * 1000 / RATE as i64;
        if !state && ms < 30 && !merged.is_empty() {
            merged.last_mut().unwrap().1 += ms;
            continue;
        }
        match merged.last_mut() {
            Some((s, m)) if *s == state => *m += ms,
            _ => merged.push((state, ms)),
        }
    }
    merged
}

#[test]
fn every_ring_tone_has_its_frequencies_and_cadence() {
    for &code in RingTone::ALL {
        let spec = code.spec();
        let rb = Ringback::new(code);
        assert_eq!(
            rb.period_samples(),
            u64::from(spec.period_ms()) * 8,
            "{code}"
        );
        let audio = generate(&rb, 3);

        // Cadence: three periods of the spec's on/off list (the last off
        // run is cut by the end of the buffer only if it ends there).
        let measured = cadence_of(&audio, &spec.tone);
        let expected: Vec<(bool, i64)> = (0..3)
            .flat_map(|_| {
                spec.cadence
                    .iter()
                    .enumerate()
                    .map(|(i, &ms)| (i % 2 == 0, i64::from(ms)))
            })
            .collect();
        assert_eq!(
            measured.len(),
            expected.len(),
            "{code}: segments {measured:?}"
        );
        for (k, (m, e)) in measured.iter().zip(&expected).enumerate() {
            assert_eq!(m.0, e.0, "{code}: segment {k} state");
            assert!(
                (m.1 - e.1).abs() <= TOLERANCE_MS,
                "{code}: segment {k} lasts {} ms, spec {} ms",
                m.1,
                e.1
            );
        }

        // Frequencies: each burst, 10 ms in from its edges.
        let mut at = 0usize;
        for (i, &ms) in spec.cadence.iter().enumerate() {
            let n = ms as usize * 8;
            if i % 2 == 0 {
                let burst = &audio[at + 80..at + n - 80];
                let shares: Vec<f32> = spec
                    .tone
                    .spectrum()
                    .iter()
                    .map(|&f| tone_share(burst, f, RATE))
                    .collect();
                let total: f32 = shares.iter().sum();
                assert!(
                    total > 0.95,
                    "{code}: components hold only {total} of the energy"
                );
                match spec.tone {
                    Tone::Single(_) => assert!(shares[0] > 0.95, "{code}"),
                    Tone::Dual(..) => {
                        assert!(shares.iter().all(|&s| s > 0.4), "{code}: {shares:?}")
                    }
                    Tone::Modulated { depth, .. } => {
                        // Carrier 1/(1+m²/2), each sideband (m²/4)/(1+m²/2).
                        let c = 1.0 / (1.0 + depth * depth / 2.0);
                        let sb = depth * depth / 4.0 * c;
                        assert!((shares[1] - c).abs() < 0.05, "{code}: carrier {shares:?}");
                        assert!(
                            (shares[0] - sb).abs() < 0.05,
                            "{code}: lower sideband {shares:?}"
                        );
                        assert!(
                            (shares[2] - sb).abs() < 0.05,
                            "{code}: upper sideband {shares:?}"
                        );
                    }
                }
                // Nothing at frequencies the tone should not have.
                for other in [350.0, 1000.0, 1400.0] {
                    assert!(
                        tone_share(burst, other, RATE) < 0.01,
                        "{code}: {other} Hz present"
                    );
                }
                // Level: about -13 dBm0 (RMS of a -13 dBm0 sine is ~3540).
                let rms = (energy(&burst.iter().map(|&s| f32::from(s)).collect::<Vec<_>>())
                    / burst.len() as f32)
                    .sqrt();
                assert!((1500.0..5000.0).contains(&rms), "{code}: rms {rms}");
            } else {
                assert!(
                    audio[at..at + n].iter().all(|&s| s == 0),
                    "{code}: off period not silent"
                );
            }
            at += n;
        }
    }
}

#[test]
fn distinct_countries_sound_distinct_where_specs_differ() {
    // us (440+480, 2/4) vs uk (400+450 double ring) vs de (425, 1/4).
    let us = generate(&Ringback::new(RingTone::Us), 1);
    let uk = generate(&Ringback::new(RingTone::Uk), 1);
    let de = generate(&Ringback::new(RingTone::De), 1);
    assert!(tone_share(&us[..3200], 440.0, RATE) > 0.4);
    assert!(tone_share(&uk[..3200], 440.0, RATE) < 0.05);
    assert!(tone_share(&de[..3200], 425.0, RATE) > 0.95);
    assert!(tone_share(&de[..3200], 400.0, RATE) < 0.05);
}

#[test]
fn the_tone_table_in_docs_matches_the_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/media.md"))
        .expect("docs/media.md");
    for &code in RingTone::ALL {
        let spec = code.spec();
        let cadence: Vec<String> = spec
            .cadence
            .iter()
            .enumerate()
            .map(|(i, ms)| format!("{ms} {}", if i % 2 == 0 { "on" } else { "off" }))
            .collect();
        let row = format!(
            "| `{}` | {} | {} | {} | {} |",
            code.code(),
            code.country(),
            spec.tone,
            cadence.join(", "),
            spec.source.split(':').next().unwrap()
        );
        assert!(
            doc.contains(&row),
            "docs/media.md lacks or differs for: {row}"
        );
    }
}
