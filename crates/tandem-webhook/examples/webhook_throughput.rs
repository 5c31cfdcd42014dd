//! Measures webhook throughput on loopback against the recording server:
//! sequential TwiML fetches (latency percentiles) and call progress callbacks
//! from many calls at once (callbacks per second).
//!
//! `cargo run --release -p tandem-webhook --example webhook_throughput -- [FETCHES] [CALLS] [EVENTS]`

use std::io::Write as _;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tandem_test_support::{ScriptedResponse, WebhookRecorder};
use tandem_webhook::{
    CallInfo, CallStatus, CallbackConfig, CallbackDispatcher, ClientConfig, Direction, Method,
    StatusEvent, Target, TwimlRequest, WebhookClient,
};
use url::Url;

fn call(sid: &str) -> CallInfo {
    CallInfo {
        call_sid: sid.to_owned(),
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        from: "+14155550100".into(),
        to: "+14155550199".into(),
        status: CallStatus::Ringing,
        direction: Direction::OutboundDial,
        parent_call_sid: Some("CAparent".into()),
        forwarded_from: None,
        caller_name: None,
    }
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fetches = arg(1, 2000);
    let calls = arg(2, 200);
    let events = arg(3, 4);
    let app = WebhookRecorder::start().await?;
    app.respond(
        "/voice",
        ScriptedResponse::twiml("<Response><Hangup/></Response>"),
    );
    let client = WebhookClient::new(ClientConfig {
        auth_token: "bench".into(),
        ..ClientConfig::default()
    })?;
    let mut out = std::io::stdout().lock();

    let mut latencies = Vec::with_capacity(fetches);
    let request = TwimlRequest {
        target: Target::new(app.url("/voice"), Method::Post),
        base: None,
        params: call("CAbench").voice_params(),
        fallback: None,
    };
    let started = Instant::now();
    for _ in 0..fetches {
        let t = Instant::now();
        client.fetch_twiml(&request).await?;
        latencies.push(t.elapsed());
    }
    let total = started.elapsed();
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    writeln!(
        out,
        "twiml fetch: {fetches} sequential in {total:?} ({:.0}/s); p50 {:?} p99 {:?} max {:?}",
        fetches as f64 / total.as_secs_f64(),
        pct(50),
        pct(99),
        latencies[latencies.len() - 1]
    )?;

    let dispatcher = CallbackDispatcher::new(client, CallbackConfig::default());
    let target = Url::parse(&app.url("/status"))?;
    let before = app.count();
    let started = Instant::now();
    let queues: Vec<_> = (0..calls)
        .map(|i| dispatcher.open(format!("CA{i:032x}")))
        .collect();
    for _ in 0..events {
        for (i, q) in queues.iter().enumerate() {
            let event = StatusEvent {
                call: call(&format!("CA{i:032x}")),
                duration_secs: None,
                recording: None,
                sip_response_code: None,
                timestamp: UNIX_EPOCH,
            };
            q.enqueue_status(target.clone(), Method::Post, &event)?;
        }
    }
    let enqueue_time = started.elapsed();
    let wanted = before + calls * events;
    app.wait_for(wanted, Duration::from_secs(120)).await?;
    let total = started.elapsed();
    writeln!(
        out,
        "callbacks: {} from {calls} calls in {total:?} ({:.0}/s); enqueueing all took {enqueue_time:?}; {:?}",
        calls * events,
        (calls * events) as f64 / total.as_secs_f64(),
        dispatcher.stats()
    )?;
    Ok(())
}
