//! Player: WAV files from an independent writer (SoX) and generated ones,
//! raw μ-law, resampling to 8 and 48 kHz, 20 ms framing, typed refusals.

use std::path::PathBuf;

use tandem_media::goertzel::tone_share;
use tandem_media::player::{Player, PlayerError, Prompt};
use tandem_media::wav::{WavError, pcm16_header};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/audio")
        .join(name)
}

fn sine(rate: u32, freq: f32, n: usize) -> Vec<i16> {
    (0..n)
        .map(|k| {
            (10000.0 * (2.0 * std::f32::consts::PI * freq * k as f32 / rate as f32).sin()) as i16
        })
        .collect()
}

fn wav_bytes(rate: u32, channels: u16, pcm: &[i16]) -> Vec<u8> {
    let mut b = pcm16_header(channels, rate, (pcm.len() * 2) as u32).to_vec();
    for s in pcm {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// Middle of a prompt, away from the filter's edges.
fn middle(p: &Prompt) -> &[i16] {
    let n = p.len();
    &p.samples()[n / 4..3 * n / 4]
}

#[test]
fn sox_files_of_every_supported_kind_play_at_8_and_48_khz() {
    for name in [
        "tone-1k-16khz-stereo.wav",
        "tone-1k-48khz.wav",
        "tone-1k-44k1.wav",
    ] {
        for rate in [8000, 48_000] {
            let p = Prompt::open_wav(fixture(name), rate).unwrap();
            assert_eq!(p.rate(), rate);
            assert!(
                (p.duration_ms() as i64 - 200).abs() <= 1,
                "{name}: {} ms",
                p.duration_ms()
            );
            assert!(
                tone_share(middle(&p), 1000.0, rate) > 0.95,
                "{name} at {rate}"
            );
            assert_eq!(p.frame_len(), rate as usize / 50);
        }
    }
}

#[test]
fn g711_wavs_decode_exactly_as_sox_decodes_them() {
    for (coded, decoded) in [
        ("sweep-8khz-ulaw.wav", "sweep-8khz-ulaw-decoded.wav"),
        ("sweep-8khz-alaw.wav", "sweep-8khz-alaw-decoded.wav"),
    ] {
        let ours = Prompt::open_wav(fixture(coded), 8000).unwrap();
        let sox = Prompt::open_wav(fixture(decoded), 8000).unwrap();
        assert_eq!(ours.len(), 4000);
        assert_eq!(ours.samples(), sox.samples(), "{coded}");
    }
    // Raw μ-law (no header), recognised by its extension.
    let raw = Prompt::open(fixture("sweep-8khz.ul"), 8000).unwrap();
    let wav = Prompt::open(fixture("sweep-8khz-ulaw.wav"), 8000).unwrap();
    assert_eq!(raw.samples(), wav.samples());
}

#[test]
fn unsupported_and_malformed_files_get_typed_errors() {
    assert!(matches!(
        Prompt::open_wav(fixture("tone-1k-8khz-24bit.wav"), 8000),
        Err(PlayerError::Wav(WavError::UnsupportedBitsPerSample(24)))
    ));
    assert!(matches!(
        Prompt::from_wav_bytes(b"RIFX\0\0\0\0WAVEfmt ", 8000),
        Err(PlayerError::Wav(WavError::NotWave))
    ));
    assert!(matches!(
        Prompt::from_wav_bytes(b"RIFF", 8000),
        Err(PlayerError::Wav(WavError::NotWave))
    ));
    // Data before fmt.
    let mut b = b"RIFF\x24\0\0\0WAVEdata\x04\0\0\0\0\0\0\0".to_vec();
    b.extend_from_slice(&[0; 8]);
    assert!(matches!(
        Prompt::from_wav_bytes(&b, 8000),
        Err(PlayerError::Wav(WavError::MissingFormat))
    ));
    // fmt cut short.
    let h = pcm16_header(1, 8000, 0);
    assert!(matches!(
        Prompt::from_wav_bytes(&h[..30], 8000),
        Err(PlayerError::Wav(WavError::Truncated))
    ));
    // fmt but no data chunk.
    assert!(matches!(
        Prompt::from_wav_bytes(&h[..36], 8000),
        Err(PlayerError::Wav(WavError::MissingData))
    ));
    // Float, 3 channels, inconsistent byte rate, zero rate.
    let mut f = wav_bytes(8000, 1, &[0; 10]);
    f[20] = 3;
    assert!(matches!(
        Prompt::from_wav_bytes(&f, 8000),
        Err(PlayerError::Wav(WavError::UnsupportedFormat(3)))
    ));
    let mut f = wav_bytes(8000, 1, &[0; 12]);
    f[22] = 3;
    assert!(matches!(
        Prompt::from_wav_bytes(&f, 8000),
        Err(PlayerError::Wav(WavError::UnsupportedChannels(3)))
    ));
    let mut f = wav_bytes(8000, 1, &[0; 10]);
    f[28] = 0x41;
    assert!(matches!(
        Prompt::from_wav_bytes(&f, 8000),
        Err(PlayerError::Wav(WavError::InconsistentFormat(_)))
    ));
    let f = wav_bytes(0, 1, &[0; 10]);
    assert!(matches!(
        Prompt::from_wav_bytes(&f, 8000),
        Err(PlayerError::Wav(WavError::UnsupportedSampleRate(0)))
    ));
    // No audio at all.
    assert!(matches!(
        Prompt::from_wav_bytes(&wav_bytes(8000, 1, &[]), 8000),
        Err(PlayerError::Empty)
    ));
    assert!(matches!(
        Prompt::from_raw_ulaw(&[], 8000),
        Err(PlayerError::Empty)
    ));
    // Not a WAV and not named like raw μ-law.
    let dir = std::env::temp_dir().join(format!("tandem-player-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mp3 = dir.join("prompt.mp3");
    std::fs::write(&mp3, b"ID3\x03\0\0\0\0\0\0 not audio we play").unwrap();
    assert!(matches!(
        Prompt::open(&mp3, 8000),
        Err(PlayerError::Wav(WavError::NotWave))
    ));
    assert!(matches!(
        Prompt::open(dir.join("missing.wav"), 8000),
        Err(PlayerError::Io(_))
    ));
    assert!(matches!(
        Prompt::from_raw_ulaw(&[0xFF; 10], 0),
        Err(PlayerError::InvalidRate(0))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_header_claiming_more_data_than_the_file_holds_plays_what_is_there() {
    let pcm = sine(8000, 440.0, 1000);
    let mut b = wav_bytes(8000, 1, &pcm);
    b[40..44].copy_from_slice(&100_000u32.to_le_bytes());
    b.push(0x7F); // and a torn last sample
    let p = Prompt::from_wav_bytes(&b, 8000).unwrap();
    assert_eq!(p.samples(), &pcm[..]);
}

#[test]
fn unknown_chunks_and_odd_sized_chunks_are_skipped() {
    let pcm = sine(16_000, 700.0, 3200);
    let plain = wav_bytes(16_000, 1, &pcm);
    // RIFF, fmt (36 bytes), then a LIST chunk of odd size with its pad byte, then data.
    let mut b = plain[..36].to_vec();
    b.extend_from_slice(b"LIST\x03\0\0\0abc\0");
    b.extend_from_slice(&plain[36..]);
    let p = Prompt::from_wav_bytes(&b, 8000).unwrap();
    assert_eq!(p.len(), 1600);
    assert!(tone_share(middle(&p), 700.0, 8000) > 0.95);
}

#[test]
fn resampling_rejects_what_8_khz_cannot_carry() {
    // A 6 kHz tone at 48 kHz has no place at 8 kHz: the filter removes it
    // instead of folding it to 2 kHz.
    let pcm = sine(48_000, 6000.0, 9600);
    let p = Prompt::from_pcm(48_000, &pcm, 8000).unwrap();
    let rms = tandem_media::goertzel::rms(middle(&p));
    assert!(rms < 10.0, "alias at {rms}");
    // 3 kHz passes.
    let p = Prompt::from_pcm(48_000, &sine(48_000, 3000.0, 9600), 8000).unwrap();
    assert!(tone_share(middle(&p), 3000.0, 8000) > 0.95);
    let rms = tandem_media::goertzel::rms(middle(&p));
    assert!((rms - 7071.0).abs() < 400.0, "passband level {rms}");
}

#[test]
fn player_serves_20_ms_frames_and_loops() {
    let p = Prompt::from_pcm(8000, &sine(8000, 500.0, 400), 8000).unwrap();
    assert_eq!(p.frame_count(), 3);
    let mut once = Player::new(p.clone(), 1);
    let mut frames = Vec::new();
    while let Some(f) = once.next_frame() {
        assert_eq!(f.len(), 160);
        frames.push(f.to_vec());
    }
    assert_eq!(frames.len(), 3);
    assert_eq!(&frames[2][..80], &p.samples()[320..400]);
    assert!(frames[2][80..].iter().all(|&s| s == 0));
    let mut twice = Player::new(p.clone(), 2);
    let mut n = 0;
    while twice.next_frame().is_some() {
        n += 1;
    }
    assert_eq!(n, 6);
    let mut forever = Player::new(p, 0);
    assert!((0..1000).all(|_| forever.next_frame().is_some()));
}
