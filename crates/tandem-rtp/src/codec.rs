//! Payload conversions the relay does in place, per packet, without
//! allocation: G.711 μ-law <-> A-law (through tandem-media's ITU-T tables).

use tandem_media::g711;

/// Convert a G.711 payload in place: μ-law to A-law when `to_alaw`, else
/// A-law to μ-law.
#[inline]
pub fn transcode_g711(payload: &mut [u8], to_alaw: bool) {
    if to_alaw {
        for b in payload {
            *b = g711::linear_to_alaw(g711::ulaw_to_linear(*b));
        }
    } else {
        for b in payload {
            *b = g711::linear_to_ulaw(g711::alaw_to_linear(*b));
        }
    }
}

/// Encode 16-bit PCM into a G.711 payload (`out.len()` must be at least
/// `pcm.len()`); returns the bytes written.
#[inline]
pub fn encode_g711(pcm: &[i16], out: &mut [u8], alaw: bool) -> usize {
    let n = pcm.len().min(out.len());
    for (o, &s) in out[..n].iter_mut().zip(pcm) {
        *o = if alaw {
            g711::linear_to_alaw(s)
        } else {
            g711::linear_to_ulaw(s)
        };
    }
    n
}

/// Decode a G.711 payload to 16-bit PCM (`out.len()` must be at least
/// `payload.len()`); returns the samples written.
#[inline]
pub fn decode_g711(payload: &[u8], out: &mut [i16], alaw: bool) -> usize {
    let n = payload.len().min(out.len());
    for (o, &b) in out[..n].iter_mut().zip(payload) {
        *o = if alaw {
            g711::alaw_to_linear(b)
        } else {
            g711::ulaw_to_linear(b)
        };
    }
    n
}
