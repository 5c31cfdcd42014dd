//! `<Dial record>` recordings: files fed by relay taps, their duration and
//! channels, `absent` recordings, the callback parameters, the sidecar
//! resource and the repair of files left by a crash.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tandem_engine::recording::{RecordFrom, RecordingOptions, RecordingStore, is_recording_sid};
use tandem_media::goertzel::{Goertzel, energy, rms, tone_share};
use tandem_media::wav;
use tandem_rtp::relay::{Tap, TapPacket};
use tandem_rtp::rtp::write_header;
use tandem_rtp::{Leg, LegConfig, LegId, PoolConfig, PortPool, bridge};
use tandem_twiml::{RecordMode, RecordingTrack as TwimlTrack, Trim as TwimlTrim};
use tandem_webhook::RecordingStatus;
use tokio::net::UdpSocket;
use tokio::time::{Instant, MissedTickBehavior};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const CALL: &str = "CAfedcba9876543210fedcba9876543210";
const TONE_A: f32 = 1000.0;
const TONE_B: f32 = 1700.0;

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("tandem-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn store(dir: &Path) -> RecordingStore {
    RecordingStore::new(dir, "http://127.0.0.1:8089/", ACCOUNT)
}

fn opts(record: RecordMode, track: TwimlTrack, trim: TwimlTrim) -> RecordingOptions {
    RecordingOptions::from_twiml(record, track, trim).unwrap()
}

/// 20 ms of `freq` as μ-law (frame `frame` of a continuous tone); freq 0 is silence.
fn tone(freq: f32, frame: usize) -> Vec<u8> {
    (0..160)
        .map(|i| {
            let n = (frame * 160 + i) as f32;
            let s = (2.0 * std::f32::consts::PI * freq * n / 8000.0).sin() * 8000.0;
            tandem_media::g711::linear_to_ulaw(s as i16)
        })
        .collect()
}

/// Hands `frames` packets of `freq` to `tap` as if received every 20 ms from `at0`.
fn feed(tap: &Arc<dyn Tap>, at0: Instant, frames: usize, freq: f32) {
    for i in 0..frames {
        let payload = tone(freq, i);
        tap.packet(&TapPacket {
            leg: LegId(1),
            at: at0 + Duration::from_millis(20 * i as u64),
            pt: 0,
            codec: None,
            marker: i == 0,
            seq: i as u16,
            ts: 160 * i as u32,
            ssrc: 0x1234,
            payload: &payload,
        });
    }
}

/// The file's interleaved samples, split per channel.
fn channels(path: &Path) -> (wav::WavInfo, Vec<Vec<i16>>) {
    let bytes = std::fs::read(path).unwrap();
    let mut cur = Cursor::new(&bytes);
    let info = wav::read_info(&mut cur).unwrap();
    assert_eq!(info.sample_rate, 8000);
    let data = &bytes[info.data_offset as usize..][..info.data_len as usize];
    let n = usize::from(info.channels);
    let samples: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let chans = (0..n)
        .map(|c| samples.iter().skip(c).step_by(n).copied().collect())
        .collect();
    (info, chans)
}

/// Share of the energy of `ch` at `freq`, over 10 ms blocks weighted by
/// their energy (a block at the edge of a gap holds a few samples of tone,
/// whose spectrum leaks, but weighs little).
fn weighted_share(ch: &[i16], freq: f32) -> f32 {
    let g = Goertzel::new(freq, 8000);
    let (mut power, mut total) = (0.0f64, 0.0f64);
    for block in ch.chunks_exact(80) {
        let f: Vec<f32> = block.iter().map(|&s| f32::from(s)).collect();
        power += f64::from(g.power(&f));
        total += f64::from(energy(&f)) * 40.0;
    }
    if total == 0.0 {
        0.0
    } else {
        (power / total) as f32
    }
}

/// `ch` carries `own` and not `other`: over the whole channel, and in every
/// 10 ms block the tone fills (rms of an 8000-amplitude sine is 5657).
/// Returns the number of full blocks.
fn assert_tone(ch: &[i16], own: f32, other: f32, name: &str) -> usize {
    let (mine, theirs) = (weighted_share(ch, own), weighted_share(ch, other));
    assert!(
        mine > 0.85 && theirs < 0.01,
        "{name}: {own} Hz share {mine}, {other} Hz share {theirs} over the channel"
    );
    let mut full = 0;
    for (i, block) in ch.chunks_exact(80).enumerate() {
        if rms(block) < 5500.0 {
            continue;
        }
        full += 1;
        let mine = tone_share(block, own, 8000);
        let theirs = tone_share(block, other, 8000);
        assert!(
            theirs < 0.02 && mine > 0.85,
            "{name}: block {i}: {own} Hz share {mine}, {other} Hz share {theirs}"
        );
    }
    full
}

/// A pool of `pairs` port pairs at a range picked at run time: an ephemeral
/// port the OS hands out, retried if something holds part of the range.
fn pool(pairs: u16) -> PortPool {
    for _ in 0..50 {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        let Some(max) = port.checked_add(2 * pairs - 1) else {
            continue;
        };
        if let Ok(p) = PortPool::bind(&PoolConfig {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: port,
            port_max: max,
            recv_buffer: None,
        }) && p.capacity() == usize::from(pairs)
        {
            return p;
        }
    }
    panic!("no free port range on 127.0.0.1")
}

/// A phone on loopback sending 20 ms μ-law packets.
struct Phone {
    sock: UdpSocket,
    seq: u16,
    ts: u32,
    ssrc: u32,
}

impl Phone {
    async fn new(ssrc: u32) -> Phone {
        Phone {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            seq: 100,
            ts: 8000,
            ssrc,
        }
    }

    async fn send(&mut self, to: SocketAddr, payload: &[u8]) {
        let mut buf = vec![0u8; 12 + payload.len()];
        write_header(&mut buf, false, 0, self.seq, self.ts, self.ssrc);
        buf[12..].copy_from_slice(payload);
        self.sock.send_to(&buf, to).await.unwrap();
        self.skip();
    }

    fn skip(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
    }

    /// Talks `freq` for `frames` packets at 20 ms pace, not sending the
    /// packets for which `lost(i)`.
    async fn talk(mut self, to: SocketAddr, frames: usize, freq: f32, lost: fn(usize) -> bool) {
        let mut iv = tokio::time::interval(Duration::from_millis(20));
        iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
        for i in 0..frames {
            iv.tick().await;
            if lost(i) {
                self.skip();
            } else {
                self.send(to, &tone(freq, i)).await;
            }
        }
    }
}

/// 5% loss: packets 3, 23, 43, ... are never sent.
fn lost(i: usize) -> bool {
    i % 20 == 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_recording_of_two_loopback_legs_lasts_the_call_with_a_tone_per_channel() {
    let dir = TempDir::new("rec-dual");
    let pool = pool(2);
    let a = Leg::start(pool.allocate().unwrap(), LegConfig::new(LegId(1)), None).unwrap();
    let b = Leg::start(pool.allocate().unwrap(), LegConfig::new(LegId(2)), None).unwrap();
    bridge(&a, &b);
    let (mut pa, mut pb) = (Phone::new(0xA).await, Phone::new(0xB).await);
    // Latch both legs before the recording starts.
    pa.send(a.local_rtp_addr(), &[0xff; 160]).await;
    pb.send(b.local_rtp_addr(), &[0xff; 160]).await;
    tokio::time::sleep(Duration::from_millis(30)).await;

    let store = store(&dir.0);
    let o = opts(
        RecordMode::RecordFromAnswerDual,
        TwimlTrack::Both,
        TwimlTrim::DoNotTrim,
    );
    assert_eq!((o.from, o.channels()), (RecordFrom::Answer, 2));
    let start = Instant::now();
    let (mut session, taps) = store.start(CALL, o, start).unwrap();
    assert!(is_recording_sid(session.sid()));
    a.set_tap(Some(taps.parent.clone()));
    b.set_tap(Some(taps.child.clone()));

    let ev = session.in_progress_event().params();
    assert_eq!(ev.get("RecordingStatus"), Some("in-progress"));
    assert_eq!(ev.get("RecordingDuration"), None);
    assert_eq!(ev.get("RecordingChannels"), Some("2"));
    let meta = std::fs::read_to_string(dir.0.join(format!("{}.json", session.sid()))).unwrap();
    assert!(meta.contains("\"status\": \"in-progress\""), "{meta}");

    let (a_addr, b_addr) = (a.local_rtp_addr(), b.local_rtp_addr());
    let ta = tokio::spawn(pa.talk(a_addr, 100, TONE_A, lost));
    let tb = tokio::spawn(pb.talk(b_addr, 100, TONE_B, lost));
    ta.await.unwrap();
    tb.await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let end = Instant::now();
    let info = session.stop(end).unwrap();
    a.set_tap(None);
    b.set_tap(None);
    let call = (end - start).as_secs_f64();

    assert_eq!(info.status, RecordingStatus::Completed);
    assert_eq!((info.channels, info.duration_secs), (2, 2));
    assert_eq!(info.path, dir.0.join(format!("{}.wav", info.sid)));
    assert_eq!(
        info.url,
        format!(
            "http://127.0.0.1:8089/2010-04-01/Accounts/{ACCOUNT}/Recordings/{}",
            info.sid
        )
    );
    let (wi, ch) = channels(&info.path);
    assert_eq!(wi.channels, 2);
    let secs = wi.frames() as f64 / 8000.0;
    assert!(
        (secs - call).abs() <= 0.040,
        "file lasts {secs:.3} s, call {call:.3} s ({:?})",
        info.summary
    );
    assert!(assert_tone(&ch[0], TONE_A, TONE_B, "channel 1 (caller)") > 150);
    assert!(assert_tone(&ch[1], TONE_B, TONE_A, "channel 2 (callee)") > 150);
    // The 5 lost packets of each leg are silence, not missing time.
    for c in &ch {
        let gap: usize = c
            .split(|&s| s != 0)
            .filter(|run| run.len() >= 40)
            .map(<[i16]>::len)
            .sum();
        let share = gap as f64 / c.len() as f64;
        assert!(
            (0.045..0.09).contains(&share),
            "{:.1}% silence",
            share * 100.0
        );
    }

    let p = info.event().params();
    let names: Vec<&str> = p.iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "AccountSid",
            "CallSid",
            "RecordingSid",
            "RecordingUrl",
            "RecordingStatus",
            "RecordingDuration",
            "RecordingChannels",
            "RecordingStartTime",
            "RecordingSource",
            "RecordingTrack"
        ]
    );
    assert_eq!(p.get("AccountSid"), Some(ACCOUNT));
    assert_eq!(p.get("CallSid"), Some(CALL));
    assert_eq!(p.get("RecordingSid"), Some(info.sid.as_str()));
    assert_eq!(p.get("RecordingUrl"), Some(info.url.as_str()));
    assert_eq!(p.get("RecordingStatus"), Some("completed"));
    assert_eq!(p.get("RecordingDuration"), Some("2"));
    assert_eq!(p.get("RecordingChannels"), Some("2"));
    assert_eq!(p.get("RecordingSource"), Some("DialVerb"));
    assert_eq!(p.get("RecordingTrack"), Some("both"));
    assert!(p.get("RecordingStartTime").unwrap().ends_with(" +0000"));

    let meta = std::fs::read_to_string(dir.0.join(format!("{}.json", info.sid))).unwrap();
    for want in [
        "\"status\": \"completed\"",
        "\"duration\": \"2\"",
        "\"channels\": 2",
        "\"source\": \"DialVerb\"",
        &format!("\"call_sid\": \"{CALL}\""),
        &format!("\"sid\": \"{}\"", info.sid),
    ] {
        assert!(meta.contains(want), "{want} not in {meta}");
    }
    assert!(session.stop(Instant::now()).is_err(), "stopped twice");
}

#[tokio::test]
async fn recording_with_no_packet_is_absent_and_leaves_no_file() {
    let dir = TempDir::new("rec-empty");
    let store = store(&dir.0);
    let start = Instant::now();
    let o = opts(
        RecordMode::RecordFromRinging,
        TwimlTrack::Both,
        TwimlTrim::DoNotTrim,
    );
    assert_eq!((o.from, o.channels()), (RecordFrom::Ringing, 1));
    let (mut session, _taps) = store.start(CALL, o, start).unwrap();
    let info = session.stop(start + Duration::from_secs(3)).unwrap();
    assert_eq!(info.status, RecordingStatus::Absent);
    assert_eq!(info.duration_secs, 0);
    assert!(!info.path.exists());
    let p = info.event().params();
    assert_eq!(p.get("RecordingStatus"), Some("absent"));
    assert_eq!(p.get("RecordingDuration"), Some("0"));
    let meta = std::fs::read_to_string(store.meta_path(&info.sid)).unwrap();
    assert!(meta.contains("\"status\": \"absent\""), "{meta}");
}

#[tokio::test]
async fn trim_silence_of_a_silent_call_is_absent() {
    let dir = TempDir::new("rec-trim-empty");
    let store = store(&dir.0);
    let start = Instant::now();
    let o = opts(
        RecordMode::RecordFromAnswerDual,
        TwimlTrack::Both,
        TwimlTrim::TrimSilence,
    );
    let (mut session, taps) = store.start(CALL, o, start).unwrap();
    feed(&taps.parent, start, 50, 0.0);
    feed(&taps.child, start, 50, 0.0);
    let info = session.stop(start + Duration::from_secs(1)).unwrap();
    assert_eq!(info.status, RecordingStatus::Absent);
    assert!(!info.path.exists());
}

#[tokio::test]
async fn trim_silence_cuts_leading_and_trailing_silence() {
    let dir = TempDir::new("rec-trim");
    let store = store(&dir.0);
    let start = Instant::now();
    let o = opts(
        RecordMode::RecordFromAnswer,
        TwimlTrack::Both,
        TwimlTrim::TrimSilence,
    );
    let (mut session, taps) = store.start(CALL, o, start).unwrap();
    // 1 s of silence, 1 s of tone, then 1 s of nothing.
    feed(&taps.parent, start, 50, 0.0);
    feed(&taps.parent, start + Duration::from_secs(1), 50, TONE_A);
    let info = session.stop(start + Duration::from_secs(3)).unwrap();
    assert_eq!(info.status, RecordingStatus::Completed);
    assert_eq!((info.channels, info.duration_secs), (1, 1));
    assert!(
        (980..=1000).contains(&info.duration_ms),
        "{} ms",
        info.duration_ms
    );
}

#[tokio::test]
async fn inbound_track_is_mono_with_the_caller_only() {
    let dir = TempDir::new("rec-inbound");
    let store = store(&dir.0);
    let start = Instant::now();
    // Dual with one track is written mono, as Twilio does.
    let o = opts(
        RecordMode::RecordFromAnswerDual,
        TwimlTrack::Inbound,
        TwimlTrim::DoNotTrim,
    );
    assert_eq!(o.channels(), 1);
    let (mut session, taps) = store.start(CALL, o, start).unwrap();
    feed(&taps.parent, start, 50, TONE_A);
    feed(&taps.child, start, 50, TONE_B);
    let info = session.stop(start + Duration::from_secs(1)).unwrap();
    assert_eq!(
        (info.status, info.channels),
        (RecordingStatus::Completed, 1)
    );
    assert_eq!(info.event().params().get("RecordingTrack"), Some("inbound"));
    let (wi, ch) = channels(&info.path);
    assert_eq!((wi.channels, wi.frames()), (1, 8000));
    assert!(assert_tone(&ch[0], TONE_A, TONE_B, "mono") > 95);
}

#[tokio::test]
async fn outbound_track_with_only_caller_audio_is_absent() {
    let dir = TempDir::new("rec-outbound");
    let store = store(&dir.0);
    let start = Instant::now();
    let o = opts(
        RecordMode::RecordFromAnswer,
        TwimlTrack::Outbound,
        TwimlTrim::DoNotTrim,
    );
    let (mut session, taps) = store.start(CALL, o, start).unwrap();
    feed(&taps.parent, start, 50, TONE_A);
    let info = session.stop(start + Duration::from_secs(1)).unwrap();
    assert_eq!(info.status, RecordingStatus::Absent);
}

#[tokio::test]
async fn mono_recording_mixes_both_legs() {
    let dir = TempDir::new("rec-mono");
    let store = store(&dir.0);
    let start = Instant::now();
    let o = opts(
        RecordMode::RecordFromAnswer,
        TwimlTrack::Both,
        TwimlTrim::DoNotTrim,
    );
    let (mut session, taps) = store.start(CALL, o, start).unwrap();
    feed(&taps.parent, start, 50, TONE_A);
    feed(&taps.child, start + Duration::from_secs(1), 50, TONE_B);
    let info = session.stop(start + Duration::from_secs(2)).unwrap();
    let (wi, ch) = channels(&info.path);
    assert_eq!((wi.channels, wi.frames()), (1, 16000));
    assert!(assert_tone(&ch[0][..8000], TONE_A, TONE_B, "first second") > 95);
    assert!(assert_tone(&ch[0][8000..], TONE_B, TONE_A, "second second") > 95);
}

#[tokio::test]
async fn taps_are_quiet_after_stop() {
    let dir = TempDir::new("rec-late");
    let store = store(&dir.0);
    let start = Instant::now();
    let o = opts(
        RecordMode::RecordFromAnswerDual,
        TwimlTrack::Both,
        TwimlTrim::DoNotTrim,
    );
    let (mut session, taps) = store.start(CALL, o, start).unwrap();
    feed(&taps.parent, start, 25, TONE_A);
    let info = session.stop(start + Duration::from_millis(500)).unwrap();
    let before = std::fs::read(&info.path).unwrap();
    // A tap the engine has not removed yet keeps receiving.
    feed(
        &taps.parent,
        start + Duration::from_millis(500),
        100,
        TONE_A,
    );
    assert_eq!(std::fs::read(&info.path).unwrap(), before);
    assert_eq!(before.len(), 44 + 4000 * 4);
}

/// A crash leaves the header short of the data and the sidecar
/// `in-progress`: `repair_all` fixes both at startup.
#[tokio::test]
async fn repair_all_fixes_files_left_by_a_crash() {
    let dir = TempDir::new("rec-crash");
    let store = store(&dir.0);
    let start = Instant::now();
    let o = opts(
        RecordMode::RecordFromAnswerDual,
        TwimlTrack::Both,
        TwimlTrim::DoNotTrim,
    );
    let (session, taps) = store.start(CALL, o, start).unwrap();
    let sid = session.sid().to_owned();
    feed(&taps.parent, start, 175, TONE_A);
    // 3.5 s fed: the recorder's look-ahead limit (2 s) finalised 1.5 s.
    drop(session);
    drop(taps);
    // The crash hit before the last header rewrite: sizes zero.
    let path = store.wav_path(&sid);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() >= 44 + 8000 * 4, "{} bytes", bytes.len());
    bytes[4..8].copy_from_slice(&36u32.to_le_bytes());
    bytes[40..44].copy_from_slice(&0u32.to_le_bytes());
    bytes.push(0x55); // half a sample frame
    std::fs::write(&path, &bytes).unwrap();
    // Unrelated files are left alone.
    std::fs::write(dir.0.join("notes.wav"), b"not a recording").unwrap();

    let report = store.repair_all().unwrap();
    assert_eq!((report.scanned, report.repaired, report.failed), (1, 1, 0));
    let (wi, _) = channels(&path);
    assert_eq!(wi.data_len as usize, bytes.len() - 1 - 44);
    let meta = std::fs::read_to_string(store.meta_path(&sid)).unwrap();
    assert!(meta.contains("\"status\": \"completed\""), "{meta}");
    assert!(!meta.contains("\"duration\": \"-1\""), "{meta}");
    // Idempotent.
    let again = store.repair_all().unwrap();
    assert_eq!((again.scanned, again.repaired), (1, 0));
    assert_eq!(
        std::fs::read(dir.0.join("notes.wav")).unwrap(),
        b"not a recording"
    );
}

#[test]
fn repair_all_of_a_missing_folder_is_empty() {
    let store = store(Path::new("/nonexistent/tandem/recordings"));
    assert_eq!(store.repair_all().unwrap().scanned, 0);
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let dir = TempDir::new("rec-nort");
    let o = opts(
        RecordMode::RecordFromAnswer,
        TwimlTrack::Both,
        TwimlTrim::DoNotTrim,
    );
    let err = store(&dir.0).start(CALL, o, Instant::now()).unwrap_err();
    assert!(err.to_string().contains("runtime"), "{err}");
}

#[test]
fn do_not_record_has_no_options() {
    assert_eq!(
        RecordingOptions::from_twiml(
            RecordMode::DoNotRecord,
            TwimlTrack::Both,
            TwimlTrim::DoNotTrim
        ),
        None
    );
}
