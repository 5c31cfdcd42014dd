//! RTP port pool: every RTP/RTCP socket pair (even port, odd port + 1) of the
//! configured range is bound once at start, so no call ever binds a socket
//! (RFC 3550 §11: RTP on an even port, RTCP on the next odd one).
//!
//! [`PortPool::allocate`] hands out a [`PortPair`] or [`PoolExhausted`] (the
//! engine answers 503). Dropping a pair puts it back at once, after draining
//! packets still queued for the previous call. Reuse is first-in first-out,
//! so a port just released is the last to be handed out again.
//!
//! A pair a relay leg gave back stays registered with the tokio runtime that
//! leg ran on ("warm"): the next leg started on that runtime uses it as it
//! is, instead of registering both sockets with the reactor and removing
//! them again at the end (four `epoll_ctl` per leg, two legs per call:
//! ~5 % of Tandem's CPU under SIPp load, docs/benchmarks.md §3(r)).

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError};

use socket2::{Domain, Protocol, Socket, Type};

/// Where the pool binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Local address to bind (the `[rtp] address` of the config).
    pub addr: IpAddr,
    /// First port of the range (rounded up to even).
    pub port_min: u16,
    /// Last port of the range (inclusive).
    pub port_max: u16,
    /// `SO_RCVBUF` for each socket, if set.
    pub recv_buffer: Option<usize>,
}

/// Binding the pool failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The range holds no even/odd pair.
    #[error("RTP port range {min}-{max} holds no even/odd pair")]
    EmptyRange {
        /// Configured minimum.
        min: u16,
        /// Configured maximum.
        max: u16,
    },
    /// No pair of the range could be bound (all in use, or no such address).
    #[error("no RTP port pair could be bound in {min}-{max} on {addr}: {source}")]
    NothingBound {
        /// Address.
        addr: IpAddr,
        /// Configured minimum.
        min: u16,
        /// Configured maximum.
        max: u16,
        /// The last bind error.
        source: io::Error,
    },
    /// Out of file descriptors (raise `ulimit -n`: two per pair).
    #[error("out of file descriptors after binding {bound} RTP port pairs: {source}")]
    Descriptors {
        /// Pairs bound before the failure.
        bound: usize,
        /// The error.
        source: io::Error,
    },
}

/// Every port pair is in use: refuse the call with 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("RTP port pool exhausted ({capacity} pairs in use)")]
pub struct PoolExhausted {
    /// Pairs in the pool.
    pub capacity: usize,
}

struct Pair {
    sockets: Sockets,
    /// The RTP socket's address, kept: asking the socket is a system call
    /// (`getsockname`), and SDP writers ask several times per call.
    addr: SocketAddr,
}

/// A pair's RTP and RTCP sockets.
enum Sockets {
    /// As bound: registered with no reactor.
    Cold(UdpSocket, UdpSocket),
    /// Still registered with the reactor of the runtime `runtime`.
    Warm {
        rtp: tokio::net::UdpSocket,
        rtcp: tokio::net::UdpSocket,
        runtime: tokio::runtime::Id,
    },
}

/// Tokio sockets registered with the current runtime's reactor.
pub(crate) type Registered = (tokio::net::UdpSocket, tokio::net::UdpSocket);

struct Inner {
    free: Mutex<VecDeque<Pair>>,
    capacity: usize,
    addr: IpAddr,
}

/// A pool of pre-bound RTP/RTCP socket pairs. Cheap to clone.
#[derive(Clone)]
pub struct PortPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PortPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortPool")
            .field("addr", &self.inner.addr)
            .field("capacity", &self.inner.capacity)
            .field("available", &self.available())
            .finish()
    }
}

fn bind_one(addr: SocketAddr, recv_buffer: Option<usize>) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(n) = recv_buffer {
        s.set_recv_buffer_size(n)?;
    }
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE / ENFILE
    matches!(e.raw_os_error(), Some(23 | 24))
}

impl PortPool {
    /// Bind every free even/odd pair of the range. Pairs whose ports are in
    /// use by something else are skipped; see [`PortPool::capacity`].
    pub fn bind(cfg: &PoolConfig) -> Result<PortPool, PoolError> {
        let first = cfg.port_min.saturating_add(cfg.port_min % 2);
        if first == 0 || first >= cfg.port_max {
            return Err(PoolError::EmptyRange {
                min: cfg.port_min,
                max: cfg.port_max,
            });
        }
        let mut free = VecDeque::new();
        let mut last_err = None;
        let mut port = first;
        while port < cfg.port_max {
            let addr = SocketAddr::new(cfg.addr, port);
            let pair = bind_one(addr, cfg.recv_buffer).and_then(|rtp| {
                let rtcp = bind_one(SocketAddr::new(cfg.addr, port + 1), cfg.recv_buffer)?;
                Ok(Pair {
                    sockets: Sockets::Cold(rtp, rtcp),
                    addr,
                })
            });
            match pair {
                Ok(p) => free.push_back(p),
                Err(e) if is_fd_exhaustion(&e) => {
                    return Err(PoolError::Descriptors {
                        bound: free.len(),
                        source: e,
                    });
                }
                Err(e) => {
                    tracing::debug!(port, error = %e, "RTP port pair skipped");
                    last_err = Some(e);
                }
            }
            port = match port.checked_add(2) {
                Some(p) => p,
                None => break,
            };
        }
        if free.is_empty() {
            return Err(PoolError::NothingBound {
                addr: cfg.addr,
                min: cfg.port_min,
                max: cfg.port_max,
                source: last_err.unwrap_or_else(|| io::Error::other("empty range")),
            });
        }
        let capacity = free.len();
        tracing::info!(addr = %cfg.addr, capacity, "RTP port pool bound");
        Ok(PortPool {
            inner: Arc::new(Inner {
                free: Mutex::new(free),
                capacity,
                addr: cfg.addr,
            }),
        })
    }

    /// Take a free pair, or [`PoolExhausted`]. Never binds, never waits.
    pub fn allocate(&self) -> Result<PortPair, PoolExhausted> {
        let pair = self
            .inner
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        match pair {
            Some(p) => Ok(PortPair {
                pair: Some(p),
                pool: Arc::clone(&self.inner),
            }),
            None => Err(PoolExhausted {
                capacity: self.inner.capacity,
            }),
        }
    }

    /// Pairs bound at start.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Pairs free now.
    pub fn available(&self) -> usize {
        self.inner
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The bound address.
    pub fn addr(&self) -> IpAddr {
        self.inner.addr
    }
}

/// Registers a pair with the current runtime's reactor.
fn register((rtp, rtcp): (UdpSocket, UdpSocket)) -> io::Result<Registered> {
    Ok((
        tokio::net::UdpSocket::from_std(rtp)?,
        tokio::net::UdpSocket::from_std(rtcp)?,
    ))
}

/// An allocated RTP/RTCP socket pair. Returns to its pool when dropped.
pub struct PortPair {
    pair: Option<Pair>,
    pool: Arc<Inner>,
}

impl std::fmt::Debug for PortPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortPair")
            .field("rtp", &self.rtp_addr())
            .finish()
    }
}

impl PortPair {
    fn pair(&self) -> &Pair {
        // Only `Drop` and `into_sockets` take the pair, and both consume self.
        self.pair
            .as_ref()
            .unwrap_or_else(|| unreachable!("pair taken"))
    }

    /// Local RTP address (even port).
    pub fn rtp_addr(&self) -> SocketAddr {
        self.pair().addr
    }

    /// Local RTP port.
    pub fn rtp_port(&self) -> u16 {
        self.rtp_addr().port()
    }

    /// Local RTCP address (RTP port + 1).
    pub fn rtcp_addr(&self) -> SocketAddr {
        let a = self.rtp_addr();
        SocketAddr::new(a.ip(), a.port() + 1)
    }

    /// The sockets registered with the current tokio runtime (a pair a leg
    /// of this runtime gave back already is), with a token that returns
    /// them to the pool. Must be called within a runtime.
    pub(crate) fn into_registered(mut self) -> io::Result<(Registered, PoolReturn)> {
        let p = self
            .pair
            .take()
            .unwrap_or_else(|| unreachable!("pair taken"));
        let here = tokio::runtime::Handle::current().id();
        let ret = PoolReturn {
            pool: Arc::clone(&self.pool),
            addr: p.addr,
            runtime: here,
        };
        let registered = match p.sockets {
            Sockets::Warm { rtp, rtcp, runtime } if runtime == here => {
                return Ok(((rtp, rtcp), ret));
            }
            // Registered with another runtime's reactor: moved to this one.
            Sockets::Warm { rtp, rtcp, .. } => rtp
                .into_std()
                .and_then(|rtp| Ok((rtp, rtcp.into_std()?)))
                .and_then(register),
            Sockets::Cold(rtp, rtcp) => register((rtp, rtcp)),
        };
        registered.map(|r| (r, ret)).inspect_err(|e| {
            tracing::warn!(port = p.addr.port(), error = %e, "RTP pair lost from the pool");
        })
    }
}

impl Drop for PortPair {
    fn drop(&mut self) {
        if let Some(p) = self.pair.take() {
            give_back(&self.pool, p);
        }
    }
}

/// Hands sockets back to the pool they came from.
pub(crate) struct PoolReturn {
    pool: Arc<Inner>,
    addr: SocketAddr,
    /// The runtime the sockets were registered with.
    runtime: tokio::runtime::Id,
}

impl PoolReturn {
    /// Returns the pair still registered with its runtime's reactor.
    pub(crate) fn give_back(self, (rtp, rtcp): Registered) {
        give_back(
            &self.pool,
            Pair {
                sockets: Sockets::Warm {
                    rtp,
                    rtcp,
                    runtime: self.runtime,
                },
                addr: self.addr,
            },
        );
    }
}

fn give_back(pool: &Inner, p: Pair) {
    // Drop what the previous call left queued, so the next call does not
    // hear it (or latch onto its sender). Read past tokio's readiness (it
    // may not have seen the last packets yet): a packet left behind wakes
    // the reactor again, and the next leg's first read clears what is stale.
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    let refs = match &p.sockets {
        Sockets::Cold(rtp, rtcp) => [socket2::SockRef::from(rtp), socket2::SockRef::from(rtcp)],
        Sockets::Warm { rtp, rtcp, .. } => {
            [socket2::SockRef::from(rtp), socket2::SockRef::from(rtcp)]
        }
    };
    for s in refs {
        for _ in 0..10_000 {
            if s.recv_from(&mut buf).is_err() {
                break;
            }
        }
    }
    pool.free
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push_back(p);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front_is_warm_here(pool: &PortPool) -> bool {
        let free = pool.inner.free.lock().unwrap();
        matches!(
            free.front(),
            Some(Pair { sockets: Sockets::Warm { runtime, .. }, .. })
                if *runtime == tokio::runtime::Handle::current().id()
        )
    }

    /// A pair comes back still registered with the runtime it was used on,
    /// drained of what the last call left queued, and is handed out again
    /// as it is.
    #[tokio::test]
    async fn a_pair_given_back_stays_registered_and_is_drained() {
        let pool = PortPool::bind(&PoolConfig {
            addr: "127.0.0.1".parse().unwrap(),
            port_min: 22480,
            port_max: 22481,
            recv_buffer: None,
        })
        .unwrap();
        let pair = pool.allocate().unwrap();
        let (rtp_addr, rtcp_addr) = (pair.rtp_addr(), pair.rtcp_addr());
        assert!(!front_is_warm_here(&pool));
        let (socks, ret) = pair.into_registered().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        for to in [rtp_addr, rtcp_addr, rtp_addr] {
            peer.send_to(b"left over", to).unwrap();
        }
        ret.give_back(socks);
        assert!(front_is_warm_here(&pool));
        let ((rtp, rtcp), _ret) = pool.allocate().unwrap().into_registered().unwrap();
        let mut buf = [MaybeUninit::<u8>::uninit(); 64];
        for s in [&rtp, &rtcp] {
            let e = socket2::SockRef::from(s).recv_from(&mut buf).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        }
        // And it still receives.
        peer.send_to(b"new call", rtp_addr).unwrap();
        let mut got = [0u8; 64];
        let (n, _) =
            tokio::time::timeout(std::time::Duration::from_secs(2), rtp.recv_from(&mut got))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(&got[..n], b"new call");
    }
}
