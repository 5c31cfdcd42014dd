//! Loopback endpoints for relay tests: real UDP sockets on 127.0.0.1 that
//! send and receive RTP.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tandem_rtp::rtp::{RtpHeader, write_header};
use tandem_rtp::{PoolConfig, PortPool};
use tokio::net::UdpSocket;

/// A pool of exactly `pairs` pairs, at `min` or, if something else holds
/// ports there (another test run), 1,000 ports further on.
pub fn pool(min: u16, pairs: u16) -> PortPool {
    for attempt in 0..10u16 {
        let base = min + attempt * 1000;
        let pool = PortPool::bind(&PoolConfig {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: base,
            port_max: base + 2 * pairs - 1,
            recv_buffer: None,
        });
        if let Ok(p) = pool
            && p.capacity() == pairs as usize
        {
            return p;
        }
    }
    panic!("no free port range near {min}")
}

/// A received packet.
#[derive(Debug, Clone)]
pub struct Rx {
    pub h: RtpHeader,
    pub payload: Vec<u8>,
}

/// A remote endpoint (a phone, a PBX) on loopback. Clones share the socket
/// (one task sends while another receives) and keep their own seq/ts.
#[derive(Clone)]
pub struct Endpoint {
    pub sock: Arc<UdpSocket>,
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
}

impl Endpoint {
    pub async fn new(ssrc: u32) -> Endpoint {
        Endpoint {
            sock: Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
            ssrc,
            seq: 1000,
            ts: 16_000,
        }
    }

    /// An endpoint on another loopback address (127.0.0.2 and up).
    pub async fn on(ip: &str, ssrc: u32) -> Endpoint {
        Endpoint {
            sock: Arc::new(UdpSocket::bind((ip, 0)).await.unwrap()),
            ssrc,
            seq: 1000,
            ts: 16_000,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Send one packet of `payload` to `to` and advance seq/ts by one 20 ms frame.
    pub async fn send(&mut self, to: SocketAddr, pt: u8, payload: &[u8]) {
        let mut buf = vec![0u8; 12 + payload.len()];
        write_header(&mut buf, false, pt, self.seq, self.ts, self.ssrc);
        buf[12..].copy_from_slice(payload);
        self.sock.send_to(&buf, to).await.unwrap();
        self.skip();
    }

    /// Send `n` packets, `per_ms` at a time then a 1 ms pause (so socket
    /// buffers never overflow), skipping those for which `lose(i)` is true.
    pub async fn send_many(
        &mut self,
        to: SocketAddr,
        n: usize,
        per_ms: usize,
        lose: impl Fn(usize) -> bool,
        payload: impl Fn(usize) -> Vec<u8>,
    ) {
        for i in 0..n {
            if lose(i) {
                self.skip();
            } else {
                self.send(to, 0, &payload(i)).await;
            }
            if i % per_ms == per_ms - 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    /// Receive until `n` packets arrived or `wait` passes with nothing.
    pub async fn recv_n(&self, n: usize, wait: Duration) -> Vec<Rx> {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            match self.recv(wait).await {
                Some(p) => v.push(p),
                None => break,
            }
        }
        v
    }

    /// Advance seq/ts as if a packet had been sent (injected loss).
    pub fn skip(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
    }

    pub async fn recv(&self, wait: Duration) -> Option<Rx> {
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(wait, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        let h = RtpHeader::parse(&buf[..n])?;
        Some(Rx {
            h,
            payload: buf[h.payload_offset..h.payload_offset + h.payload_len].to_vec(),
        })
    }

    /// Everything that arrives until `quiet` passes with nothing.
    pub async fn drain(&self, quiet: Duration) -> Vec<Rx> {
        let mut v = Vec::new();
        while let Some(p) = self.recv(quiet).await {
            v.push(p);
        }
        v
    }
}

/// One SSRC, sequence numbers +1 each, timestamps never going back.
pub fn assert_continuous(pkts: &[Rx]) {
    assert!(!pkts.is_empty());
    let ssrc = pkts[0].h.ssrc;
    for w in pkts.windows(2) {
        let (a, b) = (&w[0].h, &w[1].h);
        assert_eq!(b.ssrc, ssrc, "SSRC changed");
        assert_eq!(b.seq, a.seq.wrapping_add(1), "sequence gap {a:?} -> {b:?}");
        let dt = b.ts.wrapping_sub(a.ts) as i32;
        assert!(dt > 0, "timestamp did not advance {a:?} -> {b:?}");
    }
}
