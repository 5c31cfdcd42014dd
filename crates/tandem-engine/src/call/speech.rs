//! `<Gather input="speech">` on the caller's leg, or a screened callee's
//! (docs/speech.md): the
//! gathering (`crate::gather`) decides when an utterance starts and ends
//! from the caller's voice activity; this side listens (voice activity and
//! the audio, media_ops `SpeechTap`), asks the shell to recognise the audio
//! ([`Output::Recognize`]: the program `[speech] command` names), stars out
//! profanity, posts interim results to `partialResultCallback`, and feeds
//! the text to the interpreter as `SpeechResult`.

use super::*;
use crate::gather::Step;

/// The speech side of the running `<Gather>`.
#[derive(Debug)]
pub(super) struct SpeechGather {
    /// Which gathering a recognition belongs to (a late answer for an
    /// earlier `<Gather>` is dropped).
    seq: u64,
    opts: SpeechOptions,
    profanity_filter: bool,
    /// `partialResultCallback` and its method.
    partial: Option<(Url, tandem_webhook::Method)>,
    /// An interim recognition is running: the next tick skips (a slow
    /// recogniser does not pile up).
    partial_busy: bool,
    /// Interim recognitions asked for (the last one's `SequenceNumber`).
    partials: u32,
    /// The words of the last interim result, for `Stability`.
    last_words: Vec<String>,
}

impl Call {
    /// Starts listening for speech on `leg` for `g`; `base` resolves a
    /// relative `partialResultCallback`.
    fn listen_for_speech(
        &mut self,
        g: &tandem_twiml::Gather,
        leg: LegId,
        base: Option<&Url>,
    ) -> Box<SpeechGather> {
        if self.cfg.speech_command.is_none() {
            tracing::warn!(
                "speech <Gather> but no [speech] command is configured: speech ends the gather with no result"
            );
        }
        self.env.listen_voice(leg, true);
        self.env.listen_speech(leg, true);
        self.seq += 1;
        let partial = g.partial_result_callback.as_deref().and_then(|u| {
            let url = match base {
                Some(b) => b.join(u).ok(),
                None => self.resolve_url(u),
            };
            url.map(|u| (u, g.partial_result_callback_method))
        });
        Box::new(SpeechGather {
            seq: self.seq,
            opts: SpeechOptions {
                language: g.language.clone(),
                hints: g.hints.clone(),
                model: g.speech_model.clone(),
                enhanced: g.enhanced,
            },
            profanity_filter: g.profanity_filter,
            partial,
            partial_busy: false,
            partials: 0,
            last_words: Vec::new(),
        })
    }

    /// The caller's `<Gather>` starts listening (after its prompts, or at a
    /// key during them).
    pub(super) fn begin_gathering(&mut self, g: &tandem_twiml::Gather) {
        let gathering = Gathering::new(self.now, g);
        let speech = gathering.wants_speech();
        self.gather = Some(gathering);
        if !speech {
            return;
        }
        let Some(leg) = self.media else {
            tracing::info!("speech <Gather> without media on the caller's leg: no speech is heard");
            return;
        };
        self.speech = Some(self.listen_for_speech(g, leg, None));
    }

    /// A screening document's `<Gather>` starts listening on branch `i`.
    pub(super) fn begin_screen_gathering(&mut self, i: usize, g: &tandem_twiml::Gather) {
        let now = self.now;
        let Some(d) = &mut self.dial else { return };
        let b = &mut d.branches[i];
        let (leg, base) = (
            b.media,
            b.screen.as_ref().and_then(|s| s.document_url.clone()),
        );
        let Some(s) = b.screen.as_deref_mut() else {
            return;
        };
        let gathering = Gathering::new(now, g);
        let speech = gathering.wants_speech();
        s.gather = Some(gathering);
        if let (true, Some(leg)) = (speech, leg) {
            let sp = self.listen_for_speech(g, leg, base.as_ref());
            if let Some(s) = self.screen_mut(i) {
                s.speech = Some(sp);
            }
        }
    }

    /// The caller's gathering ended (its event is fed next): stop listening.
    pub(super) fn end_gathering(&mut self) {
        self.gather = None;
        if self.speech.take().is_some()
            && let Some(leg) = self.media
        {
            self.env.listen_speech(leg, false);
            if self.record.is_none() {
                self.env.listen_voice(leg, false);
            }
        }
    }

    /// Branch `i`'s screening gathering ended: stop listening.
    pub(super) fn end_screen_gathering(&mut self, i: usize) {
        let Some(d) = &mut self.dial else { return };
        let b = &mut d.branches[i];
        let leg = b.media;
        let Some(s) = b.screen.as_deref_mut() else {
            return;
        };
        s.gather = None;
        if s.speech.take().is_some()
            && let Some(leg) = leg
        {
            self.env.listen_speech(leg, false);
            self.env.listen_voice(leg, false);
        }
    }

    /// Voice activity on branch `i`'s leg, for its screening gathering.
    pub(super) fn screen_voice(&mut self, leg: LegId, speaking: bool) {
        let now = self.now;
        let Some(d) = &mut self.dial else { return };
        if let Some(g) = d
            .branches
            .iter_mut()
            .filter(|b| b.media == Some(leg))
            .find_map(|b| b.screen.as_deref_mut().and_then(|s| s.gather.as_mut()))
        {
            g.on_voice(now, speaking);
        }
    }

    /// Timers of the caller's gathering.
    pub(super) fn gather_timers(&mut self, t: Instant) {
        while let Some(step) = self.gather.as_mut().and_then(|g| g.on_timer(t)) {
            if let Step::Done(ev) = step {
                self.end_gathering();
                self.feed(ev);
                return;
            }
            self.speech_step(Who::Caller, &step);
        }
    }

    /// Timers of branch `i`'s screening gathering.
    pub(super) fn screen_gather_timers(&mut self, i: usize, t: Instant) {
        while let Some(step) = self
            .screen_mut(i)
            .and_then(|s| s.gather.as_mut())
            .and_then(|g| g.on_timer(t))
        {
            if let Step::Done(ev) = step {
                self.end_screen_gathering(i);
                if let Some(s) = self.screen_mut(i) {
                    let _ = s.interp.handle(ev);
                }
                return;
            }
            self.speech_step(Who::Branch(i), &step);
        }
    }

    /// The leg and speech side of `who`'s gathering.
    fn speech_of(&mut self, who: Who) -> Option<(Option<LegId>, &mut SpeechGather)> {
        match who {
            Who::Caller | Who::Wait => Some((self.media, self.speech.as_deref_mut()?)),
            Who::Branch(i) => {
                let b = self.dial.as_mut()?.branches.get_mut(i)?;
                Some((b.media, b.screen.as_deref_mut()?.speech.as_deref_mut()?))
            }
        }
    }

    /// A Recognize or Partial step of `who`'s gathering.
    fn speech_step(&mut self, who: Who, step: &Step) {
        let partial = match step {
            Step::Done(_) => return,
            Step::Recognize => None,
            Step::Partial => {
                let Some((_, sp)) = self.speech_of(who).filter(|(_, s)| !s.partial_busy) else {
                    return;
                };
                sp.partials += 1;
                Some(sp.partials)
            }
        };
        let Some((Some(leg), sp)) = self.speech_of(who) else {
            // No leg or no speech side: nothing was heard.
            if partial.is_none() {
                self.deliver_speech(who, String::new(), None);
            }
            return;
        };
        if partial.is_some() {
            sp.partial_busy = true;
        }
        let (seq, opts) = (sp.seq, sp.opts.clone());
        let samples = self.env.speech_audio(leg);
        tracing::debug!(
            partial,
            ms = samples.len() / 8,
            "speech <Gather>: recognising"
        );
        self.out.push_back(Output::Recognize(Box::new(Recognition {
            seq,
            partial,
            samples,
            opts,
        })));
    }

    /// A recognition came back, for the caller's gathering or a screening's.
    pub(super) fn on_recognized(&mut self, r: Recognized) {
        let who = if self.speech.as_ref().is_some_and(|s| s.seq == r.seq) {
            Who::Caller
        } else {
            let branch = self.dial.as_ref().and_then(|d| {
                d.branches.iter().position(|b| {
                    b.screen
                        .as_ref()
                        .and_then(|s| s.speech.as_ref())
                        .is_some_and(|s| s.seq == r.seq)
                })
            });
            let Some(i) = branch else {
                tracing::debug!("recognition for a gather that ended: dropped");
                return;
            };
            Who::Branch(i)
        };
        let Some((_, sp)) = self.speech_of(who) else {
            return;
        };
        let (text, confidence) = match r.result {
            Ok((text, confidence)) if sp.profanity_filter => (filter_profanity(&text), confidence),
            Ok(x) => x,
            Err(why) => {
                tracing::warn!(%why, partial = r.partial, "speech recognition failed");
                (String::new(), None)
            }
        };
        let Some(n) = r.partial else {
            return self.deliver_speech(who, text, confidence);
        };
        sp.partial_busy = false;
        let Some((url, method)) = sp.partial.clone() else {
            return;
        };
        if text.is_empty() {
            return;
        }
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        let stability = stability(&sp.last_words, &words);
        sp.last_words = words;
        let listening = match who {
            Who::Branch(i) => self.screen_mut(i).and_then(|s| s.gather.as_ref()),
            _ => self.gather.as_ref(),
        }
        .is_some_and(|g| !g.recognizing());
        if !listening {
            return;
        }
        let mut params = match who {
            Who::Branch(i) => {
                let Some(b) = self.dial.as_ref().map(|d| &d.branches[i]) else {
                    return;
                };
                self.child_info(b, tandem_webhook::CallStatus::InProgress)
                    .voice_params()
            }
            _ => self.call_info(self.status()).voice_params(),
        };
        params.push("UnstableSpeechResult", text);
        params.push("Stability", format!("{stability:.2}"));
        params.push("SequenceNumber", n.to_string());
        let sid = params
            .iter()
            .find(|(k, _)| *k == "CallSid")
            .map_or_else(|| self.sid.clone(), |(_, v)| v.to_owned());
        self.out.push_back(Output::Callback {
            sid,
            url,
            method,
            params,
        });
    }

    /// The utterance's text reaches `who`'s interpreter.
    fn deliver_speech(&mut self, who: Who, text: String, confidence: Option<String>) {
        match who {
            Who::Branch(i) => {
                let Some(ev) = self
                    .screen_mut(i)
                    .and_then(|s| s.gather.as_mut())
                    .and_then(|g| g.recognized(text, confidence))
                else {
                    return;
                };
                tracing::info!(
                    branch = i,
                    event = ev.name(),
                    "screening speech <Gather> ended"
                );
                self.end_screen_gathering(i);
                if let Some(s) = self.screen_mut(i) {
                    let _ = s.interp.handle(ev);
                }
            }
            _ => {
                let Some(ev) = self
                    .gather
                    .as_mut()
                    .and_then(|g| g.recognized(text, confidence))
                else {
                    return;
                };
                tracing::info!(event = ev.name(), "speech <Gather> ended");
                self.end_gathering();
                self.feed(ev);
            }
        }
    }
}

/// `Stability` of an interim result: the share of its words that the
/// previous interim result had in the same place (0 for the first). A
/// recogniser run on growing audio that keeps its earlier words is stable.
fn stability(before: &[String], now: &[String]) -> f64 {
    if now.is_empty() {
        return 0.0;
    }
    let same = before.iter().zip(now).filter(|(a, b)| a == b).count();
    same as f64 / now.len() as f64
}

/// Words starred out by `profanityFilter` (Twilio keeps the first letter:
/// `f***`). Matched whole, case-insensitively, with common endings.
const PROFANITY: &[&str] = &[
    "arse",
    "arsehole",
    "ass",
    "asshole",
    "bastard",
    "bitch",
    "bollocks",
    "bullshit",
    "cock",
    "cunt",
    "dick",
    "dickhead",
    "fuck",
    "fucker",
    "fucking",
    "motherfucker",
    "piss",
    "prick",
    "pussy",
    "shit",
    "shitty",
    "slut",
    "twat",
    "wanker",
    "whore",
];

/// `text` with each profane word reduced to its first letter and stars.
pub(crate) fn filter_profanity(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let lower = word.to_lowercase();
        let stem = ["s", "es", "ed", "ing"]
            .iter()
            .filter_map(|suffix| lower.strip_suffix(suffix))
            .any(|s| PROFANITY.contains(&s));
        if PROFANITY.contains(&lower.as_str()) || stem {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.push(first);
                out.extend(chars.map(|_| '*'));
            }
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() || c == '\'' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn profanity_keeps_the_first_letter_and_the_rest_of_the_text() {
        assert_eq!(
            filter_profanity("Oh shit, the Fucking printer"),
            "Oh s***, the F****** printer"
        );
        assert_eq!(filter_profanity("bitches pass class"), "b****** pass class");
        assert_eq!(
            filter_profanity("Scunthorpe assessment"),
            "Scunthorpe assessment"
        );
        assert_eq!(filter_profanity(""), "");
    }

    #[test]
    fn stability_is_the_share_of_words_kept_in_place() {
        let w = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(stability(&[], &w("talk")), 0.0);
        assert_eq!(stability(&w("talk"), &w("talk to")), 0.5);
        assert_eq!(stability(&w("talk to"), &w("talk to sales")), 2.0 / 3.0);
        assert_eq!(stability(&w("walk"), &w("talk to")), 0.0);
    }
}
