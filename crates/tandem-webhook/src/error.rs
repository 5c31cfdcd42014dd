//! Webhook errors: every way a request to an application can fail, each
//! naming the URL (password redacted), with the Twilio error code that the
//! fallback request's `ErrorCode` carries and whether a retry could help.

use std::time::Duration;

/// A webhook request that did not produce what was asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL does not parse (or resolve against its base).
    #[error("invalid webhook URL {url:?}: {source}")]
    InvalidUrl {
        /// The URL as written.
        url: String,
        /// Why it does not parse.
        source: url::ParseError,
    },
    /// A relative URL with no document URL to resolve it against (the
    /// document came from a local file or inline TwiML).
    #[error("relative webhook URL {url:?} has no document URL to resolve against")]
    RelativeWithoutBase {
        /// The URL as written.
        url: String,
    },
    /// Neither `http` nor `https`.
    #[error("webhook URL {url} has unsupported scheme {scheme:?}")]
    UnsupportedScheme {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// The TLS handshake failed (untrusted or invalid certificate, no
    /// common protocol version or cipher suite).
    #[error("TLS with {url} failed: {reason}")]
    Tls {
        /// The URL.
        url: String,
        /// rustls' error, with its causes.
        reason: String,
    },
    /// TCP connection failed (refused, unreachable, DNS failure).
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// The connector's error, with its causes.
        reason: String,
    },
    /// The server answered something that is not HTTP/1.x, or closed early.
    #[error("HTTP protocol error from {url}: {reason}")]
    Protocol {
        /// The URL.
        url: String,
        /// hyper's error, with its causes.
        reason: String,
    },
    /// No complete answer within the timeout.
    #[error("no answer from {url} within {after:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The server answered with a non-2xx status (after redirects).
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// A 2xx answer whose `Content-Type` is not TwiML (XML or HTML).
    #[error("{url} answered {status} with content type {content_type:?}, not TwiML")]
    NotTwiml {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The `Content-Type` header (empty when absent).
        content_type: String,
    },
    /// The TwiML body is larger than the configured limit.
    #[error("{url} answered a body over {limit} bytes")]
    BodyTooLarge {
        /// The URL.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The TwiML body is not UTF-8.
    #[error("{url} answered a body that is not UTF-8")]
    NotUtf8 {
        /// The URL.
        url: String,
    },
    /// More redirects than allowed.
    #[error("{url}: more than {limit} redirects")]
    TooManyRedirects {
        /// The last URL requested.
        url: String,
        /// The limit.
        limit: u8,
    },
    /// A 3xx answer without a usable `Location`.
    #[error("{url} redirected to an unusable location {location:?}")]
    BadRedirect {
        /// The URL that redirected.
        url: String,
        /// The `Location` header (empty when absent).
        location: String,
    },
    /// Both the primary URL and the fallback URL failed.
    #[error("{primary}; fallback failed too: {fallback}")]
    Fallback {
        /// Why the primary URL failed.
        primary: Box<WebhookError>,
        /// Why the fallback URL failed.
        fallback: Box<WebhookError>,
    },
}

impl WebhookError {
    /// Twilio's error code for this failure, as sent in `ErrorCode` to a
    /// fallback URL: 11200 HTTP retrieval failure, 11205 HTTP connection
    /// failure (also used for timeouts), 11206 HTTP protocol violation, 11210
    /// bad host name / URL, 11215 too many redirects, 11220 TLS handshake, 11750 body
    /// too large, 12300 invalid content type.
    pub fn error_code(&self) -> u32 {
        match self {
            Self::InvalidUrl { .. }
            | Self::RelativeWithoutBase { .. }
            | Self::UnsupportedScheme { .. } => 11210,
            Self::Tls { .. } => 11220,
            Self::Connect { .. } | Self::Timeout { .. } => 11205,
            Self::Protocol { .. } => 11206,
            Self::Status { .. } | Self::BadRedirect { .. } => 11200,
            Self::NotTwiml { .. } | Self::NotUtf8 { .. } => 12300,
            Self::BodyTooLarge { .. } => 11750,
            Self::TooManyRedirects { .. } => 11215,
            Self::Fallback { fallback, .. } => fallback.error_code(),
        }
    }

    /// The URL that failed (for a failed fallback, the fallback's).
    pub fn url(&self) -> &str {
        match self {
            Self::InvalidUrl { url, .. }
            | Self::RelativeWithoutBase { url }
            | Self::UnsupportedScheme { url, .. }
            | Self::Tls { url, .. }
            | Self::Connect { url, .. }
            | Self::Protocol { url, .. }
            | Self::Timeout { url, .. }
            | Self::Status { url, .. }
            | Self::NotTwiml { url, .. }
            | Self::BodyTooLarge { url, .. }
            | Self::NotUtf8 { url }
            | Self::TooManyRedirects { url, .. }
            | Self::BadRedirect { url, .. } => url,
            Self::Fallback { fallback, .. } => fallback.url(),
        }
    }

    /// The HTTP status the server answered, if it answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } | Self::NotTwiml { status, .. } => Some(*status),
            Self::Fallback { fallback, .. } => fallback.status(),
            _ => None,
        }
    }

    /// Whether sending the same request again later could succeed: connection
    /// failures, timeouts, protocol errors, 5xx, 408 and 429.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Protocol { .. } | Self::Timeout { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        let status = |status| WebhookError::Status {
            url: "http://a/".into(),
            status,
        };
        assert!(status(500).is_retryable());
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(status(408).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!status(403).is_retryable());
        assert!(
            WebhookError::Timeout {
                url: "http://a/".into(),
                after: Duration::from_millis(5)
            }
            .is_retryable()
        );
        assert!(
            !WebhookError::NotTwiml {
                url: "http://a/".into(),
                status: 200,
                content_type: "text/plain".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn fallback_error_reports_the_fallback_side() {
        let err = WebhookError::Fallback {
            primary: Box::new(WebhookError::Status {
                url: "http://a/".into(),
                status: 500,
            }),
            fallback: Box::new(WebhookError::Timeout {
                url: "http://b/".into(),
                after: Duration::from_secs(1),
            }),
        };
        assert_eq!(err.url(), "http://b/");
        assert_eq!(err.error_code(), 11205);
        assert_eq!(err.status(), None);
        assert!(err.to_string().contains("http://a/ answered HTTP 500"));
    }
}
