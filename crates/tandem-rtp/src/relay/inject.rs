//! Injection of generated audio (ringback, DTMF, prompts) into a leg, paced
//! every `ptime` by `tokio::time::interval` (so `start_paused` tests run it
//! on virtual time). While an injection is active, audio relayed toward the
//! leg is muted; its packets go out on the leg's one SSRC with continuous
//! sequence numbers and timestamps (module `tx`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::tx::{OutFormat, SourceKey};
use super::{LegShared, MediaEvent};
use crate::rtp::{RTP_HEADER_LEN, write_header};

/// Origin bit that keeps injection sources apart from relayed legs.
const INJECTION_ORIGIN: u64 = 1 << 63;

/// One packet produced by a [`MediaSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePacket {
    /// Payload bytes written.
    pub len: usize,
    /// The payload is an RFC 4733 event (sent with the leg's
    /// telephone-event payload type; skipped if none was negotiated).
    pub event: bool,
    /// Marker bit (start of talkspurt, or first packet of an event).
    pub marker: bool,
    /// RTP timestamp on the source's own timeline, in the leg's clock
    /// units; Tandem maps it onto the leg's stream.
    pub timestamp: u32,
}

/// What a source produces on one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceOutput {
    /// Send this packet.
    Packet(SourcePacket),
    /// Send nothing this tick (a pause; relayed audio stays muted).
    Skip,
    /// The source is finished: the injection ends.
    Done,
}

/// Generated audio. Called once per `ptime` tick on a tokio task: compute
/// only, no blocking.
pub trait MediaSource: Send + 'static {
    /// Write the next packet's payload for `format` into `payload`
    /// (at least 1,400 bytes).
    fn next_packet(&mut self, format: &OutFormat, payload: &mut [u8]) -> SourceOutput;
}

/// A running injection. Dropping it stops the injection; [`Injection::detach`]
/// lets it run to its end.
pub struct Injection {
    id: u64,
    leg: Weak<LegShared>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Injection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injection").field("id", &self.id).finish()
    }
}

impl Injection {
    /// Id reported in [`MediaEvent::InjectionDone`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Has the source finished (or the injection been replaced)?
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Wait until the injection ends.
    pub async fn finished(&mut self) {
        if let Some(t) = self.task.as_mut() {
            let _ = t.await;
            self.task = None;
        }
    }

    /// Stop now; relay toward the leg resumes.
    pub fn stop(self) {}

    /// Let the injection run to its end without holding the handle.
    pub fn detach(mut self) {
        self.task = None;
    }
}

impl Drop for Injection {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
            // Unmute now: an aborted task's future is only dropped when the
            // runtime next gets to it, and until then the relayed audio
            // would stay muted (the peer's first packets after an answer
            // were lost under load). The task's guard still reports the end.
            if let Some(shared) = self.leg.upgrade() {
                let mut tx = shared.tx();
                if tx.injecting == Some(self.id) {
                    tx.injecting = None;
                }
            }
        }
    }
}

pub(super) fn start(shared: &Arc<LegShared>, source: Box<dyn MediaSource>) -> Injection {
    let id = shared
        .next_injection
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ptime = {
        let mut tx = shared.tx();
        tx.injecting = Some(id);
        tx.format.ptime
    };
    // The guard is made here and moved into the task's future: a future
    // dropped before its first poll (an injection stopped at once, on a
    // busy runtime) drops its arguments too, so the leg is unmuted and the
    // end reported however early the stop comes. Made inside `run`, it
    // would not exist yet, and the leg would stay muted for good.
    let guard = Guard {
        leg: Arc::downgrade(shared),
        id,
    };
    let task = shared.runtime.spawn(run(guard, source, ptime));
    Injection {
        id,
        leg: Arc::downgrade(shared),
        task: Some(task),
    }
}

/// Clears the mute and reports the end, however the task ends.
struct Guard {
    leg: Weak<LegShared>,
    id: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(shared) = self.leg.upgrade() else {
            return;
        };
        {
            let mut tx = shared.tx();
            if tx.injecting == Some(self.id) {
                tx.injecting = None;
            }
        }
        shared.emit(MediaEvent::InjectionDone {
            leg: shared.id,
            id: self.id,
        });
    }
}

async fn run(guard: Guard, mut source: Box<dyn MediaSource>, ptime: u32) {
    let (leg, id) = (guard.leg.clone(), guard.id);
    let mut iv = tokio::time::interval(Duration::from_millis(u64::from(ptime.max(1))));
    // Late ticks are caught up, so the stream keeps pace with the wall clock.
    iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut buf = [0u8; 1500];
    let key = SourceKey {
        origin: INJECTION_ORIGIN | id,
        ssrc: 0,
    };
    let mut seq: u16 = 0;
    loop {
        iv.tick().await;
        let Some(shared) = leg.upgrade() else { return };
        let format = {
            let tx = shared.tx();
            if tx.injecting != Some(id) {
                return;
            }
            tx.format
        };
        let p = match source.next_packet(&format, &mut buf[RTP_HEADER_LEN..]) {
            SourceOutput::Done => return,
            SourceOutput::Skip => continue,
            SourceOutput::Packet(p) => p,
        };
        let pt = match (p.event, format.telephone_event_pt) {
            (false, _) => format.pt,
            (true, Some(pt)) => pt,
            (true, None) => continue,
        };
        let now = Instant::now();
        let mut tx = shared.tx();
        if tx.injecting != Some(id) {
            return;
        }
        let dst = match tx.remote {
            Some(d) if tx.send_enabled => d,
            _ => continue,
        };
        let (s, ts, switched) = tx.map(key, seq, p.timestamp, now);
        let ssrc = tx.ssrc;
        drop(tx);
        seq = seq.wrapping_add(1);
        let len = RTP_HEADER_LEN + p.len.min(buf.len() - RTP_HEADER_LEN);
        write_header(
            &mut buf,
            p.marker || (switched && !p.event),
            pt,
            s,
            ts,
            ssrc,
        );
        shared.send_rtp(&buf[..len], dst);
    }
}
