//! `<Gather input="speech">` on the caller's leg (docs/speech.md): the
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
        if self.cfg.speech_command.is_none() {
            tracing::warn!(
                "speech <Gather> but no [speech] command is configured: speech ends the gather with no result"
            );
        }
        self.env.listen_voice(leg, true);
        self.env.listen_speech(leg, true);
        self.seq += 1;
        let partial = g
            .partial_result_callback
            .as_deref()
            .and_then(|u| self.resolve_url(u))
            .map(|u| (u, g.partial_result_callback_method));
        self.speech = Some(Box::new(SpeechGather {
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
        }));
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

    /// Timers of the caller's gathering.
    pub(super) fn gather_timers(&mut self, t: Instant) {
        while let Some(step) = self.gather.as_mut().and_then(|g| g.on_timer(t)) {
            match step {
                Step::Done(ev) => {
                    self.end_gathering();
                    self.feed(ev);
                    return;
                }
                Step::Recognize => self.recognize(None),
                Step::Partial => {
                    if let Some(sp) = self.speech.as_mut().filter(|s| !s.partial_busy) {
                        sp.partials += 1;
                        let n = sp.partials;
                        self.recognize(Some(n));
                    }
                }
            }
        }
    }

    /// Asks for the audio heard so far to be recognised.
    fn recognize(&mut self, partial: Option<u32>) {
        let (Some(sp), Some(leg)) = (self.speech.as_mut(), self.media) else {
            // No media: nothing was heard.
            if partial.is_none()
                && let Some(ev) = self
                    .gather
                    .as_mut()
                    .and_then(|g| g.recognized(String::new(), None))
            {
                self.end_gathering();
                self.feed(ev);
            }
            return;
        };
        if partial.is_some() {
            sp.partial_busy = true;
        }
        let samples = self.env.speech_audio(leg);
        tracing::debug!(
            partial,
            ms = samples.len() / 8,
            "speech <Gather>: recognising"
        );
        self.out.push_back(Output::Recognize(Box::new(Recognition {
            seq: sp.seq,
            partial,
            samples,
            opts: sp.opts.clone(),
        })));
    }

    /// A recognition came back.
    pub(super) fn on_recognized(&mut self, r: Recognized) {
        let Some(sp) = self.speech.as_mut().filter(|s| s.seq == r.seq) else {
            tracing::debug!("recognition for a gather that ended: dropped");
            return;
        };
        let (text, confidence) = match r.result {
            Ok((text, confidence)) => {
                let text = if sp.profanity_filter {
                    filter_profanity(&text)
                } else {
                    text
                };
                (text, confidence)
            }
            Err(why) => {
                tracing::warn!(%why, partial = r.partial, "speech recognition failed");
                (String::new(), None)
            }
        };
        if let Some(n) = r.partial {
            sp.partial_busy = false;
            let Some((url, method)) = sp.partial.clone() else {
                return;
            };
            if text.is_empty() || self.gather.as_ref().is_none_or(Gathering::recognizing) {
                return;
            }
            let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
            let stability = stability(&sp.last_words, &words);
            sp.last_words = words;
            let mut params = self.call_info(self.status()).voice_params();
            params.push("UnstableSpeechResult", text);
            params.push("Stability", format!("{stability:.2}"));
            params.push("SequenceNumber", n.to_string());
            self.out.push_back(Output::Callback {
                sid: self.sid.clone(),
                url,
                method,
                params,
            });
            return;
        }
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
