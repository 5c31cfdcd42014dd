//! Tandem's HTTP listener over real loopback TCP: `/healthz`, `/metrics`,
//! recording media and resource, auth, 404 for every malformed or foreign
//! path (no traversal), 405, 415, and a recording made by a session fetched
//! through its `RecordingUrl`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tandem_engine::http::{self, HttpServer, HttpState, Metrics};
use tandem_engine::recording::{RecordingOptions, RecordingStore};
use tandem_rtp::relay::LegId;
use tandem_rtp::relay::TapPacket;
use tandem_twiml::{RecordMode, RecordingTrack, Trim};
use tandem_webhook::{DialCallStatus, RecordingStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "s3cret-token";
const SID: &str = "RE0123456789abcdef0123456789abcdef";
const OTHER_SID: &str = "REffffffffffffffffffffffffffffffff";

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("tandem-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(p.join("rec")).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One raw HTTP/1.1 request (the target is sent exactly as given).
async fn request(server: &HttpServer, method: &str, target: &str, extra: &str) -> Reply {
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    let req =
        format!("{method} {target} HTTP/1.1\r\nHost: tandem\r\nConnection: close\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn store(dir: &Path) -> RecordingStore {
    RecordingStore::new(dir.join("rec"), "http://127.0.0.1:8089", ACCOUNT)
}

async fn start(dir: &Path, media_auth: bool) -> (HttpServer, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let mut state = HttpState::new(store(dir), TOKEN, Arc::clone(&metrics));
    state.media_auth = media_auth;
    let server = http::spawn("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap();
    (server, metrics)
}

/// A fake recording of `len` bytes (several body frames) and its sidecar.
fn fake_recording(dir: &Path, len: usize) -> Vec<u8> {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("rec").join(format!("{SID}.wav")), &bytes).unwrap();
    std::fs::write(
        dir.join("rec").join(format!("{SID}.json")),
        format!("{{\"sid\": \"{SID}\", \"status\": \"completed\"}}\n"),
    )
    .unwrap();
    bytes
}

fn media(sid_and_ext: &str) -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid_and_ext}")
}

/// `/healthz` tells the truth: when the health check fails (a SIP shard
/// with work waiting that does not move), it answers 503 with the reason.
#[tokio::test]
async fn healthz_fails_when_sip_is_stalled() {
    let dir = TempDir::new("http-health");
    let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut state = HttpState::new(store(&dir.0), TOKEN, Arc::new(Metrics::default()));
    let s = Arc::clone(&stalled);
    state.health = Some(Arc::new(move || {
        if s.load(std::sync::atomic::Ordering::Relaxed) {
            Err("SIP shard 1 has 40 messages waiting and has not moved for 6000 ms".into())
        } else {
            Ok(())
        }
    }));
    let server = http::spawn("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap();
    let r = request(&server, "GET", "/healthz", "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    stalled.store(true, std::sync::atomic::Ordering::Relaxed);
    let r = request(&server, "GET", "/healthz", "").await;
    assert_eq!(r.status, 503);
    assert!(r.text().starts_with("stalled: SIP shard 1"), "{}", r.text());
}

#[tokio::test]
async fn healthz_and_metrics() {
    let dir = TempDir::new("http-metrics");
    let (server, metrics) = start(&dir.0, false).await;
    let r = request(&server, "GET", "/healthz", "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));

    metrics.call_started();
    metrics.call_started();
    metrics.call_ended();
    metrics.dial_ended(DialCallStatus::Busy);
    metrics.dial_ended(DialCallStatus::NoAnswer);
    metrics.dial_ended(DialCallStatus::NoAnswer);
    metrics.recording_finished(RecordingStatus::Completed);
    metrics.recording_finished(RecordingStatus::Absent);
    metrics.webhook(Duration::from_millis(30), Ok(200));
    metrics.webhook(Duration::from_millis(3), Ok(500));
    metrics.webhook(Duration::from_secs(15), Err(true));
    metrics.trunk_registered("carrier", true);
    metrics.trunk_registered("backup", false);
    metrics.rtp_leg_closed(100, 90, 3);
    let r = request(&server, "GET", "/metrics", "").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    let text = r.text();
    for line in [
        "# TYPE tandem_calls_active gauge",
        "tandem_calls_active 1",
        "# TYPE tandem_calls counter",
        "tandem_calls_total 2",
        "tandem_webhooks_total{outcome=\"ok\"} 1",
        "tandem_webhooks_total{outcome=\"http_error\"} 1",
        "tandem_webhooks_total{outcome=\"timeout\"} 1",
        "tandem_webhook_duration_seconds_count 3",
        "tandem_webhook_duration_seconds_bucket{le=\"0.04\"} 2",
        "tandem_trunk_registered{trunk=\"backup\"} 0",
        "tandem_trunk_registered{trunk=\"carrier\"} 1",
        "tandem_rtp_packets_total{direction=\"received\"} 100",
        "tandem_rtp_packets_total{direction=\"sent\"} 90",
        "tandem_rtp_packets_lost_total 3",
        "tandem_dials_total{status=\"busy\"} 1",
        "tandem_dials_total{status=\"no-answer\"} 2",
        "tandem_dials_total{status=\"completed\"} 0",
        "tandem_recordings_total{status=\"completed\"} 1",
        "tandem_recordings_total{status=\"absent\"} 1",
        "tandem_http_requests_total 2",
        "# EOF",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in\n{text}"
        );
    }
    // Every sample line is `name{labels} value`, every family typed once.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = l.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
        let sample = name.split('{').next().unwrap();
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| sample.strip_suffix(s))
            .filter(|f| text.contains(&format!("# TYPE {f} ")))
            .unwrap_or(sample);
        assert!(text.contains(&format!("# TYPE {family} ")), "{l}");
    }
    metrics.call_ended();
    metrics.call_ended(); // never below zero
    assert_eq!(metrics.calls_active(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn recording_download_matches_the_file() {
    let dir = TempDir::new("http-media");
    let bytes = fake_recording(&dir.0, 300_000);
    let (server, _) = start(&dir.0, false).await;
    for target in [media(SID), media(&format!("{SID}.wav"))] {
        let r = request(&server, "GET", &target, "").await;
        assert_eq!(r.status, 200, "{target}");
        assert_eq!(r.header("content-type"), Some("audio/x-wav"));
        assert_eq!(r.header("content-length"), Some("300000"));
        assert!(
            r.body == bytes,
            "{target}: body differs ({} bytes)",
            r.body.len()
        );
    }
    let r = request(&server, "HEAD", &media(SID), "").await;
    assert_eq!(
        (r.status, r.header("content-length")),
        (200, Some("300000"))
    );
    assert!(r.body.is_empty());
    let r = request(&server, "GET", &media(&format!("{SID}.mp3")), "").await;
    assert_eq!(r.status, 415);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_malformed_and_traversal_paths_are_404() {
    let dir = TempDir::new("http-404");
    fake_recording(&dir.0, 100);
    // Files next to the recordings folder that a traversal would reach.
    std::fs::write(dir.0.join("secret.wav"), b"secret").unwrap();
    std::fs::write(dir.0.join(format!("{SID}x.wav")), b"secret").unwrap();
    let (server, _) = start(&dir.0, false).await;
    let other_account = "AC00000000000000000000000000000000";
    for target in [
        "/".to_owned(),
        "/nope".to_owned(),
        "/healthz/".to_owned(),
        media(OTHER_SID),
        media(&format!("{OTHER_SID}.wav")),
        media(&SID.to_lowercase().replacen("re", "xx", 1)),
        media(&SID[..33]),
        media(&format!("{SID}0")),
        media(&format!("{SID}.wav.json")),
        media(&format!("{SID}.txt")),
        media(&format!("{SID}/")),
        media(&format!("{SID}/x")),
        media("../secret"),
        media("..%2Fsecret"),
        media("%2e%2e%2fsecret"),
        media(&format!("..%2F{SID}x")),
        media(&format!("RE{}", "0".repeat(31) + "/")),
        format!("/2010-04-01/Accounts/{ACCOUNT}/Recordings/../../secret.wav"),
        format!("/2010-04-01/Accounts/{ACCOUNT}/Recordings"),
        format!("/2010-04-01/Accounts/{ACCOUNT}/Recordings/"),
        format!("/2010-04-01/Accounts/{other_account}/Recordings/{SID}"),
        format!("/2010-04-01/Accounts/../Recordings/{SID}"),
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{SID}"),
        format!("/2010-04-01//Accounts/{ACCOUNT}/Recordings/{SID}"),
        format!("/2010-04-01/Accounts/{ACCOUNT}/Recordings/{SID}?x=../../secret"),
    ] {
        let r = request(&server, "GET", &target, "").await;
        // The query string is not part of the path: that one is the file.
        let want = if target.contains('?') { 200 } else { 404 };
        assert_eq!(r.status, want, "{target}");
        assert!(!r.text().contains("secret"), "{target}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn other_methods_are_405() {
    let dir = TempDir::new("http-405");
    fake_recording(&dir.0, 100);
    let (server, _) = start(&dir.0, false).await;
    for (method, target) in [
        ("POST", media(SID)),
        ("PUT", media(SID)),
        ("PUT", "/healthz".to_owned()),
        ("POST", "/metrics".to_owned()),
    ] {
        let extra = if method == "GET" {
            ""
        } else {
            "Content-Length: 0\r\n"
        };
        let r = request(&server, method, &target, extra).await;
        assert_eq!(r.status, 405, "{method} {target}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    // The file is still there.
    assert!(dir.0.join("rec").join(format!("{SID}.wav")).exists());
    server.shutdown().await;
}

#[tokio::test]
async fn recording_resource_requires_basic_auth() {
    let dir = TempDir::new("http-auth");
    fake_recording(&dir.0, 100);
    let (server, _) = start(&dir.0, false).await;
    let target = media(&format!("{SID}.json"));
    let r = request(&server, "GET", &target, "").await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    for bad in [
        basic(ACCOUNT, "wrong"),
        basic(ACCOUNT, ""),
        basic("AC00000000000000000000000000000000", TOKEN),
        "Authorization: Bearer xyz\r\n".to_owned(),
        "Authorization: Basic !!!\r\n".to_owned(),
    ] {
        let r = request(&server, "GET", &target, &bad).await;
        assert_eq!(r.status, 401, "{bad}");
    }
    let r = request(&server, "GET", &target, &basic(ACCOUNT, TOKEN)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.text().contains(&format!("\"sid\": \"{SID}\"")));
    // Media stays public by default.
    assert_eq!(request(&server, "GET", &media(SID), "").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn media_auth_protects_recording_media() {
    let dir = TempDir::new("http-media-auth");
    let bytes = fake_recording(&dir.0, 1000);
    let (server, _) = start(&dir.0, true).await;
    assert_eq!(request(&server, "GET", &media(SID), "").await.status, 401);
    let r = request(&server, "GET", &media(SID), &basic(ACCOUNT, TOKEN)).await;
    assert_eq!(r.status, 200);
    assert!(r.body == bytes);
    // Health and metrics stay public.
    assert_eq!(request(&server, "GET", "/healthz", "").await.status, 200);
    assert_eq!(request(&server, "GET", "/metrics", "").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_finished_recording_is_served_at_its_recording_url() {
    let dir = TempDir::new("http-session");
    let (server, _) = start(&dir.0, false).await;
    let opts = RecordingOptions::from_twiml(
        RecordMode::RecordFromAnswerDual,
        RecordingTrack::Both,
        Trim::DoNotTrim,
    )
    .unwrap();
    let t0 = Instant::now();
    let (mut session, taps) = store(&dir.0).start("CA1", opts, t0).unwrap();
    for i in 0..50u32 {
        let payload = [0x20u8; 160];
        let p = TapPacket {
            leg: LegId(0),
            at: t0 + Duration::from_millis(20 * u64::from(i)),
            pt: 0,
            codec: None,
            marker: false,
            seq: i as u16,
            ts: 160 * i,
            ssrc: 7,
            payload: &payload,
        };
        taps.parent.packet(&p);
        taps.child.packet(&p);
    }
    let info = session.stop(t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(info.status, RecordingStatus::Completed);
    let path = info.url.strip_prefix("http://127.0.0.1:8089").unwrap();
    let r = request(&server, "GET", path, "").await;
    assert_eq!(r.status, 200);
    assert!(r.body == std::fs::read(&info.path).unwrap());
    assert_eq!(r.body.len(), 44 + 8000 * 4);
    let r = request(
        &server,
        "GET",
        &format!("{path}.json"),
        &basic(ACCOUNT, TOKEN),
    )
    .await;
    assert_eq!(r.status, 200);
    let json = r.text();
    for want in [
        format!("\"sid\": \"{}\"", info.sid),
        format!("\"account_sid\": \"{ACCOUNT}\""),
        "\"call_sid\": \"CA1\"".to_owned(),
        "\"duration\": \"1\"".to_owned(),
        "\"channels\": 2".to_owned(),
        "\"status\": \"completed\"".to_owned(),
        format!("\"uri\": \"{path}.json\""),
    ] {
        assert!(json.contains(&want), "{want} not in {json}");
    }
    server.shutdown().await;
}

/// A sidecar with the fields the list filters and sorts on.
fn sidecar(dir: &Path, sid: &str, call: &str, created: &str, status: &str) {
    std::fs::write(dir.join("rec").join(format!("{sid}.wav")), b"RIFF").unwrap();
    std::fs::write(
        dir.join("rec").join(format!("{sid}.json")),
        format!(
            "{{\"sid\": \"{sid}\", \"call_sid\": \"{call}\", \"date_created\": \"{created}\", \"status\": \"{status}\"}}\n"
        ),
    )
    .unwrap();
}

fn sids(r: &Reply) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["sid"].as_str().unwrap().to_owned())
        .collect()
}

/// The Recordings list (all, by call, by date, paged) and DELETE: the
/// WAV and its resource go (204), a second DELETE is 404, a recording in
/// progress is refused (400), and every request needs Basic auth.
#[tokio::test]
async fn recordings_are_listed_filtered_and_deleted() {
    let dir = TempDir::new("http-list");
    let (a, b, c) = (
        "RE00000000000000000000000000000001",
        "RE00000000000000000000000000000002",
        "RE00000000000000000000000000000003",
    );
    let ca = "CA0123456789abcdef0123456789abcdef";
    sidecar(
        &dir.0,
        a,
        ca,
        "Mon, 16 Aug 2010 03:25:01 +0000",
        "completed",
    );
    sidecar(
        &dir.0,
        b,
        "CAffffffffffffffffffffffffffffffff",
        "Tue, 17 Aug 2010 03:25:01 +0000",
        "completed",
    );
    sidecar(
        &dir.0,
        c,
        ca,
        "Wed, 18 Aug 2010 03:25:01 +0000",
        "in-progress",
    );
    let (server, _) = start(&dir.0, false).await;
    let auth = basic(ACCOUNT, TOKEN);
    let list = format!("/2010-04-01/Accounts/{ACCOUNT}/Recordings.json");
    assert_eq!(request(&server, "GET", &list, "").await.status, 401);
    let r = request(&server, "GET", &list, &auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sids(&r), [c, b, a], "newest first");
    let r = request(&server, "GET", &format!("{list}?CallSid={ca}"), &auth).await;
    assert_eq!(sids(&r), [c, a]);
    let of_call = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{ca}/Recordings.json");
    assert_eq!(
        sids(&request(&server, "GET", &of_call, &auth).await),
        [c, a]
    );
    let r = request(
        &server,
        "GET",
        &format!("{list}?DateCreated%3E=2010-08-17"),
        &auth,
    )
    .await;
    assert_eq!(sids(&r), [c, b]);
    let r = request(&server, "GET", &format!("{list}?PageSize=2&Page=1"), &auth).await;
    assert_eq!(sids(&r), [a]);

    let del = |sid: &str| format!("/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid}.json");
    let extra = format!("{auth}Content-Length: 0\r\n");
    assert_eq!(
        request(&server, "DELETE", &del(a), "Content-Length: 0\r\n")
            .await
            .status,
        401
    );
    let r = request(&server, "DELETE", &del(a), &extra).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    assert!(!dir.0.join("rec").join(format!("{a}.wav")).exists());
    assert!(!dir.0.join("rec").join(format!("{a}.json")).exists());
    assert_eq!(
        request(&server, "DELETE", &del(a), &extra).await.status,
        404
    );
    assert_eq!(request(&server, "GET", &media(a), "").await.status, 404);
    let r = request(&server, "DELETE", &del(c), &extra).await;
    assert_eq!(r.status, 400, "in progress: {}", r.text());
    assert!(dir.0.join("rec").join(format!("{c}.wav")).exists());
    assert_eq!(sids(&request(&server, "GET", &list, &auth).await), [c, b]);
}
