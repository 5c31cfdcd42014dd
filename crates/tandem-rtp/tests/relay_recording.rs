//! A dual-channel recording built from relay taps with tandem-media's
//! recorder, with 5% of the packets lost on the way in: the file still lasts
//! as long as the call, and each channel carries its own leg's tone.

mod common;

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tandem_media::goertzel::{rms, tone_share};
use tandem_media::recorder::Leg as Channel;
use tandem_media::{ChannelLayout, Recorder, RecorderConfig, RecordingTrack, Trim, wav};
use tandem_rtp::record::{RecordingTap, position};
use tandem_rtp::{Leg, LegConfig, LegId, bridge};
use tokio::time::{Instant, MissedTickBehavior};

const TONE_A: f32 = 1000.0;
const TONE_B: f32 = 1700.0;
const PACKETS: usize = 100; // 2 s each way

fn tone(freq: f32, frame: usize) -> Vec<u8> {
    (0..160)
        .map(|i| {
            let n = (frame * 160 + i) as f32;
            let s = (2.0 * std::f32::consts::PI * freq * n / 8000.0).sin() * 8000.0;
            tandem_media::g711::linear_to_ulaw(s as i16)
        })
        .collect()
}

/// 5% loss: packets 3, 23, 43, ... are never sent.
fn lost(i: usize) -> bool {
    i % 20 == 3
}

async fn talk(mut ep: Endpoint, to: std::net::SocketAddr, freq: f32) {
    let mut iv = tokio::time::interval(Duration::from_millis(20));
    iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for i in 0..PACKETS {
        iv.tick().await;
        if lost(i) {
            ep.skip();
        } else {
            ep.send(to, 0, &tone(freq, i)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_recording_with_five_percent_loss_keeps_duration_and_channels() {
    let pool = pool(22200, 4);
    let a = Leg::start(pool.allocate().unwrap(), LegConfig::new(LegId(1)), None).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), LegConfig::new(LegId(2)), None).unwrap();
    bridge(&a, &b);
    let mut ea = Endpoint::new(0xA).await;
    let mut eb = Endpoint::new(0xB).await;
    ea.send(a.local_rtp_addr(), 0, &[0xff; 160]).await;
    eb.send(b.local_rtp_addr(), 0, &[0xff; 160]).await;
    let _ = ea.drain(Duration::from_millis(50)).await;
    let _ = eb.drain(Duration::from_millis(50)).await;

    let cfg = RecorderConfig::new(ChannelLayout::Dual, RecordingTrack::Both, Trim::DoNotTrim);
    let rec = Arc::new(Mutex::new(
        Recorder::new(Cursor::new(Vec::new()), cfg).unwrap(),
    ));
    let start = Instant::now();
    a.set_tap(Some(RecordingTap::new(
        Arc::clone(&rec),
        start,
        Channel::Parent,
    )));
    b.set_tap(Some(RecordingTap::new(
        Arc::clone(&rec),
        start,
        Channel::Child,
    )));
    tokio::time::sleep(Duration::from_millis(5)).await;

    let (ra, rb) = (ea.clone(), eb.clone());
    let sink_a = tokio::spawn(async move { ra.drain(Duration::from_millis(300)).await });
    let sink_b = tokio::spawn(async move { rb.drain(Duration::from_millis(300)).await });
    let (a_addr, b_addr) = (a.local_rtp_addr(), b.local_rtp_addr());
    let ta = tokio::spawn(talk(ea, a_addr, TONE_A));
    let tb = tokio::spawn(talk(eb, b_addr, TONE_B));
    ta.await.unwrap();
    tb.await.unwrap();
    // The call lasts one frame past the last packet sent.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let end = Instant::now();
    a.set_tap(None);
    b.set_tap(None);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let call = end - start;

    // Relayed both ways, minus the 5% that never left.
    let sent = PACKETS - (0..PACKETS).filter(|&i| lost(i)).count();
    assert_eq!(sink_b.await.unwrap().len(), sent);
    assert_eq!(sink_a.await.unwrap().len(), sent);

    let rec = Arc::try_unwrap(rec).ok().unwrap().into_inner().unwrap();
    let (sink, summary) = rec.finish(Some(position(start, end))).unwrap();
    let mut file = Cursor::new(sink.into_inner());
    let info = wav::read_info(&mut file).unwrap();
    assert_eq!((info.channels, info.sample_rate), (2, 8000));
    let secs = info.frames() as f64 / 8000.0;
    assert!(
        (secs - call.as_secs_f64()).abs() <= 0.040,
        "file lasts {secs:.3} s, call {:.3} s ({summary:?})",
        call.as_secs_f64()
    );

    eprintln!("file {secs:.3} s, call {:.3} s", call.as_secs_f64());
    let data = &file.get_ref()[info.data_offset as usize..];
    let samples: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let ch1: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let ch2: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    for (ch, own, other, name) in [
        (&ch1, TONE_A, TONE_B, "channel 1 (A)"),
        (&ch2, TONE_B, TONE_A, "channel 2 (B)"),
    ] {
        let (mut voiced, mut silent) = (0, 0);
        for block in ch.chunks_exact(80) {
            if rms(block) < 100.0 {
                silent += 1;
                continue;
            }
            voiced += 1;
            let mine = tone_share(block, own, 8000);
            let theirs = tone_share(block, other, 8000);
            // A block the tone fills (rms of an 8000-amplitude sine is 5657,
            // above 5500 when at most 5% of the block is a gap) is almost all
            // that tone; a block at the edge of a gap holds less of it, but
            // never the other leg's. A short fragment of tone at the edge of
            // a gap (more of them when a loaded machine delays packets)
            // smears its energy over the spectrum: both shares are small
            // there, so an edge block only has to lean to its own tone. The
            // other leg's tone in a channel would take most of a block.
            let full = rms(block) > 5500.0;
            assert!(
                theirs < 0.1 && (mine > 0.85 || (!full && mine >= theirs)),
                "{name}: {own} Hz share {mine}, {other} Hz share {theirs}"
            );
        }
        assert!(
            voiced > 150,
            "{name}: only {voiced} voiced blocks of 10 ms ({silent} silent)"
        );
        // The gaps are silence: 5 lost frames of 20 ms in 2 s is 5% (plus
        // up to a frame at the edges of the call).
        let gap: usize = ch
            .split(|&s| s != 0)
            .filter(|run| run.len() >= 40)
            .map(<[i16]>::len)
            .sum();
        let share = gap as f64 / ch.len() as f64;
        eprintln!(
            "{name}: {voiced} voiced blocks, {:.2}% silence",
            share * 100.0
        );
        assert!(
            (0.045..0.08).contains(&share),
            "{name}: {:.1}% silence",
            share * 100.0
        );
    }
}
