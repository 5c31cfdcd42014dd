//! End to end through the engine on real loopback sockets: a caller INVITEs
//! a number whose TwiML dials one `<Sip>` callee; while the callee rings the
//! caller hears Tandem's ringback; after the answer RTP flows both ways
//! through Tandem's anchored legs (never directly), and the caller's BYE
//! reaches the callee. The same with a caller that offers SDES-SRTP: its
//! leg is SRTP both ways, the callee's plain RTP.

use std::net::SocketAddr;
use std::time::Duration;

use tandem_engine::{Engine, EngineConfig, MediaConfig, NumberRoute, Trunk, TwimlSource};
use tandem_rtp::srtp::{Crypto, SrtpKey, SrtpPeer, Suite};
use tandem_test_support::rtp::pcmu as rtp;
use tandem_test_support::sdp::{sdp, sdp_port};
use tandem_transport::{Endpoint, EndpointConfig};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

async fn recv_sip(sock: &UdpSocket) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = timeout(WAIT, sock.recv_from(&mut buf))
            .await
            .expect("SIP message within 5 s")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.trim().is_empty() {
            return (text, from);
        }
    }
}

/// Receives until a message whose start line begins with `prefix`.
async fn expect(sock: &UdpSocket, prefix: &str) -> (String, SocketAddr) {
    loop {
        let (m, from) = recv_sip(sock).await;
        if m.starts_with(prefix) {
            return (m, from);
        }
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

/// Counts RTP packets whose payload is `marker` arriving within `window`,
/// and their sources; an SRTP leg's are decrypted by `srtp` first.
async fn count_rtp(
    sock: &UdpSocket,
    marker: u8,
    window: Duration,
    mut srtp: Option<&mut SrtpPeer>,
) -> (usize, Vec<SocketAddr>) {
    let mut buf = vec![0u8; 2048];
    let mut n = 0;
    let mut sources = Vec::new();
    let end = tokio::time::Instant::now() + window;
    while let Ok(Ok((len, from))) = tokio::time::timeout_at(end, sock.recv_from(&mut buf)).await {
        let pkt = match srtp.as_deref_mut() {
            Some(peer) => match peer.unprotect(&buf[..len]) {
                Ok(p) => p,
                Err(_) => continue,
            },
            None => buf[..len].to_vec(),
        };
        if pkt.len() == 172 && pkt[12..].iter().all(|&b| b == marker) {
            n += 1;
            if !sources.contains(&from) {
                sources.push(from);
            }
        }
    }
    (n, sources)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_bridges_anchored_media_both_ways_with_ringback_first() {
    dial_through(false).await;
}

/// A caller offering `RTP/SAVP` with an `a=crypto` key gets Tandem's key
/// in the 200; its audio, decrypted, reaches the plain callee, and the
/// callee's reaches it encrypted with Tandem's key (and decrypts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srtp_caller_is_bridged_to_a_plain_callee() {
    dial_through(true).await;
}

async fn dial_through(srtp: bool) {
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let callee = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let callee_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let callee_port = callee.local_addr().unwrap().port();

    let dir = std::env::temp_dir().join(format!("tandem-e2e-{}-{srtp}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = dir.join("dial.xml");
    std::fs::write(
        &doc,
        format!("<Response><Dial><Sip>sip:bob@127.0.0.1:{callee_port}</Sip></Dial></Response>"),
    )
    .unwrap();

    let mut ep = Endpoint::start(EndpointConfig {
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        ..EndpointConfig::default()
    })
    .await
    .unwrap();
    let tandem = ep.handle.locals().udp[0];
    // An RTP range unlikely to collide with parallel tests (derived from the
    // PID), below the kernel's ephemeral ports (32768 up) where sockets
    // bound to port 0 land; tests/api.rs uses 24000 up.
    // Each of the two tests its half of the PID's 40 ports.
    let base = 20_000 + (std::process::id() % 100) as u16 * 40 + u16::from(srtp) * 20;
    let cfg = EngineConfig {
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        auth_token: "token".into(),
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
            source: TwimlSource::File(doc.clone()),
        }],
        clients: Vec::new(),
        limits: Default::default(),
        recording_dir: dir.join("rec"),
        transcribe_command: None,
        speech_command: None,
        call_log_dir: None,
        database: None,
        retention: None,
        webhook_timeout: Duration::from_secs(2),
        media_auth: false,
        media: Some(MediaConfig {
            address: "127.0.0.1".parse().unwrap(),
            sdp_address: "127.0.0.1".parse().unwrap(),
            port_min: base,
            port_max: base + 19,
            latching: false,
            media_timeout: None,
            srtp_over_tls: true,
        }),
        session_timers: Some(Default::default()),
    };
    let engine = Engine::new(cfg, ep.handle.clone()).unwrap();
    let runner = tokio::spawn(async move {
        engine.run(&mut ep.events).await;
        ep.shutdown();
    });

    // Caller INVITEs; Tandem answers it before running <Dial>.
    let cport = caller.local_addr().unwrap().port();
    let caller_key = SrtpKey::random(Suite::AesCm128HmacSha1_80);
    let mut body = sdp(caller_rtp.local_addr().unwrap().port());
    if srtp {
        let crypto = Crypto {
            tag: 1,
            key: caller_key.clone(),
        };
        body = body.replace("RTP/AVP", "RTP/SAVP") + &format!("a=crypto:{}\r\n", crypto.value());
    }
    let invite = format!(
        "INVITE sip:+15550001000@{tandem} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bKe2e1;rport\r\n\
         From: <sip:+15551112222@127.0.0.1>;tag=c1\r\nTo: <sip:+15550001000@{tandem}>\r\nCall-ID: e2e-call\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:{cport}>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    caller.send_to(invite.as_bytes(), tandem).await.unwrap();
    let (ok, _) = expect(&caller, "SIP/2.0 200").await;
    let tandem_a_port = sdp_port(&ok);
    // Tandem's answer: SRTP with its own key when the caller offered it.
    let mut peer = srtp.then(|| {
        assert!(ok.contains("m=audio ") && ok.contains(" RTP/SAVP "), "{ok}");
        let line = ok
            .lines()
            .find_map(|l| l.strip_prefix("a=crypto:"))
            .expect("Tandem's a=crypto");
        let tandem_key = Crypto::parse(line).expect("parses").key;
        assert_ne!(tandem_key, caller_key);
        SrtpPeer::new(&caller_key, &tandem_key).unwrap()
    });
    if !srtp {
        assert!(!ok.contains("a=crypto"), "{ok}");
    }
    assert_ne!(tandem_a_port, callee_rtp.local_addr().unwrap().port());
    let to = header(&ok, "To").to_owned();
    caller
        .send_to(
            format!(
                "ACK sip:tandem@{tandem} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bKe2e2\r\n\
                 From: <sip:+15551112222@127.0.0.1>;tag=c1\r\nTo: {to}\r\nCall-ID: e2e-call\r\nCSeq: 1 ACK\r\n\
                 Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
            tandem,
        )
        .await
        .unwrap();

    // The callee gets an INVITE whose SDP is Tandem's own B leg; it rings.
    let (inv, from) = expect(&callee, "INVITE ").await;
    let tandem_b_port = sdp_port(&inv);
    // The callee's leg is plain RTP whatever the caller's is (it is not TLS).
    assert!(
        inv.contains(" RTP/AVP ") && !inv.contains("a=crypto"),
        "{inv}"
    );
    assert_ne!(
        tandem_b_port, tandem_a_port,
        "each leg has its own port pair"
    );
    let reply = |code: &str, body: Option<String>| {
        let mut m = String::new();
        for l in inv.lines().skip(1) {
            let name = l
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if ["via", "from", "call-id", "cseq"].contains(&name.as_str()) {
                m.push_str(l);
                m.push_str("\r\n");
            }
            if name == "to" {
                m.push_str(&format!("{l};tag=callee1\r\n"));
            }
        }
        let body = body.unwrap_or_default();
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "SIP/2.0 {code}\r\n{m}Contact: <sip:bob@127.0.0.1:{callee_port}>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    callee
        .send_to(reply("180 Ringing", None).as_bytes(), from)
        .await
        .unwrap();

    // While it rings, the caller hears ringback generated by Tandem.
    let mut buf = vec![0u8; 2048];
    let (n, src) = timeout(WAIT, caller_rtp.recv_from(&mut buf))
        .await
        .expect("ringback")
        .unwrap();
    assert_eq!(
        src.port(),
        tandem_a_port,
        "ringback comes from Tandem's A leg"
    );
    assert!(n > 12 && buf[1] & 0x7f == 0, "PCMU ringback");

    // Answer; then media both ways through Tandem.
    let answer = sdp(callee_rtp.local_addr().unwrap().port());
    callee
        .send_to(reply("200 OK", Some(answer)).as_bytes(), from)
        .await
        .unwrap();
    expect(&callee, "ACK ").await;
    let a = SocketAddr::from(([127, 0, 0, 1], tandem_a_port));
    let b = SocketAddr::from(([127, 0, 0, 1], tandem_b_port));
    // Let the bridge settle, then drain any ringback still in flight.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for seq in 0..50u16 {
        let pkt = rtp(seq, 0xAA);
        let pkt = match peer.as_mut() {
            Some(p) => p.protect(&pkt).unwrap(),
            None => pkt,
        };
        caller_rtp.send_to(&pkt, a).await.unwrap();
        callee_rtp.send_to(&rtp(seq, 0xBB), b).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (to_callee, to_caller) = tokio::join!(
        count_rtp(&callee_rtp, 0xAA, Duration::from_millis(700), None),
        count_rtp(&caller_rtp, 0xBB, Duration::from_millis(700), peer.as_mut()),
    );
    assert_eq!(to_callee.0, 50, "caller's audio reaches the callee");
    assert_eq!(to_caller.0, 50, "callee's audio reaches the caller");
    assert_eq!(to_callee.1, vec![b], "the callee hears Tandem's B leg");
    assert_eq!(to_caller.1, vec![a], "the caller hears Tandem's A leg");

    // The caller hangs up: the callee gets a BYE.
    caller
        .send_to(
            format!(
                "BYE sip:tandem@{tandem} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bKe2e3\r\n\
                 From: <sip:+15551112222@127.0.0.1>;tag=c1\r\nTo: {to}\r\nCall-ID: e2e-call\r\nCSeq: 2 BYE\r\n\
                 Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
            tandem,
        )
        .await
        .unwrap();
    expect(&caller, "SIP/2.0 200").await;
    let (bye, _) = expect(&callee, "BYE ").await;
    assert_eq!(header(&bye, "Call-ID"), header(&inv, "Call-ID"));
    runner.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
