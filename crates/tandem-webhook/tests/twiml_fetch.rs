//! TwiML fetches against a real HTTP server (the recorder): parameters and
//! methods, signature, fallback, timeouts, dead and garbage servers,
//! redirects and responses that are not TwiML.

use std::time::{Duration, Instant};

use tandem_test_support::{GarbageServer, ScriptedResponse, WebhookRecorder, closed_port_url};
use tandem_webhook::{
    CallInfo, CallStatus, ClientConfig, Direction, Method, Params, Target, TwimlRequest,
    WebhookClient, WebhookError, signature,
};
use url::Url;

const TOKEN: &str = "test-auth-token";
const DOC: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>hi</Say></Response>";
const WAIT: Duration = Duration::from_secs(2);

fn client(timeout_ms: u64) -> WebhookClient {
    WebhookClient::new(ClientConfig {
        auth_token: TOKEN.into(),
        twiml_timeout: Duration::from_millis(timeout_ms),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn call() -> CallInfo {
    CallInfo {
        call_sid: "CA0123456789abcdef0123456789abcdef".into(),
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        from: "+14155550100".into(),
        to: "+14155550199".into(),
        status: CallStatus::Ringing,
        direction: Direction::Inbound,
        parent_call_sid: None,
        forwarded_from: None,
        caller_name: None,
    }
}

fn request(url: String, method: Method) -> TwimlRequest {
    TwimlRequest {
        target: Target::new(url, method),
        base: None,
        params: call().voice_params(),
        fallback: None,
    }
}

#[tokio::test]
async fn post_sends_voice_params_in_a_signed_form_body() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond("/voice", ScriptedResponse::twiml(DOC));
    let doc = client(1000)
        .fetch_twiml(&request(app.url("/voice?app=1"), Method::Post))
        .await
        .unwrap();
    assert_eq!(doc.body, DOC);
    assert_eq!(doc.url.as_str(), app.url("/voice?app=1"));
    assert!(!doc.from_fallback);

    let reqs = app.wait_for(1, WAIT).await.unwrap();
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.query.as_deref(), Some("app=1"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let expected = call().voice_params();
    let sent: Params = r.form_params.iter().cloned().collect();
    assert_eq!(sent, expected);
    assert_eq!(r.param("From"), Some("+14155550100"));
    assert_eq!(r.param("ApiVersion"), Some("2010-04-01"));
    // What an application's validator computes from what it received.
    let url = app.url(&r.path_and_query());
    assert_eq!(
        r.header("x-twilio-signature"),
        Some(signature(TOKEN, &url, &r.form_params).as_str())
    );
}

#[tokio::test]
async fn get_sends_params_in_the_query_after_the_existing_one() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond("/voice", ScriptedResponse::twiml(DOC));
    client(1000)
        .fetch_twiml(&request(app.url("/voice?app=1"), Method::Get))
        .await
        .unwrap();
    let r = &app.wait_for(1, WAIT).await.unwrap()[0];
    assert_eq!(r.method, "GET");
    assert!(r.body.is_empty());
    assert_eq!(r.query_params[0], ("app".into(), "1".into()));
    let sent: Params = r.query_params[1..].iter().cloned().collect();
    assert_eq!(sent, call().voice_params());
    assert!(r.query.as_deref().unwrap().contains("From=%2B14155550100"));
    let url = app.url(&r.path_and_query());
    assert_eq!(
        r.header("x-twilio-signature"),
        Some(signature(TOKEN, &url, &[]).as_str())
    );
}

#[tokio::test]
async fn relative_target_resolves_against_the_document_url() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond("/app/next", ScriptedResponse::twiml(DOC));
    let mut req = request("next".into(), Method::Post);
    req.base = Some(Url::parse(&app.url("/app/voice.xml?x=1")).unwrap());
    let doc = client(1000).fetch_twiml(&req).await.unwrap();
    assert_eq!(doc.url.as_str(), app.url("/app/next"));
    assert_eq!(app.wait_for(1, WAIT).await.unwrap()[0].path, "/app/next");
}

#[tokio::test]
async fn server_error_goes_to_the_fallback_with_error_code_and_url() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond("/voice", ScriptedResponse::status(500));
    app.respond("/fallback", ScriptedResponse::twiml(DOC));
    let mut req = request(app.url("/voice"), Method::Post);
    req.fallback = Some(Target::new(app.url("/fallback"), Method::Get));
    let doc = client(1000).fetch_twiml(&req).await.unwrap();
    assert!(doc.from_fallback);
    assert_eq!(doc.body, DOC);

    let reqs = app.wait_for(2, WAIT).await.unwrap();
    assert_eq!(reqs[0].path, "/voice");
    let fb = &reqs[1];
    assert_eq!((fb.method.as_str(), fb.path.as_str()), ("GET", "/fallback"));
    assert_eq!(fb.param("ErrorCode"), Some("11200"));
    assert_eq!(fb.param("ErrorUrl"), Some(app.url("/voice").as_str()));
    assert_eq!(fb.param("CallSid"), Some(call().call_sid.as_str()));
}

#[tokio::test]
async fn failing_fallback_reports_both_failures() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond("/voice", ScriptedResponse::status(404));
    app.respond("/fallback", ScriptedResponse::status(503));
    let mut req = request(app.url("/voice"), Method::Post);
    req.fallback = Some(Target::new(app.url("/fallback"), Method::Post));
    let err = client(1000).fetch_twiml(&req).await.unwrap_err();
    let WebhookError::Fallback { primary, fallback } = &err else {
        panic!("expected a fallback error, got {err:?}");
    };
    assert_eq!(primary.status(), Some(404));
    assert_eq!(fallback.status(), Some(503));
    assert_eq!(fallback.url(), app.url("/fallback"));
}

#[tokio::test]
async fn slow_server_times_out_quickly_and_falls_back() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond(
        "/slow",
        ScriptedResponse::twiml(DOC).with_delay(Duration::from_secs(5)),
    );
    app.respond("/fallback", ScriptedResponse::twiml(DOC));
    let started = Instant::now();
    let err = client(100)
        .fetch_twiml(&request(app.url("/slow"), Method::Post))
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::Timeout { .. }), "{err:?}");
    assert_eq!(err.error_code(), 11205);
    assert!(started.elapsed() < Duration::from_secs(1));

    let mut req = request(app.url("/slow"), Method::Post);
    req.fallback = Some(Target::new(app.url("/fallback"), Method::Post));
    let doc = client(100).fetch_twiml(&req).await.unwrap();
    assert!(doc.from_fallback);
    let fb = app.wait_for_path("/fallback", 1, WAIT).await.unwrap();
    assert_eq!(fb[0].param("ErrorCode"), Some("11205"));
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let url = closed_port_url("/voice").unwrap();
    let err = client(1000)
        .fetch_twiml(&request(url.clone(), Method::Post))
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::Connect { .. }), "{err:?}");
    assert_eq!(err.url(), url);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn garbage_answer_is_a_protocol_error() {
    let garbage = GarbageServer::start(b"\x00\x01 this is not HTTP\r\n\r\n")
        .await
        .unwrap();
    let err = client(1000)
        .fetch_twiml(&request(garbage.url("/voice"), Method::Post))
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::Protocol { .. }), "{err:?}");
    assert_eq!(err.error_code(), 11206);
}

#[tokio::test]
async fn non_twiml_content_type_is_rejected() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond(
        "/json",
        ScriptedResponse::twiml("{}").with_body(Some("application/json"), "{\"ok\":true}"),
    );
    app.respond(
        "/none",
        ScriptedResponse::twiml(DOC).with_body(None, "<Response/>"),
    );
    app.respond(
        "/html",
        ScriptedResponse::twiml(DOC).with_body(Some("text/html; charset=utf-8"), DOC),
    );
    let c = client(1000);
    let err = c
        .fetch_twiml(&request(app.url("/json"), Method::Post))
        .await
        .unwrap_err();
    let WebhookError::NotTwiml {
        status,
        content_type,
        ..
    } = &err
    else {
        panic!("expected NotTwiml, got {err:?}");
    };
    assert_eq!((*status, content_type.as_str()), (200, "application/json"));
    assert_eq!(err.error_code(), 12300);
    let err = c
        .fetch_twiml(&request(app.url("/none"), Method::Post))
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::NotTwiml { .. }), "{err:?}");
    let doc = c
        .fetch_twiml(&request(app.url("/html"), Method::Post))
        .await
        .unwrap();
    assert_eq!(doc.body, DOC);
}

#[tokio::test]
async fn oversized_body_is_rejected() {
    let app = WebhookRecorder::start().await.unwrap();
    let big = format!("<Response>{}</Response>", "x".repeat(70 * 1024));
    app.respond("/big", ScriptedResponse::twiml(big));
    let err = client(1000)
        .fetch_twiml(&request(app.url("/big"), Method::Post))
        .await
        .unwrap_err();
    assert!(
        matches!(err, WebhookError::BodyTooLarge { limit: 65536, .. }),
        "{err:?}"
    );
    assert_eq!(err.error_code(), 11750);
}

#[tokio::test]
async fn redirects_are_followed_and_the_final_url_is_the_base() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond(
        "/old",
        ScriptedResponse::status(302).with_header("Location", "/new/voice.xml"),
    );
    app.respond(
        "/keep",
        ScriptedResponse::status(307).with_header("Location", "/new/voice.xml"),
    );
    app.respond("/new/voice.xml", ScriptedResponse::twiml(DOC));
    let c = client(1000);
    let doc = c
        .fetch_twiml(&request(app.url("/old"), Method::Post))
        .await
        .unwrap();
    assert_eq!(doc.url.as_str(), app.url("/new/voice.xml"));
    let reqs = app.wait_for(2, WAIT).await.unwrap();
    // 302 after POST: a plain GET of the Location, as browsers do.
    assert_eq!(reqs[1].method, "GET");
    assert_eq!(reqs[1].query, None);

    c.fetch_twiml(&request(app.url("/keep"), Method::Post))
        .await
        .unwrap();
    let reqs = app.wait_for(4, WAIT).await.unwrap();
    // 307 repeats the POST with its parameters, signed for the new URL.
    let r = &reqs[3];
    assert_eq!(r.method, "POST");
    assert_eq!(r.param("CallSid"), Some(call().call_sid.as_str()));
    let url = app.url(&r.path_and_query());
    assert_eq!(
        r.header("x-twilio-signature"),
        Some(signature(TOKEN, &url, &r.form_params).as_str())
    );
}

#[tokio::test]
async fn redirect_loops_are_bounded() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond(
        "/loop",
        ScriptedResponse::status(302).with_header("Location", "/loop"),
    );
    let err = client(1000)
        .fetch_twiml(&request(app.url("/loop"), Method::Get))
        .await
        .unwrap_err();
    assert!(
        matches!(err, WebhookError::TooManyRedirects { limit: 5, .. }),
        "{err:?}"
    );
    assert_eq!(app.count(), 6);
}

#[tokio::test]
async fn relative_target_without_a_base_fails_without_a_request() {
    let err = client(1000)
        .fetch_twiml(&request("/voice".into(), Method::Post))
        .await
        .unwrap_err();
    assert!(
        matches!(err, WebhookError::RelativeWithoutBase { .. }),
        "{err:?}"
    );
    assert_eq!(err.error_code(), 11210);
}

#[tokio::test]
async fn url_credentials_become_basic_auth() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond("/voice", ScriptedResponse::twiml(DOC));
    let url = format!("http://alice:s3cret@{}/voice", app.addr());
    client(1000)
        .fetch_twiml(&request(url, Method::Post))
        .await
        .unwrap();
    let r = &app.wait_for(1, WAIT).await.unwrap()[0];
    // base64("alice:s3cret")
    assert_eq!(r.header("authorization"), Some("Basic YWxpY2U6czNjcmV0"));
    let signed = app.url("/voice");
    assert_eq!(
        r.header("x-twilio-signature"),
        Some(signature(TOKEN, &signed, &r.form_params).as_str())
    );
}
