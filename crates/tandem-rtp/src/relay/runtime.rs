//! Dedicated media threads: one single-thread tokio runtime per thread, legs
//! placed by a key (the call) so both legs of a call share a thread and the
//! relay between them never crosses threads. On the relay benchmark one
//! media thread spends about a third less CPU per packet than legs on a
//! 2-worker work-stealing runtime (docs/benchmarks-rtp.md).

use std::io;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::{Leg, LegConfig, MediaEvent};
use crate::pool::PortPair;

struct Shard {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// A set of media threads. Dropping it stops them (and every leg on them).
pub struct MediaRuntime {
    shards: Vec<Shard>,
}

impl std::fmt::Debug for MediaRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaRuntime")
            .field("threads", &self.shards.len())
            .finish()
    }
}

impl MediaRuntime {
    /// Start `threads` media threads (at least one), named `tandem-media-N`.
    pub fn new(threads: usize) -> io::Result<Self> {
        let mut shards = Vec::with_capacity(threads.max(1));
        for n in 0..threads.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("tandem-media-{n}"))
                .spawn(move || {
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            shards.push(Shard {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(MediaRuntime { shards })
    }

    /// Number of media threads.
    pub fn threads(&self) -> usize {
        self.shards.len()
    }

    /// The runtime that legs with this key run on.
    pub fn handle(&self, key: u64) -> &Handle {
        &self.shards[(key % self.shards.len() as u64) as usize].handle
    }

    /// [`Leg::start`] on the thread chosen by `key`: give both legs of a
    /// call the same key (e.g. a hash of its CallSid).
    pub fn start_leg(
        &self,
        key: u64,
        pair: PortPair,
        cfg: LegConfig,
        events: Option<mpsc::Sender<MediaEvent>>,
    ) -> io::Result<Leg> {
        let _enter = self.handle(key).enter();
        Leg::start(pair, cfg, events)
    }
}

impl Drop for MediaRuntime {
    fn drop(&mut self) {
        for s in &mut self.shards {
            if let Some(stop) = s.stop.take() {
                let _ = stop.send(());
            }
        }
        for s in &mut self.shards {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
    }
}
