//! Media anchoring for calls (design §5): one pre-bound port pair and relay
//! leg per call leg, SDP offer/answer rewritten to Tandem's address, and the
//! generated ringback the caller hears while branches ring.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tandem_media::tones::RingTone;
use tandem_rtp::relay::{Injection, RingbackSource};
use tandem_rtp::sdp::{
    AnswerOptions, LocalMedia, MediaCapabilities, SdpError, SdpSession, SessionDescription,
    negotiate_answer,
};
use tandem_rtp::{Leg, LegConfig, LegId, MediaEvent, PoolConfig, PortPool};
use tokio::sync::mpsc;

use crate::config::MediaConfig;

/// The engine's media resources.
#[derive(Debug)]
pub(crate) struct Media {
    pool: PortPool,
    caps: MediaCapabilities,
    sdp_addr: IpAddr,
    latching: bool,
    timeout: Option<Duration>,
    srtp_over_tls: bool,
    next_leg: AtomicU32,
}

/// Why a leg could not get media.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LegError {
    /// No free port pair (answered 503).
    #[error("RTP port pool exhausted")]
    Exhausted,
    /// The sockets could not join the runtime.
    #[error("RTP leg start: {0}")]
    Io(#[from] std::io::Error),
    /// The SDP is unusable (answered 488).
    #[error("SDP: {0}")]
    Sdp(#[from] SdpError),
}

impl LegError {
    /// The SIP status for this failure.
    pub fn status(&self) -> u16 {
        match self {
            Self::Exhausted | Self::Io(_) => 503,
            Self::Sdp(e) => e.sip_status(),
        }
    }
}

impl Media {
    pub(crate) fn new(cfg: &MediaConfig) -> Result<Self, tandem_rtp::PoolError> {
        let pool = PortPool::bind(&PoolConfig {
            addr: cfg.address,
            port_min: cfg.port_min,
            port_max: cfg.port_max,
            recv_buffer: None,
        })?;
        Ok(Self {
            pool,
            caps: MediaCapabilities::default(),
            sdp_addr: cfg.sdp_address,
            latching: cfg.latching,
            timeout: cfg.media_timeout,
            srtp_over_tls: cfg.srtp_over_tls,
            next_leg: AtomicU32::new(1),
        })
    }

    /// A new relay leg on a fresh port pair.
    pub(crate) fn leg(
        &self,
        events: mpsc::Sender<MediaEvent>,
        signal: std::net::IpAddr,
    ) -> Result<MediaLeg, LegError> {
        let pair = self.pool.allocate().map_err(|_| LegError::Exhausted)?;
        let local = LocalMedia {
            addr: self.sdp_addr,
            rtp_port: pair.rtp_port(),
        };
        let id = LegId(self.next_leg.fetch_add(1, Ordering::Relaxed));
        let mut cfg = LegConfig::new(id);
        cfg.latching = self.latching;
        cfg.media_timeout = self.timeout;
        cfg.signal_ip = Some(signal);
        let leg = Leg::start(pair, cfg, Some(events))?;
        Ok(MediaLeg {
            leg,
            sess: SdpSession::new(rand_u64(), local),
            offer: None,
            ringback: None,
            remote: None,
        })
    }

    /// RTP port pairs free now.
    pub(crate) fn ports_free(&self) -> usize {
        self.pool.available()
    }

    pub(crate) fn caps(&self) -> &MediaCapabilities {
        &self.caps
    }

    /// The configured media timeout (`None`: off).
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Whether legs opened over TLS offer SRTP.
    pub(crate) fn srtp_over_tls(&self) -> bool {
        self.srtp_over_tls
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish() >> 1
}

/// One call leg's media: relay leg, SDP session, the offer Tandem sent.
#[derive(Debug)]
pub(crate) struct MediaLeg {
    pub leg: Leg,
    sess: SdpSession,
    offer: Option<SessionDescription>,
    ringback: Option<Injection>,
    /// A hash of the last SDP the remote sent on this leg (an offer or an
    /// answer): a re-offer byte for byte the same changes nothing.
    remote: Option<u64>,
}

fn sdp_hash(sdp: &[u8]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sdp.hash(&mut h);
    h.finish()
}

impl MediaLeg {
    /// Answers the remote's offer (the caller's INVITE) and starts the relay toward it.
    pub(crate) fn answer(
        &mut self,
        offer: &[u8],
        caps: &MediaCapabilities,
    ) -> Result<Vec<u8>, LegError> {
        let hash = sdp_hash(offer);
        let offer = SessionDescription::parse(offer)?;
        let (mut sdp, neg) = self.sess.answer(&offer, caps, AnswerOptions::default())?;
        self.sess.stamp(&mut sdp);
        self.leg.set_media(&neg);
        self.remote = Some(hash);
        Ok(sdp.to_bytes())
    }

    /// `sdp` is byte for byte the last SDP the remote sent on this leg (a
    /// session refresh that changes nothing).
    pub(crate) fn same_remote(&self, sdp: &[u8]) -> bool {
        self.remote == Some(sdp_hash(sdp))
    }

    /// An offer toward a callee built from the caller's offer (its codecs,
    /// G.711 added when it had none).
    pub(crate) fn offer_from(
        &mut self,
        remote_offer: &[u8],
        caps: &MediaCapabilities,
    ) -> Result<Vec<u8>, LegError> {
        let remote = SessionDescription::parse(remote_offer)?;
        let mut sdp = self.sess.offer_from(&remote, caps)?;
        self.sess.stamp(&mut sdp);
        let bytes = sdp.to_bytes();
        self.offer = Some(sdp);
        Ok(bytes)
    }

    /// Tandem's offers on this leg are SDES-SRTP from now on.
    pub(crate) fn use_srtp(&mut self) {
        self.sess.use_srtp(true);
    }

    /// Tandem's own offer (no caller offer to follow).
    pub(crate) fn offer(&mut self, caps: &MediaCapabilities) -> Vec<u8> {
        let mut sdp = self.sess.offer(caps, tandem_rtp::sdp::Direction::SendRecv);
        self.sess.stamp(&mut sdp);
        let bytes = sdp.to_bytes();
        self.offer = Some(sdp);
        bytes
    }

    /// The last offer Tandem made on this leg, again (a peer's re-INVITE
    /// without SDP asks for one): the same `o=` version when it is what
    /// was sent last, the next when an answer went out since; Tandem's own
    /// offer when it never offered on this leg.
    pub(crate) fn reoffer(&mut self, caps: &MediaCapabilities) -> Vec<u8> {
        let Some(mut sdp) = self.offer.clone() else {
            return self.offer(caps);
        };
        self.sess.stamp(&mut sdp);
        let bytes = sdp.to_bytes();
        self.offer = Some(sdp);
        bytes
    }

    /// Reads the callee's answer to Tandem's offer.
    pub(crate) fn on_answer(&mut self, answer: &[u8]) -> Result<(), LegError> {
        let Some(offer) = &self.offer else {
            return Ok(());
        };
        let hash = sdp_hash(answer);
        let answer = SessionDescription::parse(answer)?;
        let neg = negotiate_answer(offer, &answer)?;
        self.leg.set_media(&neg);
        self.remote = Some(hash);
        Ok(())
    }

    /// Plays a country's ringback toward this leg until stopped.
    pub(crate) fn start_ringback(&mut self, tone: RingTone) {
        if self.ringback.is_none() {
            self.ringback = Some(self.leg.inject(RingbackSource::new(tone)));
        }
    }

    /// Stops the ringback, if playing.
    pub(crate) fn stop_ringback(&mut self) {
        if let Some(r) = self.ringback.take() {
            r.stop();
        }
    }
}
