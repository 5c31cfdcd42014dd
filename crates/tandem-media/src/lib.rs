//! tandem-media: the compute half of Tandem's media plane.
//!
//! Pure compute: no tokio, no sockets, no clock. Time is always passed in,
//! as a sample position or a duration, so every piece here can be driven
//! faster than real time by tests and paced by the caller in production.
//!
//! - [`g711`]: PCMU/PCMA, bit-exact with ITU-T G.711 (G.191 reference code),
//!   table driven.
//! - [`codec`]: the [`Codec`] enum (PCMU, PCMA, Opus) with encoders,
//!   decoders and the [`Transcoder`] between legs; Opus via `audiopus`
//!   behind the `opus` feature (on by default).
//! - [`resample`]: streaming polyphase resampler (8 kHz <-> 48 kHz, any rate
//!   to a leg's rate).
//! - [`tones`]: ringback for the 40 `ringTone` codes ([`RingTone`],
//!   [`Ringback`]), from ITU-T E.180 Suppl. 2 and national specifications.
//! - [`dtmf`]: in-band DTMF generation and Goertzel detection.
//! - [`rfc4733`]: telephone-event packet schedules and the receiver.
//! - [`goertzel`]: the single-bin DFT the detectors and golden tests use.
//! - [`wav`], [`recorder`]: crash-safe mono/dual-channel WAV recording and
//!   [`repair`] of files left by a crash.
//! - [`player`]: WAV and raw μ-law prompts resampled to the leg's rate.
//! - [`mixer`]: the N-1 conference mixer for `<Conference>` ([`Mixer`]),
//!   8 kHz mix, 8 and 48 kHz parties, bounded jitter buffers, mute and
//!   coach (`docs/media.md`, "Conference mixer"); not yet wired into the
//!   engine.
//! - [`amd`]: answering-machine detection for `machineDetection`
//!   ([`AmdDetector`]; `docs/amd.md`).
//!
//! `docs/media.md` describes the rules (alignment, crash safety, tone table).

pub mod amd;
pub mod codec;
pub mod dtmf;
pub mod g711;
pub mod goertzel;
pub mod mixer;
pub mod player;
pub mod recorder;
pub mod resample;
pub mod rfc4733;
pub mod tones;
pub mod wav;

pub use amd::{AmdConfig, AmdDetector, AmdMode, AmdResult, AnsweredBy};
pub use codec::{Codec, CodecError, Decoder, Encoder, Transcoder};
pub use dtmf::{DetectedDigit, DtmfDetector, InbandDigits};
pub use mixer::{MIX_RATE, Mixer, MixerError, PartyId, PartyStats};
pub use player::{Player, PlayerError, Prompt};
pub use recorder::{
    ChannelLayout, Leg, RecordError, Recorder, RecorderConfig, RecorderStats, RecordingSink,
    RecordingSummary, RecordingTrack, RepairReport, Trim, repair,
};
pub use resample::Resampler;
pub use rfc4733::{EventEncoderConfig, EventPacket, EventReceiver, ReceivedEvent, encode_digits};
pub use tones::{RingTone, RingToneSpec, Ringback};

/// Sample rate of narrowband telephony (G.711), in Hz.
pub const RATE_8K: u32 = 8000;
/// Sample rate Opus runs at here, in Hz.
pub const RATE_48K: u32 = 48_000;
/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_8K: usize = 160;
/// Samples in one 20 ms frame at 48 kHz.
pub const FRAME_48K: usize = 960;
