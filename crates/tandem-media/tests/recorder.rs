//! Recorder golden tests: wall-clock alignment, channel contents checked by
//! Goertzel, header correctness, crash safety and repair.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use tandem_media::goertzel::tone_share;
use tandem_media::recorder::{
    ChannelLayout, Leg, RecordError, Recorder, RecorderConfig, RecordingTrack, Trim, repair,
};
use tandem_media::wav::{self, SampleFormat};

const RATE: u32 = 8000;

fn sine(freq: f32, amp: f32, start: u64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = (start + i as u64) as f32 / RATE as f32;
            (amp * (2.0 * std::f32::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

fn recorder(layout: ChannelLayout, track: RecordingTrack, trim: Trim) -> Recorder<Cursor<Vec<u8>>> {
    Recorder::new(
        Cursor::new(Vec::new()),
        RecorderConfig::new(layout, track, trim),
    )
    .unwrap()
}

/// Splits the data chunk of a PCM16 file into per-channel sample vectors.
fn channels_of(bytes: &[u8]) -> (wav::WavInfo, Vec<Vec<i16>>) {
    let info = wav::read_info(&mut Cursor::new(bytes)).unwrap();
    assert_eq!(info.format, SampleFormat::Pcm16);
    let data = &bytes[info.data_offset as usize..(info.data_offset + info.data_len) as usize];
    let ch = info.channels as usize;
    let mut out = vec![Vec::new(); ch];
    for (i, s) in data.chunks_exact(2).enumerate() {
        out[i % ch].push(i16::from_le_bytes([s[0], s[1]]));
    }
    (info, out)
}

/// A deterministic 5% loss pattern (xorshift), seeded.
struct Loss(u32);
impl Loss {
    fn lost(&mut self) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0 % 100 < 5
    }
}

#[test]
fn dual_channel_sixty_second_call_with_loss_is_sixty_seconds() {
    let mut rec = recorder(ChannelLayout::Dual, RecordingTrack::Both, Trim::DoNotTrim);
    let mut loss = Loss(0x1234_5678);
    let frames = 60 * 50;
    let (mut lost_a, mut lost_b) = (0, 0);
    for k in 0..frames {
        let at = k as u64 * 160;
        if !loss.lost() {
            rec.push(Leg::Parent, at, &sine(1000.0, 8000.0, at, 160))
                .unwrap();
        } else {
            lost_a += 1;
        }
        if !loss.lost() {
            rec.push(Leg::Child, at, &sine(1700.0, 8000.0, at, 160))
                .unwrap();
        } else {
            lost_b += 1;
        }
        // The wall clock runs 60 ms behind the newest frame (jitter allowance).
        rec.advance((at + 160).saturating_sub(480)).unwrap();
    }
    assert!(lost_a > 100 && lost_b > 100, "loss pattern should drop ~5%");
    let (cursor, summary) = rec.finish(Some(60 * 8000)).unwrap();
    assert_eq!(summary.frames, 480_000);
    assert_eq!(summary.duration_ms(), 60_000);
    assert_eq!(summary.channels, 2);
    let bytes = cursor.into_inner();
    assert_eq!(bytes.len(), 44 + 480_000 * 4);
    let (info, ch) = channels_of(&bytes);
    assert_eq!(info.channels, 2);
    assert_eq!(info.sample_rate, 8000);
    assert_eq!(info.frames(), 480_000);
    // Channel 1 carries A's 1 kHz, channel 2 B's 1.7 kHz, and never the other.
    let mut checked = 0;
    for (k, (a, b)) in ch[0].chunks(160).zip(ch[1].chunks(160)).enumerate() {
        if tandem_media::goertzel::rms(a) > 1000.0 {
            assert!(tone_share(a, 1000.0, RATE) > 0.9, "frame {k} ch1");
            assert!(tone_share(a, 1700.0, RATE) < 0.01, "frame {k} ch1 leak");
            checked += 1;
        }
        if tandem_media::goertzel::rms(b) > 1000.0 {
            assert!(tone_share(b, 1700.0, RATE) > 0.9, "frame {k} ch2");
            assert!(tone_share(b, 1000.0, RATE) < 0.01, "frame {k} ch2 leak");
        }
    }
    assert!(checked > 2800);
    // Lost frames are silence, in place: the frame count of silent 20 ms
    // blocks on channel 1 equals the loss count.
    let silent_a = ch[0]
        .chunks(160)
        .filter(|f| f.iter().all(|&s| s == 0))
        .count();
    assert_eq!(silent_a, lost_a);
}

#[test]
fn frames_stay_at_their_position_after_a_long_gap() {
    let mut rec = recorder(ChannelLayout::Dual, RecordingTrack::Both, Trim::DoNotTrim);
    // Parent talks for 1 s, then nothing for 3 s (clock still advancing), then 1 s.
    for k in 0..50u64 {
        rec.push(Leg::Parent, k * 160, &[1000; 160]).unwrap();
        rec.advance(k * 160).unwrap();
    }
    rec.advance(4 * 8000).unwrap();
    for k in 0..50u64 {
        let at = 4 * 8000 + k * 160;
        rec.push(Leg::Parent, at, &[2000; 160]).unwrap();
    }
    let (c, s) = rec.finish(Some(5 * 8000)).unwrap();
    assert_eq!(s.frames, 40_000);
    let (_, ch) = channels_of(&c.into_inner());
    assert!(ch[0][..8000].iter().all(|&v| v == 1000));
    assert!(ch[0][8000..32000].iter().all(|&v| v == 0));
    assert!(ch[0][32000..].iter().all(|&v| v == 2000));
    assert!(ch[1].iter().all(|&v| v == 0));
}

#[test]
fn late_frames_are_dropped_and_duplicates_overwrite() {
    let mut rec = recorder(ChannelLayout::Mono, RecordingTrack::Both, Trim::DoNotTrim);
    rec.push(Leg::Parent, 0, &[5; 160]).unwrap();
    rec.push(Leg::Parent, 0, &[7; 160]).unwrap(); // duplicate, later copy wins
    rec.advance(240).unwrap();
    // Half of this frame is already final.
    rec.push(Leg::Parent, 160, &[9; 160]).unwrap();
    assert_eq!(rec.stats().late_samples, 80);
    let (c, s) = rec.finish(Some(480)).unwrap();
    assert_eq!(s.frames, 480);
    let (_, ch) = channels_of(&c.into_inner());
    assert!(ch[0][..160].iter().all(|&v| v == 7));
    assert!(ch[0][160..240].iter().all(|&v| v == 0));
    assert!(ch[0][240..320].iter().all(|&v| v == 9));
    assert!(ch[0][320..].iter().all(|&v| v == 0));
}

#[test]
fn mono_mixes_both_legs() {
    let mut rec = recorder(ChannelLayout::Mono, RecordingTrack::Both, Trim::DoNotTrim);
    for k in 0..50u64 {
        let at = k * 160;
        rec.push(Leg::Parent, at, &sine(1000.0, 6000.0, at, 160))
            .unwrap();
        rec.push(Leg::Child, at, &sine(1700.0, 6000.0, at, 160))
            .unwrap();
    }
    let (c, s) = rec.finish(None).unwrap();
    assert_eq!(s.channels, 1);
    assert_eq!(s.frames, 8000);
    let (_, ch) = channels_of(&c.into_inner());
    let a = tone_share(&ch[0], 1000.0, RATE);
    let b = tone_share(&ch[0], 1700.0, RATE);
    assert!(a > 0.4 && b > 0.4, "mix should hold both tones: {a} {b}");
}

#[test]
fn single_track_recordings_are_mono_with_that_leg_only() {
    for (track, want, other) in [
        (RecordingTrack::Inbound, 1000.0, 1700.0),
        (RecordingTrack::Outbound, 1700.0, 1000.0),
    ] {
        // Dual with a single track is written mono, as Twilio does.
        let mut rec = recorder(ChannelLayout::Dual, track, Trim::DoNotTrim);
        assert_eq!(rec.channels(), 1);
        for k in 0..25u64 {
            let at = k * 160;
            rec.push(Leg::Parent, at, &sine(1000.0, 6000.0, at, 160))
                .unwrap();
            rec.push(Leg::Child, at, &sine(1700.0, 6000.0, at, 160))
                .unwrap();
        }
        let (c, s) = rec.finish(Some(4000)).unwrap();
        assert_eq!(s.frames, 4000);
        let (info, ch) = channels_of(&c.into_inner());
        assert_eq!(info.channels, 1);
        assert!(tone_share(&ch[0], want, RATE) > 0.95, "{track:?}");
        assert!(tone_share(&ch[0], other, RATE) < 0.01, "{track:?}");
    }
}

#[test]
fn header_is_canonical_pcm16() {
    let mut rec = recorder(ChannelLayout::Dual, RecordingTrack::Both, Trim::DoNotTrim);
    rec.push(Leg::Child, 0, &[1; 800]).unwrap();
    let (c, _) = rec.finish(Some(800)).unwrap();
    let b = c.into_inner();
    assert_eq!(&b[0..4], b"RIFF");
    assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 36 + 3200);
    assert_eq!(&b[8..16], b"WAVEfmt ");
    assert_eq!(u32::from_le_bytes(b[16..20].try_into().unwrap()), 16);
    assert_eq!(u16::from_le_bytes(b[20..22].try_into().unwrap()), 1); // PCM
    assert_eq!(u16::from_le_bytes(b[22..24].try_into().unwrap()), 2); // channels
    assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 8000);
    assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 32000); // byte rate
    assert_eq!(u16::from_le_bytes(b[32..34].try_into().unwrap()), 4); // block align
    assert_eq!(u16::from_le_bytes(b[34..36].try_into().unwrap()), 16); // bits
    assert_eq!(&b[36..40], b"data");
    assert_eq!(u32::from_le_bytes(b[40..44].try_into().unwrap()), 3200);
    assert_eq!(b.len(), 44 + 3200);
}

#[test]
fn header_on_disk_is_never_more_than_one_second_behind() {
    let mut rec = recorder(ChannelLayout::Dual, RecordingTrack::Both, Trim::DoNotTrim);
    // An empty recording is already a valid file.
    let info = wav::read_info(&mut Cursor::new(rec.get_ref().get_ref().clone())).unwrap();
    assert_eq!(info.frames(), 0);
    for k in 0..(10 * 50u64) {
        let at = k * 160;
        rec.push(Leg::Parent, at, &sine(440.0, 5000.0, at, 160))
            .unwrap();
        rec.advance(at + 160).unwrap();
        // What a crash right now would leave: the bytes in the sink.
        let snapshot = rec.get_ref().get_ref().clone();
        let declared = u32::from_le_bytes(snapshot[40..44].try_into().unwrap()) as u64 / 4;
        let riff = u32::from_le_bytes(snapshot[4..8].try_into().unwrap()) as u64;
        assert_eq!(riff, 36 + declared * 4);
        assert!(declared <= rec.frames_written());
        assert!(
            rec.frames_written() - declared <= 8000,
            "header lags more than 1 s"
        );
    }
}

#[test]
fn crash_leaves_a_file_that_opens_and_repair_restores_every_byte() {
    let dir = std::env::temp_dir().join(format!("tandem-media-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("crash.wav");
    let mut rec = Recorder::create(
        &path,
        RecorderConfig::new(ChannelLayout::Dual, RecordingTrack::Both, Trim::DoNotTrim),
    )
    .unwrap();
    for k in 0..(53 * 5u64) {
        let at = k * 160;
        rec.push(Leg::Parent, at, &sine(1000.0, 8000.0, at, 160))
            .unwrap();
        rec.push(Leg::Child, at, &sine(1700.0, 8000.0, at, 160))
            .unwrap();
        rec.advance(at + 160).unwrap();
    }
    // 5.3 s recorded; the process dies without finishing or even dropping
    // the buffered writer.
    std::mem::forget(rec);
    let bytes = std::fs::read(&path).unwrap();
    let info = wav::read_info(&mut Cursor::new(&bytes)).unwrap();
    // The file opens and holds at least everything up to the last checkpoint.
    assert!(
        info.frames() >= 5 * 8000,
        "lost more than a second: {}",
        info.frames()
    );
    let (_, ch) = channels_of(&bytes);
    assert!(tone_share(&ch[0][..8000], 1000.0, RATE) > 0.95);
    assert!(tone_share(&ch[1][..8000], 1700.0, RATE) > 0.95);

    // Now a torn write: some of the next second reached the disk, with half
    // a sample frame at the end, and the header was never rewritten.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&vec![0x11u8; 4 * 1000 + 2]).unwrap();
    drop(f);
    let report = repair(&path).unwrap();
    assert!(report.header_fixed);
    assert_eq!(report.truncated_bytes, 2);
    assert_eq!(report.frames, info.frames() + 1000);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, 44 + report.frames * 4);
    let info2 = wav::read_info(&mut Cursor::new(&bytes)).unwrap();
    assert_eq!(info2.frames(), report.frames);
    assert_eq!(
        u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize,
        bytes.len() - 8
    );
    // A second repair finds nothing to do.
    let again = repair(&path).unwrap();
    assert!(!again.header_fixed);
    assert_eq!(again.truncated_bytes, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn repair_fixes_a_header_that_was_never_rewritten() {
    // A crash before the first checkpoint: sizes still 0.
    let mut bytes = wav::pcm16_header(1, 8000, 0).to_vec();
    bytes.extend(std::iter::repeat_n(0x22u8, 1601));
    let mut c = Cursor::new(bytes);
    let r = tandem_media::recorder::repair_sink(&mut c).unwrap();
    assert_eq!(r.frames, 800);
    assert_eq!(r.truncated_bytes, 1);
    let mut b = Vec::new();
    c.seek(SeekFrom::Start(0)).unwrap();
    c.read_to_end(&mut b).unwrap();
    assert_eq!(b.len(), 44 + 1600);
    assert_eq!(u32::from_le_bytes(b[40..44].try_into().unwrap()), 1600);
    assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 36 + 1600);
}

#[test]
fn repair_refuses_what_is_not_a_wav() {
    let mut c = Cursor::new(b"this is not a wav file at all, not even close".to_vec());
    assert!(matches!(
        tandem_media::recorder::repair_sink(&mut c),
        Err(wav::WavError::NotWave)
    ));
}

#[test]
fn trim_silence_drops_leading_and_trailing_silence() {
    let mut rec = recorder(ChannelLayout::Dual, RecordingTrack::Both, Trim::TrimSilence);
    // 1 s of silence (low noise), 2 s of tone on the child leg, 1.5 s silence.
    for k in 0..225u64 {
        let at = k * 160;
        let frame = if (50..150).contains(&k) {
            sine(800.0, 4000.0, at, 160)
        } else {
            vec![3; 160]
        };
        rec.push(Leg::Child, at, &frame).unwrap();
        rec.advance(at).unwrap();
    }
    let (c, s) = rec.finish(Some(225 * 160)).unwrap();
    // The tone starts and ends on near-zero samples, which count as silence.
    assert!(
        (8000..=8002).contains(&s.trimmed_leading),
        "{}",
        s.trimmed_leading
    );
    assert!((15_996..=16_000).contains(&s.frames), "{}", s.frames);
    assert_eq!(s.trimmed_leading + s.frames + s.trimmed_trailing, 225 * 160);
    let bytes = c.into_inner();
    assert_eq!(bytes.len() as u64, 44 + s.frames * 4);
    let (info, ch) = channels_of(&bytes);
    assert_eq!(info.frames(), s.frames);
    assert!(tone_share(&ch[1][..8000], 800.0, RATE) > 0.95);
}

#[test]
fn a_timestamp_far_in_the_future_is_refused() {
    let mut rec = recorder(ChannelLayout::Mono, RecordingTrack::Both, Trim::DoNotTrim);
    rec.push(Leg::Parent, 0, &[1; 160]).unwrap();
    let err = rec.push(Leg::Parent, 3_600 * 8000, &[1; 160]).unwrap_err();
    assert!(matches!(err, RecordError::TimestampJump { .. }));
    // A frame a few seconds ahead moves the clock instead.
    rec.push(Leg::Parent, 5 * 8000, &[1; 160]).unwrap();
    assert_eq!(rec.clock(), 5 * 8000 + 160 - 16_000);
    let (_, s) = rec.finish(None).unwrap();
    assert_eq!(s.frames, 5 * 8000 + 160);
}
