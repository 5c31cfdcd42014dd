//! One shard of the endpoint: owns a sans-IO `TransactionLayer`, parses the
//! messages routed to it, drives its timers with a single sleep, sends what the
//! layer emits, and hands events to the transaction user — all in order, by
//! one task, so a call's 180 never overtakes its 200 (design §3).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use tandem_sip::builder::{IdGen, response_to};
use tandem_sip::message::{Header, HeadersExt, Method, parse};
use tandem_sip::transaction::{Peer, TimerConfig, TransactionLayer, Transmit, Transport, TuEvent};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::{EndpointEvent, Router, ShardInput, Stats, tcp};

/// Where a shard sends bytes.
#[derive(Debug)]
pub(crate) struct Net {
    /// The UDP sockets, each with whether it is IPv4 (read once: asking the
    /// socket is a `getsockname` system call, once per datagram before).
    pub udp: Vec<(Arc<UdpSocket>, bool)>,
    pub tcp: tcp::Pool,
    pub tls: tcp::Pool,
}

impl Net {
    /// The UDP socket that sends to `peer`: the first of its address
    /// family, else the first.
    fn udp_for(&self, peer: std::net::SocketAddr) -> Option<&Arc<UdpSocket>> {
        let want_v4 = peer.is_ipv4();
        self.udp
            .iter()
            .find(|(_, v4)| *v4 == want_v4)
            .or(self.udp.first())
            .map(|(s, _)| s)
    }

    pub(crate) async fn send(&self, t: Transmit) {
        match t.peer.transport {
            Transport::Udp => {
                let Some(sock) = self.udp_for(t.peer.addr) else {
                    tracing::warn!(peer = %t.peer.addr, "no UDP socket to send from");
                    return;
                };
                if let Err(e) = sock.send_to(&t.data, t.peer.addr).await {
                    tracing::debug!(peer = %t.peer.addr, error = %e, "UDP send failed");
                }
            }
            Transport::Tcp => self.tcp.send(t.peer.addr, t.data),
            Transport::Tls => self.tls.send(t.peer.addr, t.data),
        }
    }

    /// Sends the UDP datagrams of one flush, in order, with as few system
    /// calls as the kernel takes: one `sendmmsg` for a run of datagrams
    /// leaving by the same socket (a shard under load flushes several at a
    /// time), one `sendto` for a datagram alone. Empties `batch`.
    pub(crate) async fn send_udp(&self, batch: &mut Vec<Transmit>) {
        let mut start = 0;
        while start < batch.len() {
            let Some(sock) = self.udp_for(batch[start].peer.addr) else {
                tracing::warn!(peer = %batch[start].peer.addr, "no UDP socket to send from");
                start += 1;
                continue;
            };
            let mut end = start + 1;
            while end < batch.len()
                && self
                    .udp_for(batch[end].peer.addr)
                    .is_some_and(|s| Arc::ptr_eq(s, sock))
            {
                end += 1;
            }
            if end - start == 1 {
                let t = &batch[start];
                if let Err(e) = sock.send_to(&t.data, t.peer.addr).await {
                    tracing::debug!(peer = %t.peer.addr, error = %e, "UDP send failed");
                }
            } else {
                send_many(sock, &batch[start..end]).await;
            }
            start = end;
        }
        batch.clear();
    }
}

/// `sendmmsg` over `run` (all leaving by `sock`), waiting for the socket
/// to be writable when the kernel's buffer is full; a datagram the kernel
/// refuses (an unreachable peer) is skipped like a failed `sendto`.
async fn send_many(sock: &UdpSocket, run: &[Transmit]) {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd as _;

    let iovs: Vec<[IoSlice<'_>; 1]> = run.iter().map(|t| [IoSlice::new(&t.data)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = run
        .iter()
        .map(|t| Some(SockaddrStorage::from(t.peer.addr)))
        .collect();
    let mut off = 0;
    while off < run.len() {
        // The headers hold raw pointers (not `Send`): made per attempt, and
        // gone before the task may wait.
        let sent = {
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(run.len() - off, None);
            sock.try_io(tokio::io::Interest::WRITABLE, || {
                sendmmsg(
                    sock.as_raw_fd(),
                    &mut headers,
                    &iovs[off..],
                    &addrs[off..],
                    [],
                    MsgFlags::empty(),
                )
                .map(|r| r.count())
                .map_err(std::io::Error::from)
            })
        };
        match sent {
            Ok(n) => off += n.max(1),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if sock.writable().await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(peer = %run[off].peer.addr, error = %e, "UDP send failed");
                off += 1;
            }
        }
    }
}

/// FNV-1a over the trimmed Call-ID: stable and cheap.
pub(crate) fn shard_of(call_id: &[u8], n: usize) -> usize {
    (call_key(call_id) % n.max(1) as u64) as usize
}

/// Finds the Call-ID value in raw message bytes without parsing the message
/// (full or compact `i` form, any case).
pub(crate) fn raw_call_id(data: &[u8]) -> &[u8] {
    let head_end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(data.len());
    for line in data[..head_end].split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            return line[colon + 1..].trim_ascii();
        }
    }
    b""
}

/// Where a shard's events go: the router first, if one is installed, then
/// the event queue.
pub(crate) struct ToUser {
    pub events: mpsc::Sender<EndpointEvent>,
    pub router: Arc<OnceLock<Arc<dyn Router>>>,
}

/// Per Call-ID (by hash), the events of one shard waiting for the
/// transaction user in the event queue or the shard's overflow.
#[derive(Debug, Default)]
pub(crate) struct Waiting(Mutex<HashMap<u64, u32>>);

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u32>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One event of a Call-ID counted in [`Waiting`] until it is dropped.
#[derive(Debug)]
pub(crate) struct Held {
    waiting: Arc<Waiting>,
    key: u64,
}

impl Held {
    fn new(waiting: &Arc<Waiting>, key: u64) -> Held {
        *waiting.lock().entry(key).or_insert(0) += 1;
        Held {
            waiting: Arc::clone(waiting),
            key,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut w = self.waiting.lock();
        if let Some(n) = w.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.key);
            }
        }
    }
}

/// FNV-1a of a Call-ID.
fn call_key(call_id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in call_id {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(crate) struct Shard {
    index: usize,
    layer: TransactionLayer,
    net: Arc<Net>,
    events: mpsc::Sender<EndpointEvent>,
    router: Arc<OnceLock<Arc<dyn Router>>>,
    /// This shard's events waiting for the transaction user, per Call-ID.
    waiting: Arc<Waiting>,
    /// Events the full event queue could not take yet, in order; bounded
    /// by `overflow_max`.
    overflow: VecDeque<EndpointEvent>,
    overflow_max: usize,
    stats: Arc<Stats>,
    answer_options: bool,
    /// Start of the current second and the 400s sent in it.
    malformed_window: (Instant, u32),
    /// The datagrams of the flush in progress (kept for its capacity).
    udp_batch: Vec<Transmit>,
}

/// What woke a shard.
enum Turn {
    Command(Option<ShardInput>),
    Network(Option<ShardInput>),
    /// An event held back went to the transaction user.
    Delivered,
    Timer,
}

/// Inputs taken per turn from each inbox before the layer's output is
/// flushed (commands first).
const BATCH: usize = 64;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Shard {
    #[allow(clippy::too_many_arguments)] // one per part of a shard
    pub(crate) fn new(
        index: usize,
        timers: TimerConfig,
        ids: IdGen,
        net: Arc<Net>,
        to_user: ToUser,
        answer_options: bool,
        overflow_max: usize,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            index,
            layer: TransactionLayer::new(timers, ids),
            net,
            events: to_user.events,
            router: to_user.router,
            waiting: Arc::default(),
            overflow: VecDeque::new(),
            overflow_max,
            udp_batch: Vec::new(),
            stats,
            answer_options,
            malformed_window: (now(), 0),
        }
    }

    /// Runs until both inboxes close. Commands from the transaction user
    /// come before what the network brought; the shard never waits for the
    /// transaction user (see the crate's documentation).
    pub(crate) async fn run(
        mut self,
        mut cmds: mpsc::Receiver<ShardInput>,
        mut net: mpsc::Receiver<ShardInput>,
    ) {
        let (mut cmds_open, mut net_open) = (true, true);
        while cmds_open || net_open {
            let deadline = self.layer.poll_timeout();
            let waiting = !self.overflow.is_empty();
            let turn = tokio::select! {
                biased;
                input = cmds.recv(), if cmds_open => Turn::Command(input),
                input = net.recv(), if net_open => Turn::Network(input),
                permit = self.events.reserve(), if waiting => {
                    if let (Ok(permit), Some(ev)) = (permit, self.overflow.pop_front()) {
                        permit.send(ev);
                        // And as many more as there is room for now.
                        while let Some(ev) = self.overflow.pop_front() {
                            if let Err(e) = self.events.try_send(ev) {
                                if let mpsc::error::TrySendError::Full(ev) = e {
                                    self.overflow.push_front(ev);
                                }
                                break;
                            }
                        }
                    }
                    Turn::Delivered
                }
                () = sleep_until(deadline), if deadline.is_some() => Turn::Timer,
            };
            match turn {
                Turn::Command(Some(input)) => {
                    self.input(input);
                    self.take(&mut cmds);
                }
                Turn::Command(None) => cmds_open = false,
                Turn::Network(Some(input)) => {
                    self.input(input);
                    // Commands that came meanwhile still go first.
                    self.take(&mut cmds);
                    self.take(&mut net);
                }
                Turn::Network(None) => net_open = false,
                Turn::Delivered => {}
                Turn::Timer => self.layer.handle_timeout(now()),
            }
            self.flush().await;
            self.stats.beat(self.index, self.layer.stats());
        }
    }

    /// Takes up to [`BATCH`] more inputs already queued in `rx`.
    fn take(&mut self, rx: &mut mpsc::Receiver<ShardInput>) {
        for _ in 0..BATCH {
            match rx.try_recv() {
                Ok(i) => self.input(i),
                Err(_) => break,
            }
        }
    }

    fn input(&mut self, input: ShardInput) {
        let t = now();
        match input {
            ShardInput::Received { data, source } => match parse(&data) {
                Ok(msg) => self.layer.handle_message(t, msg, source),
                Err(e) => {
                    let n = self.stats.malformed.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::info!(peer = %source.addr, error = %e, malformed = n, "unparseable SIP message");
                    }
                    if self.may_answer_malformed(t)
                        && let Some(resp) = tandem_sip::message::error_response(&data, &e)
                    {
                        self.layer_send(source, resp);
                    }
                }
            },
            ShardInput::SendRequest { request, peer } => {
                self.layer.send_request(t, *request, peer);
            }
            ShardInput::SendStateless { msg, peer } => self.layer.send_stateless(*msg, peer),
            ShardInput::Respond { tx, response } => {
                if !self.layer.respond(t, tx, *response) {
                    tracing::debug!(?tx, "response for a finished transaction dropped");
                }
            }
            ShardInput::RespondOnce { tx, response } => {
                self.layer.respond_once(tx, response.map(|r| *r));
            }
            ShardInput::Cancel { branch } => {
                if let Some(tx) = self.layer.find_client(&branch, Method::Invite) {
                    self.layer.cancel(t, tx);
                }
            }
            ShardInput::Unreachable { peer } => {
                let n = self.layer.transport_failed(peer);
                if n > 0 {
                    tracing::debug!(peer = %peer.addr, transactions = n, "peer unreachable: its transactions fail now");
                }
            }
        }
    }

    /// At most [`crate::MALFORMED_ANSWERS_PER_SEC`] 400s a second.
    fn may_answer_malformed(&mut self, now: Instant) -> bool {
        let (start, n) = &mut self.malformed_window;
        if now.saturating_duration_since(*start) >= std::time::Duration::from_secs(1) {
            *start = now;
            *n = 0;
        }
        *n += 1;
        *n <= crate::MALFORMED_ANSWERS_PER_SEC
    }

    fn layer_send(&mut self, peer: Peer, data: Bytes) {
        self.layer.send_raw(peer, data);
    }

    async fn flush(&mut self) {
        self.transmit().await;
        while let Some(ev) = self.layer.poll_event() {
            if let Some(ev) = self.auto_answer(ev) {
                self.deliver(ev);
            }
        }
        // Auto-answers and 503s may have queued more transmits.
        self.transmit().await;
    }

    /// Sends what the layer queued: datagrams together (one `sendmmsg` per
    /// socket run), TCP and TLS frames to their connections' writers.
    async fn transmit(&mut self) {
        let mut udp = std::mem::take(&mut self.udp_batch);
        while let Some(t) = self.layer.poll_transmit() {
            match t.peer.transport {
                Transport::Udp => udp.push(t),
                _ => self.net.send(t).await,
            }
        }
        self.net.send_udp(&mut udp).await;
        self.udp_batch = udp;
    }

    /// Hands an event to the transaction user without ever waiting: behind
    /// events already held back, or into the overflow when the queue is
    /// full. A new out-of-dialog request that finds the queue full is
    /// answered 503 here instead (RFC 3261 §21.5.4; in-dialog requests,
    /// CANCELs, responses and timeouts are what the calls in progress need,
    /// so they wait instead). The router, if any, is offered the event
    /// first, unless an event of its Call-ID still waits ([`Router`]).
    fn deliver(&mut self, event: TuEvent) {
        let (event, held) = match self.router.get() {
            None => (event, None),
            Some(router) => {
                let key = call_key(event.call_id().as_bytes());
                let event = if self.waiting.lock().contains_key(&key) {
                    event
                } else {
                    match router.route(self.index, event) {
                        None => return,
                        Some(event) => event,
                    }
                };
                (event, Some(Held::new(&self.waiting, key)))
            }
        };
        let ev = EndpointEvent {
            shard: self.index,
            event,
            _held: held,
        };
        let ev = if self.overflow.is_empty() {
            match self.events.try_send(ev) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::debug!("transaction user gone; event dropped");
                    return;
                }
                Err(mpsc::error::TrySendError::Full(ev)) => ev,
            }
        } else {
            ev
        };
        if let TuEvent::Request { tx, request, .. } = &ev.event
            && request.headers.to_tag().is_none()
            && !matches!(request.method, Method::Cancel | Method::Ack)
        {
            let n = self.stats.requests_shed.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(shed = n, method = %request.method, "event queue full: new requests answered 503");
            }
            let mut resp = response_to(request, 503, None, Some(&self.layer.ids().tag()));
            resp.headers.push(Header::RetryAfter("5".into()));
            self.layer.respond(now(), *tx, resp);
            return;
        }
        if self.overflow.len() >= self.overflow_max {
            let n = self.stats.events_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::error!(
                    dropped = n,
                    "event queue and shard overflow full: event dropped"
                );
            }
            return;
        }
        self.stats.events_deferred.fetch_add(1, Ordering::Relaxed);
        self.overflow.push_back(ev);
    }

    /// Answers out-of-dialog OPTIONS (trunk keep-alives) itself.
    fn auto_answer(&mut self, ev: TuEvent) -> Option<TuEvent> {
        if let TuEvent::Request { tx, request, .. } = &ev
            && self.answer_options
            && request.method == Method::Options
            && request.headers.to_tag().is_none()
        {
            let tag = self.layer.ids().tag();
            let mut resp = response_to(request, 200, None, Some(&tag));
            resp.headers.push(Header::Allow(
                "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE".into(),
            ));
            resp.headers.push(Header::Accept("application/sdp".into()));
            resp.headers.push(Header::Supported("timer".into()));
            self.layer.respond(now(), *tx, resp);
            return None;
        }
        Some(ev)
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_id_found_in_full_and_compact_forms() {
        assert_eq!(
            raw_call_id(b"INVITE x SIP/2.0\r\nCall-ID:  abc \r\n\r\n"),
            b"abc"
        );
        assert_eq!(
            raw_call_id(b"INVITE x SIP/2.0\r\ni: q@w\r\n\r\nCall-ID: body"),
            b"q@w"
        );
        assert_eq!(raw_call_id(b"garbage"), b"");
        assert_eq!(shard_of(b"abc", 2), shard_of(b"abc", 2));
    }
}
