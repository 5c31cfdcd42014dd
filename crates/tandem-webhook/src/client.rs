//! The HTTP client every webhook goes through (hyper-util's pooled client over
//! plain TCP or rustls with the bundled Mozilla roots): one signed exchange
//! with redirects under one timeout, and TwiML fetches with Twilio's
//! fallback-URL behaviour and response checks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use crate::error::WebhookError;
use crate::params::{Params, fallback_params};
use crate::request::{Method, prepare, redact, resolve_url};
use crate::tls::{ClientBuildError, is_tls_failure, tls_config};

/// Client settings. `Debug` never shows the auth token.
#[derive(Clone)]
pub struct ClientConfig {
    /// Account auth token: the HMAC key of `X-Twilio-Signature`.
    pub auth_token: String,
    /// Whole-exchange timeout of a TwiML fetch (Twilio: 15 s).
    pub twiml_timeout: Duration,
    /// TCP connect timeout of every request (Twilio: 5 s); the whole
    /// exchange is still bounded by the request's own timeout.
    pub connect_timeout: Duration,
    /// Largest TwiML body accepted (Twilio: 64 kB, error 11750).
    pub max_twiml_bytes: usize,
    /// Redirects followed before giving up (error 11215).
    pub max_redirects: u8,
    /// `User-Agent` header.
    pub user_agent: String,
    /// PEM certificates trusted as roots for `https` besides the bundled
    /// Mozilla roots (a private CA; the caller reads the file).
    pub extra_roots_pem: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            auth_token: String::new(),
            twiml_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            max_twiml_bytes: 64 * 1024,
            max_redirects: 5,
            user_agent: concat!("Tandem/", env!("CARGO_PKG_VERSION")).to_owned(),
            extra_roots_pem: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("auth_token", &"<redacted>")
            .field("twiml_timeout", &self.twiml_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_twiml_bytes", &self.max_twiml_bytes)
            .field("max_redirects", &self.max_redirects)
            .field("user_agent", &self.user_agent)
            .field("extra_roots_pem", &self.extra_roots_pem.is_some())
            .finish()
    }
}

/// A URL attribute and its method, as written in TwiML or configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Absolute, or relative to the document's URL.
    pub url: String,
    /// GET or POST.
    pub method: Method,
}

impl Target {
    /// A target with the given URL and method.
    pub fn new(url: impl Into<String>, method: Method) -> Self {
        Self {
            url: url.into(),
            method,
        }
    }
}

/// A request for a TwiML document.
#[derive(Debug, Clone)]
pub struct TwimlRequest {
    /// Where to fetch from.
    pub target: Target,
    /// The current document's URL, for relative targets.
    pub base: Option<Url>,
    /// Request parameters.
    pub params: Params,
    /// Requested with `ErrorCode`/`ErrorUrl` added if the target fails.
    pub fallback: Option<Target>,
}

/// A fetched TwiML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwimlDocument {
    /// The XML text (not yet parsed).
    pub body: String,
    /// The URL it came from after redirects, without the parameters Tandem
    /// added: the base for the document's relative URLs.
    pub url: Url,
    /// True when the fallback URL supplied it.
    pub from_fallback: bool,
}

/// A completed exchange (any status).
#[derive(Debug, Clone)]
pub struct Response {
    /// Final HTTP status.
    pub status: u16,
    /// `Content-Type` header, empty when absent.
    pub content_type: String,
    /// Final URL after redirects, without the parameters Tandem added.
    pub url: Url,
    /// Body, or empty when it exceeded the limit (see `body_complete`).
    pub body: Bytes,
    /// False when the body was over the limit and discarded.
    pub body_complete: bool,
}

/// Sends webhooks. Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct WebhookClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    config: ClientConfig,
    observer: Option<Arc<dyn ExchangeObserver>>,
}

/// Told of every exchange a [`WebhookClient`] makes (TwiML fetches and
/// callbacks alike): for metrics.
pub trait ExchangeObserver: Send + Sync {
    /// An exchange ended after `elapsed` with this HTTP status, or failed.
    fn exchanged(&self, elapsed: Duration, outcome: Result<u16, &WebhookError>);
}

impl fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookClient")
            .field("config", &self.inner.config)
            .finish()
    }
}

const SIGNATURE: HeaderName = HeaderName::from_static("x-twilio-signature");
const FORM: &str = "application/x-www-form-urlencoded";

impl WebhookClient {
    /// A client with its own connection pool, speaking `http` and `https`
    /// (TLS 1.2/1.3 via rustls, Mozilla's roots plus `extra_roots_pem`).
    pub fn new(config: ClientConfig) -> Result<Self, ClientBuildError> {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(config.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(config.extra_roots_pem.as_deref())?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(16)
            .build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                observer: None,
            }),
        })
    }

    /// The same client (its pool shared) telling `observer` of every
    /// exchange from now on.
    pub fn observed(&self, observer: Arc<dyn ExchangeObserver>) -> Self {
        Self {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                config: self.inner.config.clone(),
                observer: Some(observer),
            }),
        }
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// One signed exchange: sends `params` to `url` with `method`, follows
    /// redirects, reads at most `max_body` bytes of body, all within
    /// `timeout`. Any status is `Ok`; the caller decides what it means.
    pub async fn exchange(
        &self,
        method: Method,
        url: &Url,
        params: &Params,
        extra_headers: &[(HeaderName, HeaderValue)],
        timeout: Duration,
        max_body: usize,
    ) -> Result<Response, WebhookError> {
        let started = tokio::time::Instant::now();
        let run = self.exchange_inner(method, url, params, extra_headers, max_body);
        let result = match tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(WebhookError::Timeout {
                url: redact(url),
                after: timeout,
            }),
        };
        if let Some(o) = &self.inner.observer {
            o.exchanged(started.elapsed(), result.as_ref().map(|r| r.status));
        }
        result
    }

    async fn exchange_inner(
        &self,
        mut method: Method,
        url: &Url,
        params: &Params,
        extra_headers: &[(HeaderName, HeaderValue)],
        max_body: usize,
    ) -> Result<Response, WebhookError> {
        let config = &self.inner.config;
        let mut hop_url = url.clone();
        let mut params = params.clone();
        let mut redirects = 0u8;
        loop {
            let shown = redact(&hop_url);
            let prepared = prepare(method, &hop_url, &params, &config.auth_token);
            let uri: http::Uri =
                prepared
                    .url
                    .as_str()
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| WebhookError::Connect {
                        url: shown.clone(),
                        reason: format!("URL not accepted by the HTTP client: {e}"),
                    })?;
            let mut builder = hyper::Request::builder()
                .method(method.as_str())
                .uri(uri)
                .header(header::USER_AGENT, config.user_agent.as_str())
                .header(header::ACCEPT, "*/*")
                .header(SIGNATURE, prepared.signature.as_str());
            if let Some((user, pass)) = &prepared.basic_auth {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                builder = builder.header(header::AUTHORIZATION, format!("Basic {token}"));
            }
            if prepared.body.is_some() {
                builder = builder.header(header::CONTENT_TYPE, FORM);
            }
            for (name, value) in extra_headers {
                builder = builder.header(name, value);
            }
            let body = Full::new(Bytes::from(prepared.body.unwrap_or_default()));
            let request = builder.body(body).map_err(|e| WebhookError::Protocol {
                url: shown.clone(),
                reason: format!("cannot build the request: {e}"),
            })?;
            tracing::debug!(method = method.as_str(), url = %shown, "webhook request");
            let response = self.inner.http.request(request).await.map_err(|e| {
                let reason = error_chain(&e);
                if is_tls_failure(&e) {
                    WebhookError::Tls {
                        url: shown.clone(),
                        reason,
                    }
                } else if e.is_connect() {
                    WebhookError::Connect {
                        url: shown.clone(),
                        reason,
                    }
                } else {
                    WebhookError::Protocol {
                        url: shown.clone(),
                        reason,
                    }
                }
            })?;
            let status = response.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let next = resolve_url(&location, Some(&hop_url)).map_err(|_| {
                    WebhookError::BadRedirect {
                        url: shown.clone(),
                        location: location.clone(),
                    }
                })?;
                if redirects >= config.max_redirects {
                    return Err(WebhookError::TooManyRedirects {
                        url: shown,
                        limit: config.max_redirects,
                    });
                }
                redirects += 1;
                tracing::debug!(status, from = %shown, to = %redact(&next), "webhook redirected");
                // 307/308 repeat a POST with its body; otherwise the next hop
                // is a plain GET of the Location, as browsers do.
                let keep = method == Method::Post && matches!(status, 307 | 308);
                if !keep {
                    method = Method::Get;
                    params = Params::new();
                }
                hop_url = next;
                continue;
            }
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let (body, body_complete) =
                match Limited::new(response.into_body(), max_body).collect().await {
                    Ok(collected) => (collected.to_bytes(), true),
                    Err(e) if e.is::<http_body_util::LengthLimitError>() => (Bytes::new(), false),
                    Err(e) => {
                        return Err(WebhookError::Protocol {
                            url: shown,
                            reason: format!("reading the body: {e}"),
                        });
                    }
                };
            return Ok(Response {
                status,
                content_type,
                url: hop_url,
                body,
                body_complete,
            });
        }
    }

    /// Fetches a TwiML document; when that fails and a fallback is set,
    /// requests the fallback with `ErrorCode` and `ErrorUrl` added. Every
    /// failure is logged with its URL, status and Twilio error code.
    pub async fn fetch_twiml(&self, req: &TwimlRequest) -> Result<TwimlDocument, WebhookError> {
        let primary = match self
            .fetch_one(&req.target, req.base.as_ref(), &req.params)
            .await
        {
            Ok(body) => return Ok(body),
            Err(e) => e,
        };
        tracing::warn!(
            url = primary.url(),
            status = primary.status(),
            error_code = primary.error_code(),
            error = %primary,
            fallback = req.fallback.is_some(),
            "TwiML fetch failed"
        );
        let Some(fallback) = &req.fallback else {
            return Err(primary);
        };
        match self
            .fetch_fallback(fallback, req.base.as_ref(), &req.params, &primary)
            .await
        {
            Ok(doc) => Ok(doc),
            Err(fallback) => Err(WebhookError::Fallback {
                primary: Box::new(primary),
                fallback: Box::new(fallback),
            }),
        }
    }

    /// Requests a fallback URL after `failure` (a fetch error, or a document
    /// that did not parse: then the caller builds the error it reports)
    /// with `ErrorCode` and `ErrorUrl` added to `params`.
    pub async fn fetch_fallback(
        &self,
        fallback: &Target,
        base: Option<&Url>,
        params: &Params,
        failure: &WebhookError,
    ) -> Result<TwimlDocument, WebhookError> {
        self.fetch_fallback_with_code(fallback, base, params, failure.error_code(), failure.url())
            .await
    }

    /// Like [`fetch_fallback`](Self::fetch_fallback) with an explicit Twilio
    /// error code and failed URL (e.g. 12100 for a document that does not parse).
    pub async fn fetch_fallback_with_code(
        &self,
        fallback: &Target,
        base: Option<&Url>,
        params: &Params,
        error_code: u32,
        error_url: &str,
    ) -> Result<TwimlDocument, WebhookError> {
        let params = fallback_params(params, error_code, error_url);
        match self.fetch_one(fallback, base, &params).await {
            Ok(mut doc) => {
                tracing::info!(url = %redact(&doc.url), "TwiML taken from the fallback URL");
                doc.from_fallback = true;
                Ok(doc)
            }
            Err(e) => {
                tracing::warn!(
                    url = e.url(),
                    status = e.status(),
                    error_code = e.error_code(),
                    error = %e,
                    "TwiML fallback fetch failed"
                );
                Err(e)
            }
        }
    }

    async fn fetch_one(
        &self,
        target: &Target,
        base: Option<&Url>,
        params: &Params,
    ) -> Result<TwimlDocument, WebhookError> {
        let config = &self.inner.config;
        let url = resolve_url(&target.url, base)?;
        let resp = self
            .exchange(
                target.method,
                &url,
                params,
                &[],
                config.twiml_timeout,
                config.max_twiml_bytes,
            )
            .await?;
        let shown = redact(&resp.url);
        if !(200..300).contains(&resp.status) {
            return Err(WebhookError::Status {
                url: shown,
                status: resp.status,
            });
        }
        if !is_twiml_type(&resp.content_type) {
            return Err(WebhookError::NotTwiml {
                url: shown,
                status: resp.status,
                content_type: resp.content_type,
            });
        }
        if !resp.body_complete {
            return Err(WebhookError::BodyTooLarge {
                url: shown,
                limit: config.max_twiml_bytes,
            });
        }
        let body = String::from_utf8(resp.body.to_vec())
            .map_err(|_| WebhookError::NotUtf8 { url: shown })?;
        Ok(TwimlDocument {
            body,
            url: resp.url,
            from_fallback: false,
        })
    }
}

/// Content types Twilio runs as TwiML: `text/xml`, `application/xml`, `text/html`.
fn is_twiml_type(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(media.as_str(), "text/xml" | "application/xml" | "text/html")
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twiml_content_types() {
        assert!(is_twiml_type("text/xml"));
        assert!(is_twiml_type("application/xml; charset=utf-8"));
        assert!(is_twiml_type("Text/HTML"));
        assert!(!is_twiml_type("text/plain"));
        assert!(!is_twiml_type("audio/mpeg"));
        assert!(!is_twiml_type(""));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let config = ClientConfig {
            auth_token: "s3cret-token".into(),
            ..ClientConfig::default()
        };
        let shown = format!("{:?}", WebhookClient::new(config).unwrap());
        assert!(!shown.contains("s3cret-token"));
        assert!(shown.contains("<redacted>"));
    }
}
