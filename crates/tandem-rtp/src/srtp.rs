//! SDES-SRTP (RFC 4568 keys, RFC 3711 packets): the `a=crypto` attribute
//! and the per-leg SRTP/SRTCP contexts the relay uses.
//!
//! Each side's `a=crypto` carries the key *it* sends with: Tandem decrypts
//! what a leg receives with the remote's key and encrypts what it sends
//! with its own. The packet transforms are webrtc-srtp's (the webrtc-rs
//! project's, pure Rust on RustCrypto's AES and HMAC-SHA1): inbound with a
//! replay window, outbound tracking the rollover counter per SSRC.
//!
//! Supported: `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32`, one
//! key per attribute, no MKI, no session parameters (a line with either is
//! skipped as unsupported, RFC 4568 §6.3), the lifetime ignored.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Bytes of master key and salt together (16 + 14).
pub const KEY_SALT_LEN: usize = 30;
/// Packets of replay window (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: usize = 128;

/// An SRTP crypto suite (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-128 counter mode, 80-bit HMAC-SHA1 tag (the one everyone has).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, 32-bit HMAC-SHA1 tag.
    AesCm128HmacSha1_32,
}

impl Suite {
    /// The suite's name in `a=crypto`.
    pub fn as_str(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite named `name`, when Tandem supports it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Suite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Suite::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// A suite and its master key and salt. Debug never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    /// The crypto suite.
    pub suite: Suite,
    /// Master key (16 bytes) then master salt (14 bytes).
    pub key_salt: [u8; KEY_SALT_LEN],
}

impl fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SrtpKey({}, ..)", self.suite.as_str())
    }
}

impl SrtpKey {
    /// A fresh key from the operating system's random source.
    pub fn random(suite: Suite) -> Self {
        use rand::RngCore as _;
        let mut key_salt = [0u8; KEY_SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key_salt);
        SrtpKey { suite, key_salt }
    }

    fn context(&self, replay: bool) -> Option<Context> {
        let (key, salt) = self.key_salt.split_at(16);
        let (rtp, rtcp) = if replay {
            (
                Some(srtp_replay_protection(REPLAY_WINDOW)),
                Some(srtcp_replay_protection(REPLAY_WINDOW)),
            )
        } else {
            (None, None)
        };
        Context::new(key, salt, self.suite.profile(), rtp, rtcp).ok()
    }
}

/// One `a=crypto` line Tandem can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// The tag the answer must repeat.
    pub tag: u32,
    /// The key the line's sender sends with.
    pub key: SrtpKey,
}

impl Crypto {
    /// Parses an `a=crypto` value (`tag suite inline:key||salt[|lifetime]
    /// [|MKI:length] [session-params]`); `None` when the suite, the key
    /// form, an MKI or a session parameter is not supported.
    pub fn parse(value: &str) -> Option<Self> {
        let mut words = value.split_ascii_whitespace();
        let tag: u32 = words.next()?.parse().ok()?;
        if tag > 999_999_999 {
            return None;
        }
        let suite = Suite::from_name(words.next()?)?;
        let params = words.next()?;
        // Session parameters (UNENCRYPTED_SRTP, KDR=...) change the
        // transform: a line with any is not for Tandem.
        if words.next().is_some() {
            return None;
        }
        // One key: several `inline:` joined by ';' would need MKIs.
        if params.contains(';') {
            return None;
        }
        let inline = params.strip_prefix("inline:")?;
        let mut parts = inline.split('|');
        let encoded = parts.next()?;
        for extra in parts {
            // A lifetime (`2^31` or a number) is fine; an MKI is not.
            if extra.contains(':') {
                return None;
            }
        }
        let raw = STANDARD.decode(encoded).ok()?;
        let key_salt: [u8; KEY_SALT_LEN] = raw.try_into().ok()?;
        Some(Crypto {
            tag,
            key: SrtpKey { suite, key_salt },
        })
    }

    /// The `a=crypto` value for this line.
    pub fn value(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.key.suite.as_str(),
            STANDARD.encode(self.key.key_salt)
        )
    }
}

/// The keys of one SRTP leg: what the remote sends with, what Tandem sends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// Decrypts what the leg receives.
    pub inbound: SrtpKey,
    /// Encrypts what Tandem sends on the leg.
    pub outbound: SrtpKey,
}

/// Why a packet was not transformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// Authentication failed, a replay, or a packet too short.
    #[error("SRTP packet rejected (authentication, replay or length)")]
    Rejected,
    /// The key cannot be used (never for the suites above).
    #[error("SRTP key unusable")]
    Key,
}

/// The running transforms of one leg.
pub(crate) struct SrtpSession {
    keys: SrtpKeys,
    inbound: Context,
    outbound: Context,
}

impl fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpSession")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl SrtpSession {
    pub(crate) fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        Ok(SrtpSession {
            inbound: keys.inbound.context(true).ok_or(SrtpError::Key)?,
            outbound: keys.outbound.context(false).ok_or(SrtpError::Key)?,
            keys: keys.clone(),
        })
    }

    pub(crate) fn keys(&self) -> &SrtpKeys {
        &self.keys
    }

    /// Decrypts and authenticates an SRTP packet.
    pub(crate) fn unprotect_rtp(&mut self, pkt: &[u8]) -> Result<bytes::Bytes, SrtpError> {
        self.inbound
            .decrypt_rtp(pkt)
            .map_err(|_| SrtpError::Rejected)
    }

    /// Encrypts an RTP packet.
    pub(crate) fn protect_rtp(&mut self, pkt: &[u8]) -> Result<bytes::Bytes, SrtpError> {
        self.outbound
            .encrypt_rtp(pkt)
            .map_err(|_| SrtpError::Rejected)
    }

    /// Decrypts and authenticates an SRTCP packet.
    pub(crate) fn unprotect_rtcp(&mut self, pkt: &[u8]) -> Result<bytes::Bytes, SrtpError> {
        self.inbound
            .decrypt_rtcp(pkt)
            .map_err(|_| SrtpError::Rejected)
    }

    /// Encrypts an RTCP packet.
    pub(crate) fn protect_rtcp(&mut self, pkt: &[u8]) -> Result<bytes::Bytes, SrtpError> {
        self.outbound
            .encrypt_rtcp(pkt)
            .map_err(|_| SrtpError::Rejected)
    }
}

/// A peer's side of an SRTP leg, for tests and tools: encrypts what it
/// sends with its key, decrypts what it receives with Tandem's.
pub struct SrtpPeer(SrtpSession);

impl fmt::Debug for SrtpPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SrtpPeer").finish_non_exhaustive()
    }
}

impl SrtpPeer {
    /// `own` encrypts what the peer sends; `tandem` decrypts what it receives.
    pub fn new(own: &SrtpKey, tandem: &SrtpKey) -> Result<Self, SrtpError> {
        SrtpSession::new(&SrtpKeys {
            inbound: tandem.clone(),
            outbound: own.clone(),
        })
        .map(SrtpPeer)
    }

    /// Encrypts an RTP packet.
    pub fn protect(&mut self, pkt: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.0.protect_rtp(pkt).map(|b| b.to_vec())
    }

    /// Decrypts an SRTP packet.
    pub fn unprotect(&mut self, pkt: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.0.unprotect_rtp(pkt).map(|b| b.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";

    #[test]
    fn crypto_lines_parse_print_and_refuse_what_is_unsupported() {
        // RFC 4568 §7's example, but with its MKI: refused.
        assert_eq!(Crypto::parse(LINE), None);
        let plain =
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20";
        let c = Crypto::parse(plain).expect("parses");
        assert_eq!(c.tag, 1);
        assert_eq!(c.key.suite, Suite::AesCm128HmacSha1_80);
        let again = Crypto::parse(&c.value()).expect("round trip");
        assert_eq!(again, c);
        for bad in [
            "1 AES_256_CM_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP",
            "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!",
            "x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80",
            "",
        ] {
            assert_eq!(Crypto::parse(bad), None, "{bad}");
        }
        assert!(!format!("{:?}", c.key).contains("PS1u"));
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend(std::iter::repeat_n(0xd5, 160));
        p
    }

    #[test]
    fn a_peer_and_a_leg_understand_each_other_and_refuse_tampering_and_replays() {
        let peer_key = SrtpKey::random(Suite::AesCm128HmacSha1_80);
        let tandem_key = SrtpKey::random(Suite::AesCm128HmacSha1_80);
        let mut peer = SrtpPeer::new(&peer_key, &tandem_key).unwrap();
        let mut leg = SrtpSession::new(&SrtpKeys {
            inbound: peer_key,
            outbound: tandem_key,
        })
        .unwrap();
        for seq in 1..5u16 {
            let sent = peer.protect(&rtp(seq)).unwrap();
            assert_eq!(sent.len(), rtp(seq).len() + 10);
            assert_ne!(&sent[12..172], &rtp(seq)[12..]);
            assert_eq!(leg.unprotect_rtp(&sent).unwrap(), rtp(seq));
            // The same packet again is a replay.
            assert_eq!(leg.unprotect_rtp(&sent), Err(SrtpError::Rejected));
            let back = leg.protect_rtp(&rtp(seq)).unwrap();
            assert_eq!(peer.unprotect(&back).unwrap(), rtp(seq));
        }
        let mut tampered = peer.protect(&rtp(9)).unwrap();
        tampered[20] ^= 1;
        assert_eq!(leg.unprotect_rtp(&tampered), Err(SrtpError::Rejected));
        // Plain RTP on an SRTP leg fails authentication.
        assert_eq!(leg.unprotect_rtp(&rtp(10)), Err(SrtpError::Rejected));
    }
}
