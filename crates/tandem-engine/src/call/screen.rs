//! Screening (a noun's `url`): the document runs on the answered callee's
//! leg while the caller hears ringback; its verdict goes to the fork
//! arbiter. The callee hears its `<Say>`/`<Play>` (those nested in
//! `<Gather>` too) and its keys are heard however they come: RFC 4733,
//! in-band, or SIP INFO.

use super::*;

/// A screening in progress on a callee's leg (design §4 step 5).
#[derive(Debug)]
pub(crate) struct Screen {
    pub interp: Interpreter,
    /// The playback of the current verb.
    pub playing: Option<u64>,
    /// The load the current verb waits for.
    pub seq: u64,
    pub pause_until: Option<Instant>,
    /// `<Gather>` prompts still to play, then the gather itself.
    pub prompt_queue: VecDeque<tandem_twiml::Prompt>,
    pub pending_gather: Option<tandem_twiml::Gather>,
    pub gather: Option<Gathering>,
    /// The speech side of `gather`.
    pub speech: Option<Box<super::speech::SpeechGather>>,
    pub document_url: Option<Url>,
}

impl Call {
    /// Runs the noun's `url` document on an answered callee (design §4 step 5):
    /// the caller keeps hearing ringback, the other branches keep ringing.
    pub(super) fn start_screening(&mut self, i: usize) {
        if self.amd_holds_screening(i) {
            // Resumed when the detector decides (call/amd.rs).
            return;
        }
        let now = self.now;
        let Some(d) = &mut self.dial else { return };
        let b = &mut d.branches[i];
        let Some((url, method)) = b.screen_url.clone() else {
            d.arbiter
                .on_screening_done(now, i, tandem_twiml::ScreeningVerdict::Accepted);
            return;
        };
        tracing::info!(branch = i, %url, "screening the callee");
        b.screen = Some(Box::new(Screen {
            interp: Interpreter::screening(url, method),
            playing: None,
            seq: 0,
            pause_until: None,
            prompt_queue: VecDeque::new(),
            pending_gather: None,
            gather: None,
            speech: None,
            document_url: None,
        }));
        if let Some(leg) = b.media {
            // The callee's keys, by RFC 4733 or in-band, while it screens.
            self.env.listen_dtmf(leg);
            self.env.expect_media(leg, false);
        }
    }

    pub(super) fn on_screen_fetched(&mut self, call_id: &str, result: Fetched) {
        let Some(s) = self.dial.as_mut().and_then(|d| {
            let i = d.branches.iter().position(|b| b.call_id == call_id)?;
            d.branches[i].screen.as_mut()
        }) else {
            return;
        };
        let ev = match result {
            Ok((body, final_url)) => {
                s.document_url = final_url.clone();
                Event::Fetched { body, final_url }
            }
            Err(reason) => Event::FetchFailed { reason },
        };
        let _ = s.interp.handle(ev);
    }

    /// Executes the commands of every screening interpreter.
    pub(super) fn drive_screens(&mut self) {
        let n = self.dial.as_ref().map_or(0, |d| d.branches.len());
        for i in 0..n {
            loop {
                let now = self.now;
                let Some(d) = &mut self.dial else { return };
                let Some(screen) = &mut d.branches[i].screen else {
                    break;
                };
                let Some(cmd) = screen.interp.poll_command() else {
                    break;
                };
                match cmd {
                    Command::Fetch(req) => self.screen_fetch(i, req),
                    Command::Say(say) => {
                        self.play_prompt(Who::Branch(i), tandem_twiml::Prompt::Say(say));
                    }
                    Command::Play(play) => {
                        self.play_prompt(Who::Branch(i), tandem_twiml::Prompt::Play(play));
                    }
                    Command::Pause { duration } => screen.pause_until = Some(now + duration),
                    Command::Gather(mut g) => {
                        screen.prompt_queue = std::mem::take(&mut g.prompts).into();
                        screen.pending_gather = Some(g);
                        self.next_screen_prompt(i);
                    }
                    Command::Screened(verdict) => {
                        tracing::info!(branch = i, ?verdict, "screening done");
                        if let Some(p) = screen.playing.take() {
                            self.env.stop_play(p);
                        }
                        d.branches[i].screen = None;
                        d.arbiter.on_screening_done(now, i, verdict);
                        self.apply_actions();
                    }
                    Command::Answer | Command::Hangup => {}
                    other => tracing::warn!(?other, "command not allowed in a screening document"),
                }
            }
        }
    }

    fn screen_fetch(&mut self, i: usize, req: tandem_twiml::FetchRequest) {
        let Some(b) = self.dial.as_ref().map(|d| &d.branches[i]) else {
            return;
        };
        let mut params = self
            .child_info(b, tandem_webhook::CallStatus::InProgress)
            .voice_params();
        for (k, v) in &req.params {
            params.push(k, v);
        }
        for (k, v) in b.amd.as_ref().map(|a| a.params()).unwrap_or_default() {
            params.push(k, v);
        }
        let call_id = b.call_id.clone();
        self.out.push_back(Output::Fetch {
            screen: Some(call_id),
            req,
            params,
            fallback: None,
        });
    }

    /// Plays the screening `<Gather>`'s next prompt, or starts collecting.
    pub(super) fn next_screen_prompt(&mut self, i: usize) {
        let Some(s) = self.screen_mut(i) else {
            return;
        };
        if let Some(p) = s.prompt_queue.pop_front() {
            self.play_prompt(Who::Branch(i), p);
            return;
        }
        if let Some(g) = s.pending_gather.take() {
            self.begin_screen_gathering(i, &g);
        }
    }

    /// A key from the screened callee (RFC 4733, in-band or SIP INFO).
    pub(super) fn on_screen_digit(&mut self, i: usize, digit: char) {
        let now = self.now;
        // Borrowed field by field: the env is used while the screening is.
        let Some(s) = self
            .dial
            .as_mut()
            .and_then(|d| d.branches[i].screen.as_deref_mut())
        else {
            return;
        };
        if let Some(g) = s.pending_gather.take() {
            // A key during the prompts stops them and starts the gather with it.
            s.prompt_queue.clear();
            if let Some(p) = s.playing.take() {
                self.env.stop_play(p);
            }
            s.pause_until = None;
            s.seq = 0;
            self.begin_screen_gathering(i, &g);
        }
        let Some(s) = self.screen_mut(i) else { return };
        if let Some(ev) = s.gather.as_mut().and_then(|g| g.on_digit(now, digit)) {
            self.end_screen_gathering(i);
            if let Some(s) = self.screen_mut(i) {
                let _ = s.interp.handle(ev);
            }
        }
    }

    pub(super) fn screen_timers(&mut self, t: Instant) {
        let n = self.dial.as_ref().map_or(0, |d| d.branches.len());
        for i in 0..n {
            let Some(s) = self.screen_mut(i) else {
                continue;
            };
            if s.pause_until.is_some_and(|p| p <= t) {
                s.pause_until = None;
                self.verb_done(Who::Branch(i));
                continue;
            }
            self.screen_gather_timers(i, t);
        }
    }
}
