//! The sans-IO transaction layer (RFC 3261 §17, with the Accepted state of
//! RFC 6026, CANCEL per §9, merged-request detection per §8.2.2.2 and the
//! response routing of §18.2.2 with RFC 3581 rport).
//!
//! Feed it messages with [`TransactionLayer::handle_message`], requests and
//! responses from the transaction user with [`TransactionLayer::send_request`]
//! and [`TransactionLayer::respond`], and the clock with
//! [`TransactionLayer::handle_timeout`]. After each call drain, in this order,
//! [`TransactionLayer::poll_transmit`] (bytes to send),
//! [`TransactionLayer::poll_event`] (what the transaction user must know) and
//! [`TransactionLayer::poll_timeout`] (when to call `handle_timeout` next).
//! It never reads the clock: `now` is always an argument.

mod timers;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashTable;
use rsip::message::HasHeaders;

pub use timers::{TimerConfig, TimerKind};

use crate::builder::{IdGen, response_to};
use crate::header::ViaRef;
use crate::message::{
    Header, Headers, HeadersExt, Method, Request, Response, SipMessage, Uri, request_bytes,
    response_bytes, to_bytes,
};

/// An INVITE the transaction user has not answered this soon gets 100
/// Trying (RFC 3261 §17.2.1).
pub const TRYING_AFTER: Duration = Duration::from_millis(200);

/// Transport protocols Tandem speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unreliable datagrams: retransmission timers run.
    Udp,
    /// Reliable stream: no retransmissions below the transaction user.
    Tcp,
    /// TCP under TLS (RFC 3261 §26.2.1): reliable, like TCP.
    Tls,
}

impl Transport {
    /// Whether the transport is reliable (§17: timers A, E, G are not used).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// The token used in Via (`UDP`, `TCP`, `TLS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The `transport` URI parameter for a Contact or Route naming this
    /// transport (`None` for UDP, the default).
    pub fn uri_param(self) -> Option<&'static str> {
        match self {
            Transport::Udp => None,
            Transport::Tcp => Some("tcp"),
            Transport::Tls => Some("tls"),
        }
    }
}

/// The other end of a hop: transport and socket address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport protocol.
    pub transport: Transport,
    /// Remote socket address.
    pub addr: SocketAddr,
}

/// Bytes the transport must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub peer: Peer,
    /// The serialized message.
    pub data: Bytes,
}

/// Handle of one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

impl TxId {
    /// A handle from its number: for transaction users' tests, which drive
    /// their state machines without a transaction layer.
    pub fn from_raw(n: u64) -> Self {
        Self(n)
    }
}

/// What the transaction user is told.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TuEvent {
    /// A new request created a server transaction; answer it with [`TransactionLayer::respond`].
    Request {
        /// The server transaction.
        tx: TxId,
        /// The request, with `received`/`rport` stamped into its top Via.
        request: Request,
        /// Where it came from.
        source: Peer,
    },
    /// An ACK outside any INVITE server transaction's non-2xx exchange: the ACK for a 2xx.
    Ack {
        /// The accepted INVITE server transaction it acknowledges, if still known.
        tx: Option<TxId>,
        /// The ACK.
        request: Request,
        /// Where it came from.
        source: Peer,
    },
    /// A CANCEL matched this INVITE server transaction: 200 went to the CANCEL and 487 to the INVITE.
    Cancelled {
        /// The cancelled INVITE server transaction.
        tx: TxId,
        /// Its Call-ID.
        call_id: String,
    },
    /// A response for a client transaction (every 2xx of an INVITE, including retransmissions and forks).
    Response {
        /// The client transaction.
        tx: TxId,
        /// The response.
        response: Response,
    },
    /// A 2xx for an INVITE whose client transaction is gone: ACK it and BYE it (§13.2.2.4).
    Stray2xx {
        /// The response.
        response: Response,
        /// Where it came from.
        source: Peer,
    },
    /// A client transaction got no final response in time (Timer B or F, or §9.1's 64*T1 after CANCEL).
    Timeout {
        /// The client transaction.
        tx: TxId,
        /// Its Call-ID.
        call_id: String,
        /// Its request's method.
        method: Method,
        /// Its branch.
        branch: String,
    },
    /// An INVITE server transaction's final response was never acknowledged (Timer H or L).
    AckTimeout {
        /// The server transaction.
        tx: TxId,
        /// Its Call-ID.
        call_id: String,
        /// Whether that final response was a 2xx (the dialog must then be ended with BYE).
        was_2xx: bool,
    },
}

impl TuEvent {
    /// The Call-ID the event is about (empty for a message without one).
    pub fn call_id(&self) -> &str {
        match self {
            TuEvent::Request { request, .. } | TuEvent::Ack { request, .. } => {
                request.headers.call_id().unwrap_or("")
            }
            TuEvent::Response { response, .. } | TuEvent::Stray2xx { response, .. } => {
                response.headers.call_id().unwrap_or("")
            }
            TuEvent::Cancelled { call_id, .. }
            | TuEvent::Timeout { call_id, .. }
            | TuEvent::AckTimeout { call_id, .. } => call_id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // the four machines of RFC 3261 §17, named as there
enum Kind {
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
    ServerNonInvite,
}

/// Transaction states named as in RFC 3261 §17 and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Client INVITE, request sent, nothing heard.
    Calling,
    /// Non-INVITE, request sent or received, nothing answered.
    Trying,
    /// A provisional response was sent or received.
    Proceeding,
    /// A non-2xx final response was sent or received.
    Completed,
    /// A 2xx final response to INVITE was sent or received (RFC 6026).
    Accepted,
    /// Server INVITE: the ACK for the non-2xx final arrived.
    Confirmed,
    /// Gone.
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelState {
    None,
    /// The TU cancelled before any provisional response: send on the first 1xx.
    Pending,
    Sent,
}

/// The four index tables (§17.1.3 and §17.2.3 matching, §8.2.2.2 merged
/// requests, §13.3.1.4 ACKs for a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Client = 0,
    Server = 1,
    Merge = 2,
    Ack = 3,
}

impl Table {
    const ALL: [Table; 4] = [Table::Client, Table::Server, Table::Merge, Table::Ack];
}

/// A key as the index hashes and compares it, borrowed from a transaction
/// (which holds each string once) or from a received message.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Key<'a> {
    Client {
        branch: &'a str,
        method: &'a Method,
    },
    Server {
        branch: &'a str,
        sent_by: &'a str,
        method: &'a Method,
    },
    Merge {
        call_id: &'a str,
        from_tag: &'a str,
        cseq: u32,
        method: &'a Method,
    },
    /// The 2xx's dialog: Call-ID, the INVITE's From tag (the peer's) and
    /// CSeq number, the 2xx's To tag (Tandem's).
    Ack {
        call_id: &'a str,
        cseq: u32,
        from_tag: &'a str,
        to_tag: &'a str,
    },
}

impl Key<'_> {
    fn table(&self) -> Table {
        match self {
            Key::Client { .. } => Table::Client,
            Key::Server { .. } => Table::Server,
            Key::Merge { .. } => Table::Merge,
            Key::Ack { .. } => Table::Ack,
        }
    }
}

/// The ACK key a request names (§12.2.2: Call-ID and both tags, and its
/// CSeq number).
fn ack_key_of(headers: &Headers) -> Option<Key<'_>> {
    Some(Key::Ack {
        call_id: headers.call_id()?,
        cseq: headers.cseq()?.0,
        from_tag: headers.from_tag()?,
        to_tag: headers.to_tag()?,
    })
}

/// A timer slot with nothing in it.
const NO_TIMER: u64 = u64::MAX;

/// A deadline (nanoseconds from the layer's epoch) and its timer's kind in
/// one word: a transaction's slot and half of a queue entry.
fn pack(at: u64, kind: TimerKind) -> u64 {
    (at << 4) | kind as u64
}

/// Whether timer slot `slot` holds a deadline of `kind`.
fn holds(slot: u64, kind: TimerKind) -> bool {
    slot != NO_TIMER && slot & 0xf == kind as u64
}

/// One transaction. Tens of thousands linger at a time, settled, for up to
/// 32 s (Timers J, L, M): it holds each string once, its deadlines as
/// words, and what a settled one no longer needs (the request) boxed and
/// dropped. 224 bytes, from 360.
#[derive(Debug)]
struct Tx {
    kind: Kind,
    state: State,
    cancel: CancelState,
    acked: bool,
    /// In the merge table (§8.2.2.2): a request without a To tag.
    by_merge: bool,
    /// In the ACK table: a 2xx with a To tag was sent.
    by_ack: bool,
    /// Settled server non-INVITE: the final response is rebuilt from a
    /// retransmitted request instead of kept ([`plain_response`]).
    rebuild: bool,
    /// Retransmissions so far (timers A, E, G double their interval).
    tries: u8,
    /// Last final status code (server) or response status (client).
    status: u16,
    /// The request's CSeq number (server: merge and ACK keys).
    cseq: u32,
    peer: Peer,
    /// Until a final response settles the transaction: client, the request
    /// sent (its CANCEL and the ACK of a non-2xx final are built from it);
    /// server, the received request's headers a response copies
    /// ([`for_responses`]; the request itself went to the TU). Boxed: a
    /// settled transaction keeps none of it.
    request: Option<Box<Request>>,
    /// The last message sent by this transaction (retransmitted by timers A/E/G).
    last: Option<Bytes>,
    /// Packed deadlines ([`pack`]), [`NO_TIMER`] when free.
    timers: [u64; 3],
    method: Method,
    /// Its strings, in one allocation: the branch, the sent-by (server),
    /// the Call-ID, the From tag (server, when the request has a Call-ID,
    /// From tag and CSeq: what the merge and ACK keys need) and the To tag
    /// of its responses (server INVITE; the 2xx's once sent).
    strings: Strings,
    has_from_tag: bool,
    has_to_tag: bool,
}

/// A transaction's strings end to end in one allocation (five separate
/// ones took 80 bytes of the `Tx` and an allocation's rounding each).
#[derive(Debug, Default)]
struct Strings {
    all: Box<str>,
    /// Where each string ends in `all`.
    ends: [u32; 5],
}

const BRANCH: usize = 0;
const SENT_BY: usize = 1;
const CALL_ID: usize = 2;
const FROM_TAG: usize = 3;
const TO_TAG: usize = 4;

impl Strings {
    fn new(parts: [&str; 5]) -> Self {
        let mut all = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0; 5];
        for (end, part) in ends.iter_mut().zip(parts) {
            all.push_str(part);
            *end = u32::try_from(all.len()).unwrap_or(u32::MAX);
        }
        Strings {
            all: all.into_boxed_str(),
            ends,
        }
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.all.get(start..self.ends[i] as usize).unwrap_or("")
    }

    fn set(&mut self, i: usize, value: &str) {
        let parts = std::array::from_fn(|j| if j == i { value } else { self.get(j) });
        *self = Strings::new(parts);
    }
}

impl Tx {
    /// A transaction in its first state, keyed by `branch`, `sent_by`
    /// (server) and `method`, of the call `call_id`; `from_tag` (server)
    /// counts only with [`Tx::has_from_tag`] set.
    fn new(
        kind: Kind,
        peer: Peer,
        method: Method,
        [branch, sent_by, call_id, from_tag]: [&str; 4],
    ) -> Self {
        let state = match kind {
            Kind::ClientInvite => State::Calling,
            Kind::ServerInvite => State::Proceeding,
            Kind::ClientNonInvite | Kind::ServerNonInvite => State::Trying,
        };
        Tx {
            kind,
            state,
            cancel: CancelState::None,
            acked: false,
            by_merge: false,
            by_ack: false,
            rebuild: false,
            tries: 0,
            status: 0,
            cseq: 0,
            peer,
            request: None,
            last: None,
            timers: [NO_TIMER; 3],
            method,
            strings: Strings::new([branch, sent_by, call_id, from_tag, ""]),
            has_from_tag: false,
            has_to_tag: false,
        }
    }

    fn branch(&self) -> &str {
        self.strings.get(BRANCH)
    }

    fn call_id(&self) -> &str {
        self.strings.get(CALL_ID)
    }

    /// The From tag of a server transaction's request (the peer's).
    fn remote_tag(&self) -> Option<&str> {
        self.has_from_tag.then(|| self.strings.get(FROM_TAG))
    }

    fn to_tag(&self) -> Option<&str> {
        self.has_to_tag.then(|| self.strings.get(TO_TAG))
    }

    fn set_to_tag(&mut self, tag: &str) {
        self.strings.set(TO_TAG, tag);
        self.has_to_tag = true;
    }

    fn is_client(&self) -> bool {
        matches!(self.kind, Kind::ClientInvite | Kind::ClientNonInvite)
    }

    /// Its key in `table`, if it has one there.
    fn key(&self, table: Table) -> Option<Key<'_>> {
        match table {
            Table::Client => self.is_client().then_some(Key::Client {
                branch: self.branch(),
                method: &self.method,
            }),
            Table::Server => (!self.is_client()).then_some(Key::Server {
                branch: self.branch(),
                sent_by: self.strings.get(SENT_BY),
                method: &self.method,
            }),
            Table::Merge => match self.remote_tag() {
                Some(from_tag) if self.by_merge => Some(Key::Merge {
                    call_id: self.call_id(),
                    from_tag,
                    cseq: self.cseq,
                    method: &self.method,
                }),
                _ => None,
            },
            Table::Ack => match (self.remote_tag(), self.to_tag()) {
                (Some(from_tag), Some(to_tag)) if self.by_ack => Some(Key::Ack {
                    call_id: self.call_id(),
                    cseq: self.cseq,
                    from_tag,
                    to_tag,
                }),
                _ => None,
            },
        }
    }

    /// The interval before retransmission `tries + 1`: T1 doubled each
    /// time, capped at T2 for timers E and G (and T2 at once for E once a
    /// provisional response came, §17.1.2.2).
    fn next_interval(&self, kind: TimerKind, cfg: &TimerConfig) -> Duration {
        let doubled = cfg.t1.saturating_mul(1 << u32::from(self.tries.min(31)));
        match kind {
            TimerKind::A => doubled,
            TimerKind::E if self.state == State::Proceeding => cfg.t2,
            _ => doubled.min(cfg.t2),
        }
    }

    fn set_timer(&mut self, kind: TimerKind, at: Instant, timers: &mut Timers, id: u64) {
        let at = timers.nanos(at);
        let packed = pack(at, kind);
        if let Some(slot) = self.timers.iter_mut().find(|t| holds(**t, kind)) {
            *slot = packed;
        } else if let Some(slot) = self.timers.iter_mut().find(|t| **t == NO_TIMER) {
            *slot = packed;
        } else {
            debug_assert!(false, "more than three timers on one transaction");
            return;
        }
        timers.push(at, id, kind);
    }

    fn clear_timer(&mut self, kind: TimerKind) {
        for t in &mut self.timers {
            if holds(*t, kind) {
                *t = NO_TIMER;
            }
        }
    }

    /// Drops the request once a final response settled the transaction:
    /// what remains (timers, keys, the last message for retransmission, the
    /// Call-ID) is all the Completed/Accepted/Confirmed states need, and a
    /// busy endpoint holds tens of thousands of such transactions.
    fn slim(&mut self) {
        self.request = None;
    }

    fn clear_timers(&mut self) {
        self.timers = [NO_TIMER; 3];
    }

    fn has_timer(&self, kind: TimerKind, at: u64) -> bool {
        self.timers.contains(&pack(at, kind))
    }
}

/// The timer queue. Deadlines are nanoseconds from the layer's epoch (the
/// first `now` it was given), an entry 16 bytes: the deadline, and the
/// transaction id with the timer's kind in its low four bits. Entries of
/// timers since cleared or moved stay until their deadline and are skipped
/// then (a transaction's own slots say which entries are live).
#[derive(Debug, Default)]
struct Timers {
    epoch: Option<Instant>,
    heap: BinaryHeap<Reverse<(u64, u64)>>,
}

impl Timers {
    /// Fixes the epoch at the first `now` the layer sees.
    fn observe(&mut self, now: Instant) {
        self.epoch.get_or_insert(now);
    }

    /// `at` in nanoseconds from the epoch (an instant before it counts as
    /// the epoch itself: the caller's clock does not run backwards).
    fn nanos(&mut self, at: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(at);
        // 2^59 ns is 18 years: the shift in `pack` never overflows.
        (at.saturating_duration_since(epoch).as_nanos() as u64).min(1 << 59)
    }

    fn instant(&self, nanos: u64) -> Instant {
        // Only deadlines pushed here are converted back, and pushing one
        // fixed the epoch.
        self.epoch
            .map_or_else(Instant::now, |e| e + Duration::from_nanos(nanos))
    }

    fn push(&mut self, at: u64, id: u64, kind: TimerKind) {
        self.heap.push(Reverse((at, (id << 4) | kind as u64)));
    }

    /// The earliest entry: deadline, transaction id, timer kind.
    fn peek(&self) -> Option<(u64, u64, TimerKind)> {
        self.heap
            .peek()
            .map(|Reverse((at, v))| (*at, v >> 4, TimerKind::from_index(v & 0xf)))
    }

    fn pop(&mut self) {
        self.heap.pop();
    }
}

/// Counters for observability and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Client transactions created.
    pub client: u64,
    /// Server transactions created.
    pub server: u64,
    /// Client transactions that timed out (Timer B or F).
    pub timeouts: u64,
    /// Retransmissions sent by timers A, E and G.
    pub retransmissions: u64,
    /// Retransmitted requests or responses absorbed.
    pub absorbed: u64,
    /// Messages that matched nothing and were dropped.
    pub dropped: u64,
}

/// All transactions of one endpoint shard.
#[derive(Debug)]
pub struct TransactionLayer {
    cfg: TimerConfig,
    ids: IdGen,
    next_id: u64,
    txs: Txs,
    /// Transactions by their keys.
    index: Index,
    timers: Timers,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TuEvent>,
    stats: Stats,
}

impl TransactionLayer {
    /// A layer with the given timers and identifier source.
    pub fn new(cfg: TimerConfig, ids: IdGen) -> Self {
        Self {
            cfg,
            ids,
            next_id: 1,
            txs: HashMap::with_capacity_and_hasher(1024, BuildHasherDefault::default()),
            index: Index::default(),
            timers: Timers::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// The identifier source (tags and branches for the transaction user).
    pub fn ids(&mut self) -> &mut IdGen {
        &mut self.ids
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The state of a transaction, `None` once it is gone.
    pub fn state(&self, tx: TxId) -> Option<State> {
        self.txs.get(&tx.0).map(|t| t.state)
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<TuEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Drop entries of timers that were cleared or moved, so the deadline is exact.
        while let Some((at, id, kind)) = self.timers.peek() {
            if self.txs.get(&id).is_some_and(|t| t.has_timer(kind, at)) {
                return Some(self.timers.instant(at));
            }
            self.timers.pop();
        }
        None
    }

    fn alloc(&mut self, tx: Tx) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        match tx.kind {
            Kind::ClientInvite | Kind::ClientNonInvite => self.stats.client += 1,
            _ => self.stats.server += 1,
        }
        self.txs.insert(id, Box::new(tx));
        id
    }

    fn send(&mut self, peer: Peer, data: Bytes) {
        self.transmits.push_back(Transmit { peer, data });
    }

    fn terminate(&mut self, id: u64) {
        if let Some(tx) = self.txs.remove(&id) {
            self.index.remove(id, &tx);
        }
    }

    // ----- client side -----

    /// Sends a request in a new client transaction (never ACK: see [`Self::send_stateless`]).
    ///
    /// The request's top Via must carry a unique RFC 3261 branch.
    pub fn send_request(&mut self, now: Instant, request: Request, peer: Peer) -> TxId {
        self.timers.observe(now);
        let via = request.headers.top_via().and_then(Result::ok);
        let branch = via.as_ref().and_then(|v| v.branch).unwrap_or_default();
        let call_id = request.headers.call_id().unwrap_or_default();
        let invite = request.method == Method::Invite;
        let data = request_bytes(&request);
        let kind = if invite {
            Kind::ClientInvite
        } else {
            Kind::ClientNonInvite
        };
        let mut tx = Tx::new(
            kind,
            peer,
            request.method.clone(),
            [branch, "", call_id, ""],
        );
        tx.request = Some(Box::new(request));
        tx.last = Some(data.clone());
        let id = self.next_id;
        let reliable = peer.transport.is_reliable();
        if invite {
            if !reliable {
                tx.set_timer(TimerKind::A, now + self.cfg.t1, &mut self.timers, id);
            }
            tx.set_timer(TimerKind::B, now + self.cfg.t1x64(), &mut self.timers, id);
        } else {
            if !reliable {
                tx.set_timer(TimerKind::E, now + self.cfg.t1, &mut self.timers, id);
            }
            tx.set_timer(TimerKind::F, now + self.cfg.t1x64(), &mut self.timers, id);
        }
        let id = self.alloc(tx);
        self.index.add(&self.txs, id, Table::Client);
        self.send(peer, data);
        TxId(id)
    }

    /// The transport cannot reach `peer` (a TCP connection refused or not
    /// opened in time): every client transaction to it still waiting for a
    /// final response ends now, reported as a timeout would report it,
    /// instead of at Timer B or F (RFC 3261 §17.1.4, §18.4). Returns how
    /// many. A scan of the shard's transactions: transport failures are
    /// rare next to messages.
    pub fn transport_failed(&mut self, peer: Peer) -> usize {
        let failed: Vec<u64> = self
            .txs
            .iter()
            .filter(|(_, t)| {
                t.peer == peer
                    && matches!(t.kind, Kind::ClientInvite | Kind::ClientNonInvite)
                    && matches!(t.state, State::Calling | State::Trying | State::Proceeding)
            })
            .map(|(id, _)| *id)
            .collect();
        for &id in &failed {
            self.time_out(id);
        }
        failed.len()
    }

    /// Ends client transaction `id` as timed out and tells the TU so.
    fn time_out(&mut self, id: u64) {
        let Some(t) = self.txs.get(&id) else { return };
        let call_id = t.call_id().to_owned();
        let (method, branch) = (t.method.clone(), t.branch().to_owned());
        self.terminate(id);
        self.stats.timeouts += 1;
        self.events.push_back(TuEvent::Timeout {
            tx: TxId(id),
            call_id,
            method,
            branch,
        });
    }

    /// The client transaction for a branch and method, while it lives.
    pub fn find_client(&self, branch: &str, method: Method) -> Option<TxId> {
        let key = Key::Client {
            branch,
            method: &method,
        };
        self.index.find(&self.txs, &key).map(TxId)
    }

    /// Queues bytes built outside the layer (a stateless error response).
    pub fn send_raw(&mut self, peer: Peer, data: Bytes) {
        self.send(peer, data);
    }

    /// Sends a message outside any transaction (the ACK for a 2xx, §13.2.2.4).
    pub fn send_stateless(&mut self, msg: SipMessage, peer: Peer) {
        self.send(peer, to_bytes(&msg));
    }

    /// Cancels a client INVITE transaction (§9.1): the CANCEL goes out now if a
    /// provisional response has arrived, or as soon as one does. Returns false
    /// when there is nothing left to cancel (a final response came first).
    pub fn cancel(&mut self, now: Instant, tx: TxId) -> bool {
        self.timers.observe(now);
        let Some(t) = self.txs.get_mut(&tx.0) else {
            return false;
        };
        if t.kind != Kind::ClientInvite || t.cancel != CancelState::None {
            return t.cancel != CancelState::None;
        }
        match t.state {
            State::Calling => {
                t.cancel = CancelState::Pending;
                true
            }
            State::Proceeding => {
                self.send_cancel(now, tx.0);
                true
            }
            _ => false,
        }
    }

    fn send_cancel(&mut self, now: Instant, id: u64) {
        let Some(t) = self.txs.get_mut(&id) else {
            return;
        };
        let Some(request) = t.request.as_deref() else {
            return;
        };
        let cancel = build_cancel(request);
        t.cancel = CancelState::Sent;
        let peer = t.peer;
        // §9.1: give up on the INVITE if no final response follows the CANCEL.
        t.set_timer(
            TimerKind::CancelGiveUp,
            now + self.cfg.t1x64(),
            &mut self.timers,
            id,
        );
        self.send_request(now, cancel, peer);
    }

    fn on_response(&mut self, now: Instant, response: Response, source: Peer) {
        let Some(Ok(via)) = response.headers.top_via() else {
            self.stats.dropped += 1;
            return;
        };
        let Some((_, method)) = response.headers.cseq() else {
            self.stats.dropped += 1;
            return;
        };
        let key = Key::Client {
            branch: via.branch.unwrap_or_default(),
            method: &method,
        };
        let code = response.status_code.code();
        let Some(id) = self.index.find(&self.txs, &key) else {
            if (200..300).contains(&code) && method == Method::Invite {
                self.events
                    .push_back(TuEvent::Stray2xx { response, source });
            } else {
                self.stats.dropped += 1;
            }
            return;
        };
        let cfg = self.cfg;
        let t = self.txs.get_mut(&id).expect("indexed transaction exists");
        let reliable = t.peer.transport.is_reliable();
        match (t.kind, t.state) {
            (Kind::ClientInvite, State::Calling | State::Proceeding) => {
                if code < 200 {
                    let first = t.state == State::Calling;
                    t.state = State::Proceeding;
                    t.clear_timer(TimerKind::A);
                    t.clear_timer(TimerKind::B);
                    let pending = t.cancel == CancelState::Pending;
                    self.events.push_back(TuEvent::Response {
                        tx: TxId(id),
                        response,
                    });
                    if first && pending {
                        self.send_cancel(now, id);
                    }
                } else if code < 300 {
                    t.state = State::Accepted;
                    t.status = code;
                    t.clear_timers();
                    t.slim();
                    // Nothing is retransmitted in Accepted (RFC 6026 §8.4).
                    t.last = None;
                    t.set_timer(TimerKind::M, now + cfg.t1x64(), &mut self.timers, id);
                    self.events.push_back(TuEvent::Response {
                        tx: TxId(id),
                        response,
                    });
                } else {
                    t.state = State::Completed;
                    t.status = code;
                    t.clear_timers();
                    // Built from the request, which Calling and Proceeding
                    // always hold.
                    let ack = t
                        .request
                        .as_deref()
                        .map(|r| request_bytes(&build_ack(r, &response)));
                    t.last = ack.clone();
                    t.slim();
                    let peer = t.peer;
                    t.set_timer(
                        TimerKind::D,
                        now + cfg.timer_d(reliable),
                        &mut self.timers,
                        id,
                    );
                    if let Some(ack) = ack {
                        self.send(peer, ack);
                    }
                    self.events.push_back(TuEvent::Response {
                        tx: TxId(id),
                        response,
                    });
                }
            }
            (Kind::ClientInvite, State::Accepted) => {
                if (200..300).contains(&code) {
                    self.events.push_back(TuEvent::Response {
                        tx: TxId(id),
                        response,
                    });
                } else {
                    self.stats.absorbed += 1;
                }
            }
            (Kind::ClientInvite, State::Completed) => {
                if code >= 300
                    && let Some(ack) = t.last.clone()
                {
                    let peer = t.peer;
                    self.send(peer, ack);
                }
                self.stats.absorbed += 1;
            }
            (Kind::ClientNonInvite, State::Trying | State::Proceeding) => {
                if code < 200 {
                    t.state = State::Proceeding;
                } else {
                    t.state = State::Completed;
                    t.status = code;
                    t.clear_timers();
                    t.slim();
                    // Completed only absorbs retransmitted finals: the
                    // request is never sent again.
                    t.last = None;
                    t.set_timer(
                        TimerKind::K,
                        now + cfg.t4_or_zero(reliable),
                        &mut self.timers,
                        id,
                    );
                }
                self.events.push_back(TuEvent::Response {
                    tx: TxId(id),
                    response,
                });
            }
            _ => self.stats.absorbed += 1,
        }
    }

    // ----- server side -----

    /// Handles one parsed message received from `source`.
    pub fn handle_message(&mut self, now: Instant, msg: SipMessage, source: Peer) {
        self.timers.observe(now);
        match msg {
            SipMessage::Response(r) => self.on_response(now, r, source),
            SipMessage::Request(r) => self.on_request(now, r, source),
        }
    }

    fn on_request(&mut self, now: Instant, mut request: Request, source: Peer) {
        // One parse of the top Via gives the key, the response route and what
        // to stamp into it.
        let (branch, sent_by, reply_to, stamp) = {
            let Some(Ok(via)) = request.headers.top_via() else {
                self.stats.dropped += 1;
                return;
            };
            let branch = match via.branch {
                Some(b) if via.is_rfc3261() => b.to_owned(),
                // RFC 2543 peers: fall back to the dialog identifiers (§17.2.3).
                _ => format!(
                    "2543|{}|{}|{}",
                    request.headers.call_id().unwrap_or(""),
                    request.headers.from_tag().unwrap_or(""),
                    request.headers.cseq().map_or(0, |c| c.0)
                ),
            };
            let sent_by = match via.port {
                Some(p) => format!("{}:{p}", via.host),
                None => via.host.to_owned(),
            };
            (
                branch,
                sent_by,
                response_peer(&via, source),
                Stamp::of(&via, source.addr),
            )
        };
        stamp.apply(&mut request, source.addr);
        let method = if request.method == Method::Ack {
            Method::Invite
        } else {
            request.method.clone()
        };
        let lookup = Key::Server {
            branch: &branch,
            sent_by: &sent_by,
            method: &method,
        };
        match request.method {
            Method::Ack => self.on_ack(now, request, source, &lookup),
            Method::Cancel => self.on_cancel(now, request, reply_to, &lookup),
            _ => {
                if let Some(id) = self.index.find(&self.txs, &lookup) {
                    self.stats.absorbed += 1;
                    let t = self.txs.get_mut(&id).expect("indexed transaction exists");
                    if t.last.is_none()
                        && t.kind == Kind::ServerInvite
                        && t.state == State::Proceeding
                    {
                        // Retransmitted before the 100 was due: its sender is
                        // waiting, so the 100 goes now.
                        t.clear_timer(TimerKind::Trying);
                        t.last = t
                            .request
                            .as_deref()
                            .map(|r| response_bytes(&response_to(r, 100, None, None)));
                    }
                    let peer = t.peer;
                    if t.state == State::Accepted {
                        // RFC 6026: the 2xx is the transaction user's to resend.
                    } else if let Some(last) = t.last.clone() {
                        self.send(peer, last);
                    } else if t.rebuild {
                        let again = response_bytes(&response_to(&request, t.status, None, None));
                        self.send(peer, again);
                    }
                    return;
                }
                self.new_server_tx(now, request, source, reply_to, (branch, sent_by, method));
            }
        }
    }

    fn new_server_tx(
        &mut self,
        now: Instant,
        request: Request,
        source: Peer,
        reply_to: Peer,
        (branch, sent_by, method): (String, String, Method),
    ) {
        let invite = request.method == Method::Invite;
        let kind = if invite {
            Kind::ServerInvite
        } else {
            Kind::ServerNonInvite
        };
        let headers = &request.headers;
        let call_id = headers.call_id();
        let dialog = match (call_id, headers.from_tag(), headers.cseq()) {
            (Some(_), Some(from_tag), Some((cseq, _))) => Some((from_tag, cseq)),
            _ => None,
        };
        let from_tag = dialog.map_or("", |(tag, _)| tag);
        let mut tx = Tx::new(
            kind,
            reply_to,
            method,
            [&branch, &sent_by, call_id.unwrap_or_default(), from_tag],
        );
        if let Some((_, cseq)) = dialog {
            tx.has_from_tag = true;
            tx.cseq = cseq;
        }
        // §8.2.2.2: a request without a To tag that matches another
        // transaction's Call-ID, From tag and CSeq but not its branch
        // arrived over a second path.
        tx.by_merge = headers.to_tag().is_none() && tx.has_from_tag;
        let merged = tx
            .key(Table::Merge)
            .is_some_and(|k| self.index.find(&self.txs, &k).is_some());
        tx.request = Some(Box::new(for_responses(&request)));
        if merged {
            // Answered 482 on this path, and not a merge key of its own.
            tx.by_merge = false;
            let resp = response_to(&request, 482, Some("Loop Detected"), Some(&self.ids.tag()));
            let id = self.alloc(tx);
            self.index.add(&self.txs, id, Table::Server);
            self.respond_inner(now, id, resp);
            return;
        }
        let id = self.alloc(tx);
        if invite {
            let t = self.txs.get_mut(&id).expect("just allocated");
            t.set_timer(TimerKind::Trying, now + TRYING_AFTER, &mut self.timers, id);
        }
        self.index.add(&self.txs, id, Table::Server);
        self.index.add(&self.txs, id, Table::Merge);
        self.events.push_back(TuEvent::Request {
            tx: TxId(id),
            request,
            source,
        });
    }

    fn on_ack(&mut self, now: Instant, request: Request, source: Peer, key: &Key<'_>) {
        if let Some(id) = self.index.find(&self.txs, key) {
            let cfg = self.cfg;
            let t = self.txs.get_mut(&id).expect("indexed transaction exists");
            match t.state {
                State::Completed => {
                    t.state = State::Confirmed;
                    t.slim();
                    t.clear_timers();
                    let reliable = t.peer.transport.is_reliable();
                    t.set_timer(
                        TimerKind::I,
                        now + cfg.t4_or_zero(reliable),
                        &mut self.timers,
                        id,
                    );
                    return;
                }
                State::Confirmed => {
                    self.stats.absorbed += 1;
                    return;
                }
                _ => {}
            }
        }
        // The ACK for a 2xx: its own branch, matched by the dialog (Call-ID,
        // both tags) and the INVITE's CSeq number. An ACK naming no 2xx we
        // sent (wrong or missing tags: a blind forger) reaches the
        // transaction user without a transaction.
        let tx = ack_key_of(&request.headers).and_then(|k| self.index.find(&self.txs, &k));
        if let Some(id) = tx
            && let Some(t) = self.txs.get_mut(&id)
        {
            if t.acked {
                self.stats.absorbed += 1;
                return;
            }
            t.acked = true;
            t.clear_timer(TimerKind::G);
            // Acknowledged: the 2xx is never sent again.
            t.last = None;
        }
        self.events.push_back(TuEvent::Ack {
            tx: tx.map(TxId),
            request,
            source,
        });
    }

    fn on_cancel(&mut self, now: Instant, request: Request, reply_to: Peer, key: &Key<'_>) {
        if let Some(id) = self.index.find(&self.txs, key) {
            self.stats.absorbed += 1;
            if let Some(last) = self.txs[&id].last.clone() {
                self.send(reply_to, last);
            }
            return;
        }
        let Key::Server {
            branch, sent_by, ..
        } = *key
        else {
            return;
        };
        let invite_method = Method::Invite;
        let invite_key = Key::Server {
            branch,
            sent_by,
            method: &invite_method,
        };
        // Over UDP a CANCEL must come from where its INVITE came from: the
        // branch alone can be copied by anyone who saw the INVITE, and
        // written by anyone who guesses it.
        let invite = self.index.find(&self.txs, &invite_key).filter(|i| {
            let p = self.txs[i].peer;
            p.transport != Transport::Udp || p.addr.ip() == reply_to.addr.ip()
        });
        if invite.is_none() {
            // No such INVITE: 481, sent once and forgotten (a flood of
            // CANCELs from spoofed sources keeps no state for 32 s).
            let resp = response_to(
                &request,
                481,
                Some("Call/Transaction Does Not Exist"),
                Some(&self.ids.tag()),
            );
            self.send(reply_to, to_bytes(&SipMessage::Response(resp)));
            return;
        }
        let tag = invite
            .and_then(|i| self.txs[&i].to_tag().map(str::to_owned))
            .unwrap_or_else(|| self.ids.tag());
        // Answered at once (below): no request to keep.
        let call_id = request.headers.call_id().unwrap_or_default();
        let tx = Tx::new(
            Kind::ServerNonInvite,
            reply_to,
            Method::Cancel,
            [branch, sent_by, call_id, ""],
        );
        let resp = response_to(&request, 200, None, Some(&tag));
        let id = self.alloc(tx);
        self.index.add(&self.txs, id, Table::Server);
        self.respond_inner(now, id, resp);
        if let Some(inv) = invite
            && self
                .txs
                .get(&inv)
                .is_some_and(|t| t.state == State::Proceeding)
        {
            let t = &mut self.txs.get_mut(&inv).expect("checked above");
            if !t.has_to_tag {
                t.set_to_tag(&tag);
            }
            let resp = t
                .request
                .as_deref()
                .map(|r| response_to(r, 487, None, Some(&tag)));
            let call_id = t.call_id().to_owned();
            if let Some(resp) = resp {
                self.respond_inner(now, inv, resp);
            }
            self.events.push_back(TuEvent::Cancelled {
                tx: TxId(inv),
                call_id,
            });
        }
    }

    /// Sends a response in a server transaction. Responses for transactions that
    /// already have a final response are ignored (returns false).
    pub fn respond(&mut self, now: Instant, tx: TxId, response: Response) -> bool {
        self.timers.observe(now);
        self.respond_inner(now, tx.0, response)
    }

    /// Ends a server transaction at once, sending `response` (a final
    /// one) first if given, and keeps nothing: no retransmission of it, no
    /// absorbing of the request's retransmissions (each one is new to the
    /// layer). For sources that never authenticated: a 401 or 403 to a
    /// spoofed address is sent once, not for 32 s, and holds no memory.
    /// Returns false if the transaction is gone or already answered.
    pub fn respond_once(&mut self, tx: TxId, response: Option<Response>) -> bool {
        let Some(t) = self.txs.get(&tx.0) else {
            return false;
        };
        let open = matches!(
            (t.kind, t.state),
            (Kind::ServerInvite, State::Proceeding)
                | (Kind::ServerNonInvite, State::Trying | State::Proceeding)
        );
        if !open {
            return false;
        }
        if let Some(r) = response {
            let peer = t.peer;
            self.send(peer, to_bytes(&SipMessage::Response(r)));
        }
        self.terminate(tx.0);
        true
    }

    fn respond_inner(&mut self, now: Instant, id: u64, response: Response) -> bool {
        let cfg = self.cfg;
        let Some(t) = self.txs.get_mut(&id) else {
            return false;
        };
        let code = response.status_code.code();
        let reliable = t.peer.transport.is_reliable();
        match (t.kind, t.state) {
            (Kind::ServerInvite, State::Proceeding) => {
                let mut indexed_ack = false;
                t.clear_timer(TimerKind::Trying);
                if let Some(tag) = response.headers.to_tag()
                    && code > 100
                {
                    // A 2xx's To tag names the dialog its ACK must name.
                    if t.to_tag() != Some(tag) && (!t.has_to_tag || (200..300).contains(&code)) {
                        t.set_to_tag(tag);
                    }
                }
                let data = response_bytes(&response);
                t.last = Some(data.clone());
                t.tries = 0;
                if code >= 200 {
                    t.status = code;
                    if code < 300 {
                        t.state = State::Accepted;
                        // RFC 6026: the 2xx is retransmitted (§13.3.1.4) until its ACK, on any transport.
                        t.set_timer(TimerKind::G, now + cfg.t1, &mut self.timers, id);
                        t.set_timer(TimerKind::L, now + cfg.t1x64(), &mut self.timers, id);
                        t.by_ack = response.headers.to_tag().is_some();
                        t.slim();
                        indexed_ack = t.key(Table::Ack).is_some();
                    } else {
                        t.state = State::Completed;
                        t.slim();
                        if !reliable {
                            t.set_timer(TimerKind::G, now + cfg.t1, &mut self.timers, id);
                        }
                        t.set_timer(TimerKind::H, now + cfg.t1x64(), &mut self.timers, id);
                    }
                }
                let peer = t.peer;
                self.send(peer, data);
                if indexed_ack {
                    self.index.add(&self.txs, id, Table::Ack);
                }
                true
            }
            (Kind::ServerNonInvite, State::Trying | State::Proceeding) => {
                let data = to_bytes(&SipMessage::Response(response));
                if code >= 200 {
                    t.state = State::Completed;
                    t.status = code;
                    // Over UDP the final is resent to each retransmitted
                    // request for 32 s (Timer J): a response the layer
                    // would build from the request as it is (a BYE's 200)
                    // is rebuilt then instead of kept.
                    t.rebuild = !reliable
                        && t.request
                            .as_deref()
                            .is_some_and(|r| plain_response(r, code, &data));
                    t.last = (!t.rebuild).then(|| data.clone());
                    t.slim();
                    t.set_timer(
                        TimerKind::J,
                        now + cfg.timer_j(reliable),
                        &mut self.timers,
                        id,
                    );
                } else {
                    t.state = State::Proceeding;
                    t.last = Some(data.clone());
                }
                let peer = t.peer;
                self.send(peer, data);
                true
            }
            _ => false,
        }
    }

    // ----- timers -----

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.timers.observe(now);
        let now_nanos = self.timers.nanos(now);
        while let Some((at, id, kind)) = self.timers.peek() {
            if at > now_nanos {
                break;
            }
            self.timers.pop();
            if !self.txs.get(&id).is_some_and(|t| t.has_timer(kind, at)) {
                continue;
            }
            let at = self.timers.instant(at);
            self.fire(now, at, id, kind);
        }
    }

    fn fire(&mut self, now: Instant, at: Instant, id: u64, kind: TimerKind) {
        let cfg = self.cfg;
        let t = self.txs.get_mut(&id).expect("checked by caller");
        t.clear_timer(kind);
        match kind {
            TimerKind::A | TimerKind::E | TimerKind::G => {
                let Some(data) = t.last.clone() else { return };
                t.tries = t.tries.saturating_add(1);
                let next = t.next_interval(kind, &cfg);
                t.set_timer(kind, at + next, &mut self.timers, id);
                let peer = t.peer;
                self.stats.retransmissions += 1;
                self.send(peer, data);
            }
            TimerKind::B | TimerKind::F | TimerKind::CancelGiveUp => self.time_out(id),
            TimerKind::H => {
                let call_id = t.call_id().to_owned();
                self.terminate(id);
                self.events.push_back(TuEvent::AckTimeout {
                    tx: TxId(id),
                    call_id,
                    was_2xx: false,
                });
            }
            TimerKind::L => {
                let acked = t.acked;
                let call_id = t.call_id().to_owned();
                self.terminate(id);
                if !acked {
                    self.events.push_back(TuEvent::AckTimeout {
                        tx: TxId(id),
                        call_id,
                        was_2xx: true,
                    });
                }
            }
            TimerKind::D | TimerKind::I | TimerKind::J | TimerKind::K | TimerKind::M => {
                self.terminate(id);
            }
            TimerKind::Trying => {
                if t.kind == Kind::ServerInvite
                    && t.state == State::Proceeding
                    && t.last.is_none()
                    && let Some(r) = t.request.as_deref()
                {
                    let data = response_bytes(&response_to(r, 100, None, None));
                    t.last = Some(data.clone());
                    let peer = t.peer;
                    self.send(peer, data);
                }
            }
        }
        let _ = now;
    }
}

/// Transactions by their client, server, merge (§8.2.2.2) and 2xx-ACK
/// keys. The tables hold ids and hashes only: each key lives once, in its
/// transaction, and is compared through it (tens of thousands of
/// transactions linger at a time; a key copy per entry was a fifth of their
/// memory). The hash kept beside the id lets a table rehash, as it grows or
/// clears its tombstones, without reading a transaction: rehashing through
/// the transactions (a cache miss each, and SipHash of their strings) held
/// a shard 40-160 ms at a time at 6,000 calls/s, the whole of its p99.
#[derive(Debug, Default)]
struct Index {
    tables: [HashTable<Entry>; 4],
    hasher: RandomState,
}

/// One index entry: the low 32 bits of its key's hash and the
/// transaction's id, in 12 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u32,
    id: [u32; 2],
}

impl Entry {
    fn new(hash: u32, id: u64) -> Self {
        Entry {
            hash,
            id: [id as u32, (id >> 32) as u32],
        }
    }

    fn id(&self) -> u64 {
        u64::from(self.id[0]) | (u64::from(self.id[1]) << 32)
    }
}

/// The table's 64-bit hash from a kept 32-bit one: the bucket comes from
/// the low bits and the control byte from the top seven, so both halves
/// carry it.
fn spread(hash: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(hash)
}

type Txs = HashMap<u64, Box<Tx>, BuildHasherDefault<IdHasher>>;

/// The hasher of the transaction map's keys: the layer's own sequence
/// numbers, never chosen by a peer, so a multiply spreads them (the low
/// bits of consecutive ids stay distinct, the top bits mix). SipHash made
/// each growth of a busy shard's map a stall of several milliseconds.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Index {
    fn hash(&self, key: &Key<'_>) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    /// The transaction with `key`, in the table of its kind.
    fn find(&self, txs: &Txs, key: &Key<'_>) -> Option<u64> {
        let table = key.table();
        let hash = self.hash(key);
        self.tables[table as usize]
            .find(spread(hash), |e| {
                e.hash == hash && txs.get(&e.id()).and_then(|t| t.key(table)).as_ref() == Some(key)
            })
            .map(Entry::id)
    }

    /// Adds transaction `id` (already in `txs`) to `table` under its key
    /// there, if it has one; it takes the place of a transaction with an
    /// equal key, as a map insert would.
    fn add(&mut self, txs: &Txs, id: u64, table: Table) {
        let Some(key) = txs.get(&id).and_then(|t| t.key(table)) else {
            return;
        };
        let hash = self.hash(&key);
        let entries = &mut self.tables[table as usize];
        let same = |e: &Entry| {
            e.hash == hash && txs.get(&e.id()).and_then(|t| t.key(table)).as_ref() == Some(&key)
        };
        if let Some(slot) = entries.find_mut(spread(hash), same) {
            *slot = Entry::new(hash, id);
            return;
        }
        entries.insert_unique(spread(hash), Entry::new(hash, id), |e| spread(e.hash));
    }

    /// Removes terminated transaction `id`'s entries (its own: a newer
    /// transaction that took an equal key keeps its entry).
    fn remove(&mut self, id: u64, tx: &Tx) {
        for table in Table::ALL {
            let Some(key) = tx.key(table) else { continue };
            let hash = self.hash(&key);
            if let Ok(entry) =
                self.tables[table as usize].find_entry(spread(hash), |e| e.id() == id)
            {
                entry.remove();
            }
        }
    }
}

/// Whether `data`, a final response with `code` to `request`, is exactly
/// what [`response_to`] builds from the request: nothing added (a BYE's
/// 200). Such a response is rebuilt from a retransmitted request rather
/// than kept: a UDP BYE's 200 was a tenth of what an ended call left for
/// Timer J's 32 s.
fn plain_response(request: &Request, code: u16, data: &[u8]) -> bool {
    response_bytes(&response_to(request, code, None, None)) == data
}

/// What a server transaction keeps of its request until the final
/// response: the headers [`response_to`] copies (Via, From, To, Call-ID,
/// CSeq, Timestamp) for the responses the layer makes itself (100, 482,
/// 487) and the 2xx's ACK key; not the body, not the rest. The request
/// itself goes to the transaction user, uncloned.
fn for_responses(request: &Request) -> Request {
    let headers: Vec<Header> = request
        .headers
        .iter()
        .filter(|h| {
            matches!(
                h,
                Header::Via(_)
                    | Header::From(_)
                    | Header::To(_)
                    | Header::CallId(_)
                    | Header::CSeq(_)
                    | Header::Timestamp(_)
            )
        })
        .cloned()
        .collect();
    Request {
        method: request.method.clone(),
        uri: Uri::default(),
        version: request.version.clone(),
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// Where responses to a request go (§18.2.2 with RFC 3581): the source
/// connection for streams; for datagrams the source address when `rport` was
/// requested, else the source IP with the Via port.
fn response_peer(via: &ViaRef<'_>, source: Peer) -> Peer {
    if source.transport.is_reliable() || via.rport.is_some() {
        return source;
    }
    let port = via.port.unwrap_or(5060);
    Peer {
        transport: source.transport,
        addr: SocketAddr::new(source.addr.ip(), port),
    }
}

/// Adds `received` (when the sent-by host differs from the source IP) and
/// fills an empty `rport` in the top Via (§18.2.1, RFC 3581 §4).
pub fn stamp_via(request: &mut Request, source: SocketAddr) {
    let stamp = match request.headers.top_via() {
        Some(Ok(via)) => Stamp::of(&via, source),
        _ => return,
    };
    stamp.apply(request, source);
}

/// What the top Via of a received request lacks (§18.2.1, RFC 3581 §4).
#[derive(Debug, Clone, Copy)]
struct Stamp {
    received: bool,
    rport: bool,
}

impl Stamp {
    fn of(via: &ViaRef<'_>, source: SocketAddr) -> Self {
        let host_is_source = via
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip == source.ip());
        Self {
            received: !host_is_source && via.received.is_none(),
            rport: via.rport == Some(None),
        }
    }

    fn apply(self, request: &mut Request, source: SocketAddr) {
        use std::fmt::Write as _;
        if !self.received && !self.rport {
            return;
        }
        let Some(h) = request
            .headers
            .iter_mut()
            .find(|h| matches!(h, Header::Via(_)))
        else {
            return;
        };
        let value = crate::message::header_value(h);
        let mut out = String::with_capacity(value.len() + 48);
        let mut parts = value.split(';');
        out.push_str(parts.next().unwrap_or(""));
        for p in parts {
            let name = p.split('=').next().unwrap_or("").trim();
            if self.rport && name.eq_ignore_ascii_case("rport") {
                let _ = write!(out, ";rport={}", source.port());
            } else {
                out.push(';');
                out.push_str(p);
            }
        }
        if self.received {
            let _ = write!(out, ";received={}", source.ip());
        }
        *h = Header::Via(out.into());
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3).
pub fn build_ack(invite: &Request, response: &Response) -> Request {
    let mut headers = rsip::Headers::default();
    if let Some(v) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(v.clone());
    }
    headers.push(Header::MaxForwards("70".into()));
    for h in invite.headers.iter() {
        match h {
            Header::From(_) | Header::CallId(_) | Header::Route(_) => headers.push(h.clone()),
            _ => {}
        }
    }
    if let Some(to) = response.headers.iter().find(|h| matches!(h, Header::To(_))) {
        headers.push(to.clone());
    }
    let n = invite.headers.cseq().map_or(1, |c| c.0);
    headers.push(Header::CSeq(format!("{n} ACK").into()));
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// The CANCEL for a pending INVITE (§9.1): same Request-URI, top Via, Call-ID,
/// From, To, Route and CSeq number.
pub fn build_cancel(invite: &Request) -> Request {
    let mut headers = rsip::Headers::default();
    if let Some(v) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(v.clone());
    }
    headers.push(Header::MaxForwards("70".into()));
    for h in invite.headers.iter() {
        match h {
            Header::From(_) | Header::To(_) | Header::CallId(_) | Header::Route(_) => {
                headers.push(h.clone())
            }
            _ => {}
        }
    }
    let n = invite.headers.cseq().map_or(1, |c| c.0);
    headers.push(Header::CSeq(format!("{n} CANCEL").into()));
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Convenience for the transaction user: headers of a received message.
pub fn headers_of(msg: &SipMessage) -> &rsip::Headers {
    msg.headers()
}

#[cfg(test)]
mod tests;
