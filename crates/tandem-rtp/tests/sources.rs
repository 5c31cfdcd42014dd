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
