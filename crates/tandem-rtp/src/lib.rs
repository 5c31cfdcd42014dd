//! tandem-rtp: the media plane's I/O half.
//!
//! - [`sdp`]: SDP parse/print (RFC 4566) and offer/answer (RFC 3264) with
//!   Tandem's address and ports rewritten in on each leg.
//! - [`pool`]: pre-bound RTP/RTCP port pairs; no bind on the call path.
//! - [`relay`]: per-leg receive tasks that relay RTP/RTCP to the peer leg,
//!   with symmetric latching, SSRC/sequence/timestamp rewriting, media
//!   timeouts, taps and injection of generated audio.
//! - [`record`]: taps that feed tandem-media's recorder.
//! - [`rtp`]: allocation-free RTP header access.
//! - [`srtp`]: SDES keys (`a=crypto`) and the SRTP transforms of a leg.
//!
//! See `docs/rtp.md` for the behaviour and how the engine drives it.

pub mod codec;
pub mod pool;
pub mod record;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod srtp;

pub use pool::{PoolConfig, PoolError, PoolExhausted, PortPair, PortPool};
pub use relay::{Leg, LegConfig, LegId, MediaEvent, MediaRuntime, bridge};
