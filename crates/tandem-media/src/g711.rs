//! G.711 PCMU (μ-law) and PCMA (A-law) companding, ITU-T G.711 (11/88).
//!
//! The conversion follows the ITU-T reference implementation published with
//! G.191 (Software Tool Library, `g711.c`): μ-law works on the 14 most
//! significant bits of a 16-bit sample, A-law on the 13 most significant
//! bits, negative inputs are taken in one's complement, and decoded values
//! are the mid-points of the quantisation intervals of G.711 Tables 1a/2a
//! scaled to 16 bits (μ-law ×4, A-law ×8).
//!
//! The hot path is table driven: decoding is one 256-entry lookup, encoding is
//! one lookup in a table indexed by the significant bits of the sample
//! (16 KiB for μ-law, 8 KiB for A-law), all built at compile time.

/// Decodes one μ-law byte to a 16-bit linear sample.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Decodes one A-law byte to a 16-bit linear sample.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Encodes one 16-bit linear sample to μ-law.
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    // The code depends only on the 14 most significant bits.
    ULAW_ENCODE[(sample as u16 >> 2) as usize]
}

/// Encodes one 16-bit linear sample to A-law.
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    // The code depends only on the 13 most significant bits.
    ALAW_ENCODE[(sample as u16 >> 3) as usize]
}

/// Decodes a μ-law payload, appending the samples to `out`.
pub fn decode_ulaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&c| ULAW_DECODE[c as usize]));
}

/// Decodes an A-law payload, appending the samples to `out`.
pub fn decode_alaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&c| ALAW_DECODE[c as usize]));
}

/// Encodes samples to μ-law, appending the bytes to `out`.
pub fn encode_ulaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_ulaw(s)));
}

/// Encodes samples to A-law, appending the bytes to `out`.
pub fn encode_alaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_alaw(s)));
}

/// Converts a μ-law code to the A-law code of the same linear value
/// (decode then encode, in one 256-entry lookup).
#[inline]
pub fn ulaw_to_alaw(code: u8) -> u8 {
    ULAW_TO_ALAW[code as usize]
}

/// Converts an A-law code to the μ-law code of the same linear value
/// (decode then encode, in one 256-entry lookup).
#[inline]
pub fn alaw_to_ulaw(code: u8) -> u8 {
    ALAW_TO_ULAW[code as usize]
}

/// Rewrites a μ-law payload as A-law in place.
pub fn ulaw_payload_to_alaw(payload: &mut [u8]) {
    for b in payload {
        *b = ULAW_TO_ALAW[*b as usize];
    }
}

/// Rewrites an A-law payload as μ-law in place.
pub fn alaw_payload_to_ulaw(payload: &mut [u8]) {
    for b in payload {
        *b = ALAW_TO_ULAW[*b as usize];
    }
}

/// The μ-law code of digital silence (positive zero).
pub const ULAW_SILENCE: u8 = 0xFF;
/// The A-law code of digital silence (smallest positive level).
pub const ALAW_SILENCE: u8 = 0xD5;

// ---- reference formulas (ITU-T G.191 g711.c), used to build the tables ----

/// μ-law compression of one sample, as in the ITU-T G.191 reference code.
pub const fn ulaw_compress_reference(x: i16) -> u8 {
    let x = x as i32;
    // One's complement for negative values, 14-bit magnitude, plus bias 33.
    let mut absno = if x < 0 {
        ((!x) >> 2) + 33
    } else {
        (x >> 2) + 33
    };
    if absno > 0x1FFF {
        absno = 0x1FFF;
    }
    let mut i = absno >> 6;
    let mut segno = 1;
    while i != 0 {
        segno += 1;
        i >>= 1;
    }
    let high_nibble = 0x0008 - segno;
    let low_nibble = 0x000F - ((absno >> segno) & 0x000F);
    let mut out = (high_nibble << 4) | low_nibble;
    if x >= 0 {
        out |= 0x0080;
    }
    out as u8
}

/// μ-law expansion of one code, as in the ITU-T G.191 reference code.
pub const fn ulaw_expand_reference(code: u8) -> i16 {
    let sign: i32 = if code < 0x80 { -1 } else { 1 };
    let mantissa = !(code as i32);
    let exponent = (mantissa >> 4) & 0x7;
    let segment = exponent + 1;
    let mantissa = mantissa & 0xF;
    let step = 4 << segment;
    (sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33)) as i16
}

/// A-law compression of one sample, as in the ITU-T G.191 reference code.
pub const fn alaw_compress_reference(x: i16) -> u8 {
    let x = x as i32;
    // One's complement for negative values, 12-bit magnitude.
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
    if ix > 15 {
        let mut iexp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            iexp += 1;
        }
        ix -= 16; // the leading mantissa bit is implicit
        ix += iexp << 4;
    }
    if x >= 0 {
        ix |= 0x0080;
    }
    (ix ^ 0x0055) as u8
}

/// A-law expansion of one code, as in the ITU-T G.191 reference code.
pub const fn alaw_expand_reference(code: u8) -> i16 {
    let ix = (code as i32 ^ 0x0055) & 0x007F;
    let iexp = ix >> 4;
    let mut mant = ix & 0x000F;
    if iexp > 0 {
        mant += 16;
    }
    mant = (mant << 4) + 0x0008;
    if iexp > 1 {
        mant <<= iexp - 1;
    }
    (if code > 127 { mant } else { -mant }) as i16
}

static ULAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_expand_reference(i as u8);
        i += 1;
    }
    t
};

static ALAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_expand_reference(i as u8);
        i += 1;
    }
    t
};

static ULAW_ENCODE: [u8; 16384] = {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        // Index i holds the 14 MSBs of the sample (as u16 >> 2).
        t[i] = ulaw_compress_reference(((i as u16) << 2) as i16);
        i += 1;
    }
    t
};

static ALAW_ENCODE: [u8; 8192] = {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        t[i] = alaw_compress_reference(((i as u16) << 3) as i16);
        i += 1;
    }
    t
};

static ULAW_TO_ALAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_compress_reference(ulaw_expand_reference(i as u8));
        i += 1;
    }
    t
};

static ALAW_TO_ULAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_compress_reference(alaw_expand_reference(i as u8));
        i += 1;
    }
    t
};
