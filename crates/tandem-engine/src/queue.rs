//! Call queues for `<Enqueue>` and `<Dial><Queue>` (docs/queue.md): by
//! name, first in first out, created on first use.
//!
//! An agent's `<Dial><Queue>` takes the caller at the front; on an empty
//! queue the agent waits (up to its Dial's `timeout`) and is paired with
//! the next caller to arrive. A pair is told through both mailboxes
//! ([`QueueMsg`]), each message carrying the other's mailbox so that the
//! one who leaves first can tell the other ([`QueueMsg::PeerGone`]). The
//! two then meet in a private two-party conference room (the mixer does
//! the bridge, whatever their codecs).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use crate::call::{CallMsg, Mailbox};

/// Callers a queue holds (Twilio's default `MaxSize`).
pub(crate) const MAX_QUEUE_SIZE: u32 = 100;

/// What a queue tells a call.
#[derive(Debug)]
pub(crate) enum QueueMsg {
    /// To a waiting caller: an agent took it; it joins `room` (after the
    /// agent's `<Queue url>` document, if any).
    Dequeued {
        room: String,
        agent_sid: String,
        agent: Mailbox,
        url: Option<(String, tandem_twiml::Method)>,
    },
    /// To a waiting agent: a caller arrived and is its.
    Paired(Box<Pairing>),
    /// The other side of a pair left before or during the bridge.
    PeerGone,
}

/// A caller handed to an agent.
#[derive(Debug)]
pub(crate) struct Pairing {
    pub room: String,
    pub caller_sid: String,
    pub caller: Mailbox,
    pub queue_sid: String,
    /// Seconds the caller waited.
    pub queue_time: u64,
}

/// Where a caller stands in its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub queue_sid: String,
    /// 1 for the front; 0 when no longer waiting.
    pub position: u32,
    pub size: u32,
    pub max: u32,
    /// Average seconds waited by the callers dequeued so far.
    pub avg_secs: u64,
}

/// What an agent's `<Dial><Queue>` got.
#[derive(Debug)]
pub(crate) enum Taken {
    Caller(Box<Pairing>),
    /// Nobody waits: the agent waits for the next caller.
    Waiting {
        queue_sid: String,
    },
}

#[derive(Default)]
struct Queue {
    sid: String,
    /// When `<Enqueue>` or `<Dial><Queue>` first named it (since it was
    /// last empty).
    created: Option<SystemTime>,
    callers: VecDeque<Waiter>,
    agents: VecDeque<Agent>,
    /// Seconds waited by dequeued callers, and how many.
    waited: (u64, u64),
}

struct Waiter {
    call_sid: String,
    me: Mailbox,
    since: Instant,
}

struct Agent {
    call_sid: String,
    me: Mailbox,
    url: Option<(String, tandem_twiml::Method)>,
}

/// Every queue of the engine.
#[derive(Default)]
pub(crate) struct Queues {
    queues: Mutex<HashMap<String, Queue>>,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues").finish_non_exhaustive()
    }
}

impl Queues {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Callers waiting, in every queue.
    pub(crate) fn waiting(&self) -> usize {
        self.lock().values().map(|q| q.callers.len()).sum()
    }

    /// Puts a caller at the back of `name`; `Err` with the queue's state
    /// when it is full. A waiting agent takes it at once (the caller gets
    /// [`QueueMsg::Dequeued`]).
    pub(crate) fn enqueue(
        &self,
        name: &str,
        call_sid: &str,
        me: Mailbox,
    ) -> Result<Position, Position> {
        let mut all = self.lock();
        let q = all.entry(name.to_owned()).or_insert_with(new_queue);
        if q.callers.len() as u32 >= MAX_QUEUE_SIZE {
            return Err(position(q, None));
        }
        q.callers.push_back(Waiter {
            call_sid: call_sid.to_owned(),
            me,
            since: Instant::now(),
        });
        let pos = position(q, Some(call_sid));
        tracing::info!(
            queue = name,
            call = call_sid,
            size = q.callers.len(),
            "caller enqueued"
        );
        // An agent waiting for a caller takes this one now.
        while q.agents.front().is_some_and(|a| a.me.is_closed()) {
            q.agents.pop_front();
        }
        if let Some(agent) = q.agents.front() {
            let (agent_sid, me, url) =
                (agent.call_sid.clone(), agent.me.clone(), agent.url.clone());
            if let Some(p) = pair(q, &agent_sid, &me, &url) {
                q.agents.pop_front();
                let caller = p.caller.clone();
                if !me.send(CallMsg::Queue(Box::new(QueueMsg::Paired(Box::new(p))))) {
                    caller.send(CallMsg::Queue(Box::new(QueueMsg::PeerGone)));
                }
            }
        }
        Ok(pos)
    }

    /// Where `call_sid` stands in `name` (position 0 once taken).
    pub(crate) fn position(&self, name: &str, call_sid: &str) -> Option<Position> {
        self.lock().get(name).map(|q| position(q, Some(call_sid)))
    }

    /// Takes `call_sid` out of `name`; whether it was waiting there.
    pub(crate) fn leave(&self, name: &str, call_sid: &str) -> bool {
        let mut all = self.lock();
        let Some(q) = all.get_mut(name) else {
            return false;
        };
        let before = q.callers.len();
        q.callers.retain(|w| w.call_sid != call_sid);
        let left = q.callers.len() < before;
        gc(&mut all, name);
        left
    }

    /// An agent takes the front caller of `name`, or waits for the next.
    pub(crate) fn take(
        &self,
        name: &str,
        agent_sid: &str,
        agent: Mailbox,
        url: Option<(String, tandem_twiml::Method)>,
    ) -> Taken {
        let mut all = self.lock();
        let q = all.entry(name.to_owned()).or_insert_with(new_queue);
        match pair(q, agent_sid, &agent, &url) {
            Some(p) => Taken::Caller(Box::new(p)),
            None => {
                tracing::info!(
                    queue = name,
                    agent = agent_sid,
                    "queue empty: the agent waits"
                );
                q.agents.push_back(Agent {
                    call_sid: agent_sid.to_owned(),
                    me: agent,
                    url,
                });
                Taken::Waiting {
                    queue_sid: q.sid.clone(),
                }
            }
        }
    }

    /// A waiting agent gives up (timeout, hangup).
    pub(crate) fn cancel(&self, name: &str, agent_sid: &str) {
        let mut all = self.lock();
        if let Some(q) = all.get_mut(name) {
            q.agents.retain(|a| a.call_sid != agent_sid);
        }
        gc(&mut all, name);
    }
}

/// Hands the front caller that is still there to the agent `agent_sid`
/// (whose mailbox the caller's message carries).
fn pair(
    q: &mut Queue,
    agent_sid: &str,
    agent: &Mailbox,
    url: &Option<(String, tandem_twiml::Method)>,
) -> Option<Pairing> {
    while let Some(w) = q.callers.pop_front() {
        let room = format!("\u{1}queue {} {}", q.sid, agent_sid);
        let msg = QueueMsg::Dequeued {
            room: room.clone(),
            agent_sid: agent_sid.to_owned(),
            agent: agent.clone(),
            url: url.clone(),
        };
        if !w.me.send(CallMsg::Queue(Box::new(msg))) {
            tracing::debug!(call = %w.call_sid, "queued caller gone");
            continue;
        }
        let waited = w.since.elapsed().as_secs();
        q.waited.0 += waited;
        q.waited.1 += 1;
        tracing::info!(call = %w.call_sid, agent = agent_sid, waited, "caller dequeued");
        return Some(Pairing {
            room,
            caller_sid: w.call_sid,
            caller: w.me,
            queue_sid: q.sid.clone(),
            queue_time: waited,
        });
    }
    None
}

fn position(q: &Queue, call_sid: Option<&str>) -> Position {
    let at = call_sid.and_then(|s| q.callers.iter().position(|w| w.call_sid == s));
    Position {
        queue_sid: q.sid.clone(),
        position: at.map_or(0, |i| i as u32 + 1),
        size: q.callers.len() as u32,
        max: MAX_QUEUE_SIZE,
        avg_secs: q.waited.0.checked_div(q.waited.1).unwrap_or(0),
    }
}

/// Forgets an empty queue nobody waits on (its average goes with it).
fn gc(all: &mut HashMap<String, Queue>, name: &str) {
    if all
        .get(name)
        .is_some_and(|q| q.callers.is_empty() && q.agents.is_empty())
    {
        all.remove(name);
    }
}

fn new_queue() -> Queue {
    Queue {
        sid: queue_sid(),
        created: Some(SystemTime::now()),
        ..Queue::default()
    }
}

/// A queue as the REST API shows it (docs/api.md, "Queues").
#[derive(Debug, Clone)]
pub(crate) struct QueueView {
    pub sid: String,
    pub name: String,
    pub created: SystemTime,
    pub max: u32,
    /// Average seconds waited by the callers dequeued so far.
    pub avg_secs: u64,
    /// Who waits, front first: CallSid and seconds waited.
    pub members: Vec<(String, u64)>,
}

impl Queues {
    /// The queues in use now (an empty queue nobody waits on is forgotten),
    /// oldest first.
    pub(crate) fn views(&self) -> Vec<QueueView> {
        let now = Instant::now();
        let mut v: Vec<QueueView> = self
            .lock()
            .iter()
            .map(|(name, q)| QueueView {
                sid: q.sid.clone(),
                name: name.clone(),
                created: q.created.unwrap_or(SystemTime::UNIX_EPOCH),
                max: MAX_QUEUE_SIZE,
                avg_secs: q.waited.0.checked_div(q.waited.1).unwrap_or(0),
                members: q
                    .callers
                    .iter()
                    .map(|w| {
                        (
                            w.call_sid.clone(),
                            now.saturating_duration_since(w.since).as_secs(),
                        )
                    })
                    .collect(),
            })
            .collect();
        v.sort_by(|a, b| a.created.cmp(&b.created).then(a.sid.cmp(&b.sid)));
        v
    }
}

fn queue_sid() -> String {
    format!("QU{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::mailbox;

    #[tokio::test]
    async fn callers_are_taken_first_in_first_out_and_a_waiting_agent_gets_the_next() {
        let qs = Queues::default();
        let (c1, mut in1) = mailbox();
        let (c2, _in2) = mailbox();
        let p1 = qs.enqueue("support", "CA1", c1).unwrap();
        let p2 = qs.enqueue("support", "CA2", c2).unwrap();
        assert_eq!((p1.position, p1.size), (1, 1));
        assert_eq!((p2.position, p2.size), (2, 2));
        assert!(p1.queue_sid.starts_with("QU") && p1.queue_sid.len() == 34);
        let (a, _ina) = mailbox();
        let Taken::Caller(p) = qs.take("support", "CAagent", a, None) else {
            panic!("a caller waits");
        };
        assert_eq!(p.caller_sid, "CA1");
        assert!(matches!(
            in1.recv().await,
            Some(CallMsg::Queue(m)) if matches!(*m, QueueMsg::Dequeued { ref agent_sid, .. } if agent_sid == "CAagent")
        ));
        assert_eq!(qs.position("support", "CA2").unwrap().position, 1);
        assert!(qs.leave("support", "CA2"));
        assert!(!qs.leave("support", "CA2"));
        // Empty: the agent waits and gets the next caller.
        let (b, mut inb) = mailbox();
        assert!(matches!(
            qs.take("support", "CAb", b, None),
            Taken::Waiting { .. }
        ));
        let (c3, mut in3) = mailbox();
        qs.enqueue("support", "CA3", c3).unwrap();
        assert!(
            matches!(in3.recv().await, Some(CallMsg::Queue(m)) if matches!(*m, QueueMsg::Dequeued { .. }))
        );
        assert!(matches!(
            inb.recv().await,
            Some(CallMsg::Queue(m)) if matches!(*m, QueueMsg::Paired(ref p) if p.caller_sid == "CA3")
        ));
        assert_eq!(qs.waiting(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_gone_callers_are_skipped() {
        let qs = Queues::default();
        let mut inboxes = Vec::new();
        for i in 0..MAX_QUEUE_SIZE {
            let (m, inbox) = mailbox();
            inboxes.push(inbox);
            qs.enqueue("q", &format!("CA{i}"), m).unwrap();
        }
        let (m, _i) = mailbox();
        let full = qs.enqueue("q", "CAx", m).unwrap_err();
        assert_eq!((full.size, full.max), (MAX_QUEUE_SIZE, MAX_QUEUE_SIZE));
        // The first caller's call is gone (its inbox dropped): skipped.
        drop(inboxes.remove(0));
        let (a, _ia) = mailbox();
        let Taken::Caller(p) = qs.take("q", "CAa", a, None) else {
            panic!()
        };
        assert_eq!(p.caller_sid, "CA1");
    }
}
