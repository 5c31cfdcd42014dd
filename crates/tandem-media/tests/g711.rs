//! G.711 conformance: all 256 codes decode to the values of ITU-T G.711
//! Tables 1a (A-law) and 2a (μ-law), and every one of the 65,536 16-bit
//! inputs encodes to the code whose decision interval holds it.

use tandem_media::g711::*;

// Decoder output values of G.711 Table 2a (μ-law, ×4 to 16 bits), indexed
// by the transmitted character (sign bit 1 = positive, other bits inverted).
// Segment s of the table starts at 2^(s+5)-33 with steps of 2^(s+1); the
// output is the middle of each interval: 0, 2, 4 .. 30; 33, 37 .. 93; ...
// up to 8031.
#[rustfmt::skip]
const ULAW_TABLE: [i16; 256] = [
    -32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956, -23932, -22908, -21884, -20860, -19836, -18812, -17788, -16764,
    -15996, -15484, -14972, -14460, -13948, -13436, -12924, -12412, -11900, -11388, -10876, -10364, -9852, -9340, -8828, -8316,
    -7932, -7676, -7420, -7164, -6908, -6652, -6396, -6140, -5884, -5628, -5372, -5116, -4860, -4604, -4348, -4092,
    -3900, -3772, -3644, -3516, -3388, -3260, -3132, -3004, -2876, -2748, -2620, -2492, -2364, -2236, -2108, -1980,
    -1884, -1820, -1756, -1692, -1628, -1564, -1500, -1436, -1372, -1308, -1244, -1180, -1116, -1052, -988, -924,
    -876, -844, -812, -780, -748, -716, -684, -652, -620, -588, -556, -524, -492, -460, -428, -396,
    -372, -356, -340, -324, -308, -292, -276, -260, -244, -228, -212, -196, -180, -164, -148, -132,
    -120, -112, -104, -96, -88, -80, -72, -64, -56, -48, -40, -32, -24, -16, -8, 0,
    32124, 31100, 30076, 29052, 28028, 27004, 25980, 24956, 23932, 22908, 21884, 20860, 19836, 18812, 17788, 16764,
    15996, 15484, 14972, 14460, 13948, 13436, 12924, 12412, 11900, 11388, 10876, 10364, 9852, 9340, 8828, 8316,
    7932, 7676, 7420, 7164, 6908, 6652, 6396, 6140, 5884, 5628, 5372, 5116, 4860, 4604, 4348, 4092,
    3900, 3772, 3644, 3516, 3388, 3260, 3132, 3004, 2876, 2748, 2620, 2492, 2364, 2236, 2108, 1980,
    1884, 1820, 1756, 1692, 1628, 1564, 1500, 1436, 1372, 1308, 1244, 1180, 1116, 1052, 988, 924,
    876, 844, 812, 780, 748, 716, 684, 652, 620, 588, 556, 524, 492, 460, 428, 396,
    372, 356, 340, 324, 308, 292, 276, 260, 244, 228, 212, 196, 180, 164, 148, 132,
    120, 112, 104, 96, 88, 80, 72, 64, 56, 48, 40, 32, 24, 16, 8, 0,
];

// Decoder output values of G.711 Table 1a (A-law, ×8 to 16 bits), indexed
// by the transmitted character (sign bit 1 = positive, even bits inverted,
// i.e. XOR 0x55). Segments 0 and 1 have steps of 2 (outputs 1, 3 .. 63),
// segment s ≥ 1 starts at 2^(s+4) with steps of 2^s, up to 4032.
#[rustfmt::skip]
const ALAW_TABLE: [i16; 256] = [
    -5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736, -7552, -7296, -8064, -7808, -6528, -6272, -7040, -6784,
    -2752, -2624, -3008, -2880, -2240, -2112, -2496, -2368, -3776, -3648, -4032, -3904, -3264, -3136, -3520, -3392,
    -22016, -20992, -24064, -23040, -17920, -16896, -19968, -18944, -30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136,
    -11008, -10496, -12032, -11520, -8960, -8448, -9984, -9472, -15104, -14592, -16128, -15616, -13056, -12544, -14080, -13568,
    -344, -328, -376, -360, -280, -264, -312, -296, -472, -456, -504, -488, -408, -392, -440, -424,
    -88, -72, -120, -104, -24, -8, -56, -40, -216, -200, -248, -232, -152, -136, -184, -168,
    -1376, -1312, -1504, -1440, -1120, -1056, -1248, -1184, -1888, -1824, -2016, -1952, -1632, -1568, -1760, -1696,
    -688, -656, -752, -720, -560, -528, -624, -592, -944, -912, -1008, -976, -816, -784, -880, -848,
    5504, 5248, 6016, 5760, 4480, 4224, 4992, 4736, 7552, 7296, 8064, 7808, 6528, 6272, 7040, 6784,
    2752, 2624, 3008, 2880, 2240, 2112, 2496, 2368, 3776, 3648, 4032, 3904, 3264, 3136, 3520, 3392,
    22016, 20992, 24064, 23040, 17920, 16896, 19968, 18944, 30208, 29184, 32256, 31232, 26112, 25088, 28160, 27136,
    11008, 10496, 12032, 11520, 8960, 8448, 9984, 9472, 15104, 14592, 16128, 15616, 13056, 12544, 14080, 13568,
    344, 328, 376, 360, 280, 264, 312, 296, 472, 456, 504, 488, 408, 392, 440, 424,
    88, 72, 120, 104, 24, 8, 56, 40, 216, 200, 248, 232, 152, 136, 184, 168,
    1376, 1312, 1504, 1440, 1120, 1056, 1248, 1184, 1888, 1824, 2016, 1952, 1632, 1568, 1760, 1696,
    688, 656, 752, 720, 560, 528, 624, 592, 944, 912, 1008, 976, 816, 784, 880, 848,
];

#[test]
fn ulaw_decodes_all_256_codes_to_the_g711_table() {
    for code in 0..=255u8 {
        assert_eq!(
            ulaw_to_linear(code),
            ULAW_TABLE[code as usize],
            "code {code:#04x}"
        );
        assert_eq!(ulaw_expand_reference(code), ULAW_TABLE[code as usize]);
    }
    let mut out = Vec::new();
    decode_ulaw(&(0..=255).collect::<Vec<u8>>(), &mut out);
    assert_eq!(out, ULAW_TABLE);
}

#[test]
fn alaw_decodes_all_256_codes_to_the_g711_table() {
    for code in 0..=255u8 {
        assert_eq!(
            alaw_to_linear(code),
            ALAW_TABLE[code as usize],
            "code {code:#04x}"
        );
        assert_eq!(alaw_expand_reference(code), ALAW_TABLE[code as usize]);
    }
    let mut out = Vec::new();
    decode_alaw(&(0..=255).collect::<Vec<u8>>(), &mut out);
    assert_eq!(out, ALAW_TABLE);
}

/// μ-law by decision intervals: the 16-bit sample is cut to its 14 most
/// significant bits (negative values in one's complement, as the ITU-T
/// G.191 reference does), then the interval of Table 2a holding the
/// magnitude gives segment and step.
fn ulaw_by_intervals(x: i16) -> u8 {
    let m = if x < 0 {
        !(x as i32) >> 2
    } else {
        x as i32 >> 2
    };
    // Segment s covers magnitudes [2^(s+5)-33, 2^(s+6)-33), step 2^(s+1);
    // magnitudes past 8158 are clipped to the last interval.
    let m = m.min(8158);
    let mut code = None;
    for s in 0..8 {
        let lo = (1 << (s + 5)) - 33;
        let hi = (1 << (s + 6)) - 33;
        if m >= lo.max(0) && m < hi {
            let step = 1 << (s + 1);
            // Interval q is [lo + step*q, lo + step*(q+1)).
            let q = (m - lo) / step;
            code = Some(((s << 4) | q) as u8);
            break;
        }
    }
    let v = code.expect("every magnitude is in a segment");
    let sign = if x >= 0 { 0x80 } else { 0 };
    sign | (0x7F - v)
}

/// A-law by decision intervals of Table 1a: 13 most significant bits
/// (one's complement for negative values), segment s ≥ 1 covers
/// [2^(s+4), 2^(s+5)) with steps 2^s, segment 0 covers [0, 32) in steps of 2.
fn alaw_by_intervals(x: i16) -> u8 {
    let m = if x < 0 {
        !(x as i32) >> 3
    } else {
        x as i32 >> 3
    };
    let (s, q) = if m < 32 {
        (0, m / 2)
    } else {
        let s = (0..8).rev().find(|&s| m >= 1 << (s + 4)).unwrap();
        (s, (m - (1 << (s + 4))) >> s)
    };
    let sign = if x >= 0 { 0x80 } else { 0 };
    ((sign | (s << 4) | q) ^ 0x55) as u8
}

#[test]
fn ulaw_encodes_every_16_bit_sample_to_its_decision_interval() {
    for x in i16::MIN..=i16::MAX {
        let code = linear_to_ulaw(x);
        assert_eq!(code, ulaw_by_intervals(x), "x = {x}");
        assert_eq!(code, ulaw_compress_reference(x), "x = {x}");
    }
}

#[test]
fn alaw_encodes_every_16_bit_sample_to_its_decision_interval() {
    for x in i16::MIN..=i16::MAX {
        let code = linear_to_alaw(x);
        assert_eq!(code, alaw_by_intervals(x), "x = {x}");
        assert_eq!(code, alaw_compress_reference(x), "x = {x}");
    }
}

/// Quantisation error bound: within half a step of the segment, plus the
/// bits dropped going from 16 to 14 (μ) or 13 (A) bits.
#[test]
fn decode_of_encode_stays_within_half_a_step() {
    for x in i16::MIN..=i16::MAX {
        let u = ulaw_to_linear(linear_to_ulaw(x)) as i32;
        let a = alaw_to_linear(linear_to_alaw(x)) as i32;
        let mag = (x as i32).abs();
        // Step of the segment holding x, in 16-bit units.
        let ustep = 4
            * 2
            * (1 << (0..8)
                .rev()
                .find(|&s| mag >> 2 >= (1 << (s + 5)) - 33)
                .unwrap_or(0));
        let astep = 8 * if mag >> 3 < 32 {
            2
        } else {
            1 << (0..8).rev().find(|&s| mag >> 3 >= 1 << (s + 4)).unwrap()
        };
        if mag < 32_124 {
            assert!((u - x as i32).abs() <= ustep / 2 + 4, "mu x={x} y={u}");
        }
        if mag < 32_256 {
            assert!((a - x as i32).abs() <= astep / 2 + 8, "A x={x} y={a}");
        }
        // Sign is kept (zero aside).
        assert!(u == 0 || (u > 0) == (x >= 0), "mu sign x={x}");
        assert!((a > 0) == (x >= 0), "A sign x={x}");
    }
}

#[test]
fn encode_is_monotonic_and_every_code_is_reachable() {
    let mut last_u = i16::MIN;
    let mut last_a = i16::MIN;
    let mut seen_u = [false; 256];
    let mut seen_a = [false; 256];
    for x in i16::MIN..=i16::MAX {
        let (cu, ca) = (linear_to_ulaw(x), linear_to_alaw(x));
        seen_u[cu as usize] = true;
        seen_a[ca as usize] = true;
        let (u, a) = (ulaw_to_linear(cu), alaw_to_linear(ca));
        assert!(u >= last_u && a >= last_a, "not monotonic at {x}");
        last_u = u;
        last_a = a;
    }
    // Including μ-law 0x7F, negative zero, which -1..-4 encode to.
    assert!(seen_u.iter().all(|&s| s));
    assert_eq!(linear_to_ulaw(-1), 0x7F);
    assert!(seen_a.iter().all(|&s| s));
}

#[test]
fn every_code_round_trips_through_linear() {
    for code in 0..=255u8 {
        // Negative zero decodes to 0, which encodes as positive zero.
        let want_u = if code == 0x7F { 0xFF } else { code };
        assert_eq!(
            linear_to_ulaw(ulaw_to_linear(code)),
            want_u,
            "mu {code:#04x}"
        );
        assert_eq!(linear_to_alaw(alaw_to_linear(code)), code, "A {code:#04x}");
    }
}

#[test]
fn silence_codes_and_slices() {
    assert_eq!(linear_to_ulaw(0), ULAW_SILENCE);
    assert_eq!(linear_to_alaw(0), ALAW_SILENCE);
    let pcm: Vec<i16> = (0..160).map(|i| (i * 200 - 16000) as i16).collect();
    let (mut u, mut a) = (Vec::new(), Vec::new());
    encode_ulaw(&pcm, &mut u);
    encode_alaw(&pcm, &mut a);
    assert_eq!(u.len(), 160);
    assert!(u.iter().zip(&pcm).all(|(&c, &s)| c == linear_to_ulaw(s)));
    assert!(a.iter().zip(&pcm).all(|(&c, &s)| c == linear_to_alaw(s)));
}

#[test]
fn law_to_law_tables_equal_decode_then_encode() {
    for code in 0..=255u8 {
        assert_eq!(ulaw_to_alaw(code), linear_to_alaw(ulaw_to_linear(code)));
        assert_eq!(alaw_to_ulaw(code), linear_to_ulaw(alaw_to_linear(code)));
    }
    let mut p: Vec<u8> = (0..=255).collect();
    ulaw_payload_to_alaw(&mut p);
    assert!(
        p.iter()
            .enumerate()
            .all(|(i, &c)| c == ulaw_to_alaw(i as u8))
    );
    let mut p: Vec<u8> = (0..=255).collect();
    alaw_payload_to_ulaw(&mut p);
    assert!(
        p.iter()
            .enumerate()
            .all(|(i, &c)| c == alaw_to_ulaw(i as u8))
    );
}
