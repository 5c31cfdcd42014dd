//! The config file as serde reads it: one struct per TOML table, every one
//! `deny_unknown_fields`, values still as written. `validate` turns it into
//! [`super::Config`].

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a config file of TOML tables")]
pub(crate) struct RawConfig {
    pub sip: RawSip,
    pub rtp: RawRtp,
    pub http: RawHttp,
    pub account: RawAccount,
    #[serde(default)]
    pub recording: RawRecording,
    #[serde(default)]
    pub speech: RawSpeech,
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub trunk: Vec<RawTrunk>,
    #[serde(default)]
    pub number: Vec<RawNumber>,
    #[serde(default)]
    pub client: Vec<RawClient>,
    #[serde(default)]
    pub debug: RawDebug,
    #[serde(default)]
    pub limits: RawLimits,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [limits] table")]
pub(crate) struct RawLimits {
    pub max_calls: Option<u64>,
    pub max_cps: Option<u64>,
    pub source_requests_per_second: Option<u64>,
    pub source_auth_failures_per_minute: Option<u64>,
    pub identity_auth_failures_per_minute: Option<u64>,
}

/// `[debug]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [debug] table")]
pub(crate) struct RawDebug {
    pub call_logs: Option<String>,
}

/// `[sip]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [sip] table")]
pub(crate) struct RawSip {
    #[serde(default)]
    pub udp: Vec<String>,
    #[serde(default)]
    pub tcp: Vec<String>,
    #[serde(default)]
    pub tls: Vec<String>,
    pub tls_certificate: Option<String>,
    pub tls_private_key: Option<String>,
    pub tls_ca: Option<String>,
    #[serde(default)]
    pub dns_servers: Vec<String>,
    pub digest_algorithms: Option<Vec<String>>,
    pub external_address: Option<String>,
    pub t1_ms: Option<u64>,
    pub t2_ms: Option<u64>,
    pub t4_ms: Option<u64>,
    pub user_agent: Option<String>,
    pub tcp_max_connections: Option<u64>,
    pub tcp_max_per_source: Option<u64>,
    pub tcp_header_timeout_ms: Option<u64>,
    pub tcp_write_timeout_ms: Option<u64>,
    pub session_expires_s: Option<u64>,
    pub min_se_s: Option<u64>,
}

/// `[rtp]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [rtp] table")]
pub(crate) struct RawRtp {
    pub address: String,
    pub port_min: Option<u16>,
    pub port_max: Option<u16>,
    pub latching: Option<bool>,
    pub media_timeout_s: Option<u64>,
    pub srtp_over_tls: Option<bool>,
}

/// `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [http] table")]
pub(crate) struct RawHttp {
    pub listen: String,
    pub public_url: Option<String>,
    pub webhook_timeout_ms: Option<u64>,
    pub media_auth: Option<bool>,
}

/// `[account]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [account] table")]
pub(crate) struct RawAccount {
    pub sid: String,
    pub auth_token: String,
}

/// `[recording]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [recording] table")]
pub(crate) struct RawRecording {
    pub directory: Option<String>,
    pub transcribe_command: Option<Vec<String>>,
}

/// `[speech]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [speech] table")]
pub(crate) struct RawSpeech {
    pub command: Option<Vec<String>>,
}

/// `[database]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [database] table")]
pub(crate) struct RawDatabase {
    pub path: Option<String>,
    pub retention_days: Option<u32>,
}

/// One `[[trunk]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[trunk]] table")]
pub(crate) struct RawTrunk {
    pub name: String,
    pub proxy: String,
    pub username: Option<String>,
    pub password: Option<String>,
    #[serde(default)]
    pub register: bool,
    pub register_expires_s: Option<u64>,
    pub options_interval_s: Option<u64>,
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub sources: Vec<String>,
}

/// One `[[number]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[number]] table")]
pub(crate) struct RawNumber {
    pub number: String,
    pub twiml: Option<String>,
    pub voice_url: Option<String>,
    pub voice_method: Option<String>,
    pub fallback_url: Option<String>,
    pub fallback_method: Option<String>,
}

/// One `[[client]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[client]] table")]
pub(crate) struct RawClient {
    pub identity: String,
    pub password: String,
    pub any_from: Option<bool>,
}
