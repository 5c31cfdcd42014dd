//! Outgoing stream state of one leg: where to send, with which payload
//! types, and the SSRC/sequence/timestamp rewrite that makes every source
//! (relayed peer, generated audio) one continuous RTP stream (RFC 3550
//! §5.1, §8.2: one SSRC per sender, sequence and timestamp continuous).

use std::net::SocketAddr;

use tokio::time::Instant;

use crate::sdp::{Codec, NegotiatedMedia};

/// Index of a codec in the per-leg payload-type tables.
pub(crate) const KINDS: usize = 4;
pub(crate) const K_PCMU: u8 = 0;
pub(crate) const K_PCMA: u8 = 1;
pub(crate) const K_OPUS: u8 = 2;
pub(crate) const K_TE: u8 = 3;
/// Payload type not negotiated on the leg.
pub(crate) const UNKNOWN: u8 = 0xff;

pub(crate) fn kind_of(c: Codec) -> u8 {
    match c {
        Codec::Pcmu => K_PCMU,
        Codec::Pcma => K_PCMA,
        Codec::Opus => K_OPUS,
        Codec::TelephoneEvent => K_TE,
    }
}

pub(crate) fn codec_of(kind: u8) -> Option<Codec> {
    Some(match kind {
        K_PCMU => Codec::Pcmu,
        K_PCMA => Codec::Pcma,
        K_OPUS => Codec::Opus,
        K_TE => Codec::TelephoneEvent,
        _ => return None,
    })
}

/// Payload type -> codec kind for what a leg receives.
pub(crate) fn rx_kinds(media: &NegotiatedMedia) -> [u8; 128] {
    let mut map = [UNKNOWN; 128];
    for f in media
        .formats
        .iter()
        .chain([&media.codec])
        .chain(&media.telephone_event)
    {
        map[f.pt as usize & 0x7f] = kind_of(f.codec);
    }
    map
}

/// Who produced a packet: a peer leg's remote SSRC, or an injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceKey {
    pub origin: u64,
    pub ssrc: u32,
}

/// The format generated audio must use on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutFormat {
    /// Audio codec of the leg.
    pub codec: Codec,
    /// Its payload type on the leg.
    pub pt: u8,
    /// Its RTP clock rate.
    pub clock_rate: u32,
    /// Packetisation time in ms.
    pub ptime: u32,
    /// telephone-event payload type on the leg, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// telephone-event clock rate (8000, or 48000 next to Opus).
    pub telephone_event_clock: u32,
}

impl OutFormat {
    /// Samples per packet.
    pub fn frame_samples(&self) -> u32 {
        self.clock_rate / 1000 * self.ptime
    }
}

impl Default for OutFormat {
    /// PCMU, 20 ms, no telephone-event: what a leg without SDP uses.
    fn default() -> Self {
        OutFormat {
            codec: Codec::Pcmu,
            pt: 0,
            clock_rate: 8000,
            ptime: 20,
            telephone_event_pt: None,
            telephone_event_clock: 8000,
        }
    }
}

pub(crate) struct TxState {
    pub remote: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    /// Remote (SDP) allows receiving.
    pub send_enabled: bool,
    /// No SDP: payload types go through unchanged.
    pub passthrough: bool,
    /// Codec kind -> payload type on this leg (UNKNOWN = not negotiated).
    pub pt_out: [u8; KINDS],
    pub format: OutFormat,
    pub ssrc: u32,
    /// Injection currently owning the stream (relay toward this leg muted).
    pub injecting: Option<u64>,
    source: Option<SourceKey>,
    seq_delta: u16,
    ts_delta: u32,
    last_seq: u16,
    last_ts: u32,
    last_at: Option<Instant>,
}

impl TxState {
    pub fn new(ssrc: u32, seq: u16, ts: u32) -> Self {
        TxState {
            remote: None,
            remote_rtcp: None,
            send_enabled: true,
            passthrough: true,
            pt_out: [UNKNOWN; KINDS],
            format: OutFormat::default(),
            ssrc,
            injecting: None,
            source: None,
            seq_delta: 0,
            ts_delta: 0,
            // The first packet continues from here.
            last_seq: seq.wrapping_sub(1),
            last_ts: ts,
            last_at: None,
        }
    }

    pub fn apply(&mut self, media: &NegotiatedMedia) {
        self.remote = media.remote_rtp;
        self.remote_rtcp = media.remote_rtcp;
        self.send_enabled = media.send_enabled();
        self.passthrough = false;
        self.pt_out = [UNKNOWN; KINDS];
        self.pt_out[kind_of(media.codec.codec) as usize] = media.codec.pt;
        if let Some(te) = &media.telephone_event {
            self.pt_out[K_TE as usize] = te.pt;
        }
        self.format = OutFormat {
            codec: media.codec.codec,
            pt: media.codec.pt,
            clock_rate: media.codec.clock_rate,
            ptime: media.ptime,
            telephone_event_pt: media.telephone_event.as_ref().map(|t| t.pt),
            telephone_event_clock: media
                .telephone_event
                .as_ref()
                .map_or(8000, |t| t.clock_rate),
        };
    }

    /// Map a source's sequence number and timestamp onto this leg's stream.
    /// Returns (seq, ts, switched): on a change of source the stream goes on
    /// one sequence number and the elapsed wall time (at least one frame)
    /// later, and the caller sets the marker bit.
    #[inline]
    pub fn map(&mut self, key: SourceKey, seq: u16, ts: u32, now: Instant) -> (u16, u32, bool) {
        let switched = self.source != Some(key);
        if switched {
            let frame = self.format.frame_samples().max(1);
            let gap = match self.last_at {
                Some(t) => {
                    let ms = now.saturating_duration_since(t).as_millis() as u64;
                    let samples = ms * u64::from(self.format.clock_rate) / 1000;
                    (samples as u32).max(frame)
                }
                None => 0,
            };
            let next_ts = self.last_ts.wrapping_add(gap);
            self.seq_delta = self.last_seq.wrapping_add(1).wrapping_sub(seq);
            self.ts_delta = next_ts.wrapping_sub(ts);
            self.source = Some(key);
        }
        let out_seq = seq.wrapping_add(self.seq_delta);
        let out_ts = ts.wrapping_add(self.ts_delta);
        // Track the newest packet only: a late (reordered) one keeps its place.
        if switched || (out_seq.wrapping_sub(self.last_seq) as i16) > 0 {
            self.last_seq = out_seq;
            self.last_ts = out_ts;
        }
        self.last_at = Some(now);
        (out_seq, out_ts, switched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_source_keeps_gaps_and_switches_continue_the_stream() {
        let t0 = Instant::now();
        let mut tx = TxState::new(7, 1000, 50_000);
        let a = SourceKey {
            origin: 1,
            ssrc: 11,
        };
        let b = SourceKey {
            origin: 2,
            ssrc: 22,
        };
        assert_eq!(tx.map(a, 5, 800, t0), (1000, 50_000, true));
        assert_eq!(tx.map(a, 6, 960, t0), (1001, 50_160, false));
        // Loss (seq 7 missing) stays visible.
        assert_eq!(tx.map(a, 8, 1280, t0), (1003, 50_480, false));
        // Reordered late packet maps consistently and does not move `last`.
        assert_eq!(tx.map(a, 7, 1120, t0), (1002, 50_320, false));
        // Switch 100 ms later: next seq, timestamp + 800 samples.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(tx.map(b, 40_000, 9, t1), (1004, 51_280, true));
        assert_eq!(tx.map(b, 40_001, 169, t1), (1005, 51_440, false));
        // Switch back with no wall time elapsed: at least one frame on.
        assert_eq!(tx.map(a, 9, 1440, t1), (1006, 51_600, true));
    }

    #[test]
    fn ssrc_change_of_the_same_peer_is_a_switch() {
        let t0 = Instant::now();
        let mut tx = TxState::new(7, 0, 0);
        tx.map(SourceKey { origin: 1, ssrc: 1 }, 100, 100, t0);
        let (_, _, sw) = tx.map(SourceKey { origin: 1, ssrc: 2 }, 0, 0, t0);
        assert!(sw);
    }

    #[test]
    fn wraparound_is_seamless() {
        let t0 = Instant::now();
        let mut tx = TxState::new(7, 65535, u32::MAX - 100);
        let a = SourceKey { origin: 1, ssrc: 1 };
        assert_eq!(tx.map(a, 0, 0, t0), (65535, u32::MAX - 100, true));
        assert_eq!(tx.map(a, 1, 160, t0), (0, 59, false));
    }
}
