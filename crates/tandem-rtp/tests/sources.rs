//! The ready-made injection sources, played into a leg and checked at the
//! far end with tandem-media's detectors: ringback, RFC 4733 digits and
//! in-band digits. Paced on paused tokio time.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tandem_media::goertzel::tone_share;
use tandem_media::rfc4733::EventReceiver;
use tandem_media::{DtmfDetector, RingTone};
use tandem_rtp::relay::{DigitsSource, RingbackSource};
use tandem_rtp::sdp::{Codec, Direction, NegotiatedMedia, PayloadFormat};
use tandem_rtp::{Leg, LegConfig, LegId};

fn media(remote: SocketAddr, codec: Codec, pt: u8, te_pt: Option<u8>) -> NegotiatedMedia {
    let codec = PayloadFormat::new(pt, codec);
    let te = te_pt.map(|p| PayloadFormat::new(p, Codec::TelephoneEvent));
    NegotiatedMedia {
        remote_rtp: Some(remote),
        remote_rtcp: None,
        formats: vec![codec.clone()],
        codec,
        telephone_event: te,
        ptime: 20,
        remote_direction: Direction::SendRecv,
        srtp: None,
    }
}

fn decode(p: &Rx, alaw: bool) -> Vec<i16> {
    let mut pcm = vec![0i16; p.payload.len()];
    tandem_rtp::codec::decode_g711(&p.payload, &mut pcm, alaw);
    pcm
}

#[tokio::test(start_paused = true)]
async fn ringback_plays_the_countrys_tone() {
    let pool = pool(22240, 1);
    let leg = Leg::start(pool.allocate().unwrap(), LegConfig::new(LegId(1)), None).unwrap();
    let ep = Endpoint::new(1).await;
    leg.set_media(&media(ep.addr(), Codec::Pcma, 8, None));
    let ring = leg.inject(RingbackSource::new(RingTone::Us));
    // The US cadence is 2 s on, 4 s off: the first second is tone.
    tokio::time::sleep(Duration::from_millis(990)).await;
    drop(ring);
    let got = ep.drain(Duration::from_millis(1)).await;
    assert_eq!(got.len(), 50);
    assert_continuous(&got);
    let pcm: Vec<i16> = got.iter().flat_map(|p| decode(p, true)).collect();
    let both = tone_share(&pcm[800..7200], 440.0, 8000) + tone_share(&pcm[800..7200], 480.0, 8000);
    assert!(both > 0.9, "440+480 Hz share {both}");
}

#[tokio::test(start_paused = true)]
async fn digits_go_as_rfc4733_events_when_negotiated() {
    let pool = pool(22250, 1);
    let leg = Leg::start(pool.allocate().unwrap(), LegConfig::new(LegId(1)), None).unwrap();
    let ep = Endpoint::new(1).await;
    leg.set_media(&media(ep.addr(), Codec::Pcmu, 0, Some(101)));
    let mut inj = leg.inject(DigitsSource::new("1w2#").unwrap());
    inj.finished().await;
    let got = ep.drain(Duration::from_millis(1)).await;
    assert!(got.iter().all(|p| p.h.pt == 101));
    let mut rx = EventReceiver::new();
    let digits: String = got
        .iter()
        .filter_map(|p| rx.receive(p.h.ts, p.h.marker, &p.payload).unwrap())
        .filter_map(|e| e.digit)
        .collect();
    assert_eq!(digits, "12#");
    // Three end packets per digit, all with the digit's timestamp.
    let ends = got.iter().filter(|p| p.payload[1] & 0x80 != 0).count();
    assert_eq!(ends, 9);
    assert_eq!(got.iter().filter(|p| p.h.marker).count(), 3);
}

#[tokio::test(start_paused = true)]
async fn digits_go_in_band_without_telephone_event() {
    let pool = pool(22260, 1);
    let leg = Leg::start(pool.allocate().unwrap(), LegConfig::new(LegId(1)), None).unwrap();
    let ep = Endpoint::new(1).await;
    leg.set_media(&media(ep.addr(), Codec::Pcmu, 0, None));
    let mut inj = leg.inject(DigitsSource::new("*905").unwrap());
    inj.finished().await;
    let got = ep.drain(Duration::from_millis(1)).await;
    assert!(got.iter().all(|p| p.h.pt == 0));
    assert_continuous(&got);
    let pcm: Vec<i16> = got.iter().flat_map(|p| decode(p, false)).collect();
    let mut det = DtmfDetector::new(Default::default());
    let mut found = Vec::new();
    det.process(&pcm, &mut found);
    let digits: String = found.iter().map(|d| d.digit).collect();
    assert_eq!(digits, "*905");
    assert!(DigitsSource::new("12x").is_err());
}

/// Decodes an Opus stream (48 kHz) and brings it to 8 kHz for the detectors.
fn decode_opus(got: &[Rx]) -> Vec<i16> {
    let mut dec = tandem_media::Decoder::new(Codec::Opus).expect("opus decoder");
    let mut pcm48 = Vec::new();
    for p in got {
        dec.decode(&p.payload, &mut pcm48).expect("valid opus");
    }
    let mut down = tandem_media::Resampler::new(48_000, 8000);
    let mut pcm8 = Vec::new();
    down.process(&pcm48, &mut pcm8);
    pcm8
}

#[tokio::test(start_paused = true)]
async fn ringback_reaches_an_opus_leg() {
    let pool = pool(22270, 1);
    let leg = Leg::start(pool.allocate().unwrap(), LegConfig::new(LegId(1)), None).unwrap();
    let ep = Endpoint::new(1).await;
    leg.set_media(&media(ep.addr(), Codec::Opus, 111, None));
    let ring = leg.inject(RingbackSource::new(RingTone::Uk));
    // UK: 400+450 Hz, 0.4 s on 0.2 off 0.4 on 2 off.
    tokio::time::sleep(Duration::from_millis(990)).await;
    drop(ring);
    let got = ep.drain(Duration::from_millis(1)).await;
    assert_eq!(got.len(), 50, "one Opus packet per 20 ms");
    assert!(got.iter().all(|p| p.h.pt == 111));
    assert_continuous(&got);
    // Timestamps in the 48 kHz clock of Opus (RFC 7587 §4.1).
    assert!(
        got.windows(2)
            .all(|w| w[1].h.ts.wrapping_sub(w[0].h.ts) == 960)
    );
    let pcm = decode_opus(&got);
    // The first burst, past the codec's start-up.
    let burst = &pcm[800..3000];
    let both = tone_share(burst, 400.0, 8000) + tone_share(burst, 450.0, 8000);
    assert!(both > 0.8, "400+450 Hz share {both}");
}

#[tokio::test(start_paused = true)]
async fn digits_go_in_band_on_an_opus_leg() {
    let pool = pool(22290, 1);
    let leg = Leg::start(pool.allocate().unwrap(), LegConfig::new(LegId(1)), None).unwrap();
    let ep = Endpoint::new(1).await;
    leg.set_media(&media(ep.addr(), Codec::Opus, 111, None));
    let mut inj = leg.inject(DigitsSource::new("5#").unwrap());
    inj.finished().await;
    let got = ep.drain(Duration::from_millis(1)).await;
    // Two digits of 100 ms tone + 100 ms gap, in 20 ms packets.
    assert_eq!(got.len(), 20);
    assert!(got.iter().all(|p| p.h.pt == 111));
    assert!(
        got.windows(2)
            .all(|w| w[1].h.ts.wrapping_sub(w[0].h.ts) == 960)
    );
    // A trailing gap lets the detector see the last digit end.
    let mut pcm = decode_opus(&got);
    pcm.extend(std::iter::repeat_n(0, 800));
    let mut det = DtmfDetector::new(Default::default());
    let mut found = Vec::new();
    det.process(&pcm, &mut found);
    let digits: String = found.iter().map(|d| d.digit).collect();
    assert_eq!(digits, "5#");
}

#[test]
fn digit_strings_are_checked_before_the_call() {
    use tandem_rtp::relay::{DigitsError, MAX_DIGITS};
    assert_eq!(DigitsSource::new("").unwrap_err(), DigitsError::Empty);
    assert_eq!(
        DigitsSource::new("12x").unwrap_err(),
        DigitsError::Invalid {
            digit: 'x',
            index: 2
        }
    );
    let long = "1".repeat(MAX_DIGITS + 1);
    assert!(matches!(
        DigitsSource::new(&long),
        Err(DigitsError::TooLong { .. })
    ));
    // 3 digits of 200 ms and one 500 ms pause.
    let s = DigitsSource::new("12w#").unwrap();
    assert_eq!(s.duration(), Duration::from_millis(1100));
    assert!(DigitsSource::new("wW*#ABCDabcd0").is_ok());
}
