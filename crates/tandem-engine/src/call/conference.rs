//! The caller in a `<Dial><Conference>` (docs/conference.md): joining the
//! room, the `waitUrl` music until the conference starts, and leaving it
//! (hangup, `hangupOnStar`, `timeLimit`, the room ending), after which the
//! Dial's `action` gets `DialCallStatus=answered`.

use tandem_types::{DialCallStatus, DialOutcome};

use super::hold::HoldFor;
use super::*;
use crate::conference::{JoinSpec, RoomMsg};

/// The caller's membership as the call sees it.
pub(super) struct InConference {
    room: String,
    hangup_on_star: bool,
    /// `<Dial timeLimit>`.
    until: Instant,
    started: bool,
    /// `<Dial record>`: the recording runs, with its callback.
    recording: Option<Option<super::dial::RecCallback>>,
    /// A `<Dial><Queue>` agent's private room with the dequeued caller.
    pub(super) queue: Option<QueueBridge>,
}

/// The agent's side of a queue bridge.
pub(super) struct QueueBridge {
    pub queue_sid: String,
    pub caller_sid: String,
    /// Seconds the caller waited.
    pub queue_time: u64,
    pub joined_at: Instant,
    /// The caller's mailbox: told when the agent leaves first.
    pub caller: Mailbox,
}

impl Call {
    /// Joins the `<Conference>` that is `spec`'s only noun.
    pub(super) fn start_conference(&mut self, spec: tandem_twiml::Dial) {
        let Some(tandem_twiml::Noun::Conference(c)) = spec.nouns.first() else {
            return;
        };
        let conference = (**c).clone();
        let Some(leg) = self.media else {
            tracing::warn!(room = %conference.name, "no media on the caller's leg: cannot join a conference");
            return self.conference_over(DialCallStatus::Failed, false);
        };
        let wait = conference
            .wait_url
            .clone()
            .and_then(|u| Url::parse(&u).ok());
        let wait_method = conference.wait_method;
        let room = conference.name.clone();
        let join = JoinSpec {
            call_sid: self.sid.clone(),
            conference,
        };
        let joined = match self.env.join_conference(leg, join) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(%room, error = %e, "conference not joined");
                return self.conference_over(DialCallStatus::Failed, false);
            }
        };
        tracing::info!(%room, conference = %joined.conference_sid, started = joined.started, "in conference");
        self.env.relay(leg, None);
        self.env.ringback(leg, None);
        if spec.hangup_on_star {
            self.ensure_dtmf();
        }
        self.conference = Some(Box::new(InConference {
            room,
            hangup_on_star: spec.hangup_on_star,
            until: self.now + Duration::from_secs(u64::from(spec.time_limit)),
            started: joined.started,
            recording: None,
            queue: None,
        }));
        // <Dial record>: channel 1 the caller, channel 2 what the room sends it.
        if let Some(opts) = crate::recording::RecordingOptions::from_twiml(
            spec.record,
            spec.recording_track,
            spec.trim,
        ) {
            let cb = self.rec_callback_of(
                spec.recording_status_callback.as_ref(),
                spec.recording_status_callback_method,
                &spec.recording_status_callback_event,
            );
            if self.record_caller(opts, cb.as_ref()) {
                self.env.record_conference();
                if let Some(c) = self.conference.as_deref_mut() {
                    c.recording = Some(cb);
                }
            }
        }
        if joined.started {
            self.env.conference_audio();
        } else if let Some(url) = wait {
            self.fetch_hold(HoldFor::Conference, url, wait_method, Vec::new());
        }
    }

    /// The room started or ended.
    pub(super) fn on_room(&mut self, msg: RoomMsg) {
        let Some(c) = self.conference.as_deref_mut() else {
            return self.queue_room(msg);
        };
        match msg {
            RoomMsg::Started => {
                if c.started {
                    return;
                }
                tracing::info!(room = %c.room, "conference started");
                c.started = true;
                self.stop_hold();
                self.env.conference_audio();
            }
            RoomMsg::Ended => {
                tracing::info!(room = %c.room, "conference ended");
                self.conference_over(DialCallStatus::Answered, true);
            }
        }
    }

    /// `*` with `hangupOnStar`: the caller leaves the room; the document goes on.
    pub(super) fn conference_star(&mut self, digit: char) -> bool {
        let star = digit == '*' && self.conference.as_ref().is_some_and(|c| c.hangup_on_star);
        if star {
            tracing::info!("hangupOnStar: caller pressed *, leaving the conference");
            self.conference_over(DialCallStatus::Answered, true);
        }
        star
    }

    /// The conference's timer: `timeLimit`.
    pub(super) fn conference_deadline(&self) -> Option<Instant> {
        self.conference.as_ref().map(|c| c.until)
    }

    pub(super) fn conference_timers(&mut self, now: Instant) {
        let Some(c) = self.conference.as_deref_mut() else {
            return;
        };
        if c.until <= now {
            tracing::info!(room = %c.room, "timeLimit reached: leaving the conference");
            self.conference_over(DialCallStatus::Answered, true);
        }
    }

    /// Whether the caller is in a conference (or joining one).
    pub(super) fn in_conference(&self) -> bool {
        self.conference.is_some()
    }

    /// Out of the room (or never in): the Dial ends with `status`.
    pub(super) fn conference_over(&mut self, mut status: DialCallStatus, bridged: bool) {
        let mut recording_url = None;
        let (mut call_sid, mut duration, mut extra) = (None, None, Vec::new());
        self.stop_hold();
        if let Some(c) = self.conference.take() {
            if let Some(cb) = c.recording {
                recording_url = self.end_recording(cb.as_ref()).map(|info| info.url);
            }
            // A <Dial><Queue> bridge: completed, with the dequeued caller.
            if let Some(q) = c.queue {
                q.caller
                    .send(CallMsg::Queue(Box::new(crate::queue::QueueMsg::PeerGone)));
                if status == DialCallStatus::Answered {
                    status = DialCallStatus::Completed;
                }
                call_sid = Some(q.caller_sid);
                duration = Some(secs_between(q.joined_at, self.now) as u32);
                extra = vec![
                    ("QueueSid".to_owned(), q.queue_sid),
                    ("QueueTime".to_owned(), q.queue_time.to_string()),
                ];
            }
        }
        self.env.leave_conference();
        self.env.dial_ended(status);
        if let Some(leg) = self.media {
            self.env.relay(leg, None);
        }
        tracing::info!(%status, "dial finished");
        self.outcome(Event::DialOutcome(DialOutcome {
            status,
            call_sid,
            duration,
            bridged,
            recording_url,
            extra,
        }));
        if self.caller_gone {
            self.finish();
        }
    }
}
