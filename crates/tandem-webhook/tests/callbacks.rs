//! Call progress and recording callbacks against a real HTTP server (the
//! recorder): numbering, retries with backoff, bounded attempts, ordering per
//! call under concurrency, isolation from slow or dead servers, full queues.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tandem_test_support::{RecordedRequest, ScriptedResponse, WebhookRecorder, closed_port_url};
use tandem_webhook::{
    CallInfo, CallStatus, CallbackConfig, CallbackDispatcher, CallbackStats, ClientConfig,
    Direction, EnqueueError, Method, RecordingEvent, RecordingStatus, RecordingTrack, StatusEvent,
    WebhookClient, signature,
};
use tokio::time::Instant;
use url::Url;

const TOKEN: &str = "cb-token";
const WAIT: Duration = Duration::from_secs(3);

fn dispatcher(config: CallbackConfig) -> CallbackDispatcher {
    let client = WebhookClient::new(ClientConfig {
        auth_token: TOKEN.into(),
        ..ClientConfig::default()
    })
    .unwrap();
    CallbackDispatcher::new(client, config)
}

fn fast_config() -> CallbackConfig {
    CallbackConfig {
        queue_capacity: 32,
        max_attempts: 4,
        initial_backoff: Duration::from_millis(60),
        max_backoff: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
    }
}

fn event(child: &str, status: CallStatus) -> StatusEvent {
    StatusEvent {
        call: CallInfo {
            call_sid: child.into(),
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            from: "+14155550100".into(),
            to: "+14155550199".into(),
            status,
            direction: Direction::OutboundDial,
            parent_call_sid: Some("CAparent".into()),
            forwarded_from: None,
            caller_name: None,
        },
        duration_secs: (status == CallStatus::Completed).then_some(12),
        recording: None,
        sip_response_code: None,
        timestamp: UNIX_EPOCH + Duration::from_secs(1_281_929_101),
    }
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

fn seq(r: &RecordedRequest) -> u32 {
    r.param("SequenceNumber").unwrap().parse().unwrap()
}

#[tokio::test]
async fn status_events_are_numbered_from_zero_and_signed() {
    let app = WebhookRecorder::start().await.unwrap();
    let d = dispatcher(fast_config());
    let q = d.open("CAchild");
    let events = [
        CallStatus::Initiated,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
    ];
    for (i, status) in events.into_iter().enumerate() {
        let n = q
            .enqueue_status(
                url(&app.url("/status")),
                Method::Post,
                &event("CAchild", status),
            )
            .unwrap();
        assert_eq!(n as usize, i);
    }
    q.close().await;
    let reqs = app.requests_to("/status");
    assert_eq!(reqs.len(), 4);
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(seq(r), i as u32);
        assert_eq!(r.param("CallStatus"), Some(events[i].as_str()));
        assert_eq!(r.param("CallbackSource"), Some("call-progress-events"));
        assert_eq!(r.param("ParentCallSid"), Some("CAparent"));
        assert_eq!(r.param("Direction"), Some("outbound-dial"));
        assert_eq!(
            r.param("Timestamp"),
            Some("Mon, 16 Aug 2010 03:25:01 +0000")
        );
        assert_eq!(
            r.header("i-twilio-idempotency-token"),
            Some(format!("CAchild-{i}").as_str())
        );
        let signed = app.url(&r.path_and_query());
        assert_eq!(
            r.header("x-twilio-signature"),
            Some(signature(TOKEN, &signed, &r.form_params).as_str())
        );
    }
    assert_eq!(reqs[3].param("CallDuration"), Some("12"));
    assert_eq!(reqs[0].param("CallDuration"), None);
    assert_eq!(
        d.stats(),
        CallbackStats {
            enqueued: 4,
            delivered: 4,
            ..CallbackStats::default()
        }
    );
}

#[tokio::test]
async fn recording_callback_uses_get_with_query_params() {
    let app = WebhookRecorder::start().await.unwrap();
    let d = dispatcher(fast_config());
    let q = d.open("CAparent");
    let ev = RecordingEvent {
        account_sid: "AC1".into(),
        call_sid: "CAparent".into(),
        recording_sid: "RE1".into(),
        recording_url: "http://tandem.test/recordings/RE1".into(),
        status: RecordingStatus::Completed,
        duration_secs: Some(31),
        channels: 2,
        start_time: SystemTime::UNIX_EPOCH,
        track: RecordingTrack::Both,
        source: "DialVerb",
        error_code: None,
    };
    q.enqueue_recording(url(&app.url("/rec?x=1")), Method::Get, &ev)
        .unwrap();
    q.close().await;
    let r = &app.requests_to("/rec")[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.param("x"), Some("1"));
    assert_eq!(r.param("RecordingSource"), Some("DialVerb"));
    assert_eq!(r.param("RecordingChannels"), Some("2"));
    assert_eq!(r.param("RecordingDuration"), Some("31"));
    assert_eq!(r.param("SequenceNumber"), None);
}

#[tokio::test]
async fn failed_callback_is_retried_with_exponential_backoff() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond_once("/status", ScriptedResponse::status(500));
    app.respond_once("/status", ScriptedResponse::status(503));
    let d = dispatcher(fast_config());
    let q = d.open("CAchild");
    q.enqueue_status(
        url(&app.url("/status")),
        Method::Post,
        &event("CAchild", CallStatus::Ringing),
    )
    .unwrap();
    q.enqueue_status(
        url(&app.url("/status")),
        Method::Post,
        &event("CAchild", CallStatus::Completed),
    )
    .unwrap();
    q.close().await;
    let reqs = app.requests_to("/status");
    let seqs: Vec<u32> = reqs.iter().map(seq).collect();
    assert_eq!(seqs, [0, 0, 0, 1]);
    let token = |r: &RecordedRequest| r.header("i-twilio-idempotency-token").map(str::to_owned);
    assert_eq!(token(&reqs[0]), token(&reqs[2]));
    let gap1 = reqs[1].received_at - reqs[0].received_at;
    let gap2 = reqs[2].received_at - reqs[1].received_at;
    assert!(gap1 >= Duration::from_millis(60), "first backoff {gap1:?}");
    assert!(
        gap2 >= Duration::from_millis(120),
        "second backoff {gap2:?}"
    );
    assert!(gap2 < Duration::from_millis(600), "second backoff {gap2:?}");
    let stats = d.stats();
    assert_eq!((stats.delivered, stats.retries, stats.failed), (2, 2, 0));
}

#[tokio::test]
async fn attempts_are_bounded_and_client_errors_are_not_retried() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond("/down", ScriptedResponse::status(500));
    app.respond("/forbidden", ScriptedResponse::status(403));
    let d = dispatcher(CallbackConfig {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        ..fast_config()
    });
    let q = d.open("CAchild");
    q.enqueue_status(
        url(&app.url("/down")),
        Method::Post,
        &event("CAchild", CallStatus::Ringing),
    )
    .unwrap();
    q.enqueue_status(
        url(&app.url("/forbidden")),
        Method::Post,
        &event("CAchild", CallStatus::Completed),
    )
    .unwrap();
    q.close().await;
    assert_eq!(app.requests_to("/down").len(), 3);
    assert_eq!(app.requests_to("/forbidden").len(), 1);
    let stats = d.stats();
    assert_eq!((stats.delivered, stats.retries, stats.failed), (0, 2, 2));
}

/// Many callbacks per call, several calls at once, one call's server slow and
/// failing once: each call's callbacks arrive in `SequenceNumber` order while
/// the calls interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_of_each_call_arrive_in_order_while_calls_interleave() {
    const CALLS: usize = 8;
    const EVENTS: u32 = 15;
    let app = WebhookRecorder::start().await.unwrap();
    app.respond(
        "/status/0",
        ScriptedResponse::status(204).with_delay(Duration::from_millis(5)),
    );
    for _ in 0..4 {
        app.respond_once(
            "/status/0",
            ScriptedResponse::status(204).with_delay(Duration::from_millis(5)),
        );
    }
    app.respond_once("/status/0", ScriptedResponse::status(502));
    let d = dispatcher(CallbackConfig {
        initial_backoff: Duration::from_millis(10),
        ..fast_config()
    });
    let queues: Vec<_> = (0..CALLS).map(|i| d.open(format!("CA{i}"))).collect();
    for n in 0..EVENTS {
        for (i, q) in queues.iter().enumerate() {
            let target = url(&app.url(&format!("/status/{i}")));
            let sent = q
                .enqueue_status(
                    target,
                    Method::Post,
                    &event(&format!("CA{i}"), CallStatus::Ringing),
                )
                .unwrap();
            assert_eq!(sent, n);
        }
    }
    let total = CALLS * EVENTS as usize + 1;
    let all = app.wait_for(total, WAIT).await.unwrap();
    for i in 0..CALLS {
        let path = format!("/status/{i}");
        let mine: Vec<&RecordedRequest> = all.iter().filter(|r| r.path == path).collect();
        let seqs: Vec<u32> = mine.iter().map(|r| seq(r)).collect();
        let mut expected: Vec<u32> = (0..EVENTS).collect();
        if i == 0 {
            expected.insert(4, 4); // the 502 was retried before 5 was sent
        }
        assert_eq!(seqs, expected, "call {i}");
        assert!(
            mine.iter()
                .all(|r| r.param("CallSid") == Some(format!("CA{i}").as_str()))
        );
    }
    let last_of_0 = all
        .iter()
        .filter(|r| r.path == "/status/0")
        .map(|r| r.index)
        .max();
    let first_of_1 = all
        .iter()
        .filter(|r| r.path == "/status/1")
        .map(|r| r.index)
        .min();
    assert!(first_of_1 < last_of_0, "calls did not interleave");
    for q in queues {
        q.close().await;
    }
    assert_eq!(d.stats().delivered, (CALLS as u64) * u64::from(EVENTS));
}

#[tokio::test]
async fn slow_or_dead_servers_do_not_stall_other_calls() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond(
        "/slow",
        ScriptedResponse::status(200).with_delay(Duration::from_secs(5)),
    );
    let dead = closed_port_url("/dead").unwrap();
    let d = dispatcher(CallbackConfig {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(300),
        request_timeout: Duration::from_millis(150),
        ..fast_config()
    });
    let slow = d.open("CAslow");
    let gone = d.open("CAdead");
    let fine = d.open("CAfine");
    let started = Instant::now();
    for _ in 0..10 {
        slow.enqueue_status(
            url(&app.url("/slow")),
            Method::Post,
            &event("CAslow", CallStatus::Ringing),
        )
        .unwrap();
        gone.enqueue_status(
            url(&dead),
            Method::Post,
            &event("CAdead", CallStatus::Ringing),
        )
        .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "enqueue waited"
    );
    for _ in 0..5 {
        fine.enqueue_status(
            url(&app.url("/fine")),
            Method::Post,
            &event("CAfine", CallStatus::Ringing),
        )
        .unwrap();
    }
    // Each stalled call needs >= 1.3 s (slow) or >= 0.9 s (dead) for its first
    // callback alone; the other call's five arrive well within that.
    app.wait_for_path("/fine", 5, Duration::from_millis(800))
        .await
        .unwrap();
    // Both stalled calls are still on their first callback.
    assert!(app.requests_to("/slow").len() < 3);
    assert_eq!(d.stats().failed, 0);
    fine.close().await;
    drop(slow);
    drop(gone);
}

#[tokio::test]
async fn full_queue_drops_without_waiting_and_counts() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond(
        "/slow",
        ScriptedResponse::status(200).with_delay(Duration::from_secs(5)),
    );
    let d = dispatcher(CallbackConfig {
        queue_capacity: 2,
        request_timeout: Duration::from_secs(10),
        ..fast_config()
    });
    let q = d.open("CAbusy");
    let target = url(&app.url("/slow"));
    let ev = event("CAbusy", CallStatus::Ringing);
    q.enqueue_status(target.clone(), Method::Post, &ev).unwrap();
    // Once the first request is in flight the queue holds exactly two more.
    app.wait_for_path("/slow", 1, WAIT).await.unwrap();
    assert_eq!(
        q.enqueue_status(target.clone(), Method::Post, &ev).unwrap(),
        1
    );
    assert_eq!(
        q.enqueue_status(target.clone(), Method::Post, &ev).unwrap(),
        2
    );
    let err = q
        .enqueue_status(target.clone(), Method::Post, &ev)
        .unwrap_err();
    assert!(
        matches!(err, EnqueueError::Full { capacity: 2, .. }),
        "{err:?}"
    );
    assert!(q.enqueue_status(target, Method::Post, &ev).is_err());
    let stats = d.stats();
    assert_eq!((stats.enqueued, stats.dropped), (3, 2));
}
