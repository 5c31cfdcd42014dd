//! Screening (a noun's `url`): the document runs on the answered callee's
//! leg while the caller hears ringback; its verdict goes to the fork arbiter.

use super::*;

impl Call {
    /// Runs the noun's `url` document on an answered callee (design §4 step 5):
    /// the caller keeps hearing ringback, the other branches keep ringing.
    pub(super) fn start_screening(&mut self, i: usize) {
        let Some(d) = &mut self.dial else { return };
        let b = &mut d.branches[i];
        let Some((url, method)) = b.screen_url.clone() else {
            d.arbiter
                .on_screening_done(now(), i, tandem_twiml::ScreeningVerdict::Accepted);
            return;
        };
        tracing::info!(branch = i, %url, "screening the callee");
        b.screen = Some(Screen {
            interp: Interpreter::screening(url, method),
            playing: None,
            pause_until: None,
            gather: None,
            document_url: None,
        });
    }

    /// Executes the commands of every screening interpreter.
    pub(super) async fn drive_screens(&mut self) {
        let n = self.dial.as_ref().map_or(0, |d| d.branches.len());
        for i in 0..n {
            loop {
                let Some(d) = &mut self.dial else { return };
                let b = &mut d.branches[i];
                let Some(screen) = &mut b.screen else { break };
                let Some(cmd) = screen.interp.poll_command() else {
                    break;
                };
                match cmd {
                    Command::Fetch(req) => {
                        let mut params =
                            child_info(b, tandem_webhook::CallStatus::InProgress).voice_params();
                        for (k, v) in &req.params {
                            params.push(k, v);
                        }
                        let call_id = b.call_id.clone();
                        spawn_fetch(&self.ctx, &self.me, req, params, None, move |result| {
                            CallMsg::ScreenFetched { call_id, result }
                        });
                    }
                    Command::Say(say) => {
                        self.play_prompt(Who::Branch(i), tandem_twiml::Prompt::Say(say));
                    }
                    Command::Play(play) => {
                        self.play_prompt(Who::Branch(i), tandem_twiml::Prompt::Play(play));
                    }
                    Command::Pause { duration } => screen.pause_until = Some(now() + duration),
                    Command::Gather(g) => screen.gather = Some(Gathering::new(now(), &g)),
                    Command::Screened(verdict) => {
                        tracing::info!(branch = i, ?verdict, "screening done");
                        b.screen = None;
                        d.arbiter.on_screening_done(now(), i, verdict);
                        self.apply_actions().await;
                    }
                    Command::Answer | Command::Hangup => {}
                    other => tracing::warn!(?other, "command not allowed in a screening document"),
                }
            }
        }
    }

    pub(super) async fn screen_timers(&mut self, t: Instant) {
        let Some(d) = &mut self.dial else { return };
        for b in &mut d.branches {
            let Some(s) = &mut b.screen else { continue };
            if s.pause_until.is_some_and(|p| p <= t) {
                s.pause_until = None;
                let _ = s.interp.handle(Event::VerbDone);
            }
            if let Some(ev) = s.gather.as_mut().and_then(|g| g.on_timeout(t)) {
                s.gather = None;
                let _ = s.interp.handle(ev);
            }
        }
        self.drive_screens().await;
    }
}
