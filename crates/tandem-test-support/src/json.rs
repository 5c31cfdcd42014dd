//! Hand-written JSON for the recorder's request log: one object per request,
//! one line each, so shell scripts (jq, grep) can check what Tandem sent.

use std::fmt::Write as _;
use std::time::Duration;

use crate::recorder::RecordedRequest;

/// Appends `s` as a JSON string literal (quotes included) to `out`.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_pairs(out: &mut String, pairs: &[(String, String)]) {
    out.push('{');
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, name);
        out.push(':');
        push_str(out, value);
    }
    out.push('}');
}

/// The log line for one request (without the trailing newline). Fields:
/// `index`, `ms` (since the recorder started), `method`, `path`, `query`
/// (string or null), `headers`, `params` (form body, or query when there is no
/// form body; objects keep arrival order).
pub fn request_line(req: &RecordedRequest, since_start: Duration) -> String {
    let mut out = String::with_capacity(256 + req.body.len());
    let _ = write!(
        out,
        "{{\"index\":{},\"ms\":{},\"method\":",
        req.index,
        since_start.as_millis()
    );
    push_str(&mut out, &req.method);
    out.push_str(",\"path\":");
    push_str(&mut out, &req.path);
    out.push_str(",\"query\":");
    match &req.query {
        Some(q) => push_str(&mut out, q),
        None => out.push_str("null"),
    }
    out.push_str(",\"headers\":");
    push_pairs(&mut out, &req.headers);
    out.push_str(",\"params\":");
    if req.form_params.is_empty() {
        push_pairs(&mut out, &req.query_params);
    } else {
        push_pairs(&mut out, &req.form_params);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::time::Instant;

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        push_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }

    #[test]
    fn request_line_has_every_field_in_order() {
        let req = RecordedRequest {
            index: 3,
            received_at: Instant::now(),
            method: "POST".into(),
            path: "/status".into(),
            query: None,
            headers: vec![("x-twilio-signature".into(), "abc=".into())],
            body: Bytes::from_static(b"CallSid=CA1&To=%2B1"),
            query_params: vec![],
            form_params: vec![("CallSid".into(), "CA1".into()), ("To".into(), "+1".into())],
        };
        assert_eq!(
            request_line(&req, Duration::from_millis(12)),
            "{\"index\":3,\"ms\":12,\"method\":\"POST\",\"path\":\"/status\",\"query\":null,\
             \"headers\":{\"x-twilio-signature\":\"abc=\"},\"params\":{\"CallSid\":\"CA1\",\"To\":\"+1\"}}"
        );
    }
}
