//! The endpoint on real loopback sockets: OPTIONS answered over UDP and TCP,
//! TCP connection reuse, idle close, malformed input answered with 400,
//! and an INVITE reaching the transaction user after an immediate 100.

use std::time::Duration;

use tandem_transport::{Endpoint, EndpointConfig, TuEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn options(branch: &str, call_id: &str, port: u16) -> String {
    format!(
        "OPTIONS sip:tandem@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n\
         From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:tandem@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

async fn start(idle: Duration) -> Endpoint {
    Endpoint::start(EndpointConfig {
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        tcp: vec!["127.0.0.1:0".parse().unwrap()],
        tcp_idle: idle,
        ..EndpointConfig::default()
    })
    .await
    .unwrap()
}

async fn recv_udp(sock: &UdpSocket) -> String {
    let mut buf = vec![0; 65536];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .expect("answer within 5 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn options_over_udp_is_answered_with_allow() {
    let ep = start(Duration::from_secs(60)).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(ep.handle.locals().udp[0]).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.send(options("z9hG4bKu1", "c1", port).as_bytes())
        .await
        .unwrap();
    let resp = recv_udp(&sock).await;
    assert!(resp.starts_with("SIP/2.0 200 "), "{resp}");
    assert!(resp.contains("Allow: INVITE"), "{resp}");
    assert!(resp.contains(&format!("rport={port}")), "{resp}");
    ep.shutdown();
}

#[tokio::test]
async fn malformed_request_gets_400_naming_the_fault() {
    let ep = start(Duration::from_secs(60)).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(ep.handle.locals().udp[0]).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let bad = options("z9hG4bKu2", "c2", port).replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    sock.send(bad.as_bytes()).await.unwrap();
    let resp = recv_udp(&sock).await;
    assert!(
        resp.starts_with("SIP/2.0 400 Bad Request (CSeq method does not match"),
        "{resp}"
    );
    // Garbage that cannot be answered is dropped; the endpoint keeps serving.
    sock.send(b"\x00\x01garbage").await.unwrap();
    sock.send(options("z9hG4bKu3", "c3", port).as_bytes())
        .await
        .unwrap();
    assert!(recv_udp(&sock).await.starts_with("SIP/2.0 200 "));
    ep.shutdown();
}

#[tokio::test]
async fn tcp_reuses_the_connection_and_closes_it_when_idle() {
    let ep = start(Duration::from_millis(300)).await;
    let mut conn = TcpStream::connect(ep.handle.locals().tcp[0]).await.unwrap();
    let port = conn.local_addr().unwrap().port();
    // Two requests in one write, the second split across the boundary.
    let a = options("z9hG4bKt1", "t1", port).replace("UDP", "TCP");
    let b = options("z9hG4bKt2", "t2", port).replace("UDP", "TCP");
    let both = format!("{a}{b}");
    conn.write_all(&both.as_bytes()[..a.len() + 10])
        .await
        .unwrap();
    conn.write_all(&both.as_bytes()[a.len() + 10..])
        .await
        .unwrap();
    let mut got = String::new();
    let mut buf = vec![0; 65536];
    while got.matches("SIP/2.0 200").count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("Call-ID: t1") && got.contains("Call-ID: t2"));
    // Idle: the server closes the connection after 300 ms without traffic.
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("server closes the idle connection")
        .unwrap();
    assert_eq!(n, 0);
    ep.shutdown();
}

#[tokio::test]
async fn tcp_stream_without_content_length_is_closed() {
    let ep = start(Duration::from_secs(60)).await;
    let mut conn = TcpStream::connect(ep.handle.locals().tcp[0]).await.unwrap();
    let port = conn.local_addr().unwrap().port();
    let msg = options("z9hG4bKt3", "t3", port).replace("Content-Length: 0\r\n", "");
    conn.write_all(msg.as_bytes()).await.unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "connection closed without an answer");
    ep.shutdown();
}

#[tokio::test]
async fn invite_gets_100_at_once_and_reaches_the_transaction_user() {
    let mut ep = start(Duration::from_secs(60)).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(ep.handle.locals().udp[0]).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let invite = options("z9hG4bKi1", "i1", port).replace("OPTIONS", "INVITE");
    sock.send(invite.as_bytes()).await.unwrap();
    assert!(recv_udp(&sock).await.starts_with("SIP/2.0 100 "));
    let ev = tokio::time::timeout(Duration::from_secs(5), ep.events.recv())
        .await
        .unwrap()
        .unwrap();
    let TuEvent::Request { request, .. } = ev.event else {
        panic!("request expected")
    };
    assert_eq!(request.method.to_string(), "INVITE");
    ep.shutdown();
}

fn register(call_id: &str, port: u16) -> String {
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id};rport\r\n\
         From: <sip:flood@127.0.0.1>;tag=f1\r\nTo: <sip:flood@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 REGISTER\r\nContact: <sip:flood@127.0.0.1:{port}>\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Regression (issue "Hostile networks and overload"): a flood of new
/// requests filled a shard's inbox while the transaction user, answering,
/// waited for room in it, and the shard waited for room in the event queue:
/// neither moved again, for good. Small queues make the cycle quick. Now the
/// shard never waits for the transaction user: the flood costs drops and
/// 503s, and a request sent after it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_never_locks_the_endpoint_up() {
    let mut ep = Endpoint::start(EndpointConfig {
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        shards: 2,
        queue: 32,
        ..EndpointConfig::default()
    })
    .await
    .unwrap();
    let target = ep.handle.locals().udp[0];
    // The transaction user answers every request, as the engine does: each
    // answer waits for room in the shard's inbox.
    let handle = ep.handle.clone();
    let mut events = ep.events;
    ep.events = tokio::sync::mpsc::channel(1).1;
    let tu = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if let TuEvent::Request { tx, request, .. } = ev.event {
                let resp = tandem_sip::builder::response_to(&request, 200, None, Some("tu"));
                let stx = tandem_transport::ServerTx {
                    shard: ev.shard,
                    tx,
                };
                if handle.respond(stx, resp).await.is_err() {
                    break;
                }
            }
        }
    });
    // Two seconds of unique REGISTERs as fast as one socket sends them.
    let flood = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    flood.connect(target).await.unwrap();
    let fport = flood.local_addr().unwrap().port();
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut sent = 0u64;
    while tokio::time::Instant::now() < until {
        for _ in 0..64 {
            let _ = flood
                .send(register(&format!("flood{sent}"), fport).as_bytes())
                .await;
            sent += 1;
        }
        tokio::task::yield_now().await;
    }
    let stats = ep.handle.stats();
    assert!(
        stats.datagrams_dropped + stats.requests_shed > 0,
        "the flood did not overload the endpoint ({sent} sent, {stats:?})"
    );
    // After the flood, a request is answered within 5 s.
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    probe.connect(target).await.unwrap();
    let pport = probe.local_addr().unwrap().port();
    let mut answered = None;
    for attempt in 0..10 {
        probe
            .send(register(&format!("probe{attempt}"), pport).as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0; 65536];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), probe.recv(&mut buf)).await
        {
            answered = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            break;
        }
    }
    let resp = answered.expect("a request after the flood is answered within 5 s");
    assert!(resp.starts_with("SIP/2.0 200 "), "{resp}");
    assert_eq!(ep.handle.health(Duration::from_secs(2)), Ok(()));
    eprintln!("{sent} REGISTERs sent in 2 s: {stats:?}");
    tu.abort();
    ep.shutdown();
}
