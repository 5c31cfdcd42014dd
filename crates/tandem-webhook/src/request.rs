//! Building one webhook request: HTTP method, URL resolution against the
//! document's URL, parameters in the query (GET) or a form body (POST), and
//! the `X-Twilio-Signature` header as Twilio's helper libraries verify it.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use url::Url;

use crate::error::WebhookError;
use crate::params::Params;

pub use tandem_types::Method;

/// Resolves `target` (absolute, or relative to `base`, the URL the current
/// document came from) to an absolute `http`/`https` URL without fragment.
pub fn resolve_url(target: &str, base: Option<&Url>) -> Result<Url, WebhookError> {
    let target = target.trim();
    let parsed = match Url::parse(target) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => match base {
            Some(base) => base
                .join(target)
                .map_err(|source| WebhookError::InvalidUrl {
                    url: target.to_owned(),
                    source,
                })?,
            None => {
                return Err(WebhookError::RelativeWithoutBase {
                    url: target.to_owned(),
                });
            }
        },
        Err(source) => {
            return Err(WebhookError::InvalidUrl {
                url: target.to_owned(),
                source,
            });
        }
    };
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(WebhookError::UnsupportedScheme {
            url: redact(&parsed),
            scheme: parsed.scheme().to_owned(),
        });
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(WebhookError::InvalidUrl {
            url: target.to_owned(),
            source: url::ParseError::EmptyHost,
        });
    }
    let mut url = parsed;
    url.set_fragment(None);
    Ok(url)
}

/// The URL as it may appear in logs and errors: without the password.
pub fn redact(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Only fails for URLs that cannot have credentials, which have none.
    let _ = shown.set_password(Some("REDACTED"));
    shown.to_string()
}

/// `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, `url` followed by each
/// POST parameter's name and value, sorted by name then value)). For GET,
/// `post_params` is empty and `url` already carries the query.
pub fn signature(auth_token: &str, url: &str, post_params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = post_params.iter().collect();
    sorted.sort();
    // HMAC accepts keys of any length; the error branch cannot happen.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRequest {
    /// GET or POST.
    pub method: Method,
    /// The URL requested (for GET including the parameters), without the
    /// user-info, which travels as `basic_auth` instead.
    pub url: Url,
    /// Form body for POST.
    pub body: Option<String>,
    /// `X-Twilio-Signature` value.
    pub signature: String,
    /// `user:password` from the URL, sent as HTTP Basic auth, as Twilio does.
    pub basic_auth: Option<(String, String)>,
}

/// Builds and signs a request. The signed URL is exactly the URL sent, minus
/// user-info (an application never sees it in its request URL).
pub fn prepare(method: Method, url: &Url, params: &Params, auth_token: &str) -> PreparedRequest {
    let mut url = url.clone();
    let basic_auth = if url.username().is_empty() {
        None
    } else {
        let user = percent_decode(url.username());
        let pass = url.password().map(percent_decode).unwrap_or_default();
        // Both calls only fail for URLs without a host, which resolve_url refuses.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Some((user, pass))
    };
    match method {
        Method::Get => {
            if !params.is_empty() {
                let mut pairs = url.query_pairs_mut();
                for (n, v) in params.iter() {
                    pairs.append_pair(n, v);
                }
            }
            let signature = signature(auth_token, url.as_str(), &[]);
            PreparedRequest {
                method,
                url,
                body: None,
                signature,
                basic_auth,
            }
        }
        Method::Post => {
            let signature = signature(auth_token, url.as_str(), params.as_slice());
            PreparedRequest {
                method,
                url,
                body: Some(params.to_form()),
                signature,
                basic_auth,
            }
        }
    }
}

fn percent_decode(s: &str) -> String {
    // Credentials in a URL are percent-encoded; form decoding would also turn
    // '+' into a space, so decode by hand.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_params() -> Params {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .collect()
    }

    /// Twilio's published example (TwilioDevEd/api-snippets,
    /// security/signature_validation/signature_validation.2.x.js): auth token
    /// 12345, this URL and these POST parameters sign to this value.
    #[test]
    fn signature_matches_twilio_published_example() {
        let params = example_params();
        assert_eq!(
            signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                params.as_slice()
            ),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    #[test]
    fn signature_does_not_depend_on_parameter_order() {
        let mut reversed: Vec<(String, String)> = example_params().as_slice().to_vec();
        reversed.reverse();
        assert_eq!(
            signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &reversed
            ),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    /// GET signs the URL with its query only; value computed with Python's
    /// `hmac` + `hashlib.sha1` + `base64`.
    #[test]
    fn get_signature_covers_url_with_query() {
        assert_eq!(
            signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &[]),
            "zYQTYrRWXE7LtzbG4PfP7/bkkGo="
        );
    }

    #[test]
    fn post_prepares_a_form_body_and_signs_it() {
        let url = Url::parse("https://mycompany.com/myapp.php?foo=1&bar=2").unwrap();
        let req = prepare(Method::Post, &url, &example_params(), "12345");
        assert_eq!(
            req.url.as_str(),
            "https://mycompany.com/myapp.php?foo=1&bar=2"
        );
        assert_eq!(
            req.body.as_deref(),
            Some(
                "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212"
            )
        );
        assert_eq!(req.signature, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    }

    #[test]
    fn get_appends_params_to_an_existing_query() {
        let url = Url::parse("https://mycompany.com/myapp.php?foo=1&bar=2").unwrap();
        let params: Params = [("From", "+1415"), ("Digits", "1 2")].into_iter().collect();
        let req = prepare(Method::Get, &url, &params, "12345");
        assert_eq!(
            req.url.as_str(),
            "https://mycompany.com/myapp.php?foo=1&bar=2&From=%2B1415&Digits=1+2"
        );
        assert_eq!(req.body, None);
        assert_eq!(req.signature, signature("12345", req.url.as_str(), &[]));
    }

    #[test]
    fn get_without_query_or_params_adds_no_question_mark() {
        let url = Url::parse("http://app.test/voice").unwrap();
        let req = prepare(Method::Get, &url, &Params::new(), "t");
        assert_eq!(req.url.as_str(), "http://app.test/voice");
    }

    #[test]
    fn credentials_move_to_basic_auth_and_leave_the_signed_url() {
        let url = Url::parse("https://us%65r:p%40ss@app.test/voice").unwrap();
        let req = prepare(Method::Post, &url, &Params::new(), "t");
        assert_eq!(req.url.as_str(), "https://app.test/voice");
        assert_eq!(req.basic_auth, Some(("user".into(), "p@ss".into())));
        assert_eq!(req.signature, signature("t", "https://app.test/voice", &[]));
        assert_eq!(redact(&url), "https://us%65r:REDACTED@app.test/voice");
    }

    #[test]
    fn relative_urls_resolve_against_the_document_url() {
        let base = Url::parse("http://app.test/calls/voice.xml?x=1").unwrap();
        assert_eq!(
            resolve_url("/handleDial", Some(&base)).unwrap().as_str(),
            "http://app.test/handleDial"
        );
        assert_eq!(
            resolve_url("next.xml", Some(&base)).unwrap().as_str(),
            "http://app.test/calls/next.xml"
        );
        assert_eq!(
            resolve_url("../up?y=2#frag", Some(&base)).unwrap().as_str(),
            "http://app.test/up?y=2"
        );
        assert_eq!(
            resolve_url("https://other.test/a", Some(&base))
                .unwrap()
                .as_str(),
            "https://other.test/a"
        );
    }

    #[test]
    fn bad_urls_are_typed_errors() {
        assert!(matches!(
            resolve_url("/handleDial", None),
            Err(WebhookError::RelativeWithoutBase { .. })
        ));
        assert!(matches!(
            resolve_url("ftp://app.test/x", None),
            Err(WebhookError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            resolve_url("http://[::1", None),
            Err(WebhookError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn methods_parse_case_insensitively() {
        assert_eq!("get".parse().ok(), Some(Method::Get));
        assert_eq!("POST".parse().ok(), Some(Method::Post));
        assert_eq!("PUT".parse::<Method>().ok(), None);
        assert_eq!(Method::default(), Method::Post);
    }
}
