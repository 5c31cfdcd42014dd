//! The call inspector (issue 11, docs/inspector.md): server-rendered pages
//! on Tandem's HTTP listener, behind the API's Basic auth.
//!
//! - `GET /inspector`: the latest calls (filters `To`, `From`, `Status`).
//! - `GET /inspector/calls/{CallSid}`: one call — its summary and status
//!   events, its child calls, the SIP ladder of every leg (the caller's and
//!   each branch's: time, direction, method or status), the webhook
//!   timeline (each request with its parameters, each TwiML answer as
//!   fetched), and its recordings with playback and a waveform per channel
//!   drawn by a small script from the WAV.
//!
//! No build step and nothing from the network: the page is one HTML
//! document with its style and script inline.

use std::time::{Duration, UNIX_EPOCH};

use http::request::Parts;
use http::{Method, StatusCode};
use serde_json::Value;

use crate::history::{CallFilter, CallRow, History};
use crate::http::{HttpBody, HttpState};

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; }
td, th { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
code, pre, .mono { font-family: ui-monospace, monospace; font-size: 12px; }
pre { background: #f8f8f8; padding: 6px; white-space: pre-wrap; max-width: 110ch; }
.ladder td.leg { min-width: 11em; text-align: center; color: #bbb; }
.ladder td.msg { color: #000; font-weight: 600; }
.ladder td.out { background: #eef6ff; } .ladder td.in { background: #f3fff0; }
.ladder td.cancel, .ladder td.err { background: #fff0f0; }
.status-completed { color: #070; } .status-canceled, .status-busy, .status-failed, .status-no-answer { color: #a00; }
canvas.waveform { display: block; border: 1px solid #ddd; margin: 4px 0; }
"#;

/// Draws each WAV's channels as lanes (16-bit PCM) and marks the canvas
/// with the channel count it found.
const SCRIPT: &str = r#"
async function drawWave(canvas) {
  // From the origin: a page opened as http://user:pass@host/ would give
  // relative URLs its credentials, which fetch refuses.
  const r = await fetch(location.origin + canvas.dataset.src, { credentials: 'same-origin' });
  if (!r.ok) { canvas.dataset.error = 'HTTP ' + r.status; return; }
  const buf = new DataView(await r.arrayBuffer());
  let off = 12, channels = 0, bits = 0, data = null, len = 0;
  while (off + 8 <= buf.byteLength) {
    const id = String.fromCharCode(buf.getUint8(off), buf.getUint8(off+1), buf.getUint8(off+2), buf.getUint8(off+3));
    const size = buf.getUint32(off + 4, true);
    if (id === 'fmt ') { channels = buf.getUint16(off + 10, true); bits = buf.getUint16(off + 22, true); }
    if (id === 'data') { data = off + 8; len = Math.min(size, buf.byteLength - data); break; }
    off += 8 + size + (size & 1);
  }
  if (!data || bits !== 16 || channels < 1) { canvas.dataset.error = 'not 16-bit PCM'; return; }
  const frames = Math.floor(len / (2 * channels));
  const ctx = canvas.getContext('2d');
  const w = canvas.width, lane = canvas.height / channels;
  ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, w, canvas.height);
  for (let c = 0; c < channels; c++) {
    const mid = lane * c + lane / 2;
    ctx.strokeStyle = c === 0 ? '#1565c0' : '#2e7d32';
    ctx.beginPath();
    for (let x = 0; x < w; x++) {
      const from = Math.floor(x * frames / w), to = Math.max(from + 1, Math.floor((x + 1) * frames / w));
      let peak = 0;
      for (let f = from; f < to && f < frames; f++) {
        const v = Math.abs(buf.getInt16(data + (f * channels + c) * 2, true));
        if (v > peak) peak = v;
      }
      const h = peak / 32768 * (lane / 2 - 2);
      ctx.moveTo(x + 0.5, mid - h); ctx.lineTo(x + 0.5, mid + h);
    }
    ctx.stroke();
    ctx.fillStyle = '#666'; ctx.fillText('channel ' + (c + 1), 4, lane * c + 12);
  }
  canvas.dataset.channels = String(channels);
  canvas.dataset.frames = String(frames);
}
document.querySelectorAll('canvas.waveform').forEach(c => drawWave(c).catch(e => { c.dataset.error = String(e); }));
"#;

/// Answers `/inspector` pages; `None` for other paths.
pub(crate) async fn route(state: &HttpState, parts: &Parts) -> Option<http::Response<HttpBody>> {
    let path = parts.uri.path();
    let page = path.strip_prefix("/inspector")?;
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return None;
    }
    if !crate::http::authorized_headers(state, &parts.headers) {
        let mut r = html(
            StatusCode::UNAUTHORIZED,
            "<p>Sign in with the AccountSid and auth token.</p>".into(),
        );
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Basic realm=\"Tandem\""),
        );
        return Some(r);
    }
    let Some(history) = state.api.as_ref().and_then(|c| c.history.clone()) else {
        return Some(html(
            StatusCode::NOT_FOUND,
            "<p>The call history is off.</p>".into(),
        ));
    };
    let query = parts.uri.query().unwrap_or("").to_owned();
    let dir = state.recordings.dir().to_owned();
    let media = state.recordings.clone();
    let page = page.to_owned();
    let rendered = tokio::task::spawn_blocking(move || match page.as_str() {
        "" | "/" => list_page(&history, &query).map(Some),
        p => match p.strip_prefix("/calls/") {
            Some(sid) => call_page(&history, sid, &dir, &media),
            None => Ok(None),
        },
    })
    .await;
    Some(match rendered {
        Ok(Ok(Some(body))) => html(StatusCode::OK, body),
        Ok(Ok(None)) => html(StatusCode::NOT_FOUND, "<p>No such call.</p>".into()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "inspector page failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("<p>{}</p>", esc(&e.to_string())),
            )
        }
        Err(e) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("<p>{}</p>", esc(&e.to_string())),
        ),
    })
}

fn html(status: StatusCode, body: String) -> http::Response<HttpBody> {
    let doc = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Tandem call inspector</title>\
         <style>{STYLE}</style></head><body>{body}<script>{SCRIPT}</script></body></html>\n"
    );
    let mut r = crate::http::full(status, doc);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn when(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    let s = tandem_webhook::rfc2822(t);
    // "Fri, 04 Dec 2026 23:36:33 +0000" -> "04 Dec 23:36:33.123"
    let parts: Vec<&str> = s.split(' ').collect();
    if parts.len() >= 5 {
        format!(
            "{} {} {}.{:03}",
            parts[1],
            parts[2],
            parts[4],
            ms.rem_euclid(1000)
        )
    } else {
        s
    }
}

fn status_cell(status: &str) -> String {
    format!("<span class=\"status-{0}\">{0}</span>", esc(status))
}

fn list_page(history: &History, query: &str) -> Result<String, crate::history::HistoryError> {
    let q: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| {
        q.iter()
            .find(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let filter = CallFilter {
        to: get("To"),
        from: get("From"),
        status: get("Status"),
        ..CallFilter::default()
    };
    let rows = history.calls(&filter, None, 0, 200)?;
    let mut b = String::from("<h1>Calls</h1>");
    b.push_str(&format!(
        "<form method=\"get\">From <input name=\"From\" value=\"{}\"> To <input name=\"To\" value=\"{}\"> \
         Status <input name=\"Status\" value=\"{}\" size=\"10\"> <button>Filter</button></form>",
        esc(&get("From").unwrap_or_default()),
        esc(&get("To").unwrap_or_default()),
        esc(&get("Status").unwrap_or_default()),
    ));
    b.push_str(
        "<table id=\"calls\"><tr><th>Started</th><th>CallSid</th><th>From</th><th>To</th>\
         <th>Direction</th><th>Status</th><th>Duration</th><th>Parent</th></tr>",
    );
    for r in &rows {
        b.push_str(&format!(
            "<tr><td>{}</td><td class=\"mono\"><a href=\"/inspector/calls/{sid}\">{sid}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            when(r.created_ms),
            esc(&r.from),
            esc(&r.to),
            esc(&r.direction),
            status_cell(&r.status),
            r.duration.map_or(String::new(), |d| format!("{d} s")),
            r.parent_sid
                .as_deref()
                .map_or(String::new(), |p| format!("<a href=\"/inspector/calls/{0}\">{0}</a>", esc(p))),
            sid = esc(&r.sid),
        ));
    }
    b.push_str("</table>");
    if rows.is_empty() {
        b.push_str("<p>No calls yet.</p>");
    }
    Ok(b)
}

fn call_page(
    history: &History,
    sid: &str,
    dir: &std::path::Path,
    media: &crate::recording::RecordingStore,
) -> Result<Option<String>, crate::history::HistoryError> {
    let Some(call) = history.call(sid)? else {
        return Ok(None);
    };
    let mut b = format!(
        "<p><a href=\"/inspector\">← calls</a></p><h1>Call <code>{}</code></h1>",
        esc(sid)
    );
    b.push_str(&summary(&call));
    // The ladder and webhooks live with the call that ran the document:
    // a child shows its parent's.
    let owner = match &call.parent_sid {
        Some(p) if call.direction == "outbound-dial" => p.clone(),
        _ => call.sid.clone(),
    };
    let children = history.calls(
        &CallFilter {
            parent_sid: Some(owner.clone()),
            ..CallFilter::default()
        },
        None,
        0,
        100,
    )?;
    if !children.is_empty() {
        b.push_str("<h2>Child calls</h2><table id=\"children\"><tr><th>CallSid</th><th>To</th><th>Status</th><th>Duration</th></tr>");
        for c in children.iter().rev() {
            b.push_str(&format!(
                "<tr><td class=\"mono\"><a href=\"/inspector/calls/{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td></tr>",
                esc(&c.sid),
                esc(&c.to),
                status_cell(&c.status),
                c.duration.map_or(String::new(), |d| format!("{d} s")),
            ));
        }
        b.push_str("</table>");
    }
    let events = history.events(sid)?;
    b.push_str("<h2>Status</h2><table id=\"events\"><tr><th>At</th><th>Event</th></tr>");
    for e in &events {
        b.push_str(&format!(
            "<tr><td>{}</td><td>{} {}</td></tr>",
            when(e.at_ms),
            esc(&e.kind),
            esc(&e.detail)
        ));
    }
    b.push_str("</table>");
    match history.trace(&owner)? {
        Some(trace) => {
            let v: Value = serde_json::from_str(&trace).unwrap_or(Value::Null);
            b.push_str(&ladder(&v));
            b.push_str(&webhooks(&v));
        }
        None => b.push_str(
            "<h2>SIP ladder</h2><p>Not written yet: the ladder and the webhooks of a call are \
             stored when it ends.</p>",
        ),
    }
    b.push_str(&recordings(
        &crate::api::read_sidecars(dir),
        &owner,
        sid,
        media,
    ));
    Ok(Some(b))
}

fn summary(c: &CallRow) -> String {
    let row = |k: &str, v: String| format!("<tr><th>{k}</th><td>{v}</td></tr>");
    let mut t = String::from("<table id=\"summary\">");
    t.push_str(&row("From", esc(&c.from)));
    t.push_str(&row("To", esc(&c.to)));
    t.push_str(&row("Direction", esc(&c.direction)));
    t.push_str(&row("Status", status_cell(&c.status)));
    t.push_str(&row("Created", when(c.created_ms)));
    t.push_str(&row("Ended", c.end_ms.map_or(String::new(), when)));
    t.push_str(&row(
        "Duration",
        c.duration.map_or(String::new(), |d| format!("{d} s")),
    ));
    if let Some(p) = &c.parent_sid {
        t.push_str(&row(
            "Parent",
            format!(
                "<a class=\"mono\" href=\"/inspector/calls/{0}\">{0}</a>",
                esc(p)
            ),
        ));
    }
    if let Some(n) = &c.caller_name {
        t.push_str(&row("Caller name", esc(n)));
    }
    t.push_str("</table>");
    t
}

/// The SIP ladder: a column per leg (the caller's, then each branch's in
/// order), a row per message, an arrow towards where it went.
fn ladder(v: &Value) -> String {
    let legs = v["legs"].as_array().cloned().unwrap_or_default();
    let msgs = v["sip"].as_array().cloned().unwrap_or_default();
    let mut t =
        String::from("<h2>SIP ladder</h2><table class=\"ladder\" id=\"ladder\"><tr><th>+ms</th>");
    for (i, l) in legs.iter().enumerate() {
        let who = l["who"].as_str().unwrap_or("");
        let peer = l["peer"].as_str().unwrap_or("");
        let sid = l["sid"].as_str().unwrap_or("");
        t.push_str(&format!(
            "<th title=\"Call-ID {}\">{}<br><span class=\"mono\">{}</span><br><span class=\"mono\">{}</span></th>",
            esc(l["call_id"].as_str().unwrap_or("")),
            if i == 0 && who == "caller" { "caller ⇄ Tandem".to_owned() } else { format!("Tandem ⇄ {}", esc(who)) },
            esc(peer),
            esc(sid),
        ));
    }
    t.push_str("</tr>");
    for m in &msgs {
        let leg = m["leg"].as_u64().unwrap_or(0) as usize;
        let what = m["what"].as_str().unwrap_or("");
        let out = m["dir"] == "out";
        // Towards the peer on the caller's leg is left, on a callee's right
        // (a call placed through the API has no caller leg).
        let callers = legs.get(leg).is_some_and(|l| l["who"] == "caller");
        let arrow = match (callers, out) {
            (true, true) => format!("◀── {}", esc(what)),
            (true, false) => format!("{} ──▶", esc(what)),
            (false, true) => format!("{} ──▶", esc(what)),
            (false, false) => format!("◀── {}", esc(what)),
        };
        let class = if what.starts_with("CANCEL") {
            "cancel"
        } else if what.chars().next().is_some_and(|c| c.is_ascii_digit())
            && !what.starts_with('1')
            && !what.starts_with('2')
        {
            "err"
        } else if out {
            "out"
        } else {
            "in"
        };
        t.push_str(&format!(
            "<tr><td class=\"mono\">{}</td>",
            m["t"].as_i64().unwrap_or(0)
        ));
        for i in 0..legs.len().max(1) {
            if i == leg {
                t.push_str(&format!("<td class=\"leg msg {class}\">{arrow}</td>"));
            } else {
                t.push_str("<td class=\"leg\">│</td>");
            }
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    if v["sip_dropped"].as_u64().unwrap_or(0) > 0 {
        t.push_str(&format!(
            "<p>{} more messages not kept (the ladder keeps the first {}).</p>",
            v["sip_dropped"],
            msgs.len()
        ));
    }
    t
}

/// The webhook timeline: requests with their parameters, TwiML answers.
fn webhooks(v: &Value) -> String {
    let hooks = v["hooks"].as_array().cloned().unwrap_or_default();
    let mut t = String::from(
        "<h2>Webhooks and TwiML</h2><table id=\"webhooks\"><tr><th>+ms</th><th>What</th><th>Detail</th></tr>",
    );
    for h in &hooks {
        let kind = h["kind"].as_str().unwrap_or("");
        let detail = match kind {
            "request" | "status" | "callback" => {
                let mut d = format!(
                    "<div class=\"mono\">{} {}</div>",
                    esc(h["method"].as_str().unwrap_or("")),
                    esc(h["url"].as_str().unwrap_or(""))
                );
                if let Some(params) = h["params"].as_array() {
                    d.push_str("<details><summary>parameters</summary><pre>");
                    for p in params {
                        d.push_str(&format!(
                            "{}={}\n",
                            esc(p[0].as_str().unwrap_or("")),
                            esc(p[1].as_str().unwrap_or(""))
                        ));
                    }
                    d.push_str("</pre></details>");
                }
                d
            }
            "twiml" => format!(
                "<pre class=\"twiml\">{}</pre>",
                esc(h["body"].as_str().unwrap_or(""))
            ),
            _ => format!("<pre>{}</pre>", esc(h["error"].as_str().unwrap_or(""))),
        };
        t.push_str(&format!(
            "<tr><td class=\"mono\">{}</td><td>{}</td><td>{detail}</td></tr>",
            h["t"].as_i64().unwrap_or(0),
            esc(kind)
        ));
    }
    t.push_str("</table>");
    t
}

fn recordings(
    all: &[(i64, Value)],
    owner: &str,
    sid: &str,
    media: &crate::recording::RecordingStore,
) -> String {
    let mine: Vec<&Value> = all
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["call_sid"] == owner || v["call_sid"] == sid)
        .collect();
    let mut t = String::from("<h2>Recordings</h2>");
    if mine.is_empty() {
        t.push_str("<p>None.</p>");
        return t;
    }
    for r in mine {
        let rsid = r["sid"].as_str().unwrap_or("");
        if !crate::recording::is_recording_sid(rsid) {
            continue;
        }
        // Same origin as the page: the browser's Basic auth goes with it.
        let src = format!("{}.wav", media.uri(rsid));
        t.push_str(&format!(
            "<div class=\"recording\"><div class=\"mono\">{rsid} · {} · {} s · {} channel(s)</div>\
             <canvas class=\"waveform\" width=\"900\" height=\"{}\" data-src=\"{src}\"></canvas>\
             <audio controls preload=\"none\" src=\"{src}\"></audio></div>",
            esc(r["status"].as_str().unwrap_or("")),
            esc(r["duration"].as_str().unwrap_or("")),
            r["channels"].as_u64().unwrap_or(1),
            60 * r["channels"].as_u64().unwrap_or(1).clamp(1, 2),
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arrows point at whoever the message went to: left to the caller,
    /// right to a callee — also for a call placed through the API, whose
    /// first leg is a callee's.
    #[test]
    fn ladder_arrows_follow_the_leg_not_its_column() {
        let forked: Value = serde_json::json!({
            "legs": [{"call_id": "c", "who": "caller"}, {"call_id": "b", "who": "alice@h"}],
            "sip": [
                {"t": 0, "leg": 0, "dir": "in", "what": "INVITE"},
                {"t": 1, "leg": 1, "dir": "out", "what": "INVITE"},
                {"t": 2, "leg": 1, "dir": "out", "what": "CANCEL"},
                {"t": 3, "leg": 0, "dir": "out", "what": "200 OK"},
            ],
        });
        let html = ladder(&forked);
        assert!(
            html.contains("INVITE ──▶</td><td class=\"leg\">│"),
            "{html}"
        );
        assert!(
            html.contains("class=\"leg msg cancel\">CANCEL ──▶"),
            "{html}"
        );
        assert!(html.contains("◀── 200 OK"), "{html}");
        let placed: Value = serde_json::json!({
            "legs": [{"call_id": "b", "who": "carol@h"}],
            "sip": [{"t": 0, "leg": 0, "dir": "out", "what": "INVITE"},
                    {"t": 5, "leg": 0, "dir": "in", "what": "180 Ringing"}],
        });
        let html = ladder(&placed);
        assert!(html.contains("INVITE ──▶"), "{html}");
        assert!(html.contains("◀── 180 Ringing"), "{html}");
        assert!(html.contains("Tandem ⇄ carol@h"), "{html}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
