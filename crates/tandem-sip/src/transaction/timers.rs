//! Transaction timer values (RFC 3261 §17, Table 4 in Appendix A; RFC 6026 §8.4
//! adds Timers L and M). Durations derive from T1, T2 and T4, which are
//! configurable because carriers on lossy or long paths tune them.

use std::time::Duration;

/// The base timer values every transaction timer is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message will remain in the network (default 5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, L, M and the CANCEL give-up time (§9.1).
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: at least 32 s over unreliable transports, 0 over reliable ones.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.t1x64() / 2)
        }
    }

    /// Timers I and K: T4 over unreliable transports, 0 over reliable ones.
    pub fn t4_or_zero(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer J: 64*T1 over unreliable transports, 0 over reliable ones.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64()
        }
    }
}

/// Which RFC timer a deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// INVITE request retransmit (client).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait time for response retransmits (client INVITE, Completed).
    D,
    /// Non-INVITE request retransmit (client).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE final response retransmit (server), also 2xx retransmit in Accepted.
    G,
    /// Wait time for ACK receipt (server INVITE).
    H,
    /// Wait time for ACK retransmits (server INVITE, Confirmed).
    I,
    /// Wait time for non-INVITE request retransmits (server).
    J,
    /// Wait time for response retransmits (client non-INVITE).
    K,
    /// Wait time for accepted INVITE request retransmits (server, RFC 6026).
    L,
    /// Wait time for retransmission of 2xx to INVITE (client, RFC 6026).
    M,
    /// Give up on an INVITE whose CANCEL was answered but which got no final (§9.1).
    CancelGiveUp,
    /// Send 100 Trying for an INVITE the TU has not answered within 200 ms
    /// (§17.2.1: not before, so a request refused at once, or dropped, was
    /// never answered with a 100 its source did not earn).
    Trying,
}

impl TimerKind {
    /// Every kind, in declaration order: `ALL[kind as usize] == kind`.
    pub(crate) const ALL: [TimerKind; 14] = [
        TimerKind::A,
        TimerKind::B,
        TimerKind::D,
        TimerKind::E,
        TimerKind::F,
        TimerKind::G,
        TimerKind::H,
        TimerKind::I,
        TimerKind::J,
        TimerKind::K,
        TimerKind::L,
        TimerKind::M,
        TimerKind::CancelGiveUp,
        TimerKind::Trying,
    ];

    /// The kind numbered `n` (`kind as u8`); `n` comes from a packed
    /// deadline, so it is always below 14.
    pub(crate) fn from_index(n: u64) -> Self {
        Self::ALL[n as usize % Self::ALL.len()]
    }
}
