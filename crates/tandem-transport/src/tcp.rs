//! TCP transport (RFC 3261 §18.3, RFC 5626 §3.5.1 keep-alives): accepted and
//! outbound connections share one pool keyed by the peer address, so
//! responses and later requests reuse the connection a peer opened.
//! Connections idle longer than the configured time are closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tandem_sip::framing::Framer;
use tandem_sip::transaction::{Peer, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::ShardInput;
use crate::shard::{raw_call_id, shard_of};

/// Outbound queue depth per connection.
const CONN_QUEUE: usize = 4096;

/// Live TCP connections by peer address.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    conns: DashMap<SocketAddr, mpsc::Sender<Bytes>>,
    shards: Arc<[mpsc::Sender<ShardInput>]>,
    idle: Duration,
}

impl Pool {
    pub(crate) fn new(shards: Arc<[mpsc::Sender<ShardInput>]>, idle: Duration) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                conns: DashMap::new(),
                shards,
                idle,
            }),
        }
    }

    /// Queues bytes for a peer, connecting first if no connection exists.
    pub(crate) fn send(&self, addr: SocketAddr, data: Bytes) {
        if let Some(tx) = self.inner.conns.get(&addr).map(|c| c.clone()) {
            match tx.try_send(data) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(peer = %addr, "TCP send queue full: message dropped");
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(d)) => {
                    self.inner
                        .conns
                        .remove_if(&addr, |_, s| s.same_channel(&tx));
                    return self.connect(addr, d);
                }
            }
        }
        self.connect(addr, data);
    }

    fn connect(&self, addr: SocketAddr, first: Bytes) {
        let (tx, rx) = mpsc::channel(CONN_QUEUE);
        let _ = tx.try_send(first);
        self.inner.conns.insert(addr, tx.clone());
        let pool = self.clone();
        tokio::spawn(async move {
            match TcpStream::connect(addr).await {
                Ok(stream) => pool.run(stream, addr, tx, rx).await,
                Err(e) => {
                    tracing::warn!(peer = %addr, error = %e, "TCP connect failed");
                    pool.inner
                        .conns
                        .remove_if(&addr, |_, s| s.same_channel(&tx));
                }
            }
        });
    }

    /// Registers an accepted connection and serves it.
    pub(crate) async fn serve(self, stream: TcpStream, addr: SocketAddr) {
        let (tx, rx) = mpsc::channel(CONN_QUEUE);
        self.inner.conns.insert(addr, tx.clone());
        self.run(stream, addr, tx, rx).await;
    }

    async fn run(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        me: mpsc::Sender<Bytes>,
        mut out: mpsc::Receiver<Bytes>,
    ) {
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let mut framer = Framer::new();
        let idle = tokio::time::sleep(self.inner.idle);
        tokio::pin!(idle);
        let reason = loop {
            tokio::select! {
                r = rd.read_buf(framer.buffer_mut()) => {
                    match r {
                        Ok(0) => break "closed by peer",
                        Err(_) => break "read error",
                        Ok(_) => {}
                    }
                    idle.as_mut().reset(tokio::time::Instant::now() + self.inner.idle);
                    let mut fatal = None;
                    loop {
                        match framer.next_message() {
                            Ok(Some(msg)) => self.dispatch(msg, addr).await,
                            Ok(None) => break,
                            Err(e) => { fatal = Some(e); break; }
                        }
                    }
                    for _ in 0..framer.take_pings() {
                        // RFC 5626 §3.5.1: answer a double-CRLF ping with a CRLF pong.
                        if wr.write_all(b"\r\n").await.is_err() { break; }
                    }
                    if let Some(e) = fatal {
                        tracing::warn!(peer = %addr, error = %e, "closing TCP connection: unframeable stream");
                        break "framing error";
                    }
                }
                data = out.recv() => {
                    let Some(data) = data else { break "pool dropped" };
                    if wr.write_all(&data).await.is_err() { break "write error"; }
                    idle.as_mut().reset(tokio::time::Instant::now() + self.inner.idle);
                }
                () = &mut idle => break "idle",
            }
        };
        tracing::debug!(peer = %addr, reason, "TCP connection closed");
        self.inner
            .conns
            .remove_if(&addr, |_, s| s.same_channel(&me));
    }

    async fn dispatch(&self, msg: Bytes, addr: SocketAddr) {
        let shard = shard_of(raw_call_id(&msg), self.inner.shards.len());
        let input = ShardInput::Received {
            data: msg,
            source: Peer {
                transport: Transport::Tcp,
                addr,
            },
        };
        // Streams get back-pressure instead of loss (the shard's network
        // inbox: a shard never waits for anyone, so this wait ends).
        let _ = self.inner.shards[shard].send(input).await;
    }
}

pub(crate) async fn accept_loop(listener: TcpListener, pool: Pool) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                tokio::spawn(pool.clone().serve(stream, addr));
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
