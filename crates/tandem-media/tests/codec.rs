//! Codec layer: metadata, resampling, and transcoding between legs that
//! speak different codecs, checked by Goertzel on the far side.

use tandem_media::codec::{Codec, CodecError, Decoder, Encoder, Transcoder};
use tandem_media::g711;
use tandem_media::goertzel::{rms, tone_share};
use tandem_media::resample::Resampler;

fn sine(rate: u32, freq: f32, amp: f32, start: usize, n: usize) -> Vec<i16> {
    (start..start + n)
        .map(|k| (amp * (2.0 * std::f32::consts::PI * freq * k as f32 / rate as f32).sin()) as i16)
        .collect()
}

#[test]
fn codec_metadata() {
    assert_eq!(Codec::Pcmu.clock_rate(), 8000);
    assert_eq!(Codec::Pcma.static_payload_type(), Some(8));
    assert_eq!(Codec::Opus.clock_rate(), 48_000);
    assert_eq!(Codec::Opus.static_payload_type(), None);
    assert_eq!(Codec::Opus.default_payload_type(), 111);
    assert_eq!(Codec::Opus.rtpmap_channels(), 2);
    assert_eq!(Codec::from_rtpmap("pcmu", 8000, 1), Some(Codec::Pcmu));
    assert_eq!(Codec::from_rtpmap("OPUS", 48_000, 2), Some(Codec::Opus));
    assert_eq!(Codec::from_rtpmap("PCMU", 16_000, 1), None);
    assert_eq!("PCMA".parse::<Codec>(), Ok(Codec::Pcma));
    assert!("G729".parse::<Codec>().is_err());
    assert_eq!(Codec::Pcmu.samples_per_frame(20), 160);
    assert_eq!(Codec::Opus.samples_per_frame(20), 960);
    assert_eq!(Codec::Opus.to_string(), "opus");
}

#[test]
fn streaming_resampler_keeps_tone_level_and_pace() {
    for (from, to) in [
        (8000, 48_000),
        (48_000, 8000),
        (8000, 16_000),
        (16_000, 8000),
        (44_100, 8000),
    ] {
        let mut r = Resampler::new(from, to);
        let mut out = Vec::new();
        let frame = from as usize / 50;
        for k in 0..50 {
            r.process(&sine(from, 1000.0, 10_000.0, k * frame, frame), &mut out);
        }
        // One second in, one second out.
        let want = to as usize;
        assert!(
            out.len() <= want && out.len() + 2 >= want,
            "{from}->{to}: {}",
            out.len()
        );
        let mid = &out[out.len() / 4..3 * out.len() / 4];
        assert!(tone_share(mid, 1000.0, to) > 0.98, "{from}->{to}");
        assert!(
            (rms(mid) - 7071.0).abs() < 300.0,
            "{from}->{to}: level {}",
            rms(mid)
        );
    }
}

#[test]
fn pcmu_to_pcma_keeps_the_tone() {
    let mut t = Transcoder::new(Codec::Pcmu, Codec::Pcma).unwrap();
    let mut pcm_out = Vec::new();
    for k in 0..25 {
        let mut payload = Vec::new();
        g711::encode_ulaw(&sine(8000, 1000.0, 8000.0, k * 160, 160), &mut payload);
        let mut out = Vec::new();
        t.transcode(&payload, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 160);
        g711::decode_alaw(&out[0], &mut pcm_out);
    }
    assert!(tone_share(&pcm_out, 1000.0, 8000) > 0.99);
}

#[cfg(feature = "opus")]
#[test]
fn a_1khz_tone_through_pcmu_opus_pcmu_keeps_its_frequency() {
    let mut to_opus = Transcoder::new(Codec::Pcmu, Codec::Opus).unwrap();
    let mut to_pcmu = Transcoder::new(Codec::Opus, Codec::Pcmu).unwrap();
    let mut received = Vec::new();
    let mut opus_payloads = 0;
    for k in 0..100 {
        // Leg A sends 20 ms of PCMU.
        let mut pcmu = Vec::new();
        g711::encode_ulaw(&sine(8000, 1000.0, 8000.0, k * 160, 160), &mut pcmu);
        let mut opus = Vec::new();
        to_opus.transcode(&pcmu, &mut opus).unwrap();
        for p in &opus {
            assert!(
                !p.is_empty() && p.len() < 400,
                "opus payload of {} bytes",
                p.len()
            );
            opus_payloads += 1;
            // Leg B's side sends it back towards a PCMU leg.
            let mut back = Vec::new();
            to_pcmu.transcode(p, &mut back).unwrap();
            for b in back {
                assert_eq!(b.len(), 160);
                g711::decode_ulaw(&b, &mut received);
            }
        }
    }
    // One Opus payload per PCMU payload: the resampler starts from a
    // zeroed history, so it delays the audio but never holds samples back.
    assert_eq!(opus_payloads, 100);
    // After half a second of codec warm-up, the tone is there and alone.
    let tail = &received[4000..];
    assert!(tail.len() >= 7 * 160);
    for f in tail.chunks(800) {
        assert!(
            tone_share(f, 1000.0, 8000) > 0.9,
            "share {}",
            tone_share(f, 1000.0, 8000)
        );
        assert!(tone_share(f, 2000.0, 8000) < 0.01);
        assert!(rms(f) > 3000.0, "level {}", rms(f));
    }
}

#[cfg(feature = "opus")]
#[test]
fn opus_loss_is_concealed_and_garbage_is_an_error() {
    let mut enc = Encoder::new(Codec::Opus).unwrap();
    let mut dec = Decoder::new(Codec::Opus).unwrap();
    let mut payload = Vec::new();
    enc.encode(&sine(48_000, 440.0, 8000.0, 0, 960), &mut payload)
        .unwrap();
    let mut pcm = Vec::new();
    dec.decode(&payload, &mut pcm).unwrap();
    assert_eq!(pcm.len(), 960);
    dec.conceal(960, &mut pcm).unwrap();
    assert_eq!(pcm.len(), 1920);
    assert!(matches!(
        enc.encode(&[0; 100], &mut payload),
        Err(CodecError::BadFrameSize(100))
    ));
    // A code-3 packet header promising more frames than it holds.
    assert!(matches!(
        dec.decode(&[0xFF, 0xFF], &mut pcm),
        Err(CodecError::Opus(_))
    ));
    let mut t = Transcoder::new(Codec::Opus, Codec::Pcmu).unwrap();
    let mut out = Vec::new();
    // The output keeps its pace through a loss: one 20 ms payload per 20 ms lost.
    t.conceal(960, &mut out).unwrap();
    assert_eq!(out.len(), 1);
    t.conceal(960, &mut out).unwrap();
    assert_eq!(out.len(), 2);
}

#[cfg(not(feature = "opus"))]
#[test]
fn opus_without_the_feature_is_a_typed_error() {
    assert!(matches!(
        Encoder::new(Codec::Opus),
        Err(CodecError::OpusUnavailable)
    ));
    assert!(matches!(
        Decoder::new(Codec::Opus),
        Err(CodecError::OpusUnavailable)
    ));
}

#[test]
fn g711_encoder_and_decoder_wrap_the_tables() {
    let mut e = Encoder::new(Codec::Pcma).unwrap();
    let mut d = Decoder::new(Codec::Pcma).unwrap();
    let pcm = sine(8000, 300.0, 5000.0, 0, 160);
    let mut payload = Vec::new();
    e.encode(&pcm, &mut payload).unwrap();
    let mut back = Vec::new();
    d.decode(&payload, &mut back).unwrap();
    assert!(back.iter().zip(&pcm).all(|(a, b)| (a - b).abs() <= 128));
    d.conceal(160, &mut back).unwrap();
    assert!(back[160..].iter().all(|&s| s == 0));
}
