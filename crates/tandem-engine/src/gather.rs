//! Input collection for `<Gather>` (sans-IO).
//!
//! DTMF: `timeout` seconds to wait for each digit, `finishOnKey` ends the
//! input (the key itself is not part of it), `numDigits` ends it once that
//! many digits arrived.
//!
//! Speech (docs/speech.md): the caller's voice activity (media_ops
//! `VoiceTap`) drives it. No speech within `timeout`: no input. Once the
//! caller speaks, a silence of `speechTimeout` (or [`AUTO_SILENCE`] for
//! `auto`) ends the utterance, and so does [`MAX_UTTERANCE`] of it; then the
//! call has the audio recognised ([`Step::Recognize`]) and feeds the text
//! back. While the caller speaks, a `partialResultCallback` gathering asks
//! for an interim recognition every [`PARTIAL_EVERY`]. With `dtmf speech`
//! the first input wins: a key before any speech makes it a DTMF gather,
//! speech before any key makes keys ignored.

use std::time::{Duration, Instant};

use tandem_twiml::{Event, Gather, GatherInput, SpeechTimeout};

use crate::media_ops::{HANGOVER, KEEPALIVE};

/// `speechTimeout="auto"`: the silence that ends an utterance.
pub(crate) const AUTO_SILENCE: Duration = Duration::from_secs(1);
/// The longest utterance (Twilio's limit is 60 s of speech).
pub(crate) const MAX_UTTERANCE: Duration = Duration::from_secs(60);
/// Interim recognitions while the caller speaks.
pub(crate) const PARTIAL_EVERY: Duration = Duration::from_secs(1);

/// What a timer of the gathering asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The gathering ended with this event.
    Done(Event),
    /// The utterance ended: recognise it, then feed the text back with
    /// [`Gathering::recognized`].
    Recognize,
    /// Recognise the audio so far for `partialResultCallback`.
    Partial,
}

/// The speech side of a gathering.
#[derive(Debug, Clone)]
struct Speech {
    /// The silence that ends an utterance.
    silence: Duration,
    /// When the caller first spoke.
    heard: Option<Instant>,
    /// When the current silence (or a stale report while speaking) ends the utterance.
    silence_until: Option<Instant>,
    /// Interim recognitions are wanted, and when the next one is due.
    partial: bool,
    next_partial: Option<Instant>,
    /// The utterance ended; its recognition is awaited.
    recognizing: bool,
}

/// One `<Gather>` in progress.
#[derive(Debug, Clone)]
pub(crate) struct Gathering {
    deadline: Instant,
    timeout: Duration,
    num_digits: Option<u32>,
    finish_on_key: Option<char>,
    /// Keys count (`dtmf`, `dtmf speech` until speech was heard).
    dtmf: bool,
    digits: String,
    speech: Option<Speech>,
}

impl Gathering {
    /// Starts collecting at `now` (after the prompts).
    pub(crate) fn new(now: Instant, g: &Gather) -> Self {
        let timeout = Duration::from_secs(u64::from(g.timeout.max(1)));
        let speech = (g.input != GatherInput::Dtmf).then(|| Speech {
            silence: match g.speech_timeout {
                Some(SpeechTimeout::Auto) => AUTO_SILENCE,
                Some(SpeechTimeout::Secs(s)) => Duration::from_secs(u64::from(s.max(1))),
                None => timeout,
            },
            heard: None,
            silence_until: None,
            partial: g.partial_result_callback.is_some(),
            next_partial: None,
            recognizing: false,
        });
        Self {
            deadline: now + timeout,
            timeout,
            num_digits: g.num_digits.filter(|n| *n > 0),
            finish_on_key: g.finish_on_key,
            dtmf: g.input != GatherInput::Speech,
            digits: String::new(),
            speech,
        }
    }

    /// Whether speech is listened for.
    pub(crate) fn wants_speech(&self) -> bool {
        self.speech.is_some()
    }

    /// When the next timer of the gathering fires; `None` while a
    /// recognition is awaited.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let Some(sp) = self.speech.as_ref().filter(|s| s.heard.is_some()) else {
            return Some(self.deadline);
        };
        if sp.recognizing {
            return None;
        }
        let cut = sp.heard.map(|h| h + MAX_UTTERANCE);
        [sp.silence_until, cut, sp.next_partial]
            .into_iter()
            .flatten()
            .min()
    }

    /// The caller started (or goes on) speaking, or fell silent
    /// ([`HANGOVER`] ago). Ignored once a key was pressed.
    pub(crate) fn on_voice(&mut self, now: Instant, speaking: bool) {
        if !self.digits.is_empty() {
            return;
        }
        let Some(sp) = self.speech.as_mut().filter(|s| !s.recognizing) else {
            return;
        };
        if speaking {
            if sp.heard.is_none() {
                sp.heard = Some(now);
                self.dtmf = false;
            }
            // A caller whose packets stop mid-word is silent from its last
            // report on: this deadline holds unless the next report comes.
            sp.silence_until = Some(now + sp.silence + KEEPALIVE);
            if sp.partial && sp.next_partial.is_none() {
                sp.next_partial = Some(now + PARTIAL_EVERY);
            }
        } else if sp.heard.is_some() {
            sp.silence_until = Some(now + sp.silence.saturating_sub(HANGOVER));
            sp.next_partial = None;
        }
    }

    /// The recognition of the utterance came back: the event for the
    /// interpreter (an empty result is no input).
    pub(crate) fn recognized(&mut self, text: String, confidence: Option<String>) -> Option<Event> {
        let sp = self.speech.as_mut().filter(|s| s.recognizing)?;
        sp.recognizing = false;
        Some(if text.is_empty() {
            Event::GatherTimeout
        } else {
            Event::Speech {
                result: text,
                confidence,
            }
        })
    }

    /// Whether a recognition of the whole utterance is awaited.
    pub(crate) fn recognizing(&self) -> bool {
        self.speech.as_ref().is_some_and(|s| s.recognizing)
    }

    /// Timers due at `now`.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Option<Step> {
        if let Some(sp) = self.speech.as_mut().filter(|s| s.heard.is_some()) {
            if sp.recognizing {
                return None;
            }
            let cut = sp.heard.is_some_and(|h| now >= h + MAX_UTTERANCE);
            if cut || sp.silence_until.is_some_and(|t| now >= t) {
                sp.recognizing = true;
                sp.next_partial = None;
                return Some(Step::Recognize);
            }
            if let Some(t) = sp.next_partial.filter(|t| now >= *t) {
                sp.next_partial = Some(t + PARTIAL_EVERY);
                return Some(Step::Partial);
            }
            return None;
        }
        self.on_timeout(now).map(Step::Done)
    }

    /// A digit arrived; returns the interpreter event when the input is complete.
    pub(crate) fn on_digit(&mut self, now: Instant, digit: char) -> Option<Event> {
        if !self.dtmf {
            return None;
        }
        if self.finish_on_key == Some(digit) {
            return Some(Event::Digits {
                digits: std::mem::take(&mut self.digits),
                finished_on_key: Some(digit),
            });
        }
        self.digits.push(digit);
        self.deadline = now + self.timeout;
        if self
            .num_digits
            .is_some_and(|n| self.digits.chars().count() >= n as usize)
        {
            return Some(Event::Digits {
                digits: std::mem::take(&mut self.digits),
                finished_on_key: None,
            });
        }
        None
    }

    /// The timeout passed: what was typed so far, or nothing.
    fn on_timeout(&mut self, now: Instant) -> Option<Event> {
        if now < self.deadline {
            return None;
        }
        if self.digits.is_empty() {
            Some(Event::GatherTimeout)
        } else {
            Some(Event::Digits {
                digits: std::mem::take(&mut self.digits),
                finished_on_key: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gather(num: Option<u32>, finish: Option<char>) -> Gather {
        Gather {
            num_digits: num,
            finish_on_key: finish,
            timeout: 3,
            ..Gather::default()
        }
    }

    #[test]
    fn num_digits_completes_the_input() {
        let t0 = Instant::now();
        let mut g = Gathering::new(t0, &gather(Some(2), Some('#')));
        assert_eq!(g.on_digit(t0, '1'), None);
        assert_eq!(
            g.on_digit(t0, '2'),
            Some(Event::Digits {
                digits: "12".into(),
                finished_on_key: None
            })
        );
    }

    #[test]
    fn finish_on_key_ends_without_the_key() {
        let t0 = Instant::now();
        let mut g = Gathering::new(t0, &gather(None, Some('#')));
        g.on_digit(t0, '4');
        assert_eq!(
            g.on_digit(t0, '#'),
            Some(Event::Digits {
                digits: "4".into(),
                finished_on_key: Some('#')
            })
        );
    }

    #[test]
    fn timeout_is_per_digit_and_exact() {
        let t0 = Instant::now();
        let mut g = Gathering::new(t0, &gather(None, None));
        let t1 = t0 + Duration::from_secs(2);
        g.on_digit(t1, '7');
        assert_eq!(g.deadline(), Some(t1 + Duration::from_secs(3)));
        assert_eq!(g.on_timeout(t1 + Duration::from_millis(2999)), None);
        assert_eq!(
            g.on_timeout(t1 + Duration::from_secs(3)),
            Some(Event::Digits {
                digits: "7".into(),
                finished_on_key: None
            })
        );
        let mut empty = Gathering::new(t0, &gather(None, None));
        assert_eq!(
            empty.on_timeout(t0 + Duration::from_secs(3)),
            Some(Event::GatherTimeout)
        );
    }
}
