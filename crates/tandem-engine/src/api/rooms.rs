//! The Conferences, Participants, Queues and Members resources (docs/api.md,
//! "Conferences" and "Queues"): what is live now, read from the engine's
//! rooms and queues, and what can be done to it — mute or remove a
//! participant, end a conference, dequeue a member to new TwiML.
//!
//! Rooms and queues live in memory while someone is in them. Conferences
//! are also kept in the history from their creation (so an ended one is
//! listed and fetched, without participants); a queue nobody waits on is
//! not listed.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde_json::{Value, json};

use super::{
    ApiError, PageQuery, blocking, deliver, flush, modification, paged, param, rfc2822_ms,
};
use crate::conference::{PartyView, RoomView};
use crate::engine::Ctx;
use crate::history::ConferenceRow;
use crate::http::{HttpBody, json_response};
use crate::queue::QueueView;
use crate::recording::API_PREFIX;

/// A path under `Conferences` or `Queues`.
pub(super) enum Live<'a> {
    Conferences,
    Conference(&'a str),
    Participants(&'a str),
    Participant(&'a str, &'a str),
    Queues,
    Queue(&'a str),
    Members(&'a str),
    Member(&'a str, &'a str),
}

impl<'a> Live<'a> {
    /// The resource `segs` (after the AccountSid) name, if one of these.
    pub(super) fn parse(segs: &[&'a str]) -> Option<Self> {
        let json = |s: &'a str| s.strip_suffix(".json");
        Some(match segs {
            ["Conferences.json"] => Live::Conferences,
            ["Conferences", c] => Live::Conference(json(c)?),
            ["Conferences", c, "Participants.json"] => Live::Participants(c),
            ["Conferences", c, "Participants", p] => Live::Participant(c, json(p)?),
            ["Queues.json"] => Live::Queues,
            ["Queues", q] => Live::Queue(json(q)?),
            ["Queues", q, "Members.json"] => Live::Members(q),
            ["Queues", q, "Members", m] => Live::Member(q, json(m)?),
            _ => return None,
        })
    }
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A conference as the resource shows it: live, or from the history.
struct Conf {
    sid: String,
    name: String,
    status: String,
    created_ms: i64,
    updated_ms: i64,
    reason: Option<String>,
    ended_by: Option<String>,
}

impl Conf {
    fn live(r: &RoomView) -> Self {
        Conf {
            sid: r.sid.clone(),
            name: r.name.clone(),
            status: if r.started { "in-progress" } else { "init" }.to_owned(),
            created_ms: ms(r.created),
            updated_ms: ms(r.updated),
            reason: None,
            ended_by: None,
        }
    }

    fn kept(r: ConferenceRow) -> Self {
        Conf {
            sid: r.sid,
            name: r.name,
            status: r.status,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            reason: r.reason,
            ended_by: r.ended_by,
        }
    }
}

fn conference_json(account: &str, r: &Conf) -> Value {
    let base = format!("{API_PREFIX}/{account}/Conferences/{}", r.sid);
    json!({
        "account_sid": account,
        "api_version": "2010-04-01",
        "call_sid_ending_conference": r.ended_by,
        "date_created": rfc2822_ms(r.created_ms),
        "date_updated": rfc2822_ms(r.updated_ms),
        "friendly_name": r.name,
        "reason_conference_ended": r.reason,
        "region": "us1",
        "sid": r.sid,
        "status": r.status,
        "subresource_uris": {
            "participants": format!("{base}/Participants.json"),
            "recordings": format!("{base}/Recordings.json"),
        },
        "uri": format!("{base}.json"),
    })
}

/// A conference by sid: live, else kept in the history (flushed first).
async fn find_conference(ctx: &Arc<Ctx>, sid: &str) -> Result<Option<Conf>, ApiError> {
    if let Some(r) = ctx.rooms.views().iter().find(|r| r.sid == sid) {
        return Ok(Some(Conf::live(r)));
    }
    let Some(h) = ctx.history.clone() else {
        return Ok(None);
    };
    flush(&h).await?;
    let sid = sid.to_owned();
    Ok(blocking(move || h.conference(&sid)).await?.map(Conf::kept))
}

fn participant_json(account: &str, conference: &str, p: &PartyView) -> Value {
    json!({
        "account_sid": account,
        "call_sid": p.call_sid,
        "call_sid_to_coach": p.coaching,
        "coaching": p.coaching.is_some(),
        "conference_sid": conference,
        "date_created": rfc2822_ms(ms(p.joined)),
        "date_updated": rfc2822_ms(ms(p.joined)),
        "end_conference_on_exit": p.end_on_exit,
        "hold": false,
        "label": p.label,
        "muted": p.muted,
        "queue_time": Value::Null,
        "start_conference_on_enter": p.start_on_enter,
        "status": "connected",
        "uri": format!(
            "{API_PREFIX}/{account}/Conferences/{conference}/Participants/{}.json",
            p.call_sid
        ),
    })
}

fn queue_json(account: &str, q: &QueueView) -> Value {
    let base = format!("{API_PREFIX}/{account}/Queues/{}", q.sid);
    json!({
        "account_sid": account,
        "average_wait_time": q.avg_secs,
        "current_size": q.members.len(),
        "date_created": rfc2822_ms(ms(q.created)),
        "date_updated": rfc2822_ms(ms(q.created)),
        "friendly_name": q.name,
        "max_size": q.max,
        "sid": q.sid,
        "subresource_uris": { "members": format!("{base}/Members.json") },
        "uri": format!("{base}.json"),
    })
}

fn member_json(account: &str, q: &QueueView, i: usize) -> Value {
    let (sid, waited) = &q.members[i];
    let enqueued = SystemTime::now() - std::time::Duration::from_secs(*waited);
    json!({
        "call_sid": sid,
        "date_enqueued": rfc2822_ms(ms(enqueued)),
        "position": i + 1,
        "queue_sid": q.sid,
        "uri": format!("{API_PREFIX}/{account}/Queues/{}/Members/{sid}.json", q.sid),
        "wait_time": waited,
    })
}

fn bool_param(form: &[(String, String)], key: &str) -> Result<Option<bool>, ApiError> {
    match param(form, key) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(ApiError::invalid(format!(
            "{key} {v:?} must be true or false"
        ))),
    }
}

/// Participant parameters Tandem does not act on yet: refused, never ignored.
const PARTICIPANT_NOT_YET: &[&str] = &[
    "Hold",
    "HoldUrl",
    "HoldMethod",
    "AnnounceUrl",
    "AnnounceMethod",
    "WaitUrl",
    "WaitMethod",
    "BeepOnExit",
    "EndConferenceOnExit",
    "Coaching",
    "CallSidToCoach",
];

/// Serves one request; `form` is the body of a POST.
pub(super) async fn serve(
    ctx: &Arc<Ctx>,
    method: &http::Method,
    path: &str,
    query: &str,
    form: &[(String, String)],
    live: Live<'_>,
) -> Result<http::Response<HttpBody>, ApiError> {
    let account = ctx.cfg.account_sid.as_str();
    let room = |sid: &str| {
        ctx.rooms
            .views()
            .into_iter()
            .find(|r| r.sid == sid)
            .ok_or_else(|| ApiError::not_found(path))
    };
    let queue = |sid: &str| {
        ctx.queues
            .views()
            .into_iter()
            .find(|q| q.sid == sid)
            .ok_or_else(|| ApiError::not_found(path))
    };
    let get = matches!(*method, http::Method::GET | http::Method::HEAD);
    let post = *method == http::Method::POST;
    let delete = *method == http::Method::DELETE;
    match live {
        Live::Conferences if get => {
            let q = PageQuery::parse(query)?;
            let status = q.get("Status").map(str::to_owned);
            if let Some(s) = &status
                && !matches!(s.as_str(), "init" | "in-progress" | "completed")
            {
                return Err(ApiError::invalid(format!(
                    "Status {s:?} must be init, in-progress or completed"
                )));
            }
            let name = q.get("FriendlyName").map(str::to_owned);
            let base = format!("{API_PREFIX}/{account}/Conferences.json");
            let Some(h) = ctx.history.clone() else {
                // No history: the live rooms alone.
                let items = ctx
                    .rooms
                    .views()
                    .iter()
                    .filter(|r| name.as_deref().is_none_or(|n| r.name == n))
                    .map(|r| conference_json(account, &Conf::live(r)))
                    .filter(|c| status.as_deref().is_none_or(|s| c["status"] == s))
                    .collect();
                return Ok(paged("conferences", &base, items, &q));
            };
            // The history has every conference, live ones included (their
            // rows follow their state).
            flush(&h).await?;
            let (offset, limit) = q.window();
            let rows =
                blocking(move || h.conferences(name.as_deref(), status.as_deref(), offset, limit))
                    .await?;
            Ok(q.page_of(
                "conferences",
                &base,
                rows.into_iter()
                    .map(|r| conference_json(account, &Conf::kept(r)))
                    .collect(),
            ))
        }
        Live::Conference(sid) if get => match find_conference(ctx, sid).await? {
            Some(c) => Ok(json_response(StatusCode::OK, &conference_json(account, &c))),
            None => Err(ApiError::not_found(path)),
        },
        Live::Conference(sid) if post => {
            // Twilio: `Status=completed` ends the conference; every
            // participant's call goes on after its <Dial>.
            match param(form, "Status") {
                Some("completed") => {}
                Some(s) => {
                    return Err(ApiError::invalid(format!(
                        "Status {s:?}: only completed can be set"
                    )));
                }
                None => {
                    return Err(ApiError::invalid(
                        "Status is required (AnnounceUrl is not supported yet)",
                    ));
                }
            }
            let Some(mut c) = find_conference(ctx, sid).await? else {
                return Err(ApiError::not_found(path));
            };
            ctx.rooms.remove(sid, None);
            c.status = "completed".to_owned();
            Ok(json_response(StatusCode::OK, &conference_json(account, &c)))
        }
        Live::Participants(sid) if get => {
            let q = PageQuery::parse(query)?;
            let muted = q.get("Muted").map(|v| v.eq_ignore_ascii_case("true"));
            // An ended conference has no participants left.
            let parties = match room(sid) {
                Ok(r) => r.parties,
                Err(e) if find_conference(ctx, sid).await?.is_none() => return Err(e),
                Err(_) => Vec::new(),
            };
            let items = parties
                .iter()
                .filter(|p| muted.is_none_or(|m| p.muted == m))
                .map(|p| participant_json(account, sid, p))
                .collect();
            Ok(paged(
                "participants",
                &format!("{API_PREFIX}/{account}/Conferences/{sid}/Participants.json"),
                items,
                &q,
            ))
        }
        Live::Participant(sid, call) if get => {
            let r = room(sid)?;
            let p = party(&r, call).ok_or_else(|| ApiError::not_found(path))?;
            Ok(json_response(
                StatusCode::OK,
                &participant_json(account, sid, p),
            ))
        }
        Live::Participant(sid, call) if post => {
            if let Some(k) = PARTICIPANT_NOT_YET
                .iter()
                .find(|k| param(form, k).is_some())
            {
                return Err(ApiError::invalid(format!(
                    "{k} is not supported by Tandem's API yet (docs/api.md)"
                )));
            }
            let r = room(sid)?;
            let call = party(&r, call)
                .ok_or_else(|| ApiError::not_found(path))?
                .call_sid
                .clone();
            let Some(muted) = bool_param(form, "Muted")? else {
                return Err(ApiError::invalid("Muted is required"));
            };
            let p = ctx
                .rooms
                .set_muted(sid, &call, muted)
                .ok_or_else(|| ApiError::not_found(path))?;
            Ok(json_response(
                StatusCode::OK,
                &participant_json(account, sid, &p),
            ))
        }
        Live::Participant(sid, call) if delete => {
            let r = room(sid)?;
            let call = party(&r, call)
                .ok_or_else(|| ApiError::not_found(path))?
                .call_sid
                .clone();
            if !ctx.rooms.remove(sid, Some(&call)) {
                return Err(ApiError::not_found(path));
            }
            let mut r = http::Response::new(crate::http::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            Ok(r)
        }
        Live::Queues if get => {
            let q = PageQuery::parse(query)?;
            let items = ctx
                .queues
                .views()
                .iter()
                .map(|x| queue_json(account, x))
                .collect();
            Ok(paged(
                "queues",
                &format!("{API_PREFIX}/{account}/Queues.json"),
                items,
                &q,
            ))
        }
        Live::Queue(sid) if get => Ok(json_response(
            StatusCode::OK,
            &queue_json(account, &queue(sid)?),
        )),
        Live::Members(sid) if get => {
            let q = PageQuery::parse(query)?;
            let view = queue(sid)?;
            let items = (0..view.members.len())
                .map(|i| member_json(account, &view, i))
                .collect();
            Ok(paged(
                "queue_members",
                &format!("{API_PREFIX}/{account}/Queues/{sid}/Members.json"),
                items,
                &q,
            ))
        }
        Live::Member(sid, call) if get || post => {
            let view = queue(sid)?;
            let i = member_index(&view, call).ok_or_else(|| ApiError::not_found(path))?;
            let body = member_json(account, &view, i);
            if post {
                // Dequeue: the member leaves the queue for the TwiML `Url`
                // names (its <Enqueue> ends without its action).
                if param(form, "Url").is_none() {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        21205,
                        "Url is required to dequeue a member",
                    ));
                }
                let action = modification(form)?;
                deliver(ctx, &view.members[i].0, path, action).await?;
            }
            Ok(json_response(StatusCode::OK, &body))
        }
        Live::Queues if post => Err(ApiError::invalid(
            "queues are created by <Enqueue> in Tandem; creating one through the API is not supported yet",
        )),
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            20004,
            format!("Method not allowed: {method}"),
        )),
    }
}

/// A participant by CallSid or by its label.
fn party<'r>(r: &'r RoomView, call: &str) -> Option<&'r PartyView> {
    r.parties
        .iter()
        .find(|p| p.call_sid == call || p.label.as_deref() == Some(call))
}

/// A member by CallSid, or `Front`.
fn member_index(q: &QueueView, call: &str) -> Option<usize> {
    if call == "Front" {
        return (!q.members.is_empty()).then_some(0);
    }
    q.members.iter().position(|(s, _)| s == call)
}
