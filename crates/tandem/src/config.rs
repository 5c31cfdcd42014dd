//! Tandem's configuration (design §7): one TOML file read into a serde tree
//! with `deny_unknown_fields` everywhere, validated once, and handed on as
//! the plain types below. Every error names the key's full dotted path.
//!
//! The schema, defaults and rules are documented key by key in
//! `docs/configuration.md`.

mod cidr;
mod error;
mod raw;
mod uri;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

pub use cidr::{Cidr, CidrParseError};
pub use error::{ConfigError, Issue};
pub use uri::{ProxyTransport, SipProxy};
pub use url::Url;

/// The default config, `configs/tandem.toml`, as it was when the binary was built.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../configs/tandem.toml");

/// Where the default config lives, relative to the current directory.
pub const DEFAULT_PATH: &str = "configs/tandem.toml";

/// The repository's `configs/` folder at build time: where the embedded
/// default's relative paths resolve when the current directory lacks them.
const BUILD_CONFIGS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs");

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from.
    pub source: ConfigSource,
    /// `[sip]`: signalling listeners and timers.
    pub sip: SipConfig,
    /// `[rtp]`: media ports.
    pub rtp: RtpConfig,
    /// `[http]`: Tandem's own HTTP listener and webhook client.
    pub http: HttpConfig,
    /// `[account]`: the account Tandem presents to applications.
    pub account: AccountConfig,
    /// `[recording]`: where recordings are written.
    pub recording: RecordingConfig,
    /// `[speech]`: the recogniser for `<Gather input="speech">`.
    pub speech: SpeechConfig,
    /// `[database]`: the call history.
    pub database: DatabaseConfig,
    /// `[[trunk]]`s, in file order.
    pub trunks: Vec<TrunkConfig>,
    /// `[[number]]`s (inbound DIDs), in file order.
    pub numbers: Vec<NumberConfig>,
    /// `[[client]]`s (registrar identities), in file order.
    pub clients: Vec<ClientConfig>,
    /// `[debug]`: aids for field reports.
    pub debug: DebugConfig,
    /// `[limits]`: admission control and throttles.
    pub limits: LimitsConfig,
}

/// `[limits]`: what Tandem admits (`None` is no limit): the engine's own type.
pub use tandem_engine::Limits as LimitsConfig;

/// `[debug]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DebugConfig {
    /// Folder each call's event log is written to when the call ends
    /// (absolute); `None`: no logs.
    pub call_logs: Option<PathBuf>,
}

/// Where a config was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file on disk.
    File(PathBuf),
    /// The copy of `configs/tandem.toml` embedded at build time.
    Embedded,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Embedded => write!(f, "embedded {DEFAULT_PATH}"),
        }
    }
}

/// `[sip]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipConfig {
    /// UDP listen addresses.
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS listen addresses.
    pub tls: Vec<SocketAddr>,
    /// The TLS listener's certificate chain and private key (checked to
    /// make a rustls configuration); `Some` when `tls` lists an address.
    pub tls_identity: Option<TlsIdentity>,
    /// More trust anchors for TLS connections Tandem opens (a private CA),
    /// beside Mozilla's roots.
    pub tls_ca: Option<Pem>,
    /// DNS servers for locating trunks and `<Sip>` hosts (RFC 3263); empty:
    /// the system's.
    pub dns_servers: Vec<SocketAddr>,
    /// Algorithms of the registrar's digest challenges, in order.
    pub digest_algorithms: Vec<tandem_sip::auth::Algorithm>,
    /// Address written into Via/Contact/SDP; `None` means the listen address.
    pub external_address: Option<IpAddr>,
    /// RFC 3261 T1 (RTT estimate).
    pub t1: Duration,
    /// RFC 3261 T2 (maximum retransmit interval).
    pub t2: Duration,
    /// RFC 3261 T4 (maximum time a message stays in the network).
    pub t4: Duration,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
    /// Live TCP connections beyond which an accepted one is closed at once.
    pub tcp_max_connections: usize,
    /// Live TCP connections from one IP address beyond which another is closed at once.
    pub tcp_max_per_source: usize,
    /// Time a TCP connection has to complete a message once it started it.
    pub tcp_header_timeout: Duration,
    /// Time a TCP write has to finish before the connection is closed.
    pub tcp_write_timeout: Duration,
    /// Session timers (RFC 4028): the interval Tandem asks for and its
    /// Min-SE; `None` when `session_expires_s = 0`.
    pub session_timers: Option<tandem_sip::session_timer::Policy>,
}

/// A PEM file's path and text; its Debug shows the path only (a private
/// key's text never reaches a log).
#[derive(Clone, PartialEq, Eq)]
pub struct Pem {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its contents.
    pub text: Vec<u8>,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pem({})", self.path.display())
    }
}

/// `sip.tls_certificate` and `sip.tls_private_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    /// The certificate chain, leaf first.
    pub certificate: Pem,
    /// The leaf's private key.
    pub private_key: Pem,
}

/// `[rtp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpConfig {
    /// Bind address of the RTP sockets.
    pub address: IpAddr,
    /// First port (even, inclusive).
    pub port_min: u16,
    /// Last port (inclusive).
    pub port_max: u16,
    /// Symmetric RTP: send to where the peer's packets come from.
    pub latching: bool,
    /// Hang up a call whose media has been silent this long; `None` disables.
    pub media_timeout: Option<Duration>,
    /// Offer SDES-SRTP on the legs Tandem opens over TLS.
    pub srtp_over_tls: bool,
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Tandem's own HTTP listener (RecordingUrl, /healthz, /metrics).
    pub listen: SocketAddr,
    /// How applications reach that listener (base of RecordingUrl).
    pub public_url: Url,
    /// Timeout of each webhook request.
    pub webhook_timeout: Duration,
    /// Recording media (`RecordingUrl`) requires HTTP Basic auth too.
    pub media_auth: bool,
}

/// `[account]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    /// `AC` + 32 hex digits, sent as AccountSid.
    pub sid: String,
    /// Key of the X-Twilio-Signature HMAC.
    pub auth_token: Secret,
}

/// `[recording]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingConfig {
    /// Folder recordings are written to (absolute).
    pub directory: PathBuf,
    /// `<Record transcribe>`: the program (and arguments) that prints a
    /// recording's text; the WAV's path is appended.
    pub transcribe_command: Option<Vec<String>>,
}

/// `[database]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The SQLite file (absolute); default `tandem.db` beside the config.
    pub path: PathBuf,
    /// History older than this is deleted; `None` (`retention_days = 0`)
    /// keeps it for ever. Default 30 days.
    pub retention: Option<std::time::Duration>,
}

/// `[speech]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpeechConfig {
    /// The program (and arguments) that prints the text of a speech
    /// `<Gather>`'s utterance; the WAV's path is appended and the Gather's
    /// options are in its environment (docs/speech.md).
    pub command: Option<Vec<String>>,
}

/// One `[[trunk]]`: a SIP peer that carries `<Number>` calls and may send calls in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// Unique name (what `byoc` refers to).
    pub name: String,
    /// Where outbound calls for this trunk go.
    pub proxy: SipProxy,
    /// Digest credentials for 401/407 challenges (and REGISTER).
    pub credentials: Option<Credentials>,
    /// Whether to REGISTER with the proxy and keep the binding fresh.
    pub register: bool,
    /// Expires asked for in REGISTER.
    pub register_expires: Duration,
    /// OPTIONS keep-alives to the proxy this often (`None`: none).
    pub options_interval: Option<Duration>,
    /// E.164 prefixes carried (`""` is the default route); longest prefix wins.
    pub prefixes: Vec<String>,
    /// Addresses allowed to send INVITEs from this trunk.
    pub sources: Vec<Cidr>,
}

impl TrunkConfig {
    /// Whether `addr` is one of this trunk's allowed sources.
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.sources.iter().any(|c| c.contains(addr))
    }
}

/// A username and password for digest authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Digest username.
    pub username: String,
    /// Digest password.
    pub password: Secret,
}

/// One `[[number]]`: an inbound DID and what answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberConfig {
    /// The number as written (`+15550001000` or `5550001000`).
    pub number: String,
    /// Where its TwiML comes from.
    pub handler: NumberHandler,
}

impl NumberConfig {
    /// Whether a Request-URI user part dials this number (compared without a leading `+`).
    pub fn matches(&self, user: &str) -> bool {
        user.strip_prefix('+').unwrap_or(user)
            == self.number.strip_prefix('+').unwrap_or(&self.number)
    }
}

/// Where a number's TwiML comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberHandler {
    /// A local TwiML file (absolute path; it existed at load time).
    Twiml(PathBuf),
    /// An application's webhook.
    Webhook(VoiceWebhook),
}

/// A number's `voice_url` and its fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceWebhook {
    /// Requested when a call arrives.
    pub voice_url: Url,
    /// Method for `voice_url`.
    pub voice_method: Method,
    /// Requested when `voice_url` fails.
    pub fallback_url: Option<Url>,
    /// Method for `fallback_url`.
    pub fallback_method: Method,
}

/// A webhook method (`GET` or `POST`), the vocabulary every crate shares.
pub use tandem_webhook::Method;

/// One `[[client]]`: an identity that may REGISTER and be dialled with `<Client>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The identity (SIP user part of its registrations).
    pub identity: String,
    /// Its digest password.
    pub password: Secret,
    /// May call with any `From` user; otherwise the `From` user of its
    /// INVITEs must be its identity (no caller-ID spoofing).
    pub any_from: bool,
}

/// A secret string; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Secrets shorter than this draw a warning at start.
const MIN_SECRET_LEN: usize = 12;

impl Config {
    /// The config keys whose secret is the shipped example (`change-me`) or
    /// shorter than 12 characters: guessable, so `run` warns about each at
    /// start (the digest passwords guard calls that cost money).
    pub fn weak_secrets(&self) -> Vec<String> {
        let weak =
            |s: &Secret| s.expose() == "change-me" || s.expose().chars().count() < MIN_SECRET_LEN;
        let mut keys = Vec::new();
        if weak(&self.account.auth_token) {
            keys.push("account.auth_token".to_owned());
        }
        for c in &self.clients {
            if weak(&c.password) {
                keys.push(format!("client {:?} password", c.identity));
            }
        }
        for t in &self.trunks {
            if let Some(c) = &t.credentials
                && weak(&c.password)
            {
                keys.push(format!("trunk {:?} password", t.name));
            }
        }
        keys
    }
}

impl Config {
    /// Loads `--config FILE`; relative paths inside resolve against the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = ConfigSource::File(path.to_owned());
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            origin: source.to_string(),
            source: e,
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        Self::parse(&text, source, &[absolute(dir)])
    }

    /// Loads the embedded default. Its relative paths resolve as if it were
    /// `./configs/tandem.toml`, falling back to the source tree it was built from.
    pub fn embedded() -> Result<Self, ConfigError> {
        let bases = [
            absolute(Path::new("configs")),
            normalize(Path::new(BUILD_CONFIGS_DIR)),
        ];
        Self::parse(EMBEDDED_DEFAULT, ConfigSource::Embedded, &bases)
    }

    /// Loads `./configs/tandem.toml` if it exists, else the embedded default.
    pub fn load_default() -> Result<Self, ConfigError> {
        let path = Path::new(DEFAULT_PATH);
        if path.is_file() {
            Self::load(path)
        } else {
            Self::embedded()
        }
    }

    /// Parses and validates TOML text. Relative paths resolve against the first
    /// of `bases` (a file that exists only under a later base is found there).
    pub fn parse(text: &str, source: ConfigSource, bases: &[PathBuf]) -> Result<Self, ConfigError> {
        let origin = source.to_string();
        let de = toml::Deserializer::new(text);
        let raw: raw::RawConfig =
            serde_path_to_error::deserialize(de).map_err(|e| error::from_toml(&origin, text, e))?;
        validate::validate(raw, source, bases)
            .map_err(|issues| ConfigError::Invalid { origin, issues })
    }

    /// One line saying what this config runs.
    pub fn summary(&self) -> String {
        let list = |v: &[SocketAddr]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            }
        };
        let n = |count: usize, what: &str| {
            format!("{count} {what}{}", if count == 1 { "" } else { "s" })
        };
        format!(
            "{}: OK: sip udp {} tcp {}, rtp {}:{}-{}, http {}, {}, {}, {}",
            self.source,
            list(&self.sip.udp),
            list(&self.sip.tcp),
            self.rtp.address,
            self.rtp.port_min,
            self.rtp.port_max,
            self.http.listen,
            n(self.trunks.len(), "trunk"),
            n(self.numbers.len(), "number"),
            n(self.clients.len(), "client"),
        )
    }
}

/// `path` made absolute against the current directory, `..` folded lexically.
fn absolute(path: &Path) -> PathBuf {
    normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_owned()))
}

/// Folds `.` and `..` components without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}
