//! A first call a newcomer can hear (README "Your first call"): a tiny
//! TwiML application served by Tandem's own HTTP listener, which the
//! default config's number `+15550000000` points its `voice_url` at.
//!
//! - `/demo/voice`: a `<Say>` greeting inside a `<Gather numDigits="1">`.
//! - `/demo/choice` with `Digits`: `1` says the time (UTC) and goes back
//!   to the menu; `2` plays DTMF tones; `3` rings the softphone `carol`
//!   (`[[client]]` in the default config); anything else says goodbye.
//!
//! GET or POST (the parameters from the query or the form body). It reads
//! no signature and keeps no state: it is an example, not an API.

use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Body;

use crate::http::HttpBody;

const WELCOME: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Gather numDigits="1" timeout="8" action="/demo/choice">
    <Say>Welcome to Tandem. Press 1 to hear the time. Press 2 to hear some tones. Press 3 to ring the softphone Carol.</Say>
  </Gather>
  <Say>No key was pressed. Goodbye.</Say>
</Response>
"#;

/// Answers `/demo/...`; `None` for any other path.
pub(crate) async fn route<B>(parts: &Parts, body: B) -> Option<http::Response<HttpBody>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let page = parts.uri.path().strip_prefix("/demo/")?;
    if parts.method != Method::GET && parts.method != Method::POST {
        return None;
    }
    let twiml = match page {
        "voice" => WELCOME.to_owned(),
        "choice" => {
            let mut params: Vec<(String, String)> =
                url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            if parts.method == Method::POST {
                let bytes = http_body_util::Limited::new(body, 64 * 1024)
                    .collect()
                    .await
                    .ok()?
                    .to_bytes();
                params.extend(url::form_urlencoded::parse(&bytes).into_owned());
            }
            let digits = params
                .iter()
                .find(|(k, _)| k == "Digits")
                .map_or("", |(_, v)| v.as_str());
            choice(digits, std::time::SystemTime::now())
        }
        _ => return None,
    };
    let mut r = crate::http::full(StatusCode::OK, twiml);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    Some(r)
}

/// The document for the key pressed.
fn choice(digits: &str, now: std::time::SystemTime) -> String {
    let body = match digits {
        "1" => {
            let secs = now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let (h, m) = ((secs / 3600) % 24, (secs / 60) % 60);
            format!(
                "<Say>It is {h} {m:02} U T C.</Say><Pause length=\"1\"/><Redirect>/demo/voice</Redirect>"
            )
        }
        "2" => "<Say>Here are some tones.</Say><Play digits=\"1w2w3w4w5w6w7w8w9\"/>\
                <Redirect>/demo/voice</Redirect>"
            .to_owned(),
        "3" => "<Say>Ringing Carol.</Say><Dial timeout=\"20\"><Client>carol</Client></Dial>\
                <Say>Carol did not answer. Goodbye.</Say>"
            .to_owned(),
        _ => "<Say>Goodbye.</Say><Hangup/>".to_owned(),
    };
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>{body}</Response>\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn every_choice_is_valid_twiml() {
        assert!(tandem_twiml::parse(WELCOME).is_ok());
        let at = UNIX_EPOCH + Duration::from_secs(10 * 3600 + 7 * 60);
        for d in ["1", "2", "3", "9", ""] {
            let doc = choice(d, at);
            assert!(tandem_twiml::parse(&doc).is_ok(), "{d}: {doc}");
        }
        assert!(choice("1", at).contains("It is 10 07"));
        assert!(choice("3", at).contains("<Client>carol</Client>"));
        assert!(choice("7", at).contains("<Hangup/>"));
    }
}
