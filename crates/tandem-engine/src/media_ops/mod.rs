//! Media operations around a call's legs (design §5, issue 5): DTMF out
//! (`<Number sendDigits>`, `<Play digits>`: RFC 4733 telephone-events when
//! negotiated, ITU-T Q.23 in-band tones otherwise), DTMF in (RFC 4733
//! §2.5 receiver and an in-band Goertzel detector on decoded G.711, for
//! `<Gather>` and `hangupOnStar`), voice activity and the beep for
//! `<Record>`, `<Say>` (espeak-ng, cached on disk per
//! text and voice) and `<Play>` (`file://` and `http(s)` WAV or raw μ-law,
//! cached per URL).
//!
//! DTMF out is tandem-rtp's [`DigitsSource`]; every generated sound is
//! encoded by its [`PcmFrames`](tandem_rtp::relay::PcmFrames).
//!
//! Everything here produces a [`MediaSource`](tandem_rtp::relay::MediaSource)
//! for `Leg::inject`, or a [`Tap`](tandem_rtp::relay::Tap) for
//! `Leg::set_tap`; the call actor owns the legs and decides when to play.
//! `docs/media-ops.md` describes the rules, the voice mapping and the limits.

mod amd;
mod decode;
mod dtmf_in;
mod play;
mod prompt;
mod say;
mod speech;
mod voice;

pub use amd::{AmdReport, AmdTap, amd_tap};
pub use decode::Pcm8k;
pub use dtmf_in::{DtmfDigit, DtmfKind, DtmfTap, dtmf_tap, fan_out};
pub use play::{MAX_PLAY_BYTES, PLAY_FETCH_TIMEOUT, PlayCache};
pub use prompt::{MAX_LOOPS, PromptError, PromptSource, Prompts, PromptsConfig, loop_count};
pub use say::{MAX_SAY_CHARS, SpeechVoice, espeak_voice};
pub use speech::SpeechTap;
pub use tandem_rtp::relay::{DigitsError, DigitsSource, MAX_DIGITS};
pub use voice::{
    BEEP, BEEP_HZ, HANGOVER, KEEPALIVE, SPEECH_RMS, VOICED_TO_SPEAK, VoiceChange, VoiceTap, beep,
    voice_tap,
};
