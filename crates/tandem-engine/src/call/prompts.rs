//! The caller's (and a screened callee's) prompts: `<Say>`, `<Play>`,
//! `<Pause>` and the prompts of `<Gather>`, and the caller's DTMF
//! (RFC 4733, in-band, SIP INFO) for `<Gather>` and `hangupOnStar`.

use super::*;

impl Call {
    /// Listens for DTMF on the caller's leg from now on.
    pub(super) fn ensure_dtmf(&mut self) {
        if self.dtmf_on {
            return;
        }
        if let Some(leg) = self.media {
            self.env.listen_dtmf(leg);
            self.dtmf_on = true;
        }
    }

    fn leg_of(&self, who: Who) -> Option<LegId> {
        match who {
            Who::Caller | Who::Wait => self.media,
            Who::Branch(i) => self.dial.as_ref().and_then(|d| d.branches[i].media),
        }
    }

    /// Starts a Say, Play or Pause on a leg; its end feeds VerbDone to the
    /// interpreter that asked (the caller's, or a branch's screening).
    pub(super) fn play_prompt(&mut self, who: Who, prompt: tandem_twiml::Prompt) {
        self.seq += 1;
        let seq = self.seq;
        if let tandem_twiml::Prompt::Pause(p) = &prompt {
            let until = self.now + Duration::from_secs(u64::from(p.length));
            match who {
                Who::Caller => self.pause_until = Some(until),
                Who::Wait => self.wait_pause(until),
                Who::Branch(i) => {
                    if let Some(s) = self.screen_mut(i) {
                        s.pause_until = Some(until);
                    }
                }
            }
            return;
        }
        if self.leg_of(who).is_none() {
            tracing::info!("no media on this leg: prompt skipped");
            self.verb_done(who);
            return;
        }
        let base = match who {
            Who::Caller => {
                self.caller_seq = seq;
                self.document_url.clone()
            }
            Who::Branch(i) => match self.screen_mut(i) {
                Some(s) => {
                    s.seq = seq;
                    s.document_url.clone()
                }
                None => return,
            },
            Who::Wait => match self.wait_slots() {
                Some((s, _, url)) => {
                    *s = seq;
                    url
                }
                None => return,
            },
        };
        self.out.push_back(Output::LoadAudio {
            who,
            seq,
            prompt,
            base,
        });
    }

    /// The screening running on branch `i`, if any.
    pub(super) fn screen_mut(&mut self, i: usize) -> Option<&mut super::screen::Screen> {
        self.dial
            .as_mut()
            .and_then(|d| d.branches.get_mut(i))
            .and_then(|b| b.screen.as_deref_mut())
    }

    pub(super) fn on_audio_ready(
        &mut self,
        who: Who,
        seq: u64,
        result: Result<Box<Audio>, String>,
    ) {
        let expected = match who {
            Who::Caller => self.caller_seq,
            Who::Branch(i) => self.screen_mut(i).map_or(0, |s| s.seq),
            Who::Wait => self.wait_slots().map_or(0, |(s, _, _)| *s),
        };
        if seq != expected || seq == 0 {
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
        let Some(leg) = self.leg_of(who) else {
            self.verb_done(who);
            return;
        };
        let Some(id) = self.env.play(leg, *audio) else {
            self.verb_done(who);
            return;
        };
        match who {
            Who::Caller => self.playing = Some(id),
            Who::Branch(i) => {
                if let Some(s) = self.screen_mut(i) {
                    s.playing = Some(id);
                }
            }
            Who::Wait => match self.wait_slots() {
                Some((_, playing, _)) => *playing = Some(id),
                None => self.env.stop_play(id),
            },
        }
    }

    pub(super) fn on_injection_done(&mut self, leg: LegId, id: u64) {
        if self.media == Some(leg) && self.on_beep_done(id) {
            return;
        }
        let wait = self.wait_slots().is_some_and(|(_, p, _)| *p == Some(id));
        if wait && self.media == Some(leg) {
            if let Some((_, p, _)) = self.wait_slots() {
                *p = None;
            }
            self.env.stop_play(id);
            self.verb_done(Who::Wait);
            return;
        }
        if self.playing == Some(id) && self.media == Some(leg) {
            self.playing = None;
            self.env.stop_play(id);
            self.verb_done(Who::Caller);
            return;
        }
        let hit = self.dial.as_ref().and_then(|d| {
            d.branches.iter().position(|b| {
                b.media == Some(leg) && b.screen.as_ref().is_some_and(|s| s.playing == Some(id))
            })
        });
        if let Some(i) = hit {
            if let Some(s) = self.screen_mut(i) {
                s.playing = None;
            }
            self.env.stop_play(id);
            self.verb_done(Who::Branch(i));
        }
    }

    /// A verb's audio ended: the next `<Gather>` prompt, or VerbDone.
    pub(super) fn verb_done(&mut self, who: Who) {
        match who {
            Who::Caller => {
                self.caller_seq = 0;
                if self.pending_gather.is_some() {
                    self.next_gather_prompt();
                } else {
                    self.feed(Event::VerbDone);
                }
            }
            Who::Wait => {
                if let Some((s, _, _)) = self.wait_slots() {
                    *s = 0;
                }
                self.next_hold_prompt();
            }
            Who::Branch(i) => {
                let Some(s) = self.screen_mut(i) else { return };
                s.seq = 0;
                if s.pending_gather.is_some() {
                    self.next_screen_prompt(i);
                } else {
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
            self.begin_gathering(&g);
        }
    }

    /// A key from the caller.
    pub(super) fn on_caller_digit(&mut self, digit: char) {
        let now = self.now;
        if self.record_digit(digit) {
            return;
        }
        if let Some(g) = self.pending_gather.take() {
            // A key during the prompts stops them and starts the gather with it.
            self.prompt_queue.clear();
            if let Some(p) = self.playing.take() {
                self.env.stop_play(p);
            }
            self.pause_until = None;
            self.caller_seq = 0;
            self.begin_gathering(&g);
        }
        if let Some(g) = &mut self.gather {
            if let Some(ev) = g.on_digit(now, digit) {
                self.end_gathering();
                self.feed(ev);
            }
            return;
        }
        if self.conference_star(digit) {
            return;
        }
        let star_hangup = self
            .dial
            .as_ref()
            .is_some_and(|d| d.bridged.is_some() && d.spec.hangup_on_star && digit == '*');
        if star_hangup {
            tracing::info!("hangupOnStar: caller pressed *");
            self.end_bridge(true);
        }
    }
}
