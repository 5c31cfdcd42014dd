//! Config tests: the shipped configs validate, and every rule rejects a bad
//! value with an error naming the key's dotted path.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

/// The repository root.
fn repo() -> PathBuf {
    normalize(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// A valid config exercising every table; two trunks so `trunk[1]` paths show.
const BASE: &str = r#"
[sip]
udp = ["127.0.0.1:5080"]
tcp = ["127.0.0.1:5080"]
t1_ms = 500

[rtp]
address = "127.0.0.1"
port_min = 30000
port_max = 30999

[http]
listen = "127.0.0.1:8089"
public_url = "http://127.0.0.1:8089"

[account]
sid = "AC0123456789abcdefABCDEF0123456789"
auth_token = "token"

[[trunk]]
name = "carrier"
proxy = "sip:127.0.0.1:5090"
prefixes = ["+1", "+44"]
sources = ["127.0.0.1"]

[[trunk]]
name = "pbx"
proxy = "sip:10.0.0.2;transport=tcp"
username = "tandem"
password = "secret"
prefixes = ["1000"]
sources = ["10.0.0.0/8"]

[[number]]
number = "+15550001000"
twiml = "fixtures/twiml/simultaneous-ring.xml"

[[number]]
number = "5550002000"
voice_url = "http://127.0.0.1:9000/voice"
voice_method = "get"

[[client]]
identity = "carol"
password = "secret"
"#;

/// `BASE` with `from` replaced by `to` (which must change something).
fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE lacks {from:?}");
    BASE.replacen(from, to, 1)
}

/// Parses text whose relative paths resolve against the repository root.
fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, ConfigSource::File("test.toml".into()), &[repo()])
}

/// Asserts `text` is rejected, naming `key` and saying `fragment`.
#[track_caller]
fn assert_rejects(text: &str, key: &str, fragment: &str) {
    let err = match parse(text) {
        Ok(_) => panic!("accepted; expected an error at {key}"),
        Err(e) => e,
    };
    let shown = err.to_string();
    assert!(
        err.keys().contains(&key),
        "error names {:?}, not {key:?}: {shown}",
        err.keys()
    );
    assert!(shown.contains(&format!("{key}: ")), "{shown}");
    assert!(shown.contains(fragment), "{shown:?} lacks {fragment:?}");
}

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tandem-config-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn base_test_config_is_valid() {
    let c = parse(BASE).expect("BASE is valid");
    assert_eq!(c.trunks.len(), 2);
    assert_eq!(c.trunks[1].proxy.transport, ProxyTransport::Tcp);
    assert_eq!(
        c.trunks[1]
            .credentials
            .as_ref()
            .map(|c| c.username.as_str()),
        Some("tandem")
    );
    assert!(c.trunks[1].allows("10.1.2.3".parse().expect("ip")));
    assert!(!c.trunks[0].allows("10.1.2.3".parse().expect("ip")));
    match &c.numbers[1].handler {
        NumberHandler::Webhook(w) => {
            assert_eq!(w.voice_method, Method::Get);
            assert_eq!(w.fallback_method, Method::Post);
        }
        other => panic!("expected a webhook, got {other:?}"),
    }
    assert!(c.numbers[1].matches("+5550002000"));
    assert!(c.numbers[0].matches("15550001000"));
    assert!(!c.numbers[0].matches("15550001001"));
    // Defaults.
    assert_eq!(c.sip.t4, Duration::from_secs(5));
    assert_eq!(c.sip.user_agent, "Tandem");
    assert_eq!(c.sip.tcp_max_connections, 4096);
    assert_eq!(c.sip.tcp_max_per_source, 64);
    assert_eq!(c.sip.tcp_header_timeout, Duration::from_secs(10));
    assert_eq!(c.sip.tcp_write_timeout, Duration::from_secs(10));
    assert_eq!(
        c.sip.session_timers,
        Some(tandem_sip::session_timer::Policy {
            session_expires: 1800,
            min_se: 90
        })
    );
    assert!(c.rtp.latching);
    assert_eq!(c.rtp.media_timeout, Some(Duration::from_secs(60)));
    assert_eq!(c.http.webhook_timeout, Duration::from_secs(15));
    assert_eq!(c.recording.directory, repo().join("recordings"));
    assert_eq!(c.trunks[0].register_expires, Duration::from_secs(3600));
    assert!(
        !format!("{c:?}").contains("secret"),
        "Debug leaks a password"
    );
}

#[test]
fn embedded_default_parses_and_validates() {
    let c = Config::embedded().expect("embedded default is valid");
    assert_eq!(c.source, ConfigSource::Embedded);
    assert_eq!(c.sip.udp, vec!["127.0.0.1:5080".parse().expect("addr")]);
    assert_eq!(c.sip.tcp, c.sip.udp);
    assert_eq!((c.rtp.port_min, c.rtp.port_max), (30000, 30999));
    assert_eq!(c.http.listen, "127.0.0.1:8089".parse().expect("addr"));
    assert_eq!(c.trunks.len(), 1);
    assert_eq!(c.trunks[0].name, "loopback");
    assert_eq!(c.trunks[0].prefixes, vec![String::new()]);
    assert_eq!(c.numbers.len(), 4);
    // The first: the README's first call, the demo application on Tandem's
    // own HTTP listener.
    let NumberHandler::Webhook(demo) = &c.numbers[0].handler else {
        panic!("+15550000000 is not the demo webhook");
    };
    assert_eq!(demo.voice_url.as_str(), "http://127.0.0.1:8089/demo/voice");
    for n in &c.numbers[1..] {
        let NumberHandler::Twiml(path) = &n.handler else {
            panic!("{} is not a twiml number", n.number);
        };
        assert!(path.is_file(), "{}", path.display());
        assert!(
            path.starts_with(repo().join("fixtures/twiml")),
            "{}",
            path.display()
        );
    }
    assert_eq!(c.clients[0].identity, "carol");
}

#[test]
fn default_config_file_matches_the_embedded_copy() {
    let path = repo().join(DEFAULT_PATH);
    let on_disk = Config::load(&path).expect("configs/tandem.toml is valid");
    let embedded = Config::embedded().expect("embedded default is valid");
    assert_eq!(on_disk.numbers, embedded.numbers);
    assert_eq!(on_disk.recording.directory, repo().join("recordings"));
}

#[test]
fn example_configs_validate() {
    let dir = repo().join("configs/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("configs/examples exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected at least two examples, found {seen}");
}

#[test]
fn relative_twiml_path_resolves_against_the_config_folder() {
    let tmp = TempDir::new();
    let sub = tmp.0.join("conf");
    std::fs::create_dir_all(sub.join("apps")).expect("mkdir");
    std::fs::write(sub.join("apps/hello.xml"), "<Response/>").expect("write twiml");
    let text = edit(
        "twiml = \"fixtures/twiml/simultaneous-ring.xml\"",
        "twiml = \"apps/hello.xml\"",
    );
    let file = sub.join("tandem.toml");
    std::fs::write(&file, &text).expect("write config");
    let c = Config::load(&file).expect("valid");
    assert_eq!(
        c.numbers[0].handler,
        NumberHandler::Twiml(sub.join("apps/hello.xml"))
    );
    assert_eq!(c.recording.directory, sub.join("recordings"));

    // The same text in another folder does not find the file, and says where it looked.
    let other = tmp.0.join("other.toml");
    std::fs::write(&other, &text).expect("write config");
    let err = Config::load(&other).expect_err("twiml missing");
    let shown = err.to_string();
    assert!(
        shown.contains("number[0].twiml: \"apps/hello.xml\": no such file"),
        "{shown}"
    );
    assert!(
        shown.contains(&tmp.0.join("apps/hello.xml").display().to_string()),
        "{shown}"
    );
}

#[test]
fn missing_config_file_is_a_read_error() {
    let err = Config::load(Path::new("/nonexistent/tandem.toml")).expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/tandem.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let text = edit("t1_ms = 500", "t1_ms = 0").replace("port_min = 30000", "port_min = 30001");
    let err = parse(&text).expect_err("two errors");
    assert_eq!(err.keys(), vec!["sip.t1_ms", "rtp.port_min"]);
    assert!(err.to_string().contains("2 errors"), "{err}");
}

// ---- serde-level errors: unknown keys, missing keys, wrong types, syntax ----

#[test]
fn unknown_top_level_key_is_rejected_by_name() {
    let err = parse(&format!("bogus = 1\n{BASE}")).expect_err("unknown key");
    assert_eq!(err.keys(), vec!["bogus"]);
    assert!(err.to_string().contains("bogus: unknown key"), "{err}");
}

#[test]
fn unknown_top_level_table_is_rejected_by_name() {
    let err = parse(&format!("{BASE}\n[media]\nx = 1\n")).expect_err("unknown table");
    assert_eq!(err.keys(), vec!["media"]);
}

#[test]
fn unknown_nested_key_is_rejected_with_its_path() {
    assert_rejects(
        &edit("port_max = 30999", "port_max = 30999\nport_mix = 1"),
        "rtp.port_mix",
        "unknown key",
    );
    assert_rejects(
        &edit("name = \"pbx\"", "name = \"pbx\"\nregistr = true"),
        "trunk[1].registr",
        "unknown key",
    );
    assert_rejects(
        &edit(
            "identity = \"carol\"",
            "identity = \"carol\"\nrealm = \"x\"",
        ),
        "client[0].realm",
        "unknown key",
    );
}

#[test]
fn unknown_key_error_gives_the_line() {
    let err =
        parse(&edit("port_max = 30999", "port_max = 30999\nport_mix = 1")).expect_err("unknown");
    let ConfigError::Parse { line, .. } = &err else {
        panic!("{err:?}");
    };
    let want = BASE
        .lines()
        .position(|l| l.starts_with("port_max"))
        .expect("line")
        + 2;
    assert_eq!(*line, Some(want), "{err}");
}

#[test]
fn missing_required_key_is_named() {
    assert_rejects(
        &edit("sid = \"AC0123456789abcdefABCDEF0123456789\"\n", ""),
        "account.sid",
        "missing",
    );
    assert_rejects(
        &edit("proxy = \"sip:10.0.0.2;transport=tcp\"\n", ""),
        "trunk[1].proxy",
        "missing",
    );
    let no_rtp = edit(
        "[rtp]\naddress = \"127.0.0.1\"\nport_min = 30000\nport_max = 30999\n",
        "",
    );
    assert_rejects(&no_rtp, "rtp", "missing");
}

#[test]
fn wrong_type_is_named() {
    assert_rejects(
        &edit("port_max = 30999", "port_max = \"30999\""),
        "rtp.port_max",
        "invalid type",
    );
    assert_rejects(
        &edit("port_max = 30999", "port_max = 70000"),
        "rtp.port_max",
        "u16",
    );
    assert_rejects(
        &edit("sources = [\"127.0.0.1\"]", "sources = \"127.0.0.1\""),
        "trunk[0].sources",
        "invalid type",
    );
    assert_rejects(
        &edit("name = \"pbx\"", "name = \"pbx\"\nregister = \"yes\""),
        "trunk[1].register",
        "invalid type",
    );
}

#[test]
fn toml_syntax_error_gives_the_line() {
    let err = parse(&edit("t1_ms = 500", "t1_ms = = 500")).expect_err("syntax");
    let ConfigError::Parse { key, line, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*key, None, "{err}");
    assert!(line.is_some(), "{err}");
}

// ---- one test per validation rule ----

#[test]
fn session_timers_are_read_and_switched_off_by_zero() {
    let c = parse(&edit(
        "t1_ms = 500",
        "t1_ms = 500\nsession_expires_s = 6\nmin_se_s = 2",
    ))
    .expect("valid");
    assert_eq!(
        c.sip.session_timers,
        Some(tandem_sip::session_timer::Policy {
            session_expires: 6,
            min_se: 2
        })
    );
    let c = parse(&edit("t1_ms = 500", "t1_ms = 500\nsession_expires_s = 0")).expect("valid");
    assert_eq!(c.sip.session_timers, None);
}

#[test]
fn sip_tcp_limits_and_timeouts_are_read() {
    let c = parse(&edit(
        "t1_ms = 500",
        "t1_ms = 500\ntcp_max_connections = 100\ntcp_max_per_source = 5\n\
         tcp_header_timeout_ms = 2500\ntcp_write_timeout_ms = 750",
    ))
    .expect("valid");
    assert_eq!(c.sip.tcp_max_connections, 100);
    assert_eq!(c.sip.tcp_max_per_source, 5);
    assert_eq!(c.sip.tcp_header_timeout, Duration::from_millis(2500));
    assert_eq!(c.sip.tcp_write_timeout, Duration::from_millis(750));
}

#[test]
fn limits_default_to_the_throttles_on_and_admission_off() {
    let c = parse(BASE).expect("valid");
    assert_eq!(
        c.limits,
        LimitsConfig {
            max_calls: None,
            max_cps: None,
            source_requests_per_second: Some(20),
            source_auth_failures_per_minute: Some(6),
            identity_auth_failures_per_minute: Some(30),
        }
    );
    assert!(!c.clients[0].any_from);
}

#[test]
fn limits_are_read_and_zero_turns_one_off() {
    let c = parse(&format!(
        "{BASE}any_from = true\n\n[limits]\nmax_calls = 500\nmax_cps = 120\n\
         source_requests_per_second = 0\nsource_auth_failures_per_minute = 3\n\
         identity_auth_failures_per_minute = 0\n"
    ))
    .expect("valid");
    assert_eq!(
        c.limits,
        LimitsConfig {
            max_calls: Some(500),
            max_cps: Some(120),
            source_requests_per_second: None,
            source_auth_failures_per_minute: Some(3),
            identity_auth_failures_per_minute: None,
        }
    );
    assert!(c.clients[0].any_from);
}

#[test]
fn limits_out_of_range_and_unknown_keys_are_named() {
    assert_rejects(
        &format!("{BASE}\n[limits]\nmax_cps = 2000000\n"),
        "limits.max_cps",
        "over the largest allowed",
    );
    assert_rejects(
        &format!("{BASE}\n[limits]\nmax_cals = 10\n"),
        "limits.max_cals",
        "unknown key",
    );
}

macro_rules! rejects {
    ($($name:ident: $from:expr => $to:expr, $key:expr, $fragment:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_rejects(&edit($from, $to), $key, $fragment);
        }
    )*};
}

rejects! {
    sip_needs_a_listen_address:
        "udp = [\"127.0.0.1:5080\"]\ntcp = [\"127.0.0.1:5080\"]" => "udp = []", "sip.udp", "at least one";
    sip_listen_address_must_be_ip_and_port:
        "tcp = [\"127.0.0.1:5080\"]" => "tcp = [\"127.0.0.1:5080\", \"localhost:5080\"]", "sip.tcp[1]", "\"localhost:5080\" is not a socket address";
    sip_listen_address_listed_twice:
        "udp = [\"127.0.0.1:5080\"]" => "udp = [\"127.0.0.1:5080\", \"127.0.0.1:5080\"]", "sip.udp[1]", "listed twice";
    sip_external_address_must_be_an_ip:
        "t1_ms = 500" => "external_address = \"sbc example\"", "sip.external_address", "is not an IP address";
    sip_external_address_must_not_be_a_wildcard:
        "t1_ms = 500" => "external_address = \"0.0.0.0\"", "sip.external_address", "wildcard";
    sip_t1_must_be_positive:
        "t1_ms = 500" => "t1_ms = 0", "sip.t1_ms", "out of range";
    sip_t1_must_not_overflow_timers:
        "t1_ms = 500" => "t1_ms = 9999999999", "sip.t1_ms", "out of range";
    sip_t2_must_not_be_below_t1:
        "t1_ms = 500" => "t1_ms = 500\nt2_ms = 400", "sip.t2_ms", "less than sip.t1_ms";
    sip_t4_must_be_in_range:
        "t1_ms = 500" => "t4_ms = 600001", "sip.t4_ms", "out of range";
    sip_tcp_max_connections_must_be_positive:
        "t1_ms = 500" => "tcp_max_connections = 0", "sip.tcp_max_connections", "out of range";
    sip_tcp_max_per_source_must_be_in_range:
        "t1_ms = 500" => "tcp_max_per_source = 1000001", "sip.tcp_max_per_source", "out of range";
    sip_tcp_header_timeout_must_be_positive:
        "t1_ms = 500" => "tcp_header_timeout_ms = 0", "sip.tcp_header_timeout_ms", "out of range";
    sip_tcp_write_timeout_must_be_in_range:
        "t1_ms = 500" => "tcp_write_timeout_ms = 600001", "sip.tcp_write_timeout_ms", "out of range";
    sip_session_expires_must_be_in_range:
        "t1_ms = 500" => "session_expires_s = 86401", "sip.session_expires_s", "out of range";
    sip_min_se_must_be_positive:
        "t1_ms = 500" => "min_se_s = 0", "sip.min_se_s", "out of range";
    sip_min_se_must_not_exceed_the_interval:
        "t1_ms = 500" => "session_expires_s = 600\nmin_se_s = 900", "sip.min_se_s", "more than sip.session_expires_s";
    sip_user_agent_must_be_printable:
        "t1_ms = 500" => "user_agent = \"Tandem\\r\\nX-Evil: 1\"", "sip.user_agent", "control";
    rtp_address_must_be_an_ip:
        "address = \"127.0.0.1\"" => "address = \"127.0.0\"", "rtp.address", "is not an IP address";
    rtp_port_min_must_be_even:
        "port_min = 30000" => "port_min = 30001", "rtp.port_min", "odd";
    rtp_port_min_must_not_be_zero:
        "port_min = 30000" => "port_min = 0", "rtp.port_min", "not a port";
    rtp_port_max_must_exceed_port_min:
        "port_max = 30999" => "port_max = 30000", "rtp.port_max", "greater than rtp.port_min";
    rtp_media_timeout_must_be_in_range:
        "port_max = 30999" => "port_max = 30999\nmedia_timeout_s = 86401", "rtp.media_timeout_s", "out of range";
    http_listen_must_be_ip_and_port:
        "listen = \"127.0.0.1:8089\"" => "listen = \"127.0.0.1\"", "http.listen", "not a socket address";
    http_public_url_must_be_http:
        "public_url = \"http://127.0.0.1:8089\"" => "public_url = \"ftp://127.0.0.1\"", "http.public_url", "not an http:// or https:// URL";
    http_public_url_must_have_no_query:
        "public_url = \"http://127.0.0.1:8089\"" => "public_url = \"http://127.0.0.1:8089/?a=b\"", "http.public_url", "query";
    http_public_url_required_for_wildcard_listen:
        "listen = \"127.0.0.1:8089\"\npublic_url = \"http://127.0.0.1:8089\"" => "listen = \"0.0.0.0:8089\"", "http.public_url", "required";
    http_webhook_timeout_must_be_positive:
        "public_url = \"http://127.0.0.1:8089\"" => "public_url = \"http://127.0.0.1:8089\"\nwebhook_timeout_ms = 0", "http.webhook_timeout_ms", "out of range";
    http_listen_must_not_collide_with_sip_tcp:
        "listen = \"127.0.0.1:8089\"" => "listen = \"0.0.0.0:5080\"", "http.listen", "collides with sip.tcp[0]";
    rtp_range_must_not_contain_a_sip_udp_port:
        "port_min = 30000" => "port_min = 5000", "rtp.port_min", "contains sip.udp[0]";
    account_sid_must_start_with_ac:
        "sid = \"AC0123456789abcdefABCDEF0123456789\"" => "sid = \"CA0123456789abcdefABCDEF0123456789\"", "account.sid", "AC followed by 32 hex digits";
    account_sid_must_have_32_hex_digits:
        "sid = \"AC0123456789abcdefABCDEF0123456789\"" => "sid = \"AC0123456789abcdefABCDEF012345678g\"", "account.sid", "AC followed by 32 hex digits";
    account_auth_token_must_not_be_empty:
        "auth_token = \"token\"" => "auth_token = \"\"", "account.auth_token", "empty";
    recording_directory_must_not_be_a_file:
        "[[trunk]]" => "[recording]\ndirectory = \"Cargo.toml\"\n\n[[trunk]]", "recording.directory", "not a folder";
    recording_transcribe_command_must_name_a_program:
        "[[trunk]]" => "[recording]\ntranscribe_command = []\n\n[[trunk]]", "recording.transcribe_command", "must name a program";
    speech_command_must_name_a_program:
        "[[trunk]]" => "[speech]\ncommand = [\" \"]\n\n[[trunk]]", "speech.command", "must name a program";
    database_path_must_not_be_a_folder:
        "[[trunk]]" => "[database]\npath = \"crates\"\n\n[[trunk]]", "database.path", "is a folder";
    database_path_must_name_a_file:
        "[[trunk]]" => "[database]\npath = \"\"\n\n[[trunk]]", "database.path", "must name a file";
    database_retention_is_bounded:
        "[[trunk]]" => "[database]\nretention_days = 99999\n\n[[trunk]]", "database.retention_days", "0 keeps the history";
    database_rejects_unknown_keys:
        "[[trunk]]" => "[database]\nfile = \"x.db\"\n\n[[trunk]]", "database.file", "unknown";
    debug_call_logs_must_not_be_a_file:
        "[[trunk]]" => "[debug]\ncall_logs = \"Cargo.toml\"\n\n[[trunk]]", "debug.call_logs", "not a folder";
    debug_call_logs_must_not_be_empty:
        "[[trunk]]" => "[debug]\ncall_logs = \"\"\n\n[[trunk]]", "debug.call_logs", "empty";
    debug_rejects_unknown_keys:
        "[[trunk]]" => "[debug]\ncall_log = \"logs\"\n\n[[trunk]]", "debug.call_log", "unknown";
    trunk_name_must_be_a_plain_name:
        "name = \"pbx\"" => "name = \"my pbx\"", "trunk[1].name", "letters, digits";
    trunk_names_must_be_unique:
        "name = \"pbx\"" => "name = \"carrier\"", "trunk[1].name", "already the name of trunk[0]";
    trunk_proxy_must_be_a_sip_uri:
        "proxy = \"sip:10.0.0.2;transport=tcp\"" => "proxy = \"http://10.0.0.2\"", "trunk[1].proxy", "not a sip: or sips: URI";
    trunk_proxy_must_have_a_host:
        "proxy = \"sip:10.0.0.2;transport=tcp\"" => "proxy = \"sip:user@\"", "trunk[1].proxy", "no host";
    trunk_proxy_transport_must_be_udp_or_tcp:
        "proxy = \"sip:10.0.0.2;transport=tcp\"" => "proxy = \"sip:10.0.0.2;transport=sctp\"", "trunk[1].proxy", "transport";
    trunk_username_needs_a_password:
        "password = \"secret\"\nprefixes = [\"1000\"]" => "prefixes = [\"1000\"]", "trunk[1].password", "required when username";
    trunk_password_needs_a_username:
        "username = \"tandem\"\n" => "", "trunk[1].username", "required when password";
    trunk_options_interval_must_be_in_range:
        "name = \"pbx\"" => "name = \"pbx\"\noptions_interval_s = 86401", "trunk[1].options_interval_s", "out of range";
    trunk_register_expires_must_be_in_range:
        "name = \"pbx\"" => "name = \"pbx\"\nregister = true\nregister_expires_s = 5", "trunk[1].register_expires_s", "out of range";
    trunk_prefix_must_be_digits:
        "prefixes = [\"+1\", \"+44\"]" => "prefixes = [\"+1\", \"+4a\"]", "trunk[0].prefixes[1]", "\"+4a\" is not";
    trunk_prefix_must_not_repeat_in_a_trunk:
        "prefixes = [\"+1\", \"+44\"]" => "prefixes = [\"+1\", \"+1\"]", "trunk[0].prefixes[1]", "listed twice";
    trunk_prefix_must_not_be_carried_by_two_trunks:
        "prefixes = [\"1000\"]" => "prefixes = [\"1000\", \"+44\"]", "trunk[1].prefixes[1]", "already carried by trunk[0]";
    trunk_source_must_be_ip_or_cidr:
        "sources = [\"10.0.0.0/8\"]" => "sources = [\"10.0.0.0/8\", \"300.1.1.1\"]", "trunk[1].sources[1]", "\"300.1.1.1\" is not an IP address or CIDR";
    trunk_source_prefix_must_fit:
        "sources = [\"10.0.0.0/8\"]" => "sources = [\"10.0.0.0/33\"]", "trunk[1].sources[0]", "not an IP address or CIDR";
    number_must_be_e164_or_digits:
        "number = \"5550002000\"" => "number = \"555-0002\"", "number[1].number", "not an E.164 number";
    number_e164_needs_8_digits:
        "number = \"5550002000\"" => "number = \"+1234567\"", "number[1].number", "not an E.164 number";
    numbers_must_be_unique_with_or_without_plus:
        "number = \"5550002000\"" => "number = \"15550001000\"", "number[1].number", "same number as number[0]";
    number_needs_twiml_or_voice_url:
        "voice_url = \"http://127.0.0.1:9000/voice\"\n" => "", "number[1]", "set one of twiml or voice_url";
    number_must_not_have_both_twiml_and_voice_url:
        "twiml = \"fixtures/twiml/simultaneous-ring.xml\"" => "twiml = \"fixtures/twiml/simultaneous-ring.xml\"\nvoice_url = \"http://x/\"", "number[0].voice_url", "not both";
    number_twiml_file_must_exist:
        "twiml = \"fixtures/twiml/simultaneous-ring.xml\"" => "twiml = \"fixtures/twiml/nope.xml\"", "number[0].twiml", "no such file";
    number_twiml_must_not_be_a_folder:
        "twiml = \"fixtures/twiml/simultaneous-ring.xml\"" => "twiml = \"fixtures/twiml\"", "number[0].twiml", "no such file";
    number_voice_method_needs_voice_url:
        "twiml = \"fixtures/twiml/simultaneous-ring.xml\"" => "twiml = \"fixtures/twiml/simultaneous-ring.xml\"\nvoice_method = \"GET\"", "number[0].voice_method", "only applies with voice_url";
    number_voice_url_must_be_http:
        "voice_url = \"http://127.0.0.1:9000/voice\"" => "voice_url = \"file:///etc/passwd\"", "number[1].voice_url", "not an http:// or https:// URL";
    number_fallback_url_must_be_http:
        "voice_method = \"get\"" => "fallback_url = \"127.0.0.1:9000/fallback\"", "number[1].fallback_url", "not an http:// or https:// URL";
    number_voice_method_must_be_get_or_post:
        "voice_method = \"get\"" => "voice_method = \"PUT\"", "number[1].voice_method", "\"PUT\" is not GET or POST";
    number_fallback_method_must_be_get_or_post:
        "voice_method = \"get\"" => "fallback_url = \"https://app.example/fb\"\nfallback_method = \"DELETE\"", "number[1].fallback_method", "not GET or POST";
    client_identity_must_not_be_empty:
        "identity = \"carol\"" => "identity = \"\"", "client[0].identity", "empty";
    client_identity_must_not_contain_spaces:
        "identity = \"carol\"" => "identity = \"carol smith\"", "client[0].identity", "space";
    client_identity_must_not_contain_delimiters:
        "identity = \"carol\"" => "identity = \"carol<1>\"", "client[0].identity", "delimiter";
    client_identity_must_not_contain_control_characters:
        "identity = \"carol\"" => "identity = \"carol\\u0007\"", "client[0].identity", "control";
    client_identity_must_fit_256_characters:
        "identity = \"carol\"" => &format!("identity = \"{}\"", "a".repeat(257)), "client[0].identity", "longer than 256";
    client_identities_must_be_unique:
        "identity = \"carol\"\npassword = \"secret\"\n" => "identity = \"carol\"\npassword = \"secret\"\n\n[[client]]\nidentity = \"carol\"\npassword = \"x\"\n", "client[1].identity", "already the identity of client[0]";
    client_password_must_not_be_empty:
        "identity = \"carol\"\npassword = \"secret\"" => "identity = \"carol\"\npassword = \"\"", "client[0].password", "empty";
}

#[test]
fn client_identity_may_be_an_email_and_256_characters() {
    assert!(
        parse(&edit(
            "identity = \"carol\"",
            "identity = \"carol@example.com\""
        ))
        .is_ok()
    );
    let long = format!("identity = \"{}\"", "é".repeat(256));
    assert!(parse(&edit("identity = \"carol\"", &long)).is_ok());
}

#[test]
fn ipv6_addresses_are_accepted_everywhere() {
    let text = BASE
        .replace("udp = [\"127.0.0.1:5080\"]", "udp = [\"[::1]:5080\"]")
        .replace("address = \"127.0.0.1\"", "address = \"::1\"")
        .replace(
            "sources = [\"10.0.0.0/8\"]",
            "sources = [\"2001:db8::/32\", \"::1\"]",
        );
    let c = parse(&text).expect("valid");
    assert_eq!(c.rtp.address, "::1".parse::<IpAddr>().expect("ip"));
    assert!(c.trunks[1].allows("2001:db8::7".parse().expect("ip")));
}

#[test]
fn public_url_defaults_to_the_listen_address() {
    let c = parse(&edit("public_url = \"http://127.0.0.1:8089\"\n", "")).expect("valid");
    assert_eq!(c.http.public_url.as_str(), "http://127.0.0.1:8089/");
}

#[test]
fn media_timeout_zero_disables_it() {
    let c = parse(&edit(
        "port_max = 30999",
        "port_max = 30999\nmedia_timeout_s = 0",
    ))
    .expect("valid");
    assert_eq!(c.rtp.media_timeout, None);
}

#[test]
fn summary_is_one_line() {
    let c = parse(BASE).expect("valid");
    let s = c.summary();
    assert!(!s.contains('\n'), "{s}");
    assert!(
        s.starts_with("test.toml: OK: sip udp 127.0.0.1:5080"),
        "{s}"
    );
    assert!(s.ends_with("2 trunks, 2 numbers, 1 client"), "{s}");
}

#[test]
fn normalize_folds_dot_dot_lexically() {
    assert_eq!(
        normalize(Path::new("/a/b/../c/./d")),
        PathBuf::from("/a/c/d")
    );
    assert_eq!(normalize(Path::new("/..")), PathBuf::from("/"));
    assert_eq!(normalize(Path::new("../../x")), PathBuf::from("../../x"));
    assert_eq!(normalize(Path::new("a/..")), PathBuf::from("."));
}

/// `[http] media_auth` is off unless set.
#[test]
fn media_auth_is_off_unless_set() {
    assert!(!parse(BASE).unwrap().http.media_auth);
    let on = edit(
        "public_url = \"http://127.0.0.1:8089\"\n",
        "public_url = \"http://127.0.0.1:8089\"\nmedia_auth = true\n",
    );
    assert!(parse(&on).unwrap().http.media_auth);
}

/// Guessable secrets are named for the start-up warning: the example's
/// `change-me` and anything under 12 characters; long ones are not.
#[test]
fn weak_secrets_are_named() {
    let cfg = parse(BASE).unwrap();
    assert_eq!(
        cfg.weak_secrets(),
        [
            "account.auth_token",
            "client \"carol\" password",
            "trunk \"pbx\" password"
        ]
    );
    let strong = BASE
        .replace(
            "auth_token = \"token\"",
            "auth_token = \"q8Vt2mZx7Lp4Rw9s\"",
        )
        .replace("password = \"secret\"", "password = \"nW3kYp8eQz5tBv2c\"");
    assert!(parse(&strong).unwrap().weak_secrets().is_empty());
    let example = BASE.replace("auth_token = \"token\"", "auth_token = \"change-me\"");
    assert_eq!(
        parse(&example).unwrap().weak_secrets()[0],
        "account.auth_token"
    );
}

/// `sip.tls` with the fixture certificate and key (paths relative to the
/// config), `sip.tls_ca`, and every way the pair can be wrong.
#[test]
fn tls_listener_certificate_key_and_ca() {
    let tls = "tls = [\"127.0.0.1:5081\"]\ntls_certificate = \"fixtures/tls/tandem.crt\"\n\
               tls_private_key = \"fixtures/tls/tandem.key\"\ntls_ca = \"fixtures/tls/ca.crt\"\n\
               t1_ms = 500";
    let c = parse(&edit("t1_ms = 500", tls)).expect("valid");
    assert_eq!(c.sip.tls, vec!["127.0.0.1:5081".parse().unwrap()]);
    let id = c.sip.tls_identity.as_ref().expect("identity");
    assert!(id.private_key.path.ends_with("fixtures/tls/tandem.key"));
    // The key's text never reaches Debug output.
    assert!(!format!("{:?}", c.sip).contains("PRIVATE KEY"));
    assert!(c.sip.tls_ca.is_some());
    let without = |key: &str| {
        let line = tls.lines().find(|l| l.starts_with(key)).unwrap();
        edit("t1_ms = 500", &tls.replace(&format!("{line}\n"), ""))
    };
    assert_rejects(
        &without("tls_certificate"),
        "sip.tls_certificate",
        "set its certificate",
    );
    assert_rejects(
        &without("tls_private_key"),
        "sip.tls_private_key",
        "set its key",
    );
    assert_rejects(&without("tls ="), "sip.tls", "no listen address");
    let only_listen = edit("t1_ms = 500", "tls = [\"127.0.0.1:5081\"]\nt1_ms = 500");
    assert_rejects(&only_listen, "sip.tls_certificate", "set tls_certificate");
    let wrong_key = tls.replace("tls/tandem.key", "tls/ca.key");
    assert_rejects(
        &edit("t1_ms = 500", &wrong_key),
        "sip.tls_certificate",
        "ca.key",
    );
    let missing = tls.replace("tls/tandem.crt", "tls/nope.crt");
    assert_rejects(
        &edit("t1_ms = 500", &missing),
        "sip.tls_certificate",
        "no such file",
    );
    let not_pem = tls.replace("tls/ca.crt", "tls/README.md");
    assert_rejects(
        &edit("t1_ms = 500", &not_pem),
        "sip.tls_ca",
        "no CERTIFICATE",
    );
    let clash = tls.replace("127.0.0.1:5081", "127.0.0.1:5080");
    assert_rejects(
        &edit("t1_ms = 500", &clash),
        "sip.tls[0]",
        "collides with sip.tcp[0]",
    );
}

/// `sip.digest_algorithms`: MD5 alone by default, names checked, order kept.
#[test]
fn digest_algorithms_default_to_md5_and_are_checked() {
    use tandem_sip::auth::Algorithm;
    let c = parse(BASE).expect("valid");
    assert_eq!(c.sip.digest_algorithms, vec![Algorithm::Md5]);
    let both = edit(
        "t1_ms = 500",
        "digest_algorithms = [\"SHA-256\", \"md5\"]\nt1_ms = 500",
    );
    assert_eq!(
        parse(&both).expect("valid").sip.digest_algorithms,
        vec![Algorithm::Sha256, Algorithm::Md5]
    );
    let bad = edit(
        "t1_ms = 500",
        "digest_algorithms = [\"MD5\", \"SHA-1\"]\nt1_ms = 500",
    );
    assert_rejects(&bad, "sip.digest_algorithms[1]", "is not MD5");
    let twice = edit(
        "t1_ms = 500",
        "digest_algorithms = [\"MD5\", \"MD5\"]\nt1_ms = 500",
    );
    assert_rejects(&twice, "sip.digest_algorithms[1]", "listed twice");
    let none = edit("t1_ms = 500", "digest_algorithms = []\nt1_ms = 500");
    assert_rejects(&none, "sip.digest_algorithms", "at least one");
}
