//! What `/metrics` shows, encoded by prometheus-client in the OpenMetrics
//! text format (docs/metrics.md lists every family). Counters live in
//! atomics where they are counted ([`Metrics`], the SIP endpoint's stats,
//! admission control, the history writer) and are read at scrape time by
//! collectors: a call never takes a lock or builds a label set to count.
//!
//! Counter families are named without `_total` here: the encoder appends
//! it, so the samples keep the names Tandem has always exposed
//! (`tandem_calls_total`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tandem_types::{DialCallStatus, RecordingStatus};

const DIAL_STATUSES: [&str; 7] = [
    "completed",
    "answered",
    "busy",
    "no-answer",
    "failed",
    "canceled",
    "other",
];

/// How a webhook exchange ended: a 2xx/3xx answer, another status, a
/// timeout, any other failure (connect, TLS, protocol).
const WEBHOOK_OUTCOMES: [&str; 4] = ["ok", "http_error", "timeout", "error"];

/// What the engine counts as calls run. All methods are lock-free and never
/// fail, but [`Metrics::trunk_registered`] and [`Metrics::trunk_up`] (a
/// trunk's state change).
#[derive(Debug)]
pub struct Metrics {
    calls_active: AtomicU64,
    calls_total: AtomicU64,
    /// By [`DIAL_STATUSES`].
    dials: [AtomicU64; 7],
    /// completed, absent.
    recordings: [AtomicU64; 2],
    http_requests: AtomicU64,
    /// RTP and RTCP packets dropped as foreign (legs already closed).
    rtp_foreign: AtomicU64,
    /// RTP packets received, sent and lost by legs already closed.
    rtp_received: AtomicU64,
    rtp_sent: AtomicU64,
    rtp_lost: AtomicU64,
    /// Seconds per webhook exchange (fetches and callbacks).
    webhook_seconds: Histogram,
    /// By [`WEBHOOK_OUTCOMES`].
    webhooks: [AtomicU64; 4],
    /// Trunk name -> registered now (trunks with `register = true`).
    trunks: Mutex<BTreeMap<String, bool>>,
    /// Trunk name -> its proxy answered the last OPTIONS (trunks with
    /// `options_interval_s`).
    trunks_up: Mutex<BTreeMap<String, bool>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            calls_active: AtomicU64::new(0),
            calls_total: AtomicU64::new(0),
            dials: Default::default(),
            recordings: Default::default(),
            http_requests: AtomicU64::new(0),
            rtp_foreign: AtomicU64::new(0),
            rtp_received: AtomicU64::new(0),
            rtp_sent: AtomicU64::new(0),
            rtp_lost: AtomicU64::new(0),
            // 5 ms to ~10 s.
            webhook_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            webhooks: Default::default(),
            trunks: Mutex::new(BTreeMap::new()),
            trunks_up: Mutex::new(BTreeMap::new()),
        }
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn add(a: &AtomicU64, n: u64) {
    if n > 0 {
        a.fetch_add(n, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A call was created (inbound INVITE accepted).
    pub fn call_started(&self) {
        add(&self.calls_total, 1);
        add(&self.calls_active, 1);
    }

    /// A call ended (never goes below zero).
    pub fn call_ended(&self) {
        let _ = self
            .calls_active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// A `<Dial>` ended with `status` (its `DialCallStatus`).
    pub fn dial_ended(&self, status: DialCallStatus) {
        let i = DIAL_STATUSES
            .iter()
            .position(|s| *s == status.as_str())
            .unwrap_or(DIAL_STATUSES.len() - 1);
        add(&self.dials[i], 1);
    }

    /// A recording stopped with `status` (`completed` or `absent`).
    pub fn recording_finished(&self, status: RecordingStatus) {
        add(
            &self.recordings[usize::from(status != RecordingStatus::Completed)],
            1,
        );
    }

    /// The HTTP listener served a request.
    pub(crate) fn http_request(&self) {
        add(&self.http_requests, 1);
    }

    /// A media leg closed having dropped `n` foreign packets.
    pub fn rtp_foreign(&self, n: u64) {
        add(&self.rtp_foreign, n);
    }

    /// A media leg closed: what it received, sent and found lost.
    pub fn rtp_leg_closed(&self, received: u64, sent: u64, lost: u64) {
        add(&self.rtp_received, received);
        add(&self.rtp_sent, sent);
        add(&self.rtp_lost, lost);
    }

    /// A webhook exchange ended after `elapsed`: its status, or a failure
    /// (`timeout` tells a timeout from other failures).
    pub fn webhook(&self, elapsed: Duration, outcome: Result<u16, bool>) {
        self.webhook_seconds.observe(elapsed.as_secs_f64());
        let i = match outcome {
            Ok(s) if s < 400 => 0,
            Ok(_) => 1,
            Err(true) => 2,
            Err(false) => 3,
        };
        add(&self.webhooks[i], 1);
    }

    /// A trunk's registration is up (or not) now.
    pub fn trunk_registered(&self, trunk: &str, up: bool) {
        self.trunks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(trunk.to_owned(), up);
    }

    /// A trunk's proxy answered its last OPTIONS keep-alive (or did not).
    pub fn trunk_up(&self, trunk: &str, up: bool) {
        self.trunks_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(trunk.to_owned(), up);
    }

    /// Calls up now.
    pub fn calls_active(&self) -> u64 {
        get(&self.calls_active)
    }

    /// A registry showing these metrics (add the engine's collector to it).
    pub fn registry(self: &Arc<Self>) -> Registry {
        let mut r = Registry::default();
        r.register_collector(Box::new(Arc::clone(self)));
        r
    }
}

impl Collector for Metrics {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        gauge(
            &mut enc,
            "tandem_calls_active",
            "Calls in progress.",
            get(&self.calls_active),
        )?;
        counter(
            &mut enc,
            "tandem_calls",
            "Calls created since start (rate() gives calls per second).",
            get(&self.calls_total),
        )?;
        let dials: Vec<_> = DIAL_STATUSES
            .iter()
            .zip(&self.dials)
            .map(|(s, n)| (*s, get(n)))
            .collect();
        counters(
            &mut enc,
            "tandem_dials",
            "Dial verbs ended, by DialCallStatus.",
            "status",
            &dials,
        )?;
        counters(
            &mut enc,
            "tandem_recordings",
            "Dial recordings finished, by RecordingStatus.",
            "status",
            &[
                ("completed", get(&self.recordings[0])),
                ("absent", get(&self.recordings[1])),
            ],
        )?;
        counter(
            &mut enc,
            "tandem_http_requests",
            "Requests served by the HTTP listener.",
            get(&self.http_requests),
        )?;
        counter(
            &mut enc,
            "tandem_rtp_foreign_packets",
            "RTP/RTCP packets dropped: from an address a leg may not latch to, not its latched source, or another SSRC (counted when the leg closes).",
            get(&self.rtp_foreign),
        )?;
        counters(
            &mut enc,
            "tandem_rtp_packets",
            "RTP packets received from and sent to the peers, by legs that have closed.",
            "direction",
            &[
                ("received", get(&self.rtp_received)),
                ("sent", get(&self.rtp_sent)),
            ],
        )?;
        counter(
            &mut enc,
            "tandem_rtp_packets_lost",
            "RTP packets that never reached Tandem: gaps in the sequence numbers of what legs received, less late arrivals (counted when the leg closes).",
            get(&self.rtp_lost),
        )?;
        let m = enc.encode_descriptor(
            "tandem_webhook_duration_seconds",
            "Time from a webhook's request to its whole answer (TwiML fetches and callbacks), redirects included.",
            None,
            MetricType::Histogram,
        )?;
        self.webhook_seconds.encode(m)?;
        let outcomes: Vec<_> = WEBHOOK_OUTCOMES
            .iter()
            .zip(&self.webhooks)
            .map(|(o, n)| (*o, get(n)))
            .collect();
        counters(
            &mut enc,
            "tandem_webhooks",
            "Webhook exchanges by outcome: ok (2xx/3xx), http_error (another status), timeout, error (connect, TLS, protocol).",
            "outcome",
            &outcomes,
        )?;
        trunk_gauge(
            &mut enc,
            "tandem_trunk_registered",
            "1 while a trunk with register = true is registered, else 0.",
            &self.trunks,
        )?;
        trunk_gauge(
            &mut enc,
            "tandem_trunk_up",
            "1 while a trunk with options_interval_s answers its OPTIONS keep-alives, else 0.",
            &self.trunks_up,
        )?;
        Ok(())
    }
}

/// A 0/1 gauge per trunk, from a map kept by state changes.
fn trunk_gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    states: &Mutex<BTreeMap<String, bool>>,
) -> fmt::Result {
    let states: Vec<(String, bool)> = states
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(t, up)| (t.clone(), *up))
        .collect();
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (t, up) in &states {
        let labels = [("trunk", t.as_str())];
        ConstGauge::new(i64::from(*up)).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A count as a gauge's value (saturating).
fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One counter (`name` without `_total`).
pub(crate) fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: u64,
) -> fmt::Result {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

/// One gauge.
pub(crate) fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: u64,
) -> fmt::Result {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(gauge_value(v)).encode(m)
}

/// A counter family with one label.
pub(crate) fn counters(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (l, v) in values {
        let labels = [(label, *l)];
        ConstCounter::new(*v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The registry in the OpenMetrics text format.
pub(crate) fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(4096);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::warn!(error = %e, "metrics not encoded");
    }
    out
}

/// The content type of [`render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
