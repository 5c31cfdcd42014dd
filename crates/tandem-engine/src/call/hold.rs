//! What a waiting caller hears: the `waitUrl` document of a `<Conference>`
//! not yet started or of an `<Enqueue>`, and the `<Queue url>` document a
//! dequeued caller hears before its bridge. Its `<Say>`, `<Play>` and
//! `<Pause>` verbs play on the caller's leg (`Who::Wait`); a `<Redirect>`
//! after them moves to its document; in a queue's wait document `<Leave>`
//! leaves the queue and `<Hangup>` ends the call. Other verbs are skipped
//! and logged.
//!
//! When the document ends, a conference's loops; a queue's is requested
//! again (with the new `QueuePosition`); a dequeued caller's document runs
//! once. A pass lasts at least [`MIN_PASS`]: audio that fails to load is
//! retried once a second, never in a busy loop.

use tandem_twiml::{Prompt, Verb};

use super::*;

/// A pass over the prompts lasts at least this long.
const MIN_PASS: Duration = Duration::from_secs(1);

/// What the caller waits for; decides what the end of a document means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldFor {
    /// A conference to start: the document loops.
    Conference,
    /// An agent: the wait URL is requested again.
    Queue,
    /// The bridge after a `<Queue url>` document: it runs once.
    Dequeue,
}

/// The document being played.
pub(crate) struct Hold {
    pub(super) kind: HoldFor,
    /// The document's URL (relative URLs in it resolve against it).
    url: Option<Url>,
    /// Requested again when the document ends (queues).
    again: Option<(Url, tandem_twiml::Method)>,
    prompts: Vec<Prompt>,
    /// What ends the document: a `<Redirect>`, `<Leave>`, `<Hangup>`.
    end: End,
    next: usize,
    pass_began: Instant,
    /// This pass already waited out [`MIN_PASS`].
    rested: bool,
    pub(super) seq: u64,
    pub(super) playing: Option<u64>,
    pub(super) pause_until: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Again,
    Redirect(Url, tandem_twiml::Method),
    Leave,
    Hangup,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("kind", &self.kind)
            .field("prompts", &self.prompts.len())
            .field("next", &self.next)
            .finish()
    }
}

impl Call {
    /// Requests a hold document for `kind` (answer: `CallMsg::WaitFetched`).
    pub(super) fn fetch_hold(
        &mut self,
        kind: HoldFor,
        url: Url,
        method: tandem_twiml::Method,
        extra: Vec<(String, String)>,
    ) {
        self.hold_wanted = Some(kind);
        let mut params = self.call_info(self.status()).voice_params();
        for (k, v) in &extra {
            params.push(k, v);
        }
        let reason = match kind {
            HoldFor::Dequeue => tandem_twiml::FetchReason::Dequeued,
            _ => tandem_twiml::FetchReason::Wait,
        };
        self.out.push_back(Output::Fetch {
            screen: None,
            req: tandem_twiml::FetchRequest {
                url,
                method,
                params: extra,
                reason,
            },
            params,
            fallback: None,
        });
    }

    /// A hold document answered; `again` is what to request when it ends.
    pub(super) fn on_wait_fetched(&mut self, result: Fetched, dequeue: bool) {
        let Some(kind) = self.hold_wanted else {
            return;
        };
        if dequeue != (kind == HoldFor::Dequeue) {
            // The answer to a fetch made for what the caller waited for before.
            tracing::debug!("stale hold document ignored");
            return;
        }
        let again = self.hold_again();
        let what = match kind {
            HoldFor::Conference => "conference waitUrl",
            HoldFor::Queue => "queue waitUrl",
            HoldFor::Dequeue => "<Queue url>",
        };
        let parsed = match fetched_document(result) {
            Ok(d) => Some(d),
            Err(reason) => {
                tracing::warn!(%reason, "{what} failed");
                None
            }
        };
        let Some((doc, final_url)) = parsed else {
            return self.hold_over(kind);
        };
        let mut prompts = Vec::new();
        let mut end = End::Again;
        for verb in doc.verbs {
            match verb {
                Verb::Say(s) => prompts.push(Prompt::Say(s)),
                Verb::Play(p) => prompts.push(Prompt::Play(p)),
                Verb::Pause(p) => prompts.push(Prompt::Pause(p)),
                Verb::Redirect(r) => {
                    match tandem_webhook::resolve_url(&r.url, final_url.as_ref()) {
                        Ok(u) => end = End::Redirect(u, r.method),
                        Err(e) => tracing::warn!(error = %e, "{what} <Redirect> unusable"),
                    }
                    break;
                }
                Verb::Leave if kind == HoldFor::Queue => {
                    end = End::Leave;
                    break;
                }
                Verb::Hangup if kind != HoldFor::Conference => {
                    end = End::Hangup;
                    break;
                }
                other => tracing::warn!(
                    verb = other.name(),
                    "verb not allowed in a {what} document: skipped"
                ),
            }
        }
        if prompts.is_empty() && end == End::Again && kind != HoldFor::Queue {
            tracing::info!("{what} has nothing to play");
            return self.hold_over(kind);
        }
        self.hold = Some(Box::new(Hold {
            kind,
            url: final_url,
            again,
            prompts,
            end,
            next: 0,
            pass_began: self.now,
            rested: false,
            seq: 0,
            playing: None,
            pause_until: None,
        }));
        self.next_hold_prompt();
    }

    /// Plays the next prompt, or ends the document.
    pub(super) fn next_hold_prompt(&mut self) {
        let now = self.now;
        let Some(h) = self.hold.as_deref_mut() else {
            return;
        };
        if h.next == 0 && !h.rested {
            h.pass_began = now;
        }
        if h.next < h.prompts.len() {
            let prompt = h.prompts[h.next].clone();
            h.next += 1;
            return self.play_prompt(Who::Wait, prompt);
        }
        // The document ended; a too short pass waits out its second first.
        if !h.rested && h.end != End::Leave && h.end != End::Hangup && now < h.pass_began + MIN_PASS
        {
            h.pause_until = Some(h.pass_began + MIN_PASS);
            h.rested = true;
            return;
        }
        let (kind, end, again) = (h.kind, h.end.clone(), h.again.clone());
        match end {
            End::Redirect(url, method) => {
                self.hold = None;
                let extra = self.hold_params(kind);
                self.fetch_hold(kind, url, method, extra);
            }
            End::Leave => {
                self.stop_hold();
                self.queue_leave();
            }
            End::Hangup => {
                self.stop_hold();
                tracing::info!("<Hangup> in a hold document");
                self.hangup(480);
            }
            End::Again => match (kind, again) {
                (HoldFor::Queue, Some((url, method))) => {
                    self.hold = None;
                    let extra = self.hold_params(kind);
                    self.fetch_hold(kind, url, method, extra);
                }
                (HoldFor::Conference, _) => {
                    if let Some(h) = self.hold.as_deref_mut() {
                        h.next = 0;
                        h.rested = false;
                    }
                    self.next_hold_prompt();
                }
                _ => {
                    self.stop_hold();
                    self.hold_over(kind);
                }
            },
        }
    }

    /// Stops what the caller hears while waiting.
    pub(super) fn stop_hold(&mut self) {
        self.hold_wanted = None;
        if let Some(id) = self.hold.take().and_then(|h| h.playing) {
            self.env.stop_play(id);
        }
    }

    /// A hold document could not play, or ran to its end, once.
    fn hold_over(&mut self, kind: HoldFor) {
        if kind == HoldFor::Dequeue {
            self.hold_wanted = None;
            self.dequeued_url_done();
        }
        // Conference and queue: the caller waits on in silence.
    }

    /// What requests of the hold document add (queue position and times).
    fn hold_params(&mut self, kind: HoldFor) -> Vec<(String, String)> {
        match kind {
            HoldFor::Queue => self.queue_wait_params(),
            _ => Vec::new(),
        }
    }

    fn hold_again(&self) -> Option<(Url, tandem_twiml::Method)> {
        match self.hold_wanted? {
            HoldFor::Queue => self.queue_wait_url(),
            _ => None,
        }
    }

    /// Where a hold prompt's audio load and playback are tracked.
    pub(super) fn wait_slots(&mut self) -> Option<(&mut u64, &mut Option<u64>, Option<Url>)> {
        let h = self.hold.as_deref_mut()?;
        let url = h.url.clone();
        Some((&mut h.seq, &mut h.playing, url))
    }

    /// A hold `<Pause>` started.
    pub(super) fn wait_pause(&mut self, until: Instant) {
        if let Some(h) = self.hold.as_deref_mut() {
            h.pause_until = Some(until);
        }
    }

    pub(super) fn hold_deadline(&self) -> Option<Instant> {
        self.hold.as_ref().and_then(|h| h.pause_until)
    }

    pub(super) fn hold_timers(&mut self, now: Instant) {
        if let Some(h) = self.hold.as_deref_mut()
            && h.pause_until.is_some_and(|p| p <= now)
        {
            h.pause_until = None;
            self.verb_done(Who::Wait);
        }
    }
}
