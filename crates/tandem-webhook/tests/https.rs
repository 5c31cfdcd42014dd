//! Webhooks over HTTPS: a TLS server on loopback (certificate from a test CA,
//! `tests/fixtures/tls/`) relays to the recorder. A client trusting the CA
//! fetches and signs over the `https` URL; one that does not fails with a TLS
//! error before any request reaches the application.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tandem_test_support::{ScriptedResponse, WebhookRecorder};
use tandem_webhook::{
    CallbackConfig, CallbackDispatcher, ClientConfig, Method, Params, Target, TwimlRequest,
    WebhookClient, WebhookError, signature,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use url::Url;

const CA: &str = include_str!("fixtures/tls/ca.pem");
const CERT: &str = include_str!("fixtures/tls/localhost.pem");
const KEY: &str = include_str!("fixtures/tls/localhost.key");
const TOKEN: &str = "tls-token";
const DOC: &str = "<Response><Hangup/></Response>";

/// A TLS terminator in front of `backend`; aborted when the handle drops.
struct TlsFront {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tls_front(backend: SocketAddr) -> TlsFront {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(CERT.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut relays = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            while relays.try_join_next().is_some() {}
            let acceptor = acceptor.clone();
            relays.spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut back) = TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
                }
            });
        }
    });
    TlsFront { addr, task }
}

fn client(trust_test_ca: bool) -> WebhookClient {
    WebhookClient::new(ClientConfig {
        auth_token: TOKEN.into(),
        twiml_timeout: Duration::from_secs(2),
        extra_roots_pem: trust_test_ca.then(|| CA.to_owned()),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn params() -> Params {
    [("CallSid", "CAtls"), ("From", "+14155550100")]
        .into_iter()
        .collect()
}

#[tokio::test]
async fn https_fetch_is_signed_over_the_https_url() {
    let app = WebhookRecorder::start().await.unwrap();
    app.respond("/voice", ScriptedResponse::twiml(DOC));
    let front = tls_front(app.addr()).await;
    let url = format!("https://localhost:{}/voice?x=1", front.addr.port());
    let doc = client(true)
        .fetch_twiml(&TwimlRequest {
            target: Target::new(url.clone(), Method::Post),
            base: None,
            params: params(),
            fallback: None,
        })
        .await
        .unwrap();
    assert_eq!(doc.body, DOC);
    assert_eq!(doc.url.as_str(), url);
    let r = &app.wait_for(1, Duration::from_secs(2)).await.unwrap()[0];
    assert_eq!(r.param("CallSid"), Some("CAtls"));
    assert_eq!(
        r.header("x-twilio-signature"),
        Some(signature(TOKEN, &url, &r.form_params).as_str())
    );
}

#[tokio::test]
async fn untrusted_certificate_fails_as_tls_without_reaching_the_app() {
    let app = WebhookRecorder::start().await.unwrap();
    let front = tls_front(app.addr()).await;
    let url = format!("https://127.0.0.1:{}/voice", front.addr.port());
    let err = client(false)
        .fetch_twiml(&TwimlRequest {
            target: Target::new(url.clone(), Method::Post),
            base: None,
            params: params(),
            fallback: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::Tls { .. }), "{err:?}");
    assert_eq!(err.error_code(), 11220);
    assert!(!err.is_retryable());
    assert_eq!(err.url(), url);
    assert_eq!(app.count(), 0);
}

#[tokio::test]
async fn callbacks_are_delivered_over_https() {
    let app = WebhookRecorder::start().await.unwrap();
    let front = tls_front(app.addr()).await;
    let d = CallbackDispatcher::new(client(true), CallbackConfig::default());
    let q = d.open("CAtls");
    let url = Url::parse(&format!("https://127.0.0.1:{}/status", front.addr.port())).unwrap();
    q.enqueue(tandem_webhook::Callback {
        url,
        method: Method::Get,
        params: params(),
        kind: tandem_webhook::CallbackKind::CallProgress,
    })
    .unwrap();
    q.close().await;
    assert_eq!(d.stats().delivered, 1);
    assert_eq!(
        app.requests_to("/status")[0].param("From"),
        Some("+14155550100")
    );
}
