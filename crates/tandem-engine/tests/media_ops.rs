//! Media operations on real loopback legs: sendDigits decoded at the far
//! end (RFC 4733 with telephone-event, in-band without), the DTMF tap fed
//! RFC 4733 packets and in-band tones, `<Say>` through espeak-ng and
//! `<Play>` of files and HTTP URLs. Real UDP sockets, so real time (each
//! test lasts at most about a second of audio).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tandem_engine::media_ops::{
    DigitsSource, DtmfKind, PromptError, Prompts, PromptsConfig, dtmf_tap, fan_out,
};
use tandem_media::dtmf::InbandConfig;
use tandem_media::rfc4733::{EventEncoderConfig, EventReceiver, encode_digits};
use tandem_media::{DtmfDetector, InbandDigits};
use tandem_rtp::relay::{Injection, tap_channel};
use tandem_rtp::rtp::{RtpHeader, write_header};
use tandem_rtp::sdp::{Codec, Direction, NegotiatedMedia, PayloadFormat};
use tandem_rtp::{Leg, LegConfig, LegId, PoolConfig, PortPool};
use tandem_twiml::Loop;
use tokio::net::UdpSocket;

/// A one-pair pool on a port the OS reports free right now.
fn pool() -> PortPool {
    for _ in 0..100 {
        let Ok(s) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = s.local_addr().map(|a| a.port() & !1) else {
            continue;
        };
        drop(s);
        if !(1024..65534).contains(&port) {
            continue;
        }
        if let Ok(p) = PortPool::bind(&PoolConfig {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: port,
            port_max: port + 1,
            recv_buffer: None,
        }) && p.capacity() == 1
        {
            return p;
        }
    }
    panic!("no free RTP port pair on 127.0.0.1")
}

fn media(remote: SocketAddr, codec: Codec, pt: u8, te: Option<u8>) -> NegotiatedMedia {
    let codec = PayloadFormat::new(pt, codec);
    let te = te.map(|p| PayloadFormat::new(p, Codec::TelephoneEvent));
    let mut formats = vec![codec.clone()];
    formats.extend(te.clone());
    NegotiatedMedia {
        remote_rtp: Some(remote),
        remote_rtcp: None,
        formats,
        codec,
        telephone_event: te,
        ptime: 20,
        remote_direction: Direction::SendRecv,
        srtp: None,
    }
}

/// A leg whose remote is `ep`, and the pool that must outlive it.
fn leg_to(ep: &Endpoint, codec: Codec, pt: u8, te: Option<u8>) -> (PortPool, Leg) {
    let pool = pool();
    let Ok(pair) = pool.allocate() else {
        panic!("pool of one pair is empty")
    };
    let leg = Leg::start(pair, LegConfig::new(LegId(7)), None).expect("leg starts");
    leg.set_media(&media(ep.addr(), codec, pt, te));
    (pool, leg)
}

/// A phone on loopback.
struct Endpoint {
    sock: UdpSocket,
    seq: u16,
}

/// A packet as it arrived.
struct Rx {
    h: RtpHeader,
    payload: Vec<u8>,
    at: Instant,
}

impl Endpoint {
    async fn new() -> Endpoint {
        Endpoint {
            sock: UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
            seq: 100,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("local addr")
    }

    async fn send(&mut self, to: SocketAddr, marker: bool, pt: u8, ts: u32, payload: &[u8]) {
        let mut buf = vec![0u8; 12 + payload.len()];
        write_header(&mut buf, marker, pt, self.seq, ts, 0x1234_5678);
        buf[12..].copy_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.sock.send_to(&buf, to).await.expect("send");
    }

    /// Receives while `inj` plays, stamping arrival times, then whatever
    /// is still in flight.
    async fn collect(&self, inj: &mut Injection) -> Vec<Rx> {
        let mut v = Vec::new();
        let mut buf = [0u8; 2048];
        {
            let done = inj.finished();
            tokio::pin!(done);
            loop {
                tokio::select! {
                    r = self.sock.recv_from(&mut buf) => {
                        if let Ok((n, _)) = r && let Some(p) = parse(&buf[..n]) {
                            v.push(p);
                        }
                    }
                    () = &mut done => break,
                }
            }
        }
        v.extend(self.drain(Duration::from_millis(100)).await);
        v
    }

    /// Everything that arrives until `quiet` passes with nothing.
    async fn drain(&self, quiet: Duration) -> Vec<Rx> {
        let mut v = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(Ok((n, _))) = tokio::time::timeout(quiet, self.sock.recv_from(&mut buf)).await
        {
            v.extend(parse(&buf[..n]));
        }
        v
    }
}

fn parse(buf: &[u8]) -> Option<Rx> {
    let h = RtpHeader::parse(buf)?;
    Some(Rx {
        h,
        payload: buf[h.payload_offset..h.payload_offset + h.payload_len].to_vec(),
        at: Instant::now(),
    })
}

fn decode(pkts: &[Rx], alaw: bool) -> Vec<i16> {
    let mut pcm = Vec::new();
    for p in pkts {
        let mut out = vec![0i16; p.payload.len()];
        let n = tandem_rtp::codec::decode_g711(&p.payload, &mut out, alaw);
        pcm.extend_from_slice(&out[..n]);
    }
    pcm
}

fn near(got: i64, want: i64, tol: i64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: {got}, expected {want} ± {tol}"
    );
}

#[tokio::test]
async fn send_digits_go_as_rfc4733_events_with_the_pause() {
    let ep = Endpoint::new().await;
    let (_pool, leg) = leg_to(&ep, Codec::Pcmu, 0, Some(101));
    let src = DigitsSource::new("12w#").expect("valid digits");
    assert_eq!(src.duration(), Duration::from_millis(1100));
    let mut inj = leg.inject(src);
    let got = ep.collect(&mut inj).await;
    assert!(!got.is_empty());
    assert!(got.iter().all(|p| p.h.pt == 101), "only telephone-events");
    let mut rx = EventReceiver::new();
    let mut firsts = Vec::new();
    for p in &got {
        if let Ok(Some(ev)) = rx.receive(p.h.ts, p.h.marker, &p.payload) {
            firsts.push((ev.digit, p.h.ts, p.at));
        }
    }
    let digits: String = firsts.iter().filter_map(|f| f.0).collect();
    assert_eq!(digits, "12#");
    // 100 ms tone + 100 ms gap per digit; `w` adds 500 ms.
    let ts = |i: usize| i64::from(firsts[i].1);
    assert_eq!(ts(1) - ts(0), 1600);
    assert_eq!(ts(2) - ts(1), 1600 + 4000);
    let ms = |a: Instant, b: Instant| b.duration_since(a).as_millis() as i64;
    near(
        ms(firsts[0].2, firsts[1].2),
        200,
        100,
        "1 -> 2 on the wire, ms",
    );
    near(
        ms(firsts[1].2, firsts[2].2),
        700,
        100,
        "2 -> # on the wire, ms",
    );
}

#[tokio::test]
async fn send_digits_go_in_band_without_telephone_event() {
    let ep = Endpoint::new().await;
    let (_pool, leg) = leg_to(&ep, Codec::Pcma, 8, None);
    let mut inj = leg.inject(DigitsSource::new("12w#").expect("valid digits"));
    inj.finished().await;
    let mut got = ep.drain(Duration::from_millis(100)).await;
    assert!(got.iter().all(|p| p.h.pt == 8), "only audio");
    got.sort_by_key(|p| p.h.seq);
    // 1.1 s of audio, one 20 ms packet per tick.
    near(got.len() as i64, 55, 1, "packets");
    let pcm = decode(&got, true);
    let mut det = DtmfDetector::default();
    let mut found = Vec::new();
    det.process(&pcm, &mut found);
    let digits: String = found.iter().map(|d| d.digit).collect();
    assert_eq!(digits, "12#");
    let at = |i: usize| found[i].at as i64;
    near(at(1) - at(0), 1600, 80, "1 -> 2, samples");
    near(at(2) - at(1), 5600, 80, "2 -> #, samples");
}

#[tokio::test]
async fn dtmf_tap_reports_each_rfc4733_digit_once() {
    let mut ep = Endpoint::new().await;
    let (_pool, leg) = leg_to(&ep, Codec::Pcmu, 0, Some(101));
    let (tap, mut digits) = dtmf_tap(16);
    leg.set_tap(Some(tap.clone()));
    // "55#" as a phone sends it: updates and three end packets per digit,
    // every packet of a digit with the digit's timestamp.
    let sched = encode_digits("55#", &EventEncoderConfig::default()).expect("schedule");
    let to = leg.local_rtp_addr();
    for p in &sched.packets {
        ep.send(to, p.marker, 101, 8000 + p.timestamp, &p.payload)
            .await;
        // A retransmitted end packet changes nothing.
        if p.is_end() {
            ep.send(to, false, 101, 8000 + p.timestamp, &p.payload)
                .await;
        }
    }
    let mut got = String::new();
    for _ in 0..3 {
        let d = tokio::time::timeout(Duration::from_secs(2), digits.recv())
            .await
            .expect("digit in time")
            .expect("channel open");
        assert_eq!(d.kind, DtmfKind::Rfc4733);
        assert_eq!(d.leg, LegId(7));
        got.push(d.digit);
    }
    assert_eq!(got, "55#");
    let extra = tokio::time::timeout(Duration::from_millis(200), digits.recv()).await;
    assert!(extra.is_err(), "no further digit: {extra:?}");
    assert_eq!(tap.dropped(), 0);
}

/// Sends `pcm` as 20 ms μ-law packets, as fast as loopback takes them.
async fn send_ulaw(ep: &mut Endpoint, to: SocketAddr, pcm: &[i16], ts0: u32) {
    for (i, frame) in pcm.chunks(160).enumerate() {
        let mut payload = vec![0u8; frame.len()];
        tandem_rtp::codec::encode_g711(frame, &mut payload, false);
        ep.send(to, i == 0, 0, ts0 + 160 * i as u32, &payload).await;
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[tokio::test]
async fn dtmf_tap_hears_in_band_tones_once() {
    let mut ep = Endpoint::new().await;
    let (_pool, leg) = leg_to(&ep, Codec::Pcmu, 0, None);
    let (tap, mut digits) = dtmf_tap(16);
    // The tap shares the leg's slot with another consumer (the recorder).
    let (other, mut frames, _) = tap_channel(256);
    leg.set_tap(Some(fan_out(vec![tap, other])));
    // Tones of 100 ms with 100 ms gaps, and a held key (300 ms) reported once.
    let cfg = InbandConfig::default();
    let mut pcm = Vec::new();
    let tones = InbandDigits::new("147", cfg).expect("digits");
    let mut part = vec![0i16; tones.total_samples() as usize];
    tones.fill(0, &mut part);
    pcm.extend_from_slice(&part);
    let held = InbandDigits::new(
        "#",
        InbandConfig {
            tone_ms: 300,
            ..cfg
        },
    )
    .expect("digits");
    let mut part = vec![0i16; held.total_samples() as usize];
    held.fill(0, &mut part);
    pcm.extend_from_slice(&part);
    let n_packets = pcm.len().div_ceil(160);
    send_ulaw(&mut ep, leg.local_rtp_addr(), &pcm, 0).await;
    let mut got = String::new();
    for _ in 0..4 {
        let d = tokio::time::timeout(Duration::from_secs(2), digits.recv())
            .await
            .expect("digit in time")
            .expect("channel open");
        assert_eq!(d.kind, DtmfKind::Inband);
        got.push(d.digit);
    }
    assert_eq!(got, "147#");
    let extra = tokio::time::timeout(Duration::from_millis(200), digits.recv()).await;
    assert!(extra.is_err(), "no further digit: {extra:?}");
    // The other tap saw every packet.
    let mut seen = 0;
    while frames.try_recv().is_ok() {
        seen += 1;
    }
    assert_eq!(seen, n_packets);
}

/// A phone that sends a key both ways (in-band audio and telephone-events)
/// is heard once.
#[tokio::test]
async fn dtmf_tap_reports_a_key_sent_both_ways_once() {
    let mut ep = Endpoint::new().await;
    let (_pool, leg) = leg_to(&ep, Codec::Pcmu, 0, Some(101));
    let (tap, mut digits) = dtmf_tap(16);
    leg.set_tap(Some(tap));
    let to = leg.local_rtp_addr();
    let tones = InbandDigits::new("9", InbandConfig::default()).expect("digits");
    let mut pcm = vec![0i16; tones.total_samples() as usize];
    tones.fill(0, &mut pcm);
    // The audio first (detected in-band), then the events for the same key.
    send_ulaw(&mut ep, to, &pcm, 0).await;
    let sched = encode_digits("9", &EventEncoderConfig::default()).expect("schedule");
    for p in &sched.packets {
        ep.send(to, p.marker, 101, p.timestamp, &p.payload).await;
    }
    // Then a key sent only as events.
    let sched = encode_digits("3", &EventEncoderConfig::default()).expect("schedule");
    for p in &sched.packets {
        ep.send(to, p.marker, 101, 4000 + p.timestamp, &p.payload)
            .await;
    }
    let mut got = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(300), digits.recv()).await {
        got.push((d.digit, d.kind));
    }
    assert_eq!(got, [('9', DtmfKind::Inband), ('3', DtmfKind::Rfc4733)]);
}

/// A fresh cache directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "tandem-media-ops-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn espeak_installed() -> bool {
    std::process::Command::new("espeak-ng")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn say_speaks_for_a_plausible_duration_and_caches_it() {
    if !espeak_installed() {
        eprintln!(
            "SKIPPED say_speaks_for_a_plausible_duration_and_caches_it: espeak-ng is not installed (scripts/setup installs it)"
        );
        return;
    }
    let dir = temp_dir("say");
    let prompts = Prompts::new(PromptsConfig::new(&dir), None);
    let text = "Hello from Tandem.";
    let speech = prompts
        .speech(text, Some("alice"), Some("en-US"))
        .await
        .expect("speech");
    let ms = speech.duration_ms();
    assert!((600..4000).contains(&ms), "speech lasts {ms} ms");
    let rms = tandem_media::goertzel::rms(speech.samples());
    assert!(rms > 300.0, "speech is audible (rms {rms})");
    // One cache file, named by hash; the second request does not run espeak-ng.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("cache dir")
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().to_string_lossy().into_owned();
    assert!(name.len() == 68 && name.ends_with(".wav"), "{name}");
    let again = prompts
        .speech(text, Some("alice"), Some("en-US"))
        .await
        .expect("cached speech");
    assert_eq!(again.samples(), speech.samples());
    // Text that looks like options is spoken, never parsed as arguments.
    let odd = prompts
        .speech("-w /tmp/x --help; rm -rf /", None, None)
        .await
        .expect("odd text is spoken");
    assert!(odd.duration_ms() > 500);
    assert_eq!(std::fs::read_dir(&dir).expect("cache dir").count(), 2);
    // Another voice is another file.
    prompts
        .speech(text, Some("man"), Some("en-GB"))
        .await
        .expect("speech");
    assert_eq!(std::fs::read_dir(&dir).expect("cache dir").count(), 3);

    // Played into a leg: its duration, in 20 ms packets.
    let ep = Endpoint::new().await;
    let (_pool, leg) = leg_to(&ep, Codec::Pcmu, 0, Some(101));
    let src = prompts
        .say(text, Some("alice"), Some("en-US"), Loop::Times(1))
        .await
        .expect("source");
    let mut inj = leg.inject(src);
    inj.finished().await;
    let got = ep.drain(Duration::from_millis(100)).await;
    near(got.len() as i64, ms.div_ceil(20) as i64, 1, "packets");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn say_errors_are_typed() {
    let dir = temp_dir("say-missing");
    let mut cfg = PromptsConfig::new(&dir);
    cfg.espeak = PathBuf::from("/nonexistent/espeak-ng");
    let prompts = Prompts::new(cfg, None);
    let e = prompts.speech("hello", None, None).await.unwrap_err();
    assert!(matches!(e, PromptError::TtsUnavailable { .. }), "{e}");
    let e = prompts.speech("   ", None, None).await.unwrap_err();
    assert!(matches!(e, PromptError::EmptyText), "{e}");
    let e = prompts
        .speech(&"a".repeat(5000), None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, PromptError::TextTooLong { .. }), "{e}");
    // Nothing half-written is left behind.
    let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/audio")
        .join(name)
}

#[tokio::test]
async fn play_of_a_wav_file_plays_its_duration_each_loop() {
    let path = fixture("sweep-8khz.wav").canonicalize().expect("fixture");
    let url = url::Url::from_file_path(&path).expect("file URL");
    let prompts = Prompts::new(PromptsConfig::new(temp_dir("play")), None);
    let src = prompts
        .play(url.as_str(), Loop::Times(2))
        .await
        .expect("source");
    assert_eq!(src.duration(), Duration::from_millis(500));
    let ep = Endpoint::new().await;
    let (_pool, leg) = leg_to(&ep, Codec::Pcmu, 0, None);
    let started = Instant::now();
    let mut inj = leg.inject(src);
    let got = ep.collect(&mut inj).await;
    // 2 × 0.5 s of audio in 20 ms packets, paced in real time.
    assert_eq!(got.len(), 50);
    let span = got[49].at.duration_since(got[0].at).as_millis() as i64;
    near(span, 980, 100, "first to last packet, ms");
    assert!(started.elapsed() >= Duration::from_millis(940));
    // The audio is the file's, twice.
    let pcm = decode(&got, false);
    let want = tandem_media::Prompt::open(&path, 8000).expect("fixture decodes");
    for (i, (&g, &w)) in pcm[4000..].iter().zip(want.samples()).enumerate() {
        let tol = (i32::from(w).abs() / 16).max(16);
        assert!(
            (i32::from(g) - i32::from(w)).abs() <= tol,
            "sample {i}: {g} vs {w}"
        );
    }
    // Cached: a second load does not read the file again (same samples).
    let again = prompts.audio(url.as_str()).await.expect("cached");
    assert_eq!(again.samples(), want.samples());
}

#[tokio::test]
async fn play_errors_are_typed() {
    let prompts = Prompts::new(PromptsConfig::new(temp_dir("play-err")), None);
    let e = prompts
        .play("ftp://example.com/a.wav", Loop::Times(1))
        .await
        .unwrap_err();
    assert!(matches!(e, PromptError::UnsupportedScheme { .. }), "{e}");
    let e = prompts.play("not a url", Loop::Times(1)).await.unwrap_err();
    assert!(matches!(e, PromptError::BadUrl { .. }), "{e}");
    let e = prompts
        .play("http://127.0.0.1:9/a.wav", Loop::Times(1))
        .await
        .unwrap_err();
    assert!(matches!(e, PromptError::NoHttpClient { .. }), "{e}");
    let e = prompts
        .play("file:///nonexistent/a.wav", Loop::Times(1))
        .await
        .unwrap_err();
    assert!(matches!(e, PromptError::File { .. }), "{e}");
    // The 24-bit fixture is refused by the decoder, typed.
    let url = url::Url::from_file_path(
        fixture("tone-1k-8khz-24bit.wav")
            .canonicalize()
            .expect("fixture"),
    )
    .expect("file URL");
    let e = prompts
        .play(url.as_str(), Loop::Times(1))
        .await
        .unwrap_err();
    assert!(matches!(e, PromptError::Decode(_)), "{e}");
}

/// A tiny HTTP/1.1 server: `/a.wav` (audio/wav), `/a.ul` (audio/basic),
/// `/big.wav` (too large), `/song.mp3` (audio/mpeg), anything else 404.
async fn http_server(wav: Vec<u8>, hits: Arc<AtomicUsize>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let wav = wav.clone();
            let hits = hits.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                hits.fetch_add(1, Ordering::Relaxed);
                let line = String::from_utf8_lossy(&req);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, ctype, body) = match path.as_str() {
                    "/a.wav" => ("200 OK", "audio/wav", wav),
                    "/a.ul" => ("200 OK", "audio/basic", vec![0xff; 8000]),
                    "/big.wav" => ("200 OK", "audio/wav", vec![0; 200_000]),
                    "/song.mp3" => ("200 OK", "audio/mpeg", b"ID3\x03\0\0\0".to_vec()),
                    _ => ("404 Not Found", "text/plain", b"no".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn play_fetches_http_audio_once_and_refuses_what_it_cannot_play() {
    let wav = std::fs::read(fixture("sweep-8khz.wav")).expect("fixture");
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = http_server(wav, hits.clone()).await;
    let http = tandem_webhook::WebhookClient::new(tandem_webhook::ClientConfig::default())
        .expect("client");
    let mut cfg = PromptsConfig::new(temp_dir("play-http"));
    cfg.max_play_bytes = 100_000;
    let prompts = Prompts::new(cfg, Some(http));
    let base = format!("http://{addr}");

    let a = prompts
        .audio(&format!("{base}/a.wav"))
        .await
        .expect("wav over http");
    assert_eq!(a.duration_ms(), 500);
    let b = prompts
        .audio(&format!("{base}/a.wav"))
        .await
        .expect("cached");
    assert_eq!(a.samples(), b.samples());
    assert_eq!(
        hits.load(Ordering::Relaxed),
        1,
        "the second play came from the cache"
    );

    let raw = prompts
        .audio(&format!("{base}/a.ul"))
        .await
        .expect("raw μ-law");
    assert_eq!(raw.duration_ms(), 1000);

    let e = prompts.audio(&format!("{base}/big.wav")).await.unwrap_err();
    assert!(matches!(e, PromptError::TooLarge { .. }), "{e}");
    let e = prompts
        .audio(&format!("{base}/song.mp3"))
        .await
        .unwrap_err();
    assert!(matches!(e, PromptError::UnsupportedFormat { .. }), "{e}");
    let e = prompts
        .audio(&format!("{base}/missing.wav"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, PromptError::HttpStatus { status: 404, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn ssml_breaks_are_heard_as_silence_not_read_out() {
    if !espeak_installed() {
        eprintln!(
            "SKIPPED ssml_breaks_are_heard_as_silence_not_read_out: espeak-ng is not installed (scripts/setup installs it)"
        );
        return;
    }
    let dir = temp_dir("ssml");
    let prompts = Prompts::new(PromptsConfig::new(&dir), None);
    let doc = tandem_twiml::parse(
        r#"<Response><Say>One <break time="2s"/> two <lang xml:lang="fr-FR">three</lang></Say></Response>"#,
    )
    .expect("parses");
    let tandem_twiml::Verb::Say(say) = &doc.verbs[0] else {
        panic!()
    };
    assert_eq!(
        say.ssml.as_deref(),
        Some(r#"<speak>One <break time="2s"/> two three</speak>"#)
    );
    let plain = prompts
        .speech("One two three", None, None)
        .await
        .expect("plain");
    let marked = prompts
        .say_ssml(
            say.ssml.as_deref().unwrap(),
            None,
            None,
            tandem_twiml::Loop::Times(1),
        )
        .await
        .expect("ssml");
    let marked_ms = marked.duration().as_millis() as u64;
    let plain_ms = plain.duration_ms();
    // The break adds about 2 s of silence; read out as words it would add
    // far less ("break time two s") and the tags are never spoken.
    assert!(
        marked_ms >= plain_ms + 1_600,
        "with the break {marked_ms} ms, without {plain_ms} ms"
    );
}
