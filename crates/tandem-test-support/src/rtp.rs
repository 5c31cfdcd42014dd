//! RTP a test peer sends.

/// One 20 ms PCMU packet (SSRC 0x1234) with sequence `seq`, its timestamp
/// `seq * 160`, and every payload byte `fill`.
pub fn pcmu(seq: u16, fill: u8) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend(std::iter::repeat_n(fill, 160));
    p
}
