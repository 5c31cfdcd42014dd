//! The REST API as a client uses it (issue 11, docs/api.md), over real
//! loopback sockets: a caller rings a number whose `<Dial>` forks to two
//! callees; the API lists the three calls, cancels one ringing child (it
//! gets a CANCEL), sees the other answer, moves the parent to new TwiML
//! (the bridged callee and then the caller get BYE), and finds every call
//! with its final status — again after the engine restarts on the same
//! database. Wrong credentials get 401, another account 404.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tandem_engine::http::HttpServer;
use tandem_engine::{Engine, EngineConfig, MediaConfig, NumberRoute, Trunk, TwimlSource};
use tandem_test_support::sdp::{sdp, sdp_port};
use tandem_transport::{Endpoint, EndpointConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "api-test-token";

/// A SIP peer on a UDP socket that reads messages and answers requests.
struct Peer {
    sock: UdpSocket,
    tag: &'static str,
}

impl Peer {
    async fn new(tag: &'static str) -> Peer {
        Peer {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            tag,
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    /// The next message whose first line starts with `prefix` (others are skipped).
    async fn expect(&self, prefix: &str) -> (String, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = timeout(WAIT, self.sock.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{prefix} within 5 s"))
                .unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with(prefix) {
                return (text, from);
            }
        }
    }

    /// Answers `req` with `status` (a To tag added).
    async fn reply(&self, req: &str, status: &str, to: SocketAddr) {
        self.reply_with(req, status, to, "").await;
    }

    /// Answers `req` with `status` and an SDP body (when not empty).
    async fn reply_with(&self, req: &str, status: &str, to: SocketAddr, sdp: &str) {
        let mut m = format!("SIP/2.0 {status}\r\n");
        for l in req.lines().skip(1) {
            let name = l
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if ["via", "from", "call-id", "cseq"].contains(&name.as_str()) {
                m.push_str(l);
                m.push_str("\r\n");
            } else if name == "to" {
                if l.contains("tag=") {
                    m.push_str(l);
                } else {
                    m.push_str(&format!("{l};tag={}", self.tag));
                }
                m.push_str("\r\n");
            }
        }
        let ct = if sdp.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        m.push_str(&format!(
            "Contact: <sip:{}@127.0.0.1:{}>\r\n{ct}Content-Length: {}\r\n\r\n{sdp}",
            self.tag,
            self.port(),
            sdp.len()
        ));
        self.sock.send_to(m.as_bytes(), to).await.unwrap();
    }
}

impl Peer {
    /// Calls +15550001000 at `tandem` (with `sdp` when not empty) and ACKs
    /// its 200, which it returns.
    async fn call_in(&self, tandem: SocketAddr, call_id: &str, sdp: &str) -> String {
        let cport = self.port();
        let tag = self.tag;
        let invite = format!(
            "INVITE sip:+15550001000@{tandem} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bK{call_id}1;rport\r\n\
             From: <sip:+15551112222@127.0.0.1>;tag={tag}\r\nTo: <sip:+15550001000@{tandem}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:{cport}>\r\nMax-Forwards: 70\r\n{}Content-Length: {}\r\n\r\n{sdp}",
            if sdp.is_empty() {
                ""
            } else {
                "Content-Type: application/sdp\r\n"
            },
            sdp.len()
        );
        self.sock.send_to(invite.as_bytes(), tandem).await.unwrap();
        let (ok, _) = self.expect("SIP/2.0 200").await;
        let to = header(&ok, "To").to_owned();
        let ack = format!(
            "ACK sip:tandem@{tandem} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bK{call_id}2\r\n\
             From: <sip:+15551112222@127.0.0.1>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        self.sock.send_to(ack.as_bytes(), tandem).await.unwrap();
        ok
    }
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("{name} missing in:\n{msg}"))
}

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: not JSON: {}", self.body))
    }
}

/// One HTTP/1.1 request with Basic auth (`None`: none) and a form body.
async fn http(
    server: &HttpServer,
    method: &str,
    target: &str,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Reply {
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    let body = {
        let mut f = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            f.append_pair(k, v);
        }
        f.finish()
    };
    let auth = auth.map_or(String::new(), |(u, p)| {
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    });
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: tandem\r\nConnection: close\r\n{auth}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    Reply {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        body: body.to_owned(),
    }
}

const OK: Option<(&str, &str)> = Some((ACCOUNT, TOKEN));

fn calls_uri(rest: &str) -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT}/Calls{rest}")
}

fn config(dir: &Path, tandem: SocketAddr, doc: PathBuf, media: bool) -> EngineConfig {
    // An RTP range of its own per media engine of this test process, below
    // the kernel's ephemeral ports (32768 up), where the tests' own sockets
    // bound to port 0 land.
    static MEDIA_ENGINES: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let n = if media {
        MEDIA_ENGINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 4
    } else {
        0
    };
    let base = 24_000 + (std::process::id() % 50) as u16 * 160 + n * 40;
    EngineConfig {
        account_sid: ACCOUNT.into(),
        auth_token: TOKEN.into(),
        sip_host: tandem.to_string(),
        tls_host: None,
        dns_servers: Vec::new(),
        digest_algorithms: Vec::new(),
        public_url: "http://127.0.0.1:1".into(),
        trunks: vec![Trunk {
            name: "local".into(),
            proxy: "sip:127.0.0.1:5".into(),
            username: None,
            password: None,
            prefixes: vec![String::new()],
            sources: vec![("127.0.0.1".parse().unwrap(), 32)],
            register: None,
            options_interval: None,
        }],
        numbers: vec![NumberRoute {
            number: "+15550001000".into(),
            source: TwimlSource::File(doc),
        }],
        clients: Vec::new(),
        limits: Default::default(),
        recording_dir: dir.join("rec"),
        transcribe_command: None,
        speech_command: None,
        call_log_dir: None,
        database: Some(dir.join("tandem.db")),
        retention: None,
        webhook_timeout: Duration::from_secs(2),
        media_auth: false,
        media: media.then(|| MediaConfig {
            address: "127.0.0.1".parse().unwrap(),
            sdp_address: "127.0.0.1".parse().unwrap(),
            port_min: base,
            port_max: base + 39,
            latching: false,
            media_timeout: None,
            srtp_over_tls: true,
        }),
        session_timers: Some(Default::default()),
    }
}

/// An engine with its HTTP listener; stopped when dropped.
struct Running {
    http: Option<HttpServer>,
    runner: tokio::task::JoinHandle<()>,
    tandem: SocketAddr,
}

impl Running {
    async fn start(dir: &Path, doc: &Path) -> Running {
        Self::start_with(dir, doc, false).await
    }

    /// With anchored media when `media`.
    async fn start_with(dir: &Path, doc: &Path, media: bool) -> Running {
        let mut ep = Endpoint::start(EndpointConfig {
            udp: vec!["127.0.0.1:0".parse().unwrap()],
            ..EndpointConfig::default()
        })
        .await
        .unwrap();
        let tandem = ep.handle.locals().udp[0];
        let engine = Engine::new(
            config(dir, tandem, doc.to_owned(), media),
            ep.handle.clone(),
        )
        .unwrap();
        let http = engine
            .serve_http("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let runner = tokio::spawn(async move {
            engine.run(&mut ep.events).await;
            ep.shutdown();
        });
        Running {
            http: Some(http),
            runner,
            tandem,
        }
    }

    fn http(&self) -> &HttpServer {
        self.http.as_ref().unwrap()
    }

    async fn stop(mut self) {
        if let Some(h) = self.http.take() {
            h.shutdown().await;
        }
        self.runner.abort();
        let _ = (&mut self.runner).await;
    }
}

async fn call(r: &Running, sid: &str) -> Value {
    let got = http(
        r.http(),
        "GET",
        &calls_uri(&format!("/{sid}.json")),
        OK,
        &[],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    got.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_lists_cancels_redirects_and_finds_the_calls_after_a_restart() {
    let dir = fresh_dir("tandem-api");
    let (caller, a, b) = (
        Peer::new("c1").await,
        Peer::new("ta").await,
        Peer::new("tb").await,
    );
    let doc = dir.join("fork.xml");
    std::fs::write(
        &doc,
        format!(
            "<Response><Dial><Sip>sip:a@127.0.0.1:{}</Sip><Sip>sip:b@127.0.0.1:{}</Sip></Dial>\
             <Pause length=\"30\"/></Response>",
            a.port(),
            b.port()
        ),
    )
    .unwrap();
    let r = Running::start(&dir, &doc).await;
    let tandem = r.tandem;

    // The caller's INVITE is answered at once (a <Dial> without answerOnBridge).
    caller.call_in(tandem, "api-call", "").await;
    let (inv_a, from_a) = a.expect("INVITE ").await;
    let (inv_b, from_b) = b.expect("INVITE ").await;
    a.reply(&inv_a, "180 Ringing", from_a).await;
    b.reply(&inv_b, "180 Ringing", from_b).await;

    // Wrong or missing credentials: 401 in Twilio's shape; another account: 404.
    for auth in [
        None,
        Some((ACCOUNT, "wrong")),
        Some(("ACffffffffffffffffffffffffffffffff", TOKEN)),
    ] {
        let got = http(r.http(), "GET", &calls_uri(".json"), auth, &[]).await;
        assert_eq!(got.status, 401);
        assert_eq!(got.json()["code"], 20003);
        assert_eq!(got.json()["status"], 401);
    }
    let other = "/2010-04-01/Accounts/ACffffffffffffffffffffffffffffffff/Calls.json";
    assert_eq!(http(r.http(), "GET", other, OK, &[]).await.status, 404);

    // Three calls: the parent in progress, two children ringing.
    let mut children = Vec::new();
    let parent = loop {
        let list = http(r.http(), "GET", &calls_uri(".json"), OK, &[])
            .await
            .json();
        let calls = list["calls"].as_array().unwrap().clone();
        let ringing = calls.iter().filter(|c| c["status"] == "ringing").count();
        if calls.len() == 3 && ringing == 2 {
            let parent = calls
                .iter()
                .find(|c| c["direction"] == "inbound")
                .expect("the parent")
                .clone();
            for c in &calls {
                if c["direction"] == "outbound-dial" {
                    assert_eq!(c["parent_call_sid"], parent["sid"]);
                    children.push(c.clone());
                }
            }
            break parent;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(parent["status"], "in-progress");
    assert_eq!(parent["from"], "+15551112222");
    assert_eq!(parent["to"], "+15550001000");
    assert_eq!(
        list_len(
            &r,
            &format!("?ParentCallSid={}", parent["sid"].as_str().unwrap())
        )
        .await,
        2
    );
    assert_eq!(list_len(&r, "?Status=ringing").await, 2);
    let page = http(r.http(), "GET", &calls_uri(".json?PageSize=2"), OK, &[])
        .await
        .json();
    assert_eq!(page["calls"].as_array().unwrap().len(), 2);
    let next = page["next_page_uri"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let rest = http(r.http(), "GET", &next, OK, &[]).await.json();
    assert_eq!(rest["calls"].as_array().unwrap().len(), 1);
    assert!(rest["next_page_uri"].is_null());

    // Cancel the child ringing at a: a gets the CANCEL, b rings on.
    let child_a = children.iter().find(|c| c["to"] == "a").expect("child a")["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let child_b = children.iter().find(|c| c["to"] == "b").expect("child b")["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = http(
        r.http(),
        "POST",
        &calls_uri(&format!("/{child_a}.json")),
        OK,
        &[("Status", "canceled")],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let (cancel, from) = a.expect("CANCEL ").await;
    a.reply(&cancel, "200 OK", from).await;
    a.reply(&inv_a, "487 Request Terminated", from_a).await;
    a.expect("ACK ").await;

    // b answers: bridged. Then the parent is moved to new TwiML.
    b.reply(&inv_b, "200 OK", from_b).await;
    b.expect("ACK ").await;
    let bad = http(
        r.http(),
        "POST",
        &calls_uri(&format!("/{}.json", parent["sid"].as_str().unwrap())),
        OK,
        &[("Twiml", "<Response><Nope/></Response>")],
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], 12100);
    let psid = parent["sid"].as_str().unwrap().to_owned();
    let got = http(
        r.http(),
        "POST",
        &calls_uri(&format!("/{psid}.json")),
        OK,
        &[("Twiml", "<Response><Hangup/></Response>")],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let (bye, from) = b.expect("BYE ").await;
    b.reply(&bye, "200 OK", from).await;
    let (bye, from) = caller.expect("BYE ").await;
    caller.reply(&bye, "200 OK", from).await;

    // Every call has its final status; the parent cannot be modified again.
    let p = wait_final(&r, &psid).await;
    assert_eq!(p["status"], "completed");
    assert!(p["duration"].is_string());
    assert_eq!(wait_final(&r, &child_a).await["status"], "canceled");
    assert_eq!(wait_final(&r, &child_b).await["status"], "completed");
    let again = http(
        r.http(),
        "POST",
        &calls_uri(&format!("/{psid}.json")),
        OK,
        &[("Status", "completed")],
    )
    .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["code"], 21220);
    let unknown = http(
        r.http(),
        "GET",
        &calls_uri("/CAffffffffffffffffffffffffffffffff.json"),
        OK,
        &[],
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["code"], 20404);
    let before: Vec<Value> = {
        let l = http(r.http(), "GET", &calls_uri(".json"), OK, &[])
            .await
            .json();
        l["calls"].as_array().unwrap().clone()
    };
    r.stop().await;

    // A new engine on the same database finds the same calls.
    let r = Running::start(&dir, &doc).await;
    let after = http(r.http(), "GET", &calls_uri(".json"), OK, &[])
        .await
        .json();
    assert_eq!(after["calls"].as_array().unwrap(), &before);
    r.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `POST Calls.json` places a call at once: the callee gets the INVITE
/// from `From`; once it answers, the `Twiml` runs on its leg (a 1 s pause,
/// then BYE), and the call's resource ends `completed`, `outbound-api`.
/// Missing `To`: 400 with Twilio's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_places_a_call_and_its_twiml_runs_on_answer() {
    let dir = fresh_dir("tandem-api-create");
    let doc = unused_doc(&dir);
    let callee = Peer::new("tc").await;
    let r = Running::start(&dir, &doc).await;

    let missing = http(
        r.http(),
        "POST",
        &calls_uri(".json"),
        OK,
        &[("From", "+15550009999")],
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["code"], 21201);
    let to = format!("sip:carol@127.0.0.1:{}", callee.port());
    let created = http(
        r.http(),
        "POST",
        &calls_uri(".json"),
        OK,
        &[
            ("To", to.as_str()),
            ("From", "+15550009999"),
            (
                "Twiml",
                "<Response><Pause length=\"1\"/><Hangup/></Response>",
            ),
        ],
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let c = created.json();
    assert_eq!(c["status"], "queued");
    assert_eq!(c["direction"], "outbound-api");
    let sid = c["sid"].as_str().unwrap().to_owned();

    let (inv, from) = callee.expect("INVITE ").await;
    assert!(header(&inv, "From").contains("+15550009999"));
    callee.reply(&inv, "180 Ringing", from).await;
    loop {
        if call(&r, &sid).await["status"] == "ringing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    callee.reply(&inv, "200 OK", from).await;
    callee.expect("ACK ").await;
    let t = std::time::Instant::now();
    let (bye, from) = callee.expect("BYE ").await;
    let talked = t.elapsed();
    assert!(
        talked >= Duration::from_millis(900),
        "the 1 s pause ran first ({talked:?})"
    );
    callee.reply(&bye, "200 OK", from).await;
    let done = loop {
        let c = call(&r, &sid).await;
        if c["end_time"].is_string() {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done["status"], "completed");
    assert_eq!(done["duration"], "1");
    assert_eq!(done["to"], to.as_str(), "To as the client gave it");
    assert!(done["parent_call_sid"].is_null());
    r.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Redirecting a bridged child (docs/api.md, "Modify a call"), media
/// anchored: the caller rings a number whose `<Dial action>` reaches b; b
/// answers; the client moves the child to new TwiML. b is not hung up: it
/// runs that document as a call of its own on its own media leg (DTMF
/// tones from the port it was bridged on, then BYE once they have played:
/// the leg's events follow it to the new call). The parent's `<Dial>` ends
/// `completed`, its `action` gets the child's CallSid, and the parent runs
/// the action's answer (a `<Hangup/>`: BYE to the caller). A child still
/// ringing cannot be redirected (21220). Both calls end `completed`, the
/// child with its parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_redirects_a_bridged_child_and_the_parent_runs_its_action() {
    let dir = fresh_dir("tandem-api-child");
    let app = tandem_test_support::WebhookRecorder::start().await.unwrap();
    app.respond(
        "/action",
        tandem_test_support::ScriptedResponse::twiml("<Response><Hangup/></Response>"),
    );
    let (caller, b) = (Peer::new("c2").await, Peer::new("tb").await);
    let (caller_rtp, b_rtp) = (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    let doc = dir.join("dial.xml");
    std::fs::write(
        &doc,
        format!(
            "<Response><Dial action=\"{}\"><Sip>sip:b@127.0.0.1:{}</Sip></Dial></Response>",
            app.url("/action"),
            b.port()
        ),
    )
    .unwrap();
    let r = Running::start_with(&dir, &doc, true).await;
    let caller_sdp = sdp(caller_rtp.local_addr().unwrap().port());
    caller.call_in(r.tandem, "child-call", &caller_sdp).await;
    let (inv, from_b) = b.expect("INVITE ").await;
    let tandem_b = SocketAddr::from(([127, 0, 0, 1], sdp_port(&inv)));
    b.reply(&inv, "180 Ringing", from_b).await;
    let child = loop {
        let l = http(r.http(), "GET", &calls_uri(".json?Status=ringing"), OK, &[])
            .await
            .json();
        if let Some(c) = l["calls"].as_array().unwrap().first() {
            break c.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let csid = child["sid"].as_str().unwrap().to_owned();
    let psid = child["parent_call_sid"].as_str().unwrap().to_owned();
    let moved = "<Response><Play digits=\"1234\"/><Hangup/></Response>";
    let early = http(
        r.http(),
        "POST",
        &calls_uri(&format!("/{csid}.json")),
        OK,
        &[("Twiml", moved)],
    )
    .await;
    assert_eq!(early.status, 400, "{}", early.body);
    assert_eq!(early.json()["code"], 21220);

    let b_sdp = sdp(b_rtp.local_addr().unwrap().port());
    b.reply_with(&inv, "200 OK", from_b, &b_sdp).await;
    b.expect("ACK ").await;
    loop {
        if call(&r, &csid).await["status"] == "in-progress" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = http(
        r.http(),
        "POST",
        &calls_uri(&format!("/{csid}.json")),
        OK,
        &[("Twiml", moved)],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json()["sid"], csid.as_str());

    // The parent's action, with the child's CallSid; its <Hangup/> ends the caller.
    let action = app
        .wait_for_path("/action", 1, WAIT)
        .await
        .expect("the Dial action is requested");
    assert_eq!(action[0].param("DialCallStatus"), Some("completed"));
    assert_eq!(action[0].param("DialCallSid"), Some(csid.as_str()));
    assert_eq!(action[0].param("CallSid"), Some(psid.as_str()));
    let (bye, from) = caller.expect("BYE ").await;
    caller.reply(&bye, "200 OK", from).await;

    // b hears its own document on the leg it was bridged on, then BYE.
    let mut buf = vec![0u8; 2048];
    let mut tones = 0;
    let bye = loop {
        tokio::select! {
            got = b_rtp.recv_from(&mut buf) => {
                let (_, src) = got.unwrap();
                assert_eq!(src, tandem_b, "b's audio comes from its own Tandem leg");
                tones += 1;
            }
            m = b.expect("BYE ") => break m,
        }
    };
    assert!(tones >= 20, "the digits played to b ({tones} packets)");
    b.reply(&bye.0, "200 OK", bye.1).await;
    let c = wait_final(&r, &csid).await;
    assert_eq!(c["status"], "completed");
    assert_eq!(c["parent_call_sid"], psid.as_str());
    assert_eq!(c["direction"], "outbound-dial");
    assert_eq!(wait_final(&r, &psid).await["status"], "completed");

    // What /metrics counted of it (the legs' RTP once they have closed).
    let sample = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(-1.0)
    };
    let metrics = loop {
        let m = http(r.http(), "GET", "/metrics", None, &[]).await.body;
        if sample(&m, "tandem_rtp_packets_total{direction=\"sent\"}") >= f64::from(tones) {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (name, least) in [
        ("tandem_sip_transactions_total{side=\"client\"}", 3.0),
        ("tandem_sip_transactions_total{side=\"server\"}", 1.0),
        ("tandem_webhooks_total{outcome=\"ok\"}", 1.0),
        ("tandem_webhook_duration_seconds_count", 1.0),
        ("tandem_dials_total{status=\"completed\"}", 1.0),
        ("tandem_calls_total", 2.0),
    ] {
        assert!(
            sample(&metrics, name) >= least,
            "{name} < {least} in\n{metrics}"
        );
    }

    // The parent's Events: its Dial action request, with its answer.
    let action_url = app.url("/action");
    let event = loop {
        let e = get_json(&r, &calls_uri(&format!("/{psid}/Events.json"))).await;
        let found = e["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["request"]["url"] == action_url.as_str())
            .cloned();
        if let Some(found) = found {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(event["request"]["method"], "POST");
    assert_eq!(
        event["request"]["parameters"]["DialCallStatus"],
        "completed"
    );
    assert_eq!(event["request"]["parameters"]["CallSid"], psid.as_str());
    assert_eq!(event["response"]["response_code"], 200);
    assert!(
        event["response"]["response_body"]
            .as_str()
            .unwrap()
            .contains("<Hangup/>")
    );
    r.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A placed call's `TimeLimit` and `CallerId`: the callee sees the
/// CallerId in From, the call is hung up a second after its answer though
/// its TwiML pauses 30 s, and the resource keeps `From`. Parameters
/// Tandem does not serve, or that do not fit the destination, get 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_call_ends_at_its_time_limit_and_shows_its_caller_id() {
    let dir = fresh_dir("tandem-api-limit");
    let doc = unused_doc(&dir);
    let callee = Peer::new("tl").await;
    let r = Running::start(&dir, &doc).await;
    let to = format!("sip:dave@127.0.0.1:{}", callee.port());
    let twiml = "<Response><Pause length=\"30\"/></Response>";
    for (extra, code) in [
        (
            ("MachineDetection", "Enable"),
            "MachineDetection applies to phone numbers",
        ),
        (("AsyncAmd", "true"), "AsyncAmd=true needs MachineDetection"),
        (
            ("Record", "maybe"),
            "Record \"maybe\" must be true or false",
        ),
        (("ApplicationSid", "AP0"), "ApplicationSid is not supported"),
        (
            ("TimeLimit", "0"),
            "TimeLimit \"0\" must be 1 to 86400 seconds",
        ),
    ] {
        let got = http(
            r.http(),
            "POST",
            &calls_uri(".json"),
            OK,
            &[
                ("To", to.as_str()),
                ("From", "+15550009999"),
                ("Twiml", twiml),
                extra,
            ],
        )
        .await;
        assert_eq!(got.status, 400, "{extra:?}: {}", got.body);
        let msg = got.json()["message"].as_str().unwrap().to_owned();
        assert!(msg.contains(code), "{extra:?}: {msg}");
    }
    let created = http(
        r.http(),
        "POST",
        &calls_uri(".json"),
        OK,
        &[
            ("To", to.as_str()),
            ("From", "+15550009999"),
            ("CallerId", "+15550007777"),
            ("TimeLimit", "1"),
            ("Twiml", twiml),
        ],
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let sid = created.json()["sid"].as_str().unwrap().to_owned();
    let (inv, from) = callee.expect("INVITE ").await;
    assert!(header(&inv, "From").contains("+15550007777"), "{inv}");
    callee.reply(&inv, "200 OK", from).await;
    callee.expect("ACK ").await;
    let t = std::time::Instant::now();
    let (bye, from) = callee.expect("BYE ").await;
    let talked = t.elapsed();
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(5)).contains(&talked),
        "hung up at the 1 s TimeLimit, not after the 30 s pause ({talked:?})"
    );
    callee.reply(&bye, "200 OK", from).await;
    let done = wait_final(&r, &sid).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["from"], "+15550009999");
    r.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// An empty folder of this test process named `name`.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A number document for tests whose calls are placed through the API.
fn unused_doc(dir: &Path) -> PathBuf {
    let doc = dir.join("unused.xml");
    std::fs::write(&doc, "<Response/>").unwrap();
    doc
}

/// A GET of `target` answered 200, as JSON.
async fn get_json(r: &Running, target: &str) -> Value {
    let got = http(r.http(), "GET", target, OK, &[]).await;
    assert_eq!(got.status, 200, "{target}: {}", got.body);
    got.json()
}

fn api_uri(rest: &str) -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT}/{rest}")
}

/// The Queues resource: a caller waiting in `<Enqueue>` shows as the
/// queue's member; dequeuing it (`POST …/Members/Front.json` with `Url`)
/// moves its call to that TwiML — its `<Enqueue action>` is not requested —
/// and the queue, empty, is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_a_queue_and_dequeues_its_member_to_new_twiml() {
    let dir = fresh_dir("tandem-api-queue");
    let app = tandem_test_support::WebhookRecorder::start().await.unwrap();
    app.respond(
        "/dequeued",
        tandem_test_support::ScriptedResponse::twiml("<Response><Hangup/></Response>"),
    );
    let doc = dir.join("queue.xml");
    std::fs::write(
        &doc,
        format!(
            "<Response><Enqueue action=\"{}\">support</Enqueue></Response>",
            app.url("/after")
        ),
    )
    .unwrap();
    let r = Running::start_with(&dir, &doc, true).await;
    let caller = Peer::new("q1").await;
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let offer = sdp(rtp.local_addr().unwrap().port());
    caller.call_in(r.tandem, "queue-call", &offer).await;
    let queue = loop {
        let l = get_json(&r, &api_uri("Queues.json")).await;
        if let Some(q) = l["queues"].as_array().unwrap().first() {
            break q.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(queue["friendly_name"], "support");
    assert_eq!(queue["current_size"], 1);
    let qsid = queue["sid"].as_str().unwrap().to_owned();
    assert!(qsid.starts_with("QU"), "{qsid}");
    assert_eq!(
        get_json(&r, &api_uri(&format!("Queues/{qsid}.json"))).await["sid"],
        qsid.as_str()
    );
    let members = get_json(&r, &api_uri(&format!("Queues/{qsid}/Members.json"))).await;
    let member = members["queue_members"][0].clone();
    assert_eq!(member["position"], 1);
    let csid = member["call_sid"].as_str().unwrap().to_owned();
    let front = get_json(&r, &api_uri(&format!("Queues/{qsid}/Members/Front.json"))).await;
    assert_eq!(front["call_sid"], csid.as_str());
    assert_eq!(call(&r, &csid).await["status"], "in-progress");

    let front_uri = api_uri(&format!("Queues/{qsid}/Members/Front.json"));
    let no_url = http(r.http(), "POST", &front_uri, OK, &[]).await;
    assert_eq!(no_url.status, 400, "{}", no_url.body);
    let url = app.url("/dequeued");
    let got = http(r.http(), "POST", &front_uri, OK, &[("Url", url.as_str())]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json()["call_sid"], csid.as_str());
    let fetched = app.wait_for_path("/dequeued", 1, WAIT).await.unwrap();
    assert_eq!(fetched[0].param("CallSid"), Some(csid.as_str()));
    let (bye, from) = caller.expect("BYE ").await;
    caller.reply(&bye, "200 OK", from).await;
    assert_eq!(wait_final(&r, &csid).await["status"], "completed");
    assert!(app.requests_to("/after").is_empty(), "no <Enqueue action>");
    let gone = http(
        r.http(),
        "GET",
        &api_uri(&format!("Queues/{qsid}.json")),
        OK,
        &[],
    )
    .await;
    assert_eq!(gone.status, 404, "an empty queue is forgotten");
    r.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Conferences and Participants resources: two callers in a room are
/// listed; muting one through the API mutes it (and the room's status
/// callback hears `participant-mute`); removing the other ends its
/// `<Dial>` (its action runs: `<Hangup/>`); ending the conference does the
/// same to the first, and the room is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_a_conference_mutes_and_removes_participants_and_ends_it() {
    let dir = fresh_dir("tandem-api-conf");
    let app = tandem_test_support::WebhookRecorder::start().await.unwrap();
    app.respond(
        "/after",
        tandem_test_support::ScriptedResponse::twiml("<Response><Hangup/></Response>"),
    );
    let doc = dir.join("conf.xml");
    std::fs::write(
        &doc,
        format!(
            "<Response><Dial action=\"{}\"><Conference statusCallback=\"{}\" statusCallbackEvent=\"mute\">room</Conference></Dial></Response>",
            app.url("/after"),
            app.url("/events")
        ),
    )
    .unwrap();
    let r = Running::start_with(&dir, &doc, true).await;
    let (a, b) = (Peer::new("ca").await, Peer::new("cb").await);
    let (a_rtp, b_rtp) = (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    a.call_in(r.tandem, "conf-a", &sdp(a_rtp.local_addr().unwrap().port()))
        .await;
    b.call_in(r.tandem, "conf-b", &sdp(b_rtp.local_addr().unwrap().port()))
        .await;
    let (conf, parts) = loop {
        let l = get_json(&r, &api_uri("Conferences.json")).await;
        if let Some(c) = l["conferences"].as_array().unwrap().first() {
            let sid = c["sid"].as_str().unwrap().to_owned();
            let p = get_json(
                &r,
                &api_uri(&format!("Conferences/{sid}/Participants.json")),
            )
            .await;
            let parts = p["participants"].as_array().unwrap().clone();
            if parts.len() == 2 {
                break (c.clone(), parts);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(conf["friendly_name"], "room");
    assert_eq!(conf["status"], "in-progress");
    let cf = conf["sid"].as_str().unwrap().to_owned();
    assert!(cf.starts_with("CF"), "{cf}");
    let first = parts[0]["call_sid"].as_str().unwrap().to_owned();
    let second = parts[1]["call_sid"].as_str().unwrap().to_owned();

    let part_uri = |sid: &str| api_uri(&format!("Conferences/{cf}/Participants/{sid}.json"));
    let muted = http(
        r.http(),
        "POST",
        &part_uri(&first),
        OK,
        &[("Muted", "true")],
    )
    .await;
    assert_eq!(muted.status, 200, "{}", muted.body);
    assert_eq!(muted.json()["muted"], true);
    let listed = get_json(
        &r,
        &api_uri(&format!("Conferences/{cf}/Participants.json?Muted=true")),
    )
    .await;
    assert_eq!(listed["participants"].as_array().unwrap().len(), 1);
    let ev = app.wait_for_path("/events", 1, WAIT).await.unwrap();
    assert_eq!(ev[0].param("StatusCallbackEvent"), Some("participant-mute"));
    assert_eq!(ev[0].param("CallSid"), Some(first.as_str()));
    let hold = http(r.http(), "POST", &part_uri(&first), OK, &[("Hold", "true")]).await;
    assert_eq!(hold.status, 400, "{}", hold.body);

    let gone = http(r.http(), "DELETE", &part_uri(&second), OK, &[]).await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    let after = app
        .wait_matching(1, WAIT, |q| {
            q.path == "/after" && q.param("CallSid") == Some(second.as_str())
        })
        .await
        .expect("the removed participant's Dial action");
    assert_eq!(after[0].param("DialCallStatus"), Some("answered"));
    let ended = http(
        r.http(),
        "POST",
        &api_uri(&format!("Conferences/{cf}.json")),
        OK,
        &[("Status", "completed")],
    )
    .await;
    assert_eq!(ended.status, 200, "{}", ended.body);
    assert_eq!(ended.json()["status"], "completed");
    app.wait_matching(1, WAIT, |q| {
        q.path == "/after" && q.param("CallSid") == Some(first.as_str())
    })
    .await
    .expect("the last participant's Dial action");
    for peer in [&a, &b] {
        let (bye, from) = peer.expect("BYE ").await;
        peer.reply(&bye, "200 OK", from).await;
    }
    for sid in [&first, &second] {
        assert_eq!(wait_final(&r, sid).await["status"], "completed");
    }
    // Ended, the conference is kept: listed and fetched as completed, with
    // why it ended, and no participants — after a restart too.
    let ended_row = |c: &Value| {
        assert_eq!(c["sid"], cf.as_str());
        assert_eq!(c["status"], "completed");
        assert_eq!(c["reason_conference_ended"], "conference-ended-via-api");
        assert_eq!(c["call_sid_ending_conference"], first.as_str());
    };
    let listed = get_json(&r, &api_uri("Conferences.json?Status=completed")).await;
    ended_row(&listed["conferences"][0]);
    assert!(
        get_json(&r, &api_uri("Conferences.json?Status=in-progress")).await["conferences"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let parts = get_json(&r, &api_uri(&format!("Conferences/{cf}/Participants.json"))).await;
    assert!(parts["participants"].as_array().unwrap().is_empty());
    r.stop().await;
    let r = Running::start_with(&dir, &doc, true).await;
    ended_row(&get_json(&r, &api_uri(&format!("Conferences/{cf}.json"))).await);
    r.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `Record=true` on a placed call, media anchored: what the callee says
/// while the call's TwiML pauses is recorded; the recording's `completed`
/// reaches `RecordingStatusCallback` (`RecordingSource=OutboundAPI`), the
/// call's Recordings list has it and its WAV downloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_call_with_record_is_recorded_and_listed() {
    let dir = fresh_dir("tandem-api-rec");
    let app = tandem_test_support::WebhookRecorder::start().await.unwrap();
    let doc = unused_doc(&dir);
    let r = Running::start_with(&dir, &doc, true).await;
    let callee = Peer::new("tr").await;
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = format!("sip:erin@127.0.0.1:{}", callee.port());
    let cb = app.url("/recording");
    let created = http(
        r.http(),
        "POST",
        &calls_uri(".json"),
        OK,
        &[
            ("To", to.as_str()),
            ("From", "+15550009999"),
            (
                "Twiml",
                "<Response><Pause length=\"2\"/><Hangup/></Response>",
            ),
            ("Record", "true"),
            ("RecordingChannels", "dual"),
            ("RecordingStatusCallback", cb.as_str()),
        ],
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let sid = created.json()["sid"].as_str().unwrap().to_owned();
    let (inv, from) = callee.expect("INVITE ").await;
    let tandem_rtp = SocketAddr::from(([127, 0, 0, 1], sdp_port(&inv)));
    let answer = sdp(rtp.local_addr().unwrap().port());
    callee.reply_with(&inv, "200 OK", from, &answer).await;
    callee.expect("ACK ").await;
    // One second of loud audio while the call pauses.
    for seq in 0..50u16 {
        rtp.send_to(&tandem_test_support::rtp::pcmu(seq, 0x10), tandem_rtp)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (bye, from) = callee.expect("BYE ").await;
    callee.reply(&bye, "200 OK", from).await;
    let done = app
        .wait_matching(1, WAIT, |q| q.param("RecordingStatus") == Some("completed"))
        .await
        .expect("the recording's completed");
    let ev = &done[0];
    assert_eq!(ev.param("CallSid"), Some(sid.as_str()));
    assert_eq!(ev.param("RecordingSource"), Some("OutboundAPI"));
    assert_eq!(ev.param("RecordingChannels"), Some("2"));
    let rec_sid = ev.param("RecordingSid").unwrap().to_owned();
    let list = get_json(&r, &calls_uri(&format!("/{sid}/Recordings.json"))).await;
    let recs = list["recordings"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{list}");
    assert_eq!(recs[0]["sid"], rec_sid.as_str());
    assert_eq!(recs[0]["source"], "OutboundAPI");
    let wav = http(
        r.http(),
        "GET",
        &api_uri(&format!("Recordings/{rec_sid}.wav")),
        None,
        &[],
    )
    .await;
    assert_eq!(wav.status, 200);
    assert!(wav.body.starts_with("RIFF"), "a WAV");
    r.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The call's resource once it has ended.
async fn wait_final(r: &Running, sid: &str) -> Value {
    loop {
        let c = call(r, sid).await;
        if c["end_time"].is_string() {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn list_len(r: &Running, query: &str) -> usize {
    let got = http(
        r.http(),
        "GET",
        &calls_uri(&format!(".json{query}")),
        OK,
        &[],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    got.json()["calls"].as_array().unwrap().len()
}

/// A trunk with `options_interval_s` pings its proxy with OPTIONS; while
/// the proxy answers, `tandem_trunk_up{trunk}` is 1; when it stops, the
/// next OPTIONS times out (Timer F, 64·T1: T1 is 5 ms here) and it turns 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_proxy_is_pinged_with_options_and_marked_down_when_it_stops_answering() {
    let dir = fresh_dir("tandem-keepalive");
    let doc = dir.join("none.xml");
    std::fs::write(&doc, "<Response/>").unwrap();
    let proxy = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut ep = Endpoint::start(EndpointConfig {
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        timers: tandem_sip::transaction::TimerConfig {
            t1: Duration::from_millis(5),
            t2: Duration::from_millis(40),
            t4: Duration::from_millis(50),
        },
        ..EndpointConfig::default()
    })
    .await
    .unwrap();
    let tandem = ep.handle.locals().udp[0];
    let mut cfg = config(&dir, tandem, doc, false);
    cfg.trunks[0].proxy = format!("sip:{}", proxy.local_addr().unwrap());
    cfg.trunks[0].options_interval = Some(Duration::from_millis(100));
    let engine = Engine::new(cfg, ep.handle.clone()).unwrap();
    let server = engine
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let runner = tokio::spawn(async move {
        engine.run(&mut ep.events).await;
        ep.shutdown();
    });
    let gauge = |up: u8| format!("tandem_trunk_up{{trunk=\"local\"}} {up}");
    // Two pings answered (a 200, then a 405: any answer is one).
    for code in [200, 405] {
        let mut buf = vec![0; 65_535];
        let (n, from) = timeout(WAIT, proxy.recv_from(&mut buf))
            .await
            .expect("an OPTIONS")
            .unwrap();
        let tandem_sip::message::SipMessage::Request(ping) = tandem_sip::parse(&buf[..n]).unwrap()
        else {
            panic!("a request")
        };
        assert_eq!(ping.method, tandem_sip::message::Method::Options);
        let answer = tandem_sip::builder::response_to(&ping, code, None, Some("proxy"));
        proxy
            .send_to(&tandem_sip::to_bytes(&answer.into()), from)
            .await
            .unwrap();
    }
    let up = timeout(WAIT, async {
        loop {
            let m = http(&server, "GET", "/metrics", None, &[]).await.body;
            if m.contains(&gauge(1)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(up.is_ok(), "the trunk is up while its proxy answers");
    // No more answers: down after the next OPTIONS times out.
    let down = timeout(WAIT, async {
        loop {
            let m = http(&server, "GET", "/metrics", None, &[]).await.body;
            if m.contains(&gauge(0)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        down.is_ok(),
        "the trunk is down once a ping goes unanswered"
    );
    server.shutdown().await;
    runner.abort();
}
