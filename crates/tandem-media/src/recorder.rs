//! Call recorder: mono (both legs mixed) or dual channel (channel 1 = parent
//! / caller leg, channel 2 = child leg) 16-bit PCM WAV at 8 kHz, aligned to
//! the wall clock and written crash-safe.
//!
//! # Time
//! The recorder never reads a clock. Every frame comes with its position in
//! samples at 8 kHz since the recording started (`at`), taken from the
//! caller's wall clock (arrival time) or from a media timestamp mapped onto
//! it. The caller also says how far the wall clock has gone with
//! [`Recorder::advance`]: everything before that point is final. A position
//! that no frame covered is written as silence, so a 60 s call makes a 60 s
//! file whatever was lost; a frame that arrives after its position was
//! finalised is dropped (counted in [`RecorderStats::late_samples`]).
//! A frame may also arrive up to [`RecorderConfig::max_ahead`] samples past
//! the last `advance`; one further ahead moves the clock itself (the media
//! proves time went on), unless it jumps more than
//! [`RecorderConfig::max_jump`], which is refused as a broken timestamp.
//!
//! # Crash safety
//! The file is a canonical 44-byte header followed by sample frames written
//! in order. Each time [`RecorderConfig::header_interval`] samples (1 s by
//! default) have been finalised, the header is rewritten with the sizes of
//! what is on disk and the writer is flushed, so a crash loses at most the
//! last second and leaves a file that opens. [`repair`] fixes the header of
//! a file left behind by a crash from its real length.
//!
//! # Trimming
//! With [`Trim::TrimSilence`] leading silence is never written, and trailing
//! silence is cut when the recording finishes (the header shrinks and the
//! file is truncated through [`RecordingSink::set_len`]).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Cursor, Seek, SeekFrom, Write};
use std::path::Path;

pub use tandem_types::{RecordingTrack, Trim};

use crate::wav::{self, PCM16_HEADER_LEN, SampleFormat, WavError};

/// Sample rate of every recording.
pub const RECORDING_RATE: u32 = 8000;

/// Which leg of the call a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The parent (caller) leg: what Tandem receives from the caller.
    /// Channel 1 of a dual recording; the `inbound` track.
    Parent,
    /// The child (callee) leg: what the caller hears, including generated
    /// audio. Channel 2 of a dual recording; the `outbound` track.
    Child,
}

impl Leg {
    fn index(self) -> usize {
        match self {
            Leg::Parent => 0,
            Leg::Child => 1,
        }
    }
}

/// Channel layout of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelLayout {
    /// One channel, both legs mixed (`record-from-answer`).
    #[default]
    Mono,
    /// Two channels, parent on 1 and child on 2 (`record-from-answer-dual`).
    Dual,
}

/// How to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderConfig {
    /// Mono mix or dual channel. Dual with a single track is written mono,
    /// as Twilio does.
    pub layout: ChannelLayout,
    /// Which directions are recorded.
    pub track: RecordingTrack,
    /// Silence trimming.
    pub trim: Trim,
    /// Header rewrite and flush period, in samples finalised (default 8000 = 1 s).
    pub header_interval: u32,
    /// How far ahead of the last `advance` a frame may land before it moves
    /// the clock (default 16000 = 2 s).
    pub max_ahead: u32,
    /// Largest forward jump a frame may make the clock take (default 80000 = 10 s).
    pub max_jump: u32,
    /// A sample frame whose every channel stays within ±this is silence for
    /// trimming (default 64, about -54 dBFS).
    pub silence_threshold: i16,
    /// Also ask the sink to push data to stable storage on every header
    /// rewrite (`fsync`; default false: a process crash is covered by the
    /// flush alone).
    pub sync_data: bool,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            layout: ChannelLayout::Mono,
            track: RecordingTrack::Both,
            trim: Trim::DoNotTrim,
            header_interval: RECORDING_RATE,
            max_ahead: 2 * RECORDING_RATE,
            max_jump: 10 * RECORDING_RATE,
            silence_threshold: 64,
            sync_data: false,
        }
    }
}

impl RecorderConfig {
    /// A config with the given layout, track and trim and default tuning.
    pub fn new(layout: ChannelLayout, track: RecordingTrack, trim: Trim) -> Self {
        RecorderConfig {
            layout,
            track,
            trim,
            ..RecorderConfig::default()
        }
    }

    /// Channels in the file: 2 only for dual recordings of both tracks.
    pub fn channels(&self) -> u16 {
        match (self.layout, self.track) {
            (ChannelLayout::Dual, RecordingTrack::Both) => 2,
            _ => 1,
        }
    }

    fn records(&self, leg: Leg) -> bool {
        !matches!(
            (self.track, leg),
            (RecordingTrack::Inbound, Leg::Child) | (RecordingTrack::Outbound, Leg::Parent)
        )
    }
}

/// A seekable byte sink a recording can be written to and cut short.
pub trait RecordingSink: Write + Seek {
    /// Truncates (or extends) the underlying storage to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Pushes written data to stable storage (`fsync`). No-op by default.
    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl RecordingSink for File {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
}

impl RecordingSink for BufWriter<File> {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.flush()?;
        self.get_ref().set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.flush()?;
        self.get_ref().sync_data()
    }
}

impl RecordingSink for Cursor<Vec<u8>> {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.get_mut().resize(len as usize, 0);
        Ok(())
    }
}

impl RecordingSink for Cursor<&mut Vec<u8>> {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.get_mut().resize(len as usize, 0);
        Ok(())
    }
}

/// Why recording failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The sink failed.
    #[error("recording i/o: {0}")]
    Io(#[from] io::Error),
    /// A frame claimed a position too far past the recorder's clock.
    #[error("frame at sample {at} jumps too far past the recorder clock at {clock}")]
    TimestampJump {
        /// Position the frame claimed.
        at: u64,
        /// Last finalised position.
        clock: u64,
    },
    /// The recording passed the 4 GiB limit of a WAV data chunk.
    #[error("recording exceeds the WAV size limit")]
    TooLong,
}

/// Counters a recorder keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Samples dropped because their position was already finalised.
    pub late_samples: u64,
    /// Sample frames written as silence because no leg covered them
    /// (counted per file frame, after the track filter).
    pub gap_frames: u64,
}

/// What a finished recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingSummary {
    /// Channels in the file.
    pub channels: u16,
    /// Sample frames in the data chunk.
    pub frames: u64,
    /// Bytes of audio in the data chunk.
    pub data_bytes: u64,
    /// Leading sample frames dropped by `trim-silence`.
    pub trimmed_leading: u64,
    /// Trailing sample frames dropped by `trim-silence`.
    pub trimmed_trailing: u64,
    /// Counters.
    pub stats: RecorderStats,
}

impl RecordingSummary {
    /// Duration of the file in milliseconds (rounded down).
    pub fn duration_ms(&self) -> u64 {
        self.frames * 1000 / u64::from(RECORDING_RATE)
    }
}

/// Largest data chunk a RIFF file can describe, in bytes.
const MAX_DATA_BYTES: u64 = u32::MAX as u64 - PCM16_HEADER_LEN;
/// Sample frames converted to bytes per write call.
const CHUNK_FRAMES: usize = 1024;

/// A recording in progress. See the module documentation for the rules.
#[derive(Debug)]
pub struct Recorder<W: RecordingSink> {
    sink: W,
    cfg: RecorderConfig,
    channels: u16,
    /// Position (samples since start) up to which audio is final.
    clock: u64,
    /// Pending samples per leg; index 0 is the sample at `clock`.
    pending: [VecDeque<i16>; 2],
    /// Sample frames in the file.
    written: u64,
    /// Sample frames in the file up to the end of the last non-silent one.
    voiced_end: u64,
    /// Whether a non-silent frame has been seen (trim-silence only).
    started: bool,
    trimmed_leading: u64,
    /// Clock position of the last header rewrite.
    header_at: u64,
    /// Sample frames the header on disk describes.
    header_frames: u64,
    stats: RecorderStats,
    scratch: Vec<u8>,
}

impl Recorder<BufWriter<File>> {
    /// Creates (or truncates) `path` and starts a recording in it.
    pub fn create(path: impl AsRef<Path>, cfg: RecorderConfig) -> Result<Self, RecordError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Recorder::new(BufWriter::with_capacity(16 * 1024, file), cfg)
    }
}

impl<W: RecordingSink> Recorder<W> {
    /// Starts a recording at position 0 of `sink`, writing an empty but
    /// valid header at once.
    pub fn new(mut sink: W, cfg: RecorderConfig) -> Result<Self, RecordError> {
        let channels = cfg.channels();
        sink.seek(SeekFrom::Start(0))?;
        sink.write_all(&wav::pcm16_header(channels, RECORDING_RATE, 0))?;
        sink.flush()?;
        Ok(Recorder {
            sink,
            cfg,
            channels,
            clock: 0,
            pending: [VecDeque::new(), VecDeque::new()],
            written: 0,
            voiced_end: 0,
            started: cfg.trim == Trim::DoNotTrim,
            trimmed_leading: 0,
            header_at: 0,
            header_frames: 0,
            stats: RecorderStats::default(),
            scratch: Vec::new(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &RecorderConfig {
        &self.cfg
    }

    /// Channels in the file.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Position (samples at 8 kHz since the start) up to which audio is final.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Sample frames written to the sink so far.
    pub fn frames_written(&self) -> u64 {
        self.written
    }

    /// The sink, as written so far (for inspection; do not write to it).
    pub fn get_ref(&self) -> &W {
        &self.sink
    }

    /// Counters so far.
    pub fn stats(&self) -> RecorderStats {
        self.stats
    }

    /// Adds one frame of 8 kHz PCM from `leg` whose first sample belongs at
    /// position `at` (samples since the recording started).
    ///
    /// A frame for a leg the track does not record is ignored. Samples at
    /// positions already finalised are dropped as late. Writing the same
    /// position twice keeps the later frame (a duplicate packet).
    pub fn push(&mut self, leg: Leg, at: u64, pcm: &[i16]) -> Result<(), RecordError> {
        if !self.cfg.records(leg) || pcm.is_empty() {
            return Ok(());
        }
        let end = at + pcm.len() as u64;
        let horizon = self.clock + u64::from(self.cfg.max_ahead);
        if end > horizon {
            if end - horizon > u64::from(self.cfg.max_jump) {
                return Err(RecordError::TimestampJump {
                    at,
                    clock: self.clock,
                });
            }
            self.advance(end - u64::from(self.cfg.max_ahead))?;
        }
        let (skip, start) = if at < self.clock {
            let skip = (self.clock - at).min(pcm.len() as u64) as usize;
            self.stats.late_samples += skip as u64;
            (skip, self.clock)
        } else {
            (0, at)
        };
        let pcm = &pcm[skip..];
        if pcm.is_empty() {
            return Ok(());
        }
        let offset = (start - self.clock) as usize;
        let buf = &mut self.pending[leg.index()];
        if buf.len() < offset + pcm.len() {
            buf.resize(offset + pcm.len(), 0);
        }
        for (slot, &s) in buf.range_mut(offset..offset + pcm.len()).zip(pcm) {
            *slot = s;
        }
        Ok(())
    }

    /// Declares that the wall clock reached `now` (samples since start):
    /// everything before it is final and written, gaps as silence. The
    /// header is rewritten and the sink flushed every `header_interval`.
    pub fn advance(&mut self, now: u64) -> Result<(), RecordError> {
        while self.clock < now {
            let n = (now - self.clock).min(CHUNK_FRAMES as u64) as usize;
            self.finalize_chunk(n)?;
            if self.clock - self.header_at >= u64::from(self.cfg.header_interval) {
                self.checkpoint()?;
            }
        }
        Ok(())
    }

    /// Rewrites the header with the sizes on disk and flushes the sink.
    pub fn checkpoint(&mut self) -> Result<(), RecordError> {
        self.header_at = self.clock;
        if self.header_frames != self.written {
            self.write_header(self.written)?;
        }
        self.sink.flush()?;
        if self.cfg.sync_data {
            self.sink.sync_data()?;
        }
        Ok(())
    }

    /// Ends the recording at position `end` (pass the call's end, so the
    /// file lasts as long as the call; `None` ends after the last frame
    /// received). Frames past `end` are discarded. Trailing silence is cut
    /// with `trim-silence`. Returns the sink and what the file holds.
    pub fn finish(mut self, end: Option<u64>) -> Result<(W, RecordingSummary), RecordError> {
        let end = end.unwrap_or_else(|| {
            self.clock
                + self
                    .pending
                    .iter()
                    .map(|b| b.len() as u64)
                    .max()
                    .unwrap_or(0)
        });
        self.advance(end)?;
        let frames = if self.cfg.trim == Trim::TrimSilence {
            self.voiced_end
        } else {
            self.written
        };
        let block = u64::from(self.channels) * 2;
        self.write_header(frames)?;
        if frames < self.written {
            self.sink.set_len(PCM16_HEADER_LEN + frames * block)?;
        }
        self.sink
            .seek(SeekFrom::Start(PCM16_HEADER_LEN + frames * block))?;
        self.sink.flush()?;
        if self.cfg.sync_data {
            self.sink.sync_data()?;
        }
        let summary = RecordingSummary {
            channels: self.channels,
            frames,
            data_bytes: frames * block,
            trimmed_leading: self.trimmed_leading,
            trimmed_trailing: self.written - frames,
            stats: self.stats,
        };
        Ok((self.sink, summary))
    }

    fn write_header(&mut self, frames: u64) -> Result<(), RecordError> {
        let bytes = frames * u64::from(self.channels) * 2;
        let bytes = u32::try_from(bytes).map_err(|_| RecordError::TooLong)?;
        wav::write_pcm16_header(&mut self.sink, self.channels, RECORDING_RATE, bytes)?;
        self.header_frames = frames;
        Ok(())
    }

    /// Finalises the next `n` sample frames after `clock`.
    fn finalize_chunk(&mut self, n: usize) -> Result<(), RecordError> {
        let threshold = self.cfg.silence_threshold;
        let [a, b] = &mut self.pending;
        let covered = a.len().max(b.len()).min(n);
        let two = self.channels == 2;
        self.scratch.clear();
        for i in 0..n {
            let pa = a.pop_front().unwrap_or(0);
            let pb = b.pop_front().unwrap_or(0);
            let (l, r) = if two {
                (pa, pb)
            } else {
                (pa.saturating_add(pb), 0)
            };
            let silent = l.unsigned_abs() <= threshold.unsigned_abs()
                && r.unsigned_abs() <= threshold.unsigned_abs();
            if !self.started {
                if silent {
                    self.trimmed_leading += 1;
                    continue;
                }
                self.started = true;
            }
            if i >= covered {
                self.stats.gap_frames += 1;
            }
            self.scratch.extend_from_slice(&l.to_le_bytes());
            if two {
                self.scratch.extend_from_slice(&r.to_le_bytes());
            }
            self.written += 1;
            if !silent {
                self.voiced_end = self.written;
            }
        }
        self.clock += n as u64;
        if self.written * u64::from(self.channels) * 2 > MAX_DATA_BYTES {
            return Err(RecordError::TooLong);
        }
        self.sink.write_all(&self.scratch)?;
        Ok(())
    }
}

/// What [`repair`] found and fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairReport {
    /// Channels in the file.
    pub channels: u16,
    /// Sample rate of the file.
    pub sample_rate: u32,
    /// Sample frames the repaired file holds.
    pub frames: u64,
    /// Whether the header had to change.
    pub header_fixed: bool,
    /// Bytes of a partial trailing sample frame that were cut off.
    pub truncated_bytes: u64,
}

/// Fixes the header of a 16-bit PCM recording left by a crash: the RIFF and
/// data sizes are set from the file's real length and a partial last sample
/// frame is cut. A file that is already consistent is left untouched.
pub fn repair(path: impl AsRef<Path>) -> Result<RepairReport, WavError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    repair_sink(&mut file)
}

/// [`repair`] on an open stream.
pub fn repair_sink<F: RecordingSink + io::Read>(f: &mut F) -> Result<RepairReport, WavError> {
    let file_len = f.seek(SeekFrom::End(0))?;
    // The declared data size may be stale: take everything after the data
    // chunk header as audio.
    let info = wav::read_info(f)?;
    if info.format != SampleFormat::Pcm16 {
        return Err(WavError::UnsupportedFormat(match info.format {
            SampleFormat::MuLaw => wav::FORMAT_MULAW,
            _ => wav::FORMAT_ALAW,
        }));
    }
    let available = file_len - info.data_offset;
    let block = info.block_align();
    let data_len = (available / block * block).min(u64::from(u32::MAX) - info.data_offset);
    let truncated_bytes = available - data_len;
    // Read the current sizes to know whether anything changes.
    let mut riff = [0u8; 4];
    f.seek(SeekFrom::Start(4))?;
    f.read_exact(&mut riff)?;
    let mut data = [0u8; 4];
    f.seek(SeekFrom::Start(info.data_offset - 4))?;
    f.read_exact(&mut data)?;
    let want_riff = (info.data_offset + data_len - 8) as u32;
    let want_data = data_len as u32;
    let header_fixed =
        u32::from_le_bytes(riff) != want_riff || u32::from_le_bytes(data) != want_data;
    if truncated_bytes > 0 {
        f.set_len(info.data_offset + data_len)?;
    }
    if header_fixed {
        f.seek(SeekFrom::Start(4))?;
        f.write_all(&want_riff.to_le_bytes())?;
        f.seek(SeekFrom::Start(info.data_offset - 4))?;
        f.write_all(&want_data.to_le_bytes())?;
    }
    f.flush()?;
    Ok(RepairReport {
        channels: info.channels,
        sample_rate: info.sample_rate,
        frames: data_len / block,
        header_fixed,
        truncated_bytes,
    })
}
