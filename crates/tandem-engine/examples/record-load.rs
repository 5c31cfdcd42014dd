//! N simultaneous dual-channel recordings in real time (issue 3 budget:
//! 1,000 with no gaps). Each recording gets a caller and a callee tap fed one
//! 20 ms PCMU packet per leg every 20 ms (a tone per channel), as a relay leg
//! would; after the run every WAV must last the run within 40 ms and hold no
//! silent gap longer than one frame.
//!
//! `cargo run --release -p tandem-engine --example record-load -- [N] [SECONDS]`

#[path = "support/proc_stat.rs"]
mod proc_stat;

use std::sync::Arc;
use std::time::Duration;

use tandem_engine::recording::{RecordingOptions, RecordingStore};
use tandem_rtp::LegId;
use tandem_rtp::relay::{Tap, TapPacket};
use tandem_rtp::sdp::Codec;

#[allow(clippy::print_stdout)] // an example reports on stdout
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let secs: u64 = args.next().map_or(Ok(10), |a| a.parse())?;
    let dir = std::env::temp_dir().join(format!("tandem-record-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = RecordingStore::new(
        &dir,
        "http://127.0.0.1:1",
        "AC0123456789abcdef0123456789abcdef",
    );
    let opts = RecordingOptions::from_twiml(
        tandem_twiml::RecordMode::RecordFromAnswerDual,
        tandem_twiml::RecordingTrack::Both,
        tandem_twiml::Trim::DoNotTrim,
    )
    .ok_or("dual recording options")?;
    let t0 = tokio::time::Instant::now();
    let mut sessions = Vec::with_capacity(n);
    let mut taps: Vec<(Arc<dyn Tap>, Arc<dyn Tap>)> = Vec::with_capacity(n);
    for i in 0..n {
        let (s, t) = store.start(&format!("CA{i:032x}"), opts, t0)?;
        sessions.push(s);
        taps.push((t.parent, t.child));
    }
    // Two tones in μ-law, 160 samples each: 1000 Hz for the caller, 1700 Hz for the callee.
    let tone = |f: f32| -> Vec<u8> {
        let pcm: Vec<i16> = (0..160)
            .map(|k| (8000.0 * (2.0 * std::f32::consts::PI * f * k as f32 / 8000.0).sin()) as i16)
            .collect();
        let mut out = Vec::with_capacity(160);
        tandem_media::g711::encode_ulaw(&pcm, &mut out);
        out
    };
    let (a, b) = (tone(1000.0), tone(1700.0));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let frames = secs * 50;
    let cpu0 = cpu_secs();
    let mut late = Duration::ZERO;
    for f in 0..frames {
        let due = tick.tick().await;
        late = late.max(tokio::time::Instant::now() - due);
        let at = tokio::time::Instant::now();
        for (i, (pt, ct)) in taps.iter().enumerate() {
            for (leg, tap, payload) in [(1, pt, &a), (2, ct, &b)] {
                tap.packet(&TapPacket {
                    leg: LegId(leg),
                    at,
                    pt: 0,
                    codec: Some(Codec::Pcmu),
                    marker: f == 0,
                    seq: f as u16,
                    ts: (f * 160) as u32,
                    ssrc: i as u32,
                    payload,
                });
            }
        }
    }
    let now = tokio::time::Instant::now();
    let cpu = cpu_secs() - cpu0;
    let mut bad = 0usize;
    let mut durations = Vec::with_capacity(n);
    for mut s in sessions {
        let info = s.stop(now)?;
        durations.push(info.duration_ms);
        if !no_gaps(&info.path)? {
            bad += 1;
        }
    }
    durations.sort_unstable();
    let want = now.duration_since(t0).as_millis() as u64;
    let off = durations
        .iter()
        .map(|d| d.abs_diff(want))
        .max()
        .unwrap_or(0);
    println!(
        "{n} dual recordings, {secs} s: duration {}..{} ms (wall {want} ms, worst off {off} ms), \
         files with a gap: {bad}, CPU {cpu:.2} s ({:.1}% of one core), worst tick lateness {:?}",
        durations.first().unwrap_or(&0),
        durations.last().unwrap_or(&0),
        cpu * 100.0 / secs as f64,
        late
    );
    std::fs::remove_dir_all(&dir)?;
    if bad > 0 || off > 40 {
        return Err("recordings have gaps or the wrong length".into());
    }
    Ok(())
}

/// No run of more than 160 silent stereo frames between the first and last sound.
fn no_gaps(path: &std::path::Path) -> Result<bool, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let data = bytes.get(44..).ok_or("short WAV")?;
    let samples: Vec<i16> = data
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let frames: Vec<(i16, i16)> = samples.chunks_exact(2).map(|c| (c[0], c[1])).collect();
    let loud = |x: i16| x.unsigned_abs() > 500;
    let first = frames
        .iter()
        .position(|f| loud(f.0) || loud(f.1))
        .unwrap_or(0);
    let last = frames
        .iter()
        .rposition(|f| loud(f.0) || loud(f.1))
        .unwrap_or(0);
    let mut run = 0;
    for f in &frames[first..=last] {
        if loud(f.0) && loud(f.1) {
            run = 0;
        } else {
            run += 1;
            // A sine crosses zero often; only a stretch longer than a frame is a gap.
            if run > 160 {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn cpu_secs() -> f64 {
    proc_stat::self_ticks() as f64 / proc_stat::TICKS_PER_SEC
}
