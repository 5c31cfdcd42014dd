//! Prompt player: WAV files (16-bit PCM, G.711 μ-law or A-law; mono or
//! stereo mixed down; any sample rate, 8/16/48 kHz being the usual) and raw
//! μ-law files (8 kHz, headerless), decoded once and resampled to the
//! leg's rate (8 kHz for G.711, 48 kHz for Opus), then served in 20 ms
//! frames at the caller's pace. Malformed files are refused with a typed
//! error, never played as noise.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use crate::g711;
use crate::resample::Resampler;
use crate::wav::{self, SampleFormat, WavError};

/// Largest prompt file accepted (64 MiB: over an hour of 8 kHz PCM).
pub const MAX_PROMPT_BYTES: u64 = 64 * 1024 * 1024;

/// Why a prompt cannot be played.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlayerError {
    /// The WAV file is malformed or of an unsupported kind.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// Reading the file failed.
    #[error("prompt i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The file holds no audio.
    #[error("prompt holds no audio")]
    Empty,
    /// The file is larger than [`MAX_PROMPT_BYTES`].
    #[error("prompt of {0} bytes is too large")]
    TooLarge(u64),
    /// A target rate of zero.
    #[error("invalid target sample rate {0}")]
    InvalidRate(u32),
}

/// Decoded audio, mono 16-bit at one rate, shareable between calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    rate: u32,
    samples: Arc<[i16]>,
}

impl Prompt {
    /// Reads a WAV file and resamples it to `rate`.
    pub fn open_wav(path: impl AsRef<Path>, rate: u32) -> Result<Self, PlayerError> {
        let bytes = read_limited(path.as_ref())?;
        Prompt::from_wav_bytes(&bytes, rate)
    }

    /// Reads a headerless μ-law file (8 kHz mono) and resamples it to `rate`.
    pub fn open_raw_ulaw(path: impl AsRef<Path>, rate: u32) -> Result<Self, PlayerError> {
        let bytes = read_limited(path.as_ref())?;
        Prompt::from_raw_ulaw(&bytes, rate)
    }

    /// Reads a file by its content: `RIFF....WAVE` is a WAV, anything else
    /// is taken as raw μ-law only when the name ends in `.ul`, `.ulaw`,
    /// `.mulaw`, `.pcmu` or `.raw`; other files are refused as not WAV.
    pub fn open(path: impl AsRef<Path>, rate: u32) -> Result<Self, PlayerError> {
        let path = path.as_ref();
        let bytes = read_limited(path)?;
        if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
            return Prompt::from_wav_bytes(&bytes, rate);
        }
        let raw = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["ul", "ulaw", "mulaw", "pcmu", "raw"].contains(&e.to_ascii_lowercase().as_str())
        });
        if raw {
            Prompt::from_raw_ulaw(&bytes, rate)
        } else {
            Err(WavError::NotWave.into())
        }
    }

    /// Decodes WAV bytes and resamples them to `rate`.
    pub fn from_wav_bytes(bytes: &[u8], rate: u32) -> Result<Self, PlayerError> {
        Prompt::from_wav_reader(&mut Cursor::new(bytes), rate)
    }

    /// Decodes a WAV stream and resamples it to `rate`.
    pub fn from_wav_reader<R: Read + Seek>(r: &mut R, rate: u32) -> Result<Self, PlayerError> {
        if rate == 0 {
            return Err(PlayerError::InvalidRate(rate));
        }
        let info = wav::read_info(r)?;
        if info.data_len > MAX_PROMPT_BYTES {
            return Err(PlayerError::TooLarge(info.data_len));
        }
        // Whole sample frames only: a torn last frame is dropped.
        let len = info.frames() * info.block_align();
        let mut data = vec![0u8; len as usize];
        r.seek(SeekFrom::Start(info.data_offset))?;
        r.read_exact(&mut data)?;
        let mut pcm = Vec::with_capacity(data.len() / info.format.bytes_per_sample() as usize);
        match info.format {
            SampleFormat::Pcm16 => pcm.extend(
                data.chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
            ),
            SampleFormat::MuLaw => g711::decode_ulaw(&data, &mut pcm),
            SampleFormat::ALaw => g711::decode_alaw(&data, &mut pcm),
        }
        if info.channels == 2 {
            pcm = pcm
                .chunks_exact(2)
                .map(|lr| ((i32::from(lr[0]) + i32::from(lr[1])) / 2) as i16)
                .collect();
        }
        Prompt::from_pcm(info.sample_rate, &pcm, rate)
    }

    /// Decodes raw μ-law bytes (8 kHz mono) and resamples them to `rate`.
    pub fn from_raw_ulaw(bytes: &[u8], rate: u32) -> Result<Self, PlayerError> {
        let mut pcm = Vec::with_capacity(bytes.len());
        g711::decode_ulaw(bytes, &mut pcm);
        Prompt::from_pcm(crate::RATE_8K, &pcm, rate)
    }

    /// Wraps mono PCM at `from` Hz, resampled to `rate`.
    pub fn from_pcm(from: u32, pcm: &[i16], rate: u32) -> Result<Self, PlayerError> {
        if rate == 0 || from == 0 {
            return Err(PlayerError::InvalidRate(if rate == 0 {
                rate
            } else {
                from
            }));
        }
        if pcm.is_empty() {
            return Err(PlayerError::Empty);
        }
        let samples = if from == rate {
            pcm.to_vec()
        } else {
            Resampler::resample_all(from, rate, pcm)
        };
        if samples.is_empty() {
            return Err(PlayerError::Empty);
        }
        Ok(Prompt {
            rate,
            samples: samples.into(),
        })
    }

    /// Sample rate of the decoded audio.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The decoded samples.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Length in samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples (never true for a prompt that loaded).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Length in milliseconds (rounded down).
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(self.rate)
    }

    /// Samples in a 20 ms frame at this prompt's rate.
    pub fn frame_len(&self) -> usize {
        self.rate as usize / 50
    }

    /// Number of 20 ms frames, the last one padded with silence.
    pub fn frame_count(&self) -> usize {
        self.samples.len().div_ceil(self.frame_len())
    }

    /// Frame `index` (20 ms), padded with silence past the end; `None`
    /// after the last frame.
    pub fn frame(&self, index: usize, out: &mut [i16]) -> Option<()> {
        let n = self.frame_len();
        let start = index.checked_mul(n)?;
        if start >= self.samples.len() {
            return None;
        }
        let end = (start + n).min(self.samples.len());
        let m = out.len().min(end - start);
        out[..m].copy_from_slice(&self.samples[start..start + m]);
        out[m..].fill(0);
        Some(())
    }
}

/// Plays a prompt `loops` times (0 = until stopped), one 20 ms frame per call.
#[derive(Debug, Clone)]
pub struct Player {
    prompt: Prompt,
    loops: u32,
    played_loops: u32,
    next: usize,
    buf: Vec<i16>,
}

impl Player {
    /// A player at the start of `prompt`.
    pub fn new(prompt: Prompt, loops: u32) -> Self {
        let n = prompt.frame_len();
        Player {
            prompt,
            loops,
            played_loops: 0,
            next: 0,
            buf: vec![0; n],
        }
    }

    /// The next 20 ms frame, or `None` when every loop has played.
    pub fn next_frame(&mut self) -> Option<&[i16]> {
        if self.loops != 0 && self.played_loops >= self.loops {
            return None;
        }
        if self.prompt.frame(self.next, &mut self.buf).is_none() {
            self.played_loops += 1;
            self.next = 0;
            if self.loops != 0 && self.played_loops >= self.loops {
                return None;
            }
            self.prompt.frame(0, &mut self.buf)?;
        }
        self.next += 1;
        Some(&self.buf)
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>, PlayerError> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len > MAX_PROMPT_BYTES + 4096 {
        return Err(PlayerError::TooLarge(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}
