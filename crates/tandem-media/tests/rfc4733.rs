//! RFC 4733 telephone-event: schedule shape and send -> receive round trips
//! under loss, duplication and reordering.

use std::time::Duration;

use tandem_media::dtmf::DIGITS;
use tandem_media::rfc4733::{
    EventEncodeError, EventEncoderConfig, EventPacket, EventReceiver, encode_digits,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn receive_all<'a>(packets: impl IntoIterator<Item = &'a EventPacket>) -> String {
    let mut rx = EventReceiver::new();
    packets
        .into_iter()
        .filter_map(|p| rx.receive(p.timestamp, p.marker, &p.payload).unwrap())
        .map(|e| e.digit.unwrap())
        .collect()
}

#[test]
fn one_digit_is_marker_updates_every_50_ms_and_three_ends() {
    let cfg = EventEncoderConfig {
        tone: ms(200),
        ..EventEncoderConfig::default()
    };
    let s = encode_digits("5", &cfg).unwrap();
    let p = &s.packets;
    assert_eq!(p.len(), 3 + 3);
    // Updates at 50, 100, 150 ms carrying the duration so far.
    for (i, pkt) in p[..3].iter().enumerate() {
        assert_eq!(pkt.marker, i == 0);
        assert!(!pkt.is_end());
        assert_eq!(pkt.send_at, ms(50 * (i as u64 + 1)));
        assert_eq!(pkt.duration(), 400 * (i as u16 + 1));
    }
    // Three identical end packets with the full duration.
    for (i, pkt) in p[3..].iter().enumerate() {
        assert!(pkt.is_end());
        assert!(!pkt.marker);
        assert_eq!(pkt.duration(), 1600);
        assert_eq!(pkt.payload, p[3].payload);
        assert_eq!(pkt.send_at, ms(200 + 20 * i as u64));
    }
    // One timestamp for the whole event; payload fields per §2.3.
    assert!(p.iter().all(|x| x.timestamp == 0 && x.digit == '5'));
    assert_eq!(p[0].payload, [5, 10, 0x01, 0x90]);
    assert_eq!(p[3].payload, [5, 0x80 | 10, 0x06, 0x40]);
    assert_eq!(s.total, ms(300));
}

#[test]
fn digits_get_one_timestamp_each_and_w_pauses_half_a_second() {
    let s = encode_digits("1w#", &EventEncoderConfig::default()).unwrap();
    let stamps: Vec<u32> = s.packets.iter().map(|p| p.timestamp).collect();
    let mut distinct = stamps.clone();
    distinct.dedup();
    // 1 at 0; # after 100 ms tone + 100 ms gap + 500 ms pause = 700 ms.
    assert_eq!(distinct, vec![0, 5600]);
    let hash: Vec<&EventPacket> = s.packets.iter().filter(|p| p.digit == '#').collect();
    assert_eq!(hash[0].payload[0], 11);
    assert!(hash[0].marker);
    assert_eq!(hash[0].send_at, ms(750));
    assert_eq!(s.total, ms(900));
    assert_eq!(s.packets.iter().filter(|p| p.marker).count(), 2);
    assert_eq!(s.packets.iter().filter(|p| p.is_end()).count(), 6);
    // Send times never go backwards.
    assert!(s.packets.windows(2).all(|w| w[0].send_at <= w[1].send_at));
}

#[test]
fn wideband_clock_and_short_tones() {
    let cfg = EventEncoderConfig {
        clock_rate: 48_000,
        tone: ms(40),
        ..EventEncoderConfig::default()
    };
    let s = encode_digits("7", &cfg).unwrap();
    // Shorter than one update interval: the first end packet is the start.
    assert_eq!(s.packets.len(), 3);
    assert!(s.packets[0].marker && s.packets[0].is_end());
    assert_eq!(s.packets[0].duration(), 1920);
    let too_long = EventEncoderConfig {
        clock_rate: 48_000,
        tone: ms(2000),
        ..EventEncoderConfig::default()
    };
    assert_eq!(
        encode_digits("1", &too_long),
        Err(EventEncodeError::DurationTooLong)
    );
    assert!(matches!(
        encode_digits("12e", &EventEncoderConfig::default()),
        Err(EventEncodeError::InvalidDigit(_))
    ));
}

#[test]
fn every_digit_round_trips() {
    let s = encode_digits(DIGITS, &EventEncoderConfig::default()).unwrap();
    assert_eq!(receive_all(&s.packets), DIGITS);
    let lower = encode_digits("abcd", &EventEncoderConfig::default()).unwrap();
    assert_eq!(receive_all(&lower.packets), "ABCD");
}

#[test]
fn retransmitted_and_duplicated_packets_count_once() {
    let s = encode_digits("9955", &EventEncoderConfig::default()).unwrap();
    let doubled: Vec<&EventPacket> = s.packets.iter().flat_map(|p| [p, p]).collect();
    assert_eq!(receive_all(doubled), "9955");
}

#[test]
fn a_lost_start_packet_or_all_but_one_end_still_reports_the_digit() {
    let s = encode_digits("123", &EventEncoderConfig::default()).unwrap();
    let no_markers: Vec<&EventPacket> = s.packets.iter().filter(|p| !p.marker).collect();
    assert_eq!(receive_all(no_markers), "123");
    // Only the last end packet of each digit arrives.
    let last_ends: Vec<&EventPacket> = s
        .packets
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            p.is_end()
                && s.packets
                    .get(i + 1)
                    .is_none_or(|n| n.timestamp != p.timestamp)
        })
        .map(|(_, p)| p)
        .collect();
    assert_eq!(last_ends.len(), 3);
    assert_eq!(receive_all(last_ends), "123");
}

#[test]
fn late_packets_of_an_earlier_event_are_ignored() {
    let s = encode_digits("12", &EventEncoderConfig::default()).unwrap();
    let mut order: Vec<&EventPacket> = s.packets.iter().collect();
    // The last end packet of "1" arrives after "2" started.
    let late = order.remove(3);
    order.insert(5, late);
    assert_eq!(order[4].digit, '2');
    assert_eq!(receive_all(order), "12");
}

#[test]
fn timestamps_that_wrap_still_work() {
    let s = encode_digits("48", &EventEncoderConfig::default()).unwrap();
    let mut rx = EventReceiver::new();
    let base = u32::MAX - 1000;
    let got: String = s
        .packets
        .iter()
        .filter_map(|p| {
            rx.receive(base.wrapping_add(p.timestamp), p.marker, &p.payload)
                .unwrap()
        })
        .map(|e| e.digit.unwrap())
        .collect();
    assert_eq!(got, "48");
}

#[test]
fn a_long_event_split_by_the_duration_limit_is_one_event() {
    // §2.5.1.3: a segment ends at the 16-bit limit and the event goes on
    // with a new timestamp equal to the old one plus the duration.
    let mut rx = EventReceiver::new();
    assert!(
        rx.receive(1000, true, &[3, 10, 0xFF, 0xFF])
            .unwrap()
            .is_some()
    );
    assert!(
        rx.receive(1000 + 0xFFFF, false, &[3, 10, 0x01, 0x90])
            .unwrap()
            .is_none()
    );
    assert!(
        rx.receive(1000 + 0xFFFF, false, &[3, 0x8A, 0x03, 0x20])
            .unwrap()
            .is_none()
    );
    // The next press is new.
    assert!(
        rx.receive(200_000, true, &[3, 10, 0x01, 0x90])
            .unwrap()
            .is_some()
    );
}

#[test]
fn non_dtmf_events_are_reported_without_a_digit_and_short_payloads_refused() {
    let mut rx = EventReceiver::new();
    let e = rx.receive(0, true, &[16, 10, 0, 160]).unwrap().unwrap();
    assert_eq!(e.event, 16);
    assert_eq!(e.digit, None);
    assert!(rx.receive(160, true, &[1, 2, 3]).is_err());
}
