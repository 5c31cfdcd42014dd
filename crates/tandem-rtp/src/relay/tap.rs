//! Taps: every RTP packet a leg receives, handed synchronously to a
//! callback on the receive task (no allocation, no queue), for the recorder
//! and the DTMF detector. [`tap_channel`] adapts a tap to a bounded channel
//! for consumers that would rather run in their own task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::LegId;
use crate::sdp::Codec;

/// One received RTP packet, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct TapPacket<'a> {
    /// The leg that received it.
    pub leg: LegId,
    /// Arrival time (one reading per batch of packets drained together).
    pub at: Instant,
    /// Payload type as received.
    pub pt: u8,
    /// The codec that payload type stands for on this leg, if negotiated.
    pub codec: Option<Codec>,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number as received.
    pub seq: u16,
    /// RTP timestamp as received.
    pub ts: u32,
    /// SSRC as received.
    pub ssrc: u32,
    /// The payload (after CSRCs and extension, without padding).
    pub payload: &'a [u8],
}

/// A consumer of received packets. Runs on the receive task: keep it short,
/// never block (no file I/O, no waiting on a lock held across I/O).
pub trait Tap: Send + Sync + 'static {
    /// Called once per received RTP packet, before it is relayed.
    fn packet(&self, p: &TapPacket<'_>);
}

impl<F> Tap for F
where
    F: Fn(&TapPacket<'_>) + Send + Sync + 'static,
{
    fn packet(&self, p: &TapPacket<'_>) {
        self(p)
    }
}

/// Largest payload a [`TapFrame`] carries (60 ms of G.711, most Opus frames).
pub const TAP_FRAME_MAX: usize = 512;

/// An owned copy of a [`TapPacket`], for [`tap_channel`].
#[derive(Clone)]
pub struct TapFrame {
    /// The leg that received it.
    pub leg: LegId,
    /// Arrival time.
    pub at: Instant,
    /// Payload type.
    pub pt: u8,
    /// Codec, if negotiated.
    pub codec: Option<Codec>,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub ts: u32,
    /// SSRC.
    pub ssrc: u32,
    len: u16,
    data: [u8; TAP_FRAME_MAX],
}

impl TapFrame {
    /// The payload (cut at [`TAP_FRAME_MAX`] bytes).
    pub fn payload(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }
}

impl std::fmt::Debug for TapFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapFrame")
            .field("leg", &self.leg)
            .field("pt", &self.pt)
            .field("seq", &self.seq)
            .field("ts", &self.ts)
            .field("len", &self.len)
            .finish()
    }
}

/// A tap that copies packets into a bounded channel. When the consumer falls
/// behind, packets are dropped (counted by the returned counter), never queued
/// without bound and never waited for.
pub fn tap_channel(capacity: usize) -> (Arc<dyn Tap>, mpsc::Receiver<TapFrame>, Arc<AtomicU64>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let d = Arc::clone(&dropped);
    let tap = move |p: &TapPacket<'_>| {
        let len = p.payload.len().min(TAP_FRAME_MAX);
        let mut data = [0u8; TAP_FRAME_MAX];
        data[..len].copy_from_slice(&p.payload[..len]);
        let frame = TapFrame {
            leg: p.leg,
            at: p.at,
            pt: p.pt,
            codec: p.codec,
            marker: p.marker,
            seq: p.seq,
            ts: p.ts,
            ssrc: p.ssrc,
            len: len as u16,
            data,
        };
        if tx.try_send(frame).is_err() {
            d.fetch_add(1, Ordering::Relaxed);
        }
    };
    (Arc::new(tap), rx, dropped)
}
