//! TCP transport (RFC 3261 §18.3, RFC 5626 §3.5.1 keep-alives): accepted and
//! outbound connections share one pool keyed by the peer address, so
//! responses and later requests reuse the connection a peer opened. TLS
//! (RFC 3261 §26.2.1) is the same pool over a rustls stream: one pool per
//! transport, the handshake inside the connect or accept deadline.
//!
//! Against hostile peers:
//! - live connections (accepted and outbound) are counted; an accepted one
//!   over `tcp_max_connections` in all or `tcp_max_per_source` from its IP
//!   address is closed at once and counted (`tcp_refused`), with at most one
//!   warning a second;
//! - an incomplete message must complete within `tcp_header_timeout` of its
//!   first bytes (a peer trickling bytes cannot hold a connection);
//! - a connection is idle, and closed after `tcp_idle`, unless it receives
//!   complete messages or writes: bytes of an incomplete message do not
//!   count;
//! - a write that does not finish within `tcp_write_timeout` (a peer that
//!   does not read) closes the connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use rustls::pki_types::ServerName;
use tandem_sip::framing::Framer;
use tandem_sip::transaction::{Peer, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::shard::{raw_call_id, shard_of};
use crate::{ShardInput, Stats};

/// Outbound queue depth per connection.
const CONN_QUEUE: usize = 4096;

/// At most one warning about refused connections per this interval.
const REFUSAL_WARN_EVERY: Duration = Duration::from_secs(1);

/// Limits and timeouts of TCP connections (see [`crate::EndpointConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub idle: Duration,
    pub header_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
    pub max_per_source: usize,
}

/// Live TCP connections by peer address.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    /// `Tcp` or `Tls`.
    transport: Transport,
    /// The TLS sides of a `Tls` pool.
    tls: Option<TlsSides>,
    /// Names to verify outbound TLS peers by (their IP address otherwise).
    names: DashMap<SocketAddr, ServerName<'static>>,
    conns: DashMap<SocketAddr, mpsc::Sender<Bytes>>,
    shards: Arc<[mpsc::Sender<ShardInput>]>,
    limits: Limits,
    stats: Arc<Stats>,
    live: Mutex<Live>,
}

impl std::fmt::Debug for PoolInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolInner")
            .field("transport", &self.transport)
            .field("conns", &self.conns.len())
            .finish_non_exhaustive()
    }
}

/// What a TLS pool accepts and connects with: either side may be missing
/// (no listener configured; no client configuration given).
#[derive(Clone)]
pub(crate) struct TlsSides {
    pub acceptor: Option<TlsAcceptor>,
    pub connector: Option<TlsConnector>,
}

/// Connection counts, and the rate limit of refusal warnings.
#[derive(Debug, Default)]
struct Live {
    /// Accepted and outbound connections.
    total: usize,
    /// Accepted connections by source IP address (no zero entries).
    per_source: HashMap<IpAddr, usize>,
    /// When the last refusal warning was logged.
    warned_at: Option<Instant>,
    /// Refusals since then.
    unwarned: u64,
}

/// Why an accepted connection was refused.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Total,
    PerSource,
}

/// One live connection in [`Live`]'s counts; dropping it takes it out, on
/// every exit path of the task that holds it.
#[derive(Debug)]
struct ConnGuard {
    pool: Arc<PoolInner>,
    /// The source IP address of an accepted connection.
    source: Option<IpAddr>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut live = self.pool.lock_live();
        live.total = live.total.saturating_sub(1);
        if let Some(ip) = self.source
            && let Some(n) = live.per_source.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                live.per_source.remove(&ip);
            }
        }
    }
}

impl PoolInner {
    fn lock_live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pool {
    /// A pool of plain TCP connections, or of TLS ones when `tls` is given.
    pub(crate) fn new(
        shards: Arc<[mpsc::Sender<ShardInput>]>,
        limits: Limits,
        stats: Arc<Stats>,
        tls: Option<TlsSides>,
    ) -> Self {
        let transport = if tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        Self {
            inner: Arc::new(PoolInner {
                transport,
                tls,
                names: DashMap::new(),
                conns: DashMap::new(),
                shards,
                limits,
                stats,
                live: Mutex::new(Live::default()),
            }),
        }
    }

    /// Counts an accepted connection from `addr`, or refuses it (counted,
    /// and warned about at most once a second).
    fn admit(&self, addr: SocketAddr) -> Option<ConnGuard> {
        let ip = addr.ip().to_canonical();
        let limits = &self.inner.limits;
        let mut live = self.inner.lock_live();
        let from_ip = live.per_source.get(&ip).copied().unwrap_or(0);
        let refusal = if live.total >= limits.max_connections {
            Refusal::Total
        } else if from_ip >= limits.max_per_source {
            Refusal::PerSource
        } else {
            live.total += 1;
            *live.per_source.entry(ip).or_insert(0) += 1;
            return Some(ConnGuard {
                pool: self.inner.clone(),
                source: Some(ip),
            });
        };
        self.inner.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
        live.unwarned += 1;
        let now = Instant::now();
        if live
            .warned_at
            .is_some_and(|t| now.duration_since(t) < REFUSAL_WARN_EVERY)
        {
            return None;
        }
        live.warned_at = Some(now);
        let refused = std::mem::take(&mut live.unwarned);
        let (total, connections) = (live.total, live.per_source.len());
        drop(live);
        match refusal {
            Refusal::Total => tracing::warn!(
                refused,
                last = %addr,
                live = total,
                limit = limits.max_connections,
                "TCP connections refused: tcp_max_connections reached"
            ),
            Refusal::PerSource => tracing::warn!(
                refused,
                last = %addr,
                from_source = from_ip,
                limit = limits.max_per_source,
                live = total,
                sources = connections,
                "TCP connections refused: tcp_max_per_source reached"
            ),
        }
        None
    }

    /// Counts an outbound connection (never refused: Tandem chose to open it).
    fn outbound(&self) -> ConnGuard {
        self.inner.lock_live().total += 1;
        ConnGuard {
            pool: self.inner.clone(),
            source: None,
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

    /// Verifies the TLS peer at `addr` by `name` (a trunk's host name) from
    /// now on, instead of by its IP address.
    pub(crate) fn set_name(&self, addr: SocketAddr, name: &str) {
        match ServerName::try_from(name.to_owned()) {
            Ok(n) => {
                self.inner.names.insert(addr, n);
            }
            Err(e) => tracing::warn!(peer = %addr, name, error = %e, "not a TLS server name"),
        }
    }

    fn connect(&self, addr: SocketAddr, first: Bytes) {
        let (tx, rx) = mpsc::channel(CONN_QUEUE);
        let _ = tx.try_send(first);
        self.inner.conns.insert(addr, tx.clone());
        let pool = self.clone();
        let guard = self.outbound();
        tokio::spawn(async move {
            let _guard = guard;
            // A peer that never answers the SYN (or the TLS handshake) is
            // given up on after the write timeout, not the OS's minutes of
            // retries.
            let limit = pool.inner.limits.write_timeout;
            let error = match tokio::time::timeout(limit, pool.open(addr)).await {
                Ok(Ok(Opened::Plain(stream))) => {
                    return pool.run(stream, addr, tx, rx, false).await;
                }
                Ok(Ok(Opened::Tls(stream))) => {
                    return pool.run(*stream, addr, tx, rx, false).await;
                }
                Ok(Err(e)) => e,
                Err(_) => format!("no connection within {limit:?}"),
            };
            let transport = pool.inner.transport;
            tracing::warn!(peer = %addr, transport = transport.as_str(), %error, "connect failed");
            pool.inner
                .conns
                .remove_if(&addr, |_, s| s.same_channel(&tx));
            // What was queued for it is lost: its transactions fail now,
            // in whichever shard they live (a full inbox drops the notice:
            // they then end at their timeout, as before).
            let peer = Peer { transport, addr };
            for shard in pool.inner.shards.iter() {
                let _ = shard.try_send(ShardInput::Unreachable { peer });
            }
        });
    }

    /// Opens a connection to `addr`: TCP, then TLS in a TLS pool.
    async fn open(&self, addr: SocketAddr) -> Result<Opened, String> {
        let connector = match &self.inner.tls {
            None => None,
            Some(sides) => Some(
                sides
                    .connector
                    .clone()
                    .ok_or("no TLS client configuration")?,
            ),
        };
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let Some(connector) = connector else {
            return Ok(Opened::Plain(stream));
        };
        let name = self
            .inner
            .names
            .get(&addr)
            .map_or_else(|| ServerName::IpAddress(addr.ip().into()), |n| n.clone());
        let tls = connector
            .connect(name.clone(), stream)
            .await
            .map_err(|e| format!("TLS handshake with {name:?}: {e}"))?;
        Ok(Opened::Tls(Box::new(tls)))
    }

    /// Registers an accepted connection and serves it; a TLS one once its
    /// handshake is done, which must be within the header timeout (a peer
    /// that connects and stalls the handshake holds no place for longer).
    async fn serve(self, stream: TcpStream, addr: SocketAddr, _guard: ConnGuard) {
        let _ = stream.set_nodelay(true);
        let acceptor = self.inner.tls.as_ref().map(|t| t.acceptor.clone());
        let (tx, rx) = mpsc::channel(CONN_QUEUE);
        let Some(acceptor) = acceptor else {
            self.inner.conns.insert(addr, tx.clone());
            return self.run(stream, addr, tx, rx, true).await;
        };
        let Some(acceptor) = acceptor else { return };
        let limit = self.inner.limits.header_timeout;
        match tokio::time::timeout(limit, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                self.inner.conns.insert(addr, tx.clone());
                self.run(tls, addr, tx, rx, true).await;
            }
            Ok(Err(e)) => {
                self.inner.stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
            }
            Err(_) => {
                self.inner.stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %addr, "TLS handshake timed out");
            }
        }
    }

    async fn run<S>(
        &self,
        stream: S,
        addr: SocketAddr,
        me: mpsc::Sender<Bytes>,
        mut out: mpsc::Receiver<Bytes>,
        accepted: bool,
    ) where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let limits = self.inner.limits;
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut framer = Framer::new();
        let idle = tokio::time::sleep(limits.idle);
        tokio::pin!(idle);
        // Armed while an incomplete message is buffered: when it must be complete.
        let header = tokio::time::sleep(limits.header_timeout);
        tokio::pin!(header);
        // An accepted connection is on the clock from the start: its first
        // message must be complete within the header timeout of the accept
        // (a silent connection must not hold a place for the idle time), and
        // keep-alive pings keep it open only once it has sent a message.
        let mut partial = accepted;
        let mut spoke = !accepted;
        let reason = loop {
            tokio::select! {
                r = rd.read_buf(framer.buffer_mut()) => {
                    match r {
                        Ok(0) => break "closed by peer",
                        Err(_) => break "read error",
                        Ok(_) => {}
                    }
                    let mut complete = false;
                    let mut fatal = None;
                    loop {
                        match framer.next_message() {
                            Ok(Some(msg)) => {
                                complete = true;
                                self.dispatch(msg, addr).await;
                            }
                            Ok(None) => break,
                            Err(e) => { fatal = Some(e); break; }
                        }
                    }
                    if let Some(e) = fatal {
                        tracing::warn!(peer = %addr, error = %e, "closing TCP connection: unframeable stream");
                        break "framing error";
                    }
                    let now = tokio::time::Instant::now();
                    if complete {
                        spoke = true;
                        idle.as_mut().reset(now + limits.idle);
                    }
                    // The clock of an incomplete message starts with its
                    // first bytes; more bytes of it do not restart it.
                    if !framer.in_message() {
                        partial = !spoke;
                    } else if complete || !partial {
                        partial = true;
                        header.as_mut().reset(now + limits.header_timeout);
                    }
                    let pings = framer.take_pings();
                    if pings > 0 {
                        // RFC 5626 §3.5.1: answer each double-CRLF ping with a CRLF pong.
                        if let Err(why) = write(&mut wr, &b"\r\n".repeat(pings), limits.write_timeout).await {
                            break why;
                        }
                        if spoke {
                            idle.as_mut().reset(tokio::time::Instant::now() + limits.idle);
                        }
                    }
                }
                data = out.recv() => {
                    let Some(data) = data else { break "pool dropped" };
                    if let Err(why) = write(&mut wr, &data, limits.write_timeout).await {
                        break why;
                    }
                    idle.as_mut().reset(tokio::time::Instant::now() + limits.idle);
                }
                () = &mut header, if partial => break "incomplete message timed out",
                () = &mut idle => break "idle",
            }
        };
        let transport = self.inner.transport.as_str();
        tracing::debug!(peer = %addr, transport, reason, "connection closed");
        self.inner
            .conns
            .remove_if(&addr, |_, s| s.same_channel(&me));
    }

    async fn dispatch(&self, msg: Bytes, addr: SocketAddr) {
        let shard = shard_of(raw_call_id(&msg), self.inner.shards.len());
        let input = ShardInput::Received {
            data: msg,
            source: Peer {
                transport: self.inner.transport,
                addr,
            },
        };
        // Streams get back-pressure instead of loss (the shard's network
        // inbox: a shard never waits for anyone, so this wait ends).
        let _ = self.inner.shards[shard].send(input).await;
    }
}

/// A connection Tandem opened.
enum Opened {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Writes all of `data` within `limit`, or says why not.
async fn write<W>(wr: &mut W, data: &[u8], limit: Duration) -> Result<(), &'static str>
where
    W: AsyncWrite + Unpin,
{
    // TLS buffers records until flushed; a flush of TCP costs nothing.
    let all = async {
        wr.write_all(data).await?;
        wr.flush().await
    };
    match tokio::time::timeout(limit, all).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("write error"),
        Err(_) => Err("write timed out"),
    }
}

pub(crate) async fn accept_loop(listener: TcpListener, pool: Pool) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => match pool.admit(addr) {
                Some(guard) => {
                    tokio::spawn(pool.clone().serve(stream, addr, guard));
                }
                // Over a limit: closed at once.
                None => drop(stream),
            },
            Err(e) => {
                tracing::warn!(error = %e, transport = pool.inner.transport.as_str(), "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
