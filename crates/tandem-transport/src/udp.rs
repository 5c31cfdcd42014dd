//! UDP transport (RFC 3261 §18.1.1, §18.2.1): one receive loop per socket
//! routes each datagram to the shard of its Call-ID without parsing it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tandem_sip::transaction::{Peer, Transport};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::shard::{raw_call_id, shard_of};
use crate::{ShardInput, Stats};

/// Binds a non-blocking UDP socket with the requested buffer sizes.
pub(crate) fn bind(addr: SocketAddr, buffer: usize) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if buffer > 0 {
        // Best effort: the kernel caps these at net.core.{r,w}mem_max.
        let _ = sock.set_recv_buffer_size(buffer);
        let _ = sock.set_send_buffer_size(buffer);
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

pub(crate) async fn receive_loop(
    sock: Arc<UdpSocket>,
    shards: Arc<[mpsc::Sender<ShardInput>]>,
    stats: Arc<Stats>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut dropped: u64 = 0;
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP port unreachable surfaces here on some systems; keep going.
                tracing::trace!(error = %e, "UDP receive error");
                continue;
            }
        };
        let data = &buf[..n];
        // A bare CRLF keep-alive carries no message.
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let shard = shard_of(raw_call_id(data), shards.len());
        let input = ShardInput::Received {
            data: Bytes::copy_from_slice(data),
            source: Peer {
                transport: Transport::Udp,
                addr: from,
            },
        };
        if shards[shard].try_send(input).is_err() {
            stats
                .datagrams_dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            dropped += 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "shard queue full: UDP datagrams dropped");
            }
        }
    }
}
