//! Tandem's SIP endpoint: the tokio shell around `tandem-sip`.
//!
//! UDP, TCP and TLS listeners (RFC 3261 §18, §26.2.1) read messages and hand each one, by a
//! hash of its Call-ID, to one of N shards. A shard owns a sans-IO
//! [`TransactionLayer`] and drives all its timers with one sleep, so every
//! message of a call is handled and sent in order by one task. The
//! transaction user (the engine, or a test UAS) receives [`EndpointEvent`]s and
//! acts through an [`EndpointHandle`]; it may take events on the shard's
//! task first, through a [`Router`].
//!
//! **No await cycle.** A shard has two inboxes: what the network brought
//! (datagrams are dropped when it is full, streams wait) and what the
//! transaction user asks (responses, requests, CANCELs), which it always
//! takes first. A shard never waits for the transaction user: when the
//! event queue is full, a new out-of-dialog request is answered 503 by the
//! shard itself and anything else waits in the shard's own overflow, handed
//! on as room appears. So the transaction user may wait for a shard, and a
//! shard never for it: a flood costs drops and 503s, never a lock-up.
//! [`EndpointHandle::health`] says whether every shard keeps up.

mod shard;
mod tcp;
pub mod tls;
mod udp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tandem_sip::builder::IdGen;
use tandem_sip::message::{Request, Response, SipMessage};
pub use tandem_sip::transaction::{Peer, TimerConfig, Transport, TuEvent, TxId};
use tokio::sync::mpsc;

/// Configuration of the endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// UDP listen addresses.
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS listen addresses (they need `tls_server`).
    pub tls: Vec<SocketAddr>,
    /// The TLS listener's certificate and key ([`tls::server_config`]).
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    /// How TLS connections Tandem opens verify their peer
    /// ([`tls::client_config`]); without it, sending over TLS fails.
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    /// Number of shards (defaults to the number of CPUs).
    pub shards: usize,
    /// Transaction timers.
    pub timers: TimerConfig,
    /// Close TCP connections idle this long: no complete message received
    /// and nothing written (bytes of an incomplete message do not count).
    pub tcp_idle: Duration,
    /// A TCP connection with an incomplete message buffered is closed unless
    /// the message completes within this time (slowloris).
    pub tcp_header_timeout: Duration,
    /// A TCP connection whose write does not finish within this time is closed.
    pub tcp_write_timeout: Duration,
    /// Live TCP connections (accepted and outbound) beyond which an accepted
    /// connection is closed at once.
    pub tcp_max_connections: usize,
    /// Live accepted TCP connections from one source IP address beyond which
    /// another from it is closed at once.
    pub tcp_max_per_source: usize,
    /// Answer out-of-dialog OPTIONS with 200 without involving the transaction user.
    pub answer_options: bool,
    /// Capacity of each bounded queue (per shard inbox, events to the transaction user).
    pub queue: usize,
    /// UDP socket receive/send buffer size in bytes (0 keeps the OS default).
    pub udp_buffer: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            udp: Vec::new(),
            tcp: Vec::new(),
            tls: Vec::new(),
            tls_server: None,
            tls_client: None,
            shards: std::thread::available_parallelism().map_or(2, |n| n.get()),
            timers: TimerConfig::default(),
            tcp_idle: Duration::from_secs(120),
            tcp_header_timeout: Duration::from_secs(10),
            tcp_write_timeout: Duration::from_secs(10),
            tcp_max_connections: 4096,
            tcp_max_per_source: 64,
            answer_options: true,
            queue: 65_536,
            udp_buffer: 4 << 20,
        }
    }
}

/// Errors starting or using the endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A listen address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The endpoint has shut down.
    #[error("endpoint closed")]
    Closed,
    /// TLS listen addresses were given without a certificate and key.
    #[error("TLS listeners need a certificate and key (tls_server)")]
    NoTlsCertificate,
}

/// A server transaction as the transaction user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerTx {
    /// The shard that owns it.
    pub shard: usize,
    /// Its id in that shard.
    pub tx: TxId,
}

/// An event for the transaction user, tagged with its shard.
#[derive(Debug)]
pub struct EndpointEvent {
    /// The shard the event came from (respond through the same one).
    pub shard: usize,
    /// The event.
    pub event: TuEvent,
    /// While this event waits for the transaction user, the router does not
    /// take later events of its Call-ID (they queue behind it).
    _held: Option<shard::Held>,
}

/// Takes events on the shard's own task, before the event queue: the
/// transaction user hands what it can on at once (an event for a call it
/// already runs, to that call) and gives the rest back for the queue. One
/// hop fewer per event, and no wake-up of the task reading the queue.
///
/// Order per Call-ID is kept: while an event of a Call-ID waits in the
/// queue (or a shard's overflow), later events of that Call-ID are not
/// offered to the router but queued behind it, until the transaction user
/// has dropped the waiting one.
pub trait Router: std::fmt::Debug + Send + Sync + 'static {
    /// Hands `event` on without waiting (`None`), or gives it back.
    fn route(&self, shard: usize, event: TuEvent) -> Option<TuEvent>;
}

/// Commands for a shard.
#[derive(Debug)]
pub(crate) enum ShardInput {
    /// Raw bytes received from a peer.
    Received { data: Bytes, source: Peer },
    /// Send a request in a new client transaction.
    SendRequest { request: Box<Request>, peer: Peer },
    /// Send a message outside any transaction (ACK for 2xx).
    SendStateless { msg: Box<SipMessage>, peer: Peer },
    /// Respond in a server transaction.
    Respond { tx: TxId, response: Box<Response> },
    /// Cancel the client INVITE transaction with this branch.
    Cancel { branch: String },
    /// End a server transaction at once, after sending this response if any.
    RespondOnce {
        tx: TxId,
        response: Option<Box<Response>>,
    },
    /// A TCP connection to this peer could not be opened: its client
    /// transactions fail now.
    Unreachable { peer: Peer },
}

/// Cheap handle to act on the endpoint; clone it freely.
#[derive(Debug, Clone)]
pub struct EndpointHandle {
    /// Each shard's inbox for the transaction user's commands.
    shards: Arc<[mpsc::Sender<ShardInput>]>,
    local: Arc<Locals>,
    stats: Arc<Stats>,
    tls: tcp::Pool,
    router: Arc<OnceLock<Arc<dyn Router>>>,
}

/// Counters of what the endpoint shed, and each shard's pulse.
#[derive(Debug)]
pub(crate) struct Stats {
    start: Instant,
    /// UDP datagrams dropped because a shard's network inbox was full.
    pub datagrams_dropped: AtomicU64,
    /// New requests a shard answered 503 because the event queue was full.
    pub requests_shed: AtomicU64,
    /// Events that waited in a shard's overflow (the event queue was full).
    pub events_deferred: AtomicU64,
    /// Events dropped because a shard's overflow was full too.
    pub events_dropped: AtomicU64,
    /// Accepted TCP connections closed at once: over a connection limit.
    pub tcp_refused: AtomicU64,
    /// Accepted TLS connections whose handshake failed or timed out.
    pub tls_failed: AtomicU64,
    /// Messages that did not parse.
    pub malformed: AtomicU64,
    /// Per shard: milliseconds since `start` when it last finished a turn.
    pub pulse: Vec<AtomicU64>,
    /// Per shard: its transaction layer's counters as of its last turn
    /// (client, server, timeouts, retransmissions, absorbed).
    pub transactions: Vec<[AtomicU64; 5]>,
    /// Per shard: the network and command inboxes, to read their depth.
    /// Weak: the shards hold these stats, and a strong sender here would
    /// keep their inboxes open after every handle is gone.
    inboxes: Vec<(mpsc::WeakSender<ShardInput>, mpsc::WeakSender<ShardInput>)>,
}

impl Stats {
    fn tx_sum(&self, i: usize) -> u64 {
        self.transactions
            .iter()
            .map(|t| t[i].load(Ordering::Relaxed))
            .sum()
    }

    /// Shard `shard` finished a turn; its layer counts `tx` so far.
    pub(crate) fn beat(&self, shard: usize, tx: tandem_sip::transaction::Stats) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.pulse[shard].store(ms, Ordering::Relaxed);
        let values = [
            tx.client,
            tx.server,
            tx.timeouts,
            tx.retransmissions,
            tx.absorbed,
        ];
        for (a, v) in self.transactions[shard].iter().zip(values) {
            a.store(v, Ordering::Relaxed);
        }
    }
}

/// What [`EndpointHandle::health`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SIP shard {shard} has {queued} messages waiting and has not moved for {stalled_ms} ms")]
pub struct Stalled {
    /// The shard.
    pub shard: usize,
    /// Inputs waiting in its inboxes.
    pub queued: usize,
    /// Time since it last finished a turn.
    pub stalled_ms: u64,
}

/// What the endpoint shed since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointStats {
    /// UDP datagrams dropped: a shard's network inbox was full.
    pub datagrams_dropped: u64,
    /// New out-of-dialog requests answered 503: the event queue was full.
    pub requests_shed: u64,
    /// Events held back in a shard until the event queue had room.
    pub events_deferred: u64,
    /// Events dropped: the event queue and a shard's overflow were full.
    pub events_dropped: u64,
    /// Accepted TCP connections closed at once: over `tcp_max_connections`
    /// or `tcp_max_per_source`.
    pub tcp_refused: u64,
    /// Accepted TLS connections whose handshake failed or did not finish
    /// within `tcp_header_timeout`.
    pub tls_failed: u64,
    /// Messages that did not parse (answered 400 when they were requests,
    /// at most [`MALFORMED_ANSWERS_PER_SEC`] a second per shard).
    pub malformed: u64,
    /// Client transactions created.
    pub client_transactions: u64,
    /// Server transactions created.
    pub server_transactions: u64,
    /// Client transactions that timed out (Timer B or F: no final response).
    pub transaction_timeouts: u64,
    /// Requests and responses retransmitted over UDP (timers A, E, G).
    pub retransmissions: u64,
    /// Retransmissions from peers absorbed by their transactions.
    pub retransmissions_absorbed: u64,
}

/// Most 400s a shard sends a second to messages that did not parse: a
/// flood of garbage from spoofed sources is not reflected at its rate.
pub const MALFORMED_ANSWERS_PER_SEC: u32 = 50;

/// Bound local addresses.
#[derive(Debug, Clone)]
pub struct Locals {
    /// Bound UDP addresses (port 0 resolved).
    pub udp: Vec<SocketAddr>,
    /// Bound TCP addresses (port 0 resolved).
    pub tcp: Vec<SocketAddr>,
    /// Bound TLS addresses (port 0 resolved).
    pub tls: Vec<SocketAddr>,
}

impl EndpointHandle {
    /// The shard that owns a Call-ID.
    pub fn shard_for(&self, call_id: &str) -> usize {
        shard::shard_of(call_id.as_bytes(), self.shards.len())
    }

    /// Bound local addresses.
    pub fn locals(&self) -> &Locals {
        &self.local
    }

    /// Installs the [`Router`] every shard offers its events to first. Once:
    /// a second router is refused (and returned).
    pub fn set_router(&self, router: Arc<dyn Router>) -> Result<(), Arc<dyn Router>> {
        self.router.set(router)
    }

    /// Verifies the TLS peer at `addr` by the host name `name` (a trunk's
    /// proxy host) instead of by its IP address.
    pub fn set_tls_name(&self, addr: SocketAddr, name: &str) {
        self.tls.set_name(addr, name);
    }

    /// What the endpoint shed since it started.
    pub fn stats(&self) -> EndpointStats {
        let s = &self.stats;
        EndpointStats {
            datagrams_dropped: s.datagrams_dropped.load(Ordering::Relaxed),
            requests_shed: s.requests_shed.load(Ordering::Relaxed),
            events_deferred: s.events_deferred.load(Ordering::Relaxed),
            events_dropped: s.events_dropped.load(Ordering::Relaxed),
            tcp_refused: s.tcp_refused.load(Ordering::Relaxed),
            tls_failed: s.tls_failed.load(Ordering::Relaxed),
            malformed: s.malformed.load(Ordering::Relaxed),
            client_transactions: s.tx_sum(0),
            server_transactions: s.tx_sum(1),
            transaction_timeouts: s.tx_sum(2),
            retransmissions: s.tx_sum(3),
            retransmissions_absorbed: s.tx_sum(4),
        }
    }

    /// `Err` when a shard has work waiting and has not finished a turn for
    /// longer than `max` (a shard that is idle, or busy and moving, is
    /// healthy).
    pub fn health(&self, max: Duration) -> Result<(), Stalled> {
        let s = &self.stats;
        let now = s.start.elapsed().as_millis() as u64;
        for (shard, (net, cmd)) in s.inboxes.iter().enumerate() {
            let depth = |w: &mpsc::WeakSender<ShardInput>| {
                w.upgrade()
                    .map_or(0, |tx| tx.max_capacity() - tx.capacity())
            };
            let queued = depth(net) + depth(cmd);
            let stalled_ms = now.saturating_sub(s.pulse[shard].load(Ordering::Relaxed));
            if queued > 0 && stalled_ms > max.as_millis() as u64 {
                return Err(Stalled {
                    shard,
                    queued,
                    stalled_ms,
                });
            }
        }
        Ok(())
    }

    async fn to_shard(&self, shard: usize, input: ShardInput) -> Result<(), TransportError> {
        self.shards[shard % self.shards.len()]
            .send(input)
            .await
            .map_err(|_| TransportError::Closed)
    }

    /// Sends a request in a new client transaction, on the shard of its Call-ID.
    pub async fn send_request(&self, request: Request, peer: Peer) -> Result<(), TransportError> {
        let shard = self.shard_for(call_id_of(&request.headers));
        self.to_shard(
            shard,
            ShardInput::SendRequest {
                request: Box::new(request),
                peer,
            },
        )
        .await
    }

    /// Sends a message outside any transaction (the ACK for a 2xx).
    pub async fn send_stateless(&self, msg: SipMessage, peer: Peer) -> Result<(), TransportError> {
        let shard = self.shard_for(call_id_of(tandem_sip::transaction::headers_of(&msg)));
        self.to_shard(
            shard,
            ShardInput::SendStateless {
                msg: Box::new(msg),
                peer,
            },
        )
        .await
    }

    /// Responds in a server transaction.
    pub async fn respond(&self, tx: ServerTx, response: Response) -> Result<(), TransportError> {
        self.to_shard(
            tx.shard,
            ShardInput::Respond {
                tx: tx.tx,
                response: Box::new(response),
            },
        )
        .await
    }

    /// Answers a server transaction and forgets it: the response is sent
    /// once, never retransmitted, and no state stays behind (a
    /// retransmitted request is new again). `None` forgets it unanswered.
    /// For sources that never authenticated (see
    /// `TransactionLayer::respond_once`).
    pub async fn respond_once(
        &self,
        tx: ServerTx,
        response: Option<Response>,
    ) -> Result<(), TransportError> {
        self.to_shard(
            tx.shard,
            ShardInput::RespondOnce {
                tx: tx.tx,
                response: response.map(Box::new),
            },
        )
        .await
    }

    /// Cancels the pending INVITE sent with this Call-ID and branch (§9.1).
    pub async fn cancel(&self, call_id: &str, branch: &str) -> Result<(), TransportError> {
        let shard = self.shard_for(call_id);
        self.to_shard(
            shard,
            ShardInput::Cancel {
                branch: branch.to_owned(),
            },
        )
        .await
    }
}

fn call_id_of(h: &tandem_sip::message::Headers) -> &str {
    use tandem_sip::message::HeadersExt;
    h.call_id().unwrap_or("")
}

/// A running endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// Handle to act on it.
    pub handle: EndpointHandle,
    /// Events for the transaction user.
    pub events: mpsc::Receiver<EndpointEvent>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Endpoint {
    /// Binds every listener and starts the shards. Must run inside a tokio runtime.
    pub async fn start(cfg: EndpointConfig) -> Result<Self, TransportError> {
        let n = cfg.shards.max(1);
        let (ev_tx, ev_rx) = mpsc::channel(cfg.queue);
        let mut udp_sockets = Vec::new();
        for &addr in &cfg.udp {
            let sock = udp::bind(addr, cfg.udp_buffer)
                .map_err(|source| TransportError::Bind { addr, source })?;
            udp_sockets.push(Arc::new(sock));
        }
        let mut tcp_listeners = Vec::new();
        for &addr in &cfg.tcp {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| TransportError::Bind { addr, source })?;
            tcp_listeners.push(l);
        }
        if !cfg.tls.is_empty() && cfg.tls_server.is_none() {
            return Err(TransportError::NoTlsCertificate);
        }
        let mut tls_listeners = Vec::new();
        for &addr in &cfg.tls {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| TransportError::Bind { addr, source })?;
            tls_listeners.push(l);
        }
        let locals = Locals {
            udp: udp_sockets
                .iter()
                .filter_map(|s| s.local_addr().ok())
                .collect(),
            tcp: tcp_listeners
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .collect(),
            tls: tls_listeners
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .collect(),
        };
        let mut cmd_senders = Vec::with_capacity(n);
        let mut net_senders = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let (cmd_tx, cmd_rx) = mpsc::channel(cfg.queue);
            let (net_tx, net_rx) = mpsc::channel(cfg.queue);
            cmd_senders.push(cmd_tx);
            net_senders.push(net_tx);
            receivers.push((cmd_rx, net_rx));
        }
        let stats = Arc::new(Stats {
            start: Instant::now(),
            datagrams_dropped: AtomicU64::new(0),
            requests_shed: AtomicU64::new(0),
            events_deferred: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
            tcp_refused: AtomicU64::new(0),
            tls_failed: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            pulse: (0..n).map(|_| AtomicU64::new(0)).collect(),
            transactions: (0..n).map(|_| Default::default()).collect(),
            inboxes: net_senders
                .iter()
                .map(mpsc::Sender::downgrade)
                .zip(cmd_senders.iter().map(mpsc::Sender::downgrade))
                .collect(),
        });
        let shards: Arc<[mpsc::Sender<ShardInput>]> = cmd_senders.into();
        let net_inboxes: Arc<[mpsc::Sender<ShardInput>]> = net_senders.into();
        let limits = tcp::Limits {
            idle: cfg.tcp_idle,
            header_timeout: cfg.tcp_header_timeout,
            write_timeout: cfg.tcp_write_timeout,
            max_connections: cfg.tcp_max_connections,
            max_per_source: cfg.tcp_max_per_source,
        };
        let tcp_pool = tcp::Pool::new(net_inboxes.clone(), limits, stats.clone(), None);
        let tls_pool = tcp::Pool::new(
            net_inboxes.clone(),
            limits,
            stats.clone(),
            Some(tcp::TlsSides {
                acceptor: cfg.tls_server.map(tokio_rustls::TlsAcceptor::from),
                connector: cfg.tls_client.map(tokio_rustls::TlsConnector::from),
            }),
        );
        let net = Arc::new(shard::Net {
            udp: udp_sockets
                .iter()
                .map(|s| (s.clone(), s.local_addr().is_ok_and(|a| a.is_ipv4())))
                .collect(),
            tcp: tcp_pool.clone(),
            tls: tls_pool.clone(),
        });
        let mut tasks = Vec::new();
        let router = Arc::new(OnceLock::new());
        for (i, (cmd_rx, net_rx)) in receivers.into_iter().enumerate() {
            let sh = shard::Shard::new(
                i,
                cfg.timers,
                IdGen::from_entropy(),
                net.clone(),
                shard::ToUser {
                    events: ev_tx.clone(),
                    router: router.clone(),
                },
                cfg.answer_options,
                cfg.queue,
                stats.clone(),
            );
            tasks.push(tokio::spawn(sh.run(cmd_rx, net_rx)));
        }
        for sock in udp_sockets {
            tasks.push(tokio::spawn(udp::receive_loop(
                sock,
                net_inboxes.clone(),
                stats.clone(),
            )));
        }
        for l in tcp_listeners {
            tasks.push(tokio::spawn(tcp::accept_loop(l, tcp_pool.clone())));
        }
        for l in tls_listeners {
            tasks.push(tokio::spawn(tcp::accept_loop(l, tls_pool.clone())));
        }
        Ok(Self {
            handle: EndpointHandle {
                shards,
                local: Arc::new(locals),
                stats,
                tls: tls_pool,
                router,
            },
            events: ev_rx,
            tasks,
        })
    }

    /// Stops every task of the endpoint.
    pub fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}
