//! A minimal UAS on the real transport, for SIPp's built-in `uac` scenario:
//! answers INVITE with 180 then 200, ACK ends the setup, BYE gets 200.
//!
//! `cargo run --release -p tandem-transport --example uas -- [udp-addr] [tcp-addr]`
//! prints `udp <addr>` and `tcp <addr>` once bound (port 0 picks a free port).

use std::net::SocketAddr;

use tandem_sip::builder::response_to;
use tandem_sip::message::{Header, Method};
use tandem_transport::{Endpoint, EndpointConfig, ServerTx, TuEvent};

#[allow(clippy::print_stdout)] // an example binary reports its bound ports
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let udp: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let tcp: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let mut ep = Endpoint::start(EndpointConfig {
        udp: vec![udp],
        tcp: vec![tcp],
        ..EndpointConfig::default()
    })
    .await?;
    let locals = ep.handle.locals().clone();
    println!("udp {}", locals.udp[0]);
    println!("tcp {}", locals.tcp[0]);
    let mut tag = 0u64;
    while let Some(ev) = ep.events.recv().await {
        let TuEvent::Request {
            tx,
            request,
            source,
        } = ev.event
        else {
            continue;
        };
        let stx = ServerTx {
            shard: ev.shard,
            tx,
        };
        tag += 1;
        let tag = format!("uas{tag:x}");
        match request.method {
            Method::Invite => {
                let ringing = response_to(&request, 180, None, Some(&tag));
                ep.handle.respond(stx, ringing).await?;
                let mut ok = response_to(&request, 200, None, Some(&tag));
                let local = match source.transport {
                    tandem_sip::transaction::Transport::Udp => locals.udp[0],
                    tandem_sip::transaction::Transport::Tcp => locals.tcp[0],
                    tandem_sip::transaction::Transport::Tls => locals.tls[0],
                };
                let transport = source.transport.as_str().to_ascii_lowercase();
                ok.headers.push(Header::Contact(
                    format!("<sip:uas@{local};transport={transport}>").into(),
                ));
                ep.handle.respond(stx, ok).await?;
            }
            _ => {
                ep.handle
                    .respond(stx, response_to(&request, 200, None, Some(&tag)))
                    .await?;
            }
        }
    }
    Ok(())
}
