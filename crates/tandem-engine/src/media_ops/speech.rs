//! The caller's audio for a speech `<Gather>`: a tap that decodes what the
//! leg receives to 8 kHz PCM and keeps the last [`KEEP`] of it, for the
//! recogniser to read (the whole utterance, or the part heard so far for
//! a partial result). The call takes snapshots; the tap never blocks the
//! relay for longer than a copy of one packet.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_rtp::relay::{Tap, TapPacket};

use super::decode::Pcm8k;

/// Audio kept: the longest utterance (60 s) and a few seconds before it.
pub const KEEP: Duration = Duration::from_secs(65);
const KEEP_SAMPLES: usize = KEEP.as_secs() as usize * 8000;

/// The tap; see the module docs.
#[derive(Default)]
pub struct SpeechTap {
    state: Mutex<(Pcm8k, VecDeque<i16>)>,
}

impl std::fmt::Debug for SpeechTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpeechTap")
    }
}

impl SpeechTap {
    /// A tap with nothing heard yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The audio heard so far (8 kHz, 16-bit), oldest first.
    pub fn snapshot(&self) -> Vec<i16> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1.iter().copied().collect()
    }
}

impl Tap for SpeechTap {
    fn packet(&self, p: &TapPacket<'_>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (pcm, kept) = &mut *st;
        let Some(samples) = pcm.decode(p) else { return };
        let over = (kept.len() + samples.len()).saturating_sub(KEEP_SAMPLES);
        kept.drain(..over.min(kept.len()));
        kept.extend(samples.iter().copied());
    }
}
