//! The REST API in Twilio's 2010-04-01 shapes (issue 11,
//! docs/api.md), served by Tandem's HTTP listener:
//!
//! - `GET /2010-04-01/Accounts/{AccountSid}/Calls.json`: the history, newest
//!   first, with Twilio's filters (`To`, `From`, `Status`, `ParentCallSid`,
//!   `StartTime`/`EndTime` and their `<=`/`>=` forms) and paging
//!   (`PageSize`, `Page`, `PageToken`; `next_page_uri` to follow).
//! - `GET …/Calls/{CallSid}.json`: one call.
//! - `POST …/Calls/{CallSid}.json`: modify a live call — `Twiml`, or `Url`
//!   and `Method`, moves it to new TwiML; `Status=canceled|completed` ends
//!   it (call/api.rs has the rules).
//! - `POST …/Calls.json`: place a call.
//! - Recordings: list, a call's list, delete.
//! - Conferences, Participants, Queues, Members: what is live now
//!   (`api/rooms.rs`).
//!
//! Every request needs HTTP Basic auth with the AccountSid and auth token
//! (401 otherwise); another account's path is 404. Errors have Twilio's
//! body: `code`, `message`, `more_info`, `status`.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Body;
use serde_json::{Value, json};

mod rooms;

use crate::call::{ApiAction, ApiCommand, ApiRefusal, CallMsg};
use crate::engine::Ctx;
use crate::history::{CallFilter, CallRow, History};
use crate::http::{HttpBody, HttpState, json_response};
use crate::recording::API_PREFIX;

/// Largest form body read.
const MAX_BODY: usize = 64 * 1024;
/// Calls per page unless `PageSize` says otherwise, and at most.
const PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;
/// How long a live call has to take a modification.
const CALL_ANSWER: Duration = Duration::from_secs(5);

/// A Twilio-shaped error.
struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 20001, message)
    }

    fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource {path} was not found"),
        )
    }

    fn response(&self) -> http::Response<HttpBody> {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        let mut r = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Basic realm=\"Tandem\""),
            );
        }
        r
    }
}

/// The resource a path names.
enum Resource<'a> {
    List,
    Call(&'a str),
    /// `Recordings.json`, or a call's (`Calls/{sid}/Recordings.json`).
    Recordings(Option<&'a str>),
    /// `Recordings/{sid}` with `DELETE` (GET is the listener's own route).
    Recording(&'a str),
    /// Conferences, Participants, Queues, Members.
    Live(rooms::Live<'a>),
    /// `Calls/{sid}/Events.json`: the call's webhooks and their answers.
    Events(&'a str),
}

/// Answers a request for the Calls resource; `None` when the path is not
/// one (the listener's other routes take it).
pub(crate) async fn route<B>(
    state: &HttpState,
    parts: &Parts,
    body: B,
) -> Option<http::Response<HttpBody>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = parts.uri.path();
    let rest = path.strip_prefix(API_PREFIX)?.strip_prefix('/')?;
    let mut segs = rest.split('/');
    let account = segs.next()?;
    let tail: Vec<&str> = segs.clone().collect();
    let resource = match (segs.next()?, segs.next(), segs.next(), segs.next()) {
        ("Calls.json", None, None, None) => Resource::List,
        ("Calls", Some(file), None, None) => Resource::Call(file.strip_suffix(".json")?),
        ("Calls", Some(sid), Some("Recordings.json"), None) => Resource::Recordings(Some(sid)),
        ("Calls", Some(sid), Some("Events.json"), None) => Resource::Events(sid),
        ("Recordings.json", None, None, None) => Resource::Recordings(None),
        ("Recordings", Some(file), None, None) if parts.method == Method::DELETE => {
            Resource::Recording(file.strip_suffix(".json").unwrap_or(file))
        }
        _ => Resource::Live(rooms::Live::parse(&tail)?),
    };
    let result = serve(state, parts, account, resource, body).await;
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(path, message = %e.message, "REST API request failed");
            } else {
                tracing::debug!(path, status = e.status.as_u16(), message = %e.message, "REST API request refused");
            }
            e.response()
        }
    };
    Some(response)
}

async fn serve<B>(
    state: &HttpState,
    parts: &Parts,
    account: &str,
    resource: Resource<'_>,
    body: B,
) -> Result<http::Response<HttpBody>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = parts.uri.path();
    if !crate::http::authorized_headers(state, &parts.headers) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            20003,
            "Authentication Error - invalid username or password",
        ));
    }
    if account != state.recordings.account_sid() {
        return Err(ApiError::not_found(path));
    }
    let store = &state.recordings;
    match (&parts.method, &resource) {
        (&Method::GET | &Method::HEAD, Resource::Recordings(call)) => {
            return recordings(store, account, *call, parts.uri.query().unwrap_or("")).await;
        }
        (&Method::DELETE, Resource::Recording(sid)) => {
            return delete_recording(store, sid, path).await;
        }
        _ => {}
    }
    let Some(ctx) = state.api.as_ref() else {
        return Err(ApiError::not_found(path));
    };
    if let Resource::Live(live) = resource {
        let form = if parts.method == Method::POST {
            read_form(body).await?
        } else {
            Vec::new()
        };
        let query = parts.uri.query().unwrap_or("");
        return rooms::serve(ctx, &parts.method, path, query, &form, live).await;
    }
    let history = ctx.history.clone();
    match (&parts.method, resource) {
        (&Method::GET | &Method::HEAD, Resource::List) => {
            let Some(history) = history else {
                return Err(ApiError::not_found(path));
            };
            // What has happened is listed: the writer's queue first.
            flush(&history).await?;
            list(&history, account, parts.uri.query().unwrap_or("")).await
        }
        (&Method::GET | &Method::HEAD, Resource::Call(sid)) => {
            let Some(history) = history else {
                return Err(ApiError::not_found(path));
            };
            let mut row = fetch(&history, sid).await?;
            if row.is_none() {
                // A call just placed, just arrived or just ended: its rows
                // may still be in the writer's queue.
                flush(&history).await?;
                row = fetch(&history, sid).await?;
            }
            match row {
                Some(row) => Ok(json_response(StatusCode::OK, &call_json(account, &row))),
                None => Err(ApiError::not_found(path)),
            }
        }
        (&Method::POST, Resource::Call(sid)) => {
            let form = read_form(body).await?;
            modify(ctx, sid, path, &form).await
        }
        (&Method::GET | &Method::HEAD, Resource::Events(sid)) => {
            let Some(history) = history else {
                return Err(ApiError::not_found(path));
            };
            events(
                &history,
                account,
                sid,
                path,
                parts.uri.query().unwrap_or(""),
            )
            .await
        }
        (&Method::POST, Resource::List) => {
            let form = read_form(body).await?;
            create(ctx, &form).await
        }

        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            20004,
            format!("Method not allowed: {}", parts.method),
        )),
    }
}

async fn read_form<B>(body: B) -> Result<Vec<(String, String)>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::invalid(format!("request body unreadable or over 64 KiB: {e}")))?
        .to_bytes();
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// An `http(s)` URL parameter, when given (21205 if it is not one).
fn http_url_param(form: &[(String, String)], key: &str) -> Result<Option<url::Url>, ApiError> {
    param(form, key)
        .map(|u| {
            url::Url::parse(u)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        21205,
                        format!("{key} {u:?} is not a valid http(s) URL"),
                    )
                })
        })
        .transpose()
}

fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::history::HistoryError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            format!("history: {e}"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            format!("history: {e}"),
        )),
    }
}

/// `PageSize`: 1 to [`MAX_PAGE_SIZE`].
fn parse_page_size(v: &str) -> Result<usize, ApiError> {
    v.parse()
        .ok()
        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
        .ok_or_else(|| ApiError::invalid(format!("PageSize {v:?} must be 1 to {MAX_PAGE_SIZE}")))
}

/// `Page`: a page number from 0.
fn parse_page(v: &str) -> Result<usize, ApiError> {
    v.parse()
        .map_err(|_| ApiError::invalid(format!("Page {v:?} is not a number")))
}

/// Waits until everything queued for the history is on disk.
async fn flush(history: &History) -> Result<(), ApiError> {
    let h = history.clone();
    blocking(move || {
        h.flush();
        Ok(())
    })
    .await
}

async fn fetch(history: &History, sid: &str) -> Result<Option<CallRow>, ApiError> {
    let h = history.clone();
    let sid = sid.to_owned();
    blocking(move || h.call(&sid)).await
}

/// `GET …/Calls.json`.
async fn list(
    history: &History,
    account: &str,
    query: &str,
) -> Result<http::Response<HttpBody>, ApiError> {
    let q: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let mut filter = CallFilter::default();
    let mut page_size = PAGE_SIZE;
    let mut page = 0usize;
    let mut token = None;
    // What the next page's URI repeats.
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in &q {
        match k.as_str() {
            "To" => filter.to = Some(v.clone()),
            "From" => filter.from = Some(v.clone()),
            "ParentCallSid" => filter.parent_sid = Some(v.clone()),
            "Status" => {
                if v.parse::<tandem_webhook::CallStatus>().is_err() {
                    return Err(ApiError::invalid(format!(
                        "Status {v:?} is not a call status"
                    )));
                }
                filter.status = Some(v.to_ascii_lowercase());
            }
            "StartTime" | "StartTime<" | "StartTime>" | "EndTime" | "EndTime<" | "EndTime>" => {
                let (from, to) = time_range(v).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{k} {v:?} is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM:SSZ)"
                    ))
                })?;
                let (after, before) = if k.starts_with("Start") {
                    (&mut filter.start_after_ms, &mut filter.start_before_ms)
                } else {
                    (&mut filter.end_after_ms, &mut filter.end_before_ms)
                };
                if !k.ends_with('<') {
                    *after = Some(from);
                }
                if !k.ends_with('>') {
                    *before = Some(to);
                }
            }
            "PageSize" => {
                page_size = parse_page_size(v)?;
                continue;
            }
            "Page" => {
                page = parse_page(v)?;
                continue;
            }
            "PageToken" => {
                let sid = v
                    .strip_prefix("PA")
                    .filter(|s| s.starts_with("CA"))
                    .ok_or_else(|| ApiError::invalid(format!("PageToken {v:?} is not valid")))?;
                token = Some(sid.to_owned());
                continue;
            }
            _ => continue,
        }
        kept.push((k.clone(), v.clone()));
    }
    let h = history.clone();
    let f = filter.clone();
    let offset = if token.is_some() { 0 } else { page * page_size };
    let after = token.clone();
    let mut rows = blocking(move || {
        // One more than a page: whether there is a next one.
        h.calls(&f, after.as_deref(), offset, page_size + 1)
    })
    .await?;
    let more = rows.len() > page_size;
    rows.truncate(page_size);
    let base = format!("{API_PREFIX}/{account}/Calls.json");
    let uri_with = |extra: &[(&str, String)]| -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            s.append_pair(k, v);
        }
        for (k, v) in extra {
            s.append_pair(k, v);
        }
        format!("{base}?{}", s.finish())
    };
    let size = page_size.to_string();
    let this = {
        let mut extra = vec![("PageSize", size.clone()), ("Page", page.to_string())];
        if let Some(t) = &token {
            extra.push(("PageToken", format!("PA{t}")));
        }
        uri_with(&extra)
    };
    let next = match (more, rows.last()) {
        (true, Some(last)) => Value::String(uri_with(&[
            ("PageSize", size.clone()),
            ("Page", (page + 1).to_string()),
            ("PageToken", format!("PA{}", last.sid)),
        ])),
        _ => Value::Null,
    };
    let start = page * page_size;
    let body = json!({
        "calls": rows.iter().map(|r| call_json(account, r)).collect::<Vec<_>>(),
        "end": (start + rows.len()).saturating_sub(1),
        "first_page_uri": uri_with(&[("PageSize", size.clone()), ("Page", "0".into())]),
        "next_page_uri": next,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": Value::Null,
        "start": start,
        "uri": this,
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST …/Calls/{CallSid}.json`.
async fn modify(
    ctx: &Arc<Ctx>,
    sid: &str,
    path: &str,
    form: &[(String, String)],
) -> Result<http::Response<HttpBody>, ApiError> {
    deliver(ctx, sid, path, modification(form)?).await?;
    let Some(history) = ctx.history.clone() else {
        return Ok(json_response(StatusCode::OK, &json!({ "sid": sid })));
    };
    // What the call did is written before the resource is read back.
    flush(&history).await?;
    match fetch(&history, sid).await? {
        Some(row) => Ok(json_response(
            StatusCode::OK,
            &call_json(&ctx.cfg.account_sid, &row),
        )),
        None => Err(ApiError::not_found(path)),
    }
}

/// What a modification's form asks: `Status`, `Twiml`, or `Url`/`Method`.
fn modification(form: &[(String, String)]) -> Result<ApiAction, ApiError> {
    Ok(if let Some(status) = param(form, "Status") {
        match status {
            "canceled" => ApiAction::Cancel,
            "completed" => ApiAction::Complete,
            other => {
                return Err(ApiError::invalid(format!(
                    "Status {other:?}: only canceled or completed can be set"
                )));
            }
        }
    } else if let Some(twiml) = param(form, "Twiml") {
        if let Err(e) = tandem_twiml::parse(twiml) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                12100,
                format!("Twiml is not valid TwiML: {e}"),
            ));
        }
        ApiAction::Twiml(twiml.to_owned())
    } else if let Some(parsed) = http_url_param(form, "Url")? {
        let method = match param(form, "Method") {
            None => tandem_twiml::Method::Post,
            Some(m) => m
                .parse()
                .map_err(|_| ApiError::invalid(format!("Method {m:?} must be GET or POST")))?,
        };
        ApiAction::Url(parsed, method)
    } else {
        return Err(ApiError::invalid("One of Url, Twiml or Status is required"));
    })
}

/// Hands `action` to the live call `sid` and waits for its answer.
async fn deliver(ctx: &Arc<Ctx>, sid: &str, path: &str, action: ApiAction) -> Result<(), ApiError> {
    let live = ctx.live.get(sid).map(|m| m.clone());
    let Some(mailbox) = live else {
        let known = match &ctx.history {
            Some(h) => fetch(h, sid).await?.is_some(),
            None => false,
        };
        return Err(if known {
            not_in_progress()
        } else {
            ApiError::not_found(path)
        });
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = mailbox.send(CallMsg::Api(Box::new(ApiCommand {
        sid: sid.to_owned(),
        action,
        reply: Some(tx),
    })));
    if !sent {
        return Err(not_in_progress());
    }
    match tokio::time::timeout(CALL_ANSWER, rx).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(ApiRefusal::NotInProgress))) | Ok(Err(_)) => Err(not_in_progress()),
        Ok(Ok(Err(ApiRefusal::Unsupported(why)))) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, 21220, why))
        }
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "The call did not take the modification in time",
        )),
    }
}

/// Parameters of `POST …/Calls.json` Tandem does not act on yet: refused
/// rather than ignored (docs/api.md).
const NOT_YET: &[&str] = &["ApplicationSid"];

/// `MachineDetection…` parameters and the `<Number>` attributes they become.
const AMD_PARAMS: [(&str, &str); 5] = [
    ("MachineDetection", "machineDetection"),
    ("MachineDetectionTimeout", "machineDetectionTimeout"),
    (
        "MachineDetectionSpeechThreshold",
        "machineDetectionSpeechThreshold",
    ),
    (
        "MachineDetectionSpeechEndThreshold",
        "machineDetectionSpeechEndThreshold",
    ),
    (
        "MachineDetectionSilenceTimeout",
        "machineDetectionSilenceTimeout",
    ),
];

/// `Record=true` and its parameters: the recording a placed call makes
/// from its answer to its end (`RecordingSource=OutboundAPI`).
fn api_record(
    form: &[(String, String)],
    callback_method: &str,
) -> Result<Option<crate::call::ApiRecord>, ApiError> {
    use crate::recording::{RecordFrom, RecordingOptions, RecordingSource};
    match param(form, "Record") {
        None => return Ok(None),
        Some(v) if v.eq_ignore_ascii_case("false") => return Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => {}
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "Record {v:?} must be true or false"
            )));
        }
    }
    let layout = match param(form, "RecordingChannels") {
        None => tandem_media::ChannelLayout::Mono,
        Some(v) if v.eq_ignore_ascii_case("mono") => tandem_media::ChannelLayout::Mono,
        Some(v) if v.eq_ignore_ascii_case("dual") => tandem_media::ChannelLayout::Dual,
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "RecordingChannels {v:?} must be mono or dual"
            )));
        }
    };
    let track = match param(form, "RecordingTrack") {
        None => tandem_media::RecordingTrack::Both,
        Some(v) => v.parse().map_err(|_| {
            ApiError::invalid(format!(
                "RecordingTrack {v:?} must be inbound, outbound or both"
            ))
        })?,
    };
    let trim = match param(form, "Trim") {
        None => tandem_media::Trim::TrimSilence,
        Some(v) => v.parse().map_err(|_| {
            ApiError::invalid(format!("Trim {v:?} must be trim-silence or do-not-trim"))
        })?,
    };
    let callback = match http_url_param(form, "RecordingStatusCallback")? {
        None => None,
        Some(url) => {
            let mut events = Vec::new();
            for word in form
                .iter()
                .filter(|(k, _)| k == "RecordingStatusCallbackEvent")
                .flat_map(|(_, v)| v.split([' ', ',']))
                .filter(|w| !w.is_empty())
            {
                events.push(word.parse::<tandem_twiml::RecordingStatus>().map_err(|_| {
                    ApiError::invalid(format!(
                        "RecordingStatusCallbackEvent {word:?} must be in-progress, completed or absent"
                    ))
                })?);
            }
            if events.is_empty() {
                events.push(tandem_twiml::RecordingStatus::Completed);
            }
            let method = if callback_method == "GET" {
                tandem_webhook::Method::Get
            } else {
                tandem_webhook::Method::Post
            };
            Some((url, method, events))
        }
    };
    Ok(Some(crate::call::ApiRecord {
        opts: RecordingOptions {
            from: RecordFrom::Answer,
            layout,
            track,
            trim,
            source: RecordingSource::OutboundApi,
        },
        callback,
    }))
}

/// `POST …/Calls.json`: places a call at once; its TwiML runs on answer.
async fn create(
    ctx: &Arc<Ctx>,
    form: &[(String, String)],
) -> Result<http::Response<HttpBody>, ApiError> {
    if let Some(k) = NOT_YET.iter().find(|k| param(form, k).is_some()) {
        return Err(ApiError::invalid(format!(
            "{k} is not supported by Tandem's API yet (docs/api.md)"
        )));
    }

    let to = param(form, "To")
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                21201,
                "No 'To' number is specified",
            )
        })?;
    let from = param(form, "From")
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                21213,
                "No 'From' number is specified",
            )
        })?;
    let method = |key: &str| -> Result<&'static str, ApiError> {
        match param(form, key) {
            None => Ok("POST"),
            Some(m) if m.eq_ignore_ascii_case("POST") => Ok("POST"),
            Some(m) if m.eq_ignore_ascii_case("GET") => Ok("GET"),
            Some(m) => Err(ApiError::invalid(format!(
                "{key} {m:?} must be GET or POST"
            ))),
        }
    };
    let http_url = |key: &str| http_url_param(form, key);
    // What runs once the callee answers.
    let answered = if let Some(twiml) = param(form, "Twiml") {
        tandem_twiml::parse(twiml).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                12100,
                format!("Twiml is not valid TwiML: {e}"),
            )
        })?
    } else if let Some(url) = http_url("Url")? {
        let doc = format!(
            "<Response><Redirect method=\"{}\">{}</Redirect></Response>",
            method("Method")?,
            xml_escape(url.as_str())
        );
        tandem_twiml::parse(&doc)
            .map_err(|e| ApiError::invalid(format!("Url cannot be requested: {e}")))?
    } else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            21205,
            "Url or Twiml is required",
        ));
    };
    let fallback = http_url("FallbackUrl")?.map(|u| {
        let m = if method("FallbackMethod").ok() == Some("GET") {
            tandem_twiml::Method::Get
        } else {
            tandem_twiml::Method::Post
        };
        tandem_webhook::Target::new(u.to_string(), m)
    });
    let timeout = match param(form, "Timeout") {
        None => 60,
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|t| (1..=600).contains(t))
            .ok_or_else(|| ApiError::invalid(format!("Timeout {t:?} must be 1 to 600 seconds")))?,
    };
    // The <Dial> that rings the callee, with the call's status callbacks.
    let mut attrs = String::new();
    if let Some(cb) = http_url("StatusCallback")? {
        let events: Vec<&str> = form
            .iter()
            .filter(|(k, _)| k == "StatusCallbackEvent")
            .flat_map(|(_, v)| v.split([' ', ',']))
            .filter(|e| !e.is_empty())
            .collect();
        let events = if events.is_empty() {
            "completed".to_owned()
        } else {
            events.join(" ")
        };
        attrs.push_str(&format!(
            " statusCallback=\"{}\" statusCallbackMethod=\"{}\" statusCallbackEvent=\"{}\"",
            xml_escape(cb.as_str()),
            method("StatusCallbackMethod")?,
            xml_escape(&events)
        ));
    }
    if let Some(d) = param(form, "SendDigits") {
        attrs.push_str(&format!(" sendDigits=\"{}\"", xml_escape(d)));
    }
    let (tag, value) = if let Some(id) = to.strip_prefix("client:") {
        ("Client", id)
    } else if to.starts_with("sip:") || to.starts_with("sips:") {
        ("Sip", to)
    } else {
        ("Number", to)
    };
    let only = |keys: &[&str], noun: &str, what: &str| -> Result<(), ApiError> {
        match keys.iter().find(|k| param(form, k).is_some()) {
            Some(k) if tag != noun => Err(ApiError::invalid(format!("{k} applies to {what} only"))),
            _ => Ok(()),
        }
    };
    only(&["SendDigits"], "Number", "phone numbers")?;
    only(
        &AMD_PARAMS.map(|(k, _)| k),
        "Number",
        "phone numbers in Tandem",
    )?;
    only(
        &["SipAuthUsername", "SipAuthPassword"],
        "Sip",
        "sip: destinations",
    )?;
    for (key, attr) in AMD_PARAMS {
        if let Some(v) = param(form, key) {
            attrs.push_str(&format!(" {attr}=\"{}\"", xml_escape(v)));
        }
    }
    // `AsyncAmd=true`: the call's Url runs at once on answer and the
    // detection's result goes to `AsyncAmdStatusCallback`.
    match param(form, "AsyncAmd") {
        None => {}
        Some(v) if v.eq_ignore_ascii_case("false") => {}
        Some(v) if v.eq_ignore_ascii_case("true") => {
            if param(form, "MachineDetection").is_none() {
                return Err(ApiError::invalid("AsyncAmd=true needs MachineDetection"));
            }
            let cb = http_url("AsyncAmdStatusCallback")?.ok_or_else(|| {
                ApiError::invalid("AsyncAmd=true needs an AsyncAmdStatusCallback")
            })?;
            attrs.push_str(&format!(
                " amdStatusCallback=\"{}\" amdStatusCallbackMethod=\"{}\"",
                xml_escape(cb.as_str()),
                method("AsyncAmdStatusCallbackMethod")?
            ));
        }
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "AsyncAmd {v:?} must be true or false"
            )));
        }
    }
    if let Some(u) = param(form, "SipAuthUsername") {
        attrs.push_str(&format!(" username=\"{}\"", xml_escape(u)));
    }
    if let Some(p) = param(form, "SipAuthPassword") {
        attrs.push_str(&format!(" password=\"{}\"", xml_escape(p)));
    }
    let time_limit = match param(form, "TimeLimit") {
        None => None,
        Some(t) => Some(
            t.parse::<u64>()
                .ok()
                .filter(|t| (1..=86_400).contains(t))
                .map(std::time::Duration::from_secs)
                .ok_or_else(|| {
                    ApiError::invalid(format!("TimeLimit {t:?} must be 1 to 86400 seconds"))
                })?,
        ),
    };
    let record = api_record(form, method("RecordingStatusCallbackMethod")?)?;
    // `CallerId`: what the callee sees (a SIP or client call's From);
    // the call's `from` stays `From`.
    let caller_id = param(form, "CallerId")
        .filter(|c| !c.trim().is_empty())
        .unwrap_or(from);
    let dial_doc = format!(
        "<Response><Dial timeout=\"{timeout}\" callerId=\"{}\"><{tag}{attrs}>{}</{tag}></Dial></Response>",
        xml_escape(caller_id),
        xml_escape(value)
    );
    let dial = tandem_twiml::parse(&dial_doc).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            21210,
            format!("To or a parameter is not valid: {e}"),
        )
    })?;
    let admitted = ctx
        .admission
        .admit_call(std::time::Instant::now())
        .map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                20429,
                "Too Many Requests: call limit reached",
            )
        })?;
    let sid = {
        let mut ids = tandem_sip::builder::IdGen::from_entropy();
        crate::call::call_sid(&mut ids)
    };
    // A placed call's state before its task runs (queued), or if it
    // cannot run (failed).
    let placed = |status| crate::history::CallRecord {
        sid: sid.clone(),
        parent_sid: None,
        from: from.to_owned(),
        to: to.to_owned(),
        direction: tandem_webhook::Direction::OutboundApi,
        status,
        caller_name: None,
        forwarded_from: None,
        answered_by: None,
        duration: None,
        at: std::time::SystemTime::now(),
    };
    // Its `queued` row goes in before the call can write anything else,
    // and is on disk before the client can ask for it.
    if let Some(h) = &ctx.history {
        h.record(placed(tandem_webhook::CallStatus::Queued));
        flush(h).await?;
    }
    let api = crate::call::ApiCall {
        sid: sid.clone(),
        from: from.to_owned(),
        to: to.to_owned(),
        dial,
        answered: (answered, None),
        fallback,
        time_limit,
        record,
    };
    if !crate::call::spawn_api(ctx, api, admitted) {
        if let Some(h) = &ctx.history {
            h.record(placed(tandem_webhook::CallStatus::Failed));
        }
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "The call could not be set up",
        ));
    }
    tracing::info!(%sid, to, from, "call placed through the REST API");
    // Twilio answers with the call as created: `queued`.
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(0);
    let row = CallRow {
        sid,
        parent_sid: None,
        from: from.to_owned(),
        to: to.to_owned(),
        direction: "outbound-api".into(),
        status: "queued".into(),
        caller_name: None,
        forwarded_from: None,
        answered_by: None,
        created_ms: now,
        updated_ms: now,
        start_ms: None,
        end_ms: None,
        duration: None,
    };
    Ok(json_response(
        StatusCode::CREATED,
        &call_json(&ctx.cfg.account_sid, &row),
    ))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn not_in_progress() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        21220,
        "Call is not in-progress. Cannot redirect.",
    )
}

/// `GET …/Calls/{CallSid}/Events.json`: the requests Tandem made to the
/// application for this call, each with its answer when it was a TwiML
/// document (`response_code` 200, the body, the time it took; `null` for
/// a callback, or a fetch that failed: `error` says why). Read from the
/// call's trace, written when its task ends: a live call has none yet. A
/// child's events are in its parent's trace, by their `CallSid`.
async fn events(
    history: &History,
    account: &str,
    sid: &str,
    path: &str,
    query: &str,
) -> Result<http::Response<HttpBody>, ApiError> {
    let q = PageQuery::parse(query)?;
    flush(history).await?;
    let Some(row) = fetch(history, sid).await? else {
        return Err(ApiError::not_found(path));
    };
    let h = history.clone();
    let (own, parent) = (sid.to_owned(), row.parent_sid.clone());
    let trace = blocking(move || match h.trace(&own)? {
        Some(t) => Ok(Some(t)),
        None => match parent {
            Some(p) => h.trace(&p),
            None => Ok(None),
        },
    })
    .await?;
    let items = trace
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .map(|t| trace_events(&t, sid))
        .unwrap_or_default();
    let base = format!("{API_PREFIX}/{account}/Calls/{sid}/Events.json");
    Ok(paged("events", &base, items, &q))
}

/// A trace's webhooks of call `sid` as Twilio's Event resources.
fn trace_events(trace: &Value, sid: &str) -> Vec<Value> {
    let empty = Vec::new();
    let hooks = trace["hooks"].as_array().unwrap_or(&empty);
    let mut answered = vec![false; hooks.len()];
    let mut out = Vec::new();
    for (i, h) in hooks.iter().enumerate() {
        let kind = h["kind"].as_str().unwrap_or("");
        if !matches!(kind, "request" | "status" | "callback") {
            continue;
        }
        let params: serde_json::Map<String, Value> = h["params"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].clone())))
            .collect();
        if params
            .get("CallSid")
            .and_then(Value::as_str)
            .is_some_and(|c| c != sid)
        {
            continue;
        }
        // A document fetch's answer is the first unclaimed one after it.
        let answer = (kind == "request")
            .then(|| {
                (i + 1..hooks.len()).find(|&j| {
                    !answered[j] && matches!(hooks[j]["kind"].as_str(), Some("twiml" | "error"))
                })
            })
            .flatten();
        let response = match answer {
            Some(j) => {
                answered[j] = true;
                let a = &hooks[j];
                let took = a["t"]
                    .as_u64()
                    .unwrap_or(0)
                    .saturating_sub(h["t"].as_u64().unwrap_or(0));
                if a["kind"] == "twiml" {
                    json!({
                        "request_duration": took,
                        "response_code": 200,
                        "content_type": "text/xml",
                        "response_body": a["body"],
                    })
                } else {
                    json!({
                        "request_duration": took,
                        "response_code": Value::Null,
                        "error": a["error"],
                    })
                }
            }
            None => Value::Null,
        };
        out.push(json!({
            "request": {
                "method": h["method"],
                "url": h["url"],
                "parameters": params,
            },
            "response": response,
        }));
    }
    out
}

/// `GET …/Recordings.json` and `GET …/Calls/{CallSid}/Recordings.json`:
/// the recordings' resources (their sidecars), newest first; filters
/// `CallSid`, `DateCreated` (and `<`/`>` forms); paging by `PageSize`/`Page`.
async fn recordings(
    store: &crate::recording::RecordingStore,
    account: &str,
    call: Option<&str>,
    query: &str,
) -> Result<http::Response<HttpBody>, ApiError> {
    let q = PageQuery::parse(query)?;
    let mut call_sid = call.map(str::to_owned);
    let (mut after, mut before) = (None, None);
    for (k, v) in &q.pairs {
        match k.as_str() {
            "CallSid" if call_sid.is_none() => call_sid = Some(v.clone()),
            "DateCreated" | "DateCreated<" | "DateCreated>" => {
                let (from, to) = time_range(v)
                    .ok_or_else(|| ApiError::invalid(format!("{k} {v:?} is not a date")))?;
                if !k.ends_with('<') {
                    after = Some(from);
                }
                if !k.ends_with('>') {
                    before = Some(to);
                }
            }
            _ => {}
        }
    }
    let dir = store.dir().to_owned();
    let mut all: Vec<(i64, Value)> = tokio::task::spawn_blocking(move || read_sidecars(&dir))
        .await
        .unwrap_or_default();
    all.retain(|(created, r)| {
        call_sid.as_deref().is_none_or(|c| r["call_sid"] == c)
            && after.is_none_or(|a| *created >= a)
            && before.is_none_or(|b| *created <= b)
    });
    all.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| b.1["sid"].as_str().cmp(&a.1["sid"].as_str()))
    });
    let base = match call {
        Some(c) => format!("{API_PREFIX}/{account}/Calls/{c}/Recordings.json"),
        None => format!("{API_PREFIX}/{account}/Recordings.json"),
    };
    let items = all.into_iter().map(|x| x.1).collect();
    Ok(paged("recordings", &base, items, &q))
}

/// A list request's query: its pairs, `Page` and `PageSize`.
pub(super) struct PageQuery {
    pairs: Vec<(String, String)>,
    page: usize,
    page_size: usize,
}

impl PageQuery {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let mut q = PageQuery {
            pairs: Vec::new(),
            page: 0,
            page_size: PAGE_SIZE,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "PageSize" => q.page_size = parse_page_size(&v)?,
                "Page" => q.page = parse_page(&v)?,
                _ => q.pairs.push((k, v)),
            }
        }
        Ok(q)
    }

    /// A filter's value.
    fn get(&self, key: &str) -> Option<&str> {
        param(&self.pairs, key)
    }

    /// Offset and limit of the page in a query: one more than a page, to
    /// tell whether there is a next one.
    fn window(&self) -> (usize, usize) {
        (self.page * self.page_size, self.page_size + 1)
    }

    /// The page [`PageQuery::window`] fetched, in Twilio's list shape.
    fn page_of(&self, key: &str, base: &str, mut rows: Vec<Value>) -> http::Response<HttpBody> {
        let more = rows.len() > self.page_size;
        rows.truncate(self.page_size);
        page_body(key, base, rows, more, self)
    }
}

/// One page of an in-memory list, in Twilio's list shape under `key`.
fn paged(key: &str, base: &str, all: Vec<Value>, q: &PageQuery) -> http::Response<HttpBody> {
    let start = q.page * q.page_size;
    let more = all.len() > start + q.page_size;
    let items: Vec<Value> = all.into_iter().skip(start).take(q.page_size).collect();
    page_body(key, base, items, more, q)
}

/// A page of `items` (`more`: another page follows) under `key`.
fn page_body(
    key: &str,
    base: &str,
    items: Vec<Value>,
    more: bool,
    q: &PageQuery,
) -> http::Response<HttpBody> {
    let (page, page_size) = (q.page, q.page_size);
    let start = page * page_size;
    let at = |p: usize| format!("{base}?PageSize={page_size}&Page={p}");
    let mut body = json!({
        "end": (start + items.len()).saturating_sub(1),
        "first_page_uri": at(0),
        "next_page_uri": if more { Value::String(at(page + 1)) } else { Value::Null },
        "page": page,
        "page_size": page_size,
        "previous_page_uri": if page > 0 { Value::String(at(page - 1)) } else { Value::Null },
        "start": start,
        "uri": at(page),
    });
    body[key] = Value::Array(items);
    json_response(StatusCode::OK, &body)
}

/// Every recording sidecar in `dir` with its creation time (Unix ms).
pub(crate) fn read_sidecars(dir: &std::path::Path) -> Vec<(i64, Value)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(sid) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if !crate::recording::is_recording_sid(sid) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            tracing::warn!(path = %e.path().display(), "recording sidecar is not JSON: skipped");
            continue;
        };
        let created = v["date_created"]
            .as_str()
            .and_then(parse_rfc2822)
            .unwrap_or(0);
        out.push((created, v));
    }
    out
}

/// `DELETE …/Recordings/{sid}(.json)`: the WAV and its resource, 204; a
/// recording still being written cannot be deleted (400).
async fn delete_recording(
    store: &crate::recording::RecordingStore,
    sid: &str,
    path: &str,
) -> Result<http::Response<HttpBody>, ApiError> {
    if !crate::recording::is_recording_sid(sid) {
        return Err(ApiError::not_found(path));
    }
    let meta = store.meta_path(sid);
    let wav = store.wav_path(sid);
    let text = match tokio::fs::read_to_string(&meta).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(path));
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                format!("{e}"),
            ));
        }
    };
    let status = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_owned))
        .unwrap_or_default();
    if status == "in-progress" || status == "processing" {
        return Err(ApiError::invalid("The recording is still in progress"));
    }
    // The WAV first: a crash between the two leaves a resource without
    // media (reported absent by the start-up repair), never media without
    // a resource.
    for p in [&wav, &meta] {
        if let Err(e) = tokio::fs::remove_file(p).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                format!("{e}"),
            ));
        }
    }
    tracing::info!(%sid, "recording deleted through the REST API");
    let mut r = http::Response::new(crate::http::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

/// `Mon, 16 Aug 2010 03:25:01 +0000` (what [`tandem_webhook::rfc2822`]
/// writes) to Unix ms.
fn parse_rfc2822(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut w = s.split_whitespace().skip(1);
    let day: i64 = w.next()?.parse().ok()?;
    let month_name = w.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as i64 + 1;
    let year: i64 = w.next()?.parse().ok()?;
    let mut t = w.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, sec) = (t.next()??, t.next()??, t.next()??);
    Some((days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec) * 1000)
}

fn rfc2822_ms(ms: i64) -> String {
    tandem_webhook::rfc2822(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// A call in Twilio's Call resource shape.
pub(crate) fn call_json(account: &str, r: &CallRow) -> Value {
    let uri = format!("{API_PREFIX}/{account}/Calls/{}.json", r.sid);
    json!({
        "account_sid": account,
        "annotation": Value::Null,
        "answered_by": r.answered_by,
        "api_version": "2010-04-01",
        "caller_name": r.caller_name,
        "date_created": rfc2822_ms(r.created_ms),
        "date_updated": rfc2822_ms(r.updated_ms),
        "direction": r.direction,
        "duration": r.duration.map(|d| d.to_string()),
        "end_time": r.end_ms.map(rfc2822_ms),
        "forwarded_from": r.forwarded_from,
        "from": r.from,
        "from_formatted": r.from,
        "group_sid": Value::Null,
        "parent_call_sid": r.parent_sid,
        "phone_number_sid": Value::Null,
        "price": Value::Null,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": r.sid,
        "start_time": r.start_ms.map(rfc2822_ms),
        "status": r.status,
        "subresource_uris": {},
        "to": r.to,
        "to_formatted": r.to,
        "trunk_sid": Value::Null,
        "uri": uri,
    })
}

/// A date (`2026-12-04`: that whole day) or a UTC time
/// (`2026-12-04T10:00:00Z`: that second) as an inclusive range of Unix ms.
fn time_range(v: &str) -> Option<(i64, i64)> {
    let (date, time) = match v.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').unwrap_or(t))),
        None => (v, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (
        d.next()?.parse::<i64>().ok()?,
        d.next()?.parse::<i64>().ok()?,
        d.next()?.parse::<i64>().ok()?,
    );
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let day_ms = days_from_civil(y, m, day) * 86_400_000;
    match time {
        None => Some((day_ms, day_ms + 86_400_000 - 1)),
        Some(t) => {
            let mut p = t.split(':');
            let (h, min, s) = (
                p.next()?.parse::<i64>().ok()?,
                p.next()?.parse::<i64>().ok()?,
                p.next().unwrap_or("0").parse::<i64>().ok()?,
            );
            if p.next().is_some() || h > 23 || min > 59 || s > 60 {
                return None;
            }
            let at = day_ms + ((h * 60 + min) * 60 + s) * 1000;
            Some((at, at + 999))
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_are_inclusive_ranges() {
        assert_eq!(time_range("1970-01-01"), Some((0, 86_399_999)));
        assert_eq!(
            time_range("2010-08-16T03:25:01Z"),
            Some((1_281_929_101_000, 1_281_929_101_999))
        );
        assert_eq!(time_range("2000-02-29").map(|r| r.0), Some(951_782_400_000));
        for bad in ["", "2010", "2010-13-01", "2010-01-01T25:00:00Z", "x-y-z"] {
            assert_eq!(time_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc2822_round_trips() {
        for ms in [0, 951_782_400_000, 1_281_929_101_000, 4_102_444_799_000] {
            assert_eq!(parse_rfc2822(&rfc2822_ms(ms)), Some(ms));
        }
        assert_eq!(parse_rfc2822("yesterday"), None);
    }

    /// Each fetch gets the first answer after it; a callback has none; a
    /// child's callbacks in its parent's trace belong to the child.
    #[test]
    fn trace_hooks_become_events_of_their_call() {
        let trace = json!({"hooks": [
            {"t": 0, "kind": "request", "url": "http://a/voice", "method": "POST",
             "params": [["CallSid", "CA1"], ["CallStatus", "ringing"]]},
            {"t": 40, "kind": "twiml", "url": "http://a/voice", "method": "", "body": "<Response/>"},
            {"t": 50, "kind": "status", "url": "http://a/kid", "method": "POST",
             "params": [["CallSid", "CA2"], ["CallStatus", "ringing"]]},
            {"t": 60, "kind": "request", "url": "http://a/action", "method": "POST",
             "params": [["CallSid", "CA1"], ["DialCallStatus", "busy"]]},
            {"t": 5060, "kind": "error", "url": "", "method": "", "error": "timeout"},
        ]});
        let parent = trace_events(&trace, "CA1");
        assert_eq!(parent.len(), 2);
        assert_eq!(parent[0]["response"]["request_duration"], 40);
        assert_eq!(parent[0]["response"]["response_body"], "<Response/>");
        assert_eq!(parent[1]["request"]["parameters"]["DialCallStatus"], "busy");
        assert_eq!(parent[1]["response"]["error"], "timeout");
        assert!(parent[1]["response"]["response_code"].is_null());
        let child = trace_events(&trace, "CA2");
        assert_eq!(child.len(), 1);
        assert_eq!(child[0]["request"]["url"], "http://a/kid");
        assert!(child[0]["response"].is_null());
    }
}
