//! `<Enqueue>` (the caller waits in a queue) and `<Dial><Queue>` (an agent
//! takes the front caller), docs/queue.md. A pair meets in a private
//! two-party room (call/conference.rs, engine `conference.rs`); whoever
//! leaves first ends it for the other.

use tandem_twiml::{EnqueueOutcome, QueueResult};
use tandem_types::DialCallStatus;

use super::conference::QueueBridge;
use super::hold::HoldFor;
use super::*;
use crate::conference::{JoinSpec, RoomMsg};
use crate::queue::{Pairing, QueueMsg, Taken};

/// The call's part in a queue.
pub(crate) enum InQueue {
    /// A caller waiting in `name`.
    Waiting {
        name: String,
        queue_sid: String,
        since: Instant,
        wait: Option<(Url, tandem_twiml::Method)>,
    },
    /// A caller an agent took: hearing the agent's `<Queue url>`, then
    /// joining `room`.
    Taken {
        queue_sid: String,
        /// Seconds waited until dequeued.
        queue_time: u64,
        room: String,
        agent: Mailbox,
    },
    /// A caller in the room with its agent.
    Bridged {
        queue_sid: String,
        queue_time: u64,
        agent: Mailbox,
    },
    /// An agent whose queue was empty, waiting for a caller until `until`.
    Agent {
        name: String,
        until: Instant,
        spec: Box<tandem_twiml::Dial>,
    },
}

impl std::fmt::Debug for InQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Waiting { .. } => "Waiting",
            Self::Taken { .. } => "Taken",
            Self::Bridged { .. } => "Bridged",
            Self::Agent { .. } => "Agent",
        })
    }
}

/// The private room of a pair: both start it, either ends it, no beeps.
fn bridge_room(room: &str) -> tandem_twiml::Conference {
    let mut c = tandem_twiml::Conference::new(room);
    c.end_conference_on_exit = true;
    c.beep = tandem_twiml::ConferenceBeep::Off;
    c.max_participants = 2;
    c
}

impl Call {
    /// `<Enqueue>`: into the queue; the wait document plays until an agent
    /// takes the caller.
    pub(super) fn start_enqueue(&mut self, e: tandem_twiml::Enqueue) {
        if self.media.is_none() {
            tracing::warn!(queue = %e.queue, "no media on the caller's leg: cannot wait in a queue");
            return self.enqueue_over(QueueResult::Error, None, 0);
        }
        let pos = match self.env.enqueue(&e.queue, &self.sid) {
            Ok(p) => p,
            Err(p) => {
                tracing::warn!(queue = %e.queue, size = p.size, "queue full");
                return self.enqueue_over(QueueResult::QueueFull, Some(p.queue_sid), 0);
            }
        };
        let wait = e
            .wait_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            .map(|u| (u, e.wait_url_method));
        self.queue = Some(Box::new(InQueue::Waiting {
            name: e.queue,
            queue_sid: pos.queue_sid,
            since: self.now,
            wait: wait.clone(),
        }));
        if let Some((url, method)) = wait {
            let extra = self.queue_wait_params();
            self.fetch_hold(HoldFor::Queue, url, method, extra);
        }
    }

    /// The `waitUrl` parameters: where the caller stands.
    pub(super) fn queue_wait_params(&mut self) -> Vec<(String, String)> {
        let Some(InQueue::Waiting { name, since, .. }) = self.queue.as_deref() else {
            return Vec::new();
        };
        let (name, waited) = (name.clone(), secs_between(*since, self.now));
        let Some(p) = self.env.queue_position(&name, &self.sid) else {
            return Vec::new();
        };
        vec![
            ("QueueSid".to_owned(), p.queue_sid),
            ("QueuePosition".to_owned(), p.position.to_string()),
            ("QueueTime".to_owned(), waited.to_string()),
            ("AvgQueueTime".to_owned(), p.avg_secs.to_string()),
            ("CurrentQueueSize".to_owned(), p.size.to_string()),
            ("MaxQueueSize".to_owned(), p.max.to_string()),
        ]
    }

    /// The wait document's URL, requested again when it ends.
    pub(super) fn queue_wait_url(&self) -> Option<(Url, tandem_twiml::Method)> {
        match self.queue.as_deref()? {
            InQueue::Waiting { wait, .. } => wait.clone(),
            _ => None,
        }
    }

    /// `<Leave>` in the wait document.
    pub(super) fn queue_leave(&mut self) {
        let Some(InQueue::Waiting {
            name,
            queue_sid,
            since,
            ..
        }) = self.queue.as_deref()
        else {
            return;
        };
        let (name, sid, waited) = (
            name.clone(),
            queue_sid.clone(),
            secs_between(*since, self.now),
        );
        if self.env.queue_leave(&name, &self.sid) {
            tracing::info!(queue = %name, "caller left the queue (<Leave>)");
            self.queue = None;
            self.enqueue_over(QueueResult::Leave, Some(sid), waited);
        }
        // Not there any more: an agent took it; its Dequeued is on its way.
    }

    pub(super) fn on_queue_msg(&mut self, msg: QueueMsg) {
        match msg {
            QueueMsg::Dequeued {
                room,
                agent_sid,
                agent,
                url,
            } => self.on_dequeued(room, agent_sid, agent, url),
            QueueMsg::Paired(p) => {
                let Some(InQueue::Agent { name, spec, .. }) = self.queue.as_deref() else {
                    // This agent stopped waiting: the caller must not wait for it.
                    p.caller.send(CallMsg::Queue(Box::new(QueueMsg::PeerGone)));
                    return;
                };
                tracing::info!(queue = %name, caller = %p.caller_sid, "caller arrived for the waiting agent");
                let spec = (**spec).clone();
                self.queue = None;
                self.agent_join(spec, *p);
            }
            QueueMsg::PeerGone => self.on_peer_gone(),
        }
    }

    fn on_dequeued(
        &mut self,
        room: String,
        agent_sid: String,
        agent: Mailbox,
        url: Option<(String, tandem_twiml::Method)>,
    ) {
        let Some(InQueue::Waiting {
            queue_sid, since, ..
        }) = self.queue.as_deref()
        else {
            agent.send(CallMsg::Queue(Box::new(QueueMsg::PeerGone)));
            return;
        };
        let (queue_sid, since) = (queue_sid.clone(), *since);
        tracing::info!(agent = %agent_sid, "dequeued by an agent");
        self.stop_hold();
        let waited = secs_between(since, self.now);
        self.queue = Some(Box::new(InQueue::Taken {
            queue_sid: queue_sid.clone(),
            queue_time: waited,
            room,
            agent,
        }));
        match url.and_then(|(u, m)| Some((Url::parse(&u).ok()?, m))) {
            Some((url, method)) => {
                let extra = vec![
                    ("QueueSid".to_owned(), queue_sid),
                    ("QueueTime".to_owned(), waited.to_string()),
                    ("DequeingCallSid".to_owned(), agent_sid),
                ];
                self.fetch_hold(HoldFor::Dequeue, url, method, extra);
            }
            None => self.dequeued_url_done(),
        }
    }

    /// The agent's `<Queue url>` document played (or there was none): the
    /// caller joins its agent's room.
    pub(super) fn dequeued_url_done(&mut self) {
        let Some(InQueue::Taken { .. }) = self.queue.as_deref() else {
            return;
        };
        let Some(InQueue::Taken {
            queue_sid,
            queue_time,
            room,
            agent,
        }) = self.queue.take().map(|b| *b)
        else {
            return;
        };
        let joined = self
            .media
            .ok_or_else(|| "no media".to_owned())
            .and_then(|leg| {
                self.env.join_conference(
                    leg,
                    JoinSpec {
                        call_sid: self.sid.clone(),
                        conference: bridge_room(&room),
                    },
                )
            });
        match joined {
            Ok(_) => {
                self.env.conference_audio();
                self.queue = Some(Box::new(InQueue::Bridged {
                    queue_sid,
                    queue_time,
                    agent,
                }));
            }
            Err(e) => {
                tracing::warn!(error = %e, "dequeued caller could not join its agent");
                agent.send(CallMsg::Queue(Box::new(QueueMsg::PeerGone)));
                self.enqueue_over(QueueResult::SystemError, Some(queue_sid), queue_time);
            }
        }
    }

    /// The other side of the pair left.
    fn on_peer_gone(&mut self) {
        if self.conference.as_ref().is_some_and(|c| c.queue.is_some()) {
            tracing::info!("the dequeued caller left");
            return self.conference_over(DialCallStatus::Completed, true);
        }
        match self.queue.as_deref() {
            Some(InQueue::Taken { .. }) | Some(InQueue::Bridged { .. }) => {
                tracing::info!("the agent left");
                self.queue_bridge_over();
            }
            _ => {}
        }
    }

    /// The caller's bridge (or the way to it) ended: `QueueResult=bridged`.
    fn queue_bridge_over(&mut self) {
        self.stop_hold();
        let (sid, time) = match self.queue.take().map(|b| *b) {
            Some(InQueue::Bridged {
                queue_sid,
                queue_time,
                agent,
            }) => {
                self.env.leave_conference();
                agent.send(CallMsg::Queue(Box::new(QueueMsg::PeerGone)));
                (queue_sid, queue_time)
            }
            Some(InQueue::Taken {
                queue_sid,
                queue_time,
                ..
            }) => (queue_sid, queue_time),
            other => {
                self.queue = other.map(Box::new);
                return;
            }
        };
        self.enqueue_over(QueueResult::Bridged, Some(sid), time);
    }

    /// The room of a caller's queue bridge ended.
    pub(super) fn queue_room(&mut self, msg: RoomMsg) {
        if msg == RoomMsg::Ended && matches!(self.queue.as_deref(), Some(InQueue::Bridged { .. })) {
            self.queue_bridge_over();
        }
    }

    /// The caller hung up, or the call ended or moves to another document
    /// (the REST API), while in a queue's hands.
    pub(super) fn queue_caller_left(&mut self) -> bool {
        let Some(q) = self.queue.take().map(|b| *b) else {
            return false;
        };
        match q {
            InQueue::Waiting {
                name,
                queue_sid,
                since,
                ..
            } => {
                self.stop_hold();
                self.env.queue_leave(&name, &self.sid);
                let waited = secs_between(since, self.now);
                self.enqueue_over(QueueResult::Hangup, Some(queue_sid), waited);
            }
            InQueue::Taken {
                queue_sid,
                queue_time,
                agent,
                ..
            } => {
                self.stop_hold();
                agent.send(CallMsg::Queue(Box::new(QueueMsg::PeerGone)));
                self.enqueue_over(QueueResult::Hangup, Some(queue_sid), queue_time);
            }
            bridged @ InQueue::Bridged { .. } => {
                self.queue = Some(Box::new(bridged));
                self.queue_bridge_over();
            }
            InQueue::Agent { name, .. } => {
                self.env.queue_cancel(&name, &self.sid);
                self.agent_over(DialCallStatus::Canceled);
            }
        }
        true
    }

    fn enqueue_over(&mut self, result: QueueResult, queue_sid: Option<String>, queue_time: u64) {
        tracing::info!(result = result.as_str(), queue_time, "left the queue");
        self.outcome(Event::Enqueued(EnqueueOutcome {
            result,
            queue_sid,
            queue_time,
        }));
        if self.caller_gone {
            self.finish();
        }
    }

    // ----- the agent: <Dial><Queue> -----

    /// `<Dial><Queue>`: takes the front caller, or waits for one.
    pub(super) fn start_dequeue(&mut self, spec: tandem_twiml::Dial) {
        let Some(tandem_twiml::Noun::Queue(q)) = spec.nouns.first() else {
            return;
        };
        if self.media.is_none() {
            tracing::warn!(queue = %q.name, "no media on the agent's leg: cannot take a caller");
            return self.agent_over(DialCallStatus::Failed);
        }
        let url = q.url.clone().map(|u| (u, q.method));
        let name = q.name.clone();
        match self.env.queue_take(&name, &self.sid, url) {
            Taken::Caller(p) => self.agent_join(spec, *p),
            Taken::Waiting { .. } => {
                let until = self.now + Duration::from_secs(u64::from(spec.timeout));
                self.queue = Some(Box::new(InQueue::Agent {
                    name,
                    until,
                    spec: Box::new(spec),
                }));
            }
        }
    }

    /// The agent joins the pair's room, as a conference whose end completes
    /// its Dial with the caller's `DialCallSid`, `QueueSid` and `QueueTime`.
    fn agent_join(&mut self, mut spec: tandem_twiml::Dial, p: Pairing) {
        spec.nouns = vec![tandem_twiml::Noun::Conference(Box::new(bridge_room(
            &p.room,
        )))];
        self.start_conference(spec);
        match self.conference.as_deref_mut() {
            Some(c) => {
                c.queue = Some(QueueBridge {
                    queue_sid: p.queue_sid,
                    caller_sid: p.caller_sid,
                    queue_time: p.queue_time,
                    joined_at: self.now,
                    caller: p.caller,
                });
            }
            // Could not join (the Dial ended failed): release the caller.
            None => {
                p.caller.send(CallMsg::Queue(Box::new(QueueMsg::PeerGone)));
            }
        }
    }

    fn agent_over(&mut self, status: DialCallStatus) {
        self.env.dial_ended(status);
        tracing::info!(%status, "dial finished");
        self.outcome(Event::DialOutcome(tandem_types::DialOutcome {
            status,
            call_sid: None,
            duration: None,
            bridged: false,
            recording_url: None,
            extra: Vec::new(),
        }));
        if self.caller_gone {
            self.finish();
        }
    }

    pub(super) fn queue_deadline(&self) -> Option<Instant> {
        match self.queue.as_deref()? {
            InQueue::Agent { until, .. } => Some(*until),
            _ => None,
        }
    }

    pub(super) fn queue_timers(&mut self, now: Instant) {
        let Some(InQueue::Agent { name, until, .. }) = self.queue.as_deref() else {
            return;
        };
        if *until > now {
            return;
        }
        let name = name.clone();
        tracing::info!(queue = %name, "no caller came within the Dial's timeout");
        self.queue = None;
        self.env.queue_cancel(&name, &self.sid);
        self.agent_over(DialCallStatus::NoAnswer);
    }
}
