//! Answering-machine detection on a leg (`<Number machineDetection>`):
//! a tap that decodes what the callee sends and feeds tandem-media's
//! [`AmdDetector`]; its one decision goes out on a channel.

use std::sync::{Arc, Mutex};

use tandem_media::{AmdConfig, AmdDetector, AmdResult};
use tandem_rtp::LegId;
use tandem_rtp::relay::{Tap, TapPacket};
use tokio::sync::mpsc;

use super::decode::Pcm8k;

/// A decision, for the call that owns the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdReport {
    /// The leg listened to.
    pub leg: LegId,
    /// Who answered and after how much audio.
    pub result: AmdResult,
}

/// The tap; see the module docs.
pub struct AmdTap {
    state: Mutex<(Pcm8k, AmdDetector)>,
    tx: mpsc::Sender<AmdReport>,
}

/// A detector with `cfg` and the receiver of its decision.
pub fn amd_tap(cfg: AmdConfig) -> (Arc<AmdTap>, mpsc::Receiver<AmdReport>) {
    let (tx, rx) = mpsc::channel(1);
    let tap = AmdTap {
        state: Mutex::new((Pcm8k::default(), AmdDetector::new(cfg))),
        tx,
    };
    (Arc::new(tap), rx)
}

impl Tap for AmdTap {
    fn packet(&self, p: &TapPacket<'_>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (pcm, det) = &mut *st;
        if det.is_decided() {
            return;
        }
        let Some(samples) = pcm.decode(p) else { return };
        if let Some(result) = det.process(samples) {
            tracing::info!(leg = ?p.leg, answered_by = %result.answered_by, ms = result.after_ms, "answering-machine detection decided");
            let _ = self.tx.try_send(AmdReport { leg: p.leg, result });
        }
    }
}
