//! Opus <-> G.711 transcoding on the relay path, for one receiving leg's
//! current source toward its peer.
//!
//! The state lives in the receive task (no lock): a [`tandem_media::Transcoder`]
//! (decode -> resample 8 kHz <-> 48 kHz -> encode, 20 ms out per 20 ms in)
//! created on the first packet that needs it, plus the stream's own
//! sequence/timestamp counters in the out leg's clock. The packets it
//! produces go through the out leg's usual `TxState::map`, so source
//! switches stay one continuous stream.
//!
//! Only this path allocates (the transcoder's payload vectors); the G.711
//! path is untouched.

use std::sync::Weak;

pub(super) use tandem_media::codec::Codec as MCodec;
use tandem_media::codec::Transcoder;

use super::LegShared;
use super::tx::{K_OPUS, K_PCMA, K_PCMU};
use crate::sdp::Codec;

/// Largest transcoded payload plus a 12-byte header (libopus packets are at
/// most 1275 bytes).
const OUT_BUF: usize = 1500;
/// Lost source packets (per gap) replaced by decoder concealment; longer
/// gaps are left as gaps.
const MAX_CONCEAL: u16 = 3;

/// The tandem-media codec of a relay codec kind, for audio kinds.
pub(super) fn media_codec(kind: u8) -> Option<MCodec> {
    match kind {
        K_PCMU => Some(MCodec::Pcmu),
        K_PCMA => Some(MCodec::Pcma),
        K_OPUS => Some(MCodec::Opus),
        _ => None,
    }
}

/// The tandem-media codec of the out leg's audio codec.
pub(super) fn out_codec(c: Codec) -> Option<MCodec> {
    match c {
        Codec::Pcmu => Some(MCodec::Pcmu),
        Codec::Pcma => Some(MCodec::Pcma),
        Codec::Opus => Some(MCodec::Opus),
        Codec::TelephoneEvent => None,
    }
}

/// Does a packet of codec `from` toward a leg speaking `to` need the
/// Opus transcoder? (PCMU <-> PCMA is done in place elsewhere.)
pub(super) fn needs_transcoder(from: MCodec, to: MCodec) -> bool {
    from != to && (from == MCodec::Opus || to == MCodec::Opus)
}

/// Transcoding state of one stream: (out leg, source SSRC, codecs).
pub(super) struct Stream {
    /// The source as the out leg's `TxState::map` knows it: distinct from
    /// the untranscoded source and from earlier streams, since this stream
    /// numbers its packets itself.
    pub origin: u64,
    peer: Weak<LegShared>,
    ssrc: u32,
    from: MCodec,
    to: MCodec,
    /// None: creating the transcoder failed (no Opus support); packets of
    /// this stream are dropped without retrying.
    tc: Option<Transcoder>,
    /// Payloads produced by the last call.
    pub out: Vec<Vec<u8>>,
    /// Header + payload of the packet being sent.
    pub buf: Box<[u8; OUT_BUF]>,
    last_in_seq: Option<u16>,
    /// Timestamp of the last audio packet received (source clock) and the
    /// output timestamp its audio starts at: where telephone-event packets
    /// of the same source are placed.
    anchor_in_ts: u32,
    anchor_out_ts: u32,
    /// Sequence number and timestamp (out clock) of the next output packet,
    /// on the stream's own timeline (rebased by `TxState::map`).
    pub next_seq: u16,
    pub next_ts: u32,
    /// Output samples per 20 ms packet.
    pub frame: u32,
}

/// What happened to one received packet.
pub(super) enum Outcome {
    /// `out` holds zero or more payloads to send.
    Ready,
    /// Duplicate or late packet: a stateful decoder cannot take it back.
    Stale,
    /// The payload did not decode: `out` holds what concealment produced
    /// in its place (so the stream keeps its pace).
    Concealed,
    /// No transcoder (Opus support missing): nothing to send.
    Error,
}

impl Stream {
    fn new(origin: u64, peer: &Weak<LegShared>, ssrc: u32, from: MCodec, to: MCodec) -> Stream {
        let tc = match Transcoder::new(from, to) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(%from, %to, error = %e, "cannot transcode; packets dropped");
                None
            }
        };
        Stream {
            origin,
            peer: peer.clone(),
            ssrc,
            from,
            to,
            tc,
            out: Vec::with_capacity(4),
            buf: Box::new([0; OUT_BUF]),
            last_in_seq: None,
            anchor_in_ts: 0,
            anchor_out_ts: 0,
            next_seq: 0,
            next_ts: 0,
            frame: to.samples_per_frame(20) as u32,
        }
    }

    fn matches(&self, peer: &Weak<LegShared>, ssrc: u32, from: MCodec, to: MCodec) -> bool {
        self.ssrc == ssrc && self.from == from && self.to == to && Weak::ptr_eq(&self.peer, peer)
    }

    /// Is this the live stream of `ssrc` toward `peer`, which now speaks
    /// `to`?
    pub fn carries(&self, peer: &Weak<LegShared>, ssrc: u32, to: Codec) -> bool {
        self.ssrc == ssrc
            && self.last_in_seq.is_some()
            && out_codec(to) == Some(self.to)
            && Weak::ptr_eq(&self.peer, peer)
    }

    /// Sequence number and timestamp (on this stream's timeline) for a
    /// telephone-event packet of the source with timestamp `ts` in
    /// `in_clock`, for a peer whose telephone-event clock is `out_clock`.
    /// The event's sequence number `in_seq` counts as received, so it is
    /// not taken for lost audio.
    pub fn event(&mut self, in_seq: u16, ts: u32, in_clock: u32, out_clock: u32) -> (u16, u32) {
        if self
            .last_in_seq
            .is_some_and(|l| in_seq.wrapping_sub(l) as i16 > 0)
        {
            self.last_in_seq = Some(in_seq);
        }
        let d = i64::from(ts.wrapping_sub(self.anchor_in_ts) as i32);
        let d_out = d * i64::from(out_clock) / i64::from(in_clock.max(1));
        let out_ts = self.anchor_out_ts.wrapping_add(d_out as i32 as u32);
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        (seq, out_ts)
    }

    /// The stream for this (out leg, source, codecs), created or replaced
    /// as needed; a new stream takes `origin` and bumps it.
    pub fn get<'a>(
        slot: &'a mut Option<Box<Stream>>,
        origin: &mut u64,
        peer: &Weak<LegShared>,
        ssrc: u32,
        from: MCodec,
        to: MCodec,
    ) -> &'a mut Stream {
        if !slot
            .as_ref()
            .is_some_and(|s| s.matches(peer, ssrc, from, to))
        {
            *slot = Some(Box::new(Stream::new(*origin, peer, ssrc, from, to)));
            *origin = origin.wrapping_add(1 << 32);
        }
        slot.as_mut()
            .unwrap_or_else(|| unreachable!("slot filled above"))
    }

    /// Transcode one received payload with sequence number `seq` and
    /// timestamp `ts` into `self.out`; short gaps before it are concealed.
    pub fn push(&mut self, seq: u16, ts: u32, payload: &[u8]) -> Outcome {
        self.out.clear();
        let Some(tc) = self.tc.as_mut() else {
            return Outcome::Error;
        };
        if let Some(last) = self.last_in_seq {
            let gap = seq.wrapping_sub(last) as i16;
            if gap <= 0 {
                return Outcome::Stale;
            }
            let lost = (gap - 1) as u16;
            if lost > 0 && lost <= MAX_CONCEAL {
                let samples = self.from.samples_per_frame(20);
                for _ in 0..lost {
                    // Concealment failing only loses the filler.
                    let _ = tc.conceal(samples, &mut self.out);
                }
            } else if lost > 0 {
                // Leave the loss visible downstream.
                self.next_seq = self.next_seq.wrapping_add(lost);
                self.next_ts = self
                    .next_ts
                    .wrapping_add(u32::from(lost).wrapping_mul(self.frame));
            }
        }
        self.last_in_seq = Some(seq);
        self.anchor_in_ts = ts;
        self.anchor_out_ts = self
            .next_ts
            .wrapping_add((self.out.len() as u32).wrapping_mul(self.frame));
        match tc.transcode(payload, &mut self.out) {
            Ok(()) => Outcome::Ready,
            Err(_) => {
                let _ = tc.conceal(self.from.samples_per_frame(20), &mut self.out);
                Outcome::Concealed
            }
        }
    }
}

/// Rescale an RFC 4733 event's duration (bytes 2..4) from `in_clock` to
/// `out_clock` units; short payloads are left alone.
pub(super) fn scale_event_duration(payload: &mut [u8], in_clock: u32, out_clock: u32) {
    if in_clock == out_clock || in_clock == 0 || payload.len() < 4 {
        return;
    }
    let d = u64::from(u16::from_be_bytes([payload[2], payload[3]]));
    let d = (d * u64::from(out_clock) / u64::from(in_clock)).min(0xffff) as u16;
    payload[2..4].copy_from_slice(&d.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_opus_pairs_need_the_transcoder() {
        assert!(needs_transcoder(MCodec::Opus, MCodec::Pcmu));
        assert!(needs_transcoder(MCodec::Pcma, MCodec::Opus));
        assert!(!needs_transcoder(MCodec::Pcmu, MCodec::Pcma));
        assert!(!needs_transcoder(MCodec::Opus, MCodec::Opus));
    }

    #[test]
    fn bad_opus_is_concealed_and_stale_packets_refused_without_panic() {
        let peer = Weak::new();
        let mut slot = None;
        let mut origin = 0;
        let s = Stream::get(&mut slot, &mut origin, &peer, 1, MCodec::Opus, MCodec::Pcmu);
        for junk in [
            &[][..],
            &[0xff; 3][..],
            &[0x03, 0xff, 0xff][..],
            &[7; 1400][..],
        ] {
            let seq = s.last_in_seq.map_or(0, |x| x.wrapping_add(1));
            assert!(matches!(s.push(seq, 0, junk), Outcome::Concealed));
        }
        let seq = s.last_in_seq.unwrap_or(0);
        assert!(matches!(s.push(seq, 0, &[0; 10]), Outcome::Stale));
        // G.711 in, Opus out: one 20 ms payload per 20 ms packet.
        let s = Stream::get(&mut slot, &mut origin, &peer, 2, MCodec::Pcmu, MCodec::Opus);
        let mut n = 0;
        for i in 0..10u16 {
            assert!(matches!(
                s.push(i, u32::from(i) * 160, &[0xff; 160]),
                Outcome::Ready
            ));
            n += s.out.len();
        }
        assert!((9..=10).contains(&n), "{n} payloads");
    }

    #[test]
    fn events_land_on_the_stream_timeline_in_the_peer_clock() {
        let peer = Weak::new();
        let mut slot = None;
        let mut origin = 0;
        let s = Stream::get(&mut slot, &mut origin, &peer, 3, MCodec::Opus, MCodec::Pcmu);
        s.anchor_in_ts = 48_000;
        s.anchor_out_ts = 1000;
        s.next_seq = 9;
        assert_eq!(s.event(1, 48_960, 48_000, 8000), (9, 1160));
        assert_eq!(s.event(2, 47_040, 48_000, 8000), (10, 840));
        let mut p = [5, 0x8a, 0x03, 0xc0];
        scale_event_duration(&mut p, 48_000, 8000);
        assert_eq!(p, [5, 0x8a, 0, 160]);
        let mut short = [1, 2];
        scale_event_duration(&mut short, 48_000, 8000);
        assert_eq!(short, [1, 2]);
    }

    /// CPU per transcoded 20 ms frame (run with `--release -- --ignored`).
    #[test]
    #[ignore = "timing, not a check"]
    fn transcode_cost_per_frame() {
        let peer = Weak::new();
        let (mut slot, mut origin) = (None, 0);
        let tone: Vec<i16> = (0..960)
            .map(|i| ((i as f32 * 0.13).sin() * 8000.0) as i16)
            .collect();
        let mut enc = tandem_media::Encoder::new(MCodec::Opus).unwrap();
        let mut opus = Vec::new();
        enc.encode(&tone, &mut opus).unwrap();
        let ulaw = [0x5a_u8; 160];
        for (from, to, payload) in [
            (MCodec::Pcmu, MCodec::Opus, &ulaw[..]),
            (MCodec::Opus, MCodec::Pcmu, &opus[..]),
        ] {
            let s = Stream::get(&mut slot, &mut origin, &peer, 9, from, to);
            let n = 2000u16;
            let t = std::time::Instant::now();
            for i in 0..n {
                let _ = s.push(i, u32::from(i) * 160, payload);
            }
            let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
            eprintln!("{from} -> {to}: {us:.1} us per frame");
        }
    }
}
