//! The caller in a `<Dial><Conference>` (docs/conference.md): joining the
//! room, the `waitUrl` music until the conference starts, and leaving it
//! (hangup, `hangupOnStar`, `timeLimit`, the room ending), after which the
//! Dial's `action` gets `DialCallStatus=answered`.

use tandem_twiml::{Prompt, Verb};
use tandem_types::{DialCallStatus, DialOutcome};

use super::*;
use crate::conference::{JoinSpec, RoomMsg};

/// The caller's membership as the call sees it.
pub(super) struct InConference {
    room: String,
    hangup_on_star: bool,
    /// `<Dial timeLimit>`.
    until: Instant,
    started: bool,
    wait: Option<WaitMusic>,
    /// `<Dial record>`: the recording runs, with its callback.
    recording: Option<Option<super::dial::RecCallback>>,
}

/// The `waitUrl` document being played in a loop.
struct WaitMusic {
    /// The document's URL (relative URLs in it resolve against it).
    url: Option<Url>,
    prompts: Vec<Prompt>,
    /// A `<Redirect>` after the prompts: the next document to play.
    redirect: Option<(Url, tandem_twiml::Method)>,
    next: usize,
    /// When the current pass over the prompts began.
    pass_began: Instant,
    seq: u64,
    playing: Option<u64>,
    pause_until: Option<Instant>,
}

/// A pass over the wait prompts lasts at least this long: a document whose
/// audio all fails to load is retried once a second, not in a loop.
const MIN_WAIT_PASS: Duration = Duration::from_secs(1);

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
            wait: None,
            recording: None,
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
            self.fetch_wait(url, wait_method);
        }
    }

    fn fetch_wait(&mut self, url: Url, method: tandem_twiml::Method) {
        let params = self.call_info(self.status()).voice_params();
        self.out.push_back(Output::Fetch {
            screen: None,
            req: tandem_twiml::FetchRequest {
                url,
                method,
                params: Vec::new(),
                reason: tandem_twiml::FetchReason::ConferenceWait,
            },
            params,
            fallback: None,
        });
    }

    /// The `waitUrl` answered: its Say, Play and Pause verbs loop until the
    /// conference starts; a `<Redirect>` after them moves to its document.
    pub(super) fn on_wait_fetched(&mut self, result: Fetched) {
        let Some(c) = self.conference.as_deref() else {
            return;
        };
        if c.started {
            return;
        }
        let (body, final_url) = match result {
            Ok(x) => x,
            Err(reason) => {
                tracing::warn!(%reason, "conference waitUrl failed: waiting in silence");
                return;
            }
        };
        let doc = match tandem_twiml::parse(&body) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "conference waitUrl answered invalid TwiML: waiting in silence");
                return;
            }
        };
        let mut prompts = Vec::new();
        let mut redirect = None;
        for verb in doc.verbs {
            match verb {
                Verb::Say(s) => prompts.push(Prompt::Say(s)),
                Verb::Play(p) => prompts.push(Prompt::Play(p)),
                Verb::Pause(p) => prompts.push(Prompt::Pause(p)),
                Verb::Redirect(r) => {
                    let base = final_url.as_ref();
                    match tandem_webhook::resolve_url(&r.url, base) {
                        Ok(u) => redirect = Some((u, r.method)),
                        Err(e) => tracing::warn!(error = %e, "waitUrl <Redirect> unusable"),
                    }
                    break;
                }
                other => tracing::warn!(
                    verb = other.name(),
                    "a conference waitUrl document may hold only Say, Play, Pause and Redirect: verb skipped"
                ),
            }
        }
        if prompts.is_empty() && redirect.is_none() {
            tracing::info!("conference waitUrl has nothing to play: waiting in silence");
            return;
        }
        let now = self.now;
        if let Some(c) = self.conference.as_deref_mut() {
            c.wait = Some(WaitMusic {
                url: final_url,
                prompts,
                redirect,
                next: 0,
                pass_began: now,
                seq: 0,
                playing: None,
                pause_until: None,
            });
        }
        self.next_wait_prompt();
    }

    fn wait_mut(&mut self) -> Option<&mut WaitMusic> {
        self.conference.as_deref_mut().and_then(|c| c.wait.as_mut())
    }

    /// Plays the next wait prompt, looping; or fetches the `<Redirect>`.
    pub(super) fn next_wait_prompt(&mut self) {
        let now = self.now;
        let Some(w) = self.wait_mut() else { return };
        if w.next >= w.prompts.len() {
            if let Some((url, method)) = w.redirect.take() {
                if let Some(c) = self.conference.as_deref_mut() {
                    c.wait = None;
                }
                return self.fetch_wait(url, method);
            }
            if now < w.pass_began + MIN_WAIT_PASS {
                w.pause_until = Some(w.pass_began + MIN_WAIT_PASS);
                w.next = 0;
                return;
            }
            w.next = 0;
            w.pass_began = now;
        }
        if w.next == 0 && w.pause_until.is_none() {
            w.pass_began = now;
        }
        let prompt = w.prompts[w.next].clone();
        w.next += 1;
        self.play_prompt(Who::Wait, prompt);
    }

    /// A wait `<Pause>` (or the end of a too short pass) started.
    pub(super) fn wait_pause(&mut self, until: Instant) {
        if let Some(w) = self.wait_mut() {
            w.pause_until = Some(until);
        }
    }

    /// Where a wait prompt's audio load and playback are tracked.
    pub(super) fn wait_slots(&mut self) -> Option<(&mut u64, &mut Option<u64>, Option<Url>)> {
        let w = self.wait_mut()?;
        let url = w.url.clone();
        Some((&mut w.seq, &mut w.playing, url))
    }

    /// The room started or ended.
    pub(super) fn on_room(&mut self, msg: RoomMsg) {
        let Some(c) = self.conference.as_deref_mut() else {
            return;
        };
        match msg {
            RoomMsg::Started => {
                if c.started {
                    return;
                }
                tracing::info!(room = %c.room, "conference started");
                c.started = true;
                if let Some(w) = c.wait.take()
                    && let Some(id) = w.playing
                {
                    self.env.stop_play(id);
                }
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

    /// The conference's timers: `timeLimit` and the wait music's pauses.
    pub(super) fn conference_deadlines(&self) -> [Option<Instant>; 2] {
        match &self.conference {
            Some(c) => [Some(c.until), c.wait.as_ref().and_then(|w| w.pause_until)],
            None => [None, None],
        }
    }

    pub(super) fn conference_timers(&mut self, now: Instant) {
        let Some(c) = self.conference.as_deref_mut() else {
            return;
        };
        if c.until <= now {
            tracing::info!(room = %c.room, "timeLimit reached: leaving the conference");
            return self.conference_over(DialCallStatus::Answered, true);
        }
        if let Some(w) = c.wait.as_mut()
            && w.pause_until.is_some_and(|p| p <= now)
        {
            w.pause_until = None;
            self.verb_done(Who::Wait);
        }
    }

    /// Whether the caller is in a conference (or joining one).
    pub(super) fn in_conference(&self) -> bool {
        self.conference.is_some()
    }

    /// Out of the room (or never in): the Dial ends with `status`.
    pub(super) fn conference_over(&mut self, status: DialCallStatus, bridged: bool) {
        let mut recording_url = None;
        if let Some(c) = self.conference.take() {
            if let Some(id) = c.wait.and_then(|w| w.playing) {
                self.env.stop_play(id);
            }
            if let Some(cb) = c.recording {
                recording_url = self.end_recording(cb.as_ref()).map(|info| info.url);
            }
        }
        self.env.leave_conference();
        self.env.dial_ended(status);
        if let Some(leg) = self.media {
            self.env.relay(leg, None);
        }
        tracing::info!(%status, "dial finished");
        self.feed(Event::DialOutcome(DialOutcome {
            status,
            call_sid: None,
            duration: None,
            bridged,
            recording_url,
        }));
        if self.caller_gone {
            self.finish();
        }
    }
}
