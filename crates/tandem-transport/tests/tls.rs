//! SIP over TLS on real loopback sockets: one endpoint sends OPTIONS to
//! another's TLS listener and gets the answer over the same connection; a
//! peer verified by the wrong name or an unknown CA fails at once; a
//! handshake that stalls or is not TLS is closed and counted.

use std::time::Duration;

use tandem_sip::builder::RequestBuilder;
use tandem_sip::message::Method;
use tandem_transport::{Endpoint, EndpointConfig, Peer, Transport, TuEvent, tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CERT: &[u8] = include_bytes!("../../../fixtures/tls/tandem.crt");
const KEY: &[u8] = include_bytes!("../../../fixtures/tls/tandem.key");
const CA: &[u8] = include_bytes!("../../../fixtures/tls/ca.crt");

/// An endpoint with a TLS listener on a free loopback port.
async fn server(header_timeout: Duration) -> Endpoint {
    Endpoint::start(EndpointConfig {
        tls: vec!["127.0.0.1:0".parse().unwrap()],
        tls_server: Some(tls::server_config(CERT, KEY).unwrap()),
        tcp_header_timeout: header_timeout,
        ..EndpointConfig::default()
    })
    .await
    .unwrap()
}

/// An endpoint that only opens TLS connections, trusting `ca` (plus
/// Mozilla's roots).
async fn client(ca: Option<&[u8]>) -> Endpoint {
    Endpoint::start(EndpointConfig {
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        tls_client: Some(tls::client_config(ca).unwrap()),
        ..EndpointConfig::default()
    })
    .await
    .unwrap()
}

async fn send_options(from: &Endpoint, to: std::net::SocketAddr, call_id: &str) {
    let options = RequestBuilder::new(
        Method::Options,
        format!("sip:tandem@{to};transport=tls")
            .as_str()
            .try_into()
            .unwrap(),
    )
    .via("TLS", "127.0.0.1:5", &format!("z9hG4bK{call_id}"))
    .max_forwards(70)
    .from("<sip:probe@127.0.0.1>;tag=p")
    .to(format!("<sip:tandem@{to}>"))
    .call_id(call_id)
    .cseq(1)
    .build();
    let peer = Peer {
        transport: Transport::Tls,
        addr: to,
    };
    from.handle.send_request(options, peer).await.unwrap();
}

async fn next_event(ep: &mut Endpoint) -> TuEvent {
    tokio::time::timeout(Duration::from_secs(2), ep.events.recv())
        .await
        .expect("an event within 2 s")
        .unwrap()
        .event
}

#[tokio::test]
async fn options_over_tls_are_answered_on_the_same_connection() {
    let server = server(Duration::from_secs(5)).await;
    let target = server.handle.locals().tls[0];
    // By IP address (the certificate names 127.0.0.1), then, from a new
    // client (a live connection is reused), by host name.
    for name in [None, Some("localhost")] {
        let mut client = client(Some(CA)).await;
        if let Some(name) = name {
            client.handle.set_tls_name(target, name);
        }
        for call_id in ["tls-1", "tls-2"] {
            send_options(&client, target, call_id).await;
            let TuEvent::Response { response, .. } = next_event(&mut client).await else {
                panic!("a response expected ({name:?})")
            };
            assert_eq!(response.status_code.code(), 200);
        }
        client.shutdown();
    }
    assert_eq!(server.handle.stats().tls_failed, 0);
    server.shutdown();
}

/// A TLS peer that cannot be verified fails the transactions waiting on it
/// at once, as a timeout (not after Timer F's 32 s), and the server counts
/// the failed handshake.
#[tokio::test]
async fn an_unverified_tls_peer_fails_at_once() {
    let server = server(Duration::from_secs(5)).await;
    let target = server.handle.locals().tls[0];
    for (ca, name) in [(None, None), (Some(CA), Some("carrier.example"))] {
        let mut client = client(ca).await;
        if let Some(name) = name {
            client.handle.set_tls_name(target, name);
        }
        send_options(&client, target, "tls-unverified").await;
        let TuEvent::Timeout { method, .. } = next_event(&mut client).await else {
            panic!("a timeout expected ({ca:?}, {name:?})")
        };
        assert_eq!(method, Method::Options);
        client.shutdown();
    }
    let failed = async {
        while server.handle.stats().tls_failed < 2 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(2), failed)
        .await
        .expect("both failed handshakes counted");
    server.shutdown();
}

/// Without a client configuration, sending over TLS fails at once too.
#[tokio::test]
async fn tls_without_a_client_configuration_fails_at_once() {
    let server = server(Duration::from_secs(5)).await;
    let target = server.handle.locals().tls[0];
    let mut plain = Endpoint::start(EndpointConfig {
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        ..EndpointConfig::default()
    })
    .await
    .unwrap();
    send_options(&plain, target, "tls-none").await;
    assert!(matches!(
        next_event(&mut plain).await,
        TuEvent::Timeout { .. }
    ));
    plain.shutdown();
    server.shutdown();
}

/// A connection that never starts its handshake, and one that speaks
/// plain SIP to the TLS port, are closed (the first at the header
/// timeout) and counted; the listener serves the next peer.
#[tokio::test]
async fn a_stalled_or_plain_handshake_is_closed_and_counted() {
    let server = server(Duration::from_millis(300)).await;
    let target = server.handle.locals().tls[0];
    let mut silent = TcpStream::connect(target).await.unwrap();
    let mut plain = TcpStream::connect(target).await.unwrap();
    plain
        .write_all(b"OPTIONS sip:tandem@127.0.0.1 SIP/2.0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    for conn in [&mut silent, &mut plain] {
        // rustls may answer a plain request with an alert before closing.
        let closed = async {
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(2), closed)
            .await
            .expect("closed within 2 s");
    }
    assert_eq!(server.handle.stats().tls_failed, 2);
    let mut client = client(Some(CA)).await;
    send_options(&client, target, "tls-after").await;
    assert!(matches!(
        next_event(&mut client).await,
        TuEvent::Response { response, .. } if response.status_code.code() == 200
    ));
    client.shutdown();
    server.shutdown();
}

/// A TLS listener without a certificate is a start-up error.
#[tokio::test]
async fn a_tls_listener_needs_a_certificate() {
    let err = Endpoint::start(EndpointConfig {
        tls: vec!["127.0.0.1:0".parse().unwrap()],
        ..EndpointConfig::default()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}
