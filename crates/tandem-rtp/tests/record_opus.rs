//! A recording tap on an Opus leg: packets are decoded, brought down to
//! the recording's 8 kHz and placed by their 48 kHz timestamps. Driven with
//! synthetic tap packets (no sockets, no sleeping): 2 s of a 1 kHz tone
//! with one packet in twenty lost.

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_media::goertzel::{rms, tone_share};
use tandem_media::recorder::Leg as Channel;
use tandem_media::{ChannelLayout, Encoder, Recorder, RecorderConfig, RecordingTrack, Trim, wav};
use tandem_rtp::LegId;
use tandem_rtp::record::{RecordingTap, position};
use tandem_rtp::relay::{Tap, TapPacket};
use tandem_rtp::sdp::Codec;
use tokio::time::Instant;

const PACKETS: u32 = 100;

#[test]
fn opus_leg_is_recorded_at_its_place() {
    let cfg = RecorderConfig::new(ChannelLayout::Mono, RecordingTrack::Both, Trim::DoNotTrim);
    let rec = Arc::new(Mutex::new(
        Recorder::new(Cursor::new(Vec::new()), cfg).unwrap(),
    ));
    let start = Instant::now();
    let tap = RecordingTap::new(Arc::clone(&rec), start, Channel::Parent);
    let mut enc = Encoder::new(Codec::Opus).unwrap();
    let mut payload = Vec::new();
    for i in 0..PACKETS {
        let pcm: Vec<i16> = (0..960)
            .map(|k| {
                let n = (i * 960 + k) as f32;
                ((2.0 * std::f32::consts::PI * 1000.0 * n / 48_000.0).sin() * 8000.0) as i16
            })
            .collect();
        payload.clear();
        enc.encode(&pcm, &mut payload).unwrap();
        if i % 20 == 3 {
            continue;
        }
        tap.packet(&TapPacket {
            leg: LegId(1),
            // Arrival jitter of up to 7 ms: the timestamp decides.
            at: start + Duration::from_millis(u64::from(i) * 20 + u64::from(i % 8)),
            pt: 111,
            codec: Some(Codec::Opus),
            marker: i == 0,
            seq: i as u16,
            ts: 5000 + i * 960,
            ssrc: 0x0bad,
            payload: &payload,
        });
    }
    drop(tap);
    let end = start + Duration::from_millis(u64::from(PACKETS) * 20);
    let rec = Arc::try_unwrap(rec).ok().unwrap().into_inner().unwrap();
    let (sink, summary) = rec.finish(Some(position(start, end))).unwrap();
    let mut file = Cursor::new(sink.into_inner());
    let info = wav::read_info(&mut file).unwrap();
    assert_eq!((info.channels, info.sample_rate), (1, 8000));
    assert_eq!(info.frames(), 16_000, "{summary:?}");
    let data = &file.get_ref()[info.data_offset as usize..];
    let pcm: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    // Every 20 ms slot but the lost ones holds the tone; lost ones are quiet.
    let mut voiced = 0;
    for (slot, block) in pcm.chunks_exact(160).enumerate() {
        // Skip the codec's start-up and the slots next to a loss.
        if slot < 2 || (slot % 20).abs_diff(3) <= 1 {
            continue;
        }
        let share = tone_share(&block[20..140], 1000.0, 8000);
        assert!(
            rms(block) > 3000.0 && share > 0.9,
            "slot {slot}: rms {} share {share}",
            rms(block)
        );
        voiced += 1;
    }
    assert!(voiced >= 80, "{voiced} voiced slots");
    for lost in (3..PACKETS as usize).step_by(20) {
        let block = &pcm[lost * 160 + 40..lost * 160 + 120];
        assert!(rms(block) < 500.0, "lost slot {lost}: rms {}", rms(block));
    }
}
