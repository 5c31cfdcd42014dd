//! Offer/answer (RFC 3264) for an anchoring B2BUA: codec intersection over
//! PCMU, PCMA, Opus and telephone-event (RFC 4733), rewriting of `o=`, `c=`
//! and `m=` to Tandem's own address and ports on each leg, hold and resume
//! (§8.4), `ptime`, and the `o=` session-version rule (§8: incremented only
//! when the description changes). SDES-SRTP (RFC 4568) per leg: an
//! `RTP/SAVP` offer with a usable `a=crypto` is answered with Tandem's own
//! key, and a leg told to ([`SdpSession::use_srtp`]) offers `RTP/SAVP`; the
//! profile is each leg's own, so an SRTP leg bridges to a plain one.

use std::net::{IpAddr, SocketAddr};

use super::{
    Attribute, Connection, Direction, MediaDescription, Origin, SdpError, SessionDescription,
    Timing,
};
use crate::srtp::{Crypto, SrtpKey, SrtpKeys, Suite};

pub use tandem_media::Codec;

/// One payload format of a stream: a payload type bound to a codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFormat {
    /// RTP payload type (0..=127).
    pub pt: u8,
    /// The codec.
    pub codec: Codec,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count from the `rtpmap` (2 for Opus, else 1).
    pub channels: u8,
    /// `fmtp` parameters, if any.
    pub fmtp: Option<String>,
}

impl PayloadFormat {
    /// A format with the codec's usual clock rate and channels.
    pub fn new(pt: u8, codec: Codec) -> Self {
        PayloadFormat {
            pt,
            codec,
            clock_rate: codec.clock_rate(),
            channels: if codec == Codec::Opus { 2 } else { 1 },
            fmtp: match codec {
                Codec::TelephoneEvent => Some("0-16".to_owned()),
                _ => None,
            },
        }
    }

    fn same_codec(&self, other: &PayloadFormat) -> bool {
        self.codec == other.codec && self.clock_rate == other.clock_rate
    }

    fn push_attributes(&self, attrs: &mut Vec<Attribute>) {
        let mut map = format!(
            "{} {}/{}",
            self.pt,
            self.codec.encoding_name(),
            self.clock_rate
        );
        if self.channels > 1 {
            map.push_str(&format!("/{}", self.channels));
        }
        attrs.push(Attribute::new("rtpmap", map));
        if let Some(f) = &self.fmtp {
            attrs.push(Attribute::new("fmtp", format!("{} {}", self.pt, f)));
        }
    }
}

/// The formats of an RTP media section that Tandem supports, in the order
/// written. Static payload types without `rtpmap` are recognised.
pub fn media_formats(m: &MediaDescription) -> Vec<PayloadFormat> {
    let mut out = Vec::new();
    for pt in m.payload_types() {
        let (codec, clock_rate, channels) = match m.rtpmap(pt) {
            Some(map) => match Codec::from_rtpmap(map.encoding, map.clock_rate, map.channels) {
                Some(c) => (c, map.clock_rate, map.channels),
                None => continue,
            },
            None => match pt {
                0 => (Codec::Pcmu, 8000, 1),
                8 => (Codec::Pcma, 8000, 1),
                _ => continue,
            },
        };
        if out.iter().any(|f: &PayloadFormat| f.pt == pt) {
            continue;
        }
        out.push(PayloadFormat {
            pt,
            codec,
            clock_rate,
            channels,
            fmtp: m.fmtp(pt).map(str::to_owned),
        });
    }
    out
}

/// What Tandem offers and accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaCapabilities {
    /// Audio codecs in preference order (for Tandem's own offers).
    pub codecs: Vec<Codec>,
    /// Offer and accept RFC 4733 telephone-event.
    pub telephone_event: bool,
    /// Payload type for Opus in Tandem's own offers.
    pub opus_pt: u8,
    /// Payload type for telephone-event/8000 in Tandem's own offers.
    pub telephone_event_pt: u8,
    /// Payload type for telephone-event/48000 (offered with Opus).
    pub telephone_event_48k_pt: u8,
    /// Packetisation time in ms written in Tandem's own offers.
    pub ptime: u32,
}

impl Default for MediaCapabilities {
    fn default() -> Self {
        MediaCapabilities {
            codecs: vec![Codec::Pcmu, Codec::Pcma, Codec::Opus],
            telephone_event: true,
            opus_pt: 111,
            telephone_event_pt: 101,
            telephone_event_48k_pt: 110,
            ptime: 20,
        }
    }
}

/// Tandem's media address on one leg. RTCP is always `rtp_port + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address written in `c=` and `o=` (the external address).
    pub addr: IpAddr,
    /// Even RTP port from the pool.
    pub rtp_port: u16,
}

/// The outcome of offer/answer on one leg: what the relay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Where to send RTP (None: `c=0.0.0.0`, a host name, or port 0).
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP (`a=rtcp`, else RTP port + 1).
    pub remote_rtcp: Option<SocketAddr>,
    /// The audio codec to send on this leg.
    pub codec: PayloadFormat,
    /// telephone-event on this leg, with this leg's payload type.
    pub telephone_event: Option<PayloadFormat>,
    /// Every format the remote may send or expects (its own mapping first),
    /// including `codec` and `telephone_event`.
    pub formats: Vec<PayloadFormat>,
    /// Packetisation time in ms (the remote's `ptime`, else 20).
    pub ptime: u32,
    /// The remote's direction, with `c=0.0.0.0` read as hold.
    pub remote_direction: Direction,
    /// SDES-SRTP keys when the leg is `RTP/SAVP` (`None`: plain RTP).
    pub srtp: Option<SrtpKeys>,
}

impl NegotiatedMedia {
    /// Should Tandem send media to this leg?
    pub fn send_enabled(&self) -> bool {
        self.remote_direction.receives() && self.remote_rtp.is_some()
    }

    /// Does the remote send media (so silence means a dead stream)?
    pub fn recv_enabled(&self) -> bool {
        self.remote_direction.sends()
    }

    /// Does silence from the remote mean its stream is dead (the media
    /// timeout applies)? Only while neither side holds: a remote that
    /// holds (`sendonly`) may send nothing at all — many phones go quiet
    /// on hold instead of playing music — and one held (`recvonly`,
    /// `inactive`) sends nothing by contract.
    pub fn silence_is_dead(&self) -> bool {
        self.remote_direction.sends() && self.remote_direction.receives()
    }

    /// Is the remote holding the call (`sendonly`, `inactive`, `c=0.0.0.0`)?
    pub fn is_held(&self) -> bool {
        !self.remote_direction.receives()
    }
}

/// How to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnswerOptions {
    /// Prefer this codec when offered (e.g. the codec the other leg uses, so
    /// no transcoding is needed). Otherwise the offerer's order wins.
    pub prefer: Option<Codec>,
    /// Tandem holds the remote: do not ask to receive.
    pub hold: bool,
}

/// Tandem's side of the SDP exchange on one leg: its `o=` line (session id
/// and version) and address. One per leg, kept for the whole dialog.
#[derive(Debug, Clone)]
pub struct SdpSession {
    session_id: u64,
    version: u64,
    local: LocalMedia,
    /// A hash of the last description sent, `o=` included ([`Self::stamp`]).
    last_sent: Option<u64>,
    /// Tandem's `a=crypto` on this leg while it is SRTP: the tag and the
    /// key Tandem sends with (kept across re-offers: a new key would
    /// restart the peer's SRTP context).
    srtp: Option<Crypto>,
}

impl SdpSession {
    /// A new session. `session_id` should be random (injected for replay).
    pub fn new(session_id: u64, local: LocalMedia) -> Self {
        SdpSession {
            session_id,
            version: 1,
            local,
            last_sent: None,
            srtp: None,
        }
    }

    /// Offers on this leg are `RTP/SAVP` with a key of Tandem's (`on`), or
    /// plain `RTP/AVP`. Answers follow the offer whatever this says.
    pub fn use_srtp(&mut self, on: bool) {
        match (on, &self.srtp) {
            (true, None) => {
                self.srtp = Some(Crypto {
                    tag: 1,
                    key: SrtpKey::random(Suite::AesCm128HmacSha1_80),
                });
            }
            (false, _) => self.srtp = None,
            (true, Some(_)) => {}
        }
    }

    /// Whether this leg offers SRTP.
    pub fn srtp(&self) -> bool {
        self.srtp.is_some()
    }

    /// Tandem's address and RTP port on this leg.
    pub fn local(&self) -> LocalMedia {
        self.local
    }

    /// The session version last written in `o=`.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// A fresh offer of Tandem's capabilities.
    pub fn offer(&mut self, caps: &MediaCapabilities, direction: Direction) -> SessionDescription {
        let mut formats = Vec::new();
        for &c in &caps.codecs {
            match c {
                Codec::Pcmu | Codec::Pcma => formats.push(PayloadFormat::new(
                    c.static_payload_type().unwrap_or_default(),
                    c,
                )),
                Codec::Opus => {
                    let mut f = PayloadFormat::new(caps.opus_pt, c);
                    f.fmtp = Some("useinbandfec=1".to_owned());
                    formats.push(f);
                }
                Codec::TelephoneEvent => {}
            }
        }
        if caps.telephone_event {
            formats.push(PayloadFormat::new(
                caps.telephone_event_pt,
                Codec::TelephoneEvent,
            ));
            if caps.codecs.contains(&Codec::Opus) {
                let mut f = PayloadFormat::new(caps.telephone_event_48k_pt, Codec::TelephoneEvent);
                f.clock_rate = 48_000;
                formats.push(f);
            }
        }
        let proto = if self.srtp.is_some() {
            "RTP/SAVP"
        } else {
            "RTP/AVP"
        };
        let m = self.audio_section(proto, &formats, Some(caps.ptime), direction);
        self.finish(vec![m])
    }

    /// An offer for this leg built from the other leg's offer: the other
    /// leg's supported formats, payload types, `fmtp`, `ptime` and direction
    /// (so hold propagates), with Tandem's address and port; G.711 appended
    /// (reached by transcoding) when the other leg offered none. Streams other
    /// than the first audio stream are not forwarded.
    pub fn offer_from(
        &mut self,
        remote_offer: &SessionDescription,
        caps: &MediaCapabilities,
    ) -> Result<SessionDescription, SdpError> {
        let idx = usable_audio(remote_offer)?;
        let m = &remote_offer.media[idx];
        let mut formats: Vec<PayloadFormat> = media_formats(m)
            .into_iter()
            .filter(|f| f.codec == Codec::TelephoneEvent || caps.codecs.contains(&f.codec))
            .filter(|f| caps.telephone_event || f.codec != Codec::TelephoneEvent)
            .collect();
        if !formats.iter().any(|f| f.codec.is_audio()) {
            return Err(SdpError::NoCommonCodec);
        }
        // A caller without G.711 (an Opus-only softphone) gets Tandem's
        // G.711 codecs appended, so a callee that has only G.711 (most PBXs
        // and carriers) is reached through the transcoder. A caller with
        // G.711 is forwarded as it offered: a callee picks from the
        // caller's codecs and the relay passes them through.
        if !formats
            .iter()
            .any(|f| matches!(f.codec, Codec::Pcmu | Codec::Pcma))
        {
            for &c in &caps.codecs {
                if matches!(c, Codec::Pcmu | Codec::Pcma) {
                    formats.push(PayloadFormat::new(
                        c.static_payload_type().unwrap_or_default(),
                        c,
                    ));
                }
            }
            // Their telephone-event runs at 8 kHz.
            if caps.telephone_event
                && formats
                    .iter()
                    .any(|f| matches!(f.codec, Codec::Pcmu | Codec::Pcma))
                && !formats
                    .iter()
                    .any(|f| f.codec == Codec::TelephoneEvent && f.clock_rate == 8000)
            {
                let pt = free_pt(&formats, caps.telephone_event_pt);
                formats.push(PayloadFormat::new(pt, Codec::TelephoneEvent));
            }
        }
        if caps.telephone_event && !formats.iter().any(|f| f.codec == Codec::TelephoneEvent) {
            let pt = free_pt(&formats, caps.telephone_event_pt);
            formats.push(PayloadFormat::new(pt, Codec::TelephoneEvent));
        }
        let (_, _, dir) = remote_endpoint(remote_offer, idx);
        // This leg's own profile (SRTP or not), with the other's feedback
        // (AVPF) kept.
        let feedback = m.proto.ends_with('F');
        let proto = match (self.srtp.is_some(), feedback) {
            (false, false) => "RTP/AVP",
            (false, true) => "RTP/AVPF",
            (true, false) => "RTP/SAVP",
            (true, true) => "RTP/SAVPF",
        };
        let out = self.audio_section(proto, &formats, m.ptime(), dir);
        Ok(self.finish(vec![out]))
    }

    /// Answer an offer (RFC 3264 §6): one audio codec (the preferred one if
    /// offered, else the offerer's first supported), telephone-event with the
    /// offerer's payload type, every other stream rejected with port 0.
    pub fn answer(
        &mut self,
        offer: &SessionDescription,
        caps: &MediaCapabilities,
        opts: AnswerOptions,
    ) -> Result<(SessionDescription, NegotiatedMedia), SdpError> {
        let idx = usable_audio(offer)?;
        let om = &offer.media[idx];
        let offered = media_formats(om);
        let supported = |f: &&PayloadFormat| f.codec.is_audio() && caps.codecs.contains(&f.codec);
        let codec = opts
            .prefer
            .and_then(|p| offered.iter().filter(supported).find(|f| f.codec == p))
            .or_else(|| offered.iter().find(supported))
            .cloned()
            .ok_or(SdpError::NoCommonCodec)?;
        let te = caps
            .telephone_event
            .then(|| pick_telephone_event(&offered, codec.clock_rate))
            .flatten();

        let (remote_rtp, remote_rtcp, remote_dir) = remote_endpoint(offer, idx);
        let mine = remote_dir.reversed();
        let dir = Direction::from_flags(mine.sends(), mine.receives() && !opts.hold);

        let mut chosen = vec![codec.clone()];
        chosen.extend(te.clone());
        let ptime = om.ptime();
        // SRTP when offered: the first usable key line's tag and suite,
        // with Tandem's key (the same as before when the suite is).
        let srtp = if is_secure(&om.proto) {
            let theirs = offered_crypto(om).ok_or(SdpError::NoAudio)?;
            let mine = match &self.srtp {
                Some(c) if c.key.suite == theirs.key.suite => c.key.clone(),
                _ => SrtpKey::random(theirs.key.suite),
            };
            self.srtp = Some(Crypto {
                tag: theirs.tag,
                key: mine.clone(),
            });
            Some(SrtpKeys {
                inbound: theirs.key,
                outbound: mine,
            })
        } else {
            self.srtp = None;
            None
        };
        let mut sections = Vec::with_capacity(offer.media.len());
        for (i, m) in offer.media.iter().enumerate() {
            if i == idx {
                sections.push(self.audio_section(&om.proto, &chosen, ptime, dir));
            } else {
                sections.push(rejected(m));
            }
        }
        let answer = self.finish(sections);
        let negotiated = NegotiatedMedia {
            remote_rtp,
            remote_rtcp,
            codec,
            telephone_event: te,
            formats: offered,
            ptime: ptime.unwrap_or(20),
            remote_direction: remote_dir,
            srtp,
        };
        Ok((answer, negotiated))
    }

    /// Set Tandem's address (e.g. after a port change) for the next description.
    pub fn set_local(&mut self, local: LocalMedia) {
        self.local = local;
    }

    fn audio_section(
        &self,
        proto: &str,
        formats: &[PayloadFormat],
        ptime: Option<u32>,
        dir: Direction,
    ) -> MediaDescription {
        let mut attributes = Vec::with_capacity(formats.len() * 2 + 2);
        for f in formats {
            f.push_attributes(&mut attributes);
        }
        if let Some(p) = ptime {
            attributes.push(Attribute::new("ptime", p.to_string()));
        }
        attributes.push(Attribute::flag(dir.as_str()));
        if let Some(c) = self.srtp.as_ref().filter(|_| is_secure(proto)) {
            attributes.push(Attribute::new("crypto", c.value()));
        }
        MediaDescription {
            media: "audio".to_owned(),
            port: self.local.rtp_port,
            port_count: None,
            proto: proto.to_owned(),
            formats: formats.iter().map(|f| f.pt.to_string()).collect(),
            info: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            attributes,
        }
    }

    /// Wrap sections in a session with Tandem's `o=`, `s=`, `c=`, `t=`,
    /// bumping the version when the content differs from the last one sent.
    fn finish(&mut self, media: Vec<MediaDescription>) -> SessionDescription {
        let mut sd = SessionDescription {
            // Written by `stamp` below; empty strings allocate nothing.
            origin: Origin {
                username: String::new(),
                session_id: String::new(),
                session_version: 0,
                addr_type: super::AddrType::of(self.local.addr),
                address: String::new(),
            },
            session_name: "tandem".to_owned(),
            info: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: Some(Connection::new(self.local.addr)),
            bandwidths: Vec::new(),
            timing: vec![Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            }],
            time_zones: None,
            key: None,
            attributes: Vec::new(),
            media,
        };
        self.stamp(&mut sd);
        sd
    }

    /// Give `sd` this session's `o=` line: same version as the last
    /// description if nothing else changed, else the next version
    /// (RFC 3264 §8). Use it on any description sent on this leg.
    pub fn stamp(&mut self, sd: &mut SessionDescription) {
        // The last description carried this very origin at this version:
        // `sd` stamped alike hashes the same unless something else changed.
        // A hash, not a copy to compare: the copy was ~2 % of a call's CPU
        // (forty-odd allocations). Two different descriptions hashing alike
        // (odds 2^-64 per change) would keep the version.
        sd.origin = Origin {
            username: "tandem".to_owned(),
            session_id: self.session_id.to_string(),
            session_version: self.version,
            addr_type: super::AddrType::of(self.local.addr),
            address: self.local.addr.to_string(),
        };
        let mut hash = digest(sd);
        if self.last_sent.is_some_and(|last| last != hash) {
            self.version += 1;
            sd.origin.session_version = self.version;
            hash = digest(sd);
        }
        self.last_sent = Some(hash);
    }
}

fn digest(sd: &SessionDescription) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sd.hash(&mut h);
    h.finish()
}

/// Read the answer to an offer Tandem sent on this leg (RFC 3264 §6, §7).
pub fn negotiate_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<NegotiatedMedia, SdpError> {
    if answer.media.len() != offer.media.len() {
        return Err(SdpError::AnswerMismatch {
            reason: "number of m= lines differs from the offer",
        });
    }
    let idx = usable_audio(offer)?;
    let am = &answer.media[idx];
    if !am.media.eq_ignore_ascii_case("audio") {
        return Err(SdpError::AnswerMismatch {
            reason: "media type differs from the offer",
        });
    }
    if am.port == 0 {
        return Err(SdpError::NoCommonCodec);
    }
    let offered = media_formats(&offer.media[idx]);
    let answered = media_formats(am);
    let codec = answered
        .iter()
        .find(|f| f.codec.is_audio() && offered.iter().any(|o| o.same_codec(f)))
        .cloned()
        .ok_or(SdpError::NoCommonCodec)?;
    let te = pick_telephone_event(&answered, codec.clock_rate)
        .filter(|t| offered.iter().any(|o| o.same_codec(t)));
    // Our SRTP offer needs an answer with a key for our tag and suite.
    let om = &offer.media[idx];
    let srtp = if is_secure(&om.proto) {
        let mine = offered_crypto(om).ok_or(SdpError::NoAudio)?;
        let theirs = am
            .attributes
            .iter()
            .filter(|a| a.name == "crypto")
            .filter_map(|a| Crypto::parse(a.value.as_deref()?))
            .find(|c| c.tag == mine.tag && c.key.suite == mine.key.suite)
            .filter(|_| is_secure(&am.proto))
            .ok_or(SdpError::AnswerMismatch {
                reason: "the answer to an SRTP offer has no key for its crypto tag",
            })?;
        Some(SrtpKeys {
            inbound: theirs.key,
            outbound: mine.key,
        })
    } else {
        None
    };
    let (remote_rtp, remote_rtcp, remote_direction) = remote_endpoint(answer, idx);
    let mut formats = answered;
    for o in offered {
        if !formats.iter().any(|f| f.pt == o.pt) {
            formats.push(o);
        }
    }
    Ok(NegotiatedMedia {
        remote_rtp,
        remote_rtcp,
        codec,
        telephone_event: te,
        formats,
        ptime: am.ptime().unwrap_or(20),
        remote_direction,
        srtp,
    })
}

/// `RTP/SAVP` or `RTP/SAVPF`.
fn is_secure(proto: &str) -> bool {
    matches!(proto, "RTP/SAVP" | "RTP/SAVPF")
}

/// The first `a=crypto` of a section Tandem can use.
fn offered_crypto(m: &MediaDescription) -> Option<Crypto> {
    m.attributes
        .iter()
        .filter(|a| a.name == "crypto")
        .find_map(|a| Crypto::parse(a.value.as_deref()?))
}

/// Rewrite a description to carry Tandem's address and port: session `c=`,
/// media-level `c=` removed, the first audio stream's port, `a=rtcp`
/// dropped (RTCP is port + 1), and attributes that describe the other leg's
/// transport or stream identity (ICE, `ssrc`, `msid`, `rtcp-mux`) removed,
/// since Tandem rewrites SSRCs and terminates the transport.
pub fn rewrite_connection(sd: &mut SessionDescription, local: LocalMedia) {
    sd.connection = Some(Connection::new(local.addr));
    let audio = sd.first_audio();
    for (i, m) in sd.media.iter_mut().enumerate() {
        m.connections.clear();
        if Some(i) == audio {
            m.port = local.rtp_port;
        }
        m.remove_attributes(|a| {
            matches!(
                a.name.as_str(),
                "rtcp"
                    | "rtcp-mux"
                    | "candidate"
                    | "end-of-candidates"
                    | "ice-ufrag"
                    | "ice-pwd"
                    | "ice-options"
                    | "ice-lite"
                    | "ssrc"
                    | "ssrc-group"
                    | "msid"
                    | "mid"
            )
        });
    }
    sd.attributes.retain(|a| {
        !matches!(
            a.name.as_str(),
            "ice-ufrag" | "ice-pwd" | "ice-lite" | "ice-options" | "msid-semantic" | "group"
        )
    });
}

/// Index of the first audio stream Tandem can relay: RTP/AVP or RTP/AVPF,
/// or RTP/SAVP(F) with a key line Tandem can use; non-zero port.
fn usable_audio(sd: &SessionDescription) -> Result<usize, SdpError> {
    sd.media
        .iter()
        .position(|m| {
            m.media.eq_ignore_ascii_case("audio")
                && m.port != 0
                && (matches!(m.proto.as_str(), "RTP/AVP" | "RTP/AVPF")
                    || (is_secure(&m.proto) && offered_crypto(m).is_some()))
        })
        .ok_or(SdpError::NoAudio)
}

/// telephone-event at the codec's clock rate, else at 8000 Hz.
fn pick_telephone_event(formats: &[PayloadFormat], clock: u32) -> Option<PayloadFormat> {
    let te = |rate| {
        formats
            .iter()
            .find(|f| f.codec == Codec::TelephoneEvent && f.clock_rate == rate)
    };
    te(clock).or_else(|| te(8000)).cloned()
}

/// `preferred` unless taken, else the first free dynamic payload type.
fn free_pt(formats: &[PayloadFormat], preferred: u8) -> u8 {
    let taken = |pt| formats.iter().any(|f: &PayloadFormat| f.pt == pt);
    if !taken(preferred) {
        return preferred;
    }
    (96..128).find(|&pt| !taken(pt)).unwrap_or(preferred)
}

/// Remote RTP and RTCP addresses and effective direction of stream `idx`;
/// `c=0.0.0.0` is hold: the remote will not receive.
fn remote_endpoint(
    sd: &SessionDescription,
    idx: usize,
) -> (Option<SocketAddr>, Option<SocketAddr>, Direction) {
    let m = &sd.media[idx];
    let mut dir = sd.media_direction(idx);
    let ip = sd.media_connection(idx).and_then(Connection::ip);
    let rtp = match ip {
        Some(ip) if ip.is_unspecified() => {
            dir = Direction::from_flags(dir.sends(), false);
            None
        }
        Some(ip) if m.port != 0 => Some(SocketAddr::new(ip, m.port)),
        _ => None,
    };
    let rtcp = rtp.map(|a| match m.rtcp() {
        Some((port, addr)) => SocketAddr::new(addr.unwrap_or(a.ip()), port),
        None => SocketAddr::new(a.ip(), a.port().wrapping_add(1)),
    });
    (rtp, rtcp, dir)
}

fn rejected(m: &MediaDescription) -> MediaDescription {
    MediaDescription {
        media: m.media.clone(),
        port: 0,
        port_count: None,
        proto: m.proto.clone(),
        formats: if m.formats.is_empty() {
            vec!["0".to_owned()]
        } else {
            m.formats.clone()
        },
        info: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    }
}
