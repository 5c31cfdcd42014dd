//! Cost of one 20 ms frame through each media stage, in nanoseconds.
//! `cargo bench -p tandem-media --bench frame_costs` (a plain timing loop,
//! no criterion, so it builds in seconds).
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::hint::black_box;
use std::io::Cursor;
use std::time::Instant;

use tandem_media::codec::{Codec, Transcoder};
use tandem_media::dtmf::DtmfDetector;
use tandem_media::g711;
use tandem_media::mixer::{Mixer, PartyId};
use tandem_media::recorder::{ChannelLayout, Leg, Recorder, RecorderConfig, RecordingTrack, Trim};
use tandem_media::tones::{RingTone, Ringback};

fn time(name: &str, iters: u32, mut f: impl FnMut(u32)) {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it, in a debug build: then each stage runs a few times,
    // as a smoke test, instead of a full timing loop.
    let iters = if std::env::args().any(|a| a == "--bench") {
        iters
    } else {
        10
    };
    for i in 0..iters / 10 {
        f(i);
    }
    let start = Instant::now();
    for i in 0..iters {
        f(i);
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(iters);
    println!("{name:<44} {ns:>10.0} ns/frame");
}

fn main() {
    let pcm: Vec<i16> = (0..160)
        .map(|k| (8000.0 * (k as f32 * 0.785).sin()) as i16)
        .collect();
    let mut ulaw = Vec::with_capacity(160);
    g711::encode_ulaw(&pcm, &mut ulaw);
    let mut out_b = Vec::with_capacity(160);
    let mut out_s = Vec::with_capacity(160);

    time("g711 ulaw encode (160 samples)", 2_000_000, |_| {
        out_b.clear();
        g711::encode_ulaw(black_box(&pcm), &mut out_b);
        black_box(&out_b);
    });
    time("g711 ulaw decode (160 samples)", 2_000_000, |_| {
        out_s.clear();
        g711::decode_ulaw(black_box(&ulaw), &mut out_s);
        black_box(&out_s);
    });
    time("g711 alaw encode (160 samples)", 2_000_000, |_| {
        out_b.clear();
        g711::encode_alaw(black_box(&pcm), &mut out_b);
        black_box(&out_b);
    });

    let mut det = DtmfDetector::default();
    let mut found = Vec::new();
    time("in-band DTMF detector (160 samples)", 200_000, |_| {
        det.process(black_box(&pcm), &mut found);
        found.clear();
    });

    let rb = Ringback::new(RingTone::Uk);
    time("ringback frame (uk)", 2_000_000, |i| {
        black_box(rb.frame(u64::from(i) * 160));
    });

    let mut rec = Recorder::new(
        Cursor::new(Vec::with_capacity(64 << 20)),
        RecorderConfig::new(ChannelLayout::Dual, RecordingTrack::Both, Trim::DoNotTrim),
    )
    .unwrap();
    time("dual recorder: 2 pushes + advance", 100_000, |i| {
        let at = u64::from(i) * 160;
        rec.push(Leg::Parent, at, &pcm).unwrap();
        rec.push(Leg::Child, at, &pcm).unwrap();
        rec.advance(at.saturating_sub(320)).unwrap();
    });

    let mut t = Transcoder::new(Codec::Pcmu, Codec::Pcma).unwrap();
    let mut outs = Vec::new();
    time("transcode PCMU -> PCMA", 1_000_000, |_| {
        t.transcode(black_box(&ulaw), &mut outs).unwrap();
        outs.clear();
    });
    let mut up = tandem_media::Resampler::new(8000, 48_000);
    let mut wide = Vec::with_capacity(960);
    time("resample 8 kHz -> 48 kHz (160 -> 960)", 100_000, |_| {
        wide.clear();
        up.process(black_box(&pcm), &mut wide);
    });
    let mut down = tandem_media::Resampler::new(48_000, 8000);
    let mut narrow = Vec::with_capacity(160);
    let wide_in = vec![1000i16; 960];
    time("resample 48 kHz -> 8 kHz (960 -> 160)", 100_000, |_| {
        narrow.clear();
        down.process(black_box(&wide_in), &mut narrow);
    });
    // Conference mixer: every party pushes one frame, then one tick.
    for (parties, wide) in [(10u32, 0u32), (50, 0), (10, 2)] {
        let mut m = Mixer::new();
        let wide_pcm: Vec<i16> = (0..960)
            .map(|k| (8000.0 * (k as f32 * 0.131).sin()) as i16)
            .collect();
        for id in 0..parties {
            let rate = if id < wide { 48_000 } else { 8000 };
            m.add_party(PartyId(id), rate).unwrap();
        }
        let name = format!("mixer tick, {parties} parties ({wide} at 48 kHz)");
        time(&name, 10_000, |_| {
            for id in 0..parties {
                let frame: &[i16] = if id < wide { &wide_pcm } else { &pcm };
                m.push(PartyId(id), black_box(frame)).unwrap();
            }
            m.tick();
            black_box(m.output(PartyId(parties - 1)).unwrap());
        });
    }
    if let Ok(mut t) = Transcoder::new(Codec::Pcmu, Codec::Opus) {
        time("transcode PCMU -> Opus (resample + encode)", 5_000, |_| {
            t.transcode(black_box(&ulaw), &mut outs).unwrap();
            outs.clear();
        });
    }
    if let (Ok(mut a), Ok(mut b)) = (
        Transcoder::new(Codec::Pcmu, Codec::Opus),
        Transcoder::new(Codec::Opus, Codec::Pcmu),
    ) {
        let mut opus = Vec::new();
        a.transcode(&ulaw, &mut opus).unwrap();
        let packet = opus.pop().unwrap();
        time("transcode Opus -> PCMU (decode + resample)", 5_000, |_| {
            b.transcode(black_box(&packet), &mut outs).unwrap();
            outs.clear();
        });
    }
}
