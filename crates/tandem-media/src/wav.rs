//! RIFF/WAVE headers: the canonical 44-byte PCM header the recorder writes,
//! and a chunk walker that reads the formats the player accepts
//! (PCM 16-bit, G.711 μ-law and A-law, plain or `WAVE_FORMAT_EXTENSIBLE`).

use std::io::{self, Read, Seek, SeekFrom, Write};

/// `wFormatTag` of linear PCM.
pub const FORMAT_PCM: u16 = 0x0001;
/// `wFormatTag` of G.711 A-law.
pub const FORMAT_ALAW: u16 = 0x0006;
/// `wFormatTag` of G.711 μ-law.
pub const FORMAT_MULAW: u16 = 0x0007;
/// `wFormatTag` of `WAVE_FORMAT_EXTENSIBLE` (the real tag is in the sub-format GUID).
pub const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Size of the canonical PCM header written by [`write_pcm16_header`].
pub const PCM16_HEADER_LEN: u64 = 44;

/// Sample encoding inside a WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// 16-bit signed little-endian linear PCM.
    Pcm16,
    /// 8-bit G.711 μ-law.
    MuLaw,
    /// 8-bit G.711 A-law.
    ALaw,
}

impl SampleFormat {
    /// Bytes per sample of one channel.
    pub fn bytes_per_sample(self) -> u16 {
        match self {
            SampleFormat::Pcm16 => 2,
            SampleFormat::MuLaw | SampleFormat::ALaw => 1,
        }
    }
}

/// What the `fmt ` chunk says, plus where the `data` chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Sample encoding.
    pub format: SampleFormat,
    /// Number of interleaved channels.
    pub channels: u16,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Byte offset of the first audio byte.
    pub data_offset: u64,
    /// Audio bytes in the data chunk, as far as the file really holds them.
    pub data_len: u64,
}

impl WavInfo {
    /// Bytes per sample frame (all channels).
    pub fn block_align(&self) -> u64 {
        u64::from(self.channels) * u64::from(self.format.bytes_per_sample())
    }
    /// Number of sample frames in the data chunk.
    pub fn frames(&self) -> u64 {
        self.data_len / self.block_align()
    }
}

/// Why a WAV file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// Reading or writing the file failed.
    #[error("wav i/o: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with `RIFF....WAVE`.
    #[error("not a RIFF/WAVE file")]
    NotWave,
    /// The file ends inside a header or chunk header.
    #[error("wav file truncated inside its header")]
    Truncated,
    /// No `fmt ` chunk before the `data` chunk.
    #[error("wav file has no fmt chunk before its data")]
    MissingFormat,
    /// No `data` chunk.
    #[error("wav file has no data chunk")]
    MissingData,
    /// A format tag other than PCM, μ-law or A-law.
    #[error("unsupported wav format tag {0:#06x}")]
    UnsupportedFormat(u16),
    /// PCM with a sample size other than 16 bits, or G.711 not at 8 bits.
    #[error("unsupported sample size of {0} bits")]
    UnsupportedBitsPerSample(u16),
    /// Zero channels or more than two.
    #[error("unsupported channel count {0}")]
    UnsupportedChannels(u16),
    /// A sample rate of zero or above 192 kHz.
    #[error("unsupported sample rate {0} Hz")]
    UnsupportedSampleRate(u32),
    /// `fmt ` fields that contradict each other (block align, byte rate).
    #[error("inconsistent fmt chunk: {0}")]
    InconsistentFormat(&'static str),
}

/// The canonical 44-byte header of a 16-bit PCM file holding `data_len` bytes.
pub fn pcm16_header(channels: u16, sample_rate: u32, data_len: u32) -> [u8; 44] {
    let block_align = channels * 2;
    let byte_rate = sample_rate * u32::from(block_align);
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36u32.saturating_add(data_len)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&FORMAT_PCM.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Writes the canonical header at the start of `w` and puts the cursor back
/// where it was.
pub fn write_pcm16_header<W: Write + Seek>(
    w: &mut W,
    channels: u16,
    sample_rate: u32,
    data_len: u32,
) -> io::Result<()> {
    let pos = w.stream_position()?;
    w.seek(SeekFrom::Start(0))?;
    w.write_all(&pcm16_header(channels, sample_rate, data_len))?;
    if pos != 0 {
        w.seek(SeekFrom::Start(pos))?;
    }
    Ok(())
}

/// Walks the chunks of a WAV file and returns its format and data location.
///
/// `file_len` is the real length of the stream: a data chunk whose declared
/// size runs past the end (a file cut short) is clamped to what is there,
/// and a declared size of 0 or `0xFFFFFFFF` with bytes behind it (a header
/// never rewritten) is taken as "to the end of the file".
pub fn read_info<R: Read + Seek>(r: &mut R) -> Result<WavInfo, WavError> {
    let file_len = r.seek(SeekFrom::End(0))?;
    r.seek(SeekFrom::Start(0))?;
    let mut riff = [0u8; 12];
    read_exact_or(r, &mut riff, WavError::NotWave)?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut pos = 12u64;
    let mut fmt: Option<(SampleFormat, u16, u32)> = None;
    loop {
        if pos + 8 > file_len {
            return Err(if fmt.is_none() {
                WavError::MissingFormat
            } else {
                WavError::MissingData
            });
        }
        r.seek(SeekFrom::Start(pos))?;
        let mut ch = [0u8; 8];
        read_exact_or(r, &mut ch, WavError::Truncated)?;
        let id = [ch[0], ch[1], ch[2], ch[3]];
        let size = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]) as u64;
        let body = pos + 8;
        match &id {
            b"fmt " => {
                if size < 16 || body + size > file_len {
                    return Err(WavError::Truncated);
                }
                let mut f = vec![0u8; size.min(64) as usize];
                read_exact_or(r, &mut f, WavError::Truncated)?;
                fmt = Some(parse_fmt(&f)?);
            }
            b"data" => {
                let (format, channels, sample_rate) = fmt.ok_or(WavError::MissingFormat)?;
                let available = file_len - body;
                let data_len = if size == 0 || size == 0xFFFF_FFFF {
                    available
                } else {
                    size.min(available)
                };
                return Ok(WavInfo {
                    format,
                    channels,
                    sample_rate,
                    data_offset: body,
                    data_len,
                });
            }
            _ => {}
        }
        // Chunks are word aligned.
        pos = body + size + (size & 1);
    }
}

fn parse_fmt(f: &[u8]) -> Result<(SampleFormat, u16, u32), WavError> {
    let u16at = |i: usize| u16::from_le_bytes([f[i], f[i + 1]]);
    let u32at = |i: usize| u32::from_le_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
    let mut tag = u16at(0);
    let channels = u16at(2);
    let sample_rate = u32at(4);
    let byte_rate = u32at(8);
    let block_align = u16at(12);
    let bits = u16at(14);
    if tag == FORMAT_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) then the GUID whose first
        // two bytes are the real format tag.
        if f.len() < 26 {
            return Err(WavError::Truncated);
        }
        tag = u16at(24);
    }
    let format = match tag {
        FORMAT_PCM => SampleFormat::Pcm16,
        FORMAT_MULAW => SampleFormat::MuLaw,
        FORMAT_ALAW => SampleFormat::ALaw,
        other => return Err(WavError::UnsupportedFormat(other)),
    };
    if bits != 8 * format.bytes_per_sample() {
        return Err(WavError::UnsupportedBitsPerSample(bits));
    }
    if channels == 0 || channels > 2 {
        return Err(WavError::UnsupportedChannels(channels));
    }
    if sample_rate == 0 || sample_rate > 192_000 {
        return Err(WavError::UnsupportedSampleRate(sample_rate));
    }
    let expect_align = channels * format.bytes_per_sample();
    if block_align != expect_align {
        return Err(WavError::InconsistentFormat("block align"));
    }
    if byte_rate != sample_rate * u32::from(expect_align) {
        return Err(WavError::InconsistentFormat("byte rate"));
    }
    Ok((format, channels, sample_rate))
}

fn read_exact_or<R: Read>(r: &mut R, buf: &mut [u8], short: WavError) -> Result<(), WavError> {
    match r.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(short),
        Err(e) => Err(WavError::Io(e)),
    }
}
