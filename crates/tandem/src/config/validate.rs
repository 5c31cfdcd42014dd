//! Checks every rule of `docs/configuration.md` on the raw tree and builds
//! [`Config`]; collects every broken rule, each with its key's dotted path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::raw::{
    RawAccount, RawClient, RawConfig, RawDatabase, RawHttp, RawLimits, RawNumber, RawRtp, RawSip,
    RawTrunk,
};
use super::{
    AccountConfig, Cidr, ClientConfig, Config, ConfigSource, Credentials, DatabaseConfig,
    DebugConfig, HttpConfig, Issue, LimitsConfig, Method, NumberConfig, NumberHandler, Pem,
    RecordingConfig, RtpConfig, Secret, SipConfig, SipProxy, SpeechConfig, TlsIdentity,
    TrunkConfig, VoiceWebhook, normalize,
};

/// Collects issues while checking.
struct Checker<'a> {
    issues: Vec<Issue>,
    bases: &'a [PathBuf],
}

impl Checker<'_> {
    fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue {
            key: key.into(),
            message: message.into(),
        });
    }

    /// Parses `v` or records `key: "v" is not <what>`.
    fn parse<T: std::str::FromStr>(&mut self, key: &str, v: &str, what: &str) -> Option<T> {
        let parsed = v.parse().ok();
        if parsed.is_none() {
            self.fail(key, format!("{v:?} is not {what}"));
        }
        parsed
    }

    /// `v` (defaulting to `default`) as milliseconds in `min..=max`.
    fn millis(&mut self, key: &str, v: Option<u64>, default: u64, min: u64, max: u64) -> Duration {
        let v = v.unwrap_or(default);
        if !(min..=max).contains(&v) {
            self.fail(key, format!("{v} is out of range (must be {min} to {max})"));
        }
        Duration::from_millis(v)
    }

    fn http_url(&mut self, key: &str, v: &str) -> Option<Url> {
        match Url::parse(v) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty()) =>
            {
                Some(u)
            }
            _ => {
                self.fail(key, format!("{v:?} is not an http:// or https:// URL"));
                None
            }
        }
    }

    fn method(&mut self, key: &str, v: Option<&str>) -> Method {
        match v.map(str::to_ascii_uppercase).as_deref() {
            None | Some("POST") => Method::Post,
            Some("GET") => Method::Get,
            Some(_) => {
                self.fail(
                    key,
                    format!("{:?} is not GET or POST", v.unwrap_or_default()),
                );
                Method::Post
            }
        }
    }

    /// Non-empty, no control characters.
    fn secret(&mut self, key: &str, v: &str) -> Secret {
        if v.is_empty() {
            self.fail(key, "must not be empty");
        } else if v.chars().any(char::is_control) {
            self.fail(key, "must not contain control characters");
        }
        Secret::new(v)
    }

    /// The file `rel` names (see [`Self::file`]), read.
    fn pem(&mut self, key: &str, rel: &str) -> Option<Pem> {
        let path = self.file(key, rel);
        match std::fs::read(&path) {
            Ok(text) => Some(Pem { path, text }),
            Err(e) => {
                // `file` has recorded a missing file already.
                if path.is_file() {
                    self.fail(key, format!("{}: {e}", path.display()));
                }
                None
            }
        }
    }

    /// `rel` against the first base, or a later base where it exists as a file.
    fn file(&mut self, key: &str, rel: &str) -> PathBuf {
        let candidates: Vec<PathBuf> = self.bases.iter().map(|b| normalize(&b.join(rel))).collect();
        let first = candidates
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from(rel));
        if rel.is_empty() {
            self.fail(key, "must not be empty");
            return first;
        }
        match candidates.into_iter().find(|p| p.is_file()) {
            Some(found) => found,
            None => {
                self.fail(
                    key,
                    format!("{rel:?}: no such file ({} not found)", first.display()),
                );
                first
            }
        }
    }

    fn dir(&self, rel: &str) -> PathBuf {
        self.bases
            .first()
            .map_or_else(|| PathBuf::from(rel), |b| normalize(&b.join(rel)))
    }
}

pub(crate) fn validate(
    raw: RawConfig,
    source: ConfigSource,
    bases: &[PathBuf],
) -> Result<Config, Vec<Issue>> {
    let mut c = Checker {
        issues: Vec::new(),
        bases,
    };
    let sip = sip(&mut c, &raw.sip);
    let rtp = rtp(&mut c, &raw.rtp);
    let http = http(&mut c, &raw.http);
    let account = account(&mut c, &raw.account);
    conflicts(&mut c, &sip, &rtp, &http);
    let directory = folder(
        &mut c,
        "recording.directory",
        raw.recording.directory.as_deref().unwrap_or("recordings"),
    );
    let transcribe_command = raw.recording.transcribe_command.clone();
    if transcribe_command
        .as_ref()
        .is_some_and(|c| c.first().is_none_or(|p| p.trim().is_empty()))
    {
        c.fail(
            "recording.transcribe_command",
            "must name a program first, e.g. [\"/usr/local/bin/transcribe\", \"--lang\", \"en\"]",
        );
    }
    let speech_command = raw.speech.command.clone();
    if speech_command
        .as_ref()
        .is_some_and(|c| c.first().is_none_or(|p| p.trim().is_empty()))
    {
        c.fail(
            "speech.command",
            "must name a program first, e.g. [\"/usr/local/bin/recognise\", \"--model\", \"small\"]",
        );
    }
    let database = database(&mut c, &raw.database);
    let call_logs = raw
        .debug
        .call_logs
        .as_deref()
        .map(|d| folder(&mut c, "debug.call_logs", d));
    let trunks = trunks(&mut c, &raw.trunk);
    let numbers = numbers(&mut c, &raw.number);
    let clients = clients(&mut c, &raw.client);
    let limits = limits(&mut c, &raw.limits);
    if !c.issues.is_empty() {
        return Err(c.issues);
    }
    Ok(Config {
        source,
        sip,
        rtp,
        http,
        account,
        recording: RecordingConfig {
            directory,
            transcribe_command,
        },
        speech: SpeechConfig {
            command: speech_command,
        },
        database,
        trunks,
        numbers,
        clients,
        debug: DebugConfig { call_logs },
        limits,
    })
}

fn database(c: &mut Checker<'_>, d: &RawDatabase) -> DatabaseConfig {
    const MAX_DAYS: u32 = 36_500;
    let path = d.path.as_deref().unwrap_or("tandem.db");
    if path.trim().is_empty() || path.ends_with('/') {
        c.fail("database.path", "must name a file, e.g. \"tandem.db\"");
    }
    let path = c.dir(path);
    if path.is_dir() {
        c.fail(
            "database.path",
            format!("{} is a folder; name a file in it", path.display()),
        );
    }
    let days = d.retention_days.unwrap_or(30);
    if days > MAX_DAYS {
        c.fail(
            "database.retention_days",
            format!("{days} is more than {MAX_DAYS}; 0 keeps the history for ever"),
        );
    }
    DatabaseConfig {
        path,
        retention: (days > 0).then(|| std::time::Duration::from_secs(u64::from(days) * 86_400)),
    }
}

fn limits(c: &mut Checker<'_>, l: &RawLimits) -> LimitsConfig {
    let mut count = |key: &str, v: Option<u64>, default: u32, max: u32| -> u32 {
        match v {
            None => default,
            Some(n) if n <= u64::from(max) => n as u32,
            Some(n) => {
                c.fail(
                    format!("limits.{key}"),
                    format!("{n} is over the largest allowed, {max} (0 turns the limit off)"),
                );
                default
            }
        }
    };
    let on = |n: u32| (n > 0).then_some(n);
    LimitsConfig {
        max_calls: on(count("max_calls", l.max_calls, 0, 1_000_000)),
        max_cps: on(count("max_cps", l.max_cps, 0, 1_000_000)),
        source_requests_per_second: on(count(
            "source_requests_per_second",
            l.source_requests_per_second,
            20,
            1_000_000,
        )),
        source_auth_failures_per_minute: on(count(
            "source_auth_failures_per_minute",
            l.source_auth_failures_per_minute,
            6,
            100_000,
        )),
        identity_auth_failures_per_minute: on(count(
            "identity_auth_failures_per_minute",
            l.identity_auth_failures_per_minute,
            30,
            100_000,
        )),
    }
}

fn listen_list(c: &mut Checker<'_>, key: &str, list: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let k = format!("{key}[{i}]");
        if let Some(a) = c.parse::<SocketAddr>(&k, v, "a socket address (IP:port)") {
            if out.contains(&a) {
                c.fail(k, format!("{v:?} is listed twice"));
            } else {
                out.push(a);
            }
        }
    }
    out
}

fn sip(c: &mut Checker<'_>, s: &RawSip) -> SipConfig {
    let udp = listen_list(c, "sip.udp", &s.udp);
    let tcp = listen_list(c, "sip.tcp", &s.tcp);
    let tls = listen_list(c, "sip.tls", &s.tls);
    if s.udp.is_empty() && s.tcp.is_empty() && s.tls.is_empty() {
        c.fail(
            "sip.udp",
            "no listen address: list at least one in sip.udp, sip.tcp or sip.tls",
        );
    }
    let tls_identity = tls_identity(c, s);
    let dns_servers = listen_list(c, "sip.dns_servers", &s.dns_servers);
    let digest_algorithms = digest_algorithms(c, s.digest_algorithms.as_deref());
    let tls_ca = s.tls_ca.as_deref().and_then(|rel| {
        let pem = c.pem("sip.tls_ca", rel)?;
        match tandem_transport::tls::client_config(Some(&pem.text)) {
            Ok(_) => Some(pem),
            Err(e) => {
                c.fail("sip.tls_ca", format!("{}: {e}", pem.path.display()));
                None
            }
        }
    });
    let external_address = s.external_address.as_deref().and_then(|v| {
        let ip = c.parse::<IpAddr>("sip.external_address", v, "an IP address")?;
        if ip.is_unspecified() {
            c.fail(
                "sip.external_address",
                format!("{v:?} is a wildcard address, not one peers can reach"),
            );
        }
        Some(ip)
    });
    let t1 = c.millis("sip.t1_ms", s.t1_ms, 500, 1, 60_000);
    let t2 = c.millis("sip.t2_ms", s.t2_ms, 4_000, 1, 600_000);
    let t4 = c.millis("sip.t4_ms", s.t4_ms, 5_000, 1, 600_000);
    if t2 < t1 {
        c.fail(
            "sip.t2_ms",
            format!(
                "{} is less than sip.t1_ms ({})",
                t2.as_millis(),
                t1.as_millis()
            ),
        );
    }
    let connections = |c: &mut Checker<'_>, key: &str, v: Option<u64>, default: u64| {
        let v = v.unwrap_or(default);
        if !(1..=1_000_000).contains(&v) {
            c.fail(key, format!("{v} is out of range (must be 1 to 1000000)"));
        }
        usize::try_from(v).unwrap_or(usize::MAX)
    };
    let tcp_max_connections =
        connections(c, "sip.tcp_max_connections", s.tcp_max_connections, 4096);
    let tcp_max_per_source = connections(c, "sip.tcp_max_per_source", s.tcp_max_per_source, 64);
    let tcp_header_timeout = c.millis(
        "sip.tcp_header_timeout_ms",
        s.tcp_header_timeout_ms,
        10_000,
        1,
        600_000,
    );
    let tcp_write_timeout = c.millis(
        "sip.tcp_write_timeout_ms",
        s.tcp_write_timeout_ms,
        10_000,
        1,
        600_000,
    );
    let session_timers = session_timers(c, s);
    let user_agent = s.user_agent.clone().unwrap_or_else(|| "Tandem".to_owned());
    if user_agent.is_empty()
        || user_agent.chars().count() > 256
        || user_agent.chars().any(char::is_control)
    {
        c.fail(
            "sip.user_agent",
            format!("{user_agent:?} must be 1 to 256 characters without control characters"),
        );
    }
    SipConfig {
        udp,
        tcp,
        tls,
        tls_identity,
        tls_ca,
        dns_servers,
        digest_algorithms,
        external_address,
        t1,
        t2,
        t4,
        user_agent,
        tcp_max_connections,
        tcp_max_per_source,
        tcp_header_timeout,
        tcp_write_timeout,
        session_timers,
    }
}

/// `digest_algorithms`: `MD5`, `SHA-256` (and their `-sess` forms), at
/// least one, no repeats; `["MD5"]` when absent.
fn digest_algorithms(
    c: &mut Checker<'_>,
    v: Option<&[String]>,
) -> Vec<tandem_sip::auth::Algorithm> {
    use tandem_sip::auth::Algorithm;
    let Some(list) = v else {
        return vec![Algorithm::Md5];
    };
    if list.is_empty() {
        c.fail("sip.digest_algorithms", "must list at least one algorithm");
    }
    let mut out = Vec::new();
    for (i, name) in list.iter().enumerate() {
        let a = match name.to_ascii_uppercase().as_str() {
            "MD5" => Algorithm::Md5,
            "MD5-SESS" => Algorithm::Md5Sess,
            "SHA-256" => Algorithm::Sha256,
            "SHA-256-SESS" => Algorithm::Sha256Sess,
            _ => {
                c.fail(
                    format!("sip.digest_algorithms[{i}]"),
                    format!("{name:?} is not MD5, MD5-sess, SHA-256 or SHA-256-sess"),
                );
                continue;
            }
        };
        if out.contains(&a) {
            c.fail(
                format!("sip.digest_algorithms[{i}]"),
                format!("{name:?} is listed twice"),
            );
        } else {
            out.push(a);
        }
    }
    out
}

/// `tls_certificate` and `tls_private_key`: both or neither, both when
/// `tls` lists an address, and together a configuration rustls accepts.
fn tls_identity(c: &mut Checker<'_>, s: &RawSip) -> Option<TlsIdentity> {
    let (cert, key) = match (&s.tls_certificate, &s.tls_private_key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => {
            if !s.tls.is_empty() {
                c.fail(
                    "sip.tls_certificate",
                    "sip.tls lists a listen address: set tls_certificate and tls_private_key",
                );
            }
            return None;
        }
        (Some(_), None) => {
            c.fail(
                "sip.tls_private_key",
                "tls_certificate is set: set its key too",
            );
            return None;
        }
        (None, Some(_)) => {
            c.fail(
                "sip.tls_certificate",
                "tls_private_key is set: set its certificate too",
            );
            return None;
        }
    };
    if s.tls.is_empty() {
        c.fail(
            "sip.tls",
            "tls_certificate is set but sip.tls lists no listen address",
        );
    }
    let certificate = c.pem("sip.tls_certificate", cert)?;
    let private_key = c.pem("sip.tls_private_key", key)?;
    if let Err(e) = tandem_transport::tls::server_config(&certificate.text, &private_key.text) {
        c.fail(
            "sip.tls_certificate",
            format!(
                "{} with {}: {e}",
                certificate.path.display(),
                private_key.path.display()
            ),
        );
        return None;
    }
    Some(TlsIdentity {
        certificate,
        private_key,
    })
}

/// `session_expires_s` (0: no session timers) and `min_se_s`. RFC 4028 §4
/// puts Min-SE at 90 s or more; less is accepted for tests (with a warning
/// at start) since a suite cannot wait minutes for a refresh.
fn session_timers(c: &mut Checker<'_>, s: &RawSip) -> Option<tandem_sip::session_timer::Policy> {
    const DAY: u64 = 86_400;
    let expires = s.session_expires_s.unwrap_or(1800);
    let min_se = s.min_se_s.unwrap_or(90);
    if expires > DAY {
        c.fail(
            "sip.session_expires_s",
            format!("{expires} is out of range (must be 0, which disables, to {DAY})"),
        );
    }
    if !(1..=DAY).contains(&min_se) {
        c.fail(
            "sip.min_se_s",
            format!("{min_se} is out of range (must be 1 to {DAY})"),
        );
    }
    if expires == 0 {
        return None;
    }
    if min_se > expires {
        c.fail(
            "sip.min_se_s",
            format!("{min_se} is more than sip.session_expires_s ({expires})"),
        );
    }
    Some(tandem_sip::session_timer::Policy {
        session_expires: u32::try_from(expires).unwrap_or(u32::MAX),
        min_se: u32::try_from(min_se).unwrap_or(u32::MAX),
    })
}

fn rtp(c: &mut Checker<'_>, r: &RawRtp) -> RtpConfig {
    let address = c
        .parse::<IpAddr>("rtp.address", &r.address, "an IP address")
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let port_min = r.port_min.unwrap_or(30_000);
    let port_max = r.port_max.unwrap_or(30_999);
    if port_min == 0 {
        c.fail("rtp.port_min", "0 is not a port (must be 1 to 65534)");
    } else if !port_min.is_multiple_of(2) {
        c.fail(
            "rtp.port_min",
            format!("{port_min} is odd (RTP ports start even)"),
        );
    }
    if port_max <= port_min {
        c.fail(
            "rtp.port_max",
            format!("{port_max} must be greater than rtp.port_min ({port_min}): the range needs at least 2 ports"),
        );
    }
    let media_timeout_s = r.media_timeout_s.unwrap_or(60);
    if media_timeout_s > 86_400 {
        c.fail(
            "rtp.media_timeout_s",
            format!("{media_timeout_s} is out of range (must be 0 to 86400)"),
        );
    }
    RtpConfig {
        address,
        port_min,
        port_max,
        latching: r.latching.unwrap_or(true),
        srtp_over_tls: r.srtp_over_tls.unwrap_or(true),
        media_timeout: (media_timeout_s > 0).then(|| Duration::from_secs(media_timeout_s)),
    }
}

fn http(c: &mut Checker<'_>, h: &RawHttp) -> HttpConfig {
    let listen = c
        .parse::<SocketAddr>("http.listen", &h.listen, "a socket address (IP:port)")
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
    let public_url = match h.public_url.as_deref() {
        Some(v) => {
            let url = c.http_url("http.public_url", v);
            if url
                .as_ref()
                .is_some_and(|u| u.query().is_some() || u.fragment().is_some())
            {
                c.fail(
                    "http.public_url",
                    format!("{v:?} must not have a query or fragment"),
                );
            }
            url
        }
        None if listen.ip().is_unspecified() => {
            c.fail(
                "http.public_url",
                format!("required when http.listen is a wildcard address ({listen})"),
            );
            None
        }
        None => Url::parse(&format!("http://{listen}")).ok(),
    };
    let webhook_timeout = c.millis(
        "http.webhook_timeout_ms",
        h.webhook_timeout_ms,
        15_000,
        1,
        600_000,
    );
    HttpConfig {
        listen,
        public_url: public_url
            .unwrap_or_else(|| Url::parse("http://127.0.0.1/").expect("literal URL")),
        webhook_timeout,
        media_auth: h.media_auth.unwrap_or(false),
    }
}

/// Whether two bind addresses would collide (same port, same or wildcard IP).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Listeners that could not all be bound.
fn conflicts(c: &mut Checker<'_>, sip: &SipConfig, rtp: &RtpConfig, http: &HttpConfig) {
    if let Some(i) = sip.tcp.iter().position(|&a| overlaps(a, http.listen)) {
        c.fail(
            "http.listen",
            format!(
                "{} collides with sip.tcp[{i}] ({})",
                http.listen, sip.tcp[i]
            ),
        );
    }
    for (i, &a) in sip.tls.iter().enumerate() {
        if overlaps(a, http.listen) {
            c.fail(
                "http.listen",
                format!("{} collides with sip.tls[{i}] ({a})", http.listen),
            );
        }
        if let Some(j) = sip.tcp.iter().position(|&t| overlaps(t, a)) {
            c.fail(
                format!("sip.tls[{i}]"),
                format!("{a} collides with sip.tcp[{j}] ({})", sip.tcp[j]),
            );
        }
    }
    let rtp_ports = rtp.port_min..=rtp.port_max;
    for (i, a) in sip.udp.iter().enumerate() {
        let same_ip =
            a.ip() == rtp.address || a.ip().is_unspecified() || rtp.address.is_unspecified();
        if same_ip && rtp_ports.contains(&a.port()) {
            c.fail(
                "rtp.port_min",
                format!(
                    "the RTP range {}-{} contains sip.udp[{i}] ({a})",
                    rtp.port_min, rtp.port_max
                ),
            );
        }
    }
}

fn account(c: &mut Checker<'_>, a: &RawAccount) -> AccountConfig {
    let ok = a.sid.len() == 34
        && a.sid.starts_with("AC")
        && a.sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        c.fail(
            "account.sid",
            format!("{:?} is not AC followed by 32 hex digits", a.sid),
        );
    }
    AccountConfig {
        sid: a.sid.clone(),
        auth_token: c.secret("account.auth_token", &a.auth_token),
    }
}

/// 1 to 64 of letters, digits, `-`, `_`, `.`.
fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `""`, `+` and digits, or digits (at most 15).
fn is_prefix(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    s.is_empty()
        || (!digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// A folder key: non-empty, relative to the config's folder, and a folder
/// if it exists already.
fn folder(c: &mut Checker<'_>, key: &str, value: &str) -> PathBuf {
    if value.is_empty() {
        c.fail(key, "must not be empty");
    }
    let dir = c.dir(value);
    if dir.exists() && !dir.is_dir() {
        c.fail(key, format!("{} exists and is not a folder", dir.display()));
    }
    dir
}

fn trunks(c: &mut Checker<'_>, raw: &[RawTrunk]) -> Vec<TrunkConfig> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut prefixes: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let key = |k: &str| format!("trunk[{i}].{k}");
        if !is_name(&t.name) {
            c.fail(
                key("name"),
                format!(
                    "{:?} must be 1 to 64 letters, digits, '-', '_' or '.'",
                    t.name
                ),
            );
        } else if let Some(first) = names.insert(&t.name, i) {
            names.insert(&t.name, first);
            c.fail(
                key("name"),
                format!("{:?} is already the name of trunk[{first}]", t.name),
            );
        }
        let proxy = SipProxy::parse(&t.proxy)
            .map_err(|m| c.fail(key("proxy"), m))
            .ok();
        let credentials = match (&t.username, &t.password) {
            (None, None) => None,
            (Some(_), None) => {
                c.fail(key("password"), "required when username is set");
                None
            }
            (None, Some(_)) => {
                c.fail(key("username"), "required when password is set");
                None
            }
            (Some(u), Some(p)) => {
                if u.is_empty() || u.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
                    c.fail(
                        key("username"),
                        format!("{u:?} must be non-empty without spaces or control characters"),
                    );
                }
                let password = c.secret(&key("password"), p);
                Some(Credentials {
                    username: u.clone(),
                    password,
                })
            }
        };
        let expires = t.register_expires_s.unwrap_or(3600);
        if !(10..=604_800).contains(&expires) {
            c.fail(
                key("register_expires_s"),
                format!("{expires} is out of range (must be 10 to 604800)"),
            );
        }
        let options = t.options_interval_s.unwrap_or(0);
        if options > 86_400 {
            c.fail(
                key("options_interval_s"),
                format!("{options} is out of range (must be 0, which disables, to 86400)"),
            );
        }
        let mut own = Vec::new();
        for (j, p) in t.prefixes.iter().enumerate() {
            let k = format!("trunk[{i}].prefixes[{j}]");
            if !is_prefix(p) {
                c.fail(
                    k,
                    format!("{p:?} is not \"\", + followed by digits, or digits"),
                );
            } else if own.contains(p) {
                c.fail(k, format!("{p:?} is listed twice"));
            } else if let Some(&other) = prefixes.get(p.as_str()) {
                c.fail(k, format!("{p:?} is already carried by trunk[{other}]"));
            } else {
                own.push(p.clone());
            }
        }
        for p in &t.prefixes {
            prefixes.entry(p.as_str()).or_insert(i);
        }
        let sources = t
            .sources
            .iter()
            .enumerate()
            .filter_map(|(j, s)| {
                c.parse::<Cidr>(
                    &format!("trunk[{i}].sources[{j}]"),
                    s,
                    "an IP address or CIDR",
                )
            })
            .collect();
        if let Some(proxy) = proxy {
            out.push(TrunkConfig {
                name: t.name.clone(),
                proxy,
                credentials,
                register: t.register,
                register_expires: Duration::from_secs(expires),
                options_interval: (options > 0).then(|| Duration::from_secs(options)),
                prefixes: own,
                sources,
            });
        }
    }
    out
}

/// E.164 (`+` and 8 to 15 digits) or 1 to 15 plain digits.
fn is_number(s: &str) -> bool {
    let (digits, range) = match s.strip_prefix('+') {
        Some(d) => (d, 8..=15),
        None => (s, 1..=15),
    };
    range.contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn numbers(c: &mut Checker<'_>, raw: &[RawNumber]) -> Vec<NumberConfig> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, n) in raw.iter().enumerate() {
        let key = |k: &str| format!("number[{i}].{k}");
        if !is_number(&n.number) {
            c.fail(
                key("number"),
                format!(
                    "{:?} is not an E.164 number (+ and 8 to 15 digits) or plain digits",
                    n.number
                ),
            );
        } else {
            let digits = n.number.strip_prefix('+').unwrap_or(&n.number);
            if let Some(&first) = seen.get(digits) {
                c.fail(
                    key("number"),
                    format!("{:?} is the same number as number[{first}]", n.number),
                );
            } else {
                seen.insert(digits, i);
            }
        }
        let handler = match (&n.twiml, &n.voice_url) {
            (Some(_), Some(_)) => {
                c.fail(
                    key("voice_url"),
                    "set exactly one of twiml or voice_url, not both",
                );
                None
            }
            (None, None) => {
                c.fail(format!("number[{i}]"), "set one of twiml or voice_url");
                None
            }
            (Some(file), None) => {
                for (k, set) in [
                    ("voice_method", n.voice_method.is_some()),
                    ("fallback_url", n.fallback_url.is_some()),
                    ("fallback_method", n.fallback_method.is_some()),
                ] {
                    if set {
                        c.fail(key(k), "only applies with voice_url, not with a twiml file");
                    }
                }
                Some(NumberHandler::Twiml(c.file(&key("twiml"), file)))
            }
            (None, Some(url)) => {
                let voice_url = c.http_url(&key("voice_url"), url);
                let voice_method = c.method(&key("voice_method"), n.voice_method.as_deref());
                let fallback_url = n
                    .fallback_url
                    .as_deref()
                    .and_then(|u| c.http_url(&key("fallback_url"), u));
                let fallback_method =
                    c.method(&key("fallback_method"), n.fallback_method.as_deref());
                voice_url.map(|voice_url| {
                    NumberHandler::Webhook(VoiceWebhook {
                        voice_url,
                        voice_method,
                        fallback_url,
                        fallback_method,
                    })
                })
            }
        };
        if let Some(handler) = handler {
            out.push(NumberConfig {
                number: n.number.clone(),
                handler,
            });
        }
    }
    out
}

/// The `<Client>` identity rule: 1 to 256 characters, no control, space,
/// delimiter (`< > # % "`) or unwise (`{ } | \ ^ [ ] ``) characters.
pub(crate) fn check_identity(v: &str) -> Result<(), &'static str> {
    if v.is_empty() {
        Err("must not be empty")
    } else if v.chars().count() > 256 {
        Err("is longer than 256 characters")
    } else if v.chars().any(char::is_control) {
        Err("contains a control character")
    } else if v.chars().any(char::is_whitespace) {
        Err("contains a space")
    } else if v.chars().any(|ch| "<>#%\"{}|\\^[]`".contains(ch)) {
        Err("contains a delimiter or unwise character (< > # % \" { } | \\ ^ [ ] `)")
    } else {
        Ok(())
    }
}

fn clients(c: &mut Checker<'_>, raw: &[RawClient]) -> Vec<ClientConfig> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, cl) in raw.iter().enumerate() {
        let key = |k: &str| format!("client[{i}].{k}");
        if let Err(why) = check_identity(&cl.identity) {
            let shown: String = cl.identity.chars().take(40).collect();
            c.fail(key("identity"), format!("{shown:?} {why}"));
        } else if let Some(&first) = seen.get(cl.identity.as_str()) {
            c.fail(
                key("identity"),
                format!(
                    "{:?} is already the identity of client[{first}]",
                    cl.identity
                ),
            );
        } else {
            seen.insert(&cl.identity, i);
        }
        let password = c.secret(&key("password"), &cl.password);
        out.push(ClientConfig {
            identity: cl.identity.clone(),
            password,
            any_from: cl.any_from.unwrap_or(false),
        });
    }
    out
}
