//! The caller's (and a screened callee's) prompts: `<Say>`, `<Play>`,
//! `<Pause>` and the prompts of `<Gather>`, and DTMF in (RFC 4733, in-band, SIP INFO).

use super::*;

impl Call {
    /// Installs the DTMF tap on the caller's leg if it is not there yet
    /// (sharing the tap slot with a recording in progress).
    pub(super) fn ensure_dtmf(&mut self) {
        if self.dtmf.is_some() {
            return;
        }
        let Some(leg) = &self.media else { return };
        let (tap, rx) = dtmf_tap(32);
        let rec = self
            .dial
            .as_ref()
            .and_then(|d| d.recording.as_ref())
            .map(|(_, taps)| taps.parent.clone());
        let combined: Arc<dyn Tap> = match rec {
            Some(r) => fan_out(vec![tap.clone() as Arc<dyn Tap>, r]),
            None => tap.clone(),
        };
        leg.leg.set_tap(Some(combined));
        self.dtmf = Some(tap);
        self.new_dtmf_rx = Some(rx);
    }

    /// Starts a Say, Play or Pause on a leg; its end feeds VerbDone to the
    /// interpreter that asked (the caller's, or a branch's screening).
    pub(super) fn play_prompt(&mut self, who: Who, prompt: tandem_twiml::Prompt) {
        self.verb_seq += 1;
        let seq = self.verb_seq;
        let has_leg = match who {
            Who::Caller => self.media.is_some(),
            Who::Branch(i) => self
                .dial
                .as_ref()
                .is_some_and(|d| d.branches[i].media.is_some()),
        };
        if let tandem_twiml::Prompt::Pause(p) = &prompt {
            let until = now() + Duration::from_secs(u64::from(p.length));
            match who {
                Who::Caller => self.pause_until = Some(until),
                Who::Branch(i) => {
                    if let Some(s) = self
                        .dial
                        .as_mut()
                        .and_then(|d| d.branches[i].screen.as_mut())
                    {
                        s.pause_until = Some(until);
                    }
                }
            }
            return;
        }
        if !has_leg {
            tracing::info!("no media on this leg: prompt skipped");
            self.verb_done(who);
            return;
        }
        let prompts = self.ctx.prompts.clone();
        let me = self.me.clone();
        let base = match who {
            Who::Caller => self.document_url.clone(),
            Who::Branch(i) => self
                .dial
                .as_ref()
                .and_then(|d| d.branches[i].screen.as_ref())
                .and_then(|s| s.document_url.clone()),
        };
        tokio::spawn(async move {
            let result = match prompt {
                tandem_twiml::Prompt::Say(say) => prompts
                    .say(
                        &say.text,
                        say.voice.as_deref(),
                        say.language.as_deref(),
                        say.loop_,
                    )
                    .await
                    .map(|p| Box::new(Audio::Prompt(p)))
                    .map_err(|e| e.to_string()),
                tandem_twiml::Prompt::Play(play) => match (&play.digits, &play.url) {
                    (Some(d), _) => digits_source(d)
                        .map(|d| Box::new(Audio::Digits(d)))
                        .map_err(|e| e.to_string()),
                    (None, Some(url)) => {
                        let url = match &base {
                            Some(b) => b
                                .join(url)
                                .map(|u| u.to_string())
                                .unwrap_or_else(|_| url.clone()),
                            None => url.clone(),
                        };
                        prompts
                            .play(&url, play.loop_)
                            .await
                            .map(|p| Box::new(Audio::Prompt(p)))
                            .map_err(|e| e.to_string())
                    }
                    (None, None) => Err("<Play> without a URL or digits".to_owned()),
                },
                tandem_twiml::Prompt::Pause(_) => Err("pause".to_owned()),
            };
            let _ = me.send(CallMsg::AudioReady { who, seq, result }).await;
        });
    }

    pub(super) fn on_audio_ready(
        &mut self,
        who: Who,
        seq: u64,
        result: Result<Box<Audio>, String>,
    ) {
        if seq != self.verb_seq {
            return;
        }
        let audio = match result {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "prompt not played");
                self.verb_done(who);
                return;
            }
        };
        let leg = match who {
            Who::Caller => self.media.as_ref().map(|m| &m.leg),
            Who::Branch(i) => self
                .dial
                .as_ref()
                .and_then(|d| d.branches[i].media.as_ref())
                .map(|m| &m.leg),
        };
        let Some(leg) = leg else {
            self.verb_done(who);
            return;
        };
        let injection = match *audio {
            Audio::Prompt(p) => leg.inject(p),
            Audio::Digits(d) => leg.inject(d),
        };
        match who {
            Who::Caller => self.playing = Some(injection),
            Who::Branch(i) => {
                if let Some(s) = self
                    .dial
                    .as_mut()
                    .and_then(|d| d.branches[i].screen.as_mut())
                {
                    s.playing = Some(injection);
                }
            }
        }
    }

    pub(super) fn on_injection_done(&mut self, leg: tandem_rtp::LegId, id: u64) {
        let is = |inj: &Option<Injection>, l: Option<tandem_rtp::LegId>| {
            inj.as_ref().is_some_and(|i| i.id() == id) && l == Some(leg)
        };
        if is(&self.playing, self.media.as_ref().map(|m| m.leg.id())) {
            self.playing = None;
            self.verb_done(Who::Caller);
            return;
        }
        let n = self.dial.as_ref().map_or(0, |d| d.branches.len());
        for i in 0..n {
            let hit = self.dial.as_ref().is_some_and(|d| {
                let b = &d.branches[i];
                b.screen
                    .as_ref()
                    .is_some_and(|s| is(&s.playing, b.media.as_ref().map(|m| m.leg.id())))
            });
            if hit {
                if let Some(s) = self
                    .dial
                    .as_mut()
                    .and_then(|d| d.branches[i].screen.as_mut())
                {
                    s.playing = None;
                }
                self.verb_done(Who::Branch(i));
                return;
            }
        }
    }

    /// A verb's audio ended: the next `<Gather>` prompt, or VerbDone.
    pub(super) fn verb_done(&mut self, who: Who) {
        match who {
            Who::Caller => {
                if self.pending_gather.is_some() {
                    self.next_gather_prompt();
                } else {
                    self.feed(Event::VerbDone);
                }
            }
            Who::Branch(i) => {
                if let Some(s) = self
                    .dial
                    .as_mut()
                    .and_then(|d| d.branches[i].screen.as_mut())
                {
                    let _ = s.interp.handle(Event::VerbDone);
                }
            }
        }
    }

    /// Plays the next prompt of the pending `<Gather>`, or starts collecting.
    pub(super) fn next_gather_prompt(&mut self) {
        if let Some(p) = self.prompt_queue.pop_front() {
            self.play_prompt(Who::Caller, p);
            return;
        }
        if let Some(g) = self.pending_gather.take() {
            self.gather = Some(Gathering::new(now(), &g));
        }
    }

    pub(super) async fn on_digit(&mut self, digit: char) {
        if let Some(g) = self.pending_gather.take() {
            // A key during the prompts stops them and starts the gather with it.
            self.prompt_queue.clear();
            self.playing = None;
            self.pause_until = None;
            self.verb_seq += 1;
            self.gather = Some(Gathering::new(now(), &g));
        }
        if let Some(g) = &mut self.gather {
            if let Some(ev) = g.on_digit(now(), digit) {
                self.gather = None;
                self.feed(ev);
            }
            return;
        }
        let star_hangup = self
            .dial
            .as_ref()
            .is_some_and(|d| d.bridged.is_some() && d.spec.hangup_on_star && digit == '*');
        if star_hangup {
            tracing::info!("hangupOnStar: caller pressed *");
            self.end_bridge(true).await;
        }
    }

    // ----- dial -----
}
