//! Digest authentication (RFC 7616, RFC 2617, RFC 3261 §22): parsing and
//! rendering of `WWW-Authenticate`/`Proxy-Authenticate` challenges and
//! `Authorization`/`Proxy-Authorization` credentials, the client computation
//! (qop=auth, qop=auth-int and the RFC 2069 no-qop form; MD5, MD5-sess,
//! SHA-256, SHA-256-sess) and a stateless [`DigestServer`].
//!
//! Everything here works on header *values* (the text after the colon), so it
//! does not depend on the message types. No clock and no randomness are read:
//! the server takes `now` as a [`Duration`] since an epoch of the caller's
//! choosing and the nonce randomness as a `u64`; the client takes the cnonce
//! as a string.
//!
//! Server nonces are `hex(issued-at seconds) hex(random) hex(HMAC-SHA-256)`,
//! so any nonce can be validated without a table; the small nonce-count table
//! only serves replay detection and is bounded.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Why a challenge or credentials value could not be parsed or answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The value does not use the `Digest` scheme.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// The parameter list does not follow `name=value *("," name=value)`.
    #[error("malformed digest parameters at byte {at}: expected {expected}")]
    Syntax {
        /// Byte offset into the value where the fault was found.
        at: usize,
        /// What was expected there.
        expected: &'static str,
    },
    /// A quoted-string has no closing quote.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// A parameter the grammar requires is absent.
    #[error("missing {0} parameter")]
    MissingParameter(&'static str),
    /// A parameter occurs more than once.
    #[error("duplicate {0} parameter")]
    DuplicateParameter(String),
    /// The algorithm is not one of MD5, MD5-sess, SHA-256, SHA-256-sess.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The qop value is neither `auth` nor `auth-int`.
    #[error("unsupported qop {0:?}")]
    UnsupportedQop(String),
    /// The challenge offers qop values, none of which is supported.
    #[error("challenge offers no supported qop")]
    NoSupportedQop,
    /// The nonce-count is not 1 to 8 hexadecimal digits.
    #[error("malformed nonce-count {0:?}")]
    BadNonceCount(String),
    /// A `-sess` algorithm needs a cnonce, which RFC 2617 forbids without qop.
    #[error("session algorithm without qop")]
    SessionWithoutQop,
}

/// The digest hash algorithm (RFC 7616 §3.3, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// MD5 (the default when a challenge names no algorithm).
    #[default]
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256.
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
}

impl Algorithm {
    /// Parses an algorithm token, ignoring ASCII case.
    pub fn from_token(token: &str) -> Result<Self, AuthError> {
        const ALL: [Algorithm; 4] = [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ];
        ALL.into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(token))
            .ok_or_else(|| AuthError::UnsupportedAlgorithm(token.to_owned()))
    }

    /// The token as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Whether A1 includes the nonce and cnonce (the `-sess` variants).
    pub fn is_session(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    /// The same hash without the session variant (what a stored HA1 uses).
    pub fn base(self) -> Self {
        match self {
            Self::Md5 | Self::Md5Sess => Self::Md5,
            Self::Sha256 | Self::Sha256Sess => Self::Sha256,
        }
    }

    /// Lower-case hex digest of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self.base() {
            Self::Sha256 => hex(&Sha256::digest(data)),
            _ => hex(&Md5::digest(data)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quality of protection (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Qop {
    /// Authentication only.
    Auth,
    /// Authentication with integrity protection of the body.
    AuthInt,
}

impl Qop {
    /// Parses a qop token, ignoring ASCII case.
    pub fn from_token(token: &str) -> Result<Self, AuthError> {
        if token.eq_ignore_ascii_case("auth") {
            Ok(Self::Auth)
        } else if token.eq_ignore_ascii_case("auth-int") {
            Ok(Self::AuthInt)
        } else {
            Err(AuthError::UnsupportedQop(token.to_owned()))
        }
    }

    /// The token as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `WWW-Authenticate` or `Proxy-Authenticate` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space, shown to users and part of A1.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque data the client echoes unchanged.
    pub opaque: Option<String>,
    /// The previous nonce was stale: retry with this one without asking the user.
    pub stale: bool,
    /// Hash algorithm (MD5 when absent).
    pub algorithm: Algorithm,
    /// Offered qop values; empty means the RFC 2069 form. Unknown tokens are dropped.
    pub qop: Vec<Qop>,
    /// Whether the server offered qop tokens of which none is supported.
    pub qop_unsupported: bool,
}

impl Challenge {
    /// Parses a challenge value such as `Digest realm="x", nonce="y", qop="auth"`.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let params = Params::parse(value)?;
        let algorithm = match params.get("algorithm") {
            Some(a) => Algorithm::from_token(a)?,
            None => Algorithm::Md5,
        };
        let mut qop = Vec::new();
        let mut offered = false;
        if let Some(list) = params.get("qop") {
            let tokens = list.split(',').map(str::trim).filter(|t| !t.is_empty());
            for token in tokens {
                offered = true;
                match Qop::from_token(token) {
                    Ok(q) if !qop.contains(&q) => qop.push(q),
                    _ => {}
                }
            }
        }
        Ok(Self {
            realm: params.require("realm")?.to_owned(),
            nonce: params.require("nonce")?.to_owned(),
            opaque: params.get("opaque").map(str::to_owned),
            stale: params
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
            algorithm,
            qop_unsupported: offered && qop.is_empty(),
            qop,
        })
    }
}

impl fmt::Display for Challenge {
    /// Renders the header value (without the header name).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest realm=")?;
        write_quoted(f, &self.realm)?;
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        if let Some(opaque) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, opaque)?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        write!(f, ", algorithm={}", self.algorithm)?;
        if !self.qop.is_empty() {
            let list: Vec<&str> = self.qop.iter().map(|q| q.as_str()).collect();
            write!(f, ", qop=\"{}\"", list.join(","))?;
        }
        Ok(())
    }
}

/// A parsed `Authorization` or `Proxy-Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Realm of the challenge being answered.
    pub realm: String,
    /// Nonce of the challenge being answered.
    pub nonce: String,
    /// The digest-uri: the Request-URI in SIP (RFC 3261 §22.4).
    pub uri: String,
    /// Request digest, lower-case hex.
    pub response: String,
    /// Hash algorithm (MD5 when absent).
    pub algorithm: Algorithm,
    /// Client nonce; present exactly when `qop` is.
    pub cnonce: Option<String>,
    /// Nonce-count; present exactly when `qop` is.
    pub nc: Option<u32>,
    /// Chosen qop; `None` for the RFC 2069 form.
    pub qop: Option<Qop>,
    /// Echoed opaque value.
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parses a credentials value such as `Digest username="u", realm="r", ...`.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let params = Params::parse(value)?;
        let algorithm = match params.get("algorithm") {
            Some(a) => Algorithm::from_token(a)?,
            None => Algorithm::Md5,
        };
        let qop = params.get("qop").map(Qop::from_token).transpose()?;
        let nc = params.get("nc").map(parse_nc).transpose()?;
        let cnonce = params.get("cnonce").map(str::to_owned);
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(AuthError::MissingParameter("cnonce"));
            }
            if nc.is_none() {
                return Err(AuthError::MissingParameter("nc"));
            }
        }
        Ok(Self {
            username: params.require("username")?.to_owned(),
            realm: params.require("realm")?.to_owned(),
            nonce: params.require("nonce")?.to_owned(),
            uri: params.require("uri")?.to_owned(),
            response: params.require("response")?.to_owned(),
            algorithm,
            cnonce,
            nc,
            qop,
            opaque: params.get("opaque").map(str::to_owned),
        })
    }
}

impl fmt::Display for Credentials {
    /// Renders the header value (without the header name).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest username=")?;
        write_quoted(f, &self.username)?;
        f.write_str(", realm=")?;
        write_quoted(f, &self.realm)?;
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        f.write_str(", uri=")?;
        write_quoted(f, &self.uri)?;
        f.write_str(", response=")?;
        write_quoted(f, &self.response)?;
        write!(f, ", algorithm={}", self.algorithm)?;
        if let Some(cnonce) = &self.cnonce {
            f.write_str(", cnonce=")?;
            write_quoted(f, cnonce)?;
        }
        if let Some(opaque) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, opaque)?;
        }
        if let Some(qop) = self.qop {
            write!(f, ", qop={qop}")?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        Ok(())
    }
}

/// The parts of a request that enter the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestRequest<'a> {
    /// The request method as in the Request-Line (`REGISTER`, `INVITE`, ...).
    pub method: &'a str,
    /// The Request-URI, as it appears in the request line.
    pub uri: &'a str,
    /// The message body, hashed only for qop=auth-int.
    pub body: &'a [u8],
}

/// Computes the request digest of RFC 7616 §3.4.1 from an HA1 of the base
/// algorithm (`H(username:realm:password)`).
///
/// `qop` = `None` is the RFC 2069 form `H(HA1:nonce:HA2)`; `cnonce` and `nc`
/// are then ignored unless the algorithm is a session variant.
pub fn request_digest(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    cnonce: &str,
    nc: u32,
    qop: Option<Qop>,
    request: &DigestRequest<'_>,
) -> String {
    let ha1 = if algorithm.is_session() {
        algorithm.hash_hex(format!("{ha1}:{nonce}:{cnonce}").as_bytes())
    } else {
        ha1.to_owned()
    };
    let a2 = match qop {
        Some(Qop::AuthInt) => {
            format!(
                "{}:{}:{}",
                request.method,
                request.uri,
                algorithm.hash_hex(request.body)
            )
        }
        _ => format!("{}:{}", request.method, request.uri),
    };
    let ha2 = algorithm.hash_hex(a2.as_bytes());
    let kd = match qop {
        Some(q) => format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:{q}:{ha2}"),
        None => format!("{ha1}:{nonce}:{ha2}"),
    };
    algorithm.hash_hex(kd.as_bytes())
}

/// `H(username:realm:password)` for the base hash of `algorithm`, the value a
/// server may store instead of the password.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// Answers `challenge` with an explicit nonce-count (pure; see [`DigestClient`]
/// for the counting). Chooses qop=auth when offered, else auth-int, else the
/// RFC 2069 form.
pub fn respond(
    challenge: &Challenge,
    request: &DigestRequest<'_>,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<Credentials, AuthError> {
    if challenge.qop_unsupported {
        return Err(AuthError::NoSupportedQop);
    }
    let qop = if challenge.qop.contains(&Qop::Auth) {
        Some(Qop::Auth)
    } else {
        challenge.qop.first().copied()
    };
    if qop.is_none() && challenge.algorithm.is_session() {
        return Err(AuthError::SessionWithoutQop);
    }
    let secret = ha1(challenge.algorithm, username, &challenge.realm, password);
    let response = request_digest(
        challenge.algorithm,
        &secret,
        &challenge.nonce,
        cnonce,
        nc,
        qop,
        request,
    );
    Ok(Credentials {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: request.uri.to_owned(),
        response,
        algorithm: challenge.algorithm,
        cnonce: qop.map(|_| cnonce.to_owned()),
        nc: qop.map(|_| nc),
        qop,
        opaque: challenge.opaque.clone(),
    })
}

/// Client-side nonce-count state, one entry per realm (RFC 7616 §3.4: the
/// count restarts at 1 for each new nonce). Owned by the caller, e.g. one per
/// registration or per trunk.
#[derive(Debug, Clone, Default)]
pub struct DigestClient {
    counts: HashMap<String, (String, u32)>,
}

impl DigestClient {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `challenge`, counting this use of its nonce.
    pub fn authorize(
        &mut self,
        challenge: &Challenge,
        request: &DigestRequest<'_>,
        username: &str,
        password: &str,
        cnonce: &str,
    ) -> Result<Credentials, AuthError> {
        let nc = self.next_nc(&challenge.realm, &challenge.nonce);
        respond(challenge, request, username, password, cnonce, nc)
    }

    /// The nonce-count to send next for `nonce` in `realm`, and records it.
    pub fn next_nc(&mut self, realm: &str, nonce: &str) -> u32 {
        let entry = self
            .counts
            .entry(realm.to_owned())
            .or_insert_with(|| (nonce.to_owned(), 0));
        if entry.0 != nonce {
            *entry = (nonce.to_owned(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }

    /// Forgets the nonce of `realm` (after a final 401/403, say).
    pub fn forget(&mut self, realm: &str) {
        self.counts.remove(realm);
    }
}

/// Settings of a [`DigestServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestServerConfig {
    /// Realm of every challenge; credentials for another realm are rejected.
    pub realm: String,
    /// Algorithms offered, one challenge each, in preference order; must not be empty.
    pub algorithms: Vec<Algorithm>,
    /// qop values offered; empty means the RFC 2069 form (not recommended).
    pub qop: Vec<Qop>,
    /// How long a nonce stays fresh; older nonces with a correct response get `stale=true`.
    pub nonce_lifetime: Duration,
    /// Most nonces whose nonce-count is tracked for replay detection.
    pub max_tracked_nonces: usize,
}

impl DigestServerConfig {
    /// SHA-256 then MD5 challenges, qop=auth, five-minute nonces, 4096 tracked nonces.
    pub fn new(realm: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            qop: vec![Qop::Auth],
            nonce_lifetime: Duration::from_secs(300),
            max_tracked_nonces: 4096,
        }
    }
}

/// What the password lookup of [`DigestServer::verify`] returns for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// The clear-text password.
    Password(String),
    /// `H(username:realm:password)` with the base hash of the algorithm asked for.
    Ha1(String),
}

/// Outcome of checking credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// The credentials are valid; the authenticated user name.
    Ok(String),
    /// The response is right but the nonce has expired: challenge again with `stale=true`.
    Stale,
    /// The credentials are not acceptable: challenge again (or answer 403).
    Invalid(Rejection),
}

/// Why credentials were rejected (for logs; do not tell the client which).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The value does not parse.
    #[error("malformed credentials: {0}")]
    Malformed(AuthError),
    /// The realm is not this server's.
    #[error("wrong realm")]
    WrongRealm,
    /// The algorithm is not one this server offers.
    #[error("algorithm not offered")]
    AlgorithmNotOffered,
    /// The qop (or its absence) is not one this server offers.
    #[error("qop not offered")]
    QopNotOffered,
    /// The digest-uri differs from the Request-URI (RFC 3261 §22.4).
    #[error("digest uri does not match the Request-URI")]
    UriMismatch,
    /// The nonce was not issued by this server (or was altered).
    #[error("nonce not issued here")]
    UnknownNonce,
    /// The opaque value differs from the one in the challenge.
    #[error("opaque mismatch")]
    OpaqueMismatch,
    /// The lookup knows no such user.
    #[error("unknown user")]
    UnknownUser,
    /// The response digest is wrong (wrong password, or altered request).
    #[error("wrong response digest")]
    BadResponse,
    /// The nonce-count was already used with this nonce.
    #[error("replayed nonce-count")]
    ReplayedNonceCount,
    /// A failed attempt already used this nonce: each wrong guess costs a
    /// new challenge.
    #[error("nonce spent by a failed attempt")]
    SpentNonce,
}

/// Stateless digest server (RFC 7616 §3.3, §5.4): nonces carry their issue
/// time and an HMAC under the server key; a bounded table of the highest
/// nonce-count seen per nonce rejects replays while the entry is kept.
#[derive(Debug, Clone)]
pub struct DigestServer {
    config: DigestServerConfig,
    key: [u8; 32],
    seen: HashMap<String, (u64, u32)>,
    /// Nonces a failed attempt spent, with their issue time; apart from
    /// `seen` so that failures cannot evict the replay records of good
    /// clients. Bounded like `seen`.
    spent: HashMap<String, u64>,
}

const NONCE_LEN: usize = 16 + 16 + 32;

impl DigestServer {
    /// A server with `key` as HMAC secret (random, from the caller, kept across
    /// restarts if nonces should survive them).
    pub fn new(config: DigestServerConfig, key: [u8; 32]) -> Self {
        Self {
            config,
            key,
            seen: HashMap::new(),
            spent: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &DigestServerConfig {
        &self.config
    }

    /// A fresh nonce issued at `now`, with `random` as its unpredictable part.
    pub fn nonce(&self, now: Duration, random: u64) -> String {
        let issued = now.as_secs();
        let mut nonce = format!("{issued:016x}{random:016x}");
        nonce.push_str(&hex(&self.mac(issued, random)[..16]));
        nonce
    }

    /// One challenge per configured algorithm, all sharing one fresh nonce.
    /// Send each as its own `WWW-Authenticate` (401) or `Proxy-Authenticate` (407).
    pub fn challenges(&self, now: Duration, random: u64, stale: bool) -> Vec<Challenge> {
        let nonce = self.nonce(now, random);
        self.config
            .algorithms
            .iter()
            .map(|&algorithm| Challenge {
                realm: self.config.realm.clone(),
                nonce: nonce.clone(),
                opaque: None,
                stale,
                algorithm,
                qop: self.config.qop.clone(),
                qop_unsupported: false,
            })
            .collect()
    }

    /// Checks an `Authorization`/`Proxy-Authorization` value against `request`.
    /// `lookup(username, base_algorithm)` returns the user's secret.
    pub fn verify(
        &mut self,
        now: Duration,
        request: &DigestRequest<'_>,
        authorization: &str,
        lookup: impl FnOnce(&str, Algorithm) -> Option<Secret>,
    ) -> Outcome {
        match Credentials::parse(authorization) {
            Ok(credentials) => self.verify_credentials(now, request, &credentials, lookup),
            Err(e) => Outcome::Invalid(Rejection::Malformed(e)),
        }
    }

    /// As [`DigestServer::verify`], for credentials already parsed.
    pub fn verify_credentials(
        &mut self,
        now: Duration,
        request: &DigestRequest<'_>,
        credentials: &Credentials,
        lookup: impl FnOnce(&str, Algorithm) -> Option<Secret>,
    ) -> Outcome {
        let c = credentials;
        if c.realm != self.config.realm {
            return Outcome::Invalid(Rejection::WrongRealm);
        }
        if !self.config.algorithms.contains(&c.algorithm) {
            return Outcome::Invalid(Rejection::AlgorithmNotOffered);
        }
        let qop_ok = match c.qop {
            Some(q) => self.config.qop.contains(&q),
            None => self.config.qop.is_empty(),
        };
        if !qop_ok {
            return Outcome::Invalid(Rejection::QopNotOffered);
        }
        if c.uri != request.uri {
            return Outcome::Invalid(Rejection::UriMismatch);
        }
        let Some(issued) = self.check_nonce(&c.nonce) else {
            return Outcome::Invalid(Rejection::UnknownNonce);
        };
        if self.spent.contains_key(&c.nonce) {
            return Outcome::Invalid(Rejection::SpentNonce);
        }
        if c.opaque.as_deref().is_some_and(|o| !o.is_empty()) {
            // This server never issues opaque, so any echoed value is foreign.
            return Outcome::Invalid(Rejection::OpaqueMismatch);
        }
        let secret = match lookup(&c.username, c.algorithm.base()) {
            Some(Secret::Password(p)) => ha1(c.algorithm, &c.username, &c.realm, &p),
            Some(Secret::Ha1(h)) => h.to_ascii_lowercase(),
            None => {
                self.spend(now.as_secs(), &c.nonce, issued);
                return Outcome::Invalid(Rejection::UnknownUser);
            }
        };
        let cnonce = c.cnonce.as_deref().unwrap_or("");
        let nc = c.nc.unwrap_or(0);
        if c.qop.is_none() && c.algorithm.is_session() && c.cnonce.is_none() {
            return Outcome::Invalid(Rejection::Malformed(AuthError::SessionWithoutQop));
        }
        let expected = request_digest(c.algorithm, &secret, &c.nonce, cnonce, nc, c.qop, request);
        if !ct_eq(
            expected.as_bytes(),
            c.response.to_ascii_lowercase().as_bytes(),
        ) {
            self.spend(now.as_secs(), &c.nonce, issued);
            return Outcome::Invalid(Rejection::BadResponse);
        }
        let lifetime = self.config.nonce_lifetime.as_secs();
        if now.as_secs().saturating_sub(issued) > lifetime {
            self.seen.remove(&c.nonce);
            return Outcome::Stale;
        }
        if c.qop.is_some() && !self.record_nc(now.as_secs(), &c.nonce, issued, nc) {
            return Outcome::Invalid(Rejection::ReplayedNonceCount);
        }
        Outcome::Ok(c.username.clone())
    }

    /// Issue time of a nonce minted with this key, or `None`.
    fn check_nonce(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != NONCE_LEN || !nonce.is_ascii() {
            return None;
        }
        let issued = u64::from_str_radix(&nonce[..16], 16).ok()?;
        let random = u64::from_str_radix(&nonce[16..32], 16).ok()?;
        let mac = hex(&self.mac(issued, random)[..16]);
        ct_eq(mac.as_bytes(), &nonce.as_bytes()[32..]).then_some(issued)
    }

    /// Marks `nonce` spent: a wrong answer ends it, so an online guesser
    /// pays a round trip for each new challenge (and its throttle counts it).
    /// When the table is full of live nonces, a new one is not recorded:
    /// the engine's throttle of failures still counts the attempt.
    fn spend(&mut self, now: u64, nonce: &str, issued: u64) {
        let max = self.config.max_tracked_nonces;
        if self.spent.len() >= max {
            let lifetime = self.config.nonce_lifetime.as_secs();
            self.spent
                .retain(|_, issued| now.saturating_sub(*issued) <= lifetime);
        }
        if self.spent.len() < max {
            self.spent.insert(nonce.to_owned(), issued);
        }
    }

    /// Records `nc` for `nonce`; false if it is not above the highest seen.
    fn record_nc(&mut self, now: u64, nonce: &str, issued: u64, nc: u32) -> bool {
        if let Some((_, last)) = self.seen.get_mut(nonce) {
            if nc <= *last {
                return false;
            }
            *last = nc;
            return true;
        }
        if self.seen.len() >= self.config.max_tracked_nonces {
            let lifetime = self.config.nonce_lifetime.as_secs();
            self.seen
                .retain(|_, (issued, _)| now.saturating_sub(*issued) <= lifetime);
        }
        if self.seen.len() >= self.config.max_tracked_nonces {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, (issued, _))| *issued)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.seen.remove(&oldest);
            }
        }
        if self.config.max_tracked_nonces > 0 {
            self.seen.insert(nonce.to_owned(), (issued, nc));
        }
        true
    }

    fn mac(&self, issued: u64, random: u64) -> [u8; 32] {
        let mut msg = Vec::with_capacity(16 + self.config.realm.len());
        msg.extend_from_slice(&issued.to_be_bytes());
        msg.extend_from_slice(&random.to_be_bytes());
        msg.extend_from_slice(self.config.realm.as_bytes());
        hmac_sha256(&self.key, &msg)
    }
}

/// HMAC-SHA-256 (RFC 2104) for a key no longer than the 64-byte block.
fn hmac_sha256(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// Constant-time equality for equal-length inputs.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn parse_nc(value: &str) -> Result<u32, AuthError> {
    let ok = (1..=8).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| u32::from_str_radix(value, 16).ok())
        .flatten()
        .ok_or_else(|| AuthError::BadNonceCount(value.to_owned()))
}

fn write_quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    f.write_str("\"")?;
    for ch in value.chars() {
        if ch == '"' || ch == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{ch}")?;
    }
    f.write_str("\"")
}

/// The auth-params of a Digest value, names lower-cased, values unquoted.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(value: &str) -> Result<Self, AuthError> {
        let bytes = value.as_bytes();
        let lws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
        let mut i = 0;
        while i < bytes.len() && lws(bytes[i]) {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && !lws(bytes[i]) {
            i += 1;
        }
        if !value[start..i].eq_ignore_ascii_case("digest") {
            return Err(AuthError::NotDigest);
        }
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            while i < bytes.len() && (lws(bytes[i]) || bytes[i] == b',') {
                i += 1;
            }
            if i >= bytes.len() {
                break;
            }
            let name_start = i;
            while i < bytes.len() && !lws(bytes[i]) && !matches!(bytes[i], b'=' | b',' | b'"') {
                i += 1;
            }
            if i == name_start {
                return Err(AuthError::Syntax {
                    at: i,
                    expected: "parameter name",
                });
            }
            let name = value[name_start..i].to_ascii_lowercase();
            while i < bytes.len() && lws(bytes[i]) {
                i += 1;
            }
            if bytes.get(i) != Some(&b'=') {
                return Err(AuthError::Syntax {
                    at: i,
                    expected: "'='",
                });
            }
            i += 1;
            while i < bytes.len() && lws(bytes[i]) {
                i += 1;
            }
            let val = if bytes.get(i) == Some(&b'"') {
                i += 1;
                let mut out = Vec::new();
                loop {
                    match bytes.get(i) {
                        None => return Err(AuthError::UnterminatedQuote),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            let Some(&next) = bytes.get(i + 1) else {
                                return Err(AuthError::UnterminatedQuote);
                            };
                            out.push(next);
                            i += 2;
                        }
                        Some(&b) => {
                            out.push(b);
                            i += 1;
                        }
                    }
                }
                i += 1;
                String::from_utf8_lossy(&out).into_owned()
            } else {
                let v_start = i;
                while i < bytes.len() && !lws(bytes[i]) && !matches!(bytes[i], b',' | b'"') {
                    i += 1;
                }
                if i == v_start {
                    return Err(AuthError::Syntax {
                        at: i,
                        expected: "parameter value",
                    });
                }
                value[v_start..i].to_owned()
            };
            while i < bytes.len() && lws(bytes[i]) {
                i += 1;
            }
            if i < bytes.len() && bytes[i] != b',' {
                return Err(AuthError::Syntax {
                    at: i,
                    expected: "','",
                });
            }
            if params.iter().any(|(n, _)| *n == name) {
                return Err(AuthError::DuplicateParameter(name));
            }
            params.push((name, val));
        }
        Ok(Self(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &'static str) -> Result<&str, AuthError> {
        self.get(name).ok_or(AuthError::MissingParameter(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MUFASA_7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const MUFASA_7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const MUFASA_7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn get_index() -> DigestRequest<'static> {
        DigestRequest {
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        }
    }

    /// RFC 2617 §3.5 (HTTP): the challenge and credentials of the example, and the
    /// response for password "Circle Of Life" (capital O).
    #[test]
    fn rfc2617_example() {
        let challenge = Challenge::parse(
            "Digest\r\n                 realm=\"testrealm@host.com\",\r\n                 \
             qop=\"auth,auth-int\",\r\n                 \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n                 \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(challenge.realm, "testrealm@host.com");
        assert_eq!(challenge.qop, vec![Qop::Auth, Qop::AuthInt]);
        assert_eq!(challenge.algorithm, Algorithm::Md5);
        let creds = respond(
            &challenge,
            &get_index(),
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        )
        .unwrap();
        assert_eq!(creds.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(creds.qop, Some(Qop::Auth));
        assert_eq!(
            creds.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );

        let parsed = Credentials::parse(
            "Digest username=\"Mufasa\",\r\n realm=\"testrealm@host.com\",\r\n \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n uri=\"/dir/index.html\",\r\n \
             qop=auth,\r\n nc=00000001,\r\n cnonce=\"0a4f113b\",\r\n \
             response=\"6629fae49393a05397450978507c4ef1\",\r\n \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(parsed, creds);
        assert_eq!(Credentials::parse(&creds.to_string()).unwrap(), creds);
    }

    /// RFC 7616 §3.9.1: SHA-256 and MD5 responses for "Mufasa" / "Circle of Life".
    #[test]
    fn rfc7616_examples() {
        let sha = Challenge::parse(&format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
             algorithm=SHA-256, nonce=\"{MUFASA_7616_NONCE}\", opaque=\"{MUFASA_7616_OPAQUE}\""
        ))
        .unwrap();
        assert_eq!(sha.algorithm, Algorithm::Sha256);
        let creds = respond(
            &sha,
            &get_index(),
            "Mufasa",
            "Circle of Life",
            MUFASA_7616_CNONCE,
            1,
        )
        .unwrap();
        assert_eq!(
            creds.response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let rendered = creds.to_string();
        assert!(rendered.contains("algorithm=SHA-256"), "{rendered}");
        assert!(rendered.contains("nc=00000001"), "{rendered}");
        assert!(
            rendered.contains("qop=auth,") || rendered.contains("qop=auth\""),
            "{rendered}"
        );

        let md5 = Challenge {
            algorithm: Algorithm::Md5,
            ..sha
        };
        let creds = respond(
            &md5,
            &get_index(),
            "Mufasa",
            "Circle of Life",
            MUFASA_7616_CNONCE,
            1,
        )
        .unwrap();
        assert_eq!(creds.response, "8ca523f5e9506fed4657c9700eebdbec");
    }

    /// Session variants, auth-int and the RFC 2069 form, cross-checked against
    /// Python's hashlib computing RFC 7616 §3.4.
    #[test]
    fn session_auth_int_and_rfc2069_digests() {
        let invite = DigestRequest {
            method: "INVITE",
            uri: "sip:bob@tandem.example",
            body: b"v=0\r\n",
        };
        let h = ha1(Algorithm::Sha256, "alice", "tandem.example", "s3cret");
        let d = request_digest(
            Algorithm::Sha256Sess,
            &h,
            "abc123",
            "c0ffee",
            2,
            Some(Qop::AuthInt),
            &invite,
        );
        assert_eq!(
            d,
            "9a44681c9aee5dd656593ff7e44d97800fb76a89371ec7053c7924affa05bfe9"
        );

        let register = DigestRequest {
            method: "REGISTER",
            uri: "sip:tandem.example",
            body: b"",
        };
        let h = ha1(Algorithm::Md5, "alice", "tandem.example", "s3cret");
        let d = request_digest(
            Algorithm::Md5Sess,
            &h,
            "abc123",
            "c0ffee",
            1,
            Some(Qop::Auth),
            &register,
        );
        assert_eq!(d, "731a683f352852a662d9a1167e81bc49");

        let challenge =
            Challenge::parse(r#"Digest realm="tandem.example", nonce="abc123""#).unwrap();
        let creds = respond(&challenge, &register, "alice", "s3cret", "ignored", 7).unwrap();
        assert_eq!(creds.response, "9208ed8859d898e80a736ec243abeb3e");
        assert_eq!(
            (creds.qop, creds.nc, creds.cnonce.as_deref()),
            (None, None, None)
        );
        let rendered = creds.to_string();
        assert!(
            !rendered.contains("nc=") && !rendered.contains("cnonce"),
            "{rendered}"
        );
    }

    #[test]
    fn parsing_tolerates_case_spacing_and_quoting() {
        let c = Challenge::parse(
            "  dIgEsT   REALM = \"a \\\"quoted\\\" realm\" ,NONCE=abc,algorithm = sha-256-SESS ,\
             QOP=\"AUTH-INT , bogus\",Stale=TRUE,,  domain=\"sip:x\"",
        )
        .unwrap();
        assert_eq!(c.realm, "a \"quoted\" realm");
        assert_eq!(c.nonce, "abc");
        assert_eq!(c.algorithm, Algorithm::Sha256Sess);
        assert_eq!(c.qop, vec![Qop::AuthInt]);
        assert!(c.stale);
        // Rendering quotes again and parses back to the same value.
        assert_eq!(Challenge::parse(&c.to_string()).unwrap(), c);
        let c = Challenge::parse("Digest realm=r, nonce=n, qop=\"auth-conf\"").unwrap();
        assert!(c.qop_unsupported);
        let err = respond(&c, &get_index(), "u", "p", "c", 1).unwrap_err();
        assert_eq!(err, AuthError::NoSupportedQop);
    }

    /// Malformed values give typed errors and never panic.
    #[test]
    fn malformed_values_are_typed_errors() {
        let cases: &[(&str, AuthError)] = &[
            ("", AuthError::NotDigest),
            ("Basic dXNlcjpwYXNz", AuthError::NotDigest),
            ("Digest", AuthError::MissingParameter("realm")),
            ("Digest realm=\"r\"", AuthError::MissingParameter("nonce")),
            ("Digest realm=\"r", AuthError::UnterminatedQuote),
            ("Digest realm=\"r\\", AuthError::UnterminatedQuote),
            (
                "Digest realm",
                AuthError::Syntax {
                    at: 12,
                    expected: "'='",
                },
            ),
            (
                "Digest realm=",
                AuthError::Syntax {
                    at: 13,
                    expected: "parameter value",
                },
            ),
            (
                "Digest =x",
                AuthError::Syntax {
                    at: 7,
                    expected: "parameter name",
                },
            ),
            (
                "Digest realm=\"a\"b, nonce=n",
                AuthError::Syntax {
                    at: 16,
                    expected: "','",
                },
            ),
            (
                "Digest realm=a, realm=b, nonce=n",
                AuthError::DuplicateParameter("realm".into()),
            ),
            (
                "Digest realm=a, nonce=n, algorithm=SHA-512-256",
                AuthError::UnsupportedAlgorithm("SHA-512-256".into()),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(Challenge::parse(value).as_ref(), Err(expected), "{value:?}");
        }
        let base =
            "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"00\"";
        assert!(Credentials::parse(base).is_ok());
        for (extra, expected) in [
            (
                ", qop=auth, nc=00000001",
                AuthError::MissingParameter("cnonce"),
            ),
            (", qop=auth, cnonce=c", AuthError::MissingParameter("nc")),
            (
                ", qop=auth, cnonce=c, nc=123456789",
                AuthError::BadNonceCount("123456789".into()),
            ),
            (
                ", qop=auth, cnonce=c, nc=0000000g",
                AuthError::BadNonceCount("0000000g".into()),
            ),
            (
                ", qop=auth-conf, cnonce=c, nc=1",
                AuthError::UnsupportedQop("auth-conf".into()),
            ),
        ] {
            assert_eq!(
                Credentials::parse(&format!("{base}{extra}")),
                Err(expected),
                "{extra}"
            );
        }
        // Every prefix of valid values (including ones cut inside a multi-byte
        // character) and some noise: errors or values, never a panic.
        let samples = [
            format!("{base}, qop=auth, cnonce=\"é\\\"x\", nc=0000000a, opaque=\"ü\""),
            "Digest realm=\"ré\\alm\", nonce=\"n\", qop=\"auth,auth-int\", stale=false".to_owned(),
        ];
        for sample in &samples {
            for end in 0..=sample.len() {
                if let Some(prefix) = sample.get(..end) {
                    let _ = Challenge::parse(prefix);
                    let _ = Credentials::parse(prefix);
                }
            }
        }
        for noise in [
            "Digest ,,,,",
            "Digest \"\"",
            "Digest a=\"\\\"",
            "Digest\t\r\n",
            "digest a=b=c",
        ] {
            let _ = Challenge::parse(noise);
            let _ = Credentials::parse(noise);
        }
    }

    #[test]
    fn client_counts_per_realm_and_restarts_on_new_nonce() {
        let mut client = DigestClient::new();
        assert_eq!(client.next_nc("a", "n1"), 1);
        assert_eq!(client.next_nc("a", "n1"), 2);
        assert_eq!(client.next_nc("b", "m1"), 1);
        assert_eq!(client.next_nc("a", "n2"), 1);
        client.forget("a");
        assert_eq!(client.next_nc("a", "n2"), 1);
    }

    fn server() -> DigestServer {
        DigestServer::new(DigestServerConfig::new("tandem.example"), [7; 32])
    }

    fn lookup(user: &str, _: Algorithm) -> Option<Secret> {
        (user == "alice").then(|| Secret::Password("s3cret".into()))
    }

    const REGISTER: DigestRequest<'static> = DigestRequest {
        method: "REGISTER",
        uri: "sip:tandem.example",
        body: b"",
    };

    /// A SIP REGISTER round trip: 401 challenges, client answer, server verdict,
    /// for both offered algorithms and across header rendering and parsing.
    #[test]
    fn sip_round_trip_client_to_server() {
        let mut srv = server();
        let now = Duration::from_secs(1_700_000_000);
        let challenges = srv.challenges(now, 0x1234_5678_9abc_def0, false);
        assert_eq!(challenges.len(), 2);
        let mut client = DigestClient::new();
        for (i, challenge) in challenges.iter().enumerate() {
            let header = challenge.to_string();
            let parsed = Challenge::parse(&header).unwrap();
            let creds = client
                .authorize(&parsed, &REGISTER, "alice", "s3cret", "0a4f113b")
                .unwrap();
            assert_eq!(creds.nc, Some(u32::try_from(i).unwrap() + 1));
            let outcome = srv.verify(
                now + Duration::from_secs(10),
                &REGISTER,
                &creds.to_string(),
                lookup,
            );
            assert_eq!(outcome, Outcome::Ok("alice".into()), "{header}");
        }
        // A precomputed HA1 works as well as the password.
        let challenge = &challenges[0];
        let creds = respond(challenge, &REGISTER, "alice", "s3cret", "c", 9).unwrap();
        let stored = ha1(Algorithm::Sha256, "alice", "tandem.example", "s3cret");
        let outcome = srv.verify_credentials(now, &REGISTER, &creds, |_, base| {
            assert_eq!(base, Algorithm::Sha256);
            Some(Secret::Ha1(stored.to_ascii_uppercase()))
        });
        assert_eq!(outcome, Outcome::Ok("alice".into()));
    }

    #[test]
    fn a_wrong_answer_spends_the_nonce() {
        let mut srv = server();
        let now = Duration::from_secs(1_000);
        let challenge = &srv.challenges(now, 42, false)[0];
        let wrong = respond(challenge, &REGISTER, "alice", "guess1", "c", 1).unwrap();
        assert_eq!(
            srv.verify_credentials(now, &REGISTER, &wrong, lookup),
            Outcome::Invalid(Rejection::BadResponse)
        );
        // The next guess on the same nonce is not even checked, right or wrong.
        for (password, nc) in [("guess2", 2), ("s3cret", 3)] {
            let c = respond(challenge, &REGISTER, "alice", password, "c", nc).unwrap();
            assert_eq!(
                srv.verify_credentials(now, &REGISTER, &c, lookup),
                Outcome::Invalid(Rejection::SpentNonce),
                "{password}"
            );
        }
        // An unknown user spends its nonce too (no free probing of names).
        let challenge = &srv.challenges(now, 43, false)[0];
        let probe = respond(challenge, &REGISTER, "mallory", "x", "c", 1).unwrap();
        assert_eq!(
            srv.verify_credentials(now, &REGISTER, &probe, lookup),
            Outcome::Invalid(Rejection::UnknownUser)
        );
        let c = respond(challenge, &REGISTER, "alice", "s3cret", "c", 2).unwrap();
        assert_eq!(
            srv.verify_credentials(now, &REGISTER, &c, lookup),
            Outcome::Invalid(Rejection::SpentNonce)
        );
        // A fresh challenge works.
        let challenge = &srv.challenges(now, 44, false)[0];
        let c = respond(challenge, &REGISTER, "alice", "s3cret", "c", 1).unwrap();
        assert_eq!(
            srv.verify_credentials(now, &REGISTER, &c, lookup),
            Outcome::Ok("alice".into())
        );
    }

    #[test]
    fn stale_nonce_asks_for_a_retry() {
        let mut srv = server();
        let issued = Duration::from_secs(1_000);
        let challenge = &srv.challenges(issued, 42, false)[0];
        let creds = respond(challenge, &REGISTER, "alice", "s3cret", "c", 1).unwrap();
        let late = issued + Duration::from_secs(301);
        assert_eq!(
            srv.verify_credentials(late, &REGISTER, &creds, lookup),
            Outcome::Stale
        );
        // Stale is only said for a correct response.
        let wrong = respond(challenge, &REGISTER, "alice", "guess", "c", 2).unwrap();
        assert_eq!(
            srv.verify_credentials(late, &REGISTER, &wrong, lookup),
            Outcome::Invalid(Rejection::BadResponse)
        );
        let fresh = srv.challenges(late, 43, true);
        assert!(fresh[0].stale && fresh[0].to_string().contains("stale=true"));
    }

    #[test]
    fn rejections() {
        let mut srv = server();
        let now = Duration::from_secs(5_000);
        let challenge = srv.challenges(now, 1, false).remove(0);
        let ok = respond(&challenge, &REGISTER, "alice", "s3cret", "c", 1).unwrap();
        let check = |srv: &mut DigestServer, creds: &Credentials, request: &DigestRequest<'_>| {
            srv.verify_credentials(now, request, creds, lookup)
        };
        let wrong_password = respond(&challenge, &REGISTER, "alice", "secret", "c", 1).unwrap();
        assert_eq!(
            check(&mut srv, &wrong_password, &REGISTER),
            Outcome::Invalid(Rejection::BadResponse)
        );
        // That spent the nonce; a server without the memory of it goes on.
        let mut srv = server();
        let other_realm = Challenge {
            realm: "evil.example".into(),
            ..challenge.clone()
        };
        let creds = respond(&other_realm, &REGISTER, "alice", "s3cret", "c", 1).unwrap();
        assert_eq!(
            check(&mut srv, &creds, &REGISTER),
            Outcome::Invalid(Rejection::WrongRealm)
        );
        let elsewhere = DigestRequest {
            uri: "sip:other.example",
            ..REGISTER
        };
        assert_eq!(
            check(&mut srv, &ok, &elsewhere),
            Outcome::Invalid(Rejection::UriMismatch)
        );
        let forged = Challenge {
            nonce: format!("{}0", &challenge.nonce[..63]),
            ..challenge.clone()
        };
        let creds = respond(&forged, &REGISTER, "alice", "s3cret", "c", 1).unwrap();
        assert_eq!(
            check(&mut srv, &creds, &REGISTER),
            Outcome::Invalid(Rejection::UnknownNonce)
        );
        let bob = respond(&challenge, &REGISTER, "bob", "s3cret", "c", 1).unwrap();
        assert_eq!(
            check(&mut srv, &bob, &REGISTER),
            Outcome::Invalid(Rejection::UnknownUser)
        );
        let mut srv = server();
        let sess = Challenge {
            algorithm: Algorithm::Md5Sess,
            ..challenge.clone()
        };
        let creds = respond(&sess, &REGISTER, "alice", "s3cret", "c", 1).unwrap();
        assert_eq!(
            check(&mut srv, &creds, &REGISTER),
            Outcome::Invalid(Rejection::AlgorithmNotOffered)
        );
        let int = Challenge {
            qop: vec![Qop::AuthInt],
            ..challenge.clone()
        };
        let creds = respond(&int, &REGISTER, "alice", "s3cret", "c", 1).unwrap();
        assert_eq!(
            check(&mut srv, &creds, &REGISTER),
            Outcome::Invalid(Rejection::QopNotOffered)
        );
        // The request tampered with after signing: another method.
        let invite = DigestRequest {
            method: "INVITE",
            ..REGISTER
        };
        assert_eq!(
            check(&mut srv, &ok, &invite),
            Outcome::Invalid(Rejection::BadResponse)
        );
        assert!(matches!(
            srv.verify(now, &REGISTER, "Digest username=\"alice\"", lookup),
            Outcome::Invalid(Rejection::Malformed(AuthError::MissingParameter(_)))
        ));

        // Replay: the same nonce-count twice, or a lower one, is refused.
        let mut srv = server();
        assert_eq!(check(&mut srv, &ok, &REGISTER), Outcome::Ok("alice".into()));
        assert_eq!(
            check(&mut srv, &ok, &REGISTER),
            Outcome::Invalid(Rejection::ReplayedNonceCount)
        );
        let next = respond(&challenge, &REGISTER, "alice", "s3cret", "c", 3).unwrap();
        assert_eq!(
            check(&mut srv, &next, &REGISTER),
            Outcome::Ok("alice".into())
        );
        let back = respond(&challenge, &REGISTER, "alice", "s3cret", "c", 2).unwrap();
        assert_eq!(
            check(&mut srv, &back, &REGISTER),
            Outcome::Invalid(Rejection::ReplayedNonceCount)
        );
    }

    #[test]
    fn nonce_table_stays_bounded() {
        let config = DigestServerConfig {
            max_tracked_nonces: 3,
            ..DigestServerConfig::new("tandem.example")
        };
        let mut srv = DigestServer::new(config, [1; 32]);
        for i in 0..10u64 {
            let now = Duration::from_secs(100 + i);
            let challenge = srv.challenges(now, i, false).remove(0);
            let creds = respond(&challenge, &REGISTER, "alice", "s3cret", "c", 1).unwrap();
            assert_eq!(
                srv.verify_credentials(now, &REGISTER, &creds, lookup),
                Outcome::Ok("alice".into())
            );
            assert!(srv.seen.len() <= 3);
        }
    }
}
