//! Prompts: decoded audio (tandem-media's [`Prompt`], 8 kHz mono) played
//! into a leg by [`PromptSource`], `loop` times; and [`Prompts`], the
//! engine-wide loader behind `<Say>` (espeak-ng, module `say`) and `<Play>`
//! (files and http(s) URLs, module `play`) with their caches. TwiML `loop`
//! per Twilio's `<Say>`/`<Play>` reference: `0` plays until the call ends
//! or 1,000 iterations are done.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tandem_media::{PlayerError, Prompt, RATE_8K};
use tandem_rtp::relay::{MediaSource, OutFormat, PcmFrames, SourceOutput};
use tandem_twiml::Loop;
use tandem_webhook::{WebhookClient, WebhookError};
use tokio::sync::Semaphore;

use super::play::{self, PlayCache};
use super::say;

/// Most iterations of one `<Say>` or `<Play>` (Twilio's cap for `loop="0"`).
pub const MAX_LOOPS: u32 = 1000;

/// The number of plays a TwiML `loop` asks for: `0` (forever) is
/// [`MAX_LOOPS`], larger counts are capped to it.
pub fn loop_count(l: Loop) -> u32 {
    match l {
        Loop::Forever => MAX_LOOPS,
        Loop::Times(n) => n.clamp(1, MAX_LOOPS),
    }
}

/// Why a `<Say>` or `<Play>` cannot be played. The call actor logs it and
/// goes on with the next verb.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The text to speak is empty (after trimming).
    #[error("nothing to say")]
    EmptyText,
    /// The text is longer than [`MAX_SAY_CHARS`](super::MAX_SAY_CHARS).
    #[error("text of {len} characters is longer than {max}")]
    TextTooLong {
        /// Characters given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The espeak-ng program could not be started (not installed).
    #[error("text-to-speech program {program:?} is not available: {source}")]
    TtsUnavailable {
        /// The program run.
        program: PathBuf,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// espeak-ng ran and failed.
    #[error("text-to-speech failed (exit {status:?}): {stderr}")]
    TtsFailed {
        /// Its exit code, if it exited.
        status: Option<i32>,
        /// The start of its error output.
        stderr: String,
    },
    /// espeak-ng took longer than the configured limit and was killed.
    #[error("text-to-speech took longer than {0:?}")]
    TtsTimeout(Duration),
    /// The speech cache directory could not be written or read.
    #[error("speech cache {path}: {source}")]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `<Play>` URL does not parse.
    #[error("invalid audio URL {url:?}: {source}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        source: url::ParseError,
    },
    /// Neither `file`, `http` nor `https`, or a `file:` URL that names no
    /// local path.
    #[error("audio URL {url} has unsupported scheme {scheme:?}")]
    UnsupportedScheme {
        /// The URL (credentials redacted).
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// An `http(s)` URL and no HTTP client was given to [`Prompts::new`].
    #[error("no HTTP client to fetch {url}")]
    NoHttpClient {
        /// The URL (credentials redacted).
        url: String,
    },
    /// The HTTP request failed (connect, TLS, timeout, redirects).
    #[error("fetching audio: {0}")]
    Http(#[from] WebhookError),
    /// The server answered with a status other than 2xx.
    #[error("audio URL {url} answered {status}")]
    HttpStatus {
        /// The URL (credentials redacted).
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The audio is larger than the configured limit.
    #[error("audio at {url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL (credentials redacted).
        url: String,
        /// The limit.
        limit: usize,
    },
    /// Neither WAV nor raw μ-law (e.g. MP3).
    #[error("audio at {url} is not WAV or raw μ-law (content type {content_type:?})")]
    UnsupportedFormat {
        /// The URL (credentials redacted).
        url: String,
        /// The `Content-Type` received, empty for files.
        content_type: String,
    },
    /// Reading a `file:` URL failed.
    #[error("audio file {path}: {source}")]
    File {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The audio does not decode (malformed or unsupported WAV).
    #[error("audio does not decode: {0}")]
    Decode(#[from] PlayerError),
    /// The decoding task was cancelled or panicked.
    #[error("audio decoding task failed")]
    Task,
}

/// Settings of [`Prompts`].
#[derive(Debug, Clone)]
pub struct PromptsConfig {
    /// Where synthesized speech is kept (`<hash>.wav`), created on first use.
    pub tts_cache_dir: PathBuf,
    /// The espeak-ng program (default `espeak-ng`, looked up in `PATH`).
    pub espeak: PathBuf,
    /// Longest a synthesis may take before it is killed (default 30 s).
    pub tts_timeout: Duration,
    /// Syntheses running at once (default 2); further ones wait.
    pub tts_concurrency: usize,
    /// Largest audio file or HTTP body accepted for `<Play>` (default 16 MiB).
    pub max_play_bytes: usize,
    /// Whole-request timeout of an HTTP fetch (default 15 s).
    pub play_timeout: Duration,
    /// Decoded audio kept in the `<Play>` cache, bytes (default 64 MiB);
    /// the oldest entries go first.
    pub play_cache_bytes: usize,
}

impl PromptsConfig {
    /// Defaults with the speech cache in `tts_cache_dir`.
    pub fn new(tts_cache_dir: impl Into<PathBuf>) -> Self {
        PromptsConfig {
            tts_cache_dir: tts_cache_dir.into(),
            espeak: PathBuf::from("espeak-ng"),
            tts_timeout: Duration::from_secs(30),
            tts_concurrency: 2,
            max_play_bytes: play::MAX_PLAY_BYTES,
            play_timeout: play::PLAY_FETCH_TIMEOUT,
            play_cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The engine's prompt loader: one per engine, shared by every call.
pub struct Prompts {
    pub(super) cfg: PromptsConfig,
    pub(super) http: Option<WebhookClient>,
    pub(super) cache: PlayCache,
    pub(super) tts_permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Prompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompts").field("cfg", &self.cfg).finish()
    }
}

impl Prompts {
    /// A loader; `http` fetches `http(s)` URLs (the engine's webhook
    /// client: same TLS roots, redirects and timeouts).
    pub fn new(cfg: PromptsConfig, http: Option<WebhookClient>) -> Self {
        let permits = Arc::new(Semaphore::new(cfg.tts_concurrency.max(1)));
        Prompts {
            cache: PlayCache::new(cfg.play_cache_bytes),
            cfg,
            http,
            tts_permits: permits,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PromptsConfig {
        &self.cfg
    }

    /// `<Say>`: speech for `text` in the voice Twilio's `voice` and
    /// `language` map to ([`espeak_voice`](super::espeak_voice)), from the
    /// cache or synthesized now, played `loops` times.
    pub async fn say(
        &self,
        text: &str,
        voice: Option<&str>,
        language: Option<&str>,
        loops: Loop,
    ) -> Result<PromptSource, PromptError> {
        let prompt = self.speech(text, voice, language).await?;
        PromptSource::new(prompt, loop_count(loops))
    }

    /// `<Say>` with SSML: `ssml` is a `<speak>` document.
    pub async fn say_ssml(
        &self,
        ssml: &str,
        voice: Option<&str>,
        language: Option<&str>,
        loops: Loop,
    ) -> Result<PromptSource, PromptError> {
        let prompt = say::speech(self, ssml, true, voice, language).await?;
        PromptSource::new(prompt, loop_count(loops))
    }

    /// The speech audio for `text` (what [`Prompts::say`] plays once).
    pub async fn speech(
        &self,
        text: &str,
        voice: Option<&str>,
        language: Option<&str>,
    ) -> Result<Prompt, PromptError> {
        say::speech(self, text, false, voice, language).await
    }

    /// `<Play>`: the audio at `url` (`file:`, `http:`, `https:`; WAV or raw
    /// μ-law), from the cache or loaded now, played `loops` times.
    pub async fn play(&self, url: &str, loops: Loop) -> Result<PromptSource, PromptError> {
        let prompt = self.audio(url).await?;
        PromptSource::new(prompt, loop_count(loops))
    }

    /// The decoded audio at `url` (what [`Prompts::play`] plays once).
    pub async fn audio(&self, url: &str) -> Result<Prompt, PromptError> {
        play::load(self, url).await
    }
}

/// A [`MediaSource`] playing a prompt `loops` times back to back, encoded
/// for the leg (PCMU, PCMA, or Opus through a resampler). The last packet is
/// padded with silence; then the injection ends.
pub struct PromptSource {
    prompt: Prompt,
    loops: u32,
    played: u32,
    pos: usize,
    frames: PcmFrames,
}

impl std::fmt::Debug for PromptSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptSource")
            .field("duration", &self.duration())
            .field("loops", &self.loops)
            .finish()
    }
}

impl PromptSource {
    /// Plays `prompt` `loops` times (at least once); a prompt at another
    /// rate than 8 kHz is resampled first.
    pub fn new(prompt: Prompt, loops: u32) -> Result<Self, PromptError> {
        let prompt = if prompt.rate() == RATE_8K {
            prompt
        } else {
            Prompt::from_pcm(prompt.rate(), prompt.samples(), RATE_8K)?
        };
        Ok(PromptSource {
            prompt,
            loops: loops.max(1),
            played: 0,
            pos: 0,
            frames: PcmFrames::new(),
        })
    }

    /// Length of one play.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.prompt.len() as u64 * 125)
    }

    /// Length of every loop together.
    pub fn total_duration(&self) -> Duration {
        self.duration() * self.loops
    }
}

/// Fills `out` from `samples` at `pos`, looping; false when every loop has
/// played (the last packet is padded with silence).
fn fill_loops(
    samples: &[i16],
    loops: u32,
    played: &mut u32,
    pos: &mut usize,
    out: &mut [i16],
) -> bool {
    if *played >= loops {
        return false;
    }
    let n = out.len();
    let mut k = 0;
    while k < n {
        if *played >= loops {
            out[k..n].fill(0);
            break;
        }
        let take = (n - k).min(samples.len() - *pos);
        out[k..k + take].copy_from_slice(&samples[*pos..*pos + take]);
        k += take;
        *pos += take;
        if *pos >= samples.len() {
            *pos = 0;
            *played += 1;
        }
    }
    true
}

impl MediaSource for PromptSource {
    fn next_packet(&mut self, format: &OutFormat, payload: &mut [u8]) -> SourceOutput {
        let PromptSource {
            prompt,
            loops,
            played,
            pos,
            frames,
        } = self;
        frames.next(format, payload, |out| {
            fill_loops(prompt.samples(), *loops, played, pos, out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_rtp::sdp::Codec;

    fn pcmu() -> OutFormat {
        OutFormat::default()
    }

    fn run(src: &mut PromptSource, f: &OutFormat) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 1500];
        let mut v = Vec::new();
        while let SourceOutput::Packet(p) = src.next_packet(f, &mut buf) {
            v.push(buf[..p.len].to_vec());
            assert!(v.len() < 100_000);
        }
        v
    }

    #[test]
    fn loop_counts_follow_twilio() {
        assert_eq!(loop_count(Loop::Forever), MAX_LOOPS);
        assert_eq!(loop_count(Loop::Times(0)), 1);
        assert_eq!(loop_count(Loop::Times(3)), 3);
        assert_eq!(loop_count(Loop::Times(5000)), MAX_LOOPS);
    }

    #[test]
    fn plays_each_loop_and_pads_the_last_packet() {
        // 250 ms: 12.5 packets per play; three plays = 750 ms = 37.5 -> 38.
        let pcm: Vec<i16> = (0..2000).map(|i| (i * 10) as i16).collect();
        let prompt = Prompt::from_pcm(8000, &pcm, 8000).unwrap();
        let mut src = PromptSource::new(prompt, 3).unwrap();
        assert_eq!(src.total_duration(), Duration::from_millis(750));
        let pkts = run(&mut src, &pcmu());
        assert_eq!(pkts.len(), 38);
        assert!(pkts.iter().all(|p| p.len() == 160));
        // The second play starts mid-packet 12, continuing the waveform.
        let mut decoded = vec![0i16; 160];
        tandem_rtp::codec::decode_g711(&pkts[12], &mut decoded, false);
        assert!(
            decoded[79] > 19_000,
            "end of the first play: {}",
            decoded[79]
        );
        assert!(
            decoded[80].abs() < 100,
            "second play from sample 0: {}",
            decoded[80]
        );
    }

    #[test]
    fn resamples_and_encodes_opus() {
        let pcm: Vec<i16> = (0..3200).map(|i| ((i % 16) * 500) as i16).collect();
        let prompt = Prompt::from_pcm(16_000, &pcm, 16_000).unwrap();
        let mut src = PromptSource::new(prompt, 1).unwrap();
        assert_eq!(src.duration(), Duration::from_millis(200));
        let f = OutFormat {
            codec: Codec::Opus,
            pt: 111,
            clock_rate: 48_000,
            ptime: 20,
            telephone_event_pt: Some(110),
            telephone_event_clock: 48_000,
        };
        let pkts = run(&mut src, &f);
        assert_eq!(pkts.len(), 10);
        assert!(pkts.iter().all(|p| !p.is_empty() && p.len() < 400));
    }
}
