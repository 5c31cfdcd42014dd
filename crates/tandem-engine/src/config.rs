//! The engine's plain configuration, built and validated by the binary from
//! the TOML file (design §7); nothing here reads files or the environment.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the engine needs to run calls.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// AccountSid sent in every webhook.
    pub account_sid: String,
    /// Auth token signing `X-Twilio-Signature`.
    pub auth_token: String,
    /// Host (and port) written into Contact and Via, e.g. `192.0.2.1:5080`.
    pub sip_host: String,
    /// The digest algorithms the registrar challenges `<Client>`s with, one
    /// challenge each, in this order (`[]`: MD5).
    pub digest_algorithms: Vec<tandem_sip::auth::Algorithm>,
    /// DNS servers for RFC 3263 lookups (`[]`: the system's resolv.conf).
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// Host and port of the TLS listener, written into the Via and Contact
    /// of legs over TLS (`None`: no TLS listener; `sip_host` is used).
    pub tls_host: Option<String>,
    /// Base URL applications reach Tandem's HTTP listener at.
    pub public_url: String,
    /// Trunks: where `<Number>` goes and who may send calls.
    pub trunks: Vec<Trunk>,
    /// Inbound numbers.
    pub numbers: Vec<NumberRoute>,
    /// Registrar identities (`<Client>`).
    pub clients: Vec<Client>,
    /// Admission control and throttles.
    pub limits: crate::admission::Limits,
    /// Recording directory.
    pub recording_dir: PathBuf,
    /// `<Record transcribe>`: the program and arguments that print a
    /// recording's text (the WAV's path appended); `None`: transcriptions fail.
    pub transcribe_command: Option<Vec<String>>,
    /// `<Gather input="speech">`: the program and arguments that print the
    /// text of an utterance (the WAV's path appended, the Gather's options
    /// in the environment; docs/speech.md); `None`: nothing is recognised.
    pub speech_command: Option<Vec<String>>,
    /// Webhook TwiML fetch timeout.
    pub webhook_timeout: Duration,
    /// Recording media (`RecordingUrl`) requires HTTP Basic auth
    /// (AccountSid and auth token), like Twilio's "enforce HTTP auth on
    /// media URLs"; off: the URL (128 random bits) is the secret.
    pub media_auth: bool,
    /// Media anchoring; `None` runs signalling only (SDP passed through).
    pub media: Option<MediaConfig>,
    /// `[debug] call_logs`: each call's event log is written here when it
    /// ends (`tandem_engine::replay` replays it).
    pub call_log_dir: Option<PathBuf>,
    /// `[database] path`: the call history (SQLite); `None` keeps none.
    pub database: Option<PathBuf>,
    /// `[database] retention_days`: history older than this is deleted
    /// (`None`: kept for ever).
    pub retention: Option<Duration>,
    /// `[sip] session_expires_s`/`min_se_s`: session timers (RFC 4028) on
    /// every leg; `None` (`session_expires_s = 0`) does without them.
    pub session_timers: Option<tandem_sip::session_timer::Policy>,
}

/// A `<Client>` identity that may REGISTER and call in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its identity (digest username, From user).
    pub identity: String,
    /// Its digest password.
    pub password: String,
    /// May call with any `From` user (else only its identity).
    pub any_from: bool,
}

/// RTP settings.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Bind address of the RTP pool.
    pub address: IpAddr,
    /// Address written into SDP (the external address).
    pub sdp_address: IpAddr,
    /// First port (even).
    pub port_min: u16,
    /// Last port.
    pub port_max: u16,
    /// Symmetric latching.
    pub latching: bool,
    /// Media timeout (None disables).
    pub media_timeout: Option<Duration>,
    /// Offer SDES-SRTP on the legs Tandem opens over TLS (SRTP offers from
    /// peers are answered whatever this says).
    pub srtp_over_tls: bool,
}

/// A SIP trunk.
#[derive(Debug, Clone)]
pub struct Trunk {
    /// Name (`byoc` refers to it).
    pub name: String,
    /// Proxy URI (`sip:host:port`).
    pub proxy: String,
    /// Digest user name for 401/407.
    pub username: Option<String>,
    /// Digest password.
    pub password: Option<String>,
    /// E.164 prefixes this trunk carries ("" = any).
    pub prefixes: Vec<String>,
    /// Networks allowed to send calls (address, prefix length).
    pub sources: Vec<(IpAddr, u8)>,
    /// Keep a registration with the proxy, asking for this expiry.
    pub register: Option<Duration>,
    /// Send the proxy an OPTIONS this often and track whether it answers.
    pub options_interval: Option<Duration>,
}

impl Trunk {
    /// Whether `ip` may send INVITEs through this trunk.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.sources
            .iter()
            .any(|&(net, len)| cidr_contains(net, len, ip))
    }
}

/// Whether `ip` lies in `net/len`.
pub fn cidr_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V4(i)) => n.to_ipv4_mapped() == Some(i) && len >= 96,
        (IpAddr::V4(n), IpAddr::V6(i)) => i
            .to_ipv4_mapped()
            .is_some_and(|i| cidr_contains(IpAddr::V4(n), len, IpAddr::V4(i))),
    }
}

/// An inbound number and where its TwiML comes from.
#[derive(Debug, Clone)]
pub struct NumberRoute {
    /// E.164 or digits, matched against the Request-URI user part.
    pub number: String,
    /// The document source.
    pub source: TwimlSource,
}

/// Where a call's first document comes from.
#[derive(Debug, Clone)]
pub enum TwimlSource {
    /// A local file.
    File(PathBuf),
    /// A web application.
    Url {
        /// voice URL.
        url: String,
        /// POST or GET.
        method: tandem_webhook::Method,
        /// Fallback URL and method.
        fallback: Option<(String, tandem_webhook::Method)>,
    },
}

impl EngineConfig {
    /// The host and port peers reach Tandem at over `transport` (Via
    /// sent-by, Contact).
    pub fn host(&self, transport: tandem_transport::Transport) -> &str {
        match (&self.tls_host, transport) {
            (Some(tls), tandem_transport::Transport::Tls) => tls,
            _ => &self.sip_host,
        }
    }

    /// Tandem's Contact for a dialog over `transport`: the transport named
    /// (RFC 3261 §19.1.4) unless it is UDP, so a peer's in-dialog requests
    /// come back the way the dialog was made.
    pub fn contact(&self, transport: tandem_transport::Transport) -> String {
        match transport.uri_param() {
            None => format!("<sip:tandem@{}>", self.sip_host),
            Some(t) => format!("<sip:tandem@{};transport={t}>", self.host(transport)),
        }
    }

    /// The number route for a dialed user part (tried as is, with and without `+`).
    pub fn number(&self, user: &str) -> Option<&NumberRoute> {
        let bare = user.trim_start_matches('+');
        self.numbers
            .iter()
            .find(|n| n.number == user || n.number.trim_start_matches('+') == bare)
    }

    /// The trunk for an E.164 number: `byoc` by name, else the longest prefix.
    pub fn trunk_for(&self, number: &str, byoc: Option<&str>) -> Option<&Trunk> {
        if let Some(name) = byoc {
            return self.trunks.iter().find(|t| t.name == name);
        }
        let bare = number.trim_start_matches('+');
        self.trunks
            .iter()
            .filter_map(|t| {
                t.prefixes
                    .iter()
                    .filter(|p| {
                        number.starts_with(p.as_str())
                            || bare.starts_with(p.trim_start_matches('+'))
                    })
                    .map(|p| p.len())
                    .max()
                    .map(|len| (len, t))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, t)| t)
    }

    /// The trunk an inbound source address belongs to.
    pub fn source_trunk(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.allows(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(name: &str, prefixes: &[&str]) -> Trunk {
        Trunk {
            name: name.into(),
            proxy: "sip:127.0.0.1:5090".into(),
            username: None,
            password: None,
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
            sources: vec![("192.0.2.0".parse().unwrap(), 24)],
            register: None,
            options_interval: None,
        }
    }

    fn cfg() -> EngineConfig {
        EngineConfig {
            account_sid: "AC".into(),
            auth_token: "t".into(),
            sip_host: "127.0.0.1:5080".into(),
            tls_host: None,
            dns_servers: Vec::new(),
            digest_algorithms: Vec::new(),
            public_url: "http://127.0.0.1:8089".into(),
            trunks: vec![
                trunk("any", &[""]),
                trunk("us", &["+1"]),
                trunk("nyc", &["+1212"]),
            ],
            numbers: vec![NumberRoute {
                number: "+15550001000".into(),
                source: TwimlSource::File("x.xml".into()),
            }],
            clients: vec![],
            limits: Default::default(),
            recording_dir: "rec".into(),
            transcribe_command: None,
            speech_command: None,
            call_log_dir: None,
            database: None,
            retention: None,
            webhook_timeout: Duration::from_secs(5),
            media_auth: false,
            media: None,
            session_timers: None,
        }
    }

    #[test]
    fn longest_prefix_wins_and_byoc_names_a_trunk() {
        let c = cfg();
        assert_eq!(c.trunk_for("+12125550000", None).unwrap().name, "nyc");
        assert_eq!(c.trunk_for("+13105550000", None).unwrap().name, "us");
        assert_eq!(c.trunk_for("+442071234567", None).unwrap().name, "any");
        assert_eq!(
            c.trunk_for("+12125550000", Some("any")).unwrap().name,
            "any"
        );
        assert!(c.trunk_for("+1", Some("missing")).is_none());
    }

    #[test]
    fn source_acl_by_cidr() {
        let c = cfg();
        assert!(c.source_trunk("192.0.2.77".parse().unwrap()).is_some());
        assert!(c.source_trunk("198.51.100.1".parse().unwrap()).is_none());
        assert!(cidr_contains(
            "::".parse().unwrap(),
            0,
            "2001:db8::1".parse().unwrap()
        ));
    }

    #[test]
    fn numbers_match_with_or_without_plus() {
        let c = cfg();
        assert!(c.number("15550001000").is_some());
        assert!(c.number("+15550001000").is_some());
        assert!(c.number("+15550001001").is_none());
    }
}
